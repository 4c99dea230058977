//! Sealing small secrets at rest (TOTP secrets) with AES-256-GCM under `MFA_ENCRYPTION_KEY`, each
//! box bound to its account and purpose, in the versioned text form `v1.<nonce>.<ciphertext>`.
//!
//! The nonce is 96 random bits passed in by the caller (NIST SP 800-38D §8.2.2): with random nonces
//! one key stays safe for far more boxes (2^32) than accounts will ever seal. The associated data
//! binds a box to the account id and a purpose string, so a box copied into another account's
//! storage, or into another field, does not open.

use crate::jwt::b64;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use std::fmt;

/// The purpose string of a sealed TOTP secret.
pub const TOTP_SECRET: &str = "totp-secret";
/// Bytes of the key.
pub const KEY_BYTES: usize = 32;
/// Bytes of a nonce: 96 bits, the GCM standard size.
pub const NONCE_BYTES: usize = 12;
/// Bytes of the GCM tag that ends every ciphertext.
const TAG_BYTES: usize = 16;
/// The version prefix of the text form.
const VERSION: &str = "v1";
/// The start of the associated data, naming the scheme and version.
const AAD_DOMAIN: &[u8] = b"gatehouse mfa secretbox v1";

/// The AES-256 key sealing second-factor secrets, parsed once from the `MFA_ENCRYPTION_KEY` secret.
/// `Debug` never shows it.
#[derive(Clone)]
pub struct EncryptionKey([u8; KEY_BYTES]);

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// Why `MFA_ENCRYPTION_KEY` was refused (the operator's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Not strict unpadded base64url.
    NotBase64url,
    /// Decodes to this many bytes instead of 32.
    WrongLength(usize),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NotBase64url => write!(f, "MFA_ENCRYPTION_KEY is not unpadded base64url"),
            KeyError::WrongLength(n) => write!(f, "MFA_ENCRYPTION_KEY holds {n} bytes, not {KEY_BYTES}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Why a box would not seal or open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxError {
    /// The text is not `v<n>.<nonce>.<ciphertext>` with base64url parts of possible lengths (stored
    /// data is damaged).
    Malformed,
    /// The version is not one this code reads (stored by a newer or unknown scheme).
    UnknownVersion,
    /// Authentication failed: another key, another account or purpose, or a changed nonce or
    /// ciphertext.
    Unauthentic,
    /// The cipher refused to seal (the plaintext is beyond GCM's limit; never for a TOTP secret).
    Seal,
}

impl fmt::Display for BoxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoxError::Malformed => write!(f, "the sealed secret is malformed"),
            BoxError::UnknownVersion => write!(f, "the sealed secret has an unknown version"),
            BoxError::Unauthentic => write!(f, "the sealed secret does not open with this key, account and purpose"),
            BoxError::Seal => write!(f, "the secret could not be sealed"),
        }
    }
}

impl std::error::Error for BoxError {}

impl EncryptionKey {
    /// Parses the secret's value: unpadded base64url of exactly 32 bytes, surrounding whitespace
    /// (a trailing newline from `wrangler secret put`) ignored.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = b64::decode(text.trim()).map_err(|_| KeyError::NotBase64url)?;
        let key = <[u8; KEY_BYTES]>::try_from(bytes.as_slice()).map_err(|_| KeyError::WrongLength(bytes.len()))?;
        Ok(EncryptionKey(key))
    }

    /// A key from raw bytes (tests, and callers that derive keys themselves).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        EncryptionKey(bytes)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }

    /// Seals `plaintext` for `account_id` and `purpose` under a fresh random `nonce`; the result is
    /// `v1.<nonce>.<ciphertext and tag>`, both parts unpadded base64url.
    pub fn seal(
        &self,
        nonce: [u8; NONCE_BYTES],
        account_id: &str,
        purpose: &str,
        plaintext: &[u8],
    ) -> Result<String, BoxError> {
        let aad = associated_data(account_id, purpose);
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .map_err(|_| BoxError::Seal)?;
        Ok(format!("{VERSION}.{}.{}", b64::encode(nonce), b64::encode(sealed)))
    }

    /// Opens a box sealed by [`EncryptionKey::seal`] for the same account and purpose.
    pub fn open(&self, account_id: &str, purpose: &str, sealed: &str) -> Result<Vec<u8>, BoxError> {
        let mut parts = sealed.split('.');
        let (Some(version), Some(nonce), Some(ciphertext), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BoxError::Malformed);
        };
        if version != VERSION {
            return Err(if version.starts_with('v') { BoxError::UnknownVersion } else { BoxError::Malformed });
        }
        let nonce = b64::decode(nonce).map_err(|_| BoxError::Malformed)?;
        let nonce = <[u8; NONCE_BYTES]>::try_from(nonce.as_slice()).map_err(|_| BoxError::Malformed)?;
        let ciphertext = b64::decode(ciphertext).map_err(|_| BoxError::Malformed)?;
        if ciphertext.len() < TAG_BYTES {
            return Err(BoxError::Malformed);
        }
        let aad = associated_data(account_id, purpose);
        self.cipher()
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: &aad })
            .map_err(|_| BoxError::Unauthentic)
    }
}

