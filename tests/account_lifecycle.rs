//! The account lifecycle transitions of the account core (issue 13) natively, through the typed
//! protocol, with a frozen clock and seeded randomness: verification and reset links (single use,
//! expiry, replacement, the other kind, another account's), the mail interval, password reset and
//! change and what each does to sessions, the session list and revoking one, admin changes
//! (roles, disabling, deletion), `ADMIN_EMAILS`, `EMAIL_VERIFICATION=required`, `TOKEN_CLAIMS`,
//! export and self-deletion. Each security rule has a test that fails without it.
#![cfg(not(target_arch = "wasm32"))]

use gatehouse::account::core::{self, Context, Reply, Settings};
use gatehouse::account::family::Device;
use gatehouse::account::lifecycle::LinkToken;
use gatehouse::account::protocol::{AccountOutcome, AccountRequest, LinkPurpose, MailLink, Refusal, TokenPair};
use gatehouse::account::state::{
    AccountDoc, MAIL_INTERVAL_SECONDS, MAIL_STREAK_SECONDS, RESET_LINK_SECONDS, VERIFY_LINK_SECONDS,
};
use gatehouse::config::{token_claims, MAX_CUSTOM_CLAIMS_BYTES};
use gatehouse::input::RefreshToken;
use gatehouse::jwt::b64;
use gatehouse::revocation::Revoked;
#[path = "support/account.rs"]
mod support;
use serde_json::{json, Value};
use std::sync::OnceLock;
use support::{dummy, Seeded};

const T0: i64 = 1_767_225_600;
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const OTHER_ACCOUNT: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const EMAIL: &str = "ann@example.com";
const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a brand new passphrase";

/// A fresh seeded source per call site, so tests do not depend on one another.
fn rng() -> Seeded {
    static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    support::rng(SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// The test issuer, with a mail transport (registration makes a verification link).
fn settings() -> Settings {
    Settings { mail_enabled: true, ..support::settings() }
}

fn ctx(now: i64) -> Context<'static> {
    Context { now, account_id: ACCOUNT, dummy_hash: Some(dummy()), pbkdf2: Default::default(), mfa_key: None }
}

/// One transition as the object runs it; the claims of a token it signed come back too.
struct Ran {
    outcome: AccountOutcome,
    claims: Option<Value>,
    events: Vec<String>,
}

fn run_with(doc: &mut AccountDoc, request: AccountRequest, settings: &Settings, now: i64) -> Ran {
    let transition = core::apply(doc, request, settings, ctx(now), &mut rng()).expect("no fault");
    let events = transition
        .events
        .iter()
        .map(|e| serde_json::to_value(e.event).expect("event").as_str().expect("name").to_owned())
        .collect();
    match transition.reply {
        Reply::Answer(outcome) => Ran { outcome, claims: None, events },
        Reply::Sign(unsigned) => {
            let claims = unsigned.claims.clone();
            let jti = claims["jti"].as_str().expect("jti").to_owned();
            Ran { outcome: core::finish(doc, unsigned, format!("access.{jti}.signed")), claims: Some(claims), events }
        }
    }
}

fn run(doc: &mut AccountDoc, request: AccountRequest, now: i64) -> AccountOutcome {
    run_with(doc, request, &settings(), now).outcome
}

/// A registered account and the verification link its registration made.
fn registered() -> (AccountDoc, MailLink) {
    static DOC: OnceLock<(AccountDoc, MailLink)> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = AccountDoc::default();
        let request = AccountRequest::Register { email: EMAIL.into(), password: PASSWORD.into() };
        match run(&mut doc, request, T0) {
            AccountOutcome::Registered { sub, mail: Some(mail) } => {
                assert_eq!(sub, ACCOUNT);
                assert_eq!(mail.to, EMAIL);
                (doc, mail)
            }
            other => panic!("register: {other:?}"),
        }
    })
    .clone()
}

fn login_request(password: &str) -> AccountRequest {
    AccountRequest::Login { email: EMAIL.into(), password: password.into(), jkt: None, client: None, device: None }
}

fn login_from(doc: &mut AccountDoc, now: i64, agent: &str) -> (TokenPair, Value) {
    let request = AccountRequest::Login {
        email: EMAIL.into(),
        password: PASSWORD.into(),
        jkt: None,
        client: None,
        device: Some(Device::new(Some(agent), Some("de"))),
    };
    let ran = run_with(doc, request, &settings(), now);
    match ran.outcome {
        AccountOutcome::Tokens { pair } => (pair, ran.claims.expect("claims")),
        other => panic!("login: {other:?}"),
    }
}

fn login(doc: &mut AccountDoc, now: i64) -> TokenPair {
    login_from(doc, now, "test agent").0
}

fn refresh(doc: &mut AccountDoc, token: &str, now: i64) -> AccountOutcome {
    let t = RefreshToken::parse(token).expect("a refresh token");
    run(doc, AccountRequest::Refresh { sid: t.sid, secret: b64::encode(t.secret), scope: None, jkt: None }, now)
}

fn refresh_claims(doc: &mut AccountDoc, token: &str, now: i64) -> Value {
    let t = RefreshToken::parse(token).expect("a refresh token");
    let request = AccountRequest::Refresh { sid: t.sid, secret: b64::encode(t.secret), scope: None, jkt: None };
    run_with(doc, request, &settings(), now).claims.expect("a rotation signs a token")
}

fn sid(token: &str) -> String {
    RefreshToken::parse(token).expect("a refresh token").sid
}

fn secret(link: &MailLink, purpose: LinkPurpose) -> String {
    LinkToken::parse(&link.token, purpose).expect("a link token of this kind").secret
}

