//! The standard OAuth 2.0 endpoints in the worker: RFC 8414 metadata, the refresh-token grant of the
//! token endpoint (RFC 6749 §6), RFC 7009 revocation and RFC 7662 introspection. Pure parts are in
//! [`crate::oauth`]; the account objects stay the authority for refresh tokens.

use super::accounts::{by_id, call, done, outcome, tokens, unexpected, with_nonce};
use crate::account::protocol::{AccountOutcome, AccountRequest, Refusal};
use crate::config::{Config, CLIENT_ID};
use crate::error::ApiError;
use crate::input::RefreshToken;
use crate::jwt::{b64, UntrustedToken};
use crate::oauth::{self, ClientAuth, Form};
use crate::web::response::{self, read_body};
use crate::web::verify::{self, Authenticated};
use crate::web::{denylist, dpop, Reply};
use worker::{Env, Request, Response};

impl From<oauth::FormError> for ApiError {
    fn from(e: oauth::FormError) -> Self {
        ApiError::InvalidRequest(e.to_string())
    }
}

/// Reads a form-encoded body (RFC 6749 §3.2), refusing other content types.
async fn read_form(req: &mut Request) -> Result<Form, ApiError> {
    let content_type = req.headers().get("content-type")?;
    let body = read_body(req).await?;
    if !oauth::is_form_content_type(content_type.as_deref()) {
        return Err(oauth::FormError::ContentType.into());
    }
    Ok(Form::parse(&body)?)
}

fn client_auth(req: &Request, form: &Form) -> Result<ClientAuth, ApiError> {
    let authorization = req.headers().get("authorization")?;
    Ok(oauth::client_auth(authorization.as_deref(), form)?)
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414 §3), with
/// `dpop_signing_alg_values_supported` (RFC 9449 §5.1) when DPoP is on.
pub fn metadata(config: &Config) -> Result<Response, ApiError> {
    let mut doc = oauth::metadata(&config.issuer, !config.introspection_clients.is_empty());
    if config.dpop.is_on() {
        oauth::add_dpop_algs(&mut doc, &crate::jwt::dpop::ProofPolicy::default().alg_names());
    }
    response::json(&doc, 200, "public, max-age=300")
}

/// A JSON answer that must never be cached (RFC 6749 §5.1).
fn no_store(value: &serde_json::Value) -> Result<Reply, ApiError> {
    let response = response::json(value, 200, "no-store")?;
    response.headers().set("pragma", "no-cache")?;
    Ok(response.into())
}

/// `POST /oauth/token` with `grant_type=refresh_token` (RFC 6749 §6), for the public client
/// `gatehouse`: the same rotation as `/auth/refresh` (and the same DPoP binding, RFC 9449 §5), in
/// the standard shape.
pub async fn token(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    // Only the refresh grant exists; a password grant would count as a login (`Action::Login`).
    crate::web::limits::admit(env, &req, crate::limits::Action::Refresh).await?;
    let form = read_form(&mut req).await?;
    match form.get("grant_type") {
        None => return Err(ApiError::InvalidRequest("parameter grant_type is missing".into())),
        Some("refresh_token") => {}
        Some(_) => return Err(ApiError::UnsupportedGrantType),
    }
    // gatehouse's client is public: no secret to check, and no other client exists here.
    match client_auth(&req, &form)? {
        ClientAuth::Secret { .. } => return Err(ApiError::InvalidClient),
        ClientAuth::None if form.get("client_id").is_some_and(|id| id != CLIENT_ID) => {
            return Err(ApiError::InvalidClient)
        }
        ClientAuth::None => {}
    }
    let text = form.require("refresh_token")?;
    let token = RefreshToken::parse(text).ok_or(ApiError::GrantRefused)?;
    let jkt = dpop::token_request_key(&req, config, false).await?;
    let stub = by_id(env, &token.account, ApiError::GrantRefused)?;
    let request = AccountRequest::Refresh {
        sid: token.sid,
        secret: b64::encode(token.secret),
        scope: form.get("scope").map(str::to_owned),
        jkt,
    };
    let answer = call(stub, &request, rid).await?;
    if let AccountOutcome::Refused { refusal: Refusal::InvalidGrant } = answer {
        // Maybe a reuse that revoked the session: this isolate stops trusting its cached read.
        denylist::forget(&token.account);
        // RFC 6749 §5.2: the token endpoint answers invalid_grant with 400.
        return Err(ApiError::GrantRefused);
    }
    let pair = tokens(answer)?;
    let scope = UntrustedToken::parse(&pair.access_token)
        .ok()
        .and_then(|t| t.unverified_claim("scope"))
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let answer = no_store(&serde_json::json!({
        "access_token": pair.access_token,
        "token_type": pair.token_type,
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
        "scope": scope,
    }))?;
    Ok(with_nonce(answer.response, config)?.into())
}

