//! Typed configuration, parsed once from vars and secrets; bad or missing values are errors, never insecure defaults.

use crate::account::family::Lifetimes;
use crate::issuers::{self, TrustedIssuer};
use crate::jwt::dpop::NonceKey;
use crate::jwt::remote::{self, FetchPolicy};
use crate::jwt::{Algorithm, KeyError, KeySet, Validator};
use crate::oauth::Clients;
use crate::password::{self, PasswordParams};
use crate::policy::Routes;
use crate::rotation::Schedule;
use std::fmt;
use std::rc::Rc;

/// Why the configuration was refused. Always the operator's fault; logged, never shown to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable or secret is not set.
    Missing(&'static str),
    /// A variable is set but unusable.
    Invalid { name: &'static str, reason: String },
    /// `SIGNING_KEYS` is unusable.
    Keys(KeyError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing(name) => write!(f, "configuration {name} is not set"),
            ConfigError::Invalid { name, reason } => write!(f, "configuration {name} is invalid: {reason}"),
            ConfigError::Keys(e) => write!(f, "configuration SIGNING_KEYS is invalid: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The variable or secret at fault.
    pub fn name(&self) -> &'static str {
        match self {
            ConfigError::Missing(name) | ConfigError::Invalid { name, .. } => name,
            ConfigError::Keys(_) => "SIGNING_KEYS",
        }
    }
}

/// Everything the worker needs, parsed and checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// `iss` of issued tokens and the only `iss` accepted.
    pub issuer: String,
    /// `aud` of issued tokens and the audience required.
    pub audience: String,
    /// Access-token lifetime, seconds.
    pub access_ttl: i64,
    /// Absolute session lifetime, seconds.
    pub refresh_ttl: i64,
    /// Idle session lifetime, seconds.
    pub refresh_idle: i64,
    /// How long a rotated refresh token may be replayed for the same pair, seconds.
    pub reuse_grace: i64,
    /// Clock skew tolerated, seconds.
    pub leeway: i64,
    /// Which paths are forwarded, with or without a token, and their scope and role requirements.
    pub routes: Routes,
    /// Where verified requests are forwarded (no trailing slash); `None` serves `/api/whoami` itself.
    pub origin_url: Option<String>,
    /// Other browser origins allowed for CORS and cookie requests.
    pub allowed_origins: Vec<String>,
    /// The keys of `SIGNING_KEYS` (without managed keys the first signs; all are published and
    /// accepted), or of `PUBLIC_KEYS` (an edge that only verifies gatehouse's tokens). Optional with
    /// managed keys or `ISSUER_JWKS_URL`.
    pub keys: Option<Rc<KeySet>>,
    /// Where an edge Worker of a split deployment gets the issuer's published keys (`ISSUER_JWKS_URL`).
    pub issuer_jwks: Option<IssuerJwks>,
    /// Managed keys (`KEY_MANAGEMENT=managed`): the key store generates, rotates and retires them.
    pub managed: Option<ManagedKeys>,
    /// argon2id cost for new password hashes.
    pub password: PasswordParams,
    /// The scheme of new password hashes (`PASSWORD_HASH`: argon2id, or pbkdf2 on the Free plan).
    pub password_scheme: password::Scheme,
    /// Scopes granted to newly registered users.
    pub default_scope: String,
    /// Roles granted to newly registered users.
    pub default_roles: Vec<String>,
    /// Other issuers whose tokens the edge accepts.
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// When remote key sets are fetched.
    pub jwks_policy: FetchPolicy,
    /// How long a key-set fetch may take, milliseconds.
    pub jwks_timeout_ms: u64,
    /// Clients allowed to call the introspection endpoint (none: it answers `invalid_client`).
    pub introspection_clients: Clients,
    /// How long an isolate reuses a denylist read, milliseconds (0: read on every request).
    pub revocation_cache_ms: u64,
    /// The gateway's CORS answers and origin assertion (see [`Gateway`]).
    pub gateway: Gateway,
    /// Sender-constrained tokens (see [`Dpop`]).
    pub dpop: Dpop,
    /// How registration answers for a taken email (`REGISTRATION_MODE`).
    pub registration_mode: RegistrationMode,
    /// Cloudflare Turnstile on registration and login (`TURNSTILE_SECRET`); `None`: off.
    pub turnstile: Option<Turnstile>,
    /// The WebAuthn relying party id (`WEBAUTHN_RP_ID`; default: the host of `ISSUER`).
    pub webauthn_rp_id: String,
    /// The origins passkey ceremonies may run on (`WEBAUTHN_ORIGINS`; default: `ISSUER`'s origin).
    pub webauthn_origins: Vec<String>,
    /// How mail is sent (`MAIL_TRANSPORT` and friends); `None`: no mail.
    pub mail: Option<crate::mail::MailConfig>,
    /// `EMAIL_VERIFICATION=required`: an unverified account cannot log in.
    pub email_verification_required: bool,
    /// `ADMIN_EMAILS`: verified accounts with these emails hold [`ADMIN_ROLE`] (normalised).
    pub admin_emails: Vec<String>,
    /// `TOKEN_CLAIMS`: metadata fields copied into access tokens.
    pub token_claims: Vec<TokenClaim>,
    /// `PASSWORD_BREACH_CHECK=hibp`: the range API's URL (`HIBP_RANGE_URL`); `None`: off.
    pub breach_check: Option<String>,
    /// `FAST_PATH=off`: the thin entry's fast path decides nothing, every request takes the full
    /// path (the reference it must equal; for diagnosing a difference, and the tests comparing them).
    pub fast_path: bool,
}

/// The role the admin routes require.
pub const ADMIN_ROLE: &str = "admin";
/// The most JSON bytes `TOKEN_CLAIMS` may add to an access token; fields beyond are left out.
pub const MAX_CUSTOM_CLAIMS_BYTES: usize = 1024;
/// The most JSON bytes of one metadata object (`app_metadata`, `user_metadata`).
pub const MAX_METADATA_BYTES: usize = 4096;
/// Claims `TOKEN_CLAIMS` may not name: gatehouse sets them, and an origin trusts them.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "iat",
    "exp",
    "nbf",
    "jti",
    "sid",
    "client_id",
    "scope",
    "roles",
    "email",
    "email_verified",
    "auth_time",
    "amr",
    "acr",
    "cnf",
    "azp",
    "nonce",
    "typ",
    "act",
    "may_act",
];

