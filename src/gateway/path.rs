//! The one canonical form of a request path: the path the route policies are matched on, and the
//! exact path forwarded to the origin (docs/GATEWAY.md "The canonical path").
//!
//! A gateway and its origin must read a path the same way, or a policy checked on one reading
//! protects nothing on the other (the `..;` class: Tomcat drops `;` parameters after the gateway
//! resolved dot segments). So a path is either refused here, or rewritten into a form that every
//! common origin reads as itself:
//! - refused (400): `;` anywhere (raw or `%3B`), encoded `/` `\` `%` `?` `#`, an encoded dot in a
//!   dot segment (`%2e`, `.%2E`, …), NUL and control characters, a raw `\`, escapes that are not
//!   `%` and two hex digits (IIS's `%u`, `%zz`, a cut `%4`), bytes that are not UTF-8 (overlong
//!   `%c0%ae` included), non-ASCII characters that some normalisation or case mapping turns into
//!   ASCII (fullwidth `．`, `ſ`, the Kelvin sign, …), over [`MAX_PATH_BYTES`] or [`MAX_SEGMENTS`];
//! - rewritten: escapes decoded where the character needs none (unreserved, sub-delims, `:` `@`),
//!   the others written as upper-case `%XX`, empty segments folded, `.` and `..` resolved
//!   (RFC 3986 §5.2.4).
//!
//! The result is a fixed point: canonicalising it again, or its percent-decoding, gives it back, a
//! URL parser keeps it as it is, and it holds no `;`, dot segment, `//` or escape whose decoding
//! could change its segments. Pure: no `worker`, tested natively (`tests/gateway_paths.rs`).

use crate::casing;
use std::fmt;

/// The longest path accepted, in bytes as it came (before decoding).
pub const MAX_PATH_BYTES: usize = 4096;
/// The most segments a path may have, as it came (before `//` folding and dot resolution).
pub const MAX_SEGMENTS: usize = 128;

/// Why a path is refused (400 `invalid_request`): the client's fault, never the origin's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Longer than [`MAX_PATH_BYTES`].
    TooLong,
    /// More than [`MAX_SEGMENTS`] segments.
    TooManySegments,
    /// A `;`, raw or `%3B`: Tomcat, Jetty and Spring cut path parameters, others do not.
    Semicolon,
    /// An encoded `/` or `\`, or a raw `\`: some origins split segments there, others do not.
    Separator,
    /// An encoded `%` (`%25`): an origin that decodes twice reads another path.
    EncodedPercent,
    /// A dot segment spelled with an escape (`%2e`, `.%2E`, `%2e%2e`): some origins resolve it, others do not.
    EncodedDotSegment,
    /// An encoded `?` or `#`: an origin that decodes before splitting would cut the path there.
    QueryDelimiter,
    /// NUL or another control character.
    Control,
    /// A `%` not followed by two hex digits (IIS's `%uXXXX` included).
    BadEscape,
    /// Escaped bytes that are not UTF-8 (overlong forms such as `%c0%ae` included).
    BadUtf8,
    /// A non-ASCII character that normalisation or case mapping can turn into ASCII.
    LookAlike,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::TooLong => "the path is too long",
            PathError::TooManySegments => "the path has too many segments",
            PathError::Semicolon => "the path has a ';' (path parameters are not accepted)",
            PathError::Separator => "the path has an encoded '/' or '\\', or a '\\'",
            PathError::EncodedPercent => "the path has an encoded '%'",
            PathError::EncodedDotSegment => "the path has an encoded dot segment",
            PathError::QueryDelimiter => "the path has an encoded '?' or '#'",
            PathError::Control => "the path has a control character",
            PathError::BadEscape => "the path has a malformed percent-escape",
            PathError::BadUtf8 => "the path has escaped bytes that are not UTF-8",
            PathError::LookAlike => "the path has a character that reads as another one",
        })
    }
}

impl std::error::Error for PathError {}

