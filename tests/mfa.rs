//! The second-factor building blocks over their public API: TOTP against RFC 4226 Appendix D and
//! RFC 6238 Appendix B (files under tests/vectors/otp/), the otpauth:// URI, the QR code decoded
//! back with rqrr, and an enrolment walked from secret to sealed storage to a verified code.

mod common;

use common::{vector, NOW};
use gatehouse::mfa::qr;
use gatehouse::mfa::recovery::{self, RecoveryCodes};
use gatehouse::mfa::secretbox::{self, BoxError, EncryptionKey};
use gatehouse::mfa::totp::{self, Algorithm, Digits, Totp, TotpError};

fn algorithm(name: &str) -> Algorithm {
    match name {
        "SHA1" => Algorithm::Sha1,
        "SHA256" => Algorithm::Sha256,
        "SHA512" => Algorithm::Sha512,
        other => panic!("no algorithm {other}"),
    }
}

#[test]
fn rfc4226_appendix_d_hotp_values() {
    let file = vector("otp/rfc4226_appendix_d.json");
    let secret = file["secret_ascii"].as_str().unwrap().as_bytes();
    let cases = file["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for case in cases {
        let count = case["count"].as_u64().unwrap();
        let want: u32 = case["hotp"].as_str().unwrap().parse().unwrap();
        assert_eq!(totp::hotp(secret, Algorithm::Sha1, count, Digits::Six).unwrap(), want, "count {count}");
    }
}

