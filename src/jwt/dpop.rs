//! DPoP proofs (RFC 9449): strict parsing, the checks of §4.3, the `cnf.jkt` binding of §6.1 and §7.1, and the error codes and challenges of §5, §7.1 and §8.
//!
//! Trust is a type, as for access tokens: a header value becomes an [`UntrustedProof`] through
//! [`UntrustedProof::parse`] (every check that needs no signature, the key taken from the proof's
//! own `jwk`), then a [`ProofCheck`] through [`UntrustedProof::begin_verify`], and a
//! [`VerifiedProof`] only through [`ProofCheck::finish`] with the verdict of a real signature
//! check: pure Rust ([`ProofCheck::verify_in_rust`]) or the runtime's WebCrypto at the edge
//! (`web::webcrypto::verify_proof_signature(check.key(), check.signing_input(), check.signature(),
//! || check.verify_in_rust())`). Replay ([`JtiReplayCache`]) and the token binding
//! ([`check_presentation`]) come after.

pub mod htu;
pub mod nonce;
pub mod replay;

pub use htu::{htu_matches, normalize_htu, HtuError};
pub use nonce::{check_nonce, issue_nonce, NonceError, NonceKey, NonceKeyError};
pub use replay::{JtiReplayCache, DEFAULT_REPLAY_CAPACITY};

use super::claims::{numeric_date, MAX_ID_LEN};
use super::keys::{Algorithm, KeyError, PublicKey};
use super::token::{ParseError, SignatureCheck, UntrustedToken, VerifiedToken};
use super::{b64, json};
use serde_json::{Map, Value};
use std::fmt;

/// The largest `DPoP` header value accepted, in bytes (an EdDSA or ES256 proof with a nonce is under 1 KiB).
pub const MAX_PROOF_BYTES: usize = 4 * 1024;
/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";
/// The algorithms accepted by default: EdDSA and ES256 (the RFC 9449 §4.3 item 5 "deemed secure" list).
pub const DEFAULT_PROOF_ALGORITHMS: [Algorithm; 2] = [Algorithm::EdDsa, Algorithm::Es256];
/// How old a proof's `iat` may be by default, in seconds (RFC 9449 §11.1: "a relatively brief period").
pub const DEFAULT_MAX_AGE: i64 = 60;
/// How far in the future a proof's `iat` may be by default, in seconds (client clock skew).
pub const DEFAULT_FUTURE_LEEWAY: i64 = 30;
/// The `kid` given to a proof's key, which has none (it only names the key in caches and errors).
pub const PROOF_KEY_LABEL: &str = "dpop-proof-key";

