//! The `htu` comparison of DPoP (RFC 9449 §4.3): both URIs normalised per RFC 3986 §6.2.2 and §6.2.3, query and fragment dropped.
//!
//! The WHATWG URL parser ([`crate::whatwg`]: in a Worker the runtime's own `URL`, the parser that
//! made `Request.url`, so both sides go through one parser; natively the `url` crate) already does
//! most of it: lower-case scheme and host, default port removed, empty
//! path made `/`, dot segments removed (RFC 3986 §6.2.2.3), IPv6 addresses in their shortest
//! form, percent-encoded host octets decoded, IDNA to punycode. On top of it this module decodes
//! percent-encoded unreserved characters and upper-cases the hex digits of the rest (§6.2.2.1,
//! §6.2.2.2), which WHATWG leaves as written. Decisions beyond the RFCs:
//! - only `http` and `https` are accepted, with a host and without user information;
//! - a trailing dot in the host is kept (`example.com.` is another name than `example.com`, and a
//!   client that requested one signs that one);
//! - the query and fragment are ignored on both sides (RFC 9449 §4.3 item 9 says "ignoring any
//!   query and fragment parts"), so a claim that still carries them matches.

use crate::whatwg::Url;

/// Why a URI cannot take part in the `htu` comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HtuError {
    /// Not an absolute URI the WHATWG parser accepts.
    Unparsable,
    /// The scheme is not `http` or `https`.
    Scheme,
    /// It carries user information (`user:pass@`).
    UserInfo,
}

