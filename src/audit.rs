//! Audit events: one JSON log line per security event, with the account, session and request ids,
//! and never a password, token, hash or key (the type has no field that could hold one).

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
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditLine<'a> {
    /// Always `"audit"`, so the lines are easy to pick out.
    pub kind: &'static str,
    /// What happened.
    pub event: Event,
    /// The account (its object id; never the email).
    pub account: &'a str,
    /// The session, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<&'a str>,
    /// The request id (also sent back as `X-Request-Id`).
    pub request_id: &'a str,
    /// A short reason code, for refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Seconds since the epoch.
    pub at: i64,
}

impl<'a> AuditLine<'a> {
    /// A line for `event` on `account`.
    pub fn new(event: Event, account: &'a str, request_id: &'a str, at: i64) -> Self {
        AuditLine { kind: "audit", event, account, sid: None, request_id, reason: None, at }
    }

    /// With the session id.
    pub fn sid(mut self, sid: &'a str) -> Self {
        self.sid = Some(sid);
        self
    }

    /// With a reason code.
    pub fn reason(mut self, reason: &'static str) -> Self {
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
}
