//! The account state machine: every request an account object serves is one call of [`apply`] on the
//! account's document, from (document, request, now, randomness) to (changed document, typed
//! outcome, audit events). Pure: no `worker`, no I/O; the object loads, calls, saves.
//!
//! Issuing an access token is the one step that may need the runtime (RS256 is signed by WebCrypto,
//! which is asynchronous), so a transition that issues one stops at [`Reply::Sign`] with the claims
//! to sign, and [`finish`] completes it with the signed token. The object holds its lock from the
//! load to the save, so no other request sees the document between the two.

use super::family::{Device, Family, Refusal as FamilyRefusal, Secret};
use super::lifecycle::{self, AdminChanges};
use super::mfa::{self as second, ChallengePurpose, CodeCheck};
use super::protocol::{AccountOutcome, AccountRequest, MfaMethod, Refusal, TokenIds, TokenPair};
use super::state::{Account, AccountDoc, RefreshResult, Standing};
use super::transition::{random, refused, slowed_down, verify, Rotation};
pub use super::transition::{AuditEvent, Context, Fault, Pbkdf2Work, Random, Reply, Settings, Transition, Unsigned};
use crate::audit::Event;
use crate::config::CLIENT_ID;
use crate::input::RefreshToken;
use crate::jwt::b64;
use crate::jwt::claims::scope_items;
use crate::mfa::webauthn::{self, Expected};
use crate::password::{self, Pbkdf2Hash};
use crate::revocation::Revoked;
use serde_json::{json, Value};

/// The RFC 8176 §2 authentication method values gatehouse puts in `amr`.
pub mod amr {
    /// A password.
    pub const PWD: &str = "pwd";
    /// A one-time password (TOTP, or a recovery code).
    pub const OTP: &str = "otp";
    /// Proof of possession of a hardware-secured key (a passkey on a security key or platform).
    pub const HWK: &str = "hwk";
    /// Proof of possession of a software-secured key (a synced passkey).
    pub const SWK: &str = "swk";
    /// The authenticator verified the user (PIN or biometric) for a passkey.
    pub const USER: &str = "user";
    /// More than one factor.
    pub const MFA: &str = "mfa";
}

/// The `acr` of a token whose login used one factor.
pub const ACR_ONE_FACTOR: &str = "aal1";
/// The `acr` of a token whose login used two factors (`amr` has `mfa`).
pub const ACR_TWO_FACTORS: &str = "aal2";

/// How and when the user authenticated to start a session: `auth_time`, `amr` and `acr` of its
/// access tokens, kept by every refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// When the login completed, seconds since the epoch.
    pub auth_time: i64,
    /// RFC 8176 method values, in the order they were used.
    pub amr: Vec<String>,
}

impl Authentication {
    /// A password login at `now`.
    pub fn password(now: i64) -> Self {
        Authentication { auth_time: now, amr: vec![amr::PWD.to_owned()] }
    }

    /// The authentication a session started with.
    pub fn of(family: &Family) -> Self {
        Authentication { auth_time: family.auth_time(), amr: family.amr() }
    }

    /// The `acr`: [`ACR_TWO_FACTORS`] when `amr` lists `mfa`, else [`ACR_ONE_FACTOR`].
    pub fn acr(&self) -> &'static str {
        if self.amr.iter().any(|m| m == amr::MFA) {
            ACR_TWO_FACTORS
        } else {
            ACR_ONE_FACTOR
        }
    }
}

