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
//!   counts from when a fetch ends, so one whose request was cancelled holds nothing back;
//! - a copy from the runtime's shared cache ([`shared_copy`]) is used only if it was stored for this
//!   very issuer and URL, was fetched no later than now and less than `max_age` ago, and is newer
//!   than the set held; no fetch time ever lies in the future, so nothing outlives `max_stale`.

use super::b64;
use super::keys::KeySet;
use sha2::{Digest, Sha256};
use std::fmt;
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
/// How far ahead of this isolate's clock a shared copy's fetch time may be (another machine's
/// clock), in seconds. The copy is then taken as fetched now, never later.
pub const SHARED_COPY_SKEW: i64 = 5;

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
        // A fetch time from the future would keep the set past max_stale and hold refreshes off.
        self.fetched_at = fetched_at.min(now);
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

/// The tag a shared cache entry carries to say whose set it is: base64url of SHA-256 over the
/// issuer and the JWKS URL, each length-prefixed (so no two pairs share a tag). Header-safe whatever
/// the issuer string holds.
pub fn shared_binding(issuer: &str, url: &str) -> String {
    let mut hash = Sha256::new();
    for part in [issuer, url] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    b64::encode(hash.finalize())
}

/// Why a copy of a set found in the runtime's shared cache is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedCopyRefused {
    /// It carries no tag, or the tag of another issuer or URL (stored by something else).
    NotBound,
    /// It carries no fetch time, or one that is not a number.
    NoFetchTime,
    /// Its fetch time is more than [`SHARED_COPY_SKEW`] seconds ahead of now.
    FromTheFuture,
    /// It was fetched `max_age` seconds ago or earlier.
    TooOld,
    /// It is not newer than the set held (it could bring back a key its issuer removed).
    NotNewer,
}

impl fmt::Display for SharedCopyRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SharedCopyRefused::NotBound => "not stored for this issuer and URL",
            SharedCopyRefused::NoFetchTime => "no fetch time",
            SharedCopyRefused::FromTheFuture => "fetch time in the future",
            SharedCopyRefused::TooOld => "older than the cache age",
            SharedCopyRefused::NotNewer => "not newer than the set held",
        })
    }
}

/// What a shared cache entry says about itself: its tag and its fetch time, as stored in its headers.
#[derive(Debug, Clone, Copy)]
pub struct SharedCopy<'a> {
    /// The entry's [`shared_binding`] tag, if any.
    pub binding: Option<&'a str>,
    /// The entry's fetch time (seconds since the epoch, decimal), if any.
    pub fetched_at: Option<&'a str>,
}

