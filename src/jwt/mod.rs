//! The pure token core: strict parsing, JWK keys, key-pinned verification, signing and claim checks. No `worker` here.

pub mod b64;
pub mod cache;
pub mod claims;
pub mod dpop;
pub mod json;
pub mod keys;
pub mod remote;
pub mod token;

pub use claims::{AccessClaims, TypRule, Validator};
pub use keys::{Algorithm, KeyError, KeySet, PrivateKey, PublicKey};
pub use token::{AwaitingSignature, JwsError, ParseError, SignError, UntrustedToken, ValidationError, VerifiedToken};

/// Any reason a presented access token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// It did not parse.
    Parse(ParseError),
    /// It parsed but was refused.
    Validation(ValidationError),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Parse(e) => e.fmt(f),
            TokenError::Validation(e) => e.fmt(f),
        }
    }
}

/// Parses, verifies and validates an access token in one call.
pub fn verify_access_token(
    keys: &KeySet,
    validator: &Validator,
    token: &str,
    now: i64,
) -> Result<AccessClaims, TokenError> {
    let untrusted = UntrustedToken::parse(token).map_err(TokenError::Parse)?;
    let verified = keys.verify(&untrusted).map_err(TokenError::Validation)?;
    validator.validate(&verified, now).map_err(TokenError::Validation)
}
