//! The one place errors become HTTP: status, stable `error` code, description, `WWW-Authenticate`
//! (RFC 6750 §3) and the other headers of an error answer. Pure: `web::response` turns [`ErrorAnswer`]
//! into a runtime response.

/// The kind and position of a JSON error, never its text: serde's message can quote the input
/// (a password, a hash, a private key).
pub fn json_error_detail(e: &serde_json::Error) -> String {
    format!("{:?} at line {} column {}", e.classify(), e.line(), e.column())
}

/// Every way a request can fail, with whose fault it is. The variants only the issuer answers with
/// exist in builds with the `issuer` feature alone, so the edge Worker's wasm carries neither their
/// texts nor their arms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The client sent a request that cannot be processed (400 `invalid_request`).
    InvalidRequest(String),
    /// 400 `invalid_or_expired_token`: a verification or reset link is unknown, used or expired.
    #[cfg(feature = "issuer")]
    InvalidLink,
    /// 403 `invalid_credentials`: a signed-in user's current password is wrong.
    #[cfg(feature = "issuer")]
    WrongPassword,
    /// 403 `account_disabled`: an admin disabled the account.
    #[cfg(feature = "issuer")]
    AccountDisabled,
    /// 403 `email_not_verified`: `EMAIL_VERIFICATION=required` and the email is not verified.
    #[cfg(feature = "issuer")]
    EmailNotVerified,
    /// 403 `forbidden`: the route needs a role the token does not carry.
    #[cfg(feature = "issuer")]
    Forbidden(String),
    /// 503 `mail_unavailable`: no mail transport is configured, or the mail could not be sent.
    #[cfg(feature = "issuer")]
    MailUnavailable,
    /// 400 `breached_password`: the new password is in a breach corpus (`PASSWORD_BREACH_CHECK`).
    #[cfg(feature = "issuer")]
    BreachedPassword,
    /// The body is over the limit (413 `invalid_request`).
    PayloadTooLarge,
    /// No route here (404 `not_found`).
    NotFound,
    /// The route exists for other methods (405 `method_not_allowed`).
    MethodNotAllowed(&'static str),
    /// A protected route without bearer credentials (401, no error code: RFC 6750 §3.1).
    MissingToken,
    /// The bearer token is refused (401 `invalid_token`).
    InvalidToken(String),
    /// The token is valid but a route policy is not met (403 `insufficient_scope`).
    InsufficientScope { reason: String, scope: Option<String> },
    /// The token is valid but how the user authenticated falls short of a route policy's `amr`,
    /// `acr` or `max_age` (401 `insufficient_user_authentication` with `acr_values` and `max_age`
    /// in the challenge, RFC 9470 §3); `dpop`: the token is DPoP-bound, so the challenge is `DPoP`.
    InsufficientUserAuthentication { reason: String, acr_values: Option<String>, max_age: Option<i64>, dpop: bool },
    /// The password was right and a second factor is needed (403 `mfa_required`, the body carries
    /// `mfa_ticket` and `methods`).
    #[cfg(feature = "issuer")]
    MfaRequired { ticket: String, methods: Vec<String> },
    /// A second factor is enrolled already (409 `mfa_already_enabled`).
    #[cfg(feature = "issuer")]
    MfaAlreadyEnabled,
    /// There is no second factor, or no pending enrolment, to act on (409 `mfa_not_enabled`).
    #[cfg(feature = "issuer")]
    MfaNotEnabled,
    /// The second-factor code is wrong or was used already (401 `invalid_mfa_code`).
    #[cfg(feature = "issuer")]
    InvalidMfaCode,
    /// The MFA ticket is unknown, expired, used, or of another DPoP key (401 `invalid_mfa_ticket`).
    #[cfg(feature = "issuer")]
    InvalidMfaTicket,
    /// A passkey registration did not verify, its challenge was unknown, used or expired, or the
    /// credential is registered already (400 `invalid_passkey`).
    #[cfg(feature = "issuer")]
    InvalidPasskey,
    /// The account has the most passkeys it may (409 `passkey_limit`).
    #[cfg(feature = "issuer")]
    PasskeyLimit,
    /// The password is too short or too long (400 `weak_password`).
    #[cfg(feature = "issuer")]
    WeakPassword,
    /// The email is registered already (409 `email_taken`).
    #[cfg(feature = "issuer")]
    EmailTaken,
    /// Wrong password or unknown email, indistinguishably (401 `invalid_credentials`).
    #[cfg(feature = "issuer")]
    InvalidCredentials,
    /// Too many failed logins on this account (429 `too_many_attempts`).
    #[cfg(feature = "issuer")]
    TooManyAttempts { retry_after: i64 },
    /// A rate limit of the client's address (or address and account) is spent (429
    /// `too_many_requests`, API.md "Limits and operations"); `limit` names the binding, for the log.
    TooManyRequests { retry_after: i64, limit: &'static str },
    /// Turnstile is on and the request brings no token (400 `turnstile_required`).
    TurnstileRequired,
    /// Turnstile's siteverify refused the request's token (403 `turnstile_failed`).
    TurnstileFailed,
    /// The refresh token is unknown, expired, revoked or reused (401 `invalid_grant`).
    #[cfg(feature = "issuer")]
    InvalidGrant,
    /// The same at the OAuth token endpoint, which answers it 400 (RFC 6749 §5.2).
    #[cfg(feature = "issuer")]
    GrantRefused,
    /// The requested scope exceeds what was granted (400 `invalid_scope`, RFC 6749 §5.2).
    #[cfg(feature = "issuer")]
    InvalidScope,
    /// `grant_type` is not `refresh_token` (400 `unsupported_grant_type`, RFC 6749 §5.2).
    #[cfg(feature = "issuer")]
    UnsupportedGrantType,
    /// Client authentication failed (401 `invalid_client` with a `Basic` challenge, RFC 6749 §5.2).
    #[cfg(feature = "issuer")]
    InvalidClient,
    /// A cookie request without an allowed `Origin` (403 `invalid_request`).
    ForbiddenOrigin,
    /// The server's fault (500 `server_error`); the detail is logged, never sent.
    Server(String),
    /// A dependency failed in a way worth retrying (503 `temporarily_unavailable`); detail logged.
    Unavailable(String),
    /// A resource request without credentials where DPoP is required (401 with a `DPoP` challenge
    /// listing `algs` and no error code: RFC 9449 §7.1, RFC 6750 §3.1).
    DpopRequired,
    /// The token presented with the `DPoP` scheme is refused, or a token was presented as a bearer
    /// token where it must come with DPoP (401 `invalid_token` with a `DPoP` challenge, RFC 9449
    /// §7.1, §7.2).
    DpopInvalidToken(String),
    /// The DPoP proof is refused (`invalid_dpop_proof`): 401 with a `DPoP` challenge at a resource
    /// (RFC 9449 §7.1), 400 at a token endpoint (§5).
    InvalidDpopProof { why: String, at: DpopSite },
    /// A current server nonce is needed (`use_dpop_nonce`, the nonce in `DPoP-Nonce`): 401 with a
    /// `DPoP` challenge at a resource (RFC 9449 §9), 400 at a token endpoint (§8).
    UseDpopNonce { nonce: String, at: DpopSite },
}

/// Where a DPoP proof was refused, which decides the status (RFC 9449 §5 and §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopSite {
    /// A protected resource (the edge, and the issuer's routes that take an access token).
    Resource,
    /// A token endpoint: `/auth/login`, `/auth/refresh`, `/oauth/token`.
    TokenEndpoint,
}

