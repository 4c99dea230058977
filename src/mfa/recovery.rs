//! Recovery codes: ten single-use codes of 80 random bits, written `xxxx-xxxx-xxxx-xxxx` in
//! Crockford base32, shown once and stored only as SHA-256 digests.
//!
//! Why an unsalted fast hash is enough: each code is 80 bits from the CSPRNG, so someone who steals
//! the stored digests must search 2^80 candidates per code, which is infeasible whatever the hash
//! speed. Slow, salted hashes (argon2) exist for low-entropy human passwords, which these are not.

use super::base32;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// How many codes a set has.
pub const COUNT: usize = 10;
/// Random bytes per code: 80 bits, sixteen base32 characters.
pub const CODE_BYTES: usize = 10;
/// Characters per code, without dashes.
pub const CODE_CHARS: usize = 16;
/// Characters between dashes when a code is shown.
const GROUP: usize = 4;
/// Input longer than this (dashes and spaces included) is refused before any work.
const MAX_INPUT: usize = 64;
/// Prefixed to a code before hashing, so these digests cannot be confused with any other SHA-256.
const DOMAIN: &[u8] = b"gatehouse recovery code v1\0";

/// The random input for one set: [`COUNT`] codes of [`CODE_BYTES`] bytes each, from the CSPRNG.
pub type Randomness = [[u8; CODE_BYTES]; COUNT];

/// The stored set: the SHA-256 digest of each unused code, never the codes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecoveryCodes {
    hashes: Vec<CodeHash>,
}

/// The digest of one canonical code; serialised as base64url.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct CodeHash(#[serde(with = "super::serde_b64")] [u8; 32]);

impl RecoveryCodes {
    /// A new set from fresh randomness: the stored digests and the codes to show the user once.
    pub fn generate(random: &Randomness) -> (RecoveryCodes, Vec<String>) {
        let mut hashes = Vec::with_capacity(COUNT);
        let mut shown = Vec::with_capacity(COUNT);
        for bytes in random {
            let canonical = base32::encode(bytes, base32::CROCKFORD);
            hashes.push(digest(&canonical));
            shown.push(group(&canonical));
        }
        (RecoveryCodes { hashes }, shown)
    }

    /// Replaces every code, used or not, with a new set, and returns the new codes to show once.
    pub fn regenerate(&mut self, random: &Randomness) -> Vec<String> {
        let (fresh, shown) = RecoveryCodes::generate(random);
        *self = fresh;
        shown
    }

    /// How many codes are left.
    pub fn remaining(&self) -> usize {
        self.hashes.len()
    }

    /// Uses a code: true, and the code is removed, if it is one of the unused codes. The input is
    /// read case-insensitively with dashes and spaces ignored, and Crockford's look-alikes (`o` for
    /// zero, `i` and `l` for one) accepted; every stored digest is compared in constant time.
    pub fn consume(&mut self, input: &str) -> bool {
        let Some(canonical) = normalize(input) else {
            return false;
        };
        let presented = digest(&canonical);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, stored) in self.hashes.iter().enumerate() {
            let same = stored.0.ct_eq(&presented.0);
            index.conditional_assign(&(i as u64), same);
            found |= same;
        }
        if !bool::from(found) {
            return false;
        }
        match usize::try_from(index) {
            Ok(i) if i < self.hashes.len() => {
                self.hashes.remove(i);
                true
            }
            _ => false,
        }
    }
}

fn digest(canonical: &str) -> CodeHash {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(canonical.as_bytes());
    CodeHash(hasher.finalize().into())
}

