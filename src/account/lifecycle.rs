//! The account lifecycle transitions (issue 13): email verification and password reset links,
//! password change, the user's sessions, their own metadata, export and deletion, and the admin
//! operations. Pure like the rest of the core: [`super::core::apply`] dispatches here.
//!
//! One-time links are `<prefix>.<account id>.<secret>`: the account id routes the link to its
//! object, which keeps only the SHA-256 of the secret and forgets it on first use. An account keeps
//! the newest [`MAX_LIVE_LINKS`] of a kind. Mails of a kind go to an account at most once a minute,
//! and the wait doubles with each mail in a row, whoever asks, so nobody can flood a victim's inbox
//! through gatehouse (nor void the link they are about to open).

use super::family::Secret;
use super::protocol::{AccountOutcome, MailLink, Refusal, SessionInfo};
use super::state::{
    Account, AccountDoc, Link, LinkPurpose, MAIL_INTERVAL_SECONDS, MAIL_STREAK_SECONDS, MAX_LIVE_LINKS,
};
use super::transition::{random, refused, slowed_down, verify, AuditEvent, Context, Fault, Random, Reply, Settings};
use crate::audit::Event;
use crate::jwt::b64;
use crate::password;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A one-time link's token, parsed. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkToken {
    /// What it is for.
    pub purpose: LinkPurpose,
    /// The account's object id (64 hex).
    pub account: String,
    /// The secret, base64url (32 bytes).
    pub secret: String,
}

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkToken").field("purpose", &self.purpose).field("account", &self.account).finish()
    }
}

impl LinkToken {
    /// Parses a token of `purpose`; `None` for anything malformed or of the other kind.
    pub fn parse(text: &str, purpose: LinkPurpose) -> Option<LinkToken> {
        let mut parts = text.trim().split('.');
        let (Some(prefix), Some(account), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let hex_id = account.len() == 64 && account.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let secret_ok = b64::decode(secret).is_ok_and(|s| s.len() == 32);
        (prefix == purpose.prefix() && hex_id && secret_ok).then(|| LinkToken {
            purpose,
            account: account.to_owned(),
            secret: secret.to_owned(),
        })
    }

    fn format(purpose: LinkPurpose, account: &str, secret: &Secret) -> String {
        format!("{}.{account}.{}", purpose.prefix(), b64::encode(secret))
    }
}

fn digest(secret: &[u8]) -> String {
    b64::encode(Sha256::digest(secret))
}

/// How long after the last mail of a kind (`streak` sent in a row) the next may go, seconds.
fn mail_wait(streak: u32) -> i64 {
    MAIL_INTERVAL_SECONDS << streak.saturating_sub(1).min(10)
}

/// Makes a link of `purpose` (the oldest of its kind goes beyond [`MAX_LIVE_LINKS`]) unless the
/// last mail of that kind is too recent: `Err(retry_after)` then, and nothing changes.
fn issue_link(
    doc: &mut AccountDoc,
    purpose: LinkPurpose,
    ctx: Context<'_>,
    rng: &mut dyn Random,
) -> Result<Result<MailLink, i64>, Fault> {
    let Some(email) = doc.account.as_ref().map(|a| a.email.clone()) else { return Ok(Err(MAIL_INTERVAL_SECONDS)) };
    let kind = purpose.index();
    let (last, streak) = (doc.mailed_at[kind], doc.mail_streak[kind]);
    let since = ctx.now - last;
    let in_a_row = last > 0 && since < MAIL_STREAK_SECONDS;
    if in_a_row && since < mail_wait(streak) {
        return Ok(Err(mail_wait(streak) - since));
    }
    let secret: Secret = random(rng)?;
    while doc.links.iter().filter(|l| l.purpose == purpose).count() >= MAX_LIVE_LINKS {
        let oldest = doc
            .links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.purpose == purpose)
            .min_by_key(|(_, l)| l.expires_at)
            .map(|(i, _)| i);
        match oldest {
            Some(i) => doc.links.remove(i),
            None => break,
        };
    }
    doc.links.push(Link { purpose, hash: digest(&secret), expires_at: ctx.now + purpose.lifetime() });
    doc.mailed_at[kind] = ctx.now;
    doc.mail_streak[kind] = if in_a_row { streak.saturating_add(1) } else { 1 };
    Ok(Ok(MailLink { to: email, token: LinkToken::format(purpose, ctx.account_id, &secret) }))
}

