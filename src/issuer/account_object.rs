//! The `Account` Durable Object: one per account, the authority for its password hash, sessions and
//! denylist record. A thin shell around the pure account core: it loads the [`AccountDoc`], calls
//! [`core::apply`] (and signs the access token [`core::finish`] needs), saves the document in one SQL
//! statement, logs the audit events, and mirrors the denylist record to KV. It speaks the typed
//! protocol of [`crate::account::protocol`]: its answer is always an [`AccountOutcome`] as JSON.
//!
//! One request at a time: a lock is held from the load to the save, so concurrent requests never
//! interleave inside a transition, even while a signature (WebCrypto) is awaited. Before a changed
//! denylist record is saved, the retry alarm is armed: if the object is reset after the save and
//! before the KV write, the alarm still brings KV up to date.

use super::document::Document;
use super::signing;
use crate::account::core::{self, Context, Fault, Pbkdf2Work, Random, Reply, Settings};
use crate::account::protocol::{AccountOutcome, AccountRequest};
use crate::account::state::AccountDoc;
use crate::audit::AuditLine;
use crate::config::Config;
use crate::error::{json_error_detail, ApiError};
use crate::mfa::secretbox::EncryptionKey;
use crate::password::{self, Pbkdf2Hash, Scheme};
use crate::revocation;
use crate::web::{self, denylist::DENYLIST_BINDING, webcrypto};
use futures_util::lock::Mutex;
use std::cell::{Cell, RefCell};
use worker::{durable_object, DurableObject, Env, Request, Response, State};

thread_local! {
    /// The dummy hash for unknown accounts, made once per isolate with the configured parameters.
    static DUMMY_HASH: RefCell<Option<(password::PasswordParams, String)>> = const { RefCell::new(None) };
}

/// The secret holding the key that seals TOTP secrets (unpadded base64url of 32 bytes).
pub const MFA_KEY_SECRET: &str = "MFA_ENCRYPTION_KEY";

/// The header that carries the router's request id to the object.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How long after a denylist change (or a failed KV write) the alarm makes sure KV has it, ms.
const MIRROR_RETRY_MS: i64 = 5_000;

/// One account's Durable Object (SQLite storage).
#[durable_object]
pub struct Account {
    state: State,
    env: Env,
    /// Held from the load to the save of each transition.
    lock: Mutex<()>,
    /// Whether a KV write of the denylist record is in flight (one at a time, so none lands out of order).
    mirroring: Cell<bool>,
}

impl DurableObject for Account {
    fn new(state: State, env: Env) -> Self {
        Account { state, env, lock: Mutex::new(()), mirroring: Cell::new(false) }
    }

    /// Brings KV up to the document's denylist record (armed before every save that changes it, and
    /// after a failed write).
    async fn alarm(&self) -> worker::Result<Response> {
        if let Err(e) = self.mirror_denylist().await {
            worker::console_error!("denylist mirror retry failed: {e:?}");
        }
        Response::empty()
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let request_id = req.headers().get(REQUEST_ID_HEADER).ok().flatten().unwrap_or_default();
        let outcome = match (web::config(&self.env), req.json::<AccountRequest>().await) {
            (Ok(config), Ok(request)) => self.serve(&config, request, &request_id).await,
            (Err(e), _) => failed(&e),
            // Only the kind of error: serde's text could quote a password from the request.
            (_, Err(e)) => failed(&ApiError::Server(format!("bad internal request: {}", redacted(&e)))),
        };
        Response::from_json(&outcome)
    }
}

/// The outcome for a request the object could not complete (logged here, never sent).
fn failed(error: &ApiError) -> AccountOutcome {
    worker::console_error!("account object: {:?}", error);
    AccountOutcome::Failed { retryable: matches!(error, ApiError::Unavailable(_)) }
}

/// The kind and place of a worker error, without its message (which could quote the input).
fn redacted(e: &worker::Error) -> String {
    match e {
        worker::Error::SerdeJsonError(e) => json_error_detail(e),
        _ => "unreadable request".into(),
    }
}

/// The platform's randomness.
struct PlatformRandom;

impl Random for PlatformRandom {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), Fault> {
        getrandom::getrandom(out).map_err(|_| Fault::Randomness)
    }
}

fn fault(e: Fault) -> ApiError {
    ApiError::Server(e.to_string())
}

impl Account {
    async fn serve(&self, config: &Config, request: AccountRequest, request_id: &str) -> AccountOutcome {
        match self.transition(config, request, request_id).await {
            Ok(outcome) => outcome,
            Err(e) => failed(&e),
        }
    }

