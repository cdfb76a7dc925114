//! The permutation behind `pseudonymize_int` (SPEC "Pseudonymization"), with no PostgreSQL
//! types in it:
//!
//! ```text
//! AK  = HMAC-SHA256(K, "pg_deident/v1/ff1")          an AES-256 key
//! out = FF1-Encrypt_AK(tweak = utf8(domain), X)      NIST SP 800-38G, radix 2, n = 32
//! ```
//! X is the value's 32 two's-complement bits, most significant first, and the 32 output bits
//! are read back the same way. FF1 is a Feistel network, so distinct inputs never collide.
//!
//! FF1 itself is the `fpe` crate's; what is ours is the numeral string (`Bits32`): the 32
//! bits held in a `u32`, each half in one, so a call does no big-integer arithmetic and no
//! allocation (fpe's own binary numeral string works on `BigUint`s). The vectors below and in
//! SPEC were also computed by an independent FF1 written in Python
//! (`tests/vectors/ff1_reference.py`), which reproduces NIST's published samples 1 to 9.

use aes::Aes256Enc;
use fpe::ff1::{NumeralString, Operations, FF1};
use hmac::Mac;
use zeroize::Zeroizing;

use crate::pseudonym::keyed;

const FF1_LABEL: &[u8] = b"pg_deident/v1/ff1";

/// The AES-256 key of the permutation: HMAC-SHA256(K, "pg_deident/v1/ff1"), wiped on drop.
pub fn ff1_key(key: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac = keyed(key);
    mac.update(FF1_LABEL);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// A permutation of the i32 range for one key: FF1 with its AES-256 key schedule expanded
/// once (the `aes` crate's `zeroize` feature wipes it on drop), for any number of calls.
pub struct IntPermutation(FF1<Aes256Enc>);

impl IntPermutation {
    /// The permutation under the raw ring key `key` (K, not a domain key).
    pub fn new(key: &[u8]) -> IntPermutation {
        let aes_key = ff1_key(key);
        match FF1::<Aes256Enc>::new(&aes_key[..], 2) {
            Ok(ff1) => IntPermutation(ff1),
            // Radix 2 is in FF1's range 2..=2^16, and the key is AES-256's 32 bytes (fpe
            // panics on any other length).
            Err(_) => unreachable!("FF1 accepts radix 2"),
        }
    }

    /// The value's image under the tweak (the domain, as UTF-8).
    pub fn permute(&self, tweak: &[u8], value: i32) -> i32 {
        match self.0.encrypt(tweak, &Bits32(value as u32)) {
            Ok(out) => out.0 as i32,
            // Bits32 is a valid radix-2 string of 32 numerals, at least FF1's minimum of 20.
            Err(_) => unreachable!("32 bits are a valid FF1 radix-2 numeral string"),
        }
    }

    /// The inverse of `permute`.
    #[cfg(test)]
    pub fn unpermute(&self, tweak: &[u8], value: i32) -> i32 {
        match self.0.decrypt(tweak, &Bits32(value as u32)) {
            Ok(out) => out.0 as i32,
            Err(_) => unreachable!("32 bits are a valid FF1 radix-2 numeral string"),
        }
    }
}

/// 32 numerals of radix 2, most significant first: the bits of a `u32`.
struct Bits32(u32);

/// A run of `len` (at most 32) radix-2 numerals, held as the number they spell, NUM_2(X) in
/// SP 800-38G's notation (section 4.5).
struct Half {
    value: u32,
    len: u32,
}

/// Up to 8 big-endian bytes, the last `len` of `bytes`.
struct BeBytes {
    bytes: [u8; 8],
    len: usize,
}

impl AsRef<[u8]> for BeBytes {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[8 - self.len..]
    }
}

impl Half {
    fn mask(m: usize) -> u64 {
        // m is a half's length, at most 32 numerals (bits).
        (1u64 << m) - 1
    }
}

