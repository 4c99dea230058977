//! The Workers' wasm is this crate: gatehouse linked as a `cdylib`. Its exports (the fetch entry, the
//! fast path's functions, the Durable Objects) are gatehouse's own `#[wasm_bindgen]` items; linking
//! the crate is all this file does.
//!
//! gatehouse cannot be that cdylib itself: its tests, examples and benchmarks need it as an rlib,
//! and cargo runs LTO for a library only when all of its crate types can take it (an rlib cannot),
//! so the Workers were linked without LTO. Here the profile's `lto = true` applies to the whole
//! program.

pub use gatehouse;
