//! The account document: everything one `Account` Durable Object stores, and every transition on it.
//! Pure: the object loads it, calls one of these, and writes it back in one statement.

use super::family::{Family, Lifetimes, Outcome, Refusal, RevokeReason, Secret};
use crate::revocation::RevocationRecord;
use serde::{Deserialize, Serialize};

/// Sessions an account may have at once; a new login beyond it ends the least recently used.
pub const MAX_SESSIONS: usize = 50;
/// The failure in a row that starts a throttle: four are free, the fifth slows the next attempt.
pub const FREE_FAILURES: u32 = 5;
/// The longest throttle, seconds.
pub const MAX_LOCK_SECONDS: i64 = 900;
/// Failures older than this are forgotten, seconds.
pub const FAILURE_MEMORY_SECONDS: i64 = 3600;
/// Clients an account remembers as its own (the most recent logins); the oldest is forgotten first.
pub const MAX_KNOWN_CLIENTS: usize = 10;
/// A known client that has not logged in for this long is a stranger again, seconds (90 days).
pub const KNOWN_CLIENT_SECONDS: i64 = 90 * 86_400;

/// Failed-login throttling of one group of clients of one email: the strangers (every client that
/// has not logged in to the account before, whether or not an account exists, so throttling does
/// not tell which emails are registered), or one known client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttle {
    /// Consecutive failures.
    pub failures: u32,
    /// When the last failure happened.
    pub last_failure: i64,
    /// No password is checked before this time.
    pub locked_until: i64,
}

impl Throttle {
    /// `Err(retry_after_seconds)` while throttled.
    pub fn check(&self, now: i64) -> Result<(), i64> {
        if now < self.locked_until {
            Err(self.locked_until - now)
        } else {
            Ok(())
        }
    }

    /// Counts a failure; from the fifth in a row each locks for twice as long (2 s, 4 s, … 15 min).
    pub fn fail(&mut self, now: i64) {
        if now - self.last_failure > FAILURE_MEMORY_SECONDS {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure = now;
        if self.failures >= FREE_FAILURES {
            let exponent = (self.failures - FREE_FAILURES + 1).min(20);
            self.locked_until = now + (1i64 << exponent).min(MAX_LOCK_SECONDS);
        }
    }

    /// A successful login forgets the failures.
    pub fn succeed(&mut self) {
        *self = Throttle::default();
    }
}

/// A client that logged in to this account successfully: the owner's device or network. Only its
/// own failures slow it down; strangers' failures never do (docs/HARDENING.md "Limits").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownClient {
    /// The client's tag: a hash of its address salted with the account id (`limits::client_tag`),
    /// never the address itself.
    pub tag: String,
    /// Its last successful login.
    pub last_login: i64,
    /// Its own failures.
    #[serde(default)]
    pub throttle: Throttle,
}

/// Which throttle a login attempt counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A known client, by its index in [`AccountDoc::known_clients`].
    Known(usize),
    /// A client the account has not seen log in (or no client tag at all).
    Stranger,
}

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The stable user id (this object's id).
    pub sub: String,
    /// The normalised email.
    pub email: String,
    /// The argon2id PHC string; never leaves the object.
    pub password: String,
    /// When it registered.
    pub created_at: i64,
    /// Scopes granted to the user's tokens.
    pub scope: String,
    /// Roles granted to the user's tokens.
    pub roles: Vec<String>,
    /// Live sessions (revoked and expired ones are pruned on every write).
    pub families: Vec<Family>,
    /// Whether the user proved control of `email` (a verification or reset link).
    #[serde(default)]
    pub email_verified: bool,
    /// Disabled by an admin: no login, no refresh (its sessions were revoked when it was disabled).
    #[serde(default)]
    pub disabled: bool,
    /// Metadata only admins set (a JSON object, or null).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub app_metadata: serde_json::Value,
    /// Metadata the user sets (a JSON object, or null): never a basis for authorization.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub user_metadata: serde_json::Value,
}