/// A verification asked by the account's own session (the router checked its access token).
fn verify_signed_in(secret: impl Into<String>) -> AccountRequest {
    AccountRequest::EmailVerify { secret: secret.into(), signed_in: true, password: None, client: None }
}

/// A verification asked with the account's password (no session).
fn verify_with_password(secret: impl Into<String>, password: &str) -> AccountRequest {
    AccountRequest::EmailVerify {
        secret: secret.into(),
        signed_in: false,
        password: Some(password.into()),
        client: None,
    }
}

fn refused(refusal: Refusal) -> AccountOutcome {
    AccountOutcome::Refused { refusal }
}

fn forgot(doc: &mut AccountDoc, now: i64) -> Option<MailLink> {
    match run(doc, AccountRequest::PasswordForgot { email: EMAIL.into() }, now) {
        AccountOutcome::Mail { purpose: LinkPurpose::Reset, to, token } => Some(MailLink { to, token }),
        AccountOutcome::Done => None,
        other => panic!("forgot: {other:?}"),
    }
}

/// A reset with `link`, as the object runs it (its outcome and events).
fn reset_ran(doc: &mut AccountDoc, link: &MailLink, password: &str, now: i64) -> Ran {
    let request = AccountRequest::PasswordReset { secret: secret(link, LinkPurpose::Reset), password: password.into() };
    run_with(doc, request, &settings(), now)
}

fn reset(doc: &mut AccountDoc, link: &MailLink, password: &str, now: i64) -> AccountOutcome {
    reset_ran(doc, link, password, now).outcome
}

#[test]
fn link_tokens_parse_only_their_own_kind_and_shape() {
    let (_, link) = registered();
    assert!(link.token.starts_with("ghv1."), "{}", link.token);
    assert!(LinkToken::parse(&link.token, LinkPurpose::Verify).is_some());
    assert!(LinkToken::parse(&link.token, LinkPurpose::Reset).is_none(), "a verify link is no reset link");
    let parts: Vec<&str> = link.token.split('.').collect();
    assert_eq!(parts[1], ACCOUNT, "the link names its account");
    for bad in [
        format!("ghv1.{}.{}", &ACCOUNT[..63], parts[2]),
        format!("ghv1.{ACCOUNT}.{}", &parts[2][..20]),
        format!("ghv1.{ACCOUNT}.{}.x", parts[2]),
        format!("ghv1.{}.{}", ACCOUNT.to_uppercase(), parts[2]),
        String::new(),
    ] {
        assert!(LinkToken::parse(&bad, LinkPurpose::Verify).is_none(), "{bad}");
    }
    assert!(!format!("{:?}", LinkToken::parse(&link.token, LinkPurpose::Verify).unwrap()).contains(parts[2]));
    assert!(!format!("{link:?}").contains(parts[2]), "MailLink's Debug hides the token");
}

#[test]
fn registration_sends_a_verification_link_only_with_mail() {
    let mut doc = AccountDoc::default();
    let quiet = Settings { mail_enabled: false, ..settings() };
    let request = AccountRequest::Register { email: EMAIL.into(), password: PASSWORD.into() };
    let ran = run_with(&mut doc, request, &quiet, T0);
    assert_eq!(ran.outcome, AccountOutcome::Registered { sub: ACCOUNT.into(), mail: None });
    assert!(doc.links.is_empty());
}

#[test]
fn a_verification_link_verifies_once_and_shows_in_tokens() {
    let (mut doc, link) = registered();
    let (_, claims) = login_from(&mut doc, T0 + 1, "agent");
    assert_eq!(claims["email_verified"], json!(false));
    let ran = run_with(&mut doc, verify_signed_in(secret(&link, LinkPurpose::Verify)), &settings(), T0 + 2);
    assert_eq!(ran.outcome, AccountOutcome::Done);
    assert_eq!(ran.events, ["email.verified"]);
    assert!(doc.account.as_ref().unwrap().email_verified);
    // Single use: the same link again is refused and changes nothing.
    let before = doc.clone();
    let replay = run_with(&mut doc, verify_signed_in(secret(&link, LinkPurpose::Verify)), &settings(), T0 + 3);
    assert_eq!(replay.outcome, refused(Refusal::InvalidLink));
    assert_eq!(replay.events, ["link.refused"]);
    assert_eq!(doc, before);
    let (_, claims) = login_from(&mut doc, T0 + 4, "agent");
    assert_eq!(claims["email_verified"], json!(true));
    // Verified: asking again makes no link.
    assert_eq!(run(&mut doc, AccountRequest::EmailVerifyRequest, T0 + 5), AccountOutcome::Done);
}

#[test]
fn a_verification_link_expires() {
    let (mut doc, link) = registered();
    let late = T0 + VERIFY_LINK_SECONDS;
    let outcome = run(&mut doc, verify_signed_in(secret(&link, LinkPurpose::Verify)), late);
    assert_eq!(outcome, refused(Refusal::InvalidLink));
    assert!(!doc.account.as_ref().unwrap().email_verified);
    let (mut doc, link) = registered();
    let just_in_time = T0 + VERIFY_LINK_SECONDS - 1;
    let outcome = run(&mut doc, verify_signed_in(secret(&link, LinkPurpose::Verify)), just_in_time);
    assert_eq!(outcome, AccountOutcome::Done);
}

