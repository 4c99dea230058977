//! DPoP binding of sessions (RFC 9449 §5) in the pure account core, with a frozen clock: a login
//! with a proof binds the session and its access tokens (`cnf.jkt`, `token_type: DPoP`); a
//! refresh of a bound session with another key, or without a proof, is refused and revokes the
//! session as reuse does; a forged token changes nothing whatever the key; a bearer session is
//! bound by its first refresh with a proof; `DPOP_MODE=required` refuses an unbound session's
//! refresh without a proof and changes nothing. Also: the answers `error::ApiError` gives DPoP
//! refusals (RFC 9449 §5, §7.1, §8, §9) and the `DPOP_*` configuration.

mod common;

use gatehouse::account::core::{self, Context, Fault, Random, Reply, Settings, Transition};
use gatehouse::account::family::{Family, Lifetimes, RevokeReason, Secret};
use gatehouse::account::protocol::{AccountOutcome, AccountRequest, Refusal, TokenPair};
use gatehouse::account::state::{Account, AccountDoc};
use gatehouse::audit::Event;
use gatehouse::config::{Config, ConfigError, DpopMode};
use gatehouse::error::{ApiError, DpopSite};
use gatehouse::input::RefreshToken;
use gatehouse::jwt::b64;
use gatehouse::password::{self, PasswordParams};
use serde_json::{json, Value};

const T0: i64 = 1_767_225_600;
const LIFE: Lifetimes = Lifetimes { absolute: 30 * 86_400, idle: 14 * 86_400, grace: 10 };
/// Two RFC 7638 thumbprints (43 base64url characters; the core only compares them).
const KEY_A: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
const KEY_B: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
const SUB: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const PASSWORD: &str = "correct horse battery";
/// Session ids as the core makes them (16 bytes, base64url).
const S: &str = "AQEBAQEBAQEBAQEBAQEBAQ";
const B: &str = "AgICAgICAgICAgICAgICAg";

/// A deterministic source of "randomness": a counter.
struct Counter(u8);

impl Random for Counter {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), Fault> {
        for b in out.iter_mut() {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
        Ok(())
    }
}

/// The cheapest argon2id cost the configuration accepts (OWASP's minimum), so logins are quick.
fn cheap() -> PasswordParams {
    PasswordParams::new(
        password::MIN_M_KIB,
        password::MIN_M_T_PRODUCT.div_ceil(u64::from(password::MIN_M_KIB)) as u32,
        1,
    )
    .expect("OWASP's minimum is accepted")
}

fn settings(dpop_required: bool) -> Settings {
    Settings {
        issuer: "https://issuer.test".into(),
        audience: "api.test".into(),
        access_ttl: 900,
        leeway: 30,
        lifetimes: LIFE,
        password: cheap(),
        password_scheme: password::Scheme::Argon2id,
        default_scope: "api".into(),
        default_roles: vec!["user".into()],
        dpop_required,
        webauthn_rp_id: "issuer.test".into(),
        webauthn_origins: vec!["https://issuer.test".into()],
        email_verification_required: false,
        mail_enabled: false,
        admin_emails: Vec::new(),
        token_claims: Vec::new(),
    }
}

fn account_doc() -> AccountDoc {
    let phc = password::hash(PASSWORD, &[7; 16], &cheap()).expect("hashes");
    AccountDoc {
        account: Some(Account {
            sub: SUB.into(),
            email: "a@example.com".into(),
            password: phc,
            created_at: T0,
            scope: "api".into(),
            roles: vec!["user".into()],
            families: vec![],
            email_verified: false,
            disabled: false,
            app_metadata: serde_json::Value::Null,
            user_metadata: serde_json::Value::Null,
        }),
        ..AccountDoc::default()
    }
}

