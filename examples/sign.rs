//! Signs an access token with gatehouse's own signer, for interop tests and manual use:
//! `sign <private JWKS file> <kid> <claims JSON>` prints the compact token.

use gatehouse::jwt::KeySet;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, jwks_path, kid, claims] = args.as_slice() else {
        eprintln!("usage: sign <private JWKS file> <kid> <claims JSON>");
        return ExitCode::from(2);
    };
    let run = || -> Result<String, String> {
        let text = std::fs::read_to_string(jwks_path).map_err(|e| e.to_string())?;
        let set = KeySet::from_private_jwks(&text).map_err(|e| e.to_string())?;
        let key = set.signing_keys().find(|k| k.public().kid() == kid).ok_or("no private key with that kid")?;
        let claims: serde_json::Value = serde_json::from_str(claims).map_err(|e| e.to_string())?;
        key.sign(&claims).map_err(|e| e.to_string())
    };
    match run() {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sign: {e}");
            ExitCode::FAILURE
        }
    }
}
