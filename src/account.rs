//! The `Account` Durable Object: one per account, the authority for its password hash, sessions and
//! denylist record. Thin: it loads the [`AccountDoc`], calls pure code, writes the document back in
//! one SQL statement, and only then awaits anything (the KV mirror of the denylist), so concurrent
//! requests never see or write half a transition.

use crate::account_state::{Account as AccountData, AccountDoc, RefreshResult};
use crate::audit::{AuditLine, Event};
use crate::config::{Config, CLIENT_ID};
use crate::document::{json_error_detail, Document};
use crate::edge::{self, error::ApiError};
use crate::jwt::claims::scope_items;
use crate::jwt::{b64, PrivateKey};
use crate::keystore;
use crate::password;
use crate::revocation::{self, Revoked};
use crate::session::{Family, Refusal, Secret};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use worker::{durable_object, DurableObject, Env, Request, Response, State};

thread_local! {
    /// The dummy hash for unknown accounts, made once per isolate with the configured parameters.
    static DUMMY_HASH: RefCell<Option<(password::PasswordParams, String)>> = const { RefCell::new(None) };
}

/// A request from the worker to an account object. Inputs are already validated by the worker.
/// `Debug` shows the operation only, never a password or a token secret.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum AccountRequest {
    /// Create the account.
    Register { email: String, password: String },
    /// Check the password and start a session.
    Login { email: String, password: String },
    /// Rotate a refresh token of session `sid`; with `scope`, the new access token carries only
    /// those scopes, which must all have been granted (RFC 6749 §6).
    Refresh {
        sid: String,
        secret: String,
        #[serde(default)]
        scope: Option<String>,
    },
    /// RFC 7009: revoke session `sid` if `secret` is a refresh token it issued.
    RevokeRefresh { sid: String, secret: String },
    /// RFC 7009: revoke one access token of this account until it would have expired anyway.
    RevokeAccess { jti: String, exp: i64 },
    /// RFC 7662: whether `secret` is the live refresh token of session `sid`, changing nothing.
    IntrospectRefresh { sid: String, secret: String },
    /// End session `sid`, asked by the access token `token`.
    Logout { sid: String, token: TokenIds },
    /// End every session, asked by the access token `token`.
    LogoutAll { token: TokenIds },
}

impl std::fmt::Debug for AccountRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self {
            AccountRequest::Register { .. } => "register",
            AccountRequest::Login { .. } => "login",
            AccountRequest::Refresh { .. } => "refresh",
            AccountRequest::RevokeRefresh { .. } => "revoke-refresh",
            AccountRequest::RevokeAccess { .. } => "revoke-access",
            AccountRequest::IntrospectRefresh { .. } => "introspect-refresh",
            AccountRequest::Logout { .. } => "logout",
            AccountRequest::LogoutAll { .. } => "logout-all",
        };
        f.debug_struct("AccountRequest").field("op", &op).finish_non_exhaustive()
    }
}

/// The kind and place of a worker error, without its message (which could quote the input).
fn redacted(e: &worker::Error) -> String {
    match e {
        worker::Error::SerdeJsonError(e) => json_error_detail(e),
        _ => "unreadable request".into(),
    }
}

/// The identifiers of the access token that asks for a logout: the object checks them against its
/// own (authoritative) revocation record, so a revoked token cannot end sessions made after it.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenIds {
    /// `iat`.
    pub iat: Option<i64>,
    /// `sid`.
    pub sid: Option<String>,
    /// `jti`.
    pub jti: Option<String>,
}

impl TokenIds {
    /// Whether this account's own (authoritative) revocation record revokes the token, and why.
    fn revoked_by(&self, doc: &AccountDoc) -> Result<(), Revoked> {
        doc.revocation.check_ids(self.iat, self.sid.as_deref(), self.jti.as_deref())
    }
}

/// A token pair as the object answers it; the worker decides the transport of `refresh_token`.
/// (No `Debug`: it holds live tokens.)
#[derive(Serialize, Deserialize)]
pub struct TokenPair {
    /// The access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token.
    pub refresh_token: String,
    /// Seconds until the session expires if unused.
    pub refresh_expires_in: i64,
}