/// Which metadata a token claim is copied from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSource {
    /// `app_metadata`, set by admins.
    App,
    /// `user_metadata`, set by the user: never a basis for authorization.
    User,
}

/// One `TOKEN_CLAIMS` entry: `app_metadata.<key>` or `user_metadata.<key>` becomes the claim `<key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaim {
    /// Where the value comes from.
    pub source: MetadataSource,
    /// The field, and the claim's name.
    pub key: String,
}

/// Parses `TOKEN_CLAIMS`.
pub fn token_claims(text: &str) -> Result<Vec<TokenClaim>, String> {
    let mut claims: Vec<TokenClaim> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (source, key) = match item.split_once('.') {
            Some(("app_metadata", key)) => (MetadataSource::App, key),
            Some(("user_metadata", key)) => (MetadataSource::User, key),
            _ => return Err(format!("{item:?} is not app_metadata.<key> or user_metadata.<key>")),
        };
        let plain = !key.is_empty()
            && key.len() <= 64
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b':');
        if !plain {
            return Err(format!("{item:?}: the key must be 1 to 64 of A-Z a-z 0-9 _ - :"));
        }
        if RESERVED_CLAIMS.contains(&key) {
            return Err(format!("{item:?}: {key:?} is a claim gatehouse sets"));
        }
        if claims.iter().any(|c| c.key == key) {
            return Err(format!("{item:?}: the claim {key:?} is named twice"));
        }
        claims.push(TokenClaim { source, key: key.to_owned() });
    }
    Ok(claims)
}

/// `REGISTRATION_MODE`: what `POST /auth/register` answers for an email that is registered already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationMode {
    /// 409 `email_taken` (the default until gatehouse sends mail): registration tells anyone
    /// whether an email has an account.
    Conflict,
    /// 202 `{"status": "accepted"}` for a new and a taken email alike, after the same work: nothing
    /// to enumerate. The owner of a taken email learns of the attempt only by mail, once mail exists.
    Uniform,
}

/// Cloudflare Turnstile: the secret key and where tokens are verified.
#[derive(Clone, PartialEq, Eq)]
pub struct Turnstile {
    /// `TURNSTILE_SECRET`.
    pub secret: String,
    /// `TURNSTILE_VERIFY_URL` (default Cloudflare's siteverify; a loopback URL in tests).
    pub verify_url: String,
}

impl fmt::Debug for Turnstile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turnstile").field("verify_url", &self.verify_url).finish_non_exhaustive()
    }
}

