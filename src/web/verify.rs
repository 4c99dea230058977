//! Token verification at the edge and on the issuer's routes: bearer extraction, the token checks,
//! the one denylist read ([`super::denylist`]), and the [`Authenticated`] value that only this module
//! can make.

use super::denylist;
use super::dpop;
use super::metrics;
use super::remote_keys::{self, Source};
use super::webcrypto;
use crate::config::Config;
use crate::error::ApiError;
use crate::issuers::TokenSource;
use crate::jwt::cache::{TokenKey, Verified, VerifiedCache};
use crate::jwt::dpop::AuthScheme;
use crate::jwt::remote::Need;
use crate::jwt::{
    AccessClaims, Algorithm, AwaitingSignature, KeySet, TokenError, UntrustedToken, ValidationError, Validator,
    VerifiedToken,
};
use crate::metrics::Count;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{Env, Request};

thread_local! {
    /// Tokens this isolate has verified (signature and claims); revocation is checked separately.
    static VERIFIED: RefCell<VerifiedCache> = RefCell::new(VerifiedCache::new());
}

/// A caller whose access token verified (and, for gatehouse's own tokens, is not revoked).
/// Handlers that need a user take one; only this module makes one.
#[derive(Debug, Clone)]
pub struct Authenticated {
    verified: Rc<Verified>,
}

impl Authenticated {
    /// The verified claims.
    pub fn claims(&self) -> &AccessClaims {
        &self.verified.claims
    }

    /// Whether gatehouse issued the token (rather than a trusted issuer).
    pub fn is_own(&self) -> bool {
        self.verified.issuer.is_none()
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
    if !is_b64token(token) {
        // Includes two Authorization headers, which the runtime joins with ", ".
        return Err(ApiError::InvalidToken("malformed Authorization header".into()));
    }
    Ok(Some(token))
}

/// Extracts the scheme and token of an `Authorization: Bearer <token>` (RFC 6750 §2.1) or, with
/// `dpop` on, `Authorization: DPoP <token>` (RFC 9449 §7.1) header. `Ok(None)` means no such
/// credentials at all (no header, or another scheme).
pub fn credentials(header: Option<&str>, dpop: bool) -> Result<Option<(AuthScheme, &str)>, ApiError> {
    let Some(header) = header else { return Ok(None) };
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if !(dpop && scheme.eq_ignore_ascii_case("dpop")) {
        return Ok(bearer_token(Some(header))?.map(|token| (AuthScheme::Bearer, token)));
    }
    let token = rest.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(ApiError::DpopInvalidToken("malformed Authorization header".into()));
    }
    Ok(Some((AuthScheme::Dpop, token)))
}

/// Whether a token is an RFC 6750 §2.1 `b64token`: one or more of its ASCII characters. Checked
/// byte by byte (every byte of a non-ASCII character is outside the set).
fn is_b64token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'='))
}

/// Which tokens a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// gatehouse's own tokens, checked against the denylist (the issuer's routes).
    Own,
    /// gatehouse's own tokens without the denylist read: logout and logout-all are idempotent, so a
    /// token whose session was already ended may end it again (the account object, the
    /// authority, then changes nothing).
    OwnForLogout,
    /// Own tokens (denylist checked) and trusted issuers' tokens (protected routes).
    Any,
}

/// The token a request presents, where it came from and with which scheme: `Authorization`
/// (`Bearer`, or `DPoP` with DPoP on) first, then the headers that trusted issuers are configured
/// to send tokens in (as bearer tokens).
fn presented_token(
    req: &Request,
    config: &Config,
    accept: Accept,
) -> Result<(String, TokenSource, AuthScheme), ApiError> {
    let header = req.headers().get("authorization").map_err(ApiError::from)?;
    if let Some((scheme, token)) = credentials(header.as_deref(), config.dpop.is_on())? {
        return Ok((token.to_owned(), TokenSource::Authorization, scheme));
    }
    if accept == Accept::Any {
        for issuer in &config.trusted_issuers {
            if let TokenSource::Header(name) = &issuer.source {
                if let Some(value) = req.headers().get(name).map_err(ApiError::from)? {
                    let token = value.trim();
                    if !is_b64token(token) {
                        return Err(ApiError::InvalidToken(format!("malformed {name} header")));
                    }
                    return Ok((token.to_owned(), issuer.source.clone(), AuthScheme::Bearer));
                }
            }
        }
    }
    Err(ApiError::MissingToken)
}

