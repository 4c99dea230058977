//! The typed protocol between the issuer's router and an account's Durable Object: one request
//! enum and one outcome enum, carried as JSON. No HTTP status crosses it: the object answers what
//! happened, and the router alone decides what that means on the wire (`issuer::accounts`).

use super::family::Device;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request from the router to an account object. Inputs are already validated by the router.
/// `Debug` shows the operation only, never a password or a token secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum AccountRequest {
    /// Create the account.
    Register { email: String, password: String },
    /// Check the password and start a session; with `jkt` (the thumbprint of the key of the
    /// request's verified DPoP proof) the session and its access tokens are bound to that key.
    /// `client`: the tag of the client's address (`limits::client_tag`), which decides whose
    /// failures slow the attempt down (a known client's own, or the strangers'); none: a stranger.
    Login {
        email: String,
        password: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jkt: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<Device>,
    },
    /// Rotate a refresh token of session `sid`; with `scope`, the new access token carries only
    /// those scopes, which must all have been granted (RFC 6749 §6). `jkt`: the thumbprint of the
    /// key of the request's verified DPoP proof, if it had one (RFC 9449 §5).
    Refresh {
        sid: String,
        secret: String,
        #[serde(default)]
        scope: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jkt: Option<String>,
    },
    /// RFC 7009: revoke session `sid` if `secret` is a refresh token it issued.
    RevokeRefresh { sid: String, secret: String },
    /// RFC 7009: revoke one access token of this account until it would have expired anyway.
    RevokeAccess { jti: String, exp: i64 },
    /// RFC 7662: whether `secret` is the live refresh token of session `sid`, changing nothing.
    IntrospectRefresh { sid: String, secret: String },
    /// End session `sid`, asked by the access token `token`.
    Logout { sid: String, token: TokenIds },
    /// End every session, asked by the access token `token`.
    LogoutAll { token: TokenIds },
    /// Start (or restart) a TOTP enrolment: a new secret, pending until confirmed.
    TotpEnroll,
    /// Confirm the pending TOTP enrolment with a first code; answers the recovery codes. `client`
    /// as in `Login`: wrong codes slow down the client's group only.
    TotpConfirm {
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// Remove the TOTP factor and its recovery codes (the router checked a fresh second factor).
    TotpRemove,
    /// Replace the recovery codes with a new set (the router checked a fresh second factor).
    RecoveryRegenerate,
    /// Redeem an MFA ticket (its secret, base64url) with a second factor; `jkt` and `client` as in
    /// `Login` (so strangers guessing codes never slow down the owner's known client).
    MfaVerify {
        ticket: String,
        method: MfaMethod,
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jkt: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<Device>,
    },
    /// WebAuthn options to add a passkey: a fresh challenge (asked with a recent login's token).
    PasskeyRegisterOptions,
    /// A registration ceremony's result (clientDataJSON and attestation object, base64url), and
    /// the transports `getTransports()` reported.
    PasskeyRegisterVerify {
        client_data_json: String,
        attestation_object: String,
        #[serde(default)]
        transports: Vec<String>,
    },
    /// WebAuthn options to sign in: with `ticket`, the second step of a password login; without,
    /// a passwordless login.
    PasskeyLoginOptions {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket: Option<String>,
    },
    /// An assertion (base64url parts): with `ticket`, it redeems the MFA ticket; without, it is a
    /// passwordless login. `jkt` and `client` as in `Login`.
    PasskeyLogin {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket: Option<String>,
        credential_id: String,
        client_data_json: String,
        authenticator_data: String,
        signature: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jkt: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<Device>,
    },
    /// Make an email verification link for the account's email (nothing if it is verified).
    EmailVerifyRequest,
    /// Redeem an email verification link (its secret, base64url). Whoever opens it must also show
    /// they hold the account: `signed_in` (the router verified an access token of this account) or
    /// the account's `password` (`client` as in `Login`), so a registrant who does not read the
    /// mailbox and a mailbox owner who did not choose the password cannot verify it between them.
    EmailVerify {
        secret: String,
        #[serde(default)]
        signed_in: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// Make a password reset link for `email` if it names this account (nothing otherwise, and
    /// nothing for a disabled account: the router answers alike).
    PasswordForgot { email: String },
    /// Redeem a reset link with a new password: every session ends.
    PasswordReset { secret: String, password: String },
    /// Change the password of a signed-in user (`sid`: the asking session, which stays); `client`
    /// as in `Login`: wrong current passwords slow down the client's group.
    PasswordChange {
        sid: Option<String>,
        current: String,
        new: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// The account's live sessions (`current`: the asking session).
    Sessions { current: Option<String> },
    /// End one session of this account (unknown: refused).
    SessionRevoke { sid: String },
    /// Replace the user's own metadata (an object, validated by the router).
    UserMetadata { value: Value },
    /// Everything stored about the user (no secret).
    Export,
    /// Delete the account, asked by its user with the password; `client` as in `Login`.
    DeleteSelf {
        password: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// A registration with `email` was refused as taken under `REGISTRATION_MODE=uniform`: tell the
    /// owner (at most once a minute), since the answer could not.
    NotifyTaken { email: String },
    /// `request`, asked by the signed-in user with access token `token`: refused (as revoked) unless
    /// this object, the authority, still holds the token live, so a session revoked or an account
    /// disabled or deleted moments ago cannot act while the edge's denylist copy catches up.
    AsUser { token: TokenIds, request: Box<AccountRequest> },
    /// Whether the user of `token` holds `admin` now (the account's current roles, or a verified
    /// `ADMIN_EMAILS` email), with the token live: asked for every admin call, so a demoted,
    /// disabled or signed-out admin's token stops working at once.
    AdminCheck { token: TokenIds },
    /// An admin's view of the account.
    AdminGet,
    /// An admin changes the account (fields left out stay).
    AdminUpdate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        roles: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disabled: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_metadata: Option<Value>,
    },
    /// An admin ends every session.
    AdminRevokeSessions,
    /// An admin deletes the account.
    AdminDelete,
}

/// What a one-time link is for, as the router tells the mailer.
pub use super::state::LinkPurpose;

/// The second factor presented with an MFA ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    /// An RFC 6238 code.
    Totp,
    /// One of the recovery codes.
    RecoveryCode,
}

impl AccountRequest {
    /// The operation's name, as in the JSON (`op`).
    pub fn op(&self) -> &'static str {
        match self {
            AccountRequest::Register { .. } => "register",
            AccountRequest::Login { .. } => "login",
            AccountRequest::Refresh { .. } => "refresh",
            AccountRequest::RevokeRefresh { .. } => "revoke-refresh",
            AccountRequest::RevokeAccess { .. } => "revoke-access",
            AccountRequest::IntrospectRefresh { .. } => "introspect-refresh",
            AccountRequest::Logout { .. } => "logout",
            AccountRequest::LogoutAll { .. } => "logout-all",
            AccountRequest::TotpEnroll => "totp-enroll",
            AccountRequest::TotpConfirm { .. } => "totp-confirm",
            AccountRequest::TotpRemove => "totp-remove",
            AccountRequest::RecoveryRegenerate => "recovery-regenerate",
            AccountRequest::MfaVerify { .. } => "mfa-verify",
            AccountRequest::PasskeyRegisterOptions => "passkey-register-options",
            AccountRequest::PasskeyRegisterVerify { .. } => "passkey-register-verify",
            AccountRequest::PasskeyLoginOptions { .. } => "passkey-login-options",
            AccountRequest::PasskeyLogin { .. } => "passkey-login",
            AccountRequest::EmailVerifyRequest => "email-verify-request",
            AccountRequest::EmailVerify { .. } => "email-verify",
            AccountRequest::PasswordForgot { .. } => "password-forgot",
            AccountRequest::PasswordReset { .. } => "password-reset",
            AccountRequest::PasswordChange { .. } => "password-change",
            AccountRequest::Sessions { .. } => "sessions",
            AccountRequest::SessionRevoke { .. } => "session-revoke",
            AccountRequest::UserMetadata { .. } => "user-metadata",
            AccountRequest::Export => "export",
            AccountRequest::DeleteSelf { .. } => "delete-self",
            AccountRequest::NotifyTaken { .. } => "notify-taken",
            AccountRequest::AsUser { request, .. } => request.op(),
            AccountRequest::AdminCheck { .. } => "admin-check",
            AccountRequest::AdminGet => "admin-get",
            AccountRequest::AdminUpdate { .. } => "admin-update",
            AccountRequest::AdminRevokeSessions => "admin-revoke-sessions",
            AccountRequest::AdminDelete => "admin-delete",
        }
    }
}

