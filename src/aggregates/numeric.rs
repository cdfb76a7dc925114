//! PostgreSQL's `numeric` storage format, read and written without PostgreSQL. Pure Rust.
//!
//! k_sum and k_avg over numeric read each value's base-10000 digits where they lie in the
//! datum (no numeric_out, no text parsing), and lay out their numeric result directly. The
//! format is defined in PostgreSQL 15's src/backend/utils/adt/numeric.c (`NumericData` and
//! the macros after it); what this module relies on:
//!
//! - After the varlena header comes a uint16 `n_header`. Its two high bits are the flags:
//!   0x8000 short format, 0xC000 special value (then the whole word is 0xC000 NaN, 0xD000
//!   +Infinity or 0xF000 -Infinity, and nothing follows), 0x0000 / 0x4000 long format,
//!   positive / negative.
//! - Short format: sign 0x2000, display scale (digits after the point) in bits 0x1F80 (>> 7),
//!   weight in 0x007F as a 7-bit two's complement number (sign bit 0x0040).
//! - Long format: the word is sign | dscale (0x3FFF), then an int16 weight.
//! - Then the digits: int16s in 0..9999, most significant first; digit i is worth
//!   10000^(weight - i). Leading and trailing zero digits are not stored. The display scale
//!   is never smaller than the stored fraction (numeric.c, comment on NumericVar), so
//!   value * 10^dscale is an integer.
//! - `make_result` writes the short format whenever dscale <= 63 and -64 <= weight <= 63, and
//!   a zero as weight 0, positive. Datums are in native byte order (they are C structs).
//!
//! The digits of a datum may be unaligned (a short varlena header is one byte), so they are
//! read as byte pairs.

use super::state::StateError;

/// Base of PostgreSQL's numeric digits, and decimal digits per numeric digit.
pub const NBASE: u32 = 10_000;
pub const DEC_DIGITS: i64 = 4;
/// numeric.c `NUMERIC_DSCALE_MAX`.
pub const DSCALE_MAX: u32 = 0x3FFF;

const SIGN_MASK: u16 = 0xC000;
const NEG: u16 = 0x4000;
const SHORT: u16 = 0x8000;
const SPECIAL: u16 = 0xC000;
const NAN: u16 = 0xC000;
const PINF: u16 = 0xD000;
const NINF: u16 = 0xF000;
const SHORT_SIGN_MASK: u16 = 0x2000;
const SHORT_DSCALE_MASK: u16 = 0x1F80;
const SHORT_DSCALE_SHIFT: u16 = 7;
const SHORT_DSCALE_MAX: i64 = 63;
const SHORT_WEIGHT_SIGN_MASK: u16 = 0x0040;
const SHORT_WEIGHT_MASK: u16 = 0x003F;
const SHORT_WEIGHT_MAX: i64 = 63;
const SHORT_WEIGHT_MIN: i64 = -64;
const DSCALE_MASK: u16 = 0x3FFF;

/// A numeric datum, borrowed from its bytes (after the varlena header).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumericRef<'a> {
    NaN,
    PosInf,
    NegInf,
    Finite(Digits<'a>),
}

/// A finite numeric: sign, weight, display scale and the stored digits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Digits<'a> {
    pub negative: bool,
    pub weight: i32,
    pub dscale: u32,
    /// int16 digits in native byte order, two bytes each.
    bytes: &'a [u8],
}

impl Digits<'_> {
    pub fn len(&self) -> usize {
        self.bytes.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The digits, most significant first, as stored (each should be below NBASE; the
    /// reader of the digits checks).
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.bytes.chunks_exact(2).map(|p| u16::from_ne_bytes([p[0], p[1]]))
    }
}

