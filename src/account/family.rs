//! The refresh-token family state machine: rotate, grace replay, reuse, revoke, expiry. Pure: the
//! clock and the randomness are arguments, and storage is the caller's.
//!
//! A family (a session, `sid`) has exactly one live token at a time. Token secrets form a chain:
//! `next = HMAC-SHA256(family_key, presented)`, so
//! - a replay of the last retired token within the grace period recomputes the very successor it got,
//!   without storing any token in the clear;
//! - any older token of the family is recognised by walking the chain forward to the live one, which
//!   only the holder of `family_key` can do, so a forged token cannot revoke someone's session;
//! - only SHA-256 hashes of tokens are stored.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of secret randomness in a refresh token (256 bits).
pub const SECRET_LEN: usize = 32;
/// How far back the chain is walked to recognise an old token of a family (a refresh every 10
/// minutes for a 30-day session is 4320 rotations).
pub const MAX_CHAIN_WALK: u32 = 8192;

/// A token secret.
pub type Secret = [u8; SECRET_LEN];

/// SHA-256 of a token secret: what is stored.
pub fn hash(secret: &Secret) -> [u8; 32] {
    Sha256::digest(secret).into()
}

fn next_secret(family_key: &Secret, presented: &Secret) -> Secret {
    // HMAC pads a key shorter than the hash's 64-byte block with zeros (RFC 2104 §2), so the
    // 32-byte key zero-padded is the same key, given in the fixed size that cannot fail.
    let mut block = [0u8; 64];
    let (head, _) = block.split_at_mut(SECRET_LEN);
    head.copy_from_slice(family_key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(presented);
    mac.finalize().into_bytes().into()
}

/// The lifetimes a family is checked against, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Absolute session lifetime.
    pub absolute: i64,
    /// Longest gap between uses.
    pub idle: i64,
    /// How long after a rotation the retired token still returns the same pair.
    pub grace: i64,
}

/// The last rotation of a family: what a replay within the grace period gets back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// Hash of the token that was retired.
    pub retired: [u8; 32],
    /// When it was retired.
    pub at: i64,
    /// The access token issued with the successor.
    pub access_token: String,
    /// That access token's `exp`.
    pub access_exp: i64,
}

/// Why a family stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevokeReason {
    /// The user logged this session out.
    Logout,
    /// The user logged out everywhere.
    LogoutAll,
    /// A retired token was presented after the grace period.
    Reuse,
    /// The account has too many sessions; this was the least recently used.
    Evicted,
    /// One of its refresh tokens was revoked (RFC 7009).
    Revoked,
    /// A token of it came without a proof of its DPoP key (RFC 9449 §5).
    KeyMismatch,
}

/// One session. `Debug` never shows the chain key or token hashes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    /// The session id, the `sid` of its access tokens.
    pub sid: String,
    /// The chain key; never leaves the account object.
    pub key: Secret,
    /// Hash of the one live token.
    pub live: [u8; 32],
    /// Rotations so far.
    pub generation: u32,
    /// The latest rotation, for grace replays.
    pub last_rotation: Option<Rotation>,
    /// When the session began (login).
    pub created_at: i64,
    /// When a token of it was last issued.
    pub last_used: i64,
    /// Set once the family is revoked; it never yields a token again.
    pub revoked: Option<(i64, RevokeReason)>,
    /// The DPoP key the session is bound to (RFC 9449 §5: its RFC 7638 thumbprint): every refresh
    /// must come with a proof made with this key. `None`: a bearer session, bound by the first
    /// refresh that brings a proof.
    #[serde(default)]
    pub jkt: Option<String>,
    /// When the user authenticated to start the session (`auth_time`, kept by every refresh);
    /// `None` for sessions stored before it was recorded, which use `created_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// How the user authenticated (RFC 8176 `amr`, kept by every refresh); empty for sessions
    /// stored before it was recorded, which were password logins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The device that started the session, as its login reported it (for the user's list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
}

