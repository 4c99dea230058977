//! Compact JWS access tokens: strict parsing, key-pinned signature verification, and signing (RFC 7515, RFC 9068).
//!
//! Trust is a type: an [`UntrustedToken`] becomes a [`VerifiedToken`] only through [`KeySet::verify`],
//! and claims come out only of a verified token through [`super::Validator`].

use super::keys::{verify_signature_bytes, Algorithm, KeySet, PrivateKey, PublicKey, SigningMaterial};
use super::{b64, json};
use serde_json::{Map, Value};
use std::fmt;

/// The largest token accepted, in bytes (API.md "Edge verification").
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The `typ` gatehouse puts on access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Why a token could not even be parsed. Always the presenter's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Over [`MAX_TOKEN_BYTES`].
    TooLong,
    /// Not exactly three `.`-separated segments (JWE, JSON serialization and detached forms included).
    SegmentCount,
    /// A segment is not strict unpadded base64url.
    Base64 { segment: Segment },
    /// The header is not a JSON object, or names a member twice.
    Header(json::JsonError),
    /// The header has no string `alg`.
    MissingAlg,
    /// The signature segment is empty.
    EmptySignature,
}

/// Which of the three segments a parse error is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// The protected header.
    Header,
    /// The payload (claims).
    Payload,
    /// The signature.
    Signature,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooLong => write!(f, "token is longer than {MAX_TOKEN_BYTES} bytes"),
            ParseError::SegmentCount => f.write_str("token is not a compact JWS of three segments"),
            ParseError::Base64 { segment } => write!(f, "{segment:?} segment is not strict base64url"),
            ParseError::Header(e) => write!(f, "header is {e}"),
            ParseError::MissingAlg => f.write_str("header has no alg"),
            ParseError::EmptySignature => f.write_str("token is unsigned"),
        }
    }
}

/// Why a parsed token was refused: the key, the signature or the claims. Always the presenter's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationError {
    /// `alg` is `none` (in any case).
    AlgNone,
    /// The header has no string `kid`.
    MissingKid,
    /// No configured key has this `kid`.
    UnknownKid,
    /// The header `alg` is not the algorithm of the key its `kid` names (this covers HS*, PS*, ES*...).
    AlgMismatch,
    /// The header carries `crit`: no extension is understood, so none may be critical (RFC 7515 §4.1.11).
    Crit,
    /// The signature does not verify under the named key.
    BadSignature,
    /// The payload is not a JSON object, or names a member twice.
    Payload(json::JsonError),
    /// `typ` is missing or is not `at+jwt`.
    Typ,
    /// A registered claim is missing or has the wrong type.
    Claim(&'static str),
    /// `iss` is not the configured issuer.
    Issuer,
    /// `aud` does not contain the configured audience.
    Audience,
    /// `exp` is at or before now − leeway.
    Expired,
    /// `nbf` is after now + leeway.
    NotYetValid,
    /// `iat` is after now + leeway.
    IssuedInFuture,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidationError::AlgNone => f.write_str("unsigned tokens are not accepted"),
            ValidationError::MissingKid => f.write_str("header has no kid"),
            ValidationError::UnknownKid => f.write_str("unknown kid"),
            ValidationError::AlgMismatch => f.write_str("alg does not match the key"),
            ValidationError::Crit => f.write_str("critical header extensions are not supported"),
            ValidationError::BadSignature => f.write_str("signature is invalid"),
            ValidationError::Payload(e) => write!(f, "claims are {e}"),
            ValidationError::Typ => f.write_str("typ is not at+jwt"),
            ValidationError::Claim(name) => write!(f, "claim {name} is missing or malformed"),
            ValidationError::Issuer => f.write_str("issuer is not accepted"),
            ValidationError::Audience => f.write_str("audience is not accepted"),
            ValidationError::Expired => f.write_str("token has expired"),
            ValidationError::NotYetValid => f.write_str("token is not valid yet"),
            ValidationError::IssuedInFuture => f.write_str("token is issued in the future"),
        }
    }
}

/// A structurally valid compact JWS whose signature has not been checked: nothing in it is trusted yet.
#[derive(Debug, Clone)]
pub struct UntrustedToken<'a> {
    signing_input: &'a str,
    payload_b64: &'a str,
    header: Map<String, Value>,
    signature: Vec<u8>,
}