/// The index of the live link of `purpose` whose secret is `secret`, if there is one.
fn find_link(doc: &AccountDoc, purpose: LinkPurpose, secret: &str, now: i64) -> Option<usize> {
    let bytes = b64::decode(secret).ok().filter(|s| s.len() == 32)?;
    let hash = digest(&bytes);
    doc.links.iter().position(|l| {
        l.purpose == purpose
            && l.expires_at > now
            && bool::from(subtle::ConstantTimeEq::ct_eq(l.hash.as_bytes(), hash.as_bytes()))
    })
}

/// Whether `secret` is a live link of `purpose` (nothing changes): the object asks before it does
/// costly work for a request that carries one.
pub fn link_matches(doc: &AccountDoc, purpose: LinkPurpose, secret: &str, now: i64) -> bool {
    find_link(doc, purpose, secret, now).is_some()
}

/// Spends the live link of `purpose` whose secret is `secret`; whether there was one.
fn redeem_link(doc: &mut AccountDoc, purpose: LinkPurpose, secret: &str, now: i64) -> bool {
    match find_link(doc, purpose, secret, now) {
        Some(index) => {
            doc.links.remove(index);
            true
        }
        None => false,
    }
}

/// A new password hash of the configured scheme (PBKDF2's was derived by the object beforehand).
pub(super) fn new_hash(
    settings: &Settings,
    ctx: Context<'_>,
    password: &str,
    rng: &mut dyn Random,
) -> Result<String, Fault> {
    match settings.password_scheme {
        password::Scheme::Argon2id => {
            password::hash(password, &random(rng)?, &settings.password).map_err(|e| Fault::PasswordHash(e.to_string()))
        }
        password::Scheme::Pbkdf2 => ctx
            .pbkdf2
            .new_hash
            .map(str::to_owned)
            .ok_or_else(|| Fault::PasswordHash("no PBKDF2 hash was derived".into())),
    }
}

/// `POST /auth/email/verify/request`.
pub(super) fn verify_request(
    doc: &mut AccountDoc,
    ctx: Context<'_>,
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    let Some(account) = doc.account.as_ref() else { return Ok(refused(Refusal::NoSuchAccount)) };
    if account.email_verified {
        return Ok(Reply::Answer(AccountOutcome::Done));
    }
    match issue_link(doc, LinkPurpose::Verify, ctx, rng)? {
        Err(retry_after) => Ok(refused(Refusal::MailThrottled { retry_after })),
        Ok(MailLink { to, token }) => {
            events.push(AuditEvent::new(Event::EmailVerificationSent, None, None));
            Ok(Reply::Answer(AccountOutcome::Mail { purpose: LinkPurpose::Verify, to, token }))
        }
    }
}

/// A verification link for a login refused for an unverified email, unless one went out lately.
pub(super) fn verification_for_login(
    doc: &mut AccountDoc,
    ctx: Context<'_>,
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    let mail = issue_link(doc, LinkPurpose::Verify, ctx, rng)?.ok();
    events.push(AuditEvent::new(Event::LoginFailed, None, Some("email_not_verified")));
    if mail.is_some() {
        events.push(AuditEvent::new(Event::EmailVerificationSent, None, Some("login")));
    }
    Ok(Reply::Answer(AccountOutcome::EmailNotVerified { mail }))
}

