//! DPoP proofs (RFC 9449) through the public API: the RFC's own examples, and a negative case for every check of §4.3, the binding of §7.1 and replay.
//!
//! Proofs are signed here with ed25519-dalek and p256 directly (not with gatehouse's signer), and
//! thumbprints are computed here by hand from RFC 7638 §3, so the verifier is checked against
//! code it does not share.

mod common;

use common::{vector, NOW};
use ed25519_dalek::Signer as _;
use gatehouse::jwt::b64;
use gatehouse::jwt::dpop::{
    access_token_hash, challenge, check_presentation, confirmation_jkt, issue_nonce, verify_proof, AuthScheme,
    JtiReplayCache, NonceError, NonceKey, NonceRule, ProofError, ProofErrorCode, ProofPolicy, ProofRequest,
    UntrustedProof, VerifiedProof, MAX_PROOF_BYTES,
};
use gatehouse::jwt::{Algorithm, KeyError, ParseError};
use serde_json::{json, Map, Value};
use sha2::Digest as _;

const URL: &str = "https://api.test/api/orders";
const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2ln";

/// A client's DPoP key, signing with the RustCrypto crates directly.
enum ClientKey {
    Ed(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl ClientKey {
    fn ed(seed: u8) -> Self {
        ClientKey::Ed(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    fn p256(seed: u8) -> Self {
        ClientKey::P256(p256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("a P-256 scalar"))
    }

    fn alg(&self) -> &'static str {
        match self {
            ClientKey::Ed(_) => "EdDSA",
            ClientKey::P256(_) => "ES256",
        }
    }

    /// The public JWK with only the required members.
    fn jwk(&self) -> Value {
        match self {
            ClientKey::Ed(k) => json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(k.verifying_key().as_bytes())}),
            ClientKey::P256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                json!({
                    "kty": "EC", "crv": "P-256",
                    "x": b64::encode(point.x().expect("x")), "y": b64::encode(point.y().expect("y")),
                })
            }
        }
    }

    /// The RFC 7638 §3 thumbprint, written out by hand: required members in lexicographic order, no whitespace.
    fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let text = match self {
            ClientKey::Ed(_) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":{}}}"#, jwk["x"]),
            ClientKey::P256(_) => format!(r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#, jwk["x"], jwk["y"]),
        };
        b64::encode(sha2::Sha256::digest(text.as_bytes()))
    }

    fn sign_raw(&self, input: &[u8]) -> Vec<u8> {
        match self {
            ClientKey::Ed(k) => k.sign(input).to_bytes().to_vec(),
            ClientKey::P256(k) => {
                let sig: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(k, input);
                sig.to_bytes().to_vec()
            }
        }
    }

    /// A compact JWS over exactly these header and payload bytes.
    fn sign_bytes(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64::encode(header), b64::encode(payload));
        let sig = self.sign_raw(input.as_bytes());
        format!("{input}.{}", b64::encode(sig))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_bytes(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()})
    }

    /// A valid proof for `GET URL` at NOW with the token.
    fn proof(&self) -> String {
        self.sign(&self.header(), &claims())
    }
}

fn claims() -> Value {
    json!({"jti": "jti-1", "htm": "GET", "htu": URL, "iat": NOW, "ath": access_token_hash(TOKEN)})
}

fn with(mut value: Value, name: &str, member: Value) -> Value {
    value[name] = member;
    value
}

fn without(mut value: Value, name: &str) -> Value {
    value.as_object_mut().expect("object").remove(name);
    value
}

fn request() -> ProofRequest<'static> {
    ProofRequest { method: "GET", url: URL, access_token: Some(TOKEN), nonce: NonceRule::NotRequired }
}

fn verify(proof: &str) -> Result<VerifiedProof, ProofError> {
    verify_proof(proof, &ProofPolicy::default(), &request(), NOW)
}

fn verify_for(proof: &str, request: &ProofRequest<'_>) -> Result<VerifiedProof, ProofError> {
    verify_proof(proof, &ProofPolicy::default(), request, NOW)
}

fn keys() -> [ClientKey; 2] {
    [ClientKey::ed(3), ClientKey::p256(5)]
}

// ---- The RFC's examples -------------------------------------------------------------------

