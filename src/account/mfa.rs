//! An account's second factor: the TOTP credential (sealed at rest), its pending enrolment, the
//! recovery codes, and the short-lived single-use MFA tickets a password login hands out when a
//! second factor is needed. Pure: time, randomness and the sealing key are arguments; the account
//! core ([`super::core`]) calls these and the Durable Object stores the result.

use super::family::{hash, Secret};
use crate::jwt::b64;
use crate::mfa::recovery::RecoveryCodes;
use crate::mfa::secretbox::{self, EncryptionKey};
use crate::mfa::totp::{Totp, TotpError};
use crate::mfa::webauthn::Credential;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// How long an MFA ticket lasts, seconds.
pub const TICKET_SECONDS: i64 = 300;
/// How long a started enrolment waits for its first code, seconds.
pub const ENROLL_SECONDS: i64 = 900;
/// Wrong codes a ticket survives; the next one ends it.
pub const TICKET_ATTEMPTS: u32 = 5;
/// Tickets an account holds at once (the oldest go first).
pub const MAX_TICKETS: usize = 10;
/// The prefix of an MFA ticket: `ghm1.<account id>.<secret>`.
pub const TICKET_PREFIX: &str = "ghm1";

/// How long a WebAuthn challenge lasts, seconds (also the `timeout` the options ask of the browser).
pub const CHALLENGE_SECONDS: i64 = 300;
/// WebAuthn challenges an account holds at once (the oldest go first).
pub const MAX_CHALLENGES: usize = 10;
/// Passkeys an account may register.
pub const MAX_PASSKEYS: usize = 10;
/// Bytes of a WebAuthn challenge (at least [`crate::mfa::webauthn::MIN_CHALLENGE_BYTES`]).
pub const CHALLENGE_BYTES: usize = 32;

/// A registered passkey: the verified credential (id, COSE public key, signature counter, flags)
/// and when it was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passkey {
    /// The credential [`crate::mfa::webauthn::verify_registration`] made; its counter is updated
    /// by every assertion.
    pub credential: Credential,
    /// When it was registered.
    pub created_at: i64,
    /// When it last signed in.
    #[serde(default)]
    pub last_used_at: Option<i64>,
}

/// What a WebAuthn challenge was issued for; a challenge serves only its own ceremony.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "for", rename_all = "snake_case")]
pub enum ChallengePurpose {
    /// Adding a passkey to the account (asked with an access token).
    Register,
    /// The second step of a password login: bound to the MFA ticket (SHA-256 of its secret).
    SecondFactor {
        /// The ticket's hash, as in [`Ticket::hash`].
        ticket: [u8; 32],
    },
    /// A passwordless login.
    Login,
}

/// A WebAuthn challenge waiting for its ceremony: single use, short-lived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The challenge bytes sent in the options.
    #[serde(with = "crate::mfa::serde_b64")]
    pub challenge: Vec<u8>,
    /// The ceremony it is for.
    pub purpose: ChallengePurpose,
    /// When it stops working.
    pub expires_at: i64,
}

/// A confirmed TOTP credential: the secret sealed under `MFA_ENCRYPTION_KEY`, and the last step a
/// code was accepted for (RFC 6238 §5.2: each code works once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpFactor {
    /// `v1.<nonce>.<ciphertext>` of [`secretbox`], bound to the account and [`secretbox::TOTP_SECRET`].
    pub sealed: String,
    /// The step of the last accepted code.
    pub last_used_step: Option<u64>,
    /// When it was confirmed.
    pub enrolled_at: i64,
}

/// A TOTP enrolment waiting for its first code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTotp {
    /// The sealed secret, as in [`TotpFactor`].
    pub sealed: String,
    /// When it was started.
    pub started_at: i64,
}

