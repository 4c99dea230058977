//! Breached passwords (`PASSWORD_BREACH_CHECK=hibp`): a new password (registration, reset, change)
//! is looked up in Have I Been Pwned's k-anonymity range API. Only the first five hex digits of its
//! SHA-1 leave the Worker; the answer (padded, so its size tells nothing either) is compared here.
//! A password the API lists is refused with 400 `breached_password`. The check fails open: if the
//! API does not answer in time, the password is taken and the failure logged (an outage of a third
//! party must not stop sign-ups; the length rule still holds).

use crate::config::Config;
use crate::error::ApiError;
use crate::password::{breach_listed, breach_range};
use crate::web::remote_keys::within;
use crate::web::response::read_capped;
use worker::{AbortController, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

/// How long the range API may take, milliseconds.
const TIMEOUT_MS: u64 = 3_000;
/// The most of an answer that is read (a padded range is about 30 KiB).
const MAX_ANSWER: usize = 256 * 1024;

/// Refuses `password` with 400 `breached_password` when the range API lists it; off without
/// `PASSWORD_BREACH_CHECK=hibp`.
pub async fn check(config: &Config, password: &str) -> Result<(), ApiError> {
    let Some(base) = &config.breach_check else { return Ok(()) };
    let (prefix, suffix) = breach_range(password);
    let controller = AbortController::default();
    let signal = controller.signal();
    let url = format!("{base}{prefix}");
    let ask = async {
        let headers = Headers::new();
        headers.set("add-padding", "true").map_err(|e| e.to_string())?;
        let mut init = RequestInit::new();
        init.with_method(Method::Get).with_headers(headers).with_redirect(RequestRedirect::Manual);
        let request = Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
        let mut answer = Fetch::Request(request).send_with_signal(&signal).await.map_err(|e| e.to_string())?;
        if answer.status_code() != 200 {
            return Err(format!("status {}", answer.status_code()));
        }
        let body = read_capped(answer.stream().map_err(|e| e.to_string())?, MAX_ANSWER)
            .await
            .map_err(|_| "unreadable or too large answer".to_owned())?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    let answer = match within(TIMEOUT_MS, ask).await {
        Some(answer) => answer,
        None => {
            controller.abort();
            Err(format!("no answer within {TIMEOUT_MS} ms"))
        }
    };
    match answer {
        Ok(text) if breach_listed(&text, &suffix) => Err(ApiError::BreachedPassword),
        Ok(_) => Ok(()),
        Err(e) => {
            worker::console_error!("password breach check failed, password taken: {e}");
            Ok(())
        }
    }
}
