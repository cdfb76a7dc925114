//! The state of the k-anonymity-checked aggregates, with no PostgreSQL types in it: update,
//! merge (associative and commutative), the k test, and the byte encoding of partial states.
//! Generic over the [`Env`] its arrays live in (buf.rs explains why).
//!
//! Persons are 64-bit hashes (xxh3, see `person_hash`). Two persons can only ever share a hash
//! and be counted once, never the reverse, so a collision can only undercount persons: it
//! makes a group more likely to be suppressed, never less.
//!
//! Every loop over a whole array calls `Env::check_interrupts` at least every `CHUNK`
//! elements, so that a cancel or statement_timeout is acted on while a large state is sorted,
//! merged, encoded or decoded. The longest stretch without a check is one `sort_unstable` of
//! `CHUNK` (65,536) hashes, about a millisecond.

use std::fmt;

use super::buf::{Buf, Env, CHUNK};
use super::numeric::NumericRef;

pub use super::decimal::Decimal;

/// An exact integer sum: an i128 stored at 8-byte alignment, so that a state's fields pack
/// without the padding a 16-aligned i128 forces (expanded.rs, `Expanded`, says why that
/// matters: every row reads them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(8))]
pub struct Wide(pub i128);

impl Wide {
    #[inline]
    pub fn get(self) -> i128 {
        self.0
    }
}

/// What the aggregate accumulates besides the persons. The tag comes first (`repr(u8)`), next
/// to the integer and floating-point sums, in the line a row reads (expanded.rs, `Expanded`);
/// by default Rust may put it after the largest variant, a cache line further.
#[repr(C, u8)]
pub enum Acc<E: Env> {
    /// k_count: rows only.
    Count,
    /// k_count_distinct: the persons are the result.
    Distinct,
    /// k_sum / k_avg over smallint, integer, bigint: exact in 128 bits (2^63 rows of 2^63).
    Int(Wide),
    /// k_sum / k_avg over double precision.
    Float(f64),
    /// k_sum / k_avg over real: PostgreSQL sums real in single precision (float4pl) but
    /// averages it in double (float4_accum), so both are kept. An overflow of the single
    /// sum is an error for k_sum only, so it is remembered, not raised, here.
    Float4 { single: f32, double: f64, single_overflow: bool },
    /// k_sum / k_avg over numeric: exact, of any size (decimal.rs).
    Numeric(Decimal<E>),
}

impl<E: Env> Acc<E> {
    fn tag(&self) -> u8 {
        match self {
            Acc::Count => 1,
            Acc::Distinct => 2,
            Acc::Int(_) => 3,
            Acc::Float(_) => 4,
            Acc::Numeric(_) => 5,
            Acc::Float4 { .. } => 6,
        }
    }

    fn copy_in<F: Env>(&self, env: F) -> Result<Acc<F>, StateError> {
        Ok(match self {
            Acc::Count => Acc::Count,
            Acc::Distinct => Acc::Distinct,
            Acc::Int(v) => Acc::Int(*v),
            Acc::Float(v) => Acc::Float(*v),
            Acc::Float4 { single, double, single_overflow } => {
                Acc::Float4 { single: *single, double: *double, single_overflow: *single_overflow }
            }
            Acc::Numeric(d) => Acc::Numeric(d.copy_in(env)?),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// Memory could not be allocated (under `cargo test`; in the server palloc raises its own
    /// ERROR first).
    OutOfMemory,
    /// An array would exceed the largest allocation (1 GB in the server: 134 million persons
    /// in one k_count_distinct group).
    TooLarge,
    /// A sum does not fit its type (a float sum overflowing to infinity, a sum of smallint or
    /// integer beyond bigint, of bigint beyond 2^127, a numeric beyond numeric's range).
    Overflow,
    /// Partial-state bytes that this version did not write.
    Malformed,
    /// Partial states of two different kinds were merged (forged bytes).
    Mismatch,
    /// A numeric input datum that is not in numeric's storage format (numeric.rs).
    BadNumeric,
    /// The k test cannot be answered: the state stopped counting persons at `cap`, fewer than
    /// the `k` asked (a node whose deident.min_group_size was lower made it: a Citus worker
    /// that a session's SET did not reach).
    CappedBelowK { cap: u32, k: u32 },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateError::OutOfMemory => "out of memory",
            StateError::TooLarge => "state too large",
            StateError::Overflow => "value out of range",
            StateError::Malformed => "malformed partial aggregate state",
            StateError::Mismatch => "partial aggregate states of different kinds",
            StateError::BadNumeric => "invalid numeric datum",
            StateError::CappedBelowK { .. } => "state capped below k",
        })
    }
}

/// a + b, refusing an overflow to infinity as float8_pl does (float.h, `float8_pl`).
fn add_f64(a: f64, b: f64) -> Result<f64, StateError> {
    let r = a + b;
    if r.is_infinite() && a.is_finite() && b.is_finite() {
        return Err(StateError::Overflow);
    }
    Ok(r)
}

/// The same in single precision, as float4pl; true in the second place when it overflowed.
fn add_f32(a: f32, b: f32) -> (f32, bool) {
    let r = a + b;
    (r, r.is_infinite() && a.is_finite() && b.is_finite())
}

