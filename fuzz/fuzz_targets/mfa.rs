//! The second factor's parsers on arbitrary bytes: strict CBOR, both WebAuthn ceremonies, TOTP and
//! recovery-code input, sealed boxes and the key parser. Nothing panics, a decoded CBOR item decodes
//! again from exactly the bytes it took, and a wrong recovery code removes nothing.
#![no_main]

use gatehouse::jwt::b64;
use gatehouse::mfa::recovery::RecoveryCodes;
use gatehouse::mfa::secretbox::{EncryptionKey, TOTP_SECRET};
use gatehouse::mfa::totp::Totp;
use gatehouse::mfa::{cbor, webauthn};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The credential of the W3C WebAuthn Level 3 §16.2 vector (tests/vectors/webauthn/none-es256.json).
fn credential() -> &'static webauthn::Credential {
    static CREDENTIAL: OnceLock<webauthn::Credential> = OnceLock::new();
    CREDENTIAL.get_or_init(|| {
        let cose = "a5010203262001215820afefa16f97ca9b2d23eb86ccb64098d20db90856062eb249c33a9b672f26df61225820930a56b87a2fca66334b03458abf879717c12cc68ed73290af2e2664796b9220";
        let cose: Vec<u8> = (0..cose.len()).step_by(2).map(|i| u8::from_str_radix(&cose[i..i + 2], 16).unwrap()).collect();
        serde_json::from_value(serde_json::json!({
            "id": b64::encode([0xf9; 32]),
            "public_key": b64::encode(cose),
            "algorithm": -7,
            "sign_count": 0,
            "backup_eligible": true,
            "backed_up": true,
            "user_verified": false,
            "aaguid": b64::encode([0; 16]),
        }))
        .expect("the stored form of a credential")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok((value, used)) = cbor::decode_prefix(data) {
        assert_eq!(cbor::decode(&data[..used]), Ok(value), "an item decodes from exactly its bytes");
    }

    // One input split three ways gives the ceremonies' byte strings.
    let (first, rest) = data.split_at(data.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);
    let origins = vec!["https://example.org".to_string()];
    let expected = webauthn::Expected {
        challenge: &[0x39; 32],
        rp_id: "example.org",
        origins: &origins,
        require_user_verification: false,
    };
    let _ = webauthn::verify_registration(&expected, first, rest);
    let _ = webauthn::verify_registration(&expected, b"{}", data);
    let _ = webauthn::verify_authentication(&expected, credential(), first, second, third);

    let text = String::from_utf8_lossy(data);
    let _ = Totp::generate([7; 20]).verify(&text, 1_767_225_600, None);
    let (mut codes, _) = RecoveryCodes::generate(&[[1; 10]; 10].map(|mut c| {
        c[0] = data.first().copied().unwrap_or(0);
        c
    }));
    let before = codes.remaining();
    let used = codes.consume(&text);
    assert_eq!(codes.remaining(), if used { before - 1 } else { before });
    let _ = EncryptionKey::from_bytes([3; 32]).open("acct", TOTP_SECRET, &text);
    let _ = EncryptionKey::parse(&text);
});
