//! The account state machine (`account::core`) natively, through the typed protocol the Durable
//! Object speaks, with a frozen clock and seeded randomness: every transition of a session's refresh
//! family (rotation, grace replay, reuse, absolute and idle expiry, logout, logout-all, RFC 7009
//! revocation), registration and login, and a property test that no interleaving of refreshes,
//! replays, logouts and time ever leaves two live refresh tokens in one family. Native only
//! (proptest has no wasm32-unknown-unknown randomness).
#![cfg(not(target_arch = "wasm32"))]

use gatehouse::account::core::{self, Context, Fault, Reply, Transition};
use gatehouse::account::family::hash;
use gatehouse::account::protocol::{AccountOutcome, AccountRequest, MfaMethod, Refusal, TokenIds, TokenPair};
use gatehouse::account::state::{AccountDoc, KNOWN_CLIENT_SECONDS, MAX_KNOWN_CLIENTS};
use gatehouse::input::RefreshToken;
use gatehouse::jwt::b64;
use gatehouse::mfa::secretbox::EncryptionKey;
use gatehouse::mfa::totp::Totp;
use proptest::prelude::*;
#[path = "support/account.rs"]
mod support;
use std::sync::OnceLock;
use support::{dummy, rng, settings, Seeded};

const T0: i64 = 1_767_225_600;
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const EMAIL: &str = "ann@example.com";
const PASSWORD: &str = "correct horse battery";

fn mfa_key() -> &'static EncryptionKey {
    static KEY: OnceLock<EncryptionKey> = OnceLock::new();
    KEY.get_or_init(|| EncryptionKey::from_bytes([7; 32]))
}

fn ctx(now: i64) -> Context<'static> {
    Context {
        now,
        account_id: ACCOUNT,
        dummy_hash: Some(dummy()),
        pbkdf2: Default::default(),
        mfa_key: Some(mfa_key()),
    }
}

/// Applies a request and completes it as the object does: a made-up signature for the claims.
fn run(doc: &mut AccountDoc, request: AccountRequest, now: i64, rng: &mut Seeded) -> (AccountOutcome, Transition) {
    let mut transition = core::apply(doc, request, &settings(), ctx(now), rng).expect("no fault");
    let reply = std::mem::replace(&mut transition.reply, Reply::Answer(AccountOutcome::Done));
    let outcome = match reply {
        Reply::Answer(outcome) => outcome,
        Reply::Sign(unsigned) => {
            let jti = unsigned.claims["jti"].as_str().expect("jti").to_owned();
            core::finish(doc, unsigned, format!("access.{jti}.signed"))
        }
    };
    (outcome, transition)
}

fn registered() -> AccountDoc {
    static DOC: OnceLock<AccountDoc> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = AccountDoc::default();
        let request = AccountRequest::Register { email: EMAIL.into(), password: PASSWORD.into() };
        let (outcome, _) = run(&mut doc, request, T0, &mut rng(1));
        assert_eq!(outcome, AccountOutcome::Registered { sub: ACCOUNT.into(), mail: None });
        doc
    })
    .clone()
}

fn login(doc: &mut AccountDoc, now: i64, rng: &mut Seeded) -> TokenPair {
    let request =
        AccountRequest::Login { email: EMAIL.into(), password: PASSWORD.into(), jkt: None, client: None, device: None };
    match run(doc, request, now, rng).0 {
        AccountOutcome::Tokens { pair } => pair,
        other => panic!("login: {other:?}"),
    }
}

fn refresh_request(token: &str) -> AccountRequest {
    let t = RefreshToken::parse(token).expect("a refresh token");
    AccountRequest::Refresh { sid: t.sid, secret: b64::encode(t.secret), scope: None, jkt: None }
}

fn refresh(doc: &mut AccountDoc, token: &str, now: i64, rng: &mut Seeded) -> AccountOutcome {
    run(doc, refresh_request(token), now, rng).0
}

fn sid_of(token: &str) -> String {
    RefreshToken::parse(token).expect("a refresh token").sid
}

fn pair_of(outcome: AccountOutcome) -> TokenPair {
    match outcome {
        AccountOutcome::Tokens { pair } => pair,
        other => panic!("expected tokens, got {other:?}"),
    }
}

const REFUSED: AccountOutcome = AccountOutcome::Refused { refusal: Refusal::InvalidGrant };

#[test]
fn registration_is_once_per_account_and_stores_only_a_hash() {
    let mut doc = registered();
    let account = doc.account.clone().expect("registered");
    assert_eq!(account.sub, ACCOUNT);
    assert!(account.password.starts_with("$argon2id$") && !account.password.contains(PASSWORD));
    assert_eq!(account.scope, "api read");
    let again = AccountRequest::Register { email: EMAIL.into(), password: "another password".into() };
    let (outcome, t) = run(&mut doc, again, T0 + 1, &mut rng(2));
    assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::EmailTaken });
    assert!(t.events.is_empty());
    assert_eq!(doc.account.as_ref().map(|a| &a.password), Some(&account.password), "nothing changed");
}

#[test]
fn login_issues_a_session_and_wrong_passwords_count_against_the_throttle() {
    let mut doc = registered();
    let wrong = AccountRequest::Login {
        email: EMAIL.into(),
        password: "wrong password".into(),
        jkt: None,
        client: None,
        device: None,
    };
    let (outcome, _) = run(&mut doc, wrong.clone(), T0, &mut rng(3));
    assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidCredentials });
    assert_eq!(doc.throttle.failures, 1);
    // An unknown account answers alike (its object has no account).
    let mut empty = AccountDoc::default();
    let (unknown, _) = run(&mut empty, wrong.clone(), T0, &mut rng(3));
    assert_eq!(unknown, AccountOutcome::Refused { refusal: Refusal::InvalidCredentials });
    for i in 1..5 {
        run(&mut doc, wrong.clone(), T0 + i, &mut rng(3));
    }
    let (throttled, _) = run(&mut doc, wrong, T0 + 5, &mut rng(3));
    assert!(
        matches!(throttled, AccountOutcome::Refused { refusal: Refusal::Throttled { retry_after } } if retry_after > 0)
    );
    // Once the lock has passed, the right password works; the strangers' failures stay counted
    // (a success of the owner's must not give an attacker fresh attempts).
    let pair = login(&mut doc, T0 + 1000, &mut rng(4));
    assert_eq!(pair.token_type, "Bearer");
    assert_eq!(pair.expires_in, 900);
    assert_eq!(doc.throttle.failures, 5);
    let families = &doc.account.as_ref().expect("account").families;
    assert_eq!(families.len(), 1);
    assert_eq!(families[0].sid, sid_of(&pair.refresh_token));
}

