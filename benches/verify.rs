//! Benchmark (not a test): gatehouse's verification path natively, with criterion, for the ratio of
//! wasm in V8 to native that `bench/verify.mjs` prints. Fresh tokens (one per iteration, from a
//! pool) signed by the RFC 8037 Ed25519 key and the RFC 7520 RSA key of the test vectors.

#![cfg_attr(target_arch = "wasm32", allow(unused))]

#[cfg(not(target_arch = "wasm32"))]
use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse::jwt::{verify_access_token, KeySet, Validator};
use serde_json::{json, Value};
use std::hint::black_box;

/// Criterion does not build for wasm32 (only the lints do build this file there).
#[cfg(target_arch = "wasm32")]
fn main() {}

const NOW: i64 = 1_767_225_600;

fn key(file: &str, kid: &str, alg: &str) -> Value {
    let path = format!("{}/tests/vectors/jose-cookbook/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut jwk = serde_json::from_str::<Value>(&text).expect("vector JSON")["input"]["key"].clone();
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg);
    jwk
}

#[cfg(not(target_arch = "wasm32"))]
fn bench(c: &mut Criterion) {
    let set = json!({ "keys": [key("curve25519_jws.json", "ed", "EdDSA"), key("4_1.rsa_v15_signature.json", "rs", "RS256")] });
    let keys = KeySet::from_private_jwks(&set.to_string()).expect("keys");
    let validator = Validator::new("https://bench.gatehouse.test", "bench", 30);
    for (alg, signer) in [("EdDSA", 0), ("RS256", 1)] {
        let signer = keys.signing_keys().nth(signer).expect("signer");
        let tokens: Vec<String> = (0..256)
            .map(|i| {
                signer
                    .sign(&json!({
                        "iss": "https://bench.gatehouse.test", "sub": format!("user-{i}"), "aud": "bench",
                        "iat": NOW, "exp": NOW + 3600, "jti": format!("jti-{i}"), "sid": "s", "scope": "api", "roles": ["user"],
                    }))
                    .expect("sign")
            })
            .collect();
        let mut i = 0;
        c.bench_function(&format!("verify_access_token {alg}"), |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                assert!(verify_access_token(&keys, &validator, black_box(&tokens[i]), NOW).is_ok());
            })
        });
    }
}

/// ed25519-dalek's own `verify` on the signing input of one token: the reference the performance
/// issue names ("native ed25519-dalek").
#[cfg(not(target_arch = "wasm32"))]
fn dalek(c: &mut Criterion) {
    use ed25519_dalek::{Signer, SigningKey, Verifier};
    let key = SigningKey::from_bytes(&[7; 32]);
    let message = vec![b'x'; 400];
    let signature = key.sign(&message);
    let public = key.verifying_key();
    c.bench_function("ed25519-dalek verify", |b| {
        b.iter(|| assert!(public.verify(black_box(&message), &signature).is_ok()))
    });
}

#[cfg(not(target_arch = "wasm32"))]
criterion_group!(benches, bench, dalek);
#[cfg(not(target_arch = "wasm32"))]
criterion_main!(benches);
