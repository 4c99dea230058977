//! Password hashing with argon2id (RFC 9106), parameters as named constants, and the dummy hash
//! checked for unknown accounts so a login takes the same time whether or not the email exists.
//! Also the Workers Free plan's fallback, PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2, `PASSWORD_HASH=pbkdf2`,
//! docs/DEPLOY.md "Plans"): its hashes in PHC form and their comparison are here, pure; the
//! derivation itself runs in the runtime's WebCrypto (`web::webcrypto::pbkdf2_sha256`) before the
//! account core is called, and [`pbkdf2_sha256`] is the reference the native tests check it by.

#[cfg(feature = "issuer")]
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
#[cfg(feature = "issuer")]
use argon2::{Algorithm, Argon2, Params, Version};
use std::fmt;

/// Default memory cost in KiB: OWASP's argon2id minimum row (m = 19 MiB, t = 2, p = 1).
pub const DEFAULT_M_KIB: u32 = 19_456;
/// Default passes.
pub const DEFAULT_T: u32 = 2;
/// Default lanes (a Worker has one thread).
pub const DEFAULT_P: u32 = 1;
/// The least memory accepted, KiB (OWASP's lowest row: 7 MiB with t = 5).
pub const MIN_M_KIB: u32 = 7_168;
/// The least m × t accepted (OWASP's rows are equivalent at about this product).
pub const MIN_M_T_PRODUCT: u64 = 35_840;
/// The most memory accepted, KiB: a Worker has 128 MiB in all.
pub const MAX_M_KIB: u32 = 65_536;
/// The shortest password accepted, in characters (API.md).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in characters (API.md).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// argon2id cost parameters that are within OWASP's recommendations; invalid ones cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    m_kib: u32,
    t: u32,
    p: u32,
}

/// Why parameters or a hash were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordError {
    /// The parameters are below OWASP's minimum or above what a Worker can afford.
    WeakParams(String),
    /// The hashing primitive failed (the server's fault).
    Hash(String),
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordError::WeakParams(why) => write!(f, "argon2id parameters refused: {why}"),
            PasswordError::Hash(why) => write!(f, "argon2id failed: {why}"),
        }
    }
}

impl Default for PasswordParams {
    fn default() -> Self {
        PasswordParams { m_kib: DEFAULT_M_KIB, t: DEFAULT_T, p: DEFAULT_P }
    }
}

impl PasswordParams {
    /// Checks parameters against OWASP's argon2id recommendations and the Worker's memory.
    pub fn new(m_kib: u32, t: u32, p: u32) -> Result<Self, PasswordError> {
        if !(MIN_M_KIB..=MAX_M_KIB).contains(&m_kib) {
            return Err(PasswordError::WeakParams(format!("memory must be {MIN_M_KIB}..={MAX_M_KIB} KiB")));
        }
        if !(1..=10).contains(&t) || !(1..=4).contains(&p) {
            return Err(PasswordError::WeakParams("t must be 1..=10 and p 1..=4".into()));
        }
        if u64::from(m_kib) * u64::from(t) < MIN_M_T_PRODUCT {
            return Err(PasswordError::WeakParams(format!("m × t must be at least {MIN_M_T_PRODUCT}")));
        }
        Ok(PasswordParams { m_kib, t, p })
    }

    /// Memory in KiB.
    pub fn m_kib(&self) -> u32 {
        self.m_kib
    }

    /// Passes.
    pub fn t(&self) -> u32 {
        self.t
    }

    /// Lanes.
    pub fn p(&self) -> u32 {
        self.p
    }

