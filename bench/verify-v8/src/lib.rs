//! Benchmark (not a test): the pure verification path of gatehouse (`jwt::verify_access_token`:
//! parse, key-pinned signature check, claim validation), compiled to wasm32 exactly as the worker
//! is, and exported for V8 under Node so `bench/verify.mjs` can time it beside panva/jose.

use gatehouse::jwt::{verify_access_token, KeySet, Validator};
use wasm_bindgen::prelude::wasm_bindgen;

/// A key set and the claim checks, parsed once.
#[wasm_bindgen]
pub struct Verifier {
    keys: KeySet,
    validator: Validator,
}

#[wasm_bindgen]
impl Verifier {
    /// Parses a public JWK Set and the expected issuer and audience.
    #[wasm_bindgen(constructor)]
    pub fn new(public_jwks: &str, issuer: &str, audience: &str) -> Result<Verifier, String> {
        let keys = KeySet::from_public_jwks(public_jwks).map_err(|e| e.to_string())?;
        Ok(Verifier { keys, validator: Validator::new(issuer, audience, 30) })
    }

    /// Verifies one token at `now` (seconds): whether it passes every check.
    pub fn verify(&self, token: &str, now: f64) -> bool {
        verify_access_token(&self.keys, &self.validator, token, now as i64).is_ok()
    }
}