#[test]
fn the_access_claims_are_those_of_the_contract() {
    let mut doc = registered();
    let request =
        AccountRequest::Login { email: EMAIL.into(), password: PASSWORD.into(), jkt: None, client: None, device: None };
    let transition = core::apply(&mut doc, request, &settings(), ctx(T0), &mut rng(5)).expect("no fault");
    let Reply::Sign(unsigned) = transition.reply else { panic!("a login signs a token") };
    let c = &unsigned.claims;
    assert_eq!(c["iss"], "https://gatehouse.test");
    assert_eq!(c["sub"], ACCOUNT);
    assert_eq!(c["aud"], "api");
    assert_eq!((c["iat"].as_i64(), c["exp"].as_i64()), (Some(T0), Some(T0 + 900)));
    assert_eq!(c["scope"], "api read");
    assert_eq!(c["roles"], serde_json::json!(["user"]));
    assert_eq!(c["email"], EMAIL);
    assert_eq!(b64::decode(c["jti"].as_str().expect("jti")).expect("b64").len(), 16, "128 random bits");
    assert_eq!(c["auth_time"], T0);
    assert_eq!(c["amr"], serde_json::json!(["pwd"]));
    assert_eq!(c["acr"], "aal1");
}

#[test]
fn a_refresh_keeps_the_sessions_auth_time_and_amr() {
    let mut doc = registered();
    let pair = login(&mut doc, T0, &mut rng(5));
    let later = T0 + 3600;
    let transition = core::apply(&mut doc, refresh_request(&pair.refresh_token), &settings(), ctx(later), &mut rng(6))
        .expect("no fault");
    let Reply::Sign(unsigned) = transition.reply else { panic!("a refresh signs a token") };
    assert_eq!(unsigned.claims["iat"], later);
    assert_eq!(unsigned.claims["auth_time"], T0, "a refresh is no new authentication");
    assert_eq!(unsigned.claims["amr"], serde_json::json!(["pwd"]));
    // A session stored before auth_time was recorded reads its start as the authentication.
    let family = &mut doc.account.as_mut().expect("account").families[0];
    family.auth_time = None;
    family.amr.clear();
    let stored = serde_json::to_value(&*family).expect("serialises");
    assert!(stored.get("auth_time").is_none() && stored.get("amr").is_none());
    let transition = core::apply(&mut doc, refresh_request(&pair.refresh_token), &settings(), ctx(later), &mut rng(6))
        .expect("no fault");
    let Reply::Sign(unsigned) = transition.reply else { panic!("a refresh signs a token") };
    assert_eq!(unsigned.claims["auth_time"], T0);
    assert_eq!(unsigned.claims["amr"], serde_json::json!(["pwd"]));
}

/// Enrols TOTP at `now` and confirms it with the code of that moment; the credential and the codes.
fn enrol(doc: &mut AccountDoc, now: i64) -> (Totp, Vec<String>) {
    let (outcome, t) = run(doc, AccountRequest::TotpEnroll, now, &mut rng(20));
    let AccountOutcome::TotpEnrollment { secret, otpauth_uri } = outcome else { panic!("{outcome:?}") };
    assert!(otpauth_uri.starts_with("otpauth://totp/gatehouse.test:ann%40example.com?secret="), "{otpauth_uri}");
    assert_eq!(t.events.len(), 1);
    let bytes = base32_decode(&secret);
    let totp = Totp::new(bytes, Default::default(), Default::default()).expect("a secret");
    let stored = serde_json::to_string(&doc.mfa).expect("serialises");
    assert!(!stored.contains(&secret), "the secret is stored sealed, never in base32");
    // Not on yet: a login still issues tokens at once.
    assert!(!doc.mfa.required());
    let wrong = run(doc, AccountRequest::TotpConfirm { code: "000000".into(), client: None }, now, &mut rng(21)).0;
    let expected_wrong = if totp.code_at(now).unwrap() == "000000" {
        wrong.clone()
    } else {
        AccountOutcome::Refused { refusal: Refusal::InvalidMfaCode }
    };
    assert_eq!(wrong, expected_wrong);
    let code = totp.code_at(now).expect("a code");
    let outcome = run(doc, AccountRequest::TotpConfirm { code, client: None }, now, &mut rng(22)).0;
    let AccountOutcome::RecoveryCodes { codes } = outcome else { panic!("{outcome:?}") };
    assert_eq!(codes.len(), 10);
    assert!(doc.mfa.required());
    doc.throttle = Default::default();
    (totp, codes)
}

fn base32_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes() {
        value = (value << 5) | alphabet.iter().position(|&a| a == c).expect("base32") as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    out
}

fn password_login(doc: &mut AccountDoc, now: i64, jkt: Option<&str>) -> AccountOutcome {
    let request = AccountRequest::Login {
        email: EMAIL.into(),
        password: PASSWORD.into(),
        jkt: jkt.map(str::to_owned),
        client: None,
        device: None,
    };
    // A new seed each time: two logins must not draw the same ticket.
    static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);
    run(doc, request, now, &mut rng(SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed))).0
}

fn ticket_of(outcome: &AccountOutcome) -> String {
    let AccountOutcome::MfaRequired { ticket, methods } = outcome else { panic!("{outcome:?}") };
    assert!(methods.contains(&"totp".to_owned()));
    let (_, secret) = gatehouse::account::mfa::parse_ticket(ticket).expect("a ticket");
    b64::encode(secret)
}

fn verify(doc: &mut AccountDoc, ticket: &str, method: MfaMethod, code: &str, now: i64) -> (AccountOutcome, Transition) {
    let request = AccountRequest::MfaVerify {
        ticket: ticket.into(),
        method,
        code: code.into(),
        jkt: None,
        client: None,
        device: None,
    };
    run(doc, request, now, &mut rng(31))
}

const BAD_CODE: AccountOutcome = AccountOutcome::Refused { refusal: Refusal::InvalidMfaCode };
const BAD_TICKET: AccountOutcome = AccountOutcome::Refused { refusal: Refusal::InvalidMfaTicket };