/// Applies one request to the document. Refusals can change it too (a failed login counts against
/// the throttle, a reuse revokes the family), so the caller saves whatever this leaves, once
/// [`finish`] (if asked for) has run. The revocation version is bumped whenever the denylist record
/// changes, so the caller knows KV needs the new record.
pub fn apply(
    doc: &mut AccountDoc,
    request: AccountRequest,
    settings: &Settings,
    ctx: Context<'_>,
    rng: &mut dyn Random,
) -> Result<Transition, Fault> {
    let now = ctx.now;
    let revocation_before = doc.revocation.clone();
    doc.prune(now, &settings.lifetimes);
    doc.mfa.prune(now);
    let mut events = Vec::new();
    let request = match request {
        AccountRequest::AsUser { token, request } => match revoked_by(&token, doc) {
            Ok(false) if doc.account.is_some() => *request,
            _ => return Ok(Transition { reply: refused(Refusal::TokenRevoked), events }),
        },
        other => other,
    };
    let reply = match request {
        AccountRequest::Register { email, password } => {
            register(doc, settings, ctx, email, &password, rng, &mut events)?
        }
        AccountRequest::Login { email, password, jkt, client, device } => {
            let attempt = Attempt { email: &email, password: &password, client: client.as_deref(), device };
            login(doc, settings, ctx, attempt, jkt, rng, &mut events)?
        }
        AccountRequest::EmailVerifyRequest => lifecycle::verify_request(doc, ctx, rng, &mut events)?,
        AccountRequest::EmailVerify { secret, signed_in, password, client } => {
            let proof = (signed_in, password.as_deref(), client.as_deref());
            lifecycle::verify_email(doc, ctx, &secret, proof, &mut events)
        }
        AccountRequest::PasswordForgot { email } => lifecycle::forgot(doc, &email, ctx, rng, &mut events)?,
        AccountRequest::PasswordReset { secret, password } => {
            lifecycle::reset(doc, settings, ctx, (&secret, &password), rng, &mut events)?
        }
        AccountRequest::PasswordChange { sid, current, new, client } => {
            let asked = (sid.as_deref(), &current[..], &new[..], client.as_deref());
            lifecycle::change(doc, settings, ctx, asked, rng, &mut events)?
        }
        AccountRequest::Sessions { current } => match doc.account {
            Some(_) => {
                Reply::Answer(AccountOutcome::Sessions { sessions: lifecycle::sessions(doc, current.as_deref()) })
            }
            None => refused(Refusal::NoSuchAccount),
        },
        AccountRequest::SessionRevoke { sid } => lifecycle::revoke_session(doc, settings, &sid, now, &mut events),
        AccountRequest::UserMetadata { value } => lifecycle::set_user_metadata(doc, value, &mut events),
        AccountRequest::Export => lifecycle::export(doc, now),
        AccountRequest::DeleteSelf { password, client } => {
            lifecycle::delete_self(doc, settings, ctx, (&password, client.as_deref()), &mut events)
        }
        AccountRequest::NotifyTaken { email } => lifecycle::notify_taken(doc, &email, now, &mut events),
        AccountRequest::AsUser { .. } => refused(Refusal::TokenRevoked),
        AccountRequest::AdminCheck { token } => {
            let admin =
                doc.account.as_ref().is_some_and(|a| roles(settings, a).iter().any(|r| r == crate::config::ADMIN_ROLE));
            match revoked_by(&token, doc) {
                Ok(false) if admin => Reply::Answer(AccountOutcome::Done),
                _ => refused(Refusal::NotAdmin),
            }
        }
        AccountRequest::AdminGet => lifecycle::view(doc),
        AccountRequest::AdminUpdate { roles, scope, disabled, app_metadata } => {
            let changes = AdminChanges { roles, scope, disabled, app_metadata };
            lifecycle::admin_update(doc, settings, changes, now, &mut events)
        }
        AccountRequest::AdminRevokeSessions => lifecycle::admin_revoke_sessions(doc, settings, now, &mut events),
        AccountRequest::AdminDelete => lifecycle::admin_delete(doc, settings, now, &mut events),
        AccountRequest::Refresh { sid, secret, scope, jkt } => {
            let presented = Presented { sid: &sid, secret: &secret, jkt: jkt.as_deref() };
            refresh(doc, settings, ctx, presented, scope.as_deref(), rng, &mut events)?
        }
        AccountRequest::RevokeRefresh { sid, secret } => {
            if let Some(presented) = secret_of(&secret) {
                if doc.revoke_by_refresh_token(&sid, &presented, now, settings.cover_until(now)) {
                    events.push(AuditEvent::new(Event::TokenRevoked, Some(&sid), Some("refresh_token")));
                }
            }
            Reply::Answer(AccountOutcome::Done)
        }
        AccountRequest::RevokeAccess { jti, exp } => {
            doc.revoke_access_token(&jti, exp.saturating_add(settings.leeway));
            events.push(AuditEvent::new(Event::TokenRevoked, None, Some("access_token")));
            Reply::Answer(AccountOutcome::Done)
        }
        AccountRequest::IntrospectRefresh { sid, secret } => Reply::Answer(AccountOutcome::Introspection {
            answer: introspect_refresh(doc, settings, &sid, &secret, now),
        }),
        AccountRequest::Logout { sid, token } => match revoked_by(&token, doc) {
            Err(refusal) => refused(refusal),
            Ok(true) => Reply::Answer(AccountOutcome::Done),
            Ok(false) => {
                doc.logout(&sid, now, settings.cover_until(now));
                events.push(AuditEvent::new(Event::Logout, Some(&sid), None));
                Reply::Answer(AccountOutcome::Done)
            }
        },
        AccountRequest::TotpEnroll => totp_enroll(doc, settings, ctx, rng, &mut events)?,
        AccountRequest::TotpConfirm { code, client } => {
            totp_confirm(doc, ctx, (&code, client.as_deref()), rng, &mut events)?
        }
        AccountRequest::TotpRemove => {
            if doc.mfa.totp.is_none() {
                refused(Refusal::MfaNotEnabled)
            } else {
                doc.mfa.remove();
                events.push(AuditEvent::new(Event::MfaRemoved, None, Some("totp")));
                Reply::Answer(AccountOutcome::Done)
            }
        }
        AccountRequest::RecoveryRegenerate => {
            if doc.mfa.totp.is_none() {
                refused(Refusal::MfaNotEnabled)
            } else {
                let codes = doc.mfa.recovery.regenerate(&random_codes(rng)?);
                events.push(AuditEvent::new(Event::RecoveryRegenerated, None, None));
                Reply::Answer(AccountOutcome::RecoveryCodes { codes })
            }
        }
        AccountRequest::MfaVerify { ticket, method, code, jkt, client, device } => {
            let attempt = (&ticket[..], method, &code[..], client.as_deref());
            mfa_verify(doc, settings, ctx, attempt, (jkt, device), rng, &mut events)?
        }
        AccountRequest::PasskeyRegisterOptions => passkey_register_options(doc, ctx, rng)?,
        AccountRequest::PasskeyRegisterVerify { client_data_json, attestation_object, transports } => {
            passkey_register_verify(
                doc,
                settings,
                ctx,
                (&client_data_json, &attestation_object),
                &transports,
                &mut events,
            )
        }
        AccountRequest::PasskeyLoginOptions { ticket } => passkey_login_options(doc, ctx, ticket.as_deref(), rng)?,
        AccountRequest::PasskeyLogin {
            ticket,
            credential_id,
            client_data_json,
            authenticator_data,
            signature,
            jkt,
            client,
            device,
        } => {
            let parts = AssertionParts {
                credential_id: &credential_id,
                client_data_json: &client_data_json,
                authenticator_data: &authenticator_data,
                signature: &signature,
            };
            let whom = (ticket.as_deref(), client.as_deref());
            passkey_login(doc, settings, ctx, whom, parts, (jkt, device), rng, &mut events)?
        }
        AccountRequest::LogoutAll { token } => match revoked_by(&token, doc) {
            Err(refusal) => refused(refusal),
            Ok(true) => Reply::Answer(AccountOutcome::Done),
            Ok(false) => {
                doc.logout_all(now, settings.cover_until(now));
                events.push(AuditEvent::new(Event::LogoutAll, None, None));
                Reply::Answer(AccountOutcome::Done)
            }
        },
    };
    if doc.revocation != revocation_before {
        doc.revocation_version += 1;
    }
    Ok(Transition { reply, events })
}

