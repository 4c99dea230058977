//! The signed origin assertion (`ORIGIN_ASSERTION=on`): a short-lived JWT in the
//! `Gatehouse-Jwt-Assertion` header that lets an origin reachable by other paths verify, with the
//! published JWKS, who the edge let through and for which request. Pure: the claims and header are
//! built here from the verified claims, the clock and fresh randomness passed in; the edge signs.
//!
//! Claims: `iss` (gatehouse's ISSUER), `aud` (ORIGIN_AUDIENCE), `iat`, `exp` (= `iat` +
//! [`ASSERTION_TTL`]), `jti` (128 random bits), the request it is for, as DPoP proofs bind theirs
//! (RFC 9449 §4.2): `htm` (the method) and `htu` (the forwarded URL without query), and for a
//! caller with a token `sub`, `sid` (when the token had one), `scope`, `roles` and `idp` (the
//! token's issuer, when it is a trusted third party).

use crate::jwt::{b64, AccessClaims, PublicKey};
use serde_json::{json, Value};

/// How long an assertion is valid, seconds: long enough for clock skew and one hop.
pub const ASSERTION_TTL: i64 = 60;

/// The header `typ` of an assertion (RFC 8725 §3.11: explicit typing), so no other JWT of the
/// same keys (an access token) passes for one, nor one for an access token.
pub const ASSERTION_TYP: &str = "gatehouse-assertion+jwt";

/// The request an assertion is made for.
#[derive(Debug, Clone, Copy)]
pub struct AssertionFor<'a> {
    /// gatehouse's ISSUER.
    pub issuer: &'a str,
    /// The origin's audience (ORIGIN_AUDIENCE, by default ORIGIN_URL).
    pub audience: &'a str,
    /// The method, as forwarded.
    pub method: &'a str,
    /// The forwarded URL without query: ORIGIN_URL + the canonical path.
    pub url: &'a str,
}

/// The protected header of an assertion signed by `key`.
pub fn header(key: &PublicKey) -> Value {
    json!({ "alg": key.alg().name(), "typ": ASSERTION_TYP, "kid": key.kid() })
}

/// The claims of an assertion for `request` on behalf of `user` (`None`: an anonymous caller on a
/// public or optional-auth route, whose assertion has no `sub`), issued at `now` (seconds) with the
/// token id `jti` (fresh random bytes).
pub fn claims(request: &AssertionFor<'_>, user: Option<&AccessClaims>, now: i64, jti: &[u8; 16]) -> Value {
    let mut claims = json!({
        "iss": request.issuer,
        "aud": request.audience,
        "iat": now,
        "exp": now + ASSERTION_TTL,
        "jti": b64::encode(jti),
        "htm": request.method,
        "htu": request.url,
    });
    if let Some(user) = user {
        claims["sub"] = json!(user.sub);
        claims["scope"] = json!(user.scope);
        claims["roles"] = json!(user.roles);
        if let Some(sid) = &user.sid {
            claims["sid"] = json!(sid);
        }
        if user.iss != request.issuer {
            claims["idp"] = json!(user.iss);
        }
    }
    claims
}
