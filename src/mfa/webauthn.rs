//! WebAuthn (Level 3) registration and authentication ceremonies verified in Rust: the relying
//! party steps of §7.1 and §7.2 over clientDataJSON, the attestation object and authenticator data.
//!
//! Scope, and what is refused:
//! - Credential keys: COSE EC2 P-256 with alg -7 (ES256) and OKP Ed25519 with alg -8 (EdDSA); any
//!   other key is [`WebAuthnError::UnsupportedAlgorithm`].
//! - Attestation: fmt `none` (what browsers send by default) and `packed` self attestation (no
//!   certificate chain, signed with the credential key itself, §8.2). Every other format, and
//!   `packed` with `x5c`, is [`WebAuthnError::UnsupportedAttestation`]: checking certificate chains
//!   and metadata would buy nothing here, since gatehouse does not restrict authenticator models.
//! - Embedding: a ceremony run in a cross-origin iframe (`crossOrigin: true`, or any `topOrigin`)
//!   is refused; gatehouse's pages are never embedded.
//!
//! Left to the caller: making a fresh challenge (at least 16 random bytes, §13.4.3) and using it
//! once, finding the stored credential by its id and checking it belongs to the user, refusing a
//! credential id that is already registered (§7.1 step 25), and storing the updated credential.

use super::cbor::{self, Value};
use crate::jwt::b64;
use ed25519_dalek::Verifier as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// The longest credential id accepted, bytes (§7.1 step 24).
pub const MAX_CREDENTIAL_ID_BYTES: usize = 1023;
/// The shortest challenge the caller may expect, bytes (§13.4.3).
pub const MIN_CHALLENGE_BYTES: usize = 16;
/// The longest clientDataJSON accepted, bytes.
pub const MAX_CLIENT_DATA_BYTES: usize = 4096;
/// The longest attestation object or authenticator data accepted, bytes.
pub const MAX_AUTHENTICATOR_BYTES: usize = 8192;
/// The transports kept from `getTransports()` (§5.8.4).
const KNOWN_TRANSPORTS: [&str; 6] = ["usb", "nfc", "ble", "smart-card", "hybrid", "internal"];

/// Authenticator data flags (§6.1).
const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_BE: u8 = 0x08;
const FLAG_BS: u8 = 0x10;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// COSE key labels and values (RFC 9052 §7, RFC 9053 §2 and §7).
const COSE_KTY: i128 = 1;
const COSE_ALG: i128 = 3;
const COSE_CRV: i128 = -1;
const COSE_X: i128 = -2;
const COSE_Y: i128 = -3;
const COSE_D: i128 = -4;
const KTY_OKP: i128 = 1;
const KTY_EC2: i128 = 2;
const CRV_P256: i128 = 1;
const CRV_ED25519: i128 = 6;

/// A credential signature algorithm gatehouse accepts, by its COSE identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub enum CoseAlgorithm {
    /// ECDSA with P-256 and SHA-256, COSE -7.
    Es256,
    /// EdDSA with Ed25519, COSE -8.
    EdDsa,
}

impl CoseAlgorithm {
    /// Every accepted algorithm, for `pubKeyCredParams` (EdDSA first, as the smaller and faster).
    pub const ALL: [CoseAlgorithm; 2] = [CoseAlgorithm::EdDsa, CoseAlgorithm::Es256];

    /// The COSE algorithm identifier.
    pub fn id(self) -> i64 {
        match self {
            CoseAlgorithm::Es256 => -7,
            CoseAlgorithm::EdDsa => -8,
        }
    }
}

impl TryFrom<i64> for CoseAlgorithm {
    type Error = String;

    fn try_from(id: i64) -> Result<Self, Self::Error> {
        match id {
            -7 => Ok(CoseAlgorithm::Es256),
            -8 => Ok(CoseAlgorithm::EdDsa),
            other => Err(format!("COSE algorithm {other} is not supported")),
        }
    }
}

