//! The standard OAuth 2.0 surface, pure: form-encoded request parameters (RFC 6749 §3.1, §3.2),
//! client authentication for introspection (RFC 6749 §2.3.1), the authorization-server metadata
//! (RFC 8414), and the introspection answer (RFC 7662 §2.2).

use crate::jwt::AccessClaims;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use subtle::ConstantTimeEq;

/// Where the endpoints live, relative to ISSUER.
pub const TOKEN_PATH: &str = "/oauth/token";
/// RFC 7009 revocation.
pub const REVOKE_PATH: &str = "/oauth/revoke";
/// RFC 7662 introspection.
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
/// RFC 8414 metadata.
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// The shortest introspection client secret accepted, in characters.
pub const MIN_CLIENT_SECRET_LEN: usize = 32;

/// What is wrong with an OAuth request. Always the client's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// Not `application/x-www-form-urlencoded`.
    ContentType,
    /// A parameter appears twice (RFC 6749 §3.2), or the body is not valid form encoding.
    Malformed(String),
    /// A required parameter is missing.
    Missing(&'static str),
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::ContentType => f.write_str("content type must be application/x-www-form-urlencoded"),
            FormError::Malformed(why) => write!(f, "{why}"),
            FormError::Missing(name) => write!(f, "parameter {name} is missing"),
        }
    }
}

/// Whether a `Content-Type` header is form encoding.
pub fn is_form_content_type(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        let media = v.split(';').next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// Form parameters: each at most once; empty values count as absent (RFC 6749 §3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form(BTreeMap<String, String>);

impl Form {
    /// Parses a form-encoded body.
    pub fn parse(body: &[u8]) -> Result<Form, FormError> {
        if std::str::from_utf8(body).is_err() {
            return Err(FormError::Malformed("body is not UTF-8".into()));
        }
        let mut params = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if value.chars().any(char::is_control) || name.chars().any(char::is_control) {
                return Err(FormError::Malformed(format!("parameter {name} has control characters")));
            }
            if value.is_empty() {
                continue;
            }
            if params.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(FormError::Malformed(format!("parameter {name} is repeated")));
            }
        }
        Ok(Form(params))
    }

    /// A parameter, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A parameter that must be present.
    pub fn require(&self, name: &'static str) -> Result<&str, FormError> {
        self.get(name).ok_or(FormError::Missing(name))
    }
}

/// Client credentials for introspection, from the `INTROSPECTION_CLIENTS` secret. `Debug` shows
/// the client ids only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Clients {
    /// SHA-256 of each client's secret, by client id (compared in constant time).
    secrets: BTreeMap<String, [u8; 32]>,
}

impl fmt::Debug for Clients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clients")
            .field("ids", &self.secrets.keys().collect::<Vec<_>>())
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Clients {
    /// Parses `{"<client_id>": "<secret>", ...}`; secrets must be at least [`MIN_CLIENT_SECRET_LEN`].
    pub fn parse(text: &str) -> Result<Clients, String> {
        let object = crate::jwt::json::parse_object(text.as_bytes()).map_err(|e| format!("not a JSON object: {e}"))?;
        let mut secrets = BTreeMap::new();
        for (id, secret) in object {
            let Value::String(secret) = secret else {
                return Err(format!("client {id:?}: the secret is not a string"));
            };
            if id.is_empty() || id.contains(':') || id.chars().any(char::is_control) {
                return Err(format!("client id {id:?} is empty or has ':' or control characters"));
            }
            if secret.chars().count() < MIN_CLIENT_SECRET_LEN {
                return Err(format!("client {id:?}: the secret is shorter than {MIN_CLIENT_SECRET_LEN} characters"));
            }
            secrets.insert(id, Sha256::digest(secret.as_bytes()).into());
        }
        Ok(Clients { secrets })
    }

    /// Whether any client is configured.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Checks a client's credentials. Every configured id is compared, and secrets are compared as
    /// SHA-256 digests in constant time, so neither which ids exist nor how much of a secret was
    /// right shows in the timing.
    pub fn authenticate(&self, id: &str, secret: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let mut ok = subtle::Choice::from(0);
        for (known_id, known) in &self.secrets {
            let same_id = subtle::Choice::from(u8::from(known_id == id));
            ok |= same_id & known.ct_eq(&presented);
        }
        bool::from(ok)
    }
}

