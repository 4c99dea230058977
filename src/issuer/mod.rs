//! The issuer: account routes (`/auth/*`), the OAuth endpoints, the published JWKS, the signing keys,
//! and the two Durable Objects (one `Account` per account, one `KeyStore` of managed keys). Its static
//! assets (`www/`) are served by the platform. It runs inside the all-in-one Worker behind the edge
//! router, or alone as the issuer Worker of a split deployment.

pub mod account_object;
pub mod accounts;
pub mod admin;
pub mod breach;
pub mod cookies;
pub mod document;
pub mod key_store;
pub mod lifecycle;
pub mod mail;
pub mod mfa;
pub mod oauth;
pub mod passkeys;
pub mod signing;

use crate::config::Config;
use crate::error::ApiError;
use crate::jwt::remote::Need;
use crate::routes::{self, IssuerRoute, Route};
use crate::web::remote_keys::{self, Source};
use crate::web::{self, response, Reply};
use std::rc::Rc;
use worker::{Env, Request, Response};

/// The issuer Worker's fetch handler (a split deployment): the issuer's routes, 404 for the rest.
pub async fn handle(req: Request, env: Env, ctx: Option<worker::Context>) -> worker::Result<Response> {
    web::serve(req, env, ctx, |req, env, config, rid| async move {
        let path = web::canonical_path(&req.inner().url())?;
        let method = web::method_of(&req);
        match routes::route(&config, method.as_ref().map(AsRef::as_ref), &path, true)? {
            Route::Health => web::health(),
            Route::Issuer(route) => dispatch(route, req, &env, config, &rid).await,
            Route::Gateway | Route::Other => Err(ApiError::NotFound),
        }
    })
    .await
}

/// Serves one of the issuer's routes.
pub async fn dispatch(
    route: IssuerRoute,
    req: Request,
    env: &Env,
    config: Rc<Config>,
    rid: &str,
) -> Result<Reply, ApiError> {
    match route {
        IssuerRoute::Jwks => Ok(Reply::public(jwks(&config, env).await?)),
        IssuerRoute::Register => accounts::register(req, env, &config, rid).await,
        IssuerRoute::Login => accounts::login(req, env, &config, rid).await,
        IssuerRoute::Refresh => accounts::refresh(req, env, &config, rid).await,
        IssuerRoute::Logout => accounts::logout(req, env, &config, rid).await,
        IssuerRoute::LogoutAll => accounts::logout_all(req, env, &config, rid).await,
        IssuerRoute::Me => lifecycle::me(req, env, &config, rid).await,
        IssuerRoute::MeExport => lifecycle::export(req, env, &config, rid).await,
        IssuerRoute::EmailVerifyRequest => lifecycle::verify_request(req, env, &config, rid).await,
        IssuerRoute::EmailVerify => lifecycle::verify(req, env, &config, rid).await,
        IssuerRoute::PasswordForgot => lifecycle::forgot(req, env, &config, rid).await,
        IssuerRoute::PasswordReset => lifecycle::reset(req, env, &config, rid).await,
        IssuerRoute::PasswordChange => lifecycle::change(req, env, &config, rid).await,
        IssuerRoute::Sessions => lifecycle::sessions(req, env, &config, rid).await,
        IssuerRoute::SessionRevoke => lifecycle::revoke_session(req, env, &config, rid).await,
        IssuerRoute::AdminFind
        | IssuerRoute::AdminUser
        | IssuerRoute::AdminRevokeSessions
        | IssuerRoute::AdminExport => admin::dispatch(route, req, env, &config, rid).await,
        IssuerRoute::DevOutbox => mail::outbox(&req, env).await,
        IssuerRoute::TotpEnroll => mfa::totp_enroll(req, env, &config, rid).await,
        IssuerRoute::TotpConfirm => mfa::totp_confirm(req, env, &config, rid).await,
        IssuerRoute::TotpRemove => mfa::totp_remove(req, env, &config, rid).await,
        IssuerRoute::RecoveryCodes => mfa::recovery_codes(req, env, &config, rid).await,
        IssuerRoute::MfaVerify => mfa::verify(req, env, &config, rid).await,
        IssuerRoute::PasskeyRegisterOptions => passkeys::register_options(req, env, &config, rid).await,
        IssuerRoute::PasskeyRegisterVerify => passkeys::register_verify(req, env, &config, rid).await,
        IssuerRoute::PasskeyLoginOptions => passkeys::login_options(req, env, &config, rid).await,
        IssuerRoute::PasskeyLoginVerify => passkeys::login_verify(req, env, &config, rid).await,
        IssuerRoute::OAuthMetadata => Ok(Reply::public(oauth::metadata(&config)?)),
        IssuerRoute::OAuthToken => oauth::token(req, env, &config, rid).await,
        IssuerRoute::OAuthRevoke => oauth::revoke(req, env, &config, rid).await,
        IssuerRoute::OAuthIntrospect => oauth::introspect(req, env, &config, rid).await,
    }
}

/// `GET /.well-known/jwks.json`: the public halves of the configured keys, and of the managed keys
/// the key store publishes (the next key before it signs, a retired one until its tokens expired).
async fn jwks(config: &Config, env: &Env) -> Result<Response, ApiError> {
    let mut keys: Vec<serde_json::Value> = Vec::new();
    if let Some(set) = &config.keys {
        keys.extend(set.keys().iter().map(|k| k.to_jwk()));
    }
    if let Some(managed) = &config.managed {
        let now = web::now_seconds();
        let set = remote_keys::keys_for(config, env, Source::Managed(managed), Need::Set, now).await?;
        keys.extend(
            set.keys()
                .iter()
                .filter(|k| config.keys.as_ref().is_none_or(|c| c.find(k.kid()).is_none()))
                .map(|k| k.to_jwk()),
        );
    }
    response::json(&serde_json::json!({ "keys": keys }), 200, "public, max-age=300")
}