/// The verification link a registration sends (never throttled: the account is new).
pub(super) fn verification_for_registration(
    doc: &mut AccountDoc,
    ctx: Context<'_>,
    rng: &mut dyn Random,
) -> Result<Option<MailLink>, Fault> {
    Ok(issue_link(doc, LinkPurpose::Verify, ctx, rng)?.ok())
}

/// `POST /auth/email/verify`: the link, and proof of holding the account (its session, or its
/// password, checked and slowed down like a login). A wrong password leaves the link live.
pub(super) fn verify_email(
    doc: &mut AccountDoc,
    ctx: Context<'_>,
    secret: &str,
    (signed_in, password, client): (bool, Option<&str>, Option<&str>),
    events: &mut Vec<AuditEvent>,
) -> Reply {
    let now = ctx.now;
    if doc.account.is_none() || !link_matches(doc, LinkPurpose::Verify, secret, now) {
        events.push(AuditEvent::new(Event::LinkRefused, None, Some("verify")));
        return refused(Refusal::InvalidLink);
    }
    if !signed_in {
        let Some(password) = password else { return refused(Refusal::WrongPassword) };
        if let Some(reply) = check_password(doc, ctx, (password, client), "email_verify", events) {
            return reply;
        }
    }
    redeem_link(doc, LinkPurpose::Verify, secret, now);
    if let Some(account) = doc.account.as_mut() {
        account.email_verified = true;
    }
    events.push(AuditEvent::new(Event::EmailVerified, None, None));
    Reply::Answer(AccountOutcome::Done)
}

/// `POST /auth/password/forgot`: a link when `email` is this account's and it may log in; `Done`
/// otherwise (the router answers both alike, and a throttled mail alike too).
pub(super) fn forgot(
    doc: &mut AccountDoc,
    email: &str,
    ctx: Context<'_>,
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    let usable = doc.account.as_ref().is_some_and(|a| a.email == email && !a.disabled);
    if !usable {
        return Ok(Reply::Answer(AccountOutcome::Done));
    }
    match issue_link(doc, LinkPurpose::Reset, ctx, rng)? {
        Err(_) => {
            events.push(AuditEvent::new(Event::PasswordResetRequested, None, Some("mail_throttled")));
            Ok(Reply::Answer(AccountOutcome::Done))
        }
        Ok(MailLink { to, token }) => {
            events.push(AuditEvent::new(Event::PasswordResetRequested, None, None));
            Ok(Reply::Answer(AccountOutcome::Mail { purpose: LinkPurpose::Reset, to, token }))
        }
    }
}

/// The notice of a registration refused as taken (uniform mode): to the owner of `email`, unless
/// the account is disabled or a notice went out within [`MAIL_INTERVAL_SECONDS`].
pub(super) fn notify_taken(doc: &mut AccountDoc, email: &str, now: i64, events: &mut Vec<AuditEvent>) -> Reply {
    let Some(to) = doc.account.as_ref().filter(|a| a.email == email && !a.disabled).map(|a| a.email.clone()) else {
        return Reply::Answer(AccountOutcome::Done);
    };
    if doc.notified_at > 0 && now - doc.notified_at < MAIL_INTERVAL_SECONDS {
        return Reply::Answer(AccountOutcome::Done);
    }
    doc.notified_at = now;
    events.push(AuditEvent::new(Event::RegisterTakenNotice, None, None));
    Reply::Answer(AccountOutcome::Notice { to })
}

