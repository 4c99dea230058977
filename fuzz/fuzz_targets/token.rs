//! Token parsing and verification with keys loaded: nothing panics, and the only tokens accepted are
//! the exact ones the keys signed (no malleability: no re-encoding, no mutated segment verifies).
#![no_main]

use gatehouse::jwt::{verify_access_token, KeySet, PrivateKey, Validator};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use std::sync::OnceLock;

const NOW: i64 = 1_767_225_600;

struct Fixture {
    keys: KeySet,
    validator: Validator,
    signed: Vec<String>,
}

fn with_kid(text: &str, kid: &str, alg: &str) -> Value {
    let doc: Value = serde_json::from_str(text).expect("vector");
    let mut jwk = doc["input"]["key"].clone();
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg);
    jwk
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ed = with_kid(include_str!("../../tests/vectors/jose-cookbook/curve25519_jws.json"), "ed", "EdDSA");
        let rs = with_kid(include_str!("../../tests/vectors/jose-cookbook/4_1.rsa_v15_signature.json"), "rs", "RS256");
        let keys = KeySet::from_private_jwks(&json!({ "keys": [ed, rs] }).to_string()).expect("keys");
        let claims = json!({
            "iss": "https://issuer.test", "sub": "u", "aud": "api.test", "iat": NOW, "exp": NOW + 900,
            "jti": "j", "sid": "s", "scope": "read", "roles": ["user"],
        });
        let signed = keys.signing_keys().map(|k: &PrivateKey| k.sign(&claims).expect("sign")).collect();
        let validator = Validator::new("https://issuer.test", "api.test", 30);
        Fixture { keys, validator, signed }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    // Raw bytes as a token, and the bytes spliced into a valid token (so the structure is reached).
    let text = String::from_utf8_lossy(data);
    let mut candidates = vec![text.to_string()];
    for token in &f.signed {
        if let Some(first) = data.first() {
            let at = usize::from(*first) * token.len() / 256;
            let mut spliced = token.clone();
            if spliced.is_char_boundary(at) {
                spliced.replace_range(at..(at + 1).min(spliced.len()), &text);
            }
            candidates.push(spliced);
        }
    }
    for candidate in candidates {
        if verify_access_token(&f.keys, &f.validator, &candidate, NOW).is_ok() {
            assert!(f.signed.contains(&candidate), "accepted a token the keys did not sign: {candidate}");
        }
    }
});