impl std::fmt::Debug for AccountRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRequest").field("op", &self.op()).finish_non_exhaustive()
    }
}

/// The identifiers of the access token that asks for a logout: the object checks them against its
/// own (authoritative) revocation record, so a revoked token cannot end sessions made after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIds {
    /// `iat`.
    pub iat: Option<i64>,
    /// `sid`.
    pub sid: Option<String>,
    /// `jti`.
    pub jti: Option<String>,
}

impl TokenIds {
    /// The identifiers of a verified access token.
    pub fn of(claims: &crate::jwt::AccessClaims) -> Self {
        TokenIds { iat: claims.iat, sid: claims.sid.clone(), jti: claims.jti.clone() }
    }
}

/// A token pair as the object answers it; the router decides the transport of `refresh_token`.
/// (`Debug` hides the tokens.)
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// The access token.
    pub access_token: String,
    /// `DPoP` when the access token is bound to a key (`cnf.jkt`), else `Bearer` (RFC 9449 §5).
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The refresh token.
    pub refresh_token: String,
    /// Seconds until the session expires if unused.
    pub refresh_expires_in: i64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .field("refresh_expires_in", &self.refresh_expires_in)
            .finish_non_exhaustive()
    }
}

/// What an account object did with a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AccountOutcome {
    /// The account was created; `sub` is its stable id; `mail`: the verification link to send
    /// (when a mail transport is configured).
    Registered {
        sub: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mail: Option<MailLink>,
    },
    /// A session started or a refresh token rotated (or a grace replay returned the same pair).
    Tokens { pair: TokenPair },
    /// The request was carried out (or was already true: logout is idempotent).
    Done,
    /// An RFC 7662 introspection answer.
    Introspection { answer: serde_json::Value },
    /// The password was right and a second factor is needed: redeem `ticket` with one of `methods`.
    MfaRequired { ticket: String, methods: Vec<String> },
    /// A TOTP enrolment started: the secret (base32) and its `otpauth://` URI, shown once.
    TotpEnrollment { secret: String, otpauth_uri: String },
    /// WebAuthn options: the challenge (base64url), the user handle and name (registration), and
    /// the ids of the account's credentials (to exclude at registration, to allow at a second
    /// step; always empty for a passwordless login, which would otherwise tell accounts apart).
    PasskeyOptions { challenge: String, user_id: String, user_name: String, credentials: Vec<String> },
    /// A passkey was added; `id` is its credential id (base64url).
    PasskeyRegistered { id: String },
    /// A new set of recovery codes, shown once.
    RecoveryCodes { codes: Vec<String> },
    /// Send this one-time link to `to` (the router mails it; the object stored only its hash).
    Mail { purpose: LinkPurpose, to: String, token: String },
    /// Send the "you already have an account" notice to `to`.
    Notice { to: String },
    /// The password was right but the email is not verified and `EMAIL_VERIFICATION=required`;
    /// `mail`: a new verification link to send, unless one went out within the last minute.
    EmailNotVerified { mail: Option<MailLink> },
    /// The account's live sessions, newest first.
    Sessions { sessions: Vec<SessionInfo> },
    /// The account as a user or an admin sees it (docs/API.md "User view").
    User { user: Value },
    /// Everything stored about the user, as JSON (docs/API.md "Export").
    Export { data: Value },
    /// The request was refused, for this reason.
    Refused { refusal: Refusal },
    /// The object could not complete the request (storage, randomness, signing); the detail is in
    /// the object's log. `retryable`: nothing was committed and the same request may be sent again.
    Failed { retryable: bool },
}