/// Header members that name other key sources than `jwk`; a proof must carry its key itself.
const OTHER_KEY_SOURCES: [&str; 3] = ["jku", "x5u", "x5c"];
/// JWK members that only private or symmetric keys have (RFC 7518 §6.2.2, §6.3.2, §6.4.1, RFC 8037 §2).
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a DPoP proof, or the token presented with it, was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// No `DPoP` header (or an empty one). The client's fault.
    Missing,
    /// More than one `DPoP` header value (joined by a comma); RFC 9449 §4.3 item 1.
    MultipleValues,
    /// Over [`MAX_PROOF_BYTES`].
    TooLong,
    /// Not a compact JWS of three strict segments with a strict JSON header and an `alg`.
    Malformed(ParseError),
    /// The header `typ` is not `dpop+jwt` (RFC 9449 §4.3 item 4).
    Typ,
    /// The header `alg` is `none`, symmetric, unknown, or not in the allow-list (§4.3 item 5).
    AlgNotAllowed,
    /// The header carries `crit`: no extension is understood (RFC 7515 §4.1.11).
    Crit,
    /// The header names another key source (`jku`, `x5u`, `x5c`) than `jwk`.
    KeySource,
    /// The header has no `jwk` object (§4.2).
    MissingJwk,
    /// The `jwk` carries a private or symmetric member (`d`, `p`, `k`...); §4.3 item 6.
    PrivateKey,
    /// The `jwk` does not fit `alg` (`kty`, `crv`, `alg`, `use`) or is not a valid public key.
    Jwk(KeyError),
    /// The signature does not verify under the `jwk` (§4.3 item 6).
    BadSignature,
    /// The payload is not a strict JSON object.
    Payload(json::JsonError),
    /// A claim is missing, has the wrong type, or is out of bounds (`jti` over 256 bytes).
    Claim(&'static str),
    /// `htm` is not the request's method (§4.3 item 8).
    Method,
    /// `htu` does not name the request's URI after normalisation (§4.3 item 9).
    Url,
    /// `iat` is older than the allowed window (§4.3 item 11, §11.1).
    Stale,
    /// `iat` is further in the future than the leeway.
    IssuedInFuture,
    /// An access token was presented but the proof has no `ath` (§4.3 item 12.1).
    AthMissing,
    /// `ath` is not base64url(SHA-256(access token)) (§4.3 item 12.2).
    AthMismatch,
    /// The proof has an `ath` but no access token was presented: it was made for another request.
    AthWithoutToken,
    /// A nonce is required and the proof has none (§8, §9).
    NonceMissing,
    /// The proof's nonce is not one the server accepts now (§8, §9).
    Nonce(NonceError),
    /// This proof (`jkt`, `jti`) was accepted before, within its window (§11.1).
    Replayed,
    /// The replay memory is full, and this proof's window ends no later than that of a proof it
    /// had to forget: refused as too old for now (the server's limit under load; see [`JtiReplayCache`]).
    ReplayCacheFull,
    /// The token's `cnf` claim is not an object with a base64url SHA-256 `jkt` (RFC 7800 §3.1, RFC 9449 §6.1).
    Cnf,
    /// A DPoP-bound token (with `cnf.jkt`) was presented with the `Bearer` scheme (§7.2).
    BoundTokenAsBearer,
    /// A token without `cnf.jkt` was presented with the `DPoP` scheme (§7.1).
    TokenNotBound,
    /// The proof's key is not the one the token is bound to: `jkt` ≠ `cnf.jkt` (§6.1, §7.1).
    KeyMismatch,
}

/// The error code an answer carries for a [`ProofError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofErrorCode {
    /// `invalid_dpop_proof` (RFC 9449 §5, §7.1): the proof is at fault.
    InvalidDpopProof,
    /// `use_dpop_nonce` (RFC 9449 §8, §9): retry with the nonce in `DPoP-Nonce`.
    UseDpopNonce,
    /// `invalid_token` (RFC 6750 §3.1, RFC 9449 §7.1): the token's binding is at fault.
    InvalidToken,
}

impl ProofErrorCode {
    /// The code as it appears in `error` parameters and bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ProofErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ProofErrorCode::UseDpopNonce => "use_dpop_nonce",
            ProofErrorCode::InvalidToken => "invalid_token",
        }
    }
}

