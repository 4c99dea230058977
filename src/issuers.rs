//! Trusted third-party issuers (`TRUSTED_ISSUERS`): whose tokens the edge accepts besides its own,
//! where each one's keys are published, and where its tokens arrive. Pure: parsed once from config.
//!
//! A token names its issuer in `iss`; that claim is read before the signature only to pick the one
//! issuer whose keys may verify it, and the validator then requires it again, so a token can only
//! ever pass under the keys of the issuer it names.

use crate::jwt::claims::ClaimPath;
use crate::jwt::json::Members;
use crate::jwt::{Algorithm, TypRule, Validator};
use serde_json::Value;
use std::fmt;

/// The most trusted issuers accepted (each costs a JWKS cache per isolate).
pub const MAX_TRUSTED_ISSUERS: usize = 16;

/// Where a token is taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Authorization,
    /// The whole value of a header, as Cloudflare Access sends `Cf-Access-Jwt-Assertion`. Lower-case.
    Header(String),
}

impl TokenSource {
    fn parse(text: &str) -> Option<TokenSource> {
        if text.eq_ignore_ascii_case("authorization") {
            return Some(TokenSource::Authorization);
        }
        let name = text.strip_prefix("header:")?.trim().to_ascii_lowercase();
        // RFC 9110 §5.1 token characters; headers that carry other credentials are never a source.
        let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        let reserved = ["authorization", "cookie", "host", "content-length", "transfer-encoding"];
        (!name.is_empty()
            && name.chars().all(token_char)
            && !reserved.contains(&name.as_str())
            && !name.starts_with("x-auth-"))
        .then_some(TokenSource::Header(name))
    }
}

/// One issuer whose tokens the edge accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// Where its JWK Set is published: `https://`, or `http://` on a loopback host for development.
    pub jwks_url: String,
    /// The audience its tokens must be for.
    pub audience: String,
    /// The algorithms its keys may have; a key of another algorithm in its set is skipped.
    pub algorithms: Vec<Algorithm>,
    /// Where its tokens arrive.
    pub source: TokenSource,
    /// Whether its tokens must carry `typ: at+jwt`; if not, an absent `typ` or `JWT` also passes.
    pub require_typ: bool,
    /// Where its tokens carry roles, if not in `roles` (`permissions`, `https://ns/roles`, `app_metadata.roles`).
    pub roles_claim: Option<ClaimPath>,
    /// Where its tokens carry scopes, if not in `scope` (`scp`, a string or an array).
    pub scope_claim: Option<ClaimPath>,
}

impl TrustedIssuer {
    /// The claim checks for this issuer's tokens.
    pub fn validator(&self, leeway: i64) -> Validator {
        let mut validator = Validator::new(self.issuer.clone(), self.audience.clone(), leeway);
        if !self.require_typ {
            validator.typ = TypRule::AccessTokenOrPlainJwt;
        }
        validator.roles_claim = self.roles_claim.clone();
        validator.scope_claim = self.scope_claim.clone();
        validator
    }
}

/// Why `TRUSTED_ISSUERS` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuersError(pub String);

impl fmt::Display for IssuersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a JWKS URL may be fetched: `https://` anywhere, `http://` only on a loopback host.
pub fn jwks_url_allowed(text: &str) -> Result<String, String> {
    let url = crate::whatwg::Url::parse(text).ok_or_else(|| format!("{text:?} is not a URL"))?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not carry credentials or a fragment"));
    }
    let Some(loopback) = url.host_is_loopback() else {
        return Err(format!("{text:?} has no host"));
    };
    match url.scheme() {
        "https" => Ok(url.as_str().to_owned()),
        "http" if loopback => Ok(url.as_str().to_owned()),
        "http" => Err(format!("{text:?}: plain http is allowed only on a loopback host (development)")),
        other => Err(format!("{text:?}: scheme {other:?} is not https")),
    }
}

/// One `TRUSTED_ISSUERS` entry as written.
struct Entry {
    issuer: String,
    jwks_url: String,
    audience: String,
    algorithms: Option<Vec<String>>,
    token_from: Option<String>,
    require_typ: Option<bool>,
    roles_claim: Option<String>,
    scope_claim: Option<String>,
}

