//! Keys: JWK parsing (RFC 7517, RFC 8037), the key set that pins each `kid` to one algorithm, and JWKS output.

use super::b64;
use super::json;
use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::BasepointTable as _;
use ed25519_dalek::{SigningKey as EdSigningKey, VerifyingKey as EdVerifyingKey};
use p256::ecdsa::{SigningKey as P256SigningKey, VerifyingKey as P256VerifyingKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Map, Value};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// The smallest RSA modulus accepted, in bits (NIST SP 800-57: 2048 for use beyond 2030 is the floor).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits: bigger keys only cost verification time.
pub const MAX_RSA_BITS: usize = 4096;
/// The longest `kid` accepted.
pub const MAX_KID_LEN: usize = 128;

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

/// Public key material for one algorithm.
#[derive(Clone)]
pub(crate) enum VerifyingMaterial {
    /// The key, and −A in the form its verifications use.
    Ed25519(EdVerifyingKey, MinusA),
    Rsa(RsaPublicKey),
    P256(P256VerifyingKey),
}

/// −A, the negated Ed25519 public point, as verification multiplies it.
#[derive(Clone)]
pub(crate) enum MinusA {
    /// A fixed-base table, for long-lived keys: a quarter faster per verification, but a few
    /// milliseconds to build (once, at load).
    Table(Arc<EdwardsBasepointTable>),
    /// The point alone, for keys used once (a DPoP proof's own `jwk`): a variable-base double
    /// multiplication per verification, nothing to build.
    Point(Box<EdwardsPoint>),
}

/// Private key material for one algorithm. Its `Debug` never shows the key.
#[derive(Clone)]
pub(crate) enum SigningMaterial {
    Ed25519(Box<EdSigningKey>),
    Rsa(Box<RsaPrivateKey>),
    P256(Box<P256SigningKey>),
}

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
        let minus_a = -CompressedEdwardsY(bytes)
            .decompress()
            .ok_or_else(|| KeyError::Invalid { kid: kid.into(), reason: "x is not a point on Ed25519".into() })?;
        let minus_a = if table {
            MinusA::Table(Arc::new(EdwardsBasepointTable::create(&minus_a)))
        } else {
            MinusA::Point(Box::new(minus_a))
        };
        Ok(PublicKey::new(kid.into(), Algorithm::EdDsa, VerifyingMaterial::Ed25519(key, minus_a)))
    }

    /// Builds an RS256 key from its big-endian modulus and exponent, enforcing the size limits.
    pub fn rsa(kid: &str, n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let n = BigUint::from_bytes_be(n);
        let bits = n.bits();
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(KeyError::RsaSize { kid: kid.into(), bits });
        }
        if has_roca_fingerprint(&n) {
            return Err(KeyError::Invalid {
                kid: kid.into(),
                reason: "modulus has the ROCA (CVE-2017-15361) fingerprint".into(),
            });
        }
        let key = RsaPublicKey::new_with_max_size(n, BigUint::from_bytes_be(e), MAX_RSA_BITS)
            .map_err(|err| KeyError::Invalid { kid: kid.into(), reason: err.to_string() })?;
        Ok(PublicKey::new(kid.into(), Algorithm::Rs256, VerifyingMaterial::Rsa(key)))
    }

    /// Builds an ES256 key from its affine coordinates (32 bytes each, RFC 7518 §6.2.1); refuses
    /// points that are not on P-256 (invalid-curve attacks) and the identity.
    pub fn p256(kid: &str, x: &[u8], y: &[u8]) -> Result<Self, KeyError> {
        if x.len() != 32 {
            return Err(KeyError::Malformed { kid: kid.into(), member: "x" });
        }
        if y.len() != 32 {
            return Err(KeyError::Malformed { kid: kid.into(), member: "y" });
        }
        let mut sec1 = Vec::with_capacity(65);
        sec1.push(0x04);
        sec1.extend_from_slice(x);
        sec1.extend_from_slice(y);
        let key = P256VerifyingKey::from_sec1_bytes(&sec1)
            .map_err(|_| KeyError::Invalid { kid: kid.into(), reason: "x, y is not a point on P-256".into() })?;
        Ok(PublicKey::new(kid.into(), Algorithm::Es256, VerifyingMaterial::P256(key)))
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
            VerifyingMaterial::Rsa(key) => json!({
                "kty": "RSA", "n": b64::encode(key.n().to_bytes_be()), "e": b64::encode(key.e().to_bytes_be()),
                "kid": self.kid, "alg": self.alg.name(), "use": "sig",
            }),
            VerifyingMaterial::P256(key) => {
                let point = key.to_encoded_point(false);
                let (x, y) = (point.x().map(b64::encode), point.y().map(b64::encode));
                json!({
                    "kty": "EC", "crv": "P-256", "x": x.unwrap_or_default(), "y": y.unwrap_or_default(),
                    "kid": self.kid, "alg": self.alg.name(), "use": "sig",
                })
            }
        }
    }
}

