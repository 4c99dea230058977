//! The passkey routes (`/auth/webauthn/*`): adding a passkey to the signed-in account, and signing
//! in with one, passwordless (by email) or as the second step of a password login (by MFA ticket).
//! The ceremonies are verified by the account object ([`crate::account::core`] with
//! [`crate::mfa::webauthn`]); these handlers validate input, call it and shape the WebAuthn options.

use super::accounts::{call, outcome, read_json_body, unexpected};
use super::mfa::{own_account, redeem_passkey, require_recent_login, target};
use crate::account::mfa::CHALLENGE_SECONDS;
use crate::account::protocol::{AccountOutcome, AccountRequest};
use crate::config::Config;
use crate::error::ApiError;
use crate::input::{self, PasskeyFor};
use crate::jwt::b64;
use crate::limits::Action;
use crate::mfa::webauthn::CoseAlgorithm;
use crate::web::response;
use crate::web::verify::{self, Accept};
use crate::web::{limits, Reply};
use serde_json::{json, Value};
use worker::{Env, Request};

fn options_answer(public_key: Value) -> Result<Reply, ApiError> {
    Ok(response::json(&json!({ "publicKey": public_key }), 200, "no-store")?.into())
}

fn descriptors(ids: &[String]) -> Vec<Value> {
    ids.iter().map(|id| json!({ "type": "public-key", "id": id })).collect()
}

/// `POST /auth/webauthn/register/options` (Bearer, a login in the last five minutes): the
/// `PublicKeyCredentialCreationOptions` (JSON form) to add a passkey.
pub async fn register_options(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let user = verify::authenticate(&req, env, config, Accept::Own).await?;
    require_recent_login(&user)?;
    match outcome(call(own_account(env, &user)?, &AccountRequest::PasskeyRegisterOptions, rid).await?)? {
        AccountOutcome::PasskeyOptions { challenge, user_id, user_name, credentials } => options_answer(json!({
            "challenge": challenge,
            "rp": { "id": config.webauthn_rp_id, "name": config.webauthn_rp_id },
            "user": { "id": b64::encode(user_id.as_bytes()), "name": user_name, "displayName": user_name },
            "pubKeyCredParams": CoseAlgorithm::ALL.iter().map(|a| json!({ "type": "public-key", "alg": a.id() })).collect::<Vec<_>>(),
            "timeout": CHALLENGE_SECONDS * 1000,
            "attestation": "none",
            "authenticatorSelection": { "residentKey": "required", "requireResidentKey": true, "userVerification": "preferred" },
            "excludeCredentials": descriptors(&credentials),
        })),
        other => Err(unexpected(&other)),
    }
}

/// `POST /auth/webauthn/register/verify` (Bearer, a recent login) `{"credential"}`: 201 `{"id"}`.
pub async fn register_verify(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let user = verify::authenticate(&req, env, config, Accept::Own).await?;
    require_recent_login(&user)?;
    let credential = input::webauthn_register(&read_json_body(&mut req, false).await?)?;
    let request = AccountRequest::PasskeyRegisterVerify {
        client_data_json: credential.client_data_json,
        attestation_object: credential.attestation_object.unwrap_or_default(),
        transports: credential.transports,
    };
    match outcome(call(own_account(env, &user)?, &request, rid).await?)? {
        AccountOutcome::PasskeyRegistered { id } => Ok(response::json(&json!({ "id": id }), 201, "no-store")?.into()),
        other => Err(unexpected(&other)),
    }
}

/// `POST /auth/webauthn/login/options` `{"email"}` (passwordless; the same shape for every email)
/// or `{"mfa_ticket"}` (the second step): the `PublicKeyCredentialRequestOptions` (JSON form).
pub async fn login_options(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let whom = input::webauthn_login_options(&read_json_body(&mut req, false).await?)?;
    // Anyone may ask for passwordless options: limited like a login attempt at that email.
    if let PasskeyFor::Email(email) = &whom {
        limits::admit(env, &req, Action::Login { email }).await?;
    }
    let passwordless = matches!(whom, PasskeyFor::Email(_));
    let (stub, _, ticket) = target(env, &whom)?;
    match outcome(call(stub, &AccountRequest::PasskeyLoginOptions { ticket }, rid).await?)? {
        AccountOutcome::PasskeyOptions { challenge, credentials, .. } => options_answer(json!({
            "challenge": challenge,
            "rpId": config.webauthn_rp_id,
            "timeout": CHALLENGE_SECONDS * 1000,
            "userVerification": if passwordless { "required" } else { "preferred" },
            "allowCredentials": descriptors(&credentials),
        })),
        other => Err(unexpected(&other)),
    }
}

/// `POST /auth/webauthn/login/verify` `{"email" | "mfa_ticket", "credential", "transport"?}`.
pub async fn login_verify(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let body = read_json_body(&mut req, false).await?;
    let parsed = input::webauthn_login(&body)?;
    // A passwordless login is a first factor: Turnstile as on /auth/login, when it is on.
    if matches!(parsed.0, PasskeyFor::Email(_)) {
        limits::turnstile(config, &req, &body).await?;
    }
    redeem_passkey(&req, env, config, rid, parsed).await
}
