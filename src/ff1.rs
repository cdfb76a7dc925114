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
//! **Why FF1 is written out here** rather than called through the `fpe` crate: for radix 2
//! and n = 32 the algorithm (SP 800-38G section 6.2, Algorithm 7) is small. u = v = 16, so
//! b = 2 and d = 8: each round's PRF output is one AES block, of which y needs the first 8
//! bytes. The PRF is a CBC-MAC over P || Q where everything but the last block of Q (which
//! holds the round number and B) is the same in all ten rounds, so a call costs the prefix
//! (one block for a tweak of up to 13 bytes) and ten blocks, under one AES backend set-up.
//! fpe computes the same generically (it copies the expanded key eleven times a call, and sets
//! the backend up once per block); in the unoptimized builds the tests install, that took
//! 38 us a call against 3 us for this one (`ff1_timing` below), and the regress suite's
//! 200 000-value permutation check most of a minute. fpe stays as the tests' oracle: this
//! FF1 is checked against it over tweaks of every length up to three blocks, and fpe against
//! NIST's samples; SPEC's vectors come from an independent FF1 in Python
//! (`tests/vectors/ff1_reference.py`), which reproduces NIST's FF1 samples 1 to 9.

use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit,
};
use aes::{Aes256Enc, Block};
use hmac::Mac;
use zeroize::Zeroizing;

use crate::pseudonym::keyed;

const FF1_LABEL: &[u8] = b"pg_deident/v1/ff1";

/// Tweak bytes absorbed between two calls of the caller's interrupt check: a few milliseconds
/// of CBC-MAC (as `pseudonym::MAC_CHUNK` for values).
pub const TWEAK_CHUNK: usize = 1 << 20;

/// The AES-256 key of the permutation: HMAC-SHA256(K, "pg_deident/v1/ff1"), wiped on drop.
pub fn ff1_key(key: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac = keyed(key);
    mac.update(FF1_LABEL);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// A permutation of the i32 range for one key: FF1 with its AES-256 key schedule expanded
/// once (the `aes` crate's `zeroize` feature wipes it on drop), for any number of calls.
pub struct IntPermutation(Aes256Enc);

impl IntPermutation {
    /// The permutation under the raw ring key `key` (K, not a domain key).
    pub fn new(key: &[u8]) -> IntPermutation {
        let aes_key = ff1_key(key);
        match Aes256Enc::new_from_slice(&aes_key[..]) {
            Ok(aes) => IntPermutation(aes),
            Err(_) => unreachable!("an HMAC-SHA256 output is an AES-256 key"),
        }
    }

    /// The value's image under the tweak (the domain, as UTF-8).
    #[cfg(test)]
    pub fn permute(&self, tweak: &[u8], value: i32) -> i32 {
        self.permute_interruptible(tweak, value, || {})
    }

    /// The value's image under the tweak (the domain, as UTF-8), calling `between` after each
    /// `TWEAK_CHUNK` bytes of a long tweak, so that a caller can honour a cancel.
    pub fn permute_interruptible(&self, tweak: &[u8], value: i32, between: impl FnMut()) -> i32 {
        self.run(tweak, value, between, false)
    }

    /// The inverse of `permute` (Algorithm 8).
    #[cfg(test)]
    pub fn unpermute(&self, tweak: &[u8], value: i32) -> i32 {
        self.run(tweak, value, || {}, true)
    }

    /// One call, with one AES backend: the `aes` crate sets its backend up (on AVX-512
    /// machines, broadcasts the round keys) for each `encrypt_with_backend`, which per block
    /// cost more than the block.
    fn run(&self, tweak: &[u8], value: i32, between: impl FnMut(), decrypt: bool) -> i32 {
        let mut out = 0;
        self.0.encrypt_with_backend(Call { tweak, value, between, decrypt, out: &mut out });
        out
    }
}

/// A call of the permutation as the rank-2 closure `encrypt_with_backend` takes.
struct Call<'a, F> {
    tweak: &'a [u8],
    value: i32,
    between: F,
    decrypt: bool,
    out: &'a mut i32,
}

impl<F> BlockSizeUser for Call<'_, F> {
    type BlockSize = U16;
}

impl<F: FnMut()> BlockCipherEncClosure for Call<'_, F> {
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let encrypt = |bytes: [u8; 16]| {
            let mut block = Block::from(bytes);
            backend.encrypt_block_inplace(&mut block);
            <[u8; 16]>::from(block)
        };
        *self.out = ff1(encrypt, self.tweak, self.value, self.between, self.decrypt);
    }
}

