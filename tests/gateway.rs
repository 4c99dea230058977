//! The gateway's pure parts besides the path (tests/gateway_paths.rs): its configuration, the
//! claim mapping of trusted issuers (the presets of docs/INTEROP.md), and the origin assertion.

mod common;

use common::*;
use gatehouse::config::{Config, ConfigError, DEFAULT_CORS_HEADERS, DEFAULT_CORS_METHODS};
use gatehouse::gateway::assertion::{self, AssertionFor, ASSERTION_TTL, ASSERTION_TYP};
use gatehouse::issuers;
use gatehouse::jwt::{b64, verify_access_token, AccessClaims, TokenError, ValidationError};
use serde_json::{json, Value};
use std::collections::HashMap;

fn private_set() -> String {
    let ed = ed_key().to_private_jwk().expect("private JWK");
    json!({ "keys": [ed] }).to_string()
}

fn parse(extra: &[(&str, &str)], keys: Option<String>) -> Result<Config, ConfigError> {
    let mut vars: HashMap<&str, &str> = [("ISSUER", ISSUER), ("AUDIENCE", AUDIENCE)].into_iter().collect();
    vars.extend(extra.iter().copied());
    Config::from_lookup(&|n| vars.get(n).map(|v| v.to_string()), &|n| {
        (n == "SIGNING_KEYS").then(|| keys.clone()).flatten()
    })
}

#[test]
fn gateway_configuration_defaults_and_refusals() {
    let keys = Some(private_set());
    let c = parse(&[], keys.clone()).unwrap();
    assert_eq!(c.gateway.cors_allow_methods, DEFAULT_CORS_METHODS);
    assert_eq!(c.gateway.cors_allow_headers, DEFAULT_CORS_HEADERS);
    assert_eq!(c.gateway.cors_max_age, 600);
    assert_eq!(c.gateway.assertion_audience, None);

    let c = parse(
        &[
            ("CORS_ALLOW_METHODS", "GET,PUT , DELETE"),
            ("CORS_ALLOW_HEADERS", "Authorization, X-Trace-Id"),
            ("CORS_MAX_AGE", "0"),
            ("ORIGIN_URL", "https://origin.example/base/"),
            ("ORIGIN_ASSERTION", "on"),
        ],
        keys.clone(),
    )
    .unwrap();
    assert_eq!(c.gateway.cors_allow_methods, "GET, PUT, DELETE");
    assert_eq!(c.gateway.cors_allow_headers, "Authorization, X-Trace-Id");
    assert_eq!(c.gateway.cors_max_age, 0);
    assert_eq!(c.gateway.assertion_audience.as_deref(), Some("https://origin.example/base"), "ORIGIN_URL by default");
    let c = parse(
        &[("ORIGIN_URL", "https://origin.example"), ("ORIGIN_ASSERTION", "on"), ("ORIGIN_AUDIENCE", "urn:origin")],
        keys.clone(),
    )
    .unwrap();
    assert_eq!(c.gateway.assertion_audience.as_deref(), Some("urn:origin"));

    for extra in [
        &[("ORIGIN_ASSERTION", "yes"), ("ORIGIN_URL", "https://o.example")][..],
        &[("ORIGIN_ASSERTION", "on")][..],
        &[("CORS_MAX_AGE", "-1")][..],
        &[("CORS_MAX_AGE", "86401")][..],
        &[("CORS_ALLOW_METHODS", "GET POST")][..],
        &[("CORS_ALLOW_HEADERS", "x-a\r\nx-b")][..],
        &[("PUBLIC_PREFIXES", "/api/admin/health"), ("ROUTE_POLICIES", r#"[{"prefix":"/api/admin","roles":["a"]}]"#)][..],
        &[("OPTIONAL_AUTH_PREFIXES", "/api/;x")][..],
        &[("FAST_PATH", "no")][..],
    ] {
        assert!(matches!(parse(extra, keys.clone()), Err(ConfigError::Invalid { .. })), "{extra:?} must be refused");
    }
    // FAST_PATH: on unless turned off.
    assert!(parse(&[], keys.clone()).unwrap().fast_path);
    assert!(parse(&[("FAST_PATH", "on")], keys.clone()).unwrap().fast_path);
    assert!(!parse(&[("FAST_PATH", "off")], keys.clone()).unwrap().fast_path);
    // The assertion is signed by SIGNING_KEYS' active key: without one (managed keys only) it is refused.
    let managed = [("KEY_MANAGEMENT", "managed"), ("ORIGIN_URL", "https://o.example"), ("ORIGIN_ASSERTION", "on")];
    assert!(matches!(parse(&managed, None), Err(ConfigError::Invalid { name: "ORIGIN_ASSERTION", .. })));
    assert!(parse(&managed[..2], None).is_ok());
}

/// Signs claims as a third-party token with the test Ed25519 key (untyped, as Auth0 and Supabase send them).
fn third_party(claims: Value) -> String {
    let mut body = json!({ "iss": "https://idp.example/", "aud": "api", "sub": "u", "iat": NOW, "exp": NOW + 60 });
    for (k, v) in claims.as_object().unwrap() {
        body[k] = v.clone();
    }
    ed_key().sign_with_header(&json!({ "alg": "EdDSA", "kid": "ed", "typ": "JWT" }), &body).unwrap()
}

fn mapped(mapping: &str, claims: Value) -> Result<AccessClaims, TokenError> {
    let text = format!(
        r#"[{{"issuer":"https://idp.example/","jwks_url":"https://idp.example/jwks","audience":"api",
              "algorithms":["EdDSA"],"require_typ":false{mapping}}}]"#
    );
    let issuers = issuers::parse(&text, ISSUER).unwrap();
    verify_access_token(&keyset(), &issuers[0].validator(LEEWAY), &third_party(claims), NOW)
}

