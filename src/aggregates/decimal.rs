//! Exact decimal sums for k_sum / k_avg over numeric, of any size, as PostgreSQL's own
//! sum(numeric) gives them. Pure Rust, generic over where the limbs live (buf.rs).
//!
//! Like PostgreSQL's NumericSumAccum (numeric.c), positive and negative inputs are summed
//! apart, as magnitudes, so that adding never needs a comparison or a subtraction; the two
//! are subtracted once, for the result. Magnitudes are little-endian limbs in base 10^9, at a
//! common scale (digits after the point): the largest display scale seen, which is also how
//! sum(numeric) chooses its result's display scale.
//!
//! Each row's base-10000 digits are added straight into the limbs they overlap, and carries
//! are left pending, as NumericSumAccum also does: a limb is a u64 that one row raises by
//! less than 3.01 * 10^9 (a limb spans 9 decimal places, so it receives the low part of at
//! most three digits, each below 10^9, and the high part, below 1000, of at most three), so
//! 2^31 rows fit before the carries must be propagated (`normalize`).

use super::buf::{Buf, Env, CHUNK};
use super::numeric::{NumericRef, NumericValue, DEC_DIGITS, DSCALE_MAX, NBASE};
use super::state::StateError;

const BASE: u64 = 1_000_000_000;
const POW10: [u64; 10] =
    [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000];
/// Additions between two carry propagations (see the module comment).
const PENDING_MAX: u32 = 1 << 31;

/// Propagates pending carries: every limb below 10^9, no high zero limbs.
fn normalize<E: Env>(m: &mut Buf<E>) -> Result<(), StateError> {
    let mut carry = 0u64;
    for limb in m.iter_mut() {
        let v = *limb + carry;
        *limb = v % BASE;
        carry = v / BASE;
    }
    while carry > 0 {
        m.push(carry % BASE)?;
        carry /= BASE;
    }
    let len = m.iter().rposition(|&l| l != 0).map_or(0, |p| p + 1);
    m.truncate(len);
    Ok(())
}

/// m *= 10^k, for a normalized m: whole limbs first, then the remaining power below 10^9.
fn shift<E: Env>(m: &mut Buf<E>, k: u32) -> Result<(), StateError> {
    if m.is_empty() || k == 0 {
        return Ok(());
    }
    let rest = POW10[(k % 9) as usize];
    if rest > 1 {
        let mut carry = 0u64;
        for limb in m.iter_mut() {
            let v = *limb * rest + carry; // < 10^9 * 10^8 + 10^9
            *limb = v % BASE;
            carry = v / BASE;
        }
        if carry > 0 {
            m.push(carry)?;
        }
    }
    let limbs = (k / 9) as usize;
    if limbs > 0 {
        let len = m.len();
        m.resize(len + limbs)?;
        m.copy_within(0..len, limbs);
        m[..limbs].fill(0);
    }
    Ok(())
}

