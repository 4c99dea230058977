//! Key loading (SIGNING_KEYS, JWKS output) and configuration parsing: refusals are loud, never defaults.

mod common;

use common::*;
use gatehouse::config::{Config, ConfigError};
use gatehouse::jwt::keys::KeyError;
use gatehouse::jwt::KeySet;
use serde_json::{json, Value};
use std::collections::HashMap;

fn private_set() -> Value {
    let mut ed = vector("jose-cookbook/curve25519_jws.json")["input"]["key"].clone();
    ed["kid"] = json!("ed");
    ed["alg"] = json!("EdDSA");
    let mut rs = vector("jose-cookbook/4_1.rsa_v15_signature.json")["input"]["key"].clone();
    rs["kid"] = json!("rs");
    rs["alg"] = json!("RS256");
    json!({ "keys": [ed, rs] })
}

fn load(set: &Value) -> Result<KeySet, KeyError> {
    KeySet::from_private_jwks(&set.to_string())
}

#[test]
fn jwks_publishes_public_halves_only() {
    let set = load(&private_set()).unwrap();
    let jwks = set.public_jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(k.get(private).is_none(), "{private} published");
        }
        assert_eq!(k["use"], "sig");
    }
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert_eq!(keys[0]["x"], private_set()["keys"][0]["x"]);
    assert_eq!(keys[1]["n"], private_set()["keys"][1]["n"]);
    assert_eq!(keys[1]["e"], "AQAB");
    // The published set loads back as a verification set.
    assert!(KeySet::from_public_jwks(&jwks.to_string()).is_ok());
}

#[test]
fn debug_output_never_shows_private_material() {
    let set = load(&private_set()).unwrap();
    let debug = format!("{set:?}");
    let d = private_set()["keys"][0]["d"].as_str().unwrap().to_owned();
    assert!(!debug.contains(&d));
    assert!(debug.contains("<redacted>"));
}

#[test]
fn small_rsa_keys_are_refused_at_load() {
    // A 1024-bit key from the Wycheproof JWK file (public), and the same check on a private set.
    let small = vector("wycheproof/json_web_key_test.json")["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["comment"] == "keysize_too_small")
        .unwrap()["public"]
        .clone();
    assert!(matches!(KeySet::from_public_jwks(&small.to_string()), Err(KeyError::RsaSize { bits: 1024, .. })));
}

#[test]
fn refusals_of_bad_private_sets() {
    let base = private_set();
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut s = base.clone();
        f(&mut s);
        load(&s)
    };
    assert!(load(&base).is_ok());
    assert_eq!(mutate(&|s| s["keys"] = json!([])).unwrap_err(), KeyError::Empty);
    assert!(matches!(mutate(&|s| s["keys"][1]["kid"] = json!("ed")), Err(KeyError::DuplicateKid(_))));
    assert_eq!(
        mutate(&|s| s["keys"][0].as_object_mut().unwrap().remove("kid").map(|_| ()).unwrap()).unwrap_err(),
        KeyError::MissingKid
    );
    assert!(matches!(mutate(&|s| s["keys"][0]["use"] = json!("enc")), Err(KeyError::WrongUse { .. })));
    assert!(matches!(mutate(&|s| s["keys"][0]["key_ops"] = json!(["encrypt"])), Err(KeyError::WrongUse { .. })));
    assert!(matches!(mutate(&|s| s["keys"][0]["key_ops"] = json!(["verify"])), Err(KeyError::WrongUse { .. })));
    assert!(mutate(&|s| s["keys"][0]["key_ops"] = json!(["sign", "verify"])).is_ok());
    assert!(matches!(mutate(&|s| s["keys"][0]["alg"] = json!("RS256")), Err(KeyError::Unsupported { .. })));
    assert!(matches!(mutate(&|s| s["keys"][1]["alg"] = json!("PS256")), Err(KeyError::Unsupported { .. })));
    assert!(matches!(mutate(&|s| s["keys"][1]["alg"] = json!("none")), Err(KeyError::Unsupported { .. })));
    assert!(matches!(
        mutate(&|s| s["keys"][1].as_object_mut().unwrap().remove("alg").map(|_| ()).unwrap()),
        Err(KeyError::Unsupported { .. })
    ));
    assert!(matches!(mutate(&|s| s["keys"][0]["crv"] = json!("X25519")), Err(KeyError::Unsupported { .. })));
    assert!(matches!(mutate(&|s| s["keys"][0]["kty"] = json!("oct")), Err(KeyError::Unsupported { .. })));
    // Public half that does not belong to the private half.
    let other_x = gatehouse::jwt::b64::encode([9u8; 32]);
    assert!(matches!(mutate(&|s| s["keys"][0]["x"] = json!(other_x)), Err(KeyError::Invalid { .. })));
    // A public key where a private one is required.
    assert!(matches!(
        mutate(&|s| s["keys"][0].as_object_mut().unwrap().remove("d").map(|_| ()).unwrap()),
        Err(KeyError::NotPrivate { .. })
    ));
    // Inconsistent RSA primes.
    assert!(matches!(mutate(&|s| s["keys"][1]["p"] = s["keys"][1]["q"].clone()), Err(KeyError::Invalid { .. })));
    // Padded base64 in key material.
    assert!(matches!(
        mutate(&|s| s["keys"][0]["d"] = json!(format!("{}=", s["keys"][0]["d"].as_str().unwrap()))),
        Err(KeyError::Malformed { .. })
    ));
    assert!(matches!(load(&json!({"keys": "x"})), Err(KeyError::NotAKeySet(_))));
    assert!(matches!(KeySet::from_private_jwks("not json"), Err(KeyError::NotAKeySet(_))));
}

fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> =
        [("ISSUER", ISSUER), ("AUDIENCE", AUDIENCE)].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

fn parse(vars: &HashMap<String, String>, keys: Option<String>) -> Result<Config, ConfigError> {
    Config::from_lookup(&|n| vars.get(n).cloned(), &|n| if n == "SIGNING_KEYS" { keys.clone() } else { None })
}

#[test]
fn config_defaults_are_the_documented_ones() {
    let c = parse(&vars(&[]), Some(private_set().to_string())).unwrap();
    assert_eq!(
        (c.access_ttl, c.refresh_ttl, c.refresh_idle, c.reuse_grace, c.leeway),
        (900, 2_592_000, 1_209_600, 10, 30)
    );
    assert_eq!(c.routes.protected_prefixes(), ["/api/"]);
    assert!(c.routes.policies().is_empty() && c.origin_url.is_none() && c.allowed_origins.is_empty());
}

#[test]
fn config_refuses_missing_and_bad_values() {
    let keys = Some(private_set().to_string());
    let mut no_issuer = vars(&[]);
    no_issuer.remove("ISSUER");
    assert_eq!(parse(&no_issuer, keys.clone()).unwrap_err(), ConfigError::Missing("ISSUER"));
    assert_eq!(parse(&vars(&[("AUDIENCE", "  ")]), keys.clone()).unwrap_err(), ConfigError::Missing("AUDIENCE"));
    assert_eq!(parse(&vars(&[]), None).unwrap_err(), ConfigError::Missing("SIGNING_KEYS"));
    assert!(matches!(parse(&vars(&[]), Some("{\"keys\":[]}".into())), Err(ConfigError::Keys(KeyError::Empty))));
    for (name, value) in [
        ("ACCESS_TTL_SECONDS", "0"),
        ("ACCESS_TTL_SECONDS", "900000"),
        ("ACCESS_TTL_SECONDS", "15m"),
        ("CLOCK_LEEWAY_SECONDS", "-1"),
        ("CLOCK_LEEWAY_SECONDS", "3600"),
        ("REFRESH_REUSE_GRACE_SECONDS", "x"),
        ("PROTECTED_PREFIXES", "api/"),
        ("ROUTE_POLICIES", "{"),
        ("ROUTE_POLICIES", r#"[{"prefix":"/api/admin"}]"#),
        ("ROUTE_POLICIES", r#"[{"prefix":"api","scope":"x"}]"#),
        ("ROUTE_POLICIES", r#"[{"prefix":"/api/","scopes":"x"}]"#),
        ("ORIGIN_URL", "ftp://origin"),
        ("ORIGIN_URL", "http://origin/?q=1"),
        ("ORIGIN_URL", "http://origin/?"),
        ("ORIGIN_URL", "http://origin/#"),
        ("ORIGIN_URL", "/relative"),
        ("ORIGIN_URL", "not a url"),
        ("ALLOWED_ORIGINS", "https://app.example.com/path"),
        ("ALLOWED_ORIGINS", "app.example.com"),
    ] {
        assert!(
            matches!(parse(&vars(&[(name, value)]), keys.clone()), Err(ConfigError::Invalid { .. })),
            "{name}={value} must be refused"
        );
    }
}

#[test]
fn config_parses_lists_and_urls() {
    let c = parse(
        &vars(&[
            ("PROTECTED_PREFIXES", "/api/, /admin"),
            (
                "ROUTE_POLICIES",
                r#"[{"prefix":"/api/admin","roles":["admin"]},{"prefix":"/api/write","scope":"write"}]"#,
            ),
            ("ORIGIN_URL", "http://127.0.0.1:9000/base/"),
            ("ALLOWED_ORIGINS", "https://App.Example.com, http://localhost:5173"),
        ]),
        Some(private_set().to_string()),
    )
    .unwrap();
    assert_eq!(c.routes.protected_prefixes(), ["/api/", "/admin"]);
    assert_eq!(c.routes.policies().len(), 2);
    assert_eq!(c.origin_url.as_deref(), Some("http://127.0.0.1:9000/base"));
    assert_eq!(c.allowed_origins, vec!["https://app.example.com", "http://localhost:5173"]);
    let serves = |p: &str| c.routes.serves(&gatehouse::gateway::path::canonicalize(p).unwrap());
    assert!(serves("/admin") && serves("/admin/x") && !serves("/administrator"));
}

#[test]
fn interop_configuration_is_checked_too() {
    let keys = Some(private_set().to_string());
    let issuer = r#"[{"issuer":"https://idp.example","jwks_url":"https://idp.example/jwks","audience":"api"}]"#;
    let c = parse(&vars(&[("TRUSTED_ISSUERS", issuer)]), keys.clone()).unwrap();
    assert_eq!(c.trusted_issuers.len(), 1);
    assert!(c.trusted_issuer("https://idp.example").is_some());
    assert_eq!((c.jwks_policy.max_age, c.jwks_policy.cooldown, c.jwks_timeout_ms), (600, 30, 5000));
    assert!(c.managed.is_none() && c.introspection_clients.is_empty());
    for (name, value) in [
        ("TRUSTED_ISSUERS", "{}"),
        (
            "TRUSTED_ISSUERS",
            r#"[{"issuer":"https://idp.example","jwks_url":"http://idp.example/jwks","audience":"api"}]"#,
        ),
        ("TRUSTED_ISSUERS", &format!(r#"[{{"issuer":"{ISSUER}","jwks_url":"https://x.example/j","audience":"api"}}]"#)),
        ("JWKS_CACHE_SECONDS", "5"),
        ("JWKS_COOLDOWN_SECONDS", "0"),
        ("JWKS_TIMEOUT_MS", "50"),
        ("JWKS_MAX_STALE_SECONDS", "100"),
        ("KEY_MANAGEMENT", "automatic"),
        ("KEY_MANAGEMENT", "managed"),
    ] {
        let extra: Vec<(&str, &str)> = if name == "KEY_MANAGEMENT" && value == "managed" {
            // Published for less time than the caches keep keys: refused.
            vec![(name, value), ("KEY_PUBLISH_SECONDS", "30"), ("MANAGED_KEYS_CACHE_SECONDS", "60")]
        } else {
            vec![(name, value)]
        };
        assert!(
            matches!(parse(&vars(&extra), keys.clone()), Err(ConfigError::Invalid { .. })),
            "{name}={value} must be refused"
        );
    }
    // Managed keys: SIGNING_KEYS becomes optional; the schedule comes from the vars.
    let m = parse(&vars(&[("KEY_MANAGEMENT", "managed"), ("MANAGED_KEY_ALG", "ES256")]), None).unwrap();
    let managed = m.managed.unwrap();
    assert_eq!(managed.alg, gatehouse::jwt::Algorithm::Es256);
    assert_eq!(managed.schedule.rotate_every, 30 * 86_400);
    assert_eq!(managed.schedule.retire_after, 900 + 30, "access TTL + leeway");
    assert!(m.keys.is_none());
    assert!(matches!(
        parse(&vars(&[("KEY_MANAGEMENT", "managed"), ("MANAGED_KEY_ALG", "RS256")]), None),
        Err(ConfigError::Invalid { name: "MANAGED_KEY_ALG", .. })
    ));
    // Introspection clients come from a secret, with long secrets only.
    let with_clients = |text: &str| {
        let text = text.to_owned();
        let keys = keys.clone();
        Config::from_lookup(&|n| vars(&[]).get(n).cloned(), &move |n| match n {
            "SIGNING_KEYS" => keys.clone(),
            "INTROSPECTION_CLIENTS" => Some(text.clone()),
            _ => None,
        })
    };
    assert!(!with_clients(&format!(r#"{{"rs":"{}"}}"#, "x".repeat(32))).unwrap().introspection_clients.is_empty());
    assert!(matches!(
        with_clients(r#"{"rs":"short"}"#),
        Err(ConfigError::Invalid { name: "INTROSPECTION_CLIENTS", .. })
    ));
    let debug = format!("{:?}", with_clients(&format!(r#"{{"rs":"{}"}}"#, "y".repeat(40))).unwrap());
    assert!(!debug.contains(&"y".repeat(40)), "client secrets never in Debug");
}

/// The two-way settings (one helper in config.rs): unset or empty is the default, either word is
/// taken, and anything else is refused naming both words.
#[test]
fn two_way_settings_take_their_two_words_only() {
    let keys = Some(private_set().to_string());
    let with = |name: &str, value: &str| parse(&vars(&[(name, value)]), keys.clone());
    for (name, default, other) in [
        ("PASSWORD_HASH", "argon2id", "pbkdf2"),
        ("REGISTRATION_MODE", "conflict", "uniform"),
        ("FAST_PATH", "on", "off"),
        ("EMAIL_VERIFICATION", "optional", "required"),
    ] {
        for value in ["", " ", default, other] {
            // EMAIL_VERIFICATION=required needs a mail transport, which is a refusal of its own.
            if name == "EMAIL_VERIFICATION" && value == other {
                continue;
            }
            assert!(with(name, value).is_ok(), "{name}={value:?}");
        }
        let Err(ConfigError::Invalid { name: refused, reason }) = with(name, "Off-ish") else {
            panic!("{name}=Off-ish must be refused")
        };
        assert_eq!((refused, reason), (name, format!("\"Off-ish\" is not \"{default}\" or \"{other}\"")));
    }
    let c = parse(&vars(&[]), keys.clone()).unwrap();
    assert!(c.fast_path && !c.email_verification_required);
    assert!(!with("FAST_PATH", "off").unwrap().fast_path);
}
