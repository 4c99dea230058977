//! The fast path of the thin module entry (`js/front.mjs`): a request to a protected route whose
//! token this isolate can verify is decided here, in synchronous calls, without the workers-rs router
//! and its per-request machinery. When a decision needs I/O, the call says which (a [`Need`]): the
//! denylist record of the user (a KV read), or WebCrypto's verdict on an RS256 or ES256 signature.
//! The entry does exactly that I/O and calls again with the answer; every rule stays here.
//! A token presented with the `DPoP` scheme is decided here too when its proof is EdDSA (checked in
//! Rust, with the full path's code, `web::dpop`); ES256 proofs go to the full path.
//!
//! It decides only what the full path ([`super::handle`]) would decide the same way, with the same
//! code: the route table, the canonical path and its route decision, verification, policies, the
//! whoami answer, the outgoing request to the origin (`forward::outgoing`), the response headers.
//! Everything else (every refusal, CORS, public and optional-auth routes, issuer routes, assets,
//! anything that needs a KV read or WebCrypto) returns `undefined`, and the entry hands the request
//! to the full path.
//!
//! The whoami answer is handed over as text (`<request id>\n<body>`), and the entry puts it in a
//! Response with the headers [`whoami_headers`] gives it once: the same headers `whoami` and
//! `cors::finish` put on the full path's answer (an end-to-end test compares the two).

use super::{forward, whoami_body, WHOAMI_HEADERS};
use crate::error::ApiError;
use crate::policy::Access;
use crate::routes::{self, Route};
use crate::web::denylist::{self, NowCheck, ReadRecord, DENYLIST_BINDING};
use crate::web::verify::{self, credentials, Now, Verdict};
use crate::web::{canonical_path, config, config_loaded, cors, dpop, method_named, request_id, response, webcrypto};
use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::{Env, Headers, Method};

/// Decides a request if it can: a string (the whoami answer, `<request id>\n<body>`), a `Request`
/// (the outgoing request to send to the origin; its `x-request-id` goes on the answer), a need (an
/// object with `need`: `"record"` with `binding`, `key`, `sub`, `mark`, or `"verdict"` with `jwk`,
/// `importAlgorithm`, `verifyAlgorithm`, `data`, `signature`), or `undefined` (use the full path).
/// `resume` carries what earlier needs got: `{record: {sub, mark, text}, verdict: {jwk, valid}}`.
#[wasm_bindgen(js_name = gatehouseFast)]
pub fn fast(request: web_sys::Request, resume: JsValue, env: Env) -> JsValue {
    let resume = Resume::read(&resume);
    match decide(request, &resume, &env) {
        Some(Decided::Answer(answer)) => answer,
        Some(Decided::Need(need)) => need.into_js().unwrap_or(JsValue::UNDEFINED),
        None => JsValue::UNDEFINED,
    }
}

/// What the entry got for earlier needs of this request.
#[derive(Default)]
struct Resume {
    record: Option<ReadRecord>,
    verdict: Option<Verdict>,
}

impl Resume {
    fn read(value: &JsValue) -> Self {
        if !value.is_object() {
            return Resume::default();
        }
        let field = |object: &JsValue, name: &str| Reflect::get(object, &JsValue::from_str(name)).ok();
        let record = field(value, "record").filter(JsValue::is_object).and_then(|r| {
            Some(ReadRecord {
                sub: field(&r, "sub")?.as_string()?,
                mark: field(&r, "mark")?.as_f64()? as u64,
                text: field(&r, "text").and_then(|t| t.as_string()),
            })
        });
        let verdict = field(value, "verdict")
            .filter(JsValue::is_object)
            .and_then(|v| Some(Verdict { jwk: field(&v, "jwk")?.as_string()?, valid: field(&v, "valid")?.as_bool()? }));
        Resume { record, verdict }
    }
}

/// A decision, or the I/O it waits for.
enum Decided {
    Answer(JsValue),
    Need(Need),
}