/// An MFA ticket: only the SHA-256 of its secret is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// SHA-256 of the ticket's secret.
    pub hash: [u8; 32],
    /// When it stops working.
    pub expires_at: i64,
    /// The DPoP key of the login (RFC 7638 thumbprint): the session will be bound to it.
    #[serde(default)]
    pub jkt: Option<String>,
    /// Wrong codes presented with it so far.
    #[serde(default)]
    pub failures: u32,
}

/// The second-factor state of an account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mfa {
    /// The confirmed TOTP credential.
    #[serde(default)]
    pub totp: Option<TotpFactor>,
    /// An enrolment waiting for its first code.
    #[serde(default)]
    pub pending: Option<PendingTotp>,
    /// The unused recovery codes (digests).
    #[serde(default)]
    pub recovery: RecoveryCodes,
    /// Live MFA tickets.
    #[serde(default)]
    pub tickets: Vec<Ticket>,
    /// Registered passkeys.
    #[serde(default)]
    pub passkeys: Vec<Passkey>,
    /// Live WebAuthn challenges.
    #[serde(default)]
    pub challenges: Vec<Challenge>,
}

/// Why a second-factor step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfaError {
    /// The sealing key is not configured (the operator's fault).
    NoKey,
    /// The stored secret would not open or seal (the key changed, or storage is damaged).
    Sealed(secretbox::BoxError),
    /// The TOTP primitive refused (never for a stored secret).
    Totp(TotpError),
}

impl std::fmt::Display for MfaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MfaError::NoKey => f.write_str("MFA_ENCRYPTION_KEY is not set"),
            MfaError::Sealed(e) => write!(f, "TOTP secret: {e}"),
            MfaError::Totp(e) => write!(f, "TOTP: {e}"),
        }
    }
}

/// What checking a code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// Accepted (and recorded as used).
    Accepted,
    /// Wrong (or malformed).
    Wrong,
    /// A code already used (its step, or an earlier one).
    Replayed,
}

impl Mfa {
    /// Whether the account has a second factor that a login must pass.
    pub fn required(&self) -> bool {
        self.totp.is_some() || !self.passkeys.is_empty()
    }

    /// The methods a ticket may be redeemed with, in the order offered.
    pub fn methods(&self) -> Vec<String> {
        let mut methods = Vec::new();
        if self.totp.is_some() {
            methods.push("totp".to_owned());
        }
        if !self.passkeys.is_empty() {
            methods.push("webauthn".to_owned());
        }
        if self.totp.is_some() && self.recovery.remaining() > 0 {
            methods.push("recovery_code".to_owned());
        }
        methods
    }

    /// Drops expired tickets and a stale pending enrolment.
    pub fn prune(&mut self, now: i64) {
        self.tickets.retain(|t| t.expires_at > now);
        self.challenges.retain(|c| c.expires_at > now);
        if self.pending.as_ref().is_some_and(|p| now >= p.started_at.saturating_add(ENROLL_SECONDS)) {
            self.pending = None;
        }
    }

    /// Issues a ticket for `account`, bound to the login's DPoP key; returns its text.
    pub fn issue_ticket(&mut self, account: &str, secret: &Secret, jkt: Option<String>, now: i64) -> String {
        self.prune(now);
        self.tickets.push(Ticket { hash: hash(secret), expires_at: now + TICKET_SECONDS, jkt, failures: 0 });
        while self.tickets.len() > MAX_TICKETS {
            self.tickets.remove(0);
        }
        format!("{TICKET_PREFIX}.{account}.{}", b64::encode(secret))
    }

    /// The live ticket whose secret is `secret`, by index.
    pub fn find_ticket(&self, secret: &Secret, now: i64) -> Option<usize> {
        let presented = hash(secret);
        self.tickets.iter().position(|t| t.expires_at > now && bool::from(t.hash.ct_eq(&presented)))
    }