impl<'a> UntrustedToken<'a> {
    /// Parses a compact JWS: size cap, three strict base64url segments, a strict JSON header with `alg`.
    pub fn parse(token: &'a str) -> Result<Self, ParseError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ParseError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::SegmentCount);
        };
        let header_bytes = b64::decode(header_b64).map_err(|_| ParseError::Base64 { segment: Segment::Header })?;
        // The payload is decoded (and so checked) here, but parsed only after the signature verifies.
        b64::decode(payload_b64).map_err(|_| ParseError::Base64 { segment: Segment::Payload })?;
        let signature = b64::decode(signature_b64).map_err(|_| ParseError::Base64 { segment: Segment::Signature })?;
        let header = json::parse_object(&header_bytes).map_err(ParseError::Header)?;
        if !matches!(header.get("alg"), Some(Value::String(_))) {
            return Err(ParseError::MissingAlg);
        }
        if signature.is_empty() {
            return Err(ParseError::EmptySignature);
        }
        // The two first segments and their dot: always a prefix of the token.
        let signing_input = token.get(..header_b64.len() + 1 + payload_b64.len()).ok_or(ParseError::SegmentCount)?;
        Ok(UntrustedToken { signing_input, payload_b64, header, signature })
    }

    /// The header `alg`, as the presenter claims it.
    pub fn alg(&self) -> &str {
        self.header.get("alg").and_then(Value::as_str).unwrap_or_default()
    }

    /// The protected header, as the presenter wrote it (strict JSON, `alg` a string).
    pub(crate) fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// The header `kid`, as the presenter claims it.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// The `iss` claim as the presenter claims it, read before the signature only to choose whose
    /// keys may verify the token (the validator requires the same `iss` afterwards). `None` if the
    /// payload is not a strict JSON object with a string `iss`.
    pub fn unverified_issuer(&self) -> Option<String> {
        match self.unverified_claim("iss")? {
            Value::String(iss) => Some(iss),
            _ => None,
        }
    }

    /// A claim as the presenter states it, unverified: only for tokens whose origin is known
    /// otherwise (one gatehouse has just signed), or to choose keys. `None` if the payload is not a
    /// strict JSON object or lacks the claim.
    pub fn unverified_claim(&self, name: &str) -> Option<Value> {
        let payload = b64::decode(self.payload_b64).ok()?;
        json::parse_object(&payload).ok()?.remove(name)
    }
}

/// A token whose signature verified under a configured key; its claims are not yet validated.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Map<String, Value>,
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
}

impl VerifiedToken {
    /// The `kid` of the key that verified the token.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm of that key.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The verified but not yet validated claims (for claims beyond [`super::AccessClaims`], such
    /// as `cnf`, RFC 7800).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

/// A token whose header passed every check before the signature (alg not `none`, no `crit`, a known
/// `kid`, the header `alg` equal to that key's): only the signature is left. It becomes a
/// [`VerifiedToken`] only inside this crate, through [`SignatureCheck::finish`] with the verdict of a
/// real signature check (pure Rust here, or the runtime's WebCrypto at the edge).
#[derive(Debug)]
pub struct SignatureCheck<'t, 'k> {
    token: &'t UntrustedToken<'t>,
    key: &'k PublicKey,
}

impl<'t, 'k> SignatureCheck<'t, 'k> {
    /// Pairs a token with the key its header checks chose (the key set's for access tokens, the
    /// proof's own `jwk` for DPoP proofs).
    pub(crate) fn new(token: &'t UntrustedToken<'t>, key: &'k PublicKey) -> Self {
        SignatureCheck { token, key }
    }

    /// The key the token's `kid` names; its algorithm is the token's.
    pub fn key(&self) -> &'k PublicKey {
        self.key
    }

    /// The signed bytes: ASCII(header "." payload).
    pub fn signing_input(&self) -> &'t [u8] {
        self.token.signing_input.as_bytes()
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.token.signature
    }

    /// Checks the signature with the pure-Rust primitive (jwt-compact on ed25519-dalek / rsa).
    pub fn verify_in_rust(&self) -> bool {
        verify_signature_bytes(self.key, self.key.alg().name(), self.signing_input(), self.signature())
    }

    /// Turns the signature verdict into a verified token (parsing the claims only now).
    pub(crate) fn finish(self, signature_valid: bool) -> Result<VerifiedToken, ValidationError> {
        verified_token(signature_valid, &self.token.header, self.token.payload_b64, self.key.kid(), self.key.alg())
    }

    /// The same check, owned, to wait for a verdict from elsewhere (the thin entry's WebCrypto call)
    /// where the borrows cannot be kept: the header and the still-encoded payload, copied.
    pub fn awaiting(&self) -> AwaitingSignature {
        AwaitingSignature {
            header: self.token.header.clone(),
            payload_b64: self.token.payload_b64.to_owned(),
            kid: self.key.kid().to_owned(),
            alg: self.key.alg(),
        }
    }
}