/// The `algs` of every `DPoP` challenge (RFC 9449 §7.1): the proof algorithms accepted.
pub fn dpop_algs() -> String {
    crate::jwt::dpop::ProofPolicy::default().alg_names().join(" ")
}

/// Keeps only characters RFC 6750 §3 allows inside a quoted `WWW-Authenticate` attribute.
fn quoted(text: &str) -> String {
    text.chars().filter(|c| matches!(*c, ' ' | '!' | '#'..='[' | ']'..='~')).collect()
}

impl ApiError {
    /// The status, the stable code and the client-safe description.
    pub fn parts(&self) -> (u16, &'static str, String) {
        match self {
            ApiError::InvalidRequest(why) => (400, "invalid_request", why.clone()),
            #[cfg(feature = "issuer")]
            ApiError::InvalidLink => {
                (400, "invalid_or_expired_token", "the link is invalid, expired or used already".into())
            }
            #[cfg(feature = "issuer")]
            ApiError::WrongPassword => {
                (403, "invalid_credentials", "the account's password is missing or wrong".into())
            }
            #[cfg(feature = "issuer")]
            ApiError::AccountDisabled => (403, "account_disabled", "this account is disabled".into()),
            #[cfg(feature = "issuer")]
            ApiError::EmailNotVerified => {
                (403, "email_not_verified", "verify the email address first; a new link was sent".into())
            }
            #[cfg(feature = "issuer")]
            ApiError::Forbidden(why) => (403, "forbidden", why.clone()),
            #[cfg(feature = "issuer")]
            ApiError::MailUnavailable => (503, "mail_unavailable", "mail cannot be sent now".into()),
            #[cfg(feature = "issuer")]
            ApiError::BreachedPassword => {
                (400, "breached_password", "this password is known from a data breach; choose another".into())
            }
            ApiError::PayloadTooLarge => (413, "invalid_request", "request body is too large".into()),
            ApiError::NotFound => (404, "not_found", "no such resource".into()),
            ApiError::MethodNotAllowed(_) => (405, "method_not_allowed", "method not allowed here".into()),
            ApiError::MissingToken => (401, "invalid_token", "a bearer access token is required".into()),
            ApiError::InvalidToken(why) => (401, "invalid_token", why.clone()),
            ApiError::InsufficientScope { reason, .. } => (403, "insufficient_scope", reason.clone()),
            ApiError::InsufficientUserAuthentication { reason, .. } => {
                (401, "insufficient_user_authentication", reason.clone())
            }
            #[cfg(feature = "issuer")]
            ApiError::MfaRequired { .. } => (403, "mfa_required", "a second factor is required".into()),
            #[cfg(feature = "issuer")]
            ApiError::MfaAlreadyEnabled => (409, "mfa_already_enabled", "a second factor is enrolled already".into()),
            #[cfg(feature = "issuer")]
            ApiError::MfaNotEnabled => (409, "mfa_not_enabled", "no second factor is enrolled or pending".into()),
            #[cfg(feature = "issuer")]
            ApiError::InvalidMfaCode => (401, "invalid_mfa_code", "the code is wrong or was used already".into()),
            #[cfg(feature = "issuer")]
            ApiError::InvalidMfaTicket => {
                (401, "invalid_mfa_ticket", "the MFA ticket is invalid, expired or used; log in again".into())
            }
            #[cfg(feature = "issuer")]
            ApiError::InvalidPasskey => {
                (400, "invalid_passkey", "the passkey ceremony did not verify, or its challenge was used".into())
            }
            #[cfg(feature = "issuer")]
            ApiError::PasskeyLimit => (409, "passkey_limit", "the account has the most passkeys it may".into()),
            #[cfg(feature = "issuer")]
            ApiError::WeakPassword => (400, "weak_password", "password must be 8 to 256 characters".into()),
            #[cfg(feature = "issuer")]
            ApiError::EmailTaken => (409, "email_taken", "that email is already registered".into()),
            #[cfg(feature = "issuer")]
            ApiError::InvalidCredentials => (401, "invalid_credentials", "email or password is wrong".into()),
            #[cfg(feature = "issuer")]
            ApiError::TooManyAttempts { .. } => {
                (429, "too_many_attempts", "too many failed attempts; try again later".into())
            }
            ApiError::TooManyRequests { limit, .. } => {
                (429, "too_many_requests", format!("too many requests from this client ({limit}); try again later"))
            }
            ApiError::TurnstileRequired => (
                400,
                "turnstile_required",
                "a Turnstile token is required (cf-turnstile-response in the body or header)".into(),
            ),
            ApiError::TurnstileFailed => (403, "turnstile_failed", "the Turnstile challenge was not passed".into()),
            #[cfg(feature = "issuer")]
            ApiError::InvalidGrant => (401, "invalid_grant", "refresh token is invalid, expired or revoked".into()),
            #[cfg(feature = "issuer")]
            ApiError::GrantRefused => (400, "invalid_grant", "refresh token is invalid, expired or revoked".into()),
            #[cfg(feature = "issuer")]
            ApiError::InvalidScope => (400, "invalid_scope", "the requested scope exceeds the granted scope".into()),
            #[cfg(feature = "issuer")]
            ApiError::UnsupportedGrantType => {
                (400, "unsupported_grant_type", "only the refresh_token grant is supported".into())
            }
            #[cfg(feature = "issuer")]
            ApiError::InvalidClient => (401, "invalid_client", "client authentication failed".into()),
            ApiError::ForbiddenOrigin => (403, "invalid_request", "origin is not allowed".into()),
            ApiError::Server(_) => (500, "server_error", "the server could not complete the request".into()),
            ApiError::Unavailable(_) => {
                (503, "temporarily_unavailable", "the service is temporarily unavailable; retry".into())
            }
            ApiError::DpopRequired => {
                (401, "invalid_token", "a DPoP-bound access token and a DPoP proof are required".into())
            }
            ApiError::DpopInvalidToken(why) => (401, "invalid_token", why.clone()),
            ApiError::InvalidDpopProof { why, at } => (dpop_status(*at), "invalid_dpop_proof", why.clone()),
            ApiError::UseDpopNonce { at, .. } => {
                (dpop_status(*at), "use_dpop_nonce", "a DPoP proof with the nonce in DPoP-Nonce is required".into())
            }
        }
    }

