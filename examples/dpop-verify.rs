//! Checks DPoP proofs with gatehouse's verifier, for cross-implementation tests and manual use: reads
//! one JSON request a line on stdin and prints one JSON verdict a line.
//!
//! Request: `{"proof", "method", "url", "access_token"?, "now", "cnf_jkt"?, "nonce_secret"?,
//! "nonce_max_age"?, "remember"?}`; with `nonce_secret` (base64url, ≥ 32 bytes) a stateless nonce is
//! required; with `cnf_jkt` the proof's key must be that one; with `remember: true` the proof goes
//! through one replay memory shared by all lines. `{"issue_nonce": {"nonce_secret", "now"}}` prints
//! `{"nonce"}`. Verdict: `{"ok": true, "jkt", "jti", "iat", "alg", "htu"}` or `{"ok": false, "error"
//! (the variant), "code" (RFC 9449), "description"}`.

use gatehouse::jwt::b64;
use gatehouse::jwt::dpop::{
    check_presentation, issue_nonce, verify_proof, AuthScheme, JtiReplayCache, NonceKey, NonceRule, ProofError,
    ProofPolicy, ProofRequest, VerifiedProof,
};
use serde_json::{json, Value};
use std::io::BufRead as _;

fn refusal(error: &ProofError) -> Value {
    json!({ "ok": false, "error": format!("{error:?}"), "code": error.code().as_str(), "description": error.to_string() })
}

fn nonce_key(secret: Option<&str>) -> Result<Option<NonceKey>, String> {
    let Some(secret) = secret else { return Ok(None) };
    let bytes = b64::decode(secret).map_err(|_| "nonce_secret is not base64url")?;
    NonceKey::new(&bytes).map(Some).map_err(|e| e.to_string())
}

fn check(line: &Value, cache: &mut JtiReplayCache) -> Result<Value, String> {
    let text = |name: &str| line.get(name).and_then(Value::as_str);
    if let Some(issue) = line.get("issue_nonce") {
        let key = nonce_key(issue.get("nonce_secret").and_then(Value::as_str))?.ok_or("nonce_secret is required")?;
        let now = issue.get("now").and_then(Value::as_i64).ok_or("now is required")?;
        return Ok(json!({ "nonce": issue_nonce(&key, now) }));
    }
    let now = line.get("now").and_then(Value::as_i64).ok_or("now is required")?;
    let key = nonce_key(text("nonce_secret"))?;
    let nonce = match &key {
        Some(key) => {
            NonceRule::Stateless { key, max_age: line.get("nonce_max_age").and_then(Value::as_i64).unwrap_or(300) }
        }
        None => NonceRule::NotRequired,
    };
    let request = ProofRequest {
        method: text("method").ok_or("method is required")?,
        url: text("url").ok_or("url is required")?,
        access_token: text("access_token"),
        nonce,
    };
    let verdict =
        verify_proof(text("proof").unwrap_or_default(), &ProofPolicy::default(), &request, now).and_then(|proof| {
            if line.get("remember").and_then(Value::as_bool) == Some(true) {
                cache.check_and_remember(&proof, now)?;
            }
            if let Some(jkt) = text("cnf_jkt") {
                check_presentation(AuthScheme::Dpop, Some(jkt), Some(&proof))?;
            }
            Ok(proof)
        });
    Ok(match verdict {
        Ok(proof) => accepted(&proof),
        Err(e) => refusal(&e),
    })
}

fn accepted(proof: &VerifiedProof) -> Value {
    json!({
        "ok": true, "jkt": proof.jkt(), "jti": proof.jti(), "iat": proof.iat(),
        "alg": proof.alg().name(), "htu": proof.htu(),
    })
}

fn main() {
    let mut cache = JtiReplayCache::default();
    for line in std::io::stdin().lock().lines() {
        let out = match line
            .map_err(|e| e.to_string())
            .and_then(|l| serde_json::from_str::<Value>(&l).map_err(|e| e.to_string()))
        {
            Ok(request) => check(&request, &mut cache)
                .unwrap_or_else(|e| json!({ "ok": false, "error": "Usage", "description": e })),
            Err(e) => json!({ "ok": false, "error": "Usage", "description": e }),
        };
        println!("{out}");
    }
}
