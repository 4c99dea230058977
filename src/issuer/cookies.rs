//! The refresh-token cookie (`__Host-gatehouse_rt`, RFC 6265bis §4.1.3.2) and the origin check of
//! requests that carry it.

use crate::config::{self, Config, REFRESH_COOKIE};
use crate::error::ApiError;
use cookie::{Cookie, SameSite};
use worker::Request;

/// `Set-Cookie` for the refresh token, or for clearing it (`max_age` 0).
pub fn refresh_cookie(value: &str, max_age: i64) -> String {
    Cookie::build((REFRESH_COOKIE, value.to_owned()))
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
    Cookie::split_parse(header?)
        .filter_map(Result::ok)
        .find(|c| c.name() == REFRESH_COOKIE)
        .map(|c| c.value().to_owned())
}

/// Whether a cookie-borne request comes from an allowed origin (the worker's own, or ALLOWED_ORIGINS).
pub fn origin_allowed(config: &Config, own_origin: &str, origin: Option<&str>) -> bool {
    let Some(origin) = origin.and_then(config::parse_origin) else { return false };
    origin == own_origin || config.allowed_origins.contains(&origin)
}

/// The origin of the worker as the request reached it.
pub fn own_origin(req: &Request) -> Result<String, ApiError> {
    Ok(req.url()?.origin().ascii_serialization())
}
