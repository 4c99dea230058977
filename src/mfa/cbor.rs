//! A strict decoder for the CBOR subset WebAuthn uses (RFC 8949): integers, byte and text strings,
//! arrays, maps, booleans and null, with bounded depth and sizes and no panics on any input.
//!
//! Refused, as CTAP2's canonical form (which authenticators must use) never needs them: indefinite
//! lengths, tags, floats and other simple values, map keys other than integers and text, and
//! duplicate map keys (RFC 8949 §5.6: a map with duplicate keys is not valid for most protocols, and
//! two parsers picking different duplicates is a classic confusion attack). Integer encodings that
//! are longer than needed are accepted; keys are compared by value, so they cannot hide duplicates.

use std::fmt;

/// The deepest nesting accepted (an attestation object needs three levels).
pub const MAX_DEPTH: usize = 16;
/// The most elements in one array or entries in one map.
pub const MAX_ITEMS: usize = 256;

/// A decoded CBOR data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An unsigned (major type 0) or negative (major type 1) integer.
    Integer(i128),
    /// A byte string (major type 2).
    Bytes(Vec<u8>),
    /// A UTF-8 text string (major type 3).
    Text(String),
    /// An array (major type 4).
    Array(Vec<Value>),
    /// A map (major type 5), entries in encoded order, keys unique.
    Map(Vec<(Value, Value)>),
    /// `false` or `true` (simple values 20 and 21).
    Bool(bool),
    /// `null` (simple value 22).
    Null,
}

/// Why bytes were refused as CBOR. Always the sender's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CborError {
    /// The input ends inside an item.
    Truncated,
    /// Bytes follow the item where none may.
    TrailingBytes,
    /// A feature outside the subset: indefinite length, tag, float, other simple value, a map key
    /// that is neither integer nor text, or a reserved additional-information value.
    Unsupported(&'static str),
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// An array or map with more than [`MAX_ITEMS`] elements.
    TooMany,
    /// A map holds the same key twice.
    DuplicateKey,
    /// A text string is not UTF-8.
    InvalidUtf8,
}

impl fmt::Display for CborError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CborError::Truncated => write!(f, "CBOR input ends inside an item"),
            CborError::TrailingBytes => write!(f, "bytes follow the CBOR item"),
            CborError::Unsupported(what) => write!(f, "unsupported CBOR: {what}"),
            CborError::TooDeep => write!(f, "CBOR nested deeper than {MAX_DEPTH}"),
            CborError::TooMany => write!(f, "CBOR container with too many items"),
            CborError::DuplicateKey => write!(f, "CBOR map with a duplicate key"),
            CborError::InvalidUtf8 => write!(f, "CBOR text string is not UTF-8"),
        }
    }
}

impl std::error::Error for CborError {}

/// Decodes exactly one item that spans all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let (value, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(CborError::TrailingBytes);
    }
    Ok(value)
}

/// Decodes the one item at the start of `bytes` and says how many bytes it took; what follows is
/// the caller's (authenticator data puts extensions after the credential key).
pub fn decode_prefix(bytes: &[u8]) -> Result<(Value, usize), CborError> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.item(0)?;
    Ok((value, reader.pos))
}

impl Value {
    /// The value of an integer key in a map (COSE labels).
    pub fn get_int(&self, key: i128) -> Option<&Value> {
        self.get(&Value::Integer(key))
    }

