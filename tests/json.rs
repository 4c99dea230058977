//! gatehouse's JSON parser (`jwt::json`) against serde_json, as an independent implementation: on
//! every text both read, the verdict (accept or refuse) and the value must be the same, apart from
//! the one rule serde_json does not have (a member name twice in one object). Hand-picked texts
//! for each corner of RFC 8259, then random texts: values serde_json wrote, mutated byte by byte,
//! and strings of JSON's own tokens.
#![cfg(not(target_arch = "wasm32"))]

use gatehouse::jwt::json::{parse_object, parse_value, JsonError};
use proptest::prelude::*;
use serde_json::Value;

/// Holds the two parsers to one verdict on `text`; true when gatehouse refused a duplicate name.
fn agree(text: &[u8]) -> bool {
    let ours = std::str::from_utf8(text).map_err(|_| String::new()).and_then(parse_value);
    let theirs = serde_json::from_slice::<Value>(text);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "{:?}", String::from_utf8_lossy(text));
            // The value's kind of number too: u64, i64 or f64, as serde_json chose.
            assert_eq!(a.to_string(), b.to_string(), "{:?}", String::from_utf8_lossy(text));
        }
        (Err(e), _) if e.starts_with("duplicate member name") => return true,
        (Err(_), Err(_)) => {}
        _ => panic!("{:?}: gatehouse {ours:?}, serde_json {theirs:?}", String::from_utf8_lossy(text)),
    }
    // parse_object reads bytes (not only UTF-8 text) and says the same.
    match (parse_object(text), &theirs) {
        (Ok(o), Ok(b)) => assert_eq!(&Value::Object(o), b),
        (Err(JsonError::NotAnObject), Ok(b)) => assert!(!b.is_object()),
        (Err(JsonError::DuplicateName), _) => return true,
        (Err(JsonError::Syntax), Err(_)) => {}
        (ours, theirs) => panic!("{:?}: gatehouse {ours:?}, serde_json {theirs:?}", String::from_utf8_lossy(text)),
    }
    false
}

#[test]
fn every_corner_of_the_grammar_as_serde_json() {
    let texts: &[&[u8]] = &[
        b"",
        b" ",
        b"{}",
        b"[]",
        b" {} ",
        b"\t\r\n[ ]\n",
        b"{",
        b"}",
        b"[",
        b"]",
        b"[,]",
        b"[1,]",
        b"{,}",
        b"{\"a\":1,}",
        b"{\"a\" 1}",
        b"{\"a\":}",
        b"{a:1}",
        b"{1:1}",
        b"{\"a\":1 \"b\":2}",
        b"[1 2]",
        b"[1]x",
        b"{} {}",
        b"\xef\xbb\xbf{}",
        b"true",
        b"false",
        b"null",
        b"tru",
        b"nul",
        b"True",
        b"truex",
        b"[true,false,null]",
        b"0",
        b"-0",
        b"-0.0",
        b"00",
        b"01",
        b"-01",
        b"1.",
        b".5",
        b"+1",
        b"-",
        b"1e",
        b"1e+",
        b"1E-2",
        b"1e5",
        b"1.5e308",
        b"1e309",
        b"-1e309",
        b"1e-400",
        b"0.1",
        b"123.456e-7",
        b"18446744073709551615",
        b"18446744073709551616",
        b"-9223372036854775808",
        b"-9223372036854775809",
        b"9223372036854775808",
        b"-18446744073709551616",
        b"100000000000000000000000000000",
        b"2.2250738585072011e-308",
        b"4.9e-324",
        b"1.7976931348623157e308",
        b"0.30000000000000004",
        b"-1",
        b"[-]",
        b"[1.0e]",
        b"1.2.3",
        b"1e1.5",
        b"0x10",
        b"Infinity",
        b"NaN",
        b"[-Infinity]",
        b"\"\"",
        b"\"a\"",
        b"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        b"\"\\u0041\\u00e9\\u20AC\"",
        b"\"\\ud83d\\ude00\"",
        b"\"\\ud83d\"",
        b"\"\\ude00\"",
        b"\"\\ud83dx\"",
        b"\"\\ud83d\\u0041\"",
        b"\"\\ud83d\\ud83d\"",
        b"\"\\u12\"",
        b"\"\\u12G4\"",
        b"\"\\x41\"",
        b"\"\\'\"",
        b"\"\\",
        b"\"\\u",
        b"\"abc",
        b"\"a\nb\"",
        b"\"a\x00b\"",
        b"\"a\x1fb\"",
        b"\"a\x7fb\"",
        b"\"\xc3\xa9\"",
        b"\"\xc3\"",
        b"\"\xff\"",
        b"\"\xed\xa0\x80\"",
        b"\"\xf0\x9f\x98\x80\"",
        b"\"\xc0\xaf\"",
        b"\"\xe2\x82\"",
        b"\"\xc3\\u0041\"",
        b"{\"\xc3\xa9\":1}",
        b"{\"a\":1,\"b\":[1,{\"c\":null}]}",
        b"[[[]]]",
        b"/*c*/{}",
        b"{}//",
        b"[1,2,3",
        b"{\"a\":1",
        b"{\"a\"",
        b"{\"a\":[}",
        b"\x00",
        b"{\"a\":1}\x00",
    ];
    for text in texts {
        agree(text);
    }
    // Nesting: serde_json takes 127 levels and refuses the 128th; so does gatehouse.
    for depth in [126, 127, 128, 129, 1000] {
        agree(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).as_bytes());
        agree(format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).as_bytes());
    }
}