/// A path in canonical form, with the key the route policies match it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    path: String,
    key: String,
}

impl CanonicalPath {
    /// The canonical path: what is matched and what is forwarded, byte for byte.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The match key: the path percent-decoded and case-folded ([`casing::fold`]: each character
    /// upper-cased, then lower-cased; no character a path may hold folds into ASCII from outside it,
    /// [`plain_non_ascii`]).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

/// Characters written as themselves in a canonical path: RFC 3986 §3.3 `pchar` less `%` and `;`
/// (unreserved, the sub-delims but `;`, `:` and `@`). Every other byte is written `%XX`.
fn written_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@".contains(&byte)
}

/// Whether a non-ASCII character may stand in a path: not one that NFKC normalisation, a case
/// mapping, or a common "ignore it" rule turns into ASCII or into nothing. The blocks denied whole
/// (general punctuation, letterlike and number forms, enclosed alphanumerics, fullwidth and small
/// forms, mathematical alphanumerics, …) hold such characters densely and no plain word; the rest are
/// single characters. `tests/gateway_paths.rs` checks every code point against NFKC.
pub fn plain_non_ascii(c: char) -> bool {
    let denied = matches!(c as u32,
        0x80..=0xBF                        // C1 controls, NBSP, soft hyphen, ª º ¹ ² ³ ¼ ´ ¨ …
        | 0x132..=0x133 | 0x13F..=0x140 | 0x149 | 0x17F  // ĳ Ŀ ŀ ŉ ſ
        | 0x1C4..=0x1CC | 0x1F1..=0x1F3    // the Latin digraphs DŽ Lj Nj Dz
        | 0x2B0..=0x2FF                    // spacing modifier letters (ʰ → h, ˜ → space + tilde)
        | 0x34F | 0x37A | 0x37E | 0x384..=0x385 | 0x387  // CGJ; Greek ͺ ; ΄ ΅ ·
        | 0x61C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F  // invisible marks
        | 0x1D2C..=0x1D6A | 0x1D78 | 0x1D9B..=0x1DBF  // phonetic modifier letters
        | 0x1E9A                           // ẚ → aʾ
        | 0x1FBD | 0x1FBF..=0x1FC1 | 0x1FCD..=0x1FCF | 0x1FDD..=0x1FDF | 0x1FED..=0x1FEF | 0x1FFD..=0x1FFE
        | 0x2000..=0x2BFF                  // spaces, dot leaders, super/subscripts, letterlike, enclosed, …
        | 0x2C7C..=0x2C7D | 0x2E00..=0x2E7F  // ⱼ ⱽ; supplemental punctuation
        | 0x3000..=0x303F | 0x309B..=0x309C | 0x3164 | 0x3200..=0x33FF  // CJK spaces, 。, ㎏ …
        | 0xA7F0..=0xA7FF                  // modifier capitals ꟱ ꟲ ꟳ ꟴ → S C F Q, ꟸ ꟹ
        | 0xFB00..=0xFFFF                  // ligatures, presentation, small and fullwidth forms, BOM
        | 0x10780..=0x107BF                // modifier letters
        | 0x1BCA0..=0x1BCA3 | 0x1CC00..=0x1CEBF | 0x1D173..=0x1D17A
        | 0x1D400..=0x1D7FF                // mathematical alphanumerics
        | 0x1F100..=0x1F1FF | 0x1FB00..=0x1FBFF  // enclosed alphanumerics, segmented digits
        | 0xE0000..=0xE0FFF                // tags, variation selectors
    );
    !denied && !c.is_control() && !casing::maps_into_ascii(c)
}

/// The path of an absolute URL (what a runtime's `Request.url` always is), without query or
/// fragment, exactly as it is written there.
pub fn url_path(url: &str) -> Option<&str> {
    let after_scheme = url.split_once("://")?.1;
    let path = after_scheme.get(after_scheme.find('/')?..)?;
    path.split(['?', '#']).next()
}

