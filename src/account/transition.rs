//! The vocabulary of the account state machine: what a transition needs (settings, the request's
//! circumstances, randomness), how it ends (an answer, or claims to sign first), its audit events,
//! and the small helpers every transition uses. [`super::core`] and [`super::lifecycle`] both build on
//! it, so neither imports the other's internals.

use super::family::{Lifetimes, Secret};
use super::protocol::{AccountOutcome, Refusal};
use super::state::AccountDoc;
use crate::audit::Event;
use crate::config::Config;
use crate::mfa::secretbox::EncryptionKey;
use crate::password::{self, PasswordParams, Pbkdf2Hash};
use serde_json::Value;

/// What the state machine needs of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `iss` of issued tokens.
    pub issuer: String,
    /// `aud` of issued tokens.
    pub audience: String,
    /// Access-token lifetime, seconds.
    pub access_ttl: i64,
    /// Clock skew tolerated by verifiers, seconds (revocations cover it).
    pub leeway: i64,
    /// Session lifetimes.
    pub lifetimes: Lifetimes,
    /// argon2id cost of new hashes.
    pub password: PasswordParams,
    /// The scheme of new hashes (`PASSWORD_HASH`).
    pub password_scheme: password::Scheme,
    /// Scopes of new accounts.
    pub default_scope: String,
    /// Roles of new accounts.
    pub default_roles: Vec<String>,
    /// `DPOP_MODE=required`: a refresh of a session bound to no key must bring a proof.
    pub dpop_required: bool,
    /// The WebAuthn relying party id (`WEBAUTHN_RP_ID`, else the host of `ISSUER`).
    pub webauthn_rp_id: String,
    /// The origins a WebAuthn ceremony may run on (`WEBAUTHN_ORIGINS`, else the origin of `ISSUER`).
    pub webauthn_origins: Vec<String>,
    /// `EMAIL_VERIFICATION=required`: an unverified account cannot start a session.
    pub email_verification_required: bool,
    /// A mail transport is configured: registration makes a verification link to send.
    pub mail_enabled: bool,
    /// `ADMIN_EMAILS`: verified accounts with these (normalised) emails hold `admin`.
    pub admin_emails: Vec<String>,
    /// `TOKEN_CLAIMS`: metadata fields copied into access tokens.
    pub token_claims: Vec<crate::config::TokenClaim>,
}

impl Settings {
    /// The settings of a configuration.
    pub fn from_config(config: &Config) -> Self {
        Settings {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_ttl: config.access_ttl,
            leeway: config.leeway,
            lifetimes: config.lifetimes(),
            password: config.password,
            password_scheme: config.password_scheme,
            default_scope: config.default_scope.clone(),
            default_roles: config.default_roles.clone(),
            dpop_required: config.dpop.mode == crate::config::DpopMode::Required,
            webauthn_rp_id: config.webauthn_rp_id.clone(),
            webauthn_origins: config.webauthn_origins.clone(),
            email_verification_required: config.email_verification_required,
            mail_enabled: config.mail.is_some(),
            admin_emails: config.admin_emails.clone(),
            token_claims: config.token_claims.clone(),
        }
    }

    /// Until when a revocation made at `now` must stand: the last access token it covers expires by then.
    pub fn cover_until(&self, now: i64) -> i64 {
        now + self.access_ttl + self.leeway
    }
}

/// A source of secret randomness (the platform's, or a seeded one in tests).
pub trait Random {
    /// Fills `out` with random bytes.
    fn fill(&mut self, out: &mut [u8]) -> Result<(), Fault>;
}

/// Why a transition could not be completed. Always the server's fault; nothing is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The platform gave no randomness.
    Randomness,
    /// Hashing a password failed (the parameters).
    PasswordHash(String),
    /// A login was asked without the dummy hash unknown accounts are checked against.
    NoDummyHash,
    /// A second-factor secret could not be sealed or opened (no `MFA_ENCRYPTION_KEY`, another key).
    Mfa(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Randomness => f.write_str("no randomness"),
            Fault::PasswordHash(why) => write!(f, "password hashing failed: {why}"),
            Fault::NoDummyHash => f.write_str("no dummy hash for the login"),
            Fault::Mfa(why) => write!(f, "second factor: {why}"),
        }
    }
}

