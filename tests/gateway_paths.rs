//! The canonical path (src/gateway/path.rs) against models of how common origins read a path: for
//! every generated path the edge either refuses it, or what each origin reads from the forwarded
//! bytes gets the route decision the edge made (docs/GATEWAY.md "The canonical path").
//!
//! The origin models follow each server's documented path handling:
//! - Tomcat (`CoyoteAdapter.parsePathParameters`, `normalize`) and Spring MVC on it
//!   (`UrlPathHelper`: `;` content removed, decoded, `//` folded): cut `;…` from each segment, then
//!   decode, refuse an encoded `/` or `\` or NUL, resolve dot segments, 400 above the root;
//! - Jetty (9.4, the lenient reading): cut `;…` per segment, decode everything, `%2F` included,
//!   resolve dot segments;
//! - Express (path-to-regexp on `req.url`'s raw pathname, `strict: false`): the raw path;
//! - nginx (`ngx_http_parse_complex_uri`, `merge_slashes on`): decode everything, fold `//`,
//!   resolve dot segments;
//! - Go net/http (`ServeMux`: `r.URL.Path`, `cleanPath`): decode, fold `//`, resolve dot segments;
//! - Rails/Rack (Journey `normalize_path` and `(.:format)`): fold `//`, drop a trailing `/`, decode,
//!   and route a last segment `name.ext` as `name`;
//! - a WHATWG URL parser (workerd itself, Node's `URL`, Deno): `url::Url`.
#![cfg(not(target_arch = "wasm32"))]

use gatehouse::gateway::path::{canonicalize, plain_non_ascii, CanonicalPath, PathError, MAX_PATH_BYTES};
use gatehouse::policy::{Access, Routes};
use proptest::prelude::*;
use std::collections::BTreeSet;
use unicode_normalization::UnicodeNormalization;

/// The routes every case is decided under.
fn routes() -> Routes {
    Routes::parse(
        Some("/api/, /admin"),
        Some("/public/, /api/health"),
        Some("/api/feed"),
        Some(
            r#"[{"prefix":"/api/admin","roles":["admin"]},{"prefix":"/admin","roles":["admin"]},
                {"prefix":"/api/feed/private","scope":"member"},{"prefix":"/api/x/admin","roles":["admin"]}]"#,
        ),
    )
    .expect("test routes")
}

/// A decision in comparable form: the access and the prefixes of the policies that apply.
type Verdict = Option<(Access, BTreeSet<String>)>;

fn verdict(routes: &Routes, path: &CanonicalPath) -> Verdict {
    routes.decide(path).map(|d| (d.access, d.policies().iter().map(|p| p.prefix.clone()).collect()))
}

/// Whether `edge` enforces at least what `origin` needs: as strict an access, and every policy.
fn at_least(edge: &Verdict, origin: &Verdict) -> bool {
    match (edge, origin) {
        (None, _) | (_, None) => true,
        (Some((a, p)), Some((b, q))) => a >= b && p.is_superset(q),
    }
}

// ------------------------------------------------------------------------------------------------
// Origin models: the path an origin routes, from the path bytes it receives (`None`: it answers 400).

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decodes, failing on a malformed escape or bytes that are not UTF-8.
fn decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            out.push(hex(*bytes.get(i + 1)?)? << 4 | hex(*bytes.get(i + 2)?)?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 3986 §5.2.4-style dot resolution over `/`-split segments, folding `//` when asked;
/// `None` when `..` climbs above the root and `strict` (Tomcat, nginx answer 400 then).
fn resolve(path: &str, fold: bool, strict: bool) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    let last = parts.len().saturating_sub(1);
    let mut directory = false;
    for (i, part) in parts.iter().enumerate() {
        directory = i == last && matches!(*part, "" | "." | "..");
        match *part {
            "." => {}
            ".." => {
                if out.pop().is_none() && strict {
                    return None;
                }
            }
            "" if fold || i == last => {}
            other => out.push(other),
        }
    }
    let mut joined = format!("/{}", out.join("/"));
    if directory && !out.is_empty() {
        joined.push('/');
    }
    Some(joined)
}

