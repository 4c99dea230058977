//! Time-based one-time passwords: RFC 6238 TOTP over RFC 4226 HOTP (dynamic truncation), a ±1 step
//! window, each code usable once, and the `otpauth://` enrolment URI (Google's Key Uri Format).

use super::base32;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use std::fmt;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The time step X of RFC 6238 §4.1, seconds: 30, what every authenticator app uses.
pub const STEP_SECONDS: i64 = 30;
/// How many steps either side of now a code may come from (RFC 6238 §5.2 recommends one).
pub const WINDOW_STEPS: u64 = 1;
/// Bytes of a generated secret: 160 bits, the length RFC 4226 §4 (R6) recommends.
pub const SECRET_BYTES: usize = 20;
/// The shortest secret accepted: 128 bits, RFC 4226 §4 (R6).
pub const MIN_SECRET_BYTES: usize = 16;
/// The longest issuer or account name put in an enrolment URI, in bytes.
pub const MAX_LABEL_BYTES: usize = 256;
/// Longest code text looked at before it is refused as malformed, in bytes.
const MAX_CODE_INPUT: usize = 32;

/// The HMAC hash of RFC 6238 §1.2; SHA-1 is the default and the only one every app supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Algorithm {
    /// HMAC-SHA-1 (RFC 4226).
    #[default]
    #[serde(rename = "SHA1")]
    Sha1,
    /// HMAC-SHA-256 (RFC 6238 §1.2).
    #[serde(rename = "SHA256")]
    Sha256,
    /// HMAC-SHA-512 (RFC 6238 §1.2).
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    /// The name in an `otpauth://` URI's `algorithm` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

/// How many decimal digits a code has (RFC 4226 §5.3 asks for at least six).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Digits {
    /// Six digits, the default of every app.
    #[default]
    Six,
    /// Eight digits (RFC 6238 Appendix B's reference values).
    Eight,
}

impl Digits {
    /// The number of digits.
    pub fn count(self) -> usize {
        match self {
            Digits::Six => 6,
            Digits::Eight => 8,
        }
    }

    fn modulus(self) -> u32 {
        match self {
            Digits::Six => 1_000_000,
            Digits::Eight => 100_000_000,
        }
    }
}

impl TryFrom<u8> for Digits {
    type Error = String;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            6 => Ok(Digits::Six),
            8 => Ok(Digits::Eight),
            other => Err(format!("a TOTP code has 6 or 8 digits, not {other}")),
        }
    }
}

impl From<Digits> for u8 {
    fn from(digits: Digits) -> u8 {
        match digits {
            Digits::Six => 6,
            Digits::Eight => 8,
        }
    }
}

/// Why a code, a secret or an enrolment label was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotpError {
    /// The secret is shorter than [`MIN_SECRET_BYTES`] (the caller's fault).
    ShortSecret,
    /// The code is not exactly the expected number of ASCII digits (the user's fault).
    Malformed,
    /// The code matches no step of the window (the user's fault, or a guess).
    Mismatch,
    /// The code matches a step at or before the last one used: a replay (RFC 6238 §5.2).
    Replayed,
    /// `now` is before 1970, so there is no time step (the server's clock is wrong).
    Clock,
    /// The issuer or account name cannot go in an enrolment URI: empty, too long, a colon or a
    /// control character (the caller's fault).
    Label(&'static str),
    /// The HMAC primitive refused the key; HMAC takes keys of any length, so this never happens.
    Mac,
}

impl fmt::Display for TotpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TotpError::ShortSecret => write!(f, "the TOTP secret is shorter than {MIN_SECRET_BYTES} bytes"),
            TotpError::Malformed => write!(f, "the code is not a string of digits of the right length"),
            TotpError::Mismatch => write!(f, "the code is wrong"),
            TotpError::Replayed => write!(f, "the code was already used"),
            TotpError::Clock => write!(f, "the clock is before 1970"),
            TotpError::Label(why) => write!(f, "the enrolment label is unusable: {why}"),
            TotpError::Mac => write!(f, "HMAC refused the key"),
        }
    }
}

impl std::error::Error for TotpError {}

/// A TOTP credential: the shared secret and its parameters. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Totp {
    secret: Vec<u8>,
    algorithm: Algorithm,
    digits: Digits,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("secret", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .finish()
    }
}

