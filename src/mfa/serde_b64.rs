//! Serde helpers for byte fields stored as unpadded base64url text (`#[serde(with = "serde_b64")]`).

use crate::jwt::b64;
use serde::{Deserialize, Deserializer, Serializer};

/// Writes the bytes as unpadded base64url.
pub fn serialize<S: Serializer, T: AsRef<[u8]>>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&b64::encode(value))
}

/// Reads strict unpadded base64url into a `Vec<u8>` or a fixed-size array (wrong length is an error).
pub fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<Vec<u8>>>(deserializer: D) -> Result<T, D::Error> {
    let text = String::deserialize(deserializer)?;
    let bytes = b64::decode(&text).map_err(|_| serde::de::Error::custom("not unpadded base64url"))?;
    T::try_from(bytes).map_err(|_| serde::de::Error::custom("wrong number of bytes"))
}
