//! Worker glue shared by the edge and the issuer routers: the per-isolate configuration, request ids,
//! the one wrapper every request goes through ([`serve`]: error answers, CORS and security headers),
//! bodies and JSON answers, token verification, the denylist read, other key sets, WebCrypto.

pub mod cors;
pub mod denylist;
pub mod dpop;
pub mod limits;
pub mod metrics;
pub mod remote_keys;
pub mod response;
pub mod verify;
pub mod webcrypto;

use crate::audit::AuditLine;
use crate::config::Config;
use crate::error::ApiError;
use crate::gateway::path::{self, CanonicalPath};
use crate::metrics::RequestFacts;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use worker::{Env, Headers, Method, Request, Response};

thread_local! {
    /// The configuration, parsed on the first request of the isolate.
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
    /// This isolate's request-id prefix (random, made on first use) and counter.
    static REQUEST_IDS: Cell<(Option<u64>, u64)> = const { Cell::new((None, 0)) };
    /// The verified subject of requests being refused, by request id, for their refusal line.
    static SUBJECTS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// At most this many subjects wait for their refusal line (a request that never reaches it, which
/// `serve` makes impossible short of a crash, cannot grow the list for ever).
const MAX_SUBJECTS: usize = 256;

/// Notes the verified subject of a request that is about to be refused (a policy refusal), so its
/// refusal line names it. Keyed by the request id: requests interleave in an isolate.
pub fn note_subject(rid: &str, sub: &str) {
    SUBJECTS.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() >= MAX_SUBJECTS {
            s.remove(0);
        }
        s.push((rid.to_owned(), sub.to_owned()));
    });
}

fn take_subject(rid: &str) -> Option<String> {
    SUBJECTS.with(|s| {
        let mut s = s.borrow_mut();
        let at = s.iter().position(|(id, _)| id == rid)?;
        Some(s.swap_remove(at).1)
    })
}

/// Whether an error answer is a refusal worth a log line: every 4xx but 404 and 405 (routing, not a
/// decision about the caller).
fn is_refusal(status: u16) -> bool {
    (400..500).contains(&status) && status != 404 && status != 405
}

/// `GET /healthz`: answered by every Worker itself (crate::health).
pub fn health() -> Result<Reply, ApiError> {
    Ok(response::json(&crate::health::body(), 200, "no-store")?.into())
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        ApiError::Server(e.to_string())
    }
}

/// The configuration of this isolate, parsing it on first use. Failures are not cached: they are
/// logged and answered 500 on every request until the deployment is fixed.
pub fn config(env: &Env) -> Result<Rc<Config>, ApiError> {
    if let Some(config) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(config);
    }
    let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
    let secret = |name: &str| env.secret(name).ok().map(|v| v.to_string());
    let config =
        Rc::new(Config::from_lookup(&var, &secret).map_err(|e| ApiError::Server(format!("bad configuration: {e}")))?);
    CONFIG.with(|c| *c.borrow_mut() = Some(config.clone()));
    Ok(config)
}

/// The configuration if a request of this isolate has loaded it (the fast path loads it with
/// [`config`] too, but only the full path logs and answers what is wrong with it).
pub fn config_loaded() -> Option<Rc<Config>> {
    CONFIG.with(|c| c.borrow().clone())
}

/// The request's method, if it is one of the standard ones (RFC 9110 §9 and PATCH). workers-rs
/// reads any other method (WebDAV's `PROPFIND`, say) as GET, so the raw name is checked here first.
pub fn method_of(req: &Request) -> Option<Method> {
    method_named(&req.inner().method())
}

/// The standard method of this name, if it is one (see [`method_of`]).
pub fn method_named(raw: &str) -> Option<Method> {
    let method = Method::from(raw.to_owned());
    (method.as_ref() == raw).then_some(method)
}

/// `Ok(route)` if the method is one of `allowed`, else 405 with `Allow`.
pub fn only<R>(method: Option<&Method>, allowed: &[Method], allow: &'static str, route: R) -> Result<R, ApiError> {
    if method.is_some_and(|m| allowed.contains(m)) {
        Ok(route)
    } else {
        Err(ApiError::MethodNotAllowed(allow))
    }
}

