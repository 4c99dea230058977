//! The Workers Free plan's password fallback in the account core (docs/DEPLOY.md "Plans"):
//! PBKDF2-HMAC-SHA-256 hashes, derived by WebCrypto before the core runs and handed to it
//! (`Pbkdf2Work`), checked by their own scheme, never accepted without a derivation, and replaced by
//! argon2id at the next login once `PASSWORD_HASH` is argon2id again; an argon2id hash is never
//! downgraded. The derivations here come from `password::pbkdf2_sha256`, the reference the WebCrypto
//! path matches (RFC 7914 §11 vectors in `src/password.rs`).

use gatehouse::account::core::{apply, Context, Fault, Pbkdf2Work, Random, Reply, Settings, Transition};
use gatehouse::account::family::Lifetimes;
use gatehouse::account::protocol::{AccountOutcome, AccountRequest, Refusal};
use gatehouse::account::state::AccountDoc;
use gatehouse::audit::Event;
#[path = "support/account.rs"]
mod support;
use gatehouse::password::{self, dummy_pbkdf2, pbkdf2_sha256, Pbkdf2Hash, Scheme};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery";
/// Fewer iterations than deployments use, so the native tests stay fast (the scheme is the same).
const ITERATIONS: u32 = 1_000;

struct Counter(u8);
impl Random for Counter {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), Fault> {
        for b in out {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
        Ok(())
    }
}

fn settings(scheme: Scheme) -> Settings {
    Settings {
        audience: "gatehouse".into(),
        lifetimes: Lifetimes { absolute: 2_592_000, idle: 1_209_600, grace: 10 },
        password_scheme: scheme,
        default_scope: "api".into(),
        ..support::settings()
    }
}

fn pbkdf2_phc(password: &str, salt: [u8; 16]) -> String {
    Pbkdf2Hash {
        iterations: ITERATIONS,
        salt: salt.to_vec(),
        hash: pbkdf2_sha256(password.as_bytes(), &salt, ITERATIONS),
    }
    .to_phc()
}

fn run(
    doc: &mut AccountDoc,
    request: AccountRequest,
    scheme: Scheme,
    work: Pbkdf2Work<'_>,
    dummy: &str,
) -> Result<Transition, Fault> {
    let ctx = Context { now: 1_767_225_600, account_id: "acct", dummy_hash: Some(dummy), pbkdf2: work, mfa_key: None };
    apply(doc, request, &settings(scheme), ctx, &mut Counter(0))
}

fn login(password: &str) -> AccountRequest {
    AccountRequest::Login { email: EMAIL.into(), password: password.into(), jkt: None, client: None, device: None }
}

/// A registered account whose hash is a PBKDF2 one (made as the object makes it).
fn registered() -> AccountDoc {
    let mut doc = AccountDoc::default();
    let phc = pbkdf2_phc(PASSWORD, [7; 16]);
    let work = Pbkdf2Work { derived: None, new_hash: Some(&phc) };
    let t = run(
        &mut doc,
        AccountRequest::Register { email: EMAIL.into(), password: PASSWORD.into() },
        Scheme::Pbkdf2,
        work,
        "",
    )
    .unwrap();
    assert!(matches!(t.reply, Reply::Answer(AccountOutcome::Registered { .. })));
    assert_eq!(doc.account.as_ref().unwrap().password, phc, "the derived hash is stored as it came");
    doc
}

/// The key the object derives for a login against this document's hash.
fn derived_for(doc: &AccountDoc, password: &str) -> [u8; 32] {
    let hash = Pbkdf2Hash::parse(&doc.account.as_ref().unwrap().password).unwrap();
    pbkdf2_sha256(password.as_bytes(), &hash.salt, hash.iterations)
}

fn refused(t: &Transition) -> Option<Refusal> {
    match &t.reply {
        Reply::Answer(AccountOutcome::Refused { refusal }) => Some(*refusal),
        _ => None,
    }
}

