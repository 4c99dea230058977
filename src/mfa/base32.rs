//! Base32 encoding (RFC 4648 §6 without padding, and Crockford's alphabet) for TOTP secrets and
//! recovery codes; only encoding is needed, since neither is ever read back from base32.

/// The RFC 4648 §6 alphabet, which authenticator apps expect in `otpauth://` URIs.
pub const RFC4648: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Crockford's alphabet in lower case: no `i`, `l`, `o` or `u`, so a code read aloud or copied by hand
/// has no look-alike letters (<https://www.crockford.com/base32.html>).
pub const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Encodes bytes in the given alphabet, five bits a character, most significant first, unpadded.
pub fn encode(bytes: &[u8], alphabet: &[u8; 32]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol(alphabet, buffer >> bits));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(symbol(alphabet, buffer << (5 - bits)));
    }
    out
}

/// The character for the low five bits of `value`.
fn symbol(alphabet: &[u8; 32], value: u16) -> char {
    // `value & 31` is below 32, so the lookup always succeeds; the fallback is unreachable.
    alphabet.get(usize::from(value & 31)).map_or('?', |&c| char::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_section_10_vectors_without_padding() {
        // RFC 4648 §10, BASE32 test vectors, padding removed.
        let cases = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (input, want) in cases {
            assert_eq!(encode(input.as_bytes(), RFC4648), want, "{input:?}");
        }
    }

    #[test]
    fn crockford_alphabet_has_no_look_alikes() {
        for c in [b'i', b'l', b'o', b'u'] {
            assert!(!CROCKFORD.contains(&c));
        }
        assert_eq!(encode(&[0xff; 5], CROCKFORD), "zzzzzzzz");
        assert_eq!(encode(&[0; 5], CROCKFORD), "00000000");
    }
}
