//! Key sets that live elsewhere, at the edge: trusted issuers' JWK Sets, and gatehouse's own
//! managed keys in the key store. The per-isolate cache (policy in [`crate::jwt::remote`]),
//! single-flight fetches, the runtime's shared cache (Cache API, for JWKS URLs) with a bounded
//! age, and a timeout.
//!
//! The shared cache is shared with whatever else runs in the zone, so an entry found there is
//! trusted only as far as [`SharedCopy::usable`] allows: it must carry the tag of this issuer and
//! URL (stored beside the fetch time when gatehouse puts it), a fetch time no later than now, and an
//! age under the cache age. Anything else is ignored and the set is fetched from the issuer.
//!
//! Single flight in workerd: a request may not wait on another request's I/O (the runtime would
//! cancel it as "never generating a response"; this is why panva/jose turns its shared pending
//! fetch off on Workers). So one request fetches, and the others wait on timers of their own,
//! checking every few milliseconds whether the fetch has landed. A fetch that never reports back
//! (its request was cancelled) stops counting as in flight after its timeout.

use super::response::{read_capped, ReadError};
use crate::config::{Config, IssuerJwks, ManagedKeys};
use crate::error::ApiError;
use crate::issuers::TrustedIssuer;
use crate::jwt::remote::{
    shared_binding, FetchPolicy, Need, Plan, RemoteKeys, SharedCopy, SharedCopyRefused, Unusable, MAX_JWKS_BYTES,
};
use crate::jwt::{Algorithm, KeySet};
use futures_util::future::{select, Either};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use worker::{AbortController, Cache, Delay, Env, Fetch, Headers, Response};

/// The header the shared cache keeps the time of the network fetch in, so a set's age is counted
/// from there and not from when an isolate found it in the cache.
const FETCHED_AT_HEADER: &str = "x-gatehouse-fetched-at";
/// The header the shared cache keeps the entry's owner in: [`shared_binding`] of issuer and URL.
const BINDING_HEADER: &str = "x-gatehouse-jwks-for";
/// How often a waiting request looks whether the fetch it waits for has landed, milliseconds.
const POLL_MS: u64 = 5;
/// How long past its timeout a fetch still counts as in flight, milliseconds.
const INFLIGHT_GRACE_MS: u64 = 500;

thread_local! {
    /// Every remote key set this isolate uses, by JWKS URL.
    static SETS: RefCell<HashMap<String, RemoteKeys>> = RefCell::new(HashMap::new());
    /// When the fetch in flight for a URL started (milliseconds), if one is.
    static INFLIGHT: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
    /// Bumped whenever any remote set's material changes; verified-token cache entries made under
    /// an older value are verified again.
    static EPOCH: Cell<u64> = const { Cell::new(0) };
}

/// Where a key set comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A trusted issuer's JWKS URL.
    Issuer(&'a TrustedIssuer),
    /// gatehouse's own managed keys, from the key store.
    Managed(&'a ManagedKeys),
    /// gatehouse's own issuer's published set, in an edge Worker of a split deployment
    /// (`ISSUER_JWKS_URL`); the second member is the issuer (`ISSUER`).
    OwnIssuer(&'a IssuerJwks, &'a str),
}

/// A JWK Set to fetch over HTTP: whose it is, where, how, and which algorithms it may hold.
struct Published<'a> {
    issuer: &'a str,
    url: String,
    service: Option<&'a str>,
    algorithms: &'a [Algorithm],
}

/// Every algorithm gatehouse signs with: what its own issuer's set may hold.
const OWN_ALGORITHMS: [Algorithm; 3] = [Algorithm::EdDsa, Algorithm::Rs256, Algorithm::Es256];

/// The cache entry name of the managed keys (never a URL, so never confused with one).
const MANAGED_ID: &str = "gatehouse:managed-keys";

