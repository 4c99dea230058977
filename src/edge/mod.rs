//! The worker's front door: the route table, per-isolate configuration, and one handler per route.

pub mod auth;
pub mod cors;
pub mod error;
pub mod fast;
pub mod forward;
pub mod issuer;
pub mod oauth;
pub mod remote;
pub mod webcrypto;

use crate::config::Config;
use crate::gateway::path::{self, CanonicalPath};
use crate::jwt::remote::Need;
use crate::policy::Access;
use auth::{Accept, Authenticated};
use error::ApiError;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use worker::{Env, Headers, Method, Request, Response};

thread_local! {
    /// The configuration, parsed on the first request of the isolate.
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
    /// This isolate's request-id prefix (random, made on first use) and counter.
    static REQUEST_IDS: Cell<(Option<u64>, u64)> = const { Cell::new((None, 0)) };
}

/// The configuration of this isolate, parsing it on first use. Failures are not cached: they are
/// logged and answered 500 on every request until the deployment is fixed.
pub fn config(env: &Env) -> Result<Rc<Config>, ApiError> {
    if let Some(config) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(config);
    }
    let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
    let secret = |name: &str| env.secret(name).ok().map(|v| v.to_string());
    let config =
        Rc::new(Config::from_lookup(&var, &secret).map_err(|e| ApiError::Server(format!("bad configuration: {e}")))?);
    CONFIG.with(|c| *c.borrow_mut() = Some(config.clone()));
    Ok(config)
}

/// The configuration if an earlier request of this isolate has loaded it (the fast path never
/// loads it: the full path does, and logs what is wrong with it).
pub(crate) fn config_loaded() -> Option<Rc<Config>> {
    CONFIG.with(|c| c.borrow().clone())
}

/// The routes of the worker (everything else is a static asset or 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /.well-known/jwks.json`
    Jwks,
    /// `POST /auth/register`
    Register,
    /// `POST /auth/login`
    Login,
    /// `POST /auth/refresh`
    Refresh,
    /// `POST /auth/logout`
    Logout,
    /// `POST /auth/logout-all`
    LogoutAll,
    /// `GET /auth/me`
    Me,
    /// `GET /.well-known/oauth-authorization-server` (RFC 8414)
    OAuthMetadata,
    /// `POST /oauth/token` (RFC 6749 §6, refresh grant)
    OAuthToken,
    /// `POST /oauth/revoke` (RFC 7009)
    OAuthRevoke,
    /// `POST /oauth/introspect` (RFC 7662)
    OAuthIntrospect,
    /// A path the gateway forwards: under PROTECTED_PREFIXES, PUBLIC_PREFIXES or OPTIONAL_AUTH_PREFIXES.
    Gateway,
    /// Nothing here.
    NotFound,
}

/// The request's method, if it is one of the standard ones (RFC 9110 §9 and PATCH). workers-rs
/// reads any other method (WebDAV's `PROPFIND`, say) as GET, so the raw name is checked here first.
pub fn method_of(req: &Request) -> Option<Method> {
    method_named(&req.inner().method())
}

/// The standard method of this name, if it is one (see [`method_of`]).
pub fn method_named(raw: &str) -> Option<Method> {
    let method = Method::from(raw.to_owned());
    (method.as_ref() == raw).then_some(method)
}

/// Picks the route for a method (`None`: not a standard one) and a canonical path.
pub fn route(config: &Config, method: Option<&Method>, canonical: &CanonicalPath) -> Result<Route, ApiError> {
    let only = |allowed: &[Method], allow: &'static str, route: Route| {
        if method.is_some_and(|m| allowed.contains(m)) {
            Ok(route)
        } else {
            Err(ApiError::MethodNotAllowed(allow))
        }
    };
    let path = canonical.as_str();
    match path {
        "/.well-known/jwks.json" => only(&[Method::Get, Method::Head], "GET, HEAD", Route::Jwks),
        "/auth/register" => only(&[Method::Post], "POST", Route::Register),
        "/auth/login" => only(&[Method::Post], "POST", Route::Login),
        "/auth/refresh" => only(&[Method::Post], "POST", Route::Refresh),
        "/auth/logout" => only(&[Method::Post], "POST", Route::Logout),
        "/auth/logout-all" => only(&[Method::Post], "POST", Route::LogoutAll),
        "/auth/me" => only(&[Method::Get, Method::Head], "GET, HEAD", Route::Me),
        crate::oauth::METADATA_PATH => only(&[Method::Get, Method::Head], "GET, HEAD", Route::OAuthMetadata),
        crate::oauth::TOKEN_PATH => only(&[Method::Post], "POST", Route::OAuthToken),
        crate::oauth::REVOKE_PATH => only(&[Method::Post], "POST", Route::OAuthRevoke),
        crate::oauth::INTROSPECT_PATH => only(&[Method::Post], "POST", Route::OAuthIntrospect),
        _ if config.routes.serves(canonical) => Ok(Route::Gateway),
        _ => Ok(Route::NotFound),
    }
}

