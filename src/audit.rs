//! The Worker's JSON log lines, in one format: an audit line per security event of an account
//! (`"kind":"audit"`) and a line per refused request (`"kind":"refusal"`, written by `web::serve`),
//! with the request id, route, reason and subject, and never a password, token, hash or key (the type
//! has no field that could hold one). docs/OBSERVABILITY.md lists the fields.

use serde::Serialize;

/// The security events gatehouse records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Event {
    /// An account was created.
    #[serde(rename = "register")]
    Register,
    /// A login succeeded and started a session.
    #[serde(rename = "login.succeeded")]
    LoginSucceeded,
    /// A login failed (wrong password or unknown account).
    #[serde(rename = "login.failed")]
    LoginFailed,
    /// A login was refused because the email is throttled.
    #[serde(rename = "login.throttled")]
    LoginThrottled,
    /// A refresh token was rotated.
    #[serde(rename = "refresh.rotated")]
    RefreshRotated,
    /// A just-rotated refresh token was replayed within the grace period.
    #[serde(rename = "refresh.replayed")]
    RefreshReplayed,
    /// A refresh was refused (revoked, expired, idle or unknown).
    #[serde(rename = "refresh.refused")]
    RefreshRefused,
    /// An old refresh token was reused: the whole family was revoked.
    #[serde(rename = "refresh.reuse_detected")]
    ReuseDetected,
    /// One session was logged out.
    #[serde(rename = "logout")]
    Logout,
    /// Every session of the account was logged out.
    #[serde(rename = "logout_all")]
    LogoutAll,
    /// A token was revoked through RFC 7009 (the reason says which kind).
    #[serde(rename = "token.revoked")]
    TokenRevoked,
    /// A password hash was replaced by one of the configured scheme at login (PBKDF2 to argon2id).
    #[serde(rename = "password.rehashed")]
    PasswordRehashed,
    /// A TOTP enrolment was started (a secret made, not yet confirmed).
    #[serde(rename = "mfa.totp_enroll_started")]
    MfaEnrollStarted,
    /// A TOTP enrolment was confirmed with a first code: the factor is on, recovery codes issued.
    #[serde(rename = "mfa.enrolled")]
    MfaEnrolled,
    /// A password login asked for the second factor (an MFA ticket was issued).
    #[serde(rename = "mfa.required")]
    MfaRequired,
    /// A second factor was verified (the reason says which method).
    #[serde(rename = "mfa.verified")]
    MfaVerified,
    /// A second factor was refused (wrong or replayed code, bad ticket; the reason says which).
    #[serde(rename = "mfa.failed")]
    MfaFailed,
    /// The second factor was removed, with its recovery codes.
    #[serde(rename = "mfa.removed")]
    MfaRemoved,
    /// The recovery codes were replaced by a new set.
    #[serde(rename = "mfa.recovery_regenerated")]
    RecoveryRegenerated,
    /// A registration with the account's email was answered as accepted (uniform mode) and the
    /// owner was sent the "you already have an account" notice.
    #[serde(rename = "register.taken_notice")]
    RegisterTakenNotice,
    /// An email verification link was made (and handed to the mailer).
    #[serde(rename = "email.verification_sent")]
    EmailVerificationSent,
    /// The account's email was verified through its link.
    #[serde(rename = "email.verified")]
    EmailVerified,
    /// A verification or reset link was refused (unknown, expired, used; the reason says which kind).
    #[serde(rename = "link.refused")]
    LinkRefused,
    /// A password reset was asked for an existing account (a link made unless mail was throttled).
    #[serde(rename = "password.reset_requested")]
    PasswordResetRequested,
    /// The password was reset through a link: every session ended.
    #[serde(rename = "password.reset")]
    PasswordReset,
    /// A signed-in user changed the password: every other session ended.
    #[serde(rename = "password.changed")]
    PasswordChanged,
    /// The user ended one of their sessions from the session list.
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    /// Roles, scope or metadata changed (the reason says which).
    #[serde(rename = "account.updated")]
    AccountUpdated,
    /// An admin disabled the account: every session ended.
    #[serde(rename = "account.disabled")]
    AccountDisabled,
    /// An admin enabled the account again.
    #[serde(rename = "account.enabled")]
    AccountEnabled,
    /// The account was deleted (by its user or an admin: the reason says which).
    #[serde(rename = "account.deleted")]
    AccountDeleted,
    /// An admin called an admin route (`sub`: the admin; `account`: the account acted on).
    #[serde(rename = "admin.action")]
    AdminAction,
}