#[test]
fn duplicate_names_are_refused_where_serde_json_keeps_the_last() {
    for text in
        [r#"{"a":1,"a":2}"#, r#"{"a":1,"\u0061":2}"#, r#"[{"x":{"b":1,"b":1}}]"#, r#"{"\ud83d\ude00":1,"😀":2}"#]
    {
        assert!(agree(text.as_bytes()), "{text}");
    }
    let e = parse_value("{\n  \"a\": 1,\n  \"a\": 2\n}").unwrap_err();
    assert_eq!(e, "duplicate member name at line 3 column 6");
    assert_eq!(parse_value("[1,\n 2 x]").unwrap_err(), "expected `,` or `]` at line 2 column 4");
    assert_eq!(parse_value("\"é").unwrap_err(), "EOF while parsing a string at line 1 column 3");
}

/// JSON values, as serde_json's own `Value`.
fn values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::String),
        "[\"\\\\\u{0}-\u{1f}a\u{e9}\u{1F600}]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-c\u{e9}]{0,2}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON's tokens, and some that are almost JSON.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\"a\"",
    "\"\\u00e9\"",
    "\\",
    "\\u",
    "d83d",
    "\\ud83d",
    "\\ude00",
    "0",
    "1",
    "-",
    ".",
    "e",
    "E",
    "+",
    "9",
    "12345678901234567890",
    "true",
    "null",
    "fals",
    " ",
    "\n",
    "\u{e9}",
    "\u{0}",
    "\u{1f}",
    "x",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn what_serde_json_wrote_reads_back_the_same(value in values(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) }.unwrap();
        agree(&text);
    }

    #[test]
    fn mutated_texts_get_serde_json_verdict(value in values(), edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..4)) {
        let mut text = serde_json::to_vec(&value).unwrap();
        for (at, kind, byte) in edits {
            let i = at.index(text.len() + 1);
            match kind {
                0 => text.insert(i, byte),
                1 if i < text.len() => { text.remove(i); }
                _ if i < text.len() => text[i] = byte,
                _ => text.push(byte),
            }
        }
        agree(&text);
    }

    #[test]
    fn strings_of_tokens_get_serde_json_verdict(picks in prop::collection::vec(prop::sample::select(TOKENS), 0..16)) {
        agree(picks.concat().as_bytes());
    }

    #[test]
    fn strings_of_any_bytes_get_serde_json_verdict(bytes in prop::collection::vec(any::<u8>(), 0..6), escape in any::<bool>()) {
        let mut text = b"[\"".to_vec();
        if escape {
            text.push(b'\\');
        }
        text.extend(bytes);
        text.extend(b"\"]");
        agree(&text);
    }
}