#[test]
fn pbkdf2_accounts_log_in_with_the_derived_key_and_only_with_it() {
    let dummy = dummy_pbkdf2().to_phc();
    let mut doc = registered();
    let right = derived_for(&doc, PASSWORD);
    let ok =
        run(&mut doc, login(PASSWORD), Scheme::Pbkdf2, Pbkdf2Work { derived: Some(&right), new_hash: None }, &dummy)
            .unwrap();
    assert!(matches!(ok.reply, Reply::Sign(_)), "the right password signs in");
    assert!(Pbkdf2Hash::parse(&doc.account.as_ref().unwrap().password).is_some(), "kept: the scheme is still pbkdf2");

    let wrong = derived_for(&doc, "correct horse batterz");
    let no = run(
        &mut doc,
        login("correct horse batterz"),
        Scheme::Pbkdf2,
        Pbkdf2Work { derived: Some(&wrong), new_hash: None },
        &dummy,
    )
    .unwrap();
    assert_eq!(refused(&no), Some(Refusal::InvalidCredentials));
    // Never accepted without a derivation: the core cannot check a PBKDF2 hash itself.
    let none = run(&mut doc, login(PASSWORD), Scheme::Pbkdf2, Pbkdf2Work::default(), &dummy).unwrap();
    assert_eq!(refused(&none), Some(Refusal::InvalidCredentials));
    assert_eq!(doc.throttle.failures, 2, "both failures count against the throttle");
}

#[test]
fn unknown_emails_are_checked_against_the_pbkdf2_dummy() {
    let dummy = dummy_pbkdf2().to_phc();
    let hash = dummy_pbkdf2();
    let derived = pbkdf2_sha256(PASSWORD.as_bytes(), &hash.salt, ITERATIONS);
    let mut doc = AccountDoc::default();
    let t =
        run(&mut doc, login(PASSWORD), Scheme::Pbkdf2, Pbkdf2Work { derived: Some(&derived), new_hash: None }, &dummy)
            .unwrap();
    assert_eq!(refused(&t), Some(Refusal::InvalidCredentials));
    assert_eq!(t.events[0].reason, Some("unknown_account"));
}

#[test]
fn a_registration_under_pbkdf2_needs_its_derived_hash() {
    let mut doc = AccountDoc::default();
    let request = AccountRequest::Register { email: EMAIL.into(), password: PASSWORD.into() };
    let err = run(&mut doc, request, Scheme::Pbkdf2, Pbkdf2Work::default(), "").unwrap_err();
    assert!(matches!(err, Fault::PasswordHash(_)), "{err:?}");
    assert!(doc.account.is_none(), "nothing registered without a hash");
}

#[test]
fn once_argon2id_is_back_a_pbkdf2_hash_is_replaced_at_the_next_login() {
    let mut doc = registered();
    let right = derived_for(&doc, PASSWORD);
    let argon_dummy = password::dummy_hash(&settings(Scheme::Argon2id).password).unwrap();
    let t = run(
        &mut doc,
        login(PASSWORD),
        Scheme::Argon2id,
        Pbkdf2Work { derived: Some(&right), new_hash: None },
        &argon_dummy,
    )
    .unwrap();
    assert!(matches!(t.reply, Reply::Sign(_)));
    let stored = doc.account.as_ref().unwrap().password.clone();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(password::verify(PASSWORD, &stored));
    assert!(t.events.iter().any(|e| e.event == Event::PasswordRehashed && e.reason == Some("pbkdf2_to_argon2id")));
    // From now on argon2id alone decides: no derivation needed.
    let again = run(&mut doc, login(PASSWORD), Scheme::Argon2id, Pbkdf2Work::default(), &argon_dummy).unwrap();
    assert!(matches!(again.reply, Reply::Sign(_)));
    assert!(!again.events.iter().any(|e| e.event == Event::PasswordRehashed));
}

#[test]
fn an_argon2id_hash_is_never_downgraded_to_pbkdf2() {
    let mut doc = AccountDoc::default();
    let argon_dummy = password::dummy_hash(&settings(Scheme::Argon2id).password).unwrap();
    let request = AccountRequest::Register { email: EMAIL.into(), password: PASSWORD.into() };
    run(&mut doc, request, Scheme::Argon2id, Pbkdf2Work::default(), &argon_dummy).unwrap();
    let before = doc.account.as_ref().unwrap().password.clone();
    let t = run(&mut doc, login(PASSWORD), Scheme::Pbkdf2, Pbkdf2Work::default(), &dummy_pbkdf2().to_phc()).unwrap();
    assert!(matches!(t.reply, Reply::Sign(_)), "argon2id hashes still check under PASSWORD_HASH=pbkdf2");
    assert_eq!(doc.account.as_ref().unwrap().password, before);
}
