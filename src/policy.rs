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
use crate::jwt::json::{self, Members};
use crate::jwt::AccessClaims;
use serde_json::Value;
use std::fmt;

/// One `ROUTE_POLICIES` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePolicy {
    /// The path prefix the policy applies to (see [`prefix_matches`]); a match key once parsed.
    pub prefix: String,
    /// Space-separated scopes, all of which the token must grant.
    pub scope: Option<String>,
    /// Roles, at least one of which the token must carry.
    pub roles: Option<Vec<String>>,
    /// Authentication methods (RFC 8176), all of which the token's `amr` must list.
    pub amr: Option<Vec<String>>,
    /// Space-separated authentication context classes, one of which must be the token's `acr`.
    pub acr: Option<String>,
    /// The longest time since the token's `auth_time`, seconds (a token without one falls short).
    pub max_age: Option<i64>,
}

impl RoutePolicy {
    /// One entry of the `ROUTE_POLICIES` list as written (its prefix not yet a match key).
    fn from_json(value: Value) -> Result<RoutePolicy, String> {
        let mut members = Members::of(value, "a policy")?;
        let policy = RoutePolicy {
            prefix: members.required_string("prefix")?,
            scope: members.string("scope")?,
            roles: members.strings("roles")?,
            amr: members.strings("amr")?,
            acr: members.string("acr")?,
            max_age: members.integer("max_age")?,
        };
        members.finish()?;
        Ok(policy)
    }

    /// Whether the policy asks anything of how the user authenticated (RFC 9470).
    fn asks_step_up(&self) -> bool {
        self.amr.is_some() || self.acr.is_some() || self.max_age.is_some()
    }
}

/// Why a policy was not met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDenied {
    /// The scopes the route needs, for the `scope` attribute of `WWW-Authenticate` (RFC 6750 §3).
    pub required_scope: Option<String>,
    /// A human-readable reason.
    pub reason: String,
    /// Set when the token's authentication falls short (RFC 9470), not its grants: what to ask for.
    pub step_up: Option<StepUp>,
}

/// What a route asks of the authentication itself, for the RFC 9470 §3 challenge
/// (`insufficient_user_authentication` with `acr_values` and `max_age`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUp {
    /// The acceptable `acr` values, space-separated, when the route names some.
    pub acr_values: Option<String>,
    /// The route's `max_age`, when it has one.
    pub max_age: Option<i64>,
    /// The `amr` methods the route requires (not part of the RFC 9470 challenge; for the description).
    pub amr: Vec<String>,
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

    /// Checks every policy that applies against the verified claims at `now` (seconds since the
    /// epoch, for `max_age`): grants first (403 `insufficient_scope`), then the authentication
    /// (401 `insufficient_user_authentication`, RFC 9470).
    pub fn check(&self, claims: &AccessClaims, now: i64) -> Result<(), PolicyDenied> {
        check_all(self.policies.iter().copied(), claims)?;
        check_step_up(self.policies.iter().copied(), claims, now)
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
            Some(text) => {
                let refuse = |reason: String| RoutesError { name, reason };
                let Value::Array(items) = json::parse_value(text).map_err(refuse)? else {
                    return Err(refuse("not a JSON list of policies".into()));
                };
                let read = items.into_iter().enumerate().map(|(i, item)| {
                    RoutePolicy::from_json(item).map_err(|why| refuse(format!("policy {}: {why}", i + 1)))
                });
                read.collect::<Result<_, _>>()?
            }
        };
        let mut policies = Vec::with_capacity(parsed.len());
        for p in parsed {
            if p.scope.is_none() && p.roles.is_none() && !p.asks_step_up() {
                return Err(RoutesError {
                    name,
                    reason: format!("policy for {:?} needs a scope, roles, amr, acr or max_age", p.prefix),
                });
            }
            if p.max_age.is_some_and(|age| age < 0) {
                return Err(RoutesError { name, reason: format!("policy for {:?} has a negative max_age", p.prefix) });
            }
            if p.amr.as_ref().is_some_and(|amr| amr.is_empty() || amr.iter().any(|m| !is_token_value(m)))
                || p.acr.as_deref().is_some_and(|acr| {
                    scope_items(acr).next().is_none() || !acr.split(' ').all(|v| v.is_empty() || is_token_value(v))
                })
            {
                return Err(RoutesError {
                    name,
                    reason: format!("policy for {:?} has an empty or unprintable amr or acr", p.prefix),
                });
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
                    step_up: None,
                });
            }
        }
        if let Some(roles) = &policy.roles {
            if !roles.iter().any(|r| claims.roles.contains(r)) {
                return Err(PolicyDenied {
                    required_scope: policy.scope.clone(),
                    reason: format!("one of the roles {} is required", roles.join(", ")),
                    step_up: None,
                });
            }
        }
    }
    Ok(())
}