/// A one-time link to mail. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailLink {
    /// The recipient.
    pub to: String,
    /// The link's token.
    pub token: String,
}

impl std::fmt::Debug for MailLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailLink").field("to", &self.to).finish_non_exhaustive()
    }
}

/// One live session as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session id (`sid` of its tokens).
    pub sid: String,
    /// When it started.
    pub created_at: i64,
    /// When it last issued a token.
    pub last_used_at: i64,
    /// The `User-Agent` of its login, if any.
    pub user_agent: Option<String>,
    /// The country of its login's address, if known.
    pub country: Option<String>,
    /// How the user authenticated (RFC 8176).
    pub amr: Vec<String>,
    /// Whether it is the asking session.
    pub current: bool,
}

/// Why an account object refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// Register: the email is registered already.
    EmailTaken,
    /// Login: wrong password or unknown account, indistinguishably.
    InvalidCredentials,
    /// Login: too many failures from this client's group (strangers, or this known client); no
    /// password was checked.
    Throttled { retry_after: i64 },
    /// Refresh: the token is unknown, expired, idle, revoked or reused.
    InvalidGrant,
    /// Refresh: the requested scope exceeds the granted one.
    InvalidScope,
    /// Logout: the asking access token was revoked on its own (RFC 7009).
    TokenRevoked,
    /// Refresh: DPoP is required and neither the request nor the session brings a key (RFC 9449
    /// §5); nothing changed.
    DpopProofRequired,
    /// TOTP enrolment: a confirmed factor exists already (remove it first).
    MfaAlreadyEnabled,
    /// TOTP confirm or remove, recovery codes: there is no (pending) factor.
    MfaNotEnabled,
    /// MFA verify or TOTP confirm: the code is wrong, or was used already.
    InvalidMfaCode,
    /// MFA verify: the ticket is unknown, expired, used, or of another DPoP key.
    InvalidMfaTicket,
    /// Passkey registration: the ceremony did not verify, its challenge was unknown, used or
    /// expired, or the credential is registered already.
    InvalidPasskey,
    /// Passkey registration: the account has [`super::mfa::MAX_PASSKEYS`] already.
    PasskeyLimit,
    /// A verification or reset link is unknown, expired, used, or of the other kind.
    InvalidLink,
    /// Password change or account deletion: the current password is wrong.
    WrongPassword,
    /// There is no account here (admin routes, a deleted account).
    NoSuchAccount,
    /// Session revocation: the account has no such live session.
    NoSuchSession,
    /// Login: the account is disabled (the password was right).
    AccountDisabled,
    /// Admin check: the user does not hold `admin` now.
    NotAdmin,
    /// The mail would be the second of its kind within a minute: not sent.
    MailThrottled { retry_after: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_as_tagged_json() {
        let outcomes = [
            AccountOutcome::Registered { sub: "s".into(), mail: None },
            AccountOutcome::Done,
            AccountOutcome::Refused { refusal: Refusal::Throttled { retry_after: 4 } },
            AccountOutcome::Refused { refusal: Refusal::InvalidGrant },
            AccountOutcome::Failed { retryable: true },
            AccountOutcome::MfaRequired { ticket: "ghm1.a.b".into(), methods: vec!["totp".into()] },
            AccountOutcome::TotpEnrollment { secret: "ABC".into(), otpauth_uri: "otpauth://totp/x".into() },
            AccountOutcome::RecoveryCodes { codes: vec!["abcd-efgh-jkmn-pqrs".into()] },
            AccountOutcome::Refused { refusal: Refusal::InvalidMfaCode },
            AccountOutcome::Tokens {
                pair: TokenPair {
                    access_token: "a".into(),
                    token_type: "Bearer".into(),
                    expires_in: 1,
                    refresh_token: "r".into(),
                    refresh_expires_in: 2,
                },
            },
        ];
        for outcome in outcomes {
            let text = serde_json::to_string(&outcome).expect("serialises");
            assert_eq!(serde_json::from_str::<AccountOutcome>(&text).expect("parses"), outcome, "{text}");
        }
        let text = serde_json::to_string(&AccountOutcome::Refused { refusal: Refusal::Throttled { retry_after: 4 } })
            .expect("serialises");
        assert_eq!(text, r#"{"outcome":"refused","refusal":{"reason":"throttled","retry_after":4}}"#);
    }

    #[test]
    fn debug_hides_secrets() {
        let request = AccountRequest::Login {
            email: "a@b.co".into(),
            password: "hunter22".into(),
            jkt: None,
            client: None,
            device: None,
        };
        assert!(!format!("{request:?}").contains("hunter22"));
        let verify = AccountRequest::MfaVerify {
            ticket: "ticket-secret".into(),
            method: MfaMethod::Totp,
            code: "123456".into(),
            jkt: None,
            client: None,
            device: None,
        };
        let shown = format!("{verify:?}");
        assert!(!shown.contains("ticket-secret") && !shown.contains("123456"), "{shown}");
        let confirm = AccountRequest::TotpConfirm { code: "654321".into(), client: None };
        assert!(!format!("{confirm:?}").contains("654321"));
        let pair = TokenPair {
            access_token: "secret-access".into(),
            token_type: "Bearer".into(),
            expires_in: 1,
            refresh_token: "secret-refresh".into(),
            refresh_expires_in: 2,
        };
        assert!(!format!("{pair:?}").contains("secret"));
    }
}
