//! The state of the k-anonymity-checked aggregates, with no PostgreSQL types in it: update,
//! merge (associative and commutative), the k test, and the byte encoding of partial states.
//!
//! Persons are 64-bit hashes (xxh3, see `person_hash`). Two persons can only ever share a hash
//! and be counted once, never the reverse, so a collision can only undercount persons: it
//! makes a group more likely to be suppressed, never less.

use std::fmt;

pub use super::decimal::Decimal;

/// What the aggregate accumulates besides the persons.
#[derive(Clone, Debug, PartialEq)]
pub enum Acc {
    /// k_count: rows only.
    Count,
    /// k_count_distinct: the persons are the result.
    Distinct,
    /// k_sum / k_avg over smallint, integer, bigint: exact in 128 bits (2^63 rows of 2^63).
    Int(i128),
    /// k_sum / k_avg over double precision.
    Float(f64),
    /// k_sum / k_avg over real: PostgreSQL sums real in single precision (float4pl) but
    /// averages it in double (float4_accum), so both are kept. An overflow of the single
    /// sum is an error for k_sum only, so it is remembered, not raised, here.
    Float4 { single: f32, double: f64, single_overflow: bool },
    /// k_sum / k_avg over numeric: exact, of any size (decimal.rs).
    Numeric(Decimal),
}

impl Acc {
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// The Rust heap could not grow (k_count_distinct's persons).
    OutOfMemory,
    /// A sum does not fit its type (a float sum overflowing to infinity, a sum of smallint or
    /// integer beyond bigint, of bigint beyond 2^127).
    Overflow,
    /// Partial-state bytes that this version did not write.
    Malformed,
    /// Inputs of two different kinds were merged (a bug, or forged bytes).
    Mismatch,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateError::OutOfMemory => "out of memory",
            StateError::Overflow => "value out of range",
            StateError::Malformed => "malformed partial aggregate state",
            StateError::Mismatch => "partial aggregate states of different kinds",
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

/// The state of one group.
#[derive(Clone, Debug, PartialEq)]
pub struct KState {
    /// For the capped aggregates (k_count, k_sum, k_avg): the k in force when the state was
    /// made; at most this many persons are remembered, since k distinct persons are enough to
    /// meet the threshold. 0 for k_count_distinct, which remembers every person.
    pub cap: u32,
    /// Person hashes: distinct for the capped aggregates; for k_count_distinct, sorted and
    /// distinct up to `sorted`, then appended as they come (sorted and deduplicated in bulk,
    /// which keeps the per-row work a sequential write: see `add_person`).
    pub persons: Vec<u64>,
    sorted: usize,
    /// Rows that contributed (person and value both non-NULL).
    pub rows: i64,
    pub acc: Acc,
}

const VERSION: u8 = 1;

impl KState {
    pub fn new(acc: Acc, cap: u32) -> KState {
        let cap = if matches!(acc, Acc::Distinct) { 0 } else { cap };
        KState { cap, persons: Vec::new(), sorted: 0, rows: 0, acc }
    }

    /// True once the capped aggregates have seen `cap` distinct persons: then nothing more
    /// about persons needs to be remembered, and the caller can skip hashing them.
    #[inline]
    pub fn saturated(&self) -> bool {
        self.cap > 0 && self.persons.len() >= self.cap as usize
    }

    /// Adds a person. Only k_count_distinct's list grows without bound; it is grown with
    /// `try_reserve`, so that running out of memory is an ERROR, not an abort of the server
    /// process (Rust's default reaction to a failed allocation).
    #[inline]
    pub fn add_person(&mut self, hash: u64) -> Result<(), StateError> {
        if self.cap == 0 {
            self.persons.try_reserve(1).map_err(|_| StateError::OutOfMemory)?;
            self.persons.push(hash);
            // Compact when the unsorted tail outgrows the sorted part: amortized O(log n)
            // per row, and memory stays within about twice the distinct persons.
            if self.persons.len() >= 2 * self.sorted + 1024 {
                self.compact();
            }
        } else if !self.saturated() && !self.persons.contains(&hash) {
            self.persons.push(hash);
        }
        Ok(())
    }

    /// Sorts and deduplicates the k_count_distinct persons.
    pub fn compact(&mut self) {
        if self.cap == 0 && self.sorted < self.persons.len() {
            self.persons.sort_unstable();
            self.persons.dedup();
            self.sorted = self.persons.len();
        }
    }

