//! The request-body parsers (JSON and OAuth forms, client credentials, the account lifecycle's and
//! the admin API's bodies), refresh-token and mail-link strings: nothing panics, emails normalise
//! idempotently, a refresh token that parses is in its one canonical form, a link parses as one kind
//! only, metadata and roles stay within their caps, and a parsed form never holds a repeated or
//! empty parameter.
#![no_main]

use gatehouse::account::lifecycle::LinkToken;
use gatehouse::account::state::LinkPurpose;
use gatehouse::input::{self, RefreshToken};
use gatehouse::oauth::{self, Form};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = input::register(data);
    let _ = input::login(data);
    let _ = input::refresh(data);
    let _ = input::email_verify(data);
    let _ = input::forgot(data);
    let _ = input::reset(data);
    let _ = input::password_change(data);
    let _ = input::password_only(data);
    if let Ok(metadata) = input::user_metadata(data) {
        assert!(metadata.is_object() && metadata.to_string().len() <= gatehouse::config::MAX_METADATA_BYTES);
    }
    if let Ok(update) = input::admin_update(data) {
        assert!(update.roles.as_ref().is_none_or(|r| r.len() <= input::MAX_ROLES));
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(email) = input::normalize_email(&text) {
        assert_eq!(input::normalize_email(&email).as_ref(), Ok(&email), "normalising is idempotent");
        assert!(email.len() <= input::MAX_EMAIL_LEN);
    }
    let verify = LinkToken::parse(&text, LinkPurpose::Verify);
    let reset = LinkToken::parse(&text, LinkPurpose::Reset);
    assert!(verify.is_none() || reset.is_none(), "a link is of one kind");
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