impl SharedCopy<'_> {
    /// Whether the copy may stand for the set of `issuer` at `url` at `now`, given the fetch time of
    /// the set held (if any), and if so the fetch time to record for it (never later than `now`).
    pub fn usable(
        &self,
        issuer: &str,
        url: &str,
        held: Option<i64>,
        now: i64,
        max_age: i64,
    ) -> Result<i64, SharedCopyRefused> {
        if self.binding != Some(shared_binding(issuer, url).as_str()) {
            return Err(SharedCopyRefused::NotBound);
        }
        let fetched_at = self
            .fetched_at
            .filter(|t| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(SharedCopyRefused::NoFetchTime)?;
        if fetched_at > now.saturating_add(SHARED_COPY_SKEW) {
            return Err(SharedCopyRefused::FromTheFuture);
        }
        let fetched_at = fetched_at.min(now);
        if now - fetched_at >= max_age {
            return Err(SharedCopyRefused::TooOld);
        }
        if held.is_some_and(|held| fetched_at <= held) {
            return Err(SharedCopyRefused::NotNewer);
        }
        Ok(fetched_at)
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

    const ISS: &str = "https://idp.example";
    const URL: &str = "https://idp.example/jwks";

    fn copy<'a>(binding: &'a str, fetched_at: &'a str) -> SharedCopy<'a> {
        SharedCopy { binding: Some(binding), fetched_at: Some(fetched_at) }
    }

    #[test]
    fn a_shared_copy_is_used_only_if_it_is_bound_to_the_issuer_and_the_url() {
        let mine = shared_binding(ISS, URL);
        assert_eq!(copy(&mine, "1000").usable(ISS, URL, None, 1010, 600), Ok(1000));
        let refused = |c: SharedCopy<'_>| c.usable(ISS, URL, None, 1010, 600);
        assert_eq!(refused(SharedCopy { binding: None, fetched_at: Some("1000") }), Err(SharedCopyRefused::NotBound));
        let other_issuer = shared_binding("https://other.example", URL);
        assert_eq!(refused(copy(&other_issuer, "1000")), Err(SharedCopyRefused::NotBound));
        let other_url = shared_binding(ISS, "https://idp.example/other-jwks");
        assert_eq!(refused(copy(&other_url, "1000")), Err(SharedCopyRefused::NotBound));
        // Length prefixes: moving text between the issuer and the URL changes the tag.
        assert_ne!(shared_binding("ab", "c"), shared_binding("a", "bc"));
        assert_eq!(refused(copy("", "1000")), Err(SharedCopyRefused::NotBound));
    }

    #[test]
    fn a_shared_copy_needs_a_plain_fetch_time_no_later_than_now_and_younger_than_max_age() {
        let mine = shared_binding(ISS, URL);
        let at = |t: &str, now: i64| copy(&mine, t).usable(ISS, URL, None, now, 600);
        for bad in ["", "x", "-5", "+5", " 5", "1e3", "99999999999999999999"] {
            assert_eq!(at(bad, 1000), Err(SharedCopyRefused::NoFetchTime), "{bad:?}");
        }
        assert_eq!(copy(&mine, "5").usable(ISS, URL, None, 10, 600).map(|_| ()), Ok(()));
        assert_eq!(
            SharedCopy { binding: Some(&mine), fetched_at: None }.usable(ISS, URL, None, 10, 600),
            Err(SharedCopyRefused::NoFetchTime)
        );
        // The future: a little skew is taken as now; beyond it, refused.
        assert_eq!(at("1005", 1000), Ok(1000), "within the skew, recorded as fetched now");
        assert_eq!(at("1006", 1000), Err(SharedCopyRefused::FromTheFuture));
        assert_eq!(at("4000000000", 1000), Err(SharedCopyRefused::FromTheFuture));
        // The age cap.
        assert_eq!(at("401", 1000), Ok(401));
        assert_eq!(at("400", 1000), Err(SharedCopyRefused::TooOld));
        assert_eq!(at("0", 1000), Err(SharedCopyRefused::TooOld));
    }

    #[test]
    fn a_shared_copy_must_be_newer_than_the_set_held() {
        let mine = shared_binding(ISS, URL);
        assert_eq!(copy(&mine, "900").usable(ISS, URL, Some(899), 1000, 600), Ok(900));
        assert_eq!(copy(&mine, "900").usable(ISS, URL, Some(900), 1000, 600), Err(SharedCopyRefused::NotNewer));
        // Within the skew the copy counts as fetched now: newer than a set held from a second ago.
        assert_eq!(copy(&mine, "1003").usable(ISS, URL, Some(999), 1000, 600), Ok(1000));
        assert_eq!(copy(&mine, "1003").usable(ISS, URL, Some(1000), 1000, 600), Err(SharedCopyRefused::NotNewer));
    }

    #[test]
    fn a_fetch_time_in_the_future_never_extends_a_sets_life() {
        let mut r = RemoteKeys::new();
        r.fetch_succeeded(set(&["a"]), 1_000_000, 100);
        assert_eq!(r.fetched_at(), Some(100), "recorded as fetched when the fetch ended");
        assert!(matches!(r.plan(Need::Kid("a"), 700, &P), Plan::Fetch), "refreshed at max_age");
        r.fetch_failed(700);
        assert!(matches!(r.plan(Need::Kid("a"), 3700, &P), Plan::Fetch));
        r.fetch_failed(3700);
        assert!(matches!(r.plan(Need::Kid("a"), 3701, &P), Plan::Refuse(Unusable::NoKeys)), "gone after max_stale");
    }

    #[test]
    fn a_clock_that_goes_back_does_not_block_fetching_forever() {
        let mut r = RemoteKeys::new();
        r.fetch_failed(1000);
        assert!(r.may_fetch(10, &P));
    }
}
