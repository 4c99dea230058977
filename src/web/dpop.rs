//! DPoP (RFC 9449) in both Workers: the proof of a request checked against the request as this
//! Worker sees it (method and URL), its signature (ES256 through WebCrypto, EdDSA in Rust), the
//! server nonce, the per-isolate replay memory, and how an access token was presented (the `DPoP`
//! or the `Bearer` scheme) against its `cnf.jkt`. The pure rules are `jwt::dpop`; the answers
//! (`WWW-Authenticate: DPoP …`, `DPoP-Nonce`) are made by `error::ApiError`.
//!
//! The edge's synchronous fast path decides EdDSA proofs with the same functions as the full path:
//! [`check_presentation`] and [`check_presentation_now`] share [`parse`] and [`complete`] and
//! differ only in how the signature verdict is obtained (WebCrypto, or the Rust primitive that
//! WebCrypto's wrapper uses for EdDSA anyway), and the fast path remembers the proof
//! ([`remember_now`]) only once nothing else can make it hand the request to the full path.

use super::webcrypto;
use crate::config::{Config, DpopMode};
use crate::error::{ApiError, DpopSite};
use crate::jwt::dpop::{
    self, issue_nonce, AuthScheme, JtiReplayCache, NonceRule, ProofCheck, ProofError, ProofErrorCode, ProofPolicy,
    ProofRequest, UntrustedProof, VerifiedProof,
};
use crate::jwt::Algorithm;
use std::cell::RefCell;
use worker::{Headers, Request};

thread_local! {
    /// The proofs this isolate accepted whose window is still open (RFC 9449 §11.1; the bound
    /// across isolates is in docs/DPOP.md).
    static REPLAY: RefCell<JtiReplayCache> = RefCell::new(JtiReplayCache::default());
    /// The proof rules (the RFC 9449 §4.3 defaults), made once per isolate.
    static POLICY: ProofPolicy = ProofPolicy::default();
}

/// The `DPoP` request header (RFC 9449 §4.1).
pub const PROOF_HEADER: &str = "dpop";

/// The answer for a refused proof or binding, at a resource or a token endpoint: `use_dpop_nonce`
/// comes with a fresh nonce (RFC 9449 §8, §9).
pub fn refusal(error: ProofError, config: &Config, at: DpopSite, now: i64) -> ApiError {
    match (error.code(), &config.dpop.nonce) {
        (ProofErrorCode::UseDpopNonce, Some(key)) => ApiError::UseDpopNonce { nonce: issue_nonce(key, now), at },
        (ProofErrorCode::InvalidToken, _) => ApiError::DpopInvalidToken(error.to_string()),
        _ => ApiError::InvalidDpopProof { why: error.to_string(), at },
    }
}

/// How proofs' nonces are checked: against the configured nonce key, or not at all.
fn nonce_rule(config: &Config) -> NonceRule<'_> {
    match &config.dpop.nonce {
        Some(key) => NonceRule::Stateless { key, max_age: config.dpop.nonce_max_age },
        None => NonceRule::NotRequired,
    }
}

/// The proof of a request: its header value, with every check that needs no signature.
fn parse(value: Option<&str>) -> Result<UntrustedProof<'_>, ProofError> {
    POLICY.with(|policy| UntrustedProof::parse(value.unwrap_or_default(), policy))
}

/// What a proof must match: the request as this Worker sees it.
#[derive(Debug, Clone, Copy)]
struct Seen<'a> {
    method: &'a str,
    url: &'a str,
    access_token: Option<&'a str>,
}

/// The rest of a proof's checks once its signature verdict is in: the claims against the request
/// and the nonce (RFC 9449 §4.3), then, with an access token, that the proof's key is the one the
/// token is bound to (§6.1, §7.1).
fn complete(
    check: ProofCheck<'_>,
    valid: bool,
    seen: Seen<'_>,
    token_jkt: Option<&str>,
    config: &Config,
    now: i64,
) -> Result<VerifiedProof, ProofError> {
    let request =
        ProofRequest { method: seen.method, url: seen.url, access_token: seen.access_token, nonce: nonce_rule(config) };
    let proof = check.finish(valid, &request, now)?;
    if seen.access_token.is_some() {
        dpop::check_presentation(AuthScheme::Dpop, token_jkt, Some(&proof))?;
    }
    Ok(proof)
}

/// The signature verdict the full path gets: ES256 through WebCrypto, EdDSA in Rust.
async fn signature(check: &ProofCheck<'_>) -> bool {
    webcrypto::verify_proof_signature(check.key(), check.signing_input(), check.signature(), || check.verify_in_rust())
        .await
}

/// Remembers an accepted proof; a proof seen before within its window is refused (RFC 9449 §11.1).
fn remember(proof: &VerifiedProof, now: i64) -> Result<(), ProofError> {
    REPLAY.with(|cache| cache.borrow_mut().check_and_remember(proof, now))
}

/// Verifies the proof a request brings for `access_token` (or for none), and remembers it.
async fn verify(
    value: Option<&str>,
    seen: Seen<'_>,
    token_jkt: Option<&str>,
    config: &Config,
    now: i64,
) -> Result<VerifiedProof, ProofError> {
    let proof = parse(value)?;
    let check = proof.begin_verify();
    let valid = signature(&check).await;
    let verified = complete(check, valid, seen, token_jkt, config, now)?;
    remember(&verified, now)?;
    Ok(verified)
}