/// `WEBAUTHN_RP_ID` and `WEBAUTHN_ORIGINS`, or their defaults from `ISSUER`: every origin must be
/// `https://` (or `http://` on a loopback host) and its host the RP ID or a subdomain of it
/// (WebAuthn §5.1.3: a browser refuses any other pair anyway). With neither var set and an `ISSUER`
/// that gives no such pair, there is no relying party (empty): every passkey ceremony fails.
fn webauthn_rp(var: &dyn Fn(&str) -> Option<String>, issuer: &str) -> Result<(String, Vec<String>), ConfigError> {
    let set = |name: &str| var(name).is_some_and(|t| !t.trim().is_empty());
    match checked_webauthn_rp(var, issuer) {
        Err(_) if !set("WEBAUTHN_RP_ID") && !set("WEBAUTHN_ORIGINS") => Ok((String::new(), Vec::new())),
        other => other,
    }
}

fn checked_webauthn_rp(
    var: &dyn Fn(&str) -> Option<String>,
    issuer: &str,
) -> Result<(String, Vec<String>), ConfigError> {
    let invalid = |name: &'static str, reason: &str| ConfigError::Invalid { name, reason: reason.into() };
    let nonempty = |name: &str| var(name).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    let origins_text = nonempty("WEBAUTHN_ORIGINS");
    let issuer_url = crate::whatwg::Url::parse(issuer);
    let origins: Vec<String> = match &origins_text {
        Some(text) => {
            text.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect()
        }
        None => issuer_url.iter().filter_map(crate::whatwg::Url::http_origin).collect(),
    };
    let rp_id = match nonempty("WEBAUTHN_RP_ID") {
        Some(id) => id.to_ascii_lowercase(),
        None => issuer_url.as_ref().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default(),
    };
    let name = if origins_text.is_some() { "WEBAUTHN_ORIGINS" } else { "WEBAUTHN_RP_ID" };
    if rp_id.is_empty() || rp_id.contains([':', '/']) {
        return Err(invalid("WEBAUTHN_RP_ID", "must be a host name (default: the host of ISSUER)"));
    }
    if origins.is_empty() {
        return Err(invalid(name, "no origin: set WEBAUTHN_ORIGINS or an http(s) ISSUER"));
    }
    for origin in &origins {
        let url = crate::whatwg::Url::parse(origin).ok_or_else(|| invalid("WEBAUTHN_ORIGINS", "not a URL"))?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && url.host_is_loopback() == Some(true));
        if !scheme_ok || url.http_origin().as_ref() != Some(origin) {
            return Err(invalid("WEBAUTHN_ORIGINS", "each origin must be https://host[:port] (http only on loopback)"));
        }
        if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
            return Err(invalid(name, "every origin's host must be WEBAUTHN_RP_ID or a subdomain of it"));
        }
    }
    Ok((rp_id, origins))
}

/// Where the edge Worker of a split deployment reads the issuer's published keys
/// (`ISSUER_JWKS_URL`): its JWKS URL, or `service:<BINDING>` for the issuer Worker behind a service
/// binding (fetched at `/.well-known/jwks.json` through it). Cached and refetched like a trusted
/// issuer's set (`JWKS_*`), so managed and rotated keys reach the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerJwks {
    /// An `https://` URL (or `http://` on a loopback host, for development).
    Url(String),
    /// A service binding's name.
    Service(String),
}

impl IssuerJwks {
    /// Parses `ISSUER_JWKS_URL`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(binding) = text.strip_prefix("service:") {
            let plain = !binding.is_empty() && binding.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            return match plain {
                true => Ok(IssuerJwks::Service(binding.to_owned())),
                false => Err(format!("{binding:?} is not a binding name")),
            };
        }
        crate::issuers::jwks_url_allowed(text).map(IssuerJwks::Url)
    }

    /// The URL the set is fetched from (a service binding's is internal).
    pub fn url(&self) -> String {
        match self {
            IssuerJwks::Url(url) => url.clone(),
            IssuerJwks::Service(binding) => format!("https://{binding}.service.internal/.well-known/jwks.json"),
        }
    }
}

/// The settings of managed keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedKeys {
    /// The algorithm of the keys the store generates.
    pub alg: Algorithm,
    /// When keys are published, sign and retire.
    pub schedule: Schedule,
    /// How long the edge and the account objects keep the store's keys before asking again, seconds.
    pub cache_seconds: i64,
}

/// The `client_id` claim of tokens gatehouse issues to its own clients.
pub const CLIENT_ID: &str = "gatehouse";

/// The refresh-token cookie (API.md "login"); the edge never forwards it to the origin.
pub const REFRESH_COOKIE: &str = "__Host-gatehouse_rt";

/// How long an isolate reuses a denylist read by default, seconds (docs/ARCHITECTURE.md "Revocation at the edge").
pub const DEFAULT_REVOCATION_CACHE: i64 = 5;

/// Upper bounds that catch unit mistakes (milliseconds for seconds) rather than policy.
const MAX_ACCESS_TTL: i64 = 24 * 3600;
const MAX_LEEWAY: i64 = 300;
const MAX_GRACE: i64 = 300;
const MAX_REFRESH_TTL: i64 = 400 * 24 * 3600;

