//! Routes and route policies: which canonical paths the edge forwards (with a token, without one,
//! or either), and which scopes or roles they need (docs/GATEWAY.md "Routes").
//!
//! Paths are matched by their key ([`CanonicalPath::key`]: decoded, case-folded) against prefixes
//! that went through the same canonicalisation, so a policy cannot be stepped around by case,
//! escapes, `//` or dot segments. A last segment with a dot is also matched without its extension
//! (`/api/admin.json` as `/api/admin`), since Rails (`(.:format)`) and Spring's suffix pattern
//! match route it there.

use crate::gateway::path::{canonicalize, CanonicalPath};
use crate::jwt::claims::scope_items;
use crate::jwt::AccessClaims;
use serde::Deserialize;
use std::fmt;

/// One `ROUTE_POLICIES` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutePolicy {
    /// The path prefix the policy applies to (see [`prefix_matches`]); a match key once parsed.
    pub prefix: String,
    /// Space-separated scopes, all of which the token must grant.
    #[serde(default)]
    pub scope: Option<String>,
    /// Roles, at least one of which the token must carry.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

/// Why a policy was not met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDenied {
    /// The scopes the route needs, for the `scope` attribute of `WWW-Authenticate` (RFC 6750 §3).
    pub required_scope: Option<String>,
    /// A human-readable reason.
    pub reason: String,
}

/// How a forwarded path treats tokens, from the strictest down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// `PUBLIC_PREFIXES`: forwarded without a token and without identity headers.
    Public,
    /// `OPTIONAL_AUTH_PREFIXES`: identity headers when a valid token comes, anonymous without one.
    Optional,
    /// `PROTECTED_PREFIXES`, or any path a route policy matches: a valid token is required.
    Protected,
}

/// What the routes say of one path: how it treats tokens and every policy it must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// How the path treats tokens.
    pub access: Access,
    policies: Vec<&'a RoutePolicy>,
}

impl Decision<'_> {
    /// The route policies that apply (all must be met; any makes the path [`Access::Protected`]).
    pub fn policies(&self) -> &[&RoutePolicy] {
        &self.policies
    }

    /// Checks every policy that applies against the verified claims.
    pub fn check(&self, claims: &AccessClaims) -> Result<(), PolicyDenied> {
        check_all(self.policies.iter().copied(), claims)
    }
}

/// The configured routes: `PROTECTED_PREFIXES`, `PUBLIC_PREFIXES`, `OPTIONAL_AUTH_PREFIXES` and
/// `ROUTE_POLICIES`, every prefix a match key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    protected: Vec<String>,
    public: Vec<String>,
    optional: Vec<String>,
    policies: Vec<RoutePolicy>,
}

/// Why the route configuration was refused: the variable and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutesError {
    /// The variable at fault.
    pub name: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for RoutesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.reason)
    }
}

/// The match key of a configured prefix: canonicalised like a request path (a prefix that would be
/// refused as a path is refused), keeping a trailing `/`.
fn prefix_key(name: &'static str, prefix: &str) -> Result<String, RoutesError> {
    let refuse = |why: String| RoutesError { name, reason: format!("{prefix:?} {why}") };
    if !prefix.starts_with('/') {
        return Err(refuse("does not start with /".into()));
    }
    let canonical = canonicalize(prefix).map_err(|e| refuse(format!("is not a plain path: {e}")))?;
    Ok(canonical.key().to_owned())
}

/// A comma- (or space-) separated list of prefixes, as match keys.
fn prefix_list(name: &'static str, text: Option<&str>, default: &[&str]) -> Result<Vec<String>, RoutesError> {
    let items: Vec<&str> = match text {
        None => default.to_vec(),
        Some(text) => text.split([',', ' ']).filter(|p| !p.is_empty()).collect(),
    };
    items.iter().map(|p| prefix_key(name, p)).collect()
}