/// Sorts `v[..]` and removes duplicates, given that `v[..sorted]` already is sorted and
/// distinct; then truncates `v` to the distinct values.
///
/// Small arrays are sorted whole. Larger ones never sort more than `CHUNK` elements without
/// an interrupt check: the tail is sorted in runs of `CHUNK`, the runs are merged pairwise
/// through a scratch array (a bottom-up merge sort), the sorted tail is merged into the
/// prefix from the back, and duplicates are removed in one pass; every pass checks for
/// interrupts every `CHUNK` elements. Scratch memory: the tail's size, freed on return.
pub fn sort_distinct<E: Env>(v: &mut Buf<E>, sorted: usize) -> Result<(), StateError> {
    let env = v.env();
    let n = v.len();
    if n <= CHUNK {
        v.sort_unstable();
    } else {
        let tail = n - sorted;
        let mut scratch = Buf::with_capacity(env, tail)?;
        scratch.resize(tail)?;
        if !merge_sort(&mut v[sorted..], &mut scratch, env) {
            copy_checked(&v[sorted..], &mut scratch, env);
        }
        merge_back(v, sorted, &scratch, env);
    }
    let m = dedup_sorted(v, env);
    v.truncate(m);
    Ok(())
}

/// Sorts `a` through `b` (of the same length); true when the result is in `b`.
fn merge_sort<E: Env>(a: &mut [u64], b: &mut [u64], env: E) -> bool {
    for run in a.chunks_mut(CHUNK) {
        run.sort_unstable();
        env.check_interrupts();
    }
    let mut width = CHUNK;
    let mut in_b = false;
    while width < a.len() {
        if in_b {
            merge_pass(b, a, width, env);
        } else {
            merge_pass(a, b, width, env);
        }
        in_b = !in_b;
        width = width.saturating_mul(2);
    }
    in_b
}

/// Merges each pair of adjacent sorted runs of `width` in `src` into `dst`.
fn merge_pass<E: Env>(src: &[u64], dst: &mut [u64], width: usize, env: E) {
    for (s, d) in src.chunks(2 * width).zip(dst.chunks_mut(2 * width)) {
        let (x, y) = s.split_at(width.min(s.len()));
        let (mut i, mut j) = (0, 0);
        for (k, slot) in d.iter_mut().enumerate() {
            *slot = if j >= y.len() || (i < x.len() && x[i] <= y[j]) {
                i += 1;
                x[i - 1]
            } else {
                j += 1;
                y[j - 1]
            };
            if k % CHUNK == CHUNK - 1 {
                env.check_interrupts();
            }
        }
    }
}

fn copy_checked<E: Env>(src: &[u64], dst: &mut [u64], env: E) {
    for (s, d) in src.chunks(CHUNK).zip(dst.chunks_mut(CHUNK)) {
        d.copy_from_slice(s);
        env.check_interrupts();
    }
}

/// Merges the sorted `t` into `v`, whose first `sorted` elements are sorted and whose
/// remaining `t.len()` slots are free, writing from the back (the write position never
/// overtakes the unread part of the prefix).
fn merge_back<E: Env>(v: &mut [u64], sorted: usize, t: &[u64], env: E) {
    let (mut i, mut j, mut w) = (sorted, t.len(), v.len());
    let mut since = 0;
    while j > 0 {
        w -= 1;
        if i > 0 && v[i - 1] > t[j - 1] {
            i -= 1;
            v[w] = v[i];
        } else {
            j -= 1;
            v[w] = t[j];
        }
        since += 1;
        if since == CHUNK {
            since = 0;
            env.check_interrupts();
        }
    }
}

/// Removes repeats from a sorted slice in place; returns the number of distinct values.
fn dedup_sorted<E: Env>(v: &mut [u64], env: E) -> usize {
    if v.is_empty() {
        return 0;
    }
    let mut w = 1;
    for r in 1..v.len() {
        if v[r] != v[w - 1] {
            v[w] = v[r];
            w += 1;
        }
        if r % CHUNK == 0 {
            env.check_interrupts();
        }
    }
    w
}

/// The state of one group.
#[repr(C)]
pub struct KState<E: Env> {
    /// For the capped aggregates (k_count, k_sum, k_avg): the k in force when the state was
    /// made; at most this many persons are remembered, since k distinct persons are enough to
    /// meet the threshold. 0 for k_count_distinct, which remembers every person.
    pub cap: u32,
    /// For k_count_distinct, how many of `persons` are sorted and distinct (a u32: a Buf
    /// holds at most MaxAllocSize / 8 < 2^27 hashes); for the capped aggregates, `FULL` once
    /// `cap` distinct persons were seen, else 0. One field for both (they never share a
    /// state), so that what a row reads stays in the object's first two cache lines
    /// (expanded.rs, `Expanded`).
    settled: u32,
    /// Rows that contributed (person and value both non-NULL).
    pub rows: i64,
    /// Person hashes: distinct for the capped aggregates, and none once the state is full
    /// (which k distinct persons met the threshold no longer matters, so neither memory nor
    /// the sealed bytes carry them); for k_count_distinct, sorted and distinct up to
    /// `settled`, then appended as they come (sorted and deduplicated in bulk,
    /// which keeps the per-row work a sequential write: see `add_person`).
    persons: Buf<E>,
    pub acc: Acc<E>,
}

const VERSION: u8 = 1;

/// `settled` of a capped state that has seen `cap` distinct persons.
const FULL: u32 = 1;

impl<E: Env> KState<E> {
    pub fn new(acc: Acc<E>, cap: u32, env: E) -> KState<E> {
        let cap = if matches!(acc, Acc::Distinct) { 0 } else { cap };
        KState { cap, persons: Buf::new(env), settled: 0, rows: 0, acc }
    }

    /// A capped state that has seen `cap` distinct persons, with these rows and this sum: what
    /// `add_person` leaves once the cap is reached (no hashes kept). For a full state kept
    /// packed in a transition value (partial.rs, `Packed`), made again to be sealed or to take
    /// a row the packed form cannot hold.
    pub fn full(acc: Acc<E>, cap: u32, rows: i64, env: E) -> KState<E> {
        debug_assert!(cap > 0 && !matches!(acc, Acc::Distinct));
        KState { cap, persons: Buf::new(env), settled: FULL, rows, acc }
    }

