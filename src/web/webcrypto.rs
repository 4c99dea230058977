//! RS256 and ES256 signature checks (and RS256 signing, and ES256 signing where `p256` is not linked)
//! through the runtime's WebCrypto (`crypto.subtle`, BoringSSL in
//! workerd), about 10× faster than the pure-Rust `rsa` and `p256` crates compiled to wasm. Only the
//! signature primitive moves: every structural, key-pinning and claim check stays in Rust
//! (`jwt::token`), and the pure path remains the reference used by the native tests and vectors.
//!
//! The same public vectors run through both: Wycheproof's RSA PKCS#1 v1.5 SHA-256 (2048, 3072 and
//! 4096 bits) and ECDSA P-256 SHA-256 (P1363) files go through [`verify_signature`] inside workerd
//! (`tests/e2e/webcrypto-vectors.test.mjs`, through [`verify_for_test`]) and through the Rust
//! primitive natively (`tests/vectors.rs`), with the same expected verdicts.

use crate::jwt::keys::verify_signature_bytes;
use crate::jwt::{Algorithm, KeySet, PrivateKey, PublicKey, SignError};
use js_sys::{Array, Object, Promise, Reflect};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Crypto, CryptoKey, SubtleCrypto};

thread_local! {
    /// Imported keys by their public JWK text, once per isolate: a `kid` that comes back with new
    /// material (a remote issuer's rotation) is a new entry, never a stale hit.
    static IMPORTED: RefCell<HashMap<String, CryptoKey>> = RefCell::new(HashMap::new());
    /// RS256 and ES256 verdicts given by WebCrypto, and by the Rust path because WebCrypto failed.
    static DECIDED: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    /// DPoP proof keys (one per client, RFC 9449) imported for verification: a cache of their
    /// own, so that a stream of new clients never pushes the configured and trusted issuers' keys
    /// out of `IMPORTED` (each cache starts over when full, and only its own keys are re-imported).
    static PROOF_KEYS: RefCell<HashMap<String, CryptoKey>> = RefCell::new(HashMap::new());
}

/// Which per-isolate cache an imported public key goes to.
#[derive(Clone, Copy)]
enum KeyCache {
    /// Configured, managed and trusted issuers' keys ([`MAX_IMPORTED`]).
    Issuers,
    /// Clients' DPoP proof keys ([`MAX_PROOF_KEYS`]).
    Proofs,
}

/// Proof keys kept at most; beyond it that cache starts over.
const MAX_PROOF_KEYS: usize = 1024;

impl KeyCache {
    fn with<R>(self, f: impl FnOnce(&mut HashMap<String, CryptoKey>, usize) -> R) -> R {
        match self {
            KeyCache::Issuers => IMPORTED.with(|k| f(&mut k.borrow_mut(), MAX_IMPORTED)),
            KeyCache::Proofs => PROOF_KEYS.with(|k| f(&mut k.borrow_mut(), MAX_PROOF_KEYS)),
        }
    }
}

fn count(by_webcrypto: bool) {
    DECIDED.with(|d| {
        let (web, rust) = d.get();
        d.set(if by_webcrypto { (web.wrapping_add(1), rust) } else { (web, rust.wrapping_add(1)) });
    });
}

/// Imported keys kept at most; beyond it the map starts over (keys are re-imported on demand).
const MAX_IMPORTED: usize = 256;

/// Keeps a value in one of this module's per-isolate maps of at most `max` entries: a full map
/// starts over.
fn keep<V>(map: &mut HashMap<String, V>, max: usize, key: &str, value: V) {
    if map.len() >= max {
        map.clear();
    }
    map.insert(key.to_owned(), value);
}

/// The WebCrypto algorithm for importing and for verifying, or `None` where Rust does it.
fn algorithm(alg: Algorithm) -> Result<Option<(Object, Object)>, JsValue> {
    let (import, verify) = (Object::new(), Object::new());
    match alg {
        Algorithm::Rs256 => {
            Reflect::set(&import, &"name".into(), &"RSASSA-PKCS1-v1_5".into())?;
            Reflect::set(&import, &"hash".into(), &"SHA-256".into())?;
            Reflect::set(&verify, &"name".into(), &"RSASSA-PKCS1-v1_5".into())?;
        }
        Algorithm::Es256 => {
            Reflect::set(&import, &"name".into(), &"ECDSA".into())?;
            Reflect::set(&import, &"namedCurve".into(), &"P-256".into())?;
            Reflect::set(&verify, &"name".into(), &"ECDSA".into())?;
            Reflect::set(&verify, &"hash".into(), &"SHA-256".into())?;
        }
        Algorithm::EdDsa => return Ok(None),
    }
    Ok(Some((import, verify)))
}

