//! Sealed aggregate states (issue 11): the byte format in which a partial state of a k- or dp
//! aggregate may leave the process that made it (to a Citus coordinator, as text through the
//! state type's output function), readable and acceptable only by a server that holds the same
//! key ring. Pure Rust, like the pseudonym algorithm (pseudonym.rs), so that it runs under
//! plain `cargo test` and other systems can read it as the reference.
//!
//! ```text
//! SK     = HMAC-SHA256(K, "pg_deident/v1/state-seal")     K: a key of the ring, 32 bytes
//! header = "pgdS" || 0x02 || kind || len(id) || id || salt
//!                                      id: the key's id (ASCII, 1-32); salt: 16 bytes
//! BK     = HMAC-SHA256(SK, salt)                           the batch's key
//! nonce  = 12 bytes, never twice under one BK
//! sealed = header || nonce || AES-256-GCM(BK, nonce, plaintext, aad = header)
//! ```
//!
//! `kind` is 1 for a k-aggregate state, 2 for a dp aggregate state: a state of one family
//! cannot be fed to the other. The header is authenticated (the associated data, and the salt
//! also chooses the key), so neither the key id, the kind nor the salt can be changed; the
//! ciphertext hides the persons' hashes and totals of a partial state, which may be below any
//! threshold.
//!
//! **Batches.** A process seals under a key in batches: a batch has a salt from the operating
//! system's CSPRNG and numbers its states 0, 1, 2, ... as nonces (little-endian), so no nonce
//! repeats under one batch key. The caller names its batch (expanded.rs: one per statement
//! and process, and a forked child never continues its parent's); a new name, or 2^32 states,
//! starts a new batch. Two batches share a key only if two random 128-bit salts are equal. Deriving BK once per batch, not once per state, is what makes a
//! state cheap to seal and open: format 1 sealed each state with AES-256-GCM-SIV (RFC 8452),
//! whose per-message key derivation made it cost 0.94 µs for a 128-byte state on our
//! machines against 0.13 µs for ring's AES-256-GCM under a batch key, and a Citus query seals
//! and opens one state per shard and group (docs/sealed-states.md, "Why batches"). An opening
//! process keeps the batch keys that opened states (`OPENED_BATCHES` per key), so a
//! coordinator derives one per worker query, not one per state.
//!
//! The k-aggregates' state type, deident.k_state, seals its states with it when they are
//! flattened (src/aggregates/expanded.rs; docs/sealed-states.md).

use std::cell::RefCell;

use hmac::Mac;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use zeroize::Zeroize;

use crate::pseudonym::HmacSha256;

/// The derivation's label (the pseudonym algorithm's labels are "pg_deident/v1/domain" and
/// "pg_deident/v1/fingerprint").
pub const LABEL: &[u8] = b"pg_deident/v1/state-seal";
pub const MAGIC: [u8; 4] = *b"pgdS";
/// Format 1 (AES-256-GCM-SIV under SK, one random nonce per state) is no longer written or
/// read.
pub const VERSION: u8 = 2;
pub const SALT_LEN: usize = 16;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Key ids are SPEC's `[A-Za-z0-9_-]{1,32}` (keys.rs).
pub const MAX_ID_LEN: usize = 32;
/// States sealed in one batch before the next starts (NIST SP 800-38D's bound for
/// deterministic nonces is far above it; a batch this long is rare).
const BATCH_STATES: u64 = 1 << 32;
/// Batch keys an opening process keeps per sealing key: a Citus coordinator meets one batch
/// per worker query (one per shard of a statement, arriving interleaved), so this bounds the
/// shards a statement may have before keys are derived again (about 600 bytes each).
const OPENED_BATCHES: usize = 256;

/// Which aggregates' state a sealed state is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    KAggregate = 1,
    DpAggregate = 2,
}