fn cmp_mag(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

/// a - b into a new array, for normalized a >= b.
fn sub_mag<E: Env>(a: &[u64], b: &[u64], env: E) -> Result<Buf<E>, StateError> {
    let mut out = Buf::with_capacity(env, a.len())?;
    let mut borrow = 0u64;
    for (i, &limb) in a.iter().enumerate() {
        let sub = b.get(i).copied().unwrap_or(0) + borrow;
        let (v, b) = if limb >= sub { (limb - sub, 0) } else { (limb + BASE - sub, 1) };
        out.push(v)?;
        borrow = b;
    }
    let len = out.iter().rposition(|&l| l != 0).map_or(0, |p| p + 1);
    out.truncate(len);
    Ok(out)
}

/// An exact sum of numerics (or a special value).
pub struct Decimal<E: Env> {
    pos: Buf<E>,
    neg: Buf<E>,
    scale: u32,
    /// Additions since the last `normalize` of both magnitudes.
    pending: u32,
    nan: bool,
    pos_inf: bool,
    neg_inf: bool,
}

impl<E: Env> Decimal<E> {
    pub fn new(env: E) -> Self {
        Decimal {
            pos: Buf::new(env),
            neg: Buf::new(env),
            scale: 0,
            pending: 0,
            nan: false,
            pos_inf: false,
            neg_inf: false,
        }
    }

    fn normalize(&mut self) -> Result<(), StateError> {
        if self.pending > 0 {
            normalize(&mut self.pos)?;
            normalize(&mut self.neg)?;
            self.pending = 0;
        }
        Ok(())
    }

    /// Counts one addition to the limbs, propagating carries before they could overflow.
    fn added(&mut self) -> Result<(), StateError> {
        self.pending += 1;
        if self.pending >= PENDING_MAX {
            self.normalize()?;
        }
        Ok(())
    }

    fn rescale(&mut self, scale: u32) -> Result<(), StateError> {
        if scale > self.scale {
            self.normalize()?;
            shift(&mut self.pos, scale - self.scale)?;
            shift(&mut self.neg, scale - self.scale)?;
            self.scale = scale;
        }
        Ok(())
    }

    /// Adds one numeric datum. Its digit i is worth d * 10^(4 (weight - i)), that is
    /// d * 10^e in units of 10^-scale with e = 4 (weight - i) + scale: the low 9 - e % 9
    /// decimal places of d * 10^(e % 9) go to limb e / 9, the rest to the next limb.
    #[inline]
    pub fn add_numeric(&mut self, v: &NumericRef<'_>) -> Result<(), StateError> {
        let d = match v {
            NumericRef::NaN => {
                self.nan = true;
                return Ok(());
            }
            NumericRef::PosInf => {
                self.pos_inf = true;
                return Ok(());
            }
            NumericRef::NegInf => {
                self.neg_inf = true;
                return Ok(());
            }
            NumericRef::Finite(d) => d,
        };
        if d.dscale > self.scale {
            self.rescale(d.dscale)?;
        }
        if d.is_empty() {
            return Ok(());
        }
        let scale = i64::from(self.scale);
        let top = DEC_DIGITS * i64::from(d.weight) + scale;
        // The last stored digit may reach up to 3 places past the display scale, with zeros
        // there (1.5 is stored as 1, 5000 with dscale 1); a whole digit past it cannot be.
        let last = top - DEC_DIGITS * (d.len() as i64 - 1);
        if last < -(DEC_DIGITS - 1) {
            return Err(StateError::BadNumeric);
        }
        let mag = if d.negative { &mut self.neg } else { &mut self.pos };
        let need = (top.max(0) / 9 + 2) as usize;
        if mag.len() < need {
            mag.resize(need)?;
        }
        let mut e = top;
        for digit in d.iter() {
            if u32::from(digit) >= NBASE {
                return Err(StateError::BadNumeric);
            }
            let digit = u64::from(digit);
            if e >= 0 {
                let (q, r) = ((e / 9) as usize, (e % 9) as usize);
                let x = digit * POW10[r];
                mag[q] += x % BASE;
                mag[q + 1] += x / BASE;
            } else {
                // only the last digit, e in -3..=-1: its dropped places must be zeros
                let p = POW10[(-e) as usize];
                if digit % p != 0 {
                    return Err(StateError::BadNumeric);
                }
                mag[0] += digit / p;
            }
            e -= DEC_DIGITS;
        }
        self.added()
    }

    /// A copy in another environment's memory.
    pub fn copy_in<F: Env>(&self, env: F) -> Result<Decimal<F>, StateError> {
        Ok(Decimal {
            pos: self.pos.copy_in(env)?,
            neg: self.neg.copy_in(env)?,
            scale: self.scale,
            pending: self.pending,
            nan: self.nan,
            pos_inf: self.pos_inf,
            neg_inf: self.neg_inf,
        })
    }

    pub fn merge(&mut self, other: &Decimal<E>) -> Result<(), StateError> {
        self.nan |= other.nan;
        self.pos_inf |= other.pos_inf;
        self.neg_inf |= other.neg_inf;
        self.rescale(other.scale)?;
        // other is read-only: a normalized copy at our scale
        let mut o = other.copy_in(self.pos.env())?;
        o.normalize()?;
        o.rescale(self.scale)?;
        for (mag, add) in [(&mut self.pos, &o.pos), (&mut self.neg, &o.neg)] {
            if mag.len() < add.len() + 1 {
                mag.resize(add.len() + 1)?;
            }
            for (i, &l) in add.iter().enumerate() {
                mag[i] += l;
                if i % CHUNK == CHUNK - 1 {
                    mag.env().check_interrupts();
                }
            }
        }
        self.added()
    }

    /// Calls `f` with the sum as PostgreSQL's sum(numeric) gives it (numeric.c,
    /// `numeric_sum`): NaN if any input was NaN or both infinities occurred, else an infinity
    /// if one occurred, else the exact sum at the largest display scale seen.
    pub fn with_value<R>(
        &mut self,
        f: impl FnOnce(&NumericValue<'_>) -> R,
    ) -> Result<R, StateError> {
        if self.nan || (self.pos_inf && self.neg_inf) {
            return Ok(f(&NumericValue::NaN));
        }
        if self.pos_inf {
            return Ok(f(&NumericValue::PosInf));
        }
        if self.neg_inf {
            return Ok(f(&NumericValue::NegInf));
        }
        self.normalize()?;
        let env = self.pos.env();
        let (negative, mag) = match cmp_mag(&self.pos, &self.neg) {
            std::cmp::Ordering::Less => (true, sub_mag(&self.neg, &self.pos, env)?),
            _ => (false, sub_mag(&self.pos, &self.neg, env)?),
        };
        Ok(f(&NumericValue::Finite { negative, mag: &mag, scale: self.scale }))
    }

    /// The bytes `encode` will write (after normalizing, which `encode` needs).
    pub fn encoded_len(&mut self) -> Result<usize, StateError> {
        self.normalize()?;
        Ok(1 + 4 + 4 + 4 * self.pos.len() + 4 + 4 * self.neg.len())
    }

    /// Writes the state's bytes (flags, scale, then both magnitudes as a u32 count and u32
    /// limbs) at the front of `out`, returning the rest. Call `encoded_len` first.
    pub fn encode<'o>(&self, out: &'o mut [u8]) -> &'o mut [u8] {
        debug_assert_eq!(self.pending, 0, "encoded_len normalizes first");
        let flags = u8::from(self.nan) | u8::from(self.pos_inf) << 1 | u8::from(self.neg_inf) << 2;
        let (head, mut out) = out.split_at_mut(5);
        head[0] = flags;
        head[1..].copy_from_slice(&self.scale.to_le_bytes());
        for mag in [&self.pos, &self.neg] {
            // A magnitude's length is bounded far below 2^32 limbs by the 1 GB bytea limit.
            let (len, rest) = out.split_at_mut(4);
            len.copy_from_slice(&(mag.len() as u32).to_le_bytes());
            let (body, rest) = rest.split_at_mut(4 * mag.len());
            for (slot, &limb) in body.chunks_exact_mut(4).zip(mag.iter()) {
                // normalized limbs are below 10^9 < 2^32
                slot.copy_from_slice(&(limb as u32).to_le_bytes());
            }
            out = rest;
        }
        out
    }

    /// Reads `encode`'s bytes from the front of `bytes`, returning the rest.
    pub fn decode(bytes: &[u8], env: E) -> Result<(Decimal<E>, &[u8]), StateError> {
        let (&flags, rest) = bytes.split_first().ok_or(StateError::Malformed)?;
        if flags & !7 != 0 {
            return Err(StateError::Malformed);
        }
        let (scale, mut rest) = rest.split_first_chunk::<4>().ok_or(StateError::Malformed)?;
        let scale = u32::from_le_bytes(*scale);
        // numeric's largest display scale: a forged larger one would make rescaling allocate
        // without bound.
        if scale > DSCALE_MAX {
            return Err(StateError::Malformed);
        }
        let mut d = Decimal::new(env);
        for neg in [false, true] {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or(StateError::Malformed)?;
            let len = u32::from_le_bytes(*len) as usize;
            let body = tail.get(..len.checked_mul(4).ok_or(StateError::Malformed)?);
            let body = body.ok_or(StateError::Malformed)?;
            let mag = if neg { &mut d.neg } else { &mut d.pos };
            mag.reserve(len)?;
            for (i, chunk) in body.chunks_exact(4).enumerate() {
                let limb = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                if u64::from(limb) >= BASE {
                    return Err(StateError::Malformed);
                }
                mag.push(u64::from(limb))?;
                if i % CHUNK == CHUNK - 1 {
                    env.check_interrupts();
                }
            }
            if mag.last() == Some(&0) {
                return Err(StateError::Malformed);
            }
            rest = &tail[len * 4..];
        }
        d.scale = scale;
        d.nan = flags & 1 != 0;
        d.pos_inf = flags & 2 != 0;
        d.neg_inf = flags & 4 != 0;
        Ok((d, rest))
    }
}