#[test]
fn a_link_of_another_kind_or_account_or_a_forged_one_does_nothing() {
    let (mut doc, verify_link) = registered();
    let reset_link = forgot(&mut doc, T0 + 1).expect("a reset mail");
    let before = doc.clone();
    // The reset link's secret presented as a verification, and the other way round.
    let outcome = run(&mut doc, verify_signed_in(secret(&reset_link, LinkPurpose::Reset)), T0 + 2);
    assert_eq!(outcome, refused(Refusal::InvalidLink));
    let wrong_kind = AccountRequest::PasswordReset {
        secret: secret(&verify_link, LinkPurpose::Verify),
        password: NEW_PASSWORD.into(),
    };
    assert_eq!(run(&mut doc, wrong_kind, T0 + 2), refused(Refusal::InvalidLink));
    // Another account's link: its secret is not one this account made.
    let mut other = AccountDoc::default();
    let register = AccountRequest::Register { email: "bob@example.com".into(), password: PASSWORD.into() };
    let other_link = match core::apply(
        &mut other,
        register,
        &settings(),
        Context { account_id: OTHER_ACCOUNT, ..ctx(T0) },
        &mut rng(),
    )
    .expect("no fault")
    .reply
    {
        Reply::Answer(AccountOutcome::Registered { mail: Some(mail), .. }) => mail,
        other => panic!("{other:?}"),
    };
    assert!(other_link.token.contains(OTHER_ACCOUNT));
    let outcome = run(&mut doc, verify_signed_in(secret(&other_link, LinkPurpose::Verify)), T0 + 2);
    assert_eq!(outcome, refused(Refusal::InvalidLink));
    for forged in [b64::encode([0u8; 32]), "not base64!".into(), b64::encode([1u8; 16])] {
        assert_eq!(run(&mut doc, verify_signed_in(forged), T0 + 2), refused(Refusal::InvalidLink));
    }
    assert_eq!(doc, before, "refused links change nothing");
}

#[test]
fn mail_waits_double_in_a_row_and_the_newest_three_links_stay_live() {
    let (mut doc, first) = registered();
    let verify_mail = |doc: &mut AccountDoc, now| match run(doc, AccountRequest::EmailVerifyRequest, now) {
        AccountOutcome::Mail { purpose: LinkPurpose::Verify, to, token } => Ok(MailLink { to, token }),
        AccountOutcome::Refused { refusal: Refusal::MailThrottled { retry_after } } => Err(retry_after),
        other => panic!("{other:?}"),
    };
    // Registration mailed at T0 (the first in a row): the next may go a minute later.
    assert_eq!(verify_mail(&mut doc, T0 + 10).unwrap_err(), MAIL_INTERVAL_SECONDS - 10);
    let second = verify_mail(&mut doc, T0 + 60).expect("a minute later");
    // Then two minutes, then four: the wait doubles with each mail in a row.
    assert_eq!(verify_mail(&mut doc, T0 + 60 + 119).unwrap_err(), 1);
    let third = verify_mail(&mut doc, T0 + 180).expect("two minutes later");
    assert_eq!(verify_mail(&mut doc, T0 + 180 + 239).unwrap_err(), 1);
    let fourth = verify_mail(&mut doc, T0 + 420).expect("four minutes later");
    // The newest three links stay live; the fourth pushed out the first.
    let redeem =
        |doc: &mut AccountDoc, link: &MailLink, now| run(doc, verify_signed_in(secret(link, LinkPurpose::Verify)), now);
    let mut probe = doc.clone();
    assert_eq!(redeem(&mut probe, &first, T0 + 421), refused(Refusal::InvalidLink), "the oldest went");
    for link in [&second, &third, &fourth] {
        let mut probe = doc.clone();
        assert_eq!(redeem(&mut probe, link, T0 + 421), AccountOutcome::Done);
    }
    // A day after the last mail the doubling starts over.
    let (mut quiet, _) = registered();
    assert!(verify_mail(&mut quiet, T0 + 60).is_ok());
    assert!(verify_mail(&mut quiet, T0 + 60 + MAIL_STREAK_SECONDS).is_ok());
    assert_eq!(verify_mail(&mut quiet, T0 + 61 + MAIL_STREAK_SECONDS).unwrap_err(), MAIL_INTERVAL_SECONDS - 1);
    // Reset mails are counted apart, and held back silently (forgot answers alike).
    let (mut doc, _) = registered();
    assert!(forgot(&mut doc, T0 + 1).is_some());
    assert!(forgot(&mut doc, T0 + 30).is_none(), "a second reset mail within the minute is not sent");
    assert!(forgot(&mut doc, T0 + 1 + MAIL_INTERVAL_SECONDS).is_some());
    assert!(forgot(&mut doc, T0 + 2 + MAIL_INTERVAL_SECONDS).is_none());
}

#[test]
fn someone_asking_for_reset_mails_cannot_flood_the_owner_or_void_their_link() {
    let (mut doc, _) = registered();
    let owners = forgot(&mut doc, T0).expect("the owner's reset mail");
    // An attacker asks every minute for a day: the mails thin out to about ten.
    let sent = (1..1440).filter(|m| forgot(&mut doc, T0 + m * 60).is_some()).count();
    assert!(sent <= 10, "{sent} reset mails in a day");
    // The owner's link is not among those pushed out until three newer ones were sent.
    let mut fresh = registered().0;
    let owners_fresh = forgot(&mut fresh, T0).expect("mail");
    assert!(forgot(&mut fresh, T0 + 60).is_some());
    assert_eq!(reset(&mut fresh, &owners_fresh, NEW_PASSWORD, T0 + 120), AccountOutcome::Done, "still live");
    let _ = owners;
}

#[test]
fn forgot_makes_no_link_for_an_unknown_email_or_a_disabled_account() {
    let mut empty = AccountDoc::default();
    assert_eq!(forgot(&mut empty, T0), None);
    assert_eq!(empty, AccountDoc::default(), "nothing is stored for an unknown email");
    let (mut doc, _) = registered();
    let other = run(&mut doc, AccountRequest::PasswordForgot { email: "eve@example.com".into() }, T0 + 1);
    assert_eq!(other, AccountOutcome::Done);
    let disable = AccountRequest::AdminUpdate { roles: None, scope: None, disabled: Some(true), app_metadata: None };
    assert!(matches!(run(&mut doc, disable, T0 + 2), AccountOutcome::User { .. }));
    assert_eq!(forgot(&mut doc, T0 + 100), None, "a disabled account gets no reset link");
}

