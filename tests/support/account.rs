//! What the native tests of the account core share: seeded randomness, the cheapest password cost,
//! the settings of a test issuer, and the dummy hash. Included with `#[path]` by the tests that
//! drive `account::core` (so the other test crates do not compile it); each uses only some of it.
#![allow(dead_code)]

use gatehouse::account::core::{Fault, Random, Settings};
use gatehouse::account::family::Lifetimes;
use gatehouse::password::{self, PasswordParams, MIN_M_KIB};
use rand::{RngCore, SeedableRng};
use std::sync::OnceLock;

/// Seeded randomness, as the object's platform randomness would give.
pub struct Seeded(pub rand::rngs::StdRng);

impl Random for Seeded {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), Fault> {
        self.0.fill_bytes(out);
        Ok(())
    }
}

/// Randomness from `seed`.
pub fn rng(seed: u64) -> Seeded {
    Seeded(rand::rngs::StdRng::seed_from_u64(seed))
}

/// The cheapest argon2id cost the configuration accepts: the tests hash often.
pub fn params() -> PasswordParams {
    PasswordParams::new(MIN_M_KIB, 5, 1).expect("OWASP's lowest row")
}

/// A test issuer's settings: no mail, nothing optional on.
pub fn settings() -> Settings {
    Settings {
        issuer: "https://gatehouse.test".into(),
        audience: "api".into(),
        access_ttl: 900,
        leeway: 30,
        lifetimes: Lifetimes { absolute: 30 * 86_400, idle: 14 * 86_400, grace: 10 },
        password: params(),
        password_scheme: password::Scheme::Argon2id,
        default_scope: "api read".into(),
        default_roles: vec!["user".into()],
        dpop_required: false,
        webauthn_rp_id: "gatehouse.test".into(),
        webauthn_origins: vec!["https://gatehouse.test".into()],
        email_verification_required: false,
        mail_enabled: false,
        admin_emails: Vec::new(),
        token_claims: Vec::new(),
    }
}

/// The dummy hash unknown accounts are checked against, made once.
pub fn dummy() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| password::dummy_hash(&params()).expect("dummy hash"))
}
