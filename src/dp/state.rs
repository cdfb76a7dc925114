//! The state of dp_sum and dp_avg, with no PostgreSQL types in it: each person's exact total
//! within the group, kept across rows and across parallel partial states, so that clamping
//! happens once, on the person's whole total, in the final function (SPEC: "combining partial
//! states must keep per-person totals exact before clamping"). Clamping each partial total
//! instead would let a person contribute up to `upper` once per partial state.
//!
//! The state is a hash table from person to total (open addressing over one flat array of
//! (person hash, total) pairs, at most 7/8 full) and a tail of rows not yet added to it:
//! rows are appended, and folded into the table in batches (`add` says why). Memory: 18 to 37
//! bytes per person for the table, plus a tail of as many rows as persons (16 bytes each). Totals are i64
//! (integer values: saturating, which changes nothing after clamping to bounds within ±2^52)
//! or f64 bits (real and numeric values, summed in double precision).
//!
//! Persons are the k-aggregates' 64-bit hashes: two persons sharing a hash (about one chance in
//! 10^9 per group of 100,000) would be one person with the sum of both totals, clamped once,
//! which lowers the sum and never raises any person's influence.

use crate::aggregates::buf::{Buf, Env, CHUNK};
use crate::aggregates::state::StateError;

const VERSION: u8 = 1;

/// How totals are summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// smallint, integer, bigint values: i64 totals.
    Int,
    /// real, double precision and numeric values: f64 totals.
    Float,
}

impl Kind {
    fn add(self, a: u64, b: u64) -> u64 {
        match self {
            Kind::Int => (a as i64).saturating_add(b as i64) as u64,
            Kind::Float => (f64::from_bits(a) + f64::from_bits(b)).to_bits(),
        }
    }
}

/// The clamping bounds as the aggregate was called with them (constants of the query).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bounds {
    Int { lower: i64, upper: i64 },
    Float { lower: f64, upper: f64 },
}

impl Bounds {
    fn tag(self) -> u8 {
        match self {
            Bounds::Int { .. } => 1,
            Bounds::Float { .. } => 2,
        }
    }

    fn words(self) -> [u64; 2] {
        match self {
            Bounds::Int { lower, upper } => [lower as u64, upper as u64],
            Bounds::Float { lower, upper } => [lower.to_bits(), upper.to_bits()],
        }
    }

    /// The sensitivity of the clamped sum: what one person can move it by, max(|lower|, |upper|).
    pub fn sensitivity(self) -> f64 {
        match self {
            Bounds::Int { lower, upper } => lower.unsigned_abs().max(upper.unsigned_abs()) as f64,
            Bounds::Float { lower, upper } => lower.abs().max(upper.abs()),
        }
    }
}

/// Bounds that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BoundsError {
    /// A real bound that is NaN or infinite.
    NotFinite,
    /// lower > upper.
    Reversed,
    /// An integer bound beyond ±2^52 (the noise's scale must stay within noise.rs MAX_SCALE).
    TooLarge,
    /// Real bounds whose larger magnitude is not 0 but below 2^-1000.
    TooSmall,
    /// A NULL bound.
    Null,
    /// A bound that is not a constant of the query (it could differ from row to row).
    NotConstant,
}

/// The smallest non-zero sensitivity of real bounds: 2^-1000.
pub const MIN_REAL_BOUND: f64 = 9.332636185032189e-302;

/// The largest integer bound: ±2^52.
pub const MAX_INT_BOUND: i64 = 1 << 52;

/// Checks float bounds (integer bounds can only be reversed).
pub fn float_bounds(lower: f64, upper: f64) -> Result<Bounds, BoundsError> {
    if !lower.is_finite() || !upper.is_finite() {
        return Err(BoundsError::NotFinite);
    }
    // The grid step 2^(⌊log2 Δ⌋ − 20) must be a normal double (noise.rs, `grid_step`).
    let delta = lower.abs().max(upper.abs());
    if delta != 0.0 && delta < MIN_REAL_BOUND {
        return Err(BoundsError::TooSmall);
    }
    if lower > upper {
        return Err(BoundsError::Reversed);
    }
    Ok(Bounds::Float { lower, upper })
}