#[test]
fn a_reset_sets_the_password_ends_every_session_and_works_once() {
    let (mut doc, _) = registered();
    let a = login(&mut doc, T0 + 1);
    let b = login(&mut doc, T0 + 2);
    let link = forgot(&mut doc, T0 + 3).expect("a reset mail");
    let ran = reset_ran(&mut doc, &link, NEW_PASSWORD, T0 + 4);
    assert_eq!(ran.outcome, AccountOutcome::Done);
    assert_eq!(ran.events, ["password.reset"]);
    // Every refresh token is dead, and every access token issued before is denylisted.
    assert_eq!(refresh(&mut doc, &a.refresh_token, T0 + 5), refused(Refusal::InvalidGrant));
    assert_eq!(refresh(&mut doc, &b.refresh_token, T0 + 5), refused(Refusal::InvalidGrant));
    assert!(doc.revocation.check_ids(Some(T0 + 2), Some(&sid(&b.refresh_token)), None).is_err());
    assert!(doc.needs_mirror(), "the denylist change goes to KV");
    // The old password no longer works; the new one does; the email counts as proved.
    assert_eq!(run(&mut doc, login_request(PASSWORD), T0 + 6), refused(Refusal::InvalidCredentials));
    assert!(matches!(run(&mut doc, login_request(NEW_PASSWORD), T0 + 7), AccountOutcome::Tokens { .. }));
    assert!(doc.account.as_ref().unwrap().email_verified);
    // Single use.
    assert_eq!(reset(&mut doc, &link, "yet another passphrase", T0 + 8), refused(Refusal::InvalidLink));
    assert!(matches!(run(&mut doc, login_request(NEW_PASSWORD), T0 + 9), AccountOutcome::Tokens { .. }));
}

#[test]
fn a_reset_link_expires_after_thirty_minutes() {
    let (mut doc, _) = registered();
    let link = forgot(&mut doc, T0).expect("a reset mail");
    let before = doc.clone();
    assert_eq!(reset(&mut doc, &link, NEW_PASSWORD, T0 + RESET_LINK_SECONDS), refused(Refusal::InvalidLink));
    assert_eq!(doc.account, before.account, "an expired link changes no password");
    let (mut doc, _) = registered();
    let link = forgot(&mut doc, T0).expect("a reset mail");
    assert_eq!(reset(&mut doc, &link, NEW_PASSWORD, T0 + RESET_LINK_SECONDS - 1), AccountOutcome::Done);
}

#[test]
fn a_password_change_needs_the_current_password_and_ends_the_other_sessions() {
    let (mut doc, _) = registered();
    let mine = login(&mut doc, T0 + 1);
    let other = login(&mut doc, T0 + 2);
    let change = |current: &str, sid: &str| AccountRequest::PasswordChange {
        sid: Some(sid.to_owned()),
        current: current.into(),
        new: NEW_PASSWORD.into(),
        client: None,
    };
    let before = doc.clone();
    assert_eq!(
        run(&mut doc, change("wrong password", &sid(&mine.refresh_token)), T0 + 3),
        refused(Refusal::WrongPassword)
    );
    assert_eq!(doc.account, before.account, "a wrong current password changes nothing but the throttle");
    assert_eq!(doc.throttle.failures, 1, "and counts as a failed attempt");
    let ran = run_with(&mut doc, change(PASSWORD, &sid(&mine.refresh_token)), &settings(), T0 + 4);
    assert_eq!(ran.outcome, AccountOutcome::Done);
    assert_eq!(ran.events, ["password.changed"]);
    assert!(
        matches!(refresh(&mut doc, &mine.refresh_token, T0 + 5), AccountOutcome::Tokens { .. }),
        "this session stays"
    );
    assert_eq!(refresh(&mut doc, &other.refresh_token, T0 + 5), refused(Refusal::InvalidGrant));
    assert_eq!(
        doc.revocation.check_ids(Some(T0 + 2), Some(&sid(&other.refresh_token)), None),
        Err(Revoked::Session),
        "the other session's access tokens are refused at the edge"
    );
    assert!(doc.revocation.check_ids(Some(T0 + 4), Some(&sid(&mine.refresh_token)), None).is_ok());
    assert_eq!(run(&mut doc, login_request(PASSWORD), T0 + 6), refused(Refusal::InvalidCredentials));
    assert!(matches!(run(&mut doc, login_request(NEW_PASSWORD), T0 + 7), AccountOutcome::Tokens { .. }));
}

#[test]
fn a_password_change_voids_an_earlier_reset_link_and_guessing_the_current_password_is_throttled() {
    let (mut doc, _) = registered();
    let mine = login(&mut doc, T0 + 1);
    let link = forgot(&mut doc, T0 + 2).expect("a reset mail");
    let change = |current: &str| AccountRequest::PasswordChange {
        sid: Some(sid(&mine.refresh_token)),
        current: current.into(),
        new: NEW_PASSWORD.into(),
        client: Some("tag".into()),
    };
    assert_eq!(run(&mut doc, change(PASSWORD), T0 + 3), AccountOutcome::Done);
    assert_eq!(reset(&mut doc, &link, "attacker's choice 123", T0 + 4), refused(Refusal::InvalidLink));
    // Five wrong current passwords in a row: the next attempt is slowed down, right or wrong.
    for i in 0..5 {
        assert_eq!(run(&mut doc, change("wrong guess!"), T0 + 10 + i), refused(Refusal::WrongPassword));
    }
    assert!(matches!(
        run(&mut doc, change(NEW_PASSWORD), T0 + 15),
        AccountOutcome::Refused { refusal: Refusal::Throttled { .. } }
    ));
}