#[test]
fn rfc9449_example_proofs_verify_at_their_own_time() {
    let examples = vector("rfc9449/examples.json");
    let thumbprint = examples["key_thumbprint"].as_str().expect("thumbprint");
    for example in examples["proofs"].as_array().expect("proofs") {
        let name = example["name"].as_str().expect("name");
        let proof = example["proof"].as_str().expect("proof");
        let iat = example["iat"].as_i64().expect("iat");
        let request = ProofRequest {
            method: example["method"].as_str().expect("method"),
            url: example["url"].as_str().expect("url"),
            access_token: example["access_token"].as_str(),
            nonce: NonceRule::NotRequired,
        };
        let policy = ProofPolicy::default();
        let verified = verify_proof(proof, &policy, &request, iat).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(verified.jkt(), thumbprint, "{name}");
        assert_eq!(verified.jti(), example["jti"].as_str().expect("jti"), "{name}");
        assert_eq!(verified.iat(), iat, "{name}");
        assert_eq!(verified.alg(), Algorithm::Es256);
        // The same proofs are stale a window later, and every bit of the signature matters.
        assert_eq!(verify_proof(proof, &policy, &request, iat + 61), Err(ProofError::Stale), "{name}");
        let mut forged = proof.to_owned();
        let last = forged.pop().expect("non-empty");
        forged.push(if last == 'A' { 'Q' } else { 'A' });
        assert!(verify_proof(&forged, &policy, &request, iat).is_err(), "{name}");
    }
}

#[test]
fn rfc9449_resource_example_needs_its_token() {
    let examples = vector("rfc9449/examples.json");
    let example = &examples["proofs"][2];
    let proof = example["proof"].as_str().expect("proof");
    let iat = example["iat"].as_i64().expect("iat");
    let mut request = ProofRequest {
        method: "GET",
        url: "https://resource.example.org/protectedresource",
        access_token: Some("another token"),
        nonce: NonceRule::NotRequired,
    };
    assert_eq!(verify_proof(proof, &ProofPolicy::default(), &request, iat), Err(ProofError::AthMismatch));
    request.access_token = None;
    assert_eq!(verify_proof(proof, &ProofPolicy::default(), &request, iat), Err(ProofError::AthWithoutToken));
}

// ---- What passes ----------------------------------------------------------------------------

#[test]
fn valid_proofs_of_both_algorithms_verify_and_name_their_key() {
    for key in keys() {
        let verified = verify(&key.proof()).unwrap_or_else(|e| panic!("{}: {e:?}", key.alg()));
        assert_eq!(verified.jkt(), key.thumbprint());
        assert_eq!(verified.jti(), "jti-1");
        assert_eq!(verified.iat(), NOW);
        assert_eq!(verified.valid_until(), NOW + 60);
        assert_eq!(verified.htu(), URL);
        assert_eq!(verified.nonce(), None);
    }
}

#[test]
fn the_fully_specified_ed25519_name_is_accepted() {
    // oauth4webapi signs with alg "Ed25519" (RFC 9864) for Ed25519 keys.
    let key = ClientKey::ed(3);
    let proof = key.sign(&with(key.header(), "alg", json!("Ed25519")), &claims());
    assert_eq!(verify(&proof).map(|p| p.alg()), Ok(Algorithm::EdDsa));
    // WebCrypto exports Ed25519 keys with `alg: "Ed25519"` (and `ext`, `key_ops`): such a jwk fits
    // an EdDSA proof under either name, and still not an ES256 one.
    let exported =
        with(with(with(key.jwk(), "alg", json!("Ed25519")), "ext", json!(true)), "key_ops", json!(["verify"]));
    for alg in ["EdDSA", "Ed25519"] {
        let header = with(with(key.header(), "alg", json!(alg)), "jwk", exported.clone());
        assert_eq!(verify(&key.sign(&header, &claims())).map(|p| p.alg()), Ok(Algorithm::EdDsa), "{alg}");
    }
    let p = ClientKey::p256(5);
    let proof = p.sign(&with(p.header(), "jwk", with(p.jwk(), "alg", json!("Ed25519"))), &claims());
    assert!(matches!(verify(&proof), Err(ProofError::Jwk(_))));
}

#[test]
fn a_token_endpoint_proof_has_no_ath() {
    for key in keys() {
        let proof = key.sign(&key.header(), &without(with(claims(), "htm", json!("POST")), "ath"));
        let req = ProofRequest { method: "POST", access_token: None, ..request() };
        assert!(verify_for(&proof, &req).is_ok());
    }
}