/// NUM(S) mod 2^64 of FF1's step 6iv (S is d = 8 bytes for halves of 16 bits). The sum of
/// step 6vi is taken mod 2^m with m <= 32, and 2^m divides 2^64, so the bits dropped here do
/// not matter.
fn num_mod_2_64(s: impl Iterator<Item = u8>) -> u64 {
    s.fold(0u64, |acc, byte| (acc << 8) | u64::from(byte))
}

impl Operations for Half {
    type Bytes = BeBytes;

    fn numeral_count(&self) -> usize {
        self.len as usize
    }

    /// STR^b_256(NUM_2(X)): b = ceil(len / 8) bytes, at most 4.
    fn to_be_bytes(&self, _radix: u32, b: usize) -> BeBytes {
        debug_assert!(b <= 4, "a half of 32 bits fits 4 bytes");
        BeBytes { bytes: u64::from(self.value).to_be_bytes(), len: b.min(8) }
    }

    /// (NUM_2(A) + y) mod 2^m, step 6vi of encryption.
    fn add_mod_exp(self, other: impl Iterator<Item = u8>, _radix: u32, m: usize) -> Half {
        let sum = u64::from(self.value).wrapping_add(num_mod_2_64(other));
        Half { value: (sum & Half::mask(m)) as u32, len: m as u32 }
    }

    /// (NUM_2(B) - y) mod 2^m, step 6vi of decryption.
    fn sub_mod_exp(self, other: impl Iterator<Item = u8>, _radix: u32, m: usize) -> Half {
        let diff = u64::from(self.value).wrapping_sub(num_mod_2_64(other));
        Half { value: (diff & Half::mask(m)) as u32, len: m as u32 }
    }
}

impl NumeralString for Bits32 {
    type Ops = Half;

    fn is_valid(&self, radix: u32) -> bool {
        radix == 2
    }

    fn numeral_count(&self) -> usize {
        32
    }

    /// A = X[1..16], the high half; B = X[17..32], the low half (u = floor(32 / 2)).
    fn split(&self) -> (Half, Half) {
        (Half { value: self.0 >> 16, len: 16 }, Half { value: self.0 & 0xffff, len: 16 })
    }

