//! The account routes (`/auth/*`): validate input, pick the account object, call it with the typed
//! protocol, and turn its outcome into HTTP (the one mapping is [`outcome`]), putting the refresh
//! token on the requested transport (body or `__Host-` cookie, RFC 6265bis §4.1.3.2).

use super::cookies::{cookie_token, origin_allowed, own_origin, refresh_cookie};
use crate::account::family::Device;
use crate::account::protocol::{AccountOutcome, AccountRequest, LinkPurpose, Refusal, TokenIds, TokenPair};
use crate::config::{Config, DpopMode, RegistrationMode};
use crate::error::{ApiError, DpopSite};
use crate::input::{self, InputError, RefreshToken, Transport};
use crate::jwt::b64;
use crate::limits::Action;
use crate::web::response::{self, read_body};
use crate::web::verify::{self, Accept, Authenticated};
use crate::web::{denylist, dpop, limits, Reply};
use worker::{Env, Headers, Method, Request, RequestInit, Response};

/// The Durable Object namespace of accounts.
pub const ACCOUNTS_BINDING: &str = "ACCOUNTS";
/// The header that carries the request id to the account object.
pub use super::account_object::REQUEST_ID_HEADER;

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::TooLarge => ApiError::PayloadTooLarge,
            InputError::WeakPassword => ApiError::WeakPassword,
            other => ApiError::InvalidRequest(other.describe()),
        }
    }
}

/// Reads a JSON request body, refusing other content types and stopping at the size cap without
/// reading the rest.
pub(crate) async fn read_json_body(req: &mut Request, allow_empty: bool) -> Result<Vec<u8>, ApiError> {
    let content_type = req.headers().get("content-type")?;
    let body = read_body(req).await?;
    if body.is_empty() && allow_empty {
        return Ok(body);
    }
    if !input::is_json_content_type(content_type.as_deref()) {
        return Err(ApiError::InvalidRequest(InputError::ContentType.describe()));
    }
    Ok(body)
}

fn accounts(env: &Env) -> Result<worker::ObjectNamespace, ApiError> {
    env.durable_object(ACCOUNTS_BINDING).map_err(|e| ApiError::Server(format!("ACCOUNTS binding: {e}")))
}

/// Sends a request to an account object and reads its outcome. A failure to reach it is retryable.
pub(crate) async fn call(
    stub: worker::Stub,
    request: &AccountRequest,
    request_id: &str,
) -> Result<AccountOutcome, ApiError> {
    let body = serde_json::to_string(request).map_err(|e| ApiError::Server(e.to_string()))?;
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set(REQUEST_ID_HEADER, request_id)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
    let req = Request::new_with_init("https://account.internal/", &init)?;
    let mut answer =
        stub.fetch_with_request(req).await.map_err(|e| ApiError::Unavailable(format!("account object: {e}")))?;
    answer.json::<AccountOutcome>().await.map_err(|e| ApiError::Unavailable(format!("account object answer: {e}")))
}

/// The one mapping of an account object's refusals and failures to errors (API.md). Successes are
/// shaped by each route; an outcome a route does not expect is the server's fault.
pub(crate) fn outcome(outcome: AccountOutcome) -> Result<AccountOutcome, ApiError> {
    match outcome {
        AccountOutcome::Refused { refusal } => Err(match refusal {
            Refusal::EmailTaken => ApiError::EmailTaken,
            Refusal::InvalidCredentials => ApiError::InvalidCredentials,
            Refusal::Throttled { retry_after } => ApiError::TooManyAttempts { retry_after },
            Refusal::InvalidGrant => ApiError::InvalidGrant,
            Refusal::InvalidScope => ApiError::InvalidScope,
            Refusal::TokenRevoked => ApiError::InvalidToken(crate::revocation::Revoked::Token.to_string()),
            Refusal::DpopProofRequired => ApiError::InvalidDpopProof {
                why: crate::jwt::dpop::ProofError::Missing.to_string(),
                at: DpopSite::TokenEndpoint,
            },
            Refusal::MfaAlreadyEnabled => ApiError::MfaAlreadyEnabled,
            Refusal::MfaNotEnabled => ApiError::MfaNotEnabled,
            Refusal::InvalidMfaCode => ApiError::InvalidMfaCode,
            Refusal::InvalidMfaTicket => ApiError::InvalidMfaTicket,
            Refusal::InvalidPasskey => ApiError::InvalidPasskey,
            Refusal::PasskeyLimit => ApiError::PasskeyLimit,
            Refusal::InvalidLink => ApiError::InvalidLink,
            Refusal::WrongPassword => ApiError::WrongPassword,
            Refusal::NoSuchAccount | Refusal::NoSuchSession => ApiError::NotFound,
            Refusal::AccountDisabled => ApiError::AccountDisabled,
            Refusal::NotAdmin => ApiError::Forbidden(format!("the {} role is required", crate::config::ADMIN_ROLE)),
            Refusal::MailThrottled { retry_after } => ApiError::TooManyRequests { retry_after, limit: "mail" },
        }),
        AccountOutcome::EmailNotVerified { .. } => Err(ApiError::EmailNotVerified),
        AccountOutcome::Failed { retryable: true } => Err(ApiError::Unavailable("account object failed".into())),
        AccountOutcome::Failed { retryable: false } => Err(ApiError::Server("account object failed".into())),
        AccountOutcome::MfaRequired { ticket, methods } => Err(ApiError::MfaRequired { ticket, methods }),
        other => Ok(other),
    }
}