impl From<CoseAlgorithm> for i64 {
    fn from(alg: CoseAlgorithm) -> i64 {
        alg.id()
    }
}

/// Why a ceremony failed. All are the client's or authenticator's fault except
/// [`WebAuthnError::WeakChallenge`] and [`WebAuthnError::StoredCredential`], which are the server's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebAuthnError {
    /// The expected challenge is shorter than [`MIN_CHALLENGE_BYTES`] (the server's fault).
    WeakChallenge,
    /// An input is longer than its limit.
    TooLarge(&'static str),
    /// clientDataJSON is not a JSON object with string `type`, `challenge` and `origin`.
    ClientData,
    /// `type` is not `webauthn.create` (registration) or `webauthn.get` (authentication).
    WrongType,
    /// `challenge` is not the expected challenge in base64url.
    ChallengeMismatch,
    /// `origin` is not one of the allowed origins.
    OriginNotAllowed,
    /// The ceremony ran in a cross-origin frame (`crossOrigin: true` or a `topOrigin`).
    CrossOrigin,
    /// The attestation object or authenticator data is not valid CBOR of the subset.
    Cbor(cbor::CborError),
    /// The attestation object is not a map of `fmt`, `attStmt` and `authData`.
    AttestationObject(&'static str),
    /// The authenticator data is short, has trailing bytes, or flags that contradict its content.
    AuthenticatorData(&'static str),
    /// `rpIdHash` is not SHA-256 of the RP ID.
    RpIdMismatch,
    /// The UP flag is not set.
    UserNotPresent,
    /// User verification was required and the UV flag is not set.
    UserNotVerified,
    /// Registration without attested credential data (flag AT), or authentication with it.
    AttestedCredentialData,
    /// The credential id is empty or longer than [`MAX_CREDENTIAL_ID_BYTES`].
    CredentialId,
    /// The credential key is not ES256 P-256 or EdDSA Ed25519 (the COSE `alg`, or 0 if absent).
    UnsupportedAlgorithm(i128),
    /// The COSE key is malformed: missing or wrong-length coordinates, a point not on the curve, a
    /// weak Ed25519 key, or a private key part.
    PublicKey(&'static str),
    /// An attestation format other than `none` or packed self attestation.
    UnsupportedAttestation(String),
    /// The packed self attestation does not verify, or names another algorithm than the key's.
    AttestationSignature,
    /// The assertion signature does not verify.
    BadSignature,
    /// The signature counter did not increase: a possible cloned authenticator (§6.1.1).
    CounterRegression {
        /// The counter stored from the last ceremony.
        stored: u32,
        /// The counter in this assertion.
        received: u32,
    },
    /// The backup eligibility flag differs from the one registered (it never changes, §6.1.3).
    BackupEligibilityChanged,
    /// The stored credential's key does not parse (the server's stored data is damaged).
    StoredCredential,
}

impl fmt::Display for WebAuthnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebAuthnError::WeakChallenge => write!(f, "the expected challenge is too short"),
            WebAuthnError::TooLarge(what) => write!(f, "{what} is too large"),
            WebAuthnError::ClientData => write!(f, "clientDataJSON is malformed"),
            WebAuthnError::WrongType => write!(f, "clientDataJSON has the wrong type"),
            WebAuthnError::ChallengeMismatch => write!(f, "the challenge does not match"),
            WebAuthnError::OriginNotAllowed => write!(f, "the origin is not allowed"),
            WebAuthnError::CrossOrigin => write!(f, "cross-origin ceremonies are refused"),
            WebAuthnError::Cbor(e) => write!(f, "{e}"),
            WebAuthnError::AttestationObject(why) => write!(f, "attestation object: {why}"),
            WebAuthnError::AuthenticatorData(why) => write!(f, "authenticator data: {why}"),
            WebAuthnError::RpIdMismatch => write!(f, "the RP ID hash does not match"),
            WebAuthnError::UserNotPresent => write!(f, "the user was not present"),
            WebAuthnError::UserNotVerified => write!(f, "the user was not verified"),
            WebAuthnError::AttestedCredentialData => write!(f, "attested credential data is missing or unexpected"),
            WebAuthnError::CredentialId => write!(f, "the credential id is empty or too long"),
            WebAuthnError::UnsupportedAlgorithm(alg) => write!(f, "COSE algorithm {alg} is not supported"),
            WebAuthnError::PublicKey(why) => write!(f, "credential public key: {why}"),
            WebAuthnError::UnsupportedAttestation(fmt) => write!(f, "attestation format {fmt:?} is not supported"),
            WebAuthnError::AttestationSignature => write!(f, "the attestation signature does not verify"),
            WebAuthnError::BadSignature => write!(f, "the assertion signature does not verify"),
            WebAuthnError::CounterRegression { stored, received } => {
                write!(f, "the signature counter went from {stored} to {received}: possible cloned authenticator")
            }
            WebAuthnError::BackupEligibilityChanged => write!(f, "the backup eligibility flag changed"),
            WebAuthnError::StoredCredential => write!(f, "the stored credential is damaged"),
        }
    }
}

