//! Shared test helpers: the public vectors' keys, a frozen clock, and token builders.
#![allow(dead_code)]

use gatehouse::jwt::{KeySet, PrivateKey, Validator};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// The frozen "now" of token tests: 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600;
pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "api.test";
pub const LEEWAY: i64 = 30;

/// `tests/vectors/<rel>` (copies of the shared public vectors), read as JSON.
pub fn vector(rel: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors").join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("vector file is JSON")
}

fn with(mut jwk: Value, kid: &str, alg: &str) -> Map<String, Value> {
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg);
    jwk.as_object().cloned().expect("jwk object")
}

/// The Ed25519 key of RFC 8037 Appendix A.1 (from the JOSE cookbook file), as kid "ed".
pub fn ed_key() -> PrivateKey {
    let jwk = vector("jose-cookbook/curve25519_jws.json")["input"]["key"].clone();
    PrivateKey::from_jwk(&with(jwk, "ed", "EdDSA")).expect("RFC 8037 key loads")
}

/// The RSA 2048 key of RFC 7520 §3.4 (from the JOSE cookbook file), as kid "rs".
pub fn rs_key() -> PrivateKey {
    let jwk = vector("jose-cookbook/4_1.rsa_v15_signature.json")["input"]["key"].clone();
    PrivateKey::from_jwk(&with(jwk, "rs", "RS256")).expect("RFC 7520 key loads")
}

/// An Ed25519 key nobody configured (the attacker's), as kid "ed".
pub fn attacker_ed_key() -> PrivateKey {
    PrivateKey::ed25519("ed", &[7u8; 32]).expect("seed key")
}

/// The key set {ed, rs}, signing with ed.
pub fn keyset() -> KeySet {
    let text = json!({ "keys": [
        with(vector("jose-cookbook/curve25519_jws.json")["input"]["key"].clone(), "ed", "EdDSA"),
        with(vector("jose-cookbook/4_1.rsa_v15_signature.json")["input"]["key"].clone(), "rs", "RS256"),
    ]});
    KeySet::from_private_jwks(&text.to_string()).expect("test key set")
}

pub fn validator() -> Validator {
    Validator::new(ISSUER, AUDIENCE, LEEWAY)
}

/// Valid access-token claims at [`NOW`].
pub fn claims() -> Value {
    json!({
        "iss": ISSUER, "sub": "user-1", "aud": AUDIENCE, "iat": NOW, "exp": NOW + 900,
        "jti": "jti-1", "sid": "sid-1", "client_id": "web", "scope": "read write", "roles": ["user"],
        "email": "a@example.com",
    })
}

/// The standard header for a key.
pub fn header(key: &PrivateKey) -> Value {
    json!({ "alg": key.public().alg().name(), "typ": "at+jwt", "kid": key.public().kid() })
}

/// Builds a compact token from raw header and payload bytes, signed by `key` over exactly those bytes.
pub fn raw_token(key: &PrivateKey, header: &[u8], payload: &[u8]) -> String {
    use gatehouse::jwt::b64;
    let input = format!("{}.{}", b64::encode(header), b64::encode(payload));
    let sig = key.sign_bytes(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64::encode(sig))
}
