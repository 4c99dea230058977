//! The second-factor routes (`/auth/mfa/*`): TOTP enrolment, confirmation and removal, recovery
//! codes, and the second step of a login (`/auth/mfa/verify`). Each validates its input, calls the
//! account object with the typed protocol, and shapes the answer; refusals map in
//! [`super::accounts::outcome`] and `crate::error`.

use super::accounts::{by_email_with_id, by_id, call, deliver, done, outcome, read_json_body, tokens, unexpected};
use crate::account::core::amr;
use crate::account::core::ACR_TWO_FACTORS;
use crate::account::mfa::parse_ticket;
use crate::account::protocol::{AccountOutcome, AccountRequest, MfaMethod};
use crate::config::{Config, DpopMode};
use crate::error::ApiError;
use crate::input::{self, PasskeyFor, WebAuthnCredential};
use crate::jwt::b64;
use crate::limits::Action;
use crate::mfa::qr;
use crate::web::response;
use crate::web::verify::{self, Accept, Authenticated};
use crate::web::{self, dpop, Reply};
use worker::{Env, Request, Response};

/// How recent a second factor must be to remove it or replace the recovery codes, seconds.
pub const FRESH_SECOND_FACTOR_SECONDS: i64 = 300;

/// The caller's account object.
pub(crate) fn own_account(env: &Env, user: &Authenticated) -> Result<worker::Stub, ApiError> {
    by_id(env, &user.claims().sub, ApiError::InvalidToken("token names no account".into()))
}

/// Refuses a token whose login did not pass a second factor in the last
/// [`FRESH_SECOND_FACTOR_SECONDS`], with the RFC 9470 challenge that says what would do.
fn require_fresh_second_factor(user: &Authenticated) -> Result<(), ApiError> {
    let claims = user.claims();
    let fresh = claims.amr.iter().any(|m| m == amr::MFA)
        && claims.auth_time.is_some_and(|at| web::now_seconds().saturating_sub(at) <= FRESH_SECOND_FACTOR_SECONDS);
    if fresh {
        return Ok(());
    }
    Err(ApiError::InsufficientUserAuthentication {
        reason: format!("a second factor in the last {FRESH_SECOND_FACTOR_SECONDS} seconds is required"),
        acr_values: Some(ACR_TWO_FACTORS.into()),
        max_age: Some(FRESH_SECOND_FACTOR_SECONDS),
        dpop: claims.cnf.is_some(),
    })
}

/// Refuses a token whose login is older than [`FRESH_SECOND_FACTOR_SECONDS`] (or says not when):
/// a stolen access token must not be enough to put a factor on someone's account.
pub(crate) fn require_recent_login(user: &Authenticated) -> Result<(), ApiError> {
    let claims = user.claims();
    let recent =
        claims.auth_time.is_some_and(|at| web::now_seconds().saturating_sub(at) <= FRESH_SECOND_FACTOR_SECONDS);
    if recent {
        return Ok(());
    }
    Err(ApiError::InsufficientUserAuthentication {
        reason: format!("a login in the last {FRESH_SECOND_FACTOR_SECONDS} seconds is required"),
        acr_values: None,
        max_age: Some(FRESH_SECOND_FACTOR_SECONDS),
        dpop: claims.cnf.is_some(),
    })
}

fn recovery_codes_answer(answer: AccountOutcome) -> Result<Reply, ApiError> {
    match outcome(answer)? {
        AccountOutcome::RecoveryCodes { codes } => {
            Ok(response::json(&serde_json::json!({ "recovery_codes": codes }), 200, "no-store")?.into())
        }
        other => Err(unexpected(&other)),
    }
}

/// `POST /auth/mfa/totp/enroll` (Bearer, a login in the last five minutes): a new secret, its
/// `otpauth://` URI and that URI as an SVG QR code (a `data:` URI), pending until confirmed.
pub async fn totp_enroll(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let user = verify::authenticate(&req, env, config, Accept::Own).await?;
    require_recent_login(&user)?;
    match outcome(call(own_account(env, &user)?, &AccountRequest::TotpEnroll, rid).await?)? {
        AccountOutcome::TotpEnrollment { secret, otpauth_uri } => {
            let qr = qr::data_uri(&otpauth_uri).map_err(|e| ApiError::Server(format!("QR code: {e:?}")))?;
            let body = serde_json::json!({ "secret": secret, "otpauth_uri": otpauth_uri, "qr_svg": qr });
            Ok(response::json(&body, 200, "no-store")?.into())
        }
        other => Err(unexpected(&other)),
    }
}

/// `POST /auth/mfa/totp/confirm` (Bearer) `{"code"}`: turns the factor on; the recovery codes, once.
pub async fn totp_confirm(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let user = verify::authenticate(&req, env, config, Accept::Own).await?;
    let code = input::mfa_code(&read_json_body(&mut req, false).await?)?;
    let client = web::limits::client_tag(&req, &user.claims().sub);
    recovery_codes_answer(call(own_account(env, &user)?, &AccountRequest::TotpConfirm { code, client }, rid).await?)
}

