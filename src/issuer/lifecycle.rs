//! The account lifecycle routes (docs/API.md "Account lifecycle"): email verification, password
//! reset and change, the user's sessions, their metadata, export and deletion. Each validates its
//! input, asks the account object with the typed protocol, and maps the outcome; links are mailed
//! after the answer ([`super::mail::send_after`]).

use super::accounts::{by_email, by_id, call, done, no_content, outcome, read_json_body, signed_out, unexpected};
use super::mail;
use crate::account::lifecycle::LinkToken;
use crate::account::protocol::{AccountOutcome, AccountRequest, LinkPurpose, TokenIds};
use crate::config::Config;
use crate::error::ApiError;
use crate::input;
use crate::web::verify::{self, Accept, Authenticated};
use crate::web::{denylist, limits, response, Reply};
use worker::{Env, Method, Request};

/// The signed-in user (own access token) and their account object.
async fn signed_in(req: &Request, env: &Env, config: &Config) -> Result<(Authenticated, worker::Stub), ApiError> {
    let user = verify::authenticate(req, env, config, Accept::Own).await?;
    let stub = by_id(env, &user.claims().sub, ApiError::InvalidToken("token names no account".into()))?;
    Ok((user, stub))
}

/// `request` as the signed-in `user` asks it: the account object checks the token is still live in
/// its own record first (the edge's denylist copy may lag a revocation by seconds).
fn as_user(user: &Authenticated, request: AccountRequest) -> AccountRequest {
    AccountRequest::AsUser { token: TokenIds::of(user.claims()), request: Box::new(request) }
}

fn accepted(status: &str) -> Result<Reply, ApiError> {
    Ok(response::json(&serde_json::json!({ "status": status }), 202, "no-store")?.into())
}

/// `POST /auth/email/verify/request` (Bearer): mails a verification link (202), or says the email
/// is verified already; at most one mail a minute (429).
pub async fn verify_request(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let (user, stub) = signed_in(&req, env, config).await?;
    mail::configured(config)?;
    match outcome(call(stub, &as_user(&user, AccountRequest::EmailVerifyRequest), rid).await?)? {
        AccountOutcome::Mail { purpose, to, token } => {
            mail::send_after(env, config, rid, purpose.into(), &to, &token);
            accepted("sent")
        }
        AccountOutcome::Done => accepted("already_verified"),
        other => Err(unexpected(&other)),
    }
}

/// `POST /auth/email/verify` `{"token", "password"?}`: 204, or 400 `invalid_or_expired_token`. The
/// caller must hold the account too: an access token of that account, or its password (403
/// `invalid_credentials` when wrong or missing; the link stays live). A dead link is 400 either way.
/// Limited per client address with registrations.
pub async fn verify(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    limits::admit(env, &req, crate::limits::Action::Register).await?;
    let (text, password) = input::email_verify(&read_json_body(&mut req, false).await?)?;
    let token = LinkToken::parse(&text, LinkPurpose::Verify).ok_or(ApiError::InvalidLink)?;
    let signed_in = match req.headers().get("authorization")? {
        Some(_) => verify::authenticate(&req, env, config, Accept::Own).await?.claims().sub == token.account,
        None => false,
    };
    let client = limits::client_tag(&req, &token.account);
    let stub = by_id(env, &token.account, ApiError::InvalidLink)?;
    let request = AccountRequest::EmailVerify { secret: token.secret, signed_in, password, client };
    done(call(stub, &request, rid).await?)?;
    // The next token this user gets says email_verified; cached denylist reads are unaffected.
    no_content()
}

/// `POST /auth/password/forgot` `{"email"}`: 202 whether or not the email has an account. Limited
/// per client like a registration and behind Turnstile when it is on; everything that depends on
/// the email (asking its account object, the mail) happens after the answer (`waitUntil`), so the
/// answer and its time are the same for every email.
pub async fn forgot(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let body = read_json_body(&mut req, false).await?;
    let email = input::forgot(&body)?;
    mail::configured(config)?;
    limits::admit(env, &req, crate::limits::Action::Register).await?;
    limits::turnstile(config, &req, &body).await?;
    let (env_owned, config_owned, id) = (env.clone(), config.clone(), rid.to_owned());
    crate::web::in_background(rid, async move {
        let asked = async {
            let stub = by_email(&env_owned, &email)?;
            outcome(call(stub, &AccountRequest::PasswordForgot { email }, &id).await?)
        };
        match asked.await {
            Ok(AccountOutcome::Mail { purpose, to, token }) => {
                mail::deliver(&env_owned, &config_owned, purpose.into(), &to, &token, &id).await;
            }
            Ok(_) => {}
            Err(e) => worker::console_error!("password reset request failed after the answer: {e:?}"),
        }
    });
    accepted("accepted")
}