/// Equal values with equal scales (pending carries aside). For tests: it allocates.
#[cfg(test)]
impl<E: Env> PartialEq for Decimal<E> {
    fn eq(&self, other: &Self) -> bool {
        let flags = |d: &Self| (d.nan, d.pos_inf, d.neg_inf, d.scale);
        let norm = |d: &Self| -> Option<(Vec<u64>, Vec<u64>)> {
            let mut c = d.copy_in(d.pos.env()).ok()?;
            c.normalize().ok()?;
            Some((c.pos.to_vec(), c.neg.to_vec()))
        };
        flags(self) == flags(other) && norm(self) == norm(other)
    }
}

impl<E: Env> std::fmt::Debug for Decimal<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decimal")
            .field("pos", &self.pos)
            .field("neg", &self.neg)
            .field("scale", &self.scale)
            .field("pending", &self.pending)
            .field("flags", &(self.nan, self.pos_inf, self.neg_inf))
            .finish()
    }
}

#[cfg(test)]
pub mod tests {
    use super::super::buf::tests::HeapEnv;
    use super::super::numeric::{self, tests::pg_numeric};
    use super::*;

    /// The sum through the whole path: numeric datums' bytes in, numeric datum bytes out.
    pub fn sum_bytes(values: &[&str]) -> Result<Vec<u8>, StateError> {
        let mut acc = Decimal::new(HeapEnv);
        for v in values {
            acc.add_numeric(&numeric::read(&pg_numeric(v))?)?;
        }
        acc.with_value(numeric::tests::written)?
    }