/// Reads a numeric datum's bytes (VARDATA_ANY: after the varlena header, detoasted).
/// Refuses what numeric.c never writes: a truncated header, a special value that is not
/// NaN or an infinity, an odd number of digit bytes.
pub fn read(payload: &[u8]) -> Result<NumericRef<'_>, StateError> {
    let (&[h0, h1], rest) = payload.split_first_chunk::<2>().ok_or(StateError::BadNumeric)?;
    let header = u16::from_ne_bytes([h0, h1]);
    let (negative, weight, dscale, digits) = match header & SIGN_MASK {
        SPECIAL => {
            return match (header, rest.is_empty()) {
                (NAN, true) => Ok(NumericRef::NaN),
                (PINF, true) => Ok(NumericRef::PosInf),
                (NINF, true) => Ok(NumericRef::NegInf),
                _ => Err(StateError::BadNumeric),
            };
        }
        SHORT => {
            let magnitude = i32::from(header & SHORT_WEIGHT_MASK);
            let weight = if header & SHORT_WEIGHT_SIGN_MASK != 0 {
                magnitude - i32::from(SHORT_WEIGHT_MASK) - 1
            } else {
                magnitude
            };
            let dscale = u32::from((header & SHORT_DSCALE_MASK) >> SHORT_DSCALE_SHIFT);
            (header & SHORT_SIGN_MASK != 0, weight, dscale, rest)
        }
        sign => {
            let (&[w0, w1], digits) =
                rest.split_first_chunk::<2>().ok_or(StateError::BadNumeric)?;
            let weight = i32::from(i16::from_ne_bytes([w0, w1]));
            (sign == NEG, weight, u32::from(header & DSCALE_MASK), digits)
        }
    };
    if digits.len() % 2 != 0 {
        return Err(StateError::BadNumeric);
    }
    Ok(NumericRef::Finite(Digits { negative, weight, dscale, bytes: digits }))
}

/// A value to write as a numeric.
#[derive(Debug, Clone, Copy)]
pub enum NumericValue<'a> {
    NaN,
    PosInf,
    NegInf,
    /// `mag` * 10^-scale: little-endian base-10^9 limbs, each below 10^9 (high zero limbs
    /// allowed).
    Finite {
        negative: bool,
        mag: &'a [u64],
        scale: u32,
    },
}

const BASE: u64 = 1_000_000_000;
const POW10: [u64; 10] =
    [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000];

/// Decimal digit `i` (0 = units) of the integer the limbs hold.
#[inline]
fn dec_digit(mag: &[u64], i: i64) -> u64 {
    if i < 0 {
        return 0;
    }
    let (limb, pos) = ((i / 9) as usize, (i % 9) as usize);
    mag.get(limb).map_or(0, |l| (l / POW10[pos]) % 10)
}

/// `v` laid out in numeric's storage format, as `make_result` would (numeric.c), ready to be
/// written after a varlena header of the caller's.
pub struct Layout<'a> {
    mag: &'a [u64],
    header: [u8; 4],
    head: usize,
    /// numeric digits top..=low (numbered from the least significant of M', see `layout`)
    top: i64,
    low: i64,
    shift: i64,
}

impl Layout<'_> {
    /// The number of bytes after the varlena header.
    pub fn size(&self) -> usize {
        self.head + 2 * self.ndigits()
    }

    fn ndigits(&self) -> usize {
        (self.top - self.low + 1).max(0) as usize
    }

    /// Numeric digit k of M' = M * 10^shift.
    fn group(&self, k: i64) -> u16 {
        let base = k * DEC_DIGITS - self.shift;
        (0..DEC_DIGITS).rev().fold(0, |acc, t| acc * 10 + dec_digit(self.mag, base + t) as u16)
    }

    /// Writes the bytes into `out`, of `size()` bytes.
    pub fn write(&self, out: &mut [u8]) {
        out[..self.head].copy_from_slice(&self.header[..self.head]);
        for (slot, k) in out[self.head..].chunks_exact_mut(2).zip((self.low..=self.top).rev()) {
            slot.copy_from_slice(&self.group(k).to_ne_bytes());
        }
    }
}