/// Cuts `;…` from each segment (path parameters, as servlet containers do).
fn cut_parameters(path: &str) -> String {
    path.split('/').map(|s| s.split(';').next().unwrap_or_default()).collect::<Vec<_>>().join("/")
}

fn tomcat(path: &str) -> Option<String> {
    let cut = cut_parameters(path);
    let lower = cut.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || cut.contains('\\') {
        return None;
    }
    let decoded = decode(&cut)?;
    if decoded.contains('\0') {
        return None;
    }
    resolve(&decoded, true, true)
}

fn jetty(path: &str) -> Option<String> {
    resolve(&decode(&cut_parameters(path))?.replace('\\', "/"), false, false)
}

fn express(path: &str) -> Option<String> {
    Some(path.to_owned())
}

fn nginx(path: &str) -> Option<String> {
    let decoded = decode(path)?;
    if decoded.contains('\0') {
        return None;
    }
    resolve(&decoded, true, true)
}

fn go(path: &str) -> Option<String> {
    resolve(&decode(path)?, true, false)
}

fn rails(path: &str) -> Option<String> {
    let mut squeezed = String::new();
    for c in path.chars() {
        if !(c == '/' && squeezed.ends_with('/')) {
            squeezed.push(c);
        }
    }
    if squeezed.len() > 1 {
        squeezed = squeezed.trim_end_matches('/').to_owned();
    }
    let decoded = decode(&squeezed)?;
    let (dir, last) = decoded.rsplit_once('/')?;
    match last.find('.').filter(|&d| d > 0) {
        Some(dot) => Some(format!("{dir}/{}", last.get(..dot)?)),
        None => Some(decoded),
    }
}

fn whatwg(path: &str) -> Option<String> {
    url::Url::parse(&format!("http://origin.test{path}")).ok().map(|u| u.path().to_owned())
}

/// An origin model: the path it routes, from the path bytes it receives (`None`: it answers 400).
type Model = fn(&str) -> Option<String>;

/// The models whose reading must get exactly the edge's decision.
const EXACT: [(&str, Model); 6] =
    [("tomcat", tomcat), ("jetty", jetty), ("express", express), ("nginx", nginx), ("go", go), ("whatwg", whatwg)];

/// Checks one path: refused, or forwarded as a fixed point that every origin model reads into a
/// path with the edge's decision (Rails: one the edge enforced at least as strictly).
fn check(routes: &Routes, raw: &str) -> Result<Option<CanonicalPath>, String> {
    let Ok(canonical) = canonicalize(raw) else { return Ok(None) };
    let forwarded = canonical.as_str();
    let edge = verdict(routes, &canonical);
    if canonicalize(forwarded).as_ref() != Ok(&canonical) {
        return Err(format!("{raw:?} → {forwarded:?} is not a fixed point"));
    }
    if whatwg(forwarded).as_deref() != Some(forwarded) {
        return Err(format!("{raw:?} → {forwarded:?}: a URL parser sends {:?}", whatwg(forwarded)));
    }
    let read = |name: &str, reading: &str| {
        canonicalize(reading).map_err(|e| format!("{raw:?} → {forwarded:?}: {name} reads {reading:?}, refused ({e})"))
    };
    for (name, model) in EXACT {
        let Some(reading) = model(forwarded) else { continue };
        let origin = verdict(routes, &read(name, &reading)?);
        if origin != edge {
            return Err(format!(
                "{raw:?} → {forwarded:?}: {name} reads {reading:?} as {origin:?}, the edge decided {edge:?}"
            ));
        }
    }
    if let Some(reading) = rails(forwarded) {
        let origin = verdict(routes, &read("rails", &reading)?);
        if !at_least(&edge, &origin) {
            return Err(format!(
                "{raw:?} → {forwarded:?}: rails reads {reading:?} as {origin:?}, the edge decided {edge:?}"
            ));
        }
    }
    Ok(Some(canonical))
}