impl ProofError {
    /// The RFC 9449 error code for this refusal.
    pub fn code(&self) -> ProofErrorCode {
        match self {
            ProofError::NonceMissing | ProofError::Nonce(_) => ProofErrorCode::UseDpopNonce,
            ProofError::Cnf | ProofError::BoundTokenAsBearer | ProofError::TokenNotBound | ProofError::KeyMismatch => {
                ProofErrorCode::InvalidToken
            }
            _ => ProofErrorCode::InvalidDpopProof,
        }
    }
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofError::Missing => f.write_str("DPoP proof is missing"),
            ProofError::MultipleValues => f.write_str("more than one DPoP header"),
            ProofError::TooLong => write!(f, "DPoP proof is longer than {MAX_PROOF_BYTES} bytes"),
            ProofError::Malformed(e) => write!(f, "DPoP proof is malformed: {e}"),
            ProofError::Typ => f.write_str("DPoP proof typ is not dpop+jwt"),
            ProofError::AlgNotAllowed => f.write_str("DPoP proof alg is not accepted"),
            ProofError::Crit => f.write_str("critical header extensions are not supported"),
            ProofError::KeySource => f.write_str("DPoP proof must carry its key in jwk only"),
            ProofError::MissingJwk => f.write_str("DPoP proof has no jwk"),
            ProofError::PrivateKey => f.write_str("DPoP proof jwk contains private key material"),
            ProofError::Jwk(_) => f.write_str("DPoP proof jwk is not a usable public key for its alg"),
            ProofError::BadSignature => f.write_str("DPoP proof signature is invalid"),
            ProofError::Payload(e) => write!(f, "DPoP proof claims are {e}"),
            ProofError::Claim(name) => write!(f, "DPoP proof claim {name} is missing or malformed"),
            ProofError::Method => f.write_str("DPoP proof htm does not match the request"),
            ProofError::Url => f.write_str("DPoP proof htu does not match the request"),
            ProofError::Stale => f.write_str("DPoP proof is too old"),
            ProofError::IssuedInFuture => f.write_str("DPoP proof is issued in the future"),
            ProofError::AthMissing => f.write_str("DPoP proof has no ath for the access token"),
            ProofError::AthMismatch => f.write_str("DPoP proof ath does not match the access token"),
            ProofError::AthWithoutToken => f.write_str("DPoP proof has an ath but no access token was sent"),
            ProofError::NonceMissing => f.write_str("a DPoP nonce is required"),
            ProofError::Nonce(e) => write!(f, "DPoP {e}"),
            ProofError::Replayed => f.write_str("DPoP proof was already used"),
            ProofError::ReplayCacheFull => {
                f.write_str("DPoP proof is too old for the server's replay memory right now")
            }
            ProofError::Cnf => f.write_str("token confirmation claim is malformed"),
            ProofError::BoundTokenAsBearer => f.write_str("DPoP-bound token presented as a bearer token"),
            ProofError::TokenNotBound => f.write_str("token is not DPoP-bound"),
            ProofError::KeyMismatch => f.write_str("DPoP proof key does not match the token binding"),
        }
    }
}

/// What the server accepts in a proof, independent of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPolicy {
    /// The accepted algorithms (RFC 9449 §4.3 item 5), in the order `algs` lists them.
    pub algorithms: Vec<Algorithm>,
    /// How old `iat` may be, in seconds.
    pub max_age: i64,
    /// How far in the future `iat` may be, in seconds.
    pub future_leeway: i64,
}

impl Default for ProofPolicy {
    fn default() -> Self {
        ProofPolicy {
            algorithms: DEFAULT_PROOF_ALGORITHMS.to_vec(),
            max_age: DEFAULT_MAX_AGE,
            future_leeway: DEFAULT_FUTURE_LEEWAY,
        }
    }
}

impl ProofPolicy {
    /// The `alg` names accepted, for `algs` (RFC 9449 §7.1) and `dpop_signing_alg_values_supported`
    /// (§5.1): EdDSA is accepted under its RFC 8037 name and its RFC 9864 name `Ed25519`.
    pub fn alg_names(&self) -> Vec<&'static str> {
        let mut names = Vec::with_capacity(self.algorithms.len() + 1);
        for alg in &self.algorithms {
            names.push(alg.name());
            if *alg == Algorithm::EdDsa {
                names.push(ED25519_ALG);
            }
        }
        names
    }

    /// The algorithm a header `alg` names, if it is accepted.
    fn accepts(&self, alg: &str) -> Option<Algorithm> {
        let named = if alg == ED25519_ALG { Some(Algorithm::EdDsa) } else { Algorithm::from_name(alg) };
        named.filter(|a| self.algorithms.contains(a))
    }
}

/// The fully-specified name of Ed25519 signatures (RFC 9864 §2.2), which some clients send.
const ED25519_ALG: &str = "Ed25519";

