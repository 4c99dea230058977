//! The `Account` Durable Object: one per account, the authority for its password hash, sessions and
//! denylist record. Thin: it loads the [`AccountDoc`], calls pure code, writes the document back in
//! one SQL statement, and only then awaits anything (the KV mirror of the denylist), so concurrent
//! requests never see or write half a transition.

use crate::account_state::{Account as AccountData, AccountDoc, RefreshResult};
use crate::config::{Config, CLIENT_ID};
use crate::edge::{self, error::ApiError};
use crate::jwt::b64;
use crate::password;
use crate::revocation;
use crate::session::{Family, Secret};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use worker::{durable_object, DurableObject, Env, Request, Response, State};

thread_local! {
    /// The dummy hash for unknown accounts, made once per isolate with the configured parameters.
    static DUMMY_HASH: RefCell<Option<(password::PasswordParams, String)>> = const { RefCell::new(None) };
}

/// A request from the worker to an account object. Inputs are already validated by the worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum AccountRequest {
    /// Create the account.
    Register { email: String, password: String },
    /// Check the password and start a session.
    Login { email: String, password: String },
    /// Rotate a refresh token of session `sid`.
    Refresh { sid: String, secret: String },
    /// End session `sid`.
    Logout { sid: String },
    /// End every session.
    LogoutAll,
}

/// A token pair as the object answers it; the worker decides the transport of `refresh_token`.
#[derive(Debug, Serialize, Deserialize)]
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

/// One account's Durable Object (SQLite storage).
#[durable_object]
pub struct Account {
    state: State,
    env: Env,
}

impl DurableObject for Account {
    fn new(state: State, env: Env) -> Self {
        Account { state, env }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let config = match edge::config(&self.env) {
            Ok(config) => config,
            Err(e) => return e.to_response(""),
        };
        let result = match req.json::<AccountRequest>().await {
            Ok(request) => self.handle(&config, request).await,
            Err(e) => Err(ApiError::Server(format!("bad internal request: {e}"))),
        };
        match result {
            Ok(response) => Ok(response),
            Err(e) => e.to_response(&config.issuer),
        }
    }
}

fn now_seconds() -> i64 {
    (worker::Date::now().as_millis() / 1000) as i64
}

fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| ApiError::Server(format!("randomness: {e}")))?;
    Ok(bytes)
}

#[derive(Deserialize)]
struct Row {
    doc: String,
}

impl Account {
    async fn handle(&self, config: &Config, request: AccountRequest) -> Result<Response, ApiError> {
        let now = now_seconds();
        let before = self.load()?;
        let mut doc = before.clone();
        doc.prune(now, &config.lifetimes());
        // A refusal can change the document too (a failed login counts, a reuse revokes), so the
        // document is saved whatever the answer.
        let answer = match request {
            AccountRequest::Register { email, password } => self.register(config, &mut doc, email, &password, now),
            AccountRequest::Login { email, password } => self.login(config, &mut doc, &email, &password, now),
            AccountRequest::Refresh { sid, secret } => self.refresh(config, &mut doc, &sid, &secret, now),
            AccountRequest::Logout { sid } => {
                doc.logout(&sid, now, config.cover_until(now));
                Ok(Response::empty()?.with_status(204))
            }
            AccountRequest::LogoutAll => {
                doc.logout_all(now, config.cover_until(now));
                Ok(Response::empty()?.with_status(204))
            }
        };
        if doc != before {
            self.save(&doc)?;
        }
        // Written only after the document: the object stays the authority whatever KV does.
        if doc.revocation != before.revocation {
            self.mirror_denylist(&doc, now).await?;
        }
        answer
    }

