//! gatehouse: an edge JWT verifier and session issuer for Cloudflare Workers.
//!
//! Pure modules (no `worker`, time and randomness passed in): [`jwt`], [`revocation`], [`policy`],
//! [`config`], [`issuers`], [`oauth`], [`rotation`], [`session`], [`account_state`], [`input`],
//! [`password`], [`audit`]. Worker glue: `edge` (router, fast path, verification pipeline,
//! forwarding, OAuth endpoints), `account` (the per-account Durable Object), `keystore` (the
//! managed-keys Durable Object) and `document` (the one-document storage both objects use).
#![forbid(unsafe_code)]

pub mod account_state;
pub mod audit;
pub mod config;
pub mod input;
pub mod issuers;
pub mod jwt;
pub mod mfa;
pub mod oauth;
pub mod password;
pub mod policy;
pub mod revocation;
pub mod rotation;
pub mod session;

pub mod account;
pub mod document;
pub mod edge;
pub mod keystore;

/// The worker's fetch entry: everything goes to the edge router.
#[worker::event(fetch)]
pub async fn fetch(req: worker::Request, env: worker::Env, _ctx: worker::Context) -> worker::Result<worker::Response> {
    edge::handle(req, env).await
}