#[test]
fn a_login_with_totp_needs_the_code_and_each_code_and_ticket_works_once() {
    let mut doc = registered();
    let (totp, _) = enrol(&mut doc, T0);
    let now = T0 + 600;
    let first = password_login(&mut doc, now, None);
    let ticket = ticket_of(&first);
    assert!(doc.account.as_ref().unwrap().families.is_empty(), "no session before the second factor");
    // A wrong code is refused and counts against the throttle.
    let wrong = if totp.code_at(now).unwrap() == "123456" { "654321" } else { "123456" };
    assert_eq!(verify(&mut doc, &ticket, MfaMethod::Totp, wrong, now).0, BAD_CODE);
    assert_eq!(doc.throttle.failures, 1);
    let code = totp.code_at(now).unwrap();
    let transition = core::apply(
        &mut doc,
        AccountRequest::MfaVerify {
            ticket: ticket.clone(),
            method: MfaMethod::Totp,
            code: code.clone(),
            jkt: None,
            client: None,
            device: None,
        },
        &settings(),
        ctx(now),
        &mut rng(32),
    )
    .expect("no fault");
    let Reply::Sign(unsigned) = transition.reply else { panic!("tokens") };
    assert_eq!(unsigned.claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(unsigned.claims["acr"], "aal2");
    assert_eq!(unsigned.claims["auth_time"], now);
    let pair = pair_of(core::finish(&mut doc, unsigned, "access".into()));
    // The strangers' failures stay counted after a success (issue 14: the owner's login must not
    // give an attacker fresh attempts); a known client's own are forgotten (the test below).
    assert_eq!(doc.throttle.failures, 1, "a completed login keeps the strangers' failures");
    // The refresh keeps amr and auth_time.
    let t =
        core::apply(&mut doc, refresh_request(&pair.refresh_token), &settings(), ctx(now + 60), &mut rng(33)).unwrap();
    let Reply::Sign(unsigned) = t.reply else { panic!("tokens") };
    assert_eq!(
        (unsigned.claims["amr"].clone(), unsigned.claims["auth_time"].clone()),
        (serde_json::json!(["pwd", "otp", "mfa"]), now.into())
    );
    // The ticket is spent; the same code with a new ticket is a replay.
    let again = password_login(&mut doc, now, None);
    assert_eq!(verify(&mut doc, &ticket, MfaMethod::Totp, &code, now).0, BAD_TICKET);
    let fresh = ticket_of(&again);
    let (replayed, t) = verify(&mut doc, &fresh, MfaMethod::Totp, &code, now);
    assert_eq!(replayed, BAD_CODE);
    assert_eq!(t.events[0].reason, Some("code_replayed"));
    // The next step's code works (±1 step window).
    let next = totp.code_at(now + 30).unwrap();
    assert!(matches!(verify(&mut doc, &fresh, MfaMethod::Totp, &next, now).0, AccountOutcome::Tokens { .. }));
    // An expired ticket is refused.
    let late = ticket_of(&password_login(&mut doc, now + 100, None));
    assert_eq!(verify(&mut doc, &late, MfaMethod::Totp, &totp.code_at(now + 500).unwrap(), now + 500).0, BAD_TICKET);
    // A forged ticket is refused without a code being checked.
    assert_eq!(verify(&mut doc, &b64::encode([9u8; 32]), MfaMethod::Totp, &next, now).0, BAD_TICKET);
    assert_eq!(verify(&mut doc, "not a ticket", MfaMethod::Totp, &next, now).0, BAD_TICKET);
}

#[test]
fn recovery_codes_work_once_and_wrong_codes_throttle_and_end_the_ticket() {
    let mut doc = registered();
    let (_, codes) = enrol(&mut doc, T0);
    let now = T0 + 60;
    let ticket = ticket_of(&password_login(&mut doc, now, None));
    let (outcome, t) = verify(&mut doc, &ticket, MfaMethod::RecoveryCode, &codes[0], now);
    assert!(matches!(outcome, AccountOutcome::Tokens { .. }), "{outcome:?}");
    assert_eq!(t.events[0].reason, Some("recovery_code"));
    let ticket = ticket_of(&password_login(&mut doc, now, None));
    assert_eq!(verify(&mut doc, &ticket, MfaMethod::RecoveryCode, &codes[0], now).0, BAD_CODE, "used once");
    // Five wrong codes end the ticket; the throttle then locks.
    for _ in 1..5 {
        assert_eq!(verify(&mut doc, &ticket, MfaMethod::RecoveryCode, "aaaa-aaaa-aaaa-aaaa", now).0, BAD_CODE);
    }
    let locked = verify(&mut doc, &ticket, MfaMethod::RecoveryCode, &codes[1], now).0;
    assert!(matches!(locked, AccountOutcome::Refused { refusal: Refusal::Throttled { .. } }), "{locked:?}");
    assert_eq!(verify(&mut doc, &ticket, MfaMethod::RecoveryCode, &codes[1], now + 3600).0, BAD_TICKET);
    // Regenerated codes replace the old ones.
    let AccountOutcome::RecoveryCodes { codes: fresh } =
        run(&mut doc, AccountRequest::RecoveryRegenerate, now, &mut rng(40)).0
    else {
        panic!("codes")
    };
    let ticket = ticket_of(&password_login(&mut doc, now + 4000, None));
    assert_eq!(verify(&mut doc, &ticket, MfaMethod::RecoveryCode, &codes[2], now + 4000).0, BAD_CODE);
    assert!(matches!(
        verify(&mut doc, &ticket, MfaMethod::RecoveryCode, &fresh[2], now + 4000).0,
        AccountOutcome::Tokens { .. }
    ));
}

#[test]
fn the_ticket_is_bound_to_the_logins_dpop_key_and_totp_can_be_removed() {
    let mut doc = registered();
    let (totp, _) = enrol(&mut doc, T0);
    assert_eq!(
        run(&mut doc, AccountRequest::TotpEnroll, T0, &mut rng(1)).0,
        AccountOutcome::Refused { refusal: Refusal::MfaAlreadyEnabled }
    );
    let now = T0 + 90;
    let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let ticket = ticket_of(&password_login(&mut doc, now, Some(jkt)));
    let code = totp.code_at(now).unwrap();
    let request = |jkt: Option<&str>| AccountRequest::MfaVerify {
        ticket: ticket.clone(),
        method: MfaMethod::Totp,
        code: code.clone(),
        jkt: jkt.map(str::to_owned),
        client: None,
        device: None,
    };
    assert_eq!(run(&mut doc, request(None), now, &mut rng(2)).0, BAD_TICKET, "no proof");
    assert_eq!(run(&mut doc, request(Some("other")), now, &mut rng(2)).0, BAD_TICKET, "another key");
    let pair = pair_of(run(&mut doc, request(Some(jkt)), now, &mut rng(2)).0);
    assert_eq!(pair.token_type, "DPoP");
    assert_eq!(run(&mut doc, AccountRequest::TotpRemove, now, &mut rng(3)).0, AccountOutcome::Done);
    assert!(matches!(password_login(&mut doc, now, None), AccountOutcome::Tokens { .. }), "no second factor any more");
    assert_eq!(
        run(&mut doc, AccountRequest::TotpRemove, now, &mut rng(3)).0,
        AccountOutcome::Refused { refusal: Refusal::MfaNotEnabled }
    );
    // Without the sealing key nothing can be enrolled: a fault, nothing saved.
    let no_key = Context { mfa_key: None, ..ctx(now) };
    assert!(matches!(
        core::apply(&mut doc, AccountRequest::TotpEnroll, &settings(), no_key, &mut rng(4)),
        Err(Fault::Mfa(_))
    ));
}

#[test]
fn rotation_grace_replay_and_reuse() {
    let mut doc = registered();
    let mut r = rng(6);
    let first = login(&mut doc, T0, &mut r);
    let second = pair_of(refresh(&mut doc, &first.refresh_token, T0 + 60, &mut r));
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(sid_of(&second.refresh_token), sid_of(&first.refresh_token), "the same family");
    // The retired token within the grace period: the very same pair, nothing changed.
    let before = doc.clone();
    let replay = pair_of(refresh(&mut doc, &first.refresh_token, T0 + 70, &mut r));
    assert_eq!((&replay.access_token, &replay.refresh_token), (&second.access_token, &second.refresh_token));
    assert_eq!(replay.expires_in, second.expires_in - 10, "the same access token, 10 s older");
    assert_eq!(doc, before);
    // After it: reuse. The family is revoked, and its sid is denylisted for the edge.
    let version = doc.revocation_version;
    assert_eq!(refresh(&mut doc, &first.refresh_token, T0 + 71, &mut r), REFUSED);
    assert!(doc.revocation.sids.contains_key(&sid_of(&first.refresh_token)));
    assert_eq!(doc.revocation_version, version + 1, "KV must get the new record");
    assert_eq!(refresh(&mut doc, &second.refresh_token, T0 + 72, &mut r), REFUSED, "the live token died too");
}

#[test]
fn absolute_and_idle_expiry() {
    let s = settings();
    let mut r = rng(7);
    let mut doc = registered();
    let pair = login(&mut doc, T0, &mut r);
    let idle = T0 + s.lifetimes.idle;
    assert_eq!(refresh(&mut doc.clone(), &pair.refresh_token, idle, &mut r), REFUSED, "idle too long");
    assert!(matches!(refresh(&mut doc.clone(), &pair.refresh_token, idle - 1, &mut r), AccountOutcome::Tokens { .. }));
    // Used every 10 days, the session still ends at the absolute lifetime.
    let mut token = pair.refresh_token;
    let mut now = T0;
    while now + 10 * 86_400 < T0 + s.lifetimes.absolute {
        now += 10 * 86_400;
        token = pair_of(refresh(&mut doc, &token, now, &mut r)).refresh_token;
    }
    assert_eq!(refresh(&mut doc, &token, T0 + s.lifetimes.absolute, &mut r), REFUSED);
}

#[test]
fn logout_and_logout_all_end_sessions_and_denylist_them() {
    let mut r = rng(8);
    let mut doc = registered();
    let a = login(&mut doc, T0, &mut r);
    let b = login(&mut doc, T0 + 1, &mut r);
    let ids = |sid: &str, iat: i64| TokenIds { iat: Some(iat), sid: Some(sid.into()), jti: Some("j".into()) };
    let logout = AccountRequest::Logout { sid: sid_of(&a.refresh_token), token: ids(&sid_of(&a.refresh_token), T0) };
    assert_eq!(run(&mut doc, logout.clone(), T0 + 10, &mut r).0, AccountOutcome::Done);
    assert_eq!(refresh(&mut doc, &a.refresh_token, T0 + 11, &mut r), REFUSED);
    assert!(doc.revocation.sids.contains_key(&sid_of(&a.refresh_token)));
    // Idempotent: the same logout again changes nothing.
    let after = doc.clone();
    assert_eq!(run(&mut doc, logout, T0 + 12, &mut r).0, AccountOutcome::Done);
    assert_eq!(doc, after);
    // Logout-all: every session, and a cutoff for tokens issued before now.
    let all = AccountRequest::LogoutAll { token: ids(&sid_of(&b.refresh_token), T0 + 1) };
    assert_eq!(run(&mut doc, all, T0 + 20, &mut r).0, AccountOutcome::Done);
    assert_eq!(refresh(&mut doc, &b.refresh_token, T0 + 21, &mut r), REFUSED);
    assert_eq!(doc.revocation.all_before.map(|c| c.at), Some(T0 + 20));
    // A login right after works.
    let c = login(&mut doc, T0 + 21, &mut r);
    assert!(matches!(refresh(&mut doc, &c.refresh_token, T0 + 22, &mut r), AccountOutcome::Tokens { .. }));
}

#[test]
fn a_token_revoked_on_its_own_cannot_log_out() {
    let mut r = rng(9);
    let mut doc = registered();
    let a = login(&mut doc, T0, &mut r);
    let sid = sid_of(&a.refresh_token);
    run(&mut doc, AccountRequest::RevokeAccess { jti: "j1".into(), exp: T0 + 900 }, T0 + 1, &mut r);
    let token = TokenIds { iat: Some(T0), sid: Some(sid.clone()), jti: Some("j1".into()) };
    let (outcome, _) = run(&mut doc, AccountRequest::Logout { sid: sid.clone(), token }, T0 + 2, &mut r);
    assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::TokenRevoked });
    assert!(
        matches!(refresh(&mut doc, &a.refresh_token, T0 + 3, &mut r), AccountOutcome::Tokens { .. }),
        "the session lives"
    );
}