/// Checks the credentials a caller of revocation may send: none (a public client, whose possession
/// of the token is the proof), or those of a configured introspection client.
fn optional_client(req: &Request, form: &Form, config: &Config) -> Result<(), ApiError> {
    match client_auth(req, form)? {
        ClientAuth::None => Ok(()),
        ClientAuth::Secret { id, secret } if config.introspection_clients.authenticate(&id, &secret) => Ok(()),
        ClientAuth::Secret { .. } => Err(ApiError::InvalidClient),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 for every well-formed request, whether or not the token
/// was valid (§2.2). A refresh token ends its whole session (and the session's access tokens at
/// the edge); an access token is denylisted by its `jti` until it would have expired.
pub async fn revoke(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let form = read_form(&mut req).await?;
    optional_client(&req, &form, config)?;
    let token = form.require("token")?;
    // token_type_hint only says where to look first (§2.1); both kinds are tried by their shape.
    if let Some(refresh) = RefreshToken::parse(token) {
        if let Ok(stub) = by_id(env, &refresh.account, ApiError::GrantRefused) {
            let request = AccountRequest::RevokeRefresh { sid: refresh.sid, secret: b64::encode(refresh.secret) };
            done(call(stub, &request, rid).await?)?;
            denylist::forget(&refresh.account);
        }
    } else if let Some(user) = own_access_token(token, env, config).await? {
        let claims = user.claims();
        if let (Some(jti), Ok(stub)) = (&claims.jti, by_id(env, &claims.sub, ApiError::GrantRefused)) {
            let request = AccountRequest::RevokeAccess { jti: jti.clone(), exp: claims.exp };
            done(call(stub, &request, rid).await?)?;
            denylist::forget(&claims.sub);
        }
    }
    let response = Response::empty()?.with_status(200);
    response.headers().set("cache-control", "no-store")?;
    Ok(response.into())
}

/// A gatehouse access token that verifies, or `None` for anything else (invalid, expired,
/// another issuer's): RFC 7009 and 7662 treat those alike.
async fn own_access_token(token: &str, env: &Env, config: &Config) -> Result<Option<Authenticated>, ApiError> {
    match verify::verify_own_token(token, env, config).await {
        Ok(user) => Ok(Some(user)),
        Err(ApiError::InvalidToken(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

/// `POST /oauth/introspect` (RFC 7662): for authenticated clients only; anything not active is
/// exactly `{"active": false}`.
pub async fn introspect(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let form = read_form(&mut req).await?;
    match client_auth(&req, &form)? {
        ClientAuth::Secret { id, secret } if config.introspection_clients.authenticate(&id, &secret) => {}
        _ => return Err(ApiError::InvalidClient),
    }
    let token = form.require("token")?;
    if let Some(refresh) = RefreshToken::parse(token) {
        let Ok(stub) = by_id(env, &refresh.account, ApiError::GrantRefused) else {
            return no_store(&oauth::inactive());
        };
        let request = AccountRequest::IntrospectRefresh { sid: refresh.sid, secret: b64::encode(refresh.secret) };
        return match outcome(call(stub, &request, rid).await?)? {
            AccountOutcome::Introspection { answer } => no_store(&answer),
            other => Err(unexpected(&other)),
        };
    }
    let Some(user) = own_access_token(token, env, config).await? else { return no_store(&oauth::inactive()) };
    match denylist::check_now(env, user.claims()).await {
        Ok(()) => no_store(&oauth::active_access_token(user.claims())),
        Err(ApiError::InvalidToken(_)) => no_store(&oauth::inactive()),
        Err(other) => Err(other),
    }
}