/// A response and whether the worker made it or the origin (or another Worker) did.
pub struct Reply {
    /// The response.
    pub response: Response,
    /// Made by this worker: it gets the security headers and `Vary: Origin`.
    pub own: bool,
    /// Readable by any origin (the JWKS, the OAuth metadata).
    pub public: bool,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Reply { response, own: true, public: false }
    }
}

impl Reply {
    /// A response another party made, passed on as it came (plus the request id and CORS).
    pub fn passed_on(response: Response) -> Self {
        Reply { response, own: false, public: false }
    }

    /// A response of the worker's that any origin may read.
    pub fn public(response: Response) -> Self {
        Reply { response, own: true, public: true }
    }
}

/// Serves one request: every error becomes its JSON response here, and every response gets its
/// CORS and security headers here. `dispatch` gets the request, the configuration and the request id.
/// Every refusal writes its one JSON log line here ([`AuditLine::refusal`]), and every request its
/// one metrics data point when the `METRICS` binding is there ([`metrics::write`]).
pub async fn serve<F, Fut>(
    req: Request,
    env: Env,
    ctx: Option<worker::Context>,
    dispatch: F,
) -> worker::Result<Response>
where
    F: FnOnce(Request, Env, Rc<Config>, String) -> Fut,
    Fut: Future<Output = Result<Reply, ApiError>>,
{
    let started = now_millis();
    let rid = request_id(req.headers());
    let _background = ctx.map(|ctx| Background::register(&rid, ctx));
    let url = req.inner().url();
    let config = config(&env);
    let realm = config.as_ref().map(|c| c.issuer.clone()).unwrap_or_default();
    let origin = config.as_ref().ok().and_then(|c| cors::allowed_origin(c, &req));
    let metered = metrics::enabled(&env);
    let reply = match &config {
        Ok(config) if cors::is_preflight(&req) => cors::preflight(config, &req).map(Reply::from),
        Ok(config) => dispatch(req, env.clone(), config.clone(), rid.clone()).await,
        Err(e) => Err(e.clone()),
    };
    let (status, code) = match &reply {
        Ok(reply) => (reply.response.status_code(), ""),
        Err(error) => (error.parts().0, error.parts().1),
    };
    let subject = take_subject(&rid);
    let route = match (&config, is_refusal(status) || metered) {
        (Ok(config), true) => {
            canonical_path(&url).map(|path| crate::routes::label(config, &path, true).to_owned()).unwrap_or_default()
        }
        _ => String::new(),
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(error) => {
            if is_refusal(status) {
                let reason: String = error.parts().2.chars().take(160).collect();
                let mut line = AuditLine::refusal(&route, status, code, &rid, started as i64 / 1000).reason(&reason);
                if let Some(sub) = &subject {
                    line = line.subject(sub);
                }
                worker::console_log!("{}", line.to_json());
            }
            Reply::from(response::error(&error, &realm)?)
        }
    };
    if metered {
        let latency_ms = now_millis().saturating_sub(started) as f64;
        let facts = RequestFacts {
            worker: crate::health::WORKER,
            route: &route,
            status,
            error: code,
            latency_ms,
            fast_path: false,
        };
        metrics::write(&env, &facts);
    }
    match cors::finish(reply.response, origin.as_deref(), reply.own, reply.public, &rid) {
        Ok(response) => Ok(response),
        Err(error) => response::error(&error, &realm),
    }
}

