//! The pseudonym algorithm of SPEC "Pseudonymization", with no PostgreSQL types in it, so that it
//! runs under plain `cargo test` and other systems can read it as the reference.
//!
//! ```text
//! DK = HMAC-SHA256(K, "pg_deident/v1/domain" || 0x00 || utf8(domain))
//! M  = HMAC-SHA256(DK, bytes(value))
//! ```
//! then M is rendered as base-62 text, a version-8 UUID or a non-negative bigint.

use hmac::{Hmac, KeyInit, Mac};
use sha2::block_api::compress256;
use sha2::Sha256;
use zeroize::Zeroize;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Shortest and longest base-62 pseudonym. 8 characters are ~47 bits (the smallest that still
/// makes accidental collisions rare in a table of a million people); 43 is the first length
/// where 62^length exceeds 2^256, so every bit of M is used.
pub const MIN_LENGTH: i32 = 8;
pub const MAX_LENGTH: i32 = 43;

/// Bytes hashed between two interrupt checks: about a millisecond of SHA-256.
pub const MAC_CHUNK: usize = 1 << 20;

const DOMAIN_LABEL: &[u8] = b"pg_deident/v1/domain";
const FINGERPRINT_LABEL: &[u8] = b"pg_deident/v1/fingerprint";
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A key, keyed to one domain: the two SHA-256 states of HMAC-SHA256 under DK after absorbing
/// the inner and the outer padded key blocks (RFC 2104 section 2).
///
/// Keeping these states (not DK) means a value shorter than 56 bytes costs two SHA-256
/// compressions and nothing else: `mac` applies SHA-256's padding itself and calls the raw
/// compression function (`sha2::block_api::compress256`, SHA-NI where the CPU has it). The
/// `hmac` crate gives the same bytes (tested below, against it and the SPEC vectors) but
/// copies and wipes its buffered state on every call, which cost about a third of a pseudonym
/// (perf, docs/benchmarks.md). The states are key-equivalent material, wiped on drop.
#[derive(Clone)]
pub struct DomainKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl Drop for DomainKey {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

/// SHA-256's initial state (FIPS 180-4, section 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

pub(crate) fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (RFC 2104 section 2: longer keys are hashed first), so
    // `new_from_slice` cannot fail for it; the error arm exists only for other MACs.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

/// The state after compressing one padded key block: `key` (32 bytes) XOR `pad`.
fn pad_state(key: &[u8; 32], pad: u8) -> [u32; 8] {
    let mut block = [[pad; 64]];
    for (b, k) in block[0].iter_mut().zip(key) {
        *b ^= k;
    }
    let mut state = SHA256_IV;
    compress256(&mut state, &block);
    block.zeroize();
    state
}

/// Finishes a SHA-256 computation from `state`: the last `tail` bytes of a message of
/// `total` bytes (the full blocks before it already compressed), padded per FIPS 180-4
/// section 5.1.1. Returns the digest.
#[inline(always)]
fn finish(mut state: [u32; 8], tail: &[u8], total: u64) -> [u8; 32] {
    let mut last = [[0u8; 64]; 2];
    let flat = last.as_flattened_mut();
    flat[..tail.len()].copy_from_slice(tail);
    flat[tail.len()] = 0x80;
    let blocks = if tail.len() < 56 { 1 } else { 2 };
    flat[blocks * 64 - 8..blocks * 64].copy_from_slice(&(total * 8).to_be_bytes());
    compress256(&mut state, &last[..blocks]);
    let mut out = [0u8; 32];
    for (o, word) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&word.to_be_bytes());
    }
    out
}

impl DomainKey {
    /// Step 1 of the algorithm: derive DK from the key and the domain.
    pub fn derive(key: &[u8], domain: &[u8]) -> DomainKey {
        let mut mac = keyed(key);
        mac.update(DOMAIN_LABEL);
        mac.update(&[0]);
        mac.update(domain);
        let mut dk: [u8; 32] = mac.finalize().into_bytes().into();
        let derived = DomainKey { inner: pad_state(&dk, 0x36), outer: pad_state(&dk, 0x5c) };
        dk.zeroize();
        derived
    }

    /// Step 2: M = HMAC-SHA256(DK, value).
    #[cfg(any(test, feature = "pg_test"))]
    pub fn mac(&self, value: &[u8]) -> [u8; 32] {
        self.mac_interruptible(value, || {})
    }