    fn concat(a: Half, b: Half) -> Bits32 {
        // Both halves are 16 numerals again after the rounds (m alternates u and v, both 16).
        Bits32((a.value << b.len) | b.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fpe::ff1::{BinaryNumeralString, FlexibleNumeralString};

    fn spec_key() -> Vec<u8> {
        (0u8..32).collect()
    }

    #[test]
    fn spec_vectors() {
        let p = IntPermutation::new(&spec_key());
        assert_eq!(p.permute(b"", 0), -532415753);
        assert_eq!(p.permute(b"", 1001), 1813204751);
        assert_eq!(p.permute(b"hr", 1001), -1331595961);
        assert_eq!(p.permute(b"", i32::MIN), -1891228647);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn numerals(s: &str) -> Vec<u16> {
        s.chars().map(|c| c.to_digit(36).unwrap() as u16).collect()
    }

    /// NIST's FF1 samples 7 to 9 (AES-256), through fpe's general numeral strings: the crate
    /// under our `Bits32` is a correct FF1.
    #[test]
    fn nist_ff1_aes256_samples() {
        let key = hex("2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94");
        let samples = [
            (10, "", "0123456789", "6657667009"),
            (10, "39383736353433323130", "0123456789", "1001623463"),
            (36, "3737373770717273373737", "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"),
        ];
        for (radix, tweak, pt, ct) in samples {
            let ff1 = FF1::<Aes256Enc>::new(&key, radix).unwrap();
            let x = FlexibleNumeralString::from(numerals(pt));
            let y = ff1.encrypt(&hex(tweak), &x).unwrap();
            assert_eq!(Vec::<u16>::from(y), numerals(ct), "sample radix {radix}, {pt}");
        }
    }

    /// Our `Bits32` against fpe's own (big-integer) binary numeral string, for many values
    /// and tweaks of lengths around the 16-byte block.
    #[test]
    fn bits32_matches_fpe_binary_numeral_string() {
        let p = IntPermutation::new(&spec_key());
        let aes_key = ff1_key(&spec_key());
        let ff1 = FF1::<Aes256Enc>::new(&aes_key[..], 2).unwrap();
        let tweaks: Vec<Vec<u8>> =
            (0..40).map(|n| (0..n).map(|i| i as u8 ^ 0x5a).collect()).collect();
        let values = [0, 1, -1, 1001, i32::MIN, i32::MAX, 0x1234_5678, -0x0102_0304];
        for tweak in &tweaks {
            for &v in &values {
                // fpe's binary strings are little-endian bytes, each read least significant
                // bit first; write the bits most significant first as SPEC says.
                let bits: Vec<u8> = (0..32).rev().map(|i| ((v as u32) >> i) as u8 & 1).collect();
                let packed: Vec<u8> = bits
                    .chunks(8)
                    .map(|c| c.iter().enumerate().fold(0u8, |acc, (i, &b)| acc | (b << i)))
                    .collect();
                let out = ff1.encrypt(tweak, &BinaryNumeralString::from_bytes_le(&packed)).unwrap();
                let out_bytes = out.to_bytes_le();
                let out_bits: Vec<u8> =
                    (0..32).map(|i| (out_bytes[i / 8] >> (i % 8)) & 1).collect();
                let expected = out_bits.iter().fold(0u32, |acc, &b| (acc << 1) | u32::from(b));
                assert_eq!(p.permute(tweak, v), expected as i32, "{v}, tweak of {}", tweak.len());
            }
        }
    }

    #[test]
    fn decrypt_inverts_encrypt() {
        let p = IntPermutation::new(&spec_key());
        let mut values: Vec<i32> = (-5000..5000).collect();
        values.extend([i32::MIN, i32::MIN + 1, i32::MAX - 1, i32::MAX]);
        for tweak in [&b""[..], b"hr", b"a domain longer than sixteen bytes"] {
            for &v in &values {
                assert_eq!(p.unpermute(tweak, p.permute(tweak, v)), v);
            }
        }
    }

    #[test]
    fn distinct_inputs_give_distinct_outputs() {
        let p = IntPermutation::new(&spec_key());
        let mut values: Vec<i32> = (-50_000..50_000).collect();
        values.extend([i32::MIN, i32::MIN + 1, i32::MAX - 1, i32::MAX]);
        let mut out: Vec<i32> = values.iter().map(|&v| p.permute(b"", v)).collect();
        out.sort_unstable();
        out.dedup();
        assert_eq!(out.len(), values.len());
    }

    #[test]
    fn domain_and_key_change_the_permutation() {
        let p = IntPermutation::new(&spec_key());
        let other = IntPermutation::new(&[0x20u8; 32]);
        let moved = (0..1000).filter(|&v| p.permute(b"a", v) != p.permute(b"b", v)).count();
        assert!(moved > 990, "{moved}");
        let moved = (0..1000).filter(|&v| p.permute(b"", v) != other.permute(b"", v)).count();
        assert!(moved > 990, "{moved}");
    }

    /// Not a test: `cargo test --release --lib -- --ignored --nocapture ff1_timing` prints the
    /// cost of a permutation and of setting one up.
    #[test]
    #[ignore]
    fn ff1_timing() {
        let n = 1_000_000;
        let p = IntPermutation::new(&spec_key());
        let t = std::time::Instant::now();
        let mut acc = 0i32;
        for v in 0..n {
            acc ^= p.permute(b"hr", std::hint::black_box(v));
        }
        let per_call = t.elapsed().as_nanos() as f64 / f64::from(n);
        let t = std::time::Instant::now();
        for i in 0..10_000u32 {
            acc ^= IntPermutation::new(&i.to_le_bytes()).permute(b"", 0);
        }
        let setup = t.elapsed().as_nanos() as f64 / 10_000.0;
        println!("permute: {per_call:.1} ns, new + permute: {setup:.1} ns ({acc})");
    }
}