/// A [`SignatureCheck`] kept across an await (see [`SignatureCheck::awaiting`]): like it, it becomes
/// a [`VerifiedToken`] only through [`AwaitingSignature::finish`] with a signature verdict, and its
/// claims are parsed only then.
#[derive(Debug)]
pub struct AwaitingSignature {
    header: Map<String, Value>,
    payload_b64: String,
    kid: String,
    alg: Algorithm,
}

impl AwaitingSignature {
    /// Turns the signature verdict into a verified token (parsing the claims only now).
    pub(crate) fn finish(self, signature_valid: bool) -> Result<VerifiedToken, ValidationError> {
        verified_token(signature_valid, &self.header, &self.payload_b64, &self.kid, self.alg)
    }
}

/// A verified token from a signature verdict, the claims parsed only if it says valid.
fn verified_token(
    signature_valid: bool,
    header: &Map<String, Value>,
    payload_b64: &str,
    kid: &str,
    alg: Algorithm,
) -> Result<VerifiedToken, ValidationError> {
    if !signature_valid {
        return Err(ValidationError::BadSignature);
    }
    // Decoding cannot fail: `parse` checked the segment.
    let payload = b64::decode(payload_b64).map_err(|_| ValidationError::Payload(json::JsonError::Syntax))?;
    let claims = json::parse_object(&payload).map_err(ValidationError::Payload)?;
    Ok(VerifiedToken { header: header.clone(), claims, kid: kid.to_owned(), alg })
}

impl KeySet {
    /// Every check before the signature, the key deciding the algorithm (RFC 8725 §3.1): the header
    /// `alg` is only compared with it, and `jku`, `x5u`, `jwk` and `x5c` are never read.
    pub fn begin_verify<'t, 'k>(
        &'k self,
        token: &'t UntrustedToken<'t>,
    ) -> Result<SignatureCheck<'t, 'k>, ValidationError> {
        let alg = token.alg();
        if alg.eq_ignore_ascii_case("none") {
            return Err(ValidationError::AlgNone);
        }
        if token.header.contains_key("crit") {
            return Err(ValidationError::Crit);
        }
        let kid = token.kid().ok_or(ValidationError::MissingKid)?;
        let key = self.find(kid).ok_or(ValidationError::UnknownKid)?;
        if key.alg().name() != alg {
            return Err(ValidationError::AlgMismatch);
        }
        Ok(SignatureCheck::new(token, key))
    }

    /// Verifies a token's signature with the key its `kid` names (see [`KeySet::begin_verify`]),
    /// using the pure-Rust primitives.
    pub fn verify(&self, token: &UntrustedToken<'_>) -> Result<VerifiedToken, ValidationError> {
        let check = self.begin_verify(token)?;
        let valid = check.verify_in_rust();
        check.finish(valid)
    }

    /// Verifies a compact JWS and returns its raw payload, for JWS that are not JWTs (test vectors).
    pub fn verify_jws_payload(&self, token: &str) -> Result<Vec<u8>, JwsError> {
        let untrusted = UntrustedToken::parse(token).map_err(JwsError::Parse)?;
        let alg = untrusted.alg();
        if alg.eq_ignore_ascii_case("none") {
            return Err(JwsError::Validation(ValidationError::AlgNone));
        }
        // Reuse the full check, but do not require a JSON payload.
        match self.verify(&untrusted) {
            Ok(_) | Err(ValidationError::Payload(_)) => {
                b64::decode(untrusted.payload_b64).map_err(|_| JwsError::Parse(ParseError::SegmentCount))
            }
            Err(e) => Err(JwsError::Validation(e)),
        }
    }
}

/// Either stage's error, for [`KeySet::verify_jws_payload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwsError {
    /// The JWS did not parse.
    Parse(ParseError),
    /// The JWS parsed but was refused.
    Validation(ValidationError),
}