/// `POST /auth/password/reset`: a new password, every session ended, the email proved (the link
/// came through it), the login throttles forgotten and pending MFA tickets void.
pub(super) fn reset(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    (secret, new_password): (&str, &str),
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    let now = ctx.now;
    let usable = doc.account.as_ref().is_some_and(|a| !a.disabled);
    if !usable || !redeem_link(doc, LinkPurpose::Reset, secret, now) {
        events.push(AuditEvent::new(Event::LinkRefused, None, Some("reset")));
        return Ok(refused(Refusal::InvalidLink));
    }
    let hash = new_hash(settings, ctx, new_password, rng)?;
    let first_proof = doc.account.as_ref().is_some_and(|a| !a.email_verified);
    if let Some(account) = doc.account.as_mut() {
        account.password = hash;
        account.email_verified = true;
        if first_proof {
            account.user_metadata = serde_json::Value::Null;
        }
    }
    if first_proof && doc.mfa != Default::default() {
        // The mailbox is proved for the first time: whoever registered may not have been its owner,
        // so nothing they set survives (second factors and passkeys would let them back in).
        doc.mfa = Default::default();
        events.push(AuditEvent::new(Event::MfaRemoved, None, Some("first_mailbox_proof")));
    }
    doc.logout_all(now, settings.cover_until(now));
    doc.throttle.succeed();
    for client in &mut doc.known_clients {
        client.throttle.succeed();
    }
    doc.mfa.tickets.clear();
    events.push(AuditEvent::new(Event::PasswordReset, None, Some("sessions_revoked")));
    Ok(Reply::Answer(AccountOutcome::Done))
}

/// The password check of a signed-in user (change, deletion): slowed down and counted like a login
/// of `client`'s group. `Ok(None)`: right; `Ok(Some(reply))`: answer that.
fn check_password(
    doc: &mut AccountDoc,
    ctx: Context<'_>,
    (password, client): (&str, Option<&str>),
    what: &'static str,
    events: &mut Vec<AuditEvent>,
) -> Option<Reply> {
    let Some(stored) = doc.account.as_ref().map(|a| a.password.clone()) else {
        return Some(refused(Refusal::NoSuchAccount));
    };
    if let Some(reply) = slowed_down(doc, client, ctx.now, what, events) {
        return Some(reply);
    }
    if password::acceptable(password) && verify(password, &stored, ctx.pbkdf2.derived) {
        return None;
    }
    doc.login_failed(client, ctx.now);
    events.push(AuditEvent::new(Event::LoginFailed, None, Some(what)));
    Some(refused(Refusal::WrongPassword))
}

/// `POST /auth/password/change`: the current password, then a new hash; every other session ends.
pub(super) fn change(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    (keep, current, new, client): (Option<&str>, &str, &str, Option<&str>),
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    if let Some(reply) = check_password(doc, ctx, (current, client), "password_change", events) {
        return Ok(reply);
    }
    let hash = new_hash(settings, ctx, new, rng)?;
    let now = ctx.now;
    let others: Vec<String> = doc
        .account
        .as_ref()
        .map(|a| a.families.iter().filter(|f| Some(f.sid.as_str()) != keep).map(|f| f.sid.clone()).collect())
        .unwrap_or_default();
    for sid in &others {
        doc.logout(sid, now, settings.cover_until(now));
    }
    if let Some(account) = doc.account.as_mut() {
        account.password = hash;
    }
    // A reset link made before the change must not undo it.
    doc.links.retain(|l| l.purpose != LinkPurpose::Reset);
    doc.mfa.tickets.clear();
    events.push(AuditEvent::new(Event::PasswordChanged, keep, None));
    Ok(Reply::Answer(AccountOutcome::Done))
}

/// The account's live sessions, newest first; `current` is marked.
pub(super) fn sessions(doc: &AccountDoc, current: Option<&str>) -> Vec<SessionInfo> {
    let Some(account) = doc.account.as_ref() else { return Vec::new() };
    let mut list: Vec<SessionInfo> = account
        .families
        .iter()
        .filter(|f| f.revoked.is_none())
        .map(|f| SessionInfo {
            sid: f.sid.clone(),
            created_at: f.created_at,
            last_used_at: f.last_used,
            user_agent: f.device.as_ref().and_then(|d| d.user_agent.clone()),
            country: f.device.as_ref().and_then(|d| d.country.clone()),
            amr: f.amr(),
            current: Some(f.sid.as_str()) == current,
        })
        .collect();
    list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.sid.cmp(&b.sid)));
    list
}

