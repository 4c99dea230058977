//! A variable-time fixed-base table for Ed25519 verification: [d]P for a public scalar d in 32 point
//! additions. Verification multiplies only public values (the signature's `s`, the hash `k`, the
//! key's −A, the base point), so nothing needs the constant-time table look-ups of curve25519-dalek's
//! `EdwardsBasepointTable` (a masked pass over all 8 entries of each of 64 radix-16 windows: a third
//! of an Ed25519 check in wasm, `bench/profile.mjs`). Here a scalar is written in 32 signed radix-256
//! digits and each digit indexes its row directly: 32 additions instead of 64 additions and 64 masked
//! selections. Signing never uses this table (its scalars are secret): it keeps the constant-time one.
//!
//! A table holds the multiples 1..=128 of 256^i·P for i in 0..32: 4096 points, 640 KiB. Building
//! one costs 4096 additions, so tables are built only for the base point and for keys that are busy
//! in the isolate, at most [`MAX_TABLES`] of them (gatehouse's `jwt::keys::MinusA::Lazy`).

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity as _;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Rows (radix-256 digits of a scalar below 2^256) and the multiples kept in each.
const ROWS: usize = 32;
const MULTIPLES: usize = 128;

/// Key tables alive at most per isolate (the base point's is not counted): 640 KiB each, and every
/// verification attempt counts towards a key's table, forged ones too, so a set of many keys must
/// not make the isolate build one for each. A key's table counts until the key is dropped (a
/// rotated-out key's makes room for its successor's).
pub const MAX_TABLES: usize = 8;

static BUILT: AtomicUsize = AtomicUsize::new(0);

/// The multiples 1..=128 of 256^i·P, row by row, and the count it is part of, if any.
pub struct VartimeTable {
    points: Vec<EdwardsPoint>,
    counted: Option<&'static AtomicUsize>,
}

impl Drop for VartimeTable {
    fn drop(&mut self) {
        if let Some(count) = self.counted {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl VartimeTable {
    /// The table of `point`.
    pub fn create(point: &EdwardsPoint) -> Self {
        VartimeTable { points: multiples(point), counted: None }
    }

    /// A key's table, unless [`MAX_TABLES`] are alive already in this isolate.
    pub fn create_counted(point: &EdwardsPoint) -> Option<Self> {
        VartimeTable::create_counted_in(&BUILT, point)
    }

    fn create_counted_in(alive: &'static AtomicUsize, point: &EdwardsPoint) -> Option<Self> {
        alive.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < MAX_TABLES).then_some(n + 1)).ok()?;
        Some(VartimeTable { points: multiples(point), counted: Some(alive) })
    }

    /// [scalar]P, in variable time: for public scalars only. `None` for a scalar whose digits do
    /// not fit 32 rows (never for a reduced scalar, as `Scalar`s are: below L < 2^253).
    pub fn mul(&self, scalar: &Scalar) -> Option<EdwardsPoint> {
        let digits = radix_256(scalar.as_bytes())?;
        let mut sum = EdwardsPoint::identity();
        for (row, &digit) in digits.iter().enumerate() {
            if digit == 0 {
                continue;
            }
            let multiple = self.points.get(row * MULTIPLES + usize::from(digit.unsigned_abs()) - 1)?;
            sum = if digit > 0 { sum + multiple } else { sum - multiple };
        }
        Some(sum)
    }
}

/// The multiples 1..=128 of 256^i·`point` for i in 0..32, row by row: 4096 additions.
fn multiples(point: &EdwardsPoint) -> Vec<EdwardsPoint> {
    let mut points = Vec::with_capacity(ROWS * MULTIPLES);
    let mut base = *point;
    for _ in 0..ROWS {
        let mut multiple = base;
        points.push(multiple);
        for _ in 1..MULTIPLES {
            multiple += base;
            points.push(multiple);
        }
        // 256 · base: twice the row's last multiple (128 · base).
        base = multiple + multiple;
    }
    points
}

/// The signed radix-256 digits of a little-endian 256-bit number, each in -128..128, least
/// significant first: Σ d_i·256^i equals it. `None` if a carry is left over the top digit (the
/// number is at least 2^255 − 2^248·128, far above any reduced scalar).
fn radix_256(bytes: &[u8; 32]) -> Option<[i16; ROWS]> {
    let mut digits = [0i16; ROWS];
    let mut carry = 0i16;
    for (digit, &byte) in digits.iter_mut().zip(bytes) {
        let value = i16::from(byte) + carry;
        carry = i16::from(value >= 128);
        *digit = value - 256 * carry;
    }
    (carry == 0).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use rand::{Rng, SeedableRng};

    fn value(digits: &[i16; ROWS]) -> [u8; 32] {
        // Σ d_i·256^i, back to little-endian bytes (the sum is non-negative for the inputs here).
        let mut out = [0u8; 32];
        let mut carry = 0i32;
        for (byte, &digit) in out.iter_mut().zip(digits) {
            let v = i32::from(digit) + carry;
            *byte = v.rem_euclid(256) as u8;
            carry = v.div_euclid(256);
        }
        assert_eq!(carry, 0);
        out
    }

    #[test]
    fn digits_add_up_and_stay_in_range() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let reduced = |b: [u8; 32]| Scalar::from_bytes_mod_order(b).to_bytes();
        let mut cases = vec![
            [0u8; 32],
            reduced([0x7f; 32]),
            reduced([0x80; 32]),
            [0x7f; 31].iter().chain(&[0x0f]).copied().collect::<Vec<_>>().try_into().expect("32"),
            Scalar::ONE.to_bytes(),
            (-Scalar::ONE).to_bytes(),
        ];
        for _ in 0..1000 {
            let mut bytes = [0u8; 32];
            rng.fill(&mut bytes[..]);
            cases.push(Scalar::from_bytes_mod_order(bytes).to_bytes());
            bytes[31] &= 0x3f;
            cases.push(bytes);
        }
        for bytes in cases {
            let digits = radix_256(&bytes).expect("fits");
            assert!(digits.iter().all(|d| (-128..128).contains(d)), "{digits:?}");
            assert_eq!(value(&digits), bytes);
        }
        // A carry over the top digit does not fit.
        assert_eq!(radix_256(&[0xff; 32]), None);
    }