#[test]
fn sessions_are_listed_newest_first_and_one_can_be_revoked() {
    let (mut doc, _) = registered();
    let (phone, _) = login_from(&mut doc, T0 + 1, "Phone/1.0\u{7}");
    let (laptop, _) = login_from(&mut doc, T0 + 2, "Laptop/2.0");
    let list = match run(&mut doc, AccountRequest::Sessions { current: Some(sid(&laptop.refresh_token)) }, T0 + 3) {
        AccountOutcome::Sessions { sessions } => sessions,
        other => panic!("{other:?}"),
    };
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].sid, sid(&laptop.refresh_token));
    assert!(list[0].current && !list[1].current);
    assert_eq!(list[0].user_agent.as_deref(), Some("Laptop/2.0"));
    assert_eq!(list[1].user_agent.as_deref(), Some("Phone/1.0"), "control characters are dropped");
    assert_eq!(list[1].country.as_deref(), Some("DE"));
    assert_eq!((list[1].created_at, list[1].last_used_at), (T0 + 1, T0 + 1));
    // Revoke the phone: its refresh token dies and its access tokens are denylisted.
    let ran = run_with(&mut doc, AccountRequest::SessionRevoke { sid: sid(&phone.refresh_token) }, &settings(), T0 + 4);
    assert_eq!(ran.outcome, AccountOutcome::Done);
    assert_eq!(ran.events, ["session.revoked"]);
    assert_eq!(refresh(&mut doc, &phone.refresh_token, T0 + 5), refused(Refusal::InvalidGrant));
    assert_eq!(doc.revocation.check_ids(Some(T0 + 1), Some(&sid(&phone.refresh_token)), None), Err(Revoked::Session));
    assert!(matches!(refresh(&mut doc, &laptop.refresh_token, T0 + 5), AccountOutcome::Tokens { .. }));
    // Unknown or already revoked: refused, nothing changes.
    let before = doc.clone();
    for sid in [sid(&phone.refresh_token), "AAAAAAAAAAAAAAAAAAAAAA".into()] {
        assert_eq!(run(&mut doc, AccountRequest::SessionRevoke { sid }, T0 + 6), refused(Refusal::NoSuchSession));
    }
    assert_eq!(doc, before);
}

#[test]
fn device_strings_are_cleaned_and_capped() {
    let long = "x".repeat(1000);
    let device = Device::new(Some(&long), Some("zz1"));
    assert_eq!(device.user_agent.map(|a| a.len()), Some(Device::MAX_USER_AGENT));
    assert_eq!(device.country, None, "not a two-letter code");
    assert_eq!(Device::new(Some("  \r\n "), None).user_agent, None);
}

#[test]
fn admin_roles_reach_the_next_token() {
    let (mut doc, _) = registered();
    let pair = login(&mut doc, T0 + 1);
    let grant = AccountRequest::AdminUpdate {
        roles: Some(vec!["user".into(), "admin".into()]),
        scope: Some("api".into()),
        disabled: None,
        app_metadata: None,
    };
    let user = match run(&mut doc, grant, T0 + 2) {
        AccountOutcome::User { user } => user,
        other => panic!("{other:?}"),
    };
    assert_eq!(user["roles"], json!(["user", "admin"]));
    assert!(user.get("password").is_none() && !user.to_string().contains("argon2"), "no hash in the view");
    let claims = refresh_claims(&mut doc, &pair.refresh_token, T0 + 3);
    assert_eq!(claims["roles"], json!(["user", "admin"]));
    assert_eq!(claims["scope"], json!("api"));
}

#[test]
fn disabling_ends_every_session_and_refuses_logins_until_enabled() {
    let (mut doc, _) = registered();
    let pair = login(&mut doc, T0 + 1);
    let set = |disabled: bool| AccountRequest::AdminUpdate {
        roles: None,
        scope: None,
        disabled: Some(disabled),
        app_metadata: None,
    };
    let ran = run_with(&mut doc, set(true), &settings(), T0 + 2);
    assert_eq!(ran.events, ["account.disabled"]);
    assert_eq!(refresh(&mut doc, &pair.refresh_token, T0 + 3), refused(Refusal::InvalidGrant));
    assert!(doc.revocation.check_ids(Some(T0 + 1), Some(&sid(&pair.refresh_token)), None).is_err());
    assert_eq!(run(&mut doc, login_request(PASSWORD), T0 + 4), refused(Refusal::AccountDisabled));
    assert_eq!(
        run(&mut doc, login_request("a wrong password"), T0 + 5),
        refused(Refusal::InvalidCredentials),
        "a wrong password does not learn that the account is disabled"
    );
    assert_eq!(run_with(&mut doc, set(false), &settings(), T0 + 6).events, ["account.enabled"]);
    assert!(matches!(run(&mut doc, login_request(PASSWORD), T0 + 7), AccountOutcome::Tokens { .. }));
}

#[test]
fn admin_emails_hold_admin_only_once_verified() {
    let (mut doc, link) = registered();
    let listed = Settings { admin_emails: vec![EMAIL.into()], ..settings() };
    let login_claims =
        |doc: &mut AccountDoc, now| run_with(doc, login_request(PASSWORD), &listed, now).claims.expect("claims");
    assert_eq!(login_claims(&mut doc, T0 + 1)["roles"], json!(["user"]), "an unverified listed email is no admin");
    assert_eq!(run(&mut doc, verify_signed_in(secret(&link, LinkPurpose::Verify)), T0 + 2), AccountOutcome::Done);
    assert_eq!(login_claims(&mut doc, T0 + 3)["roles"], json!(["user", "admin"]));
    let unlisted = run_with(&mut doc, login_request(PASSWORD), &settings(), T0 + 4).claims.expect("claims");
    assert_eq!(unlisted["roles"], json!(["user"]));
}