pub fn int_bounds(lower: i64, upper: i64) -> Result<Bounds, BoundsError> {
    if lower.unsigned_abs() > MAX_INT_BOUND as u64 || upper.unsigned_abs() > MAX_INT_BOUND as u64 {
        return Err(BoundsError::TooLarge);
    }
    if lower > upper {
        return Err(BoundsError::Reversed);
    }
    Ok(Bounds::Int { lower, upper })
}

/// In C order, what every row touches first (`add`: the tail), so that in its expanded object
/// (aggregates/expanded.rs) a row reads the object's first two cache lines only.
#[repr(C)]
pub struct DpState<E: Env> {
    /// Rows not yet in the table, [hash, value] pairs in arrival order.
    tail: Buf<E>,
    /// Persons in the table.
    persons: usize,
    /// The persons' totals so far: an open-addressing table of [hash, total] slots (a power of
    /// two of them, at most 7/8 full; hash 0 marks an empty slot), probed linearly from the
    /// hash's low bits. A full table keeps the state small (a thousand groups' tables must
    /// stay within work_mem); a lookup still reads about three slots, mostly in one cache line.
    table: Buf<E>,
    pub bounds: Bounds,
}

/// Slots of a new table.
const FIRST_SLOTS: usize = 16;
/// How many rows ahead `flush` prefetches table slots: about a memory latency's worth of
/// inserts.
const PREFETCH_AHEAD: usize = 8;

/// Hash 0 marks an empty slot, so a person whose hash is 0 is stored as 1: it can then share
/// a total with the person whose hash is 1 (one chance in 2^63), which only merges two
/// persons, as any hash collision does.
#[inline]
fn key(hash: u64) -> u64 {
    hash.max(1)
}

impl<E: Env> DpState<E> {
    pub fn new(bounds: Bounds, env: E) -> DpState<E> {
        DpState { tail: Buf::new(env), persons: 0, table: Buf::new(env), bounds }
    }

    fn kind(&self) -> Kind {
        match self.bounds {
            Bounds::Int { .. } => Kind::Int,
            Bounds::Float { .. } => Kind::Float,
        }
    }

    fn slots(&self) -> usize {
        self.table.len() / 2
    }

    /// Adds one row: the person's hash and the value (i64 or f64 bits, as the bounds' kind).
    /// The row is appended to the tail (a sequential write); when the tail holds as many rows
    /// as the table persons (at least 16), it is folded into the table in one pass, while the
    /// group's table is in the processor's cache: probing the table row by row instead, each
    /// probe a likely cache miss across a thousand groups, made dp_sum a third slower, and
    /// sorting the rows (as k_count_distinct does) a fifth (docs/benchmarks.md).
    #[inline]
    pub fn add(&mut self, hash: u64, value: u64) -> Result<(), StateError> {
        if self.tail.len() == self.tail.capacity() {
            let want = 2 * self.persons.max(16);
            if self.tail.len() >= want {
                self.flush()?;
            } else {
                self.tail.reserve_exact(want - self.tail.len())?;
            }
        }
        self.tail.push(key(hash))?;
        self.tail.push(value)
    }

    /// Folds the tail into the table.
    fn flush(&mut self) -> Result<(), StateError> {
        let env = self.tail.env();
        let tail = std::mem::replace(&mut self.tail, Buf::new(env));
        let rows = tail.as_chunks::<2>().0;
        for (n, pair) in rows.iter().enumerate() {
            // The table was last touched a whole batch ago and is likely out of the cache:
            // ask for the slot of a row a few places ahead while this one is added.
            if let Some(ahead) = rows.get(n + PREFETCH_AHEAD) {
                self.prefetch(ahead[0]);
            }
            self.insert(pair[0], pair[1])?;
            if n % CHUNK == CHUNK - 1 {
                env.check_interrupts();
            }
        }
        // the tail's memory is kept for the next rows
        self.tail = tail;
        self.tail.truncate(0);
        Ok(())
    }

