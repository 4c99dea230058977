//! Trusted issuers' JWK Sets at the edge: the per-isolate cache (policy in [`crate::jwt::remote`]),
//! single-flight fetches, the runtime's shared cache (Cache API) with a bounded age, and a timeout.

use super::error::ApiError;
use crate::config::Config;
use crate::issuers::TrustedIssuer;
use crate::jwt::remote::{FetchPolicy, Need, Plan, RemoteKeys, Unusable, MAX_JWKS_BYTES};
use crate::jwt::{Algorithm, KeySet};
use futures_util::future::{select, Either, FutureExt, LocalBoxFuture, Shared};
use futures_util::StreamExt;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use worker::{AbortController, Cache, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response};

/// The header the shared cache keeps the time of the network fetch in, so a set's age is counted
/// from there and not from when an isolate found it in the cache.
const FETCHED_AT_HEADER: &str = "x-gatehouse-fetched-at";

thread_local! {
    /// Every remote key set this isolate uses, by JWKS URL.
    static SETS: RefCell<HashMap<String, RemoteKeys>> = RefCell::new(HashMap::new());
    /// The fetch in flight for a URL, which every waiting request shares.
    static INFLIGHT: RefCell<HashMap<String, Shared<LocalBoxFuture<'static, ()>>>> = RefCell::new(HashMap::new());
    /// Bumped whenever any remote set's material changes; verified-token cache entries made under
    /// an older value are verified again.
    static EPOCH: Cell<u64> = const { Cell::new(0) };
}

/// Changes whenever the material of a remote key set changes.
pub fn epoch() -> u64 {
    EPOCH.with(Cell::get)
}

fn plan(url: &str, need: Need<'_>, now: i64, policy: &FetchPolicy) -> Plan {
    SETS.with(|sets| match sets.borrow().get(url) {
        Some(state) => state.plan(need, now, policy),
        None => RemoteKeys::new().plan(need, now, policy),
    })
}

/// The key set of `issuer` to verify a token whose `kid` is in `need`, fetching it when the policy
/// says so. Waits for a fetch already in flight instead of starting another.
pub async fn keys_for(
    config: &Config,
    issuer: &TrustedIssuer,
    need: Need<'_>,
    now: i64,
) -> Result<Rc<KeySet>, ApiError> {
    let url = issuer.jwks_url.as_str();
    let policy = &config.jwks_policy;
    let inflight = INFLIGHT.with(|f| f.borrow().get(url).cloned());
    let first = plan(url, need, now, policy);
    let wait = match (&first, inflight) {
        (Plan::Use(keys), _) if matches!(need, Need::Kid(kid) if keys.find(kid).is_some()) => return Ok(keys.clone()),
        // Whatever the plan, a fetch in flight may bring what is missing: wait for it, start none.
        (_, Some(fetch)) => fetch,
        (Plan::Fetch, None) => start_fetch(config, issuer, need, now),
        (Plan::Use(keys), None) => return Ok(keys.clone()),
        (Plan::Refuse(why), None) => return Err(refusal(*why, issuer)),
    };
    wait.await;
    match plan(url, need, now, policy) {
        Plan::Use(keys) => Ok(keys),
        Plan::Refuse(why) => Err(refusal(why, issuer)),
        // The attempt was recorded at `now`, so the cooldown forbids another; be safe regardless.
        Plan::Fetch => Err(refusal(Unusable::NoKeys, issuer)),
    }
}

fn refusal(why: Unusable, issuer: &TrustedIssuer) -> ApiError {
    match why {
        Unusable::UnknownKid => ApiError::InvalidToken("unknown kid".into()),
        Unusable::NoKeys => ApiError::Unavailable(format!("no usable keys for issuer {}", issuer.issuer)),
    }
}