thread_local! {
    /// The `fetch` contexts of the requests in flight in this isolate, by request id, so a route
    /// can hand work to [`in_background`].
    static CONTEXTS: std::cell::RefCell<Vec<(String, Rc<worker::Context>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A request's context in [`CONTEXTS`] while it is served.
struct Background {
    rid: String,
    ctx: Rc<worker::Context>,
}

impl Background {
    fn register(rid: &str, ctx: worker::Context) -> Self {
        let ctx = Rc::new(ctx);
        CONTEXTS.with(|c| c.borrow_mut().push((rid.to_owned(), ctx.clone())));
        Background { rid: rid.to_owned(), ctx }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        CONTEXTS.with(|c| c.borrow_mut().retain(|(rid, ctx)| !(rid == &self.rid && Rc::ptr_eq(ctx, &self.ctx))));
    }
}

/// Runs `work` after the answer of request `rid` is sent (`waitUntil`), so its time never shows in
/// the answer: a mail sent for one email and not for another cannot be told apart by timing.
///
/// `waitUntil` alone is not enough: a future starts at once, and what it does before its first
/// `await` runs on the isolate's thread ahead of the answer. Asking a Durable Object that is not
/// loaded is such a step, and costlier for an email nobody registered (a new object) than for a
/// known one: under `wrangler dev`, where the objects share the Worker's thread, the 202 of
/// `/auth/password/forgot` took 22 to 28 % longer for an unknown email on CI (2026-12-05). With the
/// work started 1 ms after the answer, a known email's answer was 10 to 17 % slower instead (its
/// work, the link and the mail, overlapped the answer's way out); from 40 ms on, the two differ by
/// 0.3 to 2.2 % (tests/e2e/lifecycle.test.mjs). Nothing waits on this work but its mail.
pub fn in_background(rid: &str, work: impl Future<Output = ()> + 'static) {
    let ctx = CONTEXTS.with(|c| c.borrow().iter().rev().find(|(r, _)| r == rid).map(|(_, ctx)| ctx.clone()));
    let work = async move {
        worker::Delay::from(std::time::Duration::from_millis(AFTER_ANSWER_MS)).await;
        work.await;
    };
    match ctx {
        Some(ctx) => ctx.wait_until(work),
        None => wasm_bindgen_futures::spawn_local(work),
    }
}

/// How long background work waits after the answer before it starts (see [`in_background`]).
const AFTER_ANSWER_MS: u64 = 40;

/// The request id: Cloudflare's `cf-ray` when it is there and plain, else 128 random bits in hex.
pub fn request_id(headers: &Headers) -> String {
    let ray = headers.get("cf-ray").ok().flatten();
    match ray {
        Some(ray)
            if !ray.is_empty() && ray.len() <= 64 && ray.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            ray
        }
        // 64 random bits per isolate and a counter: unique, and no randomness to fetch per request.
        _ => REQUEST_IDS.with(|ids| {
            let (prefix, count) = ids.get();
            let prefix = prefix.unwrap_or_else(|| {
                let mut bytes = [0u8; 8];
                // Without randomness the ids are still unique enough for logs: fall back to the clock.
                if getrandom::getrandom(&mut bytes).is_err() {
                    bytes = now_millis().to_be_bytes();
                }
                u64::from_be_bytes(bytes)
            });
            ids.set((Some(prefix), count.wrapping_add(1)));
            format!("{prefix:016x}{count:016x}")
        }),
    }
}

/// The canonical path of a request URL (`Request.url` as the runtime gives it, without a second
/// parse): what is routed, matched and forwarded. A path some origin would read otherwise is 400
/// (docs/GATEWAY.md).
pub fn canonical_path(url: &str) -> Result<CanonicalPath, ApiError> {
    let raw = path::url_path(url).unwrap_or("/");
    path::canonicalize(raw).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

/// A subrequest gatehouse makes: `method` (by name, so that WebDAV's and others pass as they are),
/// `headers`, the body if any, and redirects handed back rather than followed. Built on web-sys's
/// `RequestInit`: workers-rs's would also convert Cloudflare's `cf` options, which gatehouse never
/// sets, and that conversion is about 4 KB of every Worker's wasm.
pub fn subrequest(
    url: &str,
    method: &str,
    headers: &Headers,
    body: Option<&wasm_bindgen::JsValue>,
) -> Result<Request, worker::Error> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(headers.as_ref());
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if let Some(body) = body {
        init.set_body(body);
    }
    Ok(Request::from(web_sys::Request::new_with_str_and_init(url, &init)?))
}

/// Seconds since the epoch, from the runtime's clock.
pub fn now_seconds() -> i64 {
    (now_millis() / 1000) as i64
}

/// Milliseconds since the epoch, from the runtime's clock: `Date.now()`, which makes no `Date`
/// object (`worker::Date::now()` makes one per call: a JS allocation and two crossings, on every
/// request of the fast path).
pub fn now_millis() -> u64 {
    js_sys::Date::now() as u64
}
