//! A bounded per-isolate memory of DPoP proofs already accepted, so a proof's `jti` works once (RFC 9449 §11.1).
//!
//! It remembers each accepted proof by the first 64 bits of SHA-256(`jkt` ‖ 0 ‖ `jti`) until its
//! `iat` window ends ([`super::VerifiedProof::valid_until`]); after that the verifier refuses the
//! proof as stale anyway, so forgetting it opens nothing. Only verified proofs enter, so nobody can
//! fill the memory with another key's `jti` values (and a collision of ids can only refuse a
//! proof, never accept one twice).
//!
//! When full, it first forgets the entries whose window has ended. If every entry is still live, a
//! new proof is admitted only if its window ends later than that of every remembered one, which
//! is then forgotten to make room; any other proof is refused
//! ([`super::ProofError::ReplayCacheFull`]). A forgotten proof can still never pass twice: every
//! entry left ends no earlier than it, only expiry frees room, so the memory stays full (and
//! refuses it by that rule) until one of them has expired, and by then the forgotten proof's own
//! window has ended and the verifier refuses it as stale. What shrinks under load is the age a
//! proof may have: with `capacity` entries and `rate` proofs a second, a proof made
//! `capacity / rate` seconds before it arrives still passes (100 000 / 2 000 = 50 s, within the
//! 60 s window), so a client with a sound clock is not refused, and the memory never grows past
//! `capacity` (about 40 bytes each).
//!
//! The bound across isolates: each isolate has its own memory, so a proof accepted by one isolate
//! can be presented once more to each other isolate while its window lasts. Strict single use
//! needs a shared store (a Durable Object keyed by `jkt`).

use super::{ProofError, VerifiedProof};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeSet, HashSet};

/// The default number of proofs remembered (about 4 MB): a full 60 s window up to about 1 600
/// proofs a second on one isolate, a shorter one beyond (see the module documentation).
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// The accepted proofs whose window is still open, bounded to a fixed number.
#[derive(Debug, Clone)]
pub struct JtiReplayCache {
    capacity: usize,
    seen: HashSet<u64>,
    /// The same entries, ordered by the last second of their window, for cheap expiry.
    by_expiry: BTreeSet<(i64, u64)>,
}

impl Default for JtiReplayCache {
    fn default() -> Self {
        JtiReplayCache::new(DEFAULT_REPLAY_CAPACITY)
    }
}

