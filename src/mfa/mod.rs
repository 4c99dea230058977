//! Second-factor building blocks, pure and natively tested: TOTP, recovery codes, the sealing of
//! secrets at rest, WebAuthn ceremonies and the enrolment QR code.
//!
//! Nothing here imports `worker`, reads a clock or draws randomness: `now` (Unix seconds) and random
//! bytes are arguments, so every rule is tested natively, and the issuer's account object only loads,
//! calls and saves. The pieces:
//! - [`totp`]: RFC 6238 codes over RFC 4226 HOTP, a ±1 step window, each code usable once, and the
//!   `otpauth://` enrolment URI.
//! - [`recovery`]: ten single-use 80-bit codes, stored only as SHA-256 digests.
//! - [`secretbox`]: AES-256-GCM for TOTP secrets at rest under `MFA_ENCRYPTION_KEY`, bound to the
//!   account and the purpose.
//! - [`webauthn`]: registration and authentication ceremonies (attestation `none` and packed self
//!   attestation; ES256 and EdDSA credentials), over the strict CBOR subset of [`cbor`].
//! - [`qr`]: the enrolment URI as a self-contained SVG QR code.
//! - [`base32`]: the RFC 4648 and Crockford alphabets the codes and secrets are written in.

pub mod base32;
pub mod cbor;
pub mod qr;
pub mod recovery;
pub mod secretbox;
pub mod totp;
pub mod webauthn;

pub(crate) mod serde_b64;