/// Completes a transition that stopped at [`Reply::Sign`] with the signed access token.
pub fn finish(doc: &mut AccountDoc, unsigned: Unsigned, access_token: String) -> AccountOutcome {
    let Unsigned { now, access_exp, refresh_token, refresh_expires_in, rotation, token_type, .. } = unsigned;
    if let Some(Rotation { sid, presented, next, jkt }) = rotation {
        doc.commit_rotation_bound(&sid, &presented, &next, (access_token.clone(), access_exp), jkt.as_deref(), now);
    }
    AccountOutcome::Tokens {
        pair: TokenPair {
            access_token,
            token_type: token_type.into(),
            expires_in: access_exp - now,
            refresh_token,
            refresh_expires_in,
        },
    }
}

/// Whether a logout's asking token is already revoked by this account's own record: `Ok(true)`
/// (revoked with its session or by a logout-all: nothing more to end, and never sessions made after
/// it), `Ok(false)` (live), or a refusal when it was revoked on its own (RFC 7009): the client then
/// refreshes and asks again rather than believing a session ended that did not.
fn revoked_by(token: &TokenIds, doc: &AccountDoc) -> Result<bool, Refusal> {
    match doc.revocation.check_ids(token.iat, token.sid.as_deref(), token.jti.as_deref()) {
        Ok(()) => Ok(false),
        Err(Revoked::Token) => Err(Refusal::TokenRevoked),
        Err(_) => Ok(true),
    }
}

#[allow(clippy::too_many_arguments)]
fn register(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    email: String,
    password: &str,
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    // Hashed before the email is looked at, so a taken email costs what a new one does
    // (REGISTRATION_MODE=uniform answers both alike, docs/HARDENING.md).
    let phc = lifecycle::new_hash(settings, ctx, password, rng)?;
    if doc.account.is_some() {
        return Ok(refused(Refusal::EmailTaken));
    }
    doc.account = Some(Account {
        sub: ctx.account_id.to_owned(),
        email,
        password: phc,
        created_at: ctx.now,
        scope: settings.default_scope.clone(),
        roles: settings.default_roles.clone(),
        families: Vec::new(),
        email_verified: false,
        disabled: false,
        app_metadata: Value::Null,
        user_metadata: Value::Null,
    });
    events.push(AuditEvent::new(Event::Register, None, None));
    let mail = match settings.mail_enabled {
        true => lifecycle::verification_for_registration(doc, ctx, rng)?,
        false => None,
    };
    if mail.is_some() {
        events.push(AuditEvent::new(Event::EmailVerificationSent, None, Some("register")));
    }
    Ok(Reply::Answer(AccountOutcome::Registered { sub: ctx.account_id.to_owned(), mail }))
}

/// A login attempt: the credentials, and the tag of the client's address.
struct Attempt<'a> {
    email: &'a str,
    password: &'a str,
    client: Option<&'a str>,
    device: Option<Device>,
}

fn login(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    Attempt { email, password, client, device }: Attempt<'_>,
    jkt: Option<String>,
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    let now = ctx.now;
    if let Err(retry_after) = doc.login_allowed(client, now) {
        let group = match doc.standing(client, now) {
            Standing::Known(_) => "known_client",
            Standing::Stranger => "strangers",
        };
        events.push(AuditEvent::new(Event::LoginThrottled, None, Some(group)));
        return Ok(refused(Refusal::Throttled { retry_after }));
    }
    let stored = doc.account.as_ref().filter(|a| a.email == email).map(|a| a.password.clone());
    // Unknown accounts are checked against a dummy hash of the same cost.
    let dummy = ctx.dummy_hash.ok_or(Fault::NoDummyHash)?;
    let phc = stored.as_deref().unwrap_or(dummy);
    let password_ok = password::acceptable(password) && verify(password, phc, ctx.pbkdf2.derived);
    if !(stored.is_some() && password_ok) {
        doc.login_failed(client, now);
        let reason = if stored.is_some() { "wrong_password" } else { "unknown_account" };
        events.push(AuditEvent::new(Event::LoginFailed, None, Some(reason)));
        return Ok(refused(Refusal::InvalidCredentials));
    }
    let Some(account) = doc.account.as_mut() else { return Ok(refused(Refusal::InvalidCredentials)) };
    // A hash of other argon2id parameters, or a PBKDF2 one once the plan allows argon2id, is
    // replaced now; never the other way (an argon2id hash is kept under PASSWORD_HASH=pbkdf2).
    if settings.password_scheme == password::Scheme::Argon2id
        && password::needs_rehash(&account.password, &settings.password)
    {
        if Pbkdf2Hash::parse(&account.password).is_some() {
            events.push(AuditEvent::new(Event::PasswordRehashed, None, Some("pbkdf2_to_argon2id")));
        }
        account.password = password::hash(password, &random(rng)?, &settings.password)
            .map_err(|e| Fault::PasswordHash(e.to_string()))?;
    }
    // A disabled account, or an unverified one when verification is required, goes no further.
    if let Some(reply) = lifecycle::admission(doc, settings, ctx, rng, events)? {
        return Ok(reply);
    }
    let Some(sub) = doc.account.as_ref().map(|a| a.sub.clone()) else {
        return Ok(refused(Refusal::InvalidCredentials));
    };
    if doc.mfa.required() {
        // The password was right; the session waits for the second factor. The client is not
        // made known and its throttle is not reset: wrong codes count on from the failures before.
        let secret: Secret = random(rng)?;
        let ticket = doc.mfa.issue_ticket(&sub, &secret, jkt, now);
        events.push(AuditEvent::new(Event::MfaRequired, None, None));
        return Ok(Reply::Answer(AccountOutcome::MfaRequired { ticket, methods: doc.mfa.methods() }));
    }
    doc.login_succeeded(client, now);
    start_session(doc, settings, ctx, Authentication::password(now), (jkt, device), rng, events)
}

