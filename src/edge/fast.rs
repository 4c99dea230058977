//! The fast path of the thin module entry (`js/front.mjs`): a request to a protected route whose
//! token this isolate can verify is decided here, in synchronous calls, without the workers-rs router
//! and its per-request machinery. When a decision needs I/O, the call says which (a [`Need`]): the
//! denylist record of the user (a KV read), or WebCrypto's verdict on an RS256 or ES256 signature.
//! The decision waits here, parked under a ticket with the request as it was read (a [`Waiting`]);
//! the entry does exactly that I/O and resumes it with the answer ([`resume`]), which goes on from
//! where it stopped instead of deciding the request again. Every rule stays here.
//! A token presented with the `DPoP` scheme is decided here too when its proof is EdDSA (checked in
//! Rust, with the full path's code, `web::dpop`); ES256 proofs go to the full path.
//!
//! It decides only what the full path ([`super::handle`]) would decide the same way, with the same
//! code: the route table, the canonical path and its route decision, verification, policies, the
//! whoami answer, the outgoing request to the origin (`forward::outgoing`), the response headers.
//! Everything else (every refusal, CORS, public and optional-auth routes, issuer routes, assets,
//! keys to fetch) returns `undefined`, and the entry hands the request to the full path.
//!
//! The whoami answer is handed over as text (`<request id>\n<body>`), and the entry puts it in a
//! Response with the headers [`whoami_headers`] gives it once: the same headers `whoami` and
//! `cors::finish` put on the full path's answer (an end-to-end test compares the two).

use super::{forward, whoami_body, WHOAMI_HEADERS};
use crate::config::Config;
use crate::error::ApiError;
use crate::gateway::path::CanonicalPath;
use crate::jwt::dpop::AuthScheme;
use crate::policy::Access;
use crate::policy::Decision;
use crate::routes::{self, Route};
use crate::web::denylist::{self, NowCheck, ReadRecord, DENYLIST_BINDING};
use crate::web::verify::{self, credentials, Authenticated, AwaitingVerdict, Now, VerdictAsk};
use crate::web::{canonical_path, config, config_loaded, cors, dpop, method_named, request_id, response};
use js_sys::{Object, Reflect, Uint8Array};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::{Env, Headers, Method};

/// Decides a request if it can: a string (the whoami answer, `<request id>\n<body>`), a `Request`
/// (the outgoing request to send to the origin; its `x-request-id` goes on the answer), a need (an
/// object with `need` and `ticket`: `"record"` with `binding` and `key`, or `"verdict"` with
/// `publicKey` (`webcrypto::key_object`: `jwk`, `importAlgorithm`, `verifyAlgorithm`, the same
/// object for every need of one key), `data` and `signature`; the entry does that I/O and calls
/// [`resume`] with the ticket and what it got), or `undefined` (use the full path).
#[wasm_bindgen(js_name = gatehouseFast)]
pub fn fast(request: web_sys::Request, env: Env) -> JsValue {
    into_js(decide(request, &env))
}

/// Goes on with a decision that waited for I/O (a need's `ticket`): `got` is the record's text
/// (`null`: no record) for `"record"`, the verdict (a boolean) for `"verdict"`, and `undefined` when the
/// I/O failed (the waiting decision is dropped; the entry hands the request to the full path). Answers
/// as [`fast`] does; a ticket no decision waits under (resumed already, or dropped because too many
/// waited) answers `undefined`.
#[wasm_bindgen(js_name = gatehouseResume)]
pub fn resume(ticket: u32, got: JsValue) -> JsValue {
    let Some(waiting) = WAITING.with(|w| w.borrow_mut().take(ticket)) else { return JsValue::UNDEFINED };
    into_js(waiting.resume(&got))
}

fn into_js(decided: Option<Decided>) -> JsValue {
    match decided {
        Some(Decided::Answer(answer)) => answer,
        Some(Decided::Need(need)) => need.into_js().unwrap_or(JsValue::UNDEFINED),
        None => JsValue::UNDEFINED,
    }
}