// ------------------------------------------------------------------------------------------------
// Generated paths.

/// Segments that mix every trouble maker: dots, `;`, escapes of separators, dots and `%`, case,
/// non-ASCII (plain, look-alike, overlong), and random text.
fn segment() -> impl Strategy<Value = String> {
    // The routes' own words, often: a trouble maker needs them around it to matter.
    let words = prop::sample::select(vec![
        "api",
        "API",
        "Api",
        "admin",
        "ADMIN",
        "aDmin",
        "admin.json",
        "Admin.JSON",
        "public",
        "health",
        "health.txt",
        "feed",
        "private",
        "x",
        "",
        ".",
        "..",
    ]);
    let trouble = prop::sample::select(vec![
        "..;",
        ";",
        ";x",
        "admin;",
        "admin;jsessionid=1",
        ".;",
        "%2e",
        "%2E",
        "%2e%2e",
        ".%2e",
        "%2e.",
        "%252e",
        "%252e%252e",
        "%25",
        "%3b",
        "%3B",
        "%2f",
        "%2F",
        "%5c",
        "\\",
        "%00",
        "%0a",
        "%7f",
        "%c0%ae",
        "%e0%80%ae",
        "%ef%bc%8e",
        "%ef%bc%8f",
        "%e2%80%a4",
        "%c4%b1",
        "%e2%84%aa",
        "%C3%A9",
        "%E4%B8%AD",
        "é",
        "%61",
        "%41dmin",
        "%61dmin",
        "adm%69n",
        "%2B",
        "+",
        "%3a",
        "@",
        "%20",
        "%3f",
        "%23",
        "%zz",
        "%",
        "%4",
        "%u002e",
        "~",
        "a.b.",
        "%5b",
        "|",
        "%7C",
        "admin%2ejson",
    ]);
    prop_oneof![
        8 => words.prop_map(str::to_owned),
        5 => trouble.prop_map(str::to_owned),
        2 => "[a-zA-Z0-9.;%/\\\\~_-]{0,6}",
        1 => "%[0-9a-fA-F]{2}",
        1 => "\\PC{0,3}",
    ]
}

