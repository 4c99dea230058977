//! The admin API (`/admin/users...`, docs/API.md "Admin API"): for gatehouse's own access tokens
//! holding the `admin` role (a verified account listed in `ADMIN_EMAILS` holds it; an admin can
//! grant it). Every call that reaches an account writes an `admin.action` audit line naming the
//! admin (`sub`) and the account acted on (`account`).

use super::accounts::{by_email_with_id, by_id, call, done, no_content, read_json_body};
use super::lifecycle::{export_answer, user_answer};
use crate::account::protocol::{AccountOutcome, AccountRequest, TokenIds};
use crate::audit::{AuditLine, Event};
use crate::config::{Config, ADMIN_ROLE};
use crate::error::ApiError;
use crate::input;
use crate::routes::IssuerRoute;
use crate::web::verify::{self, Accept};
use crate::web::{self, denylist, Reply};
use worker::{Env, Method, Request};

/// The admin asking: a verified own token with the `admin` role, else 403 `forbidden`.
/// The token's roles are checked first (cheap), then the admin's own account object, the authority:
/// the role must be held now and the token live there, so a demotion, a disabling or a logout takes
/// effect at once rather than when the token expires or the denylist copy catches up.
async fn admin(req: &Request, env: &Env, config: &Config, rid: &str) -> Result<String, ApiError> {
    let user = verify::authenticate(req, env, config, Accept::Own).await?;
    let claims = user.claims();
    if !claims.roles.iter().any(|r| r == ADMIN_ROLE) {
        return Err(ApiError::Forbidden(format!("the {ADMIN_ROLE} role is required")));
    }
    let stub = by_id(env, &claims.sub, ApiError::InvalidToken("token names no account".into()))?;
    let token = TokenIds::of(claims);
    done(call(stub, &AccountRequest::AdminCheck { token }, rid).await?)?;
    Ok(claims.sub.clone())
}

/// Writes the audit line of an admin call: the admin (`sub`), the account acted on (`account`, when
/// the call named one), the operation, and how it ended (`ok`, or the error code).
fn audit(actor: &str, target: &str, op: &str, rid: &str, result: &Result<Reply, ApiError>) {
    let ended = match result {
        Ok(_) => "ok",
        Err(e) => e.parts().1,
    };
    let line =
        AuditLine::new(Event::AdminAction, target, rid, web::now_seconds()).route(op).subject(actor).reason(ended);
    worker::console_log!("{}", line.to_json());
}

/// Serves the admin routes; every call that passed the admin check is audited, whatever its end.
pub async fn dispatch(
    route: IssuerRoute,
    mut req: Request,
    env: &Env,
    config: &Config,
    rid: &str,
) -> Result<Reply, ApiError> {
    let actor = admin(&req, env, config, rid).await?;
    if route == IssuerRoute::AdminFind {
        let mut target = String::new();
        let result = find(&req, env, rid, &mut target).await;
        audit(&actor, &target, "admin-find", rid, &result);
        return result;
    }
    let path = web::canonical_path(&req.inner().url())?;
    let sub = crate::routes::path_id(path.as_str()).ok_or(ApiError::NotFound)?.to_owned();
    let mut op = "admin";
    let result = act(route, &mut req, env, &sub, rid, &mut op).await;
    audit(&actor, &sub, op, rid, &result);
    result
}

/// `GET /admin/users?email=`: `target` becomes the account's id once the email is valid.
async fn find(req: &Request, env: &Env, rid: &str, target: &mut String) -> Result<Reply, ApiError> {
    let url = req.url()?;
    let email = url
        .query_pairs()
        .find(|(k, _)| k == "email")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ApiError::InvalidRequest("the email query parameter is required".into()))?;
    let email = input::normalize_email(&email)?;
    let (stub, sub) = by_email_with_id(env, &email)?;
    *target = sub;
    user_answer(call(stub, &AccountRequest::AdminGet, rid).await?)
}

/// The routes of one account, `sub`; `op` becomes the operation's name once it is known.
async fn act(
    route: IssuerRoute,
    req: &mut Request,
    env: &Env,
    sub: &str,
    rid: &str,
    op: &mut &'static str,
) -> Result<Reply, ApiError> {
    let stub = by_id(env, sub, ApiError::NotFound)?;
    let method = web::method_of(req);
    let request = match (route, method) {
        (IssuerRoute::AdminUser, Some(Method::Patch)) => {
            *op = "admin-update";
            let update = input::admin_update(&read_json_body(req, false).await?)?;
            AccountRequest::AdminUpdate {
                roles: update.roles,
                scope: update.scope,
                disabled: update.disabled,
                app_metadata: update.app_metadata,
            }
        }
        (IssuerRoute::AdminUser, Some(Method::Delete)) => AccountRequest::AdminDelete,
        (IssuerRoute::AdminUser, _) => AccountRequest::AdminGet,
        (IssuerRoute::AdminRevokeSessions, _) => AccountRequest::AdminRevokeSessions,
        (IssuerRoute::AdminExport, _) => AccountRequest::Export,
        _ => return Err(ApiError::NotFound),
    };
    *op = request.op();
    let changes = !matches!(request, AccountRequest::AdminGet | AccountRequest::Export);
    let answer = call(stub, &request, rid).await?;
    if changes && !matches!(answer, AccountOutcome::Refused { .. } | AccountOutcome::Failed { .. }) {
        // Disabled or deleted: this isolate stops trusting its cached denylist read at once.
        denylist::forget(sub);
    }
    match answer {
        AccountOutcome::Export { .. } => export_answer(answer),
        AccountOutcome::User { .. } => user_answer(answer),
        other => {
            done(other)?;
            no_content()
        }
    }
}