/// Starts a session for a completed login authenticated as `auth`: a new refresh family (bound to
/// the DPoP key `jkt`, RFC 9449 §5) and the access token to sign.
fn start_session(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    auth: Authentication,
    (jkt, device): (Option<String>, Option<Device>),
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    let now = ctx.now;
    if let Some(reply) = lifecycle::admission(doc, settings, ctx, rng, events)? {
        return Ok(reply);
    }
    let Some(account) = doc.account.clone() else { return Ok(refused(Refusal::InvalidCredentials)) };
    let sid = b64::encode(random::<16>(rng)?);
    let first: Secret = random(rng)?;
    // RFC 9449 §5: the session (its refresh tokens) is bound to the key that proved possession.
    let family = Family::new(sid.clone(), random(rng)?, &first, now)
        .bound_to(jkt.clone())
        .authenticated(auth.auth_time, auth.amr.clone())
        .on_device(device);
    let refresh_expires_in = family.expires_at(now, &settings.lifetimes) - now;
    let (claims, access_exp) = access_claims(settings, &account, (&sid, &auth), None, jkt.as_deref(), now, rng)?;
    let refresh_token = RefreshToken { account: account.sub.clone(), sid: sid.clone(), secret: first }.format();
    events.push(AuditEvent::new(Event::LoginSucceeded, Some(&sid), None));
    doc.start_session(family, now, &settings.lifetimes, settings.cover_until(now));
    let token_type = token_type(jkt.as_deref());
    Ok(Reply::Sign(Unsigned { claims, now, access_exp, refresh_token, refresh_expires_in, rotation: None, token_type }))
}

fn mfa_fault(e: second::MfaError) -> Fault {
    Fault::Mfa(e.to_string())
}

fn random_codes(rng: &mut dyn Random) -> Result<crate::mfa::recovery::Randomness, Fault> {
    let mut codes = [[0u8; crate::mfa::recovery::CODE_BYTES]; crate::mfa::recovery::COUNT];
    for code in &mut codes {
        rng.fill(code)?;
    }
    Ok(codes)
}

/// The issuer's name in an enrolment URI: the host of `ISSUER` (a URL's colon cannot be in a label).
fn issuer_label(issuer: &str) -> &str {
    let rest = issuer.split_once("://").map_or(issuer, |(_, rest)| rest);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    host.split(':').next().filter(|h| !h.is_empty()).unwrap_or("gatehouse")
}

fn totp_enroll(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    let Some(email) = doc.account.as_ref().map(|a| a.email.clone()) else {
        return Ok(refused(Refusal::MfaNotEnabled));
    };
    if doc.mfa.totp.is_some() {
        return Ok(refused(Refusal::MfaAlreadyEnabled));
    }
    let totp =
        doc.mfa.start_totp(ctx.mfa_key, ctx.account_id, (random(rng)?, random(rng)?), ctx.now).map_err(mfa_fault)?;
    let otpauth_uri =
        totp.otpauth_uri(issuer_label(&settings.issuer), &email).map_err(|e| Fault::Mfa(e.to_string()))?;
    events.push(AuditEvent::new(Event::MfaEnrollStarted, None, Some("totp")));
    Ok(Reply::Answer(AccountOutcome::TotpEnrollment { secret: totp.secret_base32(), otpauth_uri }))
}

fn totp_confirm(
    doc: &mut AccountDoc,
    ctx: Context<'_>,
    (code, client): (&str, Option<&str>),
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    if doc.mfa.totp.is_some() {
        return Ok(refused(Refusal::MfaAlreadyEnabled));
    }
    if let Some(refusal) = slowed_down(doc, client, ctx.now, "totp_confirm", events) {
        return Ok(refusal);
    }
    match doc.mfa.confirm_totp(ctx.mfa_key, ctx.account_id, code, ctx.now).map_err(mfa_fault)? {
        None => Ok(refused(Refusal::MfaNotEnabled)),
        Some(false) => {
            doc.login_failed(client, ctx.now);
            events.push(AuditEvent::new(Event::MfaFailed, None, Some("totp_confirm_wrong_code")));
            Ok(refused(Refusal::InvalidMfaCode))
        }
        Some(true) => {
            let (codes, shown) = crate::mfa::recovery::RecoveryCodes::generate(&random_codes(rng)?);
            doc.mfa.recovery = codes;
            events.push(AuditEvent::new(Event::MfaEnrolled, None, Some("totp")));
            Ok(Reply::Answer(AccountOutcome::RecoveryCodes { codes: shown }))
        }
    }
}