/// Everything one account object stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDoc {
    /// The account, once registered.
    pub account: Option<Account>,
    /// Login throttling of strangers (clients that have not logged in to this account before).
    #[serde(default)]
    pub throttle: Throttle,
    /// Clients that logged in recently (at most [`MAX_KNOWN_CLIENTS`]), each with its own throttle.
    #[serde(default)]
    pub known_clients: Vec<KnownClient>,
    /// The authority copy of this user's denylist record, mirrored to KV on change.
    #[serde(default = "RevocationRecord::new")]
    pub revocation: RevocationRecord,
    /// Bumped on every change of `revocation`.
    #[serde(default)]
    pub revocation_version: u64,
    /// The latest `revocation_version` known to be in KV.
    #[serde(default)]
    pub mirrored_version: u64,
    /// Live one-time links (email verification, password reset), stored hashed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// When the last mail of each kind went out (`[verify, reset]`), to send at most one a
    /// [`MAIL_INTERVAL_SECONDS`] whoever asks, so nobody can flood a victim's inbox.
    #[serde(default, skip_serializing_if = "is_zero_pair")]
    pub mailed_at: [i64; 2],
    /// Mails of each kind sent in a row (each within a day of the last): the wait before the next
    /// doubles with each, so nobody can flood a victim's inbox (at most about ten a day).
    #[serde(default, skip_serializing_if = "is_zero_streak")]
    pub mail_streak: [u32; 2],
    /// When the last "you already have an account" notice went out (uniform registration), at most
    /// one a [`MAIL_INTERVAL_SECONDS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub notified_at: i64,
    /// The second factor: TOTP, recovery codes and MFA tickets.
    #[cfg(feature = "issuer")]
    #[serde(default, skip_serializing_if = "is_default")]
    pub mfa: super::mfa::Mfa,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

fn is_zero_streak(streak: &[u32; 2]) -> bool {
    *streak == [0, 0]
}

fn is_zero_pair(pair: &[i64; 2]) -> bool {
    *pair == [0, 0]
}

/// The shortest wait between two mails of a kind to one account, seconds; it doubles with each
/// mail sent within [`MAIL_STREAK_SECONDS`] of the one before (60 s, 2 min, 4 min, … up to 17 h).
pub const MAIL_INTERVAL_SECONDS: i64 = 60;
/// A mail more than this long after the last of its kind starts the doubling over, seconds (a day).
pub const MAIL_STREAK_SECONDS: i64 = 86_400;
/// Live links of one kind an account keeps (the newest); a new one beyond pushes out the oldest, so
/// someone asking for links cannot void the one the owner is about to open.
pub const MAX_LIVE_LINKS: usize = 3;
/// How long an email verification link works, seconds (24 hours).
pub const VERIFY_LINK_SECONDS: i64 = 86_400;
/// How long a password reset link works, seconds (30 minutes).
pub const RESET_LINK_SECONDS: i64 = 1_800;

/// What a one-time link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkPurpose {
    /// Proves control of the account's email.
    Verify,
    /// Sets a new password without the old one.
    Reset,
}

impl LinkPurpose {
    /// The index of this kind in [`AccountDoc::mailed_at`].
    pub fn index(self) -> usize {
        match self {
            LinkPurpose::Verify => 0,
            LinkPurpose::Reset => 1,
        }
    }

    /// How long a link of this kind works, seconds.
    pub fn lifetime(self) -> i64 {
        match self {
            LinkPurpose::Verify => VERIFY_LINK_SECONDS,
            LinkPurpose::Reset => RESET_LINK_SECONDS,
        }
    }

    /// The prefix of the link's token text.
    pub fn prefix(self) -> &'static str {
        match self {
            LinkPurpose::Verify => "ghv1",
            LinkPurpose::Reset => "ghp1",
        }
    }
}

/// A live one-time link: the SHA-256 of its secret (base64url), never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// What it is for.
    pub purpose: LinkPurpose,
    /// SHA-256 of the secret, base64url.
    pub hash: String,
    /// When it stops working.
    pub expires_at: i64,
}

#[cfg(feature = "issuer")]
fn is_default(mfa: &super::mfa::Mfa) -> bool {
    *mfa == super::mfa::Mfa::default()
}

impl Default for AccountDoc {
    fn default() -> Self {
        AccountDoc {
            account: None,
            throttle: Throttle::default(),
            known_clients: Vec::new(),
            revocation: RevocationRecord::new(),
            revocation_version: 0,
            mirrored_version: 0,
            links: Vec::new(),
            mailed_at: [0, 0],
            mail_streak: [0, 0],
            notified_at: 0,
            #[cfg(feature = "issuer")]
            mfa: Default::default(),
        }
    }
}