#[test]
fn required_verification_refuses_logins_and_resends_at_most_once_a_minute() {
    let (mut doc, link) = registered();
    let strict = Settings { email_verification_required: true, ..settings() };
    let first = run_with(&mut doc, login_request(PASSWORD), &strict, T0 + MAIL_INTERVAL_SECONDS);
    let AccountOutcome::EmailNotVerified { mail: Some(resent) } = first.outcome else { panic!("{:?}", first.outcome) };
    assert!(doc.account.as_ref().unwrap().families.is_empty(), "no session started");
    let second = run_with(&mut doc, login_request(PASSWORD), &strict, T0 + MAIL_INTERVAL_SECONDS + 1).outcome;
    assert_eq!(second, AccountOutcome::EmailNotVerified { mail: None });
    assert_eq!(
        run_with(&mut doc, login_request("wrong password"), &strict, T0 + 100).outcome,
        refused(Refusal::InvalidCredentials)
    );
    // Both the registration's link and the resent one work (once: the account is then verified).
    let mut probe = doc.clone();
    assert_eq!(run(&mut probe, verify_signed_in(secret(&link, LinkPurpose::Verify)), T0 + 101), AccountOutcome::Done);
    assert_eq!(run(&mut doc, verify_signed_in(secret(&resent, LinkPurpose::Verify)), T0 + 102), AccountOutcome::Done);
    assert!(matches!(
        run_with(&mut doc, login_request(PASSWORD), &strict, T0 + 103).outcome,
        AccountOutcome::Tokens { .. }
    ));
}

#[test]
fn token_claims_copy_metadata_fields_within_the_cap() {
    let (mut doc, _) = registered();
    let with_claims = Settings {
        token_claims: token_claims("app_metadata.plan, user_metadata.locale, app_metadata.big, app_metadata.org")
            .unwrap(),
        ..settings()
    };
    let metadata = json!({ "plan": "pro", "big": "x".repeat(MAX_CUSTOM_CLAIMS_BYTES), "org": 7, "roles": ["root"] });
    let update = AccountRequest::AdminUpdate { roles: None, scope: None, disabled: None, app_metadata: Some(metadata) };
    assert!(matches!(run(&mut doc, update, T0 + 1), AccountOutcome::User { .. }));
    assert!(matches!(
        run(&mut doc, AccountRequest::UserMetadata { value: json!({ "locale": "de" }) }, T0 + 2),
        AccountOutcome::User { .. }
    ));
    let claims = run_with(&mut doc, login_request(PASSWORD), &with_claims, T0 + 3).claims.expect("claims");
    assert_eq!(claims["plan"], json!("pro"));
    assert_eq!(claims["locale"], json!("de"));
    assert_eq!(claims["org"], json!(7));
    assert!(claims.get("big").is_none(), "a field over the cap is left out");
    assert_eq!(claims["roles"], json!(["user"]), "metadata never becomes roles");
    assert!(token_claims("app_metadata.roles").is_err(), "a registered claim cannot be named");
    assert!(token_claims("app_metadata.sub").is_err());
    assert!(token_claims("plan").is_err());
    assert!(token_claims("app_metadata.a, user_metadata.a").is_err(), "one claim from two fields");
}

#[test]
fn export_holds_the_users_data_and_no_secret() {
    let (mut doc, _) = registered();
    let _ = login_from(&mut doc, T0 + 1, "Exporter/1.0");
    let data = match run(&mut doc, AccountRequest::Export, T0 + 2) {
        AccountOutcome::Export { data } => data,
        other => panic!("{other:?}"),
    };
    assert_eq!(data["account"]["email"], json!(EMAIL));
    assert_eq!(data["sessions"][0]["user_agent"], json!("Exporter/1.0"));
    assert_eq!(data["exported_at"], json!(T0 + 2));
    let text = data.to_string();
    let account = doc.account.as_ref().unwrap();
    assert!(!text.contains(&account.password) && !text.contains("argon2"), "no password hash");
    assert!(!text.contains(&b64::encode(account.families[0].key)), "no session key");
}

#[test]
fn self_deletion_needs_the_password_then_forgets_everything_but_the_denylist() {
    let (mut doc, _) = registered();
    let pair = login(&mut doc, T0 + 1);
    let before = doc.clone();
    let wrong = AccountRequest::DeleteSelf { password: "not my password".into(), client: None };
    assert_eq!(run(&mut doc, wrong, T0 + 2), refused(Refusal::WrongPassword));
    assert_eq!(doc.account, before.account);
    let ran =
        run_with(&mut doc, AccountRequest::DeleteSelf { password: PASSWORD.into(), client: None }, &settings(), T0 + 3);
    assert_eq!(ran.outcome, AccountOutcome::Done);
    assert_eq!(ran.events, ["account.deleted"]);
    assert!(doc.account.is_none() && doc.links.is_empty() && doc.known_clients.is_empty());
    assert!(
        doc.revocation.check_ids(Some(T0 + 1), Some(&sid(&pair.refresh_token)), None).is_err(),
        "old tokens stay refused"
    );
    assert_eq!(refresh(&mut doc, &pair.refresh_token, T0 + 4), refused(Refusal::InvalidGrant));
    assert_eq!(run(&mut doc, login_request(PASSWORD), T0 + 5), refused(Refusal::InvalidCredentials));
    assert_eq!(run(&mut doc, AccountRequest::Export, T0 + 6), refused(Refusal::NoSuchAccount));
    assert_eq!(run(&mut doc, AccountRequest::AdminGet, T0 + 6), refused(Refusal::NoSuchAccount));
    // The email can register again, as a new account with nothing of the old one.
    let again = AccountRequest::Register { email: EMAIL.into(), password: NEW_PASSWORD.into() };
    assert!(matches!(run(&mut doc, again, T0 + 7), AccountOutcome::Registered { .. }));
    assert!(doc.account.as_ref().unwrap().families.is_empty());
}

