//! The JWK/JWKS loader: nothing panics, and whatever loads publishes a JWKS that loads again with the same kids.
#![no_main]

use gatehouse::jwt::KeySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for loaded in [KeySet::from_public_jwks(&text), KeySet::from_private_jwks(&text)] {
        if let Ok(set) = loaded {
            let published = set.public_jwks().to_string();
            let again = KeySet::from_public_jwks(&published).expect("a published JWKS loads");
            let kids = |s: &KeySet| s.keys().iter().map(|k| k.kid().to_owned()).collect::<Vec<_>>();
            assert_eq!(kids(&set), kids(&again));
            assert!(!published.contains("\"d\""), "no private member is published");
        }
    }
});