/// What a refresh did, for the object to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshResult {
    /// Issue an access token, then [`Family::commit_rotation`] (via [`AccountDoc::commit_rotation`]).
    Rotate { next: Secret },
    /// Return this pair again.
    Replay { next: Secret, access_token: String, access_exp: i64 },
    /// The family was revoked for reuse; the denylist changed.
    Reused,
    /// The family is bound to a DPoP key and its token came without a proof of that key: it was
    /// revoked as for reuse; the denylist changed.
    KeyMismatch,
    /// Refused; nothing changed.
    Refused(Refusal),
}

impl AccountDoc {
    /// Whether KV may lag behind the revocation record.
    pub fn needs_mirror(&self) -> bool {
        self.mirrored_version < self.revocation_version
    }

    /// Drops sessions that can no longer issue tokens and denylist entries that cover nothing.
    pub fn prune(&mut self, now: i64, life: &Lifetimes) {
        if let Some(account) = &mut self.account {
            account.families.retain(|f| f.is_active(now, life));
        }
        self.revocation.prune(now);
        self.links.retain(|l| l.expires_at > now);
        self.known_clients.retain(|c| now - c.last_login <= KNOWN_CLIENT_SECONDS);
    }

    /// Whose throttle a login by `client` (its tag) counts against: its own if it logged in to this
    /// account within [`KNOWN_CLIENT_SECONDS`], else the strangers' one.
    pub fn standing(&self, client: Option<&str>, now: i64) -> Standing {
        let known = self.account.is_some().then_some(client).flatten().and_then(|tag| {
            self.known_clients.iter().position(|c| c.tag == tag && now - c.last_login <= KNOWN_CLIENT_SECONDS)
        });
        known.map_or(Standing::Stranger, Standing::Known)
    }

    /// `Err(retry_after_seconds)` while the attempts of `client`'s group are slowed down.
    pub fn login_allowed(&self, client: Option<&str>, now: i64) -> Result<(), i64> {
        match self.standing(client, now) {
            Standing::Known(i) => self.known_clients[i].throttle.check(now),
            Standing::Stranger => self.throttle.check(now),
        }
    }

    /// Counts a failed login of `client` against its group only.
    pub fn login_failed(&mut self, client: Option<&str>, now: i64) {
        match self.standing(client, now) {
            Standing::Known(i) => self.known_clients[i].throttle.fail(now),
            Standing::Stranger => self.throttle.fail(now),
        }
    }

    /// A successful login: `client` becomes (or stays) known, with its failures forgotten. The
    /// strangers' failures stay counted: the owner's success must not give an attacker fresh
    /// attempts. At most [`MAX_KNOWN_CLIENTS`] are kept, the least recent forgotten first.
    pub fn login_succeeded(&mut self, client: Option<&str>, now: i64) {
        let Some(tag) = client else { return };
        match self.standing(client, now) {
            Standing::Known(i) => {
                let known = &mut self.known_clients[i];
                known.last_login = now;
                known.throttle.succeed();
            }
            Standing::Stranger => {
                self.known_clients.retain(|c| c.tag != tag);
                self.known_clients.push(KnownClient {
                    tag: tag.to_owned(),
                    last_login: now,
                    throttle: Throttle::default(),
                });
            }
        }
        while self.known_clients.len() > MAX_KNOWN_CLIENTS {
            let Some((oldest, _)) = self.known_clients.iter().enumerate().min_by_key(|(_, c)| c.last_login) else {
                break;
            };
            self.known_clients.remove(oldest);
        }
    }

    /// The family with this `sid`, if the account has it.
    pub fn family_mut(&mut self, sid: &str) -> Option<&mut Family> {
        self.account.as_mut()?.families.iter_mut().find(|f| f.sid == sid)
    }

    /// Adds a session, ending the least recently used ones beyond [`MAX_SESSIONS`].
    /// `cover_until` is when the ended sessions' last access tokens expire.
    pub fn start_session(&mut self, family: Family, now: i64, life: &Lifetimes, cover_until: i64) {
        self.prune(now, life);
        let Some(account) = &mut self.account else { return };
        account.families.push(family);
        while account.families.len() > MAX_SESSIONS {
            let Some((oldest, _)) = account.families.iter().enumerate().min_by_key(|(_, f)| f.last_used) else { break };
            let evicted = account.families.remove(oldest);
            self.revocation.revoke_session(&evicted.sid, cover_until);
        }
    }