/// Why sealed bytes were refused, or could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// Not a sealed state: too short, or another mark.
    NotSealed,
    /// A format version this build does not read.
    Version(u8),
    /// A state of the other family of aggregates.
    Kind,
    /// Sealed under a key this ring does not hold (the caller's lookup).
    UnknownKey,
    /// The authentication failed: altered, forged, or sealed under another key of that id.
    Forged,
    /// The output buffer is not the right size (a caller's error).
    Length,
    /// The operating system gave no random bytes for a batch's salt.
    Random,
}

/// A batch: its salt, its key's cipher, the next state's number, the caller's name for it.
struct Batch {
    salt: [u8; SALT_LEN],
    cipher: LessSafeKey,
    next: u64,
    name: u64,
}

/// A key of the ring, derived for sealing states: SK as a keyed HMAC (wiped on drop: hmac's
/// `zeroize` feature), the batch this process seals in, and the batch keys it opened states
/// of. The batch keys' AES schedules are `ring`'s, which does not wipe them on drop
/// (Cargo.toml says why ring; they live as long as this key in the key cache, which holds the
/// ring's keys themselves).
pub struct SealKey {
    id: Vec<u8>,
    sk: HmacSha256,
    sealing: RefCell<Option<Batch>>,
    opened: RefCell<Opened>,
}

impl SealKey {
    /// SK = HMAC-SHA256(K, LABEL). None for an id that is empty or too long.
    pub fn derive(id: &[u8], key: &[u8]) -> Option<SealKey> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return None;
        }
        let mut mac = crate::pseudonym::keyed(key);
        mac.update(LABEL);
        let mut sk: [u8; 32] = mac.finalize().into_bytes().into();
        let keyed = crate::pseudonym::keyed(&sk);
        sk.zeroize();
        Some(SealKey {
            id: id.to_vec(),
            sk: keyed,
            sealing: RefCell::new(None),
            opened: RefCell::new(Opened::default()),
        })
    }

    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// BK = HMAC-SHA256(SK, salt), as a cipher.
    fn batch_cipher(&self, salt: &[u8; SALT_LEN]) -> Result<LessSafeKey, SealError> {
        let mut bk: [u8; 32] = self.sk.clone().chain_update(salt).finalize().into_bytes().into();
        // (AES-256 takes exactly these 32 bytes: never an error)
        let cipher = UnboundKey::new(&AES_256_GCM, &bk).map(LessSafeKey::new);
        bk.zeroize();
        cipher.map_err(|_| SealError::Length)
    }

    /// Runs `f` with the batch to seal the next state in and that state's nonce: the current
    /// batch if the caller names it again, or a new one with a fresh salt.
    fn in_batch<R>(
        &self,
        name: u64,
        f: impl FnOnce(&Batch, [u8; NONCE_LEN]) -> R,
    ) -> Result<R, SealError> {
        let mut sealing = self.sealing.borrow_mut();
        let batch = match sealing.as_mut() {
            Some(b) if b.name == name && b.next < BATCH_STATES => b,
            _ => {
                let mut salt = [0u8; SALT_LEN];
                getrandom::fill(&mut salt).map_err(|_| SealError::Random)?;
                let cipher = self.batch_cipher(&salt)?;
                sealing.insert(Batch { salt, cipher, next: 0, name })
            }
        };
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&batch.next.to_le_bytes());
        batch.next += 1;
        Ok(f(batch, nonce))
    }

    /// `f` (an opening: true if the bytes authenticated) with the cipher of the batch of
    /// `salt`: one kept, or derived, and kept if `f` authenticated the bytes under it (forged
    /// bytes with made-up salts do not push the real batches' keys out).
    fn opening(
        &self,
        salt: &[u8; SALT_LEN],
        f: impl FnOnce(&LessSafeKey) -> bool,
    ) -> Result<bool, SealError> {
        let mut opened = self.opened.borrow_mut();
        if let Some(i) = opened.find(salt) {
            return Ok(f(&opened.ciphers[i]));
        }
        let cipher = self.batch_cipher(salt)?;
        let r = f(&cipher);
        if r {
            opened.keep(salt, cipher);
        }
        Ok(r)
    }
}

