//! Keys: JWK parsing (RFC 7517, RFC 8037), the key set that pins each `kid` to one algorithm, and JWKS output.

use super::b64;
use super::json;
use curve25519_dalek::edwards::{EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::BasepointTable as _;
use ed25519_dalek::VerifyingKey as EdVerifyingKey;
use gatehouse_ed25519::vartime::VartimeTable;
use gatehouse_ed25519::MinusA as Ed25519MinusA;
#[cfg(gatehouse_p256)]
use p256::ecdsa::{SigningKey as P256SigningKey, VerifyingKey as P256VerifyingKey};
use serde_json::{json, Map, Value};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use zeroize::Zeroize;

/// The smallest RSA modulus accepted, in bits (NIST SP 800-57: 2048 for use beyond 2030 is the floor).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits: bigger keys only cost verification time.
pub const MAX_RSA_BITS: usize = 4096;
/// The longest `kid` accepted.
pub const MAX_KID_LEN: usize = 128;
/// The most keys kept from another issuer's set (a busy Ed25519 key gets a fixed-base table: 640 KiB
/// for at most `gatehouse_ed25519::vartime::MAX_TABLES` such keys alive in the isolate, 30 KB for the others).
pub const MAX_REMOTE_KEYS: usize = 64;

/// A signature algorithm gatehouse signs and verifies with. The key decides it; a token header only names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037 §3.1).
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    Rs256,
    /// ECDSA on P-256 with SHA-256, signatures as `r || s` (RFC 7518 §3.4).
    Es256,
}

impl Algorithm {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
        }
    }

    /// The algorithm a JOSE `alg` name denotes, if gatehouse supports it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Algorithm::EdDsa),
            "RS256" => Some(Algorithm::Rs256),
            "ES256" => Some(Algorithm::Es256),
            _ => None,
        }
    }
}

/// Why a JWK or JWK Set was refused. Each is the configuration's fault (or a remote issuer's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The text is not a JSON object with a `keys` array (or the key is not an object).
    NotAKeySet(String),
    /// The set has no usable key.
    Empty,
    /// A key has no `kid`, or it is empty or too long.
    MissingKid,
    /// Two keys share a `kid` (RFC 7517 §4.5: ambiguous).
    DuplicateKid(String),
    /// `kty`, `crv` or `alg` name something gatehouse does not use, or do not fit together.
    Unsupported { kid: String, reason: String },
    /// `use` is present and is not `sig`, or `key_ops` does not allow the operation.
    WrongUse { kid: String },
    /// A member is missing, not a string, or not strict base64url of the right length.
    Malformed { kid: String, member: &'static str },
    /// The RSA modulus is outside [`MIN_RSA_BITS`, `MAX_RSA_BITS`].
    RsaSize { kid: String, bits: usize },
    /// The key material is mathematically invalid (bad exponent, inconsistent private parts, weak point).
    Invalid { kid: String, reason: String },
    /// A private key was required (the signing set) but a member of it is missing.
    NotPrivate { kid: String },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NotAKeySet(why) => write!(f, "not a JWK Set: {why}"),
            KeyError::Empty => f.write_str("the JWK Set has no keys"),
            KeyError::MissingKid => write!(f, "a key has no kid (or it is over {MAX_KID_LEN} bytes)"),
            KeyError::DuplicateKid(kid) => write!(f, "kid {kid:?} is used twice"),
            KeyError::Unsupported { kid, reason } => write!(f, "key {kid:?}: {reason}"),
            KeyError::WrongUse { kid } => write!(f, "key {kid:?} is not for signatures (use/key_ops)"),
            KeyError::Malformed { kid, member } => write!(f, "key {kid:?}: member {member:?} is missing or malformed"),
            KeyError::RsaSize { kid, bits } => {
                write!(f, "key {kid:?}: RSA modulus of {bits} bits is outside {MIN_RSA_BITS}..={MAX_RSA_BITS}")
            }
            KeyError::Invalid { kid, reason } => write!(f, "key {kid:?}: invalid key material ({reason})"),
            KeyError::NotPrivate { kid } => write!(f, "key {kid:?} is not a private key"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Public key material for one algorithm. RSA and P-256 keys are kept as their JWK coordinates:
/// the Workers check their signatures with WebCrypto, native builds with the pure-Rust crates.
#[derive(Clone)]
pub(crate) enum VerifyingMaterial {
    /// The key, and −A in the form its verifications use.
    Ed25519(EdVerifyingKey, MinusA),
    /// The modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The affine coordinates.
    P256 { x: [u8; 32], y: [u8; 32] },
}

/// −A, the negated Ed25519 public point, as verification multiplies it.
#[derive(Clone)]
pub(crate) enum MinusA {
    /// A long-lived key (configured, published, trusted): the point, and a fixed-base table built
    /// once the key has checked [`TABLE_AFTER`] signatures ([`KeyTable`]). The table makes a
    /// verification much cheaper but takes milliseconds to build (with the base point's own, which
    /// the first table verification builds): built at load, they were most of a cold start's first
    /// answer (bench/profile.mjs). Clones share the count and the table.
    Lazy(Arc<LazyTable>),
    /// The point alone, for keys used once (a DPoP proof's own `jwk`): a variable-base double
    /// multiplication per verification, nothing to build.
    Point(Box<EdwardsPoint>),
}

/// Signatures a long-lived key checks with the variable-base double multiplication before its
/// fixed-base table is built: a key this busy in one isolate repays the build.
pub(crate) const TABLE_AFTER: u32 = 64;

/// −A and its fixed-base table, built on the [`TABLE_AFTER`]th use.
pub(crate) struct LazyTable {
    point: EdwardsPoint,
    uses: AtomicU32,
    table: OnceLock<KeyTable>,
}

/// A key's fixed-base table: the variable-time one ([`VartimeTable`]: 32 additions a product, 640
/// KiB), or, while the isolate holds its share of those, curve25519-dalek's constant-time one
/// (64 additions and 64 masked selections, 30 KiB).
pub(crate) enum KeyTable {
    Wide(VartimeTable),
    Narrow(Box<EdwardsBasepointTable>),
}

impl LazyTable {
    fn new(point: EdwardsPoint) -> Self {
        LazyTable { point, uses: AtomicU32::new(0), table: OnceLock::new() }
    }

    /// The table, if this use is at least the [`TABLE_AFTER`]th (building it then).
    fn table(&self) -> Option<&KeyTable> {
        if let Some(table) = self.table.get() {
            return Some(table);
        }
        if self.uses.fetch_add(1, Ordering::Relaxed) + 1 < TABLE_AFTER {
            return None;
        }
        Some(self.table.get_or_init(|| match VartimeTable::create_counted(&self.point) {
            Some(wide) => KeyTable::Wide(wide),
            None => KeyTable::Narrow(Box::new(EdwardsBasepointTable::create(&self.point))),
        }))
    }
}

/// Private key material for one algorithm. Its `Debug` never shows the key.
#[derive(Clone)]
pub(crate) enum SigningMaterial {
    Ed25519(Box<Ed25519Private>),
    /// The private JWK members (`d`, `p`, `q`, `dp`, `dq`, `qi`), big-endian, for WebCrypto; natively
    /// also the `rsa` crate's key, checked for consistency at load.
    Rsa(Box<RsaPrivate>),
    /// The private scalar; with `p256` linked, also its signing key, checked against `x`, `y` at load.
    P256(Box<P256Private>),
}

/// An Ed25519 private key (RFC 8032 §5.1.5): the seed, and what signing derives from it. Signing is
/// RFC 8032 §5.1.6 with the runtime-built base-point table (constant-time, as ed25519-dalek's own);
/// the tests check every signature is byte for byte ed25519-dalek's. Wiped when dropped.
#[derive(Clone)]
pub(crate) struct Ed25519Private {
    seed: [u8; 32],
    scalar: Scalar,
    prefix: [u8; 32],
    public: [u8; 32],
}

impl Ed25519Private {
    /// Expands a 32-byte seed: SHA-512, the clamped lower half as the scalar, the upper as the prefix.
    fn from_seed(seed: [u8; 32]) -> Self {
        let (scalar, prefix, public) = gatehouse_ed25519::expand(&seed);
        Ed25519Private { seed, scalar, prefix, public }
    }

    /// The 64-byte signature of `message` (RFC 8032 §5.1.6).
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        gatehouse_ed25519::sign(&self.scalar, &self.prefix, &self.public, message)
    }

    /// The seed (the JWK's `d`).
    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }
}