#[test]
fn rfc7009_revocation_of_a_refresh_token_ends_its_session_only_with_a_real_token() {
    let mut r = rng(10);
    let mut doc = registered();
    let a = login(&mut doc, T0, &mut r);
    let t = RefreshToken::parse(&a.refresh_token).expect("token");
    let forged = AccountRequest::RevokeRefresh { sid: t.sid.clone(), secret: b64::encode([7u8; 32]) };
    let before = doc.clone();
    assert_eq!(run(&mut doc, forged, T0 + 1, &mut r).0, AccountOutcome::Done);
    assert_eq!(doc, before, "knowing a sid is not enough");
    let real = AccountRequest::RevokeRefresh { sid: t.sid.clone(), secret: b64::encode(t.secret) };
    assert_eq!(run(&mut doc, real, T0 + 2, &mut r).0, AccountOutcome::Done);
    assert_eq!(refresh(&mut doc, &a.refresh_token, T0 + 3, &mut r), REFUSED);
}

#[test]
fn a_narrower_scope_is_granted_and_a_wider_one_refused_without_spending_the_token() {
    let mut r = rng(11);
    let mut doc = registered();
    let a = login(&mut doc, T0, &mut r);
    let t = RefreshToken::parse(&a.refresh_token).expect("token");
    let wide = AccountRequest::Refresh {
        sid: t.sid.clone(),
        secret: b64::encode(t.secret),
        scope: Some("admin".into()),
        jkt: None,
    };
    assert_eq!(run(&mut doc, wide, T0 + 1, &mut r).0, AccountOutcome::Refused { refusal: Refusal::InvalidScope });
    let narrow = AccountRequest::Refresh {
        sid: t.sid.clone(),
        secret: b64::encode(t.secret),
        scope: Some("read".into()),
        jkt: None,
    };
    let mut transition = core::apply(&mut doc, narrow, &settings(), ctx(T0 + 2), &mut r).expect("no fault");
    let Reply::Sign(unsigned) = std::mem::replace(&mut transition.reply, Reply::Answer(AccountOutcome::Done)) else {
        panic!("a rotation signs")
    };
    assert_eq!(unsigned.claims["scope"], "read");
}