/// The batch keys that opened states, by their salts. The salts lie apart from the keys (each
/// about 560 bytes with its AES and GHASH tables), so that looking one up reads 16 bytes per
/// key, not a cache line or more; and the last one found is tried first, since a Citus
/// coordinator reads a worker query's states mostly one after the other (perf: scanning
/// the kept keys themselves took 5% of the coordinator's k_sum once 256 were kept).
#[derive(Default)]
struct Opened {
    salts: Vec<[u8; SALT_LEN]>,
    ciphers: Vec<LessSafeKey>,
    /// The key found last.
    last: usize,
    /// Where the next key goes once `OPENED_BATCHES` are kept.
    evict: usize,
}

impl Opened {
    fn find(&mut self, salt: &[u8; SALT_LEN]) -> Option<usize> {
        if self.salts.get(self.last) == Some(salt) {
            return Some(self.last);
        }
        let i = self.salts.iter().position(|s| s == salt)?;
        self.last = i;
        Some(i)
    }

    fn keep(&mut self, salt: &[u8; SALT_LEN], cipher: LessSafeKey) {
        if self.salts.len() < OPENED_BATCHES {
            self.salts.push(*salt);
            self.ciphers.push(cipher);
            self.last = self.salts.len() - 1;
        } else {
            let i = self.evict;
            (self.salts[i], self.ciphers[i]) = (*salt, cipher);
            self.last = i;
            self.evict = (i + 1) % OPENED_BATCHES;
        }
    }
}

fn header_len(id_len: usize) -> usize {
    MAGIC.len() + 3 + id_len + SALT_LEN
}

/// The size of `plain.len()` bytes sealed under a key whose id has `id_len` bytes.
pub fn sealed_len(id_len: usize, plain_len: usize) -> usize {
    header_len(id_len) + NONCE_LEN + plain_len + TAG_LEN
}

/// Where the plaintext sits in sealed bytes of a key whose id has `id_len` bytes: a caller
/// can write it there and seal in place (`seal_in_place`), with no copy.
pub fn body_range(id_len: usize, plain_len: usize) -> std::ops::Range<usize> {
    let start = header_len(id_len) + NONCE_LEN;
    start..start + plain_len
}

/// Seals `plain` into `out`, which must be `sealed_len(key.id().len(), plain.len())` bytes,
/// in the batch the caller names `batch` (`seal_in_place`).
pub fn seal(
    key: &SealKey,
    kind: Kind,
    batch: u64,
    plain: &[u8],
    out: &mut [u8],
) -> Result<(), SealError> {
    if out.len() != sealed_len(key.id.len(), plain.len()) {
        return Err(SealError::Length);
    }
    out[body_range(key.id.len(), plain.len())].copy_from_slice(plain);
    seal_in_place(key, kind, batch, out)
}

/// Seals `out` in place, as the next state of the batch the caller names `batch` (a name
/// other than the current batch's starts a new one; the caller must never give two processes
/// the same name for a batch that one of them has begun): `out` is `sealed_len(key.id().len(),
/// n)` bytes for some `n`, and its `body_range(key.id().len(), n)` holds the plaintext; the
/// header, the nonce and the tag are written around it and the plaintext is encrypted where
/// it is.
pub fn seal_in_place(
    key: &SealKey,
    kind: Kind,
    batch: u64,
    out: &mut [u8],
) -> Result<(), SealError> {
    if out.len() < sealed_len(key.id.len(), 0) {
        return Err(SealError::Length);
    }
    key.in_batch(batch, |batch, nonce| {
        seal_with(&batch.cipher, &key.id, kind, &batch.salt, nonce, out)
    })?
}

