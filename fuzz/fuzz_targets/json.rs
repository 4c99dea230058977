//! gatehouse's JSON parser (`jwt::json`) against serde_json, as tests/json.rs does by property
//! tests: on any bytes, the two reach one verdict and one value, apart from the rule serde_json
//! does not have (a member name twice in one object, which only gatehouse refuses).
#![no_main]

use gatehouse::jwt::json::{parse_object, parse_value, JsonError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let theirs = serde_json::from_slice::<Value>(data);
    let ours = std::str::from_utf8(data).map_err(|_| String::new()).and_then(parse_value);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            assert_eq!(a.to_string(), b.to_string(), "the same kind of number");
        }
        (Err(e), _) if e.starts_with("duplicate member name") => {}
        (Err(_), Err(_)) => {}
        _ => panic!("gatehouse {ours:?}, serde_json {theirs:?}"),
    }
    match (parse_object(data), &theirs) {
        (Ok(o), Ok(b)) => assert_eq!(&Value::Object(o), b),
        (Err(JsonError::NotAnObject), Ok(b)) => assert!(!b.is_object()),
        (Err(JsonError::DuplicateName), _) | (Err(JsonError::Syntax), Err(_)) => {}
        (ours, theirs) => panic!("gatehouse {ours:?}, serde_json {theirs:?}"),
    }
});
