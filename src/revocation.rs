//! The denylist record the issuer writes and the edge reads: one KV entry per user, so one read per request.
//!
//! KV key: `rev:<sub>`. Value: JSON
//! `{"v":1,"all_before":{"at":T,"until":U}?,"sids":{"<sid>":U,...},"jtis":{"<jti>":U,...}}` where
//! - `all_before.at` is a logout-all: every token of the user with `iat < at` (or no `iat`) is revoked;
//! - `sids` revokes every token carrying that `sid` (a logged-out or reuse-revoked session);
//! - `jtis` revokes single tokens;
//! - each `until` is the time after which no token the entry covers can still pass the `exp` check
//!   (revocation time + access TTL + leeway), so the entry may be pruned; the KV entry itself is
//!   written with `expiration` = the largest `until`, and disappears on its own.
//!
//! The account's Durable Object is the only writer of its user's entry, so read-modify-write is safe.

use crate::jwt::AccessClaims;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// The prefix of every denylist key.
pub const KEY_PREFIX: &str = "rev:";
/// The record format version.
pub const VERSION: u32 = 1;
/// KV refuses expirations closer than this many seconds.
pub const KV_MIN_TTL: i64 = 60;

/// The KV key of a user's denylist record.
pub fn kv_key(sub: &str) -> String {
    format!("{KEY_PREFIX}{sub}")
}

/// A logout-all cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cutoff {
    /// Tokens issued strictly before this second are revoked.
    pub at: i64,
    /// No token issued before `at` can still be valid after this second.
    pub until: i64,
}

/// One user's revocations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRecord {
    /// Format version; a record of another version is refused (fail closed).
    pub v: u32,
    /// The latest logout-all, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_before: Option<Cutoff>,
    /// Revoked sessions and when their entries may go.
    #[serde(default)]
    pub sids: BTreeMap<String, i64>,
    /// Revoked token ids and when their entries may go.
    #[serde(default)]
    pub jtis: BTreeMap<String, i64>,
}

/// Why a token is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Its session was revoked.
    Session,
    /// The token itself was revoked.
    Token,
    /// It was issued before the user's last logout-all.
    LogoutAll,
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Revoked::Session => "session has been revoked",
            Revoked::Token => "token has been revoked",
            Revoked::LogoutAll => "token was revoked by a logout of every session",
        })
    }
}

/// The stored record is unreadable: the edge fails closed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRecord;

impl RevocationRecord {
    /// An empty record.
    pub fn new() -> Self {
        RevocationRecord { v: VERSION, ..Default::default() }
    }

    /// Parses a stored record (of this [`VERSION`]; unknown members are ignored, as the Durable
    /// Object's `Deserialize` does, which reads the same format inside the account's state).
    ///
    /// Read by hand from [`crate::jwt::json`]'s value rather than by the derive: the edge then links
    /// no JSON deserializer (docs/BENCHMARKS.md); a property test holds the two readers to one answer.
    pub fn parse(text: &str) -> Result<Self, CorruptRecord> {
        use serde_json::Value;
        let Ok(Value::Object(record)) = crate::jwt::json::parse_value(text) else { return Err(CorruptRecord) };
        if record.get("v").and_then(Value::as_u64) != Some(u64::from(VERSION)) {
            return Err(CorruptRecord);
        }
        let integers = |name| match record.get(name) {
            None => Ok(BTreeMap::new()),
            Some(Value::Object(entries)) => {
                entries.iter().map(|(key, until)| Ok((key.clone(), until.as_i64().ok_or(CorruptRecord)?))).collect()
            }
            Some(_) => Err(CorruptRecord),
        };
        let all_before = match record.get("all_before") {
            None | Some(Value::Null) => None,
            Some(Value::Object(cutoff)) => {
                let second = |name| cutoff.get(name).and_then(Value::as_i64).ok_or(CorruptRecord);
                Some(Cutoff { at: second("at")?, until: second("until")? })
            }
            Some(_) => return Err(CorruptRecord),
        };
        Ok(RevocationRecord { v: VERSION, all_before, sids: integers("sids")?, jtis: integers("jtis")? })
    }

