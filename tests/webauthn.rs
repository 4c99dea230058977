//! WebAuthn ceremonies over the public API: a software authenticator built here (P-256 and Ed25519
//! keys from fixed seeds, CBOR written by hand) registers and asserts, every check of §7.1 and §7.2
//! has a case that breaks only that check, and the W3C Level 3 §16 test vectors (files under
//! tests/vectors/webauthn/) verify as published.

mod common;

use common::vector;
use gatehouse::mfa::cbor::CborError;
use gatehouse::mfa::webauthn::{
    self, Assertion, CoseAlgorithm, Credential, Expected, WebAuthnError, MAX_CREDENTIAL_ID_BYTES,
};
use p256::ecdsa::signature::Signer as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const RP_ID: &str = "login.example.com";
const ORIGIN: &str = "https://login.example.com";
const CHALLENGE: [u8; 32] = [0xc7; 32];

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;
const ED: u8 = 0x80;

// ---- a little CBOR writer (RFC 8949 §3), enough for what authenticators send ----

fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => [vec![m | 25], (n as u16).to_be_bytes().to_vec()].concat(),
        0x1_0000..=0xffff_ffff => [vec![m | 26], (n as u32).to_be_bytes().to_vec()].concat(),
        _ => [vec![m | 27], n.to_be_bytes().to_vec()].concat(),
    }
}

fn int(n: i64) -> Vec<u8> {
    if n >= 0 {
        head(0, n as u64)
    } else {
        head(1, (-1 - n) as u64)
    }
}

fn bstr(b: &[u8]) -> Vec<u8> {
    [head(2, b.len() as u64), b.to_vec()].concat()
}

fn tstr(t: &str) -> Vec<u8> {
    [head(3, t.len() as u64), t.as_bytes().to_vec()].concat()
}

fn map(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = head(5, entries.len() as u64);
    for (k, v) in entries {
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    out
}

// ---- the software authenticator ----

#[derive(Clone)]
enum Key {
    Es256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl Key {
    fn es256() -> Key {
        Key::Es256(p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap())
    }

    fn ed25519() -> Key {
        Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]))
    }

    fn alg(&self) -> i64 {
        match self {
            Key::Es256(_) => -7,
            Key::Ed25519(_) => -8,
        }
    }

    /// The COSE_Key of the public key (RFC 9053 §2.1 and §7.1), in CTAP2 canonical key order.
    fn cose(&self) -> Vec<u8> {
        match self {
            Key::Es256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                map(&[
                    (int(1), int(2)),
                    (int(3), int(-7)),
                    (int(-1), int(1)),
                    (int(-2), bstr(point.x().unwrap())),
                    (int(-3), bstr(point.y().unwrap())),
                ])
            }
            Key::Ed25519(k) => map(&[
                (int(1), int(1)),
                (int(3), int(-8)),
                (int(-1), int(6)),
                (int(-2), bstr(k.verifying_key().as_bytes())),
            ]),
        }
    }

    /// ES256 as ASN.1 DER (what WebAuthn sends), EdDSA as the raw 64 bytes.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Key::Es256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            Key::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
        }
    }
}

fn signed(auth_data: &[u8], client_data_json: &[u8]) -> Vec<u8> {
    [auth_data, Sha256::digest(client_data_json).as_slice()].concat()
}

fn b64(bytes: &[u8]) -> String {
    gatehouse::jwt::b64::encode(bytes)
}

/// One ceremony's worth of client and authenticator output, every part adjustable by a test.
#[derive(Clone)]
struct Ceremony {
    key: Key,
    client_data: Value,
    rp_id: String,
    flags: u8,
    counter: u32,
    credential_id: Vec<u8>,
    cose_key: Vec<u8>,
    extensions: Option<Vec<u8>>,
    trailing: Vec<u8>,
    fmt: String,
    att_stmt: Vec<u8>,
}

impl Ceremony {
    fn registration(key: Key) -> Ceremony {
        Ceremony {
            client_data: json!({
                "type": "webauthn.create",
                "challenge": b64(&CHALLENGE),
                "origin": ORIGIN,
                "crossOrigin": false,
            }),
            rp_id: RP_ID.into(),
            flags: UP | UV | AT | BE | BS,
            counter: 0,
            credential_id: vec![0xcd; 32],
            cose_key: key.cose(),
            extensions: None,
            trailing: vec![],
            fmt: "none".into(),
            att_stmt: map(&[]),
            key,
        }
    }

    fn authentication(key: Key, counter: u32) -> Ceremony {
        let mut ceremony = Ceremony::registration(key);
        ceremony.client_data["type"] = json!("webauthn.get");
        ceremony.flags = UP | UV | BE | BS;
        ceremony.counter = counter;
        ceremony
    }