#[inline(always)]
fn xor(a: &[u8; 16], b: &[u8; 16]) -> [u8; 16] {
    // As u128s: one instruction, also in an unoptimized build.
    (u128::from_ne_bytes(*a) ^ u128::from_ne_bytes(*b)).to_ne_bytes()
}

/// FF1 (SP 800-38G section 6.2, Algorithms 7 and 8) for radix 2 and n = 32, with `encrypt`
/// the AES block function.
fn ff1(
    encrypt: impl Fn([u8; 16]) -> [u8; 16],
    tweak: &[u8],
    value: i32,
    mut between: impl FnMut(),
    decrypt: bool,
) -> i32 {
    // Step 5: P = [1, 2, 1] || [radix]^3 || [10] || [u mod 256] || [n]^4 || [t]^4, with radix
    // 2, u = 16, n = 32. A tweak is a text value, at most 1 GB, so t fits 4 bytes.
    let mut p = [1, 2, 1, 0, 0, 2, 10, 16, 0, 0, 0, 32, 0, 0, 0, 0];
    p[12..].copy_from_slice(&(tweak.len() as u32).to_be_bytes());
    let mut chain = encrypt(p);
    // Step 6i: Q = T || [0]^((-t-b-1) mod 16) || [i] || [NUM(B)]^b with b = 2, a whole number
    // of blocks, at least one. All but its last block are the same in every round: absorb
    // them now. The last block is the last 13 bytes of T || zeros, then [i] and NUM(B).
    let zeros = (16 - (tweak.len() + 3) % 16) % 16;
    let head = tweak.len() + zeros + 3 - 16;
    let (full, rest) = tweak.split_at(head.min(tweak.len()));
    let (blocks, partial) = full.as_chunks::<16>();
    for (n, block) in blocks.iter().enumerate() {
        chain = encrypt(xor(&chain, block));
        if n % (TWEAK_CHUNK / 16) == TWEAK_CHUNK / 16 - 1 {
            between();
        }
    }
    // When the zeros start before the last block: T's partial last block and the first zeros
    // (head is a multiple of 16, and at most 2 bytes past the end of T).
    if !partial.is_empty() {
        let mut block = [0u8; 16];
        block[..partial.len()].copy_from_slice(partial);
        chain = encrypt(xor(&chain, &block));
    }
    let mut last = [0u8; 16];
    last[..rest.len()].copy_from_slice(rest);
    // Steps 6ii-6iv: R = PRF(P || Q) is one block; y = NUM(S), S its first d = 8 bytes. Only
    // y mod 2^16 is used (step 6vi, m = 16), its last two bytes.
    let y = |i: u8, b: u16| {
        let mut q = last;
        q[13] = i;
        q[14..].copy_from_slice(&b.to_be_bytes());
        let r = encrypt(xor(&chain, &q));
        u16::from_be_bytes([r[6], r[7]])
    };
    // Steps 1-2: A = X[1..16], the high half; B = X[17..32]. u = v = 16, so m is 16 in every
    // round and the halves are u16s.
    let x = value as u32;
    let (mut a, mut b) = ((x >> 16) as u16, x as u16);
    if decrypt {
        for i in (0..10).rev() {
            // c = (NUM(B) - y) mod 2^16; B = A; A = c
            let c = b.wrapping_sub(y(i, a));
            b = a;
            a = c;
        }
    } else {
        for i in 0..10 {
            // c = (NUM(A) + y) mod 2^16; A = B; B = c
            let c = a.wrapping_add(y(i, b));
            a = b;
            b = c;
        }
    }
    // Step 7: A || B.
    ((u32::from(a) << 16) | u32::from(b)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use fpe::ff1::{BinaryNumeralString, FlexibleNumeralString, FF1};

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

    /// NIST's FF1 samples 7 to 9 (AES-256): fpe, our oracle below, is a correct FF1.
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

    /// Our FF1 against fpe's (with its big-integer binary numeral string), for many values and
    /// tweaks of every length over three blocks: each way Q's zeros and last block fall.
    #[test]
    fn matches_fpe() {
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
    fn long_tweaks_are_absorbed_in_chunks_with_checks_between() {
        let p = IntPermutation::new(&spec_key());
        let tweak = vec![0x5au8; 3 * TWEAK_CHUNK + 7];
        let mut checks = 0;
        let out = p.permute_interruptible(&tweak, 1001, || checks += 1);
        assert_eq!(checks, 3);
        assert_eq!(out, p.permute(&tweak, 1001));
        assert_eq!(p.unpermute(&tweak, out), 1001);
        let mut none = 0;
        p.permute_interruptible(&tweak[..TWEAK_CHUNK - 1], 1, || none += 1);
        assert_eq!(none, 0, "short tweaks pay for no check");
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