impl Drop for Ed25519Private {
    fn drop(&mut self) {
        self.seed.zeroize();
        self.scalar.zeroize();
        self.prefix.zeroize();
    }
}

/// An RSA private key's members.
#[derive(Clone)]
pub(crate) struct RsaPrivate {
    /// `d`, `p`, `q`, `dp`, `dq`, `qi`, in that order.
    pub(crate) members: [Vec<u8>; 6],
    #[cfg(gatehouse_rsa)]
    pub(crate) key: rsa::RsaPrivateKey,
}

/// A P-256 private key.
#[derive(Clone)]
pub(crate) struct P256Private {
    pub(crate) d: [u8; 32],
    #[cfg(gatehouse_p256)]
    pub(crate) key: P256SigningKey,
}

/// The names of an RSA private key's members, as in [`RsaPrivate::members`].
pub(crate) const RSA_PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

/// A public key pinned to one `kid` and one algorithm.
#[derive(Clone)]
pub struct PublicKey {
    kid: String,
    alg: Algorithm,
    pub(crate) material: VerifyingMaterial,
    /// Its public JWK as text, made on first use (it names the key in caches on the hot path).
    jwk_text: OnceLock<String>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("kid", &self.kid).field("alg", &self.alg).finish()
    }
}

impl PublicKey {
    fn new(kid: String, alg: Algorithm, material: VerifyingMaterial) -> Self {
        PublicKey { kid, alg, material, jwk_text: OnceLock::new() }
    }

    /// [`PublicKey::to_jwk`] as text, serialised once per key: equal texts, equal keys.
    pub fn jwk_text(&self) -> &str {
        self.jwk_text.get_or_init(|| self.to_jwk().to_string())
    }

    /// The key's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Builds an Ed25519 key from its 32-byte encoding (RFC 8032 §5.1.5); refuses invalid and small-order points.
    pub fn ed25519(kid: &str, x: &[u8]) -> Result<Self, KeyError> {
        PublicKey::ed25519_with(kid, x, true)
    }