/// How a client authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// No credentials.
    None,
    /// `client_secret_basic` or `client_secret_post`: the id and secret.
    Secret { id: String, secret: String },
}

/// Reads client credentials from `Authorization: Basic` (the id and secret form-encoded, RFC 6749
/// §2.3.1) or from the `client_id` and `client_secret` parameters; using both is an error.
pub fn client_auth(authorization: Option<&str>, form: &Form) -> Result<ClientAuth, FormError> {
    let post = form.get("client_secret").map(|secret| (form.get("client_id"), secret));
    let basic = match authorization {
        Some(header) => {
            let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
            if scheme.eq_ignore_ascii_case("basic") {
                let decoded = STANDARD
                    .decode(rest.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| FormError::Malformed("the Basic credentials are not base64 of UTF-8".into()))?;
                let (id, secret) = decoded
                    .split_once(':')
                    .ok_or_else(|| FormError::Malformed("the Basic credentials have no ':'".into()))?;
                let decode = |s: &str| {
                    url::form_urlencoded::parse(format!("x={s}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                Some((decode(id), decode(secret)))
            } else {
                None
            }
        }
        None => None,
    };
    match (basic, post) {
        (Some(_), Some(_)) => Err(FormError::Malformed("use one client authentication method, not two".into())),
        (Some((id, secret)), None) => Ok(ClientAuth::Secret { id, secret }),
        (None, Some((Some(id), secret))) => Ok(ClientAuth::Secret { id: id.to_owned(), secret: secret.to_owned() }),
        (None, Some((None, _))) => Err(FormError::Missing("client_id")),
        (None, None) => Ok(ClientAuth::None),
    }
}

/// The RFC 8414 metadata for an issuer (whose endpoints are its URL plus the paths above).
pub fn metadata(issuer: &str, introspection: bool) -> Value {
    let base = issuer.trim_end_matches('/');
    let mut doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "revocation_endpoint": format!("{base}{REVOKE_PATH}"),
        "grant_types_supported": ["refresh_token"],
        // No authorization endpoint: sign-in is gatehouse's own API (POST /auth/login).
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "service_documentation": format!("{base}/openapi.json"),
    });
    if introspection {
        if let Some(o) = doc.as_object_mut() {
            o.insert("introspection_endpoint".into(), json!(format!("{base}{INTROSPECT_PATH}")));
            o.insert(
                "introspection_endpoint_auth_methods_supported".into(),
                json!(["client_secret_basic", "client_secret_post"]),
            );
        }
    }
    doc
}

/// Adds `dpop_signing_alg_values_supported` (RFC 9449 §5.1) to a metadata document.
pub fn add_dpop_algs(doc: &mut Value, algs: &[&str]) {
    if let Some(o) = doc.as_object_mut() {
        o.insert("dpop_signing_alg_values_supported".into(), json!(algs));
    }
}

/// The introspection answer for anything that is not active: exactly `{"active": false}` (RFC 7662
/// §2.2: nothing else about such a token is told).
pub fn inactive() -> Value {
    json!({ "active": false })
}

/// The introspection answer for an active access token.
pub fn active_access_token(claims: &AccessClaims) -> Value {
    let mut o = Map::new();
    o.insert("active".into(), json!(true));
    // RFC 9449 §6.2: a bound token is introspected as `DPoP`, with its `cnf`.
    o.insert("token_type".into(), json!(if claims.cnf.is_some() { "DPoP" } else { "Bearer" }));
    if let Some(cnf) = &claims.cnf {
        o.insert("cnf".into(), json!({ "jkt": cnf.jkt }));
    }
    o.insert("scope".into(), json!(claims.scope));
    if let Some(client_id) = &claims.client_id {
        o.insert("client_id".into(), json!(client_id));
    }
    if let Some(email) = &claims.email {
        o.insert("username".into(), json!(email));
    }
    o.insert("sub".into(), json!(claims.sub));
    o.insert("iss".into(), json!(claims.iss));
    o.insert("aud".into(), json!(claims.aud));
    o.insert("exp".into(), json!(claims.exp));
    for (name, value) in [("iat", claims.iat), ("nbf", claims.nbf)] {
        if let Some(v) = value {
            o.insert(name.into(), json!(v));
        }
    }
    for (name, value) in [("jti", &claims.jti), ("sid", &claims.sid)] {
        if let Some(v) = value {
            o.insert(name.into(), json!(v));
        }
    }
    o.insert("roles".into(), json!(claims.roles));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_strict() {
        let f = Form::parse(b"token=abc&token_type_hint=refresh_token&empty=").unwrap();
        assert_eq!(f.get("token"), Some("abc"));
        assert_eq!(f.get("empty"), None, "empty values count as absent");
        assert_eq!(f.require("nope"), Err(FormError::Missing("nope")));
        assert!(matches!(Form::parse(b"token=a&token=b"), Err(FormError::Malformed(_))));
        assert!(matches!(Form::parse(b"token=a%00b"), Err(FormError::Malformed(_))));
        assert!(matches!(Form::parse(b"token=\xff"), Err(FormError::Malformed(_))));
        assert_eq!(Form::parse(b"a=x+y%2B").unwrap().get("a"), Some("x y+"));
        assert!(is_form_content_type(Some("application/x-www-form-urlencoded; charset=UTF-8")));
        assert!(!is_form_content_type(Some("application/json")));
        assert!(!is_form_content_type(None));
    }

    fn clients() -> Clients {
        Clients::parse(&format!(r#"{{"rs-1":"{}","rs-2":"{}"}}"#, "s".repeat(40), "t".repeat(32))).unwrap()
    }

    #[test]
    fn clients_parse_and_authenticate() {
        let c = clients();
        assert!(c.authenticate("rs-1", &"s".repeat(40)));
        assert!(c.authenticate("rs-2", &"t".repeat(32)));
        assert!(!c.authenticate("rs-1", &"t".repeat(32)), "another client's secret");
        assert!(!c.authenticate("rs-1", &"s".repeat(39)));
        assert!(!c.authenticate("rs-3", &"s".repeat(40)));
        assert!(!c.authenticate("", ""));
        assert!(!format!("{c:?}").contains("sss"));
        assert!(Clients::parse(r#"{"a":"short"}"#).is_err());
        assert!(Clients::parse(&format!(r#"{{"a:b":"{}"}}"#, "s".repeat(40))).is_err());
        assert!(Clients::parse(&format!(r#"{{"a":"{0}","a":"{0}"}}"#, "s".repeat(40))).is_err());
        assert!(Clients::parse(r#"{"a":1}"#).is_err());
        assert!(Clients::parse("{}").unwrap().is_empty());
    }

    #[test]
    fn client_credentials_come_from_one_place() {
        let empty = Form::default();
        let basic = format!("Basic {}", STANDARD.encode("rs%2D1:p%40ss"));
        assert_eq!(
            client_auth(Some(&basic), &empty),
            Ok(ClientAuth::Secret { id: "rs-1".into(), secret: "p@ss".into() })
        );
        let post = Form::parse(b"client_id=rs-1&client_secret=x").unwrap();
        assert_eq!(client_auth(None, &post), Ok(ClientAuth::Secret { id: "rs-1".into(), secret: "x".into() }));
        assert!(client_auth(Some(&basic), &post).is_err(), "two methods");
        assert_eq!(client_auth(None, &Form::parse(b"client_secret=x").unwrap()), Err(FormError::Missing("client_id")));
        assert_eq!(client_auth(Some("Bearer abc"), &empty), Ok(ClientAuth::None));
        assert!(client_auth(Some("Basic !!!"), &empty).is_err());
        assert!(client_auth(Some(&format!("Basic {}", STANDARD.encode("nocolon"))), &empty).is_err());
        assert_eq!(client_auth(None, &empty), Ok(ClientAuth::None));
    }

    #[test]
    fn metadata_lists_what_exists() {
        let m = metadata("https://auth.example", false);
        assert_eq!(m["issuer"], "https://auth.example");
        assert_eq!(m["revocation_endpoint"], "https://auth.example/oauth/revoke");
        assert!(m.get("introspection_endpoint").is_none());
        let m = metadata("https://auth.example/", true);
        assert_eq!(m["issuer"], "https://auth.example/");
        assert_eq!(m["introspection_endpoint"], "https://auth.example/oauth/introspect");
    }
}