/// The I/O a decision waits for.
enum Need {
    /// The user's denylist record (`DENYLIST` namespace, `key`).
    Record { key: String, sub: String, mark: u64 },
    /// WebCrypto's verdict on a signature.
    Verdict { alg: crate::jwt::Algorithm, jwk: String, input: Vec<u8>, signature: Vec<u8> },
}

impl Need {
    fn into_js(self) -> Option<JsValue> {
        let object = Object::new();
        let set = |name: &str, value: &JsValue| Reflect::set(&object, &JsValue::from_str(name), value).ok();
        match self {
            Need::Record { key, sub, mark } => {
                set("need", &"record".into())?;
                set("binding", &DENYLIST_BINDING.into())?;
                set("key", &key.into())?;
                set("sub", &sub.into())?;
                set("mark", &JsValue::from_f64(mark as f64))?;
            }
            Need::Verdict { alg, jwk, input, signature } => {
                let (import, verify) = webcrypto::algorithm_objects(alg)?;
                set("need", &"verdict".into())?;
                set("jwk", &jwk.into())?;
                set("importAlgorithm", &import)?;
                set("verifyAlgorithm", &verify)?;
                set("data", &Uint8Array::from(input.as_slice()).into())?;
                set("signature", &Uint8Array::from(signature.as_slice()).into())?;
            }
        }
        Some(object.into())
    }
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

fn decide(req: web_sys::Request, resume: &Resume, env: &Env) -> Option<Decided> {
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
    let path = canonical_path(&req.url()).ok()?;
    let method = method_named(&req.method());
    // As if an issuer were there: its paths are never decided here, with or without one.
    if routes::route(&config, method.as_ref().map(AsRef::as_ref), &path, true).ok()? != Route::Gateway {
        return None;
    }
    // Public and optional-auth routes, and every refusal, are the full path's.
    let decision = config.routes.decide(&path)?;
    if decision.access != Access::Protected {
        return None;
    }
    let header = headers.get("authorization").ok()?;
    let (scheme, token) = credentials(header.as_deref(), config.dpop.is_on()).ok()??;
    let user = match verify::verify_now(token, &config, resume.verdict.as_ref()) {
        Now::Verified(user) => user,
        Now::NeedsVerdict { alg, jwk, input, signature } => {
            return Some(Decided::Need(Need::Verdict { alg, jwk, input, signature }))
        }
        Now::Full => return None,
    };
    if user.is_own() {
        match denylist::check_fast(&config, user.claims(), resume.record.as_ref()) {
            NowCheck::Passes => {}
            NowCheck::NeedsRead { key, mark } => {
                return Some(Decided::Need(Need::Record { key, sub: user.claims().sub.clone(), mark }))
            }
            NowCheck::Full => return None,
        }
    }
    decision.check(user.claims(), crate::web::now_seconds()).ok()?;
    // How the token was presented (RFC 9449 §7), last of the checks (an EdDSA proof's signature is
    // the dearest): a DPoP proof with an EdDSA key is checked here, anything else is the full path's.
    let jkt = user.claims().cnf.as_ref().map(|c| c.jkt.as_str());
    let proof = dpop::check_presentation_now(
        &headers,
        &req.method(),
        &req.url(),
        &config,
        (scheme, token),
        jkt,
        user.is_own(),
    )?;
    let rid = request_id(&headers);
    let answer = match &config.origin_url {
        Some(origin) => {
            let outgoing = forward::outgoing(&req, &config, origin, &path, Some(&user), &rid).ok()?;
            // The same JS object the wrapper holds (not `Request.clone()`, which would tee the body).
            let outgoing: &JsValue = outgoing.inner().as_ref();
            outgoing.clone()
        }
        None if path.as_str() == "/api/whoami" && matches!(method, Some(Method::Get | Method::Head)) => {
            let body = whoami_body(&user).ok()?;
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