/// The time step that `now` (Unix seconds) falls in: T = floor(now / X), RFC 6238 §4.2.
pub fn step_at(now: i64) -> Result<u64, TotpError> {
    u64::try_from(now.div_euclid(STEP_SECONDS)).map_err(|_| TotpError::Clock)
}

/// HOTP(K, C) of RFC 4226 §5.3: HMAC of the big-endian counter, dynamic truncation to 31 bits, then
/// the low decimal digits.
pub fn hotp(secret: &[u8], algorithm: Algorithm, counter: u64, digits: Digits) -> Result<u32, TotpError> {
    let message = counter.to_be_bytes();
    let mac = match algorithm {
        Algorithm::Sha1 => hmac::<Hmac<Sha1>>(secret, &message)?,
        Algorithm::Sha256 => hmac::<Hmac<Sha256>>(secret, &message)?,
        Algorithm::Sha512 => hmac::<Hmac<Sha512>>(secret, &message)?,
    };
    Ok(dynamic_truncation(&mac).ok_or(TotpError::Mac)? % digits.modulus())
}

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Result<Vec<u8>, TotpError> {
    let mut mac = <M as Mac>::new_from_slice(key).map_err(|_| TotpError::Mac)?;
    mac.update(message);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// DT of RFC 4226 §5.3: the low four bits of the last byte pick four bytes, top bit cleared.
fn dynamic_truncation(mac: &[u8]) -> Option<u32> {
    let offset = usize::from(mac.last()? & 0x0f);
    let word: [u8; 4] = mac.get(offset..offset + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(word) & 0x7fff_ffff)
}

impl Totp {
    /// A credential from a secret of at least [`MIN_SECRET_BYTES`] bytes (RFC 4226 §4, R6).
    pub fn new(secret: Vec<u8>, algorithm: Algorithm, digits: Digits) -> Result<Self, TotpError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(TotpError::ShortSecret);
        }
        Ok(Totp { secret, algorithm, digits })
    }

    /// A new credential from 20 random bytes, with SHA-1 and six digits: what authenticator apps support.
    pub fn generate(random: [u8; SECRET_BYTES]) -> Self {
        Totp { secret: random.to_vec(), algorithm: Algorithm::Sha1, digits: Digits::Six }
    }

    /// The raw secret, to be sealed with [`super::secretbox`] before it is stored.
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The HMAC hash.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The number of digits.
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// The secret in RFC 4648 base32 without padding, as shown for manual entry.
    pub fn secret_base32(&self) -> String {
        base32::encode(&self.secret, base32::RFC4648)
    }

    /// The code of a time step, zero-padded to the number of digits.
    pub fn code_at_step(&self, step: u64) -> Result<String, TotpError> {
        let value = hotp(&self.secret, self.algorithm, step, self.digits)?;
        Ok(format!("{value:0width$}", width = self.digits.count()))
    }

    /// The code of the step `now` (Unix seconds) falls in.
    pub fn code_at(&self, now: i64) -> Result<String, TotpError> {
        self.code_at_step(step_at(now)?)
    }

    /// Checks a code typed by the user and returns the step it matched, to be stored as the new
    /// `last_used_step`.
    ///
    /// - Input: surrounding whitespace is trimmed and ASCII spaces inside are dropped (apps show
    ///   `123 456`); what is left must be exactly 6 (or 8) ASCII digits, else [`TotpError::Malformed`].
    /// - The window is the step of `now` and [`WINDOW_STEPS`] either side (RFC 6238 §5.2). Every
    ///   candidate is computed and compared in constant time; the latest matching step wins.
    /// - A matched step at or before `last_used_step` is [`TotpError::Replayed`]: each code works once,
    ///   and so does any earlier one once a later one was used.
    pub fn verify(&self, code_text: &str, now: i64, last_used_step: Option<u64>) -> Result<u64, TotpError> {
        let code = normalize_code(code_text, self.digits)?;
        let current = step_at(now)?;
        let mut found = subtle::Choice::from(0);
        let mut matched = 0u64;
        for step in current.saturating_sub(WINDOW_STEPS)..=current.saturating_add(WINDOW_STEPS) {
            let expected = self.code_at_step(step)?;
            let same = expected.as_bytes().ct_eq(code.as_bytes());
            matched.conditional_assign(&step, same);
            found |= same;
        }
        if !bool::from(found) {
            return Err(TotpError::Mismatch);
        }
        match last_used_step {
            Some(last) if matched <= last => Err(TotpError::Replayed),
            _ => Ok(matched),
        }
    }

    /// The `otpauth://totp/` URI of Google's Key Uri Format: label `issuer:account` and the `issuer`
    /// parameter percent-encoded (everything but RFC 3986 unreserved characters), the secret in
    /// base32. Neither name may be empty, hold a colon or a control character, or exceed
    /// [`MAX_LABEL_BYTES`].
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Result<String, TotpError> {
        check_label(issuer)?;
        check_label(account)?;
        let issuer = utf8_percent_encode(issuer, URI_COMPONENT);
        let account = utf8_percent_encode(account, URI_COMPONENT);
        Ok(format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm={algorithm}&digits={digits}&period={STEP_SECONDS}",
            secret = self.secret_base32(),
            algorithm = self.algorithm.name(),
            digits = self.digits.count(),
        ))
    }
}