/// Lays out `v`. A weight beyond int16 is `Overflow` ("value overflows numeric format" in
/// numeric.c).
pub fn layout<'a>(v: &NumericValue<'a>) -> Result<Layout<'a>, StateError> {
    let special = |h: u16| {
        let b = h.to_ne_bytes();
        Ok(Layout { mag: &[], header: [b[0], b[1], 0, 0], head: 2, top: 0, low: 1, shift: 0 })
    };
    let (sign, mag, scale) = match *v {
        NumericValue::NaN => return special(NAN),
        NumericValue::PosInf => return special(PINF),
        NumericValue::NegInf => return special(NINF),
        NumericValue::Finite { negative, mag, scale } => (negative, mag, scale),
    };
    if scale > DSCALE_MAX {
        return Err(StateError::Overflow);
    }
    let mag = &mag[..mag.iter().rposition(|&l| l != 0).map_or(0, |p| p + 1)];
    // The value is M * 10^-scale. Numeric digits are aligned on the decimal point, so take
    // M' = M * 10^shift with scale + shift a multiple of 4: numeric digit k (from 0, least
    // significant) of M' is worth 10000^(k - frac), frac = (scale + shift) / 4.
    let scale = i64::from(scale);
    let frac = (scale + DEC_DIGITS - 1) / DEC_DIGITS;
    let shift = frac * DEC_DIGITS - scale;
    let mut l = Layout { mag, header: [0; 4], head: 2, top: 0, low: 1, shift };
    // zero: no digits, weight 0, positive (make_result)
    let (mut weight, mut negative) = (0, false);
    if let Some(&t) = mag.last() {
        // the most significant decimal digit of M is in the top limb
        let in_top = (1..=9).find(|&d| t < POW10[d]).unwrap_or(9) as i64;
        let decimals = 9 * (mag.len() as i64 - 1) + in_top;
        l.top = (decimals + shift - 1) / DEC_DIGITS;
        l.low = (0..=l.top).find(|&k| l.group(k) != 0).unwrap_or(l.top);
        weight = l.top - frac;
        negative = sign;
    }
    if weight > i64::from(i16::MAX) {
        return Err(StateError::Overflow);
    }
    let short =
        scale <= SHORT_DSCALE_MAX && (SHORT_WEIGHT_MIN..=SHORT_WEIGHT_MAX).contains(&weight);
    if short {
        let h = SHORT
            | if negative { SHORT_SIGN_MASK } else { 0 }
            | ((scale as u16) << SHORT_DSCALE_SHIFT)
            | if weight < 0 { SHORT_WEIGHT_SIGN_MASK } else { 0 }
            | (weight as u16 & SHORT_WEIGHT_MASK);
        l.header[..2].copy_from_slice(&h.to_ne_bytes());
    } else {
        let h = if negative { NEG } else { 0 } | (scale as u16 & DSCALE_MASK);
        l.header[..2].copy_from_slice(&h.to_ne_bytes());
        l.header[2..].copy_from_slice(&(weight as i16).to_ne_bytes());
        l.head = 4;
    }
    Ok(l)
}

