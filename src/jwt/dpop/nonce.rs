//! Stateless server-provided DPoP nonces (RFC 9449 §8, §9): `base64url(timestamp ‖ HMAC-SHA256(key, label ‖ timestamp))`.
//!
//! Any isolate holding the key checks any isolate's nonce without shared state. A nonce says only
//! when it was issued; it is valid for `max_age` seconds from then, for any client (RFC 9449 §8
//! lets the server decide how nonces are scoped). The MAC input starts with a fixed label, so a
//! MAC made with the same secret for another purpose is never a valid nonce.

use crate::jwt::b64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// The shortest secret accepted for nonce keys, in bytes (HMAC-SHA256's block-size security).
pub const MIN_NONCE_SECRET_BYTES: usize = 32;
/// How far in the future a nonce's timestamp may be, in seconds (clock differences between isolates).
pub const NONCE_FUTURE_LEEWAY: i64 = 5;
/// The domain-separation label at the start of every MAC input.
const LABEL: &[u8] = b"gatehouse dpop nonce v1\0";
/// 8 bytes of big-endian seconds, then the 32-byte tag.
const NONCE_BYTES: usize = 8 + 32;

/// The key that makes and checks nonces. Its `Debug` never shows it.
#[derive(Clone)]
pub struct NonceKey {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceKey(<redacted>)")
    }
}

/// Why a nonce key could not be made. The configuration's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceKeyError {
    /// The secret is shorter than [`MIN_NONCE_SECRET_BYTES`].
    TooShort,
}

impl fmt::Display for NonceKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the DPoP nonce secret must be at least {MIN_NONCE_SECRET_BYTES} bytes")
    }
}

impl NonceKey {
    /// Makes a key from a secret of at least [`MIN_NONCE_SECRET_BYTES`] bytes.
    pub fn new(secret: &[u8]) -> Result<Self, NonceKeyError> {
        if secret.len() < MIN_NONCE_SECRET_BYTES {
            return Err(NonceKeyError::TooShort);
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|_| NonceKeyError::TooShort)?;
        Ok(NonceKey { mac })
    }

    fn tagger(&self, timestamp: [u8; 8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(LABEL);
        mac.update(&timestamp);
        mac
    }
}

/// Why a presented nonce was refused. The presenter's fault; answered with `use_dpop_nonce` and a fresh nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceError {
    /// Not strict base64url of exactly 40 bytes.
    Malformed,
    /// The MAC does not verify: not made with this key.
    Forged,
    /// Issued more than `max_age` seconds ago.
    Expired,
    /// Issued more than [`NONCE_FUTURE_LEEWAY`] seconds after now.
    FromTheFuture,
    /// Not the nonce the server expects now (servers that keep their nonces).
    NotCurrent,
}

impl fmt::Display for NonceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NonceError::Malformed => "nonce is malformed",
            NonceError::Forged => "nonce was not issued here",
            NonceError::Expired => "nonce has expired",
            NonceError::FromTheFuture => "nonce is issued in the future",
            NonceError::NotCurrent => "nonce is not the current one",
        })
    }
}

/// Makes a nonce for time `now` (seconds since the epoch), to send in `DPoP-Nonce`.
pub fn issue_nonce(key: &NonceKey, now: i64) -> String {
    let timestamp = now.to_be_bytes();
    let tag = key.tagger(timestamp).finalize().into_bytes();
    let mut bytes = Vec::with_capacity(NONCE_BYTES);
    bytes.extend_from_slice(&timestamp);
    bytes.extend_from_slice(&tag);
    b64::encode(bytes)
}