/// A document with one session `sid` whose live token is `[1; 32]`, bound to `jkt` (or not).
fn doc_with_session(sid: &str, jkt: Option<&str>) -> AccountDoc {
    let mut doc = AccountDoc {
        account: Some(Account {
            sub: SUB.into(),
            email: "a@example.com".into(),
            password: "$argon2id$unused".into(),
            created_at: T0,
            scope: "api".into(),
            roles: vec!["user".into()],
            families: vec![],
            email_verified: false,
            disabled: false,
            app_metadata: serde_json::Value::Null,
            user_metadata: serde_json::Value::Null,
        }),
        ..AccountDoc::default()
    };
    let family = Family::new(sid.into(), [0xAA; 32], &[1; 32], T0).bound_to(jkt.map(str::to_owned));
    doc.start_session(family, T0, &LIFE, T0 + 930);
    doc
}

fn apply(doc: &mut AccountDoc, request: AccountRequest, settings: &Settings, now: i64) -> Transition {
    let dummy = password::hash("dummy password", &[9; 16], &cheap()).expect("hashes");
    let ctx = Context { now, account_id: SUB, dummy_hash: Some(&dummy), pbkdf2: Default::default(), mfa_key: None };
    core::apply(doc, request, settings, ctx, &mut Counter(now as u8)).expect("no fault")
}

/// Runs a request to its outcome, signing with a made-up token; returns the outcome and the
/// claims that were to be signed, if any.
fn run(
    doc: &mut AccountDoc,
    request: AccountRequest,
    settings: &Settings,
    now: i64,
) -> (AccountOutcome, Option<Value>) {
    let transition = apply(doc, request, settings, now);
    match transition.reply {
        Reply::Answer(outcome) => (outcome, None),
        Reply::Sign(unsigned) => {
            let claims = unsigned.claims.clone();
            (core::finish(doc, unsigned, format!("access@{now}")), Some(claims))
        }
    }
}

fn refresh(sid: &str, secret: &Secret, jkt: Option<&str>) -> AccountRequest {
    AccountRequest::Refresh { sid: sid.into(), secret: b64::encode(secret), scope: None, jkt: jkt.map(str::to_owned) }
}

fn tokens(outcome: AccountOutcome) -> TokenPair {
    match outcome {
        AccountOutcome::Tokens { pair } => pair,
        other => panic!("expected tokens, got {other:?}"),
    }
}

fn secret_of(pair: &TokenPair) -> Secret {
    RefreshToken::parse(&pair.refresh_token).expect("a refresh token").secret
}

fn family<'d>(doc: &'d AccountDoc, sid: &str) -> Option<&'d Family> {
    doc.account.as_ref()?.families.iter().find(|f| f.sid == sid)
}

fn sid_revoked(doc: &AccountDoc, sid: &str) -> bool {
    doc.revocation.check_ids(Some(T0 + 1), Some(sid), None).is_err()
}

fn reasons(transition: &Transition) -> Vec<(Event, Option<&'static str>)> {
    transition.events.iter().map(|e| (e.event, e.reason)).collect()
}

#[test]
fn a_login_with_a_proof_binds_the_session_and_its_tokens() {
    let mut doc = account_doc();
    let login = AccountRequest::Login {
        email: "a@example.com".into(),
        password: PASSWORD.into(),
        jkt: Some(KEY_A.into()),
        client: None,
        device: None,
    };
    let (outcome, claims) = run(&mut doc, login, &settings(false), T0);
    let pair = tokens(outcome);
    assert_eq!(pair.token_type, "DPoP");
    assert_eq!(claims.expect("claims")["cnf"], json!({ "jkt": KEY_A }));
    let sid = RefreshToken::parse(&pair.refresh_token).expect("token").sid;
    assert_eq!(family(&doc, &sid).and_then(|f| f.jkt.as_deref()), Some(KEY_A));

    // Without a proof: a bearer session, no cnf.
    let login = AccountRequest::Login {
        email: "a@example.com".into(),
        password: PASSWORD.into(),
        jkt: None,
        client: None,
        device: None,
    };
    let (outcome, claims) = run(&mut doc, login, &settings(false), T0 + 1);
    let pair = tokens(outcome);
    assert_eq!(pair.token_type, "Bearer");
    assert!(claims.expect("claims").get("cnf").is_none());
    let sid = RefreshToken::parse(&pair.refresh_token).expect("token").sid;
    assert_eq!(family(&doc, &sid).and_then(|f| f.jkt.clone()), None);
}