    #[cfg(feature = "issuer")]
    fn hasher(&self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.m_kib, self.t, self.p, None).map_err(|e| PasswordError::Hash(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Whether a password's length is acceptable (8 to 256 characters).
pub fn acceptable(password: &str) -> bool {
    (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&password.chars().count())
}

#[cfg(feature = "issuer")]
/// Hashes a password with a 16-byte random salt into a PHC string (`$argon2id$v=19$m=…`).
pub fn hash(password: &str, salt: &[u8; 16], params: &PasswordParams) -> Result<String, PasswordError> {
    let salt = SaltString::encode_b64(salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let hash =
        params.hasher()?.hash_password(password.as_bytes(), &salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

#[cfg(feature = "issuer")]
/// Checks a password against a PHC string, with the parameters the string records.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

#[cfg(feature = "issuer")]
/// Whether a stored hash was made with other parameters than `params` (so it is rehashed on login).
pub fn needs_rehash(phc: &str, params: &PasswordParams) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return true };
    let Ok(stored) = Params::try_from(&parsed) else { return true };
    parsed.algorithm.as_str() != "argon2id"
        || (stored.m_cost(), stored.t_cost(), stored.p_cost()) != (params.m_kib, params.t, params.p)
}

#[cfg(feature = "issuer")]
/// The hash that unknown accounts are checked against: same parameters, so the same cost.
pub fn dummy_hash(params: &PasswordParams) -> Result<String, PasswordError> {
    hash("gatehouse: no such account", &[0x5a; 16], params)
}

/// PBKDF2-HMAC-SHA-256 iterations of the fallback: the most Cloudflare's runtime allows (it refuses
/// more: workerd issue 1346), a sixth of OWASP's 600,000. The local workerd of `wrangler dev` does
/// not enforce the cap, so hashes that ask for more are refused here, as production would.
pub const PBKDF2_ITERATIONS: u32 = 100_000;

/// The scheme of new password hashes (`PASSWORD_HASH`). Stored hashes are always checked by their
/// own scheme, whatever this says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scheme {
    /// argon2id with [`PasswordParams`] (the default; needs Workers Paid's CPU time).
    #[default]
    Argon2id,
    /// PBKDF2-HMAC-SHA-256 with [`PBKDF2_ITERATIONS`], derived by WebCrypto (the Free plan's fallback).
    Pbkdf2,
}

/// A PBKDF2-HMAC-SHA-256 hash in the PHC string format: `$pbkdf2-sha256$i=<iterations>,l=32$<salt>$<hash>`,
/// salt and hash in unpadded standard base64 (the format of RustCrypto's `pbkdf2` and passlib).
#[derive(Clone, PartialEq, Eq)]
pub struct Pbkdf2Hash {
    /// The iteration count, 1 ..= [`PBKDF2_ITERATIONS`].
    pub iterations: u32,
    /// The salt (16 random bytes for the hashes gatehouse makes).
    pub salt: Vec<u8>,
    /// The 32-byte derived key.
    pub hash: [u8; 32],
}

impl std::fmt::Debug for Pbkdf2Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pbkdf2Hash").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

const PBKDF2_PREFIX: &str = "$pbkdf2-sha256$";

impl Pbkdf2Hash {
    /// Parses a PHC string, if it is a PBKDF2-HMAC-SHA-256 hash this runtime can check.
    pub fn parse(phc: &str) -> Option<Self> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
        let rest = phc.strip_prefix(PBKDF2_PREFIX)?;
        let mut parts = rest.split('$');
        let (params, salt, hash) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let mut iterations = None;
        for param in params.split(',') {
            match param.split_once('=')? {
                ("i", n) => iterations = n.parse::<u32>().ok(),
                ("l", "32") => {}
                _ => return None,
            }
        }
        let iterations = iterations.filter(|n| (1..=PBKDF2_ITERATIONS).contains(n))?;
        let salt = b64.decode(salt).ok().filter(|s| !s.is_empty() && s.len() <= 64)?;
        let hash = b64.decode(hash).ok()?.try_into().ok()?;
        Some(Pbkdf2Hash { iterations, salt, hash })
    }

    /// The PHC string.
    pub fn to_phc(&self) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
        format!("{PBKDF2_PREFIX}i={},l=32${}${}", self.iterations, b64.encode(&self.salt), b64.encode(self.hash))
    }

    /// Whether a key derived from a password with this hash's salt and iterations is this hash
    /// (compared in constant time).
    pub fn matches(&self, derived: &[u8; 32]) -> bool {
        use subtle::ConstantTimeEq;
        self.hash.ct_eq(derived).into()
    }
}

/// The PBKDF2 hash unknown accounts are checked against under `PASSWORD_HASH=pbkdf2`: the same
/// iterations, so the same cost, and a hash no derivation gives in practice (all zero).
pub fn dummy_pbkdf2() -> Pbkdf2Hash {
    Pbkdf2Hash { iterations: PBKDF2_ITERATIONS, salt: vec![0x5a; 16], hash: [0; 32] }
}

/// PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2), the first 32-byte block: the reference in Rust. The Workers
/// derive with WebCrypto, which is several times faster than this compiled to wasm; the native tests
/// check both against RFC 7914 §11's vectors.
pub fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    use hmac::{Mac, SimpleHmac};
    type HmacSha256 = SimpleHmac<sha2::Sha256>;
    let Ok(keyed) = HmacSha256::new_from_slice(password) else { return [0; 32] };
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut t = u;
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (t, u) in t.iter_mut().zip(u.iter()) {
            *t ^= u;
        }
    }
    t
}