    fn client_data_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.client_data).unwrap()
    }

    fn auth_data(&self) -> Vec<u8> {
        let mut out = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        out.push(self.flags);
        out.extend_from_slice(&self.counter.to_be_bytes());
        if self.flags & AT != 0 {
            out.extend_from_slice(&[0u8; 16]);
            out.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
            out.extend_from_slice(&self.credential_id);
            out.extend_from_slice(&self.cose_key);
        }
        if let Some(ext) = &self.extensions {
            out.extend_from_slice(ext);
        }
        out.extend_from_slice(&self.trailing);
        out
    }

    fn attestation_object(&self) -> Vec<u8> {
        map(&[
            (tstr("fmt"), tstr(&self.fmt)),
            (tstr("attStmt"), self.att_stmt.clone()),
            (tstr("authData"), bstr(&self.auth_data())),
        ])
    }

    /// A packed self attestation statement signed by this ceremony's key.
    fn self_attested(mut self) -> Ceremony {
        self.fmt = "packed".into();
        let sig = self.key.sign(&signed(&self.auth_data(), &self.client_data_json()));
        self.att_stmt = map(&[(tstr("alg"), int(self.key.alg())), (tstr("sig"), bstr(&sig))]);
        self
    }

    fn signature(&self) -> Vec<u8> {
        self.key.sign(&signed(&self.auth_data(), &self.client_data_json()))
    }
}

fn origins() -> Vec<String> {
    vec![ORIGIN.to_string()]
}

fn expected<'a>(origins: &'a [String], require_uv: bool) -> Expected<'a> {
    Expected { challenge: &CHALLENGE, rp_id: RP_ID, origins, require_user_verification: require_uv }
}

fn register(c: &Ceremony) -> Result<Credential, WebAuthnError> {
    webauthn::verify_registration(&expected(&origins(), false), &c.client_data_json(), &c.attestation_object())
}

fn register_uv(c: &Ceremony) -> Result<Credential, WebAuthnError> {
    webauthn::verify_registration(&expected(&origins(), true), &c.client_data_json(), &c.attestation_object())
}

fn registered(key: Key) -> Credential {
    register(&Ceremony::registration(key)).expect("the plain registration verifies")
}

fn assert(credential: &Credential, c: &Ceremony, require_uv: bool) -> Result<Assertion, WebAuthnError> {
    let origins = origins();
    webauthn::verify_authentication(
        &expected(&origins, require_uv),
        credential,
        &c.client_data_json(),
        &c.auth_data(),
        &c.signature(),
    )
}

// ---- registration ----

#[test]
fn es256_and_eddsa_credentials_register() {
    for (key, alg) in [(Key::es256(), CoseAlgorithm::Es256), (Key::ed25519(), CoseAlgorithm::EdDsa)] {
        let ceremony = Ceremony::registration(key.clone());
        let credential = register_uv(&ceremony).unwrap();
        assert_eq!(credential.id(), &[0xcd; 32]);
        assert_eq!(credential.algorithm(), alg);
        assert_eq!(credential.public_key_cose(), key.cose().as_slice());
        assert_eq!(credential.sign_count(), 0);
        assert!(credential.backup_eligible() && credential.backed_up() && credential.user_verified());
        assert_eq!(credential.aaguid(), [0; 16]);
        let stored = serde_json::to_string(&credential).unwrap();
        assert_eq!(serde_json::from_str::<Credential>(&stored).unwrap(), credential, "{stored}");
    }
}

#[test]
fn stored_credential_is_readable_json() {
    let credential =
        registered(Key::ed25519()).with_transports(&["internal".into(), "bogus".into(), "internal".into()]);
    let stored: Value = serde_json::to_value(&credential).unwrap();
    assert_eq!(stored["id"], json!(b64(&[0xcd; 32])));
    assert_eq!(stored["algorithm"], json!(-8));
    assert_eq!(stored["transports"], json!(["internal"]), "unknown and repeated transports dropped");
}