#[test]
fn a_bound_session_rotates_only_for_its_key() {
    let mut doc = doc_with_session(S, Some(KEY_A));
    let (outcome, claims) = run(&mut doc, refresh(S, &[1; 32], Some(KEY_A)), &settings(false), T0 + 60);
    let first = tokens(outcome);
    assert_eq!(first.token_type, "DPoP");
    assert_eq!(claims.expect("claims")["cnf"]["jkt"], KEY_A);
    let next = secret_of(&first);
    let (outcome, _) = run(&mut doc, refresh(S, &next, Some(KEY_A)), &settings(false), T0 + 120);
    assert_eq!(tokens(outcome).token_type, "DPoP");
    assert_eq!(family(&doc, S).and_then(|f| f.jkt.as_deref()), Some(KEY_A), "the key never changes");
}

#[test]
fn another_key_revokes_the_session_as_reuse() {
    let mut doc = doc_with_session(S, Some(KEY_A));
    let t = apply(&mut doc, refresh(S, &[1; 32], Some(KEY_B)), &settings(false), T0 + 60);
    assert!(matches!(t.reply, Reply::Answer(AccountOutcome::Refused { refusal: Refusal::InvalidGrant })));
    assert_eq!(reasons(&t), vec![(Event::ReuseDetected, Some("dpop_key_mismatch"))]);
    assert!(sid_revoked(&doc, S), "the session's access tokens are denylisted");
    // The legitimate client, with the right key and the live token, is refused too: the session is over.
    let (outcome, _) = run(&mut doc, refresh(S, &[1; 32], Some(KEY_A)), &settings(false), T0 + 61);
    assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidGrant });
}

#[test]
fn no_proof_for_a_bound_session_revokes_it_as_reuse() {
    let mut doc = doc_with_session(S, Some(KEY_A));
    let t = apply(&mut doc, refresh(S, &[1; 32], None), &settings(false), T0 + 60);
    assert!(matches!(t.reply, Reply::Answer(AccountOutcome::Refused { refusal: Refusal::InvalidGrant })));
    assert_eq!(reasons(&t), vec![(Event::ReuseDetected, Some("dpop_proof_missing"))]);
    assert!(sid_revoked(&doc, S));
}

#[test]
fn a_forged_token_changes_nothing_whatever_the_key() {
    let mut doc = doc_with_session(S, Some(KEY_A));
    let before = doc.clone();
    for jkt in [Some(KEY_B), None] {
        let (outcome, _) = run(&mut doc, refresh(S, &[0x55; 32], jkt), &settings(false), T0 + 60);
        assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidGrant });
    }
    assert!(!sid_revoked(&doc, S), "knowing a sid is not enough to end a session");
    assert_eq!(family(&doc, S), family(&before, S));
}

#[test]
fn a_grace_replay_needs_the_key_too() {
    let mut doc = doc_with_session(S, Some(KEY_A));
    let (outcome, _) = run(&mut doc, refresh(S, &[1; 32], Some(KEY_A)), &settings(false), T0 + 60);
    let first = tokens(outcome);
    // Another tab with the same key, within the grace period: the very same pair, still DPoP.
    let (outcome, _) = run(&mut doc, refresh(S, &[1; 32], Some(KEY_A)), &settings(false), T0 + 65);
    let again = tokens(outcome);
    assert_eq!((again.access_token.as_str(), again.token_type.as_str()), (first.access_token.as_str(), "DPoP"));
    assert_eq!(again.refresh_token, first.refresh_token);
    // The same retired token with another key, still within grace: revoked.
    let (outcome, _) = run(&mut doc, refresh(S, &[1; 32], Some(KEY_B)), &settings(false), T0 + 66);
    assert_eq!(outcome, AccountOutcome::Refused { refusal: Refusal::InvalidGrant });
    assert!(sid_revoked(&doc, S));
    assert_eq!(family(&doc, S).and_then(|f| f.revoked.map(|r| r.1)), Some(RevokeReason::KeyMismatch));
}

