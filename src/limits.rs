//! Abuse limits of the issuer's routes (docs/HARDENING.md "Limits"), the pure half: which Workers
//! Rate Limiting bindings a request counts against and under which keys, the client's address as
//! the edge gives it (`CF-Connecting-IP`), the tag an account remembers a client by, and Cloudflare
//! Turnstile's request and answer. The runtime half (the bindings, the siteverify fetch) is
//! `web::limits`.

use crate::jwt::b64;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The header the Cloudflare edge sets to the client's address (and `wrangler dev` too, unless
/// the request already has one).
pub const CLIENT_IP_HEADER: &str = "cf-connecting-ip";

/// How long a client refused by a rate limit is asked to wait, seconds: the longest period the
/// Rate Limiting binding allows (its own answer says only yes or no).
pub const RATE_LIMIT_RETRY_AFTER: i64 = 60;

/// A Workers Rate Limiting binding of gatehouse's (`[[ratelimits]]` in the wrangler configs).
/// A binding that is not configured is a limit that is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Logins (and password grants, were there any) per client address.
    LoginIp,
    /// Logins per client address and email: one address guessing one account.
    LoginAccount,
    /// Registrations per client address.
    RegisterIp,
    /// Refresh-token redemptions (`/auth/refresh`, `/oauth/token`) per client address.
    RefreshIp,
}

impl Limit {
    /// Every limit, for documentation and tests.
    pub const ALL: [Limit; 4] = [Limit::LoginIp, Limit::LoginAccount, Limit::RegisterIp, Limit::RefreshIp];

    /// The binding's name.
    pub fn binding(self) -> &'static str {
        match self {
            Limit::LoginIp => "RATE_LIMIT_LOGIN_IP",
            Limit::LoginAccount => "RATE_LIMIT_LOGIN_ACCOUNT",
            Limit::RegisterIp => "RATE_LIMIT_REGISTER_IP",
            Limit::RefreshIp => "RATE_LIMIT_REFRESH_IP",
        }
    }
}

/// What a request is, for the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// A login with this (normalised) email: `/auth/login` (and the hook for the MFA verify step
    /// and a password grant: each is a password guess against an account).
    Login { email: &'a str },
    /// The second step of a login (`/auth/mfa/verify`) for this account id: a code is a guess too.
    SecondFactor { account: &'a str },
    /// A registration.
    Register,
    /// A refresh-token redemption.
    Refresh,
}

/// The (binding, key) pairs a request from `client` (its [`client_key`]) counts against, in order.
/// The per-account key is a hash: the rate limiter never sees an email.
pub fn checks(action: Action<'_>, client: &str) -> Vec<(Limit, String)> {
    match action {
        Action::Login { email } => vec![
            (Limit::LoginIp, format!("ip:{client}")),
            (Limit::LoginAccount, format!("ia:{}", digest(&["login-account", client, email]))),
        ],
        Action::SecondFactor { account } => vec![
            (Limit::LoginIp, format!("ip:{client}")),
            (Limit::LoginAccount, format!("ia:{}", digest(&["second-factor", client, account]))),
        ],
        Action::Register => vec![(Limit::RegisterIp, format!("ip:{client}"))],
        Action::Refresh => vec![(Limit::RefreshIp, format!("ip:{client}"))],
    }
}

/// The key of a client address for the limits: an IPv4 address as it is, an IPv6 address by its
/// /64 network (one subscriber's usual allocation, so an attacker cannot step through the
/// addresses of its own network). `None` for anything that is not an address.
pub fn client_key(header: &str) -> Option<String> {
    match header.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some(v4.to_string()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(v4.to_string()),
            None => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
        },
    }
}

/// The tag an account remembers a client by ([`crate::account::state::KnownClient`]): a hash of
/// its [`client_key`] salted with the account's id, so the account's storage holds no address and
/// tags of one address differ between accounts.
pub fn client_tag(account_id: &str, client: &str) -> String {
    digest(&["known-client", account_id, client])
}

/// 128 bits of SHA-256 over length-prefixed parts, base64url.
fn digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"gatehouse-limits-v1");
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    b64::encode(&hash.finalize()[..16])
}