    /// [`PublicKey::ed25519`], with or without the fixed-base table (see [`MinusA`]).
    fn ed25519_with(kid: &str, x: &[u8], table: bool) -> Result<Self, KeyError> {
        let bytes: [u8; 32] = x.try_into().map_err(|_| KeyError::Malformed { kid: kid.into(), member: "x" })?;
        let key = EdVerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeyError::Invalid { kid: kid.into(), reason: "x is not a point on Ed25519".into() })?;
        if key.is_weak() {
            return Err(KeyError::Invalid { kid: kid.into(), reason: "small-order point".into() });
        }
        // The point ed25519-dalek decompressed already (decompressing costs a field inversion).
        let minus_a = -key.to_edwards();
        let minus_a =
            if table { MinusA::Lazy(Arc::new(LazyTable::new(minus_a))) } else { MinusA::Point(Box::new(minus_a)) };
        Ok(PublicKey::new(kid.into(), Algorithm::EdDsa, VerifyingMaterial::Ed25519(key, minus_a)))
    }

    /// Builds an RS256 key from its big-endian modulus and exponent: 2048 to 4096 bits, an odd
    /// exponent from 3 to 2^33 − 1 (the `rsa` crate's bound), and no ROCA fingerprint.
    pub fn rsa(kid: &str, n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let n = trim_zeros(n);
        let e = trim_zeros(e);
        let bits = bit_length(n);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(KeyError::RsaSize { kid: kid.into(), bits });
        }
        let exponent = (e.len() <= 5).then(|| e.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)));
        if !exponent.is_some_and(|e| (3..=(1 << 33) - 1).contains(&e) && e % 2 == 1) {
            return Err(KeyError::Invalid {
                kid: kid.into(),
                reason: "the exponent must be odd, 3 ..= 2^33 - 1".into(),
            });
        }
        if n.last().is_none_or(|low| low % 2 == 0) {
            return Err(KeyError::Invalid { kid: kid.into(), reason: "an RSA modulus is odd".into() });
        }
        if has_roca_fingerprint(n) {
            return Err(KeyError::Invalid {
                kid: kid.into(),
                reason: "modulus has the ROCA (CVE-2017-15361) fingerprint".into(),
            });
        }
        Ok(PublicKey::new(kid.into(), Algorithm::Rs256, VerifyingMaterial::Rsa { n: n.to_vec(), e: e.to_vec() }))
    }

    /// Builds an ES256 key from its affine coordinates (32 bytes each, RFC 7518 §6.2.1). Where `p256`
    /// is linked, points that are not on P-256 (invalid-curve attacks) and the identity are refused
    /// here; in the edge Worker, WebCrypto refuses them when it imports the key, and no signature
    /// verifies under it.
    pub fn p256(kid: &str, x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        let x: [u8; 32] = x.try_into().map_err(|_| KeyError::Malformed { kid: kid.into(), member: "x" })?;
        let y: [u8; 32] = y.try_into().map_err(|_| KeyError::Malformed { kid: kid.into(), member: "y" })?;
        #[cfg(gatehouse_p256)]
        p256_point(&x, &y)
            .ok_or_else(|| KeyError::Invalid { kid: kid.into(), reason: "x, y is not a point on P-256".into() })?;
        Ok(PublicKey::new(kid.into(), Algorithm::Es256, VerifyingMaterial::P256 { x, y }))
    }

    /// Parses a public JWK (private members, if any, are ignored).
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<Self, KeyError> {
        let kid = jwk_kid(jwk)?;
        let alg = jwk_alg(jwk, &kid, KeyOp::Verify, None)?;
        PublicKey::from_jwk_as(jwk, &kid, alg)
    }

    /// Parses a public JWK carried in a JWS header (a DPoP proof's `jwk`, RFC 9449 §4.2), which has
    /// no `kid`: `label` stands in for it. `kty`, `crv` (and `alg`, `use`, `key_ops` when present)
    /// must fit `alg`, the algorithm the header names. Private members are not looked at here: the
    /// caller refuses them first. The key is built for one use: an Ed25519 key gets no fixed-base
    /// table (building one costs far more than the one verification it would speed up).
    pub fn from_embedded_jwk(jwk: &Map<String, Value>, label: &str, alg: Algorithm) -> Result<Self, KeyError> {
        // RFC 9864 §2.2 names Ed25519 signatures `Ed25519`, and WebCrypto exports Ed25519 keys
        // with that `alg`: for an EdDSA proof it is the same algorithm.
        let renamed;
        let jwk = if alg == Algorithm::EdDsa && jwk.get("alg").and_then(Value::as_str) == Some("Ed25519") {
            let mut copy = jwk.clone();
            copy.insert("alg".into(), Value::from(Algorithm::EdDsa.name()));
            renamed = copy;
            &renamed
        } else {
            jwk
        };
        // An RSA key without `alg` can only be for the header's algorithm.
        let rsa_default = (alg == Algorithm::Rs256).then_some(alg);
        let found = jwk_alg(jwk, label, KeyOp::Verify, rsa_default)?;
        if found != alg {
            return Err(KeyError::Unsupported {
                kid: label.into(),
                reason: format!("a {} key cannot verify {}", found.name(), alg.name()),
            });
        }
        match alg {
            Algorithm::EdDsa => PublicKey::ed25519_with(label, &member(jwk, label, "x")?, false),
            _ => PublicKey::from_jwk_as(jwk, label, alg),
        }
    }

    /// Parses the public members of a JWK whose algorithm is already decided.
    fn from_jwk_as(jwk: &Map<String, Value>, kid: &str, alg: Algorithm) -> Result<Self, KeyError> {
        match alg {
            Algorithm::EdDsa => PublicKey::ed25519(kid, &member(jwk, kid, "x")?),
            Algorithm::Rs256 => PublicKey::rsa(kid, &member(jwk, kid, "n")?, &member(jwk, kid, "e")?),
            Algorithm::Es256 => PublicKey::p256(kid, &member(jwk, kid, "x")?, &member(jwk, kid, "y")?),
        }
    }

    /// The public JWK: `kty`, `crv`+`x` or `n`+`e`, `kid`, `alg`, `use: "sig"`, and nothing private.
    pub fn to_jwk(&self) -> Value {
        match &self.material {
            VerifyingMaterial::Ed25519(key, _) => json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64::encode(key.to_bytes()),
                "kid": self.kid, "alg": self.alg.name(), "use": "sig",
            }),
            VerifyingMaterial::Rsa { n, e } => json!({
                "kty": "RSA", "n": b64::encode(n), "e": b64::encode(e),
                "kid": self.kid, "alg": self.alg.name(), "use": "sig",
            }),
            VerifyingMaterial::P256 { x, y } => json!({
                "kty": "EC", "crv": "P-256", "x": b64::encode(x), "y": b64::encode(y),
                "kid": self.kid, "alg": self.alg.name(), "use": "sig",
            }),
        }
    }
}

/// A byte string without its leading zero bytes.
fn trim_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// The bit length of a big-endian unsigned integer without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(&top) => bytes.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

/// The P-256 verifying key of affine coordinates, if they are a point on the curve.
#[cfg(gatehouse_p256)]
fn p256_point(x: &[u8; 32], y: &[u8; 32]) -> Option<P256VerifyingKey> {
    let mut sec1 = [0u8; 65];
    sec1[0] = 0x04;
    sec1[1..33].copy_from_slice(x);
    sec1[33..].copy_from_slice(y);
    P256VerifyingKey::from_sec1_bytes(&sec1).ok()
}

impl PublicKey {
    /// The RFC 7638 JWK thumbprint: base64url of SHA-256 over the required members in
    /// lexicographic order without whitespace (the public JWK's members, serialised by serde_json,
    /// whose maps keep their keys sorted).
    pub fn thumbprint(&self) -> String {
        use sha2::Digest as _;
        let jwk = self.to_jwk();
        let required = jwk.get("kty").and_then(Value::as_str).and_then(key_members).unwrap_or_default();
        let canonical: Map<String, Value> =
            required.iter().filter_map(|&name| jwk.get(name).map(|v| (name.to_owned(), v.clone()))).collect();
        b64::encode(sha2::Sha256::digest(Value::Object(canonical).to_string().as_bytes()))
    }
}

/// The members that hold the public key of a key type, in lexicographic order: RFC 8037 §2 (OKP),
/// RFC 7518 §6.2.1 (EC) and §6.3.1 (RSA). They are also exactly the members an RFC 7638 §3.2
/// thumbprint hashes.
fn key_members(kty: &str) -> Option<&'static [&'static str]> {
    match kty {
        "OKP" => Some(&["crv", "kty", "x"]),
        "EC" => Some(&["crv", "kty", "x", "y"]),
        "RSA" => Some(&["e", "kty", "n"]),
        _ => None,
    }
}

/// The members about a key's use that a published JWK keeps (RFC 7517 §4.2, §4.4, §4.5).
const USE_MEMBERS: [&str; 3] = ["alg", "kid", "use"];

/// The JWK to publish for a JWK that may be private: the public members of its key type and
/// `kid`, `alg`, `use`, each only if it is a string, and nothing else. An allow-list, so whatever a
/// private key carries (`d`; RSA's `p`, `q`, `dp`, `dq`, `qi`, `oth`; a member nobody defined) is
/// never copied. `None` for a key type with no public form (`oct`) or one gatehouse does not know.
pub fn public_jwk(jwk: &Value) -> Option<Value> {
    let kty = jwk.get("kty")?.as_str()?;
    let public: Map<String, Value> = key_members(kty)?
        .iter()
        .chain(USE_MEMBERS.iter())
        .filter_map(|&name| match jwk.get(name) {
            Some(Value::String(value)) => Some((name.to_owned(), Value::String(value.clone()))),
            _ => None,
        })
        .collect();
    Some(Value::Object(public))
}