    /// Hints the processor to load the slot where `k` starts its probe.
    #[inline]
    fn prefetch(&self, k: u64) {
        #[cfg(target_arch = "x86_64")]
        if self.slots() > 0 {
            let i = (k as usize) & (self.slots() - 1);
            let p = self.table.as_ptr().wrapping_add(2 * i);
            // SAFETY: a prefetch is only a hint; it never faults, even on a bad address, and
            // this one is inside the table.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = k;
    }

    /// Adds `value` to the table's total for `k` (a key: never 0).
    #[inline]
    fn insert(&mut self, k: u64, value: u64) -> Result<(), StateError> {
        if 8 * (self.persons + 1) > 7 * self.slots() {
            self.grow()?;
        }
        let kind = self.kind();
        let mask = self.slots() - 1;
        let slots = self.table.as_chunks_mut::<2>().0;
        let mut i = (k as usize) & mask;
        loop {
            let slot = &mut slots[i];
            if slot[0] == k {
                slot[1] = kind.add(slot[1], value);
                return Ok(());
            }
            if slot[0] == 0 {
                *slot = [k, value];
                self.persons += 1;
                return Ok(());
            }
            i = (i + 1) & mask;
        }
    }

    /// Doubles the table (or makes the first one), reinserting every person.
    fn grow(&mut self) -> Result<(), StateError> {
        let env = self.table.env();
        let slots = (2 * self.slots()).max(FIRST_SLOTS);
        let mut bigger = Buf::with_capacity(env, 2 * slots)?;
        bigger.resize(2 * slots)?;
        let old = std::mem::replace(&mut self.table, bigger);
        self.persons = 0;
        for (n, pair) in old.as_chunks::<2>().0.iter().enumerate() {
            if pair[0] != 0 {
                self.insert(pair[0], pair[1])?;
            }
            if n % CHUNK == CHUNK - 1 {
                env.check_interrupts();
            }
        }
        Ok(())
    }

    /// Merges another partial state in: its persons' totals (and rows) are added to this one's.
    pub fn merge(&mut self, other: &DpState<E>) -> Result<(), StateError> {
        if self.bounds != other.bounds {
            return Err(StateError::Mismatch);
        }
        let env = self.table.env();
        let theirs = other.table.as_chunks::<2>().0.iter().chain(other.tail.as_chunks::<2>().0);
        for (n, pair) in theirs.enumerate() {
            if pair[0] != 0 {
                self.insert(pair[0], pair[1])?;
            }
            if n % CHUNK == CHUNK - 1 {
                env.check_interrupts();
            }
        }
        Ok(())
    }

    /// A copy in `env`'s memory.
    pub fn copy_in<F: Env>(&self, env: F) -> Result<DpState<F>, StateError> {
        Ok(DpState {
            tail: self.tail.copy_in(env)?,
            persons: self.persons,
            table: self.table.copy_in(env)?,
            bounds: self.bounds,
        })
    }

    /// The table of persons' totals, with the tail folded in: [hash, total] slots, hash 0 for
    /// an empty one.
    pub fn table(&mut self) -> Result<&[u64], StateError> {
        self.flush()?;
        Ok(&self.table)
    }

    /// Each person's total, one pair [hash, total] per distinct person; real totals sorted by
    /// hash (their clamped sum is exact on the grid whatever the order, and integer sums are
    /// exact too, so the order is only kept where a reader may look at the pairs).
    pub fn persons(&mut self) -> Result<Buf<E>, StateError> {
        self.flush()?;
        let env = self.table.env();
        let mut out = Buf::with_capacity(env, 2 * self.persons)?;
        for pair in self.table.as_chunks::<2>().0 {
            if pair[0] != 0 {
                out.push(pair[0])?;
                out.push(pair[1])?;
            }
        }
        if matches!(self.bounds, Bounds::Float { .. }) {
            env.check_interrupts();
            out.as_chunks_mut::<2>().0.sort_unstable_by_key(|p| p[0]);
            env.check_interrupts();
        }
        Ok(out)
    }

    /// The distinct persons in the table (the tail not folded in).
    pub fn person_count(&self) -> usize {
        self.persons
    }

    /// The size of the partial state's bytes; folds the tail in, as `encode` needs.
    pub fn encoded_len(&mut self) -> Result<usize, StateError> {
        self.flush()?;
        Ok(2 + 16 + 8 + 16 * self.persons)
    }

    /// The partial state's bytes: version, bounds tag, the two bounds, the person count, the
    /// [hash, total] pairs (in table order); little-endian. `out` has `encoded_len()` bytes.
    pub fn encode(&self, out: &mut [u8]) {
        let env = self.table.env();
        let mut pos = 0;
        let mut put = |b: &[u8]| {
            out[pos..pos + b.len()].copy_from_slice(b);
            pos += b.len();
        };
        put(&[VERSION, self.bounds.tag()]);
        for w in self.bounds.words() {
            put(&w.to_le_bytes());
        }
        put(&(self.persons as u64).to_le_bytes());
        for (n, pair) in self.table.as_chunks::<2>().0.iter().enumerate() {
            if pair[0] != 0 {
                put(&pair[0].to_le_bytes());
                put(&pair[1].to_le_bytes());
            }
            if n % CHUNK == CHUNK - 1 {
                env.check_interrupts();
            }
        }
    }

    /// Reads `encode`'s bytes back; anything else is `Malformed`. The pairs are inserted one
    /// by one, so forged bytes (a repeated person, a hash of 0) cannot break the table.
    pub fn decode(bytes: &[u8], env: E) -> Result<DpState<E>, StateError> {
        let (bounds, pairs) = parse(bytes)?;
        let mut state = DpState::new(bounds, env);
        state.insert_pairs(pairs)?;
        Ok(state)
    }

    /// Merges the state that `encode`'s bytes hold, as `merge` merges a decoded one, without
    /// building its table first (a combine function given sealed bytes: a parallel leader's,
    /// a Citus coordinator's).
    pub fn merge_encoded(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let (bounds, pairs) = parse(bytes)?;
        if bounds != self.bounds {
            return Err(StateError::Mismatch);
        }
        self.insert_pairs(pairs)
    }

    /// Adds `encode`'s (hash, total) pairs to the table.
    fn insert_pairs(&mut self, pairs: &[u8]) -> Result<(), StateError> {
        let env = self.table.env();
        for (i, c) in pairs.chunks_exact(16).enumerate() {
            let mut h = [0u8; 8];
            let mut v = [0u8; 8];
            h.copy_from_slice(&c[..8]);
            v.copy_from_slice(&c[8..]);
            self.insert(key(u64::from_le_bytes(h)), u64::from_le_bytes(v))?;
            if i % CHUNK == CHUNK - 1 {
                env.check_interrupts();
            }
        }
        Ok(())
    }
}

/// `encode`'s bytes checked: the bounds, and the pairs' bytes (16 each, as many as the count
/// says); anything else is `Malformed`.
fn parse(bytes: &[u8]) -> Result<(Bounds, &[u8]), StateError> {
    let word = |i: usize| -> Result<u64, StateError> {
        let b = bytes.get(i..i + 8).ok_or(StateError::Malformed)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    };
    if bytes.len() < 26 || bytes[0] != VERSION {
        return Err(StateError::Malformed);
    }
    let (lower, upper) = (word(2)?, word(10)?);
    let bounds = match bytes[1] {
        1 => int_bounds(lower as i64, upper as i64),
        2 => float_bounds(f64::from_bits(lower), f64::from_bits(upper)),
        _ => return Err(StateError::Malformed),
    }
    .map_err(|_| StateError::Malformed)?;
    let n = usize::try_from(word(18)?).map_err(|_| StateError::Malformed)?;
    if n.checked_mul(16).and_then(|b| b.checked_add(26)) != Some(bytes.len()) {
        return Err(StateError::Malformed);
    }
    Ok((bounds, &bytes[26..]))
}

/// The sum of the persons' totals, each clamped to the bounds, exactly (i128 can hold 2^64
/// totals of 2^63): for integer values.
pub fn clamped_int_sum(persons: &[[u64; 2]], lower: i64, upper: i64) -> i128 {
    persons.iter().map(|p| i128::from((p[1] as i64).clamp(lower, upper))).sum()
}

/// A person's real total clamped to the bounds. NaN (a NaN value, or +∞ and −∞ in one total)
/// counts as 0 clamped to the bounds: an ERROR would tell the analyst that one person's data
/// holds a NaN, with certainty. Infinities clamp to the bound on their side.
pub fn clamp_real(total: f64, lower: f64, upper: f64) -> f64 {
    let t = if total.is_nan() { 0.0 } else { total };
    t.clamp(lower, upper)
}

/// The sum of the persons' clamped real totals in grid units (noise.rs, `grid_step`), exactly.
pub fn clamped_grid_sum(persons: &[[u64; 2]], lower: f64, upper: f64, g: f64) -> i128 {
    persons
        .iter()
        .map(|p| {
            let c = clamp_real(f64::from_bits(p[1]), lower, upper);
            i128::from(crate::dp::noise::grid_units(c, g))
        })
        .sum()
}

/// A numeric's value as the nearest double, or near it (the six leading base-10000 digits:
/// 24 decimal digits, more than a double holds); infinite beyond a double's range. Read from
/// the numeric's own bytes, with no call into the server per row.
pub fn numeric_f64(n: &crate::aggregates::numeric::NumericRef<'_>) -> f64 {
    use crate::aggregates::numeric::NumericRef;
    match n {
        NumericRef::NaN => f64::NAN,
        NumericRef::PosInf => f64::INFINITY,
        NumericRef::NegInf => f64::NEG_INFINITY,
        NumericRef::Finite(d) => {
            let mut acc = 0f64;
            let mut taken = 0i32;
            for digit in d.iter().take(6) {
                acc = acc * 10_000.0 + f64::from(digit);
                taken += 1;
            }
            if acc == 0.0 {
                return 0.0;
            }
            let exp = 4 * (d.weight - taken + 1);
            // 10^exp in two steps, so that an intermediate overflow or underflow of 10^exp
            // alone cannot spoil a representable result
            let v = acc * 10f64.powi(exp / 2) * 10f64.powi(exp - exp / 2);
            if d.negative {
                -v
            } else {
                v
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregates::buf::tests::HeapEnv;
    use std::collections::HashMap;

    type State = DpState<HeapEnv>;

    fn pairs(s: &mut State) -> &'static [[u64; 2]] {
        let b = s.persons().unwrap();
        Vec::leak(b.as_chunks::<2>().0.to_vec())
    }

    fn ints(rows: &[(u64, i64)]) -> State {
        let mut s = State::new(int_bounds(-5, 10).unwrap(), HeapEnv);
        for &(p, v) in rows {
            s.add(p, v as u64).unwrap();
        }
        s
    }

    /// The slow reference: a hash map of exact totals, then clamping.
    fn reference(rows: &[(u64, i64)], lower: i64, upper: i64) -> (usize, i128) {
        let mut m: HashMap<u64, i128> = HashMap::new();
        for &(p, v) in rows {
            *m.entry(p).or_default() += i128::from(v);
        }
        (m.len(), m.values().map(|t| (*t).clamp(lower.into(), upper.into())).sum())
    }

    fn rows(n: usize, persons: u64, seed: u64) -> Vec<(u64, i64)> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 33) % persons + 1, ((x >> 13) % 7) as i64 - 2)
            })
            .collect()
    }

    #[test]
    fn totals_are_per_person_then_clamped() {
        for (n, persons) in
            [(0, 1), (1, 1), (15, 3), (17, 3), (1000, 10), (5000, 4000), (100_000, 777)]
        {
            let rows = rows(n, persons, n as u64);
            let got = pairs(&mut ints(&rows)).to_vec();
            let (count, sum) = reference(&rows, -5, 10);
            assert_eq!(got.len(), count);
            assert!(got.windows(2).all(|w| w[0][0] < w[1][0]));
            assert_eq!(clamped_int_sum(&got, -5, 10), sum, "n={n}");
        }
    }

    #[test]
    fn merging_partials_keeps_totals_exact_before_clamping() {
        // one person with 8 in each of three partial states: the total 24 clamps to 10 once,
        // not to 8 + 8 + 8 (clamping partial totals would give 24)
        let parts: Vec<State> = (0..3).map(|_| ints(&[(42, 4), (42, 4)])).collect();
        let mut a = ints(&[]);
        for p in &parts {
            a.merge(p).unwrap();
        }
        assert_eq!(clamped_int_sum(pairs(&mut a), -5, 10), 10);
        // any split and merge order gives the reference
        let all = rows(20_000, 3000, 7);
        let (_, want) = reference(&all, -5, 10);
        for splits in [2usize, 3, 7] {
            let chunks: Vec<State> = all.chunks(all.len() / splits + 1).map(ints).collect();
            let mut fwd = ints(&[]);
            for c in &chunks {
                fwd.merge(c).unwrap();
            }
            let mut back = ints(&[]);
            for c in chunks.iter().rev() {
                back.merge(c).unwrap();
            }
            assert_eq!(clamped_int_sum(pairs(&mut fwd), -5, 10), want);
            assert_eq!(clamped_int_sum(pairs(&mut back), -5, 10), want);
        }
        let other = State::new(int_bounds(0, 10).unwrap(), HeapEnv);
        assert_eq!(a.merge(&other), Err(StateError::Mismatch));
    }

    #[test]
    fn memory_stays_within_four_pairs_per_person() {
        let mut s = ints(&[]);
        for i in 0..200_000u64 {
            s.add(i % 1000 + 1, 1).unwrap();
            assert!(s.slots() + s.tail.capacity() / 2 <= 4 * 1000);
        }
        assert_eq!(pairs(&mut s).len(), 1000);
        assert_eq!(s.slots(), 2048);
        assert_eq!(s.persons, 1000);
        // hash 0 is a person too: stored as 1
        s.add(0, 5).unwrap();
        assert_eq!(pairs(&mut s)[0], [1, 205]);
    }

    #[test]
    fn bytes_round_trip_and_forgeries_are_refused() {
        let mut s = ints(&rows(3000, 500, 3));
        let mut out = vec![0u8; s.encoded_len().unwrap()];
        s.encode(&mut out);
        // pinned header: version 1, integer bounds -5 and 10, then the pair count
        assert_eq!(&out[..2], &[1, 1]);
        assert_eq!(&out[2..10], &(-5i64).to_le_bytes());
        assert_eq!(&out[10..18], &10i64.to_le_bytes());
        let mut back = State::decode(&out, HeapEnv).unwrap();
        assert_eq!(pairs(&mut back), pairs(&mut s));
        assert_eq!(back.bounds, s.bounds);
        for bad in [&out[..out.len() - 1], &out[..25], &[2u8; 26][..]] {
            assert!(State::decode(bad, HeapEnv).is_err());
        }
        let mut reversed = out.clone();
        reversed[2..10].copy_from_slice(&20i64.to_le_bytes());
        assert_eq!(State::decode(&reversed, HeapEnv).err(), Some(StateError::Malformed));
        let mut nan = out.clone();
        nan[1] = 2;
        nan[2..10].copy_from_slice(&f64::NAN.to_bits().to_le_bytes());
        assert_eq!(State::decode(&nan, HeapEnv).err(), Some(StateError::Malformed));
        let mut count = out.clone();
        count[18..26].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(State::decode(&count, HeapEnv).err(), Some(StateError::Malformed));
    }

    #[test]
    fn merging_bytes_is_merging_the_decoded_state() {
        let all = rows(20_000, 3000, 11);
        let (_, want) = reference(&all, -5, 10);
        let (a, b) = all.split_at(7_000);
        let mut into = ints(a);
        let mut other = ints(b);
        let mut bytes = vec![0u8; other.encoded_len().unwrap()];
        other.encode(&mut bytes);
        into.merge_encoded(&bytes).unwrap();
        assert_eq!(clamped_int_sum(pairs(&mut into), -5, 10), want);
        // other bounds, or bytes that do not decode, change nothing and are refused
        let mut wide = State::new(int_bounds(-5, 11).unwrap(), HeapEnv);
        assert_eq!(wide.merge_encoded(&bytes), Err(StateError::Mismatch));
        assert_eq!(into.merge_encoded(&bytes[..bytes.len() - 1]), Err(StateError::Malformed));
        assert_eq!(clamped_int_sum(pairs(&mut into), -5, 10), want);
    }

    #[test]
    fn real_totals_clamp_and_nan_counts_as_zero() {
        let b = float_bounds(-1.0, 2.0).unwrap();
        let mut s = State::new(b, HeapEnv);
        for (p, v) in [
            (1, 0.5),
            (1, 0.75),
            (2, f64::NAN),
            (3, f64::INFINITY),
            (4, f64::NEG_INFINITY),
            (5, 100.0),
        ] {
            s.add(p, f64::to_bits(v)).unwrap();
        }
        let g = crate::dp::noise::grid_step(2.0).unwrap();
        // 1.25 + 0 + 2 − 1 + 2
        let units = clamped_grid_sum(pairs(&mut s), -1.0, 2.0, g);
        assert_eq!(units as f64 * g, 4.25);
        assert_eq!(float_bounds(1.0, 0.0), Err(BoundsError::Reversed));
        assert_eq!(float_bounds(f64::NEG_INFINITY, 0.0), Err(BoundsError::NotFinite));
        assert_eq!(float_bounds(0.0, 5e-324), Err(BoundsError::TooSmall));
        assert_eq!(MIN_REAL_BOUND, 2f64.powi(-1000));
        assert!(float_bounds(0.0, MIN_REAL_BOUND).is_ok() && float_bounds(0.0, 0.0).is_ok());
        assert!(crate::dp::noise::grid_step(MIN_REAL_BOUND).is_some_and(|g| g.is_normal()));
        assert_eq!(int_bounds(3, 2), Err(BoundsError::Reversed));
        assert_eq!(int_bounds(-MAX_INT_BOUND, 0).unwrap().sensitivity(), 2f64.powi(52));
        assert_eq!(int_bounds(i64::MIN, 0), Err(BoundsError::TooLarge));
        assert_eq!(int_bounds(0, MAX_INT_BOUND + 1), Err(BoundsError::TooLarge));
    }

    #[test]
    fn numerics_read_as_doubles() {
        use crate::aggregates::numeric::{self, tests::pg_numeric};
        let big = format!("1{}", "0".repeat(300));
        let small = format!("0.{}1", "0".repeat(299));
        for (text, want) in [
            ("0", 0.0),
            ("1", 1.0),
            ("-12345.678", -12345.678),
            ("0.000001", 1e-6),
            ("123456789012345678901234567890", 1.2345678901234568e29),
            (big.as_str(), 1e300),
            (small.as_str(), 1e-300),
        ] {
            let bytes = pg_numeric(text);
            let got = numeric_f64(&numeric::read(&bytes).unwrap());
            assert!((got - want).abs() <= want.abs() * 1e-15, "{text}: {got}");
        }
        let huge = pg_numeric(&format!("1{}", "0".repeat(400)));
        assert_eq!(numeric_f64(&numeric::read(&huge).unwrap()), f64::INFINITY);
    }
}