#[test]
fn trusted_issuers_claims_are_mapped() {
    let roles = |mapping: &str, claims: Value| mapped(mapping, claims).map(|c| c.roles);
    let scope = |mapping: &str, claims: Value| mapped(mapping, claims).map(|c| c.scope);
    // Auth0: RBAC permissions, or roles in a namespaced claim set by an Action.
    assert_eq!(
        roles(r#","roles_claim":"permissions""#, json!({"permissions": ["read:x", "admin"]})).unwrap(),
        ["read:x", "admin"]
    );
    let ns = json!({"https://example.com/roles": ["admin"], "https://example": {"com/roles": ["no"]}});
    assert_eq!(roles(r#","roles_claim":"https://example.com/roles""#, ns).unwrap(), ["admin"]);
    // Supabase: `role` is a string; custom roles under app_metadata.
    assert_eq!(roles(r#","roles_claim":"role""#, json!({"role": "authenticated"})).unwrap(), ["authenticated"]);
    let meta = json!({"app_metadata": {"provider": "email", "roles": ["editor"]}});
    assert_eq!(roles(r#","roles_claim":"app_metadata.roles""#, meta).unwrap(), ["editor"]);
    // Clerk: the organisation role, nested.
    assert_eq!(roles(r#","roles_claim":"o.rol""#, json!({"o": {"id": "org_1", "rol": "admin"}})).unwrap(), ["admin"]);
    // A literal name with dots wins over the path it spells.
    let both = json!({"a.b": ["literal"], "a": {"b": ["nested"]}});
    assert_eq!(roles(r#","roles_claim":"a.b""#, both).unwrap(), ["literal"]);
    // Absent: no roles; the `roles` claim is not read when a mapping is set.
    assert_eq!(roles(r#","roles_claim":"permissions""#, json!({"roles": ["admin"]})).unwrap(), Vec::<String>::new());
    assert_eq!(roles(r#","roles_claim":"a.b.c""#, json!({"a": {"b": "x"}})).unwrap(), Vec::<String>::new());
    // Wrong types are refused, not guessed at.
    for bad in [json!({"permissions": [1]}), json!({"permissions": {"admin": true}}), json!({"permissions": null})] {
        assert_eq!(
            roles(r#","roles_claim":"permissions""#, bad).unwrap_err(),
            TokenError::Validation(ValidationError::Claim("roles"))
        );
    }
    // `scp` arrays (Azure AD, Okta) become the space-separated scope; a string stays as it is.
    assert_eq!(scope(r#","scope_claim":"scp""#, json!({"scp": ["read", "write"]})).unwrap(), "read write");
    assert_eq!(scope(r#","scope_claim":"scp""#, json!({"scp": "read write"})).unwrap(), "read write");
    assert_eq!(scope(r#","scope_claim":"scp""#, json!({"scope": "admin"})).unwrap(), "");
    for bad in [json!({"scp": ["read write"]}), json!({"scp": [""]}), json!({"scp": 1})] {
        assert!(scope(r#","scope_claim":"scp""#, bad).is_err());
    }
    // Without a mapping, `roles` and `scope` are read as before.
    let plain = mapped("", json!({"roles": ["r"], "scope": "s", "permissions": ["p"]})).unwrap();
    assert_eq!((plain.roles, plain.scope), (vec!["r".to_owned()], "s".to_owned()));
    // Bad mappings are refused at configuration time.
    for bad in [r#","roles_claim":"""#, r#","roles_claim":"a..b""#, r#","scope_claim":".x""#, r#","roles_claim":1"#] {
        let text = format!(
            r#"[{{"issuer":"https://idp.example/","jwks_url":"https://idp.example/jwks","audience":"api"{bad}}}]"#
        );
        assert!(issuers::parse(&text, ISSUER).is_err(), "{bad}");
    }
}

fn user(iss: &str, sid: Option<&str>) -> AccessClaims {
    AccessClaims {
        iss: iss.into(),
        sub: "user-1".into(),
        aud: vec![AUDIENCE.into()],
        exp: NOW + 900,
        iat: Some(NOW),
        nbf: None,
        jti: Some("t".into()),
        sid: sid.map(str::to_owned),
        client_id: None,
        scope: "read write".into(),
        roles: vec!["user".into(), "beta".into()],
        email: Some("a@example.com".into()),
        email_verified: None,
        cnf: None,
        auth_time: None,
        amr: Vec::new(),
        acr: None,
    }
}

/// Signs an assertion as the edge does, verifies it with the public key set, and returns its
/// header and claims.
fn signed(request: &AssertionFor<'_>, who: Option<&AccessClaims>, jti: &[u8; 16]) -> (Value, Value) {
    let keys = keyset();
    let key = keys.signing_key().unwrap();
    let token =
        key.sign_with_header(&assertion::header(key.public()), &assertion::claims(request, who, NOW, jti)).unwrap();
    let payload = keys.verify_jws_payload(&token).expect("the assertion verifies with the published keys");
    let header = b64::decode(token.split('.').next().unwrap()).unwrap();
    (serde_json::from_slice(&header).unwrap(), serde_json::from_slice(&payload).unwrap())
}

#[test]
fn origin_assertions_are_short_lived_typed_and_bound_to_the_request() {
    let request = AssertionFor {
        issuer: ISSUER,
        audience: "https://origin.example",
        method: "POST",
        url: "https://origin.example/api/items/7",
    };
    let (header, claims) = signed(&request, Some(&user(ISSUER, Some("sid-1"))), &[1; 16]);
    assert_eq!(header, json!({ "alg": "EdDSA", "typ": ASSERTION_TYP, "kid": "ed" }));
    assert_eq!(
        claims,
        json!({
            "iss": ISSUER, "aud": "https://origin.example", "iat": NOW, "exp": NOW + 60,
            "jti": "AQEBAQEBAQEBAQEBAQEBAQ", "htm": "POST", "htu": "https://origin.example/api/items/7",
            "sub": "user-1", "sid": "sid-1", "scope": "read write", "roles": ["user", "beta"],
        })
    );
    const { assert!(ASSERTION_TTL <= 60, "API.md: exp at most 60 s after iat") };
    // The email never goes to the origin in the assertion; fresh randomness makes a fresh jti.
    let (_, other) = signed(&request, Some(&user(ISSUER, Some("sid-1"))), &[2; 16]);
    assert_ne!(other["jti"], claims["jti"]);
    // A third party's token: its issuer is named apart (`iss` stays the signer), and no sid if none.
    let (_, third) = signed(&request, Some(&user("https://idp.example/", None)), &[3; 16]);
    assert_eq!((third["iss"].as_str(), third["idp"].as_str()), (Some(ISSUER), Some("https://idp.example/")));
    assert!(third.get("sid").is_none());
    // An anonymous caller (public or optional-auth route): no subject at all.
    let (_, anonymous) = signed(&request, None, &[4; 16]);
    for absent in ["sub", "sid", "scope", "roles", "idp"] {
        assert!(anonymous.get(absent).is_none(), "{absent}");
    }
    // An assertion is not an access token: the `typ` keeps it from passing as one.
    let keys = keyset();
    let key = keys.signing_key().unwrap();
    let token = key
        .sign_with_header(
            &assertion::header(key.public()),
            &assertion::claims(&request, Some(&user(ISSUER, None)), NOW, &[5; 16]),
        )
        .unwrap();
    let as_access = gatehouse::jwt::Validator::new(ISSUER, "https://origin.example", LEEWAY);
    assert_eq!(
        verify_access_token(&keys, &as_access, &token, NOW).unwrap_err(),
        TokenError::Validation(ValidationError::Typ)
    );
}