impl Routes {
    /// Parses the four route variables (`None`: unset). `PROTECTED_PREFIXES` defaults to `/api/`
    /// and may not be empty; a prefix may stand in one list only; a public or optional prefix may
    /// not lie under a policy's prefix, since policies are never relaxed and it would never apply.
    pub fn parse(
        protected: Option<&str>,
        public: Option<&str>,
        optional: Option<&str>,
        policies: Option<&str>,
    ) -> Result<Routes, RoutesError> {
        let protected = prefix_list("PROTECTED_PREFIXES", protected, &["/api/"])?;
        if protected.is_empty() {
            return Err(RoutesError { name: "PROTECTED_PREFIXES", reason: "no prefix is listed".into() });
        }
        let public = prefix_list("PUBLIC_PREFIXES", public, &[])?;
        let optional = prefix_list("OPTIONAL_AUTH_PREFIXES", optional, &[])?;
        let name = "ROUTE_POLICIES";
        let parsed: Vec<RoutePolicy> = match policies.map(str::trim) {
            None | Some("") => Vec::new(),
            Some(text) => serde_json::from_str(text).map_err(|e| RoutesError { name, reason: e.to_string() })?,
        };
        let mut policies = Vec::with_capacity(parsed.len());
        for p in parsed {
            if p.scope.is_none() && p.roles.is_none() {
                return Err(RoutesError { name, reason: format!("policy for {:?} needs a scope or roles", p.prefix) });
            }
            policies.push(RoutePolicy { prefix: prefix_key(name, &p.prefix)?, ..p });
        }
        let lists =
            [("PROTECTED_PREFIXES", &protected), ("PUBLIC_PREFIXES", &public), ("OPTIONAL_AUTH_PREFIXES", &optional)];
        for (i, (name, list)) in lists.iter().enumerate() {
            for prefix in list.iter() {
                if lists.iter().skip(i + 1).any(|(_, other)| other.contains(prefix)) {
                    return Err(RoutesError { name, reason: format!("{prefix:?} is listed twice") });
                }
            }
        }
        for (name, list) in [("PUBLIC_PREFIXES", &public), ("OPTIONAL_AUTH_PREFIXES", &optional)] {
            if let Some((prefix, policy)) =
                list.iter().find_map(|p| policies.iter().find(|q| prefix_matches(&q.prefix, p)).map(|q| (p, q)))
            {
                return Err(RoutesError {
                    name,
                    reason: format!(
                        "{prefix:?} lies under the policy for {:?}, which always needs a token",
                        policy.prefix
                    ),
                });
            }
        }
        Ok(Routes { protected, public, optional, policies })
    }

    /// The protected prefixes, as match keys.
    pub fn protected_prefixes(&self) -> &[String] {
        &self.protected
    }

    /// The route policies, their prefixes as match keys.
    pub fn policies(&self) -> &[RoutePolicy] {
        &self.policies
    }

    /// Whether the edge forwards this path at all (else it is not found).
    pub fn serves(&self, path: &CanonicalPath) -> bool {
        self.access_of(path.key()).is_some()
    }

    /// The class a match key falls in by its longest matching prefix, if any.
    fn access_of(&self, key: &str) -> Option<Access> {
        let classes =
            [(Access::Protected, &self.protected), (Access::Public, &self.public), (Access::Optional, &self.optional)];
        let mut best: Option<(usize, Access)> = None;
        for (access, list) in classes {
            for prefix in list.iter().filter(|p| prefix_matches(p, key)) {
                if best.is_none_or(|(len, _)| prefix.len() > len) {
                    best = Some((prefix.len(), access));
                }
            }
        }
        best.map(|(_, access)| access)
    }

    /// What the routes say of a path: `None` if the edge does not forward it. Its access is the
    /// strictest over its readings ([`readings`]); every policy matching any reading applies, and
    /// any makes the path protected (policies are never relaxed by a public or optional prefix).
    pub fn decide(&self, path: &CanonicalPath) -> Option<Decision<'_>> {
        let key = path.key();
        let mut access = self.access_of(key)?;
        let readings = readings(key);
        for reading in &readings {
            if let Some(other) = self.access_of(reading) {
                access = access.max(other);
            }
        }
        let policies: Vec<&RoutePolicy> =
            self.policies.iter().filter(|p| readings.iter().any(|r| prefix_matches(&p.prefix, r))).collect();
        if !policies.is_empty() {
            access = Access::Protected;
        }
        Some(Decision { access, policies })
    }
}