/// Why signing failed. Always the server's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The key set has no private key.
    NoSigningKey,
    /// The claims could not be serialised.
    Claims,
    /// The RSA primitive failed.
    Rsa,
    /// This build has no pure-Rust primitive for the key's algorithm: the runtime's WebCrypto signs
    /// (`web::webcrypto::sign`).
    NeedsRuntime,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignError::NoSigningKey => "no signing key is configured",
            SignError::Claims => "claims could not be serialised",
            SignError::Rsa => "RSA signing failed",
            SignError::NeedsRuntime => "this key is signed with by the runtime's WebCrypto",
        })
    }
}

impl PrivateKey {
    /// Signs claims as an access token with header `{"alg", "typ": "at+jwt", "kid"}` taken from this key.
    pub fn sign(&self, claims: &Value) -> Result<String, SignError> {
        let input = self.signing_input(&self.access_token_header(), claims)?;
        let signature = self.sign_bytes(input.as_bytes())?;
        Ok(assemble(input, &signature))
    }

    /// The header of access tokens this key signs: `{"alg", "typ": "at+jwt", "kid"}`.
    pub fn access_token_header(&self) -> Value {
        let public = self.public();
        serde_json::json!({ "alg": public.alg().name(), "typ": ACCESS_TOKEN_TYP, "kid": public.kid() })
    }

    /// Signs with an explicit header. The header's `alg` is not consulted: the key decides.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> Result<String, SignError> {
        let input = self.signing_input(header, claims)?;
        let signature = self.sign_bytes(input.as_bytes())?;
        Ok(assemble(input, &signature))
    }

    /// The signing input of a JWS (RFC 7515 §5.1): base64url(header) "." base64url(claims).
    pub fn signing_input(&self, header: &Value, claims: &Value) -> Result<String, SignError> {
        let header = serde_json::to_vec(header).map_err(|_| SignError::Claims)?;
        let claims = serde_json::to_vec(claims).map_err(|_| SignError::Claims)?;
        let mut input = b64::encode(header);
        input.push('.');
        input.push_str(&b64::encode(claims));
        Ok(input)
    }

    /// Signs raw bytes with this key's algorithm, in pure Rust where this build links the primitive.
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.material {
            SigningMaterial::Ed25519(key) => Ok(key.sign(message).to_vec()),
            #[cfg(gatehouse_rsa)]
            SigningMaterial::Rsa(key) => {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(message);
                // Blinded with OS randomness, so the private-key operation's timing does not leak the key.
                key.key
                    .sign_with_rng(&mut rand_core::OsRng, rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
                    .map_err(|_| SignError::Rsa)
            }
            // Deterministic nonces (RFC 6979), so signing needs no randomness.
            #[cfg(gatehouse_p256)]
            SigningMaterial::P256(key) => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = key.key.sign(message);
                Ok(signature.to_bytes().to_vec())
            }
            #[allow(unreachable_patterns)]
            _ => Err(SignError::NeedsRuntime),
        }
    }
}

/// A compact JWS from its signing input and signature.
pub fn assemble(mut input: String, signature: &[u8]) -> String {
    input.push('.');
    input.push_str(&b64::encode(signature));
    input
}

impl KeySet {
    /// Signs claims with the active (first) signing key.
    pub fn sign(&self, claims: &Value) -> Result<String, SignError> {
        self.signing_key().ok_or(SignError::NoSigningKey)?.sign(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A check kept across an await ends as the check itself does: the claims only with a verdict
    /// that says valid, else `BadSignature`, and the same token either way.
    #[test]
    fn an_awaiting_signature_finishes_as_the_check_does() {
        let key = PrivateKey::generate(Algorithm::EdDsa, &[7; 32]).expect("key");
        let keys = KeySet::from_public_keys(vec![key.public().clone()]).expect("set");
        let token = key.sign(&json!({"sub": "u1", "iss": "https://issuer.test"})).expect("signed");
        let untrusted = UntrustedToken::parse(&token).expect("parses");
        let check = keys.begin_verify(&untrusted).expect("header checks");
        assert!(matches!(check.awaiting().finish(false), Err(ValidationError::BadSignature)));
        let kept = check.awaiting().finish(true).expect("valid");
        let direct = check.finish(true).expect("valid");
        assert_eq!((kept.claims(), kept.kid(), kept.alg()), (direct.claims(), direct.kid(), direct.alg()));
        assert_eq!(kept.header, direct.header);
        assert_eq!(kept.claims()["sub"], "u1");
    }
}