    /// Starts (or restarts) a TOTP enrolment with a fresh secret; returns the credential to show.
    pub fn start_totp(
        &mut self,
        key: Option<&EncryptionKey>,
        account: &str,
        random: ([u8; crate::mfa::totp::SECRET_BYTES], [u8; secretbox::NONCE_BYTES]),
        now: i64,
    ) -> Result<Totp, MfaError> {
        let key = key.ok_or(MfaError::NoKey)?;
        let totp = Totp::generate(random.0);
        let sealed = key.seal(random.1, account, secretbox::TOTP_SECRET, totp.secret()).map_err(MfaError::Sealed)?;
        self.pending = Some(PendingTotp { sealed, started_at: now });
        Ok(totp)
    }

    fn open(key: Option<&EncryptionKey>, account: &str, sealed: &str) -> Result<Totp, MfaError> {
        let key = key.ok_or(MfaError::NoKey)?;
        let secret = key.open(account, secretbox::TOTP_SECRET, sealed).map_err(MfaError::Sealed)?;
        Totp::new(secret, Default::default(), Default::default()).map_err(MfaError::Totp)
    }

    /// Confirms the pending enrolment with its first code: the factor is on and a new set of
    /// recovery codes replaces any old one. `Ok(None)`: no pending enrolment; `Ok(Some(false))`:
    /// wrong code (the enrolment stays pending).
    pub fn confirm_totp(
        &mut self,
        key: Option<&EncryptionKey>,
        account: &str,
        code: &str,
        now: i64,
    ) -> Result<Option<bool>, MfaError> {
        let Some(pending) = self.pending.clone() else { return Ok(None) };
        let totp = Self::open(key, account, &pending.sealed)?;
        match totp.verify(code, now, None) {
            Ok(step) => {
                self.totp = Some(TotpFactor { sealed: pending.sealed, last_used_step: Some(step), enrolled_at: now });
                self.pending = None;
                Ok(Some(true))
            }
            Err(TotpError::Clock) => Err(MfaError::Totp(TotpError::Clock)),
            Err(_) => Ok(Some(false)),
        }
    }

    /// Checks a TOTP code against the confirmed factor, recording its step when accepted.
    pub fn check_totp(
        &mut self,
        key: Option<&EncryptionKey>,
        account: &str,
        code: &str,
        now: i64,
    ) -> Result<CodeCheck, MfaError> {
        let Some(factor) = self.totp.as_mut() else { return Ok(CodeCheck::Wrong) };
        let totp = Self::open(key, account, &factor.sealed)?;
        match totp.verify(code, now, factor.last_used_step) {
            Ok(step) => {
                factor.last_used_step = Some(step);
                Ok(CodeCheck::Accepted)
            }
            Err(TotpError::Replayed) => Ok(CodeCheck::Replayed),
            Err(TotpError::Clock) => Err(MfaError::Totp(TotpError::Clock)),
            Err(_) => Ok(CodeCheck::Wrong),
        }
    }

    /// Uses a recovery code (each works once).
    pub fn check_recovery(&mut self, code: &str) -> CodeCheck {
        if self.totp.is_some() && self.recovery.consume(code) {
            CodeCheck::Accepted
        } else {
            CodeCheck::Wrong
        }
    }

    /// Removes the TOTP factor, its recovery codes and every ticket; passkeys stay.
    pub fn remove(&mut self) {
        let passkeys = std::mem::take(&mut self.passkeys);
        *self = Mfa { passkeys, ..Mfa::default() };
    }

    /// Stores a fresh challenge for `purpose`. Passwordless-login challenges, which anyone may ask
    /// for, and the others (a signed-in user's or a ticket's) are kept apart, at most
    /// [`MAX_CHALLENGES`] of each, the oldest of the same kind going first: a stranger asking for
    /// login options never pushes out the owner's pending ceremony.
    pub fn issue_challenge(&mut self, challenge: [u8; CHALLENGE_BYTES], purpose: ChallengePurpose, now: i64) {
        self.prune(now);
        let anyones = purpose == ChallengePurpose::Login;
        self.challenges.push(Challenge { challenge: challenge.to_vec(), purpose, expires_at: now + CHALLENGE_SECONDS });
        let same_kind = |c: &Challenge| (c.purpose == ChallengePurpose::Login) == anyones;
        while self.challenges.iter().filter(|c| same_kind(c)).count() > MAX_CHALLENGES {
            let Some(oldest) = self.challenges.iter().position(same_kind) else { break };
            self.challenges.remove(oldest);
        }
    }