#[test]
fn a_bearer_session_is_bound_by_its_first_refresh_with_a_proof() {
    let mut doc = doc_with_session(S, None);
    // A bearer refresh stays bearer.
    let (outcome, claims) = run(&mut doc, refresh(S, &[1; 32], None), &settings(false), T0 + 60);
    let first = tokens(outcome);
    assert_eq!(first.token_type, "Bearer");
    assert!(claims.expect("claims").get("cnf").is_none());
    // The first proof binds it (trust on first use).
    let (outcome, claims) = run(&mut doc, refresh(S, &secret_of(&first), Some(KEY_A)), &settings(false), T0 + 120);
    let second = tokens(outcome);
    assert_eq!(second.token_type, "DPoP");
    assert_eq!(claims.expect("claims")["cnf"]["jkt"], KEY_A);
    assert_eq!(family(&doc, S).and_then(|f| f.jkt.as_deref()), Some(KEY_A));
    // From then on it is a bound session: no proof is reuse.
    let t = apply(&mut doc, refresh(S, &secret_of(&second), None), &settings(false), T0 + 180);
    assert_eq!(reasons(&t), vec![(Event::ReuseDetected, Some("dpop_proof_missing"))]);
}

#[test]
fn required_mode_refuses_an_unbound_refresh_without_a_proof_and_changes_nothing() {
    let mut doc = doc_with_session(S, None);
    let before = doc.clone();
    let t = apply(&mut doc, refresh(S, &[1; 32], None), &settings(true), T0 + 60);
    assert!(matches!(t.reply, Reply::Answer(AccountOutcome::Refused { refusal: Refusal::DpopProofRequired })));
    assert_eq!(reasons(&t), vec![(Event::RefreshRefused, Some("dpop_required"))]);
    assert_eq!(doc, before, "the token is not spent");
    // With a proof it binds and rotates.
    let (outcome, _) = run(&mut doc, refresh(S, &[1; 32], Some(KEY_A)), &settings(true), T0 + 61);
    assert_eq!(tokens(outcome).token_type, "DPoP");
    // A bound session without a proof in required mode is reuse, as in optional mode.
    let mut bound = doc_with_session(B, Some(KEY_A));
    let t = apply(&mut bound, refresh(B, &[1; 32], None), &settings(true), T0 + 60);
    assert_eq!(reasons(&t), vec![(Event::ReuseDetected, Some("dpop_proof_missing"))]);
}

