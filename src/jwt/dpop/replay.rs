//! A bounded per-isolate memory of DPoP proofs already accepted, so a proof's `jti` works once (RFC 9449 §11.1).
//!
//! It remembers each accepted proof by SHA-256(`jkt` ‖ 0 ‖ `jti`) until its `iat` window ends
//! ([`super::VerifiedProof::valid_until`]); after that the verifier refuses the proof as stale
//! anyway, so forgetting it opens nothing. Only verified proofs enter, so nobody can fill the
//! memory with another key's `jti` values.
//!
//! When full, it first forgets the entries whose window has ended; if every entry is still live it
//! fails closed: the new proof is refused with [`super::ProofError::ReplayCacheFull`] (answer it
//! as a temporary failure, e.g. 503 with `Retry-After`) rather than evicting a live entry, which
//! would let that proof be replayed. With `capacity` entries and a window of `w` seconds, one
//! isolate takes `capacity / w` DPoP requests per second at least before that happens.
//!
//! The bound across isolates: each isolate has its own memory, so a proof accepted by one isolate
//! can be presented once more to each other isolate while its window lasts. Strict single use
//! needs a shared store (a Durable Object keyed by `jkt`).

use super::{ProofError, VerifiedProof};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeSet, HashSet};

/// The default number of proofs remembered (about 100 bytes each).
pub const DEFAULT_REPLAY_CAPACITY: usize = 10_000;

/// The accepted proofs whose window is still open, bounded to a fixed number.
#[derive(Debug, Clone)]
pub struct JtiReplayCache {
    capacity: usize,
    seen: HashSet<[u8; 32]>,
    /// The same entries, ordered by the last second of their window, for cheap expiry.
    by_expiry: BTreeSet<(i64, [u8; 32])>,
}

impl Default for JtiReplayCache {
    fn default() -> Self {
        JtiReplayCache::new(DEFAULT_REPLAY_CAPACITY)
    }
}

fn entry_id(proof: &VerifiedProof) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(proof.jkt().as_bytes());
    h.update([0]);
    h.update(proof.jti().as_bytes());
    h.finalize().into()
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
    /// remembers it; refuses it as [`ProofError::Replayed`] after that, or as
    /// [`ProofError::ReplayCacheFull`] when every slot holds a live proof.
    pub fn check_and_remember(&mut self, proof: &VerifiedProof, now: i64) -> Result<(), ProofError> {
        self.purge(now);
        let id = entry_id(proof);
        if self.seen.contains(&id) {
            return Err(ProofError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(ProofError::ReplayCacheFull);
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
    fn when_full_it_refuses_rather_than_forgets_live_proofs() {
        let mut cache = JtiReplayCache::new(3);
        for (i, iat) in [NOW - 50, NOW - 10, NOW].into_iter().enumerate() {
            assert_eq!(cache.check_and_remember(&proof("k", &i.to_string(), iat), NOW), Ok(()));
        }
        assert_eq!(cache.check_and_remember(&proof("k", "new", NOW), NOW), Err(ProofError::ReplayCacheFull));
        // Every remembered proof is still refused: nothing was evicted.
        assert_eq!(cache.check_and_remember(&proof("k", "0", NOW - 50), NOW), Err(ProofError::Replayed));
        // Eleven seconds on, the oldest window has ended and its slot is free again.
        assert_eq!(cache.check_and_remember(&proof("k", "new", NOW + 11), NOW + 11), Ok(()));
        assert_eq!(cache.check_and_remember(&proof("k", "1", NOW - 10), NOW + 11), Err(ProofError::Replayed));
        assert_eq!(cache.len(), 3);
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
}
