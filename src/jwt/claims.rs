//! Access-token claims and their validation with an injected clock (RFC 7519 §4.1, RFC 9068 §4).

use super::token::{ValidationError, VerifiedToken, ACCESS_TOKEN_TYP};
use serde::Serialize;
use serde_json::{Map, Value};

/// The longest `sub`, `sid` or `jti` accepted: they become KV keys and forwarded headers.
pub const MAX_ID_LEN: usize = 256;

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// The exact `iss` required.
    pub issuer: String,
    /// The audience that `aud` must be or contain.
    pub audience: String,
    /// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: i64,
    /// What the header `typ` must be.
    pub typ: TypRule,
    /// Where the roles are read from, when not `roles` (see [`ClaimPath`]): a trusted issuer's mapping.
    pub roles_claim: Option<ClaimPath>,
    /// Where the scopes are read from, when not `scope` (see [`ClaimPath`]): a trusted issuer's mapping.
    pub scope_claim: Option<ClaimPath>,
}

/// Where a mapped claim is found: a member of that exact name if the claims have one (namespaced
/// claims such as `https://example.com/roles` are names, dots and all), otherwise, for a name
/// without `://`, a path of members through nested objects (`app_metadata.roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(String);

impl ClaimPath {
    /// The longest claim name or path accepted.
    pub const MAX_LEN: usize = 256;

    /// A claim path, if it is one: non-empty, at most [`ClaimPath::MAX_LEN`] bytes, no control
    /// characters, and (a path) no empty member name.
    pub fn new(name: &str) -> Option<ClaimPath> {
        let path_ok = name.contains("://") || name.split('.').all(|part| !part.is_empty());
        (!name.is_empty() && name.len() <= Self::MAX_LEN && !name.chars().any(char::is_control) && path_ok)
            .then(|| ClaimPath(name.to_owned()))
    }

    /// The name or path as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value it names in a claims object, if any.
    pub fn find<'c>(&self, claims: &'c Map<String, Value>) -> Option<&'c Value> {
        if let Some(value) = claims.get(&self.0) {
            return Some(value);
        }
        if self.0.contains("://") {
            return None;
        }
        let mut parts = self.0.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |value, part| value.as_object()?.get(part))
    }
}

/// The header `typ` a token must carry (RFC 8725 §3.11: explicit typing keeps other kinds of JWT,
/// such as ID tokens or logout tokens, from passing as access tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypRule {
    /// `at+jwt` (or `application/at+jwt`), as RFC 9068 §2.1 requires and gatehouse issues.
    AccessToken,
    /// For issuers that do not type their access tokens: `typ` may also be absent or `JWT`, but
    /// any other type is still refused.
    AccessTokenOrPlainJwt,
}

impl Validator {
    /// A validator requiring `typ: at+jwt`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, leeway: i64) -> Self {
        Validator {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway,
            typ: TypRule::AccessToken,
            roles_claim: None,
            scope_claim: None,
        }
    }
}

/// The validated claims of an access token. Only [`Validator::validate`] makes one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// The stable user id.
    pub sub: String,
    /// Audiences, as an array even when the token had a string.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued-at, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not-before, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Token id, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Session (refresh-family) id, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// OAuth client id, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Granted scopes, space-separated (empty when absent).
    pub scope: String,
    /// Granted roles (empty when absent).
    pub roles: Vec<String>,
    /// The user's email, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the issuer saw the email proved (OIDC Core §5.1), when it says so as a boolean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The key the token is bound to (RFC 9449 §6.1), when it is DPoP-bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// When the user last authenticated (OIDC Core §2), when present: what a route's `max_age`
    /// is measured from (RFC 9470 §3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The authentication methods of that authentication (RFC 8176 values; empty when absent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The authentication context class reference (OIDC Core §2), when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
}

/// The confirmation claim of a DPoP-bound token (RFC 7800 §3.1, RFC 9449 §6.1): `{"jkt": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confirmation {
    /// The RFC 7638 SHA-256 thumbprint of the key, base64url.
    pub jkt: String,
}

impl AccessClaims {
    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        scope_items(&self.scope)
    }
}

/// The scopes of a space-separated scope list (RFC 6749 §3.3), one by one.
pub fn scope_items(list: &str) -> impl Iterator<Item = &str> {
    list.split(' ').filter(|s| !s.is_empty())
}

/// A NumericDate (RFC 7519 §2): a JSON number, possibly fractional; truncated to whole seconds.
pub(crate) fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, ValidationError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
                    _ => Err(ValidationError::Claim(name)),
                }
            }
        }
        Some(_) => Err(ValidationError::Claim(name)),
    }
}

fn string(claims: &Map<String, Value>, name: &'static str) -> Result<Option<String>, ValidationError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ValidationError::Claim(name)),
    }
}

fn identifier(claims: &Map<String, Value>, name: &'static str) -> Result<Option<String>, ValidationError> {
    match string(claims, name)? {
        Some(s) if s.is_empty() || s.len() > MAX_ID_LEN => Err(ValidationError::Claim(name)),
        other => Ok(other),
    }
}

/// An array of strings (absent: empty).
fn string_array(value: Option<&Value>, name: &'static str) -> Result<Vec<String>, ValidationError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            items.iter().map(|r| r.as_str().map(str::to_owned).ok_or(ValidationError::Claim(name))).collect()
        }
        Some(_) => Err(ValidationError::Claim(name)),
    }
}