    /// Every product is curve25519-dalek's own (variable-base, constant-time), for the base point
    /// and another point, at the edges of the digits and at random.
    #[test]
    fn products_are_dalek_s() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let other = ED25519_BASEPOINT_POINT * Scalar::from(0x1234_5678_9abc_u64);
        for point in [ED25519_BASEPOINT_POINT, other] {
            let table = VartimeTable::create(&point);
            let mut scalars = vec![Scalar::ZERO, Scalar::ONE, -Scalar::ONE, Scalar::from(127u8), Scalar::from(128u8)];
            scalars.push(Scalar::from_bytes_mod_order([0x80; 32]));
            scalars.push(Scalar::from_bytes_mod_order([0x7f; 32]));
            for _ in 0..64 {
                let mut bytes = [0u8; 64];
                rng.fill(&mut bytes[..]);
                scalars.push(Scalar::from_bytes_mod_order_wide(&bytes));
            }
            for scalar in scalars {
                assert_eq!(table.mul(&scalar), Some(point * scalar), "{scalar:?}");
            }
        }
    }

    #[test]
    fn key_tables_are_counted() {
        let point = ED25519_BASEPOINT_POINT * Scalar::from(3u8);
        let alive: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let mut tables: Vec<_> =
            (0..MAX_TABLES + 3).filter_map(|_| VartimeTable::create_counted_in(alive, &point)).collect();
        assert_eq!(tables.len(), MAX_TABLES);
        assert!(VartimeTable::create_counted_in(alive, &point).is_none(), "none while the isolate holds its share");
        // A dropped key's table makes room for one more, and only one.
        tables.truncate(MAX_TABLES - 1);
        assert_eq!(alive.load(Ordering::Relaxed), MAX_TABLES - 1);
        tables.push(VartimeTable::create_counted_in(alive, &point).expect("room again"));
        assert!(VartimeTable::create_counted_in(alive, &point).is_none());
        // Uncounted tables (the base point's) never count.
        drop(VartimeTable::create(&point));
        assert_eq!(alive.load(Ordering::Relaxed), MAX_TABLES);
    }
}