fn seconds(
    var: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let Some(text) = var(name) else { return Ok(default) };
    let value: i64 = text
        .trim()
        .parse()
        .map_err(|_| ConfigError::Invalid { name, reason: "not a whole number of seconds".into() })?;
    if !(min..=max).contains(&value) {
        return Err(ConfigError::Invalid { name, reason: format!("must be between {min} and {max}") });
    }
    Ok(value)
}

fn required(var: &dyn Fn(&str) -> Option<String>, name: &'static str) -> Result<String, ConfigError> {
    match var(name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// Checks an origin of the form `scheme://host[:port]`, returning it lower-cased.
pub fn parse_origin(text: &str) -> Option<String> {
    // None for a scheme other than http(s), or a URL without a host.
    let origin = crate::whatwg::Url::parse(text)?.http_origin()?;
    // The text must be exactly an origin: no path, query, fragment or credentials.
    (origin == text.trim_end_matches('/').to_ascii_lowercase()).then_some(origin)
}

impl Config {
    /// Parses the configuration from a variable lookup and a secret lookup.
    pub fn from_lookup(
        var: &dyn Fn(&str) -> Option<String>,
        secret: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::from_lookup_for(var, secret, cfg!(feature = "issuer"))
    }

    /// [`Config::from_lookup`] for a Worker that does (`runs_issuer`) or does not run the issuer,
    /// whatever this build is (the `check-config` example checks any Worker's configuration natively).
    /// The issuer's own settings are read and checked only for a Worker that runs it, and only by a
    /// build with the `issuer` feature (the default, which native builds use).
    pub fn from_lookup_for(
        var: &dyn Fn(&str) -> Option<String>,
        secret: &dyn Fn(&str) -> Option<String>,
        runs_issuer: bool,
    ) -> Result<Config, ConfigError> {
        let issuer = required(var, "ISSUER")?;
        let audience = required(var, "AUDIENCE")?;
        // What only the issuer reads (passwords, registration, introspection clients, Turnstile, mail,
        // the claims and admins of new tokens, passkeys): a Worker without it neither reads nor checks
        // these and keeps their defaults. `cfg!` makes this a constant in a build without the issuer,
        // so the edge's wasm does not carry their parsers (nor the mail templates).
        let issuer_side = cfg!(feature = "issuer") && runs_issuer;
        let access_ttl = seconds(var, "ACCESS_TTL_SECONDS", 900, 1, MAX_ACCESS_TTL)?;
        let refresh_ttl = seconds(var, "REFRESH_TTL_SECONDS", 2_592_000, 60, MAX_REFRESH_TTL)?;
        let refresh_idle = seconds(var, "REFRESH_IDLE_SECONDS", 1_209_600, 60, MAX_REFRESH_TTL)?;
        let reuse_grace = seconds(var, "REFRESH_REUSE_GRACE_SECONDS", 10, 0, MAX_GRACE)?;
        let leeway = seconds(var, "CLOCK_LEEWAY_SECONDS", 30, 0, MAX_LEEWAY)?;

        let routes = Routes::parse(
            var("PROTECTED_PREFIXES").as_deref(),
            var("PUBLIC_PREFIXES").as_deref(),
            var("OPTIONAL_AUTH_PREFIXES").as_deref(),
            var("ROUTE_POLICIES").as_deref(),
        )
        .map_err(|e| ConfigError::Invalid { name: e.name, reason: e.reason })?;

        let origin_url = match var("ORIGIN_URL") {
            None => None,
            Some(text) if text.trim().is_empty() => None,
            Some(text) => {
                let url = crate::whatwg::Url::parse(text.trim())
                    .ok_or_else(|| ConfigError::Invalid { name: "ORIGIN_URL", reason: "not a URL".into() })?;
                if !url.is_http() || url.query().is_some() || url.fragment().is_some() {
                    return Err(ConfigError::Invalid {
                        name: "ORIGIN_URL",
                        reason: "must be an http(s) URL without query or fragment".into(),
                    });
                }
                Some(url.as_str().trim_end_matches('/').to_owned())
            }
        };

        let allowed_origins = match var("ALLOWED_ORIGINS") {
            None => Vec::new(),
            Some(text) => text
                .split([',', ' '])
                .filter(|o| !o.is_empty())
                .map(|o| {
                    parse_origin(o).ok_or_else(|| ConfigError::Invalid {
                        name: "ALLOWED_ORIGINS",
                        reason: format!("{o:?} is not an origin like https://app.example.com"),
                    })
                })
                .collect::<Result<_, _>>()?,
        };

        let (password, password_scheme) = if issuer_side {
            let params = PasswordParams::new(
                seconds(var, "ARGON2_MEMORY_KIB", i64::from(password::DEFAULT_M_KIB), 1, i64::from(u32::MAX))? as u32,
                seconds(var, "ARGON2_ITERATIONS", i64::from(password::DEFAULT_T), 1, 100)? as u32,
                seconds(var, "ARGON2_PARALLELISM", i64::from(password::DEFAULT_P), 1, 100)? as u32,
            )
            .map_err(|e| ConfigError::Invalid { name: "ARGON2_MEMORY_KIB", reason: e.to_string() })?;
            let scheme = either(
                var,
                "PASSWORD_HASH",
                ("argon2id", password::Scheme::Argon2id),
                ("pbkdf2", password::Scheme::Pbkdf2),
            )?;
            (params, scheme)
        } else {
            (PasswordParams::default(), password::Scheme::Argon2id)
        };
        let var_if_issuer = |name: &str| if issuer_side { var(name) } else { None };
        let default_scope = var_if_issuer("DEFAULT_SCOPE").unwrap_or_else(|| "api".to_owned()).trim().to_owned();
        let default_roles: Vec<String> = var_if_issuer("DEFAULT_ROLES")
            .unwrap_or_else(|| "user".to_owned())
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
        if default_scope.chars().any(|c| c.is_control())
            || default_roles.iter().any(|r| r.chars().any(char::is_control))
        {
            return Err(ConfigError::Invalid { name: "DEFAULT_SCOPE", reason: "control characters".into() });
        }

        let trusted_issuers = issuers::parse(&var("TRUSTED_ISSUERS").unwrap_or_default(), &issuer)
            .map_err(|e| ConfigError::Invalid { name: "TRUSTED_ISSUERS", reason: e.to_string() })?;
        let jwks_policy = FetchPolicy {
            max_age: seconds(var, "JWKS_CACHE_SECONDS", remote::DEFAULT_MAX_AGE, 10, 86_400)?,
            cooldown: seconds(var, "JWKS_COOLDOWN_SECONDS", remote::DEFAULT_COOLDOWN, 1, 3_600)?,
            max_stale: seconds(var, "JWKS_MAX_STALE_SECONDS", remote::DEFAULT_MAX_STALE, 60, 7 * 86_400)?,
        };
        if jwks_policy.max_stale < jwks_policy.max_age {
            return Err(ConfigError::Invalid {
                name: "JWKS_MAX_STALE_SECONDS",
                reason: "must be at least JWKS_CACHE_SECONDS".into(),
            });
        }
        let jwks_timeout_ms = seconds(var, "JWKS_TIMEOUT_MS", remote::DEFAULT_TIMEOUT_MS as i64, 100, 30_000)? as u64;

        let revocation_cache_ms =
            seconds(var, "REVOCATION_CACHE_SECONDS", DEFAULT_REVOCATION_CACHE, 0, 60)? as u64 * 1000;
        let introspection_clients = match secret("INTROSPECTION_CLIENTS") {
            Some(text) if issuer_side => Clients::parse(&text)
                .map_err(|reason| ConfigError::Invalid { name: "INTROSPECTION_CLIENTS", reason })?,
            _ => Clients::default(),
        };

        let managed = match var("KEY_MANAGEMENT").as_deref().map(str::trim) {
            None | Some("") | Some("static") => None,
            Some("managed") => {
                let alg = match var("MANAGED_KEY_ALG").as_deref().map(str::trim) {
                    None | Some("") | Some("EdDSA") => Algorithm::EdDsa,
                    Some("ES256") => Algorithm::Es256,
                    Some(other) => {
                        return Err(ConfigError::Invalid {
                            name: "MANAGED_KEY_ALG",
                            reason: format!("{other:?} is not EdDSA or ES256"),
                        })
                    }
                };
                let rotate_every = seconds(var, "KEY_ROTATION_SECONDS", 30 * 86_400, 10, 400 * 86_400)?;
                let publish_ahead = seconds(var, "KEY_PUBLISH_SECONDS", 3_600, 2, 30 * 86_400)?;
                let cache_seconds = seconds(var, "MANAGED_KEYS_CACHE_SECONDS", 60, 1, 3_600)?;
                // A key must be published before any signer or verifier could hold a key set
                // without it, and must sign for longer than it is announced.
                if publish_ahead <= cache_seconds || rotate_every <= publish_ahead {
                    return Err(ConfigError::Invalid {
                        name: "KEY_PUBLISH_SECONDS",
                        reason: "must be more than MANAGED_KEYS_CACHE_SECONDS and less than KEY_ROTATION_SECONDS"
                            .into(),
                    });
                }
                let retire_after = access_ttl + leeway;
                Some(ManagedKeys {
                    alg,
                    schedule: Schedule { rotate_every, publish_ahead, retire_after },
                    cache_seconds,
                })
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "KEY_MANAGEMENT",
                    reason: format!("{other:?} is not \"static\" or \"managed\""),
                })
            }
        };
        let keys =
            match (secret("SIGNING_KEYS"), var("PUBLIC_KEYS").filter(|t| !t.trim().is_empty())) {
                (Some(_), Some(_)) => return Err(ConfigError::Invalid {
                    name: "PUBLIC_KEYS",
                    reason:
                        "set SIGNING_KEYS or PUBLIC_KEYS, not both (the public halves of SIGNING_KEYS are published)"
                            .into(),
                }),
                (Some(text), None) => Some(Rc::new(KeySet::from_private_jwks(&text).map_err(ConfigError::Keys)?)),
                (None, Some(text)) => Some(Rc::new(
                    KeySet::from_public_jwks(&text)
                        .map_err(|e| ConfigError::Invalid { name: "PUBLIC_KEYS", reason: e.to_string() })?,
                )),
                (None, None) => None,
            };
        let issuer_jwks = match var("ISSUER_JWKS_URL").map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
            None => None,
            Some(text) => Some(
                IssuerJwks::parse(&text).map_err(|reason| ConfigError::Invalid { name: "ISSUER_JWKS_URL", reason })?,
            ),
        };
        // An issuer signs: with SIGNING_KEYS, or managed keys. An edge verifies its issuer's tokens
        // with any of those, PUBLIC_KEYS, or the issuer's published set, or only trusted issuers'.
        let signs = keys.as_ref().is_some_and(|k| k.signing_key().is_some()) || managed.is_some();
        if runs_issuer && !signs {
            return Err(ConfigError::Missing("SIGNING_KEYS"));
        }
        // A verifier of other issuers' tokens only (TRUSTED_ISSUERS) needs no keys of gatehouse's.
        if keys.is_none() && managed.is_none() && issuer_jwks.is_none() && trusted_issuers.is_empty() {
            return Err(ConfigError::Missing("SIGNING_KEYS"));
        }

        let registration_mode = if issuer_side {
            either(
                var,
                "REGISTRATION_MODE",
                ("conflict", RegistrationMode::Conflict),
                ("uniform", RegistrationMode::Uniform),
            )?
        } else {
            RegistrationMode::Conflict
        };
        let turnstile_secret = secret("TURNSTILE_SECRET").filter(|_| issuer_side);
        let turnstile = match turnstile_secret.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
            None => None,
            Some(secret) => {
                let url = var("TURNSTILE_VERIFY_URL").map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
                let verify_url =
                    crate::issuers::jwks_url_allowed(url.as_deref().unwrap_or(crate::limits::TURNSTILE_DEFAULT_URL))
                        .map_err(|reason| ConfigError::Invalid { name: "TURNSTILE_VERIFY_URL", reason })?;
                Some(Turnstile { secret, verify_url })
            }
        };
        // The key sealing TOTP secrets (read by the account object): optional, and without it no
        // second factor can be enrolled; when set it must be 32 bytes of unpadded base64url.
        if issuer_side {
            if let Some(text) = secret("MFA_ENCRYPTION_KEY") {
                let length = crate::jwt::b64::decode(text.trim()).map(|k| k.len());
                if length != Ok(32) {
                    return Err(ConfigError::Invalid {
                        name: "MFA_ENCRYPTION_KEY",
                        reason: "must be 32 random bytes in unpadded base64url".into(),
                    });
                }
            }
        }

        let mail = if issuer_side {
            crate::mail::MailConfig::from_lookup(var, &issuer)
                .map_err(|(name, reason)| ConfigError::Invalid { name, reason })?
        } else {
            None
        };
        let fast_path = either(var, "FAST_PATH", ("on", true), ("off", false))?;
        let email_verification_required =
            issuer_side && either(var, "EMAIL_VERIFICATION", ("optional", false), ("required", true))?;
        if email_verification_required && mail.is_none() {
            return Err(ConfigError::Invalid {
                name: "EMAIL_VERIFICATION",
                reason: "\"required\" needs a MAIL_TRANSPORT, or nobody could verify".into(),
            });
        }
        let (admin_emails, token_claims) = if issuer_side {
            let admins = var("ADMIN_EMAILS")
                .unwrap_or_default()
                .split(',')
                .map(|e| e.trim().to_lowercase())
                .filter(|e| !e.is_empty())
                .collect();
            let claims = token_claims(&var("TOKEN_CLAIMS").unwrap_or_default())
                .map_err(|reason| ConfigError::Invalid { name: "TOKEN_CLAIMS", reason })?;
            (admins, claims)
        } else {
            (Vec::new(), Vec::new())
        };
        let breach_check = match var_if_issuer("PASSWORD_BREACH_CHECK").as_deref().map(str::trim) {
            None | Some("") | Some("off") => None,
            Some("hibp") => {
                let url = var("HIBP_RANGE_URL").map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
                let url = crate::issuers::jwks_url_allowed(url.as_deref().unwrap_or(crate::password::HIBP_DEFAULT_URL))
                    .map_err(|reason| ConfigError::Invalid { name: "HIBP_RANGE_URL", reason })?;
                Some(url)
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "PASSWORD_BREACH_CHECK",
                    reason: format!("{other:?} is not \"off\" or \"hibp\""),
                })
            }
        };
        let dpop = Dpop::from_lookup(var, secret)?;
        // Passkey ceremonies are the issuer's: a Worker without it neither reads nor checks these
        // (nor parses ISSUER as a URL for their defaults, on every isolate's first request).
        let (webauthn_rp_id, webauthn_origins) =
            if issuer_side { webauthn_rp(var, &issuer)? } else { (String::new(), Vec::new()) };
        let gateway =
            Gateway::from_lookup(var, origin_url.as_deref(), keys.as_ref().is_some_and(|k| k.signing_key().is_some()))?;

        Ok(Config {
            issuer,
            audience,
            access_ttl,
            refresh_ttl,
            refresh_idle,
            reuse_grace,
            leeway,
            routes,
            origin_url,
            allowed_origins,
            keys,
            issuer_jwks,
            managed,
            password,
            password_scheme,
            default_scope,
            default_roles,
            trusted_issuers,
            jwks_policy,
            jwks_timeout_ms,
            introspection_clients,
            revocation_cache_ms,
            gateway,
            dpop,
            registration_mode,
            turnstile,
            webauthn_rp_id,
            webauthn_origins,
            mail,
            email_verification_required,
            admin_emails,
            token_claims,
            breach_check,
            fast_path,
        })
    }

    /// The claim checks for this configuration.
    pub fn validator(&self) -> Validator {
        Validator::new(self.issuer.clone(), self.audience.clone(), self.leeway)
    }

    /// The session lifetimes.
    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes { absolute: self.refresh_ttl, idle: self.refresh_idle, grace: self.reuse_grace }
    }

    /// Until when a revocation made at `now` must stand: the last access token it covers expires by then.
    pub fn cover_until(&self, now: i64) -> i64 {
        now + self.access_ttl + self.leeway
    }

    /// The trusted issuer whose `iss` this is, if any.
    pub fn trusted_issuer(&self, iss: &str) -> Option<&TrustedIssuer> {
        self.trusted_issuers.iter().find(|t| t.issuer == iss)
    }
}