fn raw_path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..6).prop_map(|segments| format!("/{}", segments.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, .. ProptestConfig::default() })]

    /// Refused, or read by every origin model as what the edge decided.
    #[test]
    fn every_origin_reads_what_the_edge_decided(raw in raw_path()) {
        let routes = routes();
        if let Err(why) = check(&routes, &raw) {
            prop_assert!(false, "{}", why);
        }
        // The runtime hands the worker the path after its own (WHATWG) parse: the same holds there.
        if let Some(parsed) = whatwg(&raw) {
            if let Err(why) = check(&routes, &parsed) {
                prop_assert!(false, "after the runtime's parse: {}", why);
            }
        }
    }

    /// Canonicalisation never panics, whatever the bytes, and refuses or rewrites to a fixed point.
    #[test]
    fn any_text_is_refused_or_canonical(raw in "/\\PC{0,40}") {
        if let Ok(canonical) = canonicalize(&raw) {
            prop_assert_eq!(canonicalize(canonical.as_str()), Ok(canonical.clone()));
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Named cases: the published bypass spellings, each refused (400) or decided under the policy.

/// What a named path must get.
#[derive(Debug)]
enum Expect {
    /// 400 `invalid_request`, for this reason.
    Refused(PathError),
    /// Forwarded only with a token meeting the policy of this prefix.
    Policy(&'static str),
    /// Forwarded with this access and no policy.
    Plain(Access),
}

#[test]
fn named_bypass_cases() {
    use Expect::*;
    let cases: &[(&str, Expect)] = &[
        // `..;` and `;` segments: Tomcat/Jetty/Spring cut the parameter and resolve what is left.
        ("/api/admin/..;/..;/api/admin", Refused(PathError::Semicolon)),
        ("/api/x/..;/admin", Refused(PathError::Semicolon)),
        ("/public/..;/api/admin", Refused(PathError::Semicolon)),
        ("/api;/admin", Refused(PathError::Semicolon)),
        ("/api/admin;", Refused(PathError::Semicolon)),
        ("/api/admin;jsessionid=0", Refused(PathError::Semicolon)),
        ("/api/admin%3b/users", Refused(PathError::Semicolon)),
        ("/api/;/admin", Refused(PathError::Semicolon)),
        // Encoded dot segments: resolved by nginx, Go and Tomcat, not by Express.
        ("/api/x/%2e%2e/admin", Refused(PathError::EncodedDotSegment)),
        ("/api/x/%2E%2E/admin", Refused(PathError::EncodedDotSegment)),
        ("/api/x/.%2e/admin", Refused(PathError::EncodedDotSegment)),
        ("/api/%2e/admin", Refused(PathError::EncodedDotSegment)),
        ("/public/%2e%2e/api/admin", Refused(PathError::EncodedDotSegment)),
        // Double encoding, encoded separators, backslashes.
        ("/api/x/%252e%252e/admin", Refused(PathError::EncodedPercent)),
        ("/api/x%252fadmin", Refused(PathError::EncodedPercent)),
        ("/public/..%2fapi/admin", Refused(PathError::Separator)),
        ("/api%2fadmin", Refused(PathError::Separator)),
        ("/api%5cadmin", Refused(PathError::Separator)),
        ("/public\\..\\api\\admin", Refused(PathError::Separator)),
        // Overlong UTF-8, IIS %u, fullwidth and other look-alikes.
        ("/api/x/%c0%ae%c0%ae/admin", Refused(PathError::BadUtf8)),
        ("/api/x/%e0%80%ae%e0%80%ae/admin", Refused(PathError::BadUtf8)),
        ("/api/x/%c0%af../admin", Refused(PathError::BadUtf8)),
        ("/api/x/%u002e%u002e/admin", Refused(PathError::BadEscape)),
        ("/api/x/%ef%bc%8e%ef%bc%8e/admin", Refused(PathError::LookAlike)),
        ("/api/x/\u{ff0e}\u{ff0e}/admin", Refused(PathError::LookAlike)),
        ("/api%ef%bc%8fadmin", Refused(PathError::LookAlike)),
        ("/api/x/%e2%80%a5/admin", Refused(PathError::LookAlike)),
        ("/api/adm%c4%b1n", Refused(PathError::LookAlike)),
        ("/api/%e2%84%aaey", Refused(PathError::LookAlike)),
        ("/api/admin%e2%80%8b", Refused(PathError::LookAlike)),
        // Truncation and control characters.
        ("/api/admin%00.json", Refused(PathError::Control)),
        ("/api/admin%0d%0aX-Injected:1", Refused(PathError::Control)),
        ("/api/admin%3f/x", Refused(PathError::QueryDelimiter)),
        ("/api/admin%23/x", Refused(PathError::QueryDelimiter)),
        ("/api/%zz", Refused(PathError::BadEscape)),
        // Case, escapes of plain letters, `//`, plain dot segments, suffixes: matched, not refused.
        ("/API/Admin", Policy("/api/admin")),
        ("/api/ADMIN/users", Policy("/api/admin")),
        ("/%61pi/%61dmin", Policy("/api/admin")),
        ("/%41PI/%41DMIN/", Policy("/api/admin")),
        ("/api//admin", Policy("/api/admin")),
        ("//api///admin//users", Policy("/api/admin")),
        ("/api/./admin", Policy("/api/admin")),
        ("/api/x/../admin", Policy("/api/admin")),
        ("/public/../api/admin", Policy("/api/admin")),
        ("/api/health/../admin", Policy("/api/admin")),
        ("/api/admin.json", Policy("/api/admin")),
        ("/api/admin.json/", Policy("/api/admin")),
        ("/Admin", Policy("/admin")),
        ("/api/feed/../feed/PRIVATE/1", Policy("/api/feed/private")),
        ("/api/administrator", Plain(Access::Protected)),
        ("/api/health", Plain(Access::Public)),
        ("/API/HEALTH/live", Plain(Access::Public)),
        ("/api/health.json", Plain(Access::Protected)),
        ("/api/feed/1", Plain(Access::Optional)),
        ("/public/app.js", Plain(Access::Public)),
    ];
    let routes = routes();
    for (raw, expect) in cases {
        let outcome = canonicalize(raw);
        match expect {
            Refused(error) => assert_eq!(outcome.as_ref().err(), Some(error), "{raw}"),
            Policy(prefix) => {
                let path = outcome.unwrap_or_else(|e| panic!("{raw}: {e}"));
                let decision = routes.decide(&path).unwrap_or_else(|| panic!("{raw} is routed"));
                assert_eq!(decision.access, Access::Protected, "{raw}");
                assert!(decision.policies().iter().any(|p| p.prefix == *prefix), "{raw}: {prefix} applies");
            }
            Plain(access) => {
                let path = outcome.unwrap_or_else(|e| panic!("{raw}: {e}"));
                let decision = routes.decide(&path).unwrap_or_else(|| panic!("{raw} is routed"));
                assert_eq!((decision.access, decision.policies().len()), (*access, 0), "{raw}");
            }
        }
        check(&routes, raw).unwrap_or_else(|why| panic!("{why}"));
    }
}

/// The old order (dot segments resolved, then `;` parameters cut for matching, the path forwarded
/// with its `;`) let `..;` through: the property check above catches it, so it is not vacuous.
#[test]
fn the_property_catches_the_old_bypass() {
    let routes = routes();
    let forwarded = "/api/x/..;/admin"; // what the old code matched as /api/x/admin and forwarded
    let reading = tomcat(forwarded).expect("tomcat routes it");
    assert_eq!(reading, "/api/admin");
    let origin = verdict(&routes, &canonicalize(&reading).unwrap());
    let edge_then = verdict(&routes, &canonicalize("/api/x").unwrap());
    assert_ne!(origin, edge_then, "Tomcat reads a path the old edge decided otherwise");
}

#[test]
fn limits_are_4xx_not_panics() {
    assert_eq!(canonicalize(&format!("/{}", "a".repeat(MAX_PATH_BYTES))), Err(PathError::TooLong));
    assert_eq!(canonicalize(&"/a".repeat(200)), Err(PathError::TooManySegments));
    assert_eq!(canonicalize(&"/..".repeat(200)), Err(PathError::TooManySegments));
    assert_eq!(canonicalize(&"%".repeat(1000)), Err(PathError::BadEscape));
    assert!(canonicalize(&"/\u{10FFFF}".repeat(10)).is_ok(), "plain non-ASCII passes (written escaped)");
}

/// Every code point the look-alike rule lets into a path stays non-ASCII under NFKC (a decomposed
/// `é` is `e` and a combining mark, which NFKC and NFC put back together), case mapping and NFKC
/// of the case mappings: an origin that normalises cannot turn it into a separator, a dot,
/// or a letter of a policy prefix.
#[test]
fn plain_non_ascii_never_becomes_ascii() {
    let mut allowed = 0u32;
    for c in (0x80u32..=0x10FFFF).filter_map(char::from_u32) {
        if !plain_non_ascii(c) {
            continue;
        }
        allowed += 1;
        let forms: Vec<String> = vec![
            c.to_string().nfkc().collect(),
            c.to_uppercase().collect::<String>().nfkc().collect(),
            c.to_lowercase().collect::<String>().nfkc().collect(),
        ];
        for form in &forms {
            assert!(
                !form.is_empty() && !form.chars().any(|m| m.is_ascii()),
                "U+{:04X} may stand in a path but normalises to {form:?}",
                c as u32
            );
        }
    }
    // The rule keeps the scripts people write paths in.
    assert!(allowed > 100_000, "{allowed} code points allowed");
    for word in ["café", "été", "中文", "Привет", "ελληνικά", "日本語", "עברית", "عربي", "हिन्दी"]
    {
        assert!(word.chars().all(|c| c.is_ascii() || plain_non_ascii(c)), "{word}");
    }
}