    pub fn env(&self) -> E {
        self.persons.env()
    }

    fn sorted(&self) -> usize {
        debug_assert!(self.cap == 0);
        self.settled as usize
    }

    fn set_sorted(&mut self, n: usize) {
        // n counts hashes in a Buf: below 2^27 (MaxAllocSize / 8)
        self.settled = n as u32;
    }

    /// A capped state that has seen `cap` distinct persons: it forgets their hashes.
    fn set_full(&mut self) {
        self.persons.truncate(0);
        self.settled = FULL;
    }

    /// Makes a capped state that holds `cap` persons full; true if it now is.
    fn full_at_cap(&mut self) -> bool {
        let full = self.persons.len() >= self.cap as usize;
        if full {
            self.set_full();
        }
        full
    }

    /// The most persons a state remembers (k when it was made), 0 for k_count_distinct's.
    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// The person hashes the state holds now (distinct once `encoded_len` has run; none once
    /// it is `saturated`).
    pub fn persons_kept(&self) -> usize {
        self.persons.len()
    }

    /// The persons remembered (for k_count_distinct, sorted once `distinct_persons` or
    /// `encoded_len` has run).
    #[cfg(test)]
    pub fn persons(&self) -> &[u64] {
        &self.persons
    }

    /// True once the capped aggregates have seen `cap` distinct persons: then nothing more
    /// about persons needs to be remembered (the state holds no hashes any more), and the
    /// caller can skip hashing them.
    #[inline]
    pub fn saturated(&self) -> bool {
        self.cap > 0 && self.settled == FULL
    }

    /// Adds a person. k_count_distinct appends it and, when the unsorted tail has outgrown
    /// the sorted part, sorts and deduplicates: amortized O(log n) per row in cache-friendly
    /// passes, and memory within about twice the distinct persons (plus 16).
    #[inline]
    pub fn add_person(&mut self, hash: u64) -> Result<(), StateError> {
        if self.cap == 0 {
            // Grow only to the next compaction, not by doubling: memory stays within about
            // twice the distinct persons.
            let next = 2 * self.sorted() + 16;
            if self.persons.len() == self.persons.capacity() {
                self.persons.reserve_exact(next.saturating_sub(self.persons.len()).max(1))?;
            }
            self.persons.push(hash)?;
            if self.persons.len() >= next {
                self.compact()?;
            }
        } else if !self.saturated() && !self.persons.contains(&hash) {
            if self.persons.capacity() == 0 {
                // Room for the cap at once (up to 16; doubling past that), rather than 4 then
                // 8: one allocation per group at the usual k, where a Citus worker makes a
                // state per shard and group.
                self.persons.reserve_exact((self.cap as usize).min(16))?;
            }
            self.persons.push(hash)?;
            self.full_at_cap();
        }
        Ok(())
    }

    /// Sorts and deduplicates the k_count_distinct persons.
    pub fn compact(&mut self) -> Result<(), StateError> {
        if self.cap == 0 && self.sorted() < self.persons.len() {
            let sorted = self.sorted();
            sort_distinct(&mut self.persons, sorted)?;
            self.set_sorted(self.persons.len());
        }
        Ok(())
    }

    /// Adds one row's value (the person is added separately).
    pub fn add_int(&mut self, v: i64) -> Result<(), StateError> {
        if let Acc::Int(s) = &mut self.acc {
            *s = Wide(s.get().checked_add(i128::from(v)).ok_or(StateError::Overflow)?);
        }
        self.rows += 1;
        Ok(())
    }

    pub fn add_float(&mut self, v: f64) -> Result<(), StateError> {
        if let Acc::Float(s) = &mut self.acc {
            *s = add_f64(*s, v)?;
        }
        self.rows += 1;
        Ok(())
    }

    pub fn add_float4(&mut self, v: f32) -> Result<(), StateError> {
        if let Acc::Float4 { single, double, single_overflow } = &mut self.acc {
            let (sum, overflow) = add_f32(*single, v);
            *single = sum;
            *single_overflow |= overflow;
            *double = add_f64(*double, f64::from(v))?;
        }
        self.rows += 1;
        Ok(())
    }

    #[inline]
    pub fn add_numeric(&mut self, v: &NumericRef<'_>) -> Result<(), StateError> {
        if let Acc::Numeric(s) = &mut self.acc {
            s.add_numeric(v)?;
        }
        self.rows += 1;
        Ok(())
    }

    /// True when `acc` is of this state's kind (the same aggregate family and value type).
    pub fn same_kind<F: Env>(&self, acc: &Acc<F>) -> bool {
        self.acc.tag() == acc.tag()
    }

    pub fn add_row(&mut self) {
        self.rows += 1;
    }

    /// A copy in another environment's memory.
    pub fn copy_in<F: Env>(&self, env: F) -> Result<KState<F>, StateError> {
        Ok(KState {
            cap: self.cap,
            persons: self.persons.copy_in(env)?,
            settled: self.settled,
            rows: self.rows,
            acc: self.acc.copy_in(env)?,
        })
    }