#[test]
fn packed_self_attestation_registers_and_its_signature_counts() {
    let good = Ceremony::registration(Key::es256()).self_attested();
    assert!(register(&good).is_ok());
    let ed = Ceremony::registration(Key::ed25519()).self_attested();
    assert!(register(&ed).is_ok());

    // The statement signs the client data: a different clientDataJSON breaks it.
    let mut swapped = good.clone();
    swapped.client_data["extra"] = json!("changed after signing");
    assert_eq!(register(&swapped), Err(WebAuthnError::AttestationSignature));

    // Signed by another key than the credential's.
    let mut foreign = good.clone();
    let other = Key::Es256(p256::ecdsa::SigningKey::from_slice(&[8u8; 32]).unwrap());
    let sig = other.sign(&signed(&foreign.auth_data(), &foreign.client_data_json()));
    foreign.att_stmt = map(&[(tstr("alg"), int(-7)), (tstr("sig"), bstr(&sig))]);
    assert_eq!(register(&foreign), Err(WebAuthnError::AttestationSignature));

    // The statement names another algorithm than the key's.
    let mut wrong_alg = good.clone();
    let sig = wrong_alg.key.sign(&signed(&wrong_alg.auth_data(), &wrong_alg.client_data_json()));
    wrong_alg.att_stmt = map(&[(tstr("alg"), int(-8)), (tstr("sig"), bstr(&sig))]);
    assert_eq!(register(&wrong_alg), Err(WebAuthnError::AttestationSignature));
}

#[test]
fn other_attestation_formats_are_refused() {
    let mut full = Ceremony::registration(Key::es256()).self_attested();
    full.att_stmt = map(&[
        (tstr("alg"), int(-7)),
        (tstr("sig"), bstr(&[1, 2, 3])),
        (tstr("x5c"), [head(4, 1), bstr(&[0x30, 0x00])].concat()),
    ]);
    assert!(matches!(register(&full), Err(WebAuthnError::UnsupportedAttestation(_))));
    for fmt in ["tpm", "android-key", "fido-u2f", "apple", "android-safetynet", "NONE"] {
        let mut other = Ceremony::registration(Key::es256());
        other.fmt = fmt.into();
        assert_eq!(register(&other), Err(WebAuthnError::UnsupportedAttestation(fmt.into())), "{fmt}");
    }
    let mut none_with_statement = Ceremony::registration(Key::es256());
    none_with_statement.att_stmt = map(&[(tstr("sig"), bstr(&[1]))]);
    assert!(matches!(register(&none_with_statement), Err(WebAuthnError::AttestationObject(_))));
}

#[test]
fn registration_client_data_checks() {
    let base = Ceremony::registration(Key::es256());
    let with = |member: &str, value: Value| {
        let mut c = base.clone();
        c.client_data[member] = value;
        register(&c)
    };
    assert_eq!(with("type", json!("webauthn.get")), Err(WebAuthnError::WrongType));
    assert_eq!(with("type", json!("payment.get")), Err(WebAuthnError::WrongType));
    assert_eq!(with("challenge", json!(b64(&[0xc8; 32]))), Err(WebAuthnError::ChallengeMismatch));
    assert_eq!(with("challenge", json!(b64(&CHALLENGE[..31]))), Err(WebAuthnError::ChallengeMismatch));
    assert_eq!(with("challenge", json!(format!("{}=", b64(&CHALLENGE)))), Err(WebAuthnError::ChallengeMismatch));
    assert_eq!(with("origin", json!("https://evil.example")), Err(WebAuthnError::OriginNotAllowed));
    assert_eq!(with("origin", json!("http://login.example.com")), Err(WebAuthnError::OriginNotAllowed));
    assert_eq!(with("origin", json!("https://sub.login.example.com")), Err(WebAuthnError::OriginNotAllowed));
    assert_eq!(with("crossOrigin", json!(true)), Err(WebAuthnError::CrossOrigin));
    assert_eq!(with("topOrigin", json!("https://login.example.com")), Err(WebAuthnError::CrossOrigin));
    assert_eq!(with("origin", json!(42)), Err(WebAuthnError::ClientData));
    assert!(with("tokenBinding", json!({"status": "supported"})).is_ok(), "unknown members are ignored");

    let mut no_cross_origin = base.clone();
    no_cross_origin.client_data.as_object_mut().unwrap().remove("crossOrigin");
    assert!(register(&no_cross_origin).is_ok(), "crossOrigin may be absent");

    let att = base.attestation_object();
    let call = |cdj: &[u8]| webauthn::verify_registration(&expected(&origins(), false), cdj, &att);
    assert_eq!(call(b"not json"), Err(WebAuthnError::ClientData));
    assert_eq!(call(b"[]"), Err(WebAuthnError::ClientData));
    let twice = format!(
        r#"{{"type":"webauthn.create","challenge":"{c}","challenge":"{c}","origin":"{ORIGIN}"}}"#,
        c = b64(&CHALLENGE)
    );
    assert_eq!(call(twice.as_bytes()), Err(WebAuthnError::ClientData), "a duplicate member");
    assert_eq!(call(&vec![b' '; webauthn::MAX_CLIENT_DATA_BYTES + 1]), Err(WebAuthnError::TooLarge("clientDataJSON")));
}