impl PublicKey {
    /// The RFC 7638 JWK thumbprint: base64url of SHA-256 over the required members in
    /// lexicographic order without whitespace (the public JWK's members, serialised by serde_json,
    /// whose maps keep their keys sorted).
    pub fn thumbprint(&self) -> String {
        use sha2::Digest as _;
        let required: &[&str] = match &self.material {
            VerifyingMaterial::Ed25519(..) => &["crv", "kty", "x"],
            VerifyingMaterial::Rsa(_) => &["e", "kty", "n"],
            VerifyingMaterial::P256(_) => &["crv", "kty", "x", "y"],
        };
        let jwk = self.to_jwk();
        let canonical: Map<String, Value> =
            required.iter().filter_map(|&name| jwk.get(name).map(|v| (name.to_owned(), v.clone()))).collect();
        b64::encode(sha2::Sha256::digest(Value::Object(canonical).to_string().as_bytes()))
    }
}

/// The small primes of the ROCA fingerprint test (Nemec et al., CCS 2017, §2.3 and their `roca-detect`).
const ROCA_PRIMES: [u32; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109,
    113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

/// Whether a modulus looks generated by the flawed Infineon library: for every small prime p,
/// n mod p lies in the subgroup generated by 65537. A random modulus fails this for some p.
pub fn has_roca_fingerprint(n: &BigUint) -> bool {
    let bytes = n.to_bytes_be();
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
/// This is the one signature primitive of the verifier; [`KeySet::verify`] calls it.
pub fn verify_signature_bytes(key: &PublicKey, alg: &str, message: &[u8], signature: &[u8]) -> bool {
    use jwt_compact::alg::{Es256, Rsa, RsaSignature};
    use jwt_compact::{Algorithm as _, AlgorithmSignature as _};
    if key.alg.name() != alg {
        return false;
    }
    match &key.material {
        VerifyingMaterial::Ed25519(public, minus_a) => verify_ed25519(public, minus_a, message, signature),
        VerifyingMaterial::Rsa(public) => RsaSignature::try_from_slice(signature)
            .is_ok_and(|sig| Rsa::rs256().verify_signature(&sig, public, message)),
        // Exactly 64 bytes (r || s), each scalar in 1..n; the DER form of other libraries is refused.
        VerifyingMaterial::P256(public) => <Es256 as jwt_compact::Algorithm>::Signature::try_from_slice(signature)
            .is_ok_and(|sig| Es256.verify_signature(&sig, public, message)),
    }
}

/// Ed25519 verification (RFC 8032 §5.1.7, cofactorless, as ed25519-dalek's `verify`): `s` must be
/// canonical (S < L, so signatures are not malleable), k = SHA-512(R ‖ A ‖ M), and [s]B − [k]A must
/// encode to exactly the bytes of R. With a table for −A (keys loaded once) both products use
/// fixed-base tables, about a quarter faster in wasm than ed25519-dalek's variable-base double
/// multiplication, which one-use keys get. The verdict is ed25519-dalek's on every Wycheproof case,
/// and on random signatures in the tests below, either way.
fn verify_ed25519(public: &EdVerifyingKey, minus_a: &MinusA, message: &[u8], signature: &[u8]) -> bool {
    use sha2::Digest as _;
    let Ok(signature) = <&[u8; 64]>::try_from(signature) else { return false };
    let (r, s) = signature.split_at(32);
    let Some(s) = s.try_into().ok().and_then(|s| Option::<Scalar>::from(Scalar::from_canonical_bytes(s))) else {
        return false;
    };
    let mut h = sha2::Sha512::new();
    h.update(r);
    h.update(public.as_bytes());
    h.update(message);
    let k = Scalar::from_hash(h);
    let expected = match minus_a {
        MinusA::Table(table) => ED25519_BASEPOINT_TABLE * &s + table.as_ref() * &k,
        MinusA::Point(point) => EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, point, &s),
    };
    expected.compress().as_bytes() == r
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
            Algorithm::Es256 => {
                let signing = P256SigningKey::from_slice(random)
                    .map_err(|_| KeyError::Invalid { kid: temporary.into(), reason: "not a P-256 scalar".into() })?;
                let material = VerifyingMaterial::P256(*signing.verifying_key());
                let public = PublicKey::new(temporary.into(), Algorithm::Es256, material);
                PrivateKey { public, material: SigningMaterial::P256(Box::new(signing)) }
            }
            Algorithm::Rs256 => {
                return Err(KeyError::Unsupported {
                    kid: temporary.into(),
                    reason: "RSA keys are not generated".into(),
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
            SigningMaterial::Ed25519(key) => b64::encode(key.to_bytes()),
            SigningMaterial::P256(key) => b64::encode(key.to_bytes()),
            SigningMaterial::Rsa(_) => return None,
        };
        jwk.as_object_mut()?.insert("d".into(), Value::String(d));
        Some(jwk)
    }

    /// Builds an Ed25519 signing key from its 32-byte seed.
    pub fn ed25519(kid: &str, d: &[u8]) -> Result<Self, KeyError> {
        let seed: [u8; 32] = d.try_into().map_err(|_| KeyError::Malformed { kid: kid.into(), member: "d" })?;
        let key = EdSigningKey::from_bytes(&seed);
        let public = PublicKey::ed25519(kid, &key.verifying_key().to_bytes())?;
        Ok(PrivateKey { public, material: SigningMaterial::Ed25519(Box::new(key)) })
    }

    /// Parses a private JWK, checking that its public and private halves agree.
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
                let VerifyingMaterial::Rsa(rsa_public) = &public.material else {
                    return Err(KeyError::Invalid { kid, reason: "not an RSA key".into() });
                };
                let big = |name| member(jwk, &kid, name).map(|bytes| BigUint::from_bytes_be(&bytes));
                let private = RsaPrivateKey::from_components(
                    rsa_public.n().clone(),
                    rsa_public.e().clone(),
                    big("d")?,
                    vec![big("p")?, big("q")?],
                )
                .and_then(|key| key.validate().map(|()| key))
                .map_err(|err| KeyError::Invalid { kid: kid.clone(), reason: err.to_string() })?;
                Ok(PrivateKey { public, material: SigningMaterial::Rsa(Box::new(private)) })
            }
            Algorithm::Es256 => {
                let public = PublicKey::p256(&kid, &member(jwk, &kid, "x")?, &member(jwk, &kid, "y")?)?;
                let d = member(jwk, &kid, "d")?;
                let key = P256SigningKey::from_slice(&d)
                    .ok()
                    .filter(|_| d.len() == 32)
                    .ok_or_else(|| KeyError::Invalid { kid: kid.clone(), reason: "d is not a P-256 scalar".into() })?;
                match &public.material {
                    VerifyingMaterial::P256(given) if given == key.verifying_key() => {
                        Ok(PrivateKey { public, material: SigningMaterial::P256(Box::new(key)) })
                    }
                    _ => Err(KeyError::Invalid { kid, reason: "x, y do not match d".into() }),
                }
            }
        }
    }
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
    /// - at most [`super::remote::MAX_REMOTE_KEYS`] usable keys are kept.
    ///
    /// It is an error only if the text is not a JWK Set or no key is left.
    pub fn from_remote_jwks(text: &str, allowed: &[Algorithm]) -> Result<(Self, Vec<KeyError>), KeyError> {
        let mut skipped = Vec::new();
        let mut keys: Vec<PublicKey> = Vec::new();
        let rsa_default = allowed.contains(&Algorithm::Rs256).then_some(Algorithm::Rs256);
        for jwk in keys_array(text)? {
            if keys.len() >= super::remote::MAX_REMOTE_KEYS {
                skipped
                    .push(KeyError::NotAKeySet(format!("keys beyond {} are ignored", super::remote::MAX_REMOTE_KEYS)));
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
    use ed25519_dalek::{Signer as _, Verifier as _};

    /// The check gives ed25519-dalek's verdict, with and without the table: on valid signatures, on every single bit
    /// flip of signature and message, on S + L (non-canonical), and on random bytes.
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
            assert!(matches!((table, point), (MinusA::Table(_), MinusA::Point(_))));
            for minus_a in [table, point] {
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
        }
    }
}
