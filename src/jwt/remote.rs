//! The fetch policy for a key set that lives elsewhere (a trusted issuer's JWKS URL, or the managed
//! key store): when to use the cached set, when to fetch, and what a failed fetch leaves behind.
//! Pure: the clock is an argument and the fetching is the caller's (`web::remote_keys`).
//!
//! What it guarantees, whatever the network does:
//! - a set is used for `max_age` seconds, then refreshed; a refresh that fails keeps the old set
//!   (a failed or hanging fetch never poisons the cache) for at most `max_stale` seconds in all;
//! - an unknown `kid`, or a signature that fails under the cached key of its `kid` (the issuer
//!   reused a `kid` for new material), triggers a fetch, but at most one per `cooldown` seconds,
//!   however many tokens ask, so tokens with made-up `kid`s cannot make the edge hammer the issuer;
//! - the caller fetches single-flight: one fetch at a time per set, whoever is waiting; the cooldown
//!   counts from when a fetch ends, so one whose request was cancelled holds nothing back.

use super::keys::KeySet;
use std::rc::Rc;

/// How long a fetched set is used before it is refreshed, by default (seconds).
pub const DEFAULT_MAX_AGE: i64 = 600;
/// The least time between two fetches of one set, by default (seconds).
pub const DEFAULT_COOLDOWN: i64 = 30;
/// How long a set may be used while every refresh fails, by default (seconds).
pub const DEFAULT_MAX_STALE: i64 = 24 * 3600;
/// How long a fetch may take before it is abandoned, by default (milliseconds).
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// The largest JWK Set accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
pub use super::keys::MAX_REMOTE_KEYS;

/// The timing rules of [`RemoteKeys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Seconds a fetched set is used before a refresh.
    pub max_age: i64,
    /// Least seconds between two fetches.
    pub cooldown: i64,
    /// Seconds after the last good fetch when the set stops being used at all.
    pub max_stale: i64,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy { max_age: DEFAULT_MAX_AGE, cooldown: DEFAULT_COOLDOWN, max_stale: DEFAULT_MAX_STALE }
    }
}

/// Why no key could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// There is no usable set (never fetched, or too stale), and the cooldown forbids a fetch now.
    NoKeys,
    /// The set has no key with this `kid`, and the cooldown forbids looking again now.
    UnknownKid,
}

/// What to do for one token.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Verify with this set.
    Use(Rc<KeySet>),
    /// Fetch the set (single-flight), record the result, and plan again.
    Fetch,
    /// Refuse the token.
    Refuse(Unusable),
}

