//! Strict JSON for JOSE headers and claims: objects only, and no member name twice (RFC 7515 §5.2, RFC 7519 §7.2).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Why a JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// The bytes are not UTF-8 JSON, or have trailing data.
    Syntax,
    /// Some object, at any depth, names a member twice (after unescaping).
    DuplicateName,
    /// The top-level value is not an object.
    NotAnObject,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonError::Syntax => "not valid JSON",
            JsonError::DuplicateName => "duplicate member name",
            JsonError::NotAnObject => "not a JSON object",
        })
    }
}

const DUPLICATE: &str = "gatehouse: duplicate member name";

/// A JSON value whose objects were checked for duplicate names while parsing.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut object = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if object.contains_key(&name) {
                return Err(de::Error::custom(DUPLICATE));
            }
            let Strict(value) = map.next_value()?;
            object.insert(name, value);
        }
        Ok(Strict(Value::Object(object)))
    }
}

/// Parses a JSON text that must be an object, refusing duplicate names at every depth.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(object))) => Ok(object),
        Ok(_) => Err(JsonError::NotAnObject),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(JsonError::DuplicateName),
        Err(_) => Err(JsonError::Syntax),
    }
}

/// Parses a JSON text of any shape, refusing duplicate member names at every depth; the error
/// says why (for bad syntax, serde_json's words with the line and column).
pub fn parse_value(text: &str) -> Result<Value, String> {
    serde_json::from_str::<Strict>(text).map(|Strict(value)| value).map_err(|e| {
        let why = e.to_string();
        // serde_json adds the place to a custom error: " at line … column …".
        why.strip_prefix(DUPLICATE).map(|place| format!("{}{place}", JsonError::DuplicateName)).unwrap_or(why)
    })
}

/// The members of one JSON object, taken by name and type: a configuration entry's reader (one
/// plain function per type, where a `Deserialize` derive writes a visitor per struct). A `null`
/// member counts as absent; whatever [`Members::finish`] finds not taken is refused, as
/// `deny_unknown_fields` would.
pub struct Members(Map<String, Value>);

impl Members {
    /// The members of `value`, which must be an object (`what` names it in the error).
    pub fn of(value: Value, what: &str) -> Result<Members, String> {
        match value {
            Value::Object(object) => Ok(Members(object)),
            _ => Err(format!("{what} is not a JSON object")),
        }
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name).filter(|value| !value.is_null())
    }

    /// An optional string member.
    pub fn string(&mut self, name: &str) -> Result<Option<String>, String> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(format!("{name:?} must be a string")),
        }
    }

    /// A string member that must be there.
    pub fn required_string(&mut self, name: &str) -> Result<String, String> {
        self.string(name)?.ok_or_else(|| format!("{name:?} is missing"))
    }

    /// An optional list of strings.
    pub fn strings(&mut self, name: &str) -> Result<Option<Vec<String>>, String> {
        let wrong = || format!("{name:?} must be a list of strings");
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text),
                    _ => Err(wrong()),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(wrong()),
        }
    }

    /// An optional boolean.
    pub fn bool(&mut self, name: &str) -> Result<Option<bool>, String> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(format!("{name:?} must be true or false")),
        }
    }

    /// An optional integer (a fraction or a number beyond `i64` is refused).
    pub fn integer(&mut self, name: &str) -> Result<Option<i64>, String> {
        match self.take(name) {
            None => Ok(None),
            Some(value) => value.as_i64().map(Some).ok_or_else(|| format!("{name:?} must be an integer")),
        }
    }

    /// Refuses the members not taken.
    pub fn finish(self) -> Result<(), String> {
        match self.0.keys().next() {
            Some(name) => Err(format!("unknown member {name:?}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_taken_by_type_and_the_rest_refused() {
        let value = parse_value(r#"{"a":"x","b":["y","z"],"c":true,"d":-5,"e":null}"#).unwrap();
        let mut m = Members::of(value, "it").unwrap();
        assert_eq!(m.required_string("a"), Ok("x".into()));
        assert_eq!(m.strings("b"), Ok(Some(vec!["y".into(), "z".into()])));
        assert_eq!(m.bool("c"), Ok(Some(true)));
        assert_eq!(m.integer("d"), Ok(Some(-5)));
        assert_eq!(m.string("e"), Ok(None), "null is absent");
        assert_eq!(m.string("f"), Ok(None));
        assert_eq!(m.finish(), Ok(()));

        let value = parse_value(r#"{"a":1,"b":["y",2],"c":"true","d":1.5,"x":0}"#).unwrap();
        let mut m = Members::of(value, "it").unwrap();
        assert!(m.string("a").is_err());
        assert!(m.strings("b").is_err());
        assert!(m.bool("c").is_err());
        assert!(m.integer("d").is_err());
        assert!(m.required_string("e").is_err());
        assert_eq!(m.finish(), Err("unknown member \"x\"".into()));
        assert!(Members::of(Value::Array(vec![]), "it").is_err());
    }

    #[test]
    fn values_refuse_duplicate_names_with_the_place() {
        let e = parse_value(r#"[{"a":1},{"b":{"c":1,"c":2}}]"#).unwrap_err();
        assert!(e.starts_with("duplicate member name at line 1"), "{e}");
        assert!(parse_value("[1,").unwrap_err().contains("line 1"));
        assert_eq!(parse_value(r#"{"a":[1,"x"]}"#).unwrap()["a"][1], "x");
    }

    #[test]
    fn accepts_plain_objects() {
        let o = parse_object(br#"{"a":1,"b":[1,{"c":null}],"d":"x"}"#).unwrap();
        assert_eq!(o.len(), 3);
    }

    #[test]
    fn refuses_duplicates_at_any_depth_and_after_unescaping() {
        assert_eq!(parse_object(br#"{"a":1,"a":2}"#), Err(JsonError::DuplicateName));
        assert_eq!(parse_object(br#"{"x":{"a":1,"a":1}}"#), Err(JsonError::DuplicateName));
        assert_eq!(parse_object(br#"{"x":[{"a":1,"a":1}]}"#), Err(JsonError::DuplicateName));
        assert_eq!(parse_object(br#"{"alg":1,"\u0061lg":2}"#), Err(JsonError::DuplicateName));
    }

    #[test]
    fn refuses_non_objects_and_junk() {
        assert_eq!(parse_object(b"[]"), Err(JsonError::NotAnObject));
        assert_eq!(parse_object(b"\"a\""), Err(JsonError::NotAnObject));
        assert_eq!(parse_object(b"{} x"), Err(JsonError::Syntax));
        assert_eq!(parse_object(b"{"), Err(JsonError::Syntax));
        assert_eq!(parse_object(b"\xff"), Err(JsonError::Syntax));
    }
}
