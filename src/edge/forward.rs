//! Forwarding a verified request to ORIGIN_URL with the caller's identity in `X-Auth-*` headers.

use crate::config::REFRESH_COOKIE as COOKIE_NAME;
use crate::error::ApiError;
use crate::web::verify::Authenticated;
use worker::{Fetch, Headers, Request, RequestInit, RequestRedirect, Response};

/// The prefix of identity headers; any a client sends is removed before forwarding.
pub const IDENTITY_PREFIX: &str = "x-auth-";

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

/// The request to send to `origin` + the normalised `path` (the one the policies were checked on) +
/// query: the method, the headers (less `Host`, every `X-Auth-*` and gatehouse's refresh cookie)
/// with the identity headers and the request id added, and the body streamed as it came.
pub fn outgoing(
    req: &web_sys::Request,
    origin: &str,
    path: &str,
    user: &Authenticated,
    request_id: &str,
) -> Result<Request, ApiError> {
    let url = req.url();
    // The query as it came (already percent-encoded in the serialised URL), without the fragment.
    let query = url.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or(q)).filter(|q| !q.is_empty());
    let target = match query {
        Some(q) => format!("{origin}{path}?{q}"),
        None => format!("{origin}{path}"),
    };
    let headers = Headers::new();
    for (name, value) in Headers(req.headers()).entries() {
        if name.starts_with(IDENTITY_PREFIX) || name == "host" {
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
    for (name, value) in identity_headers(user) {
        headers.set(name, &value)?;
    }
    headers.set("x-request-id", request_id)?;
    let mut init = RequestInit::new();
    init.with_headers(headers).with_redirect(RequestRedirect::Manual);
    init.with_body(req.body().map(Into::into));
    // The method as it came, by name: workers-rs's `Method` cannot name WebDAV's and reads them as GET.
    let init = web_sys::RequestInit::from(&init);
    init.set_method(&req.method());
    let outgoing = web_sys::Request::new_with_str_and_init(&target, &init).map_err(worker::Error::from)?;
    Ok(Request::from(outgoing))
}

/// Forwards a verified request (see [`outgoing`]) and returns the origin's response.
pub async fn forward(
    req: Request,
    origin: &str,
    path: &str,
    user: &Authenticated,
    request_id: &str,
) -> Result<Response, ApiError> {
    let outgoing = outgoing(req.inner(), origin, path, user, request_id)?;
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
