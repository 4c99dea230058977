//! gatehouse's Ed25519 arithmetic: verification (RFC 8032 §5.1.7, with variable-time fixed-base
//! tables for busy keys, [`vartime`]) and signing (§5.1.6, constant-time). Key parsing, the choice of
//! table and when to build it stay in gatehouse (`jwt::keys`); this crate is only the arithmetic.
//!
//! It is a crate of its own for the build: the Workers are built for size (`opt-level = "z"` for
//! gatehouse, as the release profile in the workspace's Cargo.toml says) and this crate for speed
//! (`opt-level = 3`). curve25519-dalek's point and field arithmetic is inlined into its callers and
//! compiled at the caller's level, so the callers on the hot path (the table multiplication, the
//! verification) have to live in a crate built at 3: at `"z"` in gatehouse they cost a fresh EdDSA
//! token about 12 % more CPU (docs/BENCHMARKS.md, 2026-12-04).

pub mod vartime;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::BasepointTable as _;
use sha2::Digest as _;
use std::sync::OnceLock;
use vartime::VartimeTable;
use zeroize::Zeroize as _;

pub use curve25519_dalek;

/// The fixed-base table of the base point, built once per isolate (about a millisecond) rather than
/// linked in: curve25519-dalek's precomputed `ED25519_BASEPOINT_TABLE` is 30 KB of incompressible
/// data in every Worker that references it. Constant-time: signing multiplies secret scalars by it.
pub fn basepoint_table() -> &'static EdwardsBasepointTable {
    static TABLE: OnceLock<EdwardsBasepointTable> = OnceLock::new();
    TABLE.get_or_init(|| EdwardsBasepointTable::create(&ED25519_BASEPOINT_POINT))
}

/// The base point's variable-time table, for verification only (signing keeps the constant-time
/// [`basepoint_table`]): built once per isolate, with the first key table of the wide kind.
fn basepoint_vartime_table() -> &'static VartimeTable {
    static TABLE: OnceLock<VartimeTable> = OnceLock::new();
    TABLE.get_or_init(|| VartimeTable::create(&ED25519_BASEPOINT_POINT))
}

/// How a verification multiplies −A (the negated public point) by the hash `k`.
#[derive(Clone, Copy)]
pub enum MinusA<'a> {
    /// A variable-time fixed-base table of −A: 32 additions (and the base point's own table for
    /// [s]B).
    Wide(&'a VartimeTable),
    /// curve25519-dalek's constant-time fixed-base table of −A (and the base point's).
    Narrow(&'a EdwardsBasepointTable),
    /// −A alone: curve25519-dalek's variable-base double multiplication, nothing to build.
    Point(&'a EdwardsPoint),
}

/// Ed25519 verification (RFC 8032 §5.1.7, cofactorless, as ed25519-dalek's `verify`) of `signature`
/// over `message` by the key whose encoding is `public` and whose negated point `minus_a` is: `s` must
/// be canonical (S < L, so signatures are not malleable), k = SHA-512(R ‖ A ‖ M), and [s]B − [k]A must
/// encode to exactly the bytes of R. `public` and `minus_a` must be the same key (the caller decoded
/// one from the other); gatehouse's tests check the verdict is ed25519-dalek's on every Wycheproof case
/// and on random signatures and bit flips, with each form of −A.
pub fn verify(public: &[u8; 32], minus_a: MinusA<'_>, message: &[u8], signature: &[u8]) -> bool {
    let Ok(signature) = <&[u8; 64]>::try_from(signature) else { return false };
    let (r, s) = signature.split_at(32);
    let Some(s) = s.try_into().ok().and_then(|s| Option::<Scalar>::from(Scalar::from_canonical_bytes(s))) else {
        return false;
    };
    let mut h = sha2::Sha512::new();
    h.update(r);
    h.update(public);
    h.update(message);
    let k = Scalar::from_hash(h);
    let expected = match minus_a {
        MinusA::Wide(table) => {
            let (Some(sb), Some(minus_ka)) = (basepoint_vartime_table().mul(&s), table.mul(&k)) else {
                return false;
            };
            sb + minus_ka
        }
        MinusA::Narrow(table) => basepoint_table() * &s + table * &k,
        MinusA::Point(point) => EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, point, &s),
    };
    expected.compress().as_bytes() == r
}

/// The secret scalar, the prefix and the public key's encoding a 32-byte seed expands to (RFC 8032
/// §5.1.5): SHA-512 of the seed, its clamped lower half the scalar, its upper half the prefix. The
/// caller wipes what it keeps.
pub fn expand(seed: &[u8; 32]) -> (Scalar, [u8; 32], [u8; 32]) {
    let mut hash: [u8; 64] = sha2::Sha512::digest(seed).into();
    let mut lower = [0u8; 32];
    let mut prefix = [0u8; 32];
    lower.copy_from_slice(&hash[..32]);
    prefix.copy_from_slice(&hash[32..]);
    let scalar = Scalar::from_bytes_mod_order(curve25519_dalek::scalar::clamp_integer(lower));
    let public = (basepoint_table() * &scalar).compress().to_bytes();
    lower.zeroize();
    hash.zeroize();
    (scalar, prefix, public)
}

/// The 64-byte signature of `message` (RFC 8032 §5.1.6) by the key [`expand`] gave `scalar`,
/// `prefix` and `public` for. Constant-time in the secrets (the base point's constant-time table).
pub fn sign(scalar: &Scalar, prefix: &[u8; 32], public: &[u8; 32], message: &[u8]) -> [u8; 64] {
    let mut r = Scalar::from_hash(sha2::Sha512::new().chain_update(prefix).chain_update(message));
    let big_r = (basepoint_table() * &r).compress().to_bytes();
    let k = Scalar::from_hash(sha2::Sha512::new().chain_update(big_r).chain_update(public).chain_update(message));
    let s = r + k * scalar;
    // The nonce gives the private scalar away with the signature (s = r + k·a): not left in memory.
    r.zeroize();
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&big_r);
    signature[32..].copy_from_slice(s.as_bytes());
    signature
}
