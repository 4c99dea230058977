//! The issuer's routes in the worker: validate input, pick the account object, call it, and put the
//! refresh token on the requested transport (body or `__Host-` cookie, RFC 6265bis §4.1.3.2).

use super::auth::{self, Authenticated};
use super::error::ApiError;
use super::{json_response, read_capped, ReadError};
use crate::account::{AccountRequest, TokenIds, TokenPair, REQUEST_ID_HEADER};
use crate::config::{self, Config};
use crate::input::{self, InputError, RefreshToken, Transport, MAX_BODY_BYTES};
use cookie::{Cookie, SameSite};
use worker::{Env, Headers, Method, Request, RequestInit, Response};

/// The refresh-token cookie (API.md "login").
pub const COOKIE_NAME: &str = "__Host-gatehouse_rt";
/// The Durable Object namespace of accounts.
pub const ACCOUNTS_BINDING: &str = "ACCOUNTS";

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::TooLarge => ApiError::PayloadTooLarge,
            InputError::WeakPassword => ApiError::WeakPassword,
            other => ApiError::InvalidRequest(other.describe()),
        }
    }
}

/// Reads a JSON request body, refusing other content types and stopping at [`MAX_BODY_BYTES`]
/// without reading the rest.
async fn read_json_body(req: &mut Request, allow_empty: bool) -> Result<Vec<u8>, ApiError> {
    let content_type = req.headers().get("content-type")?;
    let body = read_body(req).await?;
    if body.is_empty() && allow_empty {
        return Ok(body);
    }
    if !input::is_json_content_type(content_type.as_deref()) {
        return Err(ApiError::InvalidRequest(InputError::ContentType.describe()));
    }
    Ok(body)
}

/// Reads a request body, stopping at [`MAX_BODY_BYTES`] without reading the rest (413).
pub(crate) async fn read_body(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    let declared = req.headers().get("content-length")?.and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    read_capped(req.stream()?, MAX_BODY_BYTES).await.map_err(|e| match e {
        ReadError::TooLarge => ApiError::PayloadTooLarge,
        ReadError::Stream(e) => ApiError::InvalidRequest(format!("body could not be read: {e}")),
    })
}

fn accounts(env: &Env) -> Result<worker::ObjectNamespace, ApiError> {
    env.durable_object(ACCOUNTS_BINDING).map_err(|e| ApiError::Server(format!("ACCOUNTS binding: {e}")))
}

/// Sends a request to an account object. Its error responses are final (made by the same
/// [`ApiError::to_response`]); a failure to reach it is retryable.
pub(crate) async fn call(stub: worker::Stub, request: &AccountRequest, request_id: &str) -> Result<Response, ApiError> {
    let body = serde_json::to_string(request).map_err(|e| ApiError::Server(e.to_string()))?;
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set(REQUEST_ID_HEADER, request_id)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
    let req = Request::new_with_init("https://account.internal/", &init)?;
    stub.fetch_with_request(req).await.map_err(|e| ApiError::Unavailable(format!("account object: {e}")))
}

fn by_email(env: &Env, email: &str) -> Result<worker::Stub, ApiError> {
    Ok(accounts(env)?.id_from_name(&format!("email:{email}"))?.get_stub()?)
}

/// The object a refresh token or a `sub` names; an id this namespace did not make is refused.
pub(crate) fn by_id(env: &Env, hex_id: &str, on_bad_id: ApiError) -> Result<worker::Stub, ApiError> {
    let namespace = accounts(env)?;
    let id = namespace.id_from_string(hex_id).map_err(|_| on_bad_id)?;
    Ok(id.get_stub()?)
}

/// `Set-Cookie` for the refresh token, or for clearing it (`max_age` 0).
pub fn refresh_cookie(value: &str, max_age: i64) -> String {
    Cookie::build((COOKIE_NAME, value.to_owned()))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age.max(0)))
        .build()
        .to_string()
}

/// The refresh token of the request's `Cookie` header, if any.
pub fn cookie_token(header: Option<&str>) -> Option<String> {
    Cookie::split_parse(header?).filter_map(Result::ok).find(|c| c.name() == COOKIE_NAME).map(|c| c.value().to_owned())
}

/// Whether a cookie-borne request comes from an allowed origin (the worker's own, or ALLOWED_ORIGINS).
pub fn origin_allowed(config: &Config, own_origin: &str, origin: Option<&str>) -> bool {
    let Some(origin) = origin.and_then(config::parse_origin) else { return false };
    origin == own_origin || config.allowed_origins.contains(&origin)
}

fn own_origin(req: &Request) -> Result<String, ApiError> {
    Ok(req.url()?.origin().ascii_serialization())
}

