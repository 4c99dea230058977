//! Managed signing keys: the schedule by which the key store generates, publishes, signs with and
//! retires keys. Pure: the clock and the key generator are arguments.
//!
//! Every key goes through the same life, so that no verifier ever meets a token signed by a key
//! it could not have fetched yet, and no token outlives the key that verifies it:
//!
//! ```text
//! published ── publish_ahead ──▶ signs from ── rotate_every ──▶ signs until ── retire_after ──▶ retired
//! ```
//!
//! The next key is published `publish_ahead` before the current one stops signing, and a key stays
//! published for `retire_after` (the access-token lifetime plus the clock leeway) after it stops,
//! so the last token it signed has expired by then. Only the very first key signs at once: there
//! is nothing signed before it that a verifier could be holding an older key set for.

use serde::{Deserialize, Serialize};

/// The timing of the key life above, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How long each key signs.
    pub rotate_every: i64,
    /// How long before it signs a key is published.
    pub publish_ahead: i64,
    /// How long after it stops signing a key stays published.
    pub retire_after: i64,
}

/// One managed key and its dates. `jwk` is the private key (a JWK with `d`), which never leaves
/// the key store except to sign; `Debug` shows the kid and the dates only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedKey {
    /// The key id (its RFC 7638 thumbprint).
    pub kid: String,
    /// The private JWK.
    pub jwk: serde_json::Value,
    /// When it was published.
    pub published_at: i64,
    /// When it starts signing.
    pub signs_from: i64,
    /// When it stops signing.
    pub signs_until: i64,
    /// When it is no longer published or accepted.
    pub retire_at: i64,
}

impl std::fmt::Debug for ManagedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedKey")
            .field("kid", &self.kid)
            .field("jwk", &"<redacted>")
            .field("published_at", &self.published_at)
            .field("signs_from", &self.signs_from)
            .field("signs_until", &self.signs_until)
            .field("retire_at", &self.retire_at)
            .finish()
    }
}

impl ManagedKey {
    /// A key published at `published_at` that signs from `from` on the schedule's dates.
    fn scheduled(kid: String, jwk: serde_json::Value, published_at: i64, from: i64, schedule: &Schedule) -> Self {
        ManagedKey {
            kid,
            jwk,
            published_at,
            signs_from: from,
            signs_until: from + schedule.rotate_every,
            retire_at: from + schedule.rotate_every + schedule.retire_after,
        }
    }

    /// Whether it signs at `now`.
    pub fn signs_at(&self, now: i64) -> bool {
        self.signs_from <= now && now < self.signs_until
    }

    /// Whether it is published (and accepted) at `now`.
    pub fn published_at_time(&self, now: i64) -> bool {
        self.published_at <= now && now < self.retire_at
    }
}

/// The keys of the key store, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    /// Every key not yet retired.
    pub keys: Vec<ManagedKey>,
}

impl KeyRing {
    /// Brings the ring up to date at `now`: retires keys past their date, makes sure a key signs
    /// now and that its successor is published once it is due. `generate` makes a new key's id and
    /// private JWK. Returns whether anything changed.
    pub fn advance<E>(
        &mut self,
        now: i64,
        schedule: &Schedule,
        mut generate: impl FnMut() -> Result<(String, serde_json::Value), E>,
    ) -> Result<bool, E> {
        // Worked on a copy, so a failing generator leaves the ring as it was.
        let mut next = self.clone();
        let changed = next.advance_in_place(now, schedule, &mut generate)?;
        *self = next;
        Ok(changed)
    }

    fn advance_in_place<E>(
        &mut self,
        now: i64,
        schedule: &Schedule,
        generate: &mut impl FnMut() -> Result<(String, serde_json::Value), E>,
    ) -> Result<bool, E> {
        let before = self.keys.len();
        self.keys.retain(|k| now < k.retire_at);
        let mut changed = self.keys.len() != before;
        if !self.keys.iter().any(|k| k.signs_at(now)) {
            // First start, or the store slept through whole rotations: sign at once with a new key
            // (every key before it has stopped signing; those still published stay until retired).
            let (kid, jwk) = generate()?;
            self.keys.push(ManagedKey::scheduled(kid, jwk, now, now, schedule));
            changed = true;
        }
        // The successor of the last key, published ahead of its start.
        if let Some(last) = self.keys.iter().max_by_key(|k| k.signs_until).cloned() {
            if now >= last.signs_until - schedule.publish_ahead {
                let (kid, jwk) = generate()?;
                self.keys.push(ManagedKey::scheduled(kid, jwk, now, last.signs_until, schedule));
                changed = true;
            }
        }
        Ok(changed)
    }

    /// The key that signs at `now`, if any.
    pub fn signing(&self, now: i64) -> Option<&ManagedKey> {
        self.keys.iter().find(|k| k.signs_at(now))
    }

