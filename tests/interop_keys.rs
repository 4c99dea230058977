//! ES256 keys, other issuers' JWK Sets, and the `typ` rule for issuers that do not type their tokens.

mod common;

use common::*;
use gatehouse::jwt::keys::KeyError;
use gatehouse::jwt::{b64, verify_access_token, Algorithm, KeySet, PrivateKey, TokenError, TypRule, UntrustedToken};
use gatehouse::jwt::{ValidationError, Validator};
use serde_json::{json, Map, Value};

/// The P-256 key of RFC 7515 Appendix A.3.1, as kid "ec".
fn rfc7515_ec_jwk() -> Value {
    json!({
        "kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
    })
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn ec_key() -> PrivateKey {
    PrivateKey::from_jwk(&object(&rfc7515_ec_jwk())).expect("RFC 7515 A.3 key loads")
}

#[test]
fn rfc7515_a3_es256_signature_verifies() {
    // RFC 7515 §A.3: the JWS of Figure "A.3.1" signed with the key above.
    let jws = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    let mut jwk = rfc7515_ec_jwk();
    jwk.as_object_mut().unwrap().remove("d");
    let set = KeySet::from_public_jwks(&json!({ "keys": [jwk] }).to_string()).unwrap();
    // The RFC's header has no kid; rebuild the check on the bytes with the one key.
    let key = set.find("ec").unwrap();
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let sig = b64::decode(sig).unwrap();
    assert!(gatehouse::jwt::keys::verify_signature_bytes(key, "ES256", input.as_bytes(), &sig));
    let mut flipped = sig.clone();
    flipped[10] ^= 1;
    assert!(!gatehouse::jwt::keys::verify_signature_bytes(key, "ES256", input.as_bytes(), &flipped));
    // The same bytes under another alg name are refused: the key decides.
    assert!(!gatehouse::jwt::keys::verify_signature_bytes(key, "ES384", input.as_bytes(), &sig));
}

#[test]
fn es256_keys_load_sign_verify_and_publish() {
    let ec = ec_key();
    let set = KeySet::from_private_jwks(&json!({ "keys": [rfc7515_ec_jwk()] }).to_string()).unwrap();
    let token = ec.sign(&claims()).unwrap();
    assert!(verify_access_token(&set, &validator(), &token, NOW).is_ok());
    // Signatures are r || s, 64 bytes.
    assert_eq!(b64::decode(token.rsplit('.').next().unwrap()).unwrap().len(), 64);
    let published = set.public_jwks();
    let jwk = &published["keys"][0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    assert_eq!(jwk["x"], rfc7515_ec_jwk()["x"]);
    assert_eq!(jwk["y"], rfc7515_ec_jwk()["y"]);
    assert!(jwk.get("d").is_none());
    assert!(KeySet::from_public_jwks(&published.to_string()).is_ok());
}

#[test]
fn bad_es256_keys_are_refused() {
    let with = |name: &str, value: Value| {
        let mut jwk = rfc7515_ec_jwk();
        jwk[name] = value;
        PrivateKey::from_jwk(&object(&jwk))
    };
    assert!(matches!(with("y", json!(b64::encode([7u8; 32]))), Err(KeyError::Invalid { .. })), "off-curve point");
    assert!(matches!(with("x", json!(b64::encode([0u8; 31]))), Err(KeyError::Malformed { member: "x", .. })));
    assert!(matches!(with("d", json!(b64::encode([0u8; 32]))), Err(KeyError::Invalid { .. })), "zero scalar");
    let mut mismatched = rfc7515_ec_jwk();
    mismatched["d"] = json!(b64::encode([5u8; 32]));
    assert!(matches!(PrivateKey::from_jwk(&object(&mismatched)), Err(KeyError::Invalid { .. })), "d of another key");
    // Curves and algorithms that do not fit.
    assert!(matches!(with("crv", json!("P-384")), Err(KeyError::Unsupported { .. })));
    assert!(matches!(with("alg", json!("ES384")), Err(KeyError::Unsupported { .. })));
    assert!(matches!(with("alg", json!("EdDSA")), Err(KeyError::Unsupported { .. })));
}

#[test]
fn es256_and_eddsa_headers_cannot_switch_keys() {
    let mut ed = vector("jose-cookbook/curve25519_jws.json")["input"]["key"].clone();
    ed["kid"] = json!("ed");
    ed["alg"] = json!("EdDSA");
    let set = KeySet::from_private_jwks(&json!({ "keys": [rfc7515_ec_jwk(), ed] }).to_string()).unwrap();
    let ec = ec_key();
    let ed = set.signing_keys().nth(1).unwrap().clone();
    // An ES256 signature presented under the Ed25519 kid, and the reverse.
    let mut header = json!({ "alg": "ES256", "typ": "at+jwt", "kid": "ed" });
    let forged = ec.sign_with_header(&header, &claims()).unwrap();
    assert_eq!(
        verify_access_token(&set, &validator(), &forged, NOW),
        Err(TokenError::Validation(ValidationError::AlgMismatch))
    );
    header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "ec" });
    let forged = ed.sign_with_header(&header, &claims()).unwrap();
    assert_eq!(
        verify_access_token(&set, &validator(), &forged, NOW),
        Err(TokenError::Validation(ValidationError::AlgMismatch))
    );
    // A DER-encoded ECDSA signature (what some libraries emit) is refused: JWS uses r || s.
    let token = ec.sign(&claims()).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let raw = b64::decode(sig).unwrap();
    let der = der_signature(&raw[..32], &raw[32..]);
    let der_token = format!("{input}.{}", b64::encode(der));
    assert_eq!(
        verify_access_token(&set, &validator(), &der_token, NOW),
        Err(TokenError::Validation(ValidationError::BadSignature))
    );
}

fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    let int = |x: &[u8]| {
        let mut v = x.to_vec();
        while v.len() > 1 && v[0] == 0 && v[1] < 0x80 {
            v.remove(0);
        }
        if v[0] >= 0x80 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

fn remote(keys: Value, allowed: &[Algorithm]) -> Result<(KeySet, Vec<KeyError>), KeyError> {
    KeySet::from_remote_jwks(&keys.to_string(), allowed)
}

fn public(mut jwk: Value) -> Value {
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        jwk.as_object_mut().unwrap().remove(private);
    }
    jwk
}

#[test]
fn other_issuers_sets_keep_what_is_usable() {
    let rs = public(vector("jose-cookbook/4_1.rsa_v15_signature.json")["input"]["key"].clone());
    let ec = public(rfc7515_ec_jwk());
    let all = [Algorithm::Rs256, Algorithm::Es256];
    // An RSA key without alg is taken as RS256 when RS256 is accepted (Azure AD and others omit it).
    let mut rs_no_alg = rs.clone();
    rs_no_alg["kid"] = json!("rs1");
    let (set, skipped) = remote(json!({ "keys": [rs_no_alg] }), &all).unwrap();
    assert_eq!(set.find("rs1").unwrap().alg(), Algorithm::Rs256);
    assert!(skipped.is_empty());
    // ... but not when only ES256 is.
    assert!(matches!(remote(json!({ "keys": [rs_no_alg] }), &[Algorithm::Es256]), Err(KeyError::Empty)));
    // Encryption keys, symmetric keys, other algorithms and key-less kids are skipped, not fatal.
    let mut enc = rs.clone();
    enc["kid"] = json!("enc");
    enc["use"] = json!("enc");
    let keys = json!({ "keys": [
        enc,
        { "kty": "oct", "kid": "hs", "alg": "HS256", "k": "c2VjcmV0" },
        { "kty": "EC", "crv": "P-384", "kid": "p384", "alg": "ES384", "x": "AA", "y": "AA" },
        { "kty": "RSA", "alg": "RS256", "n": "AA", "e": "AQAB" },
        ec,
    ]});
    let (set, skipped) = remote(keys.clone(), &all).unwrap();
    assert_eq!(set.keys().len(), 1);
    assert_eq!(set.find("ec").unwrap().alg(), Algorithm::Es256);
    assert_eq!(skipped.len(), 4);
    // An allowed-algorithm list without ES256 leaves nothing.
    assert!(matches!(remote(keys, &[Algorithm::Rs256]), Err(KeyError::Empty)));
    // A kid two usable keys share is ambiguous: neither is kept.
    let mut ec2 = public(rfc7515_ec_jwk());
    ec2["x"] = json!("gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0");
    ec2["y"] = json!("SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps");
    let mut rs_ec = rs.clone();
    rs_ec["kid"] = json!("ec");
    rs_ec["alg"] = json!("RS256");
    let (set, skipped) = remote(json!({ "keys": [public(rfc7515_ec_jwk()), rs_ec, rs] }), &all).unwrap();
    assert!(set.find("ec").is_none());
    assert!(skipped.contains(&KeyError::DuplicateKid("ec".into())));
    // Not a set at all.
    assert!(matches!(remote(json!([1, 2]), &all), Err(KeyError::NotAKeySet(_))));
    assert!(matches!(KeySet::from_remote_jwks("{\"keys\":[],\"keys\":[]}", &all), Err(KeyError::NotAKeySet(_))));
}

