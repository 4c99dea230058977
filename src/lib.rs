//! gatehouse: an edge JWT verifier and session issuer for Cloudflare Workers.
//!
//! Layers point one way (`scripts/check-layers.mjs` keeps it so):
//! - the platform floor: [`whatwg`] (URL parsing) and [`casing`] (Unicode case mapping), done by the
//!   runtime in a Worker and by Rust natively, so the wasm carries neither;
//! - pure token code, [`jwt`], and the floor: [`config`], [`error`] (the one mapping of errors to
//!   HTTP), [`routes`], [`health`] (what `GET /healthz` says), [`config_check`] (every problem at once);
//! - pure domain modules: [`policy`], [`gateway`] (the canonical path, header hygiene, the origin
//!   assertion), [`revocation`], [`issuers`], [`account`] (the account core:
//!   state, refresh families, protocol, state machine), [`password`], [`input`], [`oauth`], [`mail`] (templates and settings),
//!   [`rotation`], [`audit`] (the JSON log lines), [`metrics`] (the Analytics Engine data point);
//! - worker glue shared by both routers: `web` (configuration per isolate, serving, CORS, token
//!   verification, the denylist read, other key sets, WebCrypto);
//! - the two routers: `edge` (verify, denylist, policies, forwarding) and `issuer` (accounts, keys,
//!   `/auth`, `/oauth`, JWKS, and the Durable Objects);
//! - the entries below, one per Worker: the all-in-one build (features `edge` and `issuer`, the
//!   default), the edge Worker (`edge` only) and the issuer Worker (`issuer` only).
#![forbid(unsafe_code)]

pub mod account;
pub mod audit;
pub mod casing;
pub mod config;
pub mod config_check;
pub mod decimal;
pub mod error;
pub mod gateway;
pub mod health;
pub mod input;
pub mod issuers;
pub mod jwt;
pub mod limits;
pub mod mail;
pub mod metrics;
#[cfg(feature = "issuer")]
pub mod mfa;
pub mod oauth;
pub mod password;
pub mod policy;
pub mod revocation;
pub mod rotation;
pub mod routes;
pub mod whatwg;

#[cfg(feature = "edge")]
pub mod edge;
#[cfg(feature = "issuer")]
pub mod issuer;
pub mod web;

/// The all-in-one Worker's fetch entry: the edge router fronts everything, the issuer built in behind it.
#[cfg(all(feature = "edge", feature = "issuer"))]
#[worker::event(fetch)]
pub async fn fetch(req: worker::Request, env: worker::Env, ctx: worker::Context) -> worker::Result<worker::Response> {
    edge::handle(req, env, Some(ctx), Some(issuer_routes)).await
}

/// The issuer's router, as the edge calls it in the all-in-one build.
#[cfg(all(feature = "edge", feature = "issuer"))]
fn issuer_routes(
    route: routes::IssuerRoute,
    req: worker::Request,
    env: worker::Env,
    config: std::rc::Rc<config::Config>,
    rid: String,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<web::Reply, error::ApiError>>>> {
    Box::pin(async move { issuer::dispatch(route, req, &env, config, &rid).await })
}

/// The edge Worker's fetch entry: its issuer, if any, is another Worker behind `ISSUER_SERVICE`.
///
/// Written out rather than made by `#[worker::event(fetch)]`, whose glue turns an error into a
/// `Box<dyn std::error::Error>`: that links the `Debug` and `source` of every `worker::Error`
/// variant (I/O error kinds, the router's insert errors, serde's) into the wasm, 4.2 KiB
/// gzipped of what the edge never says (docs/BENCHMARKS.md).
#[cfg(all(feature = "edge", not(feature = "issuer")))]
#[wasm_bindgen::prelude::wasm_bindgen]
pub async fn fetch(
    req: web_sys::Request,
    env: worker::Env,
    _ctx: worker::worker_sys::Context,
) -> Result<wasm_bindgen::JsValue, wasm_bindgen::JsValue> {
    // No route of the edge Worker works after its answer: its requests skip registering the context.
    match edge::handle(worker::Request::from(req), env, None, None).await {
        Ok(response) => Ok(web_sys::Response::from(response).into()),
        Err(e) => {
            worker::console_error!("{e}");
            let status = web_sys::ResponseInit::new();
            status.set_status(500);
            Ok(web_sys::Response::new_with_opt_str_and_init(Some("internal server error"), &status)?.into())
        }
    }
}

/// The issuer Worker's fetch entry.
#[cfg(all(feature = "issuer", not(feature = "edge")))]
#[worker::event(fetch)]
pub async fn fetch(req: worker::Request, env: worker::Env, ctx: worker::Context) -> worker::Result<worker::Response> {
    issuer::handle(req, env, Some(ctx)).await
}