fn subtle() -> Result<SubtleCrypto, JsValue> {
    let crypto: Crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))?.dyn_into()?;
    Ok(crypto.subtle())
}

async fn import(
    subtle: &SubtleCrypto,
    key: &PublicKey,
    import_alg: &Object,
    cache: KeyCache,
) -> Result<CryptoKey, JsValue> {
    let jwk_text = key.jwk_text();
    if let Some(cached) = cache.with(|map, _| map.get(jwk_text).cloned()) {
        return Ok(cached);
    }
    let jwk: Object = js_sys::JSON::parse(jwk_text)?.dyn_into()?;
    let usages = Array::of1(&"verify".into());
    let promise = subtle.import_key_with_object("jwk", &jwk, import_alg, false, &usages)?;
    let imported: CryptoKey = JsFuture::from(promise).await?.dyn_into()?;
    cache.with(|map, max| keep(map, max, jwk_text, imported.clone()));
    Ok(imported)
}

async fn verify_webcrypto(
    key: &PublicKey,
    (import_alg, verify_alg): (Object, Object),
    message: &[u8],
    signature: &[u8],
    cache: KeyCache,
) -> Result<bool, JsValue> {
    let subtle = subtle()?;
    let imported = import(&subtle, key, &import_alg, cache).await?;
    let promise: Promise =
        subtle.verify_with_object_and_u8_array_and_u8_array(&verify_alg, &imported, signature, message)?;
    Ok(JsFuture::from(promise).await?.as_bool().unwrap_or(false))
}

/// Whether a signature has a length WebCrypto may be asked about: an ES256 signature is exactly 64
/// bytes (`r || s`, RFC 7518 §3.4), checked here so that WebCrypto never decides which encoding is
/// acceptable.
pub fn length_acceptable(alg: Algorithm, signature: &[u8]) -> bool {
    alg != Algorithm::Es256 || signature.len() == 64
}

thread_local! {
    /// The fast path's key objects by public JWK text ([`key_object`]), at most [`MAX_IMPORTED`].
    static KEY_OBJECTS: RefCell<HashMap<String, JsValue>> = RefCell::new(HashMap::new());
}

/// A key WebCrypto checks, for the thin entry's fast path, which calls `crypto.subtle` itself: one
/// object `{jwk, importAlgorithm, verifyAlgorithm}` per key (its public JWK text, and the WebCrypto
/// algorithm objects of its algorithm), made once, so that the entry keeps the imported key by the
/// object and nothing is rebuilt per request. `None` for a key WebCrypto does not check here (EdDSA).
pub fn key_object(key: &PublicKey) -> Option<JsValue> {
    let jwk = key.jwk_text();
    if let Some(object) = KEY_OBJECTS.with(|k| k.borrow().get(jwk).cloned()) {
        return Some(object);
    }
    let (import, verify) = algorithm(key.alg()).ok().flatten()?;
    let object = Object::new();
    Reflect::set(&object, &"jwk".into(), &jwk.into()).ok()?;
    Reflect::set(&object, &"importAlgorithm".into(), &import).ok()?;
    Reflect::set(&object, &"verifyAlgorithm".into(), &verify).ok()?;
    let object: JsValue = object.into();
    KEY_OBJECTS.with(|k| keep(&mut k.borrow_mut(), MAX_IMPORTED, jwk, object.clone()));
    Some(object)
}

/// Checks a token's signature: RS256 and ES256 through WebCrypto, EdDSA in Rust. If WebCrypto
/// itself fails (as opposed to answering "invalid"), the pure-Rust primitive decides, so the verdict
/// never depends on the platform being available. The length of an ES256 signature is checked in
/// Rust first: WebCrypto must never be the one to decide which encoding is acceptable.
pub async fn verify_signature(
    key: &PublicKey,
    message: &[u8],
    signature: &[u8],
    in_rust: impl FnOnce() -> bool,
) -> bool {
    verify_with(key, message, signature, in_rust, KeyCache::Issuers).await
}

/// [`verify_signature`] for a DPoP proof (RFC 9449 §4.3): the same decision (ES256 through
/// WebCrypto, EdDSA in Rust), with the client's key kept in the proof-key cache.
pub async fn verify_proof_signature(
    key: &PublicKey,
    message: &[u8],
    signature: &[u8],
    in_rust: impl FnOnce() -> bool,
) -> bool {
    verify_with(key, message, signature, in_rust, KeyCache::Proofs).await
}