/// Whether a configured `amr` or `acr` value can stand in a quoted challenge attribute: printable
/// ASCII without spaces, quotes or backslashes.
fn is_token_value(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// Checks what the policies ask of the authentication (RFC 9470): every listed `amr` method, an
/// accepted `acr`, and an `auth_time` no older than `max_age` (a token without `auth_time` falls
/// short of any `max_age`). The challenge carries everything the route asks, whichever part fell
/// short, so one new login meets it all: the first `acr` list and the tightest `max_age`.
fn check_step_up<'a>(
    policies: impl Iterator<Item = &'a RoutePolicy>,
    claims: &AccessClaims,
    now: i64,
) -> Result<(), PolicyDenied> {
    let mut step_up = StepUp { acr_values: None, max_age: None, amr: Vec::new() };
    let mut reasons = Vec::new();
    for policy in policies.filter(|p| p.asks_step_up()) {
        for method in policy.amr.iter().flatten() {
            if !step_up.amr.contains(method) {
                step_up.amr.push(method.clone());
            }
            if !claims.amr.contains(method) {
                reasons.push(format!("authentication method {method} is required"));
            }
        }
        if let Some(acr) = &policy.acr {
            step_up.acr_values.get_or_insert_with(|| acr.clone());
            if !claims.acr.as_deref().is_some_and(|have| scope_items(acr).any(|v| v == have)) {
                reasons.push(format!("authentication context {acr} is required"));
            }
        }
        if let Some(max_age) = policy.max_age {
            step_up.max_age = Some(step_up.max_age.map_or(max_age, |m: i64| m.min(max_age)));
            if claims.auth_time.is_none_or(|at| now.saturating_sub(at) > max_age) {
                reasons.push(format!("an authentication in the last {max_age} seconds is required"));
            }
        }
    }
    if reasons.is_empty() {
        return Ok(());
    }
    reasons.dedup();
    Err(PolicyDenied { required_scope: None, reason: reasons.join("; "), step_up: Some(step_up) })
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
            email_verified: None,
            cnf: None,
            auth_time: None,
            amr: Vec::new(),
            acr: None,
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
        let check = |p: &str, c: &AccessClaims| r.decide(&path(p)).unwrap().check(c, 0);
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
            assert!(r.decide(&path(p)).unwrap().check(&user, 0).is_err(), "{p} must be checked");
        }
        assert!(r.decide(&path("/api/administrator")).unwrap().check(&user, 0).is_ok());
        assert!(r.decide(&path("/api/admin.json/x")).unwrap().check(&user, 0).is_ok());
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

    fn authenticated(auth_time: Option<i64>, amr: &[&str], acr: Option<&str>) -> AccessClaims {
        AccessClaims {
            auth_time,
            amr: amr.iter().map(|m| m.to_string()).collect(),
            acr: acr.map(str::to_owned),
            ..claims("read", &[])
        }
    }

    #[test]
    fn step_up_rules_each_refuse_what_falls_short() {
        let r = routes(
            "/api/",
            "",
            "",
            r#"[{"prefix":"/api/pay","amr":["otp","mfa"]},{"prefix":"/api/keys","max_age":300},
                {"prefix":"/api/vault","acr":"aal2 aal3"},{"prefix":"/api/pay/big","max_age":60,"scope":"read"}]"#,
        );
        let now = 10_000;
        let check = |p: &str, c: &AccessClaims| r.decide(&path(p)).unwrap().check(c, now);
        let mfa = authenticated(Some(now - 30), &["pwd", "otp", "mfa"], Some("aal2"));
        for p in ["/api/pay", "/api/keys", "/api/vault", "/api/pay/big"] {
            assert_eq!(check(p, &mfa), Ok(()), "{p}");
        }
        // amr: every method listed, not any one of them.
        let pwd = authenticated(Some(now - 30), &["pwd"], Some("aal1"));
        let denied = check("/api/pay", &pwd).unwrap_err();
        assert_eq!(denied.step_up.as_ref().unwrap().amr, ["otp", "mfa"]);
        assert_eq!(denied.reason, "authentication method otp is required; authentication method mfa is required");
        assert!(check("/api/pay", &authenticated(Some(now), &["pwd", "otp"], None)).is_err(), "mfa missing");
        // max_age: a token without auth_time is refused, and so is an old one.
        let denied = check("/api/keys", &authenticated(None, &["pwd", "otp", "mfa"], Some("aal2"))).unwrap_err();
        assert_eq!(denied.step_up.unwrap().max_age, Some(300));
        assert!(check("/api/keys", &authenticated(Some(now - 301), &["pwd"], None)).is_err());
        assert!(check("/api/keys", &authenticated(Some(now - 300), &["pwd"], None)).is_ok());
        // acr: one of the listed values, compared whole.
        let denied = check("/api/vault", &pwd).unwrap_err();
        assert_eq!(denied.step_up.unwrap().acr_values.as_deref(), Some("aal2 aal3"));
        assert!(check("/api/vault", &authenticated(None, &[], None)).is_err(), "no acr");
        assert!(check("/api/vault", &authenticated(None, &[], Some("aal"))).is_err(), "substring of aal2");
        assert!(check("/api/vault", &authenticated(None, &[], Some("aal3"))).is_ok());
        // The challenge names all the route asks, also what the token did meet.
        let fresh_pwd = authenticated(Some(now), &["pwd"], None);
        let denied = check("/api/pay/big", &fresh_pwd).unwrap_err();
        assert_eq!(denied.step_up.unwrap().max_age, Some(60), "max_age met, amr not: max_age still named");
        // Nested policies: the tightest max_age is asked for, with the amr of the outer one.
        let stale = authenticated(Some(now - 120), &["pwd", "otp", "mfa"], None);
        let denied = check("/api/pay/big", &stale).unwrap_err();
        assert_eq!(denied.step_up.unwrap().max_age, Some(60));
        // Grants are checked first: a missing scope is 403, not a step-up.
        let no_scope = AccessClaims { scope: String::new(), ..mfa.clone() };
        let denied = check("/api/pay/big", &no_scope).unwrap_err();
        assert!(denied.step_up.is_none());
        assert_eq!(denied.required_scope.as_deref(), Some("read"));
    }

    #[test]
    fn step_up_configuration_is_checked() {
        let parse = |po: &str| Routes::parse(Some("/api/"), Some(""), Some(""), Some(po));
        assert!(parse(r#"[{"prefix":"/api/a","max_age":0}]"#).is_ok(), "a step-up alone is a policy");
        for bad in [
            r#"[{"prefix":"/api/a","max_age":-1}]"#,
            r#"[{"prefix":"/api/a","amr":[]}]"#,
            r#"[{"prefix":"/api/a","amr":["o\"tp"]}]"#,
            r#"[{"prefix":"/api/a","acr":" "}]"#,
            r#"[{"prefix":"/api/a","acr":"a\\b"}]"#,
            r#"[{"prefix":"/api/a","max_age":"60"}]"#,
        ] {
            assert_eq!(parse(bad).unwrap_err().name, "ROUTE_POLICIES", "{bad}");
        }
    }
}
