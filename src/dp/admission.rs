//! Which groups of a dp aggregate call each person counts in: at most L of them
//! (`deident.dp_max_groups_per_person`), chosen from the person's own data alone.
//!
//! The first version let a person count in the first L groups the executor finalized. Under a
//! hash aggregate that order is the hash table's, which every other person's groups shape (the
//! table's size, its collisions): removing one person changed which groups many others counted
//! in (a hostile review saw 45 of 320 groups change). So the choice is now made over all of a
//! person's groups at once, before the first of them is finalized: a person in more groups
//! than the call still allows them counts in those whose key `pick_key(person, group)` is
//! smallest, where the group's hash is the hash of its grouping key (execGrouping.c computes
//! it from the key alone). Nothing in that choice depends on another person.
//!
//! That needs every group's persons before the first group is finalized, which a hash
//! aggregate that does not spill gives: its transitions all run before its first output
//! (nodeAgg.c, `agg_fill_hash_table`). So a grouped statement with dp aggregates is always
//! planned with a hash aggregate (grouping.rs), and that aggregate never spills to disk. A
//! plain aggregate (no GROUP BY) finalizes one group per scan: a person counts in it while
//! the call has counted them in fewer than L groups.
//!
//! The counts carry across rescans of the aggregate (a correlated subquery), so that over the
//! whole statement a person counts in at most L groups of each call, which is what the
//! statement was charged for (charge.rs).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::grouping::GroupingProblem;
use crate::error::DeidentError;

/// A hasher for keys that already are hashes (persons' hashes, state addresses): one
/// splitmix64 round over the key mixed with a secret of the process. The persons' hashes are
/// xxh3 of their values, which whoever chooses an identifier (an e-mail address) could shape
/// so that many share their low bits, and pile up in one corner of a map; the secret stops
/// that.
#[derive(Default)]
pub struct Mixer(u64);

fn process_secret() -> u64 {
    static SECRET: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // std's RandomState is seeded from the operating system's randomness
    *SECRET.get_or_init(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0x6465_6964_656e_7444_u64)
    })
}

