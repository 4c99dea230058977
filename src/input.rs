//! Request bodies and refresh-token strings: size, strict JSON, types, email normalisation.

use crate::account::family::{Secret, SECRET_LEN};
use crate::jwt::{b64, json};
use crate::password;
use serde_json::{Map, Value};

/// Request bodies over this many bytes get 413 (API.md "Conventions").
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The longest email address accepted (RFC 5321 §4.5.3.1.3 path limit less the brackets).
pub const MAX_EMAIL_LEN: usize = 254;
/// The refresh-token format tag.
pub const REFRESH_PREFIX: &str = "ghr1";

/// What is wrong with a request body. Always the client's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// Over [`MAX_BODY_BYTES`].
    TooLarge,
    /// Not `application/json`.
    ContentType,
    /// Not a JSON object (or a name appears twice).
    NotJson,
    /// A field is missing or has the wrong type.
    Field(&'static str),
    /// The email is not an address gatehouse accepts.
    Email,
    /// The password is under 8 or over 256 characters (registration only).
    WeakPassword,
    /// A field this request does not take.
    Unknown,
}

impl InputError {
    /// The client-facing description.
    pub fn describe(&self) -> String {
        match self {
            InputError::TooLarge => format!("request body is over {MAX_BODY_BYTES} bytes"),
            InputError::ContentType => "content type must be application/json".into(),
            InputError::NotJson => "body is not a JSON object".into(),
            InputError::Field(name) => format!("field {name} is missing or has the wrong type"),
            InputError::Email => "email is not a valid address".into(),
            InputError::WeakPassword => "password must be 8 to 256 characters".into(),
            InputError::Unknown => "the body has a field this request does not take".into(),
        }
    }
}

/// Where the refresh token travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// In the JSON body.
    Body,
    /// In the `__Host-gatehouse_rt` cookie.
    Cookie,
}

/// Email and password of a register or login request. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The normalised (lower-cased) email.
    pub email: String,
    /// The password as sent.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("email", &self.email).field("password", &"<redacted>").finish()
    }
}

/// Checks a `Content-Type` header for JSON.
pub fn is_json_content_type(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        let media = v.split(';').next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case("application/json")
    })
}

/// Parses a body that must be a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, InputError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(InputError::TooLarge);
    }
    json::parse_object(body).map_err(|_| InputError::NotJson)
}

fn string_field(body: &Map<String, Value>, name: &'static str) -> Result<Option<String>, InputError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(InputError::Field(name)),
    }
}

/// Normalises an email for comparison: lower-cased, checked to be a plain ASCII address
/// (`local@domain`, the domain in LDH labels with a dot; internationalised domains in punycode).
pub fn normalize_email(email: &str) -> Result<String, InputError> {
    let email = email.to_ascii_lowercase();
    if email.is_empty() || email.len() > MAX_EMAIL_LEN || !email.is_ascii() {
        return Err(InputError::Email);
    }
    let (local, domain) = email.rsplit_once('@').ok_or(InputError::Email)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(InputError::Email)
    }
}

fn credentials(body: &Map<String, Value>) -> Result<Credentials, InputError> {
    let email = string_field(body, "email")?.ok_or(InputError::Field("email"))?;
    let password = string_field(body, "password")?.ok_or(InputError::Field("password"))?;
    Ok(Credentials { email: normalize_email(&email)?, password })
}

/// `POST /auth/register` `{"email", "password"}`.
pub fn register(body: &[u8]) -> Result<Credentials, InputError> {
    let creds = credentials(&object(body)?)?;
    if !password::acceptable(&creds.password) {
        return Err(InputError::WeakPassword);
    }
    Ok(creds)
}

/// `POST /auth/login` `{"email", "password", "transport"?}`.
pub fn login(body: &[u8]) -> Result<(Credentials, Transport), InputError> {
    let body = object(body)?;
    let creds = credentials(&body)?;
    let transport = match string_field(&body, "transport")?.as_deref() {
        None | Some("body") => Transport::Body,
        Some("cookie") => Transport::Cookie,
        Some(_) => return Err(InputError::Field("transport")),
    };
    Ok((creds, transport))
}