/// An integer as base-10^9 limbs, for writing sums and counts as numeric.
pub fn int_limbs(v: i128) -> (bool, [u64; 5]) {
    let mut m = v.unsigned_abs();
    let mut limbs = [0u64; 5];
    for l in &mut limbs {
        *l = (m % u128::from(BASE)) as u64;
        m /= u128::from(BASE);
    }
    (v < 0, limbs)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// numeric_in's result for `text`, built from the decimal string alone (independent of
    /// the limb arithmetic above), as numeric.c's make_result lays it out.
    pub fn pg_numeric(text: &str) -> Vec<u8> {
        match text {
            "NaN" => return NAN.to_ne_bytes().to_vec(),
            "Infinity" => return PINF.to_ne_bytes().to_vec(),
            "-Infinity" => return NINF.to_ne_bytes().to_vec(),
            _ => {}
        }
        let (negative, body) = match text.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, text),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let dscale = frac.len();
        // pad the integer part on the left and the fraction on the right to whole groups
        let int = format!("{}{int}", "0".repeat((4 - int.len() % 4) % 4));
        let frac = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
        let all = format!("{int}{frac}");
        let mut digits: Vec<u16> = all
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect();
        let mut weight = (int.len() / 4) as i32 - 1;
        while digits.first() == Some(&0) {
            digits.remove(0);
            weight -= 1;
        }
        while digits.last() == Some(&0) {
            digits.pop();
        }
        let negative = negative && !digits.is_empty();
        if digits.is_empty() {
            weight = 0;
        }
        let mut out = Vec::new();
        if dscale <= 63 && (-64..=63).contains(&weight) {
            let h: u16 = 0x8000
                | if negative { 0x2000 } else { 0 }
                | ((dscale as u16) << 7)
                | if weight < 0 { 0x40 } else { 0 }
                | (weight as u16 & 0x3F);
            out.extend_from_slice(&h.to_ne_bytes());
        } else {
            let h: u16 = if negative { 0x4000 } else { 0 } | dscale as u16;
            out.extend_from_slice(&h.to_ne_bytes());
            out.extend_from_slice(&(weight as i16).to_ne_bytes());
        }
        for d in digits {
            out.extend_from_slice(&d.to_ne_bytes());
        }
        out
    }

    fn long_form(text: &str) -> Vec<u8> {
        // the same value in the long format, which numeric.c reads but make_result avoids
        let short = pg_numeric(text);
        let h = u16::from_ne_bytes([short[0], short[1]]);
        assert_eq!(h & 0xC000, 0x8000, "{text} is not short");
        let NumericRef::Finite(d) = read(&short).unwrap() else { unreachable!() };
        let mut out = Vec::new();
        out.extend_from_slice(
            &((if d.negative { 0x4000 } else { 0 }) | d.dscale as u16).to_ne_bytes(),
        );
        out.extend_from_slice(&(d.weight as i16).to_ne_bytes());
        out.extend_from_slice(&short[2..]);
        out
    }

    #[test]
    fn reads_both_header_formats_and_special_values() {
        let (a, b, c) = (pg_numeric("-12345.678"), long_form("-12345.678"), pg_numeric("0.00001"));
        let NumericRef::Finite(d) = read(&a).unwrap() else { panic!() };
        assert!(d.negative);
        assert_eq!((d.weight, d.dscale), (1, 3));
        assert_eq!(d.iter().collect::<Vec<_>>(), vec![1, 2345, 6780]);
        let NumericRef::Finite(l) = read(&b).unwrap() else { panic!() };
        assert_eq!(l, Digits { bytes: l.bytes, ..d });
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![1, 2345, 6780]);
        let NumericRef::Finite(s) = read(&c).unwrap() else { panic!() };
        assert_eq!((s.weight, s.dscale, s.iter().collect::<Vec<_>>()), (-2, 5, vec![1000]));
        assert_eq!(read(&pg_numeric("NaN")), Ok(NumericRef::NaN));
        assert_eq!(read(&pg_numeric("Infinity")), Ok(NumericRef::PosInf));
        assert_eq!(read(&pg_numeric("-Infinity")), Ok(NumericRef::NegInf));
        // big weights and scales take the long format
        let big = format!("1{}", "0".repeat(300));
        assert_eq!(u16::from_ne_bytes(pg_numeric(&big)[..2].try_into().unwrap()) & 0xC000, 0);
        for bad in [&[][..], &[0x00], &0xE000u16.to_ne_bytes(), &[0, 0xC0, 1, 0], &[0, 0x80, 1]] {
            assert_eq!(read(bad), Err(StateError::BadNumeric), "{bad:?}");
        }
    }

    /// Decimal text to limbs and scale, for `write`.
    fn limbs_of(text: &str) -> (bool, Vec<u64>, u32) {
        let (negative, body) = match text.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, text),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let all = format!("{int}{frac}");
        let limbs = all
            .as_bytes()
            .rchunks(9)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect();
        (negative, limbs, frac.len() as u32)
    }

    pub fn written(v: &NumericValue) -> Result<Vec<u8>, StateError> {
        let l = layout(v)?;
        let mut buf = vec![0xAA; l.size()];
        l.write(&mut buf);
        Ok(buf)
    }

    #[test]
    fn writes_what_numeric_in_makes() {
        for text in [
            "0",
            "0.00",
            "1",
            "-1",
            "12.5",
            "-0.001",
            "10000",
            "9999.9999",
            "0.00001",
            "123456789012345678901234567890.123456789",
            "-100000000000000000000000000",
            "0.000000000000000000000000000000000000000000000000000000000000000000001",
        ] {
            let (negative, mag, scale) = limbs_of(text);
            let got = written(&NumericValue::Finite { negative, mag: &mag, scale }).unwrap();
            assert_eq!(got, pg_numeric(text), "{text}");
        }
        let big = format!("{}.5", "7".repeat(400));
        let (negative, mag, scale) = limbs_of(&big);
        assert_eq!(
            written(&NumericValue::Finite { negative, mag: &mag, scale }).unwrap(),
            pg_numeric(&big)
        );
        assert_eq!(written(&NumericValue::NaN).unwrap(), pg_numeric("NaN"));
        assert_eq!(written(&NumericValue::NegInf).unwrap(), pg_numeric("-Infinity"));
        // weight 32768 (10^131072) does not fit int16
        let huge = format!("1{}", "0".repeat(131072));
        let (negative, mag, scale) = limbs_of(&huge);
        assert_eq!(
            written(&NumericValue::Finite { negative, mag: &mag, scale }),
            Err(StateError::Overflow)
        );
        let (n, l) = int_limbs(-170141183460469231731687303715884105728);
        assert_eq!(
            written(&NumericValue::Finite { negative: n, mag: &l, scale: 0 }).unwrap(),
            pg_numeric("-170141183460469231731687303715884105728")
        );
    }
}
