//! A bounded cache of verified tokens, keyed by SHA-256 of the exact token bytes: a token seen before
//! skips the signature check. Pure; the edge keeps one per isolate. Time claims are re-checked on
//! every hit, and revocation is not cached (the edge still reads the denylist on every request).

use super::claims::AccessClaims;
use super::token::ValidationError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Entries kept at most; when full, expired entries go first, then everything.
pub const MAX_ENTRIES: usize = 4096;

/// Verified claims by token hash.
#[derive(Debug, Default)]
pub struct VerifiedCache {
    entries: HashMap<[u8; 32], AccessClaims>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedCache {
    /// An empty cache.
    pub fn new() -> Self {
        VerifiedCache::default()
    }

    /// The claims of a token verified before, if its time claims still pass at `now`; an entry that
    /// no longer passes is dropped and the caller verifies the token afresh (and gets the error).
    pub fn get(&mut self, token: &str, now: i64, leeway: i64) -> Option<AccessClaims> {
        let k = key(token);
        let claims = self.entries.get(&k)?;
        if time_ok(claims, now, leeway).is_ok() {
            Some(claims.clone())
        } else {
            self.entries.remove(&k);
            None
        }
    }

    /// Remembers a token that has just been fully verified.
    pub fn insert(&mut self, token: &str, claims: &AccessClaims, now: i64, leeway: i64) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, c| time_ok(c, now, leeway).is_ok());
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(key(token), claims.clone());
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

    fn claims(exp: i64, nbf: Option<i64>) -> AccessClaims {
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
        }
    }

    #[test]
    fn hits_only_the_exact_token_and_only_while_it_is_valid() {
        let mut cache = VerifiedCache::new();
        cache.insert("a.b.c", &claims(1000, None), 100, 30);
        assert_eq!(cache.get("a.b.c", 100, 30).map(|c| c.exp), Some(1000));
        assert!(cache.get("a.b.d", 100, 30).is_none(), "another token never hits");
        assert!(cache.get("a.b.c ", 100, 30).is_none());
        // exp is re-checked with the same leeway rule: served while exp > now − leeway.
        assert!(cache.get("a.b.c", 1029, 30).is_some());
        assert!(cache.get("a.b.c", 1030, 30).is_none(), "expired: not served");
        assert!(cache.is_empty(), "and dropped");
    }

    #[test]
    fn not_yet_valid_entries_are_not_served() {
        let mut cache = VerifiedCache::new();
        cache.insert("t", &claims(1000, Some(200)), 180, 30);
        // Served once nbf is at or before now + leeway.
        assert!(cache.get("t", 170, 30).is_some());
        assert!(cache.get("t", 169, 30).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = VerifiedCache::new();
        for i in 0..MAX_ENTRIES + 10 {
            cache.insert(&format!("t{i}"), &claims(1000, None), 100, 30);
            assert!(cache.len() <= MAX_ENTRIES);
        }
        // Expired entries are the first to go.
        let mut cache = VerifiedCache::new();
        for i in 0..MAX_ENTRIES {
            cache.insert(&format!("old{i}"), &claims(50, None), 10, 0);
        }
        cache.insert("live", &claims(1000, None), 100, 0);
        assert_eq!(cache.len(), 1);
    }
}