/// One step of a client population: which session and what it does.
#[derive(Debug, Clone)]
enum Op {
    Login,
    /// Refresh a session with its latest token (the honest client).
    Refresh(usize),
    /// Present an older token of a session (a thief, or a replaying tab).
    Replay(usize, usize),
    Logout(usize),
    LogoutAll,
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Login),
        6 => (0..4usize).prop_map(Op::Refresh),
        3 => (0..4usize, 0..8usize).prop_map(|(s, k)| Op::Replay(s, k)),
        1 => (0..4usize).prop_map(Op::Logout),
        1 => Just(Op::LogoutAll),
        3 => (0..40u16).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the interleaving, each family has at most one refresh token that would still be
    /// accepted (and none once it is revoked): a reuse, a logout or a logout-all can never leave a
    /// second working token behind, and a rotation always retires the one presented.
    #[test]
    fn no_interleaving_leaves_two_live_refresh_tokens_in_a_family(ops in proptest::collection::vec(op(), 1..40), seed in any::<u64>()) {
        let mut r = rng(seed);
        let mut doc = registered();
        let mut now = T0;
        // Every refresh token ever handed out, per session, in order.
        let mut sessions: Vec<Vec<String>> = Vec::new();
        for op in ops {
            now += 1;
            match op {
                Op::Login => {
                    if sessions.len() < 4 {
                        sessions.push(vec![login(&mut doc, now, &mut r).refresh_token]);
                    }
                }
                Op::Wait(seconds) => now += i64::from(seconds),
                Op::Refresh(i) | Op::Replay(i, _) if i >= sessions.len() => {}
                Op::Refresh(i) => {
                    let latest = sessions[i].last().cloned().unwrap_or_default();
                    if let AccountOutcome::Tokens { pair } = refresh(&mut doc, &latest, now, &mut r) {
                        if !sessions[i].contains(&pair.refresh_token) {
                            sessions[i].push(pair.refresh_token);
                        }
                    }
                }
                Op::Replay(i, k) => {
                    let old = sessions[i][k % sessions[i].len()].clone();
                    if let AccountOutcome::Tokens { pair } = refresh(&mut doc, &old, now, &mut r) {
                        if !sessions[i].contains(&pair.refresh_token) {
                            sessions[i].push(pair.refresh_token);
                        }
                    }
                }
                Op::Logout(i) if i < sessions.len() => {
                    let sid = sid_of(&sessions[i][0]);
                    let token = TokenIds { iat: Some(now), sid: Some(sid.clone()), jti: None };
                    run(&mut doc, AccountRequest::Logout { sid, token }, now, &mut r);
                }
                Op::Logout(_) => {}
                Op::LogoutAll => {
                    let token = TokenIds { iat: Some(now), sid: None, jti: None };
                    run(&mut doc, AccountRequest::LogoutAll { token }, now, &mut r);
                }
            }
            let life = settings().lifetimes;
            for tokens in &sessions {
                let sid = sid_of(&tokens[0]);
                let family = doc.account.as_ref().and_then(|a| a.families.iter().find(|f| f.sid == sid));
                let live = tokens
                    .iter()
                    .filter(|t| family.is_some_and(|f| f.is_live(&RefreshToken::parse(t).expect("token").secret, now, &life)))
                    .count();
                prop_assert!(live <= 1, "session {sid}: {live} live refresh tokens");
                if let Some(f) = family.filter(|f| f.revoked.is_some()) {
                    prop_assert_eq!(live, 0, "a revoked family has no live token");
                    prop_assert!(doc.revocation.sids.contains_key(&f.sid), "a revoked family is denylisted");
                }
                if live == 1 {
                    let latest = tokens.last().expect("a token");
                    let f = family.expect("a family");
                    prop_assert_eq!(hash(&RefreshToken::parse(latest).expect("token").secret), f.live, "the live token is the latest handed out");
                }
            }
        }
    }
}

// The per-account slow-down (issue 14, "lockout as a weapon"): strangers' failures slow strangers,
// never a client that has logged in to the account before.

const OWNER: &str = "owner-client-tag";

fn attempt(password: &str, client: &str) -> AccountRequest {
    AccountRequest::Login {
        email: EMAIL.into(),
        password: password.into(),
        jkt: None,
        client: Some(client.into()),
        device: None,
    }
}

fn retry_after(outcome: &AccountOutcome) -> Option<i64> {
    match outcome {
        AccountOutcome::Refused { refusal: Refusal::Throttled { retry_after } } => Some(*retry_after),
        _ => None,
    }
}

/// An account whose owner logged in once from [`OWNER`].
fn owned() -> AccountDoc {
    let mut doc = registered();
    let (outcome, _) = run(&mut doc, attempt(PASSWORD, OWNER), T0, &mut rng(40));
    assert!(matches!(outcome, AccountOutcome::Tokens { .. }), "{outcome:?}");
    doc
}

#[test]
fn an_attacker_hammering_the_email_never_stops_the_owner_on_a_known_client() {
    let mut doc = owned();
    let mut now = T0 + 1;
    // A thousand wrong passwords from many addresses: the strangers are slowed down (most attempts
    // are refused unchecked), the owner's known client is not.
    let mut slowed = 0;
    for i in 0..1000 {
        let (outcome, _) = run(&mut doc, attempt("wrong password", &format!("attacker-{}", i % 50)), now, &mut rng(41));
        slowed += usize::from(retry_after(&outcome).is_some());
        now += 1;
    }
    assert!(slowed > 900, "the attacker is slowed down: {slowed} of 1000 refused unchecked");
    let (outcome, _) = run(&mut doc, attempt(PASSWORD, OWNER), now, &mut rng(42));
    assert!(matches!(outcome, AccountOutcome::Tokens { .. }), "the owner gets in: {outcome:?}");
    // And a stranger with the right password waits like any stranger (no oracle while slowed).
    let (outcome, _) = run(&mut doc, attempt(PASSWORD, "new-phone"), now, &mut rng(43));
    assert!(retry_after(&outcome).is_some(), "{outcome:?}");
}

#[test]
fn the_attackers_own_attempts_wait_longer_and_longer() {
    let mut doc = owned();
    let mut now = T0 + 10;
    let mut waits = Vec::new();
    for _ in 0..14 {
        let (outcome, _) = run(&mut doc, attempt("wrong password", "attacker"), now, &mut rng(44));
        match retry_after(&outcome) {
            // Refused unchecked: wait as told, then try again.
            Some(wait) => {
                waits.push(wait);
                now += wait;
            }
            None => assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidCredentials }),
        }
    }
    assert!(waits.windows(2).all(|w| w[1] >= w[0] * 2 || w[1] == 900), "doubling to the cap: {waits:?}");
    assert!(waits.len() >= 4 && waits[0] == 2, "{waits:?}");
    // Another address of the attacker's is a stranger too: no fresh attempts.
    if retry_after(&run(&mut doc, attempt("wrong password", "attacker"), now, &mut rng(44)).0).is_some() {
        now += 900;
        run(&mut doc, attempt("wrong password", "attacker"), now, &mut rng(44));
    }
    let (outcome, _) = run(&mut doc, attempt("wrong password", "attacker-2"), now, &mut rng(45));
    assert!(retry_after(&outcome).is_some(), "{outcome:?}");
}

#[test]
fn a_known_client_is_slowed_by_its_own_failures_only() {
    let mut doc = owned();
    for i in 0..5 {
        run(&mut doc, attempt("typo typo typo", OWNER), T0 + 1 + i, &mut rng(46));
    }
    let (outcome, _) = run(&mut doc, attempt(PASSWORD, OWNER), T0 + 6, &mut rng(47));
    assert_eq!(retry_after(&outcome), Some(1), "its own fifth failure slows it");
    // Strangers were not touched by the owner's typos.
    assert_eq!(doc.throttle.failures, 0);
    let (outcome, _) = run(&mut doc, attempt(PASSWORD, OWNER), T0 + 8, &mut rng(48));
    assert!(matches!(outcome, AccountOutcome::Tokens { .. }), "{outcome:?}");
    assert_eq!(doc.known_clients[0].throttle.failures, 0, "a success forgets its failures");
}

