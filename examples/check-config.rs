//! Checks a Worker's configuration with the Worker's own parser, and prints every problem at once:
//! `cargo run --example check-config -- [-c wrangler.toml] [--env production] [--worker W] [--secrets FILE]`.
//!
//! Vars come from the wrangler config (`[vars]`, or `[env.<name>.vars]` with `--env`), secrets from
//! `--secrets FILE` or else the `.dev.vars` wrangler dev would read beside the config
//! (`.dev.vars.<env>` first with `--env`), and any name set in the process environment overrides
//! both (so a deploy pipeline can check `ISSUER=https://… SIGNING_KEYS=…`). The Worker (`all-in-one`,
//! `edge` or `issuer`) follows from the config's `main` unless `--worker` says. Exit status 0: the
//! configuration loads; 1: it does not (each problem on its own line); 2: bad usage.

use gatehouse::config_check::problems;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

struct Args {
    config: PathBuf,
    env: Option<String>,
    worker: Option<String>,
    secrets: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut out = Args { config: "wrangler.toml".into(), env: None, worker: None, secrets: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "-c" | "--config" => out.config = value()?.into(),
            "-e" | "--env" => out.env = Some(value()?),
            "--worker" => out.worker = Some(value()?),
            "--secrets" => out.secrets = Some(value()?.into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(out)
}

/// `NAME=value` lines (values may be quoted), as wrangler reads `.dev.vars`.
fn dotenv(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted =
                ['\'', '"'].iter().find_map(|q| v.strip_prefix(*q).and_then(|v| v.strip_suffix(*q))).unwrap_or(v);
            (k.trim().to_owned(), unquoted.to_owned())
        })
        .collect()
}

/// A TOML value as the Worker sees a var: strings as they are, anything else as JSON text.
fn var_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn run(args: &Args) -> Result<(String, Vec<String>, Vec<String>), String> {
    let text = std::fs::read_to_string(&args.config).map_err(|e| format!("{}: {e}", args.config.display()))?;
    let config: toml::Table = text.parse().map_err(|e| format!("{}: {e}", args.config.display()))?;
    let section = match &args.env {
        None => &config,
        Some(name) => config
            .get("env")
            .and_then(|e| e.get(name))
            .and_then(toml::Value::as_table)
            .ok_or_else(|| format!("{} has no [env.{name}]", args.config.display()))?,
    };
    // Vars are not inherited by an environment (wrangler's rule): only its own count.
    let vars: HashMap<String, String> = section
        .get("vars")
        .and_then(toml::Value::as_table)
        .map(|t| t.iter().map(|(k, v)| (k.clone(), var_text(v))).collect())
        .unwrap_or_default();
    let dir = args.config.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let secrets_file = args.secrets.clone().or_else(|| {
        let named = args.env.as_ref().map(|e| dir.join(format!(".dev.vars.{e}")));
        named.into_iter().chain([dir.join(".dev.vars")]).find(|p| p.exists())
    });
    let secrets = match &secrets_file {
        Some(path) => dotenv(&std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => HashMap::new(),
    };
    let main = section.get("main").or_else(|| config.get("main")).and_then(toml::Value::as_str).unwrap_or("");
    let worker = args.worker.clone().unwrap_or_else(|| {
        if main.contains("edge") {
            "edge".into()
        } else if main.contains("issuer") {
            "issuer".into()
        } else {
            "all-in-one".into()
        }
    });
    let runs_issuer = match worker.as_str() {
        "edge" => false,
        "issuer" | "all-in-one" => true,
        other => return Err(format!("--worker {other:?}: one of all-in-one, edge, issuer")),
    };
    let environment = |name: &str| std::env::var(name).ok();
    let var = |name: &str| environment(name).or_else(|| vars.get(name).cloned());
    let secret = |name: &str| environment(name).or_else(|| secrets.get(name).cloned());
    let found = problems(&var, &secret, runs_issuer).iter().map(ToString::to_string).collect();
    let what = format!(
        "{}{} ({worker} Worker{})",
        args.config.display(),
        args.env.as_ref().map(|e| format!(" --env {e}")).unwrap_or_default(),
        secrets_file.map(|p| format!(", secrets from {}", p.display())).unwrap_or_default(),
    );
    // Bindings are not inherited by an environment either. A missing rate limit is not an error
    // (a plan without Rate Limiting), but it is worth knowing.
    let bound: Vec<&str> = section
        .get("ratelimits")
        .and_then(toml::Value::as_array)
        .map(|list| list.iter().filter_map(|r| r.get("name").and_then(toml::Value::as_str)).collect())
        .unwrap_or_default();
    let notes = match runs_issuer {
        true => gatehouse::limits::Limit::ALL
            .iter()
            .map(|l| l.binding())
            .filter(|name| !bound.contains(name))
            .map(|name| {
                format!("note: no [[ratelimits]] binding {name}: that limit is off (docs/HARDENING.md \"Limits\")")
            })
            .collect(),
        false => Vec::new(),
    };
    Ok((what, found, notes))
}

fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("check-config: {e}\nusage: check-config [-c wrangler.toml] [--env NAME] [--worker all-in-one|edge|issuer] [--secrets FILE]");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok((what, found, notes)) if found.is_empty() => {
            println!("ok: {what} loads");
            for note in notes {
                eprintln!("{note}");
            }
            ExitCode::SUCCESS
        }
        Ok((what, found, _)) => {
            println!("{what}: {} problem{}", found.len(), if found.len() == 1 { "" } else { "s" });
            for problem in found {
                println!("  - {problem}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("check-config: {e}");
            ExitCode::from(2)
        }
    }
}