/// Verifies the request's token as `accept` allows, then how it was presented (a DPoP proof for
/// the `DPoP` scheme, no bound token as a bearer token: `web::dpop`), with the one denylist read
/// for gatehouse's own tokens (except for [`Accept::OwnForLogout`]).
pub async fn authenticate(
    req: &Request,
    env: &Env,
    config: &Config,
    accept: Accept,
) -> Result<Authenticated, ApiError> {
    let (token, source, scheme) = presented_token(req, config, accept).map_err(|e| dpop::in_scheme(e, None, config))?;
    let checked = async {
        let user = verify(&token, &source, env, config, accept == Accept::Any).await?;
        let jkt = user.claims().cnf.as_ref().map(|c| c.jkt.as_str());
        dpop::check_presentation(req, config, scheme, &token, jkt, user.is_own()).await?;
        if user.is_own() && accept != Accept::OwnForLogout {
            denylist::check(env, config, user.claims()).await?;
        }
        Ok(user)
    };
    checked.await.map_err(|e| dpop::in_scheme(e, Some(scheme), config))
}

/// Verifies a token handed over as a parameter (OAuth revocation and introspection): gatehouse's
/// own tokens only, and without the denylist read (see [`denylist::check`]).
pub async fn verify_own_token(token: &str, env: &Env, config: &Config) -> Result<Authenticated, ApiError> {
    verify(token, &TokenSource::Authorization, env, config, false).await
}

fn invalid(e: ValidationError) -> ApiError {
    ApiError::InvalidToken(TokenError::Validation(e).to_string())
}

/// Whose keys may verify a token from `source` that names `iss`: `None` for gatehouse's own, or
/// the index of a trusted issuer. Own tokens come only in `Authorization`; a trusted issuer's
/// only from where it is configured to send them.
fn issuer_for(
    config: &Config,
    iss: Option<&str>,
    source: &TokenSource,
    allow_trusted: bool,
) -> Result<Option<usize>, ApiError> {
    let trusted = iss.and_then(|iss| config.trusted_issuers.iter().position(|t| t.issuer == iss));
    match trusted {
        Some(i) if allow_trusted && config.trusted_issuers.get(i).is_some_and(|t| t.source == *source) => Ok(Some(i)),
        Some(_) => Err(invalid(ValidationError::Issuer)),
        None if *source == TokenSource::Authorization => Ok(None),
        None => Err(invalid(ValidationError::Issuer)),
    }
}

/// A token this isolate verified before, if it is still valid and would be accepted from this
/// source: the same rules as a fresh verification.
fn cached(
    key: &TokenKey,
    source: &TokenSource,
    config: &Config,
    allow_trusted: bool,
    now: i64,
    epoch: u64,
) -> Result<Option<Authenticated>, ApiError> {
    let Some(hit) = VERIFIED.with(|c| c.borrow_mut().get(key, now, config.leeway, epoch)) else { return Ok(None) };
    let allowed = issuer_for(config, Some(hit.claims.iss.as_str()), source, allow_trusted)? == hit.issuer;
    if allowed {
        metrics::count(Count::TokenCacheHit);
    }
    Ok(allowed.then_some(Authenticated { verified: hit }))
}

/// [`issuer_for`] a token not verified yet: its claimed `iss` is read only when there is a choice
/// of keys to make.
fn claimed_issuer(
    config: &Config,
    untrusted: &UntrustedToken<'_>,
    source: &TokenSource,
    allow_trusted: bool,
) -> Result<Option<usize>, ApiError> {
    let iss = if config.trusted_issuers.is_empty() { None } else { untrusted.unverified_issuer() };
    issuer_for(config, iss.as_deref(), source, allow_trusted)
}

