//! `GET /healthz` (API.md "v2 additions"): what every Worker answers about itself, without touching
//! KV, a Durable Object or another Worker: status, crate version, build id and which Worker it is.

/// The crate version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The build id baked in by build.rs: `GATEHOUSE_BUILD_ID`, the git commit, or `unknown`.
pub const BUILD: &str = env!("GATEHOUSE_BUILD");

/// Which of the three Workers this build is (Cargo features `edge` and `issuer`).
pub const WORKER: &str = match (cfg!(feature = "edge"), cfg!(feature = "issuer")) {
    (true, true) => "all-in-one",
    (true, false) => "edge",
    (false, true) => "issuer",
    (false, false) => "library",
};

/// The path every Worker answers itself, before any other route (so no prefix can shadow it).
pub const PATH: &str = "/healthz";

/// The body of the health answer: `{"status": "ok", "version", "build", "worker"}`.
pub fn body() -> serde_json::Value {
    serde_json::json!({ "status": "ok", "version": VERSION, "build": BUILD, "worker": WORKER })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_names_version_build_and_worker() {
        let body = body();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        let build = body["build"].as_str().unwrap();
        assert!(
            build == "unknown" || build.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c)),
            "{build}"
        );
        assert_eq!(body["worker"], "all-in-one", "the default features build the all-in-one Worker");
    }
}