/// The readings of a match key that some origin may route it by: the key itself, and, when its last
/// segment has a dot after its first character, that segment cut at the dot (`/api/admin.json/` is
/// also `/api/admin`: Rails drops a trailing `/` and routes `.json` as the format; Spring's suffix
/// pattern match routes `/admin.*` to `/admin`).
pub fn readings(key: &str) -> Vec<String> {
    let mut out = vec![key.to_owned()];
    let base = key.strip_suffix('/').unwrap_or(key);
    if let Some((dir, last)) = base.rsplit_once('/') {
        if let Some(dot) = last.find('.').filter(|&d| d > 0) {
            out.push(format!("{dir}/{}", last.get(..dot).unwrap_or(last)));
        }
    }
    out
}

/// Whether a path (a match key) falls under a prefix (also a match key). A prefix ending in `/`
/// matches anything below it and itself without the `/`; one that does not matches itself and
/// anything below it (`/api/admin` matches `/api/admin` and `/api/admin/x`, never `/api/administrator`).
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix) || path == prefix.trim_end_matches('/')
    } else {
        path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// Checks policies against verified claims: all must be met.
fn check_all<'a>(policies: impl Iterator<Item = &'a RoutePolicy>, claims: &AccessClaims) -> Result<(), PolicyDenied> {
    for policy in policies {
        if let Some(scope) = &policy.scope {
            let missing: Vec<&str> = scope_items(scope).filter(|s| !claims.scopes().any(|g| g == *s)).collect();
            if !missing.is_empty() {
                return Err(PolicyDenied {
                    required_scope: Some(scope.clone()),
                    reason: format!("scope {} is required", missing.join(" ")),
                });
            }
        }
        if let Some(roles) = &policy.roles {
            if !roles.iter().any(|r| claims.roles.contains(r)) {
                return Err(PolicyDenied {
                    required_scope: policy.scope.clone(),
                    reason: format!("one of the roles {} is required", roles.join(", ")),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(scope: &str, roles: &[&str]) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: "u".into(),
            aud: vec![],
            exp: 0,
            iat: None,
            nbf: None,
            jti: None,
            sid: None,
            client_id: None,
            scope: scope.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            email: None,
            cnf: None,
        }
    }

    fn path(raw: &str) -> CanonicalPath {
        canonicalize(raw).unwrap()
    }

    fn routes(protected: &str, public: &str, optional: &str, policies: &str) -> Routes {
        Routes::parse(Some(protected), Some(public), Some(optional), Some(policies)).unwrap()
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/api/", "/api/x"));
        assert!(prefix_matches("/api/", "/api"));
        assert!(!prefix_matches("/api/", "/apix"));
        assert!(prefix_matches("/api/admin", "/api/admin"));
        assert!(prefix_matches("/api/admin", "/api/admin/users"));
        assert!(!prefix_matches("/api/admin", "/api/administrator"));
    }

    #[test]
    fn readings_drop_a_last_extension() {
        assert_eq!(readings("/api/admin.json"), vec!["/api/admin.json", "/api/admin"]);
        assert_eq!(readings("/api/admin.tar.gz/"), vec!["/api/admin.tar.gz/", "/api/admin"]);
        assert_eq!(readings("/api/.hidden"), vec!["/api/.hidden"]);
        assert_eq!(readings("/api/v1.2/x"), vec!["/api/v1.2/x"]);
        assert_eq!(readings("/"), vec!["/"]);
    }

    #[test]
    fn every_matching_policy_must_be_met() {
        let r = routes(
            "/api/",
            "",
            "",
            r#"[{"prefix":"/api/","scope":"read"},{"prefix":"/api/admin","scope":"read admin","roles":["admin","ops"]}]"#,
        );
        let check = |p: &str, c: &AccessClaims| r.decide(&path(p)).unwrap().check(c);
        assert!(check("/api/x", &claims("read", &[])).is_ok());
        assert!(check("/api/x", &claims("write", &[])).is_err());
        let denied = check("/api/admin/x", &claims("read", &["admin"])).unwrap_err();
        assert_eq!(denied.required_scope.as_deref(), Some("read admin"));
        assert!(check("/api/admin/x", &claims("read admin", &["user"])).is_err());
        assert!(check("/api/admin/x", &claims("admin read", &["ops"])).is_ok());
        // Scope matching is whole-token, not substring.
        assert!(check("/api/x", &claims("reader", &[])).is_err());
    }

    #[test]
    fn policies_match_every_spelling_and_reading() {
        let r = routes("/api/", "", "", r#"[{"prefix":"/api/admin","roles":["admin"]}]"#);
        let user = claims("", &["user"]);
        for p in ["/api/Admin/users", "/API/ADMIN", "/api/admin/", "/%61pi/admin", "/api/x/../admin", "/api/admin.json"]
        {
            assert!(r.decide(&path(p)).unwrap().check(&user).is_err(), "{p} must be checked");
        }
        assert!(r.decide(&path("/api/administrator")).unwrap().check(&user).is_ok());
        assert!(r.decide(&path("/api/admin.json/x")).unwrap().check(&user).is_ok());
    }

    #[test]
    fn longest_prefix_decides_and_policies_are_never_relaxed() {
        let r = routes(
            "/api/",
            "/api/health, /static/",
            "/api/feed",
            r#"[{"prefix":"/api/feed/private","roles":["member"]}]"#,
        );
        let access = |p: &str| r.decide(&path(p)).map(|d| d.access);
        assert_eq!(access("/api/x"), Some(Access::Protected));
        assert_eq!(access("/api/health"), Some(Access::Public));
        assert_eq!(access("/API/Health/live"), Some(Access::Public));
        assert_eq!(access("/api/healthz"), Some(Access::Protected));
        assert_eq!(access("/api/feed/1"), Some(Access::Optional));
        assert_eq!(access("/api/feed/private/1"), Some(Access::Protected));
        assert_eq!(access("/static/app.js"), Some(Access::Public));
        assert_eq!(access("/other"), None);
        // A reading under a stricter class wins: `/api/health.json` is not under `/api/health`, and
        // Rails would route it to `/api/health`; both are fine, the strictest is taken.
        assert_eq!(access("/api/health.json"), Some(Access::Protected));
        assert_eq!(access("/api/feed/private.json"), Some(Access::Protected));
    }

    #[test]
    fn route_configuration_is_checked() {
        let parse = |pr: &str, pu: &str, op: &str, po: &str| Routes::parse(Some(pr), Some(pu), Some(op), Some(po));
        assert_eq!(parse("", "", "", "").unwrap_err().name, "PROTECTED_PREFIXES");
        assert_eq!(parse("api/", "", "", "").unwrap_err().name, "PROTECTED_PREFIXES");
        assert_eq!(parse("/api/", "/x;y", "", "").unwrap_err().name, "PUBLIC_PREFIXES");
        assert_eq!(parse("/api/", "/pub", "/pub", "").unwrap_err().name, "PUBLIC_PREFIXES");
        assert_eq!(parse("/api/", "/API/", "", "").unwrap_err().name, "PROTECTED_PREFIXES");
        let policy = r#"[{"prefix":"/api/admin","roles":["admin"]}]"#;
        assert_eq!(parse("/api/", "/api/admin/health", "", policy).unwrap_err().name, "PUBLIC_PREFIXES");
        assert_eq!(parse("/api/", "", "/api/admin", policy).unwrap_err().name, "OPTIONAL_AUTH_PREFIXES");
        assert!(parse("/api/", "/", "", policy).is_ok(), "a public prefix above a policy leaves the policy in force");
        assert_eq!(parse("/api/", "", "", r#"[{"prefix":"/api/admin"}]"#).unwrap_err().name, "ROUTE_POLICIES");
        assert_eq!(parse("/api/", "", "", r#"[{"prefix":"api","scope":"x"}]"#).unwrap_err().name, "ROUTE_POLICIES");
        assert_eq!(parse("/api/", "", "", r#"[{"prefix":"/a","scopes":"x"}]"#).unwrap_err().name, "ROUTE_POLICIES");
        let defaults = Routes::parse(None, None, None, None).unwrap();
        assert_eq!(defaults.protected_prefixes(), ["/api/"]);
        assert!(defaults.policies().is_empty());
    }
}