/// The default `HIBP_RANGE_URL`: Have I Been Pwned's k-anonymity range API (the first five hex
/// digits of a password's SHA-1 are appended).
pub const HIBP_DEFAULT_URL: &str = "https://api.pwnedpasswords.com/range/";

/// The k-anonymity halves of a password for the range API: the first five upper-case hex digits
/// of its SHA-1 (sent) and the other 35 (compared here, never sent).
#[cfg(feature = "issuer")]
pub fn breach_range(password: &str) -> (String, String) {
    use sha1::{Digest, Sha1};
    let hex: String = Sha1::digest(password.as_bytes()).iter().map(|b| format!("{b:02X}")).collect();
    let (prefix, suffix) = hex.split_at(5);
    (prefix.to_owned(), suffix.to_owned())
}

/// Whether a range answer (`SUFFIX:COUNT` lines) lists `suffix` with a count above zero (the
/// padding lines of `Add-Padding: true` have count 0).
pub fn breach_listed(answer: &str, suffix: &str) -> bool {
    answer.lines().any(|line| {
        line.trim().split_once(':').is_some_and(|(s, count)| {
            s.trim().eq_ignore_ascii_case(suffix) && count.trim().parse::<u64>().is_ok_and(|n| n > 0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "issuer")]
    /// RFC 9106 §5.3 (Argon2id test vector): password 32 × 0x01, salt 16 × 0x02, secret 8 × 0x03,
    /// associated data 12 × 0x04, m = 32 KiB, t = 3, p = 4, 32-byte tag.
    #[test]
    fn rfc9106_argon2id_known_answer() {
        let params = argon2::ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .output_len(32)
            .data(argon2::AssociatedData::new(&[4; 12]).unwrap())
            .build()
            .unwrap();
        let argon = Argon2::new_with_secret(&[3; 8], Algorithm::Argon2id, Version::V0x13, params).unwrap();
        let mut out = [0u8; 32];
        argon.hash_password_into(&[1; 32], &[2; 16], &mut out).unwrap();
        assert_eq!(hex::encode(out), "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659");
    }

    #[test]
    fn params_below_owasp_are_unrepresentable() {
        assert!(PasswordParams::new(19_456, 2, 1).is_ok());
        assert!(PasswordParams::new(12_288, 3, 1).is_ok());
        assert!(PasswordParams::new(7_168, 5, 1).is_ok());
        assert!(PasswordParams::new(47_104, 1, 1).is_ok());
        assert!(PasswordParams::new(19_456, 1, 1).is_err(), "m × t too small");
        assert!(PasswordParams::new(4_096, 10, 1).is_err(), "too little memory");
        assert!(PasswordParams::new(131_072, 2, 1).is_err(), "more than a Worker has");
        assert!(PasswordParams::new(19_456, 0, 1).is_err());
        assert!(PasswordParams::new(19_456, 2, 0).is_err());
    }

    #[cfg(feature = "issuer")]
    #[test]
    fn hash_verify_and_rehash() {
        let params = PasswordParams::new(MIN_M_KIB, 5, 1).unwrap();
        let phc = hash("correct horse", &[1; 16], &params).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"));
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct horsf", &phc));
        assert!(!verify("correct horse", "not a phc string"));
        assert!(!needs_rehash(&phc, &params));
        assert!(needs_rehash(&phc, &PasswordParams::default()));
        assert!(!verify("correct horse", &dummy_hash(&params).unwrap()));
    }

    /// RFC 7914 §11, the PBKDF2-HMAC-SHA256 test vectors (the first 32 of their 64 bytes: the first
    /// block, which is all a 32-byte derivation is).
    #[test]
    fn pbkdf2_sha256_rfc7914_vectors() {
        assert_eq!(
            hex::encode(pbkdf2_sha256(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
        assert_eq!(
            hex::encode(pbkdf2_sha256(b"Password", b"NaCl", 80_000)),
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
        );
    }

    #[test]
    fn pbkdf2_phc_round_trip_and_refusals() {
        let hash = Pbkdf2Hash { iterations: 1_000, salt: vec![1; 16], hash: pbkdf2_sha256(b"pw", &[1; 16], 1_000) };
        let phc = hash.to_phc();
        assert!(phc.starts_with("$pbkdf2-sha256$i=1000,l=32$"), "{phc}");
        let parsed = Pbkdf2Hash::parse(&phc).unwrap();
        assert_eq!(parsed, hash);
        assert!(parsed.matches(&pbkdf2_sha256(b"pw", &[1; 16], 1_000)));
        assert!(!parsed.matches(&pbkdf2_sha256(b"pX", &[1; 16], 1_000)));
        // More iterations than the runtime allows, another length, another PRF, argon2id: not this scheme.
        let over = phc.replace("i=1000", &format!("i={}", PBKDF2_ITERATIONS + 1));
        for bad in [
            over.as_str(),
            &phc.replace("l=32", "l=64"),
            &phc.replace("sha256", "sha512"),
            "$argon2id$v=19$m=1,t=1,p=1$a$b",
            "",
            &format!("{phc}$x"),
        ] {
            assert!(Pbkdf2Hash::parse(bad).is_none(), "{bad}");
        }
        assert!(Pbkdf2Hash::parse(&dummy_pbkdf2().to_phc()).is_some());
        assert!(!format!("{hash:?}").contains("hash:"), "Debug hides the hash");
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        assert!(!acceptable("1234567"));
        assert!(acceptable("12345678"));
        assert!(acceptable(&"é".repeat(256)));
        assert!(!acceptable(&"é".repeat(257)));
    }

    #[test]
    #[cfg(feature = "issuer")]
    fn breach_ranges_split_the_sha1_and_padding_does_not_count() {
        // SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8 (a well-known value).
        let (prefix, suffix) = breach_range("password");
        assert_eq!(prefix, "5BAA6");
        assert_eq!(suffix, "1E4C9B93F3F0682250B6CF8331B7EE68FD8");
        let answer = "003D68EB55068C33ACE09247EE4C639306B:3\r\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:52256179\r\n";
        assert!(breach_listed(answer, &suffix));
        assert!(breach_listed(&answer.to_lowercase(), &suffix), "hex case does not matter");
        assert!(!breach_listed("1E4C9B93F3F0682250B6CF8331B7EE68FD8:0\r\n", &suffix), "padding");
        assert!(!breach_listed("1E4C9B93F3F0682250B6CF8331B7EE68FD9:7", &suffix));
        assert!(!breach_listed("garbage", &suffix));
    }
}
