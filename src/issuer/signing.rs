//! The issuer's signing keys: the first key of `SIGNING_KEYS`, or with managed keys the one the key
//! store schedules for now (asked at most once per `MANAGED_KEYS_CACHE_SECONDS` per isolate), and
//! the one place an access token is signed.

use crate::config::Config;
use crate::error::{json_error_detail, ApiError};
use crate::jwt::token::assemble;
use crate::jwt::PrivateKey;
use crate::web::remote_keys::ask_key_store;
use crate::web::webcrypto;
use serde::Deserialize;
use std::cell::RefCell;

thread_local! {
    /// The managed signing keys this isolate last got from the key store, and when.
    static SIGNERS: RefCell<Option<(i64, Vec<Signer>)>> = const { RefCell::new(None) };
}

/// The key that signs at `now`: the first configured key, or with managed keys the one the key
/// store schedules for now. If the store cannot be reached, a key already held that covers now
/// still signs.
pub async fn signing_key(config: &Config, env: &worker::Env, now: i64) -> Result<PrivateKey, ApiError> {
    let Some(managed) = &config.managed else {
        return config
            .keys
            .as_ref()
            .and_then(|k| k.signing_key())
            .cloned()
            .ok_or_else(|| ApiError::Server("no signing key is configured".into()));
    };
    let pick =
        |signers: &[Signer]| signers.iter().find(|s| s.signs_from <= now && now < s.signs_until).map(|s| s.key.clone());
    let cached = SIGNERS.with(|c| {
        c.borrow().as_ref().filter(|(at, _)| now - at < managed.cache_seconds).and_then(|(_, signers)| pick(signers))
    });
    if let Some(key) = cached {
        return Ok(key);
    }
    match ask_key_store(env, "/signing").await.and_then(|text| parse_signing(&text).map_err(ApiError::Server)) {
        Ok(signers) => {
            let key = pick(&signers);
            SIGNERS.with(|c| *c.borrow_mut() = Some((now, signers)));
            key.ok_or_else(|| ApiError::Unavailable("the key store has no key for now".into()))
        }
        Err(e) => {
            let held = SIGNERS.with(|c| c.borrow().as_ref().and_then(|(_, signers)| pick(signers)));
            held.ok_or(e)
        }
    }
}

/// Signs access-token claims with `key` (header `{"alg", "typ": "at+jwt", "kid"}` from the key).
pub async fn sign(key: &PrivateKey, claims: &serde_json::Value) -> Result<String, ApiError> {
    let input =
        key.signing_input(&key.access_token_header(), claims).map_err(|e| ApiError::Server(format!("signing: {e}")))?;
    let signature =
        webcrypto::sign(key, input.as_bytes()).await.map_err(|e| ApiError::Server(format!("signing: {e}")))?;
    Ok(assemble(input, &signature))
}

/// One managed key as the account objects get it.
#[derive(Debug, Clone)]
pub struct Signer {
    /// The private key.
    pub key: PrivateKey,
    /// When it starts signing.
    pub signs_from: i64,
    /// When it stops signing.
    pub signs_until: i64,
}

#[derive(Deserialize)]
struct SigningEntry {
    jwk: serde_json::Value,
    signs_from: i64,
    signs_until: i64,
}

#[derive(Deserialize)]
struct SigningAnswer {
    keys: Vec<SigningEntry>,
}

/// Parses the store's `/signing` answer, each key checked like a configured one.
pub fn parse_signing(text: &str) -> Result<Vec<Signer>, String> {
    let answer: SigningAnswer =
        serde_json::from_str(text).map_err(|e| format!("signing keys: {}", json_error_detail(&e)))?;
    answer
        .keys
        .into_iter()
        .map(|entry| {
            let jwk = entry.jwk.as_object().ok_or_else(|| "signing key: not an object".to_owned())?;
            let key = PrivateKey::from_jwk(jwk).map_err(|e| e.to_string())?;
            Ok(Signer { key, signs_from: entry.signs_from, signs_until: entry.signs_until })
        })
        .collect()
}
