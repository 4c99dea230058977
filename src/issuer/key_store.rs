//! The `KeyStore` Durable Object of managed mode (`KEY_MANAGEMENT=managed`): one per deployment, it
//! generates signing keys, publishes each ahead of use, rotates and retires them on the schedule of
//! [`crate::rotation`], driven by alarms. Thin: it loads the [`KeyRing`], advances it, and writes it
//! back in one SQL statement before answering.
//!
//! It is asked only through its binding, never from a public route: `GET /public` (the published
//! public keys, for the edge) and `GET /signing` (the private keys that sign now or next, for the
//! account objects). Both keep what they get for `MANAGED_KEYS_CACHE_SECONDS`, so the store is asked
//! at most about once a minute per isolate, not once per request.

use super::document::Document;
use crate::config::{Config, ManagedKeys};
use crate::error::ApiError;
use crate::jwt::keys::public_jwk;
use crate::jwt::PrivateKey;
use crate::rotation::KeyRing;
use crate::web::{self, response};
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, State};

/// The managed-keys Durable Object (SQLite storage).
#[durable_object]
pub struct KeyStore {
    state: State,
    env: Env,
}

impl DurableObject for KeyStore {
    fn new(state: State, env: Env) -> Self {
        KeyStore { state, env }
    }

    /// Publishes and retires keys on time, whether or not anyone asks.
    async fn alarm(&self) -> worker::Result<Response> {
        match web::config(&self.env) {
            Ok(config) => {
                if let Some(managed) = config.managed {
                    if let Err(e) = self.advance(&managed, web::now_seconds()).await {
                        worker::console_error!("key store: advancing on the alarm failed: {e:?}");
                    }
                }
            }
            Err(e) => worker::console_error!("key store: {e:?}"),
        }
        Response::empty()
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let config = match web::config(&self.env) {
            Ok(config) => config,
            Err(e) => return response::error(&e, ""),
        };
        match self.answer(&config, &req.path()).await {
            Ok(response) => Ok(response),
            Err(e) => response::error(&e, &config.issuer),
        }
    }
}

impl KeyStore {
    async fn answer(&self, config: &Config, path: &str) -> Result<Response, ApiError> {
        let managed =
            config.managed.ok_or_else(|| ApiError::Server("key store asked, but keys are not managed".into()))?;
        let now = web::now_seconds();
        let ring = self.advance(&managed, now).await?;
        match path {
            "/public" => {
                let keys: Vec<_> = ring.published(now).filter_map(|k| public_jwk(&k.jwk)).collect();
                Ok(Response::from_json(&json!({ "keys": keys }))?)
            }
            "/signing" => {
                let keys: Vec<_> = ring
                    .keys
                    .iter()
                    .filter(|k| k.signs_until > now)
                    .map(|k| json!({ "jwk": k.jwk, "signs_from": k.signs_from, "signs_until": k.signs_until }))
                    .collect();
                Ok(Response::from_json(&json!({ "keys": keys }))?)
            }
            _ => Err(ApiError::NotFound),
        }
    }

    /// The key ring (one statement to load, one to save).
    fn document(&self) -> Document<'_> {
        Document::new(&self.state, "ring")
    }

    /// Advances the ring to `now`, saves it if it changed (one statement), and sets the alarm for
    /// the next change.
    async fn advance(&self, managed: &ManagedKeys, now: i64) -> Result<KeyRing, ApiError> {
        let mut ring: KeyRing = self.document().load()?;
        let before: Vec<String> = ring.keys.iter().map(|k| k.kid.clone()).collect();
        let changed = ring.advance(now, &managed.schedule, || generate(managed))?;
        if changed {
            self.document().save(&ring)?;
            let after: Vec<String> = ring.keys.iter().map(|k| k.kid.clone()).collect();
            for kid in after.iter().filter(|k| !before.contains(k)) {
                worker::console_log!("{}", json!({ "kind": "keys", "event": "key.published", "kid": kid, "at": now }));
            }
            for kid in before.iter().filter(|k| !after.contains(k)) {
                worker::console_log!("{}", json!({ "kind": "keys", "event": "key.retired", "kid": kid, "at": now }));
            }
        }
        if let Some(at) = ring.next_change(&managed.schedule) {
            let wait_ms = (at - now).max(1) * 1000;
            self.state.storage().set_alarm(wait_ms).await?;
        }
        Ok(ring)
    }
}

/// A new private JWK of the configured algorithm, from 32 bytes of the platform's randomness.
fn generate(managed: &ManagedKeys) -> Result<(String, serde_json::Value), ApiError> {
    let mut random = [0u8; 32];
    getrandom::getrandom(&mut random).map_err(|e| ApiError::Server(format!("randomness: {e}")))?;
    let key =
        PrivateKey::generate(managed.alg, &random).map_err(|e| ApiError::Server(format!("key generation: {e}")))?;
    let jwk = key.to_private_jwk().ok_or_else(|| ApiError::Server("key generation: no private JWK".into()))?;
    Ok((key.public().kid().to_owned(), jwk))
}