/// `POST /auth/password/reset` `{"token", "password"}`: 204; every session of the account ends.
/// Limited per client address with registrations (each try may cost the account object a hash).
pub async fn reset(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    limits::admit(env, &req, crate::limits::Action::Register).await?;
    let (text, password) = input::reset(&read_json_body(&mut req, false).await?)?;
    let token = LinkToken::parse(&text, LinkPurpose::Reset).ok_or(ApiError::InvalidLink)?;
    super::breach::check(config, &password).await?;
    let stub = by_id(env, &token.account, ApiError::InvalidLink)?;
    done(call(stub, &AccountRequest::PasswordReset { secret: token.secret, password }, rid).await?)?;
    denylist::forget(&token.account);
    no_content()
}

/// `POST /auth/password/change` (Bearer) `{"current_password", "new_password"}`: 204; every other
/// session ends. A wrong current password is 403 and slows the client down like a failed login.
pub async fn change(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let (user, stub) = signed_in(&req, env, config).await?;
    let (current, new) = input::password_change(&read_json_body(&mut req, false).await?)?;
    super::breach::check(config, &new).await?;
    let sub = user.claims().sub.clone();
    let client = limits::client_tag(&req, &sub);
    let request = AccountRequest::PasswordChange { sid: user.claims().sid.clone(), current, new, client };
    done(call(stub, &as_user(&user, request), rid).await?)?;
    denylist::forget(&sub);
    no_content()
}

/// `GET /auth/sessions` (Bearer): the live sessions, newest first, the asking one marked.
pub async fn sessions(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let (user, stub) = signed_in(&req, env, config).await?;
    let request = AccountRequest::Sessions { current: user.claims().sid.clone() };
    match outcome(call(stub, &as_user(&user, request), rid).await?)? {
        AccountOutcome::Sessions { sessions } => {
            Ok(response::json(&serde_json::json!({ "sessions": sessions }), 200, "no-store")?.into())
        }
        other => Err(unexpected(&other)),
    }
}

/// `DELETE /auth/sessions/{sid}` (Bearer): ends one session (its tokens refused at the edge, like a
/// logout); 404 for a session the account does not have.
pub async fn revoke_session(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let path = crate::web::canonical_path(&req.inner().url())?;
    let sid = crate::routes::path_id(path.as_str()).ok_or(ApiError::NotFound)?.to_owned();
    let (user, stub) = signed_in(&req, env, config).await?;
    done(call(stub, &as_user(&user, AccountRequest::SessionRevoke { sid }), rid).await?)?;
    denylist::forget(&user.claims().sub);
    no_content()
}

/// `GET`, `PATCH` (`{"user_metadata"}`) and `DELETE` (`{"password"}`) of `/auth/me`.
pub async fn me(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    match crate::web::method_of(&req) {
        Some(Method::Patch) => {
            let (user, stub) = signed_in(&req, env, config).await?;
            let value = input::user_metadata(&read_json_body(&mut req, false).await?)?;
            user_answer(call(stub, &as_user(&user, AccountRequest::UserMetadata { value }), rid).await?)
        }
        Some(Method::Delete) => {
            let (user, stub) = signed_in(&req, env, config).await?;
            let password = input::password_only(&read_json_body(&mut req, false).await?)?;
            let sub = user.claims().sub.clone();
            let client = limits::client_tag(&req, &sub);
            done(call(stub, &as_user(&user, AccountRequest::DeleteSelf { password, client }), rid).await?)?;
            denylist::forget(&sub);
            signed_out()
        }
        _ => super::accounts::me(&verify::authenticate(&req, env, config, Accept::Own).await?),
    }
}

/// `GET /auth/me/export` (Bearer): everything stored about the user, as a JSON download.
pub async fn export(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let (user, stub) = signed_in(&req, env, config).await?;
    export_answer(call(stub, &as_user(&user, AccountRequest::Export), rid).await?)
}

/// A user view answer (200).
pub(crate) fn user_answer(answer: AccountOutcome) -> Result<Reply, ApiError> {
    match outcome(answer)? {
        AccountOutcome::User { user } => Ok(response::json(&user, 200, "no-store")?.into()),
        other => Err(unexpected(&other)),
    }
}

/// An export answer (200, as an attachment).
pub(crate) fn export_answer(answer: AccountOutcome) -> Result<Reply, ApiError> {
    match outcome(answer)? {
        AccountOutcome::Export { data } => {
            let response = response::json(&data, 200, "no-store")?;
            response.headers().set("content-disposition", "attachment; filename=\"gatehouse-export.json\"")?;
            Ok(response.into())
        }
        other => Err(unexpected(&other)),
    }
}