/// Decisions waiting for the entry's I/O, at most this many (a request whose decision was dropped
/// to make room gets `undefined` when it resumes, and so the full path).
const WAITING_MAX: usize = 1024;

thread_local! {
    static WAITING: RefCell<Parking<Waiting>> = RefCell::new(Parking::new(WAITING_MAX));
}

/// A decision waiting for I/O: the request as the fast path read it, and what it waits for.
struct Waiting {
    request: Read,
    stage: Stage,
}

/// What a waiting decision waits for.
enum Stage {
    /// WebCrypto's verdict on the token's signature.
    Verdict(AwaitingVerdict),
    /// The user's denylist record; the token verified.
    Record { user: Authenticated, mark: u64 },
}

impl Waiting {
    /// Goes on from where the decision stopped, with what the entry got (see [`resume`]).
    fn resume(self, got: &JsValue) -> Option<Decided> {
        let Waiting { request, stage } = self;
        let config = request.config.clone();
        let decision = config.routes.decide(&request.path)?;
        match stage {
            Stage::Verdict(awaiting) => {
                let user = verify::verdict_now(awaiting, got.as_bool()?, &config)?;
                verified(request, &decision, user)
            }
            Stage::Record { user, mark } => {
                // A string, or null for no record; anything else (a failed read) is the full path's.
                let text = if got.is_null() { None } else { Some(got.as_string()?) };
                let read = ReadRecord { sub: user.claims().sub.clone(), mark, text };
                match denylist::check_fast(&config, user.claims(), Some(&read)) {
                    NowCheck::Passes => answer(&request, &decision, &user),
                    NowCheck::NeedsRead { .. } | NowCheck::Full => None,
                }
            }
        }
    }
}

/// A decision, or the I/O it waits for.
enum Decided {
    Answer(JsValue),
    Need(Need),
}

/// The I/O a decision waits for, under the ticket its [`Waiting`] is parked under.
enum Need {
    /// The user's denylist record (`DENYLIST` namespace, `key`).
    Record { ticket: u32, key: String },
    /// WebCrypto's verdict on a signature.
    Verdict { ticket: u32, ask: VerdictAsk },
}

impl Need {
    fn into_js(self) -> Option<JsValue> {
        WORDS.with(|w| {
            let object = Object::new();
            let set = |name: &JsValue, value: &JsValue| Reflect::set(&object, name, value).ok();
            match self {
                Need::Record { ticket, key } => {
                    set(&w.need, &w.record)?;
                    set(&w.ticket, &ticket.into())?;
                    set(&w.binding, &w.denylist)?;
                    set(&w.key, &key.into())?;
                }
                Need::Verdict { ticket, ask: VerdictAsk { key, input, signature } } => {
                    set(&w.need, &w.verdict)?;
                    set(&w.ticket, &ticket.into())?;
                    set(&w.public_key, &key)?;
                    set(&w.data, &Uint8Array::from(input.as_slice()).into())?;
                    set(&w.signature, &Uint8Array::from(signature.as_slice()).into())?;
                }
            }
            Some(object.into())
        })
    }
}

/// The property names and words of a need as JavaScript strings, made once per isolate rather than
/// decoded from wasm memory on every need.
struct Words {
    need: JsValue,
    ticket: JsValue,
    record: JsValue,
    binding: JsValue,
    denylist: JsValue,
    key: JsValue,
    verdict: JsValue,
    public_key: JsValue,
    data: JsValue,
    signature: JsValue,
}

thread_local! {
    static WORDS: Words = Words {
        need: "need".into(),
        ticket: "ticket".into(),
        record: "record".into(),
        binding: "binding".into(),
        denylist: DENYLIST_BINDING.into(),
        key: "key".into(),
        verdict: "verdict".into(),
        public_key: "publicKey".into(),
        data: "data".into(),
        signature: "signature".into(),
    };
}