/// `DELETE /auth/mfa/totp` (Bearer, a second factor in the last five minutes).
pub async fn totp_remove(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let user = verify::authenticate(&req, env, config, Accept::Own).await?;
    require_fresh_second_factor(&user)?;
    done(call(own_account(env, &user)?, &AccountRequest::TotpRemove, rid).await?)?;
    let response = Response::empty()?.with_status(204);
    response.headers().set("cache-control", "no-store")?;
    Ok(response.into())
}

/// `POST /auth/mfa/recovery-codes` (Bearer, a fresh second factor): a new set replaces the old one.
pub async fn recovery_codes(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let user = verify::authenticate(&req, env, config, Accept::Own).await?;
    require_fresh_second_factor(&user)?;
    recovery_codes_answer(call(own_account(env, &user)?, &AccountRequest::RecoveryRegenerate, rid).await?)
}

/// `POST /auth/mfa/verify` `{"mfa_ticket", "method", "code", "transport"?}`: the second step of a
/// login; answers as `/auth/login` does. With a DPoP proof the session is bound to its key, which
/// must be the login's.
pub async fn verify(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let body = read_json_body(&mut req, false).await?;
    if input::mfa_method(&body).ok().as_deref() == Some("webauthn") {
        let parsed = input::webauthn_login(&body)?;
        if !matches!(parsed.0, input::PasskeyFor::Ticket(_)) {
            return Err(ApiError::InvalidRequest("mfa_ticket is required".into()));
        }
        return redeem_passkey(&req, env, config, rid, parsed).await;
    }
    let (ticket, method, code, transport) = input::mfa_verify(&body)?;
    let method = match method.as_str() {
        "totp" => MfaMethod::Totp,
        "recovery_code" => MfaMethod::RecoveryCode,
        _ => return Err(ApiError::InvalidRequest("method must be totp, recovery_code or webauthn".into())),
    };
    let (account, secret) = parse_ticket(&ticket).ok_or(ApiError::InvalidMfaTicket)?;
    // Each code is a guess at the account, limited like a password guess (per address, and per
    // address and account) before the object is asked.
    web::limits::admit(env, &req, Action::SecondFactor { account: &account }).await?;
    let client = web::limits::client_tag(&req, &account);
    let jkt = dpop::token_request_key(&req, config, config.dpop.mode == DpopMode::Required).await?;
    let stub = by_id(env, &account, ApiError::InvalidMfaTicket)?;
    let device = Some(super::accounts::device(&req));
    let request = AccountRequest::MfaVerify { ticket: b64::encode(secret), method, code, jkt, client, device };
    let answer = super::accounts::mail_verification(env, config, rid, call(stub, &request, rid).await?);
    let pair = super::accounts::tokens(answer)?;
    // A login beyond the session limit ends (and denylists) the least recently used session.
    crate::web::denylist::forget(&account);
    Ok(deliver(pair, transport, config)?.into())
}

/// The account object a passkey login goes to, its id, and the ticket secret (for a second step).
pub(crate) fn target(env: &Env, whom: &PasskeyFor) -> Result<(worker::Stub, String, Option<String>), ApiError> {
    match whom {
        PasskeyFor::Email(email) => {
            let (stub, id) = by_email_with_id(env, email)?;
            Ok((stub, id, None))
        }
        PasskeyFor::Ticket(ticket) => {
            let (account, secret) = parse_ticket(ticket).ok_or(ApiError::InvalidMfaTicket)?;
            let stub = by_id(env, &account, ApiError::InvalidMfaTicket)?;
            Ok((stub, account, Some(b64::encode(secret))))
        }
    }
}

/// Redeems an assertion: a passwordless login or a ticket's second step; answers as a login.
pub(crate) async fn redeem_passkey(
    req: &Request,
    env: &Env,
    config: &Config,
    rid: &str,
    (whom, credential, transport): (PasskeyFor, WebAuthnCredential, input::Transport),
) -> Result<Reply, ApiError> {
    let jkt = dpop::token_request_key(req, config, config.dpop.mode == DpopMode::Required).await?;
    let (stub, account, ticket) = target(env, &whom)?;
    // An assertion is a guess at the account too: limited per address, and per address and account.
    let action = match &whom {
        PasskeyFor::Email(email) => Action::Login { email },
        PasskeyFor::Ticket(_) => Action::SecondFactor { account: &account },
    };
    web::limits::admit(env, req, action).await?;
    let client = web::limits::client_tag(req, &account);
    let request = AccountRequest::PasskeyLogin {
        ticket,
        credential_id: credential.id,
        client_data_json: credential.client_data_json,
        authenticator_data: credential.authenticator_data.unwrap_or_default(),
        signature: credential.signature.unwrap_or_default(),
        jkt,
        client,
        device: Some(super::accounts::device(req)),
    };
    let answer = super::accounts::mail_verification(env, config, rid, call(stub, &request, rid).await?);
    let pair = tokens(answer)?;
    crate::web::denylist::forget(&account);
    Ok(deliver(pair, transport, config)?.into())
}
