//! The JWK/JWKS loaders (configured keys, and other issuers' sets) and the trusted-issuer
//! configuration: nothing panics, whatever loads publishes a JWKS that loads again with the same kids,
//! and another issuer's set keeps only allowed algorithms and unique kids.
#![no_main]

use gatehouse::jwt::{Algorithm, KeySet};
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
    for allowed in [&[Algorithm::Rs256][..], &[Algorithm::EdDsa, Algorithm::Rs256, Algorithm::Es256][..]] {
        if let Ok((set, _skipped)) = KeySet::from_remote_jwks(&text, allowed) {
            let kids: Vec<&str> = set.keys().iter().map(|k| k.kid()).collect();
            assert!(set.keys().iter().all(|k| allowed.contains(&k.alg())), "only allowed algorithms");
            assert!(kids.iter().enumerate().all(|(i, k)| !kids[..i].contains(k)), "kids are unique");
        }
    }
    let _ = gatehouse::issuers::parse(&text, "https://own.example");
});