    /// The line to log for a server fault, with its detail (never sent): `None` for the client's.
    pub fn log_line(&self) -> Option<String> {
        match self {
            ApiError::Server(detail) | ApiError::Unavailable(detail) => Some(format!("{}: {detail}", self.parts().1)),
            _ => None,
        }
    }

    /// Everything an error answer is made of, with `WWW-Authenticate` for bearer errors (`realm` is
    /// the issuer). Server faults keep their detail in [`ErrorAnswer::log`], never in the body.
    pub fn answer(&self, realm: &str) -> ErrorAnswer {
        let (status, code, description) = self.parts();
        let log = self.log_line();
        let body = match self {
            #[cfg(feature = "issuer")]
            ApiError::MfaRequired { ticket, methods } => serde_json::json!({
                "error": code, "error_description": description, "mfa_ticket": ticket, "methods": methods,
            }),
            _ => serde_json::json!({ "error": code, "error_description": description }),
        }
        .to_string();
        let mut headers: Vec<(&'static str, String)> =
            vec![("content-type", "application/json".into()), ("cache-control", "no-store".into())];
        let realm = quoted(realm);
        let challenge = match self {
            ApiError::MissingToken => Some(format!("Bearer realm=\"{realm}\"")),
            ApiError::InvalidToken(_) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                quoted(&description)
            )),
            ApiError::InsufficientScope { scope, .. } => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{}\"{}",
                quoted(&description),
                scope.as_ref().map(|s| format!(", scope=\"{}\"", quoted(s))).unwrap_or_default()
            )),
            ApiError::InsufficientUserAuthentication { acr_values, max_age, dpop, .. } => {
                let scheme = if *dpop { "DPoP" } else { "Bearer" };
                let acr = acr_values.as_ref().map(|a| format!(", acr_values=\"{}\"", quoted(a))).unwrap_or_default();
                let age = max_age.map(|m| format!(", max_age=\"{m}\"")).unwrap_or_default();
                let algs = if *dpop { format!(", algs=\"{}\"", dpop_algs()) } else { String::new() };
                Some(format!(
                    "{scheme} realm=\"{realm}\", error=\"insufficient_user_authentication\", error_description=\"{}\"{acr}{age}{algs}",
                    quoted(&description)
                ))
            }
            #[cfg(feature = "issuer")]
            ApiError::InvalidClient => Some(format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")),
            ApiError::DpopRequired => Some(format!("DPoP realm=\"{realm}\", algs=\"{}\"", dpop_algs())),
            ApiError::DpopInvalidToken(_)
            | ApiError::InvalidDpopProof { at: DpopSite::Resource, .. }
            | ApiError::UseDpopNonce { at: DpopSite::Resource, .. } => Some(format!(
                "DPoP realm=\"{realm}\", error=\"{code}\", error_description=\"{}\", algs=\"{}\"",
                quoted(&description),
                dpop_algs()
            )),
            _ => None,
        };
        if let Some(challenge) = challenge {
            headers.push(("www-authenticate", challenge));
        }
        match self {
            #[cfg(feature = "issuer")]
            ApiError::TooManyAttempts { retry_after } => {
                headers.push(("retry-after", (*retry_after).max(1).to_string()))
            }
            ApiError::TooManyRequests { retry_after, .. } => {
                headers.push(("retry-after", (*retry_after).max(1).to_string()))
            }
            ApiError::MethodNotAllowed(allow) => headers.push(("allow", (*allow).to_owned())),
            ApiError::Unavailable(_) => headers.push(("retry-after", "1".into())),
            ApiError::UseDpopNonce { nonce, .. } => headers.push(("dpop-nonce", nonce.clone())),
            _ => {}
        }
        ErrorAnswer { status, headers, body, log }
    }
}