impl std::error::Error for WebAuthnError {}

impl From<cbor::CborError> for WebAuthnError {
    fn from(e: cbor::CborError) -> Self {
        WebAuthnError::Cbor(e)
    }
}

/// What the server expects of a ceremony: its own challenge, the RP ID, the allowed origins and
/// whether user verification is required.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The challenge the server issued for this ceremony (raw bytes, at least 16).
    pub challenge: &'a [u8],
    /// The RP ID, e.g. `example.com`.
    pub rp_id: &'a str,
    /// Origins allowed in clientDataJSON, compared exactly, e.g. `https://example.com`.
    pub origins: &'a [String],
    /// Whether the UV flag must be set (passwordless login, step-up).
    pub require_user_verification: bool,
}

/// A registered credential, as stored in the account; only [`verify_registration`] makes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    #[serde(with = "super::serde_b64")]
    id: Vec<u8>,
    #[serde(with = "super::serde_b64")]
    public_key: Vec<u8>,
    algorithm: CoseAlgorithm,
    sign_count: u32,
    backup_eligible: bool,
    backed_up: bool,
    user_verified: bool,
    #[serde(with = "super::serde_b64")]
    aaguid: [u8; 16],
    #[serde(default)]
    transports: Vec<String>,
}

impl Credential {
    /// The credential id (the `rawId` the browser reports).
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// The credential public key as the COSE_Key bytes the authenticator sent.
    pub fn public_key_cose(&self) -> &[u8] {
        &self.public_key
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> CoseAlgorithm {
        self.algorithm
    }

    /// The signature counter of the last ceremony.
    pub fn sign_count(&self) -> u32 {
        self.sign_count
    }

    /// Whether the credential may be backed up (a synced passkey); fixed at registration.
    pub fn backup_eligible(&self) -> bool {
        self.backup_eligible
    }

    /// Whether the credential was backed up at the last ceremony.
    pub fn backed_up(&self) -> bool {
        self.backed_up
    }

    /// Whether the user was verified at registration.
    pub fn user_verified(&self) -> bool {
        self.user_verified
    }

    /// The authenticator model's AAGUID (all zeros for most `none` attestations).
    pub fn aaguid(&self) -> [u8; 16] {
        self.aaguid
    }

    /// The transports the browser reported, as hints for later `allowCredentials`.
    pub fn transports(&self) -> &[String] {
        &self.transports
    }

    /// Keeps the known transports among `getTransports()`'s answer (§5.8.4), each once.
    pub fn with_transports(mut self, reported: &[String]) -> Self {
        let mut kept: Vec<String> = Vec::new();
        for name in reported {
            if KNOWN_TRANSPORTS.contains(&name.as_str()) && !kept.contains(name) {
                kept.push(name.clone());
            }
        }
        self.transports = kept;
        self
    }

    /// Records a verified assertion: the new counter and backup state, to be stored.
    pub fn record(&mut self, assertion: &Assertion) {
        self.sign_count = assertion.sign_count;
        self.backed_up = assertion.backed_up;
    }
}

/// A verified assertion; only [`verify_authentication`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assertion {
    sign_count: u32,
    user_verified: bool,
    backed_up: bool,
}

