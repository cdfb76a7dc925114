//! The pseudonym algorithm of SPEC "Pseudonymization", with no PostgreSQL types in it, so that it
//! runs under plain `cargo test` and other systems can read it as the reference.
//!
//! ```text
//! DK = HMAC-SHA256(K, "pg_deident/v1/domain" || 0x00 || utf8(domain))
//! M  = HMAC-SHA256(DK, bytes(value))
//! ```
//! then M is rendered as base-62 text, a version-8 UUID or a non-negative bigint.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

type HmacSha256 = Hmac<Sha256>;

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

/// A key, keyed to one domain: the HMAC state after absorbing DK.
///
/// Keeping the keyed state (not DK) means a value costs two SHA-256 compressions when it is
/// shorter than 56 bytes: the inner and outer pads were absorbed once, here. The state is
/// key-equivalent material; `hmac`'s `zeroize` feature wipes it on drop.
#[derive(Clone)]
pub struct DomainKey(HmacSha256);

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (RFC 2104 section 2: longer keys are hashed first), so
    // `new_from_slice` cannot fail for it; the error arm exists only for other MACs.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

impl DomainKey {
    /// Step 1 of the algorithm: derive DK from the key and the domain.
    pub fn derive(key: &[u8], domain: &[u8]) -> DomainKey {
        let mut mac = keyed(key);
        mac.update(DOMAIN_LABEL);
        mac.update(&[0]);
        mac.update(domain);
        let mut dk: [u8; 32] = mac.finalize().into_bytes().into();
        let state = keyed(&dk);
        dk.zeroize();
        DomainKey(state)
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
        let mut mac = self.0.clone();
        if value.len() <= MAC_CHUNK {
            mac.update(value);
        } else {
            for chunk in value.chunks(MAC_CHUNK) {
                mac.update(chunk);
                between();
            }
        }
        mac.finalize().into_bytes().into()
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

/// 62^5, the largest power of 62 below 2^32: one division pass yields five digits.
const CHUNK: u64 = 916_132_832;
const CHUNK_DIGITS: usize = 5;
/// Passes needed for the longest pseudonym.
const MAX_PASSES: usize = (MAX_LENGTH as usize).div_ceil(CHUNK_DIGITS);

/// Step 3: M as a big-endian 256-bit integer N, N mod 62^length in base 62, most significant
/// digit first, zero-padded to `length` characters. The caller checks `length` is in
/// MIN_LENGTH..=MAX_LENGTH; `out` must be at least `length` bytes long.
///
/// The low `length` base-62 digits of N are exactly N mod 62^length, so no reduction is needed:
/// divide N by 62^5 once per five digits, and spell each remainder. N is held in 32-bit limbs
/// so that every step is a 64-bit division by a constant, which compiles to a multiply.
///
/// Why the loops are nested this way round: pass k+1 divides the quotient of pass k, and its
/// step on limb i needs only pass k's quotient limb i. Running all passes limb by limb (rather
/// than pass after pass) leaves each pass a dependency chain of its own, which the CPU runs
/// side by side; pass after pass, the 40 steps of a 22-character pseudonym formed one chain
/// and took about 60% of the function's time in `perf` (see docs/benchmarks.md).
pub fn encode_base62(m: &[u8; 32], length: usize, out: &mut [u8]) {
    // A constant pass count lets the compiler keep the remainders in registers; with a
    // runtime count they went through the stack on every step.
    match length.div_ceil(CHUNK_DIGITS) {
        0..=2 => spell(&divide::<2>(m), length, out),
        3 => spell(&divide::<3>(m), length, out),
        4 => spell(&divide::<4>(m), length, out),
        5 => spell(&divide::<5>(m), length, out),
        6 => spell(&divide::<6>(m), length, out),
        7 => spell(&divide::<7>(m), length, out),
        8 => spell(&divide::<8>(m), length, out),
        _ => spell(&divide::<MAX_PASSES>(m), length, out),
    }
}

/// P passes of division by 62^5 over the limbs of N; element k is the k-th remainder (the
/// least significant five digits first).
#[inline(always)]
fn divide<const P: usize>(m: &[u8; 32]) -> [u32; P] {
    let mut rems = [0u64; P];
    for chunk in m.chunks_exact(4) {
        let mut limb = u64::from(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
        for rem in &mut rems {
            let cur = (*rem << 32) | limb;
            // cur < CHUNK * 2^32, so the quotient fits in 32 bits: a limb of the next pass.
            limb = cur / CHUNK;
            *rem = cur % CHUNK;
        }
    }
    // Each remainder is below CHUNK < 2^32.
    rems.map(|r| r as u32)
}

/// Writes the low `length` digits held in `rems` into `out[..length]`.
#[inline(always)]
fn spell(rems: &[u32], length: usize, out: &mut [u8]) {
    let mut end = length;
    for &r in rems {
        // Five independent divisions rather than a chain of five: they run in parallel.
        let digits = [r / 14_776_336, r / 238_328 % 62, r / 3_844 % 62, r / 62 % 62, r % 62];
        let take = CHUNK_DIGITS.min(end);
        for (slot, &digit) in out[end - take..end].iter_mut().zip(&digits[CHUNK_DIGITS - take..]) {
            *slot = ALPHABET[digit as usize];
        }
        end -= take;
    }
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

    #[test]
    fn long_values_are_hashed_in_chunks_with_checks_between() {
        let key = DomainKey::derive(&[7u8; 32], b"d");
        let value = vec![0xa5u8; 3 * MAC_CHUNK + 17];
        let mut checks = 0;
        let chunked = key.mac_interruptible(&value, || checks += 1);
        assert_eq!(checks, 4, "a check after every chunk");
        let mut whole = key.0.clone();
        whole.update(&value);
        assert_eq!(chunked, <[u8; 32]>::from(whole.finalize().into_bytes()));
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