fn entry_id(proof: &VerifiedProof) -> u64 {
    let mut h = Sha256::new();
    h.update(proof.jkt().as_bytes());
    h.update([0]);
    h.update(proof.jti().as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(first)
}

impl JtiReplayCache {
    /// An empty memory for at most `capacity` proofs (at least one).
    pub fn new(capacity: usize) -> Self {
        JtiReplayCache { capacity: capacity.max(1), seen: HashSet::new(), by_expiry: BTreeSet::new() }
    }

    /// How many proofs are remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Forgets the proofs whose window ended before `now`.
    pub fn purge(&mut self, now: i64) {
        while let Some(&(valid_until, id)) = self.by_expiry.first() {
            if valid_until >= now {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&id);
        }
    }

    /// Accepts a verified proof the first time its (`jkt`, `jti`) is seen in its window, and
    /// remembers it; refuses it as [`ProofError::Replayed`] after that. When the memory is full of
    /// live proofs, a proof whose window ends later than every remembered one's takes the place of
    /// the one that ends first, and any other is refused as [`ProofError::ReplayCacheFull`].
    pub fn check_and_remember(&mut self, proof: &VerifiedProof, now: i64) -> Result<(), ProofError> {
        self.purge(now);
        let id = entry_id(proof);
        if self.seen.contains(&id) {
            return Err(ProofError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            if let Some(&(valid_until, oldest)) = self.by_expiry.first() {
                if proof.valid_until() <= valid_until {
                    return Err(ProofError::ReplayCacheFull);
                }
                self.by_expiry.pop_first();
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(id);
        self.by_expiry.insert((proof.valid_until(), id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::Algorithm;

    const NOW: i64 = 1_767_225_600;

    fn proof(jkt: &str, jti: &str, iat: i64) -> VerifiedProof {
        VerifiedProof {
            jkt: jkt.into(),
            jti: jti.into(),
            iat,
            valid_until: iat + 60,
            alg: Algorithm::Es256,
            htu: "https://a.test/".into(),
            nonce: None,
        }
    }

    #[test]
    fn a_proof_is_accepted_once_within_its_window() {
        let mut cache = JtiReplayCache::new(10);
        let p = proof("k1", "j1", NOW);
        assert_eq!(cache.check_and_remember(&p, NOW), Ok(()));
        assert_eq!(cache.check_and_remember(&p, NOW), Err(ProofError::Replayed));
        assert_eq!(cache.check_and_remember(&p, NOW + 60), Err(ProofError::Replayed), "last second of the window");
        // Past the window the verifier refuses it as stale; the memory may forget it.
        cache.purge(NOW + 61);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_same_jti_under_another_key_is_another_proof() {
        let mut cache = JtiReplayCache::new(10);
        assert_eq!(cache.check_and_remember(&proof("k1", "j", NOW), NOW), Ok(()));
        assert_eq!(cache.check_and_remember(&proof("k2", "j", NOW), NOW), Ok(()));
        // The separator keeps ("k1", "j") and ("k", "1j") apart.
        assert_eq!(cache.check_and_remember(&proof("k", "1j", NOW), NOW), Ok(()));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn when_full_a_forgotten_proof_is_still_refused() {
        let mut cache = JtiReplayCache::new(3);
        for (i, iat) in [NOW - 50, NOW - 10, NOW].into_iter().enumerate() {
            assert_eq!(cache.check_and_remember(&proof("k", &i.to_string(), iat), NOW), Ok(()));
        }
        // Full of live proofs: a new, fresher proof is accepted, and the one whose window ends
        // first (iat NOW − 50) is forgotten...
        assert_eq!(cache.check_and_remember(&proof("k", "new", NOW), NOW), Ok(()));
        assert_eq!(cache.len(), 3);
        // ...but it is still refused if it comes back, and so is any proof as old as it.
        assert_eq!(cache.check_and_remember(&proof("k", "0", NOW - 50), NOW), Err(ProofError::ReplayCacheFull));
        assert_eq!(cache.check_and_remember(&proof("k", "other", NOW - 50), NOW), Err(ProofError::ReplayCacheFull));
        // The remembered ones are refused as replays.
        assert_eq!(cache.check_and_remember(&proof("k", "1", NOW - 10), NOW), Err(ProofError::Replayed));
        assert_eq!(cache.check_and_remember(&proof("k", "new", NOW), NOW), Err(ProofError::Replayed));
        // A proof older than everything remembered, arriving when full: refused, and nothing evicted for it.
        assert_eq!(cache.check_and_remember(&proof("k", "older", NOW - 45), NOW), Err(ProofError::ReplayCacheFull));
        assert_eq!(cache.check_and_remember(&proof("k", "1", NOW - 10), NOW), Err(ProofError::Replayed));
    }

    #[test]
    fn no_proof_is_ever_accepted_twice_within_its_window() {
        // A small memory under a stream of proofs, each replayed later at every step: none passes twice.
        let mut cache = JtiReplayCache::new(50);
        let mut accepted: Vec<VerifiedProof> = Vec::new();
        for second in 0..300i64 {
            let now = NOW + second;
            for n in 0..5 {
                // Clients whose clocks lag by up to 40 s.
                let p = proof("k", &format!("{second}-{n}"), now - (second * 7 + n) % 41);
                if cache.check_and_remember(&p, now).is_ok() {
                    accepted.push(p);
                }
            }
            for old in accepted.iter().filter(|p| p.valid_until() >= now) {
                assert!(cache.check_and_remember(old, now).is_err(), "{} accepted twice", old.jti());
            }
            assert!(cache.len() <= 50);
        }
        assert!(accepted.len() > 300, "most proofs pass: {}", accepted.len());
    }

    #[test]
    fn memory_stays_bounded_under_a_steady_stream() {
        let mut cache = JtiReplayCache::new(1000);
        // 10 proofs a second for 10 minutes with a 60 s window: at most ~610 live at once.
        for second in 0..600 {
            for n in 0..10 {
                let p = proof("k", &format!("{second}-{n}"), NOW + second);
                assert_eq!(cache.check_and_remember(&p, NOW + second), Ok(()));
            }
            assert!(cache.len() <= 610, "second {second}: {}", cache.len());
        }
    }

    #[test]
    fn beyond_capacity_fresh_proofs_still_pass() {
        // 100 proofs a second into a memory of 1000: the window it can keep is 10 s, and proofs
        // made a second before they arrive all pass.
        let mut cache = JtiReplayCache::new(1000);
        for second in 0..300 {
            for n in 0..100 {
                let p = proof("k", &format!("{second}-{n}"), NOW + second - 1);
                assert_eq!(cache.check_and_remember(&p, NOW + second), Ok(()), "second {second}");
            }
            assert!(cache.len() <= 1000);
        }
        // A proof made 20 s ago does not: the memory no longer reaches that far back.
        assert_eq!(
            cache.check_and_remember(&proof("k", "late", NOW + 299 - 20), NOW + 299),
            Err(ProofError::ReplayCacheFull)
        );
    }
}
