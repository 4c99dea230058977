//! Publishing a private key's public half (`jwt::keys::public_jwk`, what the key store publishes):
//! the RFC 7520 §3.4 RSA key, with every CRT member, a multi-prime `oth` and members nobody defined,
//! keeps exactly `kty`, `n`, `e`, `kid`, `alg` and `use`.

mod common;

use common::vector;
use gatehouse::jwt::keys::public_jwk;
use gatehouse::jwt::PublicKey;
use serde_json::{json, Value};

#[test]
fn the_rfc7520_rsa_private_key_publishes_only_its_public_members() {
    let mut private = vector("jose-cookbook/4_1.rsa_v15_signature.json")["input"]["key"].clone();
    let object = private.as_object_mut().expect("key object");
    for member in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(object.contains_key(member), "the cookbook key has {member}");
    }
    let secrets: Vec<String> =
        ["d", "p", "q", "dp", "dq", "qi"].iter().map(|m| object[*m].as_str().expect("string").to_owned()).collect();
    object.insert("alg".into(), json!("RS256"));
    object.insert("oth".into(), json!([{ "r": secrets[1], "d": secrets[0], "t": secrets[5] }]));
    object.insert("key_ops".into(), json!(["sign"]));
    object.insert("x5c".into(), json!(["MIIB"]));
    object.insert("private".into(), json!(secrets[0]));

    let published = public_jwk(&private).expect("an RSA key has a public form");
    let names: Vec<&str> = published.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"]);
    let text = published.to_string();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a private member leaked");
    }
    // What is published is the key's public JWK, which loads back as the same key.
    let key = PublicKey::from_jwk(published.as_object().expect("object")).expect("the published JWK loads");
    assert_eq!(Value::Object(published.as_object().cloned().expect("object")), key.to_jwk());
}