async fn verify_with(
    key: &PublicKey,
    message: &[u8],
    signature: &[u8],
    in_rust: impl FnOnce() -> bool,
    cache: KeyCache,
) -> bool {
    if !cfg!(target_arch = "wasm32") {
        return in_rust();
    }
    if !length_acceptable(key.alg(), signature) {
        return false;
    }
    let algorithms = match algorithm(key.alg()) {
        Ok(Some(algorithms)) => algorithms,
        Ok(None) => return in_rust(),
        Err(e) => {
            worker::console_error!("webcrypto algorithm object failed, using the Rust path: {e:?}");
            count(false);
            return in_rust();
        }
    };
    match verify_webcrypto(key, algorithms, message, signature, cache).await {
        Ok(valid) => {
            count(true);
            valid
        }
        Err(e) => {
            worker::console_error!("webcrypto {} check failed, using the Rust path: {e:?}", key.alg().name());
            count(false);
            in_rust()
        }
    }
}

thread_local! {
    /// Private keys imported for signing, by the public JWK text of their key, once per isolate
    /// (each checked once by signing and verifying a test message).
    static SIGNING: RefCell<HashMap<String, CryptoKey>> = RefCell::new(HashMap::new());
}

/// PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2) of a password, 32 bytes, by the runtime's WebCrypto
/// (`deriveBits`): the password hash of the Free plan's fallback (`PASSWORD_HASH=pbkdf2`).
/// `password::pbkdf2_sha256` is the same function in Rust, for the native tests.
pub async fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Result<[u8; 32], String> {
    let derive = async {
        let subtle = subtle()?;
        let name: JsValue = "PBKDF2".into();
        let import_alg = Object::new();
        Reflect::set(&import_alg, &"name".into(), &name)?;
        let key_data = js_sys::Uint8Array::from(password);
        let usages = Array::of1(&"deriveBits".into());
        let promise = subtle.import_key_with_object("raw", &key_data, &import_alg, false, &usages)?;
        let key: CryptoKey = JsFuture::from(promise).await?.dyn_into()?;
        let params = Object::new();
        Reflect::set(&params, &"name".into(), &name)?;
        Reflect::set(&params, &"hash".into(), &"SHA-256".into())?;
        Reflect::set(&params, &"salt".into(), &js_sys::Uint8Array::from(salt))?;
        Reflect::set(&params, &"iterations".into(), &JsValue::from(iterations))?;
        let bits = JsFuture::from(subtle.derive_bits_with_object(&params, &key, 256)?).await?;
        Ok::<_, JsValue>(js_sys::Uint8Array::new(&bits).to_vec())
    };
    let bytes = derive.await.map_err(|e| format!("webcrypto PBKDF2: {e:?}"))?;
    bytes.try_into().map_err(|_| "webcrypto PBKDF2: not 32 bytes".to_owned())
}

/// The message a newly imported private key signs once, to prove it matches its public key.
const KEY_CHECK_MESSAGE: &[u8] = b"gatehouse: does this private key match its public key?";

/// Signs `message` with `key`: in Rust where this build links the key's primitive (Ed25519 always,
/// ES256 in the issuer), else with WebCrypto (RS256 in every Worker, ES256 in the edge Worker). A key
/// WebCrypto imports is checked first: it must sign a test message that its public key verifies,
/// so a private key whose members do not fit its public key is refused at its first use.
pub async fn sign(key: &PrivateKey, message: &[u8]) -> Result<Vec<u8>, String> {
    match key.sign_bytes(message) {
        Ok(signature) => return Ok(signature),
        Err(SignError::NeedsRuntime) => {}
        Err(e) => return Err(e.to_string()),
    }
    let public = key.public();
    let (import_alg, sign_alg) = match algorithm(public.alg()) {
        Ok(Some(algorithms)) => algorithms,
        Ok(None) => return Err(format!("no WebCrypto signing for {}", public.alg().name())),
        Err(e) => return Err(format!("webcrypto algorithm object: {e:?}")),
    };
    let subtle = subtle().map_err(|e| format!("webcrypto: {e:?}"))?;
    let imported = import_private(&subtle, key, &import_alg, &sign_alg).await?;
    sign_with(&subtle, &sign_alg, &imported, message).await
}

