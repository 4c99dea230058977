//! One negative test per acceptance rule of API.md "Edge verification", with a frozen clock.
//! Each test first shows the unmutated token passes, so a failure is the rule's doing.

mod common;

use common::*;
use gatehouse::jwt::token::{Segment, MAX_TOKEN_BYTES};
use gatehouse::jwt::{b64, verify_access_token, ParseError, TokenError, UntrustedToken, ValidationError};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

fn check(token: &str) -> Result<gatehouse::jwt::AccessClaims, TokenError> {
    verify_access_token(&keyset(), &validator(), token, NOW)
}

fn check_at(token: &str, now: i64) -> Result<gatehouse::jwt::AccessClaims, TokenError> {
    verify_access_token(&keyset(), &validator(), token, now)
}

fn token_with(header: &Value, claims: &Value) -> String {
    ed_key().sign_with_header(header, claims).unwrap()
}

fn invalid(e: ValidationError) -> Result<gatehouse::jwt::AccessClaims, TokenError> {
    Err(TokenError::Validation(e))
}

fn unparsable(e: ParseError) -> Result<gatehouse::jwt::AccessClaims, TokenError> {
    Err(TokenError::Parse(e))
}

#[test]
fn valid_eddsa_and_rs256_tokens_pass() {
    let ed = ed_key().sign(&claims()).unwrap();
    let rs = rs_key().sign(&claims()).unwrap();
    for token in [&ed, &rs] {
        let c = check(token).unwrap();
        assert_eq!(c.sub, "user-1");
        assert_eq!(c.aud, vec![AUDIENCE.to_string()]);
        assert_eq!(c.roles, vec!["user".to_string()]);
        assert_eq!(c.sid.as_deref(), Some("sid-1"));
    }
    // keyset() signs with its first key, EdDSA.
    let first = keyset().sign(&claims()).unwrap();
    assert_eq!(UntrustedToken::parse(&first).unwrap().kid(), Some("ed"));
}

#[test]
fn size_cap_is_8_kib() {
    // Grow a claim until the token is exactly at the cap, then one byte more.
    let make = |filler: usize| {
        let mut c = claims();
        c["pad"] = json!("x".repeat(filler));
        ed_key().sign(&c).unwrap()
    };
    let mut filler = 0;
    while make(filler + 1).len() <= MAX_TOKEN_BYTES {
        filler += 1;
    }
    let at_cap = make(filler);
    assert!(at_cap.len() <= MAX_TOKEN_BYTES && at_cap.len() > MAX_TOKEN_BYTES - 4);
    assert!(check(&at_cap).is_ok());
    let over = make(filler + 1);
    assert!(over.len() > MAX_TOKEN_BYTES);
    assert_eq!(check(&over), unparsable(ParseError::TooLong));
}

#[test]
fn exactly_three_segments() {
    let t = ed_key().sign(&claims()).unwrap();
    assert!(check(&t).is_ok());
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(check(&format!("{}.{}", parts[0], parts[1])), unparsable(ParseError::SegmentCount));
    assert_eq!(check(&format!("{t}.")), unparsable(ParseError::SegmentCount));
    assert_eq!(check(&format!("{t}.{}", parts[2])), unparsable(ParseError::SegmentCount));
    // A JWE has five segments.
    assert_eq!(check(&format!("{}.a.b.c.d", parts[0])), unparsable(ParseError::SegmentCount));
    assert_eq!(check(""), unparsable(ParseError::SegmentCount));
    // An unsigned token with an empty signature segment.
    assert_eq!(check(&format!("{}.{}.", parts[0], parts[1])), unparsable(ParseError::EmptySignature));
}

