//! Unicode case mapping: in a Worker, by the runtime's own `String.prototype.toUpperCase` and
//! `toLowerCase` (ECMAScript's full default mappings, from Unicode's `UnicodeData` and unconditional
//! `SpecialCasing`); natively (tests, examples, `check-config`), by core's `char::to_uppercase` and
//! `char::to_lowercase`, the same mappings. That leaves core's case tables (about 25 KiB) out of the
//! Workers' wasm, as [`crate::whatwg`] leaves out a URL parser.
//!
//! The one context the runtime applies that core does not: a capital sigma at the end of a word
//! lower-cases to `ς` (Final_Sigma), where core maps every `Σ` to `σ`. [`fold`] upper-cases first,
//! so every sigma it sees is `Σ`, and writes each `ς` the runtime gives back as `σ`: the two
//! targets agree (the tests below check core's side; `tests/e2e/gateway.test.mjs` the runtime's).
//! The Unicode versions may differ (the runtime's ICU, core's tables), for characters new in one of
//! them; a key is only ever compared with keys folded by the same build.
//!
//! A platform module like `whatwg`: it mentions the runtime only behind
//! `cfg(target_arch = "wasm32")` and imports nothing from the crate (`scripts/check-layers.mjs`).

/// `text` with every character upper-cased, then lower-cased, as Java's `equalsIgnoreCase`
/// compares (so `σ`, `ς` and `Σ` are one). ASCII is plain lower case, without the runtime.
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    fold_unicode(text)
}

/// Whether `c` upper- or lower-cases into (or with) an ASCII character: `ſ` → `S`, the Kelvin sign
/// → `k`, `ı` → `I`, `İ` → `i̇`, ….
pub fn maps_into_ascii(c: char) -> bool {
    if c.is_ascii() {
        return true;
    }
    let (upper, lower) = mappings(c);
    upper.chars().chain(lower.chars()).any(|m| m.is_ascii())
}

#[cfg(target_arch = "wasm32")]
fn fold_unicode(text: &str) -> String {
    let folded: String = js_sys::JsString::from(text).to_upper_case().to_lower_case().into();
    folded.replace('ς', "σ")
}

#[cfg(not(target_arch = "wasm32"))]
fn fold_unicode(text: &str) -> String {
    text.chars().flat_map(char::to_uppercase).flat_map(char::to_lowercase).collect()
}

/// The full upper- and lower-case mappings of one character.
#[cfg(target_arch = "wasm32")]
fn mappings(c: char) -> (String, String) {
    let mut buffer = [0u8; 4];
    let text = js_sys::JsString::from(&*c.encode_utf8(&mut buffer));
    (text.to_upper_case().into(), text.to_lower_case().into())
}

#[cfg(not(target_arch = "wasm32"))]
fn mappings(c: char) -> (String, String) {
    (c.to_uppercase().collect(), c.to_lowercase().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_as_upper_then_lower_case() {
        assert_eq!(fold("/API/Admin"), "/api/admin");
        assert_eq!(fold("ΣΟΦΟΣ σοφος σοφοσ"), "σοφοσ σοφοσ σοφοσ", "every sigma is one");
        assert_eq!(fold("Straße"), "strasse", "ß upper-cases to SS");
        assert_eq!(fold("ǅ ǆ Ǆ"), "ǆ ǆ ǆ", "title case");
        assert_eq!(fold("İ"), "i\u{307}", "dotted capital I: i and a combining dot");
    }

    #[test]
    fn a_fold_is_a_fixed_point_and_one_for_every_case_variant() {
        for text in ["Ὀδυσσεύς", "ὈΔΥΣΣΕΎΣ", "ὀδυσσεύσ", "café", "CAFÉ", "ﬀ", "ŉ"] {
            let once = fold(text);
            assert_eq!(fold(&once), once, "{text}");
        }
        assert_eq!(fold("Ὀδυσσεύς"), fold("ὈΔΥΣΣΕΎΣ"));
        assert_eq!(fold("Ὀδυσσεύς"), fold("ὀδυσσεύσ"));
    }

    #[test]
    fn characters_that_case_into_ascii() {
        for c in ['ſ', '\u{212A}', 'ı', 'İ', 'ﬀ', 'ŉ', 'ß', 'a', 'Z'] {
            assert!(maps_into_ascii(c), "{c}");
        }
        for c in ['é', 'σ', 'Σ', 'ς', 'ж', '中', 'ǆ'] {
            assert!(!maps_into_ascii(c), "{c}");
        }
    }
}