/// Moves the refresh token of a successful login or refresh to the requested transport.
async fn deliver(mut response: Response, transport: Transport) -> Result<Response, ApiError> {
    if response.status_code() != 200 {
        return Ok(response);
    }
    let pair: TokenPair = response.json().await?;
    let mut body = serde_json::to_value(&pair).map_err(|e| ApiError::Server(e.to_string()))?;
    if transport == Transport::Body {
        return json_response(&body, 200, "no-store");
    }
    if let Some(fields) = body.as_object_mut() {
        fields.remove("refresh_token");
    }
    let response = json_response(&body, 200, "no-store")?;
    response.headers().set("set-cookie", &refresh_cookie(&pair.refresh_token, pair.refresh_expires_in))?;
    Ok(response)
}

/// `POST /auth/register`.
pub async fn register(mut req: Request, env: &Env, rid: &str) -> Result<Response, ApiError> {
    let creds = input::register(&read_json_body(&mut req, false).await?)?;
    let stub = by_email(env, &creds.email)?;
    call(stub, &AccountRequest::Register { email: creds.email, password: creds.password }, rid).await
}

/// `POST /auth/login`.
pub async fn login(mut req: Request, env: &Env, rid: &str) -> Result<Response, ApiError> {
    let (creds, transport) = input::login(&read_json_body(&mut req, false).await?)?;
    let namespace = accounts(env)?;
    let id = namespace.id_from_name(&format!("email:{}", creds.email))?;
    let sub = id.to_string();
    let response =
        call(id.get_stub()?, &AccountRequest::Login { email: creds.email, password: creds.password }, rid).await?;
    if response.status_code() == 200 {
        // A login beyond the session limit ends (and denylists) the least recently used session.
        auth::forget_revocations(&sub);
    }
    deliver(response, transport).await
}

/// `POST /auth/refresh`: the token from the body, or else from the cookie (with an allowed `Origin`).
pub async fn refresh(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Response, ApiError> {
    let from_body = input::refresh(&read_json_body(&mut req, true).await?)?;
    let (text, transport) = match from_body {
        Some(token) => (token, Transport::Body),
        None => {
            let token = cookie_token(req.headers().get("cookie")?.as_deref())
                .ok_or_else(|| ApiError::InvalidRequest("refresh_token is missing".into()))?;
            let origin = req.headers().get("origin")?;
            if !origin_allowed(config, &own_origin(&req)?, origin.as_deref()) {
                return Err(ApiError::ForbiddenOrigin);
            }
            (token, Transport::Cookie)
        }
    };
    let token = RefreshToken::parse(&text).ok_or(ApiError::InvalidGrant)?;
    let stub = by_id(env, &token.account, ApiError::InvalidGrant)?;
    let request =
        AccountRequest::Refresh { sid: token.sid, secret: crate::jwt::b64::encode(token.secret), scope: None };
    let response = call(stub, &request, rid).await?;
    if response.status_code() == 401 {
        // Maybe a reuse that revoked the session: this isolate stops trusting its cached read.
        auth::forget_revocations(&token.account);
    }
    deliver(response, transport).await
}

async fn end_sessions(req: &Request, env: &Env, config: &Config, all: bool, rid: &str) -> Result<Response, ApiError> {
    let user = auth::authenticate(req, env, config, auth::Accept::OwnForLogout).await?;
    let claims = user.claims();
    let stub = by_id(env, &claims.sub, ApiError::InvalidToken("token names no account".into()))?;
    let token = TokenIds { iat: claims.iat, sid: claims.sid.clone(), jti: claims.jti.clone() };
    let request = match (&claims.sid, all) {
        (_, true) => AccountRequest::LogoutAll { token },
        (Some(sid), false) => AccountRequest::Logout { sid: sid.clone(), token },
        (None, false) => return Err(ApiError::InvalidToken("token has no session".into())),
    };
    let response = call(stub, &request, rid).await?;
    if response.status_code() != 204 {
        return Ok(response);
    }
    auth::forget_revocations(&claims.sub);
    let response = Response::empty()?.with_status(204);
    response.headers().set("set-cookie", &refresh_cookie("", 0))?;
    response.headers().set("cache-control", "no-store")?;
    Ok(response)
}

/// `POST /auth/logout`: idempotent, so a token whose session is already revoked may still call it
/// (the account object, the authority, then changes nothing).
pub async fn logout(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Response, ApiError> {
    end_sessions(&req, env, config, false, rid).await
}

/// `POST /auth/logout-all`.
pub async fn logout_all(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Response, ApiError> {
    end_sessions(&req, env, config, true, rid).await
}

/// `GET /auth/me`: who the (non-revoked) access token belongs to.
pub fn me(user: &Authenticated) -> Result<Response, ApiError> {
    let c = user.claims();
    let body = serde_json::json!({
        "sub": c.sub, "email": c.email, "roles": c.roles, "scope": c.scope, "sid": c.sid, "exp": c.exp,
    });
    json_response(&body, 200, "no-store")
}