#[inline]
fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Hasher for Mixer {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
        self.0 = splitmix(self.0 ^ process_secret());
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = splitmix(v ^ process_secret());
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<Mixer>>;

/// Memory ran out: the maps below are the process heap's, not PostgreSQL's, and allocate
/// only through `try_reserve`, so that running out is an ERROR, never an abort of the server
/// process (which would restart every session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoMemory;

fn reserve<K: Eq + std::hash::Hash, V>(m: &mut Map<K, V>, n: usize) -> Result<(), NoMemory> {
    m.try_reserve(n).map_err(|_| NoMemory)
}

/// The order in which a person's groups are chosen: a mix of the person's hash and the
/// group's (splitmix64's finalizer), so that persons do not all favour the same groups. It
/// needs no secret: it only has to depend on nothing but the person's own data.
#[inline]
pub fn pick_key(person: u64, group: u32) -> u64 {
    splitmix(person ^ u64::from(group).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The persons of a group's entries (`stride` words each, the person first; in pairs, a 0 is
/// an empty slot).
fn persons_of(persons: &[u64], stride: usize) -> impl Iterator<Item = u64> + '_ {
    persons.chunks_exact(stride).map(|c| c[0]).filter(move |&p| stride == 1 || p != 0)
}

/// Keeps at the front of `persons` (entries of `stride` words, the person first) those for
/// whose person `keep` says yes, in order; returns how many.
fn retain_entries(persons: &mut [u64], stride: usize, mut keep: impl FnMut(u64) -> bool) -> usize {
    let mut w = 0;
    for r in 0..persons.len() / stride {
        if keep(persons[r * stride]) {
            persons.copy_within(r * stride..(r + 1) * stride, w * stride);
            w += 1;
        }
    }
    w
}

/// One pass of a hash aggregate over its groups: what each person may count in.
#[derive(Debug, Default)]
pub struct Pass {
    /// The groups of the pass, by their state's address: the group's hash, and whether the
    /// group has been finalized in this pass.
    groups: Map<usize, (u32, bool)>,
    /// Persons in more groups than the call still allowed them: they count where their
    /// `pick_key` is below this cut (0: nowhere). Everyone else counts in all their groups.
    cuts: Map<u64, u64>,
}

/// How many groups of one dp aggregate call each person has counted in so far in the
/// statement, and the pass under way.
#[derive(Debug)]
pub struct Admission {
    limit: u32,
    used: Map<u64, u32>,
    pass: Option<Pass>,
    /// A callback on the hash table's memory will end the pass (server side).
    armed: bool,
}

impl Admission {
    pub fn new(limit: u32) -> Admission {
        Admission { limit, used: Map::default(), pass: None, armed: false }
    }

    /// A plain aggregate's one group: may `person` count in it? Each person comes once per
    /// group (the states hold distinct persons).
    pub fn admit_plain(&mut self, person: u64) -> Result<bool, NoMemory> {
        reserve(&mut self.used, 1)?;
        let n = self.used.entry(person).or_insert(0);
        if *n >= self.limit {
            return Ok(false);
        }
        *n += 1;
        Ok(true)
    }

    /// Is a pass under way that has not finalized the group at `state` yet? If not, the
    /// caller starts one (`begin_pass`) before finalizing it.
    pub fn in_pass(&self, state: usize) -> bool {
        self.pass.as_ref().is_some_and(|p| p.groups.get(&state).is_some_and(|&(_, done)| !done))
    }

    /// The hash table was reset (a rescan): its groups are gone.
    pub fn end_pass(&mut self) {
        self.pass = None;
    }

    /// Starts a pass over a hash aggregate's groups: `groups` calls its argument once per
    /// group with the group's state address, its hash, and its persons (distinct; entries of
    /// `stride` words, the person's hash first; in pairs, a 0 is an empty slot of a table).
    /// Chooses, for each person in more groups than the call still allows, the ones they
    /// count in, and adds to each person's count the groups they will count in.
    pub fn begin_pass(
        &mut self,
        mut groups: impl FnMut(&mut dyn FnMut(usize, u32, &[u64], usize)),
    ) -> Result<(), NoMemory> {
        let mut pass = Pass::default();
        // 1. each person's groups in this pass (the maps sized first: no growth below)
        let (mut entries, mut n_groups) = (0, 0);
        groups(&mut |_, _, persons, stride| {
            entries += persons.len() / stride;
            n_groups += 1;
        });
        reserve(&mut pass.groups, n_groups)?;
        let mut seen: Map<u64, u32> = Map::default();
        reserve(&mut seen, entries)?;
        groups(&mut |state, hash, persons, stride| {
            pass.groups.insert(state, (hash, false));
            for p in persons_of(persons, stride) {
                *seen.entry(p).or_insert(0) += 1;
            }
        });
        // 2. for those in more than they have left, their keys
        let limit = self.limit;
        let left =
            |used: &Map<u64, u32>, p: &u64| limit.saturating_sub(used.get(p).copied().unwrap_or(0));
        let n_over = seen.iter().filter(|&(p, &n)| n > left(&self.used, p)).count();
        let mut keys: Map<u64, Vec<u64>> = Map::default();
        reserve(&mut keys, n_over)?;
        for (&p, &n) in &seen {
            if n > left(&self.used, &p) {
                let mut k = Vec::new();
                k.try_reserve_exact(n as usize).map_err(|_| NoMemory)?;
                keys.insert(p, k);
            }
        }
        if !keys.is_empty() {
            groups(&mut |_, hash, persons, stride| {
                for p in persons_of(persons, stride) {
                    if let Some(k) = keys.get_mut(&p) {
                        k.push(pick_key(p, hash));
                    }
                }
            });
        }
        // 3. the cuts: count where the key is below the (left+1)-th smallest; keys equal at
        // the edge (two groups of one hash) count nowhere, so never more than `left`
        reserve(&mut pass.cuts, keys.len())?;
        for (&p, k) in &mut keys {
            let left = left(&self.used, &p) as usize;
            k.sort_unstable();
            let cut = if left == 0 { 0 } else { k[left] };
            let counted = k.iter().take_while(|&&x| x < cut).count() as u32;
            seen.insert(p, counted);
            pass.cuts.insert(p, cut);
        }
        // 4. what each person will have counted in after this pass (`seen` now holds this
        // pass's counts; on the first pass it becomes the counts)
        if self.used.is_empty() {
            self.used = seen;
        } else {
            reserve(&mut self.used, seen.len())?;
            for (p, n) in seen {
                *self.used.entry(p).or_insert(0) += n;
            }
        }
        self.pass = Some(pass);
        Ok(())
    }

    /// Finalizing the group at `state` in the pass under way: keeps in `persons` (pairs or
    /// single hashes, `stride` words each, the person first) those who count in it; returns
    /// how many entries are kept at the front.
    pub fn admit_group(&mut self, state: usize, persons: &mut [u64], stride: usize) -> usize {
        let Some(pass) = self.pass.as_mut() else { return 0 };
        let Some(entry) = pass.groups.get_mut(&state) else { return 0 };
        entry.1 = true;
        let hash = entry.0;
        if pass.cuts.is_empty() {
            return persons.len() / stride;
        }
        retain_entries(persons, stride, |p| match pass.cuts.get(&p) {
            None => true,
            Some(&cut) => pick_key(p, hash) < cut,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups as (state address, group hash, persons).
    type Groups = Vec<(usize, u32, Vec<u64>)>;

    /// Runs one pass and finalizes the groups in the given order; who counted where.
    fn run(adm: &mut Admission, groups: &Groups, order: &[usize]) -> Vec<(u32, Vec<u64>)> {
        adm.begin_pass(|f| {
            for (s, h, p) in groups {
                f(*s, *h, p, 1);
            }
        })
        .unwrap();
        let mut out = Vec::new();
        for &i in order {
            let (s, h, p) = &groups[i];
            assert!(adm.in_pass(*s));
            let mut v = p.clone();
            let n = adm.admit_group(*s, &mut v, 1);
            v.truncate(n);
            v.sort_unstable();
            out.push((*h, v));
            assert!(!adm.in_pass(*s));
        }
        out.sort_unstable();
        out
    }

    fn groups(n_groups: usize, persons: u64, per_person: usize) -> Groups {
        let mut g: Groups =
            (0..n_groups).map(|i| (1000 + 64 * i, (i as u32) * 7 + 1, Vec::new())).collect();
        for p in 1..=persons {
            for j in 0..per_person {
                let i = (p as usize * 31 + j * 17) % n_groups;
                if !g[i].2.contains(&p) {
                    g[i].2.push(p);
                }
            }
        }
        g
    }

    #[test]
    fn a_person_counts_in_at_most_l_groups() {
        for limit in [1, 2, 5] {
            let g = groups(40, 300, 6);
            let mut adm = Admission::new(limit);
            let order: Vec<usize> = (0..g.len()).collect();
            let out = run(&mut adm, &g, &order);
            for p in 1..=300u64 {
                let mine = g.iter().filter(|(_, _, ps)| ps.contains(&p)).count();
                let counted = out.iter().filter(|(_, ps)| ps.contains(&p)).count();
                assert_eq!(counted, mine.min(limit as usize), "person {p} at L = {limit}");
            }
        }
    }

    #[test]
    fn the_choice_does_not_depend_on_order_or_on_other_persons() {
        let g = groups(40, 300, 6);
        let forward: Vec<usize> = (0..g.len()).collect();
        let backward: Vec<usize> = (0..g.len()).rev().collect();
        let a = run(&mut Admission::new(2), &g, &forward);
        let b = run(&mut Admission::new(2), &g, &backward);
        assert_eq!(a, b);
        // without person 7, everyone else counts exactly where they did
        let mut without: Groups = g.clone();
        for (_, _, ps) in &mut without {
            ps.retain(|&p| p != 7);
        }
        let c = run(&mut Admission::new(2), &without, &backward);
        let strip = |v: &[(u32, Vec<u64>)]| -> Vec<(u32, Vec<u64>)> {
            v.iter().map(|(h, ps)| (*h, ps.iter().copied().filter(|&p| p != 7).collect())).collect()
        };
        assert_eq!(strip(&a), c);
    }

    #[test]
    fn counts_carry_across_passes() {
        let g = groups(10, 50, 3);
        let order: Vec<usize> = (0..g.len()).collect();
        let mut adm = Admission::new(4);
        let first = run(&mut adm, &g, &order);
        let second = run(&mut adm, &g, &order);
        for p in 1..=50u64 {
            let a = first.iter().filter(|(_, ps)| ps.contains(&p)).count();
            let b = second.iter().filter(|(_, ps)| ps.contains(&p)).count();
            assert_eq!((a, b), (3, 1), "person {p}");
        }
        // a third pass: nothing left
        let third = run(&mut adm, &g, &order);
        assert!(third.iter().all(|(_, ps)| ps.is_empty()));
    }

    #[test]
    fn tied_keys_at_the_edge_count_nowhere() {
        // two groups with one hash: the person's keys tie; with L = 1 neither may count
        let g: Groups = vec![(8, 5, vec![1]), (16, 5, vec![1]), (24, 6, vec![2])];
        let out = run(&mut Admission::new(1), &g, &[0, 1, 2]);
        let counted: usize = out.iter().map(|(_, ps)| ps.iter().filter(|&&p| p == 1).count()).sum();
        let k5 = pick_key(1, 5);
        let k6 = pick_key(1, 6);
        assert_ne!(k5, k6);
        assert_eq!(counted, 0);
        assert_eq!(out.iter().filter(|(_, ps)| ps.contains(&2)).count(), 1);
    }

    #[test]
    fn pairs_keep_their_totals() {
        let g: Groups = vec![(8, 1, vec![1, 2]), (16, 2, vec![1])];
        let mut adm = Admission::new(1);
        adm.begin_pass(|f| {
            for (s, h, p) in &g {
                f(*s, *h, p, 1);
            }
        })
        .unwrap();
        let mut a = vec![1, 10, 2, 20];
        let n = adm.admit_group(8, &mut a, 2);
        let mut b = vec![1, 30];
        let m = adm.admit_group(16, &mut b, 2);
        // person 1 counts in exactly one of the two groups, person 2 in its only one
        assert_eq!(n + m, 2);
        assert!(a[..2 * n].chunks(2).any(|c| c == [2, 20]));
        if m == 1 {
            assert_eq!(b, vec![1, 30]);
        } else {
            assert_eq!(&a[..4], &[1, 10, 2, 20]);
        }
    }

    #[test]
    fn plain_groups_count_up_to_the_limit() {
        let mut adm = Admission::new(2);
        assert_eq!(adm.admit_plain(9), Ok(true));
        assert_eq!(adm.admit_plain(9), Ok(true));
        assert_eq!(adm.admit_plain(9), Ok(false));
        assert_eq!(adm.admit_plain(10), Ok(true));
    }
}

/// Reads one group's persons for a pass (`Admission::begin_pass`): the aggregate's state as a
/// datum, and where to send its entries and their stride.
pub type ReadGroup<'a> = &'a mut dyn FnMut(pg_sys::Datum, &mut dyn FnMut(&[u64], usize));

/// The final function's step before it counts a group's persons: keeps at the front of
/// `persons` (entries of `stride` words, the person's hash first) those who count in the
/// group whose state is `state`, and returns how many. `read` reads the persons of any
/// group of the same call, for the pass that a hash aggregate's first final call starts, and
/// `key` tells which group a state datum of the hash table is, as `state` does for the one
/// being finalized (a `k_state` has two pointers: the hash table holds the read-write one, a
/// final function gets the read-only one: nodeAgg.c, `finalize_aggregate`).
///
/// # Safety
/// `fcinfo` is a dp aggregate's final function's call info; `state` identifies the state it
/// is finalizing; `key` and `read` can read every state of this aggregate call.
pub unsafe fn admit(
    fcinfo: pg_sys::FunctionCallInfo,
    limit: u32,
    state: usize,
    persons: &mut [u64],
    stride: usize,
    key: &dyn Fn(pg_sys::Datum) -> usize,
    read: ReadGroup<'_>,
) -> usize {
    // SAFETY: per the contract; the context of a final function is its AggState.
    unsafe {
        let agg = aggstate(fcinfo);
        let adm = admission(fcinfo, limit);
        match (*agg).aggstrategy {
            pg_sys::AggStrategy::AGG_PLAIN => retain_entries(persons, stride, |p| {
                adm.admit_plain(p).unwrap_or_else(|_| no_memory())
            }),
            pg_sys::AggStrategy::AGG_HASHED => {
                if !adm.in_pass(state) {
                    begin_pass(agg, adm, key, read);
                }
                adm.admit_group(state, persons, stride)
            }
            // grouping.rs plans every grouped statement with dp aggregates as a hash aggregate
            _ => DeidentError::DpGrouping(GroupingProblem::NotHashable).report(),
        }
    }
}

fn no_memory() -> ! {
    DeidentError::Aggregate(crate::aggregates::state::StateError::OutOfMemory).report()
}

/// # Safety
/// `fcinfo` is fmgr's call info.
unsafe fn aggstate(fcinfo: pg_sys::FunctionCallInfo) -> *mut pg_sys::AggState {
    // SAFETY: per the contract.
    unsafe { crate::fmgr::agg_state(fcinfo) }
        .unwrap_or_else(|| DeidentError::OutsideAggregate.report())
}

/// Reads every group of the hash table being finalized (one grouping set: grouping.rs
/// refuses grouping sets) for a new pass, and ends the pass when the table is reset.
///
/// # Safety
/// `agg` is finalizing a group of its hash table, in a final function (`curperagg` is set:
/// nodeAgg.c, `finalize_aggregate`).
unsafe fn begin_pass(
    agg: *mut pg_sys::AggState,
    adm: &mut Admission,
    key: &dyn Fn(pg_sys::Datum) -> usize,
    read: ReadGroup<'_>,
) {
    // SAFETY: per the contract: the hash table of the current set holds every group, each
    // entry's `additional` is its array of per-transition states (nodeAgg.c,
    // `initialize_hash_entry`), and this call's transition is `curperagg->transno`.
    unsafe {
        let peragg = (*agg).curperagg;
        let set = (*agg).current_set;
        if peragg.is_null() || set < 0 || set >= (*agg).num_hashes {
            DeidentError::DpGrouping(GroupingProblem::NotHashable).report();
        }
        let transno = (*peragg).transno as usize;
        let table = (*(*agg).perhash.add(set as usize)).hashtable;
        let hashtab = (*table).hashtab;
        let (data, size) = ((*hashtab).data, (*hashtab).size as usize);
        let started = adm.begin_pass(|f| {
            for i in 0..size {
                let entry = &*data.add(i);
                if entry.status != pg_sys::tuplehash_status::tuplehash_SH_IN_USE {
                    continue;
                }
                let trans = &*entry.additional.cast::<pg_sys::AggStatePerGroupData>().add(transno);
                if !trans.transValueIsNull {
                    let addr = key(trans.transValue);
                    read(trans.transValue, &mut |persons, stride| {
                        f(addr, entry.hash, persons, stride)
                    });
                }
                if i % 4096 == 4095 {
                    pgrx::check_for_interrupts!();
                }
            }
        });
        started.unwrap_or_else(|_| no_memory());
        // once for each filling of the table: a pass started again over the same table (the
        // groups finalized a second time) needs no second callback
        if !adm.armed {
            let cb: pg_sys::ExprContextCallbackFunction = Some(table_reset);
            pg_sys::RegisterExprContextCallback(
                (*agg).hashcontext,
                cb,
                pg_sys::Datum::from(adm as *mut Admission),
            );
            adm.armed = true;
        }
    }
}

/// The hash table's memory is being reset (a rescan that refills it, or the end): the pass's
/// groups are gone.
#[pg_guard]
unsafe extern "C-unwind" fn table_reset(arg: pg_sys::Datum) {
    // SAFETY: arg is the Admission in the final function's fn_extra, which lives in the
    // executor's query memory, freed after the Agg node's contexts are shut down.
    unsafe {
        let adm = &mut *arg.cast_mut_ptr::<Admission>();
        adm.end_pass();
        adm.armed = false;
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn drop_admission(arg: *mut std::ffi::c_void) {
    // SAFETY: arg is the Box made in `admission`, dropped once, when its context is reset.
    drop(unsafe { Box::from_raw(arg.cast::<Admission>()) });
}

/// This aggregate call's admission, in its final function's `fn_extra`, freed with the
/// executor's memory by a reset callback.
///
/// # Safety
/// `fcinfo` is a final function's call info; its flinfo lives as long as the aggregate.
unsafe fn admission<'a>(fcinfo: pg_sys::FunctionCallInfo, limit: u32) -> &'a mut Admission {
    // SAFETY: per the contract; fn_extra is ours (nothing else sets it on this FmgrInfo), and
    // the callback is allocated in the same context it is registered with.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if (*flinfo).fn_extra.is_null() {
            let boxed = Box::into_raw(Box::new(Admission::new(limit)));
            let cb = pg_sys::MemoryContextAlloc(
                (*flinfo).fn_mcxt,
                std::mem::size_of::<pg_sys::MemoryContextCallback>(),
            )
            .cast::<pg_sys::MemoryContextCallback>();
            cb.write(pg_sys::MemoryContextCallback {
                func: Some(drop_admission),
                arg: boxed.cast(),
                next: std::ptr::null_mut(),
            });
            pg_sys::MemoryContextRegisterResetCallback((*flinfo).fn_mcxt, cb);
            (*flinfo).fn_extra = boxed.cast();
        }
        &mut *(*flinfo).fn_extra.cast::<Admission>()
    }
}