    /// Presents a refresh token of session `sid` without a DPoP proof.
    pub fn refresh(
        &mut self,
        sid: &str,
        presented: &Secret,
        now: i64,
        life: &Lifetimes,
        cover_until: i64,
    ) -> RefreshResult {
        self.refresh_with_proof(sid, presented, None, now, life, cover_until)
    }

    /// Presents a refresh token of session `sid` with the thumbprint of the request's verified
    /// DPoP proof key, if any (see [`Family::present_with_key`]).
    pub fn refresh_with_proof(
        &mut self,
        sid: &str,
        presented: &Secret,
        proof_jkt: Option<&str>,
        now: i64,
        life: &Lifetimes,
        cover_until: i64,
    ) -> RefreshResult {
        let Some(family) = self.family_mut(sid) else { return RefreshResult::Refused(Refusal::Unknown) };
        match family.present_with_key(presented, proof_jkt, now, life) {
            Outcome::Rotate { next } => RefreshResult::Rotate { next },
            Outcome::Replay { next, access_token, access_exp } => {
                RefreshResult::Replay { next, access_token, access_exp }
            }
            Outcome::Reuse => {
                family.revoke(now, RevokeReason::Reuse);
                self.revocation.revoke_session(sid, cover_until);
                RefreshResult::Reused
            }
            Outcome::KeyMismatch => {
                self.revocation.revoke_session(sid, cover_until);
                RefreshResult::KeyMismatch
            }
            Outcome::Refused(why) => RefreshResult::Refused(why),
        }
    }

    /// Applies a rotation once its access token is signed.
    pub fn commit_rotation(&mut self, sid: &str, presented: &Secret, next: &Secret, access: (String, i64), now: i64) {
        self.commit_rotation_bound(sid, presented, next, access, None, now);
    }

    /// Applies a rotation once its access token is signed, binding an unbound family to the
    /// request's DPoP key (see [`Family::commit_rotation_bound`]).
    pub fn commit_rotation_bound(
        &mut self,
        sid: &str,
        presented: &Secret,
        next: &Secret,
        access: (String, i64),
        proof_jkt: Option<&str>,
        now: i64,
    ) {
        if let Some(family) = self.family_mut(sid) {
            family.commit_rotation_bound(presented, next, access, proof_jkt, now);
        }
    }

    /// RFC 7009 revocation of a refresh token: if `presented` is a token session `sid` issued (the
    /// live one or an earlier one), the session ends like a logout. Returns whether it did; a forged
    /// or unknown token changes nothing.
    pub fn revoke_by_refresh_token(&mut self, sid: &str, presented: &Secret, now: i64, cover_until: i64) -> bool {
        let issued = self.family_mut(sid).is_some_and(|f| f.revoked.is_none() && f.issued(presented));
        if issued {
            if let Some(family) = self.family_mut(sid) {
                family.revoke(now, RevokeReason::Revoked);
            }
            self.revocation.revoke_session(sid, cover_until);
        }
        issued
    }

    /// RFC 7009 revocation of one access token (by `jti`), until no copy of it can pass `exp`.
    pub fn revoke_access_token(&mut self, jti: &str, until: i64) {
        self.revocation.revoke_token(jti, until);
    }

    /// Ends one session (idempotent): its refresh tokens stop, its access tokens are denylisted.
    pub fn logout(&mut self, sid: &str, now: i64, cover_until: i64) {
        if let Some(family) = self.family_mut(sid) {
            family.revoke(now, RevokeReason::Logout);
        }
        self.revocation.revoke_session(sid, cover_until);
    }

    /// Ends every session and denylists every access token issued before `now`.
    pub fn logout_all(&mut self, now: i64, cover_until: i64) {
        let mut sids = Vec::new();
        if let Some(account) = &mut self.account {
            for family in &mut account.families {
                family.revoke(now, RevokeReason::LogoutAll);
                sids.push(family.sid.clone());
            }
        }
        // The cutoff covers tokens issued before this second; the sids cover those issued in it.
        for sid in sids {
            self.revocation.revoke_session(&sid, cover_until);
        }
        self.revocation.revoke_all_before(now, cover_until);
    }
}