/// A response and whether the worker made it or the origin did.
pub struct Reply {
    response: Response,
    own: bool,
    public: bool,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Reply { response, own: true, public: false }
    }
}

/// Handles one request: every error becomes its JSON response here, and every response gets its
/// CORS and security headers here.
pub async fn handle(req: Request, env: Env) -> worker::Result<Response> {
    let rid = request_id(req.headers());
    let config = config(&env);
    let realm = config.as_ref().map(|c| c.issuer.clone()).unwrap_or_default();
    let origin = config.as_ref().ok().and_then(|c| cors::allowed_origin(c, &req));
    let reply = match config {
        Ok(config) if cors::is_preflight(&req) => cors::preflight(&config, &req).map(Reply::from),
        Ok(_) => dispatch(req, &env, &rid).await,
        Err(e) => Err(e),
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(error) => Reply::from(error.to_response(&realm)?),
    };
    match cors::finish(reply.response, origin.as_deref(), reply.own, reply.public, &rid) {
        Ok(response) => Ok(response),
        Err(error) => error.to_response(&realm),
    }
}

/// The request id: Cloudflare's `cf-ray` when it is there and plain, else 128 random bits in hex.
pub(crate) fn request_id(headers: &Headers) -> String {
    let ray = headers.get("cf-ray").ok().flatten();
    match ray {
        Some(ray)
            if !ray.is_empty() && ray.len() <= 64 && ray.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            ray
        }
        // 64 random bits per isolate and a counter: unique, and no randomness to fetch per request.
        _ => REQUEST_IDS.with(|ids| {
            let (prefix, count) = ids.get();
            let prefix = prefix.unwrap_or_else(|| {
                let mut bytes = [0u8; 8];
                // Without randomness the ids are still unique enough for logs: fall back to the clock.
                if getrandom::getrandom(&mut bytes).is_err() {
                    bytes = worker::Date::now().as_millis().to_be_bytes();
                }
                u64::from_be_bytes(bytes)
            });
            ids.set((Some(prefix), count.wrapping_add(1)));
            format!("{prefix:016x}{count:016x}")
        }),
    }
}
async fn dispatch(req: Request, env: &Env, rid: &str) -> Result<Reply, ApiError> {
    let config = config(env)?;
    let path = canonical_path(&req.inner().url())?;
    let response = match route(&config, method_of(&req).as_ref(), &path)? {
        Route::Jwks => return Ok(Reply { response: jwks(&config, env).await?, own: true, public: true }),
        Route::Register => issuer::register(req, env, rid).await,
        Route::Login => issuer::login(req, env, rid).await,
        Route::Refresh => issuer::refresh(req, env, &config, rid).await,
        Route::Logout => issuer::logout(req, env, &config, rid).await,
        Route::LogoutAll => issuer::logout_all(req, env, &config, rid).await,
        Route::Me => issuer::me(&auth::authenticate(&req, env, &config, Accept::Own).await?),
        Route::OAuthMetadata => return Ok(Reply { response: oauth::metadata(&config)?, own: true, public: true }),
        Route::OAuthToken => oauth::token(req, env, rid).await,
        Route::OAuthRevoke => oauth::revoke(req, env, &config, rid).await,
        Route::OAuthIntrospect => oauth::introspect(req, env, &config, rid).await,
        Route::Gateway => return gateway(req, &path, &config, env, rid).await,
        Route::NotFound => Err(ApiError::NotFound),
    }?;
    Ok(Reply::from(response))
}

/// Why a capped read of a body stopped.
pub(crate) enum ReadError {
    /// The body is longer than the cap (the rest is not read).
    TooLarge,
    /// The stream failed.
    Stream(worker::Error),
}