impl Source<'_> {
    fn id(&self) -> String {
        match self {
            Source::Issuer(issuer) => issuer.jwks_url.clone(),
            Source::Managed(_) => MANAGED_ID.to_owned(),
            Source::OwnIssuer(jwks, _) => jwks.url(),
        }
    }

    fn policy(&self, config: &Config) -> FetchPolicy {
        match self {
            Source::Issuer(_) | Source::OwnIssuer(..) => config.jwks_policy,
            Source::Managed(managed) => FetchPolicy {
                max_age: managed.cache_seconds,
                cooldown: config.jwks_policy.cooldown.min(managed.cache_seconds),
                max_stale: config.jwks_policy.max_stale,
            },
        }
    }

    fn name(&self) -> &str {
        match self {
            Source::Issuer(issuer) => &issuer.issuer,
            Source::Managed(_) => "the key store",
            Source::OwnIssuer(_, issuer) => issuer,
        }
    }
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

/// Whether a fetch for `url` is in flight (started less than its timeout ago).
fn in_flight(url: &str, timeout_ms: u64) -> bool {
    INFLIGHT.with(|f| {
        f.borrow()
            .get(url)
            .is_some_and(|started| super::now_millis().saturating_sub(*started) < timeout_ms + INFLIGHT_GRACE_MS)
    })
}

/// The key set of `source` if this isolate holds it, fresh, with `kid` in it: what the fast path
/// may use without fetching anything.
pub fn held(source: &Source<'_>, config: &Config, kid: &str, now: i64) -> Option<Rc<KeySet>> {
    match plan(&source.id(), Need::Kid(kid), now, &source.policy(config)) {
        Plan::Use(keys) if keys.find(kid).is_some() => Some(keys),
        _ => None,
    }
}

/// The key set of `source` for `need`, fetching it when the policy says so. A request that finds a
/// fetch in flight waits for it instead of starting another.
pub async fn keys_for(
    config: &Config,
    env: &Env,
    source: Source<'_>,
    need: Need<'_>,
    now: i64,
) -> Result<Rc<KeySet>, ApiError> {
    let url = source.id();
    let url = url.as_str();
    let (policy, timeout_ms) = (&source.policy(config), config.jwks_timeout_ms);
    let first = plan(url, need, now, policy);
    if let Plan::Use(keys) = &first {
        if matches!(need, Need::Set) || matches!(need, Need::Kid(kid) if keys.find(kid).is_some()) {
            return Ok(keys.clone());
        }
    }
    if in_flight(url, timeout_ms) {
        // Whatever the plan, the fetch in flight may bring what is missing: wait, start none.
        while in_flight(url, timeout_ms) {
            Delay::from(Duration::from_millis(POLL_MS)).await;
        }
    } else {
        match first {
            Plan::Use(keys) => return Ok(keys),
            Plan::Refuse(why) => return Err(refusal(why, source)),
            Plan::Fetch => fetch_and_record(config, env, source, need, now).await,
        }
    }
    // Planned again at the present time: the fetch just ended (or was given up on), so the cooldown
    // forbids another, unless the fetch never reported back.
    match plan(url, need, super::now_seconds(), policy) {
        Plan::Use(keys) => Ok(keys),
        Plan::Refuse(why) => Err(refusal(why, source)),
        Plan::Fetch => Err(refusal(Unusable::NoKeys, source)),
    }
}

fn refusal(why: Unusable, source: Source<'_>) -> ApiError {
    match why {
        Unusable::UnknownKid => ApiError::InvalidToken("unknown kid".into()),
        Unusable::NoKeys => ApiError::Unavailable(format!("no usable keys from {}", source.name())),
    }
}