    async fn transition(
        &self,
        config: &Config,
        request: AccountRequest,
        request_id: &str,
    ) -> Result<AccountOutcome, ApiError> {
        let now = web::now_seconds();
        let settings = Settings::from_config(config);
        // What the transition may need is made before the lock: the signing key (which may ask the
        // key store) and the dummy hash (one argon2id hash per isolate).
        let issues_token = matches!(
            request,
            AccountRequest::Login { .. }
                | AccountRequest::Refresh { .. }
                | AccountRequest::MfaVerify { .. }
                | AccountRequest::PasskeyLogin { .. }
        );
        let signer = match issues_token {
            true => Some(signing::signing_key(config, &self.env, now).await?),
            false => None,
        };
        let dummy = match (&request, config.password_scheme) {
            (AccountRequest::Login { .. }, Scheme::Argon2id) => Some(dummy_hash(config)?),
            (AccountRequest::Login { .. }, Scheme::Pbkdf2) => Some(password::dummy_pbkdf2().to_phc()),
            _ => None,
        };
        let account_id = self.state.id().to_string();
        let op = request.op();
        let guard = self.lock.lock().await;
        let before = self.load()?;
        let mut doc = before.clone();
        // A signed-in user's request (`AsUser`) needs the work of the request it carries.
        let asked = match &request {
            AccountRequest::AsUser { request, .. } => request.as_ref(),
            other => other,
        };
        let (derived, new_hash) = pbkdf2_work(&doc, asked, config.password_scheme, dummy.as_deref(), now).await?;
        let pbkdf2 = Pbkdf2Work { derived: derived.as_ref(), new_hash: new_hash.as_deref() };
        let mfa_key = mfa_key(&self.env);
        let ctx =
            Context { now, account_id: &account_id, dummy_hash: dummy.as_deref(), pbkdf2, mfa_key: mfa_key.as_ref() };
        let transition = core::apply(&mut doc, request, &settings, ctx, &mut PlatformRandom).map_err(fault)?;
        let outcome = match transition.reply {
            Reply::Answer(outcome) => outcome,
            Reply::Sign(unsigned) => {
                let key = signer.as_ref().ok_or_else(|| ApiError::Server("no signing key was fetched".into()))?;
                let token = signing::sign(key, &unsigned.claims).await?;
                core::finish(&mut doc, unsigned, token)
            }
        };
        if doc != before {
            if doc.needs_mirror() && doc.revocation_version != before.revocation_version {
                // Armed before the save: a reset between the save and the KV write cannot lose it.
                self.state.storage().set_alarm(MIRROR_RETRY_MS).await?;
            }
            self.save(&doc)?;
        }
        drop(guard);
        // Logged once the transition is committed, so the log never shows what did not happen.
        for event in &transition.events {
            let mut line = AuditLine::new(event.event, &account_id, request_id, now).route(op);
            if let Some(sid) = &event.sid {
                line = line.sid(sid);
            }
            if let Some(reason) = event.reason {
                line = line.reason(reason);
            }
            worker::console_log!("{}", line.to_json());
        }
        // Mirrored only after the document is committed: the object stays the authority whatever KV
        // does, and a failed write is retried by the alarm rather than failing a committed answer.
        if doc.needs_mirror() {
            if let Err(e) = self.mirror_denylist().await {
                worker::console_error!("denylist mirror failed, retrying from the alarm: {e:?}");
            }
        }
        Ok(outcome)
    }

    /// The account's document (one statement to load, one to save: a transition commits whole).
    /// A storage failure answers a retryable failure; nothing was committed.
    fn document(&self) -> Document<'_> {
        Document::new(&self.state, "account")
    }

    fn load(&self) -> Result<AccountDoc, ApiError> {
        self.document().load()
    }

    fn save(&self, doc: &AccountDoc) -> Result<(), ApiError> {
        self.document().save(doc)
    }

    /// Brings KV up to the document's denylist record: one write in flight per object, repeated until
    /// the latest version is written; on failure the alarm tries again.
    async fn mirror_denylist(&self) -> Result<(), ApiError> {
        if self.mirroring.replace(true) {
            // The write in flight re-reads the document when it finishes and writes anything newer.
            return Ok(());
        }
        let result = self.mirror_loop().await;
        self.mirroring.set(false);
        if result.is_err() {
            self.state.storage().set_alarm(MIRROR_RETRY_MS).await?;
        }
        result
    }

    async fn mirror_loop(&self) -> Result<(), ApiError> {
        let sub = self.state.id().to_string();
        let key = revocation::kv_key(&sub);
        let kv = self.env.kv(DENYLIST_BINDING)?;
        loop {
            let doc = self.load()?;
            if !doc.needs_mirror() {
                return Ok(());
            }
            let version = doc.revocation_version;
            let result = match doc.revocation.expires_at(web::now_seconds()) {
                Some(expiration) => match kv.put(&key, doc.revocation.to_json()) {
                    Ok(put) => put.expiration(expiration as u64).execute().await,
                    Err(e) => Err(e),
                },
                None => kv.delete(&key).await,
            };
            result.map_err(|e| ApiError::Unavailable(format!("denylist write failed: {e}")))?;
            // Re-read: other requests may have changed the document while the write was in flight.
            let _guard = self.lock.lock().await;
            let mut latest = self.load()?;
            latest.mirrored_version = latest.mirrored_version.max(version);
            self.save(&latest)?;
        }
    }
}