// The gateway's variables (docs/GATEWAY.md): CORS preflight answers and the origin assertion.

/// The gateway's settings besides its routes (`Config::routes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// `CORS_ALLOW_METHODS`: `Access-Control-Allow-Methods` of preflight answers.
    pub cors_allow_methods: String,
    /// `CORS_ALLOW_HEADERS`: `Access-Control-Allow-Headers` of preflight answers.
    pub cors_allow_headers: String,
    /// `CORS_MAX_AGE`: how long browsers may keep a preflight answer, seconds.
    pub cors_max_age: i64,
    /// With `ORIGIN_ASSERTION=on`, the `aud` of the signed origin assertion: `ORIGIN_AUDIENCE`, by
    /// default `ORIGIN_URL`. `None`: no assertion is sent.
    pub assertion_audience: Option<String>,
}

/// The `CORS_ALLOW_METHODS` default.
pub const DEFAULT_CORS_METHODS: &str = "GET, HEAD, POST";
/// The `CORS_ALLOW_HEADERS` default.
pub const DEFAULT_CORS_HEADERS: &str = "authorization, content-type";
/// The `CORS_MAX_AGE` default, seconds.
pub const DEFAULT_CORS_MAX_AGE: i64 = 600;

/// A comma-separated list of RFC 9110 §5.6.2 tokens, written back as `a, b, c`.
fn token_list(var: &dyn Fn(&str) -> Option<String>, name: &'static str, default: &str) -> Result<String, ConfigError> {
    let text = var(name).unwrap_or_else(|| default.to_owned());
    let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let items: Vec<&str> = text.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    if let Some(bad) = items.iter().find(|t| !t.chars().all(token_char)) {
        return Err(ConfigError::Invalid { name, reason: format!("{bad:?} is not a method or header name") });
    }
    Ok(items.join(", "))
}