    /// The value of a text key in a map.
    pub fn get_text(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => {
                entries.iter().find(|(k, _)| matches!(k, Value::Text(t) if t == key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    fn get(&self, key: &Value) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Integer(n) => Some(*n),
            _ => None,
        }
    }

    /// The bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The text, if this is a text string.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The entries, if this is a map.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        let end = self.pos.checked_add(n).ok_or(CborError::Truncated)?;
        let slice = self.bytes.get(self.pos..end).ok_or(CborError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The argument of a head whose low five bits are `info` (RFC 8949 §3).
    fn argument(&mut self, info: u8) -> Result<u64, CborError> {
        let width = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return Err(CborError::Unsupported("indefinite length")),
            _ => return Err(CborError::Unsupported("reserved additional information")),
        };
        let raw = self.take(width)?;
        Ok(raw.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A string length, which must fit in what is left of the input.
    fn string_length(&mut self, info: u8) -> Result<usize, CborError> {
        let n = usize::try_from(self.argument(info)?).map_err(|_| CborError::Truncated)?;
        if n > self.remaining() {
            return Err(CborError::Truncated);
        }
        Ok(n)
    }

    /// An element count, at most [`MAX_ITEMS`] (so allocating for it is cheap).
    fn count(&mut self, info: u8) -> Result<usize, CborError> {
        match usize::try_from(self.argument(info)?) {
            Ok(n) if n <= MAX_ITEMS => Ok(n),
            _ => Err(CborError::TooMany),
        }
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let head = *self.take(1)?.first().ok_or(CborError::Truncated)?;
        let (major, info) = (head >> 5, head & 0x1f);
        match major {
            0 => Ok(Value::Integer(i128::from(self.argument(info)?))),
            1 => Ok(Value::Integer(-1 - i128::from(self.argument(info)?))),
            2 => {
                let n = self.string_length(info)?;
                Ok(Value::Bytes(self.take(n)?.to_vec()))
            }
            3 => {
                let n = self.string_length(info)?;
                let text = std::str::from_utf8(self.take(n)?).map_err(|_| CborError::InvalidUtf8)?;
                Ok(Value::Text(text.to_owned()))
            }
            4 => {
                let n = self.count(info)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            5 => {
                let n = self.count(info)?;
                let mut entries: Vec<(Value, Value)> = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.item(depth + 1)?;
                    if !matches!(key, Value::Integer(_) | Value::Text(_)) {
                        return Err(CborError::Unsupported("map key that is neither integer nor text"));
                    }
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(CborError::DuplicateKey);
                    }
                    let value = self.item(depth + 1)?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
            6 => Err(CborError::Unsupported("tag")),
            _ => match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                25..=27 => Err(CborError::Unsupported("float")),
                31 => Err(CborError::Unsupported("break outside an indefinite item")),
                _ => Err(CborError::Unsupported("simple value")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn rfc8949_appendix_a_examples_in_the_subset() {
        // RFC 8949 Appendix A, "Examples of Encoded CBOR Data Items".
        let cases: Vec<(&str, Value)> = vec![
            ("00", Value::Integer(0)),
            ("17", Value::Integer(23)),
            ("1818", Value::Integer(24)),
            ("1903e8", Value::Integer(1000)),
            ("1b000000e8d4a51000", Value::Integer(1_000_000_000_000)),
            ("1bffffffffffffffff", Value::Integer(18_446_744_073_709_551_615)),
            ("3bffffffffffffffff", Value::Integer(-18_446_744_073_709_551_616)),
            ("20", Value::Integer(-1)),
            ("3903e7", Value::Integer(-1000)),
            ("f4", Value::Bool(false)),
            ("f5", Value::Bool(true)),
            ("f6", Value::Null),
            ("40", Value::Bytes(vec![])),
            ("4401020304", Value::Bytes(vec![1, 2, 3, 4])),
            ("6449455446", Value::Text("IETF".into())),
            ("62c3bc", Value::Text("\u{fc}".into())),
            ("83010203", Value::Array(vec![Value::Integer(1), Value::Integer(2), Value::Integer(3)])),
            (
                "a201020304",
                Value::Map(vec![(Value::Integer(1), Value::Integer(2)), (Value::Integer(3), Value::Integer(4))]),
            ),
            (
                "a26161016162820203",
                Value::Map(vec![
                    (Value::Text("a".into()), Value::Integer(1)),
                    (Value::Text("b".into()), Value::Array(vec![Value::Integer(2), Value::Integer(3)])),
                ]),
            ),
        ];
        for (encoded, want) in cases {
            assert_eq!(decode(&hex(encoded)), Ok(want), "{encoded}");
        }
    }

    #[test]
    fn outside_the_subset_is_refused() {
        // RFC 8949 Appendix A items this decoder does not take.
        for (encoded, why) in [
            ("f90000", "half float"),
            ("fa47c35000", "single float"),
            ("fb3ff199999999999a", "double float"),
            ("f7", "undefined"),
            ("f0", "simple(16)"),
            ("c074323031332d30332d32315432303a30343a30305a", "tag 0"),
            ("5f42010243030405ff", "indefinite bytes"),
            ("9fff", "indefinite array"),
            ("bf6346756ef563416d7421ff", "indefinite map"),
            ("1c", "reserved info 28"),
            ("ff", "lone break"),
            ("a1f401", "boolean map key"),
            ("a14101f6", "byte-string map key"),
        ] {
            assert!(matches!(decode(&hex(encoded)), Err(CborError::Unsupported(_))), "{why}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_even_when_encoded_differently() {
        assert_eq!(decode(&hex("a201020103")), Err(CborError::DuplicateKey));
        assert_eq!(decode(&hex("a2616101616102")), Err(CborError::DuplicateKey));
        // 1 and 1 written in two bytes are the same key.
        assert_eq!(decode(&hex("a20102180103")), Err(CborError::DuplicateKey));
        // -1 and "1" and 1 are three different keys.
        assert!(decode(&hex("a32001613101010f")).is_ok());
    }

    #[test]
    fn truncation_trailing_bytes_and_bad_utf8() {
        assert_eq!(decode(&[]), Err(CborError::Truncated));
        assert_eq!(decode(&hex("19e8")), Err(CborError::Truncated));
        assert_eq!(decode(&hex("44010203")), Err(CborError::Truncated));
        assert_eq!(decode(&hex("5bffffffffffffffff00")), Err(CborError::Truncated));
        assert_eq!(decode(&hex("0000")), Err(CborError::TrailingBytes));
        assert_eq!(decode_prefix(&hex("0000")), Ok((Value::Integer(0), 1)));
        assert_eq!(decode(&hex("62c328")), Err(CborError::InvalidUtf8));
    }

    #[test]
    fn sizes_and_depth_are_bounded() {
        // An array claiming 2^32 elements with four bytes of input is refused before allocating.
        assert_eq!(decode(&hex("9affffffff00000000")), Err(CborError::TooMany));
        assert_eq!(decode(&hex("bb7fffffffffffffff")), Err(CborError::TooMany));
        let mut many = vec![0x99, 0x01, 0x01]; // an array of 257 zeros
        many.extend(std::iter::repeat_n(0, 257));
        assert_eq!(decode(&many), Err(CborError::TooMany));
        let mut fine = vec![0x99, 0x01, 0x00];
        fine.extend(std::iter::repeat_n(0, 256));
        assert!(decode(&fine).is_ok());
        let mut deep = vec![0x81; MAX_DEPTH + 1];
        deep.push(0);
        assert_eq!(decode(&deep), Err(CborError::TooDeep));
        deep.remove(0);
        assert!(decode(&deep).is_ok());
    }

    #[test]
    fn no_input_panics() {
        // A cheap sweep: every prefix of a few valid items and every single-byte change to them.
        let seeds = ["a363666d74646e6f6e656761747453746d74a0686175746844617461430102ff", "a26161016162820203"];
        for seed in seeds {
            let bytes = hex(seed);
            for end in 0..=bytes.len() {
                let _ = decode(&bytes[..end]);
            }
            for i in 0..bytes.len() {
                for b in [0x00, 0x1f, 0x5b, 0x7b, 0x9b, 0xbb, 0xff] {
                    let mut changed = bytes.clone();
                    changed[i] = b;
                    let _ = decode(&changed);
                }
            }
        }
    }
}