/// Verifies a token's signature and claims (no revocation), using the per-isolate cache.
async fn verify(
    token: &str,
    source: &TokenSource,
    env: &Env,
    config: &Config,
    allow_trusted: bool,
) -> Result<Authenticated, ApiError> {
    let (now, epoch, key) = (super::now_seconds(), remote_keys::epoch(), TokenKey::of(token));
    if let Some(user) = cached(&key, source, config, allow_trusted, now, epoch)? {
        return Ok(user);
    }
    let untrusted =
        UntrustedToken::parse(token).map_err(|e| ApiError::InvalidToken(TokenError::Parse(e).to_string()))?;
    let issuer = claimed_issuer(config, &untrusted, source, allow_trusted)?;
    let claims = match issuer.and_then(|i| config.trusted_issuers.get(i)) {
        None => {
            let keys = own_keys(config, env, &untrusted, now).await?;
            check(&keys, &untrusted, &config.validator(), now).await.map_err(invalid)?
        }
        Some(trusted) => {
            let kid = untrusted.kid().ok_or_else(|| invalid(ValidationError::MissingKid))?;
            let keys = remote_keys::keys_for(config, env, Source::Issuer(trusted), Need::Kid(kid), now).await?;
            // The issuer's set holds only its algorithms; checked again here all the same.
            if keys.find(kid).is_some_and(|key| !trusted.algorithms.contains(&key.alg())) {
                return Err(invalid(ValidationError::AlgMismatch));
            }
            let validator = trusted.validator(config.leeway);
            match check(&keys, &untrusted, &validator, now).await {
                // The issuer may have put new material under the same kid: look once more (the
                // cooldown bounds how often), and verify again only if the key did change.
                Err(ValidationError::BadSignature) => {
                    let fresh =
                        remote_keys::keys_for(config, env, Source::Issuer(trusted), Need::Recheck(kid), now).await?;
                    let changed = fresh.find(kid).map(|k| k.jwk_text()) != keys.find(kid).map(|k| k.jwk_text());
                    if !changed {
                        return Err(invalid(ValidationError::BadSignature));
                    }
                    check(&fresh, &untrusted, &validator, now).await.map_err(invalid)?
                }
                other => other.map_err(invalid)?,
            }
        }
    };
    let verified = Rc::new(Verified { claims, issuer });
    // The epoch read before any fetch: if this verification fetched new keys, the entry is simply
    // verified once more next time.
    VERIFIED.with(|c| c.borrow_mut().insert(key, &verified, now, config.leeway, epoch));
    Ok(Authenticated { verified })
}

/// What the fast path (`edge::fast`) can make of a token without awaiting anything.
pub enum Now {
    /// Verified: in the verified-token cache, or checked in Rust (EdDSA).
    Verified(Authenticated),
    /// Only WebCrypto's verdict is missing (RS256, ES256): the entry asks `crypto.subtle` what `ask`
    /// says, and [`verdict_now`] finishes `awaiting` with its answer. Every check before the
    /// signature is done; every check after it is [`verdict_now`]'s.
    NeedsVerdict { ask: VerdictAsk, awaiting: AwaitingVerdict },
    /// Only [`authenticate`] can decide: managed or remote keys to fetch, another issuer, and every
    /// refusal, so that refusals always get the full path's answer.
    Full,
}

/// What WebCrypto is asked: whether `signature` over `input` verifies with `key`
/// ([`webcrypto::key_object`]: the public JWK and the algorithm objects, one object per key).
#[derive(Debug)]
pub struct VerdictAsk {
    /// The key object.
    pub key: wasm_bindgen::JsValue,
    /// The signed bytes.
    pub input: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
}

/// A token of gatehouse's own waiting for WebCrypto's verdict on its signature, with the key its
/// `kid` pinned when the verdict was asked for: the verdict is about exactly this token and key.
#[derive(Debug)]
pub struct AwaitingVerdict {
    cache_key: TokenKey,
    check: AwaitingSignature,
    epoch: u64,
}

/// The fast path's verification of a token from `Authorization` (see [`Now`]).
pub fn verify_now(token: &str, config: &Config) -> Now {
    verify_now_inner(token, config).unwrap_or(Now::Full)
}

fn verify_now_inner(token: &str, config: &Config) -> Option<Now> {
    let (now, epoch, cache_key) = (super::now_seconds(), remote_keys::epoch(), TokenKey::of(token));
    let source = TokenSource::Authorization;
    if let Some(user) = cached(&cache_key, &source, config, true, now, epoch).ok()? {
        return Some(Now::Verified(user));
    }
    let untrusted = UntrustedToken::parse(token).ok()?;
    if claimed_issuer(config, &untrusted, &source, true).ok()?.is_some() {
        return None;
    }
    let kid = untrusted.kid()?;
    let keys = match config.keys.as_ref().filter(|keys| keys.find(kid).is_some()) {
        Some(keys) => keys.clone(),
        // The issuer's published set, if this isolate holds it fresh (a fetch is the full path's).
        None => {
            let jwks = config.issuer_jwks.as_ref()?;
            remote_keys::held(&Source::OwnIssuer(jwks, &config.issuer), config, kid, now)?
        }
    };
    let check = keys.begin_verify(&untrusted).ok()?;
    let key = check.key();
    if key.alg() != Algorithm::EdDsa {
        // The length rule of `webcrypto::verify_signature`: WebCrypto never picks an encoding.
        if !webcrypto::length_acceptable(key.alg(), check.signature()) {
            return None;
        }
        return Some(Now::NeedsVerdict {
            ask: VerdictAsk {
                key: webcrypto::key_object(key)?,
                input: check.signing_input().to_vec(),
                signature: check.signature().to_vec(),
            },
            awaiting: AwaitingVerdict { cache_key, check: check.awaiting(), epoch },
        });
    }
    let valid = check.verify_in_rust();
    accept_now(cache_key, check.finish(valid).ok()?, config, now, epoch).map(Now::Verified)
}

