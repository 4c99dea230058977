//! The request-body parsers (JSON and OAuth forms, client credentials) and refresh-token strings:
//! nothing panics, emails normalise idempotently, a refresh token that parses is in its one
//! canonical form, and a parsed form never holds a repeated or empty parameter.
#![no_main]

use gatehouse::input::{self, RefreshToken};
use gatehouse::oauth::{self, Form};
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
    if let Ok(form) = Form::parse(data) {
        for name in ["token", "grant_type", "client_id", "client_secret"] {
            assert!(form.get(name).is_none_or(|v| !v.is_empty()), "empty values count as absent");
        }
        let _ = oauth::client_auth(Some(&text), &form);
    }
    let _ = oauth::Clients::parse(&text).map(|c| c.authenticate("a", &text));
});