    /// Merges `other` into `self`. Associative and commutative: the capped person count of a
    /// merge is min(cap, |persons of both|), whichever partial states it is built from (a
    /// saturated side alone reaches the cap, whose hashes are not needed; otherwise both
    /// sides hold all their persons).
    pub fn merge(&mut self, other: &KState<E>) -> Result<(), StateError> {
        match (&mut self.acc, &other.acc) {
            (Acc::Count, Acc::Count) | (Acc::Distinct, Acc::Distinct) => {}
            (Acc::Int(a), Acc::Int(b)) => {
                *a = Wide(a.get().checked_add(b.get()).ok_or(StateError::Overflow)?)
            }
            (Acc::Float(a), Acc::Float(b)) => *a = add_f64(*a, *b)?,
            (
                Acc::Float4 { single: a, double: c, single_overflow: x },
                Acc::Float4 { single: b, double: d, single_overflow: y },
            ) => {
                let (sum, overflow) = add_f32(*a, *b);
                *a = sum;
                *x |= overflow || *y;
                *c = add_f64(*c, *d)?;
            }
            (Acc::Numeric(a), Acc::Numeric(b)) => a.merge(b)?,
            _ => return Err(StateError::Mismatch),
        }
        if (self.cap == 0) != (other.cap == 0) {
            return Err(StateError::Mismatch);
        }
        self.rows = self.rows.checked_add(other.rows).ok_or(StateError::Overflow)?;
        if self.cap == 0 {
            self.merge_distinct(other)
        } else {
            self.merge_capped(other)
        }
    }

    fn merge_distinct(&mut self, other: &KState<E>) -> Result<(), StateError> {
        let env = self.env();
        self.compact()?;
        if other.sorted() == other.persons.len() {
            // both sorted (a deserialized state always is): one linear merge from the back
            let sorted = self.persons.len();
            self.persons.resize(sorted + other.persons.len())?;
            merge_back(&mut self.persons, sorted, &other.persons, env);
            let m = dedup_sorted(&mut self.persons, env);
            self.persons.truncate(m);
            self.set_sorted(m);
        } else {
            self.persons.extend_from_slice(&other.persons)?;
            self.compact()?;
        }
        Ok(())
    }

    fn merge_capped(&mut self, other: &KState<E>) -> Result<(), StateError> {
        // A smaller cap from another worker still decides correctly for its own k.
        self.cap = self.cap.min(other.cap.max(1));
        // A full side saw at least its own cap of distinct persons, so at least the smaller
        // cap; so does a side that holds that many.
        if other.saturated() {
            self.set_full();
        }
        if self.saturated() || self.full_at_cap() {
            return Ok(());
        }
        // Our persons, sorted, to look other's up in O(log k) rather than O(k): k may be
        // as large as 100,000.
        let env = self.env();
        let mut seen = self.persons.copy_in(env)?;
        sort_distinct(&mut seen, 0)?;
        for (i, p) in other.persons.iter().enumerate() {
            if seen.binary_search(p).is_err() {
                self.persons.push(*p)?;
                if self.full_at_cap() {
                    break;
                }
            }
            if i % CHUNK == CHUNK - 1 {
                env.check_interrupts();
            }
        }
        Ok(())
    }

    /// Distinct persons seen, capped for the capped aggregates.
    pub fn distinct_persons(&mut self) -> Result<usize, StateError> {
        if self.saturated() {
            return Ok(self.cap as usize);
        }
        self.compact()?;
        Ok(self.persons.len())
    }

    /// The distinct persons' hashes (all of them for k_count_distinct and dp_count), sorted.
    pub fn distinct_hashes(&mut self) -> Result<&[u64], StateError> {
        self.compact()?;
        Ok(&self.persons)
    }

    /// The k test: true when at least `k` distinct persons contributed. A capped state whose
    /// cap is below `k` was made for a lower k and may have stopped counting: an error, not a
    /// NULL that would look like a group below k (a review had every group of a Citus table
    /// NULL after a session raised k on the coordinator only); whatever its persons, so that
    /// the error says nothing of the group (a later review: raised only for a full state, it
    /// told groups of at least `cap` persons from smaller ones).
    pub fn meets(&mut self, k: u32) -> Result<bool, StateError> {
        if self.cap > 0 && self.cap < k {
            return Err(StateError::CappedBelowK { cap: self.cap, k });
        }
        Ok(self.distinct_persons()? >= k as usize)
    }

    /// The size of the partial state's bytes; sorts the persons and propagates the numeric
    /// carries, as `encode` needs.
    pub fn encoded_len(&mut self) -> Result<usize, StateError> {
        self.compact()?;
        let acc = match &mut self.acc {
            Acc::Count | Acc::Distinct => 0,
            Acc::Int(_) => 16,
            Acc::Float(_) => 8,
            Acc::Float4 { .. } => 13,
            Acc::Numeric(d) => d.encoded_len()?,
        };
        Ok(1 + 1 + 4 + 8 + acc + 4 + 8 * self.persons.len())
    }

    /// Writes the partial state's bytes into `out`, of `encoded_len()` bytes: a version byte,
    /// then the fields, little-endian.
    pub fn encode(&self, out: &mut [u8]) {
        let env = self.env();
        let mut w = Writer(out);
        w.put(&[VERSION, self.acc.tag()]);
        w.put(&self.cap.to_le_bytes());
        w.put(&self.rows.to_le_bytes());
        match &self.acc {
            Acc::Count | Acc::Distinct => {}
            Acc::Int(s) => w.put(&s.get().to_le_bytes()),
            Acc::Float(s) => w.put(&s.to_le_bytes()),
            Acc::Float4 { single, double, single_overflow } => {
                w.put(&single.to_le_bytes());
                w.put(&double.to_le_bytes());
                w.put(&[u8::from(*single_overflow)]);
            }
            Acc::Numeric(d) => {
                let rest = std::mem::take(&mut w.0);
                w.0 = d.encode(rest);
            }
        }
        // persons.len() is bounded by memory far below 2^32 entries of 8 bytes in a bytea
        // (1 GB): a state that large cannot be serialized by PostgreSQL anyway. A full capped
        // state says it has `cap` persons, and lists none.
        let n = if self.saturated() { self.cap } else { self.persons.len() as u32 };
        w.put(&n.to_le_bytes());
        for (i, p) in self.persons.iter().enumerate() {
            w.put(&p.to_le_bytes());
            if i % CHUNK == CHUNK - 1 {
                env.check_interrupts();
            }
        }
    }