#[test]
fn a_short_expected_challenge_is_the_servers_error() {
    let c = Ceremony::registration(Key::es256());
    let origins = origins();
    let weak =
        Expected { challenge: &CHALLENGE[..15], rp_id: RP_ID, origins: &origins, require_user_verification: false };
    let result = webauthn::verify_registration(&weak, &c.client_data_json(), &c.attestation_object());
    assert_eq!(result, Err(WebAuthnError::WeakChallenge));
}

#[test]
fn registration_authenticator_data_checks() {
    let base = Ceremony::registration(Key::es256());
    let mut c = base.clone();
    c.rp_id = "example.com".into();
    assert_eq!(register(&c), Err(WebAuthnError::RpIdMismatch), "a parent domain's hash");

    let mut c = base.clone();
    c.flags &= !UP;
    assert_eq!(register(&c), Err(WebAuthnError::UserNotPresent));

    let mut c = base.clone();
    c.flags &= !UV;
    assert_eq!(register_uv(&c), Err(WebAuthnError::UserNotVerified));
    assert!(!register(&c).unwrap().user_verified(), "UV is only required when asked");

    let mut c = base.clone();
    c.flags &= !BE;
    assert!(matches!(register(&c), Err(WebAuthnError::AuthenticatorData(_))), "BS without BE");
    c.flags &= !BS;
    assert!(!register(&c).unwrap().backup_eligible());

    let mut c = base.clone();
    c.flags &= !AT;
    assert_eq!(register(&c), Err(WebAuthnError::AttestedCredentialData));
}

#[test]
fn extensions_and_trailing_bytes() {
    let base = Ceremony::registration(Key::ed25519());
    let mut c = base.clone();
    c.flags |= ED;
    c.extensions = Some(map(&[(tstr("credProtect"), int(2))]));
    assert!(register(&c).is_ok(), "an extensions map after the key");

    let mut c = base.clone();
    c.flags |= ED;
    assert_eq!(register(&c), Err(WebAuthnError::Cbor(CborError::Truncated)), "ED without extensions");

    let mut c = base.clone();
    c.flags |= ED;
    c.extensions = Some(int(5));
    assert!(matches!(register(&c), Err(WebAuthnError::AuthenticatorData(_))), "extensions not a map");

    let mut c = base.clone();
    c.extensions = Some(map(&[(tstr("credProtect"), int(2))]));
    assert_eq!(register(&c), Err(WebAuthnError::AuthenticatorData("trailing bytes")), "extensions without ED");

    let mut c = base.clone();
    c.trailing = vec![0];
    assert_eq!(register(&c), Err(WebAuthnError::AuthenticatorData("trailing bytes")));

    let mut att = base.attestation_object();
    att.push(0);
    let result = webauthn::verify_registration(&expected(&origins(), false), &base.client_data_json(), &att);
    assert_eq!(result, Err(WebAuthnError::Cbor(CborError::TrailingBytes)), "after the attestation object");
}

#[test]
fn credential_id_length_is_bounded() {
    let mut c = Ceremony::registration(Key::es256());
    c.credential_id = vec![1; MAX_CREDENTIAL_ID_BYTES];
    assert_eq!(register(&c).unwrap().id().len(), 1023);
    c.credential_id = vec![1; MAX_CREDENTIAL_ID_BYTES + 1];
    assert_eq!(register(&c), Err(WebAuthnError::CredentialId));
    c.credential_id = vec![];
    assert_eq!(register(&c), Err(WebAuthnError::CredentialId));
    c.credential_id = vec![1; 100];
    c.trailing = vec![];
    let mut auth_data = c.auth_data();
    auth_data.truncate(37 + 16 + 2 + 50); // the id is cut short
    let att = map(&[(tstr("fmt"), tstr("none")), (tstr("attStmt"), map(&[])), (tstr("authData"), bstr(&auth_data))]);
    let result = webauthn::verify_registration(&expected(&origins(), false), &c.client_data_json(), &att);
    assert!(matches!(result, Err(WebAuthnError::AuthenticatorData(_))));
}