/// How long after a failed KV write the alarm tries again, milliseconds.
const MIRROR_RETRY_MS: i64 = 5_000;

/// One account's Durable Object (SQLite storage).
#[durable_object]
pub struct Account {
    state: State,
    env: Env,
    /// Whether a KV write of the denylist record is in flight (one at a time, so none lands out of order).
    mirroring: Cell<bool>,
}

impl DurableObject for Account {
    fn new(state: State, env: Env) -> Self {
        Account { state, env, mirroring: Cell::new(false) }
    }

    /// Retries the KV mirror of the denylist record after a failed write.
    async fn alarm(&self) -> worker::Result<Response> {
        if let Err(e) = self.mirror_denylist().await {
            worker::console_error!("denylist mirror retry failed: {e:?}");
        }
        Response::empty()
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let config = match edge::config(&self.env) {
            Ok(config) => config,
            Err(e) => return e.to_response(""),
        };
        let request_id = req.headers().get(REQUEST_ID_HEADER).ok().flatten().unwrap_or_default();
        let result = match req.json::<AccountRequest>().await {
            Ok(request) => self.handle(&config, request, &request_id).await,
            // Only the kind of error: serde's text could quote a password from the request.
            Err(e) => Err(ApiError::Server(format!("bad internal request: {}", redacted(&e)))),
        };
        match result {
            Ok(response) => Ok(response),
            Err(e) => e.to_response(&config.issuer),
        }
    }
}

/// The header that carries the worker's request id to the object.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// An audit event waiting for its transition to commit.
type Pending = (Event, Option<String>, Option<&'static str>);

fn now_seconds() -> i64 {
    (worker::Date::now().as_millis() / 1000) as i64
}

fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| ApiError::Server(format!("randomness: {e}")))?;
    Ok(bytes)
}