#[test]
fn htu_is_compared_after_normalisation() {
    let key = ClientKey::p256(5);
    for htu in [
        "HTTPS://API.test:443/api/orders",
        "https://api.test/api/orders?page=2#top",
        "https://api.test/api/%6Frders",
        "https://api.test/api/x/../orders",
    ] {
        let proof = key.sign(&key.header(), &with(claims(), "htu", json!(htu)));
        assert!(verify(&proof).is_ok(), "{htu}");
    }
    // The request's query is ignored too.
    let req = ProofRequest { url: "https://api.test/api/orders?q=1", ..request() };
    assert!(verify_for(&key.proof(), &req).is_ok());
}

#[test]
fn iat_window_edges_pass() {
    let key = ClientKey::ed(3);
    for iat in [NOW - 60, NOW + 30] {
        assert!(verify(&key.sign(&key.header(), &with(claims(), "iat", json!(iat)))).is_ok(), "{iat}");
    }
    // A fractional NumericDate counts by its whole seconds.
    assert!(verify(&key.sign(&key.header(), &with(claims(), "iat", json!(NOW as f64 + 0.5)))).is_ok());
}

#[test]
fn typ_may_be_written_as_a_media_type() {
    let key = ClientKey::ed(3);
    for typ in ["application/dpop+jwt", "DPoP+JWT"] {
        assert!(verify(&key.sign(&with(key.header(), "typ", json!(typ)), &claims())).is_ok(), "{typ}");
    }
}

// ---- One value, size, structure ----------------------------------------------------------------

#[test]
fn two_header_values_are_refused() {
    let key = ClientKey::ed(3);
    let proof = key.proof();
    // How the runtime presents two `DPoP` header fields: joined with ", ".
    assert_eq!(verify(&format!("{proof}, {proof}")), Err(ProofError::MultipleValues));
    assert_eq!(verify(&format!("{proof},{}", ClientKey::p256(5).proof())), Err(ProofError::MultipleValues));
}

#[test]
fn missing_oversize_and_malformed_values_are_refused() {
    let key = ClientKey::ed(3);
    assert_eq!(verify(""), Err(ProofError::Missing));
    // A valid signature over a padded payload: refused on size alone.
    let big = key.sign(&key.header(), &with(claims(), "pad", json!("x".repeat(MAX_PROOF_BYTES))));
    assert!(big.len() > MAX_PROOF_BYTES);
    assert_eq!(verify(&big), Err(ProofError::TooLong));
    let just_fits = key.sign(&key.header(), &with(claims(), "pad", json!("x".repeat(2500))));
    assert!(just_fits.len() <= MAX_PROOF_BYTES);
    assert!(verify(&just_fits).is_ok());
    let proof = key.proof();
    let parts: Vec<&str> = proof.split('.').collect();
    assert_eq!(verify(&parts[..2].join(".")), Err(ProofError::Malformed(ParseError::SegmentCount)));
    assert_eq!(verify(&format!("{proof}.x")), Err(ProofError::Malformed(ParseError::SegmentCount)));
    assert!(matches!(verify(&format!("{proof}=")), Err(ProofError::Malformed(ParseError::Base64 { .. }))));
    assert!(matches!(verify(&format!(" {proof}")), Err(ProofError::Malformed(ParseError::Base64 { .. }))));
}

