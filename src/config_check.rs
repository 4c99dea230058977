//! Every problem of a configuration at once (the `check-config` example): [`Config::from_lookup_for`]
//! stops at the first error, so this runs it again with each faulty value set aside (unset, or a
//! stand-in for a required one) until the rest parses, collecting each error on the way. Pure: the
//! lookups are arguments.

use crate::config::{Config, ConfigError};
use crate::jwt::b64;
use std::collections::BTreeMap;

/// At most this many rounds (each sets one more value aside); there are fewer variables than this.
const MAX_ROUNDS: usize = 64;

/// A stand-in for a value that is set aside, or `None` to treat it as unset.
fn stand_in(name: &str) -> Option<String> {
    match name {
        "ISSUER" => Some("https://check-config.invalid".into()),
        "AUDIENCE" => Some("check-config".into()),
        "SIGNING_KEYS" => Some(stand_in_key()),
        _ => None,
    }
}

/// A private JWK Set that loads (an Ed25519 key from a fixed seed): it only lets the other checks
/// run, and is never used to sign anything.
fn stand_in_key() -> String {
    let seed = [7u8; 32];
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    serde_json::json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "check-config",
        "d": b64::encode(seed), "x": b64::encode(public.as_bytes()),
    }]})
    .to_string()
}

/// Every problem of the configuration these lookups give, for a Worker that does (`runs_issuer`) or
/// does not run the issuer; empty when it loads. Each value is blamed once: a problem that only
/// shows once an earlier one is set aside is listed too.
pub fn problems(
    var: &dyn Fn(&str) -> Option<String>,
    secret: &dyn Fn(&str) -> Option<String>,
    runs_issuer: bool,
) -> Vec<ConfigError> {
    let mut aside: BTreeMap<&'static str, Option<String>> = BTreeMap::new();
    let mut found = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let lookup = |real: &dyn Fn(&str) -> Option<String>, name: &str| match aside.get(name) {
            Some(replaced) => replaced.clone(),
            None => real(name),
        };
        let vars = |name: &str| lookup(var, name);
        let secrets = |name: &str| lookup(secret, name);
        match Config::from_lookup_for(&vars, &secrets, runs_issuer) {
            Ok(_) => break,
            Err(error) => {
                let name = error.name();
                let repeat = aside.contains_key(name);
                found.push(error);
                if repeat {
                    // Setting it aside did not help (a rule between several values): stop here.
                    break;
                }
                aside.insert(name, stand_in(name));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)], secrets: &[(&str, &str)], runs_issuer: bool) -> Vec<String> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let secrets: HashMap<String, String> = secrets.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        problems(&|n| vars.get(n).cloned(), &|n| secrets.get(n).cloned(), runs_issuer)
            .iter()
            .map(|e| e.name().to_owned())
            .collect()
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let found = run(
            &[("ACCESS_TTL_SECONDS", "0"), ("ALLOWED_ORIGINS", "not an origin"), ("JWKS_TIMEOUT_MS", "x")],
            &[],
            true,
        );
        assert_eq!(
            found,
            ["ISSUER", "AUDIENCE", "ACCESS_TTL_SECONDS", "ALLOWED_ORIGINS", "JWKS_TIMEOUT_MS", "SIGNING_KEYS"],
            "in the order the parser meets them"
        );
    }

    #[test]
    fn a_good_configuration_has_no_problem() {
        let key = stand_in_key();
        assert!(
            run(&[("ISSUER", "https://a.example"), ("AUDIENCE", "api")], &[("SIGNING_KEYS", &key)], true).is_empty()
        );
        // An edge that only verifies needs no signing key, an issuer does.
        let edge =
            [("ISSUER", "https://a.example"), ("AUDIENCE", "api"), ("ISSUER_JWKS_URL", "service:ISSUER_SERVICE")];
        assert!(run(&edge, &[], false).is_empty());
        assert_eq!(run(&edge, &[], true), ["SIGNING_KEYS"]);
        // A verifier of another issuer's tokens only needs no keys of gatehouse's; with nothing to
        // verify with at all, it is refused.
        let trusted = r#"[{"issuer": "https://t.example", "jwks_url": "https://t.example/jwks", "audience": "api"}]"#;
        let verifier = [("ISSUER", "https://a.example"), ("AUDIENCE", "api"), ("TRUSTED_ISSUERS", trusted)];
        assert!(run(&verifier, &[], false).is_empty());
        assert_eq!(run(&verifier[..2], &[], false), ["SIGNING_KEYS"]);
    }

    #[test]
    fn the_abuse_settings_are_checked() {
        let key = stand_in_key();
        let base = [("ISSUER", "https://a.example"), ("AUDIENCE", "api")];
        let with = |extra: &[(&'static str, &'static str)], secrets: &[(&'static str, &str)]| {
            let vars: Vec<_> = base.iter().chain(extra).copied().collect();
            let mut all: Vec<(&str, &str)> = vec![("SIGNING_KEYS", key.as_str())];
            all.extend_from_slice(secrets);
            run(&vars, &all, true)
        };
        assert!(with(&[("REGISTRATION_MODE", "uniform")], &[]).is_empty());
        assert_eq!(with(&[("REGISTRATION_MODE", "silent")], &[]), ["REGISTRATION_MODE"]);
        assert!(with(&[], &[("TURNSTILE_SECRET", "0x4AAA")]).is_empty());
        let plain = [("TURNSTILE_VERIFY_URL", "http://turnstile.example/siteverify")];
        assert_eq!(with(&plain, &[("TURNSTILE_SECRET", "0x4AAA")]), ["TURNSTILE_VERIFY_URL"]);
        let loopback = [("TURNSTILE_VERIFY_URL", "http://127.0.0.1:9/siteverify")];
        assert!(with(&loopback, &[("TURNSTILE_SECRET", "0x4AAA")]).is_empty());
    }

    #[test]
    fn a_bad_mfa_key_is_named() {
        let key = stand_in_key();
        let vars = [("ISSUER", "https://a.example"), ("AUDIENCE", "api")];
        for bad in ["short", "AAAA", "not base64url!", &"A".repeat(44)] {
            assert_eq!(
                run(&vars, &[("SIGNING_KEYS", &key), ("MFA_ENCRYPTION_KEY", bad)], true),
                ["MFA_ENCRYPTION_KEY"]
            );
        }
        let good = b64::encode([1u8; 32]);
        assert!(run(&vars, &[("SIGNING_KEYS", &key), ("MFA_ENCRYPTION_KEY", &good)], true).is_empty());
    }

    #[test]
    fn webauthn_relying_party_is_checked() {
        let key = stand_in_key();
        let secrets = [("SIGNING_KEYS", key.as_str())];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = vec![("ISSUER", "https://login.example.com"), ("AUDIENCE", "api")];
            vars.extend_from_slice(extra);
            run(&vars, &secrets, true)
        };
        assert!(with(&[]).is_empty(), "defaults from ISSUER");
        assert!(with(&[("WEBAUTHN_RP_ID", "example.com")]).is_empty(), "a parent domain");
        assert!(with(&[("WEBAUTHN_RP_ID", "localhost"), ("WEBAUTHN_ORIGINS", "http://localhost:8787")]).is_empty());
        assert_eq!(with(&[("WEBAUTHN_RP_ID", "other.example")]), ["WEBAUTHN_RP_ID"], "the origin is not under it");
        assert_eq!(
            with(&[("WEBAUTHN_ORIGINS", "http://login.example.com")]),
            ["WEBAUTHN_ORIGINS"],
            "http off loopback"
        );
        assert_eq!(with(&[("WEBAUTHN_ORIGINS", "https://login.example.com/path")]), ["WEBAUTHN_ORIGINS"]);
        assert_eq!(with(&[("WEBAUTHN_ORIGINS", "https://evil.example")]), ["WEBAUTHN_ORIGINS"]);
        assert_eq!(with(&[("WEBAUTHN_RP_ID", "example.com:443")]), ["WEBAUTHN_RP_ID"]);
        // The edge Worker runs no passkey ceremony: it neither reads nor checks them.
        let edge = [("ISSUER", "https://login.example.com"), ("AUDIENCE", "api"), ("WEBAUTHN_RP_ID", "other.example")];
        assert!(run(&edge, &secrets, false).is_empty());
        assert_eq!(run(&edge, &secrets, true), ["WEBAUTHN_RP_ID"]);
    }

    #[test]
    fn only_a_worker_running_the_issuer_reads_its_settings() {
        let key = stand_in_key();
        let secrets = [
            ("SIGNING_KEYS", key.as_str()),
            ("INTROSPECTION_CLIENTS", "not json"),
            ("TURNSTILE_SECRET", "s"),
            ("MFA_ENCRYPTION_KEY", "short"),
        ];
        let vars = [
            ("ISSUER", "https://login.example.com"),
            ("AUDIENCE", "api"),
            ("ARGON2_MEMORY_KIB", "8"),
            ("PASSWORD_HASH", "md5"),
            ("DEFAULT_SCOPE", "api\u{7}"),
            ("REGISTRATION_MODE", "open"),
            ("TURNSTILE_VERIFY_URL", "ftp://turnstile.example"),
            ("MAIL_TRANSPORT", "pigeon"),
            ("EMAIL_VERIFICATION", "sometimes"),
            ("TOKEN_CLAIMS", "not a claim list!"),
            ("PASSWORD_BREACH_CHECK", "maybe"),
        ];
        // Each is named for the issuer, none for a Worker without it (the edge keeps the defaults).
        let mut named = run(&vars, &secrets, true);
        named.sort_unstable();
        assert_eq!(
            named,
            [
                "ARGON2_MEMORY_KIB",
                "DEFAULT_SCOPE",
                "EMAIL_VERIFICATION",
                "INTROSPECTION_CLIENTS",
                "MAIL_TRANSPORT",
                "MFA_ENCRYPTION_KEY",
                "PASSWORD_BREACH_CHECK",
                "PASSWORD_HASH",
                "REGISTRATION_MODE",
                "TOKEN_CLAIMS",
                "TURNSTILE_VERIFY_URL",
            ]
        );
        assert!(run(&vars, &secrets, false).is_empty());
        let edge = Config::from_lookup_for(
            &|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned()),
            &|n| secrets.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned()),
            false,
        )
        .expect("the edge loads");
        assert!(edge.mail.is_none() && edge.turnstile.is_none() && edge.breach_check.is_none());
        assert!(!edge.email_verification_required && edge.token_claims.is_empty() && edge.admin_emails.is_empty());
        assert_eq!((edge.default_scope.as_str(), edge.default_roles.as_slice()), ("api", &["user".to_owned()][..]));
    }

    #[test]
    fn a_bad_key_set_is_named() {
        let found = run(&[("ISSUER", "https://a.example"), ("AUDIENCE", "api")], &[("SIGNING_KEYS", "{}")], true);
        assert_eq!(found, ["SIGNING_KEYS"]);
    }
}