/// Redeems an MFA ticket: throttled like a login; a wrong code counts against the throttle and the
/// ticket (which ends after [`second::TICKET_ATTEMPTS`]); a right one spends the ticket and starts
/// the session with `amr` `["pwd", "otp", "mfa"]`.
fn mfa_verify(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    (ticket, method, code, client): (&str, MfaMethod, &str, Option<&str>),
    (jkt, device): (Option<String>, Option<Device>),
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    let now = ctx.now;
    if let Some(refusal) = slowed_down(doc, client, now, "mfa_verify", events) {
        return Ok(refusal);
    }
    let found = secret_of(ticket).and_then(|secret| doc.mfa.find_ticket(&secret, now));
    let Some(index) = found.filter(|_| doc.account.is_some() && doc.mfa.required()) else {
        events.push(AuditEvent::new(Event::MfaFailed, None, Some("invalid_ticket")));
        return Ok(refused(Refusal::InvalidMfaTicket));
    };
    let bound = doc.mfa.tickets.get(index).and_then(|t| t.jkt.clone());
    // The session is bound to the login's key; the second step must prove the same key.
    if bound.is_some() && bound != jkt {
        events.push(AuditEvent::new(Event::MfaFailed, None, Some("dpop_key_mismatch")));
        return Ok(refused(Refusal::InvalidMfaTicket));
    }
    let check = match method {
        MfaMethod::Totp => doc.mfa.check_totp(ctx.mfa_key, ctx.account_id, code, now).map_err(mfa_fault)?,
        MfaMethod::RecoveryCode => doc.mfa.check_recovery(code),
    };
    let method_name = match method {
        MfaMethod::Totp => "totp",
        MfaMethod::RecoveryCode => "recovery_code",
    };
    if check != CodeCheck::Accepted {
        doc.login_failed(client, now);
        if let Some(t) = doc.mfa.tickets.get_mut(index) {
            t.failures += 1;
            if t.failures >= second::TICKET_ATTEMPTS {
                doc.mfa.tickets.remove(index);
            }
        }
        let reason = if check == CodeCheck::Replayed { "code_replayed" } else { "wrong_code" };
        events.push(AuditEvent::new(Event::MfaFailed, None, Some(reason)));
        return Ok(refused(Refusal::InvalidMfaCode));
    }
    // Single use: the ticket is spent whatever happens next.
    doc.mfa.tickets.remove(index);
    // Both factors passed: now the client is known (its failures forgotten), as after a login.
    doc.login_succeeded(client, now);
    events.push(AuditEvent::new(Event::MfaVerified, None, Some(method_name)));
    let auth = Authentication { auth_time: now, amr: vec![amr::PWD.into(), amr::OTP.into(), amr::MFA.into()] };
    start_session(doc, settings, ctx, auth, (bound, device), rng, events)
}

/// The base64url parts of a WebAuthn assertion as the browser reported them.
#[derive(Clone, Copy)]
struct AssertionParts<'a> {
    credential_id: &'a str,
    client_data_json: &'a str,
    authenticator_data: &'a str,
    signature: &'a str,
}

fn passkey_register_options(doc: &mut AccountDoc, ctx: Context<'_>, rng: &mut dyn Random) -> Result<Reply, Fault> {
    let Some(email) = doc.account.as_ref().map(|a| a.email.clone()) else {
        return Ok(refused(Refusal::InvalidCredentials));
    };
    if doc.mfa.passkeys.len() >= second::MAX_PASSKEYS {
        return Ok(refused(Refusal::PasskeyLimit));
    }
    let challenge: [u8; second::CHALLENGE_BYTES] = random(rng)?;
    doc.mfa.issue_challenge(challenge, ChallengePurpose::Register, ctx.now);
    Ok(Reply::Answer(AccountOutcome::PasskeyOptions {
        challenge: b64::encode(challenge),
        user_id: ctx.account_id.to_owned(),
        user_name: email,
        credentials: doc.mfa.passkeys.iter().map(|p| b64::encode(p.credential.id())).collect(),
    }))
}

fn passkey_register_verify(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    (client_data_json, attestation_object): (&str, &str),
    transports: &[String],
    events: &mut Vec<AuditEvent>,
) -> Reply {
    let mut fail = |reason: &'static str| {
        events.push(AuditEvent::new(Event::MfaFailed, None, Some(reason)));
        refused(Refusal::InvalidPasskey)
    };
    if doc.account.is_none() {
        return fail("no_account");
    }
    if doc.mfa.passkeys.len() >= second::MAX_PASSKEYS {
        return refused(Refusal::PasskeyLimit);
    }
    let (Ok(client_data), Ok(attestation)) = (b64::decode(client_data_json), b64::decode(attestation_object)) else {
        return fail("webauthn_malformed");
    };
    let Some(challenge) = doc.mfa.take_challenge(&client_data, &ChallengePurpose::Register, ctx.now) else {
        return fail("webauthn_challenge");
    };
    let expected = Expected {
        challenge: &challenge,
        rp_id: &settings.webauthn_rp_id,
        origins: &settings.webauthn_origins,
        require_user_verification: false,
    };
    let credential = match webauthn::verify_registration(&expected, &client_data, &attestation) {
        Ok(credential) => credential.with_transports(transports),
        Err(_) => return fail("webauthn_registration"),
    };
    // §7.1 step 25: a credential id registered already (here, or on this account) is refused.
    if doc.mfa.find_passkey(credential.id()).is_some() {
        return fail("webauthn_duplicate");
    }
    let id = b64::encode(credential.id());
    doc.mfa.passkeys.push(second::Passkey { credential, created_at: ctx.now, last_used_at: None });
    events.push(AuditEvent::new(Event::MfaEnrolled, None, Some("webauthn")));
    Reply::Answer(AccountOutcome::PasskeyRegistered { id })
}

