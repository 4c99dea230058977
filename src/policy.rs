//! Protected prefixes and route policies: which paths need a token, and which scopes or roles they need.

use crate::jwt::AccessClaims;
use serde::Deserialize;

/// One `ROUTE_POLICIES` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutePolicy {
    /// The path prefix the policy applies to (see [`prefix_matches`]).
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

/// Normalises a request path for matching: decodes percent-encoded unreserved characters
/// (RFC 3986 §6.2.2.2) and folds runs of `/`, so `/%61pi//admin` matches like `/api/admin`.
pub fn normalize_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(c as char);
                    i += 3;
                    continue;
                }
            }
        }
        if b == b'/' && out.ends_with('/') {
            i += 1;
            continue;
        }
        // Paths from a parsed URL are ASCII; anything else is kept byte-for-byte as text.
        out.push_str(std::str::from_utf8(&bytes[i..i + 1]).unwrap_or("\u{FFFD}"));
        i += 1;
    }
    out
}

/// Whether a normalised path falls under a prefix. A prefix ending in `/` matches anything below it;
/// one that does not matches itself and anything below it (`/api/admin` matches `/api/admin` and
/// `/api/admin/x`, never `/api/administrator`).
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix) || path == prefix.trim_end_matches('/')
    } else {
        path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// Checks every policy whose prefix matches: all must be met.
pub fn check(policies: &[RoutePolicy], path: &str, claims: &AccessClaims) -> Result<(), PolicyDenied> {
    for policy in policies.iter().filter(|p| prefix_matches(&p.prefix, path)) {
        if let Some(scope) = &policy.scope {
            let missing: Vec<&str> =
                scope.split(' ').filter(|s| !s.is_empty() && !claims.scopes().any(|g| g == *s)).collect();
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
        }
    }

    #[test]
    fn normalisation_closes_encoding_bypasses() {
        assert_eq!(normalize_path("/api/admin"), "/api/admin");
        assert_eq!(normalize_path("/%61pi/%41dmin"), "/api/Admin");
        assert_eq!(normalize_path("/api//admin"), "/api/admin");
        assert_eq!(normalize_path("///api/admin/"), "/api/admin/");
        // Reserved characters stay encoded: %2F is not a path separator.
        assert_eq!(normalize_path("/api%2Fadmin"), "/api%2Fadmin");
        assert_eq!(normalize_path("/api/%zz"), "/api/%zz");
        assert_eq!(normalize_path("/a%"), "/a%");
        assert_eq!(normalize_path("/a%6"), "/a%6");
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
    fn every_matching_policy_must_be_met() {
        let policies = vec![
            RoutePolicy { prefix: "/api/".into(), scope: Some("read".into()), roles: None },
            RoutePolicy {
                prefix: "/api/admin".into(),
                scope: Some("read admin".into()),
                roles: Some(vec!["admin".into(), "ops".into()]),
            },
        ];
        assert!(check(&policies, "/api/x", &claims("read", &[])).is_ok());
        assert!(check(&policies, "/api/x", &claims("write", &[])).is_err());
        let denied = check(&policies, "/api/admin/x", &claims("read", &["admin"])).unwrap_err();
        assert_eq!(denied.required_scope.as_deref(), Some("read admin"));
        assert!(check(&policies, "/api/admin/x", &claims("read admin", &["user"])).is_err());
        assert!(check(&policies, "/api/admin/x", &claims("admin read", &["ops"])).is_ok());
        // Scope matching is whole-token, not substring.
        assert!(check(&policies, "/api/x", &claims("reader", &[])).is_err());
    }
}
