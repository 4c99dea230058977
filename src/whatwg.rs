//! URLs as the WHATWG URL Standard parses them: in a Worker, by the runtime's own `URL` (the parser
//! that made `Request.url` and that `fetch` uses for the URLs gatehouse sends requests to); natively
//! (tests, examples, `check-config`), by the `url` crate, another implementation of the same standard.
//!
//! The parser is asked one thing, the serialisation of the parsed URL (its `href`). Everything else
//! (scheme, user information, host, port, path, query, fragment, origin) is read from that
//! serialisation here, by the same code on both targets, which the tests below check against the
//! `url` crate's own accessors. That leaves the Workers' wasm without a URL parser of its own (the
//! `url` crate was about 45 KiB of the edge's code, docs/BENCHMARKS.md).
//!
//! The one known difference between the two parsers: a host with non-ASCII characters. The runtime
//! maps it to punycode (UTS 46), as browsers do; the `url` crate of the native builds is built with
//! the IDNA backend that refuses it (Cargo.toml). So a Unicode host fails the native checks that the
//! Worker passes, never the other way round.
//!
//! This is the floor's one module that mentions the runtime, behind `cfg(target_arch = "wasm32")`;
//! it imports nothing from the crate (`scripts/check-layers.mjs`).

/// An absolute URL in its WHATWG serialisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    href: String,
}

/// The serialisation of `text` parsed as an absolute URL, by the runtime's `URL`.
#[cfg(target_arch = "wasm32")]
fn serialise(text: &str) -> Option<String> {
    web_sys::Url::new(text).ok().map(|url| url.href())
}

/// The serialisation of `text` parsed as an absolute URL, by the `url` crate.
#[cfg(not(target_arch = "wasm32"))]
fn serialise(text: &str) -> Option<String> {
    url::Url::parse(text).ok().map(String::from)
}

/// The parts of a serialisation that has an authority (`scheme://…`), as offsets into it.
struct Parts {
    /// After `scheme://`: the authority's start.
    authority: usize,
    /// The path's start (`/` for http and https), which ends the authority.
    path: usize,
    /// Where the query's `?` is, if there is one.
    query: Option<usize>,
    /// Where the fragment's `#` is, if there is one.
    fragment: Option<usize>,
}

impl Url {
    /// Parses an absolute URL; `None` when the standard's parser refuses it.
    pub fn parse(text: &str) -> Option<Url> {
        serialise(text).map(|href| Url { href })
    }

    /// The whole serialisation.
    pub fn as_str(&self) -> &str {
        &self.href
    }

    /// The scheme, lower-case, without its `:`.
    pub fn scheme(&self) -> &str {
        self.href.split_once(':').map_or("", |(scheme, _)| scheme)
    }

    /// Whether the scheme is `http` or `https`.
    pub fn is_http(&self) -> bool {
        matches!(self.scheme(), "http" | "https")
    }

    /// The offsets of the parts. In a serialisation `#` starts the fragment and the first `?`
    /// before it the query (the parser percent-encodes either character anywhere else, except in
    /// the fragment, and `?` in the query); `/` ends the authority, in which user information
    /// has `/`, `?`, `#` and `@` percent-encoded.
    fn parts(&self) -> Option<Parts> {
        let href = self.href.as_str();
        let authority = self.scheme().len() + 3;
        if href.get(self.scheme().len()..authority) != Some("://") {
            return None;
        }
        let fragment = href.find('#');
        let before_fragment = &href[..fragment.unwrap_or(href.len())];
        let query = before_fragment.find('?');
        let before_query = &before_fragment[..query.unwrap_or(before_fragment.len())];
        let path = before_query[authority..].find('/').map_or(before_query.len(), |at| authority + at);
        Some(Parts { authority, path, query, fragment })
    }

    /// The user information before the host, if any (`user:password`, as serialised).
    fn userinfo(&self) -> Option<&str> {
        let parts = self.parts()?;
        self.href[parts.authority..parts.path].rsplit_once('@').map(|(info, _)| info)
    }