impl Assertion {
    /// The authenticator's new signature counter.
    pub fn sign_count(&self) -> u32 {
        self.sign_count
    }

    /// Whether the user was verified (PIN or biometric): a passkey alone is then two factors.
    pub fn user_verified(&self) -> bool {
        self.user_verified
    }

    /// Whether the credential is currently backed up (synced).
    pub fn backed_up(&self) -> bool {
        self.backed_up
    }
}

/// The members of clientDataJSON that are checked (§5.8.1); others are ignored, as §5.8.1.2 asks.
#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
    #[serde(rename = "topOrigin", default)]
    top_origin: Option<String>,
}

/// A verified credential public key.
enum PublicKey {
    Es256(p256::ecdsa::VerifyingKey),
    EdDsa(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    fn algorithm(&self) -> CoseAlgorithm {
        match self {
            PublicKey::Es256(_) => CoseAlgorithm::Es256,
            PublicKey::EdDsa(_) => CoseAlgorithm::EdDsa,
        }
    }

    /// ES256 signatures are ASN.1 DER (§6.5.5); EdDSA signatures are the raw 64 bytes, checked
    /// strictly (no small-order components, canonical S).
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Es256(key) => p256::ecdsa::Signature::from_der(signature)
                .map(|sig| key.verify(message, &sig).is_ok())
                .unwrap_or(false),
            PublicKey::EdDsa(key) => ed25519_dalek::Signature::from_slice(signature)
                .map(|sig| key.verify_strict(message, &sig).is_ok())
                .unwrap_or(false),
        }
    }
}

/// Authenticator data (§6.1), parsed and checked for consistency with its flags.
struct AuthenticatorData {
    rp_id_hash: [u8; 32],
    flags: u8,
    sign_count: u32,
    attested: Option<AttestedCredential>,
}

/// Attested credential data (§6.5.2).
struct AttestedCredential {
    aaguid: [u8; 16],
    id: Vec<u8>,
    public_key_cose: Vec<u8>,
    public_key: PublicKey,
}

/// Verifies a registration (§7.1) and returns the credential to store. The caller must still
/// refuse an id that is already registered, and may add transports with
/// [`Credential::with_transports`].
pub fn verify_registration(
    expected: &Expected<'_>,
    client_data_json: &[u8],
    attestation_object: &[u8],
) -> Result<Credential, WebAuthnError> {
    check_client_data(expected, "webauthn.create", client_data_json)?;
    if attestation_object.len() > MAX_AUTHENTICATOR_BYTES {
        return Err(WebAuthnError::TooLarge("attestationObject"));
    }
    let object = cbor::decode(attestation_object)?;
    let entries = object.as_map().ok_or(WebAuthnError::AttestationObject("not a map"))?;
    if entries.len() != 3 {
        return Err(WebAuthnError::AttestationObject("not exactly fmt, attStmt and authData"));
    }
    let fmt = object.get_text("fmt").and_then(Value::as_text).ok_or(WebAuthnError::AttestationObject("fmt"))?;
    let statement = object.get_text("attStmt").ok_or(WebAuthnError::AttestationObject("attStmt"))?;
    let statement = statement.as_map().ok_or(WebAuthnError::AttestationObject("attStmt is not a map"))?;
    let auth_data_bytes =
        object.get_text("authData").and_then(Value::as_bytes).ok_or(WebAuthnError::AttestationObject("authData"))?;

    let auth_data = parse_authenticator_data(auth_data_bytes)?;
    check_flags_and_rp(expected, &auth_data)?;
    let attested = auth_data.attested.ok_or(WebAuthnError::AttestedCredentialData)?;

    match fmt {
        "none" if statement.is_empty() => {}
        "none" => return Err(WebAuthnError::AttestationObject("attStmt of none is not empty")),
        "packed" => verify_packed_self(statement, &attested.public_key, auth_data_bytes, client_data_json)?,
        other => return Err(WebAuthnError::UnsupportedAttestation(other.to_owned())),
    }

    Ok(Credential {
        id: attested.id,
        algorithm: attested.public_key.algorithm(),
        public_key: attested.public_key_cose,
        sign_count: auth_data.sign_count,
        backup_eligible: auth_data.flags & FLAG_BE != 0,
        backed_up: auth_data.flags & FLAG_BS != 0,
        user_verified: auth_data.flags & FLAG_UV != 0,
        aaguid: attested.aaguid,
        transports: Vec::new(),
    })
}