/// Options to sign in with a passkey. A passwordless login answers the same shape for every email
/// (a challenge, no credential ids): it is stored only when the account has a passkey.
fn passkey_login_options(
    doc: &mut AccountDoc,
    ctx: Context<'_>,
    ticket: Option<&str>,
    rng: &mut dyn Random,
) -> Result<Reply, Fault> {
    let challenge: [u8; second::CHALLENGE_BYTES] = random(rng)?;
    let options = |credentials: Vec<String>| {
        Reply::Answer(AccountOutcome::PasskeyOptions {
            challenge: b64::encode(challenge),
            user_id: String::new(),
            user_name: String::new(),
            credentials,
        })
    };
    let Some(ticket) = ticket else {
        if doc.account.is_some() && !doc.mfa.passkeys.is_empty() {
            doc.mfa.issue_challenge(challenge, ChallengePurpose::Login, ctx.now);
        }
        return Ok(options(Vec::new()));
    };
    let found = secret_of(ticket).and_then(|secret| doc.mfa.find_ticket(&secret, ctx.now));
    let Some(hash) =
        found.filter(|_| !doc.mfa.passkeys.is_empty()).and_then(|i| doc.mfa.tickets.get(i)).map(|t| t.hash)
    else {
        return Ok(refused(Refusal::InvalidMfaTicket));
    };
    doc.mfa.issue_challenge(challenge, ChallengePurpose::SecondFactor { ticket: hash }, ctx.now);
    Ok(options(doc.mfa.passkeys.iter().map(|p| b64::encode(p.credential.id())).collect()))
}

/// Checks an assertion against the challenge it names (spent whatever the result) and the stored
/// passkey, recording the new counter: the passkey's `amr` value and whether the user was verified.
fn check_assertion(
    doc: &mut AccountDoc,
    settings: &Settings,
    now: i64,
    purpose: &ChallengePurpose,
    parts: AssertionParts<'_>,
) -> Result<(&'static str, bool), &'static str> {
    let decode = |text: &str| b64::decode(text).map_err(|_| "webauthn_malformed");
    let (id, client_data) = (decode(parts.credential_id)?, decode(parts.client_data_json)?);
    let (auth_data, signature) = (decode(parts.authenticator_data)?, decode(parts.signature)?);
    let challenge = doc.mfa.take_challenge(&client_data, purpose, now).ok_or("webauthn_challenge")?;
    let index = doc.mfa.find_passkey(&id).ok_or("webauthn_unknown_credential")?;
    let passkey = &mut doc.mfa.passkeys[index];
    let expected = Expected {
        challenge: &challenge,
        rp_id: &settings.webauthn_rp_id,
        origins: &settings.webauthn_origins,
        require_user_verification: *purpose == ChallengePurpose::Login,
    };
    let assertion =
        webauthn::verify_authentication(&expected, &passkey.credential, &client_data, &auth_data, &signature).map_err(
            |e| match e {
                webauthn::WebAuthnError::CounterRegression { .. } => "webauthn_counter_regression",
                _ => "webauthn_assertion",
            },
        )?;
    passkey.credential.record(&assertion);
    passkey.last_used_at = Some(now);
    Ok((passkey_amr(&passkey.credential), assertion.user_verified()))
}

/// The RFC 8176 `amr` value of a passkey: `swk` when the credential may be backed up (a synced
/// passkey: its private key leaves the device), `hwk` when it is bound to one authenticator.
fn passkey_amr(credential: &webauthn::Credential) -> &'static str {
    if credential.backup_eligible() {
        amr::SWK
    } else {
        amr::HWK
    }
}

/// Signs in with a passkey: the second step of a password login (with its ticket, which is spent
/// on success; `amr` `["pwd", "hwk"|"swk", "mfa"]`), or a passwordless login (user verification
/// required; `amr` `["hwk"|"swk", "mfa"]`: the key is possession, the PIN or biometric the
/// authenticator checked is the second factor). Throttled like a password login.
/// Whether a refused assertion was a real attempt at the account (a signature, a credential, a
/// counter checked against a challenge the account issued), which slows down the client's group and
/// uses up the ticket. A malformed one, or one naming no live challenge of this kind, could never
/// have passed: counting it would let anyone slow down the owner, or spend the owner's ticket, by
/// sending garbage.
fn counts_as_attempt(reason: &str) -> bool {
    !matches!(reason, "webauthn_malformed" | "webauthn_challenge")
}