/// Finishes a [`Now::NeedsVerdict`] with WebCrypto's verdict: the claims are parsed and validated
/// only if the signature verified. `None`: the full path decides (and refuses).
pub fn verdict_now(awaiting: AwaitingVerdict, valid: bool, config: &Config) -> Option<Authenticated> {
    let verified = awaiting.check.finish(valid).ok()?;
    accept_now(awaiting.cache_key, verified, config, super::now_seconds(), awaiting.epoch)
}

/// The claim checks of a token whose signature verified, and the cache entry that skips them all
/// next time (tagged with the key sets' epoch read before the keys were chosen).
fn accept_now(
    cache_key: TokenKey,
    verified: VerifiedToken,
    config: &Config,
    now: i64,
    epoch: u64,
) -> Option<Authenticated> {
    let alg = verified.alg();
    let claims = config.validator().validate(&verified, now).ok()?;
    metrics::count(Count::Verified(alg));
    let verified = Rc::new(Verified { claims, issuer: None });
    VERIFIED.with(|c| c.borrow_mut().insert(cache_key, &verified, now, config.leeway, epoch));
    Some(Authenticated { verified })
}

/// The key set that may verify one of gatehouse's own tokens: the configured keys (`SIGNING_KEYS` or
/// `PUBLIC_KEYS`) if one of them has its `kid`, else the managed keys of the key store, else the
/// issuer's published set (`ISSUER_JWKS_URL`, an edge Worker of a split deployment).
async fn own_keys(
    config: &Config,
    env: &Env,
    untrusted: &UntrustedToken<'_>,
    now: i64,
) -> Result<Rc<KeySet>, ApiError> {
    let configured = config.keys.as_ref();
    let elsewhere = match (&config.managed, &config.issuer_jwks) {
        (Some(managed), _) => Some(Source::Managed(managed)),
        (None, Some(jwks)) => Some(Source::OwnIssuer(jwks, &config.issuer)),
        (None, None) => None,
    };
    match (configured, untrusted.kid(), elsewhere) {
        (Some(keys), Some(kid), _) if keys.find(kid).is_some() => Ok(keys.clone()),
        (_, Some(kid), Some(source)) => remote_keys::keys_for(config, env, source, Need::Kid(kid), now).await,
        // No kid, or no other keys: the configured keys run every pre-signature check (and refuse
        // the token); else say why.
        (Some(keys), _, _) => Ok(keys.clone()),
        (None, None, _) => Err(invalid(ValidationError::MissingKid)),
        // No keys of gatehouse's at all: a verifier of trusted issuers only, and this is none of them.
        (None, Some(_), None) => Err(invalid(ValidationError::Issuer)),
    }
}

/// The key-pinned signature check (WebCrypto at the edge for RS256/ES256) and the claim checks.
async fn check(
    keys: &KeySet,
    untrusted: &UntrustedToken<'_>,
    validator: &Validator,
    now: i64,
) -> Result<AccessClaims, ValidationError> {
    let check = keys.begin_verify(untrusted)?;
    let alg = check.key().alg();
    let valid =
        webcrypto::verify_signature(check.key(), check.signing_input(), check.signature(), || check.verify_in_rust())
            .await;
    let claims = check.finish(valid).and_then(|verified| validator.validate(&verified, now));
    metrics::count(if claims.is_ok() { Count::Verified(alg) } else { Count::Refused(alg) });
    claims
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
        // Outside ASCII, whatever the character's bytes: letters, digits and the set's look-alikes.
        for odd in ["abcé", "ａbc", "a٣b", "a\u{2024}b", "a\u{ff0e}b", "a\u{0}b", "a\u{7f}b"] {
            assert!(bearer_token(Some(&format!("Bearer {odd}"))).is_err(), "{odd:?}");
            assert!(credentials(Some(&format!("DPoP {odd}")), true).is_err(), "{odd:?}");
        }
        assert_eq!(bearer_token(Some("Bearer aZ09-._~+/=")), Ok(Some("aZ09-._~+/=")));
    }
}
