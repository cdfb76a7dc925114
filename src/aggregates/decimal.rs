//! Exact decimal sums for k_sum / k_avg over numeric, of any size, as PostgreSQL's own
//! sum(numeric) gives them. Pure Rust.
//!
//! Like PostgreSQL's NumericSumAccum (numeric.c), positive and negative inputs are summed
//! apart, as magnitudes, so that adding never needs a comparison or a subtraction; the two
//! are subtracted once, for the result. Magnitudes are little-endian limbs in base 10^9, at a
//! common scale (digits after the point): the largest scale seen, which is also how sum(numeric)
//! chooses its result's display scale.

use super::state::StateError;

const BASE: u64 = 1_000_000_000;
const BASE_DIGITS: usize = 9;

/// A magnitude: little-endian base-10^9 limbs, without high zero limbs (zero is empty).
type Mag = Vec<u32>;

fn trim(m: &mut Mag) {
    while m.last() == Some(&0) {
        m.pop();
    }
}

/// m += other.
fn add_mag(m: &mut Mag, other: &[u32]) -> Result<(), StateError> {
    if m.len() < other.len() {
        m.try_reserve(other.len() - m.len()).map_err(|_| StateError::OutOfMemory)?;
        m.resize(other.len(), 0);
    }
    let mut carry = 0u64;
    for (i, limb) in m.iter_mut().enumerate() {
        let sum = u64::from(*limb) + u64::from(other.get(i).copied().unwrap_or(0)) + carry;
        *limb = (sum % BASE) as u32;
        carry = sum / BASE;
        if carry == 0 && i >= other.len() {
            break;
        }
    }
    if carry > 0 {
        m.try_reserve(1).map_err(|_| StateError::OutOfMemory)?;
        m.push(carry as u32);
    }
    Ok(())
}

/// Multiplies m by 10^k: whole limbs first, then the remaining power below 10^9.
fn shift_mag(m: &mut Mag, k: u32) -> Result<(), StateError> {
    if m.is_empty() || k == 0 {
        return Ok(());
    }
    let limbs = k as usize / BASE_DIGITS;
    let rest = 10u64.pow(k % BASE_DIGITS as u32);
    if rest > 1 {
        let mut carry = 0u64;
        for limb in m.iter_mut() {
            let v = u64::from(*limb) * rest + carry;
            *limb = (v % BASE) as u32;
            carry = v / BASE;
        }
        if carry > 0 {
            m.try_reserve(1).map_err(|_| StateError::OutOfMemory)?;
            m.push(carry as u32);
        }
    }
    if limbs > 0 {
        m.try_reserve(limbs).map_err(|_| StateError::OutOfMemory)?;
        m.splice(0..0, std::iter::repeat_n(0, limbs));
    }
    Ok(())
}

fn cmp_mag(a: &[u32], b: &[u32]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

/// a - b, for a >= b.
fn sub_mag(a: &[u32], b: &[u32]) -> Mag {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0i64;
    for (i, &limb) in a.iter().enumerate() {
        let mut v = i64::from(limb) - i64::from(b.get(i).copied().unwrap_or(0)) - borrow;
        borrow = 0;
        if v < 0 {
            v += BASE as i64;
            borrow = 1;
        }
        out.push(v as u32);
    }
    trim(&mut out);
    out
}

/// Decimal digits of a magnitude, most significant first ("0" for zero).
fn mag_digits(m: &[u32]) -> String {
    let Some((top, rest)) = m.split_last() else {
        return "0".into();
    };
    let mut s = top.to_string();
    for limb in rest.iter().rev() {
        s.push_str(&format!("{limb:09}"));
    }
    s
}

fn parse_mag(digits: &str) -> Result<Mag, StateError> {
    let bytes = digits.as_bytes();
    let mut m = Vec::with_capacity(bytes.len() / BASE_DIGITS + 1);
    for chunk in bytes.rchunks(BASE_DIGITS) {
        let mut limb = 0u32;
        for &c in chunk {
            if !c.is_ascii_digit() {
                return Err(StateError::Malformed);
            }
            limb = limb * 10 + u32::from(c - b'0');
        }
        m.push(limb);
    }
    trim(&mut m);
    Ok(m)
}

/// An exact sum of numerics (or a special value).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Decimal {
    pos: Mag,
    neg: Mag,
    scale: u32,
    nan: bool,
    pos_inf: bool,
    neg_inf: bool,
}