#[test]
fn duplicate_member_names_are_refused() {
    let key = ClientKey::ed(3);
    let jwk = key.jwk().to_string();
    let header = format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","alg":"EdDSA","jwk":{jwk}}}"#);
    let proof = key.sign_bytes(header.as_bytes(), claims().to_string().as_bytes());
    assert!(matches!(verify(&proof), Err(ProofError::Malformed(ParseError::Header(_)))));
    let header = key.header().to_string();
    let payload = format!(r#"{{"jti":"a","jti":"b","htm":"GET","htu":"{URL}","iat":{NOW}}}"#);
    let proof = key.sign_bytes(header.as_bytes(), payload.as_bytes());
    let req = ProofRequest { access_token: None, ..request() };
    assert!(matches!(verify_for(&proof, &req), Err(ProofError::Payload(_))));
}

// ---- The header ---------------------------------------------------------------------------------

#[test]
fn typ_must_be_dpop_jwt() {
    for key in keys() {
        assert_eq!(verify(&key.sign(&without(key.header(), "typ"), &claims())), Err(ProofError::Typ));
        for typ in [json!("JWT"), json!("at+jwt"), json!("dpop"), json!(["dpop+jwt"]), json!(null)] {
            assert_eq!(verify(&key.sign(&with(key.header(), "typ", typ.clone()), &claims())), Err(ProofError::Typ));
        }
    }
}

#[test]
fn none_and_symmetric_algorithms_are_refused() {
    let key = ClientKey::ed(3);
    // `none` with some signature bytes (with none at all it does not even parse).
    for alg in ["none", "NONE", "None"] {
        let header = with(key.header(), "alg", json!(alg));
        let proof = key.sign(&header, &claims());
        assert_eq!(verify(&proof), Err(ProofError::AlgNotAllowed), "{alg}");
    }
    let unsigned =
        format!("{}.", key.sign(&with(key.header(), "alg", json!("none")), &claims()).rsplit_once('.').expect("dot").0);
    assert_eq!(verify(&unsigned), Err(ProofError::Malformed(ParseError::EmptySignature)));
    // HS256 with the key in the header: a real HMAC over the proof.
    use hmac::Mac as _;
    let secret = b"a shared secret that is long enough";
    let header = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64::encode(secret)}});
    let input = format!("{}.{}", b64::encode(header.to_string()), b64::encode(claims().to_string()));
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret).expect("any length");
    mac.update(input.as_bytes());
    let proof = format!("{input}.{}", b64::encode(mac.finalize().into_bytes()));
    assert_eq!(verify(&proof), Err(ProofError::AlgNotAllowed));
}

#[test]
fn algorithms_outside_the_allow_list_are_refused() {
    for alg in ["RS256", "PS256", "ES384", "ES256K", "HS512", "eddsa", "es256", ""] {
        let key = ClientKey::p256(5);
        let proof = key.sign(&with(key.header(), "alg", json!(alg)), &claims());
        assert_eq!(verify(&proof), Err(ProofError::AlgNotAllowed), "{alg}");
    }
    // A policy without ES256 refuses a good ES256 proof.
    let policy = ProofPolicy { algorithms: vec![Algorithm::EdDsa], ..ProofPolicy::default() };
    let proof = ClientKey::p256(5).proof();
    assert_eq!(verify_proof(&proof, &policy, &request(), NOW), Err(ProofError::AlgNotAllowed));
    assert!(verify_proof(&ClientKey::ed(3).proof(), &policy, &request(), NOW).is_ok());
}

#[test]
fn crit_is_refused() {
    for key in keys() {
        let header = with(with(key.header(), "crit", json!(["exp"])), "exp", json!(NOW));
        assert_eq!(verify(&key.sign(&header, &claims())), Err(ProofError::Crit));
    }
}

#[test]
fn other_key_sources_are_refused() {
    let key = ClientKey::p256(5);
    for (name, value) in [
        ("jku", json!("https://attacker.test/jwks")),
        ("x5u", json!("https://attacker.test/cert")),
        ("x5c", json!(["MIIB"])),
    ] {
        let proof = key.sign(&with(key.header(), name, value), &claims());
        assert_eq!(verify(&proof), Err(ProofError::KeySource), "{name}");
    }
}

#[test]
fn the_key_must_be_in_the_header() {
    let key = ClientKey::ed(3);
    // A `kid` alone names a key the verifier does not have.
    let kid_only = with(without(key.header(), "jwk"), "kid", json!(key.thumbprint()));
    assert_eq!(verify(&key.sign(&kid_only, &claims())), Err(ProofError::MissingJwk));
    for jwk in [json!(key.jwk().to_string()), json!([key.jwk()]), json!(null)] {
        assert_eq!(verify(&key.sign(&with(key.header(), "jwk", jwk), &claims())), Err(ProofError::MissingJwk));
    }
    // A `kid` beside the `jwk` is ignored.
    assert!(verify(&key.sign(&with(key.header(), "kid", json!("k1")), &claims())).is_ok());
}

#[test]
fn a_private_key_in_the_header_is_refused() {
    // The proof verifies in every other respect: only the private member refuses it.
    let ed_seed = [3u8; 32];
    let ed = ClientKey::ed(3);
    let jwk = with(ed.jwk(), "d", json!(b64::encode(ed_seed)));
    assert_eq!(verify(&ed.sign(&with(ed.header(), "jwk", jwk), &claims())), Err(ProofError::PrivateKey));
    let p = ClientKey::p256(5);
    let jwk = with(p.jwk(), "d", json!(b64::encode([5u8; 32])));
    assert_eq!(verify(&p.sign(&with(p.header(), "jwk", jwk), &claims())), Err(ProofError::PrivateKey));
    for member in ["p", "q", "dp", "dq", "qi", "oth", "k"] {
        let jwk = with(p.jwk(), member, json!("AQAB"));
        assert_eq!(verify(&p.sign(&with(p.header(), "jwk", jwk), &claims())), Err(ProofError::PrivateKey), "{member}");
    }
}