/// `DELETE /auth/sessions/{sid}`: ends one live session of this account.
pub(super) fn revoke_session(
    doc: &mut AccountDoc,
    settings: &Settings,
    sid: &str,
    now: i64,
    events: &mut Vec<AuditEvent>,
) -> Reply {
    let live = doc.account.as_ref().is_some_and(|a| a.families.iter().any(|f| f.sid == sid && f.revoked.is_none()));
    if !live {
        return refused(Refusal::NoSuchSession);
    }
    doc.logout(sid, now, settings.cover_until(now));
    events.push(AuditEvent::new(Event::SessionRevoked, Some(sid), None));
    Reply::Answer(AccountOutcome::Done)
}

/// The account as its user or an admin sees it (never a hash or a secret).
pub fn user_view(doc: &AccountDoc, account: &Account) -> Value {
    let empty = |v: &Value| if v.is_null() { json!({}) } else { v.clone() };
    json!({
        "sub": account.sub,
        "email": account.email,
        "email_verified": account.email_verified,
        "created_at": account.created_at,
        "roles": account.roles,
        "scope": account.scope,
        "disabled": account.disabled,
        "app_metadata": empty(&account.app_metadata),
        "user_metadata": empty(&account.user_metadata),
        "mfa": { "totp": doc.mfa.totp.is_some(), "passkeys": doc.mfa.passkeys.len() },
        "sessions": account.families.iter().filter(|f| f.revoked.is_none()).count(),
    })
}

/// The user view of the account, or the refusal when there is none.
pub(super) fn view(doc: &AccountDoc) -> Reply {
    match doc.account.as_ref() {
        Some(account) => Reply::Answer(AccountOutcome::User { user: user_view(doc, account) }),
        None => refused(Refusal::NoSuchAccount),
    }
}

/// Everything stored about the user that is theirs to see (GDPR art. 15/20): the account, its
/// sessions and its passkeys; no hash, secret, token or key.
pub(super) fn export(doc: &AccountDoc, now: i64) -> Reply {
    let Some(account) = doc.account.as_ref() else { return refused(Refusal::NoSuchAccount) };
    let sessions: Vec<Value> = sessions(doc, None)
        .into_iter()
        .map(|s| {
            json!({
                "sid": s.sid, "created_at": s.created_at, "last_used_at": s.last_used_at,
                "user_agent": s.user_agent, "country": s.country, "amr": s.amr,
            })
        })
        .collect();
    let passkeys: Vec<Value> = doc
        .mfa
        .passkeys
        .iter()
        .map(|p| json!({ "id": b64::encode(p.credential.id()), "created_at": p.created_at, "last_used_at": p.last_used_at }))
        .collect();
    let data = json!({
        "exported_at": now,
        "account": user_view(doc, account),
        "sessions": sessions,
        "passkeys": passkeys,
    });
    Reply::Answer(AccountOutcome::Export { data })
}

/// Deletes the account: every session ends first (the denylist record stays until the last access
/// token it covers has expired, so the edge refuses them), then everything else is forgotten.
fn delete(doc: &mut AccountDoc, settings: &Settings, now: i64) {
    doc.logout_all(now, settings.cover_until(now));
    doc.account = None;
    doc.links.clear();
    doc.mailed_at = [0, 0];
    doc.mail_streak = [0, 0];
    doc.notified_at = 0;
    doc.known_clients.clear();
    doc.mfa = Default::default();
}

/// `DELETE /auth/me`: the user deletes their account with their password.
pub(super) fn delete_self(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    (password, client): (&str, Option<&str>),
    events: &mut Vec<AuditEvent>,
) -> Reply {
    if let Some(reply) = check_password(doc, ctx, (password, client), "account_delete", events) {
        return reply;
    }
    delete(doc, settings, ctx.now);
    events.push(AuditEvent::new(Event::AccountDeleted, None, Some("by_user")));
    Reply::Answer(AccountOutcome::Done)
}

