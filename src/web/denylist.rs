//! The denylist read at the edge: one KV read of the user's revocation record per request, or its
//! answer from this isolate's last `REVOCATION_CACHE_SECONDS` (docs/ARCHITECTURE.md "Revocation at the edge").
//! Fails closed: 503 when KV cannot be read, 500 when the record is unreadable.

use super::metrics;
use crate::config::Config;
use crate::error::ApiError;
use crate::jwt::AccessClaims;
use crate::metrics::Count;
use crate::revocation::{self, Lookup, RecordCache, RevocationRecord};
use std::cell::RefCell;
use std::rc::Rc;
use worker::Env;

/// The KV namespace holding revocation records.
pub const DENYLIST_BINDING: &str = "DENYLIST";

thread_local! {
    /// Denylist reads this isolate made in the last `REVOCATION_CACHE_SECONDS`.
    static RECORDS: RefCell<RecordCache> = RefCell::new(RecordCache::new());
}

/// The fast path's denylist check of one of gatehouse's own tokens.
pub enum NowCheck {
    /// The token is not revoked.
    Passes,
    /// No fresh read: the entry reads `key` from the `DENYLIST` namespace itself and the check runs again
    /// with the text (a [`ReadRecord`] with this `mark`).
    NeedsRead { key: String, mark: u64 },
    /// Revoked, or the record is unreadable: the full path answers (and reads again).
    Full,
}

/// A denylist read the thin entry made for the fast path.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    /// Whose record.
    pub sub: String,
    /// The cache's mark when the read began ([`RecordCache::mark`]).
    pub mark: u64,
    /// The record's text, `None` when there is none.
    pub text: Option<String>,
}

/// The denylist check of the fast path: from this isolate's cached read, or from a read the entry
/// made (kept like the full path keeps its reads, unless the isolate revoked something of the user's
/// meanwhile), else [`NowCheck::NeedsRead`].
pub fn check_fast(config: &Config, claims: &AccessClaims, read: Option<&ReadRecord>) -> NowCheck {
    let now = super::now_millis();
    let cached = RECORDS.with(|c| c.borrow().get(&claims.sub, now, config.revocation_cache_ms));
    let lookup = match (cached, read.filter(|r| r.sub == claims.sub)) {
        (Some(lookup), _) => {
            metrics::count(Count::DenylistCacheHit);
            lookup
        }
        (None, Some(read)) => {
            // The read the entry made for this request.
            metrics::count(Count::KvRead);
            let lookup = match &read.text {
                None => None,
                Some(text) => match RevocationRecord::parse(text) {
                    Ok(record) => Some(Rc::new(record)),
                    Err(_) => return NowCheck::Full,
                },
            };
            RECORDS.with(|c| {
                c.borrow_mut().insert_unless_forgotten(
                    read.mark,
                    &claims.sub,
                    lookup.clone(),
                    now,
                    config.revocation_cache_ms,
                )
            });
            lookup
        }
        (None, None) => {
            let mark = RECORDS.with(|c| c.borrow().mark());
            return NowCheck::NeedsRead { key: revocation::kv_key(&claims.sub), mark };
        }
    };
    match revoked(&lookup, claims) {
        Ok(()) => NowCheck::Passes,
        Err(_) => NowCheck::Full,
    }
}

/// The denylist check: one KV read, or its answer from this isolate's last
/// `REVOCATION_CACHE_SECONDS` (see [`RecordCache`]). Fails closed: 503 when KV cannot be read, 500
/// when the record is unreadable.
pub async fn check(env: &Env, config: &Config, claims: &AccessClaims) -> Result<(), ApiError> {
    let now = super::now_millis();
    let cached = RECORDS.with(|c| c.borrow().get(&claims.sub, now, config.revocation_cache_ms));
    let lookup = match cached {
        Some(lookup) => {
            metrics::count(Count::DenylistCacheHit);
            lookup
        }
        None => {
            let mark = RECORDS.with(|c| c.borrow().mark());
            let lookup = read_record(env, &claims.sub).await?;
            RECORDS.with(|c| {
                c.borrow_mut().insert_unless_forgotten(
                    mark,
                    &claims.sub,
                    lookup.clone(),
                    now,
                    config.revocation_cache_ms,
                )
            });
            lookup
        }
    };
    revoked(&lookup, claims)
}

/// The denylist check with a read of its own, never a cached answer (introspection: the
/// authoritative answer, at its low rate).
pub async fn check_now(env: &Env, claims: &AccessClaims) -> Result<(), ApiError> {
    revoked(&read_record(env, &claims.sub).await?, claims)
}

/// What a read of the user's denylist record says of these claims.
fn revoked(lookup: &Lookup, claims: &AccessClaims) -> Result<(), ApiError> {
    match lookup {
        Some(record) => record.check(claims).map_err(|why| ApiError::InvalidToken(why.to_string())),
        None => Ok(()),
    }
}

async fn read_record(env: &Env, sub: &str) -> Result<Lookup, ApiError> {
    let kv = env.kv(DENYLIST_BINDING).map_err(|e| ApiError::Server(format!("DENYLIST binding: {e}")))?;
    metrics::count(Count::KvRead);
    let stored = kv
        .get(&revocation::kv_key(sub))
        .text()
        .await
        .map_err(|e| ApiError::Unavailable(format!("denylist read failed: {e}")))?;
    let Some(text) = stored else { return Ok(None) };
    let record = RevocationRecord::parse(&text)
        .map_err(|_| ApiError::Server(format!("denylist record for {sub} is unreadable")))?;
    Ok(Some(Rc::new(record)))
}

/// Drops this isolate's cached denylist answer for a user, after it revoked something of theirs
/// (logout, logout-all, RFC 7009, or a refresh refused, which may have been a reuse).
pub fn forget(sub: &str) {
    RECORDS.with(|c| c.borrow_mut().forget(sub));
}