/// Where a client sends its Turnstile token: the JSON body member, or this header.
pub const TURNSTILE_FIELD: &str = "cf-turnstile-response";

/// Cloudflare's siteverify endpoint (the default of `TURNSTILE_VERIFY_URL`).
pub const TURNSTILE_DEFAULT_URL: &str = "https://challenges.cloudflare.com/turnstile/v0/siteverify";

/// The longest token siteverify accepts is 2048 characters; longer is refused unasked.
pub const TURNSTILE_MAX_TOKEN: usize = 2048;

/// The Turnstile token of a request: the header, or else the JSON body's member. `None` when there
/// is none (or it is empty or too long).
pub fn turnstile_token(header: Option<&str>, body: &[u8]) -> Option<String> {
    let from_body = || {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        value.get(TURNSTILE_FIELD)?.as_str().map(str::to_owned)
    };
    let token = header.map(str::to_owned).or_else(from_body)?;
    let token = token.trim();
    (!token.is_empty() && token.len() <= TURNSTILE_MAX_TOKEN).then(|| token.to_owned())
}

/// The form siteverify takes: the secret, the token and the client's address.
pub fn turnstile_form(secret: &str, token: &str, remote_ip: Option<&str>) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("secret", secret).append_pair("response", token);
    if let Some(ip) = remote_ip {
        form.append_pair("remoteip", ip);
    }
    form.finish()
}

/// Whether siteverify's answer admits the request: `{"success": true}`; anything else does not.
pub fn turnstile_admits(answer: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(answer)
        .ok()
        .and_then(|v| v.get("success").and_then(serde_json::Value::as_bool))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_normalise_addresses() {
        assert_eq!(client_key(" 203.0.113.7 ").as_deref(), Some("203.0.113.7"));
        assert_eq!(client_key("2001:db8:1:2:3:4:5:6").as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(client_key("2001:db8:1:2:ffff::1"), client_key("2001:db8:1:2::9"), "one /64, one key");
        assert_eq!(client_key("::ffff:198.51.100.1").as_deref(), Some("198.51.100.1"));
        assert_eq!(client_key("not an address"), None);
        assert_eq!(client_key(""), None);
    }

    #[test]
    fn keys_name_no_email_and_differ_per_account() {
        let a = checks(Action::Login { email: "a@example.com" }, "203.0.113.7");
        let b = checks(Action::Login { email: "b@example.com" }, "203.0.113.7");
        assert_eq!(a[0], b[0], "one per-address key");
        assert_ne!(a[1], b[1], "a per-(address, account) key each");
        assert!(a.iter().all(|(_, k)| !k.contains("example.com")));
        assert_ne!(client_tag("acct-1", "203.0.113.7"), client_tag("acct-2", "203.0.113.7"));
        assert_eq!(checks(Action::Register, "x")[0].0, Limit::RegisterIp);
    }

    #[test]
    fn turnstile_token_and_answer() {
        assert_eq!(turnstile_token(Some("h"), br#"{"cf-turnstile-response":"b"}"#).as_deref(), Some("h"));
        assert_eq!(turnstile_token(None, br#"{"cf-turnstile-response":"b"}"#).as_deref(), Some("b"));
        assert_eq!(turnstile_token(None, br#"{"cf-turnstile-response":""}"#), None);
        assert_eq!(turnstile_token(None, br#"{"cf-turnstile-response":7}"#), None);
        assert_eq!(turnstile_token(None, &[b'x'; 3]), None);
        assert_eq!(turnstile_token(Some(&"t".repeat(2049)), b""), None);
        assert!(turnstile_admits(br#"{"success":true,"error-codes":[]}"#));
        assert!(!turnstile_admits(br#"{"success":false}"#));
        assert!(!turnstile_admits(br#"{"success":"true"}"#));
        assert!(!turnstile_admits(b"<html>"));
        assert_eq!(turnstile_form("s&", "t", Some("1.2.3.4")), "secret=s%26&response=t&remoteip=1.2.3.4");
    }
}