    /// The keys published at `now`, oldest first.
    pub fn published(&self, now: i64) -> impl Iterator<Item = &ManagedKey> {
        self.keys.iter().filter(move |k| k.published_at_time(now))
    }

    /// When [`KeyRing::advance`] next has something to do: the next key to publish or retire.
    pub fn next_change(&self, schedule: &Schedule) -> Option<i64> {
        let publish_next = self.keys.iter().map(|k| k.signs_until).max().map(|until| until - schedule.publish_ahead);
        let retire = self.keys.iter().map(|k| k.retire_at).min();
        match (publish_next, retire) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Schedule = Schedule { rotate_every: 100, publish_ahead: 20, retire_after: 30 };

    fn gen(counter: &mut u32) -> impl FnMut() -> Result<(String, serde_json::Value), ()> + '_ {
        move || {
            *counter += 1;
            Ok((format!("k{counter}"), serde_json::json!({})))
        }
    }

    fn kids(ring: &KeyRing, now: i64) -> Vec<String> {
        ring.published(now).map(|k| k.kid.clone()).collect()
    }

    #[test]
    fn a_full_rotation() {
        let mut n = 0;
        let mut ring = KeyRing::default();
        assert!(ring.advance(0, &S, gen(&mut n)).unwrap());
        assert_eq!(ring.signing(0).unwrap().kid, "k1", "the first key signs at once");
        assert_eq!(ring.next_change(&S), Some(80));
        assert!(!ring.advance(79, &S, gen(&mut n)).unwrap(), "nothing to do before the successor is due");
        // Published 20 s before it signs; the old key still signs until 100.
        assert!(ring.advance(80, &S, gen(&mut n)).unwrap());
        assert_eq!(kids(&ring, 80), ["k1", "k2"]);
        assert_eq!(ring.signing(99).unwrap().kid, "k1");
        assert_eq!(ring.signing(100).unwrap().kid, "k2");
        // k1 stays published until its last token has expired: 100 + 30.
        assert_eq!(ring.next_change(&S), Some(130));
        assert!(!ring.advance(129, &S, gen(&mut n)).unwrap());
        assert_eq!(kids(&ring, 129), ["k1", "k2"]);
        assert!(ring.advance(130, &S, gen(&mut n)).unwrap());
        assert_eq!(kids(&ring, 130), ["k2"]);
        assert_eq!(ring.next_change(&S), Some(180));
        ring.advance(180, &S, gen(&mut n)).unwrap();
        assert_eq!(kids(&ring, 180), ["k2", "k3"]);
        assert_eq!(ring.signing(200).unwrap().kid, "k3");
    }

    #[test]
    fn invariants_hold_at_every_second_with_alarms_at_any_time() {
        // Whenever advance runs at least once per `publish_ahead`, at every second: exactly one key
        // signs, it is published, and every key that signed in the last `retire_after` seconds is
        // still published.
        let mut n = 0;
        let mut ring = KeyRing::default();
        let mut signed_by: Vec<(i64, String)> = Vec::new();
        for now in 0..1000 {
            if now % 7 == 0 || ring.next_change(&S).is_some_and(|t| t <= now) {
                ring.advance(now, &S, gen(&mut n)).unwrap();
            }
            let signing: Vec<_> = ring.keys.iter().filter(|k| k.signs_at(now)).collect();
            assert_eq!(signing.len(), 1, "at {now}");
            assert!(signing[0].published_at_time(now));
            signed_by.push((now, signing[0].kid.clone()));
            for (at, kid) in &signed_by {
                if now - at < S.retire_after {
                    assert!(kids(&ring, now).contains(kid), "{kid} signed at {at}, must verify at {now}");
                }
            }
            // A key signs only after it has been published for publish_ahead (but the first).
            assert!(signing[0].kid == "k1" || now - signing[0].published_at >= S.publish_ahead);
        }
    }

    #[test]
    fn a_store_that_slept_through_rotations_starts_a_new_key() {
        let mut n = 0;
        let mut ring = KeyRing::default();
        ring.advance(0, &S, gen(&mut n)).unwrap();
        ring.advance(10_000, &S, gen(&mut n)).unwrap();
        assert_eq!(ring.signing(10_000).unwrap().kid, "k2");
        assert_eq!(kids(&ring, 10_000), ["k2"]);
    }

    #[test]
    fn a_failing_generator_changes_nothing() {
        let mut ring = KeyRing::default();
        assert_eq!(
            ring.advance(0, &S, || Err::<(String, serde_json::Value), _>("no randomness")),
            Err("no randomness")
        );
        assert!(ring.keys.is_empty());
        let mut n = 0;
        ring.advance(0, &S, gen(&mut n)).unwrap();
        let before = ring.clone();
        // At 200 the first key retires and two keys are due: the failure keeps all of it as it was.
        assert!(ring.advance(200, &S, || Err::<(String, serde_json::Value), _>("no randomness")).is_err());
        assert_eq!(ring, before);
    }
}