    fn sql(&self) -> Result<worker::SqlStorage, ApiError> {
        let sql = self.state.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS account (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL)",
            None,
        )?;
        Ok(sql)
    }

    fn load(&self) -> Result<AccountDoc, ApiError> {
        let rows: Vec<Row> = self.sql()?.exec("SELECT doc FROM account WHERE id = 1", None)?.to_array()?;
        match rows.first() {
            None => Ok(AccountDoc::default()),
            Some(row) => serde_json::from_str(&row.doc).map_err(|e| ApiError::Server(format!("account document: {e}"))),
        }
    }

    /// One statement, so the whole transition commits or none of it does.
    fn save(&self, doc: &AccountDoc) -> Result<(), ApiError> {
        let text = serde_json::to_string(doc).map_err(|e| ApiError::Server(e.to_string()))?;
        self.sql()?.exec(
            "INSERT INTO account (id, doc) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            vec![text.into()],
        )?;
        Ok(())
    }

    /// Writes the user's denylist record to KV with its own expiry (or deletes it when empty).
    async fn mirror_denylist(&self, doc: &AccountDoc, now: i64) -> Result<(), ApiError> {
        let sub = self.state.id().to_string();
        let kv = self.env.kv(edge::auth::DENYLIST_BINDING)?;
        let key = revocation::kv_key(&sub);
        let result = match doc.revocation.expires_at(now) {
            Some(expiration) => match kv.put(&key, doc.revocation.to_json()) {
                Ok(put) => put.expiration(expiration as u64).execute().await,
                Err(e) => Err(e),
            },
            None => kv.delete(&key).await,
        };
        result.map_err(|e| ApiError::Unavailable(format!("denylist write failed: {e}")))
    }

    fn register(
        &self,
        config: &Config,
        doc: &mut AccountDoc,
        email: String,
        password: &str,
        now: i64,
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
        let body = serde_json::json!({ "sub": sub });
        Ok(Response::from_json(&body)?.with_status(201))
    }

    fn login(
        &self,
        config: &Config,
        doc: &mut AccountDoc,
        email: &str,
        password: &str,
        now: i64,
    ) -> Result<Response, ApiError> {
        doc.throttle.check(now).map_err(|retry_after| ApiError::TooManyAttempts { retry_after })?;
        let stored = doc.account.as_ref().filter(|a| a.email == email).map(|a| a.password.clone());
        // Unknown accounts are checked against a dummy hash of the same cost.
        let phc = match &stored {
            Some(phc) => phc.clone(),
            None => dummy_hash(config)?,
        };
        let password_ok = password::acceptable(password) && password::verify(password, &phc);
        let Some(account) = doc.account.as_mut().filter(|_| stored.is_some() && password_ok) else {
            doc.throttle.fail(now);
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
        let (access_token, access_exp) = issue_access_token(config, account, &sid, now)?;
        let refresh_token = crate::input::RefreshToken { account: account.sub.clone(), sid, secret: first }.format();
        doc.start_session(family, now, &config.lifetimes(), config.cover_until(now));
        pair_response(access_token, access_exp - now, refresh_token, refresh_expires_in)
    }

    fn refresh(
        &self,
        config: &Config,
        doc: &mut AccountDoc,
        sid: &str,
        secret: &str,
        now: i64,
    ) -> Result<Response, ApiError> {
        let presented: Secret =
            b64::decode(secret).ok().and_then(|s| s.try_into().ok()).ok_or(ApiError::InvalidGrant)?;
        let life = config.lifetimes();
        let (next, access_token, access_exp) = match doc.refresh(sid, &presented, now, &life, config.cover_until(now)) {
            RefreshResult::Rotate { next } => {
                let account = doc.account.as_ref().ok_or(ApiError::InvalidGrant)?;
                let (token, exp) = issue_access_token(config, account, sid, now)?;
                doc.commit_rotation(sid, &presented, &next, (token.clone(), exp), now);
                (next, token, exp)
            }
            RefreshResult::Replay { next, access_token, access_exp } => (next, access_token, access_exp),
            RefreshResult::Reused | RefreshResult::Refused(_) => return Err(ApiError::InvalidGrant),
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

/// Signs an access token with the claims of API.md "Tokens".
fn issue_access_token(config: &Config, account: &AccountData, sid: &str, now: i64) -> Result<(String, i64), ApiError> {
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
        "scope": account.scope,
        "roles": account.roles,
        "email": account.email,
    });
    let token = config.keys.sign(&claims).map_err(|e| ApiError::Server(format!("signing: {e}")))?;
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