#[test]
fn known_clients_are_bounded_and_forgotten() {
    let mut doc = owned();
    for i in 0..MAX_KNOWN_CLIENTS as i64 + 3 {
        let (outcome, _) = run(&mut doc, attempt(PASSWORD, &format!("device-{i}")), T0 + 10 + i, &mut rng(49));
        assert!(matches!(outcome, AccountOutcome::Tokens { .. }));
    }
    assert_eq!(doc.known_clients.len(), MAX_KNOWN_CLIENTS);
    assert!(!doc.known_clients.iter().any(|c| c.tag == OWNER), "the least recent is forgotten first");
    // Long unused, a client is a stranger again: the strangers' slow-down applies to it.
    let later = T0 + 20 + KNOWN_CLIENT_SECONDS + 1;
    for i in 0..5 {
        run(&mut doc, attempt("wrong password", "attacker"), later + i, &mut rng(50));
    }
    let (outcome, _) = run(&mut doc, attempt(PASSWORD, "device-12"), later + 5, &mut rng(51));
    assert!(retry_after(&outcome).is_some(), "{outcome:?}");
    assert!(doc.known_clients.is_empty(), "pruned");
}

#[test]
fn no_account_knows_no_client() {
    // An unknown email: every client is a stranger (throttling tells nothing of who registered).
    let mut doc = AccountDoc::default();
    for i in 0..5 {
        run(&mut doc, attempt("wrong password", OWNER), T0 + i, &mut rng(52));
    }
    let (outcome, _) = run(&mut doc, attempt("wrong password", OWNER), T0 + 5, &mut rng(53));
    assert!(retry_after(&outcome).is_some());
    assert!(doc.known_clients.is_empty());
}