/// `DELETE /admin/users/{sub}`.
pub(super) fn admin_delete(doc: &mut AccountDoc, settings: &Settings, now: i64, events: &mut Vec<AuditEvent>) -> Reply {
    if doc.account.is_none() {
        return refused(Refusal::NoSuchAccount);
    }
    delete(doc, settings, now);
    events.push(AuditEvent::new(Event::AccountDeleted, None, Some("by_admin")));
    Reply::Answer(AccountOutcome::Done)
}

/// `POST /admin/users/{sub}/revoke-sessions`.
pub(super) fn admin_revoke_sessions(
    doc: &mut AccountDoc,
    settings: &Settings,
    now: i64,
    events: &mut Vec<AuditEvent>,
) -> Reply {
    if doc.account.is_none() {
        return refused(Refusal::NoSuchAccount);
    }
    doc.logout_all(now, settings.cover_until(now));
    events.push(AuditEvent::new(Event::LogoutAll, None, Some("by_admin")));
    Reply::Answer(AccountOutcome::Done)
}

/// What `PATCH /admin/users/{sub}` changes (validated by the router).
pub(super) struct AdminChanges {
    pub roles: Option<Vec<String>>,
    pub scope: Option<String>,
    pub disabled: Option<bool>,
    pub app_metadata: Option<Value>,
}

/// `PATCH /admin/users/{sub}`: roles and scope reach tokens at the next refresh; disabling ends
/// every session at once (the edge refuses their access tokens within its denylist cache window).
pub(super) fn admin_update(
    doc: &mut AccountDoc,
    settings: &Settings,
    changes: AdminChanges,
    now: i64,
    events: &mut Vec<AuditEvent>,
) -> Reply {
    let Some(account) = doc.account.as_mut() else { return refused(Refusal::NoSuchAccount) };
    if let Some(roles) = changes.roles {
        account.roles = roles;
        events.push(AuditEvent::new(Event::AccountUpdated, None, Some("roles")));
    }
    if let Some(scope) = changes.scope {
        account.scope = scope;
        events.push(AuditEvent::new(Event::AccountUpdated, None, Some("scope")));
    }
    if let Some(metadata) = changes.app_metadata {
        account.app_metadata = metadata;
        events.push(AuditEvent::new(Event::AccountUpdated, None, Some("app_metadata")));
    }
    match changes.disabled {
        Some(true) if !account.disabled => {
            account.disabled = true;
            doc.logout_all(now, settings.cover_until(now));
            doc.links.clear();
            doc.mfa.tickets.clear();
            events.push(AuditEvent::new(Event::AccountDisabled, None, Some("sessions_revoked")));
        }
        Some(false) if account.disabled => {
            account.disabled = false;
            events.push(AuditEvent::new(Event::AccountEnabled, None, None));
        }
        _ => {}
    }
    view(doc)
}

/// `PATCH /auth/me`: the user's own metadata.
pub(super) fn set_user_metadata(doc: &mut AccountDoc, value: Value, events: &mut Vec<AuditEvent>) -> Reply {
    let Some(account) = doc.account.as_mut() else { return refused(Refusal::NoSuchAccount) };
    account.user_metadata = value;
    events.push(AuditEvent::new(Event::AccountUpdated, None, Some("user_metadata")));
    view(doc)
}

/// Whether the account may start a session now: `None` if so, else the answer (disabled; or an
/// unverified email under `EMAIL_VERIFICATION=required`, with a new verification link).
pub(super) fn admission(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Option<Reply>, Fault> {
    let Some(account) = doc.account.as_ref() else { return Ok(Some(refused(Refusal::InvalidCredentials))) };
    if account.disabled {
        events.push(AuditEvent::new(Event::LoginFailed, None, Some("account_disabled")));
        return Ok(Some(refused(Refusal::AccountDisabled)));
    }
    if settings.email_verification_required && !account.email_verified {
        return Ok(Some(verification_for_login(doc, ctx, rng, events)?));
    }
    Ok(None)
}
