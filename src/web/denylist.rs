//! The denylist read at the edge: one KV read of the user's revocation record per request, or its
//! answer from this isolate's last `REVOCATION_CACHE_SECONDS` (README "Revocation at the edge").
//! Fails closed: 503 when KV cannot be read, 500 when the record is unreadable.

use crate::config::Config;
use crate::error::ApiError;
use crate::jwt::AccessClaims;
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

/// The denylist check of one of gatehouse's own tokens from this isolate's cached read only:
/// `Some(())` if it passes, `None` if there is no fresh read (or it refuses: the full path answers that).
pub fn passes_now(config: &Config, claims: &AccessClaims) -> Option<()> {
    let now = worker::Date::now().as_millis();
    let lookup = RECORDS.with(|c| c.borrow().get(&claims.sub, now, config.revocation_cache_ms))?;
    revoked(&lookup, claims).ok()
}

/// The denylist check: one KV read, or its answer from this isolate's last
/// `REVOCATION_CACHE_SECONDS` (see [`RecordCache`]). Fails closed: 503 when KV cannot be read, 500
/// when the record is unreadable.
pub async fn check(env: &Env, config: &Config, claims: &AccessClaims) -> Result<(), ApiError> {
    let now = worker::Date::now().as_millis();
    let cached = RECORDS.with(|c| c.borrow().get(&claims.sub, now, config.revocation_cache_ms));
    let lookup = match cached {
        Some(lookup) => lookup,
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