    /// Takes (removes) the live challenge that `client_data_json` names, if it was issued for
    /// `purpose`: a challenge is spent by the first ceremony that presents it, whatever its result.
    pub fn take_challenge(&mut self, client_data_json: &[u8], purpose: &ChallengePurpose, now: i64) -> Option<Vec<u8>> {
        let named = serde_json::from_slice::<serde_json::Value>(client_data_json).ok()?;
        let named = b64::decode(named.get("challenge")?.as_str()?).ok()?;
        let index = self.challenges.iter().position(|c| {
            c.expires_at > now && c.challenge.len() == named.len() && bool::from(c.challenge.ct_eq(&named))
        })?;
        let challenge = self.challenges.remove(index);
        (challenge.purpose == *purpose).then_some(challenge.challenge)
    }

    /// The passkey whose credential id is `id`, by index.
    pub fn find_passkey(&self, id: &[u8]) -> Option<usize> {
        self.passkeys.iter().position(|p| p.credential.id() == id)
    }
}

/// A presented MFA ticket's parts: the account's object id and the secret.
pub fn parse_ticket(text: &str) -> Option<(String, Secret)> {
    let mut parts = text.split('.');
    let (Some(TICKET_PREFIX), Some(account), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let hex_id = account.len() == 64 && account.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret: Secret = b64::decode(secret).ok()?.try_into().ok()?;
    hex_id.then(|| (account.to_owned(), secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_data(challenge: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "type": "webauthn.get", "challenge": b64::encode(challenge) })).unwrap()
    }

    #[test]
    fn strangers_asking_for_login_options_never_push_out_the_owners_pending_ceremonies() {
        let mut mfa = Mfa::default();
        let now = 1_000;
        let ticket = [7u8; 32];
        mfa.issue_challenge([1; CHALLENGE_BYTES], ChallengePurpose::Register, now);
        mfa.issue_challenge([2; CHALLENGE_BYTES], ChallengePurpose::SecondFactor { ticket }, now);
        // Anyone may ask for passwordless options, as often as the rate limit lets them.
        for i in 0..(3 * MAX_CHALLENGES as u8) {
            mfa.issue_challenge([100 + i; CHALLENGE_BYTES], ChallengePurpose::Login, now);
        }
        let logins = mfa.challenges.iter().filter(|c| c.purpose == ChallengePurpose::Login).count();
        assert_eq!(logins, MAX_CHALLENGES, "passwordless challenges are capped among themselves");
        assert!(mfa.take_challenge(&client_data(&[1; CHALLENGE_BYTES]), &ChallengePurpose::Register, now).is_some());
        let second = ChallengePurpose::SecondFactor { ticket };
        assert!(mfa.take_challenge(&client_data(&[2; CHALLENGE_BYTES]), &second, now).is_some());
        // The oldest passwordless ones went first; the newest is there.
        let newest = [100 + 3 * MAX_CHALLENGES as u8 - 1; CHALLENGE_BYTES];
        assert!(mfa.take_challenge(&client_data(&[100; CHALLENGE_BYTES]), &ChallengePurpose::Login, now).is_none());
        assert!(mfa.take_challenge(&client_data(&newest), &ChallengePurpose::Login, now).is_some());
    }

    #[test]
    fn the_owners_own_challenges_are_capped_too() {
        let mut mfa = Mfa::default();
        for i in 0..(MAX_CHALLENGES as u8 + 3) {
            mfa.issue_challenge([i; CHALLENGE_BYTES], ChallengePurpose::Register, 5);
        }
        assert_eq!(mfa.challenges.len(), MAX_CHALLENGES);
    }
}