/// The longest second-factor code or ticket looked at, in bytes.
const MAX_MFA_FIELD: usize = 256;

fn mfa_field(body: &Map<String, Value>, name: &'static str) -> Result<String, InputError> {
    string_field(body, name)?.filter(|v| !v.is_empty() && v.len() <= MAX_MFA_FIELD).ok_or(InputError::Field(name))
}

/// `POST /auth/mfa/totp/confirm` `{"code"}`.
pub fn mfa_code(body: &[u8]) -> Result<String, InputError> {
    mfa_field(&object(body)?, "code")
}

/// `POST /auth/mfa/verify` `{"mfa_ticket", "method", "code", "transport"?}`: the ticket, the method
/// (`totp` | `recovery_code`), the code, and the refresh token's transport as at login.
pub fn mfa_verify(body: &[u8]) -> Result<(String, String, String, Transport), InputError> {
    let body = object(body)?;
    let ticket = mfa_field(&body, "mfa_ticket")?;
    let method = mfa_field(&body, "method")?;
    let code = mfa_field(&body, "code")?;
    let transport = match string_field(&body, "transport")?.as_deref() {
        None | Some("body") => Transport::Body,
        Some("cookie") => Transport::Cookie,
        Some(_) => return Err(InputError::Field("transport")),
    };
    Ok((ticket, method, code, transport))
}

/// The longest base64url member of a WebAuthn credential looked at, in characters.
const MAX_WEBAUTHN_FIELD: usize = 12 * 1024;

/// A `PublicKeyCredential` as JSON (WebAuthn §5.1.8 `toJSON()`): `{"id", "type":"public-key",
/// "response": {...}}`, every byte member base64url. `Debug` shows the id only.
#[derive(Clone, PartialEq, Eq)]
pub struct WebAuthnCredential {
    /// The credential id (base64url).
    pub id: String,
    /// `response.clientDataJSON`.
    pub client_data_json: String,
    /// `response.attestationObject` (registration).
    pub attestation_object: Option<String>,
    /// `response.authenticatorData` (authentication).
    pub authenticator_data: Option<String>,
    /// `response.signature` (authentication).
    pub signature: Option<String>,
    /// `response.userHandle` (authentication with a discoverable credential).
    pub user_handle: Option<String>,
    /// `response.transports` (registration).
    pub transports: Vec<String>,
}

impl std::fmt::Debug for WebAuthnCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebAuthnCredential").field("id", &self.id).finish_non_exhaustive()
    }
}

fn b64_member(map: &Map<String, Value>, name: &'static str) -> Result<Option<String>, InputError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.len() <= MAX_WEBAUTHN_FIELD && b64::decode(text).is_ok() => {
            Ok(Some(text.clone()))
        }
        Some(_) => Err(InputError::Field(name)),
    }
}

fn webauthn_credential(body: &Map<String, Value>) -> Result<WebAuthnCredential, InputError> {
    let Some(Value::Object(credential)) = body.get("credential") else { return Err(InputError::Field("credential")) };
    if credential.get("type").is_some_and(|t| t != "public-key") {
        return Err(InputError::Field("credential.type"));
    }
    let id = b64_member(credential, "id")?.filter(|i| !i.is_empty()).ok_or(InputError::Field("credential.id"))?;
    let Some(Value::Object(response)) = credential.get("response") else {
        return Err(InputError::Field("credential.response"));
    };
    let transports = match response.get("transports") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= 8 => items
            .iter()
            .map(|t| t.as_str().filter(|t| t.len() <= 32).map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(InputError::Field("transports"))?,
        Some(_) => return Err(InputError::Field("transports")),
    };
    Ok(WebAuthnCredential {
        id,
        client_data_json: b64_member(response, "clientDataJSON")?.ok_or(InputError::Field("clientDataJSON"))?,
        attestation_object: b64_member(response, "attestationObject")?,
        authenticator_data: b64_member(response, "authenticatorData")?,
        signature: b64_member(response, "signature")?,
        user_handle: b64_member(response, "userHandle")?,
        transports,
    })
}