/// `abcdefghjkmnpqrs` as `abcd-efgh-jkmn-pqrs`.
fn group(canonical: &str) -> String {
    let chars: Vec<char> = canonical.chars().collect();
    chars.chunks(GROUP).map(|chunk| chunk.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// The canonical sixteen lower-case Crockford characters of a typed code, or `None` if it cannot be one.
fn normalize(input: &str) -> Option<String> {
    if input.len() > MAX_INPUT {
        return None;
    }
    let mut canonical = String::with_capacity(CODE_CHARS);
    for c in input.trim().chars() {
        let c = match c.to_ascii_lowercase() {
            '-' | ' ' => continue,
            'o' => '0',
            'i' | 'l' => '1',
            other => other,
        };
        if !c.is_ascii() || !base32::CROCKFORD.contains(&(c as u8)) {
            return None;
        }
        canonical.push(c);
    }
    (canonical.len() == CODE_CHARS).then_some(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn randomness() -> Randomness {
        let mut random = [[0u8; CODE_BYTES]; COUNT];
        for (i, code) in random.iter_mut().enumerate() {
            for (j, byte) in code.iter_mut().enumerate() {
                *byte = (i * 31 + j * 7 + 3) as u8;
            }
        }
        random
    }

    #[test]
    fn ten_codes_of_eighty_bits_in_groups_of_four() {
        let (codes, shown) = RecoveryCodes::generate(&randomness());
        assert_eq!(codes.remaining(), COUNT);
        assert_eq!(shown.len(), COUNT);
        assert_eq!(CODE_BYTES * 8, 80);
        for code in &shown {
            assert_eq!(code.len(), 19, "{code}");
            assert_eq!(code.matches('-').count(), 3);
            assert!(code.chars().all(|c| c == '-' || base32::CROCKFORD.contains(&(c as u8))));
        }
        let mut unique = shown.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
    }

    #[test]
    fn each_code_works_once() {
        let (mut codes, shown) = RecoveryCodes::generate(&randomness());
        for (used, code) in shown.iter().enumerate() {
            assert!(codes.consume(code), "{code}");
            assert_eq!(codes.remaining(), COUNT - used - 1);
            assert!(!codes.consume(code), "second use of {code}");
        }
        assert_eq!(codes.remaining(), 0);
    }

    #[test]
    fn wrong_codes_fail_and_remove_nothing() {
        let (mut codes, shown) = RecoveryCodes::generate(&randomness());
        let mut other = randomness();
        other[0][0] ^= 1;
        let (_, foreign) = RecoveryCodes::generate(&other);
        for bad in [
            foreign[0].as_str(),
            "",
            "0000-0000-0000-0000",
            "abcd-efgh-jkmn-pqr",
            "abcd-efgh-jkmn-pqrs-t",
            "uuuu-uuuu-uuuu-uuuu",
        ] {
            assert!(!codes.consume(bad), "{bad:?}");
        }
        assert_eq!(codes.remaining(), COUNT);
        assert!(codes.consume(&shown[3]));
    }

    #[test]
    fn input_is_case_dash_and_look_alike_insensitive() {
        let (mut codes, shown) = RecoveryCodes::generate(&randomness());
        let plain = shown[0].replace('-', "").to_uppercase();
        assert!(codes.consume(&plain), "upper case without dashes");
        let spaced = format!("  {}  ", shown[1].replace('-', " "));
        assert!(codes.consume(&spaced), "spaces for dashes");
        // Write every zero as the letter O and every one as I or L.
        let looks = shown[2].replace('0', "O").replace('1', "l");
        assert!(codes.consume(&looks), "{looks}");
        let padded = format!("{}{}", shown[3], " ".repeat(MAX_INPUT));
        assert!(!codes.consume(&padded), "input past {MAX_INPUT} bytes is refused before normalising");
        assert!(codes.consume(&format!("{}{}", shown[3], " ".repeat(MAX_INPUT - 19))));
        assert!(!codes.consume("abcd_efgh_jkmn_pqrs"), "underscores are not dashes");
    }

    #[test]
    fn regenerating_replaces_every_code() {
        let (mut codes, old) = RecoveryCodes::generate(&randomness());
        assert!(codes.consume(&old[0]));
        let mut random = randomness();
        random.iter_mut().flatten().for_each(|byte| *byte ^= 0xff);
        let fresh = codes.regenerate(&random);
        assert_eq!(codes.remaining(), COUNT);
        assert!(!codes.consume(&old[1]), "an old, unused code is gone");
        assert!(codes.consume(&fresh[1]));
    }

    #[test]
    fn stored_form_holds_digests_only_and_round_trips() {
        let (codes, shown) = RecoveryCodes::generate(&randomness());
        let json = serde_json::to_string(&codes).unwrap();
        for code in &shown {
            assert!(!json.contains(&code.replace('-', "")) && !json.contains(code.as_str()));
        }
        let back: RecoveryCodes = serde_json::from_str(&json).unwrap();
        assert_eq!(back, codes);
        assert!(serde_json::from_str::<RecoveryCodes>(r#"{"hashes":["AAAA"]}"#).is_err(), "wrong digest length");
    }
}
