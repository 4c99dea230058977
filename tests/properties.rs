//! Property tests (proptest): base64url strictness and the claim checks, over generated inputs.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::*;
use gatehouse::jwt::{b64, verify_access_token, TokenError, ValidationError};
use proptest::prelude::*;
use serde_json::json;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Every byte string round-trips.
    #[test]
    fn base64url_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(b64::decode(&b64::encode(&bytes)).unwrap(), bytes);
    }

    /// Encodings are unique: whatever decodes re-encodes to exactly the same text, so no padding,
    /// other alphabet or non-canonical trailing bits can slip through.
    #[test]
    fn base64url_decoding_is_canonical(text in "[A-Za-z0-9_\\-+/=. ]{0,64}") {
        if let Ok(bytes) = b64::decode(&text) {
            prop_assert_eq!(b64::encode(bytes), text);
        }
    }

    /// Any character outside the base64url alphabet is refused, wherever it is.
    #[test]
    fn base64url_refuses_foreign_characters(
        prefix in "[A-Za-z0-9_-]{0,20}",
        bad in "[^A-Za-z0-9_-]",
        suffix in "[A-Za-z0-9_-]{0,20}",
    ) {
        let text = format!("{prefix}{bad}{suffix}");
        prop_assert!(b64::decode(&text).is_err());
    }

    /// exp: accepted exactly while exp > now − leeway.
    #[test]
    fn exp_rule(offset in -200i64..200) {
        let mut c = claims();
        c["exp"] = json!(NOW + offset);
        let token = ed_key().sign(&c).unwrap();
        let result = verify_access_token(&keyset(), &validator(), &token, NOW);
        if NOW + offset > NOW - LEEWAY {
            prop_assert!(result.is_ok(), "{:?}", result);
        } else {
            prop_assert_eq!(result, Err(TokenError::Validation(ValidationError::Expired)));
        }
    }

    /// nbf and iat: accepted exactly while they are at or before now + leeway.
    #[test]
    fn nbf_and_iat_rules(offset in -200i64..200, nbf in any::<bool>()) {
        let mut c = claims();
        let name = if nbf { "nbf" } else { "iat" };
        c[name] = json!(NOW + offset);
        let token = ed_key().sign(&c).unwrap();
        let result = verify_access_token(&keyset(), &validator(), &token, NOW);
        if NOW + offset <= NOW + LEEWAY {
            prop_assert!(result.is_ok(), "{:?}", result);
        } else {
            let expected = if nbf { ValidationError::NotYetValid } else { ValidationError::IssuedInFuture };
            prop_assert_eq!(result, Err(TokenError::Validation(expected)));
        }
    }

    /// aud: accepted exactly when the audience is one of the strings.
    #[test]
    fn audience_rule(auds in proptest::collection::vec(prop_oneof!["api\\.test", "[a-z.]{0,10}"], 0..4), as_string in any::<bool>()) {
        let mut c = claims();
        c["aud"] = if as_string && auds.len() == 1 { json!(auds[0]) } else { json!(auds) };
        let token = ed_key().sign(&c).unwrap();
        let result = verify_access_token(&keyset(), &validator(), &token, NOW);
        if auds.iter().any(|a| a == AUDIENCE) {
            prop_assert!(result.is_ok(), "{:?}", result);
        } else {
            prop_assert_eq!(result, Err(TokenError::Validation(ValidationError::Audience)));
        }
    }

    /// iss: accepted exactly when equal.
    #[test]
    fn issuer_rule(iss in prop_oneof!["https://issuer\\.test", "https?://[a-z.]{0,12}/?"]) {
        let mut c = claims();
        c["iss"] = json!(iss);
        let token = ed_key().sign(&c).unwrap();
        let result = verify_access_token(&keyset(), &validator(), &token, NOW);
        if iss == ISSUER {
            prop_assert!(result.is_ok());
        } else {
            prop_assert_eq!(result, Err(TokenError::Validation(ValidationError::Issuer)));
        }
    }
}