/// Why a token (or a request) asks for keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// The whole set, as it is (to publish it).
    Set,
    /// The key named by this `kid`.
    Kid(&'a str),
    /// The signature failed under the cached key for this `kid`: look again in case it was rotated.
    Recheck(&'a str),
}

/// One cached key set and its fetch history.
#[derive(Debug, Clone, Default)]
pub struct RemoteKeys {
    keys: Option<Rc<KeySet>>,
    fetched_at: i64,
    last_attempt: Option<i64>,
    generation: u64,
}

impl RemoteKeys {
    /// Nothing fetched yet.
    pub fn new() -> Self {
        RemoteKeys::default()
    }

    /// The set, if it may still be used at `now`.
    fn usable(&self, now: i64, policy: &FetchPolicy) -> Option<&Rc<KeySet>> {
        self.keys.as_ref().filter(|_| now - self.fetched_at <= policy.max_stale)
    }

    /// Whether the cooldown allows a fetch at `now`.
    pub fn may_fetch(&self, now: i64, policy: &FetchPolicy) -> bool {
        self.last_attempt.is_none_or(|at| now - at >= policy.cooldown || now < at)
    }

    /// Decides what a token that needs `need` should do at `now`.
    pub fn plan(&self, need: Need<'_>, now: i64, policy: &FetchPolicy) -> Plan {
        let may_fetch = self.may_fetch(now, policy);
        let Some(keys) = self.usable(now, policy) else {
            return if may_fetch { Plan::Fetch } else { Plan::Refuse(Unusable::NoKeys) };
        };
        let refresh_due = now - self.fetched_at >= policy.max_age;
        match need {
            _ if refresh_due && may_fetch => Plan::Fetch,
            Need::Set => Plan::Use(keys.clone()),
            Need::Kid(kid) if keys.find(kid).is_some() => Plan::Use(keys.clone()),
            Need::Kid(_) if may_fetch => Plan::Fetch,
            Need::Kid(_) => Plan::Refuse(Unusable::UnknownKid),
            Need::Recheck(_) if may_fetch => Plan::Fetch,
            Need::Recheck(_) => Plan::Use(keys.clone()),
        }
    }

    /// Records a fetch that failed (or timed out) at `now`: the old set stays, and the cooldown
    /// counts from here. A fetch that never reports back (its request was cancelled) records
    /// nothing, so it cannot hold the next fetch back; the caller's in-flight marker, which
    /// expires, keeps fetches single-flight meanwhile.
    pub fn fetch_failed(&mut self, now: i64) {
        self.last_attempt = Some(now);
    }

    /// Records a good fetch finished at `now` of a set fetched from its source at `fetched_at`
    /// (earlier, for a copy from the shared cache). Returns whether the key material changed
    /// (callers drop what they verified with the old set).
    pub fn fetch_succeeded(&mut self, keys: KeySet, fetched_at: i64, now: i64) -> bool {
        self.last_attempt = Some(now);
        let changed = self.keys.as_ref().is_none_or(|old| old.public_jwks() != keys.public_jwks());
        if changed {
            self.generation += 1;
        }
        self.keys = Some(Rc::new(keys));
        self.fetched_at = fetched_at;
        changed
    }

    /// Counts how many times the material changed (0 before the first fetch).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the cached set (however old) has a key with this `kid`.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.as_ref().is_some_and(|keys| keys.find(kid).is_some())
    }

    /// When the set in use was fetched, if there is one.
    pub fn fetched_at(&self) -> Option<i64> {
        self.keys.as_ref().map(|_| self.fetched_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::PublicKey;

    fn set(kids: &[&str]) -> KeySet {
        let keys = kids.iter().map(|kid| PublicKey::ed25519(kid, &ed_point()).expect("key")).collect();
        KeySet::from_public_keys(keys).expect("set")
    }

    fn ed_point() -> [u8; 32] {
        // The RFC 8032 §7.1 test 1 public key.
        let hex = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
        }
        out
    }

    const P: FetchPolicy = FetchPolicy { max_age: 600, cooldown: 30, max_stale: 3600 };

    #[test]
    fn first_use_fetches_and_a_known_kid_uses_the_cache() {
        let mut r = RemoteKeys::new();
        assert!(matches!(r.plan(Need::Kid("a"), 100, &P), Plan::Fetch));
        r.fetch_succeeded(set(&["a"]), 100, 100);
        assert!(matches!(r.plan(Need::Kid("a"), 101, &P), Plan::Use(_)));
        assert!(matches!(r.plan(Need::Kid("a"), 699, &P), Plan::Use(_)));
        // Refreshed at max_age.
        assert!(matches!(r.plan(Need::Kid("a"), 700, &P), Plan::Fetch));
    }

    #[test]
    fn unknown_kids_fetch_at_most_once_per_cooldown() {
        let mut r = RemoteKeys::new();
        r.fetch_succeeded(set(&["a"]), 100, 100);
        // Within the cooldown of the first fetch: refused without a fetch.
        assert!(matches!(r.plan(Need::Kid("b"), 129, &P), Plan::Refuse(Unusable::UnknownKid)));
        assert!(matches!(r.plan(Need::Kid("b"), 130, &P), Plan::Fetch));
        r.fetch_succeeded(set(&["a", "b"]), 131, 131);
        assert!(matches!(r.plan(Need::Kid("b"), 131, &P), Plan::Use(_)));
        // However many ask after it, no second fetch before 161.
        for t in 131..161 {
            assert!(matches!(r.plan(Need::Kid("zzz"), t, &P), Plan::Refuse(Unusable::UnknownKid)), "{t}");
        }
        assert!(matches!(r.plan(Need::Kid("zzz"), 161, &P), Plan::Fetch));
    }

    #[test]
    fn a_failed_fetch_keeps_the_old_keys_until_max_stale() {
        let mut r = RemoteKeys::new();
        r.fetch_succeeded(set(&["a"]), 0, 0);
        // Refresh due, the fetch fails (nothing recorded but the attempt): the old set still works.
        assert!(matches!(r.plan(Need::Kid("a"), 600, &P), Plan::Fetch));
        r.fetch_failed(600);
        assert!(matches!(r.plan(Need::Kid("a"), 601, &P), Plan::Use(_)));
        // ... until max_stale after the last good fetch.
        assert!(matches!(r.plan(Need::Kid("a"), 3600, &P), Plan::Fetch));
        r.fetch_failed(3600);
        assert!(matches!(r.plan(Need::Kid("a"), 3601, &P), Plan::Refuse(Unusable::NoKeys)));
        // A failed first fetch: nothing to use, and no second fetch within the cooldown.
        let mut r = RemoteKeys::new();
        r.fetch_failed(0);
        assert!(matches!(r.plan(Need::Kid("a"), 10, &P), Plan::Refuse(Unusable::NoKeys)));
        assert!(matches!(r.plan(Need::Kid("a"), 30, &P), Plan::Fetch));
        // A fetch that never reported back recorded nothing: the next request may fetch at once.
        assert!(matches!(RemoteKeys::new().plan(Need::Kid("a"), 0, &P), Plan::Fetch));
    }

    #[test]
    fn a_bad_signature_rechecks_once_per_cooldown_and_material_changes_count() {
        let mut r = RemoteKeys::new();
        assert!(r.fetch_succeeded(set(&["a"]), 0, 0));
        assert_eq!(r.generation(), 1);
        assert!(matches!(r.plan(Need::Recheck("a"), 10, &P), Plan::Use(_)), "cooldown: no refetch");
        assert!(matches!(r.plan(Need::Recheck("a"), 30, &P), Plan::Fetch));
        assert!(!r.fetch_succeeded(set(&["a"]), 30, 30), "same material: no change");
        assert_eq!(r.generation(), 1);
        assert!(r.fetch_succeeded(set(&["a", "b"]), 31, 31));
        assert_eq!(r.generation(), 2);
    }

    #[test]
    fn the_whole_set_is_fetched_once_and_refreshed_at_max_age() {
        let mut r = RemoteKeys::new();
        assert!(matches!(r.plan(Need::Set, 0, &P), Plan::Fetch));
        r.fetch_failed(0);
        assert!(matches!(r.plan(Need::Set, 1, &P), Plan::Refuse(Unusable::NoKeys)));
        r.fetch_succeeded(set(&["a"]), 1, 1);
        assert!(matches!(r.plan(Need::Set, 600, &P), Plan::Use(_)));
        assert!(matches!(r.plan(Need::Set, 601, &P), Plan::Fetch));
    }

    #[test]
    fn a_clock_that_goes_back_does_not_block_fetching_forever() {
        let mut r = RemoteKeys::new();
        r.fetch_failed(1000);
        assert!(r.may_fetch(10, &P));
    }
}
