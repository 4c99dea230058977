//! CORS for the API (only ALLOWED_ORIGINS, with credentials; the JWKS to anyone) and the security
//! headers of the worker's own responses. Static assets get theirs from `www/_headers`.

use crate::config::{self, Config};
use crate::error::ApiError;
use worker::{Headers, Method, Request, Response};

/// Security headers on every response the worker itself makes (JSON never renders, frames nothing).
pub const OWN_SECURITY_HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
];

/// The `Vary` of every response the worker itself makes.
pub const OWN_VARY: (&str, &str) = ("vary", "Origin");

/// The request's `Origin` if it is one of ALLOWED_ORIGINS (the worker's own origin needs no CORS).
pub fn allowed_origin(config: &Config, req: &Request) -> Option<String> {
    let origin = req.headers().get("origin").ok().flatten()?;
    let origin = config::parse_origin(&origin)?;
    config.allowed_origins.contains(&origin).then_some(origin)
}

/// Whether the request is a CORS preflight.
pub fn is_preflight(req: &Request) -> bool {
    req.method() == Method::Options
        && req.headers().has("origin").unwrap_or(false)
        && req.headers().has("access-control-request-method").unwrap_or(false)
}

/// Answers a preflight: 204 with the allowances for an allowed origin (`CORS_ALLOW_METHODS`,
/// `CORS_ALLOW_HEADERS`, `CORS_MAX_AGE`), 403 for any other.
pub fn preflight(config: &Config, req: &Request) -> Result<Response, ApiError> {
    let Some(origin) = allowed_origin(config, req) else { return Err(ApiError::ForbiddenOrigin) };
    let headers = Headers::new();
    headers.set("access-control-allow-origin", &origin)?;
    headers.set("access-control-allow-credentials", "true")?;
    headers.set("access-control-allow-methods", &config.gateway.cors_allow_methods)?;
    headers.set("access-control-allow-headers", &allowed_headers(config))?;
    headers.set("access-control-max-age", &config.gateway.cors_max_age.to_string())?;
    headers.set("vary", "Origin")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

/// `CORS_ALLOW_HEADERS`, plus `DPoP` (the proof header, RFC 9449 §4.1) when DPoP is on and the
/// list does not name it already.
fn allowed_headers(config: &Config) -> String {
    let configured = &config.gateway.cors_allow_headers;
    let listed = configured.split(',').any(|h| h.trim().eq_ignore_ascii_case("dpop"));
    if !config.dpop.is_on() || listed {
        return configured.clone();
    }
    if configured.is_empty() {
        "dpop".into()
    } else {
        format!("{configured}, dpop")
    }
}

/// The response headers a page on an allowed origin may read: the challenges, the retry hints,
/// the request id, and for DPoP clients the server nonce (RFC 9449 §8) and the server's clock.
pub const EXPOSED_HEADERS: &str = "WWW-Authenticate, Retry-After, X-Request-Id, DPoP-Nonce, Date";

/// Adds `X-Request-Id`, CORS for `origin` and, for the worker's own responses, the security headers
/// and `Vary: Origin`. `public` marks a resource anyone may read (JWKS). The worker's own responses
/// are changed in place; an origin's (whose headers the runtime keeps immutable) get a copy.
pub fn finish(
    response: Response,
    origin: Option<&str>,
    own: bool,
    public: bool,
    request_id: &str,
) -> Result<Response, ApiError> {
    if own {
        // Most own responses hold headers the worker made; an account object's come from a fetch
        // and are immutable, which the first `set` reports (then nothing was changed).
        if decorate(response.headers(), origin, own, public, request_id).is_ok() {
            return Ok(response);
        }
    }
    let headers = Headers::new();
    for (name, value) in response.headers().entries() {
        headers.append(&name, &value)?;
    }
    decorate(&headers, origin, own, public, request_id)?;
    Ok(response.with_headers(headers))
}

fn decorate(
    headers: &Headers,
    origin: Option<&str>,
    own: bool,
    public: bool,
    request_id: &str,
) -> Result<(), ApiError> {
    headers.set("x-request-id", request_id)?;
    if own {
        for (name, value) in OWN_SECURITY_HEADERS {
            if !headers.has(name)? {
                headers.set(name, value)?;
            }
        }
    }
    // What the worker answers depends on Origin (CORS headers), so caches must key on it, even
    // for requests that carried none.
    if own && !headers.get("vary")?.is_some_and(|v| v.split(',').any(|f| f.trim().eq_ignore_ascii_case("origin"))) {
        headers.append(OWN_VARY.0, OWN_VARY.1)?;
    }
    match origin {
        Some(origin) => {
            headers.set("access-control-allow-origin", origin)?;
            headers.set("access-control-allow-credentials", "true")?;
            headers.set("access-control-expose-headers", EXPOSED_HEADERS)?;
            if !own {
                headers.append("vary", "Origin")?;
            }
        }
        None if public => headers.set("access-control-allow-origin", "*")?,
        None => {}
    }
    Ok(())
}