async fn sign_with(
    subtle: &SubtleCrypto,
    sign_alg: &Object,
    key: &CryptoKey,
    message: &[u8],
) -> Result<Vec<u8>, String> {
    let promise =
        subtle.sign_with_object_and_u8_array(sign_alg, key, message).map_err(|e| format!("webcrypto sign: {e:?}"))?;
    let signature = JsFuture::from(promise).await.map_err(|e| format!("webcrypto sign: {e:?}"))?;
    Ok(js_sys::Uint8Array::new(&signature).to_vec())
}

async fn import_private(
    subtle: &SubtleCrypto,
    key: &PrivateKey,
    import_alg: &Object,
    sign_alg: &Object,
) -> Result<CryptoKey, String> {
    let public = key.public();
    let id = public.jwk_text();
    if let Some(cached) = SIGNING.with(|k| k.borrow().get(id).cloned()) {
        return Ok(cached);
    }
    let mut jwk = public.to_jwk();
    if let Some(members) = jwk.as_object_mut() {
        members.remove("use");
        for (name, value) in key.private_members() {
            members.insert(name.into(), serde_json::Value::String(value));
        }
    }
    let jwk: Object = js_sys::JSON::parse(&jwk.to_string())
        .and_then(JsCast::dyn_into)
        .map_err(|_| "webcrypto: the private JWK".to_owned())?;
    let usages = Array::of1(&"sign".into());
    let imported: CryptoKey = async {
        let promise = subtle.import_key_with_object("jwk", &jwk, import_alg, false, &usages)?;
        JsFuture::from(promise).await?.dyn_into()
    }
    .await
    .map_err(|_| format!("key {:?}: WebCrypto refused the private key", public.kid()))?;
    // The check: a signature that the public key (verified by WebCrypto too) accepts.
    let signature = sign_with(subtle, sign_alg, &imported, KEY_CHECK_MESSAGE).await?;
    let verify_alg = sign_alg.clone();
    let public_import = algorithm(public.alg()).ok().flatten().map(|(import, _)| import);
    let matches = match public_import {
        Some(public_import) => {
            verify_webcrypto(public, (public_import, verify_alg), KEY_CHECK_MESSAGE, &signature, KeyCache::Issuers)
                .await
                .unwrap_or(false)
        }
        None => false,
    };
    if !matches {
        return Err(format!("key {:?}: its private members do not match its public key", public.kid()));
    }
    SIGNING.with(|k| keep(&mut k.borrow_mut(), MAX_IMPORTED, id, imported.clone()));
    Ok(imported)
}

/// For the public-vector test only (no route reaches it): loads `jwk` as a trusted issuer's key of
/// algorithm `alg` (the edge's own JWK code), checks `signature` over `message` with
/// [`verify_signature`], and answers as JSON: whether the key loaded (and why not), the verdict,
/// who decided it (`webcrypto`, `length` for the ES256 length rule that runs first, or `rust` if
/// WebCrypto failed and the fallback answered), and the Rust primitive's own verdict beside it.
#[wasm_bindgen(js_name = gatehouseVerifyForTest)]
pub async fn verify_for_test(alg: String, jwk: String, message: Vec<u8>, signature: Vec<u8>) -> String {
    let Some(algorithm) = Algorithm::from_name(&alg).filter(|a| *a != Algorithm::EdDsa) else {
        return json!({ "key": format!("{alg:?} is not checked through WebCrypto") }).to_string();
    };
    let set = match KeySet::from_remote_jwks(&format!("{{\"keys\":[{jwk}]}}"), &[algorithm]) {
        Ok((set, skipped)) if skipped.is_empty() => set,
        Ok((_, skipped)) => {
            return json!({ "key": skipped.iter().map(|e| e.to_string()).collect::<Vec<_>>() }).to_string()
        }
        Err(e) => return json!({ "key": e.to_string() }).to_string(),
    };
    let Some(key) = set.keys().first() else {
        return json!({ "key": "no key" }).to_string();
    };
    // Where this build links no pure-Rust primitive for the algorithm, there is no second opinion
    // here (the native tests run the same files through it).
    let rust =
        crate::jwt::keys::linked_in_rust(algorithm).then(|| verify_signature_bytes(key, &alg, &message, &signature));
    let before = DECIDED.with(Cell::get);
    let valid = verify_signature(key, &message, &signature, || rust.unwrap_or(false)).await;
    let after = DECIDED.with(Cell::get);
    let decided_by = match (after.0.wrapping_sub(before.0), after.1.wrapping_sub(before.1)) {
        (1, 0) => "webcrypto",
        (0, 1) => "rust",
        (0, 0) => "length",
        _ => "unknown",
    };
    json!({ "key": "ok", "valid": valid, "decided_by": decided_by, "rust": rust }).to_string()
}