#[test]
fn rfc6238_appendix_b_totp_values_for_all_three_hashes() {
    let file = vector("otp/rfc6238_appendix_b.json");
    let cases = file["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 18);
    for case in cases {
        let mode = case["mode"].as_str().unwrap();
        // The RFC's seeds differ per hash: 20, 32 and 64 ASCII bytes.
        let seed = file["seeds_ascii"][mode].as_str().unwrap().as_bytes().to_vec();
        let time = case["time"].as_i64().unwrap();
        let want = case["totp"].as_str().unwrap();
        let step = u64::from_str_radix(case["t_hex"].as_str().unwrap(), 16).unwrap();
        assert_eq!(totp::step_at(time).unwrap(), step, "T at {time}");
        let key = Totp::new(seed, algorithm(mode), Digits::Eight).unwrap();
        assert_eq!(key.code_at(time).unwrap(), want, "{mode} at {time}");
        assert_eq!(key.verify(want, time, None), Ok(step), "{mode} at {time} verifies");
        assert_eq!(key.verify(want, time, Some(step)), Err(TotpError::Replayed), "{mode} at {time} once");
    }
}

#[test]
fn otpauth_uri_percent_encodes_label_and_issuer() {
    let key = Totp::generate([0x11; totp::SECRET_BYTES]);
    let uri = key.otpauth_uri("Example Co", "ann+mfa@example.com").unwrap();
    assert_eq!(
        uri,
        "otpauth://totp/Example%20Co:ann%2Bmfa%40example.com?secret=CEIRCEIRCEIRCEIRCEIRCEIRCEIRCEIR\
         &issuer=Example%20Co&algorithm=SHA1&digits=6&period=30"
    );
    // A standard URL parser reads the same names back ('+' stays a plus, not a space).
    let parsed = url::Url::parse(&uri).unwrap();
    assert_eq!(parsed.scheme(), "otpauth");
    assert_eq!(parsed.host_str(), Some("totp"));
    let label = percent_encoding::percent_decode_str(parsed.path()).decode_utf8().unwrap();
    assert_eq!(label, "/Example Co:ann+mfa@example.com");
    let query: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(get("issuer"), Some("Example Co"));
    assert_eq!(get("secret"), Some(key.secret_base32().as_str()));
    assert_eq!(get("algorithm"), Some("SHA1"));
    assert_eq!(get("digits"), Some("6"));
    assert_eq!(get("period"), Some("30"));
    assert!(!key.secret_base32().contains('='), "no padding");
}

/// Reads the dark modules back out of [`qr::svg`]'s path (`M{x} {y}h{n}v1h-{n}z` runs) as a grid
/// of `size` × `size` modules, quiet zone included.
fn modules_of(svg: &str) -> Vec<Vec<bool>> {
    let size: usize = svg.split("viewBox=\"0 0 ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    let path = svg.split("fill=\"#000\" d=\"").nth(1).unwrap().split('"').next().unwrap();
    let mut grid = vec![vec![false; size]; size];
    for run in path.split('M').filter(|r| !r.is_empty()) {
        let (x, rest) = run.split_once(' ').unwrap();
        let (y, rest) = rest.split_once('h').unwrap();
        let (n, rest) = rest.split_once('v').unwrap();
        assert_eq!(rest, format!("1h-{n}z"), "run {run}");
        let (x, y, n): (usize, usize, usize) = (x.parse().unwrap(), y.parse().unwrap(), n.parse().unwrap());
        for cell in &mut grid[y][x..x + n] {
            assert!(!*cell, "runs do not overlap");
            *cell = true;
        }
    }
    grid
}

#[test]
fn qr_svg_decodes_back_to_the_uri() {
    let key = Totp::generate([0x5a; totp::SECRET_BYTES]);
    let uri = key.otpauth_uri("Example Co", "ann+mfa@example.com").unwrap();
    let svg = qr::svg(&uri).unwrap();
    let grid = modules_of(&svg);
    let quiet = qr::QUIET_ZONE;
    let size = grid.len();
    for (y, row) in grid.iter().enumerate() {
        for (x, &dark) in row.iter().enumerate() {
            let in_quiet_zone = x < quiet || y < quiet || x >= size - quiet || y >= size - quiet;
            assert!(!(dark && in_quiet_zone), "dark module in the quiet zone at {x},{y}");
        }
    }
    let symbol = rqrr::SimpleGrid::from_func(size - 2 * quiet, |x, y| grid[y + quiet][x + quiet]);
    let (_meta, content) = rqrr::Grid::new(symbol).decode().expect("rqrr decodes the symbol");
    assert_eq!(content, uri);
    assert!(svg.len() < 16 * 1024, "compact: {} bytes", svg.len());
}

#[test]
fn qr_data_uri_carries_the_same_svg() {
    let uri = qr::data_uri("otpauth://totp/A:b?secret=AAAA").unwrap();
    assert!(uri.starts_with("data:image/svg+xml;base64,"));
}

#[test]
fn enrolment_seals_the_secret_and_the_first_code_confirms_it() {
    let key = EncryptionKey::parse(&gatehouse::jwt::b64::encode([0x24u8; 32])).unwrap();
    let fresh = Totp::generate([0x33; totp::SECRET_BYTES]);
    let sealed = key.seal([1; secretbox::NONCE_BYTES], "acct-7", secretbox::TOTP_SECRET, fresh.secret()).unwrap();

    // Later, at login: open, rebuild, verify; the step is stored so the code cannot be replayed.
    let opened = key.open("acct-7", secretbox::TOTP_SECRET, &sealed).unwrap();
    let stored = Totp::new(opened, fresh.algorithm(), fresh.digits()).unwrap();
    let code = fresh.code_at(NOW).unwrap();
    let last = stored.verify(&code, NOW, None).unwrap();
    assert_eq!(stored.verify(&code, NOW + 10, Some(last)), Err(TotpError::Replayed));
    assert_eq!(stored.verify(&stored.code_at(NOW + 30).unwrap(), NOW + 30, Some(last)), Ok(last + 1));

    // Another account's storage cannot borrow the box.
    assert_eq!(key.open("acct-8", secretbox::TOTP_SECRET, &sealed), Err(BoxError::Unauthentic));
}

#[test]
fn recovery_codes_survive_storage_and_work_once() {
    // Distinct codes for the test: one byte differs per code.
    let mut random = [[0x5c; recovery::CODE_BYTES]; recovery::COUNT];
    for (i, code) in random.iter_mut().enumerate() {
        code[9] = i as u8;
    }
    let (codes, shown) = RecoveryCodes::generate(&random);
    let json = serde_json::to_string(&codes).unwrap();
    let mut loaded: RecoveryCodes = serde_json::from_str(&json).unwrap();
    assert!(loaded.consume(&shown[4].to_uppercase()));
    let json = serde_json::to_string(&loaded).unwrap();
    let mut loaded: RecoveryCodes = serde_json::from_str(&json).unwrap();
    assert!(!loaded.consume(&shown[4]), "used before the save");
    assert_eq!(loaded.remaining(), recovery::COUNT - 1);
}