    /// The user name, `""` when there is none.
    pub fn username(&self) -> &str {
        self.userinfo().map_or("", |info| info.split_once(':').map_or(info, |(user, _)| user))
    }

    /// The password, `None` when there is none (WHATWG serialises no `:` for an empty one).
    pub fn password(&self) -> Option<&str> {
        self.userinfo().and_then(|info| info.split_once(':')).map(|(_, password)| password)
    }

    /// The host and port as serialised (`host[:port]`), without user information.
    fn host_and_port(&self) -> Option<&str> {
        let parts = self.parts()?;
        let authority = &self.href[parts.authority..parts.path];
        Some(authority.rsplit_once('@').map_or(authority, |(_, rest)| rest))
    }

    /// The host as serialised (an IPv6 address in brackets), `None` when the URL has none.
    pub fn host_str(&self) -> Option<&str> {
        let host_and_port = self.host_and_port()?;
        let host = match host_and_port.find(']') {
            Some(end) if host_and_port.starts_with('[') => &host_and_port[..=end],
            _ => host_and_port.split_once(':').map_or(host_and_port, |(host, _)| host),
        };
        (!host.is_empty()).then_some(host)
    }

    /// Whether the host is `localhost` or a loopback address (127.0.0.0/8, `::1`); `None` when the
    /// URL has no host. Read from the serialisation, which writes every IPv4 form (`0x7f.1`,
    /// `2130706433`, …) as four decimal numbers and every IPv6 address in its shortest form: so
    /// `127.…` and `[::1]` are the only spellings, and no address parser is needed.
    pub fn host_is_loopback(&self) -> Option<bool> {
        let host = self.host_str()?;
        let numbers = || host.split('.');
        let ipv4 = numbers().count() == 4 && numbers().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        Some(host == "localhost" || host == "[::1]" || (ipv4 && host.starts_with("127.")))
    }

    /// The port, `None` when absent or the scheme's default (the serialisation leaves it out then).
    pub fn port(&self) -> Option<u16> {
        let host_and_port = self.host_and_port()?;
        let host = self.host_str().unwrap_or_default();
        host_and_port.get(host.len()..)?.strip_prefix(':')?.parse().ok()
    }

    /// The path, as serialised (percent-encoded; `/` at least for http and https).
    pub fn path(&self) -> &str {
        match self.parts() {
            Some(parts) => {
                let end = parts.query.or(parts.fragment).unwrap_or(self.href.len());
                &self.href[parts.path..end]
            }
            None => "",
        }
    }

    /// The query after `?`, `None` when there is no `?` (`Some("")` for a bare one).
    pub fn query(&self) -> Option<&str> {
        let parts = self.parts()?;
        let at = parts.query?;
        Some(&self.href[at + 1..parts.fragment.unwrap_or(self.href.len())])
    }

    /// The fragment after `#`, `None` when there is no `#`.
    pub fn fragment(&self) -> Option<&str> {
        self.href.find('#').map(|at| &self.href[at + 1..])
    }