impl Decimal {
    /// Parses numeric_out's text: `-123.4500`, `0`, `NaN`, `Infinity`, `-Infinity`.
    pub fn parse(text: &str) -> Result<Decimal, StateError> {
        match text {
            "NaN" => return Ok(Decimal { nan: true, ..Decimal::default() }),
            "Infinity" => return Ok(Decimal { pos_inf: true, ..Decimal::default() }),
            "-Infinity" => return Ok(Decimal { neg_inf: true, ..Decimal::default() }),
            _ => {}
        }
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(StateError::Malformed);
        }
        let mag = parse_mag(&format!("{int_part}{frac_part}"))?;
        let scale = u32::try_from(frac_part.len()).map_err(|_| StateError::Overflow)?;
        let (pos, neg) = if negative { (Vec::new(), mag) } else { (mag, Vec::new()) };
        Ok(Decimal { pos, neg, scale, ..Decimal::default() })
    }

    fn rescale(&mut self, scale: u32) -> Result<(), StateError> {
        if scale > self.scale {
            shift_mag(&mut self.pos, scale - self.scale)?;
            shift_mag(&mut self.neg, scale - self.scale)?;
            self.scale = scale;
        }
        Ok(())
    }

    pub fn add(&mut self, other: &Decimal) -> Result<(), StateError> {
        self.nan |= other.nan;
        self.pos_inf |= other.pos_inf;
        self.neg_inf |= other.neg_inf;
        self.rescale(other.scale)?;
        if other.scale == self.scale {
            add_mag(&mut self.pos, &other.pos)?;
            add_mag(&mut self.neg, &other.neg)?;
        } else {
            let mut o = other.clone();
            o.rescale(self.scale)?;
            add_mag(&mut self.pos, &o.pos)?;
            add_mag(&mut self.neg, &o.neg)?;
        }
        Ok(())
    }

    /// numeric_in's text for the value, as PostgreSQL's sum(numeric) would give it: NaN if
    /// any input was NaN or both infinities occurred, else an infinity if one occurred.
    pub fn to_text(&self) -> String {
        if self.nan || (self.pos_inf && self.neg_inf) {
            return "NaN".into();
        }
        if self.pos_inf {
            return "Infinity".into();
        }
        if self.neg_inf {
            return "-Infinity".into();
        }
        let (negative, mag) = match cmp_mag(&self.pos, &self.neg) {
            std::cmp::Ordering::Less => (true, sub_mag(&self.neg, &self.pos)),
            _ => (false, sub_mag(&self.pos, &self.neg)),
        };
        let digits = mag_digits(&mag);
        let sign = if negative { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int_part, frac_part) = padded.split_at(padded.len() - scale);
        format!("{sign}{int_part}.{frac_part}")
    }

    /// Appends the state's bytes: flags, scale, then both magnitudes (length, limbs).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.nan) | u8::from(self.pos_inf) << 1 | u8::from(self.neg_inf) << 2);
        out.extend_from_slice(&self.scale.to_le_bytes());
        for mag in [&self.pos, &self.neg] {
            // A magnitude's length is bounded far below 2^32 limbs by the 1 GB bytea limit.
            out.extend_from_slice(&(mag.len() as u32).to_le_bytes());
            for limb in mag {
                out.extend_from_slice(&limb.to_le_bytes());
            }
        }
    }

    /// Reads `encode`'s bytes from the front of `bytes`, returning the rest.
    pub fn decode(bytes: &[u8]) -> Result<(Decimal, &[u8]), StateError> {
        let (&flags, rest) = bytes.split_first().ok_or(StateError::Malformed)?;
        if flags & !7 != 0 {
            return Err(StateError::Malformed);
        }
        let (scale, mut rest) = rest.split_first_chunk::<4>().ok_or(StateError::Malformed)?;
        let mut mags = [Vec::new(), Vec::new()];
        for mag in &mut mags {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or(StateError::Malformed)?;
            let len = u32::from_le_bytes(*len) as usize;
            let body = tail.get(..len.checked_mul(4).ok_or(StateError::Malformed)?);
            let body = body.ok_or(StateError::Malformed)?;
            for chunk in body.chunks_exact(4) {
                let limb = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                if u64::from(limb) >= BASE {
                    return Err(StateError::Malformed);
                }
                mag.push(limb);
            }
            if mag.last() == Some(&0) {
                return Err(StateError::Malformed);
            }
            rest = &tail[len * 4..];
        }
        let [pos, neg] = mags;
        let scale = u32::from_le_bytes(*scale);
        // numeric's largest display scale (numeric.h, NUMERIC_DSCALE_MAX): a forged larger one
        // would make rescaling allocate without bound.
        if scale > 16383 {
            return Err(StateError::Malformed);
        }
        let d = Decimal {
            pos,
            neg,
            scale,
            nan: flags & 1 != 0,
            pos_inf: flags & 2 != 0,
            neg_inf: flags & 4 != 0,
        };
        Ok((d, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[&str]) -> String {
        let mut acc = Decimal::default();
        for v in values {
            acc.add(&Decimal::parse(v).unwrap()).unwrap();
        }
        acc.to_text()
    }

    #[test]
    fn sums_like_numeric() {
        assert_eq!(sum(&["12.50", "-0.125"]), "12.375");
        assert_eq!(sum(&["12.50", "-0.125", "-13"]), "-0.625");
        assert_eq!(sum(&["0.001"]), "0.001");
        assert_eq!(sum(&["-7"]), "-7");
        assert_eq!(sum(&["0.0", "0.00"]), "0.00");
        assert_eq!(sum(&["5", "-5"]), "0");
        assert_eq!(sum(&[]), "0");
        // beyond 128 bits, and scales far apart
        assert_eq!(
            sum(&["100000000000000000000", "0.0000000000000000001"]),
            "100000000000000000000.0000000000000000001"
        );
        let nines = "9".repeat(60);
        assert_eq!(sum(&[&nines, "1"]), format!("1{}", "0".repeat(60)));
        assert_eq!(sum(&[&format!("-{nines}"), "-1"]), format!("-1{}", "0".repeat(60)));
        let tiny = format!("0.{}1", "0".repeat(49));
        assert_eq!(sum(&[&tiny, &tiny]), format!("0.{}2", "0".repeat(49)));
        assert_eq!(
            sum(&["0.00000000000000000000000000000000000000000", "1"]),
            "1.00000000000000000000000000000000000000000"
        );
    }

    #[test]
    fn special_values_like_numeric() {
        assert_eq!(sum(&["Infinity", "5"]), "Infinity");
        assert_eq!(sum(&["-Infinity", "5"]), "-Infinity");
        assert_eq!(sum(&["Infinity", "-Infinity"]), "NaN");
        assert_eq!(sum(&["NaN", "1"]), "NaN");
        assert_eq!(Decimal::parse("1e5"), Err(StateError::Malformed));
        assert_eq!(Decimal::parse("."), Err(StateError::Malformed));
        assert_eq!(Decimal::parse("1.2.3"), Err(StateError::Malformed));
    }

    /// Against i128 arithmetic on random values that fit it.
    #[test]
    fn matches_integer_arithmetic() {
        let mut x: u64 = 7;
        for _ in 0..2000 {
            let mut acc = Decimal::default();
            let mut exact: i128 = 0; // in units of 10^-6
            for _ in 0..(x % 17) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let v = (x >> 20) as i64 % 1_000_000_000_000 - 500_000_000_000;
                let scale = (x >> 8) % 7;
                let text = {
                    let p = 10i64.pow(scale as u32);
                    let (neg, a) = (v < 0, v.unsigned_abs());
                    let int = a / p as u64;
                    let frac = a % p as u64;
                    let sign = if neg { "-" } else { "" };
                    if scale == 0 {
                        format!("{sign}{int}")
                    } else {
                        format!("{sign}{int}.{frac:0width$}", width = scale as usize)
                    }
                };
                exact += i128::from(v) * 10i128.pow(6 - scale as u32);
                acc.add(&Decimal::parse(&text).unwrap()).unwrap();
            }
            let got = acc.to_text();
            let (neg, digits) = match got.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, got.as_str()),
            };
            let (i, f) = digits.split_once('.').unwrap_or((digits, ""));
            let f6 = format!("{f:0<6}");
            let value: i128 = format!("{i}{}", &f6[..6]).parse().unwrap();
            assert_eq!(if neg { -value } else { value }, exact, "{got}");
        }
    }

    #[test]
    fn encoding_round_trips() {
        let mut d = Decimal::parse("-123456789012345678901234567890.5").unwrap();
        d.add(&Decimal::parse("7.25").unwrap()).unwrap();
        let mut bytes = Vec::new();
        d.encode(&mut bytes);
        bytes.push(42);
        let (back, rest) = Decimal::decode(&bytes).unwrap();
        assert_eq!(back, d);
        assert_eq!(rest, &[42]);
        // a limb out of range, a high zero limb, a short body
        let mut bad = Vec::new();
        Decimal::parse("5").unwrap().encode(&mut bad);
        let limb_at = bad.len() - 8; // pos limb, then neg length
        bad[limb_at..limb_at + 4].copy_from_slice(&1_000_000_000u32.to_le_bytes());
        assert_eq!(Decimal::decode(&bad), Err(StateError::Malformed));
        bad[limb_at..limb_at + 4].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(Decimal::decode(&bad), Err(StateError::Malformed));
        assert_eq!(Decimal::decode(&bad[..bad.len() - 6]), Err(StateError::Malformed));
    }
}