fn transport(body: &Map<String, Value>) -> Result<Transport, InputError> {
    match string_field(body, "transport")?.as_deref() {
        None | Some("body") => Ok(Transport::Body),
        Some("cookie") => Ok(Transport::Cookie),
        Some(_) => Err(InputError::Field("transport")),
    }
}

/// `POST /auth/webauthn/register/verify` `{"credential"}`: the credential of `create()`.
pub fn webauthn_register(body: &[u8]) -> Result<WebAuthnCredential, InputError> {
    let credential = webauthn_credential(&object(body)?)?;
    if credential.attestation_object.is_none() {
        return Err(InputError::Field("attestationObject"));
    }
    Ok(credential)
}

/// Whom a passkey login is for: the email (passwordless) or the MFA ticket (a second step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasskeyFor {
    /// A passwordless login of this (normalised) email.
    Email(String),
    /// The second step of the login that answered this ticket.
    Ticket(String),
}

fn passkey_for(body: &Map<String, Value>) -> Result<PasskeyFor, InputError> {
    match (string_field(body, "email")?, body.contains_key("mfa_ticket")) {
        (Some(email), false) => Ok(PasskeyFor::Email(normalize_email(&email)?)),
        (None, true) => Ok(PasskeyFor::Ticket(mfa_field(body, "mfa_ticket")?)),
        _ => Err(InputError::Field("email")),
    }
}

/// `POST /auth/webauthn/login/options` `{"email"}` or `{"mfa_ticket"}`.
pub fn webauthn_login_options(body: &[u8]) -> Result<PasskeyFor, InputError> {
    passkey_for(&object(body)?)
}

/// `POST /auth/webauthn/login/verify` `{"email" | "mfa_ticket", "credential", "transport"?}`, and
/// `POST /auth/mfa/verify` with `"method": "webauthn"`: the credential of `get()`.
pub fn webauthn_login(body: &[u8]) -> Result<(PasskeyFor, WebAuthnCredential, Transport), InputError> {
    let body = object(body)?;
    let credential = webauthn_credential(&body)?;
    if credential.authenticator_data.is_none() {
        return Err(InputError::Field("authenticatorData"));
    }
    if credential.signature.is_none() {
        return Err(InputError::Field("signature"));
    }
    Ok((passkey_for(&body)?, credential, transport(&body)?))
}

/// The `method` of a `POST /auth/mfa/verify` body.
pub fn mfa_method(body: &[u8]) -> Result<String, InputError> {
    mfa_field(&object(body)?, "method")
}

/// `POST /auth/refresh` `{"refresh_token"}`; an empty body means "use the cookie".
pub fn refresh(body: &[u8]) -> Result<Option<String>, InputError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    string_field(&object(body)?, "refresh_token")
}