    /// The origin of an http or https URL, `scheme://host[:port]`; `None` for other schemes (whose
    /// origin the standard calls opaque, serialised `null`).
    pub fn http_origin(&self) -> Option<String> {
        if !self.is_http() {
            return None;
        }
        let host = self.host_str()?;
        Some(match self.port() {
            Some(port) => format!("{}://{host}:{port}", self.scheme()),
            None => format!("{}://{host}", self.scheme()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: &[&str] = &[
        "https://example.com",
        "HTTPS://Example.COM:443/a/b?c=d#e",
        "http://example.com:80/",
        "http://example.com:8080/x/../y/./z?",
        "https://user@example.com/",
        "https://user:pass@example.com:8443/p?q#f",
        "https://us%40er:p%3Ass@host/",
        "https://a@b@c.test/",
        "https://:pass@example.com/",
        "https://user:@example.com/",
        "http://[::1]:8787/x",
        "http://[0:0:0:0:0:0:0:1]/",
        "http://[2001:db8::1]/",
        "http://127.1/",
        "http://0x7f.0.0.1:9/",
        "http://2130706433/",
        "http://localhost/",
        "https://example.com/é?é#é",
        "https://example.com/a?b#c?d#e",
        "https://example.com/a#b/c?d",
        "https://example.com?q",
        "https://example.com#f",
        "https://example.com/%2e%2E/x",
        "https://example.com./",
        "  https://example.com/\t\n  ",
        "https://exa%6Dple.com/",
        "ftp://example.com/file",
        "ws://example.com:80/",
        "wss://example.com:443/s",
        "file:///etc/passwd",
        "mailto:someone@example.com",
        "urn:isbn:0451450523",
        "data:text/plain,hello",
        "foo://user@host:99/p?q#f",
        "javascript:alert(1)",
        "https://example.com:65535/",
    ];

    const REFUSED: &[&str] = &[
        "",
        "/relative",
        "example.com",
        "https://",
        "https://exa mple.com/",
        "https://example.com:65536/",
        "https://[::1/",
        "http://bücher.example/",
        "https://%zz/",
    ];

    #[test]
    fn parts_agree_with_the_url_crate() {
        for text in CASES {
            let ours = Url::parse(text).unwrap_or_else(|| panic!("{text} refused"));
            let theirs = url::Url::parse(text).unwrap();
            assert_eq!(ours.as_str(), theirs.as_str(), "{text}");
            assert_eq!(ours.scheme(), theirs.scheme(), "{text}");
            if theirs.has_authority() {
                assert_eq!(ours.username(), theirs.username(), "{text}");
                assert_eq!(ours.password(), theirs.password(), "{text}");
                assert_eq!(ours.host_str(), theirs.host_str(), "{text}");
                assert_eq!(ours.port(), theirs.port(), "{text}");
                assert_eq!(ours.path(), theirs.path(), "{text}");
                assert_eq!(ours.query(), theirs.query(), "{text}");
                let loopback = theirs.host().map(|h| match h {
                    url::Host::Domain(d) => d == "localhost",
                    url::Host::Ipv4(ip) => ip.is_loopback(),
                    url::Host::Ipv6(ip) => ip.is_loopback(),
                });
                assert_eq!(ours.host_is_loopback(), loopback, "{text}");
            }
            assert_eq!(ours.fragment(), theirs.fragment(), "{text}");
            let origin = theirs.origin().ascii_serialization();
            let expected = theirs.scheme().starts_with("http").then_some(origin);
            assert_eq!(ours.http_origin(), expected, "{text}");
        }
    }

    #[test]
    fn what_the_parser_refuses_is_refused() {
        for text in REFUSED {
            assert_eq!(Url::parse(text), None, "{text}");
        }
    }

    #[test]
    fn loopback_hosts() {
        let host = |text: &str| Url::parse(text).and_then(|u| u.host_is_loopback());
        assert_eq!(host("http://localhost:8787/"), Some(true));
        assert_eq!(host("http://LOCALHOST/"), Some(true));
        assert_eq!(host("http://127.0.0.1/"), Some(true));
        assert_eq!(host("http://127.200.0.1/"), Some(true));
        assert_eq!(host("http://0x7f.1/"), Some(true));
        assert_eq!(host("http://2130706433/"), Some(true));
        assert_eq!(host("http://[0:0:0:0:0:0:0:1]/"), Some(true));
        assert_eq!(host("http://127.0.0.1.example/"), Some(false));
        assert_eq!(host("http://[::1]/"), Some(true));
        assert_eq!(host("http://localhost.example/"), Some(false));
        assert_eq!(host("http://128.0.0.1/"), Some(false));
        assert_eq!(host("http://[::2]/"), Some(false));
        assert_eq!(host("http://[::ffff:127.0.0.1]/"), Some(false));
        assert_eq!(host("http://example.com/"), Some(false));
    }
}