#[test]
fn segments_are_strict_base64url() {
    let t = ed_key().sign(&claims()).unwrap();
    let parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    let segments = [Segment::Header, Segment::Payload, Segment::Signature];
    for (i, segment) in segments.iter().enumerate() {
        let with = |replacement: String| {
            let mut p = parts.clone();
            p[i] = replacement;
            p.join(".")
        };
        let expect = unparsable(ParseError::Base64 { segment: *segment });
        assert_eq!(check(&with(format!("{}=", parts[i]))), expect, "padding in {segment:?}");
        assert_eq!(check(&with(format!("{}==", parts[i]))), expect, "double padding in {segment:?}");
        assert_eq!(check(&with(format!("+{}", &parts[i][1..]))), expect, "'+' in {segment:?}");
        assert_eq!(check(&with(format!("/{}", &parts[i][1..]))), expect, "'/' in {segment:?}");
        assert_eq!(check(&with(format!(" {}", parts[i]))), expect, "space in {segment:?}");
    }
    // Non-canonical trailing bits: a 64-byte Ed25519 signature is 86 characters with 4 unused bits.
    let sig = &parts[2];
    assert_eq!(sig.len(), 86);
    let last = sig.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let value = alphabet.find(last).unwrap();
    assert_eq!(value & 0b1111, 0, "a canonical encoding leaves the unused bits zero");
    let bumped = alphabet.chars().nth(value | 1).unwrap();
    let forged = format!("{}.{}.{}{}", parts[0], parts[1], &sig[..85], bumped);
    assert_eq!(check(&forged), unparsable(ParseError::Base64 { segment: Segment::Signature }));
}

#[test]
fn no_duplicate_names_in_header_or_claims() {
    let key = ed_key();
    let claims_text = claims().to_string();
    let good_header = r#"{"alg":"EdDSA","typ":"at+jwt","kid":"ed"}"#;
    assert!(check(&raw_token(&key, good_header.as_bytes(), claims_text.as_bytes())).is_ok());
    let dup_header = r#"{"alg":"EdDSA","typ":"at+jwt","kid":"ed","kid":"rs"}"#;
    assert_eq!(
        check(&raw_token(&key, dup_header.as_bytes(), claims_text.as_bytes())),
        unparsable(ParseError::Header(gatehouse::jwt::json::JsonError::DuplicateName))
    );
    // A duplicate `sub` could be read one way by us and another by the origin.
    let dup_claims = claims_text.replacen('{', r#"{"sub":"admin","#, 1);
    assert_eq!(
        check(&raw_token(&key, good_header.as_bytes(), dup_claims.as_bytes())),
        invalid(ValidationError::Payload(gatehouse::jwt::json::JsonError::DuplicateName))
    );
    let not_object = raw_token(&key, good_header.as_bytes(), b"[1,2]");
    assert_eq!(check(&not_object), invalid(ValidationError::Payload(gatehouse::jwt::json::JsonError::NotAnObject)));
    let header_not_object = raw_token(&key, b"\"EdDSA\"", claims_text.as_bytes());
    assert_eq!(check(&header_not_object), unparsable(ParseError::Header(gatehouse::jwt::json::JsonError::NotAnObject)));
}

#[test]
fn alg_none_in_any_case_is_refused() {
    let payload = b64::encode(claims().to_string());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64::encode(json!({ "alg": alg, "typ": "at+jwt", "kid": "ed" }).to_string());
        // With an empty signature it does not even parse as signed...
        assert_eq!(check(&format!("{header}.{payload}.")), unparsable(ParseError::EmptySignature));
        // ...and with a junk signature it is refused by name.
        assert_eq!(check(&format!("{header}.{payload}.AAAA")), invalid(ValidationError::AlgNone));
    }
}

#[test]
fn hs256_signed_with_the_public_key_bytes_is_refused() {
    // The classic confusion: HMAC keyed with the verifier's public key, in every encoding an
    // attacker might try (JWKS JSON, raw modulus, raw Ed25519 point).
    let set = keyset();
    let jwks = set.public_jwks().to_string();
    let rs_jwk = set.find("rs").unwrap().to_jwk();
    let ed_jwk = set.find("ed").unwrap().to_jwk();
    let candidates: Vec<(&str, Vec<u8>)> = vec![
        ("rs", jwks.clone().into_bytes()),
        ("rs", rs_jwk.to_string().into_bytes()),
        ("rs", b64::decode(rs_jwk["n"].as_str().unwrap()).unwrap()),
        ("ed", b64::decode(ed_jwk["x"].as_str().unwrap()).unwrap()),
        ("ed", ed_jwk.to_string().into_bytes()),
    ];
    for (kid, secret) in candidates {
        for alg in ["HS256", "HS384", "HS512", "hs256"] {
            let input = format!(
                "{}.{}",
                b64::encode(json!({ "alg": alg, "typ": "at+jwt", "kid": kid }).to_string()),
                b64::encode(claims().to_string())
            );
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
            mac.update(input.as_bytes());
            let token = format!("{input}.{}", b64::encode(mac.finalize().into_bytes()));
            assert_eq!(check(&token), invalid(ValidationError::AlgMismatch), "{alg} with {kid}");
        }
    }
}