/// Reads a body stream whole, stopping as soon as it is longer than `max` bytes.
pub(crate) async fn read_capped(mut stream: worker::ByteStream, max: usize) -> Result<Vec<u8>, ReadError> {
    use futures_util::StreamExt;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ReadError::Stream)?;
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(crate) fn json_response(value: &serde_json::Value, status: u16, cache: &str) -> Result<Response, ApiError> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", cache)?;
    Ok(Response::from_bytes(value.to_string().into_bytes())?.with_status(status).with_headers(headers))
}

/// `GET /.well-known/jwks.json`: the public halves of the configured keys, and of the managed keys
/// the key store publishes (the next key before it signs, a retired one until its tokens expired).
async fn jwks(config: &Config, env: &Env) -> Result<Response, ApiError> {
    let mut keys: Vec<serde_json::Value> = Vec::new();
    if let Some(set) = &config.keys {
        keys.extend(set.keys().iter().map(|k| k.to_jwk()));
    }
    if let Some(managed) = &config.managed {
        let now = (worker::Date::now().as_millis() / 1000) as i64;
        let set = remote::keys_for(config, env, remote::Source::Managed(managed), Need::Set, now).await?;
        keys.extend(
            set.keys()
                .iter()
                .filter(|k| config.keys.as_ref().is_none_or(|c| c.find(k.kid()).is_none()))
                .map(|k| k.to_jwk()),
        );
    }
    json_response(&serde_json::json!({ "keys": keys }), 200, "public, max-age=300")
}

/// The canonical path of a request URL (`Request.url` as the runtime gives it, without a second
/// parse): what is routed, matched and forwarded. A path some origin would read otherwise is 400.
pub(crate) fn canonical_path(url: &str) -> Result<CanonicalPath, ApiError> {
    let raw = path::url_path(url).unwrap_or("/");
    path::canonicalize(raw).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

/// A path the gateway forwards: the token its route needs (none for a public one, optional for an
/// optional-auth one), its policies, then the origin or the built-in whoami.
async fn gateway(req: Request, path: &CanonicalPath, config: &Config, env: &Env, rid: &str) -> Result<Reply, ApiError> {
    let decision = config.routes.decide(path).ok_or(ApiError::NotFound)?;
    let user = match decision.access {
        Access::Public => None,
        // No credentials at all: anonymous. Credentials that fail are refused (401), as Envoy's
        // `allow_missing` does: a client that sent a token means to be someone.
        Access::Optional => match auth::authenticate(&req, env, config, Accept::Any).await {
            Err(ApiError::MissingToken) => None,
            other => Some(other?),
        },
        Access::Protected => Some(auth::authenticate(&req, env, config, Accept::Any).await?),
    };
    if let Some(user) = &user {
        decision
            .check(user.claims())
            .map_err(|d| ApiError::InsufficientScope { reason: d.reason, scope: d.required_scope })?;
    }
    match (&config.origin_url, &user) {
        (Some(origin), _) => {
            let response = forward::forward(req, origin, path, user.as_ref(), config, rid).await?;
            Ok(Reply { response, own: false, public: false })
        }
        (None, Some(user)) if path.as_str() == "/api/whoami" => match method_of(&req) {
            Some(Method::Get | Method::Head) => whoami(user).map(Reply::from),
            _ => Err(ApiError::MethodNotAllowed("GET, HEAD")),
        },
        (None, None) if path.as_str() == "/api/whoami" => Err(ApiError::MissingToken),
        (None, _) => Err(ApiError::NotFound),
    }
}

/// `GET /api/whoami` without ORIGIN_URL: the verified claims.
pub(crate) fn whoami(user: &Authenticated) -> Result<Response, ApiError> {
    let headers = Headers::new();
    for (name, value) in WHOAMI_HEADERS {
        headers.set(name, value)?;
    }
    Ok(Response::from_bytes(whoami_body(user)?.into_bytes())?.with_headers(headers))
}

/// The headers of the whoami answer, before `cors::finish` adds the worker's own.
pub(crate) const WHOAMI_HEADERS: [(&str, &str); 2] =
    [("content-type", "application/json"), ("cache-control", "no-store")];

/// The body of the whoami answer: the verified claims.
pub(crate) fn whoami_body(user: &Authenticated) -> Result<String, ApiError> {
    serde_json::to_string(user.claims()).map_err(|e| ApiError::Server(e.to_string()))
}
