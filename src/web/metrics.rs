//! Metrics glue: the per-isolate counters of `crate::metrics`, and the one Analytics Engine data
//! point per request through the optional `METRICS` binding (docs/OBSERVABILITY.md). Without the
//! binding (local development, or a deployment that does not want it) nothing is written and the
//! counting costs a few integer additions per request.

use crate::metrics::{self, Count, Counters, DataPoint, RequestFacts};
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::{AnalyticsEngineDataPoint, AnalyticsEngineDataPointBuilder, Env};

/// The Analytics Engine dataset binding (optional).
pub const METRICS_BINDING: &str = "METRICS";

thread_local! {
    /// Counts since this isolate's last data point.
    static COUNTS: RefCell<Counters> = RefCell::new(Counters::default());
    /// Whether this isolate has the binding (bindings do not change within an isolate).
    static BOUND: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Counts one event of this isolate.
pub fn count(event: Count) {
    COUNTS.with(|c| c.borrow_mut().add(event));
}

/// Whether the `METRICS` binding is there, looked up once per isolate.
pub fn enabled(env: &Env) -> bool {
    BOUND.with(|bound| match bound.get() {
        Some(known) => known,
        None => {
            let known = env.analytics_engine(METRICS_BINDING).is_ok();
            bound.set(Some(known));
            known
        }
    })
}

/// The data point of a request, taking this isolate's counts since the last one.
fn take_point(facts: &RequestFacts<'_>) -> AnalyticsEngineDataPoint {
    let counts = COUNTS.with(|c| std::mem::take(&mut *c.borrow_mut()));
    let version = format!("{}+{}", crate::health::VERSION, crate::health::BUILD);
    let DataPoint { index, blobs, doubles } = metrics::point(facts, &counts, &version);
    AnalyticsEngineDataPointBuilder::new().indexes([index.as_str()]).blobs(blobs).doubles(doubles).build()
}

/// Writes the request's one data point, if the binding is there. Never fails the request.
pub fn write(env: &Env, facts: &RequestFacts<'_>) {
    if !enabled(env) {
        return;
    }
    if let Ok(dataset) = env.analytics_engine(METRICS_BINDING) {
        // `writeDataPoint` is fire-and-forget; a failure is the platform's, not the request's.
        let _ = dataset.write_data_point(&take_point(facts));
    }
}

/// The data point of a request the fast path answered (the thin entry writes it when the binding is
/// there): route `gateway:protected`, the status it answered and its latency.
#[wasm_bindgen(js_name = gatehouseMetricsPoint)]
pub fn fast_path_point(status: u16, latency_ms: f64) -> JsValue {
    let facts = RequestFacts {
        worker: crate::health::WORKER,
        route: "gateway:protected",
        status,
        error: "",
        latency_ms,
        fast_path: true,
    };
    take_point(&facts).into()
}