/// Seals `out` in place under a given batch cipher, salt and nonce.
fn seal_with(
    cipher: &LessSafeKey,
    id: &[u8],
    kind: Kind,
    salt: &[u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    out: &mut [u8],
) -> Result<(), SealError> {
    let h = header_len(id.len());
    let plain_len = out.len().checked_sub(sealed_len(id.len(), 0)).ok_or(SealError::Length)?;
    let (header, rest) = out.split_at_mut(h);
    header[..4].copy_from_slice(&MAGIC);
    header[4] = VERSION;
    header[5] = kind as u8;
    header[6] = id.len() as u8;
    header[7..7 + id.len()].copy_from_slice(id);
    header[7 + id.len()..].copy_from_slice(salt);
    let (n, rest) = rest.split_at_mut(NONCE_LEN);
    n.copy_from_slice(&nonce);
    let (body, tag) = rest.split_at_mut(plain_len);
    let t = cipher
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&*header), body)
        .map_err(|_| SealError::Length)?;
    tag.copy_from_slice(t.as_ref());
    Ok(())
}

/// The plaintext's frame: a state's encoding is sealed as its length (4 bytes, little-endian),
/// the encoding, and zeros up to `padded_len`, so that the length of sealed bytes says nothing
/// about the state within its size class (how many persons a group below k has, how large a
/// sum is).
pub const FRAME: usize = 4;

/// The framed plaintext's length for an encoding of `len` bytes: at least `floor`, and a power
/// of two. (The floor itself is rounded up too: for k = 5, 128 bytes rather than 104, room
/// for a numeric sum's positive and negative parts of a group below k; a review found that
/// an exact floor let a sum that mixes signs show in the length.)
pub fn padded_len(len: usize, floor: usize) -> usize {
    (len + FRAME).max(floor).next_power_of_two()
}

/// The framed plaintext's length for an encoding of `len` bytes that needs no padding to hide
/// anything: to a multiple of 16 bytes (AES's block).
pub fn block_padded_len(len: usize) -> usize {
    (len + FRAME).next_multiple_of(16)
}

/// The framed plaintext's length for a state's encoding of `len` bytes that holds `kept`
/// persons of `width` bytes each: padded as if it held at least `k` of them, to a power of two
/// of at least 64 + `width`·k bytes, so that the number of persons of a group below k never
/// shows in the length (both families of states: docs/sealed-states.md).
pub fn padded_as_if_k(len: usize, kept: usize, k: usize, width: usize) -> usize {
    padded_len(len + width * k.saturating_sub(kept), 64 + width * k)
}

/// Writes the frame around an encoding already in `plain[FRAME..FRAME + len]`: the length
/// before it, zeros after it.
pub fn frame(plain: &mut [u8], len: usize) {
    plain[..FRAME].copy_from_slice(&(len as u32).to_le_bytes());
    plain[FRAME + len..].fill(0);
}

/// The encoding inside a framed plaintext; None if the frame is not one `frame` writes.
pub fn unframe(plain: &[u8]) -> Option<&[u8]> {
    let (len, rest) = plain.split_first_chunk::<FRAME>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    let (encoding, padding) = rest.split_at_checked(len)?;
    padding.iter().all(|&b| b == 0).then_some(encoding)
}

/// The parts of sealed bytes: the header checked for the mark, version and kind.
struct Parts<'a> {
    header: &'a [u8],
    id: &'a [u8],
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    body: &'a [u8],
    tag: [u8; TAG_LEN],
}

fn parts(sealed: &[u8], kind: Kind) -> Result<Parts<'_>, SealError> {
    if sealed.len() < 7 || sealed[..4] != MAGIC {
        return Err(SealError::NotSealed);
    }
    if sealed[4] != VERSION {
        return Err(SealError::Version(sealed[4]));
    }
    if sealed[5] != kind as u8 {
        return Err(
            if sealed[5] == Kind::KAggregate as u8 || sealed[5] == Kind::DpAggregate as u8 {
                SealError::Kind
            } else {
                SealError::NotSealed
            },
        );
    }
    let id_len = usize::from(sealed[6]);
    if id_len == 0 || id_len > MAX_ID_LEN || sealed.len() < sealed_len(id_len, 0) {
        return Err(SealError::NotSealed);
    }
    let h = header_len(id_len);
    let (header, rest) = sealed.split_at(h);
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&header[7 + id_len..]);
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(nonce);
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(tag);
    Ok(Parts { header, id: &header[7..7 + id_len], salt, nonce: n, body, tag: t })
}