/// Starts the one fetch for `issuer`'s set and registers it for others to wait on.
fn start_fetch(
    config: &Config,
    issuer: &TrustedIssuer,
    need: Need<'_>,
    now: i64,
) -> Shared<LocalBoxFuture<'static, ()>> {
    let url = issuer.jwks_url.clone();
    SETS.with(|sets| sets.borrow_mut().entry(url.clone()).or_default().fetch_started(now));
    // A set looked for because of an unknown kid or a failed signature must come from the issuer
    // itself: the shared cache may hold the very set that lacks the new key.
    let use_shared = match need {
        Need::Recheck(_) => false,
        // No set yet, or a refresh of one that has the kid: a fresh shared copy is as good as any.
        Need::Kid(kid) => {
            SETS.with(|sets| sets.borrow().get(&url).is_none_or(|s| s.fetched_at().is_none() || s.knows(kid)))
        }
    };
    let algorithms = issuer.algorithms.clone();
    let (timeout_ms, max_age) = (config.jwks_timeout_ms, config.jwks_policy.max_age);
    let task_url = url.clone();
    let task = async move {
        let result = fetch_set(&task_url, &algorithms, timeout_ms, max_age, use_shared, now).await;
        match result {
            Ok((keys, fetched_at)) => {
                let changed = SETS.with(|sets| {
                    sets.borrow_mut().entry(task_url.clone()).or_default().fetch_succeeded(keys, fetched_at)
                });
                if changed {
                    EPOCH.with(|e| e.set(e.get().wrapping_add(1)));
                }
            }
            Err(why) => worker::console_error!("JWKS fetch from {task_url} failed (keeping the keys in use): {why}"),
        }
        INFLIGHT.with(|f| f.borrow_mut().remove(&task_url));
    }
    .boxed_local()
    .shared();
    INFLIGHT.with(|f| f.borrow_mut().insert(url, task.clone()));
    task
}

/// Fetches and parses a set: from the shared cache when allowed and fresh, else from the issuer
/// (no redirects, a size cap, a timeout), putting a good answer in the shared cache.
async fn fetch_set(
    url: &str,
    algorithms: &[Algorithm],
    timeout_ms: u64,
    max_age: i64,
    use_shared: bool,
    now: i64,
) -> Result<(KeySet, i64), String> {
    let cache = Cache::default();
    if use_shared {
        if let Ok(Some(mut cached)) = cache.get(url, false).await {
            let fetched_at = cached.headers().get(FETCHED_AT_HEADER).ok().flatten().and_then(|v| v.parse::<i64>().ok());
            if let (Some(fetched_at), Ok(body)) = (fetched_at, cached.bytes().await) {
                if now - fetched_at < max_age {
                    if let Ok(keys) = parse(&body, algorithms) {
                        return Ok((keys, fetched_at));
                    }
                }
            }
        }
    }
    let controller = AbortController::default();
    let signal = controller.signal();
    let download = async {
        let headers = Headers::new();
        headers.set("accept", "application/jwk-set+json, application/json").map_err(|e| e.to_string())?;
        let mut init = RequestInit::new();
        init.with_method(Method::Get).with_headers(headers).with_redirect(RequestRedirect::Error);
        let request = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
        let mut response = Fetch::Request(request).send_with_signal(&signal).await.map_err(|e| e.to_string())?;
        if response.status_code() != 200 {
            return Err(format!("status {}", response.status_code()));
        }
        let mut body = Vec::new();
        let mut stream = response.stream().map_err(|e| e.to_string())?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("over {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    let timer = Delay::from(Duration::from_millis(timeout_ms));
    let body = match select(Box::pin(download), Box::pin(timer)).await {
        Either::Left((result, _)) => result?,
        Either::Right(((), _)) => {
            controller.abort();
            return Err(format!("timed out after {timeout_ms} ms"));
        }
    };
    let keys = parse(&body, algorithms)?;
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    let _ = headers.set("cache-control", &format!("public, max-age={max_age}"));
    let _ = headers.set(FETCHED_AT_HEADER, &now.to_string());
    if let Ok(response) = Response::from_bytes(body) {
        if let Err(e) = cache.put(url, response.with_headers(headers)).await {
            worker::console_error!("JWKS from {url}: shared cache put failed: {e}");
        }
    }
    Ok((keys, now))
}

fn parse(body: &[u8], algorithms: &[Algorithm]) -> Result<KeySet, String> {
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8".to_owned())?;
    let (keys, skipped) = KeySet::from_remote_jwks(text, algorithms).map_err(|e| e.to_string())?;
    for why in skipped {
        worker::console_log!("JWKS: skipped a key: {why}");
    }
    Ok(keys)
}