#[test]
fn untyped_tokens_pass_only_where_the_issuer_allows_them() {
    let keys = keyset();
    let ed = ed_key();
    let sign = |typ: Option<&str>| {
        let mut header = json!({ "alg": "EdDSA", "kid": "ed" });
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        ed.sign_with_header(&header, &claims()).unwrap()
    };
    let strict = validator();
    let lenient = Validator { typ: TypRule::AccessTokenOrPlainJwt, ..validator() };
    for (typ, strict_ok, lenient_ok) in [
        (Some("at+jwt"), true, true),
        (Some("application/at+jwt"), true, true),
        (None, false, true),
        (Some("JWT"), false, true),
        (Some("jwt"), false, true),
        (Some("application/jwt"), false, true),
        // Other kinds of JWT never pass as access tokens (RFC 8725 §3.11).
        (Some("dpop+jwt"), false, false),
        (Some("logout+jwt"), false, false),
        (Some("secevent+jwt"), false, false),
        (Some("JOSE"), false, false),
        (Some(""), false, false),
    ] {
        let token = sign(typ);
        assert_eq!(verify_access_token(&keys, &strict, &token, NOW).is_ok(), strict_ok, "strict {typ:?}");
        assert_eq!(verify_access_token(&keys, &lenient, &token, NOW).is_ok(), lenient_ok, "lenient {typ:?}");
    }
    // A non-string typ is refused by both.
    let token = ed.sign_with_header(&json!({ "alg": "EdDSA", "kid": "ed", "typ": 1 }), &claims()).unwrap();
    assert!(verify_access_token(&keys, &lenient, &token, NOW).is_err());
}

#[test]
fn the_claimed_issuer_is_read_strictly() {
    let ed = ed_key();
    let token = ed.sign(&claims()).unwrap();
    assert_eq!(UntrustedToken::parse(&token).unwrap().unverified_issuer().as_deref(), Some(ISSUER));
    let dup = raw_token(&ed, br#"{"alg":"EdDSA","kid":"ed"}"#, br#"{"iss":"a","iss":"b"}"#);
    assert_eq!(UntrustedToken::parse(&dup).unwrap().unverified_issuer(), None);
    let num = raw_token(&ed, br#"{"alg":"EdDSA","kid":"ed"}"#, br#"{"iss":1}"#);
    assert_eq!(UntrustedToken::parse(&num).unwrap().unverified_issuer(), None);
}

#[test]
fn thumbprints_follow_rfc_7638() {
    // RFC 8037 Appendix A.3: the thumbprint of the A.1 key.
    assert_eq!(ed_key().public().thumbprint(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    // RFC 7638 §3.1: the thumbprint of its example RSA key.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    let rsa = gatehouse::jwt::PublicKey::rsa("2011-04-29", &b64::decode(n).unwrap(), &[1, 0, 1]).unwrap();
    assert_eq!(rsa.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

#[test]
fn generated_keys_round_trip_through_their_private_jwk() {
    for alg in [Algorithm::EdDsa, Algorithm::Es256] {
        let key = PrivateKey::generate(alg, &[42u8; 32]).unwrap();
        assert_eq!(key.public().kid(), key.public().thumbprint(), "kid is the thumbprint");
        let jwk = key.to_private_jwk().unwrap();
        let loaded = PrivateKey::from_jwk(&object(&jwk)).unwrap();
        assert_eq!(loaded.public().to_jwk(), key.public().to_jwk());
        let set = KeySet::from_private_jwks(&json!({ "keys": [jwk] }).to_string()).unwrap();
        let token = loaded.sign(&claims()).unwrap();
        assert!(verify_access_token(&set, &validator(), &token, NOW).is_ok(), "{alg:?}");
        // Different randomness, different key.
        assert_ne!(PrivateKey::generate(alg, &[43u8; 32]).unwrap().public().kid(), key.public().kid());
    }
    assert!(PrivateKey::generate(Algorithm::Rs256, &[1; 32]).is_err());
    assert!(PrivateKey::generate(Algorithm::Es256, &[0; 32]).is_err(), "zero is not a scalar");
    assert!(rs_key().to_private_jwk().is_none());
}

#[test]
fn other_issuers_sets_are_capped() {
    let x = b64::encode(ed_key().public().to_jwk()["x"].as_str().map(|x| b64::decode(x).unwrap()).unwrap());
    let keys: Vec<Value> =
        (0..70).map(|i| json!({ "kty": "OKP", "crv": "Ed25519", "kid": format!("k{i}"), "x": x })).collect();
    let (set, skipped) = KeySet::from_remote_jwks(&json!({ "keys": keys }).to_string(), &[Algorithm::EdDsa]).unwrap();
    assert_eq!(set.keys().len(), gatehouse::jwt::remote::MAX_REMOTE_KEYS);
    assert_eq!(skipped.len(), 1, "one note for the rest");
}