/// The one fetch of a set: marked in flight for the others, recorded when it lands.
async fn fetch_and_record(config: &Config, env: &Env, source: Source<'_>, need: Need<'_>, now: i64) {
    let url = source.id();
    INFLIGHT.with(|f| f.borrow_mut().insert(url.clone(), super::now_millis()));
    let shared = SETS.with(|sets| {
        let sets = sets.borrow();
        let state = sets.get(&url);
        let held = state.and_then(RemoteKeys::fetched_at);
        // A set looked for because of an unknown kid or a failed signature must come from the
        // issuer itself: the shared cache may hold the very set that lacks the new key. A first
        // load, or a refresh of a set that has the kid, may take a shared copy, if it is younger
        // than the one held (an older copy could bring back a key its issuer has removed).
        let allowed = match need {
            Need::Recheck(_) => false,
            Need::Set => true,
            Need::Kid(kid) => held.is_none() || state.is_some_and(|s| s.knows(kid)),
        };
        allowed.then_some(held)
    });
    let (timeout_ms, max_age) = (config.jwks_timeout_ms, config.jwks_policy.max_age);
    let result = match source {
        Source::Issuer(issuer) => {
            let set = Published {
                issuer: &issuer.issuer,
                url: issuer.jwks_url.clone(),
                service: None,
                algorithms: &issuer.algorithms,
            };
            fetch_set(env, &set, timeout_ms, max_age, shared, now).await
        }
        Source::OwnIssuer(jwks, issuer) => {
            let service = match jwks {
                IssuerJwks::Service(binding) => Some(binding.as_str()),
                IssuerJwks::Url(_) => None,
            };
            let set = Published { issuer, url: jwks.url(), service, algorithms: &OWN_ALGORITHMS };
            fetch_set(env, &set, timeout_ms, max_age, shared, now).await
        }
        Source::Managed(_) => fetch_managed(env, timeout_ms).await.map(|keys| (keys, now)),
    };
    let done = super::now_seconds();
    match result {
        Ok((keys, fetched_at)) => {
            let changed = SETS
                .with(|sets| sets.borrow_mut().entry(url.clone()).or_default().fetch_succeeded(keys, fetched_at, done));
            if changed {
                EPOCH.with(|e| e.set(e.get().wrapping_add(1)));
            }
        }
        Err(why) => {
            SETS.with(|sets| sets.borrow_mut().entry(url.clone()).or_default().fetch_failed(done));
            worker::console_error!("key set fetch from {url} failed (keeping the keys in use): {why}");
        }
    }
    INFLIGHT.with(|f| f.borrow_mut().remove(&url));
}

/// Fetches and parses a set: from the shared cache when allowed and the copy is usable (bound to
/// this issuer and URL, fetched no later than now, younger than `max_age`), else from the issuer
/// (redirects are not followed: a 3xx is a failure; a size cap; a timeout), putting a good answer
/// in the shared cache with its tag and fetch time.
async fn fetch_set(
    env: &Env,
    set: &Published<'_>,
    timeout_ms: u64,
    max_age: i64,
    shared: Option<Option<i64>>,
    now: i64,
) -> Result<(KeySet, i64), String> {
    let (url, algorithms, issuer) = (set.url.as_str(), set.algorithms, set.issuer);
    let cache = Cache::default();
    // `shared`: whether a shared copy may serve, and when the set held now was fetched.
    if let Some(held) = shared {
        if let Ok(Some(mut cached)) = cache.get(url, false).await {
            let header = |name| cached.headers().get(name).ok().flatten();
            let (binding, fetched_at) = (header(BINDING_HEADER), header(FETCHED_AT_HEADER));
            let found = SharedCopy { binding: binding.as_deref(), fetched_at: fetched_at.as_deref() };
            match found.usable(issuer, url, held, now, max_age) {
                Ok(fetched_at) => {
                    if let Ok(keys) =
                        cached.bytes().await.map_err(|e| e.to_string()).and_then(|b| parse(&b, algorithms))
                    {
                        return Ok((keys, fetched_at));
                    }
                }
                // Too old or not newer: the normal end of a copy's life. Anything else is foreign.
                Err(SharedCopyRefused::TooOld | SharedCopyRefused::NotNewer) => {}
                Err(why) => worker::console_error!("JWKS from {url}: ignored the shared cache's copy: {why}"),
            }
        }
    }
    super::metrics::count(crate::metrics::Count::JwksFetch);
    let controller = AbortController::default();
    let signal = controller.signal();
    let download = async {
        let headers = Headers::new();
        headers.set("accept", "application/jwk-set+json, application/json").map_err(|e| e.to_string())?;
        let request = super::subrequest(url, "GET", &headers, None).map_err(|e| e.to_string())?;
        let mut response = match set.service {
            // Through the service binding: the issuer Worker of the same deployment.
            Some(binding) => {
                env.service(binding).map_err(|e| format!("{binding} binding: {e}"))?.fetch_request(request).await
            }
            None => Fetch::Request(request).send_with_signal(&signal).await,
        }
        .map_err(|e| e.to_string())?;
        if response.status_code() != 200 {
            return Err(format!("status {}", response.status_code()));
        }
        let stream = response.stream().map_err(|e| e.to_string())?;
        read_capped(stream, MAX_JWKS_BYTES).await.map_err(|e| match e {
            ReadError::TooLarge => format!("over {MAX_JWKS_BYTES} bytes"),
            ReadError::Stream(e) => e.to_string(),
        })
    };
    let Some(body) = within(timeout_ms, download).await else {
        controller.abort();
        return Err(format!("timed out after {timeout_ms} ms"));
    };
    let body = body?;
    let keys = parse(&body, algorithms)?;
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    let _ = headers.set("cache-control", &format!("public, max-age={max_age}"));
    let _ = headers.set(FETCHED_AT_HEADER, &now.to_string());
    let _ = headers.set(BINDING_HEADER, &shared_binding(issuer, url));
    if let Ok(response) = Response::from_bytes(body) {
        if let Err(e) = cache.put(url, response.with_headers(headers)).await {
            worker::console_error!("JWKS from {url}: shared cache put failed: {e}");
        }
    }
    Ok((keys, now))
}