/// The small primes of the ROCA fingerprint test (Nemec et al., CCS 2017, §2.3 and their `roca-detect`).
const ROCA_PRIMES: [u32; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109,
    113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

/// Whether a modulus looks generated by the flawed Infineon library: for every small prime p,
/// n mod p lies in the subgroup generated by 65537. A random modulus fails this for some p.
pub fn has_roca_fingerprint(n: &[u8]) -> bool {
    let bytes = trim_zeros(n);
    ROCA_PRIMES.iter().all(|&p| {
        let residue = bytes.iter().fold(0u32, |r, &b| (r * 256 + u32::from(b)) % p);
        let generator = 65537 % p;
        let mut power = 1u32;
        // The subgroup generated by 65537 mod p has at most p − 1 elements.
        for _ in 0..p {
            if power == residue {
                return true;
            }
            power = power * generator % p;
        }
        false
    })
}

/// Checks a signature over raw bytes with a key, the algorithm named by `alg` having to be the key's.
/// This is the one pure-Rust signature primitive of the verifier; [`KeySet::verify`] calls it. RS256
/// needs the `rsa` crate (native builds) and ES256 the `p256` crate (native and issuer builds):
/// without them it answers `false`, and the Workers ask WebCrypto instead (`web::webcrypto`).
pub fn verify_signature_bytes(key: &PublicKey, alg: &str, message: &[u8], signature: &[u8]) -> bool {
    if key.alg.name() != alg {
        return false;
    }
    match &key.material {
        VerifyingMaterial::Ed25519(public, minus_a) => verify_ed25519(public, minus_a, message, signature),
        VerifyingMaterial::Rsa { n, e } => verify_rs256(n, e, message, signature),
        // Exactly 64 bytes (r || s), each scalar in 1..n; the DER form of other libraries is refused.
        VerifyingMaterial::P256 { x, y } => verify_es256(x, y, message, signature),
    }
}

/// Whether this build verifies `alg` in pure Rust ([`verify_signature_bytes`]): EdDSA always, RS256
/// in native builds, ES256 in native builds and the issuer Worker.
pub fn linked_in_rust(alg: Algorithm) -> bool {
    match alg {
        Algorithm::EdDsa => true,
        Algorithm::Rs256 => cfg!(gatehouse_rsa),
        Algorithm::Es256 => cfg!(gatehouse_p256),
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256 and the one DER DigestInfo encoding (RFC 8017 §8.2.2).
#[cfg(gatehouse_rsa)]
fn verify_rs256(n: &[u8], e: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
    use sha2::Digest as _;
    let Ok(key) = RsaPublicKey::new_with_max_size(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e), MAX_RSA_BITS)
    else {
        return false;
    };
    let digest = sha2::Sha256::digest(message);
    key.verify(Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, signature).is_ok()
}

#[cfg(not(gatehouse_rsa))]
fn verify_rs256(_n: &[u8], _e: &[u8], _message: &[u8], _signature: &[u8]) -> bool {
    false
}

/// ECDSA P-256 with SHA-256, the signature as `r || s` (RFC 7518 §3.4).
#[cfg(gatehouse_p256)]
fn verify_es256(x: &[u8; 32], y: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    let (Some(key), Ok(signature)) = (p256_point(x, y), p256::ecdsa::Signature::from_slice(signature)) else {
        return false;
    };
    key.verify(message, &signature).is_ok()
}

#[cfg(not(gatehouse_p256))]
fn verify_es256(_x: &[u8; 32], _y: &[u8; 32], _message: &[u8], _signature: &[u8]) -> bool {
    false
}

/// Ed25519 verification (RFC 8032 §5.1.7, cofactorless, as ed25519-dalek's `verify`;
/// [`gatehouse_ed25519::verify`] does the arithmetic). Once a long-lived key has a table for −A
/// ([`MinusA::Lazy`]) both products use fixed-base tables: variable-time ones ([`VartimeTable`], 32
/// additions a product; every input is public) for up to [`gatehouse_ed25519::vartime::MAX_TABLES`]
/// busy keys at once, curve25519-dalek's constant-time ones for the others; one-use keys and a key's
/// first uses get ed25519-dalek's variable-base double multiplication. In wasm, per verification, the
/// variable-time tables cost about a sixth less CPU of a whole fresh-token request than the
/// constant-time ones, which were about a quarter faster than the double multiplication. The verdict
/// is ed25519-dalek's on every Wycheproof case, and on random signatures and bit flips in the tests
/// below, every way.
fn verify_ed25519(public: &EdVerifyingKey, minus_a: &MinusA, message: &[u8], signature: &[u8]) -> bool {
    let minus_a = match minus_a {
        MinusA::Lazy(lazy) => match lazy.table() {
            Some(KeyTable::Wide(table)) => Ed25519MinusA::Wide(table),
            Some(KeyTable::Narrow(table)) => Ed25519MinusA::Narrow(table),
            None => Ed25519MinusA::Point(&lazy.point),
        },
        MinusA::Point(point) => Ed25519MinusA::Point(point),
    };
    gatehouse_ed25519::verify(public.as_bytes(), minus_a, message, signature)
}

/// A private key pinned to one `kid` and one algorithm; `Debug` shows only `kid` and `alg`.
#[derive(Clone)]
pub struct PrivateKey {
    public: PublicKey,
    pub(crate) material: SigningMaterial,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kid", &self.public.kid)
            .field("alg", &self.public.alg)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl PrivateKey {
    /// The matching public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Makes a new EdDSA or ES256 key from 32 random bytes, its `kid` the RFC 7638 thumbprint.
    /// (RSA keys are not generated here: that takes seconds in wasm.)
    pub fn generate(alg: Algorithm, random: &[u8; 32]) -> Result<Self, KeyError> {
        let temporary = "new";
        let key = match alg {
            Algorithm::EdDsa => PrivateKey::ed25519(temporary, random)?,
            #[cfg(gatehouse_p256)]
            Algorithm::Es256 => {
                let signing = P256SigningKey::from_slice(random)
                    .map_err(|_| KeyError::Invalid { kid: temporary.into(), reason: "not a P-256 scalar".into() })?;
                let point = signing.verifying_key().to_encoded_point(false);
                let (Some(x), Some(y)) = (point.x(), point.y()) else {
                    return Err(KeyError::Invalid { kid: temporary.into(), reason: "the identity".into() });
                };
                let public = PublicKey::p256(temporary, x, y)?;
                PrivateKey {
                    public,
                    material: SigningMaterial::P256(Box::new(P256Private { d: *random, key: signing })),
                }
            }
            _ => {
                return Err(KeyError::Unsupported {
                    kid: temporary.into(),
                    reason: format!("{} keys are not generated here", alg.name()),
                })
            }
        };
        let kid = key.public.thumbprint();
        Ok(PrivateKey { public: PublicKey::new(kid, key.public.alg, key.public.material), material: key.material })
    }

    /// The private JWK (with `d`) of an EdDSA or ES256 key, for the key store; `None` for RSA.
    pub fn to_private_jwk(&self) -> Option<Value> {
        let mut jwk = self.public.to_jwk();
        let d = match &self.material {
            SigningMaterial::Ed25519(key) => b64::encode(key.seed()),
            SigningMaterial::P256(key) => b64::encode(key.d),
            SigningMaterial::Rsa(_) => return None,
        };
        jwk.as_object_mut()?.insert("d".into(), Value::String(d));
        Some(jwk)
    }

    /// Builds an Ed25519 signing key from its 32-byte seed.
    pub fn ed25519(kid: &str, d: &[u8]) -> Result<Self, KeyError> {
        let seed: [u8; 32] = d.try_into().map_err(|_| KeyError::Malformed { kid: kid.into(), member: "d" })?;
        let key = Ed25519Private::from_seed(seed);
        let public = PublicKey::ed25519(kid, &key.public)?;
        Ok(PrivateKey { public, material: SigningMaterial::Ed25519(Box::new(key)) })
    }

    /// Parses a private JWK, checking that its public and private halves agree: here where the
    /// pure-Rust crate of the algorithm is linked, else (RS256 in every Worker, ES256 in the edge
    /// Worker) when WebCrypto first imports the key, by signing and verifying a test message
    /// (`web::webcrypto`).
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<Self, KeyError> {
        let kid = jwk_kid(jwk)?;
        let alg = jwk_alg(jwk, &kid, KeyOp::Sign, None)?;
        if !jwk.contains_key("d") {
            return Err(KeyError::NotPrivate { kid });
        }
        match alg {
            Algorithm::EdDsa => {
                let key = PrivateKey::ed25519(&kid, &member(jwk, &kid, "d")?)?;
                let x = member(jwk, &kid, "x")?;
                match &key.public.material {
                    VerifyingMaterial::Ed25519(derived, _) if derived.as_bytes().as_slice() == x.as_slice() => Ok(key),
                    _ => Err(KeyError::Invalid { kid, reason: "x does not match d".into() }),
                }
            }
            Algorithm::Rs256 => {
                if jwk.contains_key("oth") {
                    return Err(KeyError::Unsupported { kid, reason: "multi-prime RSA keys are not supported".into() });
                }
                let public = PublicKey::rsa(&kid, &member(jwk, &kid, "n")?, &member(jwk, &kid, "e")?)?;
                let mut members: [Vec<u8>; 6] = Default::default();
                for (slot, name) in members.iter_mut().zip(RSA_PRIVATE_MEMBERS) {
                    *slot = trim_zeros(&member(jwk, &kid, name)?).to_vec();
                    if slot.is_empty() {
                        return Err(KeyError::Malformed { kid, member: name });
                    }
                }
                let private = RsaPrivate {
                    #[cfg(gatehouse_rsa)]
                    key: rsa_private(&public, &members)
                        .map_err(|reason| KeyError::Invalid { kid: kid.clone(), reason })?,
                    members,
                };
                Ok(PrivateKey { public, material: SigningMaterial::Rsa(Box::new(private)) })
            }
            Algorithm::Es256 => {
                let public = PublicKey::p256(&kid, &member(jwk, &kid, "x")?, &member(jwk, &kid, "y")?)?;
                let d: [u8; 32] = member(jwk, &kid, "d")?
                    .try_into()
                    .map_err(|_| KeyError::Invalid { kid: kid.clone(), reason: "d is not a P-256 scalar".into() })?;
                #[cfg(gatehouse_p256)]
                let key = {
                    let key = P256SigningKey::from_slice(&d).map_err(|_| KeyError::Invalid {
                        kid: kid.clone(),
                        reason: "d is not a P-256 scalar".into(),
                    })?;
                    let matches = matches!(&public.material,
                        VerifyingMaterial::P256 { x, y } if p256_point(x, y).as_ref() == Some(key.verifying_key()));
                    if !matches {
                        return Err(KeyError::Invalid { kid, reason: "x, y do not match d".into() });
                    }
                    key
                };
                let private = P256Private {
                    d,
                    #[cfg(gatehouse_p256)]
                    key,
                };
                Ok(PrivateKey { public, material: SigningMaterial::P256(Box::new(private)) })
            }
        }
    }

    /// The private JWK members WebCrypto imports (`d`, and for RSA the CRT members), base64url.
    pub fn private_members(&self) -> Vec<(&'static str, String)> {
        match &self.material {
            SigningMaterial::Ed25519(key) => vec![("d", b64::encode(key.seed()))],
            SigningMaterial::Rsa(key) => {
                RSA_PRIVATE_MEMBERS.iter().zip(key.members.iter()).map(|(name, v)| (*name, b64::encode(v))).collect()
            }
            SigningMaterial::P256(key) => vec![("d", b64::encode(key.d))],
        }
    }
}

/// The `rsa` crate's private key of the members, checked for consistency (p·q = n, d·e ≡ 1).
#[cfg(gatehouse_rsa)]
fn rsa_private(public: &PublicKey, members: &[Vec<u8>; 6]) -> Result<rsa::RsaPrivateKey, String> {
    use rsa::BigUint;
    let VerifyingMaterial::Rsa { n, e } = &public.material else { return Err("not an RSA key".into()) };
    let big = |bytes: &[u8]| BigUint::from_bytes_be(bytes);
    let [d, p, q, ..] = members;
    rsa::RsaPrivateKey::from_components(big(n), big(e), big(d), vec![big(p), big(q)])
        .and_then(|key| key.validate().map(|()| key))
        .map_err(|err| err.to_string())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyOp {
    Sign,
    Verify,
}

fn jwk_kid(jwk: &Map<String, Value>) -> Result<String, KeyError> {
    match jwk.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_LEN => Ok(kid.clone()),
        _ => Err(KeyError::MissingKid),
    }
}

fn str_member<'a>(jwk: &'a Map<String, Value>, kid: &str, name: &'static str) -> Result<Option<&'a str>, KeyError> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(KeyError::Malformed { kid: kid.into(), member: name }),
    }
}

fn member(jwk: &Map<String, Value>, kid: &str, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let malformed = || KeyError::Malformed { kid: kid.into(), member: name };
    let text = str_member(jwk, kid, name)?.ok_or_else(malformed)?;
    b64::decode(text).map_err(|_| malformed())
}

/// Works out the one algorithm of a JWK from `kty`, `crv` and `alg`, and checks `use` and `key_ops`.
/// An RSA key without `alg` is refused unless `rsa_default` says which algorithm it is for.
fn jwk_alg(
    jwk: &Map<String, Value>,
    kid: &str,
    op: KeyOp,
    rsa_default: Option<Algorithm>,
) -> Result<Algorithm, KeyError> {
    let unsupported = |reason: String| KeyError::Unsupported { kid: kid.into(), reason };
    if let Some(key_use) = str_member(jwk, kid, "use")? {
        if key_use != "sig" {
            return Err(KeyError::WrongUse { kid: kid.into() });
        }
    }
    match jwk.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) => {
            let has = |name: &str| ops.iter().any(|o| o.as_str() == Some(name));
            // A signing key must allow "sign" (it is then also published for verification); a
            // verification key must allow "verify", or be a private key listed for "sign".
            let allowed = match op {
                KeyOp::Sign => has("sign"),
                KeyOp::Verify => has("verify") || has("sign"),
            };
            if !allowed {
                return Err(KeyError::WrongUse { kid: kid.into() });
            }
        }
        Some(_) => return Err(KeyError::Malformed { kid: kid.into(), member: "key_ops" }),
    }
    let kty = str_member(jwk, kid, "kty")?.ok_or_else(|| KeyError::Malformed { kid: kid.into(), member: "kty" })?;
    let alg = str_member(jwk, kid, "alg")?;
    let by_kty = match kty {
        "OKP" => match str_member(jwk, kid, "crv")? {
            Some("Ed25519") => Algorithm::EdDsa,
            other => return Err(unsupported(format!("OKP curve {other:?} is not supported"))),
        },
        "EC" => match str_member(jwk, kid, "crv")? {
            Some("P-256") => Algorithm::Es256,
            other => return Err(unsupported(format!("EC curve {other:?} is not supported"))),
        },
        "RSA" => match alg {
            Some("RS256") => Algorithm::Rs256,
            // An RSA key says which of RS*/PS* it is for; without `alg` it would be ambiguous, unless
            // the caller (a trusted issuer accepting only RS256 for RSA) decides.
            None => match rsa_default {
                Some(default) => default,
                None => return Err(unsupported("an RSA key must name its alg".into())),
            },
            Some(other) => return Err(unsupported(format!("alg {other:?} is not supported for RSA"))),
        },
        other => return Err(unsupported(format!("kty {other:?} is not supported"))),
    };
    match alg {
        None => Ok(by_kty),
        Some(name) if Algorithm::from_name(name) == Some(by_kty) => Ok(by_kty),
        Some(name) => Err(unsupported(format!("alg {name:?} does not fit kty {kty:?}"))),
    }
}

