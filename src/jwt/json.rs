//! Strict JSON for JOSE headers and claims: objects only, and no member name twice (RFC 7515 §5.2, RFC 7519 §7.2).

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

/// How deep arrays and objects may nest: as serde_json, a 128th level is refused, so a hostile
/// text cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

/// Why the parser stopped, and where (a byte offset).
struct Fault {
    why: Why,
    at: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Syntax(&'static str),
    Duplicate,
}

/// A strict RFC 8259 parser into serde_json's [`Value`]: what serde_json accepts it accepts (and
/// no more: no comments, trailing commas, byte order mark, lone surrogates or control characters in
/// strings), with the same numbers (`u64`, else `i64`, else `f64`; `-0` is `-0.0`), and it refuses
/// a member name given twice in one object. Its own code rather than a `Visitor` on serde_json's
/// deserializer: the edge's wasm then carries no JSON deserializer at all (docs/BENCHMARKS.md).
struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn fail<T>(&self, why: &'static str) -> Result<T, Fault> {
        Err(Fault { why: Why::Syntax(why), at: self.at })
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// The whole text: one value, then nothing but white space.
    fn document(mut self) -> Result<Value, Fault> {
        let value = self.value()?;
        self.skip_space();
        match self.peek() {
            None => Ok(value),
            Some(_) => self.fail("trailing characters"),
        }
    }

    fn value(&mut self) -> Result<Value, Fault> {
        self.skip_space();
        match self.peek() {
            None => self.fail("EOF while parsing a value"),
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => {
                for (word, value) in [("true", Value::Bool(true)), ("false", Value::Bool(false)), ("null", Value::Null)]
                {
                    if self.text[self.at..].starts_with(word.as_bytes()) {
                        self.at += word.len();
                        return Ok(value);
                    }
                }
                self.fail("expected value")
            }
        }
    }

    fn nested(&mut self, inner: fn(&mut Self) -> Result<Value, Fault>) -> Result<Value, Fault> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return self.fail("recursion limit exceeded");
        }
        self.at += 1;
        let value = inner(self)?;
        self.depth -= 1;
        Ok(value)
    }

    /// After `[`: the elements and the `]`.
    fn array(&mut self) -> Result<Value, Fault> {
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                None => return self.fail("EOF while parsing a list"),
                Some(_) => return self.fail("expected `,` or `]`"),
            }
        }
    }

    /// After `{`: the members and the `}`.
    fn object(&mut self) -> Result<Value, Fault> {
        let mut object = Map::new();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(object));
        }
        loop {
            self.skip_space();
            match self.peek() {
                Some(b'"') => {}
                None => return self.fail("EOF while parsing an object"),
                Some(_) => return self.fail("key must be a string"),
            }
            let name = self.string()?;
            if object.contains_key(&name) {
                return Err(Fault { why: Why::Duplicate, at: self.at });
            }
            self.skip_space();
            match self.peek() {
                Some(b':') => self.at += 1,
                None => return self.fail("EOF while parsing an object"),
                Some(_) => return self.fail("expected `:`"),
            }
            let value = self.value()?;
            object.insert(name, value);
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(object));
                }
                None => return self.fail("EOF while parsing an object"),
                Some(_) => return self.fail("expected `,` or `}`"),
            }
        }
    }

    /// At `"`: the string, unescaped, through its closing `"`.
    fn string(&mut self) -> Result<String, Fault> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let run = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.extend_from_slice(&self.text[run..self.at]);
            match self.peek() {
                None => return self.fail("EOF while parsing a string"),
                Some(b'"') => {
                    self.at += 1;
                    return String::from_utf8(out).or_else(|_| self.fail("invalid unicode code point"));
                }
                Some(b'\\') => {
                    self.at += 1;
                    if self.peek() == Some(b'u') {
                        let c = self.unicode_escape()?;
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        continue;
                    }
                    let escaped = match self.peek() {
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'/') => b'/',
                        Some(b'b') => 8,
                        Some(b'f') => 12,
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        None => return self.fail("EOF while parsing a string"),
                        Some(_) => return self.fail("invalid escape"),
                    };
                    self.at += 1;
                    out.push(escaped);
                }
                Some(_) => return self.fail("control character (\\u0000-\\u001F) found while parsing a string"),
            }
        }
    }

    /// At the `u` of `\u`: the escape (two of them for a surrogate pair), read through its end.
    fn unicode_escape(&mut self) -> Result<char, Fault> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.text[self.at..].starts_with(b"\\u") {
                    return self.fail("lone leading surrogate in hex escape");
                }
                self.at += 1;
                match self.hex4()? {
                    low @ 0xDC00..=0xDFFF => 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00),
                    _ => return self.fail("lone leading surrogate in hex escape"),
                }
            }
            _ => first,
        };
        // A trailing surrogate alone is not a character.
        char::from_u32(code).ok_or(Fault { why: Why::Syntax("lone trailing surrogate in hex escape"), at: self.at })
    }

    /// At a `u`: it and the four hex digits after it.
    fn hex4(&mut self) -> Result<u32, Fault> {
        let Some(digits) = self.text.get(self.at + 1..self.at + 5) else {
            self.at = self.text.len();
            return self.fail("EOF while parsing a string");
        };
        let mut code = 0;
        for &d in digits {
            self.at += 1;
            match (d as char).to_digit(16) {
                Some(v) => code = code * 16 + v,
                None => return self.fail("invalid escape"),
            }
        }
        self.at += 1;
        Ok(code)
    }

    /// At `-` or a digit: the number (RFC 8259 §6).
    fn number(&mut self) -> Result<Value, Fault> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        self.at += usize::from(negative);
        let digits = self.at;
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.fail("invalid number"),
        }
        let integer = self.at;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.fail("invalid number");
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.fail("invalid number");
            }
            self.digits();
        }
        if self.at == integer {
            // Digits only: a whole number, exact while it fits 64 bits.
            let magnitude = self.text[digits..integer]
                .iter()
                .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')));
            match (negative, magnitude) {
                (false, Some(n)) => return Ok(Value::from(n)),
                (true, Some(n @ 1..=0x8000_0000_0000_0000)) => return Ok(Value::from((n as i64).wrapping_neg())),
                _ => {}
            }
        }
        // The text is ASCII digits and signs, so it is UTF-8.
        let text = std::str::from_utf8(&self.text[start..self.at]).unwrap_or_default();
        match serde_json::Number::from_f64(crate::decimal::parse(text)) {
            Some(n) => Ok(Value::Number(n)),
            None => self.fail("number out of range"),
        }
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }
}

/// Parses `text`, or says why not and at which byte.
fn parse(text: &[u8]) -> Result<Value, Fault> {
    Parser { text, at: 0, depth: 0 }.document()
}

/// Parses a JSON text that must be an object, refusing duplicate names at every depth.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    match parse(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(JsonError::NotAnObject),
        Err(Fault { why: Why::Duplicate, .. }) => Err(JsonError::DuplicateName),
        Err(_) => Err(JsonError::Syntax),
    }
}

/// Parses a JSON text of any shape, refusing duplicate member names at every depth; the error
/// says why, with the line and column (of characters, from 1) where the parser stopped.
pub fn parse_value(text: &str) -> Result<Value, String> {
    parse(text.as_bytes()).map_err(|Fault { why, at }| {
        let before = &text.as_bytes()[..at.min(text.len())];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = 1 + String::from_utf8_lossy(&before[line_start..]).chars().count();
        let why = match why {
            Why::Syntax(why) => why,
            Why::Duplicate => "duplicate member name",
        };
        format!("{why} at line {line} column {column}")
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
