//! The edge router: requests on the gateway's routes (protected, public and optional-auth prefixes,
//! docs/GATEWAY.md) are verified as their route asks (token, denylist, route policies) and forwarded
//! to the origin, or answered by the built-in whoami. Everything else is the
//! issuer's: served in this Worker (all-in-one build), passed on through the `ISSUER_SERVICE` binding
//! (split deployment), or 404 (verifier-only).

pub mod fast;
pub mod forward;

use crate::config::Config;
use crate::error::ApiError;
use crate::gateway::path::CanonicalPath;
use crate::policy::Access;
use crate::routes::{self, IssuerRoute, Route};
use crate::web::verify::{self, Accept, Authenticated};
use crate::web::{self, Reply};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use worker::{Env, Headers, Method, Request, Response};

/// The service binding of the issuer Worker in a split deployment (optional: without it, and
/// without the issuer built in, the edge is a verifier only).
pub const ISSUER_SERVICE_BINDING: &str = "ISSUER_SERVICE";

/// The issuer's router when it is built into the same Worker (the all-in-one build): the entry
/// passes it in, so the edge never imports the issuer.
pub type BuiltInIssuer =
    fn(IssuerRoute, Request, Env, Rc<Config>, String) -> Pin<Box<dyn Future<Output = Result<Reply, ApiError>>>>;

/// The edge Worker's fetch handler (and the all-in-one Worker's, with `built_in` set).
pub async fn handle(
    req: Request,
    env: Env,
    ctx: Option<worker::Context>,
    built_in: Option<BuiltInIssuer>,
) -> worker::Result<Response> {
    web::serve(req, env, ctx, |req, env, config, rid| async move { dispatch(req, env, config, rid, built_in).await })
        .await
}

async fn dispatch(
    req: Request,
    env: Env,
    config: Rc<Config>,
    rid: String,
    built_in: Option<BuiltInIssuer>,
) -> Result<Reply, ApiError> {
    let path = web::canonical_path(&req.inner().url())?;
    let method = web::method_of(&req);
    let service = env.service(ISSUER_SERVICE_BINDING).ok();
    let has_issuer = built_in.is_some() || service.is_some();
    match routes::route(&config, method.as_ref().map(AsRef::as_ref), &path, has_issuer)? {
        // Answered here, never passed on: the edge's health does not depend on the issuer's.
        Route::Health => web::health(),
        Route::Gateway => gateway(req, &path, &config, &env, &rid).await,
        Route::Issuer(route) => match (built_in, service) {
            (Some(issuer), _) => issuer(route, req, env, config, rid).await,
            (None, Some(service)) => pass_on(&service, req).await,
            (None, None) => Err(ApiError::NotFound),
        },
        // The issuer's static assets and 404s, in a split deployment.
        Route::Other => match service {
            Some(service) if built_in.is_none() => pass_on(&service, req).await,
            _ => Err(ApiError::NotFound),
        },
    }
}

/// Passes a request on as it came to the issuer Worker, whose answer comes back as it is.
async fn pass_on(service: &worker::Fetcher, req: Request) -> Result<Reply, ApiError> {
    let answer = service.fetch_request(req).await.map_err(|e| ApiError::Unavailable(format!("issuer service: {e}")))?;
    Ok(Reply::passed_on(answer))
}

/// A path the gateway forwards: the token its route needs (none for a public one, optional for an
/// optional-auth one), its policies, then the origin or the built-in whoami.
async fn gateway(req: Request, path: &CanonicalPath, config: &Config, env: &Env, rid: &str) -> Result<Reply, ApiError> {
    let decision = config.routes.decide(path).ok_or(ApiError::NotFound)?;
    let user = match decision.access {
        Access::Public => None,
        // No credentials at all: anonymous. Credentials that fail are refused (401), as Envoy's
        // `allow_missing` does: a client that sent a token means to be someone.
        Access::Optional => match verify::authenticate(&req, env, config, Accept::Any).await {
            Err(ApiError::MissingToken) => None,
            other => Some(other?),
        },
        Access::Protected => Some(verify::authenticate(&req, env, config, Accept::Any).await?),
    };
    if let Some(user) = &user {
        decision.check(user.claims(), web::now_seconds()).map_err(|d| {
            web::note_subject(rid, &user.claims().sub);
            match d.step_up {
                // RFC 9470 §3; a DPoP-bound token was presented with the DPoP scheme (RFC 9449 §7.1).
                Some(step_up) => ApiError::InsufficientUserAuthentication {
                    reason: d.reason,
                    acr_values: step_up.acr_values,
                    max_age: step_up.max_age,
                    dpop: user.claims().cnf.is_some(),
                },
                None => ApiError::InsufficientScope { reason: d.reason, scope: d.required_scope },
            }
        })?;
    }
    match (&config.origin_url, &user) {
        (Some(origin), _) => {
            Ok(Reply::passed_on(forward::forward(req, origin, path, user.as_ref(), config, rid).await?))
        }
        (None, Some(user)) if path.as_str() == "/api/whoami" => match web::method_of(&req) {
            Some(Method::Get | Method::Head) => whoami(user).map(Reply::from),
            _ => Err(ApiError::MethodNotAllowed("GET, HEAD")),
        },
        (None, None) if path.as_str() == "/api/whoami" => Err(ApiError::MissingToken),
        (None, _) => Err(ApiError::NotFound),
    }
}

/// `GET /api/whoami` without ORIGIN_URL: the verified claims.
pub(crate) fn whoami(user: &Authenticated) -> Result<Response, ApiError> {
    let headers = Headers::new();
    for (name, value) in WHOAMI_HEADERS {
        headers.set(name, value)?;
    }
    Ok(Response::from_bytes(whoami_body(user)?.into_bytes())?.with_headers(headers))
}

/// The headers of the whoami answer, before `cors::finish` adds the worker's own.
pub(crate) const WHOAMI_HEADERS: [(&str, &str); 2] =
    [("content-type", "application/json"), ("cache-control", "no-store")];

/// The body of the whoami answer: the verified claims.
pub(crate) fn whoami_body(user: &Authenticated) -> Result<String, ApiError> {
    serde_json::to_string(user.claims()).map_err(|e| ApiError::Server(e.to_string()))
}