/// A bearer presentation (RFC 6750): refused for a DPoP-bound token (RFC 9449 §7.2) and, with
/// `DPOP_MODE=required`, for gatehouse's own tokens.
fn bearer_allowed(config: &Config, token_jkt: Option<&str>, own: bool) -> Result<(), ApiError> {
    dpop::check_presentation(AuthScheme::Bearer, token_jkt, None)
        .map_err(|e| ApiError::DpopInvalidToken(e.to_string()))?;
    if own && config.dpop.mode == DpopMode::Required {
        return Err(ApiError::DpopInvalidToken("a DPoP-bound access token is required".into()));
    }
    Ok(())
}

/// The text of the `DPoP` header, if there is one.
fn header(headers: &Headers) -> Result<Option<String>, ApiError> {
    Ok(headers.get(PROOF_HEADER)?)
}

/// Checks how a verified access token was presented (RFC 9449 §7): with `Bearer`, that it may be
/// a bearer token; with `DPoP`, the request's proof for it, made with the key of its `cnf.jkt`.
/// `token_jkt` is the token's `cnf.jkt`; `own`: whether gatehouse issued it.
pub async fn check_presentation(
    req: &Request,
    config: &Config,
    scheme: AuthScheme,
    token: &str,
    token_jkt: Option<&str>,
    own: bool,
) -> Result<(), ApiError> {
    if scheme == AuthScheme::Bearer {
        return bearer_allowed(config, token_jkt, own);
    }
    let now = super::now_seconds();
    let value = header(req.headers())?;
    let (method, url) = (req.inner().method(), req.inner().url());
    let seen = Seen { method: &method, url: &url, access_token: Some(token) };
    verify(value.as_deref(), seen, token_jkt, config, now)
        .await
        .map(|_| ())
        .map_err(|e| refusal(e, config, DpopSite::Resource, now))
}

/// [`check_presentation`] without awaiting, for the edge's fast path: `Some(None)` for an accepted
/// bearer presentation, `Some(Some(proof))` for a `DPoP` one whose EdDSA proof passed every check
/// but replay (the caller calls [`remember_now`] last), `None` for anything else (an ES256 proof,
/// any refusal), which the full path then decides.
pub fn check_presentation_now(
    headers: &Headers,
    method: &str,
    url: &str,
    config: &Config,
    (scheme, token): (AuthScheme, &str),
    token_jkt: Option<&str>,
    own: bool,
) -> Option<Option<VerifiedProof>> {
    if scheme == AuthScheme::Bearer {
        return bearer_allowed(config, token_jkt, own).ok().map(|()| None);
    }
    let value = header(headers).ok()?;
    let proof = parse(value.as_deref()).ok()?;
    let check = proof.begin_verify();
    if check.key().alg() != Algorithm::EdDsa {
        return None;
    }
    // What `webcrypto::verify_proof_signature` answers for EdDSA.
    let valid = check.verify_in_rust();
    let seen = Seen { method, url, access_token: Some(token) };
    complete(check, valid, seen, token_jkt, config, super::now_seconds()).ok().map(Some)
}

/// Remembers a proof the fast path accepted, as the last step before it answers; `None` (replayed,
/// or the memory full) hands the request to the full path, which refuses it.
pub fn remember_now(proof: &VerifiedProof) -> Option<()> {
    remember(proof, super::now_seconds()).ok()
}

/// The DPoP key of a token request (login, refresh, `/oauth/token`; RFC 9449 §5): the thumbprint of
/// the key of the request's proof, checked against the request, or `None` without a proof where
/// DPoP is optional, and always where it is off (the `DPoP` header is then ignored). `required`:
/// a proof must come (`invalid_dpop_proof` without one).
pub async fn token_request_key(req: &Request, config: &Config, required: bool) -> Result<Option<String>, ApiError> {
    if !config.dpop.is_on() {
        return Ok(None);
    }
    let now = super::now_seconds();
    let value = header(req.headers())?;
    if value.is_none() && !required {
        return Ok(None);
    }
    let (method, url) = (req.inner().method(), req.inner().url());
    let seen = Seen { method: &method, url: &url, access_token: None };
    let proof = verify(value.as_deref(), seen, None, config, now)
        .await
        .map_err(|e| refusal(e, config, DpopSite::TokenEndpoint, now))?;
    Ok(Some(proof.jkt().to_owned()))
}

/// A fresh server nonce for a token endpoint's answer, when nonces are on (RFC 9449 §8.2: the
/// client keeps the latest one and saves a round trip).
pub fn fresh_nonce(config: &Config) -> Option<String> {
    config.dpop.nonce.as_ref().map(|key| issue_nonce(key, super::now_seconds()))
}

/// A refusal of a request that presented its token with the `DPoP` scheme gets a `DPoP`
/// challenge (RFC 9449 §7.1) rather than a `Bearer` one; a missing token where DPoP is required
/// gets the `DPoP` challenge without an error code.
pub fn in_scheme(error: ApiError, scheme: Option<AuthScheme>, config: &Config) -> ApiError {
    match (error, scheme) {
        (ApiError::InvalidToken(why), Some(AuthScheme::Dpop)) => ApiError::DpopInvalidToken(why),
        (ApiError::MissingToken, None) if config.dpop.mode == DpopMode::Required => ApiError::DpopRequired,
        (other, _) => other,
    }
}