#[test]
fn unsupported_and_broken_keys_are_refused() {
    let base = Ceremony::registration(Key::es256());
    let Key::Es256(signing) = Key::es256() else { unreachable!() };
    let point = signing.verifying_key().to_encoded_point(false);
    let (x, y) = (point.x().unwrap().to_vec(), point.y().unwrap().to_vec());
    let with_key = |cose: Vec<u8>| {
        let mut c = base.clone();
        c.cose_key = cose;
        register(&c)
    };
    let rsa = map(&[(int(1), int(3)), (int(3), int(-257)), (int(-1), bstr(&[1; 256])), (int(-2), bstr(&[1, 0, 1]))]);
    assert_eq!(with_key(rsa), Err(WebAuthnError::UnsupportedAlgorithm(-257)), "RS256");
    let p384 =
        map(&[(int(1), int(2)), (int(3), int(-35)), (int(-1), int(2)), (int(-2), bstr(&x)), (int(-3), bstr(&y))]);
    assert_eq!(with_key(p384), Err(WebAuthnError::UnsupportedAlgorithm(-35)), "ES384");
    let curve_mismatch =
        map(&[(int(1), int(2)), (int(3), int(-7)), (int(-1), int(2)), (int(-2), bstr(&x)), (int(-3), bstr(&y))]);
    assert_eq!(with_key(curve_mismatch), Err(WebAuthnError::UnsupportedAlgorithm(-7)), "alg -7 on P-384");
    let no_alg = map(&[(int(1), int(2)), (int(-1), int(1)), (int(-2), bstr(&x)), (int(-3), bstr(&y))]);
    assert_eq!(with_key(no_alg), Err(WebAuthnError::UnsupportedAlgorithm(0)));
    let mut off_curve_y = y.clone();
    off_curve_y[31] ^= 1;
    let off_curve = map(&[
        (int(1), int(2)),
        (int(3), int(-7)),
        (int(-1), int(1)),
        (int(-2), bstr(&x)),
        (int(-3), bstr(&off_curve_y)),
    ]);
    assert!(matches!(with_key(off_curve), Err(WebAuthnError::PublicKey(_))), "not on the curve");
    let short_x =
        map(&[(int(1), int(2)), (int(3), int(-7)), (int(-1), int(1)), (int(-2), bstr(&x[1..])), (int(-3), bstr(&y))]);
    assert!(matches!(with_key(short_x), Err(WebAuthnError::PublicKey(_))));
    let with_private = map(&[
        (int(1), int(2)),
        (int(3), int(-7)),
        (int(-1), int(1)),
        (int(-2), bstr(&x)),
        (int(-3), bstr(&y)),
        (int(-4), bstr(&[7; 32])),
    ]);
    assert!(matches!(with_key(with_private), Err(WebAuthnError::PublicKey(_))), "a private key part");
    let mut identity = [0u8; 32];
    identity[0] = 1; // the Ed25519 identity point, of small order
    let weak = map(&[(int(1), int(1)), (int(3), int(-8)), (int(-1), int(6)), (int(-2), bstr(&identity))]);
    assert!(matches!(with_key(weak), Err(WebAuthnError::PublicKey(_))), "weak Ed25519 key");
    assert!(matches!(with_key(int(1)), Err(WebAuthnError::PublicKey(_))), "not a map");
}

#[test]
fn malformed_cbor_is_refused() {
    let base = Ceremony::registration(Key::es256());
    let cdj = base.client_data_json();
    let call = |att: &[u8]| webauthn::verify_registration(&expected(&origins(), false), &cdj, att);
    let att = base.attestation_object();
    assert_eq!(call(&att[..att.len() - 1]), Err(WebAuthnError::Cbor(CborError::Truncated)));
    assert_eq!(call(&[]), Err(WebAuthnError::Cbor(CborError::Truncated)));
    assert!(matches!(call(&[0x9f, 0xff]), Err(WebAuthnError::Cbor(CborError::Unsupported(_)))));
    assert!(matches!(call(&int(3)), Err(WebAuthnError::AttestationObject(_))), "not a map");
    let dup =
        map(&[(tstr("fmt"), tstr("none")), (tstr("fmt"), tstr("none")), (tstr("authData"), bstr(&base.auth_data()))]);
    assert_eq!(call(&dup), Err(WebAuthnError::Cbor(CborError::DuplicateKey)));
    let extra = map(&[
        (tstr("fmt"), tstr("none")),
        (tstr("attStmt"), map(&[])),
        (tstr("authData"), bstr(&base.auth_data())),
        (tstr("epAtt"), int(1)),
    ]);
    assert!(matches!(call(&extra), Err(WebAuthnError::AttestationObject(_))));
    let text_auth_data =
        map(&[(tstr("fmt"), tstr("none")), (tstr("attStmt"), map(&[])), (tstr("authData"), tstr("x"))]);
    assert!(matches!(call(&text_auth_data), Err(WebAuthnError::AttestationObject(_))));
    assert_eq!(
        call(&vec![0; webauthn::MAX_AUTHENTICATOR_BYTES + 1]),
        Err(WebAuthnError::TooLarge("attestationObject"))
    );

    let mut dup_key = base.clone();
    let Key::Es256(signing) = Key::es256() else { unreachable!() };
    let point = signing.verifying_key().to_encoded_point(false);
    dup_key.cose_key = map(&[
        (int(1), int(2)),
        (int(3), int(-7)),
        (int(3), int(-8)),
        (int(-1), int(1)),
        (int(-2), bstr(point.x().unwrap())),
        (int(-3), bstr(point.y().unwrap())),
    ]);
    assert_eq!(register(&dup_key), Err(WebAuthnError::Cbor(CborError::DuplicateKey)), "a duplicate COSE label");
}