/// An outcome a route did not expect.
pub(crate) fn unexpected(outcome: &AccountOutcome) -> ApiError {
    // Only the outcome's name: some carry secrets (a TOTP secret, recovery codes, a token pair).
    let name = serde_json::to_value(outcome).ok().and_then(|v| v.get("outcome")?.as_str().map(str::to_owned));
    ApiError::Server(format!("account object answered {}", name.as_deref().unwrap_or("an unexpected outcome")))
}

/// A registration, or a login refused for an unverified email (`EMAIL_VERIFICATION=required`), may
/// carry a new verification link: it is mailed (after the answer), and the outcome goes on.
pub(crate) fn mail_verification(env: &Env, config: &Config, rid: &str, mut answer: AccountOutcome) -> AccountOutcome {
    let link = match &mut answer {
        AccountOutcome::EmailNotVerified { mail } | AccountOutcome::Registered { mail, .. } => mail.take(),
        _ => None,
    };
    if let Some(link) = link {
        super::mail::send_link(env, config, rid, LinkPurpose::Verify, link);
    }
    answer
}

/// The token pair of a login or refresh outcome.
pub(crate) fn tokens(answer: AccountOutcome) -> Result<TokenPair, ApiError> {
    match outcome(answer)? {
        AccountOutcome::Tokens { pair } => Ok(pair),
        other => Err(unexpected(&other)),
    }
}

/// That the account object did what was asked.
pub(crate) fn done(answer: AccountOutcome) -> Result<(), ApiError> {
    match outcome(answer)? {
        AccountOutcome::Done => Ok(()),
        other => Err(unexpected(&other)),
    }
}

pub(crate) fn by_email(env: &Env, email: &str) -> Result<worker::Stub, ApiError> {
    Ok(by_email_with_id(env, email)?.0)
}

/// The object an email names, and its id (the account's `sub` once registered).
pub(crate) fn by_email_with_id(env: &Env, email: &str) -> Result<(worker::Stub, String), ApiError> {
    let namespace = accounts(env)?;
    let id = namespace.id_from_name(&format!("email:{email}"))?;
    Ok((id.get_stub()?, id.to_string()))
}

/// The object a refresh token or a `sub` names; an id this namespace did not make is refused.
pub(crate) fn by_id(env: &Env, hex_id: &str, on_bad_id: ApiError) -> Result<worker::Stub, ApiError> {
    let namespace = accounts(env)?;
    let id = namespace.id_from_string(hex_id).map_err(|_| on_bad_id)?;
    Ok(id.get_stub()?)
}

/// A token pair on the requested transport (with a fresh `DPoP-Nonce` when nonces are on).
pub(crate) fn deliver(pair: TokenPair, transport: Transport, config: &Config) -> Result<Response, ApiError> {
    let mut body = serde_json::to_value(&pair).map_err(|e| ApiError::Server(e.to_string()))?;
    if transport == Transport::Cookie {
        if let Some(fields) = body.as_object_mut() {
            fields.remove("refresh_token");
        }
    }
    let response = with_nonce(response::json(&body, 200, "no-store")?, config)?;
    if transport == Transport::Cookie {
        response.headers().set("set-cookie", &refresh_cookie(&pair.refresh_token, pair.refresh_expires_in))?;
    }
    Ok(response)
}