/// A refresh token's parts: `ghr1.<account id, 64 hex>.<sid>.<secret>`. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// The account's Durable Object id (hex).
    pub account: String,
    /// The session.
    pub sid: String,
    /// The secret.
    pub secret: Secret,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("account", &self.account)
            .field("sid", &self.sid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl RefreshToken {
    /// Parses a presented token; `None` for anything malformed.
    pub fn parse(text: &str) -> Option<RefreshToken> {
        let mut parts = text.split('.');
        let (Some(REFRESH_PREFIX), Some(account), Some(sid), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let hex_id = account.len() == 64 && account.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let sid_ok = b64::decode(sid).is_ok_and(|s| s.len() == 16);
        let secret: Secret = b64::decode(secret).ok()?.try_into().ok()?;
        (hex_id && sid_ok).then(|| RefreshToken { account: account.to_owned(), sid: sid.to_owned(), secret })
    }

    /// The token string.
    pub fn format(&self) -> String {
        format!("{REFRESH_PREFIX}.{}.{}.{}", self.account, self.sid, b64::encode(self.secret))
    }
}

const _: () = assert!(SECRET_LEN == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalize_email("Alice@Example.COM"), Ok("alice@example.com".into()));
        assert_eq!(normalize_email("a.b+tag@sub.example.org"), Ok("a.b+tag@sub.example.org".into()));
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@@example.com",
            "al ice@example.com",
            "alice@exa mple.com",
            ".alice@example.com",
            "al..ice@example.com",
            "alice@-example.com",
            "alice@example..com",
            "ålice@example.com",
            "alice@exämple.com",
            "alice\0@example.com",
            "alice\n@example.com",
        ] {
            assert_eq!(normalize_email(bad), Err(InputError::Email), "{bad:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(normalize_email(&long_local), Err(InputError::Email));
        let long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
        assert_eq!(normalize_email(&long), Err(InputError::Email));
    }

    #[test]
    fn bodies_are_strict() {
        assert!(register(br#"{"email":"a@b.co","password":"12345678"}"#).is_ok());
        assert_eq!(register(br#"{"email":"a@b.co","password":"1234567"}"#), Err(InputError::WeakPassword));
        assert_eq!(register(br#"{"email":"a@b.co"}"#), Err(InputError::Field("password")));
        assert_eq!(register(br#"{"email":1,"password":"12345678"}"#), Err(InputError::Field("email")));
        assert_eq!(register(br#"{"email":"a@b.co","password":"12345678","email":"c@d.co"}"#), Err(InputError::NotJson));
        assert_eq!(register(b"[]"), Err(InputError::NotJson));
        assert_eq!(register(b"{"), Err(InputError::NotJson));
        assert_eq!(register(&vec![b' '; MAX_BODY_BYTES + 1]), Err(InputError::TooLarge));
        let (_, t) = login(br#"{"email":"a@b.co","password":"x","transport":"cookie"}"#).unwrap();
        assert_eq!(t, Transport::Cookie);
        assert_eq!(
            login(br#"{"email":"a@b.co","password":"x","transport":"smoke"}"#),
            Err(InputError::Field("transport"))
        );
        assert_eq!(refresh(b""), Ok(None));
        assert_eq!(refresh(b"{}"), Ok(None));
        assert_eq!(refresh(br#"{"refresh_token":"x"}"#), Ok(Some("x".into())));
        assert_eq!(refresh(br#"{"refresh_token":5}"#), Err(InputError::Field("refresh_token")));
        assert!(is_json_content_type(Some("application/json; charset=utf-8")));
        assert!(is_json_content_type(Some("Application/JSON")));
        assert!(!is_json_content_type(Some("text/plain")));
        assert!(!is_json_content_type(None));
    }

    #[test]
    fn refresh_tokens_round_trip_and_refuse_junk() {
        let t = RefreshToken { account: "ab".repeat(32), sid: b64::encode([7u8; 16]), secret: [9u8; 32] };
        assert_eq!(RefreshToken::parse(&t.format()), Some(t.clone()));
        let s = t.format();
        assert_eq!(RefreshToken::parse(&s.replacen("ghr1", "ghr2", 1)), None);
        assert_eq!(RefreshToken::parse(&s.replacen("ab", "AB", 1)), None);
        assert_eq!(RefreshToken::parse(&format!("{s}.x")), None);
        assert_eq!(RefreshToken::parse(&s[..s.len() - 1]), None);
        assert_eq!(RefreshToken::parse(""), None);
    }
}

/// A field that must be a string.
fn required_string(body: &Map<String, Value>, name: &'static str) -> Result<String, InputError> {
    string_field(body, name)?.ok_or(InputError::Field(name))
}

/// A new password: 8 to 256 characters.
fn new_password(body: &Map<String, Value>, name: &'static str) -> Result<String, InputError> {
    let password = required_string(body, name)?;
    if !password::acceptable(&password) {
        return Err(InputError::WeakPassword);
    }
    Ok(password)
}

/// `POST /auth/email/verify` `{"token", "password"?}`.
pub fn email_verify(body: &[u8]) -> Result<(String, Option<String>), InputError> {
    let body = object(body)?;
    Ok((required_string(&body, "token")?, string_field(&body, "password")?))
}

/// `POST /auth/password/forgot` `{"email"}`: the normalised email.
pub fn forgot(body: &[u8]) -> Result<String, InputError> {
    normalize_email(&required_string(&object(body)?, "email")?)
}

/// `POST /auth/password/reset` `{"token", "password"}`.
pub fn reset(body: &[u8]) -> Result<(String, String), InputError> {
    let body = object(body)?;
    Ok((required_string(&body, "token")?, new_password(&body, "password")?))
}

/// `POST /auth/password/change` `{"current_password", "new_password"}`.
pub fn password_change(body: &[u8]) -> Result<(String, String), InputError> {
    let body = object(body)?;
    Ok((required_string(&body, "current_password")?, new_password(&body, "new_password")?))
}

/// `DELETE /auth/me` `{"password"}`.
pub fn password_only(body: &[u8]) -> Result<String, InputError> {
    required_string(&object(body)?, "password")
}

/// A metadata object: a JSON object of at most [`crate::config::MAX_METADATA_BYTES`].
fn metadata(value: Option<&Value>, name: &'static str) -> Result<Value, InputError> {
    match value {
        Some(Value::Object(fields))
            if Value::Object(fields.clone()).to_string().len() <= crate::config::MAX_METADATA_BYTES =>
        {
            Ok(Value::Object(fields.clone()))
        }
        _ => Err(InputError::Field(name)),
    }
}

/// `PATCH /auth/me` `{"user_metadata": {...}}`: the new object (it replaces the old one).
pub fn user_metadata(body: &[u8]) -> Result<Value, InputError> {
    let body = object(body)?;
    if body.keys().any(|k| k != "user_metadata") {
        return Err(InputError::Field("user_metadata"));
    }
    metadata(body.get("user_metadata"), "user_metadata")
}

/// What `PATCH /admin/users/{sub}` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUpdate {
    /// New roles.
    pub roles: Option<Vec<String>>,
    /// New scopes (space-separated).
    pub scope: Option<String>,
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// New app metadata (replaces the old object).
    pub app_metadata: Option<Value>,
}

/// The most roles an account may hold.
pub const MAX_ROLES: usize = 32;

/// A role or scope name: 1 to 64 of `A-Z a-z 0-9 _ - . :`.
fn is_name(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
}

/// `PATCH /admin/users/{sub}` `{"roles"?, "scope"?, "disabled"?, "app_metadata"?}`: at least one,
/// nothing else.
pub fn admin_update(body: &[u8]) -> Result<AdminUpdate, InputError> {
    let body = object(body)?;
    const FIELDS: [&str; 4] = ["roles", "scope", "disabled", "app_metadata"];
    if body.keys().any(|k| !FIELDS.contains(&k.as_str())) {
        return Err(InputError::Unknown);
    }
    if body.is_empty() {
        return Err(InputError::Field("roles"));
    }
    let roles = match body.get("roles") {
        None => None,
        Some(Value::Array(items)) if items.len() <= MAX_ROLES => {
            let mut roles: Vec<String> = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(role) if is_name(role) => {
                        if !roles.iter().any(|r| r == role) {
                            roles.push(role.to_owned());
                        }
                    }
                    _ => return Err(InputError::Field("roles")),
                }
            }
            Some(roles)
        }
        Some(_) => return Err(InputError::Field("roles")),
    };
    let scope = match body.get("scope") {
        None => None,
        Some(Value::String(text)) if text.len() <= 1024 && text.split(' ').filter(|s| !s.is_empty()).all(is_name) => {
            Some(text.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" "))
        }
        Some(_) => return Err(InputError::Field("scope")),
    };
    let disabled = match body.get("disabled") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(InputError::Field("disabled")),
    };
    let app_metadata = match body.get("app_metadata") {
        None => None,
        value => Some(metadata(value, "app_metadata")?),
    };
    Ok(AdminUpdate { roles, scope, disabled, app_metadata })
}