    /// Adds one row's value (the person is added separately).
    pub fn add_int(&mut self, v: i64) -> Result<(), StateError> {
        if let Acc::Int(s) = &mut self.acc {
            *s = s.checked_add(i128::from(v)).ok_or(StateError::Overflow)?;
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

    pub fn add_numeric(&mut self, v: &Decimal) -> Result<(), StateError> {
        if let Acc::Numeric(s) = &mut self.acc {
            s.add(v)?;
        }
        self.rows += 1;
        Ok(())
    }

    pub fn add_row(&mut self) {
        self.rows += 1;
    }

    /// Merges `other` into `self`. Associative and commutative: the capped person count of a
    /// merge is min(cap, |persons of both|), whichever partial states it is built from.
    pub fn merge(&mut self, other: &KState) -> Result<(), StateError> {
        match (&mut self.acc, &other.acc) {
            (Acc::Count, Acc::Count) | (Acc::Distinct, Acc::Distinct) => {}
            (Acc::Int(a), Acc::Int(b)) => *a = a.checked_add(*b).ok_or(StateError::Overflow)?,
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
            (Acc::Numeric(a), Acc::Numeric(b)) => a.add(b)?,
            _ => return Err(StateError::Mismatch),
        }
        self.rows = self.rows.checked_add(other.rows).ok_or(StateError::Overflow)?;
        if self.cap == 0 {
            self.persons.try_reserve(other.persons.len()).map_err(|_| StateError::OutOfMemory)?;
            self.persons.extend_from_slice(&other.persons);
            self.compact();
        } else {
            // A smaller cap from another worker still decides correctly for its own k.
            self.cap = self.cap.min(other.cap.max(1));
            for &p in &other.persons {
                self.add_person(p)?;
            }
            self.persons.truncate(self.cap as usize);
        }
        Ok(())
    }

    /// Distinct persons seen, capped for the capped aggregates.
    pub fn distinct_persons(&mut self) -> usize {
        self.compact();
        self.persons.len()
    }

    /// The k test: true when at least `k` distinct persons contributed.
    pub fn meets(&mut self, k: u32) -> bool {
        self.distinct_persons() >= k as usize
    }

    /// The partial state as bytes: a version byte, then the fields, little-endian.
    pub fn encode(&mut self) -> Vec<u8> {
        self.compact();
        let mut out = Vec::with_capacity(40 + 8 * self.persons.len());
        out.push(VERSION);
        out.push(self.acc.tag());
        out.extend_from_slice(&self.cap.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        match &self.acc {
            Acc::Count | Acc::Distinct => {}
            Acc::Int(s) => out.extend_from_slice(&s.to_le_bytes()),
            Acc::Float(s) => out.extend_from_slice(&s.to_le_bytes()),
            Acc::Float4 { single, double, single_overflow } => {
                out.extend_from_slice(&single.to_le_bytes());
                out.extend_from_slice(&double.to_le_bytes());
                out.push(u8::from(*single_overflow));
            }
            Acc::Numeric(d) => d.encode(&mut out),
        }
        // persons.len() is bounded by memory far below 2^32 entries of 8 bytes in a bytea
        // (1 GB): a state that large cannot be serialized by PostgreSQL anyway.
        out.extend_from_slice(&(self.persons.len() as u32).to_le_bytes());
        for p in &self.persons {
            out.extend_from_slice(&p.to_le_bytes());
        }
        out
    }

    /// Reads `encode`'s bytes back; anything else is `Malformed`.
    pub fn decode(bytes: &[u8]) -> Result<KState, StateError> {
        let mut r = Reader(bytes);
        if r.take::<1>()? != [VERSION] {
            return Err(StateError::Malformed);
        }
        let tag = r.take::<1>()?[0];
        let cap = u32::from_le_bytes(r.take()?);
        let rows = i64::from_le_bytes(r.take()?);
        let acc = match tag {
            1 => Acc::Count,
            2 => Acc::Distinct,
            3 => Acc::Int(i128::from_le_bytes(r.take()?)),
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
                let (d, rest) = Decimal::decode(r.0)?;
                r.0 = rest;
                Acc::Numeric(d)
            }
            _ => return Err(StateError::Malformed),
        };
        let n = u32::from_le_bytes(r.take()?) as usize;
        if rows < 0 || matches!(acc, Acc::Distinct) != (cap == 0) || r.0.len() != n * 8 {
            return Err(StateError::Malformed);
        }
        let persons: Vec<u64> =
            r.0.chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
        // Persons must be distinct (and, for k_count_distinct, sorted as encode leaves them),
        // and a capped state holds at most cap: forged bytes cannot claim more persons.
        let distinct_sorted = persons.windows(2).all(|w| w[0] < w[1]);
        let ok = if cap == 0 {
            distinct_sorted
        } else {
            persons.len() <= cap as usize && {
                let mut s = persons.clone();
                s.sort_unstable();
                s.windows(2).all(|w| w[0] < w[1])
            }
        };
        if !ok {
            return Err(StateError::Malformed);
        }
        let sorted = if cap == 0 { persons.len() } else { 0 };
        Ok(KState { cap, persons, sorted, rows, acc })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(StateError::Malformed)?;
        self.0 = rest;
        Ok(*head)
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
    use super::*;

    fn capped(cap: u32, persons: &[u64]) -> KState {
        let mut s = KState::new(Acc::Int(0), cap);
        for &p in persons {
            s.add_person(p).unwrap();
            s.add_int(p as i64).unwrap();
        }
        s
    }

    #[test]
    fn capped_state_remembers_at_most_k_persons() {
        let mut s = capped(5, &[1, 1, 2, 3, 3, 3, 4]);
        assert_eq!(s.distinct_persons(), 4);
        assert!(!s.meets(5));
        assert_eq!(s.rows, 7);
        for p in 5..1000 {
            s.add_person(p).unwrap();
        }
        assert_eq!(s.persons.len(), 5, "O(k) memory");
        assert!(s.saturated() && s.meets(5));
        assert!(!s.meets(6), "a cap below the current k cannot confirm it");
    }

    #[test]
    fn distinct_state_counts_exactly() {
        let mut s = KState::new(Acc::Distinct, 5);
        for i in 0..10_000u64 {
            s.add_person(i % 3_001).unwrap();
            s.add_row();
        }
        assert_eq!(s.distinct_persons(), 3_001);
        assert_eq!(s.rows, 10_000);
    }

    /// A small deterministic generator (no dependency needed for the property tests).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    fn random_states(rng: &mut Lcg, acc: &Acc, cap: u32, n: usize) -> Vec<KState> {
        (0..n)
            .map(|_| {
                let mut s = KState::new(acc.clone(), cap);
                for _ in 0..rng.next() % 12 {
                    let p = rng.next() % 9;
                    s.add_person(p).unwrap();
                    match acc {
                        Acc::Int(_) => s.add_int((rng.next() % 100) as i64 - 50).unwrap(),
                        Acc::Numeric(_) => s
                            .add_numeric(
                                // up to 60 digits: beyond 128 bits, scales apart
                                &Decimal::parse(&format!(
                                    "{}{}{}.{}",
                                    if rng.next().is_multiple_of(3) { "-" } else { "" },
                                    rng.next() % 99,
                                    "0".repeat((rng.next() % 45) as usize),
                                    "1".repeat((rng.next() % 15) as usize + 1)
                                ))
                                .unwrap(),
                            )
                            .unwrap(),
                        _ => s.add_row(),
                    }
                }
                s
            })
            .collect()
    }

    fn fold(states: &[KState], order: &[usize]) -> KState {
        let mut acc = KState::new(states[0].acc_zero(), states[0].cap);
        for &i in order {
            acc.merge(&states[i]).unwrap();
        }
        acc
    }

    impl KState {
        fn acc_zero(&self) -> Acc {
            match self.acc.clone() {
                Acc::Int(_) => Acc::Int(0),
                Acc::Float(_) => Acc::Float(0.0),
                Acc::Float4 { .. } => {
                    Acc::Float4 { single: 0.0, double: 0.0, single_overflow: false }
                }
                Acc::Numeric(_) => Acc::Numeric(Decimal::default()),
                a => a,
            }
        }
    }

    #[test]
    fn merge_is_associative_and_commutative() {
        let mut rng = Lcg(42);
        for acc in [Acc::Int(0), Acc::Distinct, Acc::Count, Acc::Numeric(Decimal::default())] {
            for _ in 0..200 {
                let states = random_states(&mut rng, &acc, 5, 6);
                let forward: Vec<usize> = (0..6).collect();
                let mut shuffled = forward.clone();
                for i in (1..6).rev() {
                    shuffled.swap(i, (rng.next() % (i as u64 + 1)) as usize);
                }
                let mut a = fold(&states, &forward);
                let mut b = fold(&states, &shuffled);
                // ((s0+s1)+(s2+s3))+(s4+s5): a different tree
                let mut left = fold(&states, &[0, 1]);
                left.merge(&fold(&states, &[2, 3])).unwrap();
                left.merge(&fold(&states, &[4, 5])).unwrap();
                assert_eq!(a.distinct_persons(), b.distinct_persons());
                assert_eq!(a.distinct_persons(), left.distinct_persons());
                assert_eq!(a.rows, b.rows);
                assert_eq!(a.acc, b.acc);
                assert_eq!(a.acc, left.acc);
                // and the same as one state fed every row
                let mut all: Vec<u64> = states.iter().flat_map(|s| s.persons.clone()).collect();
                all.sort_unstable();
                all.dedup();
                let expect = if acc == Acc::Distinct { all.len() } else { all.len().min(5) };
                if let (Acc::Numeric(x), Acc::Numeric(y)) = (&a.acc, &left.acc) {
                    assert_eq!(x.to_text(), y.to_text());
                }
                assert_eq!(a.distinct_persons(), expect);
            }
        }
    }

    #[test]
    fn float_sums_overflow_as_postgresql_does() {
        let mut s = KState::new(Acc::Float(0.0), 5);
        s.add_float(f64::MAX).unwrap();
        assert_eq!(s.add_float(f64::MAX), Err(StateError::Overflow));
        let mut inf = KState::new(Acc::Float(0.0), 5);
        inf.add_float(f64::INFINITY).unwrap();
        inf.add_float(1.0).unwrap();
        assert_eq!(inf.acc, Acc::Float(f64::INFINITY));
        // a real sum's overflow is remembered for k_sum; k_avg, in double, is unaffected
        let mut r =
            KState::new(Acc::Float4 { single: 0.0, double: 0.0, single_overflow: false }, 5);
        r.add_float4(f32::MAX).unwrap();
        r.add_float4(f32::MAX).unwrap();
        assert!(matches!(r.acc, Acc::Float4 { single_overflow: true, .. }));
        let mut merged =
            KState::new(Acc::Float4 { single: 0.0, double: 0.0, single_overflow: false }, 5);
        merged.merge(&r).unwrap();
        assert!(matches!(merged.acc, Acc::Float4 { single_overflow: true, .. }));
        // real sums in single precision, averages in double, as sum(real) and avg(real)
        let mut q =
            KState::new(Acc::Float4 { single: 0.0, double: 0.0, single_overflow: false }, 5);
        for _ in 0..10 {
            q.add_float4(0.1).unwrap();
        }
        let Acc::Float4 { single, double, .. } = q.acc else { unreachable!() };
        assert_eq!(single, (0..10).fold(0.0f32, |a, _| a + 0.1f32));
        assert_eq!(double, (0..10).fold(0.0f64, |a, _| a + f64::from(0.1f32)));
        let mut b = q.clone();
        let bytes = b.encode();
        assert_eq!(KState::decode(&bytes).unwrap().acc, q.acc);
    }

    #[test]
    fn encoding_round_trips_and_is_pinned() {
        let mut s = capped(5, &[7, 3]);
        let bytes = s.encode();
        assert_eq!(
            bytes,
            [
                1, 3, 5, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, // version, Int, cap 5, rows 2
                10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // sum 10 (i128)
                2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0 // persons 7, 3
            ]
        );
        assert_eq!(KState::decode(&bytes).unwrap().encode(), bytes);
        let mut n = KState::new(Acc::Numeric(Decimal::parse("-1.5").unwrap()), 3);
        n.add_person(1).unwrap();
        let nb = n.encode();
        assert_eq!(KState::decode(&nb).unwrap().acc, n.acc);
        let mut d = KState::new(Acc::Distinct, 5);
        for p in [9, 1, 9, 4] {
            d.add_person(p).unwrap();
        }
        let db = d.encode();
        assert_eq!(KState::decode(&db).unwrap().persons, vec![1, 4, 9]);
    }

    #[test]
    fn malformed_bytes_are_refused() {
        let mut s = capped(3, &[1, 2, 3]);
        let good = s.encode();
        assert!(KState::decode(&good).is_ok());
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
        let mut over = good.clone();
        over[2] = 2;
        cases.push(over);
        // a duplicated person, to claim two persons with one
        let mut dup = capped(5, &[1, 2]).encode();
        let n = dup.len();
        let first: Vec<u8> = dup[n - 16..n - 8].to_vec();
        dup[n - 8..].copy_from_slice(&first);
        cases.push(dup);
        for bytes in cases {
            assert_eq!(KState::decode(&bytes), Err(StateError::Malformed), "{bytes:?}");
        }
    }
}