/// How the proof's `nonce` claim is checked (RFC 9449 §8, §9).
#[derive(Debug, Clone, Copy)]
pub enum NonceRule<'a> {
    /// No nonce is required; a `nonce` claim, if any, must be a string and is not checked further.
    NotRequired,
    /// A nonce made by [`issue_nonce`] with this key, at most `max_age` seconds ago, is required.
    Stateless {
        /// The key nonces are made with.
        key: &'a NonceKey,
        /// How long a nonce stays valid, in seconds.
        max_age: i64,
    },
    /// Exactly this nonce is required (a server that keeps its nonces).
    Exact(&'a str),
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// The HTTP method, as the runtime reports it (compared exactly, RFC 9110 §9.1).
    pub method: &'a str,
    /// The request's absolute URI (query and fragment are ignored).
    pub url: &'a str,
    /// The access token presented with the proof (`Authorization: DPoP <token>`), if any.
    pub access_token: Option<&'a str>,
    /// The nonce requirement.
    pub nonce: NonceRule<'a>,
}

/// A DPoP proof whose header passed every check, its key parsed from the `jwk`: only the signature
/// and the claims are left.
#[derive(Debug)]
pub struct UntrustedProof<'a> {
    token: UntrustedToken<'a>,
    key: PublicKey,
    max_age: i64,
    future_leeway: i64,
}

impl<'a> UntrustedProof<'a> {
    /// Parses the text of the `DPoP` header and checks its header (RFC 9449 §4.3 items 1 to 6,
    /// before the signature): one value, size, three strict segments, `typ`, `alg` in the
    /// allow-list, no `crit`, no other key source, a public `jwk` that fits `alg`.
    pub fn parse(value: &'a str, policy: &ProofPolicy) -> Result<Self, ProofError> {
        if value.is_empty() {
            return Err(ProofError::Missing);
        }
        if value.len() > MAX_PROOF_BYTES {
            return Err(ProofError::TooLong);
        }
        // The runtime joins repeated header fields with ", " (RFC 9110 §5.3); a proof has no comma.
        if value.contains(',') {
            return Err(ProofError::MultipleValues);
        }
        let token = UntrustedToken::parse(value).map_err(ProofError::Malformed)?;
        let header = token.header();
        if !header.get("typ").and_then(Value::as_str).is_some_and(typ_is_dpop) {
            return Err(ProofError::Typ);
        }
        let alg = policy.accepts(token.alg()).ok_or(ProofError::AlgNotAllowed)?;
        if header.contains_key("crit") {
            return Err(ProofError::Crit);
        }
        if OTHER_KEY_SOURCES.iter().any(|name| header.contains_key(*name)) {
            return Err(ProofError::KeySource);
        }
        let Some(Value::Object(jwk)) = header.get("jwk") else {
            return Err(ProofError::MissingJwk);
        };
        if PRIVATE_JWK_MEMBERS.iter().any(|name| jwk.contains_key(*name)) {
            return Err(ProofError::PrivateKey);
        }
        let key = PublicKey::from_embedded_jwk(jwk, PROOF_KEY_LABEL, alg).map_err(ProofError::Jwk)?;
        Ok(UntrustedProof { token, key, max_age: policy.max_age, future_leeway: policy.future_leeway })
    }

    /// Hands out the signature check; the claims are read only after it.
    pub fn begin_verify(&self) -> ProofCheck<'_> {
        ProofCheck { signature: SignatureCheck::new(&self.token, &self.key), proof: self }
    }
}

/// RFC 9449 §4.2 names `dpop+jwt`; media types compare case-insensitively and may carry the
/// `application/` prefix (RFC 7515 §4.1.9), as the access-token `typ` rule does.
fn typ_is_dpop(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    typ == PROOF_TYP || typ.strip_prefix("application/") == Some(PROOF_TYP)
}

/// A proof whose header passed; it becomes a [`VerifiedProof`] only through [`ProofCheck::finish`].
#[derive(Debug)]
pub struct ProofCheck<'p> {
    signature: SignatureCheck<'p, 'p>,
    proof: &'p UntrustedProof<'p>,
}