#[test]
fn stored_documents_and_requests_without_keys_still_load() {
    let doc = doc_with_session(S, None);
    let mut text: Value = serde_json::to_value(&doc).expect("serialises");
    text["account"]["families"][0].as_object_mut().expect("a family").remove("jkt");
    let loaded: AccountDoc = serde_json::from_value(text).expect("a document from before DPoP loads");
    assert_eq!(family(&loaded, S).and_then(|f| f.jkt.clone()), None);
    let request: AccountRequest =
        serde_json::from_str(r#"{"op":"refresh","sid":"s","secret":"AA"}"#).expect("an old request parses");
    assert!(matches!(request, AccountRequest::Refresh { jkt: None, .. }));
    let bound = serde_json::to_string(&refresh(S, &[1; 32], Some(KEY_A))).expect("serialises");
    assert!(bound.contains(KEY_A));
    assert_eq!(RevokeReason::KeyMismatch, serde_json::from_str("\"KeyMismatch\"").expect("parses"));
}

fn header(answer: &gatehouse::error::ErrorAnswer, name: &str) -> Option<String> {
    answer.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
}

#[test]
fn dpop_refusals_answer_as_rfc_9449_says() {
    let realm = "https://issuer.test";
    let algs = r#"algs="EdDSA Ed25519 ES256""#;
    // A resource: 401 with a DPoP challenge (§7.1).
    let proof =
        ApiError::InvalidDpopProof { why: "DPoP proof is too old".into(), at: DpopSite::Resource }.answer(realm);
    assert_eq!(proof.status, 401);
    assert_eq!(
        header(&proof, "www-authenticate").as_deref(),
        Some(&*format!(
            r#"DPoP realm="{realm}", error="invalid_dpop_proof", error_description="DPoP proof is too old", {algs}"#
        ))
    );
    assert!(proof.body.contains(r#""error":"invalid_dpop_proof""#));
    let nonce = ApiError::UseDpopNonce { nonce: "n-1".into(), at: DpopSite::Resource }.answer(realm);
    assert_eq!(nonce.status, 401);
    assert!(header(&nonce, "www-authenticate")
        .is_some_and(|c| c.starts_with("DPoP ") && c.contains(r#"error="use_dpop_nonce""#)));
    assert_eq!(header(&nonce, "dpop-nonce").as_deref(), Some("n-1"));
    let token = ApiError::DpopInvalidToken("token has expired".into()).answer(realm);
    assert_eq!(token.status, 401);
    assert!(header(&token, "www-authenticate")
        .is_some_and(|c| c.starts_with("DPoP ") && c.contains(r#"error="invalid_token""#) && c.ends_with(algs)));
    let required = ApiError::DpopRequired.answer(realm);
    assert_eq!(
        (required.status, header(&required, "www-authenticate")),
        (401, Some(format!(r#"DPoP realm="{realm}", {algs}"#)))
    );
    // A token endpoint: 400 (§5, §8), the nonce in DPoP-Nonce, no challenge.
    let proof = ApiError::InvalidDpopProof { why: "x".into(), at: DpopSite::TokenEndpoint }.answer(realm);
    assert_eq!((proof.status, header(&proof, "www-authenticate")), (400, None));
    let nonce = ApiError::UseDpopNonce { nonce: "n-2".into(), at: DpopSite::TokenEndpoint }.answer(realm);
    assert_eq!((nonce.status, header(&nonce, "dpop-nonce").as_deref()), (400, Some("n-2")));
    assert!(nonce.body.contains(r#""error":"use_dpop_nonce""#));
}

fn config(vars: &[(&str, &str)], nonce_secret: Option<&str>) -> Result<Config, ConfigError> {
    let keys = json!({ "keys": [common::ed_key().to_private_jwk().expect("a private JWK")] }).to_string();
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let var = move |name: &str| {
        let fixed = match name {
            "ISSUER" => Some("https://issuer.test"),
            "AUDIENCE" => Some("api.test"),
            _ => None,
        };
        fixed.map(str::to_owned).or_else(|| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    };
    let secret = move |name: &str| match name {
        "SIGNING_KEYS" => Some(keys.clone()),
        "DPOP_NONCE_SECRET" => nonce_secret.map(str::to_owned),
        _ => None,
    };
    Config::from_lookup(&var, &secret)
}

#[test]
fn dpop_configuration() {
    let default = config(&[], None).expect("loads");
    assert_eq!(default.dpop.mode, DpopMode::Optional, "optional by default");
    assert!(default.dpop.nonce.is_none(), "no nonces without DPOP_NONCE_SECRET");
    assert_eq!(config(&[("DPOP_MODE", "required")], None).expect("loads").dpop.mode, DpopMode::Required);
    assert_eq!(config(&[("DPOP_MODE", "off")], None).expect("loads").dpop.mode, DpopMode::Off);
    assert!(matches!(config(&[("DPOP_MODE", "on")], None), Err(ConfigError::Invalid { name: "DPOP_MODE", .. })));
    let secret = "a nonce secret of at least thirty-two bytes";
    let with = config(&[("DPOP_NONCE_SECONDS", "120")], Some(secret)).expect("loads");
    assert!(with.dpop.nonce.is_some());
    assert_eq!(with.dpop.nonce_max_age, 120);
    assert!(!format!("{:?}", with.dpop).contains("thirty"), "the secret never shows");
    assert!(matches!(config(&[], Some("short")), Err(ConfigError::Invalid { name: "DPOP_NONCE_SECRET", .. })));
    assert!(matches!(config(&[("DPOP_NONCE_SECONDS", "5")], Some(secret)), Err(ConfigError::Invalid { .. })));
    assert!(config(&[("DPOP_MODE", "off")], Some(secret)).expect("loads").dpop.nonce.is_none(), "off means off");
}