/// The configured keys: the first private key signs, every key verifies, each `kid` names exactly one key.
#[derive(Clone, Debug)]
pub struct KeySet {
    signing: Vec<PrivateKey>,
    verifying: Vec<PublicKey>,
}

fn keys_array(text: &str) -> Result<Vec<Map<String, Value>>, KeyError> {
    let set = json::parse_object(text.as_bytes()).map_err(|e| KeyError::NotAKeySet(e.to_string()))?;
    let Some(Value::Array(keys)) = set.get("keys") else {
        return Err(KeyError::NotAKeySet("no \"keys\" array".into()));
    };
    keys.iter()
        .map(|k| match k {
            Value::Object(o) => Ok(o.clone()),
            _ => Err(KeyError::NotAKeySet("a key is not an object".into())),
        })
        .collect()
}

impl KeySet {
    /// Parses the `SIGNING_KEYS` secret: a JWK Set of private keys; the first is the active signing key.
    pub fn from_private_jwks(text: &str) -> Result<Self, KeyError> {
        let keys = keys_array(text)?.iter().map(PrivateKey::from_jwk).collect::<Result<Vec<_>, _>>()?;
        let verifying = keys.iter().map(|k| k.public.clone()).collect();
        KeySet { signing: keys, verifying }.check()
    }