/// Scopes from a mapped claim: a space-separated string, or an array of single scopes (`scp`).
fn mapped_scope(value: Option<&Value>) -> Result<String, ValidationError> {
    match value {
        Some(Value::String(scope)) => Ok(scope.clone()),
        other => {
            let items = string_array(other, "scope")?;
            if items.iter().any(|s| s.is_empty() || s.contains(' ')) {
                return Err(ValidationError::Claim("scope"));
            }
            Ok(items.join(" "))
        }
    }
}

/// The key a token is bound to: its `cnf.jkt` (RFC 7800 §3.1, RFC 9449 §6.1), `None` when it has
/// no `cnf`. A `cnf` that is not an object with a 43-character base64url `jkt` (a SHA-256
/// thumbprint) is refused rather than taken as unbound.
pub fn confirmation_jkt(claims: &Map<String, Value>) -> Result<Option<&str>, ValidationError> {
    let Some(cnf) = claims.get("cnf") else {
        return Ok(None);
    };
    let Some(Value::String(jkt)) = cnf.as_object().and_then(|cnf| cnf.get("jkt")) else {
        return Err(ValidationError::Claim("cnf"));
    };
    match super::b64::decode(jkt) {
        Ok(digest) if digest.len() == 32 => Ok(Some(jkt)),
        _ => Err(ValidationError::Claim("cnf")),
    }
}

fn typ_is_access_token(typ: &str) -> bool {
    // RFC 9068 §4: "at+jwt" or "application/at+jwt"; media types compare case-insensitively.
    let typ = typ.to_ascii_lowercase();
    typ == ACCESS_TOKEN_TYP || typ.strip_prefix("application/") == Some(ACCESS_TOKEN_TYP)
}

impl TypRule {
    /// Whether a header `typ` (or its absence) passes.
    pub fn accepts(self, typ: Option<&Value>) -> bool {
        match (self, typ) {
            (_, Some(Value::String(typ))) if typ_is_access_token(typ) => true,
            (TypRule::AccessTokenOrPlainJwt, None) => true,
            (TypRule::AccessTokenOrPlainJwt, Some(Value::String(typ))) => {
                typ.eq_ignore_ascii_case("jwt") || typ.eq_ignore_ascii_case("application/jwt")
            }
            _ => false,
        }
    }
}

impl Validator {
    /// Checks `typ`, `iss`, `aud`, `exp`, `nbf` and `iat` at time `now` (seconds since the epoch),
    /// and the types of the other claims. `sub` and `exp` are required.
    pub fn validate(&self, token: &VerifiedToken, now: i64) -> Result<AccessClaims, ValidationError> {
        if !self.typ.accepts(token.header.get("typ")) {
            return Err(ValidationError::Typ);
        }
        let c = &token.claims;
        let iss = string(c, "iss")?.ok_or(ValidationError::Claim("iss"))?;
        if iss != self.issuer {
            return Err(ValidationError::Issuer);
        }
        let aud = match c.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|a| a.as_str().map(str::to_owned).ok_or(ValidationError::Claim("aud")))
                .collect::<Result<Vec<_>, _>>()?,
            None => return Err(ValidationError::Audience),
            Some(_) => return Err(ValidationError::Claim("aud")),
        };
        if !aud.contains(&self.audience) {
            return Err(ValidationError::Audience);
        }
        let exp = numeric_date(c, "exp")?.ok_or(ValidationError::Claim("exp"))?;
        // Accepted while exp > now − leeway, as panva/jose does.
        if exp <= now.saturating_sub(self.leeway) {
            return Err(ValidationError::Expired);
        }
        let nbf = numeric_date(c, "nbf")?;
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(ValidationError::NotYetValid);
        }
        let iat = numeric_date(c, "iat")?;
        if iat.is_some_and(|iat| iat > now.saturating_add(self.leeway)) {
            return Err(ValidationError::IssuedInFuture);
        }
        // A login after now would pass every `max_age` step-up rule for as long as it lies ahead.
        if numeric_date(c, "auth_time")?.is_some_and(|at| at > now.saturating_add(self.leeway)) {
            return Err(ValidationError::Claim("auth_time"));
        }
        let sub = identifier(c, "sub")?.ok_or(ValidationError::Claim("sub"))?;
        let scope = match &self.scope_claim {
            None => string(c, "scope")?.unwrap_or_default(),
            Some(path) => mapped_scope(path.find(c))?,
        };
        let roles = match &self.roles_claim {
            None => string_array(c.get("roles"), "roles")?,
            // A mapped claim may be one role as a string (Supabase's `role`, Clerk's `o.rol`).
            Some(path) => match path.find(c) {
                Some(Value::String(role)) => vec![role.clone()],
                other => string_array(other, "roles")?,
            },
        };
        Ok(AccessClaims {
            iss,
            sub,
            aud,
            exp,
            iat,
            nbf,
            jti: identifier(c, "jti")?,
            sid: identifier(c, "sid")?,
            client_id: string(c, "client_id")?,
            scope,
            roles,
            email: string(c, "email")?,
            email_verified: c.get("email_verified").and_then(Value::as_bool),
            // A `cnf` that is not an object with a SHA-256 `jkt` is refused, never taken as unbound.
            cnf: confirmation_jkt(c)?.map(|jkt| Confirmation { jkt: jkt.to_owned() }),
            auth_time: numeric_date(c, "auth_time")?,
            amr: string_array(c.get("amr"), "amr")?,
            acr: string(c, "acr")?,
        })
    }
}
