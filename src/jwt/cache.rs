//! A bounded cache of verified tokens, keyed by SHA-256 of the exact token bytes: a token seen before
//! skips the signature check. Pure; the edge keeps one per isolate. Time claims are re-checked on
//! every hit, an entry made before the key sets last changed is not served (a key removed from a
//! set stops its tokens at once), and revocation is not cached here.

use super::claims::AccessClaims;
use super::token::ValidationError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::rc::Rc;

/// Entries kept at most; when full, expired entries go first, then everything.
pub const MAX_ENTRIES: usize = 4096;

/// What a verification established about a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Its validated claims.
    pub claims: AccessClaims,
    /// Whose keys verified it: `None` for gatehouse's own, else the index of the trusted issuer.
    pub issuer: Option<usize>,
}

#[derive(Debug)]
struct Entry {
    verified: Rc<Verified>,
    epoch: u64,
}

/// Verified tokens by token hash.
#[derive(Debug, Default)]
pub struct VerifiedCache {
    entries: HashMap<TokenKey, Entry>,
}

/// A token's key in the cache: SHA-256 of its exact bytes. Made once per verification and kept
/// from the look-up to the entry (a token waiting for WebCrypto's verdict keeps it meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// The key of a token.
    pub fn of(token: &str) -> Self {
        TokenKey(Sha256::digest(token.as_bytes()).into())
    }
}

impl VerifiedCache {
    /// An empty cache.
    pub fn new() -> Self {
        VerifiedCache::default()
    }

    /// What a token verified before established, if its time claims still pass at `now` and the
    /// key sets are still those of `epoch`; an entry that fails either is dropped and the caller
    /// verifies the token afresh (and gets the error).
    pub fn get(&mut self, key: &TokenKey, now: i64, leeway: i64, epoch: u64) -> Option<Rc<Verified>> {
        let entry = self.entries.get(key)?;
        if entry.epoch == epoch && time_ok(&entry.verified.claims, now, leeway).is_ok() {
            Some(Rc::clone(&entry.verified))
        } else {
            self.entries.remove(key);
            None
        }
    }

    /// Remembers a token that has just been fully verified under the key sets of `epoch`.
    pub fn insert(&mut self, key: TokenKey, verified: &Rc<Verified>, now: i64, leeway: i64, epoch: u64) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, e| e.epoch == epoch && time_ok(&e.verified.claims, now, leeway).is_ok());
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(key, Entry { verified: Rc::clone(verified), epoch });
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The time rules of [`super::Validator::validate`], for claims that passed it once.
fn time_ok(c: &AccessClaims, now: i64, leeway: i64) -> Result<(), ValidationError> {
    if c.exp <= now.saturating_sub(leeway) {
        return Err(ValidationError::Expired);
    }
    if c.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
        return Err(ValidationError::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64, nbf: Option<i64>) -> Rc<Verified> {
        Rc::new(Verified { claims: plain(exp, nbf), issuer: None })
    }

    fn plain(exp: i64, nbf: Option<i64>) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: "u".into(),
            aud: vec!["a".into()],
            exp,
            iat: Some(0),
            nbf,
            jti: None,
            sid: None,
            client_id: None,
            scope: String::new(),
            roles: vec![],
            email: None,
            email_verified: None,
            cnf: None,
            auth_time: None,
            amr: Vec::new(),
            acr: None,
        }
    }

    #[test]
    fn hits_only_the_exact_token_and_only_while_it_is_valid() {
        let mut cache = VerifiedCache::new();
        cache.insert(TokenKey::of("a.b.c"), &claims(1000, None), 100, 30, 0);
        assert_eq!(cache.get(&TokenKey::of("a.b.c"), 100, 30, 0).map(|v| v.claims.exp), Some(1000));
        assert!(cache.get(&TokenKey::of("a.b.d"), 100, 30, 0).is_none(), "another token never hits");
        assert!(cache.get(&TokenKey::of("a.b.c "), 100, 30, 0).is_none());
        // exp is re-checked with the same leeway rule: served while exp > now − leeway.
        assert!(cache.get(&TokenKey::of("a.b.c"), 1029, 30, 0).is_some());
        assert!(cache.get(&TokenKey::of("a.b.c"), 1030, 30, 0).is_none(), "expired: not served");
        assert!(cache.is_empty(), "and dropped");
    }

    #[test]
    fn entries_from_before_a_key_change_are_not_served() {
        let mut cache = VerifiedCache::new();
        cache.insert(TokenKey::of("t"), &claims(1000, None), 100, 30, 7);
        assert!(cache.get(&TokenKey::of("t"), 100, 30, 7).is_some());
        assert!(cache.get(&TokenKey::of("t"), 100, 30, 8).is_none(), "the key sets changed since");
        assert!(cache.get(&TokenKey::of("t"), 100, 30, 7).is_none(), "and the entry is gone");
    }

    #[test]
    fn not_yet_valid_entries_are_not_served() {
        let mut cache = VerifiedCache::new();
        cache.insert(TokenKey::of("t"), &claims(1000, Some(200)), 180, 30, 0);
        // Served once nbf is at or before now + leeway.
        assert!(cache.get(&TokenKey::of("t"), 170, 30, 0).is_some());
        assert!(cache.get(&TokenKey::of("t"), 169, 30, 0).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = VerifiedCache::new();
        for i in 0..MAX_ENTRIES + 10 {
            cache.insert(TokenKey::of(&format!("t{i}")), &claims(1000, None), 100, 30, 0);
            assert!(cache.len() <= MAX_ENTRIES);
        }
        // Expired entries are the first to go.
        let mut cache = VerifiedCache::new();
        for i in 0..MAX_ENTRIES {
            cache.insert(TokenKey::of(&format!("old{i}")), &claims(50, None), 10, 0, 0);
        }
        cache.insert(TokenKey::of("live"), &claims(1000, None), 100, 0, 0);
        assert_eq!(cache.len(), 1);
    }
}