impl Account {
    async fn handle(&self, config: &Config, request: AccountRequest, request_id: &str) -> Result<Response, ApiError> {
        let now = now_seconds();
        let mut events: Vec<Pending> = Vec::new();
        // The signing key is fetched before the document is loaded: nothing is awaited between the
        // load and the save, so concurrent requests never interleave inside a transition.
        let signer = match &request {
            AccountRequest::Login { .. } | AccountRequest::Refresh { .. } => {
                Some(signing_key(config, &self.env, now).await?)
            }
            _ => None,
        };
        let signer = signer.as_ref();
        let before = self.load()?;
        let mut doc = before.clone();
        doc.prune(now, &config.lifetimes());
        // A refusal can change the document too (a failed login counts, a reuse revokes), so the
        // document is saved whatever the answer.
        let answer = match request {
            AccountRequest::Register { email, password } => {
                self.register(config, &mut doc, email, &password, now, &mut events)
            }
            AccountRequest::Login { email, password } => {
                self.login(config, signer, &mut doc, &email, &password, now, &mut events)
            }
            AccountRequest::Refresh { sid, secret, scope } => {
                self.refresh(config, signer, &mut doc, &sid, &secret, scope.as_deref(), now, &mut events)
            }
            AccountRequest::RevokeRefresh { sid, secret } => {
                if let Some(presented) = secret_of(&secret) {
                    if doc.revoke_by_refresh_token(&sid, &presented, now, config.cover_until(now)) {
                        events.push((Event::TokenRevoked, Some(sid), Some("refresh_token")));
                    }
                }
                Ok(Response::empty()?.with_status(204))
            }
            AccountRequest::RevokeAccess { jti, exp } => {
                doc.revoke_access_token(&jti, exp.saturating_add(config.leeway));
                events.push((Event::TokenRevoked, None, Some("access_token")));
                Ok(Response::empty()?.with_status(204))
            }
            AccountRequest::IntrospectRefresh { sid, secret } => introspect_refresh(config, &doc, &sid, &secret, now),
            // Idempotent: a token whose session, or all of whose sessions, this account already
            // ended ends nothing more (and cannot end sessions made after it). A token revoked on
            // its own (RFC 7009) is refused instead, so the client refreshes and asks again rather
            // than believing a session ended that did not.
            AccountRequest::Logout { token, .. } | AccountRequest::LogoutAll { token }
                if token.revoked_by(&doc) == Err(Revoked::Token) =>
            {
                Err(ApiError::InvalidToken(Revoked::Token.to_string()))
            }
            AccountRequest::Logout { token, .. } | AccountRequest::LogoutAll { token }
                if token.revoked_by(&doc).is_err() =>
            {
                Ok(Response::empty()?.with_status(204))
            }
            AccountRequest::Logout { sid, .. } => {
                doc.logout(&sid, now, config.cover_until(now));
                events.push((Event::Logout, Some(sid), None));
                Ok(Response::empty()?.with_status(204))
            }
            AccountRequest::LogoutAll { .. } => {
                doc.logout_all(now, config.cover_until(now));
                events.push((Event::LogoutAll, None, None));
                Ok(Response::empty()?.with_status(204))
            }
        };
        if doc.revocation != before.revocation {
            doc.revocation_version += 1;
        }
        if doc != before {
            self.save(&doc)?;
        }
        // Logged once the transition is committed, so the log never shows what did not happen.
        let account = self.state.id().to_string();
        for (event, sid, reason) in &events {
            let mut line = AuditLine::new(*event, &account, request_id, now);
            if let Some(sid) = sid {
                line = line.sid(sid);
            }
            if let Some(reason) = reason {
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
        answer
    }

    /// The account's document (one statement to load, one to save: a transition commits whole).
    /// A storage failure answers 503; nothing was committed, so a retried refresh finds the family
    /// as it was.
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
        let kv = self.env.kv(edge::auth::DENYLIST_BINDING)?;
        loop {
            let doc = self.load()?;
            if !doc.needs_mirror() {
                return Ok(());
            }
            let version = doc.revocation_version;
            let result = match doc.revocation.expires_at(now_seconds()) {
                Some(expiration) => match kv.put(&key, doc.revocation.to_json()) {
                    Ok(put) => put.expiration(expiration as u64).execute().await,
                    Err(e) => Err(e),
                },
                None => kv.delete(&key).await,
            };
            result.map_err(|e| ApiError::Unavailable(format!("denylist write failed: {e}")))?;
            // Re-read: other requests may have changed the document while the write was in flight.
            let mut latest = self.load()?;
            latest.mirrored_version = latest.mirrored_version.max(version);
            self.save(&latest)?;
        }
    }

    fn register(
        &self,
        config: &Config,
        doc: &mut AccountDoc,
        email: String,
        password: &str,
        now: i64,
        events: &mut Vec<Pending>,
    ) -> Result<Response, ApiError> {
        if doc.account.is_some() {
            return Err(ApiError::EmailTaken);
        }
        let phc =
            password::hash(password, &random()?, &config.password).map_err(|e| ApiError::Server(e.to_string()))?;
        let sub = self.state.id().to_string();
        doc.account = Some(AccountData {
            sub: sub.clone(),
            email,
            password: phc,
            created_at: now,
            scope: config.default_scope.clone(),
            roles: config.default_roles.clone(),
            families: Vec::new(),
        });
        events.push((Event::Register, None, None));
        let body = serde_json::json!({ "sub": sub });
        edge::json_response(&body, 201, "no-store")
    }

    #[allow(clippy::too_many_arguments)]
    fn login(
        &self,
        config: &Config,
        signer: Option<&PrivateKey>,
        doc: &mut AccountDoc,
        email: &str,
        password: &str,
        now: i64,
        events: &mut Vec<Pending>,
    ) -> Result<Response, ApiError> {
        if let Err(retry_after) = doc.throttle.check(now) {
            events.push((Event::LoginThrottled, None, None));
            return Err(ApiError::TooManyAttempts { retry_after });
        }
        let stored = doc.account.as_ref().filter(|a| a.email == email).map(|a| a.password.clone());
        // Unknown accounts are checked against a dummy hash of the same cost. It is fetched on every
        // path, so the one-off cost of making it (first login of an isolate) tells nothing either.
        let dummy = dummy_hash(config)?;
        let phc = stored.clone().unwrap_or(dummy);
        let password_ok = password::acceptable(password) && password::verify(password, &phc);
        let Some(account) = doc.account.as_mut().filter(|_| stored.is_some() && password_ok) else {
            doc.throttle.fail(now);
            let reason = if stored.is_some() { "wrong_password" } else { "unknown_account" };
            events.push((Event::LoginFailed, None, Some(reason)));
            return Err(ApiError::InvalidCredentials);
        };
        doc.throttle.succeed();
        if password::needs_rehash(&account.password, &config.password) {
            account.password =
                password::hash(password, &random()?, &config.password).map_err(|e| ApiError::Server(e.to_string()))?;
        }
        let sid = b64::encode(random::<16>()?);
        let first: Secret = random()?;
        let family = Family::new(sid.clone(), random()?, &first, now);
        let refresh_expires_in = family.expires_at(now, &config.lifetimes()) - now;
        let (access_token, access_exp) = issue_access_token(config, signer, account, &sid, None, now)?;
        let refresh_token = crate::input::RefreshToken { account: account.sub.clone(), sid, secret: first }.format();
        events.push((Event::LoginSucceeded, Some(family.sid.clone()), None));
        doc.start_session(family, now, &config.lifetimes(), config.cover_until(now));
        pair_response(access_token, access_exp - now, refresh_token, refresh_expires_in)
    }

    #[allow(clippy::too_many_arguments)]
    fn refresh(
        &self,
        config: &Config,
        signer: Option<&PrivateKey>,
        doc: &mut AccountDoc,
        sid: &str,
        secret: &str,
        scope: Option<&str>,
        now: i64,
        events: &mut Vec<Pending>,
    ) -> Result<Response, ApiError> {
        let presented = secret_of(secret).ok_or(ApiError::InvalidGrant)?;
        if let (Some(requested), Some(account)) = (scope, doc.account.as_ref()) {
            // Checked before anything changes, so a refused scope does not spend the token.
            if !is_subset(requested, &account.scope) {
                return Err(ApiError::InvalidScope);
            }
        }
        let life = config.lifetimes();
        let (next, access_token, access_exp) = match doc.refresh(sid, &presented, now, &life, config.cover_until(now)) {
            RefreshResult::Rotate { next } => {
                let account = doc.account.as_ref().ok_or(ApiError::InvalidGrant)?;
                let (token, exp) = issue_access_token(config, signer, account, sid, scope, now)?;
                doc.commit_rotation(sid, &presented, &next, (token.clone(), exp), now);
                events.push((Event::RefreshRotated, Some(sid.to_owned()), None));
                (next, token, exp)
            }
            RefreshResult::Replay { next, access_token, access_exp } => {
                events.push((Event::RefreshReplayed, Some(sid.to_owned()), None));
                (next, access_token, access_exp)
            }
            RefreshResult::Reused => {
                events.push((Event::ReuseDetected, Some(sid.to_owned()), Some("family_revoked")));
                return Err(ApiError::InvalidGrant);
            }
            RefreshResult::Refused(why) => {
                let reason = match why {
                    Refusal::Revoked => "revoked",
                    Refusal::Expired => "expired",
                    Refusal::Idle => "idle",
                    Refusal::Unknown => "unknown",
                };
                events.push((Event::RefreshRefused, Some(sid.to_owned()), Some(reason)));
                return Err(ApiError::InvalidGrant);
            }
        };
        let account = doc.account.as_ref().ok_or(ApiError::InvalidGrant)?;
        let refresh_expires_in = account
            .families
            .iter()
            .find(|f| f.sid == sid)
            .map(|f| f.expires_at(now, &life) - now)
            .ok_or(ApiError::InvalidGrant)?;
        let refresh_token =
            crate::input::RefreshToken { account: account.sub.clone(), sid: sid.to_owned(), secret: next }.format();
        pair_response(access_token, access_exp - now, refresh_token, refresh_expires_in)
    }
}

thread_local! {
    /// The managed signing keys this isolate last got from the key store, and when.
    static SIGNERS: RefCell<Option<(i64, Vec<keystore::Signer>)>> = const { RefCell::new(None) };
}

/// The key that signs at `now`: the first configured key, or with managed keys the one the key
/// store schedules for now (asked at most once per `MANAGED_KEYS_CACHE_SECONDS` per isolate; if
/// the store cannot be reached, a key already held that covers now still signs).
async fn signing_key(config: &Config, env: &Env, now: i64) -> Result<PrivateKey, ApiError> {
    let Some(managed) = &config.managed else {
        return config
            .keys
            .as_ref()
            .and_then(|k| k.signing_key())
            .cloned()
            .ok_or_else(|| ApiError::Server("no signing key is configured".into()));
    };
    let pick = |signers: &[keystore::Signer]| {
        signers.iter().find(|s| s.signs_from <= now && now < s.signs_until).map(|s| s.key.clone())
    };
    let cached = SIGNERS.with(|c| {
        c.borrow().as_ref().filter(|(at, _)| now - at < managed.cache_seconds).and_then(|(_, signers)| pick(signers))
    });
    if let Some(key) = cached {
        return Ok(key);
    }
    match keystore::ask(env, "/signing").await.and_then(|text| keystore::parse_signing(&text).map_err(ApiError::Server))
    {
        Ok(signers) => {
            let key = pick(&signers);
            SIGNERS.with(|c| *c.borrow_mut() = Some((now, signers)));
            key.ok_or_else(|| ApiError::Unavailable("the key store has no key for now".into()))
        }
        Err(e) => {
            let held = SIGNERS.with(|c| c.borrow().as_ref().and_then(|(_, signers)| pick(signers)));
            held.ok_or(e)
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

/// The refresh token secret of its text form, if it is one.
fn secret_of(text: &str) -> Option<Secret> {
    b64::decode(text).ok().and_then(|s| s.try_into().ok())
}

/// Whether every scope of `requested` is in `granted` (space-separated lists).
fn is_subset(requested: &str, granted: &str) -> bool {
    scope_items(requested).all(|r| scope_items(granted).any(|g| g == r))
}

/// RFC 7662 for a refresh token: active only while it is the live token of a live session.
fn introspect_refresh(
    config: &Config,
    doc: &AccountDoc,
    sid: &str,
    secret: &str,
    now: i64,
) -> Result<Response, ApiError> {
    let life = config.lifetimes();
    let account = doc.account.as_ref();
    let family = account.and_then(|a| a.families.iter().find(|f| f.sid == sid));
    let answer = match (account, family, secret_of(secret)) {
        (Some(account), Some(family), Some(presented)) if family.is_live(&presented, now, &life) => serde_json::json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": CLIENT_ID,
            "scope": account.scope,
            "sub": account.sub,
            "username": account.email,
            "iss": config.issuer,
            "iat": family.created_at,
            "exp": family.expires_at(now, &life),
            "sid": family.sid,
        }),
        _ => crate::oauth::inactive(),
    };
    Ok(Response::from_json(&answer)?)
}

/// Signs an access token with the claims of API.md "Tokens"; `scope` narrows the granted scopes.
fn issue_access_token(
    config: &Config,
    signer: Option<&PrivateKey>,
    account: &AccountData,
    sid: &str,
    scope: Option<&str>,
    now: i64,
) -> Result<(String, i64), ApiError> {
    let exp = now + config.access_ttl;
    let claims = serde_json::json!({
        "iss": config.issuer,
        "sub": account.sub,
        "aud": config.audience,
        "iat": now,
        "exp": exp,
        "jti": b64::encode(random::<16>()?),
        "sid": sid,
        "client_id": CLIENT_ID,
        "scope": scope.map(|s| scope_items(s).collect::<Vec<_>>().join(" ")).unwrap_or_else(|| account.scope.clone()),
        "roles": account.roles,
        "email": account.email,
    });
    let signer = signer.ok_or_else(|| ApiError::Server("no signing key was fetched".into()))?;
    let token = signer.sign(&claims).map_err(|e| ApiError::Server(format!("signing: {e}")))?;
    Ok((token, exp))
}

fn pair_response(
    access_token: String,
    expires_in: i64,
    refresh_token: String,
    refresh_expires_in: i64,
) -> Result<Response, ApiError> {
    let pair = TokenPair { access_token, token_type: "Bearer".into(), expires_in, refresh_token, refresh_expires_in };
    Ok(Response::from_json(&pair)?)
}