/// Verifies an assertion (§7.2) made with `credential`, which the caller found by the id the
/// browser sent and checked belongs to the user. On success, store the result of
/// [`Credential::record`].
///
/// Signature counter rule (§6.1.1, §7.2 step 22): when the stored and the new counter are not both
/// zero, the new one must be greater; otherwise the assertion is refused as
/// [`WebAuthnError::CounterRegression`], since two authenticators holding the same key (a clone)
/// would show it. Authenticators that keep no counter (most synced passkeys) send zero every
/// time, and pass.
pub fn verify_authentication(
    expected: &Expected<'_>,
    credential: &Credential,
    client_data_json: &[u8],
    authenticator_data: &[u8],
    signature: &[u8],
) -> Result<Assertion, WebAuthnError> {
    check_client_data(expected, "webauthn.get", client_data_json)?;
    if authenticator_data.len() > MAX_AUTHENTICATOR_BYTES {
        return Err(WebAuthnError::TooLarge("authenticatorData"));
    }
    let auth_data = parse_authenticator_data(authenticator_data)?;
    check_flags_and_rp(expected, &auth_data)?;
    if auth_data.attested.is_some() {
        return Err(WebAuthnError::AttestedCredentialData);
    }
    if (auth_data.flags & FLAG_BE != 0) != credential.backup_eligible {
        return Err(WebAuthnError::BackupEligibilityChanged);
    }
    let key = cbor::decode(&credential.public_key)
        .ok()
        .and_then(|value| parse_cose_key(&value).ok())
        .filter(|key| key.algorithm() == credential.algorithm)
        .ok_or(WebAuthnError::StoredCredential)?;
    if !key.verify(&signed_message(authenticator_data, client_data_json), signature) {
        return Err(WebAuthnError::BadSignature);
    }
    let (stored, received) = (credential.sign_count, auth_data.sign_count);
    if (stored != 0 || received != 0) && received <= stored {
        return Err(WebAuthnError::CounterRegression { stored, received });
    }
    Ok(Assertion {
        sign_count: received,
        user_verified: auth_data.flags & FLAG_UV != 0,
        backed_up: auth_data.flags & FLAG_BS != 0,
    })
}

/// authenticatorData || SHA-256(clientDataJSON): what assertions and packed attestations sign.
fn signed_message(authenticator_data: &[u8], client_data_json: &[u8]) -> Vec<u8> {
    let mut message = authenticator_data.to_vec();
    message.extend_from_slice(&Sha256::digest(client_data_json));
    message
}