/// One step of the property test: an attacker's wrong password from some address, the owner's
/// right one from the known client, or time passing.
#[derive(Debug, Clone)]
enum Step {
    Attack(u8),
    Owner,
    Wait(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => any::<u8>().prop_map(Step::Attack),
        1 => Just(Step::Owner),
        2 => (0i64..2000).prop_map(Step::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever strangers do, from any addresses and at any pace, the owner's right password from
    /// a known client is never refused.
    #[test]
    fn strangers_never_refuse_the_owners_known_client(steps in proptest::collection::vec(step(), 1..40)) {
        let mut doc = owned();
        let mut now = T0 + 1;
        for (i, s) in steps.into_iter().enumerate() {
            match s {
                Step::Attack(who) => {
                    let (outcome, _) = run(&mut doc, attempt("wrong password", &format!("attacker-{who}")), now, &mut rng(i as u64));
                    let signed_in = matches!(outcome, AccountOutcome::Tokens { .. });
                    prop_assert!(!signed_in);
                }
                Step::Owner => {
                    let (outcome, _) = run(&mut doc, attempt(PASSWORD, OWNER), now, &mut rng(i as u64));
                    let signed_in = matches!(outcome, AccountOutcome::Tokens { .. });
                    prop_assert!(signed_in, "owner refused: {:?}", outcome);
                }
                Step::Wait(s) => now += s,
            }
            now += 1;
        }
    }
}

/// Second-factor codes are slowed down per client group like passwords: a stranger who has the
/// password and guesses codes is slowed, while the owner's known client still completes its login.
#[test]
fn strangers_guessing_codes_never_slow_the_owners_known_client() {
    let mut doc = registered();
    let (totp, _) = enrol(&mut doc, T0);
    let mut now = T0 + 600;
    let mfa_login = |doc: &mut AccountDoc, client: &str, code: &str, now: i64| {
        let outcome = run(doc, attempt(PASSWORD, client), now, &mut rng(now as u64)).0;
        if retry_after(&outcome).is_some() {
            return outcome;
        }
        let ticket = ticket_of(&outcome);
        let request = AccountRequest::MfaVerify {
            ticket,
            method: MfaMethod::Totp,
            code: code.into(),
            jkt: None,
            client: Some(client.into()),
            device: None,
        };
        run(doc, request, now, &mut rng(now as u64 + 1)).0
    };
    // The owner completes a login once: its client is known from then on.
    let code = totp.code_at(now).unwrap();
    assert!(matches!(mfa_login(&mut doc, OWNER, &code, now), AccountOutcome::Tokens { .. }));
    // A stranger with the password guesses codes from many addresses until it is slowed down.
    let mut slowed = false;
    for i in 0..40 {
        now += 1;
        let wrong = if totp.code_at(now).unwrap() == "000000" { "111111" } else { "000000" };
        let outcome = mfa_login(&mut doc, &format!("attacker-{}", i % 7), wrong, now);
        assert!(matches!(outcome, AccountOutcome::Refused { .. }), "{outcome:?}");
        slowed |= retry_after(&outcome).is_some();
    }
    assert!(slowed, "the stranger's guesses are slowed down");
    assert!(doc.login_allowed(Some("attacker-0"), now).is_err());
    // The owner's known client is not: password and the right code, tokens.
    now += 31;
    let code = totp.code_at(now).unwrap();
    let outcome = mfa_login(&mut doc, OWNER, &code, now);
    assert!(matches!(outcome, AccountOutcome::Tokens { .. }), "{outcome:?}");
}

// ---- passkeys: a software authenticator (ES256, CBOR written by hand) through the account core ----

mod passkey {
    use super::*;
    use gatehouse::account::mfa::{ChallengePurpose, CHALLENGE_SECONDS};
    use p256::ecdsa::signature::Signer as _;
    use serde_json::json;
    use sha2::{Digest, Sha256};

    const RP_ID: &str = "gatehouse.test";
    const ORIGIN: &str = "https://gatehouse.test";
    const CREDENTIAL_ID: [u8; 16] = [0x42; 16];

    fn head(major: u8, n: usize) -> Vec<u8> {
        let m = major << 5;
        if n < 24 {
            vec![m | n as u8]
        } else {
            vec![m | 24, n as u8]
        }
    }

    fn int(n: i64) -> Vec<u8> {
        if n >= 0 {
            head(0, n as usize)
        } else {
            head(1, (-1 - n) as usize)
        }
    }

    fn bstr(b: &[u8]) -> Vec<u8> {
        [head(2, b.len()), b.to_vec()].concat()
    }

    fn tstr(t: &str) -> Vec<u8> {
        [head(3, t.len()), t.as_bytes().to_vec()].concat()
    }

    fn map(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut out = head(5, entries.len());
        for (k, v) in entries {
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        out
    }

    /// A device-bound authenticator (BE clear) with a counter.
    pub struct Authenticator {
        key: p256::ecdsa::SigningKey,
        pub counter: u32,
        pub backup_eligible: bool,
    }

    impl Authenticator {
        pub fn new() -> Self {
            Authenticator {
                key: p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).unwrap(),
                counter: 0,
                backup_eligible: false,
            }
        }

        fn cose(&self) -> Vec<u8> {
            let point = self.key.verifying_key().to_encoded_point(false);
            map(&[
                (int(1), int(2)),
                (int(3), int(-7)),
                (int(-1), int(1)),
                (int(-2), bstr(point.x().unwrap())),
                (int(-3), bstr(point.y().unwrap())),
            ])
        }

        fn flags(&self, attested: bool) -> u8 {
            0x01 | 0x04 | if attested { 0x40 } else { 0 } | if self.backup_eligible { 0x08 } else { 0 }
        }

        fn client_data(kind: &str, challenge: &str) -> Vec<u8> {
            serde_json::to_vec(&json!({ "type": kind, "challenge": challenge, "origin": ORIGIN, "crossOrigin": false }))
                .unwrap()
        }

        /// `navigator.credentials.create()`: (clientDataJSON, attestationObject), base64url.
        pub fn create(&self, challenge: &str) -> (String, String) {
            let mut auth_data = Sha256::digest(RP_ID.as_bytes()).to_vec();
            auth_data.push(self.flags(true));
            auth_data.extend_from_slice(&self.counter.to_be_bytes());
            auth_data.extend_from_slice(&[0u8; 16]);
            auth_data.extend_from_slice(&(CREDENTIAL_ID.len() as u16).to_be_bytes());
            auth_data.extend_from_slice(&CREDENTIAL_ID);
            auth_data.extend_from_slice(&self.cose());
            let object =
                map(&[(tstr("fmt"), tstr("none")), (tstr("attStmt"), map(&[])), (tstr("authData"), bstr(&auth_data))]);
            (b64::encode(Self::client_data("webauthn.create", challenge)), b64::encode(object))
        }

        /// `navigator.credentials.get()`: the parts of an assertion, base64url.
        pub fn get(&mut self, challenge: &str) -> [String; 4] {
            self.counter += 1;
            let client_data = Self::client_data("webauthn.get", challenge);
            let mut auth_data = Sha256::digest(RP_ID.as_bytes()).to_vec();
            auth_data.push(self.flags(false));
            auth_data.extend_from_slice(&self.counter.to_be_bytes());
            let message = [auth_data.as_slice(), Sha256::digest(&client_data).as_slice()].concat();
            let signature: p256::ecdsa::Signature = self.key.sign(&message);
            [
                b64::encode(CREDENTIAL_ID),
                b64::encode(&client_data),
                b64::encode(&auth_data),
                b64::encode(signature.to_der().as_bytes()),
            ]
        }
    }

    fn options(outcome: AccountOutcome) -> (String, Vec<String>) {
        match outcome {
            AccountOutcome::PasskeyOptions { challenge, credentials, .. } => (challenge, credentials),
            other => panic!("expected options, got {other:?}"),
        }
    }

    pub fn register(doc: &mut AccountDoc, authenticator: &Authenticator, now: i64) {
        let (challenge, _) = options(run(doc, AccountRequest::PasskeyRegisterOptions, now, &mut rng(41)).0);
        let (client_data_json, attestation_object) = authenticator.create(&challenge);
        let verify = AccountRequest::PasskeyRegisterVerify {
            client_data_json,
            attestation_object,
            transports: vec!["internal".into(), "bogus".into()],
        };
        let (outcome, t) = run(doc, verify, now, &mut rng(42));
        assert_eq!(outcome, AccountOutcome::PasskeyRegistered { id: b64::encode(CREDENTIAL_ID) });
        assert_eq!(t.events.last().map(|e| e.reason), Some(Some("webauthn")));
    }

    fn login_request(ticket: Option<&str>, parts: [String; 4]) -> AccountRequest {
        let [credential_id, client_data_json, authenticator_data, signature] = parts;
        AccountRequest::PasskeyLogin {
            ticket: ticket.map(str::to_owned),
            credential_id,
            client_data_json,
            device: None,
            authenticator_data,
            signature,
            jkt: None,
            client: None,
        }
    }

    fn session_amr(doc: &AccountDoc) -> Vec<String> {
        let family = doc.account.as_ref().unwrap().families.last().expect("a session");
        core::Authentication::of(family).amr
    }

    #[test]
    fn registration_stores_the_credential_and_its_challenge_works_once() {
        let mut doc = registered();
        let authenticator = Authenticator::new();
        let (challenge, excluded) = options(run(&mut doc, AccountRequest::PasskeyRegisterOptions, T0, &mut rng(40)).0);
        assert!(excluded.is_empty());
        assert_eq!(doc.mfa.challenges.len(), 1);
        assert_eq!(doc.mfa.challenges[0].purpose, ChallengePurpose::Register);
        let (client_data_json, attestation_object) = authenticator.create(&challenge);
        let verify = AccountRequest::PasskeyRegisterVerify {
            client_data_json,
            attestation_object,
            transports: vec!["internal".into()],
        };
        let (outcome, _) = run(&mut doc, verify.clone(), T0 + 1, &mut rng(41));
        assert_eq!(outcome, AccountOutcome::PasskeyRegistered { id: b64::encode(CREDENTIAL_ID) });
        let stored = &doc.mfa.passkeys[0];
        assert_eq!(stored.credential.id(), CREDENTIAL_ID);
        assert_eq!(stored.created_at, T0 + 1);
        assert_eq!(stored.credential.transports(), ["internal".to_owned()]);
        assert!(doc.mfa.challenges.is_empty(), "the challenge is spent");
        // The same ceremony again: its challenge is gone.
        let (outcome, t) = run(&mut doc, verify, T0 + 2, &mut rng(42));
        assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidPasskey });
        assert_eq!(t.events[0].reason, Some("webauthn_challenge"));
        // A fresh challenge for the same credential: refused as registered already (§7.1 step 25),
        // and the options exclude it.
        let (challenge, excluded) = options(run(&mut doc, AccountRequest::PasskeyRegisterOptions, T0, &mut rng(43)).0);
        assert_eq!(excluded, vec![b64::encode(CREDENTIAL_ID)]);
        let (client_data_json, attestation_object) = authenticator.create(&challenge);
        let again = AccountRequest::PasskeyRegisterVerify { client_data_json, attestation_object, transports: vec![] };
        let (outcome, t) = run(&mut doc, again, T0 + 3, &mut rng(44));
        assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidPasskey });
        assert_eq!(t.events[0].reason, Some("webauthn_duplicate"));
        assert_eq!(doc.mfa.passkeys.len(), 1);
        // The stored document round-trips through JSON (the object's storage).
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(serde_json::from_str::<AccountDoc>(&text).unwrap(), doc);
    }

    #[test]
    fn a_challenge_expires_and_serves_only_its_own_ceremony() {
        let mut doc = registered();
        let authenticator = Authenticator::new();
        let (challenge, _) = options(run(&mut doc, AccountRequest::PasskeyRegisterOptions, T0, &mut rng(40)).0);
        let (client_data_json, attestation_object) = authenticator.create(&challenge);
        let late = AccountRequest::PasskeyRegisterVerify { client_data_json, attestation_object, transports: vec![] };
        let (outcome, _) = run(&mut doc, late, T0 + CHALLENGE_SECONDS, &mut rng(41));
        assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidPasskey });
        // A registration challenge cannot sign in.
        register(&mut doc, &authenticator, T0 + 400);
        let (challenge, _) = options(run(&mut doc, AccountRequest::PasskeyRegisterOptions, T0 + 401, &mut rng(45)).0);
        let mut authenticator = authenticator;
        let (outcome, t) = run(&mut doc, login_request(None, authenticator.get(&challenge)), T0 + 402, &mut rng(46));
        assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidCredentials });
        assert_eq!(t.events[0].reason, Some("webauthn_challenge"));
        assert!(doc.mfa.challenges.is_empty(), "spent by the failed attempt");
    }

    #[test]
    fn passwordless_login_issues_hwk_mfa_and_a_replay_is_refused() {
        let mut doc = registered();
        let mut authenticator = Authenticator::new();
        register(&mut doc, &authenticator, T0);
        let now = T0 + 10;
        let request = AccountRequest::PasskeyLoginOptions { ticket: None };
        let (challenge, allowed) = options(run(&mut doc, request, now, &mut rng(50)).0);
        assert!(allowed.is_empty(), "a passwordless login lists no credentials");
        let parts = authenticator.get(&challenge);
        let (outcome, _) = run(&mut doc, login_request(None, parts.clone()), now, &mut rng(51));
        pair_of(outcome);
        assert_eq!(session_amr(&doc), vec!["hwk".to_owned(), "mfa".to_owned()]);
        assert_eq!(doc.mfa.passkeys[0].credential.sign_count(), 1);
        // The same assertion again: its challenge is spent.
        let (outcome, t) = run(&mut doc, login_request(None, parts), now + 1, &mut rng(52));
        assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidCredentials });
        assert_eq!(t.events[0].reason, Some("webauthn_challenge"));
        // A fresh challenge but a counter that does not increase (a cloned authenticator).
        let request = AccountRequest::PasskeyLoginOptions { ticket: None };
        let (challenge, _) = options(run(&mut doc, request, now + 2, &mut rng(53)).0);
        authenticator.counter = 0;
        let (outcome, t) = run(&mut doc, login_request(None, authenticator.get(&challenge)), now + 2, &mut rng(54));
        assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidCredentials });
        assert_eq!(t.events[0].reason, Some("webauthn_counter_regression"));
        assert_eq!(doc.mfa.passkeys[0].credential.sign_count(), 1, "the stored counter is unchanged");
    }

    #[test]
    fn passwordless_options_have_one_shape_for_every_email() {
        let mut unknown = AccountDoc::default();
        let mut without = registered();
        let mut with = registered();
        register(&mut with, &Authenticator::new(), T0);
        let request = || AccountRequest::PasskeyLoginOptions { ticket: None };
        for doc in [&mut unknown, &mut without, &mut with] {
            let outcome = run(doc, request(), T0 + 1, &mut rng(60)).0;
            let AccountOutcome::PasskeyOptions { challenge, user_id, user_name, credentials } = outcome else {
                panic!("options")
            };
            assert_eq!(b64::decode(&challenge).unwrap().len(), 32);
            assert!(user_id.is_empty() && user_name.is_empty() && credentials.is_empty());
        }
        assert!(unknown.mfa.challenges.is_empty() && without.mfa.challenges.is_empty());
        assert_eq!(with.mfa.challenges.len(), 1);
    }

    #[test]
    fn a_passkey_is_a_second_factor_bound_to_the_ticket() {
        let mut doc = registered();
        let mut authenticator = Authenticator::new();
        register(&mut doc, &authenticator, T0);
        let now = T0 + 20;
        let first = password_login(&mut doc, now, None);
        let AccountOutcome::MfaRequired { ticket, methods } = &first else { panic!("{first:?}") };
        assert_eq!(methods, &vec!["webauthn".to_owned()]);
        let (_, secret) = gatehouse::account::mfa::parse_ticket(ticket).unwrap();
        let ticket = b64::encode(secret);
        // Options without a valid ticket are refused.
        let bogus = AccountRequest::PasskeyLoginOptions { ticket: Some(b64::encode([1u8; 32])) };
        assert_eq!(run(&mut doc, bogus, now, &mut rng(70)).0, BAD_TICKET);
        let request = AccountRequest::PasskeyLoginOptions { ticket: Some(ticket.clone()) };
        let (challenge, allowed) = options(run(&mut doc, request, now, &mut rng(71)).0);
        assert_eq!(allowed, vec![b64::encode(CREDENTIAL_ID)]);
        // The ticket's challenge cannot serve a passwordless login.
        let parts = authenticator.get(&challenge);
        let (outcome, _) = run(&mut doc, login_request(None, parts), now, &mut rng(72));
        assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidCredentials });
        // Nor does a passwordless challenge serve the ticket.
        let (challenge, _) =
            options(run(&mut doc, AccountRequest::PasskeyLoginOptions { ticket: None }, now, &mut rng(73)).0);
        let (outcome, _) =
            run(&mut doc, login_request(Some(&ticket), authenticator.get(&challenge)), now, &mut rng(74));
        assert_eq!(outcome, BAD_CODE);
        // The ticket's own challenge: tokens with pwd hwk mfa; the ticket is spent.
        let request = AccountRequest::PasskeyLoginOptions { ticket: Some(ticket.clone()) };
        let (challenge, _) = options(run(&mut doc, request, now, &mut rng(75)).0);
        let parts = authenticator.get(&challenge);
        pair_of(run(&mut doc, login_request(Some(&ticket), parts.clone()), now, &mut rng(76)).0);
        assert_eq!(session_amr(&doc), vec!["pwd".to_owned(), "hwk".to_owned(), "mfa".to_owned()]);
        assert!(doc.mfa.tickets.is_empty());
        // Replaying the assertion with the used ticket is refused.
        assert_eq!(run(&mut doc, login_request(Some(&ticket), parts), now + 1, &mut rng(77)).0, BAD_TICKET);
    }

    #[test]
    fn a_synced_passkey_is_swk_and_totp_removal_keeps_passkeys() {
        let mut doc = registered();
        let mut authenticator = Authenticator::new();
        authenticator.backup_eligible = true;
        register(&mut doc, &authenticator, T0);
        let (challenge, _) =
            options(run(&mut doc, AccountRequest::PasskeyLoginOptions { ticket: None }, T0 + 1, &mut rng(80)).0);
        pair_of(run(&mut doc, login_request(None, authenticator.get(&challenge)), T0 + 1, &mut rng(81)).0);
        assert_eq!(session_amr(&doc), vec!["swk".to_owned(), "mfa".to_owned()]);
        doc.mfa.remove();
        assert_eq!(doc.mfa.passkeys.len(), 1);
        // TOTP removal without TOTP is refused even though a passkey is a factor.
        assert_eq!(
            run(&mut doc, AccountRequest::TotpRemove, T0 + 2, &mut rng(82)).0,
            AccountOutcome::Refused { refusal: Refusal::MfaNotEnabled }
        );
    }
}

/// An assertion that names no challenge the account issued could never pass: it neither slows the
/// client's group down nor spends a ticket, so sending garbage cannot be turned against the owner.
#[test]
fn assertions_naming_no_live_challenge_count_against_nobody() {
    let mut doc = registered();
    let client_data = serde_json::json!({ "type": "webauthn.get", "challenge": b64::encode([9u8; 32]) });
    let garbage = |client: &str| AccountRequest::PasskeyLogin {
        ticket: None,
        credential_id: b64::encode([1u8; 16]),
        client_data_json: b64::encode(serde_json::to_vec(&client_data).unwrap()),
        authenticator_data: b64::encode([0u8; 37]),
        signature: b64::encode([0u8; 64]),
        jkt: None,
        client: Some(client.into()),
        device: None,
    };
    for i in 0..50 {
        let outcome = run(&mut doc, garbage(&format!("attacker-{i}")), T0 + i, &mut rng(90)).0;
        assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidCredentials });
    }
    assert_eq!(doc.throttle.failures, 0, "no stranger was slowed down by assertions that could not pass");
    assert!(doc.login_allowed(Some("new-phone"), T0 + 50).is_ok());
}