/// One decoded segment: its text, and whether any of it came from an escape.
struct Segment {
    text: String,
    escaped: bool,
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// Decodes one raw segment, refusing what some origin would read differently.
fn decode_segment(raw: &str) -> Result<Segment, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut escaped = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let (byte, from_escape) = if b == b'%' {
            let high = bytes.get(i + 1).copied().and_then(hex);
            let low = bytes.get(i + 2).copied().and_then(hex);
            let (Some(high), Some(low)) = (high, low) else { return Err(PathError::BadEscape) };
            i += 3;
            (high << 4 | low, true)
        } else {
            i += 1;
            (b, false)
        };
        match byte {
            b';' => return Err(PathError::Semicolon),
            b'/' | b'\\' => return Err(PathError::Separator),
            b'%' => return Err(PathError::EncodedPercent),
            // Raw only in a configured prefix or an origin's decoded reading, never in a URL's path.
            b'?' | b'#' => return Err(PathError::QueryDelimiter),
            0..=0x1F | 0x7F => return Err(PathError::Control),
            _ => {}
        }
        escaped |= from_escape;
        out.push(byte);
    }
    let text = String::from_utf8(out).map_err(|_| PathError::BadUtf8)?;
    if text.chars().any(|c| !c.is_ascii() && !plain_non_ascii(c)) {
        return Err(PathError::LookAlike);
    }
    Ok(Segment { text, escaped })
}

