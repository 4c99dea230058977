//! The verification pipeline: bearer extraction, token checks, the one KV revocation read, and the
//! [`Authenticated`] value that only this module can make.

use super::error::ApiError;
use super::webcrypto;
use crate::config::Config;
use crate::jwt::cache::VerifiedCache;
use crate::jwt::{AccessClaims, TokenError, UntrustedToken};
use crate::revocation::{self, RevocationRecord};
use std::cell::RefCell;
use worker::{Env, Request};

/// The KV namespace holding revocation records.
pub const DENYLIST_BINDING: &str = "DENYLIST";

thread_local! {
    /// Tokens this isolate has verified (signature and claims); revocation is still read every time.
    static VERIFIED: RefCell<VerifiedCache> = RefCell::new(VerifiedCache::new());
}

/// A caller whose access token verified and is not revoked. Handlers that need a user take one.
#[derive(Debug, Clone)]
pub struct Authenticated {
    claims: AccessClaims,
}

impl Authenticated {
    /// The verified claims.
    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }
}

/// Extracts the token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1).
/// `Ok(None)` means no bearer credentials at all (no header, or another scheme).
pub fn bearer_token(header: Option<&str>) -> Result<Option<&str>, ApiError> {
    let Some(header) = header else { return Ok(None) };
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_start_matches(' ');
    let b64token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=');
    if token.is_empty() || !token.chars().all(b64token) {
        // Includes two Authorization headers, which the runtime joins with ", ".
        return Err(ApiError::InvalidToken("malformed Authorization header".into()));
    }
    Ok(Some(token))
}

fn now_seconds() -> i64 {
    (worker::Date::now().as_millis() / 1000) as i64
}

/// Verifies the request's bearer token and checks the denylist with one KV read.
pub async fn authenticate(req: &Request, env: &Env, config: &Config) -> Result<Authenticated, ApiError> {
    let user = authenticate_for_logout(req, config).await?;
    check_revocation(env, &user.claims).await?;
    Ok(user)
}

/// Verifies the bearer token without the denylist read, for logout and logout-all: they are
/// idempotent, so a token whose session was already ended may end it again (the account object,
/// the authority, then changes nothing).
pub async fn authenticate_for_logout(req: &Request, config: &Config) -> Result<Authenticated, ApiError> {
    let header = req.headers().get("authorization").map_err(ApiError::from)?;
    let token = bearer_token(header.as_deref())?.ok_or(ApiError::MissingToken)?;
    let now = now_seconds();
    if let Some(claims) = VERIFIED.with(|c| c.borrow_mut().get(token, now, config.leeway)) {
        return Ok(Authenticated { claims });
    }
    let invalid = |e: TokenError| ApiError::InvalidToken(e.to_string());
    let untrusted = UntrustedToken::parse(token).map_err(|e| invalid(TokenError::Parse(e)))?;
    let check = config.keys.begin_verify(&untrusted).map_err(|e| invalid(TokenError::Validation(e)))?;
    let valid =
        webcrypto::verify_signature(check.key(), check.signing_input(), check.signature(), || check.verify_in_rust())
            .await;
    let verified = check.finish(valid).map_err(|e| invalid(TokenError::Validation(e)))?;
    let claims = config.validator().validate(&verified, now).map_err(|e| invalid(TokenError::Validation(e)))?;
    VERIFIED.with(|c| c.borrow_mut().insert(token, &claims, now, config.leeway));
    Ok(Authenticated { claims })
}

/// The single KV read: fails closed (503) when KV cannot be read or the record is corrupt.
async fn check_revocation(env: &Env, claims: &AccessClaims) -> Result<(), ApiError> {
    let kv = env.kv(DENYLIST_BINDING).map_err(|e| ApiError::Server(format!("DENYLIST binding: {e}")))?;
    let stored = kv
        .get(&revocation::kv_key(&claims.sub))
        .text()
        .await
        .map_err(|e| ApiError::Unavailable(format!("denylist read failed: {e}")))?;
    let Some(text) = stored else { return Ok(()) };
    let record = RevocationRecord::parse(&text)
        .map_err(|_| ApiError::Server(format!("denylist record for {} is unreadable", claims.sub)))?;
    record.check(claims).map_err(|why| ApiError::InvalidToken(why.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_extraction() {
        assert_eq!(bearer_token(None), Ok(None));
        assert_eq!(bearer_token(Some("Basic abc")), Ok(None));
        assert_eq!(bearer_token(Some("Bearer abc.def.ghi")), Ok(Some("abc.def.ghi")));
        assert_eq!(bearer_token(Some("bearer abc")), Ok(Some("abc")));
        assert!(bearer_token(Some("Bearer")).is_err());
        assert!(bearer_token(Some("Bearer ")).is_err());
        assert!(bearer_token(Some("Bearer a b")).is_err());
        assert!(bearer_token(Some("Bearer a.b.c, Bearer d.e.f")).is_err());
        assert!(bearer_token(Some("Bearer a\tb")).is_err());
    }
}