/// The PBKDF2 derivations a transition needs, made with WebCrypto before the (synchronous) core runs:
/// a login's password with the salt and iterations of the PBKDF2 hash it is checked against (the
/// account's, or the dummy's for an unknown email, so both cost one derivation), and a new hash for a
/// registration under `PASSWORD_HASH=pbkdf2` (taken email or not). Nothing for argon2id, nor for a throttled login or an
/// unacceptable password, which the core refuses without checking a hash.
async fn pbkdf2_work(
    doc: &AccountDoc,
    request: &AccountRequest,
    scheme: Scheme,
    dummy: Option<&str>,
    now: i64,
) -> Result<(Option<[u8; 32]>, Option<String>), ApiError> {
    match request {
        AccountRequest::Login { email, password, client, .. } => {
            if doc.login_allowed(client.as_deref(), now).is_err() || !password::acceptable(password) {
                return Ok((None, None));
            }
            let stored = doc.account.as_ref().filter(|a| &a.email == email).map(|a| a.password.as_str());
            match stored.or(dummy).and_then(Pbkdf2Hash::parse) {
                Some(hash) => Ok((Some(derive(password, &hash.salt, hash.iterations).await?), None)),
                None => Ok((None, None)),
            }
        }
        // Taken or not: the core hashes every registration's password (same work either way).
        AccountRequest::Register { password, .. } if scheme == Scheme::Pbkdf2 => {
            Ok((None, Some(new_pbkdf2(password).await?)))
        }
        // Only for a live link: a forged one costs the object nothing.
        AccountRequest::PasswordReset { secret, password }
            if scheme == Scheme::Pbkdf2
                && crate::account::lifecycle::link_matches(
                    doc,
                    crate::account::state::LinkPurpose::Reset,
                    secret,
                    now,
                ) =>
        {
            Ok((None, Some(new_pbkdf2(password).await?)))
        }
        // A signed-in user's current password, checked against the account's hash.
        AccountRequest::PasswordChange { current: password, client, .. }
        | AccountRequest::DeleteSelf { password, client } => {
            let derived = match doc.account.as_ref().and_then(|a| Pbkdf2Hash::parse(&a.password)) {
                Some(hash) if doc.login_allowed(client.as_deref(), now).is_ok() && password::acceptable(password) => {
                    Some(derive(password, &hash.salt, hash.iterations).await?)
                }
                _ => None,
            };
            let new_hash = match request {
                AccountRequest::PasswordChange { new, .. } if scheme == Scheme::Pbkdf2 => Some(new_pbkdf2(new).await?),
                _ => None,
            };
            Ok((derived, new_hash))
        }
        _ => Ok((None, None)),
    }
}

/// A new PBKDF2 hash of `password` under a fresh salt.
async fn new_pbkdf2(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|_| fault(Fault::Randomness))?;
    let hash = derive(password, &salt, password::PBKDF2_ITERATIONS).await?;
    Ok(Pbkdf2Hash { iterations: password::PBKDF2_ITERATIONS, salt: salt.to_vec(), hash }.to_phc())
}

/// PBKDF2-HMAC-SHA-256 of a password by WebCrypto.
async fn derive(password: &str, salt: &[u8], iterations: u32) -> Result<[u8; 32], ApiError> {
    webcrypto::pbkdf2_sha256(password.as_bytes(), salt, iterations).await.map_err(ApiError::Server)
}

/// The key sealing TOTP secrets, from the `MFA_ENCRYPTION_KEY` secret (none: second factors cannot
/// be enrolled or checked; `scripts/check-config` refuses a malformed one before a deploy).
fn mfa_key(env: &Env) -> Option<EncryptionKey> {
    let text = env.secret(MFA_KEY_SECRET).ok()?.to_string();
    match EncryptionKey::parse(&text) {
        Ok(key) => Some(key),
        Err(e) => {
            worker::console_error!("{e}");
            None
        }
    }
}

fn dummy_hash(config: &Config) -> Result<String, ApiError> {
    if let Some(hash) =
        DUMMY_HASH.with(|d| d.borrow().as_ref().filter(|(p, _)| *p == config.password).map(|(_, h)| h.clone()))
    {
        return Ok(hash);
    }
    let hash = password::dummy_hash(&config.password).map_err(|e| ApiError::Server(e.to_string()))?;
    DUMMY_HASH.with(|d| *d.borrow_mut() = Some((config.password, hash.clone())));
    Ok(hash)
}