    /// Serialises the record for KV.
    pub fn to_json(&self) -> String {
        // A map of strings to integers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether the record revokes a token with these claims.
    pub fn check(&self, claims: &AccessClaims) -> Result<(), Revoked> {
        self.check_ids(claims.iat, claims.sid.as_deref(), claims.jti.as_deref())
    }

    /// Whether the record revokes a token with this `iat`, `sid` and `jti`.
    pub fn check_ids(&self, iat: Option<i64>, sid: Option<&str>, jti: Option<&str>) -> Result<(), Revoked> {
        if let Some(cutoff) = self.all_before {
            if iat.is_none_or(|iat| iat < cutoff.at) {
                return Err(Revoked::LogoutAll);
            }
        }
        if sid.is_some_and(|sid| self.sids.contains_key(sid)) {
            return Err(Revoked::Session);
        }
        if jti.is_some_and(|jti| self.jtis.contains_key(jti)) {
            return Err(Revoked::Token);
        }
        Ok(())
    }

    /// Revokes a session until `until`.
    pub fn revoke_session(&mut self, sid: &str, until: i64) {
        let entry = self.sids.entry(sid.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Revokes one token until `until`.
    pub fn revoke_token(&mut self, jti: &str, until: i64) {
        let entry = self.jtis.entry(jti.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Revokes every token issued before `at`, until `until`.
    pub fn revoke_all_before(&mut self, at: i64, until: i64) {
        let cutoff = match self.all_before {
            Some(old) => Cutoff { at: old.at.max(at), until: old.until.max(until) },
            None => Cutoff { at, until },
        };
        self.all_before = Some(cutoff);
    }

    /// Drops entries that can no longer cover a valid token.
    pub fn prune(&mut self, now: i64) {
        self.sids.retain(|_, until| *until > now);
        self.jtis.retain(|_, until| *until > now);
        if self.all_before.is_some_and(|c| c.until <= now) {
            self.all_before = None;
        }
    }

    /// The KV expiration (seconds since the epoch) for this record, or `None` if it is empty.
    pub fn expires_at(&self, now: i64) -> Option<i64> {
        let latest =
            self.sids.values().chain(self.jtis.values()).copied().chain(self.all_before.map(|c| c.until)).max()?;
        Some(latest.max(now + KV_MIN_TTL))
    }
}

/// The most records a [`RecordCache`] keeps; when full, stale entries go first, then everything.
pub const MAX_CACHED_RECORDS: usize = 10_000;

/// What one KV read said about a user: no record, or this one.
pub type Lookup = Option<Rc<RevocationRecord>>;

/// Denylist reads this isolate made recently, by `sub`. Each answer is reused for at most `max_age`
/// milliseconds after the read that got it, the bounded staleness of revocation at the edge (on
/// top of KV's own propagation delay), and an entry is dropped at once when this isolate itself
/// revokes something of that user. Pure: the clock is an argument.
#[derive(Debug, Default)]
pub struct RecordCache {
    entries: HashMap<String, (u64, Lookup)>,
    forgotten: u64,
}

impl RecordCache {
    /// An empty cache.
    pub fn new() -> Self {
        RecordCache::default()
    }

    /// The answer of a read made less than `max_age` ms before `now`, if there is one.
    pub fn get(&self, sub: &str, now: u64, max_age: u64) -> Option<Lookup> {
        let (read_at, lookup) = self.entries.get(sub)?;
        (now >= *read_at && now - read_at < max_age).then(|| lookup.clone())
    }

    /// A mark to take before a read: [`RecordCache::insert_unless_forgotten`] keeps the read's
    /// answer only if nothing was forgotten since, as a revocation may have landed while it read.
    pub fn mark(&self) -> u64 {
        self.forgotten
    }

    /// [`RecordCache::insert`], unless something was forgotten since `mark`.
    pub fn insert_unless_forgotten(&mut self, mark: u64, sub: &str, lookup: Lookup, now: u64, max_age: u64) {
        if mark == self.forgotten {
            self.insert(sub, lookup, now, max_age);
        }
    }

    /// Remembers what a read at `now` said.
    pub fn insert(&mut self, sub: &str, lookup: Lookup, now: u64, max_age: u64) {
        if self.entries.len() >= MAX_CACHED_RECORDS {
            self.entries.retain(|_, (read_at, _)| now >= *read_at && now - *read_at < max_age);
            if self.entries.len() >= MAX_CACHED_RECORDS {
                self.entries.clear();
            }
        }
        self.entries.insert(sub.to_owned(), (now, lookup));
    }

    /// Forgets a user's answer (this isolate just revoked something of theirs).
    pub fn forget(&mut self, sub: &str) {
        self.entries.remove(sub);
        self.forgotten = self.forgotten.wrapping_add(1);
    }

    /// How many users are cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: Option<i64>, sid: Option<&str>, jti: Option<&str>) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: "u".into(),
            aud: vec!["a".into()],
            exp: 2000,
            iat,
            nbf: None,
            jti: jti.map(Into::into),
            sid: sid.map(Into::into),
            client_id: None,
            scope: String::new(),
            roles: vec![],
            email: None,
            email_verified: None,
            cnf: None,
            auth_time: None,
            amr: Vec::new(),
            acr: None,
        }
    }

    #[test]
    fn each_kind_of_revocation_applies_and_only_to_its_tokens() {
        let mut r = RevocationRecord::new();
        let token = claims(Some(1000), Some("s1"), Some("j1"));
        assert_eq!(r.check(&token), Ok(()));
        r.revoke_session("s2", 1900);
        assert_eq!(r.check(&token), Ok(()));
        r.revoke_session("s1", 1900);
        assert_eq!(r.check(&token), Err(Revoked::Session));

        let mut r = RevocationRecord::new();
        r.revoke_token("j1", 1900);
        assert_eq!(r.check(&token), Err(Revoked::Token));
        assert_eq!(r.check(&claims(Some(1000), Some("s1"), Some("j2"))), Ok(()));

        let mut r = RevocationRecord::new();
        r.revoke_all_before(1000, 1930);
        // Issued in the same second as the logout-all: not before it.
        assert_eq!(r.check(&token), Ok(()));
        assert_eq!(r.check(&claims(Some(999), Some("s9"), None)), Err(Revoked::LogoutAll));
        // No iat: it cannot show it was issued after, so it is revoked.
        assert_eq!(r.check(&claims(None, Some("s9"), None)), Err(Revoked::LogoutAll));
    }

    #[test]
    fn cutoffs_only_move_forward_and_entries_prune_and_expire() {
        let mut r = RevocationRecord::new();
        r.revoke_all_before(1000, 1930);
        r.revoke_all_before(900, 1800);
        assert_eq!(r.all_before, Some(Cutoff { at: 1000, until: 1930 }));
        r.revoke_session("s1", 1500);
        r.revoke_token("j1", 2500);
        assert_eq!(r.expires_at(1000), Some(2500));
        r.prune(1600);
        assert!(!r.sids.contains_key("s1"));
        assert!(r.all_before.is_some());
        r.prune(2000);
        assert!(r.all_before.is_none());
        assert_eq!(r.jtis.len(), 1);
        r.prune(2500);
        assert_eq!(r.expires_at(2500), None);
        // KV needs at least 60 s.
        let mut r = RevocationRecord::new();
        r.revoke_token("j", 1010);
        assert_eq!(r.expires_at(1000), Some(1000 + KV_MIN_TTL));
    }

    #[test]
    fn cached_reads_are_reused_for_at_most_max_age_and_forgotten_on_local_revocation() {
        let mut c = RecordCache::new();
        let mut r = RevocationRecord::new();
        r.revoke_session("s", 10);
        c.insert("u", Some(Rc::new(r)), 1_000, 5_000);
        c.insert("clean", None, 1_000, 5_000);
        assert!(c.get("u", 1_000, 5_000).is_some_and(|l| l.is_some()));
        assert_eq!(c.get("clean", 5_999, 5_000), Some(None), "no record, still fresh");
        assert_eq!(c.get("clean", 6_000, 5_000), None, "read again after max_age");
        assert_eq!(c.get("clean", 999, 5_000), None, "a clock that went back reads again");
        assert_eq!(c.get("other", 1_000, 5_000), None);
        c.forget("u");
        assert_eq!(c.get("u", 1_001, 5_000), None, "forgotten: read again");
        // A read that was under way while something was forgotten is not kept.
        let mark = c.mark();
        c.forget("u");
        c.insert_unless_forgotten(mark, "u", None, 1_002, 5_000);
        assert_eq!(c.get("u", 1_002, 5_000), None, "the stale read was dropped");
        let mark = c.mark();
        c.insert_unless_forgotten(mark, "u", None, 1_003, 5_000);
        assert_eq!(c.get("u", 1_003, 5_000), Some(None));
        // max_age 0 turns it off.
        c.insert("z", None, 7_000, 0);
        assert_eq!(c.get("z", 7_000, 0), None);
        // Bounded.
        for i in 0..MAX_CACHED_RECORDS + 5 {
            c.insert(&format!("n{i}"), None, 10_000, 5_000);
            assert!(c.len() <= MAX_CACHED_RECORDS);
        }
    }

    #[test]
    fn records_round_trip_and_bad_ones_fail_closed() {
        let mut r = RevocationRecord::new();
        r.revoke_session("s", 5);
        r.revoke_all_before(1, 9);
        assert_eq!(RevocationRecord::parse(&r.to_json()), Ok(r));
        assert_eq!(RevocationRecord::parse("{}"), Err(CorruptRecord));
        assert_eq!(RevocationRecord::parse(r#"{"v":2}"#), Err(CorruptRecord));
        assert_eq!(RevocationRecord::parse("garbage"), Err(CorruptRecord));
        assert_eq!(RevocationRecord::parse(r#"{"v":1,"sids":[]}"#), Err(CorruptRecord));
        assert_eq!(RevocationRecord::parse(r#"{"v":1,"sids":{"s":1.5}}"#), Err(CorruptRecord));
        assert_eq!(RevocationRecord::parse(r#"{"v":1,"all_before":{"at":1}}"#), Err(CorruptRecord));
        assert_eq!(RevocationRecord::parse(r#"{"v":1,"jtis":{"j":1,"j":2}}"#), Err(CorruptRecord), "a name twice");
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        /// The edge's reader and the Durable Object's derive read every text alike.
        #[test]
        fn the_hand_reader_agrees_with_the_derive(
            v in 0u64..3,
            all_before in proptest::option::of(proptest::option::of((proptest::num::i64::ANY, proptest::option::of(-2i64..2)))),
            sids in proptest::option::of(proptest::collection::btree_map("[a-c]{1,2}", proptest::num::i64::ANY, 0..3)),
            jtis in proptest::option::of(proptest::collection::vec(("[a-c]{1,2}", 0u8..4), 0..3)),
            extra in proptest::bool::ANY,
        ) {
            let mut members = vec![format!("\"v\":{v}")];
            match all_before {
                None => {}
                Some(None) => members.push("\"all_before\":null".into()),
                Some(Some((at, until))) => members.push(match until {
                    Some(until) => format!("\"all_before\":{{\"at\":{at},\"until\":{until}}}"),
                    None => format!("\"all_before\":{{\"at\":{at}}}"),
                }),
            }
            if let Some(sids) = sids {
                let entries: Vec<String> = sids.iter().map(|(k, n)| format!("\"{k}\":{n}")).collect();
                members.push(format!("\"sids\":{{{}}}", entries.join(",")));
            }
            if let Some(jtis) = jtis {
                // Numbers of every kind, and names that may repeat.
                let entries: Vec<String> =
                    jtis.iter().map(|(k, n)| format!("\"{k}\":{}", ["7", "-7", "7.0", "\"7\""][usize::from(*n)])).collect();
                members.push(format!("\"jtis\":{{{}}}", entries.join(",")));
            }
            if extra {
                members.push("\"later\":[1]".into());
            }
            let text = format!("{{{}}}", members.join(","));
            let derived = serde_json::from_str::<RevocationRecord>(&text).ok().filter(|r| r.v == VERSION);
            let names_repeat = serde_json::from_str::<serde_json::Value>(&text).is_ok()
                && crate::jwt::json::parse_value(&text).is_err();
            match RevocationRecord::parse(&text) {
                Ok(record) => proptest::prop_assert_eq!(Some(record), derived, "{}", text),
                Err(CorruptRecord) => proptest::prop_assert!(derived.is_none() || names_repeat, "{}", text),
            }
        }
    }
}
