//! Answers and bodies: error answers as runtime responses, JSON answers, and capped body reads.

use crate::error::ApiError;
use crate::input::MAX_BODY_BYTES;
use worker::{Headers, Request, Response};

/// The response for an error (see [`ApiError::answer`]); a server fault's detail goes to the log.
pub fn error(error: &ApiError, realm: &str) -> worker::Result<Response> {
    let answer = error.answer(realm);
    if let Some(line) = &answer.log {
        worker::console_error!("{line}");
    }
    let headers = Headers::new();
    for (name, value) in &answer.headers {
        let _ = headers.set(name, value);
    }
    Ok(Response::from_bytes(answer.body.into_bytes())?.with_status(answer.status).with_headers(headers))
}

/// A JSON answer with a status and a `Cache-Control`.
pub fn json(value: &serde_json::Value, status: u16, cache: &str) -> Result<Response, ApiError> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", cache)?;
    Ok(Response::from_bytes(value.to_string().into_bytes())?.with_status(status).with_headers(headers))
}

/// Why a capped read of a body stopped.
pub enum ReadError {
    /// The body is longer than the cap (the rest is not read).
    TooLarge,
    /// The stream failed.
    Stream(worker::Error),
}

/// Reads a body stream whole, stopping as soon as it is longer than `max` bytes.
pub async fn read_capped(mut stream: worker::ByteStream, max: usize) -> Result<Vec<u8>, ReadError> {
    use futures_util::StreamExt;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ReadError::Stream)?;
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads a request body, stopping at [`MAX_BODY_BYTES`] without reading the rest (413).
pub async fn read_body(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    let declared = req.headers().get("content-length")?.and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    read_capped(req.stream()?, MAX_BODY_BYTES).await.map_err(|e| match e {
        ReadError::TooLarge => ApiError::PayloadTooLarge,
        ReadError::Stream(e) => ApiError::InvalidRequest(format!("body could not be read: {e}")),
    })
}