#[test]
fn the_jwk_must_fit_the_alg() {
    let ed = ClientKey::ed(3);
    let p = ClientKey::p256(5);
    // An EdDSA header with a P-256 key, and the other way round.
    let proof = ed.sign(&with(ed.header(), "jwk", p.jwk()), &claims());
    assert!(matches!(verify(&proof), Err(ProofError::Jwk(KeyError::Unsupported { .. }))));
    let proof = p.sign(&with(p.header(), "jwk", ed.jwk()), &claims());
    assert!(matches!(verify(&proof), Err(ProofError::Jwk(KeyError::Unsupported { .. }))));
    // A jwk whose own alg, use or key_ops disagree.
    for (name, value) in [("alg", json!("ES384")), ("use", json!("enc")), ("key_ops", json!(["encrypt"]))] {
        let proof = p.sign(&with(p.header(), "jwk", with(p.jwk(), name, value)), &claims());
        assert!(matches!(verify(&proof), Err(ProofError::Jwk(_))), "{name}");
    }
    // Not a point on the curve.
    let mut jwk = p.jwk();
    jwk["y"] = json!(b64::encode([1u8; 32]));
    let proof = p.sign(&with(p.header(), "jwk", jwk), &claims());
    assert!(matches!(verify(&proof), Err(ProofError::Jwk(KeyError::Invalid { .. }))));
    // Unsupported curves and key types.
    for jwk in [
        json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}),
        json!({"kty": "OKP", "crv": "X25519", "x": b64::encode([9u8; 32])}),
        json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
    ] {
        let proof = p.sign(&with(p.header(), "jwk", jwk.clone()), &claims());
        assert!(matches!(verify(&proof), Err(ProofError::Jwk(_))), "{jwk}");
    }
}

// ---- The signature -----------------------------------------------------------------------------

#[test]
fn the_signature_must_be_by_the_header_key() {
    for (signer, named) in [(ClientKey::ed(3), ClientKey::ed(4)), (ClientKey::p256(5), ClientKey::p256(6))] {
        // Signed by one key, naming another in the header.
        let proof = signer.sign(&named.header(), &claims());
        assert_eq!(verify(&proof), Err(ProofError::BadSignature));
        // A claim changed after signing.
        let good = signer.proof();
        let (head, rest) = good.split_once('.').expect("dot");
        let (_, sig) = rest.split_once('.').expect("dot");
        let other = b64::encode(with(claims(), "htm", json!("GET ")).to_string());
        assert_eq!(verify(&format!("{head}.{other}.{sig}")), Err(ProofError::BadSignature));
    }
    // An ES256 signature in DER form (as some libraries make) is not r || s.
    let p = ClientKey::p256(5);
    let input = format!("{}.{}", b64::encode(p.header().to_string()), b64::encode(claims().to_string()));
    let ClientKey::P256(k) = &p else { unreachable!() };
    let sig: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(k, input.as_bytes());
    let der = format!("{input}.{}", b64::encode(sig.to_der().as_bytes()));
    assert_eq!(verify(&der), Err(ProofError::BadSignature));
}

#[test]
fn the_verdict_of_the_signature_check_decides() {
    // The edge checks ES256 through WebCrypto and hands the verdict in: a false verdict refuses
    // a proof whose signature is in fact good.
    let policy = ProofPolicy::default();
    let proof = ClientKey::p256(5).proof();
    let untrusted = UntrustedProof::parse(&proof, &policy).expect("parses");
    let check = untrusted.begin_verify();
    assert!(check.verify_in_rust());
    assert_eq!(check.key().alg(), Algorithm::Es256);
    assert_eq!(check.signature().len(), 64);
    assert!(proof.as_bytes().starts_with(check.signing_input()));
    assert_eq!(check.finish(false, &request(), NOW), Err(ProofError::BadSignature));
    let check = untrusted.begin_verify();
    assert!(check.finish(true, &request(), NOW).is_ok());
}

// ---- The claims ------------------------------------------------------------------------------