/// What a user sees of the device that started a session: the `User-Agent` it sent (cut to
/// [`Device::MAX_USER_AGENT`] characters) and the country Cloudflare placed its address in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// ISO 3166 alpha-2 country of the client's address (`request.cf.country`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl Device {
    /// The longest `User-Agent` kept, in characters.
    pub const MAX_USER_AGENT: usize = 256;

    /// A device from what the request said; control characters are dropped, the agent is cut.
    pub fn new(user_agent: Option<&str>, country: Option<&str>) -> Self {
        let clean = |text: &str, max: usize| -> Option<String> {
            let kept: String = text.chars().filter(|c| !c.is_control()).take(max).collect();
            let kept = kept.trim().to_owned();
            (!kept.is_empty()).then_some(kept)
        };
        let country = country
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(|c| c.to_ascii_uppercase());
        Device { user_agent: user_agent.and_then(|ua| clean(ua, Self::MAX_USER_AGENT)), country }
    }
}

impl std::fmt::Debug for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family")
            .field("sid", &self.sid)
            .field("key", &"<redacted>")
            .field("generation", &self.generation)
            .field("created_at", &self.created_at)
            .field("last_used", &self.last_used)
            .field("revoked", &self.revoked)
            .field("jkt", &self.jkt)
            .field("auth_time", &self.auth_time)
            .field("amr", &self.amr)
            .finish_non_exhaustive()
    }
}

/// What presenting a refresh token to its family does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The live token: the caller issues an access token and calls [`Family::commit_rotation`]
    /// with `next` as the new live token.
    Rotate { next: Secret },
    /// The token retired by the last rotation, within the grace period: the same pair again.
    Replay { next: Secret, access_token: String, access_exp: i64 },
    /// An older token: the family has been revoked (the caller persists that and denylists `sid`).
    Reuse,
    /// A token of the family (the live one, or the one retired within the grace period) with a
    /// DPoP proof of another key than the family's, or without one: someone holds the token but
    /// not the key, so the family has been revoked, as for reuse.
    KeyMismatch,
    /// Revoked, expired or unknown: nothing changes.
    Refused(Refusal),
}

/// Why a refresh was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The family was revoked before.
    Revoked,
    /// Past the absolute lifetime.
    Expired,
    /// Unused for longer than the idle lifetime.
    Idle,
    /// The token is not of this family.
    Unknown,
}

impl Family {
    /// Starts a session whose first token is `first`.
    pub fn new(sid: String, key: Secret, first: &Secret, now: i64) -> Self {
        Family {
            sid,
            key,
            live: hash(first),
            generation: 0,
            last_rotation: None,
            created_at: now,
            last_used: now,
            revoked: None,
            jkt: None,
            auth_time: None,
            amr: Vec::new(),
            device: None,
        }
    }

    /// The same session, started from `device`.
    pub fn on_device(mut self, device: Option<Device>) -> Self {
        self.device = device;
        self
    }

    /// The same session with how and when the user authenticated to start it.
    pub fn authenticated(mut self, auth_time: i64, amr: Vec<String>) -> Self {
        self.auth_time = Some(auth_time);
        self.amr = amr;
        self
    }

    /// When the user authenticated to start the session (OIDC `auth_time`).
    pub fn auth_time(&self) -> i64 {
        self.auth_time.unwrap_or(self.created_at)
    }

    /// How the user authenticated to start the session (RFC 8176 `amr`).
    pub fn amr(&self) -> Vec<String> {
        if self.amr.is_empty() {
            vec!["pwd".to_owned()]
        } else {
            self.amr.clone()
        }
    }

    /// The same session bound to a DPoP key (its thumbprint), or not bound (`None`).
    pub fn bound_to(mut self, jkt: Option<String>) -> Self {
        self.jkt = jkt;
        self
    }

    /// Whether the family can still issue tokens at `now`.
    pub fn is_active(&self, now: i64, life: &Lifetimes) -> bool {
        self.refusal(now, life).is_none()
    }

    fn refusal(&self, now: i64, life: &Lifetimes) -> Option<Refusal> {
        if self.revoked.is_some() {
            Some(Refusal::Revoked)
        } else if now >= self.created_at.saturating_add(life.absolute) {
            Some(Refusal::Expired)
        } else if now >= self.last_used.saturating_add(life.idle) {
            Some(Refusal::Idle)
        } else {
            None
        }
    }

    /// When the session ends if it keeps being used: the absolute limit or the idle limit after now.
    pub fn expires_at(&self, now: i64, life: &Lifetimes) -> i64 {
        self.created_at.saturating_add(life.absolute).min(now.saturating_add(life.idle))
    }