/// One log line: an audit event of an account, or a refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditLine<'a> {
    /// `"audit"` (an account event) or `"refusal"` (a refused request), so the lines are easy to pick out.
    pub kind: &'static str,
    /// What happened (audit lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    /// The route: the operation of an account event (`login`, `refresh`, …), or the route label of a
    /// refused request (`/auth/login`, `gateway:protected`, …; never the request's own path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'a str>,
    /// The HTTP status of a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The stable error code of a refusal (API.md), e.g. `invalid_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// The account (its object id; never the email), for account events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<&'a str>,
    /// The verified subject a refusal concerns, when there is one (a policy refusal's `sub`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<&'a str>,
    /// The session, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<&'a str>,
    /// The request id (also sent back as `X-Request-Id`).
    pub request_id: &'a str,
    /// A short reason: a code for account events, the client-safe description for refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// Seconds since the epoch.
    pub at: i64,
}

impl<'a> AuditLine<'a> {
    /// A line for `event` on `account`.
    pub fn new(event: Event, account: &'a str, request_id: &'a str, at: i64) -> Self {
        AuditLine {
            kind: "audit",
            event: Some(event),
            route: None,
            status: None,
            error: None,
            account: Some(account),
            sub: None,
            sid: None,
            request_id,
            reason: None,
            at,
        }
    }

    /// A line for a refused request: its route label, status and error code.
    pub fn refusal(route: &'a str, status: u16, error: &'a str, request_id: &'a str, at: i64) -> Self {
        AuditLine {
            kind: "refusal",
            event: None,
            route: Some(route),
            status: Some(status),
            error: Some(error),
            account: None,
            sub: None,
            sid: None,
            request_id,
            reason: None,
            at,
        }
    }

    /// With the route (the operation of an account event).
    pub fn route(mut self, route: &'a str) -> Self {
        self.route = Some(route);
        self
    }

    /// With the verified subject.
    pub fn subject(mut self, sub: &'a str) -> Self {
        self.sub = Some(sub);
        self
    }

    /// With the session id.
    pub fn sid(mut self, sid: &'a str) -> Self {
        self.sid = Some(sid);
        self
    }

    /// With a reason.
    pub fn reason(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// The JSON text of the line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_flat_json_with_ids() {
        let line = AuditLine::new(Event::ReuseDetected, "acct", "req-1", 5).sid("s1").reason("reuse").to_json();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["kind"], "audit");
        assert_eq!(v["event"], "refresh.reuse_detected");
        assert_eq!(v["account"], "acct");
        assert_eq!(v["sid"], "s1");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["at"], 5);
        let plain = AuditLine::new(Event::LoginFailed, "a", "r", 1).to_json();
        assert!(!plain.contains("sid") && !plain.contains("reason"));
    }

    #[test]
    fn refusal_lines_share_the_format() {
        let line = AuditLine::refusal("gateway:protected", 403, "insufficient_scope", "req-2", 7)
            .subject("user-1")
            .reason("scope admin is required")
            .to_json();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["kind"], "refusal");
        assert_eq!(v["route"], "gateway:protected");
        assert_eq!(v["status"], 403);
        assert_eq!(v["error"], "insufficient_scope");
        assert_eq!(v["sub"], "user-1");
        assert_eq!(v["request_id"], "req-2");
        assert!(v.get("event").is_none() && v.get("account").is_none());
        let audit = AuditLine::new(Event::Logout, "acct", "req-3", 1).route("logout").to_json();
        assert!(audit.contains(r#""route":"logout""#), "{audit}");
    }
}