    /// The same, calling `between` after each `MAC_CHUNK` bytes of a long value, so that a
    /// caller can honour a cancel or a statement timeout (a 1 GB value takes about a second).
    #[inline]
    pub fn mac_interruptible(&self, value: &[u8], mut between: impl FnMut()) -> [u8; 32] {
        // inner = SHA-256((DK ^ ipad) || value): the key block is in `self.inner` already.
        let mut state = self.inner;
        let (blocks, tail) = value.as_chunks::<64>();
        if value.len() <= MAC_CHUNK {
            compress256(&mut state, blocks);
        } else {
            for chunk in blocks.chunks(MAC_CHUNK / 64) {
                compress256(&mut state, chunk);
                between();
            }
        }
        let inner = finish(state, tail, 64 + value.len() as u64);
        // M = SHA-256((DK ^ opad) || inner)
        finish(self.outer, &inner, 64 + 32)
    }
}

/// 16 hex digits: the first 8 bytes of HMAC-SHA256(key, "pg_deident/v1/fingerprint").
pub fn fingerprint(key: &[u8]) -> String {
    let mut mac = keyed(key);
    mac.update(FINGERPRINT_LABEL);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(16);
    for byte in &digest[..8] {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// 62^4: a digit of this base is four base-62 digits, and below 2^24, so that a 32-bit limb
/// times a digit, summed over the eight limbs of N, fits in 64 bits.
const BASE: u64 = 14_776_336;
const BASE_DIGITS: usize = 4;
/// Base-62^4 digits of the longest pseudonym (44 base-62 digits >= 43).
const MAX_POSITIONS: usize = (MAX_LENGTH as usize).div_ceil(BASE_DIGITS);

/// `POW[i][j]`: digit j (least significant first) of 2^(32 i) in base 62^4. Dropping the
/// digits from j = P on is reducing mod 62^(4P), so one table serves every length.
const POW: [[u32; MAX_POSITIONS]; 8] = {
    let mut t = [[0u32; MAX_POSITIONS]; 8];
    t[0][0] = 1;
    let mut i = 1;
    while i < 8 {
        let mut carry = 0u64;
        let mut j = 0;
        while j < MAX_POSITIONS {
            // digit < 2^24, so digit * 2^32 + carry < 2^57
            let v = (t[i - 1][j] as u64) * (1 << 32) + carry;
            t[i][j] = (v % BASE) as u32;
            carry = v / BASE;
            j += 1;
        }
        i += 1;
    }
    t
};

/// Two base-62 characters for each number below 62^2.
const PAIRS: [[u8; 2]; 3844] = {
    let mut t = [[0u8; 2]; 3844];
    let mut n = 0;
    while n < 3844 {
        t[n] = [ALPHABET[n / 62], ALPHABET[n % 62]];
        n += 1;
    }
    t
};

/// Step 3: M as a big-endian 256-bit integer N, N mod 62^length in base 62, most significant
/// digit first, zero-padded to `length` characters. The caller checks `length` is in
/// MIN_LENGTH..=MAX_LENGTH; `out` must be at least `length` bytes long.
///
/// How, without dividing N: with P = ceil(length / 4) digits of base 62^4, the low `length`
/// base-62 digits of N are those of N mod 62^(4P). N is the sum of its eight 32-bit limbs
/// times 2^(32 i), and 2^(32 i) mod 62^(4P) is a constant (`POW`, truncated to P digits). So
/// the residue is eight limbs times P constant digits, all independent multiplications
/// summed per digit (no carries until the end), then one pass of carries. For 22 characters
/// that is 48 multiplications the CPU runs side by side, against 40 dependent 64-bit divisions
/// by 62^5 (a multiply and a correction each) in the previous version, which took about 80 ns
/// (`cargo test --release --lib -- --ignored --nocapture timing`; docs/benchmarks.md).
pub fn encode_base62(m: &[u8; 32], length: usize, out: &mut [u8]) {
    // A constant digit count lets the compiler unroll and keep the sums in registers.
    match length.div_ceil(BASE_DIGITS) {
        0..=2 => spell(&residue::<2>(m), length, out),
        3 => spell(&residue::<3>(m), length, out),
        4 => spell(&residue::<4>(m), length, out),
        5 => spell(&residue::<5>(m), length, out),
        6 => spell(&residue::<6>(m), length, out),
        7 => spell(&residue::<7>(m), length, out),
        8 => spell(&residue::<8>(m), length, out),
        9 => spell(&residue::<9>(m), length, out),
        10 => spell(&residue::<10>(m), length, out),
        _ => spell(&residue::<MAX_POSITIONS>(m), length, out),
    }
}

/// N mod 62^(4P) as P digits of base 62^4, least significant first.
#[inline(always)]
fn residue<const P: usize>(m: &[u8; 32]) -> [u32; P] {
    let mut sums = [0u64; P];
    for (i, pow) in POW.iter().enumerate() {
        // limb i (least significant first) of the big-endian N
        let at = 28 - 4 * i;
        let limb = u64::from(u32::from_be_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]]));
        for (sum, &digit) in sums.iter_mut().zip(pow) {
            // each product < 2^56, eight of them < 2^59
            *sum += limb * u64::from(digit);
        }
    }
    let mut digits = [0u32; P];
    let mut carry = 0u64;
    for (digit, sum) in digits.iter_mut().zip(sums) {
        let v = sum + carry;
        *digit = (v % BASE) as u32;
        carry = v / BASE;
    }
    // The carry out of the top digit is a multiple of 62^(4P): dropped, as the modulus says.
    digits
}