/// The domain, then the purpose and the account id, each preceded by its length (four bytes, big
/// endian), so no two (purpose, account) pairs give the same bytes.
fn associated_data(account_id: &str, purpose: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 8 + purpose.len() + account_id.len());
    aad.extend_from_slice(AAD_DOMAIN);
    for part in [purpose, account_id] {
        // A length past u32::MAX cannot be stored in a Durable Object anyway; saturate rather than panic.
        aad.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; NONCE_BYTES] = [7; NONCE_BYTES];
    const SECRET: &[u8] = b"12345678901234567890";

    fn key() -> EncryptionKey {
        EncryptionKey::from_bytes([0x42; KEY_BYTES])
    }

    fn sealed() -> String {
        key().seal(NONCE, "acct-1", TOTP_SECRET, SECRET).unwrap()
    }

    #[test]
    fn round_trip() {
        let text = sealed();
        assert!(text.starts_with("v1."), "{text}");
        assert_eq!(text.split('.').count(), 3);
        assert_eq!(key().open("acct-1", TOTP_SECRET, &text).unwrap(), SECRET);
        assert!(!text.contains("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA"), "the plaintext's base64url is not in the box");
    }

    #[test]
    fn another_key_account_or_purpose_does_not_open() {
        let text = sealed();
        let other = EncryptionKey::from_bytes([0x43; KEY_BYTES]);
        assert_eq!(other.open("acct-1", TOTP_SECRET, &text), Err(BoxError::Unauthentic));
        assert_eq!(key().open("acct-2", TOTP_SECRET, &text), Err(BoxError::Unauthentic));
        assert_eq!(key().open("acct-1", "recovery", &text), Err(BoxError::Unauthentic));
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        let split = key().seal(NONCE, "c", "ab", SECRET).unwrap();
        assert_eq!(key().open("bc", "a", &split), Err(BoxError::Unauthentic));
    }

    #[test]
    fn tampered_nonce_or_ciphertext_does_not_open() {
        let text = sealed();
        let parts: Vec<&str> = text.split('.').collect();
        let mut nonce = b64::decode(parts[1]).unwrap();
        nonce[0] ^= 1;
        let changed_nonce = format!("v1.{}.{}", b64::encode(&nonce), parts[2]);
        assert_eq!(key().open("acct-1", TOTP_SECRET, &changed_nonce), Err(BoxError::Unauthentic));
        let mut body = b64::decode(parts[2]).unwrap();
        for i in [0, body.len() - 1] {
            body[i] ^= 0x80;
            let changed = format!("v1.{}.{}", parts[1], b64::encode(&body));
            assert_eq!(key().open("acct-1", TOTP_SECRET, &changed), Err(BoxError::Unauthentic), "byte {i}");
            body[i] ^= 0x80;
        }
    }

    #[test]
    fn truncated_or_malformed_boxes_are_refused() {
        let text = sealed();
        let parts: Vec<&str> = text.split('.').collect();
        let body = b64::decode(parts[2]).unwrap();
        let short_tag = format!("v1.{}.{}", parts[1], b64::encode(&body[..body.len() - 1]));
        assert_eq!(key().open("acct-1", TOTP_SECRET, &short_tag), Err(BoxError::Unauthentic));
        let no_tag = format!("v1.{}.{}", parts[1], b64::encode(&body[..TAG_BYTES - 1]));
        assert_eq!(key().open("acct-1", TOTP_SECRET, &no_tag), Err(BoxError::Malformed));
        let short_nonce = format!("v1.{}.{}", b64::encode([7; 11]), parts[2]);
        assert_eq!(key().open("acct-1", TOTP_SECRET, &short_nonce), Err(BoxError::Malformed));
        for bad in ["", "v1", "v1.", "v1..", &text[..text.len() - 3], &format!("{text}.x"), &format!("{text}=")] {
            assert_eq!(key().open("acct-1", TOTP_SECRET, bad), Err(BoxError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn unknown_versions_are_refused() {
        let text = sealed();
        let v2 = text.replacen("v1.", "v2.", 1);
        assert_eq!(key().open("acct-1", TOTP_SECRET, &v2), Err(BoxError::UnknownVersion));
        let none = text.replacen("v1.", "x1.", 1);
        assert_eq!(key().open("acct-1", TOTP_SECRET, &none), Err(BoxError::Malformed));
    }

    #[test]
    fn key_parser_takes_exactly_32_bytes_of_base64url() {
        let good = b64::encode([9u8; 32]);
        assert!(EncryptionKey::parse(&good).is_ok());
        assert!(EncryptionKey::parse(&format!("{good}\n")).is_ok(), "a trailing newline");
        assert_eq!(EncryptionKey::parse(&b64::encode([9u8; 31])).unwrap_err(), KeyError::WrongLength(31));
        assert_eq!(EncryptionKey::parse(&b64::encode([9u8; 33])).unwrap_err(), KeyError::WrongLength(33));
        assert_eq!(EncryptionKey::parse("").unwrap_err(), KeyError::WrongLength(0));
        assert_eq!(EncryptionKey::parse(&format!("{good}=")).unwrap_err(), KeyError::NotBase64url);
        let standard = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0xfb; 32]);
        assert_eq!(EncryptionKey::parse(&standard).unwrap_err(), KeyError::NotBase64url, "standard alphabet");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = EncryptionKey::parse(&b64::encode([0xab; 32])).unwrap();
        assert_eq!(format!("{key:?}"), "EncryptionKey(<redacted>)");
    }
}
