//! Strict base64url (RFC 7515 §2, RFC 4648 §5): no padding, no other alphabet, canonical trailing bits.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Why a base64url string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Base64Error;

/// Decodes strict unpadded base64url: any `=`, `+`, `/`, whitespace, impossible length or
/// non-zero unused trailing bits is an error, so every byte string has exactly one encoding.
pub fn decode(input: &str) -> Result<Vec<u8>, Base64Error> {
    // The engine is configured with `DecodePaddingMode::RequireNone` and refuses trailing bits.
    URL_SAFE_NO_PAD.decode(input).map_err(|_| Base64Error)
}

/// Encodes bytes as unpadded base64url.
pub fn encode(input: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        }
    }

    #[test]
    fn refuses_padding_other_alphabets_and_junk() {
        assert!(decode("Zm9v").is_ok());
        assert!(decode("Zm8=").is_err(), "padding");
        assert!(decode("Zm8").is_ok());
        assert!(decode("a+b/").is_err(), "standard alphabet");
        assert!(decode("Zm 9v").is_err(), "space");
        assert!(decode("Zm9v\n").is_err(), "newline");
        assert!(decode("Z").is_err(), "impossible length");
    }

    #[test]
    fn refuses_non_canonical_trailing_bits() {
        // "Zm8" is canonical for "fo"; "Zm9" has the low two unused bits set.
        assert_eq!(decode("Zm8").unwrap(), b"fo");
        assert!(decode("Zm9").is_err());
        // One byte: "Zg" canonical for "f"; "Zh" sets unused bits.
        assert_eq!(decode("Zg").unwrap(), b"f");
        assert!(decode("Zh").is_err());
    }
}