#[allow(clippy::too_many_arguments)]
fn passkey_login(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    (ticket, client): (Option<&str>, Option<&str>),
    parts: AssertionParts<'_>,
    (jkt, device): (Option<String>, Option<Device>),
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    let now = ctx.now;
    if let Some(refusal) = slowed_down(doc, client, now, "webauthn", events) {
        return Ok(refusal);
    }
    let Some(ticket) = ticket else {
        if doc.account.is_none() {
            doc.login_failed(client, now);
            events.push(AuditEvent::new(Event::LoginFailed, None, Some("unknown_account")));
            return Ok(refused(Refusal::InvalidCredentials));
        }
        return match check_assertion(doc, settings, now, &ChallengePurpose::Login, parts) {
            Ok((method, _)) => {
                // Disabled, or unverified under EMAIL_VERIFICATION=required: refused before the
                // client counts as known.
                if let Some(reply) = lifecycle::admission(doc, settings, ctx, rng, events)? {
                    return Ok(reply);
                }
                doc.login_succeeded(client, now);
                let auth = Authentication { auth_time: now, amr: vec![method.into(), amr::MFA.into()] };
                start_session(doc, settings, ctx, auth, (jkt, device), rng, events)
            }
            Err(reason) => {
                if counts_as_attempt(reason) {
                    doc.login_failed(client, now);
                }
                events.push(AuditEvent::new(Event::LoginFailed, None, Some(reason)));
                Ok(refused(Refusal::InvalidCredentials))
            }
        };
    };
    let found = secret_of(ticket).and_then(|secret| doc.mfa.find_ticket(&secret, now));
    let Some(index) = found.filter(|_| doc.account.is_some() && !doc.mfa.passkeys.is_empty()) else {
        events.push(AuditEvent::new(Event::MfaFailed, None, Some("invalid_ticket")));
        return Ok(refused(Refusal::InvalidMfaTicket));
    };
    let (hash, bound) = (doc.mfa.tickets[index].hash, doc.mfa.tickets[index].jkt.clone());
    if bound.is_some() && bound != jkt {
        events.push(AuditEvent::new(Event::MfaFailed, None, Some("dpop_key_mismatch")));
        return Ok(refused(Refusal::InvalidMfaTicket));
    }
    match check_assertion(doc, settings, now, &ChallengePurpose::SecondFactor { ticket: hash }, parts) {
        Ok((method, _)) => {
            doc.mfa.tickets.retain(|t| t.hash != hash);
            doc.login_succeeded(client, now);
            events.push(AuditEvent::new(Event::MfaVerified, None, Some("webauthn")));
            let auth = Authentication { auth_time: now, amr: vec![amr::PWD.into(), method.into(), amr::MFA.into()] };
            start_session(doc, settings, ctx, auth, (bound, device), rng, events)
        }
        Err(reason) => {
            if counts_as_attempt(reason) {
                doc.login_failed(client, now);
                if let Some(t) = doc.mfa.tickets.iter_mut().find(|t| t.hash == hash) {
                    t.failures += 1;
                }
            }
            doc.mfa.tickets.retain(|t| t.failures < second::TICKET_ATTEMPTS);
            events.push(AuditEvent::new(Event::MfaFailed, None, Some(reason)));
            Ok(refused(Refusal::InvalidMfaCode))
        }
    }
}

/// A refresh token as presented: its session, its secret (base64url), and the thumbprint of the
/// request's verified DPoP proof key, if any.
#[derive(Clone, Copy)]
struct Presented<'a> {
    sid: &'a str,
    secret: &'a str,
    jkt: Option<&'a str>,
}

/// The `token_type` of an answer whose access token is bound to `jkt` (RFC 9449 §5), or not.
fn token_type(jkt: Option<&str>) -> &'static str {
    if jkt.is_some() {
        "DPoP"
    } else {
        "Bearer"
    }
}

fn refresh(
    doc: &mut AccountDoc,
    settings: &Settings,
    ctx: Context<'_>,
    presented: Presented<'_>,
    scope: Option<&str>,
    rng: &mut dyn Random,
    events: &mut Vec<AuditEvent>,
) -> Result<Reply, Fault> {
    let now = ctx.now;
    let Presented { sid, secret, jkt } = presented;
    let Some(secret) = secret_of(secret) else { return Ok(refused(Refusal::InvalidGrant)) };
    if doc.account.as_ref().is_some_and(|a| a.disabled) {
        // Its sessions were revoked when it was disabled; this only holds if one was not.
        events.push(AuditEvent::new(Event::RefreshRefused, Some(sid), Some("account_disabled")));
        return Ok(refused(Refusal::InvalidGrant));
    }
    if let (Some(requested), Some(account)) = (scope, doc.account.as_ref()) {
        // Checked before anything changes, so a refused scope does not spend the token.
        if !is_subset(requested, &account.scope) {
            return Ok(refused(Refusal::InvalidScope));
        }
    }
    let family_key =
        |doc: &AccountDoc| doc.account.as_ref()?.families.iter().find(|f| f.sid == sid).map(|f| f.jkt.clone());
    // DPOP_MODE=required: a session bound to no key needs a proof to bind it; without one the
    // request is refused before anything changes (a bound session without one is reuse, below).
    if settings.dpop_required && jkt.is_none() && family_key(doc) == Some(None) {
        events.push(AuditEvent::new(Event::RefreshRefused, Some(sid), Some("dpop_required")));
        return Ok(refused(Refusal::DpopProofRequired));
    }
    let life = settings.lifetimes;
    let result = doc.refresh_with_proof(sid, &secret, jkt, now, &life, settings.cover_until(now));
    // A rotation or replay means the family exists, so the account does.
    let live = |doc: &AccountDoc| {
        let account = doc.account.as_ref()?;
        let family = account.families.iter().find(|f| f.sid == sid)?;
        Some((account.clone(), family.expires_at(now, &life) - now, family.jkt.clone(), Authentication::of(family)))
    };
    match result {
        RefreshResult::Rotate { next } => {
            let Some((account, refresh_expires_in, bound, auth)) = live(doc) else {
                return Ok(refused(Refusal::InvalidGrant));
            };
            let account = &account;
            // A bound family's key is the proof's (checked); an unbound one takes the proof's key.
            let cnf = bound.as_deref().or(jkt);
            // The session's auth_time and amr, not the refresh's: a refresh is no authentication.
            let (claims, access_exp) = access_claims(settings, account, (sid, &auth), scope, cnf, now, rng)?;
            let refresh_token =
                RefreshToken { account: account.sub.clone(), sid: sid.to_owned(), secret: next }.format();
            events.push(AuditEvent::new(Event::RefreshRotated, Some(sid), None));
            let rotation = Some(Rotation { sid: sid.to_owned(), presented: secret, next, jkt: jkt.map(str::to_owned) });
            let token_type = token_type(cnf);
            Ok(Reply::Sign(Unsigned {
                claims,
                now,
                access_exp,
                refresh_token,
                refresh_expires_in,
                rotation,
                token_type,
            }))
        }
        RefreshResult::Replay { next, access_token, access_exp } => {
            let Some((account, refresh_expires_in, bound, _)) = live(doc) else {
                return Ok(refused(Refusal::InvalidGrant));
            };
            events.push(AuditEvent::new(Event::RefreshReplayed, Some(sid), None));
            let refresh_token =
                RefreshToken { account: account.sub.clone(), sid: sid.to_owned(), secret: next }.format();
            // Only a rotation binds a family, and the replayed pair is the last rotation's: its
            // access token is bound exactly when the family is.
            Ok(Reply::Answer(AccountOutcome::Tokens {
                pair: TokenPair {
                    access_token,
                    token_type: token_type(bound.as_deref()).into(),
                    expires_in: access_exp - now,
                    refresh_token,
                    refresh_expires_in,
                },
            }))
        }
        RefreshResult::Reused => {
            events.push(AuditEvent::new(Event::ReuseDetected, Some(sid), Some("family_revoked")));
            Ok(refused(Refusal::InvalidGrant))
        }
        RefreshResult::KeyMismatch => {
            let reason = if jkt.is_some() { "dpop_key_mismatch" } else { "dpop_proof_missing" };
            events.push(AuditEvent::new(Event::ReuseDetected, Some(sid), Some(reason)));
            Ok(refused(Refusal::InvalidGrant))
        }
        RefreshResult::Refused(why) => {
            let reason = match why {
                FamilyRefusal::Revoked => "revoked",
                FamilyRefusal::Expired => "expired",
                FamilyRefusal::Idle => "idle",
                FamilyRefusal::Unknown => "unknown",
            };
            events.push(AuditEvent::new(Event::RefreshRefused, Some(sid), Some(reason)));
            Ok(refused(Refusal::InvalidGrant))
        }
    }
}