/// A variable naming one of two settings: unset, empty or `default`'s word gives `default`'s value,
/// `other`'s word gives `other`'s, anything else is refused naming both words.
fn either<T>(
    var: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: (&str, T),
    other: (&str, T),
) -> Result<T, ConfigError> {
    match var(name).as_deref().map(str::trim) {
        None | Some("") => Ok(default.1),
        Some(word) if word == default.0 => Ok(default.1),
        Some(word) if word == other.0 => Ok(other.1),
        Some(word) => {
            Err(ConfigError::Invalid { name, reason: format!("{word:?} is not \"{}\" or \"{}\"", default.0, other.0) })
        }
    }
}

impl Gateway {
    fn from_lookup(
        var: &dyn Fn(&str) -> Option<String>,
        origin_url: Option<&str>,
        can_sign: bool,
    ) -> Result<Gateway, ConfigError> {
        let assertion_audience = match var("ORIGIN_ASSERTION").as_deref().map(str::trim) {
            None | Some("") | Some("off") => None,
            Some("on") => {
                let invalid = |reason: &str| ConfigError::Invalid { name: "ORIGIN_ASSERTION", reason: reason.into() };
                let origin = origin_url.ok_or_else(|| invalid("needs ORIGIN_URL"))?;
                if !can_sign {
                    return Err(invalid("needs SIGNING_KEYS: the first key signs the assertion"));
                }
                let audience = var("ORIGIN_AUDIENCE").map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
                Some(audience.unwrap_or_else(|| origin.to_owned()))
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "ORIGIN_ASSERTION",
                    reason: format!("{other:?} is not \"on\" or \"off\""),
                })
            }
        };
        Ok(Gateway {
            cors_allow_methods: token_list(var, "CORS_ALLOW_METHODS", DEFAULT_CORS_METHODS)?,
            cors_allow_headers: token_list(var, "CORS_ALLOW_HEADERS", DEFAULT_CORS_HEADERS)?,
            cors_max_age: seconds(var, "CORS_MAX_AGE", DEFAULT_CORS_MAX_AGE, 0, 86_400)?,
            assertion_audience,
        })
    }
}