    /// Parses a public JWK Set (verification only). Every key must be usable: one bad key refuses the set.
    pub fn from_public_jwks(text: &str) -> Result<Self, KeyError> {
        let verifying = keys_array(text)?.iter().map(PublicKey::from_jwk).collect::<Result<Vec<_>, _>>()?;
        KeySet { signing: Vec::new(), verifying }.check()
    }

    /// Parses a JWK Set published by another issuer, keeping the keys it can use and skipping the
    /// rest, as such sets often carry encryption keys or algorithms gatehouse does not accept:
    /// - a key with `use` other than `sig`, `key_ops` without `verify`, no `kid`, an algorithm not in
    ///   `allowed`, or unusable material is skipped (with a reason);
    /// - an RSA key without `alg` is taken as RS256 when `allowed` has it (some providers omit `alg`);
    /// - a `kid` that two usable keys share is ambiguous, so neither is kept (RFC 7517 §4.5);
    /// - at most [`MAX_REMOTE_KEYS`] usable keys are kept.
    ///
    /// It is an error only if the text is not a JWK Set or no key is left.
    pub fn from_remote_jwks(text: &str, allowed: &[Algorithm]) -> Result<(Self, Vec<KeyError>), KeyError> {
        let mut skipped = Vec::new();
        let mut keys: Vec<PublicKey> = Vec::new();
        let rsa_default = allowed.contains(&Algorithm::Rs256).then_some(Algorithm::Rs256);
        for jwk in keys_array(text)? {
            if keys.len() >= MAX_REMOTE_KEYS {
                skipped.push(KeyError::NotAKeySet(format!("keys beyond {} are ignored", MAX_REMOTE_KEYS)));
                break;
            }
            let key = jwk_kid(&jwk).and_then(|kid| {
                let alg = jwk_alg(&jwk, &kid, KeyOp::Verify, rsa_default)?;
                if !allowed.contains(&alg) {
                    return Err(KeyError::Unsupported { kid, reason: format!("alg {} is not accepted", alg.name()) });
                }
                PublicKey::from_jwk_as(&jwk, &kid, alg)
            });
            match key {
                Ok(key) => keys.push(key),
                Err(e) => skipped.push(e),
            }
        }
        let mut unique = Vec::with_capacity(keys.len());
        for key in &keys {
            if keys.iter().filter(|k| k.kid == key.kid).count() == 1 {
                unique.push(key.clone());
            } else if !skipped.contains(&KeyError::DuplicateKid(key.kid.clone())) {
                skipped.push(KeyError::DuplicateKid(key.kid.clone()));
            }
        }
        Ok((KeySet::from_public_keys(unique)?, skipped))
    }

