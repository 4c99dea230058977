//! Build-time configuration: which pure-Rust signature primitives this build links.
//! - `gatehouse_rsa`: the `rsa` crate (native builds only: tests, examples, benchmarks). No Worker
//!   links it: RS256 is verified and signed by the runtime's WebCrypto there.
//! - `gatehouse_p256`: the `p256` crate (native builds, and the issuer Worker, which signs ES256 and
//!   checks passkeys). The edge Worker verifies ES256 with WebCrypto only.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gatehouse_rsa)");
    println!("cargo::rustc-check-cfg=cfg(gatehouse_p256)");
    println!("cargo::rerun-if-changed=build.rs");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "wasm32");
    let issuer = std::env::var_os("CARGO_FEATURE_ISSUER").is_some();
    if !wasm {
        println!("cargo::rustc-cfg=gatehouse_rsa");
    }
    if !wasm || issuer {
        println!("cargo::rustc-cfg=gatehouse_p256");
    }
}
