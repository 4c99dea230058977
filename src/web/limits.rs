//! Abuse limits, the runtime half (the pure half, and what each limit is keyed by, is
//! [`crate::limits`]): the Workers Rate Limiting bindings, asked before the account object is, and
//! Cloudflare Turnstile's siteverify. docs/HARDENING.md "Limits" lists them.

use super::remote_keys::within;
use super::response::{read_capped, ReadError};
use crate::config::Config;
use crate::error::ApiError;
use crate::limits::{self, Action, CLIENT_IP_HEADER, RATE_LIMIT_RETRY_AFTER, TURNSTILE_FIELD};
use wasm_bindgen::JsValue;
use worker::{AbortController, Env, Fetch, Headers, Request};

/// How long siteverify may take, milliseconds; longer is 503 (retryable), never a pass.
const TURNSTILE_TIMEOUT_MS: u64 = 5_000;
/// The most of siteverify's answer that is read.
const TURNSTILE_MAX_ANSWER: usize = 16 * 1024;

/// The request's client address, as the limits key it ([`limits::client_key`]); `None` when the
/// request has no `CF-Connecting-IP` (never on Cloudflare's edge) or it is not an address.
pub fn client(req: &Request) -> Option<String> {
    req.headers().get(CLIENT_IP_HEADER).ok().flatten().as_deref().and_then(limits::client_key)
}

/// The tag of the request's client address for `account` ([`limits::client_tag`]): whose failures
/// slow its attempts down. `None` without a client address.
pub fn client_tag(req: &Request, account: &str) -> Option<String> {
    client(req).map(|c| limits::client_tag(account, &c))
}

/// Spends one unit of every limit `action` counts against, refusing with 429 `too_many_requests`
/// (and `Retry-After`) at the first that is spent. A limit whose binding is not configured is off;
/// a request without a client address counts against none; a binding that fails lets the request
/// through (logged): the account's own slow-down still stands behind it.
pub async fn admit(env: &Env, req: &Request, action: Action<'_>) -> Result<(), ApiError> {
    let Some(client) = client(req) else { return Ok(()) };
    for (limit, key) in limits::checks(action, &client) {
        let binding = limit.binding();
        let present = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(binding)).is_ok_and(|b| !b.is_undefined());
        if !present {
            continue;
        }
        let outcome = match env.rate_limiter(binding) {
            Ok(limiter) => limiter.limit(key).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(outcome) if outcome.success => {}
            // The refusal line and the metrics data point carry the 429 and `too_many_requests`.
            Ok(_) => return Err(ApiError::TooManyRequests { retry_after: RATE_LIMIT_RETRY_AFTER, limit: binding }),
            Err(e) => worker::console_error!("rate limit {binding} failed, request let through: {e}"),
        }
    }
    Ok(())
}

/// With `TURNSTILE_SECRET` set, the request must bring a Turnstile token (the `cf-turnstile-response`
/// header or body member) that Cloudflare's siteverify (`TURNSTILE_VERIFY_URL`) admits: none is 400
/// `turnstile_required`, a refused one 403 `turnstile_failed`, siteverify failing 503. Off otherwise.
pub async fn turnstile(config: &Config, req: &Request, body: &[u8]) -> Result<(), ApiError> {
    let Some(turnstile) = &config.turnstile else { return Ok(()) };
    let header = req.headers().get(TURNSTILE_FIELD)?;
    let token = limits::turnstile_token(header.as_deref(), body).ok_or(ApiError::TurnstileRequired)?;
    let remote_ip = req.headers().get(CLIENT_IP_HEADER)?;
    let form = limits::turnstile_form(&turnstile.secret, &token, remote_ip.as_deref());
    let controller = AbortController::default();
    let signal = controller.signal();
    let ask = async {
        let headers = Headers::new();
        headers.set("content-type", "application/x-www-form-urlencoded").map_err(|e| e.to_string())?;
        let body = JsValue::from_str(&form);
        let request =
            super::subrequest(&turnstile.verify_url, "POST", &headers, Some(&body)).map_err(|e| e.to_string())?;
        let mut answer = Fetch::Request(request).send_with_signal(&signal).await.map_err(|e| e.to_string())?;
        if answer.status_code() != 200 {
            return Err(format!("status {}", answer.status_code()));
        }
        read_capped(answer.stream().map_err(|e| e.to_string())?, TURNSTILE_MAX_ANSWER).await.map_err(|e| match e {
            ReadError::TooLarge => "answer too large".to_owned(),
            ReadError::Stream(e) => e.to_string(),
        })
    };
    let Some(answer) = within(TURNSTILE_TIMEOUT_MS, ask).await else {
        controller.abort();
        return Err(ApiError::Unavailable(format!("Turnstile siteverify timed out after {TURNSTILE_TIMEOUT_MS} ms")));
    };
    let answer = answer.map_err(|e| ApiError::Unavailable(format!("Turnstile siteverify: {e}")))?;
    match limits::turnstile_admits(&answer) {
        true => Ok(()),
        false => Err(ApiError::TurnstileFailed),
    }
}