impl<'p> ProofCheck<'p> {
    /// The proof's own key (from its `jwk`); its algorithm is the header's.
    pub fn key(&self) -> &'p PublicKey {
        self.signature.key()
    }

    /// The signed bytes: ASCII(header "." payload).
    pub fn signing_input(&self) -> &'p [u8] {
        self.signature.signing_input()
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        self.signature.signature()
    }

    /// Checks the signature with the pure-Rust primitive.
    pub fn verify_in_rust(&self) -> bool {
        self.signature.verify_in_rust()
    }

    /// Turns the signature verdict into a verified proof, checking the claims against the request
    /// at `now` (RFC 9449 §4.3 items 7 to 12, and the nonce of §9). Replay is checked afterwards,
    /// with [`JtiReplayCache::check_and_remember`].
    pub fn finish(
        self,
        signature_valid: bool,
        request: &ProofRequest<'_>,
        now: i64,
    ) -> Result<VerifiedProof, ProofError> {
        let verified = self.signature.finish(signature_valid).map_err(|e| match e {
            super::ValidationError::Payload(e) => ProofError::Payload(e),
            _ => ProofError::BadSignature,
        })?;
        check_claims(&verified, self.proof, request, now)
    }
}

fn claim_str<'c>(claims: &'c Map<String, Value>, name: &'static str) -> Result<Option<&'c str>, ProofError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ProofError::Claim(name)),
    }
}

fn required_str<'c>(claims: &'c Map<String, Value>, name: &'static str) -> Result<&'c str, ProofError> {
    claim_str(claims, name)?.ok_or(ProofError::Claim(name))
}

/// base64url(SHA-256(ASCII(token))), the `ath` of RFC 9449 §4.2.
pub fn access_token_hash(access_token: &str) -> String {
    use sha2::Digest as _;
    b64::encode(sha2::Sha256::digest(access_token.as_bytes()))
}

fn check_claims(
    verified: &VerifiedToken,
    proof: &UntrustedProof<'_>,
    request: &ProofRequest<'_>,
    now: i64,
) -> Result<VerifiedProof, ProofError> {
    let claims = verified.claims();
    let jti = required_str(claims, "jti")?;
    if jti.is_empty() || jti.len() > MAX_ID_LEN {
        return Err(ProofError::Claim("jti"));
    }
    let htm = required_str(claims, "htm")?;
    let htu = required_str(claims, "htu")?;
    let iat = numeric_date(claims, "iat").map_err(|_| ProofError::Claim("iat"))?.ok_or(ProofError::Claim("iat"))?;
    let ath = claim_str(claims, "ath")?;
    let nonce = claim_str(claims, "nonce")?;
    if htm != request.method {
        return Err(ProofError::Method);
    }
    let normalized_url = normalize_htu(request.url).map_err(|_| ProofError::Url)?;
    if normalize_htu(htu).ok().as_deref() != Some(normalized_url.as_str()) {
        return Err(ProofError::Url);
    }
    if iat < now.saturating_sub(proof.max_age) {
        return Err(ProofError::Stale);
    }
    if iat > now.saturating_add(proof.future_leeway) {
        return Err(ProofError::IssuedInFuture);
    }
    match (request.access_token, ath) {
        (Some(token), Some(ath)) if ath == access_token_hash(token) => {}
        (Some(_), Some(_)) => return Err(ProofError::AthMismatch),
        (Some(_), None) => return Err(ProofError::AthMissing),
        (None, Some(_)) => return Err(ProofError::AthWithoutToken),
        (None, None) => {}
    }
    match (request.nonce, nonce) {
        (NonceRule::NotRequired, _) => {}
        (_, None) => return Err(ProofError::NonceMissing),
        (NonceRule::Stateless { key, max_age }, Some(nonce)) => {
            check_nonce(key, nonce, now, max_age).map_err(ProofError::Nonce)?;
        }
        (NonceRule::Exact(expected), Some(nonce)) => {
            if nonce != expected {
                return Err(ProofError::Nonce(NonceError::NotCurrent));
            }
        }
    }
    Ok(VerifiedProof {
        jkt: proof.key.thumbprint(),
        jti: jti.to_owned(),
        iat,
        valid_until: iat.saturating_add(proof.max_age),
        alg: proof.key.alg(),
        htu: normalized_url,
        nonce: nonce.map(str::to_owned),
    })
}

/// A DPoP proof whose signature, header and claims passed for one request. Only
/// [`ProofCheck::finish`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    jkt: String,
    jti: String,
    iat: i64,
    valid_until: i64,
    alg: Algorithm,
    htu: String,
    nonce: Option<String>,
}