/// Writes the low `length` base-62 digits held in `digits` into `out[..length]`.
#[inline(always)]
fn spell<const P: usize>(digits: &[u32; P], length: usize, out: &mut [u8]) {
    let mut text = [0u8; 4 * MAX_POSITIONS];
    for (j, &d) in digits.iter().enumerate() {
        let at = 4 * (P - 1 - j);
        // d < 62^4, so both halves are below 62^2
        text[at..at + 2].copy_from_slice(&PAIRS[(d / 3844) as usize]);
        text[at + 2..at + 4].copy_from_slice(&PAIRS[(d % 3844) as usize]);
    }
    out[..length].copy_from_slice(&text[4 * P - length..4 * P]);
}

/// Step 4: the first 16 bytes of M as an RFC 9562 version-8 UUID.
pub fn to_uuid(m: &[u8; 32]) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&m[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

/// Step 5: the first 8 bytes of M, big-endian, with the top bit cleared.
pub fn to_bigint(m: &[u8; 32]) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&m[..8]);
    (u64::from_be_bytes(bytes) & (u64::MAX >> 1)) as i64
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    /// The algorithm through the `hmac` crate, as SPEC states it.
    pub fn reference_mac(key: &[u8], domain: &[u8], value: &[u8]) -> [u8; 32] {
        let mut dk = keyed(key);
        dk.update(DOMAIN_LABEL);
        dk.update(&[0]);
        dk.update(domain);
        let dk: [u8; 32] = dk.finalize().into_bytes().into();
        let mut m = keyed(&dk);
        m.update(value);
        m.finalize().into_bytes().into()
    }

    #[test]
    fn hand_padded_hmac_matches_the_hmac_crate_at_every_length() {
        // every tail length, one and two final blocks, several full blocks
        let value: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for domain in [&b""[..], b"hr", &[0xffu8; 100]] {
            let key = DomainKey::derive(&[9u8; 40], domain);
            for len in 0..=value.len() {
                assert_eq!(
                    key.mac(&value[..len]),
                    reference_mac(&[9u8; 40], domain, &value[..len]),
                    "length {len}"
                );
            }
        }
    }

    #[test]
    fn long_values_are_hashed_in_chunks_with_checks_between() {
        let key = DomainKey::derive(&[7u8; 32], b"d");
        let value = vec![0xa5u8; 3 * MAC_CHUNK + 17];
        let mut checks = 0;
        let chunked = key.mac_interruptible(&value, || checks += 1);
        assert_eq!(checks, 3, "a check after every chunk");
        assert_eq!(chunked, reference_mac(&[7u8; 32], b"d", &value));
        let mut none = 0;
        key.mac_interruptible(&value[..MAC_CHUNK], || none += 1);
        assert_eq!(none, 0, "short values pay for no check");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The base-62 pseudonym as a `String`, for tests and callers outside PostgreSQL.
    fn pseudonym_text(key: &DomainKey, value: &[u8], length: usize) -> String {
        let mut buf = [0u8; MAX_LENGTH as usize];
        encode_base62(&key.mac(value), length, &mut buf);
        // The alphabet is ASCII.
        buf[..length].iter().map(|&b| char::from(b)).collect()
    }

    fn spec_key() -> Vec<u8> {
        (0u8..32).collect()
    }

    fn ps(value: &str, domain: &str, length: usize) -> String {
        pseudonym_text(&DomainKey::derive(&spec_key(), domain.as_bytes()), value.as_bytes(), length)
    }

    #[test]
    fn spec_vectors() {
        assert_eq!(ps("alice@contoso.com", "", 22), "v93e04Lf13mhIkvv9IgWVb");
        assert_eq!(ps("alice@contoso.com", "hr", 22), "9td7vVl8PG62dsYqhCVAZA");
        assert_eq!(ps("alice@contoso.com", "", 15), "f13mhIkvv9IgWVb");
        assert_eq!(ps("", "", 22), "lerfjjYHTk1kskL5Qe6XPA");
        assert_eq!(ps("José.Müller@exämple.org", "", 22), "smkjiEEcv2D1dML6TWJYWB");
        assert_eq!(fingerprint(&spec_key()), "aa64df96b4a4ccb8");
    }

    #[test]
    fn spec_uuid_and_bigint() {
        let m = DomainKey::derive(&spec_key(), b"").mac(b"alice@contoso.com");
        let u = to_uuid(&m);
        let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "6f74462fc28882afb180f9c4c364f403");
        assert_eq!(to_bigint(&m), 8031121206449541807);
    }

    /// Reference conversion by schoolbook long division, one digit at a time.
    fn slow_base62(m: &[u8; 32], length: usize) -> String {
        let mut n = m.to_vec();
        let mut digits = Vec::new();
        for _ in 0..length {
            let mut rem = 0u32;
            for byte in n.iter_mut() {
                let cur = (rem << 8) | u32::from(*byte);
                *byte = (cur / 62) as u8;
                rem = cur % 62;
            }
            digits.push(ALPHABET[rem as usize]);
        }
        digits.reverse();
        String::from_utf8(digits).unwrap()
    }

    #[test]
    fn base62_matches_long_division_at_every_length() {
        let key = DomainKey::derive(&spec_key(), b"t");
        let mut inputs: Vec<[u8; 32]> = (0u32..200).map(|i| key.mac(&i.to_be_bytes())).collect();
        inputs.push([0u8; 32]);
        inputs.push([0xff; 32]);
        let mut one = [0u8; 32];
        one[31] = 1;
        inputs.push(one);
        for m in &inputs {
            for length in MIN_LENGTH as usize..=MAX_LENGTH as usize {
                let mut buf = [0u8; MAX_LENGTH as usize];
                encode_base62(m, length, &mut buf);
                assert_eq!(std::str::from_utf8(&buf[..length]).unwrap(), slow_base62(m, length));
            }
        }
    }

    #[test]
    fn shorter_pseudonym_is_a_suffix() {
        // N mod 62^15 is the low 15 digits of N mod 62^22: SPEC's vectors rely on it.
        let long = ps("bob@contoso.com", "", 43);
        for length in 8..43 {
            assert_eq!(ps("bob@contoso.com", "", length), long[43 - length..]);
        }
    }

    #[test]
    fn extremes_of_base62() {
        let mut buf = [0u8; 43];
        encode_base62(&[0u8; 32], 43, &mut buf);
        assert_eq!(&buf[..], &[b'0'; 43][..]);
        // 2^256 - 1 needs all 43 digits, and its first is not 0.
        encode_base62(&[0xff; 32], 43, &mut buf);
        assert_eq!(std::str::from_utf8(&buf).unwrap(), slow_base62(&[0xff; 32], 43));
        assert_ne!(buf[0], b'0');
    }

    #[test]
    fn domains_separate() {
        assert_ne!(ps("x", "a", 22), ps("x", "b", 22));
        // the 0x00 separator: ("a", domain "") and a domain that absorbs bytes stay apart
        let k = spec_key();
        assert_ne!(DomainKey::derive(&k, b"ab").mac(b"c"), DomainKey::derive(&k, b"a").mac(b"bc"));
    }

    /// Not a test: `cargo test --release --lib -- --ignored --nocapture timing` prints the cost
    /// of each step, to tell where a call's time goes (docs/benchmarks.md).
    #[test]
    #[ignore]
    fn timing() {
        let key = DomainKey::derive(&spec_key(), b"");
        let n = 2_000_000u32;
        let t = std::time::Instant::now();
        let mut acc = 0u8;
        for i in 0..n {
            acc ^= key.mac(format!("person.{i}@example.com").as_bytes())[0];
        }
        let mac_ns = t.elapsed().as_nanos() as f64 / f64::from(n);
        let m = key.mac(b"x");
        let t = std::time::Instant::now();
        let mut buf = [0u8; 43];
        for i in 0..n {
            let mut mi = m;
            mi[31] ^= i as u8;
            mi[0] ^= (i >> 8) as u8;
            encode_base62(std::hint::black_box(&mi), 22, &mut buf);
            acc ^= buf[0];
        }
        let enc_ns = t.elapsed().as_nanos() as f64 / f64::from(n);
        println!("mac (with format!): {mac_ns:.1} ns, base62/22: {enc_ns:.1} ns ({acc})");
    }
}