    /// Decides what presenting `presented` does. Only [`Outcome::Reuse`] changes the family here
    /// (it is revoked); a rotation is applied by [`Family::commit_rotation`] once its access token exists.
    pub fn present(&mut self, presented: &Secret, now: i64, life: &Lifetimes) -> Outcome {
        if let Some(refusal) = self.refusal(now, life) {
            return Outcome::Refused(refusal);
        }
        let presented_hash = hash(presented);
        if bool::from(presented_hash.ct_eq(&self.live)) {
            return Outcome::Rotate { next: next_secret(&self.key, presented) };
        }
        if let Some(rotation) = &self.last_rotation {
            if bool::from(presented_hash.ct_eq(&rotation.retired)) && now - rotation.at <= life.grace {
                return Outcome::Replay {
                    next: next_secret(&self.key, presented),
                    access_token: rotation.access_token.clone(),
                    access_exp: rotation.access_exp,
                };
            }
        }
        if self.is_ancestor(presented) {
            self.revoked = Some((now, RevokeReason::Reuse));
            return Outcome::Reuse;
        }
        Outcome::Refused(Refusal::Unknown)
    }

    /// [`Family::present`] with the DPoP key of the request (`proof_jkt`, the thumbprint of a
    /// verified proof's key, `None` without a proof). A family bound to a key rotates or replays
    /// only for a proof of that key; a token it issued presented without one, or with another
    /// key's, revokes it ([`Outcome::KeyMismatch`]). A forged or unknown token changes nothing
    /// whatever the key, so knowing a `sid` is not enough to end a session. An unbound family
    /// accepts any request; the binding of its first proof is made by
    /// [`Family::commit_rotation_bound`].
    pub fn present_with_key(
        &mut self,
        presented: &Secret,
        proof_jkt: Option<&str>,
        now: i64,
        life: &Lifetimes,
    ) -> Outcome {
        let outcome = self.present(presented, now, life);
        let key_fits = match &self.jkt {
            None => true,
            Some(bound) => proof_jkt.is_some_and(|jkt| bool::from(jkt.as_bytes().ct_eq(bound.as_bytes()))),
        };
        match outcome {
            Outcome::Rotate { .. } | Outcome::Replay { .. } if !key_fits => {
                self.revoke(now, RevokeReason::KeyMismatch);
                Outcome::KeyMismatch
            }
            other => other,
        }
    }

    /// [`Family::commit_rotation`], binding an unbound family to `proof_jkt` (trust on first use:
    /// a bearer session becomes a DPoP session at its first refresh with a proof). A bound
    /// family's key never changes.
    pub fn commit_rotation_bound(
        &mut self,
        presented: &Secret,
        next: &Secret,
        access: (String, i64),
        proof_jkt: Option<&str>,
        now: i64,
    ) {
        self.commit_rotation(presented, next, access.0, access.1, now);
        if self.jkt.is_none() {
            self.jkt = proof_jkt.map(str::to_owned);
        }
    }

    /// Whether `presented` is the live token, without changing anything (introspection).
    pub fn is_live(&self, presented: &Secret, now: i64, life: &Lifetimes) -> bool {
        self.refusal(now, life).is_none() && bool::from(hash(presented).ct_eq(&self.live))
    }

    /// Whether `presented` is a token this family ever issued: the live one, or an earlier one. A
    /// forged secret is not, so knowing a `sid` is not enough to end a session.
    pub fn issued(&self, presented: &Secret) -> bool {
        bool::from(hash(presented).ct_eq(&self.live)) || self.is_ancestor(presented)
    }

    /// Whether `presented` is an earlier token of this family (walking the chain forward to the live one).
    fn is_ancestor(&self, presented: &Secret) -> bool {
        let mut secret = *presented;
        for _ in 0..self.generation.min(MAX_CHAIN_WALK) {
            secret = next_secret(&self.key, &secret);
            if bool::from(hash(&secret).ct_eq(&self.live)) {
                return true;
            }
        }
        false
    }

    /// Applies a rotation decided by [`Family::present`]: `presented` retires, `next` goes live.
    pub fn commit_rotation(
        &mut self,
        presented: &Secret,
        next: &Secret,
        access_token: String,
        access_exp: i64,
        now: i64,
    ) {
        self.last_rotation = Some(Rotation { retired: hash(presented), at: now, access_token, access_exp });
        self.live = hash(next);
        self.generation = self.generation.saturating_add(1);
        self.last_used = now;
    }