#[test]
fn required_claims_must_be_present_and_typed() {
    let key = ClientKey::ed(3);
    for name in ["jti", "htm", "htu", "iat"] {
        let proof = key.sign(&key.header(), &without(claims(), name));
        assert!(matches!(verify(&proof), Err(ProofError::Claim(_))), "missing {name}");
        let proof = key.sign(&key.header(), &with(claims(), name, json!({"x": 1})));
        assert!(matches!(verify(&proof), Err(ProofError::Claim(_))), "object {name}");
    }
    for jti in [json!(""), json!("j".repeat(257)), json!(17)] {
        let proof = key.sign(&key.header(), &with(claims(), "jti", jti));
        assert_eq!(verify(&proof), Err(ProofError::Claim("jti")));
    }
    assert!(verify(&key.sign(&key.header(), &with(claims(), "jti", json!("j".repeat(256))))).is_ok());
    assert_eq!(
        verify(&key.sign(&key.header(), &with(claims(), "iat", json!(NOW.to_string())))),
        Err(ProofError::Claim("iat"))
    );
    assert_eq!(verify(&key.sign(&key.header(), &with(claims(), "ath", json!(1)))), Err(ProofError::Claim("ath")));
    assert_eq!(verify(&key.sign(&key.header(), &with(claims(), "nonce", json!(1)))), Err(ProofError::Claim("nonce")));
}

#[test]
fn wrong_htm_is_refused() {
    for key in keys() {
        for htm in ["POST", "get", "GET ", "HEAD", ""] {
            let proof = key.sign(&key.header(), &with(claims(), "htm", json!(htm)));
            assert_eq!(verify(&proof), Err(ProofError::Method), "{htm:?}");
        }
    }
}

#[test]
fn wrong_htu_is_refused() {
    for key in keys() {
        for htu in [
            "https://api.test/api/orders/",
            "https://api.test/api/other",
            "https://api.test/api/Orders",
            "http://api.test/api/orders",
            "https://api.test:8443/api/orders",
            "https://evil.test/api/orders",
            "https://api.test./api/orders",
            "https://user@api.test/api/orders",
            "/api/orders",
            "not a url",
        ] {
            let proof = key.sign(&key.header(), &with(claims(), "htu", json!(htu)));
            assert_eq!(verify(&proof), Err(ProofError::Url), "{htu}");
        }
    }
    // A request URI that cannot be normalised matches nothing.
    let req = ProofRequest { url: "not a url", ..request() };
    assert_eq!(verify_for(&ClientKey::ed(3).proof(), &req), Err(ProofError::Url));
}

#[test]
fn stale_and_future_iat_are_refused() {
    for key in keys() {
        let stale = key.sign(&key.header(), &with(claims(), "iat", json!(NOW - 61)));
        assert_eq!(verify(&stale), Err(ProofError::Stale));
        let future = key.sign(&key.header(), &with(claims(), "iat", json!(NOW + 31)));
        assert_eq!(verify(&future), Err(ProofError::IssuedInFuture));
    }
    // The window is the caller's.
    let policy = ProofPolicy { max_age: 10, future_leeway: 0, ..ProofPolicy::default() };
    let key = ClientKey::ed(3);
    let proof = key.sign(&key.header(), &with(claims(), "iat", json!(NOW - 11)));
    assert_eq!(verify_proof(&proof, &policy, &request(), NOW), Err(ProofError::Stale));
    let proof = key.sign(&key.header(), &with(claims(), "iat", json!(NOW + 1)));
    assert_eq!(verify_proof(&proof, &policy, &request(), NOW), Err(ProofError::IssuedInFuture));
    // Absurd values do not overflow.
    for iat in [json!(i64::MAX), json!(i64::MIN), json!(1e300), json!(-1e300)] {
        let proof = key.sign(&key.header(), &with(claims(), "iat", iat));
        assert!(verify(&proof).is_err());
    }
}