// ---- authentication ----

#[test]
fn es256_and_eddsa_assertions_verify_and_update_the_counter() {
    for key in [Key::es256(), Key::ed25519()] {
        let mut credential = registered(key.clone());
        let first = Ceremony::authentication(key.clone(), 1);
        let assertion = assert(&credential, &first, true).unwrap();
        assert_eq!(assertion.sign_count(), 1);
        assert!(assertion.user_verified() && assertion.backed_up());
        credential.record(&assertion);
        assert_eq!(credential.sign_count(), 1);

        // The same assertion again (a replay) no longer passes the counter.
        assert_eq!(assert(&credential, &first, true), Err(WebAuthnError::CounterRegression { stored: 1, received: 1 }));
        let second = Ceremony::authentication(key, 7);
        assert_eq!(assert(&credential, &second, true).unwrap().sign_count(), 7);
    }
}

#[test]
fn counter_rule() {
    let key = Key::es256();
    let fresh = registered(key.clone());
    // Both zero: the authenticator keeps no counter (synced passkeys); allowed every time.
    let zero = Ceremony::authentication(key.clone(), 0);
    let mut credential = fresh.clone();
    let assertion = assert(&credential, &zero, false).unwrap();
    credential.record(&assertion);
    assert!(assert(&credential, &zero, false).is_ok());

    let mut at_five = fresh.clone();
    at_five.record(&assert(&fresh, &Ceremony::authentication(key.clone(), 5), false).unwrap());
    for (received, ok) in [(0, false), (4, false), (5, false), (6, true), (u32::MAX, true)] {
        let result = assert(&at_five, &Ceremony::authentication(key.clone(), received), false);
        if ok {
            assert!(result.is_ok(), "{received}");
        } else {
            assert_eq!(result, Err(WebAuthnError::CounterRegression { stored: 5, received }), "{received}");
        }
    }
}

#[test]
fn authentication_client_data_checks() {
    let key = Key::ed25519();
    let credential = registered(key.clone());
    let base = Ceremony::authentication(key, 1);
    let with = |member: &str, value: Value| {
        let mut c = base.clone();
        c.client_data[member] = value;
        assert(&credential, &c, false)
    };
    assert_eq!(with("type", json!("webauthn.create")), Err(WebAuthnError::WrongType));
    assert_eq!(with("challenge", json!(b64(&[0; 32]))), Err(WebAuthnError::ChallengeMismatch));
    assert_eq!(with("origin", json!("https://login.example.com.evil.example")), Err(WebAuthnError::OriginNotAllowed));
    assert_eq!(with("crossOrigin", json!(true)), Err(WebAuthnError::CrossOrigin));
    assert_eq!(with("topOrigin", json!("https://evil.example")), Err(WebAuthnError::CrossOrigin));

    // A second allowed origin is accepted when configured.
    let mut c = base.clone();
    c.client_data["origin"] = json!("https://app.example.com");
    let two = vec![ORIGIN.to_string(), "https://app.example.com".to_string()];
    let both = Expected { challenge: &CHALLENGE, rp_id: RP_ID, origins: &two, require_user_verification: false };
    let result =
        webauthn::verify_authentication(&both, &credential, &c.client_data_json(), &c.auth_data(), &c.signature());
    assert!(result.is_ok());
}