impl Entry {
    fn from_json(value: Value) -> Result<Entry, String> {
        let mut members = Members::of(value, "an issuer")?;
        let entry = Entry {
            issuer: members.required_string("issuer")?,
            jwks_url: members.required_string("jwks_url")?,
            audience: members.required_string("audience")?,
            algorithms: members.strings("algorithms")?,
            token_from: members.string("token_from")?,
            require_typ: members.bool("require_typ")?,
            roles_claim: members.string("roles_claim")?,
            scope_claim: members.string("scope_claim")?,
        };
        members.finish()?;
        Ok(entry)
    }
}

/// Parses `TRUSTED_ISSUERS`: a JSON list of
/// `{"issuer", "jwks_url", "audience", "algorithms"?, "token_from"?, "require_typ"?, "roles_claim"?,
/// "scope_claim"?}`.
/// `own_issuer` (gatehouse's ISSUER) may not appear: its keys are the configured ones.
pub fn parse(text: &str, own_issuer: &str) -> Result<Vec<TrustedIssuer>, IssuersError> {
    let err = |why: String| IssuersError(why);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let entries = match crate::jwt::json::parse_value(text) {
        Ok(Value::Array(entries)) => entries,
        Ok(_) => return Err(err("not a JSON list of issuers".into())),
        Err(e) => return Err(err(format!("not a JSON list of issuers: {e}"))),
    };
    if entries.len() > MAX_TRUSTED_ISSUERS {
        return Err(err(format!("at most {MAX_TRUSTED_ISSUERS} issuers")));
    }
    let mut issuers: Vec<TrustedIssuer> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let e = Entry::from_json(entry).map_err(|why| err(format!("issuer {}: {why}", i + 1)))?;
        let issuer = e.issuer.trim().to_owned();
        if issuer.is_empty() || issuer == own_issuer || issuers.iter().any(|i| i.issuer == issuer) {
            return Err(err(format!("issuer {issuer:?} is empty, gatehouse's own ISSUER, or listed twice")));
        }
        let audience = e.audience.trim().to_owned();
        if audience.is_empty() {
            return Err(err(format!("issuer {issuer:?} needs an audience")));
        }
        let jwks_url = jwks_url_allowed(e.jwks_url.trim()).map_err(|why| err(format!("issuer {issuer:?}: {why}")))?;
        // One set per URL: two issuers sharing one would share its parsed keys, and one's list of
        // algorithms could let the other's through.
        if issuers.iter().any(|i| i.jwks_url == jwks_url) {
            return Err(err(format!("issuer {issuer:?}: jwks_url {jwks_url:?} is another issuer's already")));
        }
        let names = e.algorithms.unwrap_or_else(|| vec!["RS256".into()]);
        let mut algorithms = Vec::new();
        for name in &names {
            let alg = Algorithm::from_name(name).ok_or_else(|| {
                err(format!("issuer {issuer:?}: algorithm {name:?} is not one of EdDSA, RS256, ES256"))
            })?;
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        if algorithms.is_empty() {
            return Err(err(format!("issuer {issuer:?} needs at least one algorithm")));
        }
        let source = match e.token_from.as_deref() {
            None => TokenSource::Authorization,
            Some(text) => TokenSource::parse(text).ok_or_else(|| {
                err(format!(
                    "issuer {issuer:?}: token_from must be \"authorization\" or \"header:<Name>\", not {text:?}"
                ))
            })?,
        };
        let claim = |name: Option<String>, member: &str| -> Result<Option<ClaimPath>, IssuersError> {
            name.map(|n| {
                ClaimPath::new(&n)
                    .ok_or_else(|| err(format!("issuer {issuer:?}: {member} {n:?} is not a claim name or path")))
            })
            .transpose()
        };
        let roles_claim = claim(e.roles_claim, "roles_claim")?;
        let scope_claim = claim(e.scope_claim, "scope_claim")?;
        issuers.push(TrustedIssuer {
            issuer,
            jwks_url,
            audience,
            algorithms,
            source,
            require_typ: e.require_typ.unwrap_or(true),
            roles_claim,
            scope_claim,
        });
    }
    Ok(issuers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults() {
        let list = parse(
            r#"[{"issuer":"https://a.example","jwks_url":"https://a.example/jwks","audience":"api"},
                {"issuer":"https://team.cloudflareaccess.com","jwks_url":"https://team.cloudflareaccess.com/cdn-cgi/access/certs",
                 "audience":"tag","algorithms":["RS256","ES256"],"token_from":"header:Cf-Access-Jwt-Assertion","require_typ":false}]"#,
            "https://gatehouse.example",
        )
        .unwrap();
        assert_eq!(list[0].algorithms, vec![Algorithm::Rs256]);
        assert_eq!(list[0].source, TokenSource::Authorization);
        assert!(list[0].require_typ);
        assert_eq!(list[1].source, TokenSource::Header("cf-access-jwt-assertion".into()));
        assert_eq!(list[1].validator(30).typ, TypRule::AccessTokenOrPlainJwt);
        assert_eq!(parse("", "x").unwrap(), vec![]);
    }

    #[test]
    fn refuses_what_would_be_unsafe_or_ambiguous() {
        let one = |fields: &str| parse(&format!("[{{{fields}}}]"), "https://own.example");
        let base = r#""issuer":"https://a.example","audience":"api""#;
        assert!(one(&format!(r#"{base},"jwks_url":"https://a.example/jwks""#)).is_ok());
        // Plain http only on loopback.
        assert!(one(&format!(r#"{base},"jwks_url":"http://a.example/jwks""#)).is_err());
        assert!(one(&format!(r#"{base},"jwks_url":"http://127.0.0.1:9/jwks""#)).is_ok());
        assert!(one(&format!(r#"{base},"jwks_url":"http://[::1]:9/jwks""#)).is_ok());
        assert!(one(&format!(r#"{base},"jwks_url":"http://localhost:9/jwks""#)).is_ok());
        assert!(one(&format!(r#"{base},"jwks_url":"ftp://a.example/jwks""#)).is_err());
        assert!(one(&format!(r#"{base},"jwks_url":"https://u:p@a.example/jwks""#)).is_err());
        assert!(one(&format!(r#"{base},"jwks_url":"https://u@a.example/jwks""#)).is_err());
        assert!(one(&format!(r#"{base},"jwks_url":"https://a.example/jwks#""#)).is_err());
        assert!(one(&format!(r#"{base},"jwks_url":"http://localhost.a.example/jwks""#)).is_err());
        assert!(one(&format!(r#"{base},"jwks_url":"http://128.0.0.1/jwks""#)).is_err());
        assert!(one(&format!(r#"{base},"jwks_url":"/jwks""#)).is_err());
        // The URL kept is the parser's serialisation: what the fetch will ask for.
        assert_eq!(jwks_url_allowed("HTTP://127.1:9/a/../jwks"), Ok("http://127.0.0.1:9/jwks".into()));
        assert_eq!(jwks_url_allowed("https://A.example"), Ok("https://a.example/".into()));
        // No HS*, no none, no unknown algorithms.
        let url = r#""jwks_url":"https://a.example/jwks""#;
        for alg in ["HS256", "none", "PS256", ""] {
            assert!(one(&format!(r#"{base},{url},"algorithms":["{alg}"]"#)).is_err(), "{alg}");
        }
        assert!(one(&format!(r#"{base},{url},"algorithms":[]"#)).is_err());
        // Credentials headers are never a token source; nor are forwarded identity headers.
        for from in ["header:Cookie", "header:Authorization", "header:", "header:X-Auth-Sub", "header:a b", "query"] {
            assert!(one(&format!(r#"{base},{url},"token_from":"{from}""#)).is_err(), "{from}");
        }
        // gatehouse's own issuer, duplicates, empty audience, unknown fields.
        assert!(parse(
            r#"[{"issuer":"https://own.example","jwks_url":"https://x/j","audience":"a"}]"#,
            "https://own.example"
        )
        .is_err());
        let twice = format!(r#"[{{{base},{url}}},{{{base},{url}}}]"#);
        assert!(parse(&twice, "https://own.example").is_err());
        let shared_url = format!(r#"[{{{base},{url}}},{{"issuer":"https://b.example","audience":"api",{url}}}]"#);
        assert!(parse(&shared_url, "https://own.example").is_err(), "two issuers, one JWKS URL");
        assert!(one(&format!(r#""issuer":"https://a.example","audience":" ",{url}"#)).is_err());
        assert!(one(&format!(r#"{base},{url},"jku":"https://evil""#)).is_err());
    }
}