/// Everything but RFC 3986 §2.3 unreserved characters is percent-encoded.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn check_label(name: &str) -> Result<(), TotpError> {
    if name.is_empty() {
        return Err(TotpError::Label("empty"));
    }
    if name.len() > MAX_LABEL_BYTES {
        return Err(TotpError::Label("too long"));
    }
    if name.contains(':') {
        return Err(TotpError::Label("a colon separates issuer and account"));
    }
    if name.chars().any(char::is_control) {
        return Err(TotpError::Label("control character"));
    }
    Ok(())
}

/// Trims whitespace around the code, drops ASCII spaces inside, and requires exactly the number of
/// ASCII digits; anything else (letters, dashes, other Unicode digits) is malformed.
fn normalize_code(text: &str, digits: Digits) -> Result<String, TotpError> {
    if text.len() > MAX_CODE_INPUT {
        return Err(TotpError::Malformed);
    }
    let code: String = text.trim().chars().filter(|&c| c != ' ').collect();
    if code.len() != digits.count() || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Malformed);
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED20: &[u8] = b"12345678901234567890";

    fn key() -> Totp {
        Totp::new(SEED20.to_vec(), Algorithm::Sha1, Digits::Six).unwrap()
    }

    #[test]
    fn rfc4226_appendix_d_first_values() {
        // RFC 4226 Appendix D: HOTP of the ASCII secret "12345678901234567890", counters 0 and 9.
        assert_eq!(hotp(SEED20, Algorithm::Sha1, 0, Digits::Six).unwrap(), 755_224);
        assert_eq!(hotp(SEED20, Algorithm::Sha1, 9, Digits::Six).unwrap(), 520_489);
    }

    #[test]
    fn dynamic_truncation_of_rfc4226_section_5_4_example() {
        // RFC 4226 §5.4: the HMAC-SHA-1 value 1f8698...5a, offset 0xa, DBC 0x50ef7f19 = 1357872921.
        let mac = hex_bytes("1f8698690e02ca16618550ef7f19da8e945b555a");
        assert_eq!(dynamic_truncation(&mac), Some(0x50ef_7f19));
        assert_eq!(dynamic_truncation(&mac).unwrap() % 1_000_000, 872_921);
        assert_eq!(dynamic_truncation(&[]), None);
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn codes_in_the_window_are_accepted_and_outside_refused() {
        let totp = key();
        let now = 1_767_225_600; // 2026-01-01T00:00:00Z, a step boundary
        let step = step_at(now).unwrap();
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let candidate = step.checked_add_signed(offset).unwrap();
            let code = totp.code_at_step(candidate).unwrap();
            let result = totp.verify(&code, now, None);
            if accepted {
                assert_eq!(result, Ok(candidate), "offset {offset}");
            } else {
                assert_eq!(result, Err(TotpError::Mismatch), "offset {offset}");
            }
        }
    }

    #[test]
    fn a_code_works_once() {
        let totp = key();
        let now = 1_767_225_600;
        let code = totp.code_at(now).unwrap();
        let used = totp.verify(&code, now, None).unwrap();
        assert_eq!(totp.verify(&code, now, Some(used)), Err(TotpError::Replayed));
        assert_eq!(totp.verify(&code, now + 29, Some(used)), Err(TotpError::Replayed), "later in the same step");
    }

    #[test]
    fn an_earlier_step_is_refused_once_a_later_one_was_used() {
        let totp = key();
        let now = 1_767_225_600;
        let step = step_at(now).unwrap();
        let next = totp.code_at_step(step + 1).unwrap();
        let used = totp.verify(&next, now, None).unwrap();
        assert_eq!(used, step + 1);
        let current = totp.code_at(now).unwrap();
        assert_eq!(totp.verify(&current, now, Some(used)), Err(TotpError::Replayed));
        // The code of a step after the last used one is still good.
        assert_eq!(totp.verify(&current, now, Some(step - 1)), Ok(step));
    }

    #[test]
    fn malformed_codes_are_refused_and_spaces_tolerated() {
        let totp = key();
        let now = 1_767_225_600;
        let code = totp.code_at(now).unwrap();
        let spaced = format!(" {} {}\n", &code[..3], &code[3..]);
        assert!(totp.verify(&spaced, now, None).is_ok(), "spaces and surrounding whitespace are dropped");
        let tab_inside = format!("{}\t{}", &code[..3], &code[3..]);
        let dashed = format!("{}-{}", &code[..3], &code[3..]);
        let fullwidth: String = code.chars().map(|c| char::from_u32(c as u32 - '0' as u32 + 0xff10).unwrap()).collect();
        for bad in [
            String::new(),
            code[..5].to_string(),
            format!("{code}0"),
            tab_inside,
            dashed,
            fullwidth,
            "12345a".into(),
            "+12345".into(),
            "1".repeat(40),
            format!("{code}{}", " ".repeat(MAX_CODE_INPUT)),
        ] {
            assert_eq!(totp.verify(&bad, now, None), Err(TotpError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn eight_digit_codes_keep_leading_zeros() {
        let totp = Totp::new(SEED20.to_vec(), Algorithm::Sha1, Digits::Eight).unwrap();
        // RFC 6238 Appendix B: T = 1111111109 gives 07081804 with SHA-1.
        assert_eq!(totp.code_at(1_111_111_109).unwrap(), "07081804");
        assert_eq!(totp.verify("7081804", 1_111_111_109, None), Err(TotpError::Malformed), "the zero matters");
    }

    #[test]
    fn short_secrets_and_negative_clocks_are_refused() {
        assert_eq!(Totp::new(vec![1; 15], Algorithm::Sha1, Digits::Six), Err(TotpError::ShortSecret));
        assert!(Totp::new(vec![1; 16], Algorithm::Sha1, Digits::Six).is_ok());
        assert_eq!(step_at(-1), Err(TotpError::Clock));
        assert_eq!(key().verify("123456", -30, None), Err(TotpError::Clock));
        assert_eq!(step_at(0), Ok(0));
        // At step 0 the window has no step -1; step 1 still counts.
        let totp = key();
        assert_eq!(totp.verify(&totp.code_at_step(1).unwrap(), 0, None), Ok(1));
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", Totp::generate([0x41; SECRET_BYTES]));
        assert!(shown.contains("redacted") && !shown.contains("65") && !shown.contains("IFAU"));
    }

    #[test]
    fn digits_serialise_as_numbers_and_refuse_others() {
        assert_eq!(serde_json::to_string(&Digits::Eight).unwrap(), "8");
        assert_eq!(serde_json::from_str::<Digits>("6").unwrap(), Digits::Six);
        assert!(serde_json::from_str::<Digits>("7").is_err());
        assert_eq!(serde_json::to_string(&Algorithm::Sha256).unwrap(), "\"SHA256\"");
    }

    #[test]
    fn labels_with_colons_or_controls_are_refused() {
        let totp = key();
        assert_eq!(totp.otpauth_uri("", "a@b.c"), Err(TotpError::Label("empty")));
        assert!(matches!(totp.otpauth_uri("Acme:Inc", "a@b.c"), Err(TotpError::Label(_))));
        assert!(matches!(totp.otpauth_uri("Acme", "a:b@c.d"), Err(TotpError::Label(_))));
        assert!(matches!(totp.otpauth_uri("Acme\n", "a@b.c"), Err(TotpError::Label(_))));
        assert!(matches!(totp.otpauth_uri("Acme", &"a".repeat(MAX_LABEL_BYTES + 1)), Err(TotpError::Label(_))));
    }
}