/// Adds a fresh `DPoP-Nonce` to a token endpoint's answer when nonces are on (RFC 9449 §8.2).
pub(crate) fn with_nonce(response: Response, config: &Config) -> Result<Response, ApiError> {
    if let Some(nonce) = dpop::fresh_nonce(config) {
        response.headers().set("dpop-nonce", &nonce)?;
    }
    Ok(response)
}

/// `POST /auth/register`, limited per client address, with Turnstile when it is on. Under
/// `REGISTRATION_MODE=uniform` a new and a taken email get the same answer, after the same work.
pub async fn register(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    limits::admit(env, &req, Action::Register).await?;
    let body = read_json_body(&mut req, false).await?;
    let creds = input::register(&body)?;
    limits::turnstile(config, &req, &body).await?;
    super::breach::check(config, &creds.password).await?;
    let stub = by_email(env, &creds.email)?;
    let email = creds.email.clone();
    let request = AccountRequest::Register { email: creds.email, password: creds.password };
    let answer = mail_verification(env, config, rid, call(stub, &request, rid).await?);
    if config.registration_mode == RegistrationMode::Uniform {
        if matches!(answer, AccountOutcome::Refused { refusal: Refusal::EmailTaken }) {
            // The owner learns of the attempt by mail, after the answer (same time as a new email's).
            notify_taken(env, config, rid, email);
        }
        return match answer {
            AccountOutcome::Registered { .. } | AccountOutcome::Refused { refusal: Refusal::EmailTaken } => {
                Ok(response::json(&serde_json::json!({ "status": "accepted" }), 202, "no-store")?.into())
            }
            other => Err(match outcome(other) {
                Err(refused) => refused,
                Ok(answer) => unexpected(&answer),
            }),
        };
    }
    match outcome(answer)? {
        AccountOutcome::Registered { sub, .. } => {
            Ok(response::json(&serde_json::json!({ "sub": sub }), 201, "no-store")?.into())
        }
        other => Err(unexpected(&other)),
    }
}

/// Under `REGISTRATION_MODE=uniform`, after the answer of a registration refused as taken: asks
/// the account whether to notify its owner (at most once a minute) and mails the notice. In the
/// background, so a taken email's answer takes no longer than a new one's.
fn notify_taken(env: &Env, config: &Config, rid: &str, email: String) {
    if config.mail.is_none() {
        return;
    }
    let (env, config, id) = (env.clone(), config.clone(), rid.to_owned());
    crate::web::in_background(rid, async move {
        let asked = async { call(by_email(&env, &email)?, &AccountRequest::NotifyTaken { email }, &id).await };
        match asked.await {
            Ok(AccountOutcome::Notice { to }) => {
                super::mail::deliver(&env, &config, crate::mail::MailKind::Exists, &to, "", &id).await;
            }
            Ok(_) => {}
            Err(e) => worker::console_error!("taken-email notice failed: {e:?}"),
        }
    });
}

/// `POST /auth/login`; with a `DPoP` proof the session is bound to its key (RFC 9449 §5), and with
/// `DPOP_MODE=required` a proof must come.
///
/// Limited per client address and per (address, account) before the account object is asked, with
/// Turnstile when it is on; the object then slows down the client's group (docs/HARDENING.md).
pub async fn login(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    let body = read_json_body(&mut req, false).await?;
    let (creds, transport) = input::login(&body)?;
    limits::admit(env, &req, Action::Login { email: &creds.email }).await?;
    limits::turnstile(config, &req, &body).await?;
    let jkt = dpop::token_request_key(&req, config, config.dpop.mode == DpopMode::Required).await?;
    let namespace = accounts(env)?;
    let id = namespace.id_from_name(&format!("email:{}", creds.email))?;
    let sub = id.to_string();
    let client = limits::client_tag(&req, &sub);
    let device = Some(device(&req));
    let request = AccountRequest::Login { email: creds.email, password: creds.password, jkt, client, device };
    let answer = call(id.get_stub()?, &request, rid).await?;
    let pair = tokens(mail_verification(env, config, rid, answer))?;
    // A login beyond the session limit ends (and denylists) the least recently used session.
    denylist::forget(&sub);
    Ok(deliver(pair, transport, config)?.into())
}