impl VerifiedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key, base64url: what `cnf.jkt` must equal.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// The proof's `jti`.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat`, in whole seconds.
    pub fn iat(&self) -> i64 {
        self.iat
    }

    /// The last second at which this proof is still fresh (`iat` + max age): replay memory can
    /// forget it after that.
    pub fn valid_until(&self) -> i64 {
        self.valid_until
    }

    /// The algorithm of the proof's key.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The request URI the proof was checked against, normalised.
    pub fn htu(&self) -> &str {
        &self.htu
    }

    /// The proof's nonce, if it had one.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }
}

/// Verifies a `DPoP` header value for a request with the pure-Rust signature primitive (native
/// code, the issuer, tests); the edge uses the three steps to check ES256 through WebCrypto.
pub fn verify_proof(
    value: &str,
    policy: &ProofPolicy,
    request: &ProofRequest<'_>,
    now: i64,
) -> Result<VerifiedProof, ProofError> {
    let proof = UntrustedProof::parse(value, policy)?;
    let check = proof.begin_verify();
    let valid = check.verify_in_rust();
    check.finish(valid, request, now)
}

/// The key a token is bound to: its `cnf.jkt` (RFC 7800 §3.1, RFC 9449 §6.1), `None` when it has
/// no `cnf`. A `cnf` that is not an object with a 43-character base64url `jkt` (a SHA-256
/// thumbprint) is refused rather than taken as unbound (the rule of [`super::claims::confirmation_jkt`],
/// which the access-token validator applies).
pub fn confirmation_jkt(claims: &Map<String, Value>) -> Result<Option<&str>, ProofError> {
    super::claims::confirmation_jkt(claims).map_err(|_| ProofError::Cnf)
}

/// The authorization scheme an access token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer,
    /// `Authorization: DPoP <token>` with a `DPoP` proof (RFC 9449 §7.1).
    Dpop,
}

/// Checks how a token was presented against its binding (RFC 9449 §7.1, §7.2): a bound token
/// (`token_jkt` from [`confirmation_jkt`]) only with the `DPoP` scheme and a proof made with that
/// key; the `DPoP` scheme only with a bound token. A bearer token needs no proof (`proof` is
/// then ignored: whether an unbound token may come with `DPoP` at all is the caller's policy).
pub fn check_presentation(
    scheme: AuthScheme,
    token_jkt: Option<&str>,
    proof: Option<&VerifiedProof>,
) -> Result<(), ProofError> {
    match (scheme, token_jkt, proof) {
        (AuthScheme::Bearer, None, _) => Ok(()),
        (AuthScheme::Bearer, Some(_), _) => Err(ProofError::BoundTokenAsBearer),
        (AuthScheme::Dpop, None, _) => Err(ProofError::TokenNotBound),
        (AuthScheme::Dpop, Some(_), None) => Err(ProofError::Missing),
        (AuthScheme::Dpop, Some(jkt), Some(proof)) if proof.jkt() == jkt => Ok(()),
        (AuthScheme::Dpop, Some(_), Some(_)) => Err(ProofError::KeyMismatch),
    }
}

/// Appends `, name="value"` as an RFC 9110 §11.2 auth-param with a quoted string, escaping `"` and
/// `\` and dropping control characters.
fn push_param(out: &mut String, name: &str, value: &str) {
    if !out.ends_with("DPoP") {
        out.push(',');
    }
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The `WWW-Authenticate` value for a DPoP challenge (RFC 9449 §7.1): `DPoP realm="…",
/// error="…", error_description="…", algs="…"`, each part only when given.
pub fn challenge(realm: Option<&str>, error: Option<&ProofError>, policy: &ProofPolicy) -> String {
    let mut out = String::from("DPoP");
    if let Some(realm) = realm {
        push_param(&mut out, "realm", realm);
    }
    if let Some(error) = error {
        push_param(&mut out, "error", error.code().as_str());
        push_param(&mut out, "error_description", &error.to_string());
    }
    push_param(&mut out, "algs", &policy.alg_names().join(" "));
    out
}