/// §7.1 steps 5 to 10, §7.2 steps 8 to 12: type, challenge, origin, and no cross-origin embedding.
fn check_client_data(expected: &Expected<'_>, kind: &str, client_data_json: &[u8]) -> Result<(), WebAuthnError> {
    if expected.challenge.len() < MIN_CHALLENGE_BYTES {
        return Err(WebAuthnError::WeakChallenge);
    }
    if client_data_json.len() > MAX_CLIENT_DATA_BYTES {
        return Err(WebAuthnError::TooLarge("clientDataJSON"));
    }
    let data: ClientData = serde_json::from_slice(client_data_json).map_err(|_| WebAuthnError::ClientData)?;
    if data.kind != kind {
        return Err(WebAuthnError::WrongType);
    }
    let challenge = b64::decode(&data.challenge).map_err(|_| WebAuthnError::ChallengeMismatch)?;
    if !bool::from(challenge.as_slice().ct_eq(expected.challenge)) {
        return Err(WebAuthnError::ChallengeMismatch);
    }
    if !expected.origins.contains(&data.origin) {
        return Err(WebAuthnError::OriginNotAllowed);
    }
    if data.cross_origin == Some(true) || data.top_origin.is_some() {
        return Err(WebAuthnError::CrossOrigin);
    }
    Ok(())
}

/// §7.1 steps 13 to 16, §7.2 steps 13 to 17: RP ID hash, UP, UV when required, BS only with BE.
fn check_flags_and_rp(expected: &Expected<'_>, auth_data: &AuthenticatorData) -> Result<(), WebAuthnError> {
    let rp_id_hash: [u8; 32] = Sha256::digest(expected.rp_id.as_bytes()).into();
    if !bool::from(auth_data.rp_id_hash.ct_eq(&rp_id_hash)) {
        return Err(WebAuthnError::RpIdMismatch);
    }
    if auth_data.flags & FLAG_UP == 0 {
        return Err(WebAuthnError::UserNotPresent);
    }
    if expected.require_user_verification && auth_data.flags & FLAG_UV == 0 {
        return Err(WebAuthnError::UserNotVerified);
    }
    if auth_data.flags & FLAG_BS != 0 && auth_data.flags & FLAG_BE == 0 {
        return Err(WebAuthnError::AuthenticatorData("backed up but not backup eligible"));
    }
    Ok(())
}

/// Parses authenticator data (§6.1): rpIdHash, flags, counter, attested credential data when AT is
/// set, an extensions map when ED is set, and nothing after.
fn parse_authenticator_data(bytes: &[u8]) -> Result<AuthenticatorData, WebAuthnError> {
    const SHORT: WebAuthnError = WebAuthnError::AuthenticatorData("too short");
    let rp_id_hash: [u8; 32] = bytes.get(..32).and_then(|s| s.try_into().ok()).ok_or(SHORT)?;
    let flags = *bytes.get(32).ok_or(SHORT)?;
    let count: [u8; 4] = bytes.get(33..37).and_then(|s| s.try_into().ok()).ok_or(SHORT)?;
    let mut rest = bytes.get(37..).ok_or(SHORT)?;

    let attested = if flags & FLAG_AT != 0 {
        let aaguid: [u8; 16] = rest.get(..16).and_then(|s| s.try_into().ok()).ok_or(SHORT)?;
        let id_len: [u8; 2] = rest.get(16..18).and_then(|s| s.try_into().ok()).ok_or(SHORT)?;
        let id_len = usize::from(u16::from_be_bytes(id_len));
        if id_len == 0 || id_len > MAX_CREDENTIAL_ID_BYTES {
            return Err(WebAuthnError::CredentialId);
        }
        let id = rest.get(18..18 + id_len).ok_or(SHORT)?.to_vec();
        let key_bytes = rest.get(18 + id_len..).ok_or(SHORT)?;
        let (key, used) = cbor::decode_prefix(key_bytes)?;
        let public_key = parse_cose_key(&key)?;
        let public_key_cose = key_bytes.get(..used).ok_or(SHORT)?.to_vec();
        rest = key_bytes.get(used..).ok_or(SHORT)?;
        Some(AttestedCredential { aaguid, id, public_key_cose, public_key })
    } else {
        None
    };

    if flags & FLAG_ED != 0 {
        // Extension outputs are not used, but must be one well-formed map.
        let (extensions, used) = cbor::decode_prefix(rest)?;
        if extensions.as_map().is_none() {
            return Err(WebAuthnError::AuthenticatorData("extensions are not a map"));
        }
        rest = rest.get(used..).ok_or(SHORT)?;
    }
    if !rest.is_empty() {
        return Err(WebAuthnError::AuthenticatorData("trailing bytes"));
    }
    Ok(AuthenticatorData { rp_id_hash, flags, sign_count: u32::from_be_bytes(count), attested })
}