    /// Builds a verification-only set from keys already made.
    pub fn from_public_keys(verifying: Vec<PublicKey>) -> Result<Self, KeyError> {
        KeySet { signing: Vec::new(), verifying }.check()
    }

    fn check(self) -> Result<Self, KeyError> {
        if self.verifying.is_empty() {
            return Err(KeyError::Empty);
        }
        for (i, key) in self.verifying.iter().enumerate() {
            if self.verifying.iter().take(i).any(|other| other.kid == key.kid) {
                return Err(KeyError::DuplicateKid(key.kid.clone()));
            }
        }
        Ok(self)
    }

    /// The active signing key, if this set has private keys.
    pub fn signing_key(&self) -> Option<&PrivateKey> {
        self.signing.first()
    }

    /// Every private key, active first (the others are kept for rotation and tests).
    pub fn signing_keys(&self) -> impl Iterator<Item = &PrivateKey> {
        self.signing.iter()
    }

    /// The key a `kid` names, if any.
    pub fn find(&self, kid: &str) -> Option<&PublicKey> {
        self.verifying.iter().find(|k| k.kid == kid)
    }

    /// Every verification key, in configuration order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.verifying
    }

    /// The public JWK Set to publish at `/.well-known/jwks.json`.
    pub fn public_jwks(&self) -> Value {
        json!({ "keys": self.verifying.iter().map(PublicKey::to_jwk).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey as EdSigningKey, Verifier as _};

    /// RFC 8032 §7.1 TEST 1 and TEST 2, and every signature byte for byte ed25519-dalek's, for random
    /// seeds and messages: the runtime-table signer is Ed25519 exactly.
    #[test]
    fn ed25519_signing_is_rfc8032_and_ed25519_dalek() {
        let hex = |s: &str| hex::decode(s).expect("hex");
        for (seed, public, message, signature) in [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ] {
            let key = Ed25519Private::from_seed(hex(seed).try_into().expect("32 bytes"));
            assert_eq!(key.public.to_vec(), hex(public));
            assert_eq!(key.sign(&hex(message)).to_vec(), hex(signature));
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        };
        for round in 0..64 {
            let seed: [u8; 32] = std::array::from_fn(|_| next());
            let message: Vec<u8> = (0..round * 3).map(|_| next()).collect();
            let ours = Ed25519Private::from_seed(seed);
            let dalek = EdSigningKey::from_bytes(&seed);
            assert_eq!(ours.public, dalek.verifying_key().to_bytes(), "round {round}");
            assert_eq!(ours.sign(&message), dalek.sign(&message).to_bytes(), "round {round}");
        }
    }

    /// Every member a published JWK may carry, per key type (the allow-list, spelled out again).
    fn allowed(kty: &str) -> &'static [&'static str] {
        match kty {
            "OKP" => &["kty", "crv", "x", "kid", "alg", "use"],
            "EC" => &["kty", "crv", "x", "y", "kid", "alg", "use"],
            "RSA" => &["kty", "n", "e", "kid", "alg", "use"],
            other => panic!("no allow-list for {other}"),
        }
    }

    /// A JWK with every private and unknown member anyone might put in it.
    fn with_extras(jwk: &Value, extras: &[(&str, Value)]) -> Value {
        let mut jwk = jwk.clone();
        let object = jwk.as_object_mut().expect("object");
        for (name, value) in extras {
            object.insert((*name).to_owned(), value.clone());
        }
        jwk
    }

    const SECRET: &str = "c2VjcmV0";

    fn unknown_members() -> Vec<(&'static str, Value)> {
        vec![
            ("key_ops", json!(["sign"])),
            ("ext", json!(true)),
            ("x5c", json!(["MIIB"])),
            ("private_exponent", json!(SECRET)),
            ("k", json!(SECRET)),
            ("password", json!(SECRET)),
        ]
    }

    #[test]
    fn published_okp_and_ec_keys_keep_only_their_public_members() {
        for alg in [Algorithm::EdDsa, Algorithm::Es256] {
            let key = PrivateKey::generate(alg, &[7; 32]).expect("key");
            let private = with_extras(&key.to_private_jwk().expect("private JWK"), &unknown_members());
            let published = public_jwk(&private).expect("published");
            assert_eq!(published, key.public().to_jwk(), "{alg:?}: exactly the key's own public JWK");
            let kty = published["kty"].as_str().expect("kty");
            for name in published.as_object().expect("object").keys() {
                assert!(allowed(kty).contains(&name.as_str()), "{alg:?} publishes {name}");
            }
            assert!(!published.to_string().contains(SECRET));
            assert!(PublicKey::from_jwk(published.as_object().expect("object")).is_ok());
        }
    }

    #[test]
    fn a_published_rsa_key_never_carries_its_private_members() {
        // Made-up values: the allow-list looks only at member names (the RFC 7520 key with all its CRT
        // members goes through the same function in tests/published_keys.rs).
        let private = json!({
            "kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": "bW9kdWx1cw", "e": "AQAB",
            "d": SECRET, "p": SECRET, "q": SECRET, "dp": SECRET, "dq": SECRET, "qi": SECRET,
            "oth": [{ "r": SECRET, "d": SECRET, "t": SECRET }],
        });
        let published = public_jwk(&with_extras(&private, &unknown_members())).expect("published");
        assert_eq!(
            published,
            json!({ "kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": "bW9kdWx1cw", "e": "AQAB" })
        );
    }

    #[test]
    fn a_key_without_a_public_form_is_not_published() {
        assert_eq!(public_jwk(&json!({ "kty": "oct", "k": SECRET, "kid": "h" })), None);
        assert_eq!(public_jwk(&json!({ "kty": "unknown", "x": "AA", "kid": "u" })), None);
        assert_eq!(public_jwk(&json!({ "crv": "Ed25519", "x": "AA", "d": SECRET })), None, "no kty");
        assert_eq!(public_jwk(&json!({ "kty": ["OKP"], "x": "AA" })), None, "kty not a string");
        assert_eq!(public_jwk(&json!("OKP")), None, "not an object");
        // A member of the wrong JSON type is dropped, not copied.
        let odd = public_jwk(&json!({ "kty": "OKP", "crv": "Ed25519", "x": { "d": SECRET }, "kid": 5 })).expect("jwk");
        assert_eq!(odd, json!({ "kty": "OKP", "crv": "Ed25519" }));
    }

    /// The check gives ed25519-dalek's verdict, with either kind of table and without: on valid
    /// signatures, on every single bit flip of signature and message, on S + L (non-canonical), and
    /// on random bytes.
    #[test]
    fn ed25519_verdicts_match_ed25519_dalek() {
        for seed in 0u8..8 {
            let signing = EdSigningKey::from_bytes(&[seed.wrapping_mul(31).wrapping_add(1); 32]);
            let (public, one_use) = (
                PublicKey::ed25519("k", signing.verifying_key().as_bytes()).expect("key"),
                PublicKey::ed25519_with("k", signing.verifying_key().as_bytes(), false).expect("key"),
            );
            let VerifyingMaterial::Ed25519(key, table) = &public.material else { panic!("not Ed25519") };
            let VerifyingMaterial::Ed25519(_, point) = &one_use.material else { panic!("not Ed25519") };
            let (MinusA::Lazy(lazy), MinusA::Point(_)) = (table, point) else { panic!("a lazy table and a point") };
            assert!(lazy.table.get().is_none(), "no table before its first use");
            // And a key with each kind of table from its first use.
            let [wide, narrow] = with_each_table(&lazy.point);
            for minus_a in [table, point, &wide, &narrow] {
                let message: Vec<u8> = (0..(seed as usize * 37 + 5)).map(|i| (i * 7 + seed as usize) as u8).collect();
                let signature = signing.sign(&message).to_bytes();
                let dalek =
                    |m: &[u8], sig: &[u8; 64]| key.verify(m, &ed25519_dalek::Signature::from_bytes(sig)).is_ok();
                assert!(verify_ed25519(key, minus_a, &message, &signature));
                for bit in 0..512 {
                    let mut sig = signature;
                    sig[bit / 8] ^= 1 << (bit % 8);
                    assert_eq!(
                        verify_ed25519(key, minus_a, &message, &sig),
                        dalek(&message, &sig),
                        "seed {seed} bit {bit}"
                    );
                }
                for bit in 0..message.len() * 8 {
                    let mut m = message.clone();
                    m[bit / 8] ^= 1 << (bit % 8);
                    assert!(!verify_ed25519(key, minus_a, &m, &signature));
                    assert!(!dalek(&m, &signature));
                }
                // S + L encodes the same scalar non-canonically: both refuse it.
                // L = 2^252 + 27742317777372353535851937790883648493 (RFC 8032 §5.1), little-endian.
                let mut l = [0u8; 32];
                l[..16].copy_from_slice(&[
                    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                ]);
                l[31] = 0x10;
                let mut sig = signature;
                let mut carry = 0u16;
                for i in 0..32 {
                    let sum = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
                    sig[32 + i] = sum as u8;
                    carry = sum >> 8;
                }
                assert!(!verify_ed25519(key, minus_a, &message, &sig));
                assert!(!dalek(&message, &sig));
                // Wrong lengths.
                assert!(!verify_ed25519(key, minus_a, &message, &signature[..63]));
                assert!(!verify_ed25519(key, minus_a, &message, &[signature.as_slice(), &[0]].concat()));
            }
            // The long-lived key checked its first signatures (the valid one, the first bit flips)
            // without its table and the rest with it: both paths gave dalek's verdicts above.
            assert!(lazy.table.get().is_some(), "a busy key has its table");
        }
    }

    /// −A with each kind of table from its first use: the variable-time one, and the constant-time
    /// one keys get while the isolate holds its share of the former.
    fn with_each_table(point: &EdwardsPoint) -> [MinusA; 2] {
        let forced = |kind: KeyTable| {
            let forced = LazyTable::new(*point);
            assert!(forced.table.set(kind).is_ok());
            MinusA::Lazy(Arc::new(forced))
        };
        [
            forced(KeyTable::Wide(VartimeTable::create(point))),
            forced(KeyTable::Narrow(Box::new(EdwardsBasepointTable::create(point)))),
        ]
    }

    /// Every case of Wycheproof's Ed25519 file with either kind of table (tests/vectors.rs runs it
    /// with keys that never get one): non-canonical and small-order R, S ≥ L, truncations.
    #[test]
    fn wycheproof_ed25519_with_either_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/wycheproof/ed25519_test.json");
        let data: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).expect("json");
        let (mut valid, mut invalid) = (0, 0);
        for group in data["testGroups"].as_array().expect("groups") {
            let x = b64::decode(group["publicKeyJwk"]["x"].as_str().expect("x")).expect("base64url");
            let public = PublicKey::ed25519("w", &x).expect("every key of the file loads");
            let VerifyingMaterial::Ed25519(key, MinusA::Lazy(lazy)) = &public.material else { panic!("not lazy") };
            for minus_a in with_each_table(&lazy.point) {
                for case in group["tests"].as_array().expect("tests") {
                    let hex = |name: &str| hex::decode(case[name].as_str().expect(name)).expect("hex");
                    let expected = match case["result"].as_str() {
                        Some("valid") => true,
                        Some("invalid") => false,
                        other => panic!("unexpected result {other:?}"),
                    };
                    let what = format!("tcId {} ({})", case["tcId"], case["comment"]);
                    assert_eq!(verify_ed25519(key, &minus_a, &hex("msg"), &hex("sig")), expected, "{what}");
                    if expected {
                        valid += 1;
                    } else {
                        invalid += 1;
                    }
                }
            }
        }
        assert_eq!(valid + invalid, 2 * data["numberOfTests"].as_u64().expect("count"), "every case, twice");
        assert!(valid > 100 && invalid > 100, "{valid} valid, {invalid} invalid");
    }

    /// A long-lived key's table is built on its `TABLE_AFTER`th verification, not at load (a cold
    /// start's first answer does not pay for it), and clones of the key share it.
    #[test]
    fn a_key_builds_its_table_when_busy() {
        let signing = EdSigningKey::from_bytes(&[7; 32]);
        let public = PublicKey::ed25519("k", signing.verifying_key().as_bytes()).expect("key");
        let copy = public.clone();
        let VerifyingMaterial::Ed25519(key, minus_a) = &public.material else { panic!("not Ed25519") };
        let MinusA::Lazy(lazy) = minus_a else { panic!("not lazy") };
        let VerifyingMaterial::Ed25519(_, copy_minus_a) = &copy.material else { panic!("not Ed25519") };
        let signature = signing.sign(b"m").to_bytes();
        for use_ in 1..TABLE_AFTER {
            let by = if use_ % 2 == 0 { minus_a } else { copy_minus_a };
            assert!(verify_ed25519(key, by, b"m", &signature));
            assert!(!verify_ed25519(key, by, b"n", &signature));
            assert!(lazy.table.get().is_none() || use_ * 2 >= TABLE_AFTER, "use {use_}");
        }
        assert!(lazy.table.get().is_some(), "built on the {TABLE_AFTER}th use, by either clone");
        assert!(verify_ed25519(key, minus_a, b"m", &signature));
        assert!(!verify_ed25519(key, minus_a, b"n", &signature));
    }
}