#[test]
fn admin_deletion_and_revocation() {
    let (mut doc, _) = registered();
    let a = login(&mut doc, T0 + 1);
    assert_eq!(run(&mut doc, AccountRequest::AdminRevokeSessions, T0 + 2), AccountOutcome::Done);
    assert_eq!(refresh(&mut doc, &a.refresh_token, T0 + 3), refused(Refusal::InvalidGrant));
    assert!(
        matches!(run(&mut doc, login_request(PASSWORD), T0 + 4), AccountOutcome::Tokens { .. }),
        "revoking is no disabling"
    );
    assert_eq!(run_with(&mut doc, AccountRequest::AdminDelete, &settings(), T0 + 5).events, ["account.deleted"]);
    assert!(doc.account.is_none());
    assert_eq!(run(&mut doc, AccountRequest::AdminDelete, T0 + 6), refused(Refusal::NoSuchAccount));
    let mut empty = AccountDoc::default();
    assert_eq!(run(&mut empty, AccountRequest::AdminRevokeSessions, T0), refused(Refusal::NoSuchAccount));
    assert_eq!(empty, AccountDoc::default());
}

#[test]
fn a_taken_email_notice_goes_to_the_owner_at_most_once_a_minute() {
    let (mut doc, _) = registered();
    let notify = |email: &str| AccountRequest::NotifyTaken { email: email.into() };
    let ran = run_with(&mut doc, notify(EMAIL), &settings(), T0 + 1);
    assert_eq!(ran.outcome, AccountOutcome::Notice { to: EMAIL.into() });
    assert_eq!(ran.events, ["register.taken_notice"]);
    assert_eq!(run(&mut doc, notify(EMAIL), T0 + 30), AccountOutcome::Done, "not twice within the minute");
    assert_eq!(
        run(&mut doc, notify(EMAIL), T0 + 1 + MAIL_INTERVAL_SECONDS),
        AccountOutcome::Notice { to: EMAIL.into() }
    );
    assert_eq!(run(&mut doc, notify("eve@example.com"), T0 + 500), AccountOutcome::Done, "another email is no owner");
    let mut empty = AccountDoc::default();
    assert_eq!(run(&mut empty, notify(EMAIL), T0), AccountOutcome::Done);
    assert_eq!(empty, AccountDoc::default(), "nothing is stored for an unknown email");
}

#[test]
fn user_metadata_cannot_push_admin_claims_out_of_the_budget() {
    let (mut doc, _) = registered();
    let with_claims =
        Settings { token_claims: token_claims("user_metadata.locale, app_metadata.tenant").unwrap(), ..settings() };
    let update = AccountRequest::AdminUpdate {
        roles: None,
        scope: None,
        disabled: None,
        app_metadata: Some(json!({ "tenant": "acme" })),
    };
    assert!(matches!(run(&mut doc, update, T0 + 1), AccountOutcome::User { .. }));
    let big = json!({ "locale": "x".repeat(MAX_CUSTOM_CLAIMS_BYTES - 20) });
    assert!(matches!(run(&mut doc, AccountRequest::UserMetadata { value: big }, T0 + 2), AccountOutcome::User { .. }));
    let claims = run_with(&mut doc, login_request(PASSWORD), &with_claims, T0 + 3).claims.expect("claims");
    assert_eq!(claims["tenant"], json!("acme"), "the admin's field stays");
    assert!(claims.get("locale").is_none(), "the user's field is what no longer fits");
}

#[test]
fn verifying_needs_the_account_too_so_the_mailbox_owner_cannot_verify_a_strangers_account() {
    // Someone registered the owner's email with their own password; the owner got the link.
    let (mut doc, link) = registered();
    let before = doc.clone();
    let without = AccountRequest::EmailVerify {
        secret: secret(&link, LinkPurpose::Verify),
        signed_in: false,
        password: None,
        client: None,
    };
    assert_eq!(run(&mut doc, without, T0 + 1), refused(Refusal::WrongPassword));
    let guessed = run_with(
        &mut doc,
        verify_with_password(secret(&link, LinkPurpose::Verify), "the owner's guess"),
        &settings(),
        T0 + 2,
    );
    assert_eq!(guessed.outcome, refused(Refusal::WrongPassword));
    assert_eq!(guessed.events, ["login.failed"], "a wrong password counts like a failed login");
    assert!(!doc.account.as_ref().unwrap().email_verified);
    assert_eq!(doc.links, before.links, "the link stays live");
    // With the password (the registrant reading their own mailbox), it verifies, once.
    assert_eq!(
        run(&mut doc, verify_with_password(secret(&link, LinkPurpose::Verify), PASSWORD), T0 + 3),
        AccountOutcome::Done
    );
    assert!(doc.account.as_ref().unwrap().email_verified);
    assert_eq!(
        run(&mut doc, verify_with_password(secret(&link, LinkPurpose::Verify), PASSWORD), T0 + 4),
        refused(Refusal::InvalidLink)
    );
}