    /// Revokes the family (idempotent: the first reason stays).
    pub fn revoke(&mut self, now: i64, reason: RevokeReason) {
        if self.revoked.is_none() {
            self.revoked = Some((now, reason));
        }
        // The replay pair must not outlive the family.
        self.last_rotation = None;
    }
}

/// A model-checking driver for [`Family`], shared by the randomized test and the fuzz target:
/// it applies operations chosen by the caller's bytes and panics when an invariant breaks.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_step_is_hmac_sha256_of_the_32_byte_key() {
        let key = [7u8; SECRET_LEN];
        let presented = [9u8; SECRET_LEN];
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
        mac.update(&presented);
        let expected: Secret = mac.finalize().into_bytes().into();
        assert_eq!(next_secret(&key, &presented), expected);
    }

    #[test]
    fn debug_never_shows_the_chain_key() {
        let family = Family::new("s".into(), [0xAB; SECRET_LEN], &[1; SECRET_LEN], 0);
        let text = format!("{family:?}");
        assert!(!text.contains("171") && !text.to_lowercase().contains("ab, "), "{text}");
        assert!(text.contains("<redacted>"));
    }
}

#[cfg(feature = "simulation")]
pub mod simulation {
    use super::*;

    /// One family, every token it ever issued, and every rotation's pair.
    #[derive(Debug)]
    pub struct Simulator {
        family: Family,
        life: Lifetimes,
        now: i64,
        issued: Vec<Secret>,
        pairs: Vec<(Secret, Secret, String)>,
    }

    impl Simulator {
        /// A fresh family at `now`.
        pub fn new(key: Secret, first: Secret, now: i64, life: Lifetimes) -> Self {
            Simulator {
                family: Family::new("sim".into(), key, &first, now),
                life,
                now,
                issued: vec![first],
                pairs: Vec::new(),
            }
        }

        /// Applies one operation: `op % 10` picks present-the-live-token (0–5), present an earlier
        /// token (6–7, `arg` picks which), present `random` (8), or revoke (9); time first moves
        /// forward by `arg % 16` seconds. Panics if an invariant breaks:
        /// - at most one live token per family (exactly the last issued one);
        /// - a revoked family never yields a token;
        /// - a replay within grace returns the very pair of that rotation.
        pub fn step(&mut self, op: u8, arg: u8, random: Secret) {
            self.now += i64::from(arg % 16);
            let token = match op % 10 {
                0..=5 => self.issued[self.issued.len() - 1],
                6..=7 => self.issued[usize::from(arg) % self.issued.len()],
                8 => random,
                _ => {
                    self.family.revoke(self.now, RevokeReason::Logout);
                    return;
                }
            };
            let was_revoked = self.family.revoked.is_some();
            match self.family.present(&token, self.now, &self.life) {
                Outcome::Rotate { next } => {
                    assert!(!was_revoked, "a revoked family yielded a token");
                    assert_eq!(hash(&token), self.family.live, "only the live token rotates");
                    let access = format!("access@{}", self.now);
                    self.family.commit_rotation(&token, &next, access.clone(), self.now + 900, self.now);
                    self.pairs.push((token, next, access));
                    self.issued.push(next);
                }
                Outcome::Replay { next, access_token, .. } => {
                    assert!(!was_revoked, "a revoked family yielded a token");
                    let pair = self.pairs.iter().rev().find(|(retired, _, _)| *retired == token);
                    let (_, successor, access) = pair.expect("a replay is of a retired token");
                    assert_eq!((&next, &access_token), (successor, access), "a replay returns the very pair");
                }
                Outcome::Reuse | Outcome::KeyMismatch => assert!(self.family.revoked.is_some(), "reuse revokes"),
                Outcome::Refused(_) => {}
            }
            let live = self.issued.iter().filter(|t| hash(t) == self.family.live).count();
            assert_eq!(live, 1, "exactly one live token");
            assert_eq!(
                hash(&self.issued[self.issued.len() - 1]),
                self.family.live,
                "the live token is the last issued"
            );
        }
    }
}