#[test]
fn the_key_decides_the_algorithm() {
    // An RS256 header on the Ed25519 kid, validly RSA-signed: refused.
    let mut h = header(&rs_key());
    h["kid"] = json!("ed");
    assert_eq!(check(&rs_key().sign_with_header(&h, &claims()).unwrap()), invalid(ValidationError::AlgMismatch));
    // An EdDSA header on the RSA kid, validly Ed25519-signed: refused.
    let mut h = header(&ed_key());
    h["kid"] = json!("rs");
    assert_eq!(check(&ed_key().sign_with_header(&h, &claims()).unwrap()), invalid(ValidationError::AlgMismatch));
    // Header says EdDSA on the ed kid, but the signature is RSA's: the alg matches, the signature does not.
    let mut h = header(&ed_key());
    h["alg"] = json!("EdDSA");
    assert_eq!(check(&rs_key().sign_with_header(&h, &claims()).unwrap()), invalid(ValidationError::BadSignature));
    // Other algorithms on a valid kid.
    for alg in ["PS256", "ES256", "RS512", "EdDSA ", "eddsa", "Ed25519"] {
        let mut h = header(&ed_key());
        h["alg"] = json!(alg);
        assert_eq!(check(&token_with(&h, &claims())), invalid(ValidationError::AlgMismatch), "{alg}");
    }
}

#[test]
fn kid_must_name_a_configured_key() {
    let mut h = header(&ed_key());
    h.as_object_mut().unwrap().remove("kid");
    assert_eq!(check(&token_with(&h, &claims())), invalid(ValidationError::MissingKid));
    h["kid"] = json!("other");
    assert_eq!(check(&token_with(&h, &claims())), invalid(ValidationError::UnknownKid));
    h["kid"] = json!(42);
    assert_eq!(check(&token_with(&h, &claims())), invalid(ValidationError::MissingKid));
}

#[test]
fn crit_is_refused() {
    let mut h = header(&ed_key());
    assert!(check(&token_with(&h, &claims())).is_ok());
    h["crit"] = json!(["exp"]);
    assert_eq!(check(&token_with(&h, &claims())), invalid(ValidationError::Crit));
    h["crit"] = json!([]);
    assert_eq!(check(&token_with(&h, &claims())), invalid(ValidationError::Crit));
    // RFC 7797 unencoded payloads need crit: refused the same way.
    h["b64"] = json!(false);
    h["crit"] = json!(["b64"]);
    assert_eq!(check(&token_with(&h, &claims())), invalid(ValidationError::Crit));
}

#[test]
fn embedded_and_remote_keys_are_never_used() {
    // The attacker signs with their own key and points at it every way JOSE allows.
    let attacker = attacker_ed_key();
    let mut h = header(&attacker);
    h["jwk"] = attacker.public().to_jwk();
    h["jku"] = json!("https://attacker.example/jwks.json");
    h["x5u"] = json!("https://attacker.example/cert.pem");
    h["x5c"] = json!(["MIIB"]);
    assert_eq!(check(&attacker.sign_with_header(&h, &claims()).unwrap()), invalid(ValidationError::BadSignature));
    h["kid"] = json!("attacker");
    assert_eq!(check(&attacker.sign_with_header(&h, &claims()).unwrap()), invalid(ValidationError::UnknownKid));
    // The same headers on a token our key signed change nothing: they are not read.
    h["kid"] = json!("ed");
    assert!(check(&ed_key().sign_with_header(&h, &claims()).unwrap()).is_ok());
}

