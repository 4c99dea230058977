//! Decimal text to the nearest `f64`: in a Worker, by the runtime's own `parseFloat`; natively
//! (tests, examples, `check-config`), by core's `str::parse`. Both round correctly (ECMAScript's
//! `StringToNumber` and core's Eisel-Lemire with its fallback), so they agree on every input; the
//! Workers' wasm carries neither core's float parser nor its power-of-five table (about 10 KiB), as
//! [`crate::whatwg`] leaves out a URL parser. [`crate::jwt::json`] calls it only for the numbers that
//! are not plain integers (a fraction, an exponent, more than 64 bits), which tokens rarely carry.
//!
//! A platform module like `whatwg`: it mentions the runtime only behind
//! `cfg(target_arch = "wasm32")` and imports nothing from the crate (`scripts/check-layers.mjs`).

/// The `f64` nearest to `text`, which must be a JSON number (RFC 8259 §6: `-`, digits, an optional
/// fraction and exponent); infinite when it is beyond `f64`'s range.
pub fn parse(text: &str) -> f64 {
    runtime_parse(text)
}

#[cfg(target_arch = "wasm32")]
fn runtime_parse(text: &str) -> f64 {
    js_sys::parse_float(text)
}

#[cfg(not(target_arch = "wasm32"))]
fn runtime_parse(text: &str) -> f64 {
    text.parse().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_and_overflows_to_infinity() {
        assert_eq!(parse("0.1"), 0.1);
        assert_eq!(parse("-1.5e3"), -1500.0);
        assert_eq!(parse("18446744073709551616"), 18446744073709551616.0);
        assert_eq!(parse("2.2250738585072011e-308"), 2.225073858507201e-308);
        assert!(parse("1e400").is_infinite());
        assert_eq!(parse("1e-400"), 0.0);
    }
}