/// The headers of a whoami answer without its request id, as a JSON object: the whoami headers and
/// the ones `cors::finish` adds to every answer the worker makes (no CORS: the fast path serves no
/// cross-origin request).
#[wasm_bindgen(js_name = gatehouseWhoamiHeaders)]
pub fn whoami_headers() -> String {
    let all = WHOAMI_HEADERS.iter().chain(cors::OWN_SECURITY_HEADERS.iter()).chain(std::iter::once(&cors::OWN_VARY));
    let object: serde_json::Map<String, serde_json::Value> =
        all.map(|(name, value)| ((*name).to_owned(), serde_json::Value::from(*value))).collect();
    serde_json::Value::Object(object).to_string()
}

/// The answer when the origin cannot be reached for a request the fast path forwarded: the full
/// path's 503, made by the same code (`web::response::error` and `cors::finish`).
#[wasm_bindgen(js_name = gatehouseOriginDown)]
pub fn origin_down(request_id: String) -> JsValue {
    let realm = config_loaded().map(|c| c.issuer.clone()).unwrap_or_default();
    response::error(&ApiError::Unavailable("origin fetch failed".into()), &realm)
        .ok()
        .and_then(|response| cors::finish(response, None, true, false, &request_id).ok())
        .map(|response| web_sys::Response::from(response).into())
        .unwrap_or(JsValue::UNDEFINED)
}

/// The request as the fast path read it, owned, so that a decision can wait for I/O with it.
struct Read {
    config: Rc<Config>,
    req: web_sys::Request,
    headers: Headers,
    url: String,
    /// The method as it came (DPoP's `htm`), and as a method the router knows, if it is one.
    method: String,
    named: Option<Method>,
    path: CanonicalPath,
    scheme: AuthScheme,
    /// The `Authorization` header, and where its token lies in it.
    authorization: String,
    token: Range<usize>,
}

impl Read {
    fn token(&self) -> &str {
        &self.authorization[self.token.clone()]
    }

    /// Parks the decision until the entry did the I/O `need` asks for, under the ticket `need` gets.
    fn wait(self, stage: Stage, need: impl FnOnce(u32) -> Need) -> Option<Decided> {
        let ticket = WAITING.with(|w| w.borrow_mut().park(Waiting { request: self, stage }));
        Some(Decided::Need(need(ticket)))
    }
}

fn decide(req: web_sys::Request, env: &Env) -> Option<Decided> {
    // Loaded here on an isolate's first request, so that a cold start's first answer takes this
    // path too (the full path's first run costs its code's compilation). A configuration that does
    // not load is the full path's to log and answer.
    let config = config(env).ok().filter(|config| config.fast_path)?;
    // Straight on the runtime's request: workers-rs's `Request::from` would also read `request.cf`,
    // which the runtime builds on first access, and the fast path needs none of it.
    let headers = Headers(req.headers());
    // CORS answers and refusals are the full path's; so are WebSocket upgrades, whose answer (a 101
    // with its socket) the entry's plain forwarding would not carry.
    if headers.has("origin").ok()? || headers.has("upgrade").ok()? {
        return None;
    }
    let url = req.url();
    let path = canonical_path(&url).ok()?;
    let method = req.method();
    let named = method_named(&method);
    // As if an issuer were there: its paths are never decided here, with or without one.
    if routes::route(&config, named.as_ref().map(AsRef::as_ref), &path, true).ok()? != Route::Gateway {
        return None;
    }
    // Public and optional-auth routes, and every refusal, are the full path's.
    let decision = config.routes.decide(&path)?;
    if decision.access != Access::Protected {
        return None;
    }
    let authorization = headers.get("authorization").ok()??;
    let (scheme, token) = credentials(Some(&authorization), config.dpop.is_on()).ok()??;
    // `token` is a slice of `authorization`.
    let start = token.as_ptr() as usize - authorization.as_ptr() as usize;
    let token = start..start + token.len();
    let request = Read { config: config.clone(), req, headers, url, method, named, path, scheme, authorization, token };
    match verify::verify_now(request.token(), &config) {
        Now::Verified(user) => verified(request, &decision, user),
        Now::NeedsVerdict { ask, awaiting } => {
            request.wait(Stage::Verdict(awaiting), |ticket| Need::Verdict { ticket, ask })
        }
        Now::Full => None,
    }
}