/// A token endpoint answers DPoP errors 400 (RFC 9449 §5, RFC 6749 §5.2); a resource 401 (§7.1).
fn dpop_status(at: DpopSite) -> u16 {
    match at {
        DpopSite::Resource => 401,
        DpopSite::TokenEndpoint => 400,
    }
}

/// An error answer, ready to become a response: status, headers, JSON body, and the line to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The headers, lower-case names.
    pub headers: Vec<(&'static str, String)>,
    /// `{"error", "error_description"}`.
    pub body: String,
    /// What to log for a server fault (never sent).
    pub log: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(answer: &ErrorAnswer) -> Option<&str> {
        answer.headers.iter().find(|(name, _)| *name == "www-authenticate").map(|(_, v)| v.as_str())
    }

    #[test]
    fn insufficient_user_authentication_is_the_rfc_9470_challenge() {
        let error = ApiError::InsufficientUserAuthentication {
            reason: "authentication method otp is required".into(),
            acr_values: Some("aal2".into()),
            max_age: Some(300),
            dpop: false,
        };
        let answer = error.answer("https://issuer.test");
        assert_eq!(answer.status, 401);
        assert!(answer.body.contains(r#""error":"insufficient_user_authentication""#));
        assert_eq!(
            challenge(&answer),
            Some(
                r#"Bearer realm="https://issuer.test", error="insufficient_user_authentication", error_description="authentication method otp is required", acr_values="aal2", max_age="300""#
            )
        );
        // A DPoP-bound token gets the DPoP scheme (RFC 9449 §7.1), with its algs; no acr, no acr_values.
        let dpop = ApiError::InsufficientUserAuthentication {
            reason: "r".into(),
            acr_values: None,
            max_age: Some(0),
            dpop: true,
        }
        .answer("https://issuer.test");
        let c = challenge(&dpop).unwrap();
        assert!(c.starts_with("DPoP realm=") && c.contains(r#"error="insufficient_user_authentication""#), "{c}");
        assert!(c.contains(r#"max_age="0""#) && c.contains("algs=") && !c.contains("acr_values"), "{c}");
    }
}
