//! The metrics of a Worker for Workers Analytics Engine (docs/OBSERVABILITY.md): what is counted, and
//! the layout of the one data point written per request. Pure: the glue (`web::metrics`) keeps the
//! per-isolate counters and writes the point through the optional `METRICS` binding.
//!
//! Counts are kept per isolate and taken whole by the next data point, so every count is written
//! exactly once and sums over time are exact, while one request's point may carry counts of requests
//! that ran beside it (the runtime interleaves them). Per-request facts (route, status, latency) are
//! the request's own.

use crate::jwt::Algorithm;

/// Something worth counting on a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A signature and the claims checked out, with a key of this algorithm.
    Verified(Algorithm),
    /// A token pinned to a key of this algorithm was refused (signature or claims).
    Refused(Algorithm),
    /// A token was found in the isolate's verified-token cache (no signature check).
    TokenCacheHit,
    /// A denylist answer came from the isolate's cache (no KV read).
    DenylistCacheHit,
    /// A KV read (the denylist record).
    KvRead,
    /// A key set went over the network (a JWKS fetch, not the shared cache).
    JwksFetch,
}

/// Counts since the last data point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    verified: [u32; 3],
    refused: [u32; 3],
    token_cache_hits: u32,
    denylist_cache_hits: u32,
    kv_reads: u32,
    jwks_fetches: u32,
}

fn slot(alg: Algorithm) -> usize {
    match alg {
        Algorithm::EdDsa => 0,
        Algorithm::Rs256 => 1,
        Algorithm::Es256 => 2,
    }
}

impl Counters {
    /// Counts one event.
    pub fn add(&mut self, count: Count) {
        let cell = match count {
            Count::Verified(alg) => &mut self.verified[slot(alg)],
            Count::Refused(alg) => &mut self.refused[slot(alg)],
            Count::TokenCacheHit => &mut self.token_cache_hits,
            Count::DenylistCacheHit => &mut self.denylist_cache_hits,
            Count::KvRead => &mut self.kv_reads,
            Count::JwksFetch => &mut self.jwks_fetches,
        };
        *cell = cell.saturating_add(1);
    }
}

/// The names of a data point's blobs, in order (`blob1` …): the SQL of docs/OBSERVABILITY.md uses them.
pub const BLOBS: [&str; 5] = ["worker", "route", "status", "error", "version"];

/// The names of a data point's doubles, in order (`double1` …).
pub const DOUBLES: [&str; 13] = [
    "requests",
    "latency_ms",
    "fast_path",
    "verified_eddsa",
    "verified_rs256",
    "verified_es256",
    "refused_eddsa",
    "refused_rs256",
    "refused_es256",
    "token_cache_hits",
    "denylist_cache_hits",
    "kv_reads",
    "jwks_fetches",
];

/// What one request says about itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestFacts<'a> {
    /// Which Worker (`crate::health::WORKER`).
    pub worker: &'a str,
    /// The route label (`crate::routes::label`).
    pub route: &'a str,
    /// The HTTP status answered.
    pub status: u16,
    /// The error code of an error answer (`""` otherwise).
    pub error: &'a str,
    /// Milliseconds from arrival to answer, as the runtime's clock tells (it moves only across I/O).
    pub latency_ms: f64,
    /// Whether the fast path answered.
    pub fast_path: bool,
}

/// One Analytics Engine data point: one index (the sampling key), blobs and doubles as named in
/// [`BLOBS`] and [`DOUBLES`].
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    /// `index1`: the Worker, so sampling keeps every Worker's share.
    pub index: String,
    /// `blob1` …
    pub blobs: Vec<String>,
    /// `double1` …
    pub doubles: Vec<f64>,
}

/// The data point of one request, carrying (and so consuming) the counts since the last one.
pub fn point(facts: &RequestFacts<'_>, counts: &Counters, version: &str) -> DataPoint {
    let n = |v: u32| f64::from(v);
    let blobs = [facts.worker, facts.route, &facts.status.to_string(), facts.error, version];
    DataPoint {
        index: facts.worker.to_owned(),
        blobs: blobs.iter().map(|b| (*b).to_owned()).collect(),
        doubles: vec![
            1.0,
            facts.latency_ms.max(0.0),
            if facts.fast_path { 1.0 } else { 0.0 },
            n(counts.verified[0]),
            n(counts.verified[1]),
            n(counts.verified[2]),
            n(counts.refused[0]),
            n(counts.refused[1]),
            n(counts.refused[2]),
            n(counts.token_cache_hits),
            n(counts.denylist_cache_hits),
            n(counts.kv_reads),
            n(counts.jwks_fetches),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_carries_the_facts_and_the_counts_in_the_documented_order() {
        let mut counts = Counters::default();
        counts.add(Count::Verified(Algorithm::Rs256));
        counts.add(Count::Refused(Algorithm::EdDsa));
        counts.add(Count::TokenCacheHit);
        counts.add(Count::KvRead);
        counts.add(Count::KvRead);
        counts.add(Count::JwksFetch);
        let facts = RequestFacts {
            worker: "edge",
            route: "gateway:protected",
            status: 200,
            error: "",
            latency_ms: 3.0,
            fast_path: false,
        };
        let p = point(&facts, &counts, "0.1.0+abc");
        assert_eq!(p.blobs.len(), BLOBS.len());
        assert_eq!(p.doubles.len(), DOUBLES.len());
        let blob = |name| p.blobs[BLOBS.iter().position(|b| *b == name).unwrap()].clone();
        let double = |name| p.doubles[DOUBLES.iter().position(|d| *d == name).unwrap()];
        assert_eq!(
            (blob("worker"), blob("route"), blob("status")),
            ("edge".into(), "gateway:protected".into(), "200".into())
        );
        assert_eq!(blob("version"), "0.1.0+abc");
        assert_eq!(double("requests"), 1.0);
        assert_eq!(double("latency_ms"), 3.0);
        assert_eq!(double("verified_rs256"), 1.0);
        assert_eq!(double("verified_eddsa"), 0.0);
        assert_eq!(double("refused_eddsa"), 1.0);
        assert_eq!(double("token_cache_hits"), 1.0);
        assert_eq!(double("kv_reads"), 2.0);
        assert_eq!(double("jwks_fetches"), 1.0);
        assert_eq!(p.index, "edge");
        // AE's limits: one index of at most 96 bytes, at most 20 blobs and 20 doubles.
        assert!(p.blobs.len() <= 20 && p.doubles.len() <= 20 && p.index.len() <= 96);
    }
}