    /// The slow reference: decimal strings summed digit by digit, positives and negatives
    /// apart, at the largest scale; the result as numeric_out would print it.
    fn slow_sum(values: &[&str]) -> String {
        let specials = |s: &str| values.contains(&s);
        if specials("NaN") || (specials("Infinity") && specials("-Infinity")) {
            return "NaN".into();
        }
        if specials("Infinity") {
            return "Infinity".into();
        }
        if specials("-Infinity") {
            return "-Infinity".into();
        }
        let scale =
            values.iter().map(|v| v.split_once('.').map_or(0, |(_, f)| f.len())).max().unwrap_or(0);
        // little-endian decimal digits at `scale`
        let digits = |v: &str| -> (bool, Vec<u32>) {
            let (neg, body) = v.strip_prefix('-').map_or((false, v), |b| (true, b));
            let (i, f) = body.split_once('.').unwrap_or((body, ""));
            let s = format!("{i}{f}{}", "0".repeat(scale - f.len()));
            (neg, s.bytes().rev().map(|c| u32::from(c - b'0')).collect())
        };
        let add = |a: &mut Vec<u32>, b: &[u32]| {
            a.resize(a.len().max(b.len()) + 1, 0);
            let mut carry = 0;
            for (i, d) in a.iter_mut().enumerate() {
                let s = *d + b.get(i).copied().unwrap_or(0) + carry;
                *d = s % 10;
                carry = s / 10;
            }
        };
        let (mut p, mut n) = (vec![0u32], vec![0u32]);
        for v in values {
            let (neg, d) = digits(v);
            add(if neg { &mut n } else { &mut p }, &d);
        }
        let trim = |v: &mut Vec<u32>| {
            while v.len() > 1 && v.last() == Some(&0) {
                v.pop();
            }
        };
        trim(&mut p);
        trim(&mut n);
        let bigger = |a: &[u32], b: &[u32]| {
            a.len().cmp(&b.len()).then_with(|| a.iter().rev().cmp(b.iter().rev()))
        };
        let (neg, (a, b)) = if bigger(&p, &n).is_lt() { (true, (n, p)) } else { (false, (p, n)) };
        let mut r = Vec::new();
        let mut borrow = 0i64;
        for (i, &d) in a.iter().enumerate() {
            let mut s = i64::from(d) - i64::from(b.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(s < 0);
            if s < 0 {
                s += 10;
            }
            r.push(s as u32);
        }
        r.resize(r.len().max(scale + 1), 0);
        trim(&mut r);
        r.resize(r.len().max(scale + 1), 0);
        let text: String = r.iter().rev().map(|d| char::from(b'0' + *d as u8)).collect();
        let (i, f) = text.split_at(text.len() - scale);
        let zero = r.iter().all(|&d| d == 0);
        let sign = if neg && !zero { "-" } else { "" };
        if scale == 0 {
            format!("{sign}{i}")
        } else {
            format!("{sign}{i}.{f}")
        }
    }

    fn check(values: &[&str]) {
        assert_eq!(
            sum_bytes(values).unwrap(),
            pg_numeric(&slow_sum(values)),
            "{values:?} = {}",
            slow_sum(values)
        );
    }

    #[test]
    fn sums_like_numeric() {
        check(&["12.50", "-0.125"]);
        check(&["12.50", "-0.125", "-13"]);
        check(&["0.001"]);
        check(&["-7"]);
        check(&["0.0", "0.00"]);
        check(&["5", "-5"]);
        check(&["1.5", "-1.5"]);
        check(&[]);
        check(&["100000000000000000000", "0.0000000000000000001"]);
        let nines = "9".repeat(60);
        check(&[&nines, "1"]);
        check(&[&format!("-{nines}"), "-1"]);
        let tiny = format!("0.{}1", "0".repeat(49));
        check(&[&tiny, &tiny]);
        check(&["0.00000000000000000000000000000000000000000", "1"]);
        // the largest and smallest numeric digits
        let huge = format!("{}.{}", "9".repeat(1000), "9".repeat(DSCALE_MAX as usize));
        check(&[&huge, &huge, "-0.5"]);
        assert_eq!(sum_bytes(&["Infinity", "5"]).unwrap(), pg_numeric("Infinity"));
        assert_eq!(sum_bytes(&["-Infinity", "5"]).unwrap(), pg_numeric("-Infinity"));
        assert_eq!(sum_bytes(&["Infinity", "-Infinity"]).unwrap(), pg_numeric("NaN"));
        assert_eq!(sum_bytes(&["NaN", "1"]).unwrap(), pg_numeric("NaN"));
    }

    /// Random values of every size and scale, against the slow reference.
    #[test]
    fn matches_the_slow_reference() {
        let mut x: u64 = 7;
        let mut next = move || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        for _ in 0..3000 {
            let values: Vec<String> = (0..next() % 12)
                .map(|_| {
                    let int: String =
                        (0..next() % 40).map(|_| char::from(b'0' + (next() % 10) as u8)).collect();
                    let frac: String =
                        (0..next() % 30).map(|_| char::from(b'0' + (next() % 10) as u8)).collect();
                    let int = int.trim_start_matches('0');
                    let int = if int.is_empty() { "0" } else { int };
                    let sign = if next() % 3 == 0 { "-" } else { "" };
                    if frac.is_empty() {
                        format!("{sign}{int}")
                    } else {
                        format!("{sign}{int}.{frac}")
                    }
                })
                .collect();
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            check(&refs);
        }
    }

    #[test]
    fn merges_like_one_sum() {
        let parts = [&["1.25", "-300"][..], &["0.0001", "99999999999999999999"], &[], &["-0.5"]];
        let mut whole = Decimal::new(HeapEnv);
        let mut merged = Decimal::new(HeapEnv);
        for p in parts {
            let mut d = Decimal::new(HeapEnv);
            for v in p {
                let bytes = pg_numeric(v);
                d.add_numeric(&numeric::read(&bytes).unwrap()).unwrap();
                whole.add_numeric(&numeric::read(&bytes).unwrap()).unwrap();
            }
            merged.merge(&d).unwrap();
        }
        assert_eq!(merged, whole);
    }

    #[test]
    fn refuses_digits_numeric_never_writes() {
        // a digit of 10000, and a nonzero digit beyond the display scale
        let mut d = Decimal::new(HeapEnv);
        let mut bad = pg_numeric("1.5");
        bad[2..4].copy_from_slice(&10000u16.to_ne_bytes());
        assert_eq!(d.add_numeric(&numeric::read(&bad).unwrap()), Err(StateError::BadNumeric));
        let mut past = pg_numeric("1.5"); // digits 1, 5000 with dscale 1
        past[4..6].copy_from_slice(&5001u16.to_ne_bytes());
        assert_eq!(d.add_numeric(&numeric::read(&past).unwrap()), Err(StateError::BadNumeric));
    }

    #[test]
    fn encoding_round_trips() {
        let mut d = Decimal::new(HeapEnv);
        for v in ["-123456789012345678901234567890.5", "7.25"] {
            d.add_numeric(&numeric::read(&pg_numeric(v)).unwrap()).unwrap();
        }
        let mut bytes = vec![0; d.encoded_len().unwrap() + 1];
        let rest = d.encode(&mut bytes);
        rest[0] = 42;
        let (back, rest) = Decimal::decode(&bytes, HeapEnv).unwrap();
        assert_eq!(back, d);
        assert_eq!(rest, &[42]);
        // a limb out of range, a high zero limb, a short body
        let mut five = Decimal::new(HeapEnv);
        five.add_numeric(&numeric::read(&pg_numeric("5")).unwrap()).unwrap();
        let mut bad = vec![0; five.encoded_len().unwrap()];
        five.encode(&mut bad);
        let limb_at = bad.len() - 8; // pos limb, then neg length
        bad[limb_at..limb_at + 4].copy_from_slice(&1_000_000_000u32.to_le_bytes());
        assert_eq!(Decimal::decode(&bad, HeapEnv).err(), Some(StateError::Malformed));
        bad[limb_at..limb_at + 4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(Decimal::decode(&bad, HeapEnv).err(), Some(StateError::Malformed));
        assert_eq!(
            Decimal::decode(&bad[..bad.len() - 6], HeapEnv).err(),
            Some(StateError::Malformed)
        );
    }
}