/// Checks a nonce: made with `key` (constant-time MAC check), at most `max_age` seconds old at
/// `now`, and not from the future.
pub fn check_nonce(key: &NonceKey, nonce: &str, now: i64, max_age: i64) -> Result<(), NonceError> {
    let bytes = b64::decode(nonce).map_err(|_| NonceError::Malformed)?;
    if bytes.len() != NONCE_BYTES {
        return Err(NonceError::Malformed);
    }
    let (timestamp, tag) = bytes.split_at(8);
    let timestamp: [u8; 8] = timestamp.try_into().map_err(|_| NonceError::Malformed)?;
    key.tagger(timestamp).verify_slice(tag).map_err(|_| NonceError::Forged)?;
    let issued = i64::from_be_bytes(timestamp);
    if issued > now.saturating_add(NONCE_FUTURE_LEEWAY) {
        return Err(NonceError::FromTheFuture);
    }
    if issued < now.saturating_sub(max_age) {
        return Err(NonceError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;

    fn key(byte: u8) -> NonceKey {
        NonceKey::new(&[byte; 32]).expect("32-byte secret")
    }

    #[test]
    fn a_fresh_nonce_checks_until_it_expires() {
        let k = key(1);
        let nonce = issue_nonce(&k, NOW);
        assert_eq!(nonce.len(), 54, "40 bytes in base64url");
        assert_eq!(check_nonce(&k, &nonce, NOW, 300), Ok(()));
        assert_eq!(check_nonce(&k, &nonce, NOW + 300, 300), Ok(()));
        assert_eq!(check_nonce(&k, &nonce, NOW + 301, 300), Err(NonceError::Expired));
        // Isolates a little behind the issuer accept it; far behind, not.
        assert_eq!(check_nonce(&k, &nonce, NOW - NONCE_FUTURE_LEEWAY, 300), Ok(()));
        assert_eq!(check_nonce(&k, &nonce, NOW - NONCE_FUTURE_LEEWAY - 1, 300), Err(NonceError::FromTheFuture));
    }

    #[test]
    fn another_key_or_a_changed_byte_is_forged() {
        let nonce = issue_nonce(&key(1), NOW);
        assert_eq!(check_nonce(&key(2), &nonce, NOW, 300), Err(NonceError::Forged));
        let mut bytes = b64::decode(&nonce).expect("own nonce decodes");
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            assert_eq!(check_nonce(&key(1), &b64::encode(&bytes), NOW, 300), Err(NonceError::Forged), "byte {i}");
            bytes[i] ^= 1;
        }
        // Moving the timestamp (to extend a nonce's life) breaks the MAC.
        let later = (NOW + 100).to_be_bytes();
        bytes[..8].copy_from_slice(&later);
        assert_eq!(check_nonce(&key(1), &b64::encode(&bytes), NOW + 350, 300), Err(NonceError::Forged));
    }

    #[test]
    fn a_mac_without_the_label_is_forged() {
        let timestamp = NOW.to_be_bytes();
        let mut bare = <Hmac<Sha256> as Mac>::new_from_slice(&[1; 32]).expect("any length");
        bare.update(&timestamp);
        let forged = b64::encode([timestamp.as_slice(), &bare.finalize().into_bytes()].concat());
        assert_eq!(check_nonce(&key(1), &forged, NOW, 300), Err(NonceError::Forged));
    }

    #[test]
    fn malformed_nonces() {
        let k = key(1);
        let nonce = issue_nonce(&k, NOW);
        assert_eq!(check_nonce(&k, "", NOW, 300), Err(NonceError::Malformed));
        assert_eq!(check_nonce(&k, &nonce[..53], NOW, 300), Err(NonceError::Malformed));
        assert_eq!(check_nonce(&k, &format!("{nonce}AA"), NOW, 300), Err(NonceError::Malformed));
        assert_eq!(check_nonce(&k, &format!("{nonce}="), NOW, 300), Err(NonceError::Malformed));
        assert_eq!(check_nonce(&k, &format!("+{}", &nonce[1..]), NOW, 300), Err(NonceError::Malformed));
        assert_eq!(check_nonce(&k, "not a nonce at all", NOW, 300), Err(NonceError::Malformed));
    }

    #[test]
    fn short_secrets_are_refused_and_debug_is_redacted() {
        assert_eq!(NonceKey::new(&[0; 31]).err(), Some(NonceKeyError::TooShort));
        assert_eq!(format!("{:?}", key(7)), "NonceKey(<redacted>)");
    }
}
