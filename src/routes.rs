//! The route table of gatehouse's Workers: which method and (normalised) path go to which handler.
//! Pure, shared by the edge router, its fast path and the issuer router, so all three agree on
//! what a request is. The issuer's fixed paths come first whenever an issuer is there (in this
//! Worker, or behind the edge's service binding); then the edge's protected prefixes.

use crate::config::Config;
use crate::error::ApiError;
use crate::gateway::path::CanonicalPath;
use crate::health;
use crate::oauth;
use crate::policy::Access;

/// A route of the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerRoute {
    /// `GET /.well-known/jwks.json`
    Jwks,
    /// `POST /auth/register`
    Register,
    /// `POST /auth/login`
    Login,
    /// `POST /auth/refresh`
    Refresh,
    /// `POST /auth/logout`
    Logout,
    /// `POST /auth/logout-all`
    LogoutAll,
    /// `GET /auth/me`; `PATCH` (the user's metadata) and `DELETE` (the account) too
    Me,
    /// `GET /auth/me/export`
    MeExport,
    /// `POST /auth/email/verify/request`
    EmailVerifyRequest,
    /// `POST /auth/email/verify`
    EmailVerify,
    /// `POST /auth/password/forgot`
    PasswordForgot,
    /// `POST /auth/password/reset`
    PasswordReset,
    /// `POST /auth/password/change`
    PasswordChange,
    /// `GET /auth/sessions`
    Sessions,
    /// `DELETE /auth/sessions/{sid}`
    SessionRevoke,
    /// `GET /admin/users?email=`
    AdminFind,
    /// `GET`, `PATCH`, `DELETE /admin/users/{sub}`
    AdminUser,
    /// `POST /admin/users/{sub}/revoke-sessions`
    AdminRevokeSessions,
    /// `GET /admin/users/{sub}/export`
    AdminExport,
    /// `GET /dev/outbox` (only with `MAIL_TRANSPORT=outbox`)
    DevOutbox,
    /// `POST /auth/mfa/totp/enroll`
    TotpEnroll,
    /// `POST /auth/mfa/totp/confirm`
    TotpConfirm,
    /// `DELETE /auth/mfa/totp`
    TotpRemove,
    /// `POST /auth/mfa/recovery-codes`
    RecoveryCodes,
    /// `POST /auth/mfa/verify`
    MfaVerify,
    /// `POST /auth/webauthn/register/options`
    PasskeyRegisterOptions,
    /// `POST /auth/webauthn/register/verify`
    PasskeyRegisterVerify,
    /// `POST /auth/webauthn/login/options`
    PasskeyLoginOptions,
    /// `POST /auth/webauthn/login/verify`
    PasskeyLoginVerify,
    /// `GET /.well-known/oauth-authorization-server` (RFC 8414)
    OAuthMetadata,
    /// `POST /oauth/token` (RFC 6749 §6, refresh grant)
    OAuthToken,
    /// `POST /oauth/revoke` (RFC 7009)
    OAuthRevoke,
    /// `POST /oauth/introspect` (RFC 7662)
    OAuthIntrospect,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`: answered by whichever Worker gets it, never passed on (crate::health).
    Health,
    /// One of the issuer's routes.
    Issuer(IssuerRoute),
    /// A path the gateway serves (protected, public or optional-auth prefixes, docs/GATEWAY.md).
    Gateway,
    /// Nothing of gatehouse's: the issuer's static assets, or 404.
    Other,
}

const GET: &[&str] = &["GET", "HEAD"];
const POST: &[&str] = &["POST"];
const DELETE: &[&str] = &["DELETE"];
const ME: &[&str] = &["GET", "HEAD", "PATCH", "DELETE"];
const USER: &[&str] = &["GET", "HEAD", "PATCH", "DELETE"];

/// A short, bounded name of the route a path takes, for logs and metrics: the fixed path of a route
/// of gatehouse's own, `gateway:protected` / `gateway:public` / `gateway:optional` for the gateway's
/// prefixes, `other` for the rest. Never the request's own path (it can carry user data).
pub fn label<'a>(config: &Config, path: &'a CanonicalPath, issuer: bool) -> &'a str {
    if path.as_str() == health::PATH {
        return path.as_str();
    }
    if issuer && issuer_route(path.as_str()).is_some() {
        // A path with an id (a session, an account) is named by its template.
        return template(path.as_str()).unwrap_or(path.as_str());
    }
    match config.routes.decide(path).map(|d| d.access) {
        Some(Access::Protected) => "gateway:protected",
        Some(Access::Public) => "gateway:public",
        Some(Access::Optional) => "gateway:optional",
        None => "other",
    }
}

/// An id in a path: base64url or hex, 1 to 64 characters (a `sid`, an account's `sub`).
fn is_id(segment: &str) -> bool {
    (1..=64).contains(&segment.len()) && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The template of a path that carries an id (`/auth/sessions/{sid}`, `/admin/users/{sub}`, ...).
fn template(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    match segments.as_slice() {
        ["auth", "sessions", sid] if is_id(sid) => Some("/auth/sessions/{sid}"),
        ["admin", "users", sub] if is_id(sub) => Some("/admin/users/{sub}"),
        ["admin", "users", sub, "revoke-sessions"] if is_id(sub) => Some("/admin/users/{sub}/revoke-sessions"),
        ["admin", "users", sub, "export"] if is_id(sub) => Some("/admin/users/{sub}/export"),
        _ => None,
    }
}

/// The id a templated path carries (the third segment: a `sid` or a `sub`).
pub fn path_id(path: &str) -> Option<&str> {
    template(path)?;
    path.split('/').nth(3)
}

/// The issuer route of a path, and the methods it takes.
fn issuer_route(path: &str) -> Option<(IssuerRoute, &'static [&'static str], &'static str)> {
    let path = template(path).unwrap_or(path);
    let route = match path {
        "/.well-known/jwks.json" => (IssuerRoute::Jwks, GET, "GET, HEAD"),
        "/auth/register" => (IssuerRoute::Register, POST, "POST"),
        "/auth/login" => (IssuerRoute::Login, POST, "POST"),
        "/auth/refresh" => (IssuerRoute::Refresh, POST, "POST"),
        "/auth/logout" => (IssuerRoute::Logout, POST, "POST"),
        "/auth/logout-all" => (IssuerRoute::LogoutAll, POST, "POST"),
        "/auth/me" => (IssuerRoute::Me, ME, "GET, HEAD, PATCH, DELETE"),
        "/auth/me/export" => (IssuerRoute::MeExport, GET, "GET, HEAD"),
        "/auth/email/verify/request" => (IssuerRoute::EmailVerifyRequest, POST, "POST"),
        "/auth/email/verify" => (IssuerRoute::EmailVerify, POST, "POST"),
        "/auth/password/forgot" => (IssuerRoute::PasswordForgot, POST, "POST"),
        "/auth/password/reset" => (IssuerRoute::PasswordReset, POST, "POST"),
        "/auth/password/change" => (IssuerRoute::PasswordChange, POST, "POST"),
        "/auth/sessions" => (IssuerRoute::Sessions, GET, "GET, HEAD"),
        "/auth/sessions/{sid}" => (IssuerRoute::SessionRevoke, DELETE, "DELETE"),
        "/admin/users" => (IssuerRoute::AdminFind, GET, "GET, HEAD"),
        "/admin/users/{sub}" => (IssuerRoute::AdminUser, USER, "GET, HEAD, PATCH, DELETE"),
        "/admin/users/{sub}/revoke-sessions" => (IssuerRoute::AdminRevokeSessions, POST, "POST"),
        "/admin/users/{sub}/export" => (IssuerRoute::AdminExport, GET, "GET, HEAD"),
        "/dev/outbox" => (IssuerRoute::DevOutbox, GET, "GET, HEAD"),
        "/auth/mfa/totp/enroll" => (IssuerRoute::TotpEnroll, POST, "POST"),
        "/auth/mfa/totp/confirm" => (IssuerRoute::TotpConfirm, POST, "POST"),
        "/auth/mfa/totp" => (IssuerRoute::TotpRemove, DELETE, "DELETE"),
        "/auth/mfa/recovery-codes" => (IssuerRoute::RecoveryCodes, POST, "POST"),
        "/auth/mfa/verify" => (IssuerRoute::MfaVerify, POST, "POST"),
        "/auth/webauthn/register/options" => (IssuerRoute::PasskeyRegisterOptions, POST, "POST"),
        "/auth/webauthn/register/verify" => (IssuerRoute::PasskeyRegisterVerify, POST, "POST"),
        "/auth/webauthn/login/options" => (IssuerRoute::PasskeyLoginOptions, POST, "POST"),
        "/auth/webauthn/login/verify" => (IssuerRoute::PasskeyLoginVerify, POST, "POST"),
        oauth::METADATA_PATH => (IssuerRoute::OAuthMetadata, GET, "GET, HEAD"),
        oauth::TOKEN_PATH => (IssuerRoute::OAuthToken, POST, "POST"),
        oauth::REVOKE_PATH => (IssuerRoute::OAuthRevoke, POST, "POST"),
        oauth::INTROSPECT_PATH => (IssuerRoute::OAuthIntrospect, POST, "POST"),
        _ => return None,
    };
    Some(route)
}

/// Picks the route for a method (`None`: not a standard one) and a canonical path. `issuer`: whether
/// an issuer serves this deployment (without one, its paths are free for the gateway's prefixes).
/// A fixed route asked with another method is 405 with `Allow`.
pub fn route(config: &Config, method: Option<&str>, path: &CanonicalPath, issuer: bool) -> Result<Route, ApiError> {
    if path.as_str() == health::PATH {
        return match method {
            Some(m) if GET.contains(&m) => Ok(Route::Health),
            _ => Err(ApiError::MethodNotAllowed("GET, HEAD")),
        };
    }
    if issuer {
        if let Some((route, methods, allow)) = issuer_route(path.as_str()) {
            // The outbox exists only where mail stays local (`MAIL_TRANSPORT=outbox`).
            let outbox = matches!(config.mail.as_ref().map(|m| &m.transport), Some(crate::mail::Transport::Outbox));
            if route == IssuerRoute::DevOutbox && !outbox {
                return Err(ApiError::NotFound);
            }
            return match method {
                Some(m) if methods.contains(&m) => Ok(Route::Issuer(route)),
                _ => Err(ApiError::MethodNotAllowed(allow)),
            };
        }
    }
    if config.routes.serves(path) {
        return Ok(Route::Gateway);
    }
    Ok(Route::Other)
}

/// Whether a path is one of the issuer's: the edge of a split deployment passes these on to the
/// issuer Worker as they came.
pub fn is_issuer_path(path: &str) -> bool {
    issuer_route(path).is_some()
}