#[test]
fn the_first_proof_of_the_mailbox_by_reset_drops_what_the_registrant_set() {
    // A stranger registered the owner's email, set user metadata and holds a session.
    let (mut doc, _) = registered();
    let stranger = login(&mut doc, T0 + 1);
    assert!(matches!(
        run(&mut doc, AccountRequest::UserMetadata { value: json!({ "name": "not the owner" }) }, T0 + 2),
        AccountOutcome::User { .. }
    ));
    // (A second factor stands for what they enrolled: recovery codes, as after a TOTP enrolment.)
    doc.mfa.recovery = gatehouse::mfa::recovery::RecoveryCodes::generate(
        &[[7u8; gatehouse::mfa::recovery::CODE_BYTES]; gatehouse::mfa::recovery::COUNT],
    )
    .0;
    // The owner, who never chose the password, resets it through the mailbox.
    let link = forgot(&mut doc, T0 + 3).expect("a reset mail");
    let ran = reset_ran(&mut doc, &link, NEW_PASSWORD, T0 + 4);
    assert_eq!(ran.outcome, AccountOutcome::Done);
    assert_eq!(ran.events, ["mfa.removed", "password.reset"]);
    assert_eq!(doc.mfa, Default::default(), "factors and passkeys of the unproven registrant are gone");
    assert!(doc.account.as_ref().unwrap().user_metadata.is_null());
    assert_eq!(refresh(&mut doc, &stranger.refresh_token, T0 + 5), refused(Refusal::InvalidGrant));
    // A later reset of the now verified account keeps the second factor (a mailbox thief meets it).
    let link = forgot(&mut doc, T0 + 100).expect("a reset mail");
    let later = reset_ran(&mut doc, &link, "yet another passphrase", T0 + 101);
    assert_eq!(later.events, ["password.reset"]);
}

fn ids(claims: &Value) -> gatehouse::account::protocol::TokenIds {
    gatehouse::account::protocol::TokenIds {
        iat: claims["iat"].as_i64(),
        sid: claims["sid"].as_str().map(str::to_owned),
        jti: claims["jti"].as_str().map(str::to_owned),
    }
}

#[test]
fn a_signed_in_request_is_refused_once_the_object_holds_its_token_revoked() {
    let (mut doc, _) = registered();
    let (pair, claims) = login_from(&mut doc, T0 + 1, "agent");
    let as_user = |request| AccountRequest::AsUser { token: ids(&claims), request: Box::new(request) };
    assert!(matches!(run(&mut doc, as_user(AccountRequest::Export), T0 + 2), AccountOutcome::Export { .. }));
    // The session is revoked (here by its own logout-all); the edge's copy may lag, the object does not.
    assert_eq!(run(&mut doc, AccountRequest::AdminRevokeSessions, T0 + 3), AccountOutcome::Done);
    let kept = |doc: &AccountDoc| doc.account.as_ref().map(|a| (a.password.clone(), a.user_metadata.clone()));
    let before = kept(&doc);
    for request in [
        AccountRequest::Export,
        AccountRequest::DeleteSelf { password: PASSWORD.into(), client: None },
        AccountRequest::UserMetadata { value: json!({ "x": 1 }) },
        AccountRequest::PasswordChange {
            sid: Some(sid(&pair.refresh_token)),
            current: PASSWORD.into(),
            new: NEW_PASSWORD.into(),
            client: None,
        },
    ] {
        assert_eq!(run(&mut doc, as_user(request), T0 + 4), refused(Refusal::TokenRevoked));
    }
    assert_eq!(kept(&doc), before, "nothing changed: the account is not deleted, its password not changed");
}

#[test]
fn the_admin_check_reads_the_role_and_the_token_at_the_object() {
    let (mut doc, link) = registered();
    let grant = |roles: Vec<&str>| AccountRequest::AdminUpdate {
        roles: Some(roles.into_iter().map(str::to_owned).collect()),
        scope: None,
        disabled: None,
        app_metadata: None,
    };
    assert!(matches!(run(&mut doc, grant(vec!["user", "admin"]), T0 + 1), AccountOutcome::User { .. }));
    let (_, claims) = login_from(&mut doc, T0 + 2, "agent");
    let check = || AccountRequest::AdminCheck { token: ids(&claims) };
    assert_eq!(run(&mut doc, check(), T0 + 3), AccountOutcome::Done);
    // Demoted: the token still says admin, the object does not.
    assert!(matches!(run(&mut doc, grant(vec!["user"]), T0 + 4), AccountOutcome::User { .. }));
    assert_eq!(run(&mut doc, check(), T0 + 5), refused(Refusal::NotAdmin));
    // Admin again, then disabled (its sessions revoked): refused again.
    assert!(matches!(run(&mut doc, grant(vec!["admin"]), T0 + 6), AccountOutcome::User { .. }));
    assert_eq!(run(&mut doc, check(), T0 + 7), AccountOutcome::Done);
    let disable = AccountRequest::AdminUpdate { roles: None, scope: None, disabled: Some(true), app_metadata: None };
    assert!(matches!(run(&mut doc, disable, T0 + 8), AccountOutcome::User { .. }));
    assert_eq!(run(&mut doc, check(), T0 + 9), refused(Refusal::NotAdmin));
    // ADMIN_EMAILS counts once the email is verified.
    let (mut doc, _) = registered();
    let listed = Settings { admin_emails: vec![EMAIL.into()], ..settings() };
    let (_, claims) = login_from(&mut doc, T0 + 1, "agent");
    let check = AccountRequest::AdminCheck { token: ids(&claims) };
    assert_eq!(run_with(&mut doc, check.clone(), &listed, T0 + 2).outcome, refused(Refusal::NotAdmin));
    assert_eq!(run(&mut doc, verify_signed_in(secret(&link, LinkPurpose::Verify)), T0 + 3), AccountOutcome::Done);
    assert_eq!(run_with(&mut doc, check, &listed, T0 + 4).outcome, AccountOutcome::Done);
}