/// The request's circumstances.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Seconds since the epoch.
    pub now: i64,
    /// This account's id (its object id): the `sub` of its tokens.
    pub account_id: &'a str,
    /// An argon2id hash of the configured cost that no password matches, checked for unknown
    /// accounts so that they take as long as known ones (needed by logins only).
    pub dummy_hash: Option<&'a str>,
    /// PBKDF2 work the runtime did beforehand (WebCrypto is asynchronous, this core is not).
    pub pbkdf2: Pbkdf2Work<'a>,
    /// The key sealing TOTP secrets (`MFA_ENCRYPTION_KEY`), when configured.
    pub mfa_key: Option<&'a EncryptionKey>,
}

/// What the object derived with WebCrypto before calling [`super::core::apply`], for PBKDF2 hashes
/// (`PASSWORD_HASH=pbkdf2`, docs/DEPLOY.md "Plans"). Empty for argon2id, which the core runs itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pbkdf2Work<'a> {
    /// A login's password derived with the salt and iterations of the PBKDF2 hash it is checked
    /// against (the account's, or the dummy's).
    pub derived: Option<&'a [u8; 32]>,
    /// A new PBKDF2 hash of a registration's password, under a fresh salt.
    pub new_hash: Option<&'a str>,
}

/// One audit event of a transition, logged once the transition is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// What happened.
    pub event: Event,
    /// The session, when there is one.
    pub sid: Option<String>,
    /// A short reason code.
    pub reason: Option<&'static str>,
}

impl AuditEvent {
    pub(super) fn new(event: Event, sid: Option<&str>, reason: Option<&'static str>) -> Self {
        AuditEvent { event, sid: sid.map(str::to_owned), reason }
    }
}

/// How a transition ends.
#[derive(Debug)]
pub enum Reply {
    /// The outcome.
    Answer(AccountOutcome),
    /// Sign these claims as an access token, then call [`super::core::finish`].
    Sign(Unsigned),
}

/// A transition waiting for its access token. `Debug` hides the refresh secrets it carries.
pub struct Unsigned {
    /// The access-token claims to sign (API.md "Tokens").
    pub claims: Value,
    pub(super) now: i64,
    pub(super) access_exp: i64,
    pub(super) refresh_token: String,
    pub(super) refresh_expires_in: i64,
    pub(super) rotation: Option<Rotation>,
    pub(super) token_type: &'static str,
}

impl std::fmt::Debug for Unsigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsigned").field("rotation", &self.rotation.is_some()).finish_non_exhaustive()
    }
}

/// A refresh-token rotation to commit with its access token.
pub(super) struct Rotation {
    pub(super) sid: String,
    pub(super) presented: Secret,
    pub(super) next: Secret,
    /// The request's DPoP key, which binds a family that is not bound yet.
    pub(super) jkt: Option<String>,
}

/// A transition's result: how it ends, and the audit events to log once it is saved.
#[derive(Debug)]
pub struct Transition {
    /// The outcome, or the token to sign first.
    pub reply: Reply,
    /// The events, in order.
    pub events: Vec<AuditEvent>,
}

pub(super) fn random<const N: usize>(rng: &mut dyn Random) -> Result<[u8; N], Fault> {
    let mut bytes = [0u8; N];
    rng.fill(&mut bytes)?;
    Ok(bytes)
}

/// The refusal of an attempt (a second factor, a passkey) while `client`'s group is slowed down,
/// audited with `what`; `None`: go on.
pub(super) fn slowed_down(
    doc: &AccountDoc,
    client: Option<&str>,
    now: i64,
    what: &'static str,
    events: &mut Vec<AuditEvent>,
) -> Option<Reply> {
    let retry_after = doc.login_allowed(client, now).err()?;
    events.push(AuditEvent::new(Event::LoginThrottled, None, Some(what)));
    Some(refused(Refusal::Throttled { retry_after }))
}

pub(super) fn refused(refusal: Refusal) -> Reply {
    Reply::Answer(AccountOutcome::Refused { refusal })
}

/// Checks a password against a stored hash by the hash's own scheme: argon2id here, PBKDF2 by the
/// key the object derived beforehand (none derived: no match).
pub(super) fn verify(password: &str, phc: &str, derived: Option<&[u8; 32]>) -> bool {
    match Pbkdf2Hash::parse(phc) {
        Some(hash) => derived.is_some_and(|d| hash.matches(d)),
        None => password::verify(password, phc),
    }
}