#[test]
fn typ_must_be_at_jwt() {
    let mut h = header(&ed_key());
    for ok in ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+Jwt"] {
        h["typ"] = json!(ok);
        assert!(check(&token_with(&h, &claims())).is_ok(), "{ok}");
    }
    for bad in ["JWT", "jwt", "at+jwt ", "application/jwt", "dpop+jwt", ""] {
        h["typ"] = json!(bad);
        assert_eq!(check(&token_with(&h, &claims())), invalid(ValidationError::Typ), "{bad}");
    }
    h["typ"] = json!(["at+jwt"]);
    assert_eq!(check(&token_with(&h, &claims())), invalid(ValidationError::Typ));
    h.as_object_mut().unwrap().remove("typ");
    assert_eq!(check(&token_with(&h, &claims())), invalid(ValidationError::Typ));
}

#[test]
fn issuer_must_match_exactly() {
    let h = header(&ed_key());
    for bad in [json!("https://issuer.test/"), json!("https://ISSUER.test"), json!(""), json!(["https://issuer.test"])]
    {
        let mut c = claims();
        c["iss"] = bad.clone();
        let r = check(&token_with(&h, &c));
        assert!(r == invalid(ValidationError::Issuer) || r == invalid(ValidationError::Claim("iss")), "{bad}: {r:?}");
    }
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(check(&token_with(&h, &c)), invalid(ValidationError::Claim("iss")));
}

#[test]
fn audience_string_or_array() {
    let h = header(&ed_key());
    let with_aud = |aud: Value| {
        let mut c = claims();
        c["aud"] = aud;
        check(&token_with(&h, &c))
    };
    assert!(with_aud(json!(AUDIENCE)).is_ok());
    assert!(with_aud(json!(["other", AUDIENCE])).is_ok());
    assert_eq!(with_aud(json!("other")), invalid(ValidationError::Audience));
    assert_eq!(with_aud(json!(["other"])), invalid(ValidationError::Audience));
    assert_eq!(with_aud(json!([])), invalid(ValidationError::Audience));
    assert_eq!(with_aud(json!(format!("{AUDIENCE} "))), invalid(ValidationError::Audience));
    assert_eq!(with_aud(json!([AUDIENCE, 1])), invalid(ValidationError::Claim("aud")));
    assert_eq!(with_aud(json!({ "aud": AUDIENCE })), invalid(ValidationError::Claim("aud")));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(check(&token_with(&h, &c)), invalid(ValidationError::Audience));
}

#[test]
fn exp_boundary_with_leeway() {
    let t = ed_key().sign(&claims()).unwrap();
    let exp = NOW + 900;
    // Accepted while exp > now − leeway.
    assert!(check_at(&t, exp + LEEWAY - 1).is_ok());
    assert_eq!(check_at(&t, exp + LEEWAY), invalid(ValidationError::Expired));
    assert_eq!(check_at(&t, exp + LEEWAY + 1), invalid(ValidationError::Expired));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(check(&token_with(&header(&ed_key()), &c)), invalid(ValidationError::Claim("exp")));
    c["exp"] = json!("2030-01-01");
    assert_eq!(check(&token_with(&header(&ed_key()), &c)), invalid(ValidationError::Claim("exp")));
    c["exp"] = json!(1e300);
    assert_eq!(check(&token_with(&header(&ed_key()), &c)), invalid(ValidationError::Claim("exp")));
    // A fractional NumericDate is allowed (RFC 7519 §2).
    c["exp"] = json!((NOW + 10) as f64 + 0.5);
    assert!(check(&token_with(&header(&ed_key()), &c)).is_ok());
}

#[test]
fn nbf_and_iat_boundaries_with_leeway() {
    let h = header(&ed_key());
    for name in ["nbf", "iat"] {
        let mut c = claims();
        c[name] = json!(NOW + 100);
        let t = token_with(&h, &c);
        let expected = if name == "nbf" { ValidationError::NotYetValid } else { ValidationError::IssuedInFuture };
        // Accepted once the claim is at or before now + leeway.
        assert_eq!(check_at(&t, NOW + 100 - LEEWAY - 1), invalid(expected.clone()), "{name}");
        assert!(check_at(&t, NOW + 100 - LEEWAY).is_ok(), "{name}");
        assert!(check_at(&t, NOW + 100 - LEEWAY + 1).is_ok(), "{name}");
        c[name] = json!("soon");
        assert_eq!(check(&token_with(&h, &c)), invalid(ValidationError::Claim(name)));
    }
}