// DPoP (RFC 9449, docs/DPOP.md): whether tokens are bound to a client's key, and server nonces.

/// `DPOP_MODE`: how the issuer and the edge treat DPoP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopMode {
    /// No DPoP: `DPoP` headers are ignored, tokens are bearer tokens, the `DPoP` scheme is unknown.
    Off,
    /// A proof at login, refresh or `/oauth/token` binds the tokens; bearer tokens stay accepted.
    Optional,
    /// Every login needs a proof, and the edge refuses gatehouse's own tokens as bearer tokens.
    Required,
}

/// The DPoP settings.
#[derive(Debug, Clone)]
pub struct Dpop {
    /// `DPOP_MODE` (default `optional`).
    pub mode: DpopMode,
    /// The key of server nonces (RFC 9449 §8, §9), from the secret `DPOP_NONCE_SECRET`. `None`:
    /// nonces are off (not derived from another secret); with it, every proof needs a current nonce.
    pub nonce: Option<NonceKey>,
    /// `DPOP_NONCE_SECONDS`: how long a nonce stays valid.
    pub nonce_max_age: i64,
}

/// The `DPOP_NONCE_SECONDS` default: five minutes, then one extra round trip to get a new nonce.
pub const DEFAULT_DPOP_NONCE_SECONDS: i64 = 300;

impl Dpop {
    fn from_lookup(
        var: &dyn Fn(&str) -> Option<String>,
        secret: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Dpop, ConfigError> {
        let mode = match var("DPOP_MODE").as_deref().map(str::trim) {
            None | Some("") | Some("optional") => DpopMode::Optional,
            Some("off") => DpopMode::Off,
            Some("required") => DpopMode::Required,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "DPOP_MODE",
                    reason: format!("{other:?} is not \"off\", \"optional\" or \"required\""),
                })
            }
        };
        let nonce = match secret("DPOP_NONCE_SECRET") {
            None => None,
            Some(text) => Some(
                NonceKey::new(text.trim().as_bytes())
                    .map_err(|e| ConfigError::Invalid { name: "DPOP_NONCE_SECRET", reason: e.to_string() })?,
            ),
        };
        let nonce_max_age = seconds(var, "DPOP_NONCE_SECONDS", DEFAULT_DPOP_NONCE_SECONDS, 10, 3_600)?;
        Ok(Dpop { mode, nonce: nonce.filter(|_| mode != DpopMode::Off), nonce_max_age })
    }

    /// Whether DPoP is on (`optional` or `required`).
    pub fn is_on(&self) -> bool {
        self.mode != DpopMode::Off
    }
}