/// The kind that sealed bytes say they are (to open them as that family's state: the opening
/// checks it again, bound to the key).
pub fn kind_of(sealed: &[u8]) -> Kind {
    if sealed.get(5) == Some(&(Kind::DpAggregate as u8)) {
        Kind::DpAggregate
    } else {
        Kind::KAggregate
    }
}

/// The id of the key that sealed these bytes (to find it in the ring), once the mark, version
/// and kind are checked.
pub fn key_id(sealed: &[u8], kind: Kind) -> Result<&[u8], SealError> {
    parts(sealed, kind).map(|p| p.id)
}

/// The plaintext's length of sealed bytes that `key_id` accepted.
pub fn plain_len(sealed: &[u8], kind: Kind) -> Result<usize, SealError> {
    parts(sealed, kind).map(|p| p.body.len())
}

/// Opens sealed bytes into `out` (exactly `plain_len` bytes). On any error `out` holds no
/// plaintext: it is zeroed.
pub fn open(key: &SealKey, kind: Kind, sealed: &[u8], out: &mut [u8]) -> Result<(), SealError> {
    let p = parts(sealed, kind)?;
    if p.id != key.id.as_slice() {
        return Err(SealError::UnknownKey);
    }
    if out.len() != p.body.len() {
        return Err(SealError::Length);
    }
    out.copy_from_slice(p.body);
    let opened = key.opening(&p.salt, |cipher| {
        cipher
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(p.nonce),
                Aad::from(p.header),
                Tag::from(p.tag),
                out,
                0..,
            )
            .is_ok()
    })?;
    if !opened {
        out.zeroize();
        return Err(SealError::Forged);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC's test key (bytes 0x00..0x1f).
    fn spec_key() -> Vec<u8> {
        (0u8..32).collect()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Sealed in this process's batch.
    fn sealed(key: &SealKey, kind: Kind, plain: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; sealed_len(key.id().len(), plain.len())];
        seal(key, kind, 7, plain, &mut out).unwrap();
        out
    }

    /// Sealed with a given salt and nonce.
    fn sealed_as(key: &SealKey, salt: [u8; 16], nonce: [u8; 12], plain: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; sealed_len(key.id().len(), plain.len())];
        out[body_range(key.id().len(), plain.len())].copy_from_slice(plain);
        let cipher = key.batch_cipher(&salt).unwrap();
        seal_with(&cipher, key.id(), Kind::KAggregate, &salt, nonce, &mut out).unwrap();
        out
    }

    fn opened(key: &SealKey, kind: Kind, s: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = vec![0u8; plain_len(s, kind)?];
        open(key, kind, s, &mut out).map(|()| out)
    }

    #[test]
    fn the_published_vector() {
        // docs/sealed-states.md publishes these bytes, so that another implementation can
        // check its derivation and format against ours
        let key = SealKey::derive(b"k1", &spec_key()).unwrap();
        let s = sealed_as(&key, [5; 16], [7; 12], b"pg_deident");
        assert_eq!(hex(&s[..9]), "706764530201026b31");
        assert_eq!(s.len(), 9 + 16 + 12 + 10 + 16);
        assert_eq!(opened(&key, Kind::KAggregate, &s).unwrap(), b"pg_deident");
        let expected = include_str!("../docs/sealed-states.vector").trim();
        assert_eq!(hex(&s), expected);
    }

    #[test]
    fn round_trip_of_every_size() {
        let key = SealKey::derive(b"key_2026-11", &spec_key()).unwrap();
        for n in [0usize, 1, 15, 16, 17, 1000, 70_000] {
            let plain: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let s = sealed(&key, Kind::DpAggregate, &plain);
            assert_eq!(opened(&key, Kind::DpAggregate, &s).unwrap(), plain);
            // the plaintext does not show through
            if n >= 16 {
                assert!(!s.windows(16).any(|w| w == &plain[..16]));
            }
        }
    }

    #[test]
    fn a_batch_numbers_its_states_and_a_new_one_has_a_new_salt() {
        let key = SealKey::derive(b"k1", &spec_key()).unwrap();
        let salt = |s: &[u8]| s[9..25].to_vec();
        let nonce = |s: &[u8]| s[25..37].to_vec();
        let a = sealed(&key, Kind::KAggregate, b"the same state");
        let b = sealed(&key, Kind::KAggregate, b"the same state");
        assert_eq!(salt(&a), salt(&b));
        assert_eq!(nonce(&a), [0u8; 12]);
        assert_eq!(nonce(&b), [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        // the same state sealed twice looks different
        assert_ne!(a[37..], b[37..]);
        assert_ne!(salt(&a), [0u8; 16]);
        // a batch at its end, or one the caller names otherwise (another statement, another
        // process): a new salt
        key.sealing.borrow_mut().as_mut().unwrap().next = BATCH_STATES;
        let c = sealed(&key, Kind::KAggregate, b"the same state");
        assert_ne!(salt(&c), salt(&a));
        assert_eq!(nonce(&c), [0u8; 12]);
        key.sealing.borrow_mut().as_mut().unwrap().name ^= 1;
        let d = sealed(&key, Kind::KAggregate, b"the same state");
        assert_ne!(salt(&d), salt(&c));
        assert_eq!(nonce(&d), [0u8; 12]);
        for s in [&a, &b, &c, &d] {
            assert_eq!(opened(&key, Kind::KAggregate, s).unwrap(), b"the same state");
        }
    }

    #[test]
    fn many_batches_open_through_the_kept_keys() {
        // more batches than an opening process keeps: evicted ones are derived again
        let key = SealKey::derive(b"k1", &spec_key()).unwrap();
        let reader = SealKey::derive(b"k1", &spec_key()).unwrap();
        let salt = |i: usize, mark: u8| {
            let mut s = [mark; 16];
            s[..8].copy_from_slice(&(i as u64).to_le_bytes());
            s
        };
        let states: Vec<Vec<u8>> = (0..2 * OPENED_BATCHES + 5)
            .map(|i| sealed_as(&key, salt(i, 0), [1; 12], &[i as u8; 40]))
            .collect();
        for round in 0..2 {
            for (i, s) in states.iter().enumerate() {
                assert_eq!(opened(&reader, Kind::KAggregate, s).unwrap(), [i as u8; 40], "{round}");
            }
        }
        assert_eq!(reader.opened.borrow().salts.len(), OPENED_BATCHES);
        // forged bytes under made-up salts are refused and push no kept key out
        let kept: Vec<[u8; 16]> = reader.opened.borrow().salts.clone();
        let genuine = sealed_as(&key, salt(0, 0xee), [1; 12], &[0; 40]);
        for i in 0..2 * OPENED_BATCHES {
            let mut forged = genuine.clone();
            forged[9..25].copy_from_slice(&salt(i, 0xff));
            assert_eq!(opened(&reader, Kind::KAggregate, &forged), Err(SealError::Forged));
        }
        let after: Vec<[u8; 16]> = reader.opened.borrow().salts.clone();
        assert_eq!(kept, after);
    }

    #[test]
    fn every_altered_byte_is_refused() {
        let key = SealKey::derive(b"k1", &spec_key()).unwrap();
        let s = sealed(&key, Kind::KAggregate, b"persons and totals");
        for i in 0..s.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = s.clone();
                t[i] ^= bit;
                let r = opened(&key, Kind::KAggregate, &t);
                assert!(r.is_err(), "byte {i} bit {bit:#x} was accepted");
            }
        }
        // truncated or extended
        for n in 0..s.len() {
            assert!(opened(&key, Kind::KAggregate, &s[..n]).is_err(), "{n} bytes accepted");
        }
        let mut longer = s.clone();
        longer.push(0);
        assert_eq!(opened(&key, Kind::KAggregate, &longer), Err(SealError::Forged));
    }

    #[test]
    fn the_key_and_the_kind_are_bound() {
        let k1 = SealKey::derive(b"k1", &spec_key()).unwrap();
        let other: Vec<u8> = (32u8..64).collect();
        let k1_elsewhere = SealKey::derive(b"k1", &other).unwrap();
        let k2 = SealKey::derive(b"k2", &other).unwrap();
        let s = sealed(&k1, Kind::KAggregate, b"state");
        assert_eq!(key_id(&s, Kind::KAggregate), Ok(&b"k1"[..]));
        assert_eq!(opened(&k1_elsewhere, Kind::KAggregate, &s), Err(SealError::Forged));
        assert_eq!(opened(&k2, Kind::KAggregate, &s), Err(SealError::UnknownKey));
        assert_eq!(opened(&k1, Kind::DpAggregate, &s), Err(SealError::Kind));
        assert_eq!(key_id(b"pgdS\x02", Kind::KAggregate), Err(SealError::NotSealed));
        // format 1 is no longer read
        assert_eq!(key_id(b"pgdS\x01\x01\x02k1", Kind::KAggregate), Err(SealError::Version(1)));
        assert_eq!(key_id(b"something else entirely", Kind::KAggregate), Err(SealError::NotSealed));
        // a state of format 1 (docs/sealed-states.md gave this vector for it)
        let v1 = "706764530101026b3107070707070707070707070732052399edb997a522d0895370277c487b86b915e6c077a15217";
        let v1: Vec<u8> = (0..v1.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&v1[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(opened(&k1, Kind::KAggregate, &v1), Err(SealError::Version(1)));
    }

    #[test]
    fn sealing_in_place_is_sealing() {
        let key = SealKey::derive(b"k1", &spec_key()).unwrap();
        let plain = b"a state written where it will be sealed";
        let mut out = vec![0u8; sealed_len(2, plain.len())];
        out[body_range(2, plain.len())].copy_from_slice(plain);
        seal_in_place(&key, Kind::KAggregate, 1, &mut out).unwrap();
        assert_eq!(opened(&key, Kind::KAggregate, &out).unwrap(), plain);
        assert_eq!(
            seal_in_place(&key, Kind::KAggregate, 1, &mut [0u8; 10]),
            Err(SealError::Length)
        );
    }

    #[test]
    fn frames_hide_the_length_within_a_size_class() {
        // every encoding up to the floor gives the same length; beyond it, powers of two
        assert_eq!(padded_len(0, 104), 128);
        assert_eq!(padded_len(50, 104), 128);
        assert_eq!(padded_len(100, 104), 128);
        assert_eq!(padded_len(124, 104), 128);
        assert_eq!(padded_len(125, 104), 256);
        assert_eq!(block_padded_len(12), 16);
        assert_eq!(block_padded_len(13), 32);
        assert_eq!(block_padded_len(34), 48);
        for len in [0usize, 1, 60, 100, 124] {
            let mut plain = vec![0xaau8; padded_len(len, 104)];
            plain[FRAME..FRAME + len].fill(7);
            frame(&mut plain, len);
            assert_eq!(unframe(&plain), Some(&vec![7u8; len][..]));
        }
        // a length beyond the plaintext, non-zero padding, too short: refused
        let mut plain = vec![0u8; 128];
        frame(&mut plain, 10);
        plain[..4].copy_from_slice(&200u32.to_le_bytes());
        assert_eq!(unframe(&plain), None);
        frame(&mut plain, 10);
        plain[100] = 1;
        assert_eq!(unframe(&plain), None);
        assert_eq!(unframe(&[1, 0]), None);
    }

    #[test]
    fn ids_are_checked() {
        assert!(SealKey::derive(b"", &spec_key()).is_none());
        assert!(SealKey::derive(&[b'a'; 33], &spec_key()).is_none());
        assert!(SealKey::derive(&[b'a'; 32], &spec_key()).is_some());
    }
}