#[test]
fn auth_time_in_the_future_is_refused() {
    // It would pass every `max_age` step-up rule (RFC 9470) for as long as it lies ahead.
    let h = header(&ed_key());
    let mut c = claims();
    c["auth_time"] = json!(NOW + 100);
    let t = token_with(&h, &c);
    assert_eq!(check_at(&t, NOW + 100 - LEEWAY - 1), invalid(ValidationError::Claim("auth_time")));
    assert!(check_at(&t, NOW + 100 - LEEWAY).is_ok());
    c["auth_time"] = json!(NOW - 5);
    assert!(check(&token_with(&h, &c)).is_ok());
}

#[test]
fn other_claims_have_their_types() {
    let h = header(&ed_key());
    for (name, bad) in [
        ("sub", json!(1)),
        ("sub", json!("")),
        ("sub", json!("x".repeat(257))),
        ("sid", json!(["a"])),
        ("jti", json!(7)),
        ("scope", json!(["read"])),
        ("roles", json!("admin")),
        ("roles", json!(["admin", 1])),
        ("email", json!(false)),
    ] {
        let mut c = claims();
        c[name] = bad.clone();
        assert_eq!(check(&token_with(&h, &c)), invalid(ValidationError::Claim(name)), "{name} = {bad}");
    }
    let mut c = claims();
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(check(&token_with(&h, &c)), invalid(ValidationError::Claim("sub")));
}

#[test]
fn every_signature_bit_flip_is_refused() {
    for key in [ed_key(), rs_key()] {
        let t = key.sign(&claims()).unwrap();
        let (input, sig) = t.rsplit_once('.').unwrap();
        let sig = b64::decode(sig).unwrap();
        // Every bit: 512 for Ed25519, 2048 for RSA.
        for bit in 0..sig.len() * 8 {
            let mut flipped = sig.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let forged = format!("{input}.{}", b64::encode(&flipped));
            assert_eq!(check(&forged), invalid(ValidationError::BadSignature), "{:?} bit {bit}", key.public().alg());
        }
        // Truncated and extended signatures.
        for forged_sig in [&sig[..sig.len() - 1], &[sig.as_slice(), &[0]].concat()[..]] {
            let forged = format!("{input}.{}", b64::encode(forged_sig));
            assert_eq!(check(&forged), invalid(ValidationError::BadSignature));
        }
    }
}

#[test]
fn header_and_claim_mutations_break_the_signature() {
    let t = ed_key().sign(&claims()).unwrap();
    let parts: Vec<&str> = t.split('.').collect();
    let mut c = claims();
    c["sub"] = json!("admin");
    let swapped_claims = format!("{}.{}.{}", parts[0], b64::encode(c.to_string()), parts[2]);
    assert_eq!(check(&swapped_claims), invalid(ValidationError::BadSignature));
    let mut h = header(&ed_key());
    h["x"] = json!(1);
    let swapped_header = format!("{}.{}.{}", b64::encode(h.to_string()), parts[1], parts[2]);
    assert_eq!(check(&swapped_header), invalid(ValidationError::BadSignature));
    // Whitespace-only re-encoding of the same JSON is still a different signing input.
    let spaced = claims().to_string().replace(",", ", ");
    let respaced = format!("{}.{}.{}", parts[0], b64::encode(spaced), parts[2]);
    assert_eq!(check(&respaced), invalid(ValidationError::BadSignature));
}

#[test]
fn ed25519_signatures_with_s_not_below_l_are_refused() {
    // L = 2^252 + 27742317777372353535851937790883648493, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let key = ed_key();
    let t = key.sign(&claims()).unwrap();
    assert!(check(&t).is_ok());
    let (input, sig) = t.rsplit_once('.').unwrap();
    let mut sig = b64::decode(sig).unwrap();
    // S' = S + L is the same scalar mod L, so the equation still holds: only the S < L rule refuses it.
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        sig[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 256 bits");
    let malleated = format!("{input}.{}", b64::encode(&sig));
    assert_eq!(check(&malleated), invalid(ValidationError::BadSignature));
}
