//! RS256 signature checks through the runtime's WebCrypto (`crypto.subtle`, BoringSSL in workerd),
//! about 10× faster than the pure-Rust `rsa` crate compiled to wasm. Only the signature primitive
//! moves: every structural, key-pinning and claim check stays in Rust (`jwt::token`), and the pure
//! path remains the reference used by the native tests and vectors.

use crate::jwt::{Algorithm, PublicKey};
use js_sys::{Array, Object, Promise, Reflect};
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Crypto, CryptoKey, SubtleCrypto};

thread_local! {
    /// Imported RSA keys by `kid`, once per isolate (the key set is fixed for the isolate's life).
    static RSA_KEYS: RefCell<HashMap<String, CryptoKey>> = RefCell::new(HashMap::new());
}

const RSASSA: &str = "RSASSA-PKCS1-v1_5";

fn subtle() -> Result<SubtleCrypto, JsValue> {
    let crypto: Crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))?.dyn_into()?;
    Ok(crypto.subtle())
}

async fn import_rsa(subtle: &SubtleCrypto, key: &PublicKey) -> Result<CryptoKey, JsValue> {
    if let Some(cached) = RSA_KEYS.with(|k| k.borrow().get(key.kid()).cloned()) {
        return Ok(cached);
    }
    let jwk: Object = js_sys::JSON::parse(&key.to_jwk().to_string())?.dyn_into()?;
    let algorithm = Object::new();
    Reflect::set(&algorithm, &"name".into(), &RSASSA.into())?;
    Reflect::set(&algorithm, &"hash".into(), &"SHA-256".into())?;
    let usages = Array::of1(&"verify".into());
    let promise = subtle.import_key_with_object("jwk", &jwk, &algorithm, false, &usages)?;
    let imported: CryptoKey = JsFuture::from(promise).await?.dyn_into()?;
    RSA_KEYS.with(|k| k.borrow_mut().insert(key.kid().to_owned(), imported.clone()));
    Ok(imported)
}

async fn verify_rs256_webcrypto(key: &PublicKey, message: &[u8], signature: &[u8]) -> Result<bool, JsValue> {
    let subtle = subtle()?;
    let imported = import_rsa(&subtle, key).await?;
    let promise: Promise = subtle.verify_with_str_and_u8_array_and_u8_array(RSASSA, &imported, signature, message)?;
    Ok(JsFuture::from(promise).await?.as_bool().unwrap_or(false))
}

/// Checks a token's signature: RS256 through WebCrypto, EdDSA in Rust. If WebCrypto itself fails
/// (as opposed to answering "invalid"), the pure-Rust primitive decides, so the verdict never
/// depends on the platform being available.
pub async fn verify_signature(
    key: &PublicKey,
    message: &[u8],
    signature: &[u8],
    in_rust: impl FnOnce() -> bool,
) -> bool {
    if key.alg() != Algorithm::Rs256 || !cfg!(target_arch = "wasm32") {
        return in_rust();
    }
    match verify_rs256_webcrypto(key, message, signature).await {
        Ok(valid) => valid,
        Err(e) => {
            worker::console_error!("webcrypto RS256 check failed, using the Rust path: {e:?}");
            in_rust()
        }
    }
}
