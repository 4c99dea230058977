//! Protected prefixes and route policies: which paths need a token, and which scopes or roles they need.

use crate::jwt::claims::scope_items;
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

/// Why a request path is refused outright (400): it hides a separator some origins would decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmbiguousPath;

/// Normalises a request path (RFC 3986 §6.2.2): decodes percent-encoded unreserved characters,
/// folds runs of `/`, and resolves `.` and `..` segments (§5.2.4), so `/%61pi//x/%2E%2E/admin` is
/// `/api/admin`. Encoded `/`, `\` and NUL, and a raw `\`, are refused: an origin could decode them
/// into a path the policies never saw. This is the path that is matched *and* forwarded.
pub fn normalize_path(path: &str) -> Result<String, AmbiguousPath> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") || path.contains('\\') {
        return Err(AmbiguousPath);
    }
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    let hex = |c: &u8| (*c as char).to_digit(16);
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            if let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(hex), bytes.get(i + 2).and_then(hex)) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    decoded.push(c as char);
                    i += 3;
                    continue;
                }
            }
        }
        // Paths from a parsed URL are ASCII; anything else is kept as text.
        decoded.push_str(bytes.get(i..i + 1).and_then(|s| std::str::from_utf8(s).ok()).unwrap_or("\u{FFFD}"));
        i += 1;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing = decoded.ends_with('/') && !segments.is_empty();
    let mut out = format!("/{}", segments.join("/"));
    if trailing {
        out.push('/');
    }
    Ok(out)
}

/// The form a normalised path is matched in: ASCII lower-case, and `;` parameters cut from each
/// segment, so `/api/Admin;x/users` matches like `/api/admin/users` (origins that ignore case or
/// strip path parameters cannot be used to step around a policy).
pub fn match_key(path: &str) -> String {
    path.split('/')
        .map(|segment| segment.split(';').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("/")
        .to_ascii_lowercase()
}

/// Whether a path (in [`match_key`] form) falls under a prefix (also in that form). A prefix ending in
/// `/` matches anything below it; one that does not matches itself and anything below it
/// (`/api/admin` matches `/api/admin` and `/api/admin/x`, never `/api/administrator`).
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix) || path == prefix.trim_end_matches('/')
    } else {
        path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// Checks every policy whose prefix matches the normalised `path`: all must be met.
pub fn check(policies: &[RoutePolicy], path: &str, claims: &AccessClaims) -> Result<(), PolicyDenied> {
    let key = match_key(path);
    for policy in policies.iter().filter(|p| prefix_matches(&p.prefix, &key)) {
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
        }
    }

    fn norm(p: &str) -> String {
        normalize_path(p).unwrap()
    }

    #[test]
    fn normalisation_closes_encoding_bypasses() {
        assert_eq!(norm("/api/admin"), "/api/admin");
        assert_eq!(norm("/%61pi/%41dmin"), "/api/Admin");
        assert_eq!(norm("/api//admin"), "/api/admin");
        assert_eq!(norm("///api/admin/"), "/api/admin/");
        assert_eq!(norm("/api/x/%2E%2E/admin"), "/api/admin");
        assert_eq!(norm("/api/./admin/."), "/api/admin");
        assert_eq!(norm("/api/../../admin"), "/admin");
        assert_eq!(norm("/"), "/");
        assert_eq!(norm(""), "/");
        assert_eq!(norm("/api/%zz"), "/api/%zz");
        assert_eq!(norm("/a%"), "/a%");
        assert_eq!(norm("/a%6"), "/a%6");
        // Encoded separators and NUL would let an origin see another path: refused.
        for bad in ["/api%2Fadmin", "/api%2fadmin", "/api/%5Cadmin", "/api/a%00", "/api\\admin"] {
            assert_eq!(normalize_path(bad), Err(AmbiguousPath), "{bad}");
        }
    }

    #[test]
    fn match_keys_fold_case_and_cut_parameters() {
        assert_eq!(match_key("/api/Admin;x/users"), "/api/admin/users");
        assert_eq!(match_key("/API/admin;jsessionid=1"), "/api/admin");
        let policies =
            vec![RoutePolicy { prefix: "/api/admin".into(), scope: None, roles: Some(vec!["admin".into()]) }];
        for path in ["/api/Admin/users", "/api/admin;x/users", "/API/ADMIN", "/api/admin;"] {
            assert!(check(&policies, path, &claims("", &["user"])).is_err(), "{path} must be checked");
        }
        assert!(check(&policies, "/api/administrator", &claims("", &["user"])).is_ok());
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