    /// Reads `encode`'s bytes back, into `env`'s memory; anything else is `Malformed`.
    pub fn decode(bytes: &[u8], env: E) -> Result<KState<E>, StateError> {
        let mut r = Reader::new(bytes);
        if r.take::<1>()? != [VERSION] {
            return Err(StateError::Malformed);
        }
        let tag = r.take::<1>()?[0];
        let cap = u32::from_le_bytes(r.take()?);
        let rows = i64::from_le_bytes(r.take()?);
        let acc = match tag {
            1 => Acc::Count,
            2 => Acc::Distinct,
            3 => Acc::Int(Wide(i128::from_le_bytes(r.take()?))),
            4 => Acc::Float(f64::from_le_bytes(r.take()?)),
            6 => {
                let single = f32::from_le_bytes(r.take()?);
                let double = f64::from_le_bytes(r.take()?);
                let single_overflow = match r.take::<1>()? {
                    [0] => false,
                    [1] => true,
                    _ => return Err(StateError::Malformed),
                };
                Acc::Float4 { single, double, single_overflow }
            }
            5 => {
                let (d, rest) = Decimal::decode(r.rest(), env)?;
                r = Reader::new(rest);
                Acc::Numeric(d)
            }
            _ => return Err(StateError::Malformed),
        };
        let n = u32::from_le_bytes(r.take()?) as usize;
        // A capped state holds at most cap persons, and lists none when it holds cap (full).
        let full = cap > 0 && n == cap as usize;
        let listed = if full { 0 } else { n };
        let listing = r.rest();
        if rows < 0 || matches!(acc, Acc::Distinct) != (cap == 0) || listing.len() != listed * 8 {
            return Err(StateError::Malformed);
        }
        // Persons must be distinct (and, for k_count_distinct, sorted as encode leaves them):
        // forged bytes cannot claim more persons than they list, nor more than the cap.
        if cap > 0 && n > cap as usize {
            return Err(StateError::Malformed);
        }
        if full {
            return Ok(KState { cap, persons: Buf::new(env), settled: FULL, rows, acc });
        }
        let mut persons = Buf::with_capacity(env, n)?;
        for (i, c) in listing.chunks_exact(8).enumerate() {
            let p = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            if cap == 0 && persons.last().is_some_and(|&last| last >= p) {
                return Err(StateError::Malformed);
            }
            persons.push(p)?;
            if i % CHUNK == CHUNK - 1 {
                env.check_interrupts();
            }
        }
        if cap > 0 {
            let mut s = persons.copy_in(env)?;
            sort_distinct(&mut s, 0)?;
            if s.len() != persons.len() {
                return Err(StateError::Malformed);
            }
        }
        // persons.len() < 2^27 (a Buf's limit)
        let settled = if cap == 0 { persons.len() as u32 } else { 0 };
        Ok(KState { cap, persons, settled, rows, acc })
    }
}

struct Writer<'a>(&'a mut [u8]);

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let (head, rest) = std::mem::take(&mut self.0).split_at_mut(bytes.len());
        head.copy_from_slice(bytes);
        self.0 = rest;
    }
}

/// Fields read in order from an encoding. The bytes and the offset stay apart (a slice that
/// `take` shortened was kept on the stack in pieces that each field's read then waited for:
/// decoding a full state took 68 ns, of which most were those stalls).
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    #[inline(always)]
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let field = self.bytes.get(self.at..).and_then(|b| b.first_chunk::<N>());
        let field = *field.ok_or(StateError::Malformed)?;
        self.at += N;
        Ok(field)
    }

    /// The bytes not read yet.
    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }
}

/// The person's hash: xxh3-64 of its bytes (text as stored, uuid's 16 bytes, integers
/// little-endian). xxh3 is a published, fixed function, so states made by different builds
/// (parallel workers, or the nodes of a distributed engine) hash alike; it is also fast.
#[inline]
pub fn person_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

#[cfg(test)]
mod tests {
    use super::super::buf::tests::{HeapEnv, CHECKS};
    use super::super::numeric::{self, tests::pg_numeric};
    use super::*;

    type State = KState<HeapEnv>;

    fn encode_vec(s: &mut State) -> Vec<u8> {
        let mut out = vec![0; s.encoded_len().unwrap()];
        s.encode(&mut out);
        out
    }

    fn capped(cap: u32, persons: &[u64]) -> State {
        let mut s = KState::new(Acc::Int(Wide(0)), cap, HeapEnv);
        for &p in persons {
            s.add_person(p).unwrap();
            s.add_int(p as i64).unwrap();
        }
        s
    }

    fn add_numeric(s: &mut State, text: &str) {
        s.add_numeric(&numeric::read(&pg_numeric(text)).unwrap()).unwrap();
    }

    fn same_acc(a: &Acc<HeapEnv>, b: &Acc<HeapEnv>) -> bool {
        match (a, b) {
            (Acc::Count, Acc::Count) | (Acc::Distinct, Acc::Distinct) => true,
            (Acc::Int(x), Acc::Int(y)) => x == y,
            (Acc::Float(x), Acc::Float(y)) => x.to_bits() == y.to_bits(),
            (
                Acc::Float4 { single: a, double: b, single_overflow: c },
                Acc::Float4 { single: x, double: y, single_overflow: z },
            ) => (a.to_bits(), b.to_bits(), c) == (x.to_bits(), y.to_bits(), z),
            (Acc::Numeric(x), Acc::Numeric(y)) => x == y,
            _ => false,
        }
    }