#[test]
fn authentication_authenticator_data_checks() {
    let key = Key::es256();
    let credential = registered(key.clone());
    let base = Ceremony::authentication(key, 1);
    let run = |change: &dyn Fn(&mut Ceremony), require_uv: bool| {
        let mut c = base.clone();
        change(&mut c);
        assert(&credential, &c, require_uv)
    };
    assert_eq!(run(&|c| c.rp_id = "evil.example".into(), false), Err(WebAuthnError::RpIdMismatch));
    assert_eq!(run(&|c| c.flags &= !UP, false), Err(WebAuthnError::UserNotPresent));
    assert_eq!(run(&|c| c.flags &= !UV, true), Err(WebAuthnError::UserNotVerified));
    let without_uv = run(&|c| c.flags &= !UV, false).unwrap();
    assert!(!without_uv.user_verified(), "UV reported as it is, for amr");
    assert_eq!(run(&|c| c.flags |= AT, false), Err(WebAuthnError::AttestedCredentialData));
    assert_eq!(run(&|c| c.flags &= !(BE | BS), false), Err(WebAuthnError::BackupEligibilityChanged));
    assert!(matches!(run(&|c| c.flags &= !BE, false), Err(WebAuthnError::AuthenticatorData(_))), "BS without BE");
    assert!(!run(&|c| c.flags &= !BS, false).unwrap().backed_up());
    assert_eq!(run(&|c| c.trailing = vec![0], false), Err(WebAuthnError::AuthenticatorData("trailing bytes")));
    let ext = |c: &mut Ceremony| {
        c.flags |= ED;
        c.extensions = Some(map(&[(tstr("credProtect"), int(1))]));
    };
    assert!(run(&ext, false).is_ok(), "extension outputs are allowed");

    let c = base.clone();
    let short = webauthn::verify_authentication(
        &expected(&origins(), false),
        &credential,
        &c.client_data_json(),
        &c.auth_data()[..36],
        &c.signature(),
    );
    assert!(matches!(short, Err(WebAuthnError::AuthenticatorData(_))));
}

#[test]
fn signatures_are_checked() {
    for key in [Key::es256(), Key::ed25519()] {
        let credential = registered(key.clone());
        let c = Ceremony::authentication(key.clone(), 1);
        let (cdj, auth_data) = (c.client_data_json(), c.auth_data());
        let origins = origins();
        let check = |cdj: &[u8], auth_data: &[u8], sig: &[u8]| {
            webauthn::verify_authentication(&expected(&origins, false), &credential, cdj, auth_data, sig)
        };
        assert!(check(&cdj, &auth_data, &c.signature()).is_ok());

        let mut flipped = c.signature();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(check(&cdj, &auth_data, &flipped), Err(WebAuthnError::BadSignature));
        assert_eq!(check(&cdj, &auth_data, &[]), Err(WebAuthnError::BadSignature));

        // Signed over other client data (an extra member added after signing).
        let mut other = c.clone();
        other.client_data["extra"] = json!(1);
        assert_eq!(check(&other.client_data_json(), &auth_data, &c.signature()), Err(WebAuthnError::BadSignature));

        // Signed over other authenticator data (the counter raised after signing).
        let mut bumped = c.clone();
        bumped.counter = 2;
        assert_eq!(check(&cdj, &bumped.auth_data(), &c.signature()), Err(WebAuthnError::BadSignature));

        // Another key of the same kind.
        let stranger = match key {
            Key::Es256(_) => Key::Es256(p256::ecdsa::SigningKey::from_slice(&[8u8; 32]).unwrap()),
            Key::Ed25519(_) => Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[10u8; 32])),
        };
        let forged = stranger.sign(&signed(&auth_data, &cdj));
        assert_eq!(check(&cdj, &auth_data, &forged), Err(WebAuthnError::BadSignature));
    }
}

#[test]
fn es256_signatures_must_be_der() {
    let key = Key::es256();
    let credential = registered(key.clone());
    let c = Ceremony::authentication(key, 1);
    let Key::Es256(signing) = &c.key else { unreachable!() };
    let raw: p256::ecdsa::Signature = signing.sign(&signed(&c.auth_data(), &c.client_data_json()));
    let origins = origins();
    let result = webauthn::verify_authentication(
        &expected(&origins, false),
        &credential,
        &c.client_data_json(),
        &c.auth_data(),
        &raw.to_bytes(),
    );
    assert_eq!(result, Err(WebAuthnError::BadSignature), "raw r || s is not what WebAuthn sends");
}

#[test]
fn a_damaged_stored_credential_is_the_servers_error() {
    let key = Key::es256();
    let credential = registered(key.clone());
    let mut stored = serde_json::to_value(&credential).unwrap();
    stored["public_key"] = json!(b64(&int(1)));
    let damaged: Credential = serde_json::from_value(stored.clone()).unwrap();
    let c = Ceremony::authentication(key, 1);
    assert_eq!(assert(&damaged, &c, false), Err(WebAuthnError::StoredCredential));
    // An algorithm that disagrees with the key is damage too.
    stored["public_key"] = json!(b64(credential.public_key_cose()));
    stored["algorithm"] = json!(-8);
    let mismatched: Credential = serde_json::from_value(stored.clone()).unwrap();
    assert_eq!(assert(&mismatched, &c, false), Err(WebAuthnError::StoredCredential));
    stored["algorithm"] = json!(-257);
    assert!(serde_json::from_value::<Credential>(stored).is_err(), "unknown algorithms do not load");
}

