//! Build-time configuration: which pure-Rust signature primitives this build links.
//! - `gatehouse_rsa`: the `rsa` crate (native builds only: tests, examples, benchmarks). No Worker
//!   links it: RS256 is verified and signed by the runtime's WebCrypto there.
//! - `gatehouse_p256`: the `p256` crate (native builds, and the issuer Worker, which signs ES256 and
//!   checks passkeys). The edge Worker verifies ES256 with WebCrypto only.
//! - `GATEHOUSE_BUILD`: the build id `GET /healthz` reports: `GATEHOUSE_BUILD_ID` if set (a CI or
//!   deploy pipeline's own id), else the git commit (12 hex digits), else `unknown` (outside git).

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
    println!("cargo::rustc-env=GATEHOUSE_BUILD={}", build_id());
}

/// The build id: `GATEHOUSE_BUILD_ID`, or the commit git checked out, or `unknown`.
fn build_id() -> String {
    println!("cargo::rerun-if-env-changed=GATEHOUSE_BUILD_ID");
    let plain = |id: &str| {
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
    };
    if let Ok(id) = std::env::var("GATEHOUSE_BUILD_ID") {
        if plain(&id) {
            return id;
        }
    }
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").args(args).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    // Rebuilt when HEAD moves: HEAD itself, the branch it names, and the packed refs. Only files that
    // exist are named (cargo reruns a build script on every build for a missing one).
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"]), git(&["rev-parse", "--git-path", "packed-refs"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    for path in watched.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo::rerun-if-changed={path}");
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"]).filter(|id| plain(id)).unwrap_or_else(|| "unknown".to_owned())
}
