//! Forwarding a request to ORIGIN_URL (docs/GATEWAY.md): the canonical path, the client's headers
//! less every identity, override and proxy header in any spelling, the caller's identity in
//! `X-Auth-*` headers, `X-Forwarded-*` from what the edge knows, and with `ORIGIN_ASSERTION=on` the
//! signed assertion. The full path and the fast path both send what [`outgoing`] builds.

use crate::config::{Config, REFRESH_COOKIE as COOKIE_NAME};
use crate::error::ApiError;
use crate::gateway::assertion::{self, AssertionFor};
use crate::gateway::headers::{self, ASSERTION_HEADER};
use crate::gateway::path::CanonicalPath;
use crate::web::verify::Authenticated;
use worker::{Fetch, Headers, Request, Response};

/// Percent-encodes everything but visible ASCII and space (and `%` and, inside lists, `,`), so an
/// identity value can never inject a header or split a list.
pub fn header_value(text: &str, list: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let plain = matches!(byte, b' '..=b'~') && byte != b'%' && !(list && byte == b',');
        if plain {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The identity headers for a caller, in the order they are set.
pub fn identity_headers(user: &Authenticated) -> Vec<(&'static str, String)> {
    let claims = user.claims();
    let roles: Vec<String> = claims.roles.iter().map(|r| header_value(r, true)).collect();
    vec![
        ("x-auth-iss", header_value(&claims.iss, false)),
        ("x-auth-sub", header_value(&claims.sub, false)),
        ("x-auth-sid", header_value(claims.sid.as_deref().unwrap_or(""), false)),
        ("x-auth-scope", header_value(&claims.scope, false)),
        ("x-auth-roles", roles.join(",")),
    ]
}

/// The `Cookie` header without gatehouse's refresh-token cookie (the origin never needs it), or
/// `None` when nothing else is left.
pub fn cookie_without_refresh_token(header: &str) -> Option<String> {
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split('=').next().map(str::trim) != Some(COOKIE_NAME))
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// Signs an origin assertion's claims. The one place that picks the key: today the active key of
/// SIGNING_KEYS (the configuration refuses `ORIGIN_ASSERTION=on` without one).
fn sign_assertion(config: &Config, claims: &serde_json::Value) -> Result<String, ApiError> {
    let key = config
        .keys
        .as_ref()
        .and_then(|keys| keys.signing_key())
        .ok_or_else(|| ApiError::Server("no key signs origin assertions".into()))?;
    key.sign_with_header(&assertion::header(key.public()), claims)
        .map_err(|e| ApiError::Server(format!("origin assertion: {e}")))
}

/// The origin assertion for a request to `url` (ORIGIN_URL + canonical path), if it is on.
fn origin_assertion(
    config: &Config,
    method: &str,
    url: &str,
    user: Option<&Authenticated>,
) -> Result<Option<String>, ApiError> {
    let Some(audience) = &config.gateway.assertion_audience else { return Ok(None) };
    let mut jti = [0u8; 16];
    getrandom::getrandom(&mut jti).map_err(|_| ApiError::Server("no randomness for an assertion".into()))?;
    let now = crate::web::now_seconds();
    let request = AssertionFor { issuer: &config.issuer, audience, method, url };
    let claims = assertion::claims(&request, user.map(Authenticated::claims), now, &jti);
    sign_assertion(config, &claims).map(Some)
}

/// The request to send to `origin` + the canonical `path` (the one the routes were decided on) +
/// query: the method; the client's headers less `Host`, gatehouse's refresh cookie and every
/// header [`headers::dropped`] names; the caller's identity headers (none for an anonymous
/// caller); `X-Forwarded-For/-Proto/-Host`; the request id; the origin assertion if it is on; and
/// the body streamed as it came. Redirects are handed back, not followed.
pub fn outgoing(
    req: &web_sys::Request,
    config: &Config,
    origin: &str,
    path: &CanonicalPath,
    user: Option<&Authenticated>,
    request_id: &str,
) -> Result<Request, ApiError> {
    let url = req.url();
    // The query as it came (already percent-encoded in the serialised URL), without the fragment.
    let query = url.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or(q)).filter(|q| !q.is_empty());
    let target = format!("{origin}{path}");
    let client = Headers(req.headers());
    let headers = Headers::new();
    for (name, value) in client.entries() {
        if name == "host" || headers::dropped(&name) {
            continue;
        }
        if name == "cookie" {
            if let Some(rest) = cookie_without_refresh_token(&value) {
                headers.append(&name, &rest)?;
            }
            continue;
        }
        headers.append(&name, &value)?;
    }
    if let Some(user) = user {
        for (name, value) in identity_headers(user) {
            headers.set(name, &value)?;
        }
    }
    let client_ip = client.get("cf-connecting-ip")?;
    for (name, value) in headers::forwarded(&url, client_ip.as_deref()) {
        headers.set(name, &value)?;
    }
    headers.set("x-request-id", request_id)?;
    let method = req.method();
    if let Some(assertion) = origin_assertion(config, &method, &target, user)? {
        headers.set(ASSERTION_HEADER, &assertion)?;
    }
    let target = match query {
        Some(q) => format!("{target}?{q}"),
        None => target,
    };
    // The method as it came, by name: workers-rs's `Method` cannot name WebDAV's and reads them as GET.
    Ok(crate::web::subrequest(&target, &method, &headers, req.body().map(Into::into).as_ref())?)
}

/// Forwards a request (see [`outgoing`]) and returns the origin's response.
pub async fn forward(
    req: Request,
    origin: &str,
    path: &CanonicalPath,
    user: Option<&Authenticated>,
    config: &Config,
    request_id: &str,
) -> Result<Response, ApiError> {
    let outgoing = outgoing(req.inner(), config, origin, path, user, request_id)?;
    Fetch::Request(outgoing).send().await.map_err(|e| ApiError::Unavailable(format!("origin fetch failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::header_value;

    #[test]
    fn the_refresh_cookie_is_not_forwarded() {
        use super::cookie_without_refresh_token as strip;
        assert_eq!(strip("__Host-gatehouse_rt=abc"), None);
        assert_eq!(strip("a=1; __Host-gatehouse_rt=abc; b=2"), Some("a=1; b=2".into()));
        assert_eq!(strip("a=1"), Some("a=1".into()));
        assert_eq!(strip(" __Host-gatehouse_rt = abc ;a=1"), Some("a=1".into()));
    }

    #[test]
    fn identity_values_cannot_inject() {
        assert_eq!(header_value("user-1", false), "user-1");
        assert_eq!(header_value("a b", false), "a b");
        assert_eq!(header_value("x\r\nX-Evil: 1", false), "x%0D%0AX-Evil: 1");
        assert_eq!(header_value("50%", false), "50%25");
        assert_eq!(header_value("a,b", true), "a%2Cb");
        assert_eq!(header_value("é", false), "%C3%A9");
    }
}