// ---- W3C WebAuthn Level 3 §16 test vectors ----

fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    hex::decode(v[name].as_str().unwrap_or_else(|| panic!("{name}"))).unwrap()
}

struct Vector {
    file: Value,
}

impl Vector {
    fn load(name: &str) -> Vector {
        Vector { file: vector(&format!("webauthn/{name}")) }
    }

    fn origins(&self) -> Vec<String> {
        vec![self.file["origin"].as_str().unwrap().to_string()]
    }

    fn expected<'a>(&'a self, challenge: &'a [u8], origins: &'a [String]) -> Expected<'a> {
        Expected { challenge, rp_id: self.file["rp_id"].as_str().unwrap(), origins, require_user_verification: false }
    }

    fn register_with(&self, client_data_json: &[u8]) -> Result<Credential, WebAuthnError> {
        let reg = &self.file["registration"];
        let challenge = hex_field(reg, "challenge");
        let origins = self.origins();
        webauthn::verify_registration(
            &self.expected(&challenge, &origins),
            client_data_json,
            &hex_field(reg, "attestation_object"),
        )
    }

    fn register(&self) -> Result<Credential, WebAuthnError> {
        self.register_with(&hex_field(&self.file["registration"], "client_data_json"))
    }

    /// Registers the published ceremony and checks the credential id and AAGUID the vector states.
    fn registered_as_published(&self) -> Credential {
        let credential = self.register().expect("the published registration verifies");
        let reg = &self.file["registration"];
        assert_eq!(credential.id(), hex_field(reg, "credential_id").as_slice());
        assert_eq!(credential.aaguid().as_slice(), hex_field(reg, "aaguid").as_slice());
        credential
    }

    fn authenticate(&self, credential: &Credential, challenge: &[u8]) -> Result<Assertion, WebAuthnError> {
        let auth = &self.file["authentication"];
        let origins = self.origins();
        webauthn::verify_authentication(
            &self.expected(challenge, &origins),
            credential,
            &hex_field(auth, "client_data_json"),
            &hex_field(auth, "authenticator_data"),
            &hex_field(auth, "signature"),
        )
    }
}

#[test]
fn w3c_none_es256_registers_and_authenticates() {
    let v = Vector::load("none-es256.json");
    let credential = v.registered_as_published();
    assert_eq!(credential.algorithm(), CoseAlgorithm::Es256);
    assert_eq!(credential.sign_count(), 0);
    assert!(credential.backup_eligible() && credential.backed_up() && !credential.user_verified());

    let challenge = hex_field(&v.file["authentication"], "challenge");
    let assertion = v.authenticate(&credential, &challenge).expect("§16.2 authentication verifies");
    assert_eq!(assertion.sign_count(), 0, "the vector's authenticator keeps no counter");
    assert!(!assertion.user_verified());

    // Bound to its own challenge: the registration's does not do.
    let reg_challenge = hex_field(&v.file["registration"], "challenge");
    assert_eq!(v.authenticate(&credential, &reg_challenge), Err(WebAuthnError::ChallengeMismatch));
}

#[test]
fn w3c_packed_self_es256_registers() {
    let v = Vector::load("packed-self-es256.json");
    let credential = v.registered_as_published();
    assert_eq!(credential.algorithm(), CoseAlgorithm::Es256);
    let reg = &v.file["registration"];

    // The self attestation signs the clientDataJSON: one changed byte breaks it.
    let mut cdj = hex_field(reg, "client_data_json");
    let at = cdj.len() - 3;
    cdj[at] ^= 0x01;
    assert_eq!(v.register_with(&cdj), Err(WebAuthnError::AttestationSignature));
}

#[test]
fn w3c_cross_origin_vectors_are_refused() {
    for name in ["none-es256-crossorigin.json", "none-es256-toporigin.json"] {
        let v = Vector::load(name);
        assert_eq!(v.register(), Err(WebAuthnError::CrossOrigin), "{name} registration");

        // `none` does not sign clientDataJSON, so the same credential registers from a same-origin
        // ceremony; its cross-origin assertion, correctly signed, is then refused for that alone.
        let reg = &v.file["registration"];
        let same_origin = json!({
            "type": "webauthn.create",
            "challenge": b64(&hex_field(reg, "challenge")),
            "origin": v.file["origin"],
        });
        let credential = v.register_with(&serde_json::to_vec(&same_origin).unwrap()).unwrap();
        let challenge = hex_field(&v.file["authentication"], "challenge");
        assert_eq!(v.authenticate(&credential, &challenge), Err(WebAuthnError::CrossOrigin), "{name} assertion");
    }
}
