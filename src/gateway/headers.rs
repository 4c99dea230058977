//! Header hygiene on the way to the origin: which client headers are dropped (identity, overrides,
//! client-address claims, the assertion) in any spelling, and the `X-Forwarded-*` headers the edge
//! sets from what it knows. Pure: names and values in, decisions out.

use std::net::IpAddr;

/// The prefix of the identity headers the edge sets (`X-Auth-Sub`, …), in folded form.
pub const IDENTITY_PREFIX: &str = "x-auth-";

/// The header carrying the signed origin assertion, in folded form.
pub const ASSERTION_HEADER: &str = "gatehouse-jwt-assertion";

/// Folded prefixes of headers no client may send to the origin: identity, proxy claims about the
/// client or the original request (`X-Forwarded-For`, `X-Forwarded-Prefix`, `X-Original-URL`, …).
const DROPPED_PREFIXES: [&str; 3] = [IDENTITY_PREFIX, "x-forwarded-", "x-original-"];

/// Folded names of headers no client may send to the origin: path and method overrides (honoured
/// by IIS, Symfony, Spring, Rails' and Express's method-override middleware, …), client-address
/// claims that frameworks read as the caller's IP, and the assertion header.
const DROPPED_NAMES: [&str; 16] = [
    ASSERTION_HEADER,
    "forwarded",
    "x-forwarded",
    "x-rewrite-url",
    "x-override-url",
    "x-http-destinationurl",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "x-originating-ip",
    "x-remote-addr",
];

/// A header name folded the way origins that map headers to variables read it: ASCII lower case,
/// and every character other than a letter or digit as `-` (CGI, PHP, WSGI and nginx with
/// `underscores_in_headers` read `X_Auth_Roles` as `X-Auth-Roles`).
pub fn fold_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// Whether a client's header is removed before forwarding, whatever its spelling.
pub fn dropped(name: &str) -> bool {
    let folded = fold_name(name);
    DROPPED_NAMES.contains(&folded.as_str()) || DROPPED_PREFIXES.iter().any(|p| folded.starts_with(p))
}

/// The `X-Forwarded-*` headers for a request to `url` (the URL the edge received) from the client
/// address the platform reported (`CF-Connecting-IP`; ignored unless it is an IP address).
pub fn forwarded(url: &str, client_ip: Option<&str>) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(3);
    if let Some(ip) = client_ip.and_then(|ip| ip.trim().parse::<IpAddr>().ok()) {
        out.push(("x-forwarded-for", ip.to_string()));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if matches!(scheme, "http" | "https") {
            out.push(("x-forwarded-proto", scheme.to_owned()));
        }
        if !authority.is_empty() && authority.bytes().all(|b| b.is_ascii_graphic() && b != b'@') {
            out.push(("x-forwarded-host", authority.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_dropped_header_is_dropped() {
        for name in [
            "X-Auth-Roles",
            "x_auth_roles",
            "X_AUTH_SUB",
            "x-auth_iss",
            "X.Auth.Roles",
            "X-Original-URL",
            "x_original_url",
            "X-Rewrite-Url",
            "X-HTTP-Method-Override",
            "x_http_method",
            "X-Method-Override",
            "Forwarded",
            "X-Forwarded-For",
            "x_forwarded_host",
            "X-Forwarded-Prefix",
            "X-Real-IP",
            "True-Client-IP",
            "Gatehouse-Jwt-Assertion",
            "gatehouse_jwt_assertion",
        ] {
            assert!(dropped(name), "{name}");
        }
        for name in ["x-custom", "authorization", "content-type", "x-authorization", "x-auth", "cookie", "x-request-id"]
        {
            assert!(!dropped(name), "{name}");
        }
    }

    #[test]
    fn forwarding_headers_come_from_the_edge() {
        assert_eq!(
            forwarded("https://gw.example:8443/api/x?y", Some("203.0.113.9")),
            vec![
                ("x-forwarded-for", "203.0.113.9".to_owned()),
                ("x-forwarded-proto", "https".to_owned()),
                ("x-forwarded-host", "gw.example:8443".to_owned()),
            ]
        );
        assert_eq!(forwarded("http://[::1]:8787/", Some(" ::1 "))[0], ("x-forwarded-for", "::1".to_owned()));
        // Anything but an address is not passed on as one.
        assert_eq!(forwarded("http://a.example/", Some("1.2.3.4, 5.6.7.8")).len(), 2);
        assert_eq!(forwarded("http://a.example/", None).len(), 2);
    }
}