/// Reads a COSE_Key (RFC 9052 §7): EC2 P-256 with alg -7, or OKP Ed25519 with alg -8. Labels other
/// than those used are ignored, except a private key (`d`), which is refused.
fn parse_cose_key(key: &Value) -> Result<PublicKey, WebAuthnError> {
    if key.as_map().is_none() {
        return Err(WebAuthnError::PublicKey("not a map"));
    }
    let int = |label| key.get_int(label).and_then(Value::as_int);
    let bytes32 = |label| -> Result<[u8; 32], WebAuthnError> {
        key.get_int(label)
            .and_then(Value::as_bytes)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or(WebAuthnError::PublicKey("a coordinate is missing or not 32 bytes"))
    };
    if key.get_int(COSE_D).is_some() {
        return Err(WebAuthnError::PublicKey("holds a private key"));
    }
    let alg = int(COSE_ALG).ok_or(WebAuthnError::UnsupportedAlgorithm(0))?;
    match (alg, int(COSE_KTY), int(COSE_CRV)) {
        (-7, Some(KTY_EC2), Some(CRV_P256)) => {
            let mut point = [0u8; 65];
            point[0] = 0x04;
            point[1..33].copy_from_slice(&bytes32(COSE_X)?);
            point[33..].copy_from_slice(&bytes32(COSE_Y)?);
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                .map(PublicKey::Es256)
                .map_err(|_| WebAuthnError::PublicKey("not a point on P-256"))
        }
        (-8, Some(KTY_OKP), Some(CRV_ED25519)) => {
            let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes32(COSE_X)?)
                .map_err(|_| WebAuthnError::PublicKey("not an Ed25519 point"))?;
            if key.is_weak() {
                return Err(WebAuthnError::PublicKey("a small-order Ed25519 key"));
            }
            Ok(PublicKey::EdDsa(key))
        }
        (alg, _, _) => Err(WebAuthnError::UnsupportedAlgorithm(alg)),
    }
}

/// Packed self attestation (§8.2): `attStmt` is exactly `alg` (the credential key's algorithm) and
/// `sig` over authenticatorData || SHA-256(clientDataJSON) made with the credential key. A
/// certificate chain (`x5c`) means full attestation, which is not supported.
fn verify_packed_self(
    statement: &[(Value, Value)],
    key: &PublicKey,
    auth_data: &[u8],
    client_data_json: &[u8],
) -> Result<(), WebAuthnError> {
    let field = |name: &str| statement.iter().find(|(k, _)| k.as_text() == Some(name)).map(|(_, v)| v);
    if field("x5c").is_some() {
        return Err(WebAuthnError::UnsupportedAttestation("packed with a certificate chain".into()));
    }
    if statement.len() != 2 {
        return Err(WebAuthnError::AttestationObject("packed attStmt is not exactly alg and sig"));
    }
    let alg = field("alg").and_then(Value::as_int).ok_or(WebAuthnError::AttestationObject("packed alg"))?;
    let sig = field("sig").and_then(Value::as_bytes).ok_or(WebAuthnError::AttestationObject("packed sig"))?;
    if alg != i128::from(key.algorithm().id()) || !key.verify(&signed_message(auth_data, client_data_json), sig) {
        return Err(WebAuthnError::AttestationSignature);
    }
    Ok(())
}