/// Canonicalises a path as it came in a request URL (or a configured prefix): see the module
/// documentation for what is refused and what is rewritten.
pub fn canonicalize(raw: &str) -> Result<CanonicalPath, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if raw.split('/').nth(MAX_SEGMENTS + 1).is_some() {
        return Err(PathError::TooManySegments);
    }
    let mut kept: Vec<String> = Vec::new();
    // Whether the path ends in a directory: a trailing `/`, or a last segment `.` or `..`
    // (RFC 3986 §5.2.4 keeps the slash).
    let mut directory = false;
    for raw_segment in raw.split('/') {
        let segment = decode_segment(raw_segment)?;
        let dot = matches!(segment.text.as_str(), "." | "..");
        if dot && segment.escaped {
            return Err(PathError::EncodedDotSegment);
        }
        directory = raw_segment.is_empty() || dot;
        match segment.text.as_str() {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            _ => kept.push(segment.text),
        }
    }
    let mut path = String::with_capacity(raw.len() + 1);
    for segment in &kept {
        path.push('/');
        for byte in segment.bytes() {
            if written_plain(byte) {
                path.push(byte as char);
            } else {
                path.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    if path.is_empty() || (directory && !kept.is_empty()) {
        path.push('/');
    }
    let mut decoded = String::with_capacity(path.len());
    for segment in &kept {
        decoded.push('/');
        decoded.push_str(segment);
    }
    if path.ends_with('/') {
        decoded.push('/');
    }
    Ok(CanonicalPath { path, key: casing::fold(&decoded) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str) -> String {
        canonicalize(raw).unwrap_or_else(|e| panic!("{raw}: {e}")).as_str().to_owned()
    }

    #[test]
    fn rewrites_to_one_form() {
        assert_eq!(canon("/api/admin"), "/api/admin");
        assert_eq!(canon("/%61pi/%41dmin"), "/api/Admin");
        assert_eq!(canon("/api//admin"), "/api/admin");
        assert_eq!(canon("///api/admin/"), "/api/admin/");
        assert_eq!(canon("/api/./admin/."), "/api/admin/");
        assert_eq!(canon("/api/x/../admin"), "/api/admin");
        assert_eq!(canon("/api/../../admin"), "/admin");
        assert_eq!(canon("/api/x/.."), "/api/");
        assert_eq!(canon("/.."), "/");
        assert_eq!(canon("/"), "/");
        assert_eq!(canon(""), "/");
        assert_eq!(canon("/a%2Bb/%3a%40%21"), "/a+b/:@!");
        assert_eq!(canon("/a b/%5b%7c%5d/%e4%b8%ad/%C3%A9"), "/a%20b/%5B%7C%5D/%E4%B8%AD/%C3%A9");
        assert_eq!(canon("/caf\u{e9}"), "/caf%C3%A9");
        assert_eq!(canon("/file%2Ejson/.hidden/a..b/..."), "/file.json/.hidden/a..b/...");
    }

    #[test]
    fn keys_are_decoded_and_folded() {
        let key = |raw: &str| canonicalize(raw).unwrap().key().to_owned();
        assert_eq!(key("/API/Admin/"), "/api/admin/");
        assert_eq!(key("/%C3%89t%C3%A9"), "/été");
        assert_eq!(key("/\u{3a3}\u{3c3}\u{3c2}"), "/σσσ");
        assert_eq!(key("/a%20b"), "/a b");
    }

    #[test]
    fn refuses_what_origins_read_differently() {
        let cases: &[(&str, PathError)] = &[
            ("/api/admin;", PathError::Semicolon),
            ("/api/..;/admin", PathError::Semicolon),
            ("/api/%3badmin", PathError::Semicolon),
            ("/api%2Fadmin", PathError::Separator),
            ("/api/%5cadmin", PathError::Separator),
            ("/api\\admin", PathError::Separator),
            ("/api/%252e%252e/admin", PathError::EncodedPercent),
            ("/api/%2e%2e/admin", PathError::EncodedDotSegment),
            ("/api/.%2E/admin", PathError::EncodedDotSegment),
            ("/api/%2e/admin", PathError::EncodedDotSegment),
            ("/api/a%3Fb", PathError::QueryDelimiter),
            ("/api/a%23b", PathError::QueryDelimiter),
            ("/api/a%00", PathError::Control),
            ("/api/a%0d%0a", PathError::Control),
            ("/api/a%7F", PathError::Control),
            ("/api/%zz", PathError::BadEscape),
            ("/api/a%", PathError::BadEscape),
            ("/api/a%6", PathError::BadEscape),
            ("/api/%u002e%u002e/admin", PathError::BadEscape),
            ("/api/%c0%ae%c0%ae/admin", PathError::BadUtf8),
            ("/api/%ff", PathError::BadUtf8),
            ("/api/%ed%a0%80", PathError::BadUtf8),
            ("/api/%ef%bc%8e%ef%bc%8e/admin", PathError::LookAlike),
            ("/api/adm%C4%B1n", PathError::LookAlike),
            ("/api/%E2%84%AA", PathError::LookAlike),
            ("/api/%C2%A0", PathError::LookAlike),
            ("/api/a%E2%80%8Bb", PathError::LookAlike),
        ];
        for (raw, error) in cases {
            assert_eq!(canonicalize(raw), Err(*error), "{raw}");
        }
        assert_eq!(canonicalize(&format!("/{}", "a".repeat(MAX_PATH_BYTES))), Err(PathError::TooLong));
        assert_eq!(canonicalize(&"/a".repeat(MAX_SEGMENTS + 1)), Err(PathError::TooManySegments));
        assert!(canonicalize(&"/a".repeat(MAX_SEGMENTS)).is_ok());
    }

    #[test]
    fn canonical_paths_are_fixed_points() {
        for raw in ["/a%2Bb/%3a", "/a b/%5b", "/x/../y/", "/%C3%A9t%C3%A9/", "/"] {
            let once = canon(raw);
            assert_eq!(canon(&once), once, "{raw}");
        }
    }

    #[test]
    fn paths_of_absolute_urls() {
        assert_eq!(url_path("https://a.example/api/whoami"), Some("/api/whoami"));
        assert_eq!(url_path("http://127.0.0.1:8787/api/x?y=1#z"), Some("/api/x"));
        assert_eq!(url_path("https://a.example/"), Some("/"));
        assert_eq!(url_path("https://a.example"), None);
        assert_eq!(url_path("/relative"), None);
    }
}