/// The normal form of an HTTP(S) URI for `htu` comparison: `scheme://host[:port]/path`.
pub fn normalize_htu(input: &str) -> Result<String, HtuError> {
    let url = Url::parse(input).ok_or(HtuError::Unparsable)?;
    if !url.is_http() {
        return Err(HtuError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(HtuError::UserInfo);
    }
    let host = url.host_str().ok_or(HtuError::Unparsable)?;
    let mut out = String::with_capacity(input.len());
    out.push_str(url.scheme());
    out.push_str("://");
    out.push_str(host);
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    normalize_percent_encoding(url.path(), &mut out);
    Ok(out)
}

/// Whether a byte is unreserved (RFC 3986 §2.3): its percent-encoding is decoded.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `path` with every `%XX` of an unreserved character decoded and the hex digits of the
/// others upper-cased (RFC 3986 §6.2.2.1, §6.2.2.2). A `%` not followed by two hex digits is kept.
fn normalize_percent_encoding(path: &str, out: &mut String) {
    let bytes = path.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escape =
            match (b, bytes.get(i + 1).copied().and_then(hex_value), bytes.get(i + 2).copied().and_then(hex_value)) {
                (b'%', Some(high), Some(low)) => Some(high * 16 + low),
                _ => None,
            };
        match escape {
            Some(decoded) if unreserved(decoded) => {
                out.push(char::from(decoded));
                i += 3;
            }
            Some(decoded) => {
                out.push_str(&format!("%{decoded:02X}"));
                i += 3;
            }
            None => {
                // The serialised path is ASCII (WHATWG percent-encodes the rest); push by char anyway.
                let rest = path.get(i..).unwrap_or_default();
                let Some(c) = rest.chars().next() else { break };
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
}

/// Whether a proof's `htu` claim names the request's URI (RFC 9449 §4.3 item 9).
pub fn htu_matches(claim: &str, request_url: &str) -> bool {
    match (normalize_htu(claim), normalize_htu(request_url)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize_htu(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn case_ports_and_empty_path() {
        assert_eq!(n("HTTPS://Server.Example.COM/token"), "https://server.example.com/token");
        assert_eq!(n("https://server.example.com:443/token"), "https://server.example.com/token");
        assert_eq!(n("http://server.example.com:80/token"), "http://server.example.com/token");
        assert_eq!(n("https://server.example.com:8443/token"), "https://server.example.com:8443/token");
        assert_eq!(n("http://server.example.com:443/"), "http://server.example.com:443/");
        assert_eq!(n("https://server.example.com"), "https://server.example.com/");
        // The path keeps its case.
        assert_ne!(n("https://a.test/Token"), n("https://a.test/token"));
    }

    #[test]
    fn query_and_fragment_are_ignored() {
        assert_eq!(n("https://a.test/x?y=1#z"), "https://a.test/x");
        assert_eq!(n("https://a.test/x?"), "https://a.test/x");
        assert_eq!(n("https://a.test?q"), "https://a.test/");
    }

    #[test]
    fn percent_encoding_case_and_unreserved_characters() {
        assert_eq!(n("https://a.test/%7euser"), "https://a.test/~user");
        assert_eq!(n("https://a.test/%41%62"), "https://a.test/Ab");
        assert_eq!(n("https://a.test/a%2fb"), "https://a.test/a%2Fb");
        assert_eq!(n("https://a.test/a%2Fb"), "https://a.test/a%2Fb");
        // A reserved character stays encoded: %2F is not a segment separator.
        assert_ne!(n("https://a.test/a%2Fb"), n("https://a.test/a/b"));
        // Non-ASCII is percent-encoded by the parser, with upper-case hex.
        assert_eq!(n("https://a.test/é"), "https://a.test/%C3%A9");
        assert_eq!(n("https://a.test/%c3%a9"), "https://a.test/%C3%A9");
        // A lone % is kept as the parser leaves it.
        assert_eq!(n("https://a.test/100%"), "https://a.test/100%");
        assert_eq!(n("https://a.test/%zz"), "https://a.test/%zz");
    }

    #[test]
    fn dot_segments_hosts_and_addresses() {
        assert_eq!(n("https://a.test/a/./b/../c"), "https://a.test/a/c");
        assert_eq!(n("https://a.test/a/%2e%2E/c"), "https://a.test/c");
        assert_eq!(n("https://[0:0:0:0:0:0:0:1]:443/x"), "https://[::1]/x");
        assert_eq!(n("https://[::FFFF:127.0.0.1]/"), "https://[::ffff:7f00:1]/");
        assert_eq!(n("http://127.0.0.1:8787/api"), "http://127.0.0.1:8787/api");
        assert_eq!(n("https://ex%61mple.com/"), "https://example.com/");
        // Hosts in Unicode are refused natively (the url crate's IDNA backend is the ASCII-only
        // one); in a Worker the runtime maps them to punycode, as browsers do (src/whatwg.rs).
        // Browsers and fetch put the punycode form in `htu`, which compares as itself.
        assert!(normalize_htu("https://bücher.example/").is_err());
        assert_eq!(n("https://xn--bcher-kva.example/"), "https://xn--bcher-kva.example/");
        // A trailing dot names another host: kept, so it does not match the dotless name.
        assert_eq!(n("https://example.com./x"), "https://example.com./x");
        assert!(!htu_matches("https://example.com./x", "https://example.com/x"));
    }

    #[test]
    fn refuses_other_schemes_user_info_and_junk() {
        assert_eq!(normalize_htu("wss://a.test/x"), Err(HtuError::Scheme));
        assert_eq!(normalize_htu("ftp://a.test/x"), Err(HtuError::Scheme));
        assert_eq!(normalize_htu("urn:x:y"), Err(HtuError::Scheme));
        assert_eq!(normalize_htu("https://user:pw@a.test/x"), Err(HtuError::UserInfo));
        assert_eq!(normalize_htu("https://user@a.test/x"), Err(HtuError::UserInfo));
        assert_eq!(normalize_htu("/relative"), Err(HtuError::Unparsable));
        assert_eq!(normalize_htu(""), Err(HtuError::Unparsable));
        assert_eq!(normalize_htu("https://"), Err(HtuError::Unparsable));
        assert!(!htu_matches("https://user@a.test/x", "https://user@a.test/x"));
    }

    #[test]
    fn matches_compare_normal_forms() {
        assert!(htu_matches("https://A.test:443/x?q#f", "https://a.test/x?other"));
        assert!(!htu_matches("https://a.test/x", "https://a.test/x/"));
        assert!(!htu_matches("https://a.test/x", "http://a.test/x"));
        assert!(!htu_matches("https://a.test/x", "https://b.test/x"));
        assert!(!htu_matches("https://a.test:8443/x", "https://a.test/x"));
    }
}