#[test]
fn wrong_or_missing_ath_is_refused() {
    for key in keys() {
        let proof = key.sign(&key.header(), &without(claims(), "ath"));
        assert_eq!(verify(&proof), Err(ProofError::AthMissing));
        let proof = key.sign(&key.header(), &with(claims(), "ath", json!(access_token_hash("another token"))));
        assert_eq!(verify(&proof), Err(ProofError::AthMismatch));
        // The hash of the token in another encoding (standard base64, padded) does not pass.
        let padded = base64_std(&sha2::Sha256::digest(TOKEN.as_bytes()));
        let proof = key.sign(&key.header(), &with(claims(), "ath", json!(padded)));
        assert_eq!(verify(&proof), Err(ProofError::AthMismatch));
        // A proof made for a request with a token does not pass where none is presented.
        let req = ProofRequest { access_token: None, ..request() };
        assert_eq!(verify_for(&key.proof(), &req), Err(ProofError::AthWithoutToken));
    }
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn access_token_hash_is_rfc9449s() {
    // RFC 9449 §7.1's token and the ath in its proof.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

#[test]
fn nonces_when_required() {
    let nonce_key = NonceKey::new(&[9; 32]).expect("key");
    let stateless = NonceRule::Stateless { key: &nonce_key, max_age: 300 };
    let req = ProofRequest { nonce: stateless, ..request() };
    let key = ClientKey::p256(5);
    // Missing: use_dpop_nonce.
    let err = verify_for(&key.proof(), &req).expect_err("nonce required");
    assert_eq!(err, ProofError::NonceMissing);
    assert_eq!(err.code(), ProofErrorCode::UseDpopNonce);
    // Fresh: passes, and the verified proof carries it.
    let nonce = issue_nonce(&nonce_key, NOW - 10);
    let verified =
        verify_for(&key.sign(&key.header(), &with(claims(), "nonce", json!(nonce))), &req).expect("fresh nonce");
    assert_eq!(verified.nonce(), Some(nonce.as_str()));
    // Expired, forged, malformed, from the future: use_dpop_nonce too.
    for (nonce, why) in [
        (issue_nonce(&nonce_key, NOW - 301), NonceError::Expired),
        (issue_nonce(&NonceKey::new(&[8; 32]).expect("key"), NOW), NonceError::Forged),
        ("abc".to_owned(), NonceError::Malformed),
        (issue_nonce(&nonce_key, NOW + 60), NonceError::FromTheFuture),
    ] {
        let err =
            verify_for(&key.sign(&key.header(), &with(claims(), "nonce", json!(nonce))), &req).expect_err("bad nonce");
        assert_eq!(err, ProofError::Nonce(why));
        assert_eq!(err.code(), ProofErrorCode::UseDpopNonce);
    }
    // An exact nonce.
    let req = ProofRequest { nonce: NonceRule::Exact("n-1"), ..request() };
    assert!(verify_for(&key.sign(&key.header(), &with(claims(), "nonce", json!("n-1"))), &req).is_ok());
    assert_eq!(
        verify_for(&key.sign(&key.header(), &with(claims(), "nonce", json!("n-2"))), &req),
        Err(ProofError::Nonce(NonceError::NotCurrent))
    );
    // Not required: a nonce is carried along unchecked.
    assert!(verify(&key.sign(&key.header(), &with(claims(), "nonce", json!("anything")))).is_ok());
}

#[test]
fn a_nonce_is_asked_for_only_once_the_proof_is_otherwise_good() {
    let nonce_key = NonceKey::new(&[9; 32]).expect("key");
    let req = ProofRequest { nonce: NonceRule::Stateless { key: &nonce_key, max_age: 300 }, ..request() };
    let key = ClientKey::ed(3);
    let proof = key.sign(&key.header(), &with(claims(), "htm", json!("POST")));
    assert_eq!(verify_for(&proof, &req), Err(ProofError::Method));
}

// ---- Replay, binding, answers -----------------------------------------------------------------

#[test]
fn a_replayed_jti_is_refused() {
    let mut cache = JtiReplayCache::new(100);
    for key in keys() {
        let proof = key.proof();
        let first = verify(&proof).expect("valid");
        assert_eq!(cache.check_and_remember(&first, NOW), Ok(()));
        let again = verify(&proof).expect("still valid on its own");
        assert_eq!(cache.check_and_remember(&again, NOW + 5), Err(ProofError::Replayed));
        // A new jti from the same key is a new proof.
        let next = verify(&key.sign(&key.header(), &with(claims(), "jti", json!("jti-2")))).expect("valid");
        assert_eq!(cache.check_and_remember(&next, NOW + 5), Ok(()));
    }
}

#[test]
fn the_proof_key_must_be_the_tokens() {
    let holder = ClientKey::p256(5);
    let thief = ClientKey::p256(6);
    let bound = holder.thumbprint();
    let good = verify(&holder.proof()).expect("valid");
    let other = verify(&thief.proof()).expect("valid on its own");
    assert_eq!(check_presentation(AuthScheme::Dpop, Some(&bound), Some(&good)), Ok(()));
    let err = check_presentation(AuthScheme::Dpop, Some(&bound), Some(&other)).expect_err("wrong key");
    assert_eq!(err, ProofError::KeyMismatch);
    assert_eq!(err.code(), ProofErrorCode::InvalidToken);
    assert_eq!(check_presentation(AuthScheme::Dpop, Some(&bound), None), Err(ProofError::Missing));
}

#[test]
fn a_bound_token_as_bearer_and_an_unbound_token_as_dpop_are_refused() {
    let good = verify(&ClientKey::ed(3).proof()).expect("valid");
    assert_eq!(check_presentation(AuthScheme::Bearer, Some(good.jkt()), None), Err(ProofError::BoundTokenAsBearer));
    assert_eq!(
        check_presentation(AuthScheme::Bearer, Some(good.jkt()), Some(&good)),
        Err(ProofError::BoundTokenAsBearer)
    );
    assert_eq!(check_presentation(AuthScheme::Dpop, None, Some(&good)), Err(ProofError::TokenNotBound));
    assert_eq!(check_presentation(AuthScheme::Bearer, None, None), Ok(()));
}

#[test]
fn cnf_is_read_from_verified_access_token_claims() {
    let keyset = common::keyset();
    let holder = ClientKey::ed(3);
    let claims = with(common::claims(), "cnf", json!({"jkt": holder.thumbprint()}));
    let token = keyset.sign(&claims).expect("signs");
    let untrusted = gatehouse::jwt::UntrustedToken::parse(&token).expect("parses");
    let verified = keyset.verify(&untrusted).expect("verifies");
    assert_eq!(confirmation_jkt(verified.claims()), Ok(Some(holder.thumbprint().as_str())));
    assert_eq!(confirmation_jkt(&Map::new()), Ok(None));
}

#[test]
fn a_malformed_cnf_is_refused_not_taken_as_unbound() {
    let jkt = ClientKey::ed(3).thumbprint();
    for cnf in [
        json!(jkt),
        json!({}),
        json!({"jkt": 1}),
        json!({"x5t#S256": jkt}),
        json!({"jkt": "short"}),
        json!({"jkt": format!("{jkt}=")}),
        json!({"jkt": b64::encode([0u8; 48])}),
        json!(null),
    ] {
        let claims: Map<String, Value> = [("cnf".to_owned(), cnf.clone())].into_iter().collect();
        assert_eq!(confirmation_jkt(&claims), Err(ProofError::Cnf), "{cnf}");
    }
}

#[test]
fn error_codes_follow_rfc9449() {
    assert_eq!(ProofError::Stale.code().as_str(), "invalid_dpop_proof");
    assert_eq!(ProofError::Replayed.code().as_str(), "invalid_dpop_proof");
    assert_eq!(ProofError::NonceMissing.code().as_str(), "use_dpop_nonce");
    assert_eq!(ProofError::KeyMismatch.code().as_str(), "invalid_token");
    assert_eq!(ProofError::BoundTokenAsBearer.code().as_str(), "invalid_token");
    // A full replay memory refuses proofs older than its floor: a fresh proof passes.
    assert_eq!(ProofError::ReplayCacheFull.code().as_str(), "invalid_dpop_proof");
}

#[test]
fn challenges_are_rfc9449_7_1_auth_params() {
    let policy = ProofPolicy::default();
    assert_eq!(challenge(None, None, &policy), r#"DPoP algs="EdDSA Ed25519 ES256""#);
    assert_eq!(
        challenge(Some("https://issuer.test"), Some(&ProofError::NonceMissing), &policy),
        r#"DPoP realm="https://issuer.test", error="use_dpop_nonce", error_description="a DPoP nonce is required", algs="EdDSA Ed25519 ES256""#
    );
    let es_only = ProofPolicy { algorithms: vec![Algorithm::Es256], ..ProofPolicy::default() };
    assert_eq!(
        challenge(None, Some(&ProofError::KeyMismatch), &es_only),
        r#"DPoP error="invalid_token", error_description="DPoP proof key does not match the token binding", algs="ES256""#
    );
    // Quotes and backslashes are escaped, control characters dropped.
    assert_eq!(challenge(Some("a\"b\\c\r\nd"), None, &es_only), r#"DPoP realm="a\"b\\cd", algs="ES256""#);
}