/// The claims of API.md "Tokens" for session `sid` of `account`, authenticated as `auth`; `scope`
/// narrows the granted scopes, and `cnf_jkt` binds the token to a DPoP key (`cnf.jkt`, RFC 9449 §6.1).
fn access_claims(
    settings: &Settings,
    account: &Account,
    (sid, auth): (&str, &Authentication),
    scope: Option<&str>,
    cnf_jkt: Option<&str>,
    now: i64,
    rng: &mut dyn Random,
) -> Result<(Value, i64), Fault> {
    let exp = now + settings.access_ttl;
    let mut claims = json!({
        "iss": settings.issuer,
        "sub": account.sub,
        "aud": settings.audience,
        "iat": now,
        "exp": exp,
        "jti": b64::encode(random::<16>(rng)?),
        "sid": sid,
        "client_id": CLIENT_ID,
        "scope": scope.map(|s| scope_items(s).collect::<Vec<_>>().join(" ")).unwrap_or_else(|| account.scope.clone()),
        "roles": roles(settings, account),
        "email": account.email,
        "email_verified": account.email_verified,
        "auth_time": auth.auth_time,
        "amr": auth.amr,
        "acr": auth.acr(),
    });
    if let Some(members) = claims.as_object_mut() {
        if let Some(jkt) = cnf_jkt {
            members.insert("cnf".into(), json!({ "jkt": jkt }));
        }
        for (name, value) in custom_claims(settings, account) {
            members.entry(name).or_insert(value);
        }
    }
    Ok((claims, exp))
}

/// The account's roles, with `admin` when its email is verified and listed in `ADMIN_EMAILS`.
fn roles(settings: &Settings, account: &Account) -> Vec<String> {
    let mut roles = account.roles.clone();
    let listed = settings.admin_emails.contains(&account.email);
    if listed && account.email_verified && !roles.iter().any(|r| r == crate::config::ADMIN_ROLE) {
        roles.push(crate::config::ADMIN_ROLE.to_owned());
    }
    roles
}

/// The metadata fields `TOKEN_CLAIMS` copies into access tokens, `app_metadata`'s first and then
/// `user_metadata`'s, each in `TOKEN_CLAIMS` order, while their JSON stays within
/// [`crate::config::MAX_CUSTOM_CLAIMS_BYTES`] (the rest are left out).
fn custom_claims(settings: &Settings, account: &Account) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut size = 0usize;
    // Admins' fields first: a user's own metadata can never push them out of the budget.
    let ordered = settings
        .token_claims
        .iter()
        .filter(|c| c.source == crate::config::MetadataSource::App)
        .chain(settings.token_claims.iter().filter(|c| c.source == crate::config::MetadataSource::User));
    for claim in ordered {
        let source = match claim.source {
            crate::config::MetadataSource::App => &account.app_metadata,
            crate::config::MetadataSource::User => &account.user_metadata,
        };
        let Some(value) = source.get(&claim.key).filter(|v| !v.is_null()) else { continue };
        let cost = claim.key.len() + value.to_string().len() + 4;
        if size + cost > crate::config::MAX_CUSTOM_CLAIMS_BYTES {
            continue;
        }
        size += cost;
        out.push((claim.key.clone(), value.clone()));
    }
    out
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
fn introspect_refresh(doc: &AccountDoc, settings: &Settings, sid: &str, secret: &str, now: i64) -> Value {
    let life = settings.lifetimes;
    let account = doc.account.as_ref();
    let family = account.and_then(|a| a.families.iter().find(|f| f.sid == sid));
    match (account, family, secret_of(secret)) {
        (Some(account), Some(family), Some(presented)) if family.is_live(&presented, now, &life) => json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": CLIENT_ID,
            "scope": account.scope,
            "sub": account.sub,
            "username": account.email,
            "iss": settings.issuer,
            "iat": family.created_at,
            "exp": family.expires_at(now, &life),
            "sid": family.sid,
        }),
        _ => crate::oauth::inactive(),
    }
}