/// `POST /auth/refresh`: the token from the body, or else from the cookie (with an allowed `Origin`).
pub async fn refresh(mut req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    limits::admit(env, &req, Action::Refresh).await?;
    let from_body = input::refresh(&read_json_body(&mut req, true).await?)?;
    let (text, transport) = match from_body {
        Some(token) => (token, Transport::Body),
        None => {
            let token = cookie_token(req.headers().get("cookie")?.as_deref())
                .ok_or_else(|| ApiError::InvalidRequest("refresh_token is missing".into()))?;
            let origin = req.headers().get("origin")?;
            if !origin_allowed(config, &own_origin(&req)?, origin.as_deref()) {
                return Err(ApiError::ForbiddenOrigin);
            }
            (token, Transport::Cookie)
        }
    };
    let token = RefreshToken::parse(&text).ok_or(ApiError::InvalidGrant)?;
    // The account object decides what a missing or other key means for the session (RFC 9449 §5).
    let jkt = dpop::token_request_key(&req, config, false).await?;
    let stub = by_id(env, &token.account, ApiError::InvalidGrant)?;
    let request = AccountRequest::Refresh { sid: token.sid, secret: b64::encode(token.secret), scope: None, jkt };
    let answer = call(stub, &request, rid).await?;
    if matches!(answer, AccountOutcome::Refused { .. }) {
        // Maybe a reuse that revoked the session: this isolate stops trusting its cached read.
        denylist::forget(&token.account);
    }
    Ok(deliver(tokens(answer)?, transport, config)?.into())
}

async fn end_sessions(req: &Request, env: &Env, config: &Config, all: bool, rid: &str) -> Result<Reply, ApiError> {
    let user = verify::authenticate(req, env, config, Accept::OwnForLogout).await?;
    let claims = user.claims();
    let stub = by_id(env, &claims.sub, ApiError::InvalidToken("token names no account".into()))?;
    let token = TokenIds::of(claims);
    let request = match (&claims.sid, all) {
        (_, true) => AccountRequest::LogoutAll { token },
        (Some(sid), false) => AccountRequest::Logout { sid: sid.clone(), token },
        (None, false) => return Err(ApiError::InvalidToken("token has no session".into())),
    };
    done(call(stub, &request, rid).await?)?;
    denylist::forget(&claims.sub);
    signed_out()
}

/// 204 with `Cache-Control: no-store`: a change carried out, nothing to show.
pub(crate) fn no_content() -> Result<Reply, ApiError> {
    let response = Response::empty()?.with_status(204);
    response.headers().set("cache-control", "no-store")?;
    Ok(response.into())
}

/// 204 that also clears the refresh-token cookie: the session (or the account) is gone.
pub(crate) fn signed_out() -> Result<Reply, ApiError> {
    let reply = no_content()?;
    reply.response.headers().set("set-cookie", &refresh_cookie("", 0))?;
    Ok(reply)
}

/// `POST /auth/logout`: idempotent, so a token whose session is already revoked may still call it
/// (the account object, the authority, then changes nothing).
pub async fn logout(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    end_sessions(&req, env, config, false, rid).await
}

/// `POST /auth/logout-all`.
pub async fn logout_all(req: Request, env: &Env, config: &Config, rid: &str) -> Result<Reply, ApiError> {
    end_sessions(&req, env, config, true, rid).await
}

/// The device a login comes from: its `User-Agent` and the country Cloudflare placed its address in.
pub(crate) fn device(req: &Request) -> Device {
    let agent = req.headers().get("user-agent").ok().flatten();
    let country = req.cf().and_then(|cf| cf.country());
    Device::new(agent.as_deref(), country.as_deref())
}

/// `GET /auth/me`: who the (non-revoked) access token belongs to.
pub fn me(user: &Authenticated) -> Result<Reply, ApiError> {
    let c = user.claims();
    let body = serde_json::json!({
        "sub": c.sub, "email": c.email, "email_verified": c.email_verified.unwrap_or(false), "roles": c.roles,
        "scope": c.scope, "sid": c.sid, "exp": c.exp,
    });
    Ok(response::json(&body, 200, "no-store")?.into())
}