    #[test]
    fn capped_state_remembers_at_most_k_persons() {
        let mut s = capped(5, &[1, 1, 2, 3, 3, 3, 4]);
        assert_eq!(s.distinct_persons(), Ok(4));
        assert_eq!(s.meets(5), Ok(false));
        assert_eq!(s.rows, 7);
        for p in 5..1000 {
            s.add_person(p).unwrap();
        }
        assert!(s.persons().is_empty(), "a full state forgets its persons");
        assert!(s.saturated() && s.meets(5).unwrap());
        assert_eq!(s.distinct_persons(), Ok(5));
        assert_eq!(
            s.meets(6),
            Err(StateError::CappedBelowK { cap: 5, k: 6 }),
            "a cap below the current k cannot confirm it, nor deny it"
        );
    }

    #[test]
    fn distinct_state_counts_exactly() {
        let mut s = KState::new(Acc::Distinct, 5, HeapEnv);
        for i in 0..10_000u64 {
            s.add_person(i % 3_001).unwrap();
            s.add_row();
        }
        assert_eq!(s.distinct_persons(), Ok(3_001));
        assert_eq!(s.rows, 10_000);
        assert!(s.persons.capacity() <= 2 * 3_001 + 16, "memory about twice the persons");
    }

    /// A small deterministic generator (no dependency needed for the property tests).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn wide(&mut self) -> u64 {
            self.next() << 32 ^ self.next()
        }
    }

    /// Sorting and deduplicating large arrays, prefix or not, as the standard library does,
    /// with interrupt checks in every pass.
    #[test]
    fn sort_distinct_matches_sort_and_dedup_and_checks_interrupts() {
        let mut rng = Lcg(1);
        for (n, sorted, modulo) in [
            (100, 0, 50),
            (CHUNK * 8, 0, u64::MAX),
            (CHUNK * 5 + 17, CHUNK * 2, 1_000_000),
            (CHUNK * 3, CHUNK * 3 - 5, u64::MAX),
        ] {
            let mut prefix: Vec<u64> = (0..sorted).map(|_| rng.wide() % modulo).collect();
            prefix.sort_unstable();
            prefix.dedup();
            let mut input = prefix.clone();
            input.extend((0..n - sorted).map(|_| rng.wide() % modulo));
            let mut expect = input.clone();
            expect.sort_unstable();
            expect.dedup();
            let mut b = Buf::new(HeapEnv);
            b.extend_from_slice(&input).unwrap();
            CHECKS.with(|c| c.set(0));
            sort_distinct(&mut b, prefix.len()).unwrap();
            assert_eq!(&b[..], &expect[..], "n = {n}");
            if n >= 8 * CHUNK {
                // 8 runs sorted, 3 merge passes, the merge into the prefix, the dedup pass:
                // a check for every CHUNK elements of each
                assert!(CHECKS.with(|c| c.get()) >= 5 * n / CHUNK, "{}", CHECKS.with(|c| c.get()));
            }
        }
    }

    /// `n` random states of a kind, and each one's persons (a full state no longer lists them).
    fn random_states(rng: &mut Lcg, kind: u8, cap: u32, n: usize) -> (Vec<State>, Vec<u64>) {
        let mut persons = Vec::new();
        let states = (0..n)
            .map(|_| {
                let acc = match kind {
                    0 => Acc::Int(Wide(0)),
                    1 => Acc::Distinct,
                    2 => Acc::Count,
                    _ => Acc::Numeric(Decimal::new(HeapEnv)),
                };
                let mut s = KState::new(acc, cap, HeapEnv);
                for _ in 0..rng.next() % 40 {
                    let p = rng.next() % 30;
                    persons.push(p);
                    s.add_person(p).unwrap();
                    match kind {
                        0 => s.add_int((rng.next() % 100) as i64 - 50).unwrap(),
                        3 => add_numeric(
                            &mut s,
                            // up to 60 digits: beyond 128 bits, scales apart
                            &format!(
                                "{}{}{}.{}",
                                if rng.next().is_multiple_of(3) { "-" } else { "" },
                                rng.next() % 99 + 1,
                                "0".repeat((rng.next() % 45) as usize),
                                "1".repeat((rng.next() % 15) as usize + 1)
                            ),
                        ),
                        _ => s.add_row(),
                    }
                }
                s
            })
            .collect();
        (states, persons)
    }

    fn fold(states: &[State], order: &[usize]) -> State {
        let acc = match &states[0].acc {
            Acc::Int(_) => Acc::Int(Wide(0)),
            Acc::Numeric(_) => Acc::Numeric(Decimal::new(HeapEnv)),
            Acc::Distinct => Acc::Distinct,
            _ => Acc::Count,
        };
        let mut acc = KState::new(acc, states[0].cap, HeapEnv);
        for &i in order {
            acc.merge(&states[i]).unwrap();
        }
        acc
    }

    #[test]
    fn merge_is_associative_and_commutative() {
        let mut rng = Lcg(42);
        for kind in 0..4 {
            for _ in 0..200 {
                let (states, mut all) = random_states(&mut rng, kind, 5, 6);
                let forward: Vec<usize> = (0..6).collect();
                let mut shuffled = forward.clone();
                for i in (1..6).rev() {
                    shuffled.swap(i, (rng.next() % (i as u64 + 1)) as usize);
                }
                let mut a = fold(&states, &forward);
                let mut b = fold(&states, &shuffled);
                // ((s0+s1)+(s2+s3))+(s4+s5): a different tree, with states that went
                // through their bytes as between parallel workers
                let mut left = fold(&states, &[0, 1]);
                let mut right = fold(&states, &[2, 3]);
                let right = State::decode(&encode_vec(&mut right), HeapEnv).unwrap();
                left.merge(&right).unwrap();
                left.merge(&fold(&states, &[4, 5])).unwrap();
                assert_eq!(a.distinct_persons(), b.distinct_persons());
                assert_eq!(a.distinct_persons(), left.distinct_persons());
                assert_eq!(a.rows, b.rows);
                assert!(same_acc(&a.acc, &b.acc));
                assert!(same_acc(&a.acc, &left.acc));
                // and the same as one state fed every row
                all.sort_unstable();
                all.dedup();
                let expect = if kind == 1 { all.len() } else { all.len().min(5) };
                assert_eq!(a.distinct_persons(), Ok(expect));
            }
        }
    }

    #[test]
    fn large_merges_are_exact() {
        let mut rng = Lcg(9);
        let mut a = KState::new(Acc::Distinct, 0, HeapEnv);
        let mut b = KState::new(Acc::Distinct, 0, HeapEnv);
        let mut all = Vec::new();
        for i in 0..(3 * CHUNK) {
            let p = rng.wide() % (4 * CHUNK as u64);
            all.push(p);
            if i % 3 == 0 { &mut a } else { &mut b }.add_person(p).unwrap();
        }
        all.sort_unstable();
        all.dedup();
        let b_sorted = State::decode(&encode_vec(&mut b), HeapEnv).unwrap();
        let mut a2 = a.copy_in(HeapEnv).unwrap();
        a.merge(&b).unwrap(); // b with an unsorted tail
        a2.merge(&b_sorted).unwrap(); // b sorted: the linear merge
        a.compact().unwrap();
        assert_eq!(a.persons(), &all[..]);
        assert_eq!(a2.persons(), &all[..]);
        // capped with a large k: the lookup merge
        let mut c = capped(3_000, &(0..2_000).collect::<Vec<_>>());
        let d = capped(3_000, &(1_500..4_000).collect::<Vec<_>>());
        c.merge(&d).unwrap();
        assert_eq!(c.distinct_persons(), Ok(3_000));
        let mut e = capped(3_000, &(0..1_000).collect::<Vec<_>>());
        e.merge(&capped(3_000, &(500..1_700).collect::<Vec<_>>())).unwrap();
        assert_eq!(e.distinct_persons(), Ok(1_700));
    }

    #[test]
    fn float_sums_overflow_as_postgresql_does() {
        let float4 = || Acc::Float4 { single: 0.0, double: 0.0, single_overflow: false };
        let mut s = KState::new(Acc::Float(0.0), 5, HeapEnv);
        s.add_float(f64::MAX).unwrap();
        assert_eq!(s.add_float(f64::MAX), Err(StateError::Overflow));
        let mut inf = KState::new(Acc::Float(0.0), 5, HeapEnv);
        inf.add_float(f64::INFINITY).unwrap();
        inf.add_float(1.0).unwrap();
        assert!(matches!(inf.acc, Acc::Float(v) if v == f64::INFINITY));
        // a real sum's overflow is remembered for k_sum; k_avg, in double, is unaffected
        let mut r = KState::new(float4(), 5, HeapEnv);
        r.add_float4(f32::MAX).unwrap();
        r.add_float4(f32::MAX).unwrap();
        assert!(matches!(r.acc, Acc::Float4 { single_overflow: true, .. }));
        let mut merged = KState::new(float4(), 5, HeapEnv);
        merged.merge(&r).unwrap();
        assert!(matches!(merged.acc, Acc::Float4 { single_overflow: true, .. }));
        // real sums in single precision, averages in double, as sum(real) and avg(real)
        let mut q = KState::new(float4(), 5, HeapEnv);
        for _ in 0..10 {
            q.add_float4(0.1).unwrap();
        }
        let Acc::Float4 { single, double, .. } = q.acc else { unreachable!() };
        assert_eq!(single, (0..10).fold(0.0f32, |a, _| a + 0.1f32));
        assert_eq!(double, (0..10).fold(0.0f64, |a, _| a + f64::from(0.1f32)));
        let back = State::decode(&encode_vec(&mut q), HeapEnv).unwrap();
        assert!(same_acc(&back.acc, &q.acc));
    }

    #[test]
    fn encoding_round_trips_and_is_pinned() {
        let mut s = capped(5, &[7, 3]);
        let bytes = encode_vec(&mut s);
        assert_eq!(
            bytes,
            [
                1, 3, 5, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, // version, Int, cap 5, rows 2
                10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // sum 10 (i128)
                2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0 // persons 7, 3
            ]
        );
        assert_eq!(encode_vec(&mut State::decode(&bytes, HeapEnv).unwrap()), bytes);
        let mut n = KState::new(Acc::Numeric(Decimal::new(HeapEnv)), 3, HeapEnv);
        add_numeric(&mut n, "-1.5");
        n.add_person(1).unwrap();
        let nb = encode_vec(&mut n);
        assert_eq!(
            nb,
            [
                1, 5, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, // version, Numeric, cap 3, rows 1
                0, 1, 0, 0, 0, // no special value, scale 1
                0, 0, 0, 0, 1, 0, 0, 0, 15, 0, 0, 0, // no positive limbs, negative 15
                1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 // person 1
            ]
        );
        assert!(same_acc(&State::decode(&nb, HeapEnv).unwrap().acc, &n.acc));
        let mut d = KState::new(Acc::Distinct, 5, HeapEnv);
        for p in [9, 1, 9, 4] {
            d.add_person(p).unwrap();
        }
        let db = encode_vec(&mut d);
        assert_eq!(State::decode(&db, HeapEnv).unwrap().persons(), &[1, 4, 9]);
    }

    #[test]
    fn large_states_decode_with_interrupt_checks() {
        let mut d = KState::new(Acc::Distinct, 0, HeapEnv);
        for p in 0..(4 * CHUNK as u64) {
            d.add_person(p * 3).unwrap();
        }
        let bytes = encode_vec(&mut d);
        CHECKS.with(|c| c.set(0));
        let back = State::decode(&bytes, HeapEnv).unwrap();
        assert!(CHECKS.with(|c| c.get()) >= 4);
        assert_eq!(back.persons().len(), 4 * CHUNK);
    }

    #[test]
    fn malformed_bytes_are_refused() {
        let mut s = capped(3, &[1, 2, 3]);
        let good = encode_vec(&mut s);
        assert!(State::decode(&good, HeapEnv).is_ok());
        let mut cases: Vec<Vec<u8>> = vec![vec![], vec![2], good[..good.len() - 1].to_vec()];
        let mut extra = good.clone();
        extra.push(0);
        cases.push(extra);
        let mut version = good.clone();
        version[0] = 9;
        cases.push(version);
        let mut tag = good.clone();
        tag[1] = 77;
        cases.push(tag);
        // more persons than the cap: 3 persons, cap lowered to 2
        let mut over = encode_vec(&mut capped(5, &[1, 2, 3]));
        over[2] = 2;
        cases.push(over);
        // a full state that lists its persons (a full one lists none)
        let mut listed = encode_vec(&mut capped(5, &[1, 2, 3]));
        listed[2] = 3;
        cases.push(listed);
        // fewer persons than the cap, none listed
        let mut unlisted = good.clone();
        unlisted[2] = 4;
        cases.push(unlisted);
        // a duplicated person, to claim two persons with one
        let mut dup = encode_vec(&mut capped(5, &[1, 2]));
        let n = dup.len();
        let first: Vec<u8> = dup[n - 16..n - 8].to_vec();
        dup[n - 8..].copy_from_slice(&first);
        cases.push(dup);
        // k_count_distinct persons out of order, or repeated
        let mut d = KState::new(Acc::Distinct, 0, HeapEnv);
        d.add_person(1).unwrap();
        d.add_person(2).unwrap();
        let db = encode_vec(&mut d);
        let n = db.len();
        let mut swapped = db.clone();
        swapped[n - 16..n - 8].copy_from_slice(&2u64.to_le_bytes());
        swapped[n - 8..].copy_from_slice(&1u64.to_le_bytes());
        cases.push(swapped);
        let mut repeated = db.clone();
        repeated[n - 8..].copy_from_slice(&1u64.to_le_bytes());
        cases.push(repeated);
        for bytes in cases {
            assert_eq!(
                State::decode(&bytes, HeapEnv).err(),
                Some(StateError::Malformed),
                "{bytes:?}"
            );
        }
        // states of different kinds do not merge
        let mut a = KState::new(Acc::Distinct, 0, HeapEnv);
        assert_eq!(a.merge(&capped(5, &[1])), Err(StateError::Mismatch));
    }

    #[test]
    fn full_states_carry_no_persons() {
        let mut full = capped(3, &[1, 2, 3, 2]);
        assert!(full.saturated() && full.persons().is_empty());
        let bytes = encode_vec(&mut full);
        let mut expect = vec![1, 3, 3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]; // cap 3, rows 4
        expect.extend_from_slice(&8i128.to_le_bytes());
        expect.extend_from_slice(&3u32.to_le_bytes()); // 3 persons, none listed
        assert_eq!(bytes, expect);
        let mut back = State::decode(&bytes, HeapEnv).unwrap();
        assert!(back.saturated() && back.persons().is_empty());
        assert_eq!(back.distinct_persons(), Ok(3));
        assert_eq!(encode_vec(&mut back), bytes);
        // two short states whose persons together reach the cap
        let mut a = capped(5, &[1, 2, 3]);
        a.merge(&capped(5, &[3, 4, 5])).unwrap();
        assert!(a.saturated() && a.persons().is_empty());
        assert_eq!(a.distinct_persons(), Ok(5));
        let mut b = capped(5, &[1, 2, 3]);
        b.merge(&capped(5, &[3, 2])).unwrap();
        assert!(!b.saturated());
        assert_eq!(b.distinct_persons(), Ok(3));
        // a short state and a full one, either way round
        let mut c = capped(5, &[1]);
        c.merge(&capped(5, &[6, 7, 8, 9, 10])).unwrap();
        assert!(c.saturated());
        let mut d = capped(5, &[6, 7, 8, 9, 10]);
        d.merge(&capped(5, &[1])).unwrap();
        assert!(d.saturated());
        assert_eq!((c.rows, d.rows), (6, 6));
        assert!(same_acc(&c.acc, &d.acc));
        // a smaller cap from another state: full at it
        let mut e = capped(5, &[1, 2, 3, 4]);
        e.merge(&capped(3, &[7])).unwrap();
        assert!(e.saturated() && e.cap() == 3);
        assert_eq!(e.distinct_persons(), Ok(3));
        let mut f = capped(5, &[1]);
        f.merge(&capped(3, &[7, 8, 9])).unwrap();
        assert!(f.saturated() && f.cap() == 3);
        let mut g = capped(5, &[1]);
        g.merge(&capped(3, &[1, 2])).unwrap();
        assert!(!g.saturated());
        assert_eq!(g.distinct_persons(), Ok(2));
    }

    #[test]
    fn a_state_capped_below_k_cannot_answer() {
        // capped at 5: for k = 10 an error, full or not (the error must not tell a group of
        // 5 persons from one of 3); at or below 5 the answer
        let mut full = capped(5, &[1, 2, 3, 4, 5]);
        assert_eq!(full.meets(10), Err(StateError::CappedBelowK { cap: 5, k: 10 }));
        assert_eq!(full.meets(5), Ok(true));
        assert_eq!(full.meets(3), Ok(true));
        let mut short = capped(5, &[1, 2, 3]);
        assert_eq!(short.meets(10), Err(StateError::CappedBelowK { cap: 5, k: 10 }));
        assert_eq!(short.meets(5), Ok(false));
        assert_eq!(short.meets(3), Ok(true));
    }
}
