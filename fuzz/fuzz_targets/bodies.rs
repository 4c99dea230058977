//! The request-body parsers and refresh-token strings: nothing panics, emails normalise idempotently,
//! and a refresh token that parses is in its one canonical form.
#![no_main]

use gatehouse::input::{self, RefreshToken};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = input::register(data);
    let _ = input::login(data);
    let _ = input::refresh(data);
    let text = String::from_utf8_lossy(data);
    if let Ok(email) = input::normalize_email(&text) {
        assert_eq!(input::normalize_email(&email).as_ref(), Ok(&email), "normalising is idempotent");
        assert!(email.len() <= input::MAX_EMAIL_LEN);
    }
    if let Some(token) = RefreshToken::parse(&text) {
        assert_eq!(token.format(), text, "one encoding per refresh token");
    }
});