/// The managed public keys from the key store, within the same timeout.
async fn fetch_managed(env: &Env, timeout_ms: u64) -> Result<KeySet, String> {
    let Some(answer) = within(timeout_ms, ask_key_store(env, "/public")).await else {
        return Err(format!("timed out after {timeout_ms} ms"));
    };
    // The key store's error with its detail (an `ApiError`'s `Debug` would link every variant's name).
    let answer = answer.map_err(|e| e.log_line().unwrap_or_else(|| e.parts().2))?;
    KeySet::from_public_jwks(&answer).map_err(|e| e.to_string())
}

/// A future's output if it comes within `timeout_ms`, else `None` (the future is dropped).
pub(crate) async fn within<T>(timeout_ms: u64, future: impl std::future::Future<Output = T>) -> Option<T> {
    let timer = Delay::from(Duration::from_millis(timeout_ms));
    match select(Box::pin(future), Box::pin(timer)).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}

fn parse(body: &[u8], algorithms: &[Algorithm]) -> Result<KeySet, String> {
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8".to_owned())?;
    let (keys, skipped) = KeySet::from_remote_jwks(text, algorithms).map_err(|e| e.to_string())?;
    for why in skipped {
        worker::console_log!("JWKS: skipped a key: {why}");
    }
    Ok(keys)
}

/// The binding of the managed-keys store's namespace (`KEY_MANAGEMENT=managed`).
pub const KEYS_BINDING: &str = "KEYS";
/// The name of the one key store object.
pub const STORE_NAME: &str = "signing-keys";

/// The key store's stub.
pub fn key_store(env: &Env) -> Result<worker::Stub, ApiError> {
    let namespace =
        env.durable_object(KEYS_BINDING).map_err(|e| ApiError::Server(format!("{KEYS_BINDING} binding: {e}")))?;
    Ok(namespace.id_from_name(STORE_NAME)?.get_stub()?)
}

/// Asks the key store for `path` (`/public` or `/signing`), answering its body.
pub async fn ask_key_store(env: &Env, path: &str) -> Result<String, ApiError> {
    let mut response = key_store(env)?
        .fetch_with_str(&format!("https://keys.internal{path}"))
        .await
        .map_err(|e| ApiError::Unavailable(format!("key store: {e}")))?;
    if response.status_code() != 200 {
        return Err(ApiError::Unavailable(format!("key store answered {}", response.status_code())));
    }
    Ok(response.text().await?)
}