/// The rest of a decision once the token verified: the denylist (gatehouse's own tokens), then
/// [`answer`].
fn verified(request: Read, decision: &Decision<'_>, user: Authenticated) -> Option<Decided> {
    if user.is_own() {
        match denylist::check_fast(&request.config, user.claims(), None) {
            NowCheck::Passes => {}
            NowCheck::NeedsRead { key, mark } => {
                return request.wait(Stage::Record { user, mark }, |ticket| Need::Record { ticket, key })
            }
            NowCheck::Full => return None,
        }
    }
    answer(&request, decision, &user)
}

/// The route's policies, how the token was presented, and the answer: the whoami body, or the
/// request to the origin.
fn answer(request: &Read, decision: &Decision<'_>, user: &Authenticated) -> Option<Decided> {
    let config = &request.config;
    decision.check(user.claims(), crate::web::now_seconds()).ok()?;
    // How the token was presented (RFC 9449 §7), last of the checks (an EdDSA proof's signature is
    // the dearest): a DPoP proof with an EdDSA key is checked here, anything else is the full path's.
    let jkt = user.claims().cnf.as_ref().map(|c| c.jkt.as_str());
    let proof = dpop::check_presentation_now(
        &request.headers,
        &request.method,
        &request.url,
        config,
        (request.scheme, request.token()),
        jkt,
        user.is_own(),
    )?;
    let rid = request_id(&request.headers);
    let answer = match &config.origin_url {
        Some(origin) => {
            let outgoing = forward::outgoing(&request.req, config, origin, &request.path, Some(user), &rid).ok()?;
            // The same JS object the wrapper holds (not `Request.clone()`, which would tee the body).
            let outgoing: &JsValue = outgoing.inner().as_ref();
            outgoing.clone()
        }
        None if request.path.as_str() == "/api/whoami" && matches!(request.named, Some(Method::Get | Method::Head)) => {
            let body = whoami_body(user).ok()?;
            JsValue::from_str(&format!("{rid}\n{body}"))
        }
        None => return None,
    };
    // Last: once a proof is remembered the request is decided here (a replay goes to the full path,
    // which refuses it the same way).
    if let Some(proof) = &proof {
        dpop::remember_now(proof)?;
    }
    Some(Decided::Answer(answer))
}

/// A bounded set of values parked under tickets until taken back once; when full, the one parked
/// first is dropped to make room. Pure (the fast path keeps its waiting decisions in one).
struct Parking<T> {
    parked: BTreeMap<u32, T>,
    next: u32,
    max: usize,
}

impl<T> Parking<T> {
    fn new(max: usize) -> Self {
        Parking { parked: BTreeMap::new(), next: 0, max }
    }

    /// Parks a value; its ticket.
    fn park(&mut self, value: T) -> u32 {
        while self.parked.len() >= self.max.max(1) {
            // The oldest, but for the wrap of the ticket counter (after 2^32 tickets).
            self.parked.pop_first();
        }
        let ticket = self.next;
        self.next = self.next.wrapping_add(1);
        self.parked.insert(ticket, value);
        ticket
    }

    /// The value parked under a ticket, once.
    fn take(&mut self, ticket: u32) -> Option<T> {
        self.parked.remove(&ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::Parking;

    #[test]
    fn a_parked_value_is_taken_back_once_under_its_own_ticket() {
        let mut parking = Parking::new(8);
        let (a, b) = (parking.park("a"), parking.park("b"));
        assert_ne!(a, b);
        assert_eq!(parking.take(b), Some("b"));
        assert_eq!(parking.take(b), None);
        assert_eq!(parking.take(a), Some("a"));
        assert_eq!(parking.take(a), None);
        assert_eq!(parking.take(a.wrapping_add(100)), None);
    }

    #[test]
    fn a_full_parking_drops_the_value_parked_first() {
        let mut parking = Parking::new(3);
        let tickets: Vec<u32> = (0..4).map(|n| parking.park(n)).collect();
        assert_eq!(parking.take(tickets[0]), None);
        assert_eq!(parking.take(tickets[1]), Some(1));
        assert_eq!(parking.take(tickets[3]), Some(3));
        assert_eq!(parking.parked.len(), 1);
    }
}
