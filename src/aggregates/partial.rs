//! The k-aggregates' partial states on Citus's workers, without Citus's per-row work.
//!
//! Citus pushes a custom aggregate down as `worker_partial_agg(aggregate, ROW(arguments))` on
//! each shard (aggregate_utils.c): for every row it looks the aggregate up in pg_aggregate,
//! runs `fmgr_info` on its transition function (a pg_proc lookup, the hook of every
//! extension that has one, and the C function's lookup), and packs and unpacks the arguments
//! as a row. For a built-in aggregate such as `sum`, whose `fmgr_info` is a table lookup, that
//! costs little; for k_sum it cost twice what the transition itself does (on one shard of
//! 31,000 rows, 11.3 ms against 5.1 for `k_sum` run plainly: docs/citus.md).
//!
//! So when a query is planned (hooks.rs), a `worker_partial_agg` of one of the k-aggregates
//! at the query's top level, where Citus puts it, becomes `deident._k_partial(aggregate,
//! arguments...)`: an aggregate of ours whose transition function checks once per call site
//! what `worker_partial_agg` checks per row (the aggregate is one of ours, the argument types
//! are its own, the caller may execute it) and then calls the aggregate's own transition
//! function through one FmgrInfo for every row, and whose final function gives what the state
//! type's output function gives, as `worker_partial_agg`'s does. The result is the same text (a
//! sealed state in base64). Its transition value is `internal`, so that a full state can be
//! packed in the value itself (`Packed`).
//!
//! On the coordinator, Citus combines those texts with `coord_combine_agg`, which looks the
//! aggregate up and runs `fmgr_info` per row too, and opens each state twice (the input
//! function, then the combine function). Citus plans that step inside its own planner, so the
//! planner hook changes the finished plan instead (`rewrite_coordinator_combines`): such a
//! call becomes `deident._k_combine_partials`, with the same arguments and result, which
//! checks once per call site and opens each state once.

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::expanded::{
    combine_text, group_text, new_object, rw_datum, rw_group, state_text, Placement,
};
use super::memory::{agg_context, Group, PersonType, PgEnv, ValueType};
use super::state::{Acc, KState, StateError, Wide};
use super::support::{
    datum_person, person_type, state_error, transition_body, value_type, Body, Transition,
};
use crate::dp::plan::{walk_tree, Visit};
use crate::enforcement::catalog;
use crate::enforcement::{list_oids, list_ptrs};
use crate::error::{DeidentError, OrReport};
use crate::fmgr::{self, pg_function_info_v1};
use crate::seal::Kind;
use crate::{guc, preload};

/// The most arguments an aggregate pushed down takes (dp_sum, dp_avg: value, person and
/// bounds).
const MAX_ARGS: usize = 4;

/// What a `_k_partial` call site keeps between rows (fn_extra of its FmgrInfo).
struct Site {
    aggregate: pg_sys::Oid,
    nargs: usize,
    /// The call info of the aggregate's transition function (its FmgrInfo in `flinfo`),
    /// reused for every row: the state and the aggregate's arguments.
    call: pg_sys::FunctionCallInfo,
    /// That function's body (support.rs, `transition_body`), called directly: this call is
    /// guarded already; and which transition it is.
    body: Option<(Body, Transition)>,
    /// What the full states packed here share (`Packed`): set by the first one packed; a
    /// full state of another shape (made at another k) stays an object.
    shape: Option<Shape>,
    /// The transition and types of the groups kept in a `Pre` until they are full: set when
    /// the site is made, for k_sum and k_avg over integers and k_count.
    pre: Option<GroupKind>,
}

/// A full state of k_sum or k_avg over integers, or of k_count, packed into the transition
/// value itself, in place of its object (`_k_partial`'s state type is `internal`, which
/// nodeAgg keeps by value in the group's hash entry). Once a group has seen k persons, its
/// object holds only a row count and a sum, and a row only adds to them; packed, a row reads
/// no memory of the group's own. That memory was what a row of a Citus worker waited for: a
/// shard's 1,000 groups are hit in no order, and each object is a cache line that `sum`'s
/// by-value state does not have (docs/citus.md, "Speed").
///
/// Bit 0 is set, which no pointer to an object has (objects start at a cache line, their
/// datum 24 bytes in); the rows are bits 1 to 24, the sum bits 25 to 63 (two's complement).
/// A row that would take either out of its range makes the state an object again
/// (`unpack`), which takes the row as before; what the call site's `shape` holds makes the
/// same object back, so a packed state seals to the bytes its object would.
#[derive(Clone, Copy)]
struct Packed(u64);

impl Packed {
    const ROW_BITS: u32 = 24;
    const SUM_BITS: u32 = 64 - 1 - Self::ROW_BITS;

    fn new(rows: i64, sum: i64) -> Option<Packed> {
        let sum_max = (1i64 << (Self::SUM_BITS - 1)) - 1;
        if !(0..1i64 << Self::ROW_BITS).contains(&rows) || !(-sum_max - 1..=sum_max).contains(&sum)
        {
            return None;
        }
        Some(Packed(1 | (rows as u64) << 1 | (sum as u64) << (1 + Self::ROW_BITS)))
    }

    fn of(d: pg_sys::Datum) -> Option<Packed> {
        let v = d.value() as u64;
        (v & 1 == 1).then_some(Packed(v))
    }

    fn rows(self) -> i64 {
        ((self.0 >> 1) & ((1 << Self::ROW_BITS) - 1)) as i64
    }

    fn sum(self) -> i64 {
        (self.0 as i64) >> (1 + Self::ROW_BITS)
    }

    fn datum(self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.0 as usize)
    }
}

/// What a call site's packed states share besides their rows and sum: the transition and
/// the group's types, and its cap (the k it was made at).
#[derive(Clone, Copy, PartialEq)]
struct Shape {
    kind: GroupKind,
    cap: u32,
}

impl Shape {
    /// The full group a packed state stands for, in `env`'s memory.
    fn group(self, p: Packed, env: PgEnv) -> Group {
        let acc = self.kind.acc(i128::from(p.sum()));
        Group::new(self.kind.value, self.kind.person, KState::full(acc, self.cap, p.rows(), env))
    }
}

/// The most persons a `Pre` holds: the k of groups kept in one (a larger k keeps its groups
/// below k in objects).
const PRE_MAX: u32 = 16;

/// A group of k_sum or k_avg over integers, or of k_count, before it has seen k distinct
/// persons: its rows, its sum and the hashes of the distinct persons so far, in one chunk of
/// the aggregate context (this header, then room for `cap` hashes), which the transition value
/// points at with 4 in its low three bits (`datum`): palloc aligns to 8, a packed state's
/// value is odd, an object's read-write datum is a multiple of 8 and its read-only one
/// (which no transition returns) 2 past one.
///
/// It is what a capped state's object holds below k (state.rs, `KState`: the cap, the rows,
/// an exact sum, the distinct persons in the order they came), without what an object needs
/// besides: the expanded object's header and methods, the group's types (the call site's,
/// `GroupKind`), and the persons' array in a chunk of its own. A Citus worker makes a state per
/// shard and group, and a shard's part of a group takes about k rows to reach k persons: a
/// row of such a group read two chunks of memory and went through the object's transition
/// (about 120 ns a row at k = 5, against 45 in a `Pre`). Once it has seen `cap` persons it
/// becomes a packed state, or an object when it does not pack (`pre_full`); the final
/// function makes its object (`pre_group`) and seals it, as the object's own state would be.
#[repr(C)]
struct Pre {
    /// The sum, two's complement in two words (an i128 would need 16-byte alignment, and
    /// palloc gives 8).
    sum_lo: u64,
    sum_hi: i64,
    rows: i64,
    /// The k the group was made at: it is full at this many distinct persons.
    cap: u32,
    /// The distinct persons' hashes that follow the header.
    n: u32,
}

impl Pre {
    const TAG: usize = 4;

    /// The group of a transition value tagged as a `Pre`'s.
    fn of(d: pg_sys::Datum) -> Option<*mut Pre> {
        let v = d.value();
        (v & 7 == Self::TAG).then_some((v & !7) as *mut Pre)
    }

    fn datum(p: *mut Pre) -> pg_sys::Datum {
        pg_sys::Datum::from(p as usize | Self::TAG)
    }

    fn sum(&self) -> i128 {
        i128::from(self.sum_hi) << 64 | i128::from(self.sum_lo)
    }

    fn set_sum(&mut self, sum: i128) {
        self.sum_lo = sum as u64;
        self.sum_hi = (sum >> 64) as i64;
    }

    /// Where the hashes start, after the header.
    ///
    /// # Safety
    /// `p` was made by `pre_start`, with room for `cap` hashes after the header.
    unsafe fn hashes(p: *mut Pre) -> *mut u64 {
        // SAFETY: per the contract.
        unsafe { p.add(1).cast::<u64>() }
    }
}

/// The transition and types of a call site's groups that a `Pre` or a packed state leaves
/// out: those of k_sum and k_avg over integers, and of k_count.
#[derive(Clone, Copy, PartialEq)]
struct GroupKind {
    transition: Transition,
    value: ValueType,
    person: PersonType,
}

impl GroupKind {
    /// The kind of a call site of the aggregate whose transition is `body`, over arguments
    /// of `types`, if its groups are kept in a `Pre`: k_sum and k_avg over integers (value,
    /// person), k_count (person).
    fn of(body: Option<(Body, Transition)>, types: &[pg_sys::Oid]) -> Option<GroupKind> {
        let (transition, value, person) = match (body?.1, types) {
            (Transition::Sum, &[v, p]) => (Transition::Sum, value_type(v), person_type(p)),
            (Transition::Count, &[p]) => (Transition::Count, ValueType::None, person_type(p)),
            _ => return None,
        };
        let integer = matches!(value, ValueType::Int2 | ValueType::Int4 | ValueType::Int8);
        (person != PersonType::Unknown && (integer || transition == Transition::Count))
            .then_some(GroupKind { transition, value, person })
    }

    /// The row's person, and its value (0 for k_count), from `_k_partial_trans`'s arguments
    /// (the state, the aggregate, then the aggregate's); None when the row contributes
    /// nothing (no person, or for k_sum no value: support.rs, `k_trans`). A packed state's
    /// rows read it too (`packed_row`), so it is inlined there.
    #[inline(always)]
    fn row(self, from: &[pg_sys::NullableDatum]) -> Option<(pg_sys::Datum, i64)> {
        match self.transition {
            Transition::Sum => {
                if from[2].isnull || from[3].isnull {
                    return None;
                }
                Some((from[3].value, self.value.integer(from[2].value)))
            }
            _ => (!from[2].isnull).then_some((from[2].value, 0)),
        }
    }

    fn acc(self, sum: i128) -> Acc<PgEnv> {
        match self.transition {
            Transition::Sum => Acc::Int(Wide(sum)),
            _ => Acc::Count,
        }
    }
}

/// A group's first row at a site that keeps its groups in a `Pre`: the new group, or NULL
/// when the row contributes nothing (as support.rs's transitions return it before the first
/// row that does); None when k is above `PRE_MAX`, for the aggregate's own transition to make
/// an object.
///
/// # Safety
/// `fcinfo` is a call of `_k_partial_trans` at `site`, inside an aggregate; `from` its
/// arguments.
#[inline(never)]
unsafe fn pre_start(
    fcinfo: pg_sys::FunctionCallInfo,
    site: &mut Site,
    kind: GroupKind,
    from: &[pg_sys::NullableDatum],
) -> Option<pg_sys::Datum> {
    // SAFETY: per the contract.
    unsafe {
        let cx = agg_context(fcinfo);
        let Some(row) = kind.row(from) else { return Some(fmgr::return_null(fcinfo)) };
        let cap = guc::min_group_size();
        if cap == 0 || cap > PRE_MAX {
            return None;
        }
        preload::check().or_report();
        let bytes = std::mem::size_of::<Pre>() + 8 * cap as usize;
        let p = pg_sys::MemoryContextAlloc(cx, bytes).cast::<Pre>();
        p.write(Pre { sum_lo: 0, sum_hi: 0, rows: 0, cap, n: 0 });
        Some(pre_row(fcinfo, site, kind, p, row))
    }
}

/// A contributing row of a `Pre` group (`row`: its person and value): the person added if it
/// is new, the row counted and its value summed, as a capped state's transition does
/// (support.rs, `k_trans` and `count_trans`); the group made full when it reaches its cap.
///
/// # Safety
/// As `pre_start`; `p` is a `Pre` of this site that is not full.
#[inline(always)]
unsafe fn pre_row(
    fcinfo: pg_sys::FunctionCallInfo,
    site: &mut Site,
    kind: GroupKind,
    p: *mut Pre,
    (person, value): (pg_sys::Datum, i64),
) -> pg_sys::Datum {
    // SAFETY: per the contract; `p` has room for `cap` hashes after the header, and holds
    // n < cap of them (the header and the hashes are apart: `pre` covers the header only).
    unsafe {
        let hash = datum_person(person, kind.person);
        let pre = &mut *p;
        let sum = pre.sum().checked_add(i128::from(value));
        let sum = sum.unwrap_or_else(|| state_error(StateError::Overflow));
        pre.set_sum(sum);
        pre.rows += 1;
        let hashes = Pre::hashes(p);
        let n = pre.n as usize;
        if !std::slice::from_raw_parts(hashes, n).contains(&hash) {
            hashes.add(n).write(hash);
            pre.n += 1;
            if pre.n >= pre.cap {
                return pre_full(fcinfo, site, kind, pre);
            }
        }
        Pre::datum(p)
    }
}

/// A `Pre` group that has seen its cap of distinct persons, as its object would be once full
/// (its persons forgotten): packed, if it packs at this site (`pack`'s conditions), or else
/// an object that stays one (`unpack`'s).
///
/// # Safety
/// As `pre_start`.
#[cold]
#[inline(never)]
unsafe fn pre_full(
    fcinfo: pg_sys::FunctionCallInfo,
    site: &mut Site,
    kind: GroupKind,
    pre: &Pre,
) -> pg_sys::Datum {
    // (in `pack`'s order: the sum fits, the site takes the shape, the rows and sum pack)
    let sum = match kind.transition {
        Transition::Sum => i64::try_from(pre.sum()).ok(),
        _ => Some(0),
    };
    if let Some(sum) = sum {
        let full = Shape { kind, cap: pre.cap };
        if *site.shape.get_or_insert(full) == full {
            if let Some(p) = Packed::new(pre.rows, sum) {
                return p.datum();
            }
        }
    }
    // SAFETY: per the contract; the object lives in the aggregate context.
    unsafe {
        let cx = agg_context(fcinfo);
        rw_datum(new_object(cx, Placement::Shared, |env| Group {
            unpacked: true,
            ..Group::new(
                kind.value,
                kind.person,
                KState::full(kind.acc(pre.sum()), pre.cap, pre.rows, env),
            )
        }))
    }
}

/// The group of a `Pre`, in `env`'s memory: the state its object would hold.
///
/// # Safety
/// `p` is a `Pre` that `pre_start` made at a site of this shape.
unsafe fn pre_group(p: *mut Pre, kind: GroupKind, env: PgEnv) -> Group {
    // SAFETY: per the contract.
    unsafe {
        let pre = &*p;
        let mut state = KState::new(kind.acc(pre.sum()), pre.cap, env);
        for &hash in std::slice::from_raw_parts(Pre::hashes(p), pre.n as usize) {
            state.add_person(hash).unwrap_or_else(|e| state_error(e));
        }
        state.rows = pre.rows;
        Group::new(kind.value, kind.person, state)
    }
}

/// `_k_partial_trans(internal, aggregate oid, "any" [, "any"])`: the aggregate's transition
/// function, called with the state and the arguments after the first; a full state of k_sum,
/// k_avg over integers or k_count is kept packed (`Packed`).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_partial_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the transition function declared in SQL.
    unsafe {
        match packed_fast(fcinfo) {
            Some(next) => next,
            None => partial_trans(fcinfo),
        }
    }
}
pg_function_info_v1!(pg_finfo_deident_k_partial_trans);

/// The row of a packed state at a call site already checked, when it stays packed: most
/// rows of a Citus worker's k_sum, so nothing else is in the way (the rest of the function
/// is out of line, `partial_trans`).
///
/// # Safety
/// `fcinfo` is a call of `_k_partial_trans`.
#[inline(always)]
unsafe fn packed_fast(fcinfo: pg_sys::FunctionCallInfo) -> Option<pg_sys::Datum> {
    // SAFETY: per the contract; a site has room for its nargs arguments after the two first.
    unsafe {
        let site = fmgr::made_call_site::<Site>(fcinfo)?;
        if fmgr::arg_is_null(fcinfo, 0)
            || fmgr::arg_is_null(fcinfo, 1)
            || pg_sys::Oid::from(fmgr::arg(fcinfo, 1).value() as u32) != site.aggregate
        {
            return None;
        }
        let p = Packed::of(fmgr::arg(fcinfo, 0))?;
        packed_row(site, p, (*fcinfo).args.as_slice(2 + site.nargs))
    }
}

/// `_k_partial_trans`'s work but for `packed_fast`'s rows: the site made and checked, a
/// packed state that a row takes out of its range made an object again, the aggregate's
/// transition called, and its full state packed.
///
/// # Safety
/// `fcinfo` is a call of `_k_partial_trans`.
#[inline(never)]
unsafe fn partial_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: per the contract; the site's call info has room for 1 + nargs arguments, and
    // its FmgrInfo and arrays live in fn_mcxt, as long as the call site. Argument 0 is NULL,
    // a packed state or an object's datum that this function returned (the site's check:
    // only deident._k_partial calls it, and `internal` has no initial value).
    unsafe {
        if fmgr::arg_is_null(fcinfo, 1) {
            DeidentError::PartialNotKAggregate("_k_partial").report();
        }
        let aggregate = pg_sys::Oid::from(fmgr::arg(fcinfo, 1).value() as u32);
        // (inside an aggregate: checked when the site is made, and by the transition itself)
        let Some(site) = fmgr::call_site(fcinfo, || {
            agg_context(fcinfo);
            site_for(fcinfo, aggregate)
        }) else {
            DeidentError::OutsideAggregate.report()
        };
        if site.aggregate != aggregate {
            DeidentError::PartialNotKAggregate("_k_partial").report();
        }
        let from = (*fcinfo).args.as_slice(2 + site.nargs);
        let mut state = pg_sys::NullableDatum { value: from[0].value, isnull: from[0].isnull };
        if state.isnull {
            if let Some(kind) = site.pre {
                if let Some(next) = pre_start(fcinfo, site, kind, from) {
                    return next;
                }
            }
        } else if let Some(p) = Pre::of(state.value) {
            let Some(kind) = site.pre else { DeidentError::NotOurState.report() };
            return match kind.row(from) {
                Some(row) => pre_row(fcinfo, site, kind, p, row),
                None => state.value,
            };
        } else if let Some(p) = Packed::of(state.value) {
            if let Some(next) = packed_row(site, p, from) {
                return next;
            }
            let Some(shape) = site.shape else { DeidentError::NotOurState.report() };
            state.value = unpack(fcinfo, shape, p);
        }
        let call = site.call;
        let args = (*call).args.as_mut_slice(1 + site.nargs);
        args[0] = state;
        for i in 0..site.nargs {
            args[1 + i] =
                pg_sys::NullableDatum { value: from[2 + i].value, isnull: from[2 + i].isnull };
        }
        (*call).context = (*fcinfo).context;
        (*call).fncollation = (*fcinfo).fncollation;
        (*call).isnull = false;
        let state = match (site.body, (*(*call).flinfo).fn_addr) {
            (Some((body, _)), _) => body(call),
            (None, Some(transition)) => transition(call),
            (None, None) => DeidentError::PartialNotKAggregate("_k_partial").report(),
        };
        if (*call).isnull {
            return fmgr::return_null(fcinfo);
        }
        match pack(site, state) {
            Some(p) => p.datum(),
            None => state,
        }
    }
}

/// A row for a state packed at `site`: the packed state with the row (what the transition
/// does to a full state: support.rs, `k_trans`, `count_trans`), or None when the row would
/// take it out of the packed range (or the site has packed nothing, which cannot be).
#[inline(always)]
fn packed_row(site: &Site, p: Packed, from: &[pg_sys::NullableDatum]) -> Option<pg_sys::Datum> {
    let shape = site.shape?;
    // a row without a person, or for k_sum without a value, contributes nothing (k_count's
    // value is 0, and so is its packed sum)
    let Some((_, v)) = shape.kind.row(from) else { return Some(p.datum()) };
    Packed::new(p.rows() + 1, p.sum().checked_add(v)?).map(Packed::datum)
}

/// A packed state made an object again, in the aggregate context (`Packed`), for good: it is
/// not packed again (`pack`), so that a sum that crosses the packed range back and forth
/// does not leave an object behind each time (the objects are freed only with their
/// context).
///
/// # Safety
/// `fcinfo` is a call inside an aggregate.
#[cold]
#[inline(never)]
unsafe fn unpack(fcinfo: pg_sys::FunctionCallInfo, shape: Shape, p: Packed) -> pg_sys::Datum {
    // SAFETY: per the contract; the object lives in the aggregate context.
    unsafe {
        let cx = agg_context(fcinfo);
        rw_datum(new_object(cx, Placement::Shared, |env| Group {
            unpacked: true,
            ..shape.group(p, env)
        }))
    }
}

/// The transition's result packed, if it is a full state that packs (`Packed`): of k_sum or
/// k_avg over integers or of k_count, of the site's shape (the first sets it), its rows and
/// sum in range. The object is left to its memory context, which frees it with the others.
///
/// # Safety
/// `state` is a non-NULL k_state datum that the transition returned.
#[inline(always)]
unsafe fn pack(site: &mut Site, state: pg_sys::Datum) -> Option<Packed> {
    let transition = match site.body {
        Some((_, t @ (Transition::Sum | Transition::Count))) => t,
        _ => return None,
    };
    // SAFETY: per the contract.
    let g = unsafe { rw_group::<Group>(state) }?;
    if !g.state.saturated() || g.unpacked {
        return None;
    }
    let sum = match (&g.state.acc, transition) {
        (Acc::Int(s), Transition::Sum) => i64::try_from(s.get()).ok()?,
        (Acc::Count, Transition::Count) => 0,
        _ => return None,
    };
    let kind = GroupKind { transition, value: g.value, person: g.person };
    let shape = Shape { kind, cap: g.state.cap() };
    if *site.shape.get_or_insert(shape) != shape {
        return None;
    }
    Packed::new(g.state.rows, sum)
}

/// `_k_partial_final(internal) RETURNS cstring`: the state as `deident.k_state`'s output
/// function gives it (sealed, in base64); a packed state as its object would be.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_partial_final(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the strict final function; `partial_site` checks that the
    // state is one `_k_partial_trans` made before it is read.
    unsafe {
        let site = partial_site(fcinfo);
        let d = fmgr::arg(fcinfo, 0);
        let env = PgEnv(pg_sys::CurrentMemoryContext);
        if let Some(p) = Packed::of(d) {
            let Some(shape) = site.shape else { DeidentError::NotOurState.report() };
            group_text(&mut shape.group(p, env))
        } else if let Some(p) = Pre::of(d) {
            let Some(kind) = site.pre else { DeidentError::NotOurState.report() };
            group_text(&mut pre_group(p, kind, env))
        } else {
            state_text(d)
        }
    }
}
pg_function_info_v1!(pg_finfo_deident_k_partial_final);

/// The `_k_partial_trans` call site whose state a `_k_partial_final` call finalizes, through
/// the aggregate node: `finalize_aggregate` (nodeAgg.c) sets `curperagg`, whose `transno`
/// names the transition. Its function must be `_k_partial_trans` with a site made (which
/// checked that the aggregate is `deident._k_partial`): `internal` states of another
/// aggregate's functions are refused before they are read, whoever paired them with this
/// one in a CREATE AGGREGATE.
///
/// # Safety
/// `fcinfo` is fmgr's call info.
unsafe fn partial_site<'a>(fcinfo: pg_sys::FunctionCallInfo) -> &'a Site {
    // SAFETY: per the contract; an AggState's curperagg, when set, is one of its peragg
    // entries, and pertrans has numtrans entries.
    unsafe {
        let Some(agg) = fmgr::agg_state(fcinfo) else { DeidentError::OutsideAggregate.report() };
        let peragg = (*agg).curperagg;
        if peragg.is_null() {
            DeidentError::OutsideAggregate.report();
        }
        let transno = (*peragg).transno;
        if transno < 0 || transno >= (*agg).numtrans {
            DeidentError::NotOurState.report();
        }
        let pertrans = (*agg).pertrans.add(transno as usize);
        let ours: pg_sys::PGFunction = Some(deident_k_partial_trans);
        let site = (*pertrans).transfn.fn_extra.cast::<Site>();
        if (*pertrans).transfn.fn_addr.map(|f| f as usize) != ours.map(|f| f as usize)
            || site.is_null()
        {
            DeidentError::NotOurState.report();
        }
        &*site
    }
}

/// Is this transition, run by an aggregate node, `deident._k_partial`'s, with a transition
/// value kept by value (`internal`), and its state read by `_k_partial` calls alone (an
/// aggregate node shares one transition among the calls that have the same function and
/// arguments, whatever their final functions)? Only then may it return a packed state, which
/// anything else would take for a pointer: a superuser's aggregate over this function with
/// another final function, or a database made at 0.2.0 before `_k_partial`'s state became
/// `internal` (its `k_state` is by reference, and nodeAgg would copy the value as one).
///
/// # Safety
/// `fcinfo` is fmgr's call info.
unsafe fn only_partial_reads(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: per the contract; an AggState's curpertrans, when set, is one of its numtrans
    // pertrans entries, and peragg has numaggs entries.
    unsafe {
        let Some(agg) = fmgr::agg_state(fcinfo) else { return false };
        let pertrans = (*agg).curpertrans;
        if pertrans.is_null()
            || (*pertrans).aggtranstype != pg_sys::INTERNALOID
            || !(*pertrans).transtypeByVal
        {
            return false;
        }
        let transno = pertrans.offset_from((*agg).pertrans);
        let mut readers = 0;
        for i in 0..(*agg).numaggs.max(0) as usize {
            let peragg = (*agg).peragg.add(i);
            if (*peragg).transno as isize == transno {
                let aggref = (*peragg).aggref;
                if aggref.is_null() || !is_partial((*aggref).aggfnoid) {
                    return false;
                }
                readers += 1;
            }
        }
        readers > 0
    }
}

/// Checks, once per call site, that it is `deident._k_partial`'s (whose final function alone
/// reads the states this one returns), that `aggregate` is a k-aggregate (`k_aggregate`)
/// whose argument types are the call's, and that the caller may execute it; then sets up its
/// transition function's call.
///
/// # Safety
/// `fcinfo` is a call of `_k_partial_trans` inside an aggregate.
unsafe fn site_for(fcinfo: pg_sys::FunctionCallInfo, aggregate: pg_sys::Oid) -> Site {
    // SAFETY: per the contract; syscache reads, and allocations in fn_mcxt.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if !only_partial_reads(fcinfo) {
            DeidentError::NotOurState.report();
        }
        let Some((transfn, nargs, _)) = k_aggregate(aggregate) else {
            DeidentError::PartialNotKAggregate("_k_partial").report()
        };
        // the aggregate's argument types, against the call's (after the aggregate's oid)
        let given = (*fcinfo).nargs.max(0) as usize;
        let types: Vec<pg_sys::Oid> =
            (2..given.max(2)).map(|i| pg_sys::get_fn_expr_argtype(flinfo, i as i32)).collect();
        if !takes(aggregate, nargs, &types) {
            DeidentError::PartialArgumentTypes("_k_partial").report();
        }
        may_execute(aggregate);
        let cx = (*flinfo).fn_mcxt;
        let finfo = pg_sys::MemoryContextAllocZero(cx, std::mem::size_of::<pg_sys::FmgrInfo>())
            .cast::<pg_sys::FmgrInfo>();
        pg_sys::fmgr_info_cxt(transfn, finfo, cx);
        (*finfo).fn_expr = transition_expr(flinfo, transfn, cx);
        if (*finfo).fn_strict {
            // ours are not strict; a strict one would need nodeAgg's NULL rules here
            DeidentError::PartialNotKAggregate("_k_partial").report();
        }
        let size = std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
            + (1 + nargs) * std::mem::size_of::<pg_sys::NullableDatum>();
        let call =
            pg_sys::MemoryContextAllocZero(cx, size).cast::<pg_sys::FunctionCallInfoBaseData>();
        (*call).flinfo = finfo;
        (*call).nargs = (1 + nargs) as i16;
        let body = transition_body((*finfo).fn_addr);
        let pre = GroupKind::of(body, &types);
        Site { aggregate, nargs, call, body, shape: None, pre }
    }
}

/// The call expression the aggregate's transition function gets: `_k_partial_trans`'s own
/// (nodeAgg builds one: the state, the aggregate's oid, the arguments) without the oid, so
/// that the function learns its argument types as when the aggregate runs itself (dp_sum's
/// and dp_avg's, declared over "any", need them). NULL when the call has none.
///
/// # Safety
/// `flinfo` is the FmgrInfo of a `_k_partial_trans` call; `cx` its memory context.
unsafe fn transition_expr(
    flinfo: *mut pg_sys::FmgrInfo,
    transfn: pg_sys::Oid,
    cx: pg_sys::MemoryContext,
) -> *mut pg_sys::Node {
    // SAFETY: per the contract; the list and node are made in cx, which outlives the site.
    unsafe {
        let expr = (*flinfo).fn_expr;
        if expr.is_null() || (*expr).type_ != pg_sys::NodeTag::T_FuncExpr {
            return std::ptr::null_mut();
        }
        let old = pg_sys::MemoryContextSwitchTo(cx);
        let mut args: *mut pg_sys::List = std::ptr::null_mut();
        for (i, arg) in
            list_ptrs::<pg_sys::Node>((*expr.cast::<pg_sys::FuncExpr>()).args).enumerate()
        {
            if i != 1 {
                args = pg_sys::lappend(args, arg.cast());
            }
        }
        let call = pg_sys::makeFuncExpr(
            transfn,
            pg_sys::get_func_rettype(transfn),
            args,
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
        );
        pg_sys::MemoryContextSwitchTo(old);
        call.cast()
    }
}

/// `worker_partial_agg(aggregate, arguments)` calls of k-aggregates at the top level of
/// `query` become `deident._k_partial(aggregate, arguments...)` (this module's comment). Only
/// on a database where Citus is installed, and only calls whose aggregate is a constant
/// naming one of pg_deident's k-aggregates, with no ORDER BY or DISTINCT; anything else is
/// left to Citus.
///
/// # Safety
/// `query` is a valid Query about to be planned.
#[pg_guard]
pub unsafe extern "C-unwind" fn rewrite_worker_partial_aggs(query: *mut pg_sys::Query) {
    // SAFETY: per the contract; the nodes are the query's, changed in place.
    unsafe {
        // (the planner hook calls this only for a query with aggregates)
        if (*query).commandType != pg_sys::CmdType::CMD_SELECT {
            return;
        }
        let mut calls: Vec<*mut pg_sys::Aggref> = Vec::new();
        let mut find = |node: *mut pg_sys::Node| {
            if (*node).type_ == pg_sys::NodeTag::T_Aggref {
                let a = node.cast::<pg_sys::Aggref>();
                // worker_partial_agg returns cstring, which almost no other aggregate does
                if (*a).aggtype == pg_sys::CSTRINGOID && (*a).agglevelsup == 0 {
                    calls.push(a);
                }
            }
            Visit::Continue
        };
        walk_tree((*query).targetList.cast(), false, &mut find);
        walk_tree((*query).havingQual, false, &mut find);
        if calls.is_empty() || !catalog::citus_installed() {
            return;
        }
        for a in calls {
            rewrite_call(a);
        }
    }
}

/// One call, if it is a `worker_partial_agg` of a k-aggregate.
///
/// # Safety
/// `a` is a valid Aggref of a query being planned.
unsafe fn rewrite_call(a: *mut pg_sys::Aggref) {
    // SAFETY: per the contract; the lists are the Aggref's, of TargetEntry and OID.
    unsafe {
        if !is_citus_function((*a).aggfnoid, c"worker_partial_agg", 2)
            || !(*a).aggorder.is_null()
            || !(*a).aggdistinct.is_null()
            || !(*a).aggdirectargs.is_null()
            || (*a).aggstar
            || (*a).aggvariadic
        {
            return;
        }
        let entries: Vec<*mut pg_sys::TargetEntry> = list_ptrs((*a).args).collect();
        let [first, second] = entries[..] else { return };
        // 'deident.k_sum(integer,text)'::regprocedure, relabelled as oid
        let Some(aggregate) = constant_oid((*a).args) else { return };
        let Some((_, nargs, _)) = k_aggregate(aggregate) else { return };
        // Citus passes one argument as it is, several as a ROW (aggregate_utils.c)
        let arg = (*second).expr.cast::<pg_sys::Node>();
        let args: Vec<*mut pg_sys::Expr> = if nargs == 1 {
            vec![arg.cast()]
        } else if (*arg).type_ == pg_sys::NodeTag::T_RowExpr {
            list_ptrs::<pg_sys::Expr>((*arg.cast::<pg_sys::RowExpr>()).args).collect()
        } else {
            return;
        };
        if args.len() != nargs {
            return;
        }
        let Some(partial) = partial_aggregate(nargs) else { return };
        let mut targets: *mut pg_sys::List = std::ptr::null_mut();
        let mut types: *mut pg_sys::List = std::ptr::null_mut();
        targets = pg_sys::lappend(targets, first.cast());
        types = pg_sys::lappend_oid(types, pg_sys::OIDOID);
        for (i, &e) in args.iter().enumerate() {
            let te = pg_sys::makeTargetEntry(e, (2 + i) as i16, std::ptr::null_mut(), false);
            targets = pg_sys::lappend(targets, te.cast());
            types = pg_sys::lappend_oid(types, pg_sys::exprType(e.cast()));
        }
        (*a).aggfnoid = partial;
        (*a).args = targets;
        (*a).aggargtypes = types;
        (*a).aggtranstype = pg_sys::InvalidOid;
    }
}

/// Are `given` (a `_k_partial` call's argument types after the aggregate's oid) the types
/// `aggregate`, of `nargs` arguments, is declared with?
///
/// # Safety
/// In a transaction (a syscache read).
unsafe fn takes(aggregate: pg_sys::Oid, nargs: usize, given: &[pg_sys::Oid]) -> bool {
    // SAFETY: per the contract; get_func_signature returns a palloc'd array of as many types
    // as it says (or raises an ERROR for a function that does not exist).
    unsafe {
        let mut types: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut declared = 0;
        pg_sys::get_func_signature(aggregate, &mut types, &mut declared);
        declared.max(0) as usize == nargs
            && given.len() == nargs
            && given
                .iter()
                .enumerate()
                .all(|(i, &t)| t != pg_sys::InvalidOid && t == types.add(i).read())
    }
}

/// What running `aggregate` itself would need (nodeAgg.c, ExecInitAgg): the caller's EXECUTE
/// privilege on it (42501 otherwise).
fn may_execute(aggregate: pg_sys::Oid) {
    // SAFETY: an ACL check in a transaction; aclcheck_error raises the ERROR.
    unsafe {
        if pg_sys::pg_proc_aclcheck(aggregate, pg_sys::GetUserId(), pg_sys::ACL_EXECUTE as _)
            != pg_sys::AclResult::ACLCHECK_OK
        {
            pg_sys::aclcheck_error(
                pg_sys::AclResult::ACLCHECK_NO_PRIV,
                pg_sys::ObjectType::OBJECT_AGGREGATE,
                pg_sys::get_func_name(aggregate),
            );
        }
    }
}

/// Is `func` Citus's `pg_catalog.<name>` of `nargs` arguments (`worker_partial_agg`,
/// `coord_combine_agg`)?
fn is_citus_function(func: pg_sys::Oid, name: &std::ffi::CStr, nargs: i16) -> bool {
    catalog::with_proc(func, |form, _| {
        form.pronamespace == pg_sys::Oid::from_u32(pg_sys::PG_CATALOG_NAMESPACE)
            && form.pronargs == nargs
            // SAFETY: a NameData is NUL-terminated.
            && unsafe { std::ffi::CStr::from_ptr(form.proname.data.as_ptr()) } == name
    })
    .unwrap_or(false)
}

/// `deident.k_state`'s oid (InvalidOid without it).
fn k_state_type() -> pg_sys::Oid {
    // SAFETY: syscache lookups by name.
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"deident".as_ptr(), true);
        pg_sys::GetSysCacheOid(
            pg_sys::SysCacheIdentifier::TYPENAMENSP as i32,
            pg_sys::Anum_pg_type_oid as i16,
            pg_sys::Datum::from(c"k_state".as_ptr()),
            pg_sys::Datum::from(schema),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    }
}

/// `aggregate`'s transition function, number of arguments and family of states if it is one
/// of pg_deident's aggregates over deident.k_state: a plain aggregate of pg_deident's schema
/// over that type, named in `K_AGGREGATES`, of one to four arguments, whose transition
/// function is a C function of that schema.
fn k_aggregate(aggregate: pg_sys::Oid) -> Option<(pg_sys::Oid, usize, Kind)> {
    use catalog::{AGG_KIND, AGG_NUM_DIRECT_ARGS, AGG_TRANSFN, AGG_TRANSTYPE};
    let columns = catalog::aggregate_columns(
        aggregate,
        &[AGG_KIND, AGG_NUM_DIRECT_ARGS, AGG_TRANSFN, AGG_TRANSTYPE],
    )?;
    let [kind, direct, transfn, transtype] = columns[..] else { return None };
    let oid = |d: pg_sys::Datum| pg_sys::Oid::from(d.value() as u32);
    let state = k_state_type();
    let plain = kind?.value() as u8 == b'n' && direct?.value() as i16 == 0;
    // SAFETY: a syscache read in a transaction.
    let schema = unsafe { pg_sys::get_func_namespace(aggregate) };
    if !plain
        || state == pg_sys::InvalidOid
        || oid(transtype?) != state
        || !catalog::is_deident_namespace(schema)
    {
        return None;
    }
    let transfn = oid(transfn?);
    catalog::our_function_name(transfn)?;
    // by name too: deident._k_partial(oid, "any") passes every test above (a review)
    let (family, nargs) = catalog::with_proc(aggregate, |form, _| {
        // SAFETY: proname is a NUL-terminated NameData.
        let name = unsafe { std::ffi::CStr::from_ptr(form.proname.data.as_ptr()) };
        let family = K_AGGREGATES.iter().find(|(n, _)| *n == name).map(|&(_, f)| f);
        (family, form.pronargs as usize)
    })?;
    let family = family?;
    (1..=MAX_ARGS).contains(&nargs).then_some((transfn, nargs, family))
}

/// The aggregates over `k_state` and the family of their states: the k-aggregates, dp_count
/// (k_count_distinct's transition and combine functions), and dp_sum and dp_avg (each
/// person's total). The dp aggregates' final functions, where their groups are admitted,
/// noised and charged for, run on the coordinator (src/dp/).
const K_AGGREGATES: [(&std::ffi::CStr, Kind); 7] = [
    (c"k_count", Kind::KAggregate),
    (c"k_count_distinct", Kind::KAggregate),
    (c"k_sum", Kind::KAggregate),
    (c"k_avg", Kind::KAggregate),
    (c"dp_count", Kind::KAggregate),
    (c"dp_sum", Kind::DpAggregate),
    (c"dp_avg", Kind::DpAggregate),
];

/// Is `func` one of `deident._k_partial`'s overloads?
pub fn is_partial(func: pg_sys::Oid) -> bool {
    catalog::with_proc(func, |form, _| {
        // SAFETY: proname is a NUL-terminated NameData.
        let name = unsafe { std::ffi::CStr::from_ptr(form.proname.data.as_ptr()) };
        name == c"_k_partial" && catalog::is_deident_namespace(form.pronamespace)
    })
    .unwrap_or(false)
}

/// `deident._k_partial(oid, "any" × nargs)`.
fn partial_aggregate(nargs: usize) -> Option<pg_sys::Oid> {
    let types: Vec<pg_sys::Oid> =
        std::iter::once(pg_sys::OIDOID).chain(std::iter::repeat_n(pg_sys::ANYOID, nargs)).collect();
    our_function(c"_k_partial", &types)
}

/// The function `deident.<name>(types)`, if there is one.
fn our_function(name: &std::ffi::CStr, types: &[pg_sys::Oid]) -> Option<pg_sys::Oid> {
    // SAFETY: a lookup by qualified name; InvalidOid when there is none (missing_ok).
    let oid = unsafe {
        let names = pg_sys::list_make2_impl(
            pg_sys::NodeTag::T_List,
            pg_sys::ListCell {
                ptr_value: pg_sys::makeString(c"deident".as_ptr().cast_mut()).cast(),
            },
            pg_sys::ListCell { ptr_value: pg_sys::makeString(name.as_ptr().cast_mut()).cast() },
        );
        pg_sys::LookupFuncName(names, types.len() as i32, types.as_ptr(), true)
    };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// The name errors give.
pub const COMBINE: &str = "_k_combine_partials";

/// What a `_k_combine_partials` call site keeps (fn_extra of its transition's FmgrInfo).
struct CombineSite {
    aggregate: pg_sys::Oid,
    family: Kind,
}

/// `_k_combine_partials_trans(k_state, aggregate oid, cstring, anyelement)`: the partial
/// state in the text (a worker's `worker_partial_agg` or `_k_partial` result) combined into
/// the group's, as `coord_combine_agg` does with the state type's input function and the
/// aggregate's combine function, but checked once per call site and opened once.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_combine_partials_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the transition function declared in SQL; argument 2 is a
    // C string when not NULL.
    unsafe {
        let aggregate = combined_aggregate(fcinfo);
        // (inside an aggregate, not a window: checked when the site is made)
        let Some(site) = fmgr::call_site(fcinfo, || {
            agg_context(fcinfo);
            let family = check_combined(fcinfo, aggregate, 3);
            CombineSite { aggregate, family }
        }) else {
            DeidentError::OutsideAggregate.report()
        };
        if site.aggregate != aggregate {
            DeidentError::PartialNotKAggregate(COMBINE).report();
        }
        if fmgr::arg_is_null(fcinfo, 2) {
            // no partial state: the group's stays as it is (coord_combine_agg's rule)
            return if fmgr::arg_is_null(fcinfo, 0) {
                fmgr::return_null(fcinfo)
            } else {
                fmgr::arg(fcinfo, 0)
            };
        }
        let text = std::ffi::CStr::from_ptr(fmgr::arg(fcinfo, 2).cast_mut_ptr()).to_bytes();
        match site.family {
            Kind::KAggregate => combine_text::<super::memory::Group>(fcinfo, text),
            Kind::DpAggregate => combine_text::<crate::dp::aggregates::DpGroup>(fcinfo, text),
        }
    }
}
pg_function_info_v1!(pg_finfo_deident_k_combine_partials_trans);

/// The aggregate oid in argument 1 of a `_k_combine_partials` transition.
///
/// # Safety
/// `fcinfo` is a call of `_k_combine_partials_trans`.
unsafe fn combined_aggregate(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Oid {
    // SAFETY: per the contract.
    unsafe {
        if fmgr::arg_is_null(fcinfo, 1) {
            DeidentError::PartialNotKAggregate(COMBINE).report();
        }
        pg_sys::Oid::from(fmgr::arg(fcinfo, 1).value() as u32)
    }
}

/// What `_k_combine_partials` checks once per call site, as `coord_combine_agg` does per row
/// and more: `aggregate` is a k-aggregate (`k_aggregate`), the caller may execute it, and the
/// type argument `result_arg` of the call (coord_combine_agg's `NULL::type`, which decides the
/// type the final function returns) is the aggregate's result type.
///
/// # Safety
/// `fcinfo` is a call of `_k_combine_partials_trans` or `_final` inside an aggregate.
unsafe fn check_combined(
    fcinfo: pg_sys::FunctionCallInfo,
    aggregate: pg_sys::Oid,
    result_arg: i32,
) -> Kind {
    // SAFETY: per the contract; syscache reads.
    unsafe {
        let Some((_, _, family)) = k_aggregate(aggregate) else {
            DeidentError::PartialNotKAggregate(COMBINE).report()
        };
        let result = pg_sys::get_fn_expr_argtype((*fcinfo).flinfo, result_arg);
        if result == pg_sys::InvalidOid || result != pg_sys::get_func_rettype(aggregate) {
            DeidentError::PartialArgumentTypes(COMBINE).report();
        }
        may_execute(aggregate);
        family
    }
}

/// What a `_k_combine_partials` final call site keeps: the k-aggregate's final function's
/// call info, its FmgrInfo in `flinfo`.
struct FinalSite {
    call: pg_sys::FunctionCallInfo,
}

/// `_k_combine_partials_final(k_state, oid, cstring, anyelement) RETURNS anyelement`
/// (FINALFUNC_EXTRA: the last three are NULL, their types known): the k-aggregate's own final
/// function on the combined state, where k is checked. The aggregate is read from the call's
/// Aggref, whose first argument is a constant (the planner's rewrite, or a direct call's,
/// which the transition checked).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_combine_partials_final(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the final function; the site's call info has room for one
    // argument and lives in fn_mcxt with its FmgrInfo.
    unsafe {
        agg_context(fcinfo);
        if fmgr::arg_is_null(fcinfo, 0) {
            return fmgr::return_null(fcinfo);
        }
        let Some(site) = fmgr::call_site(fcinfo, || final_site(fcinfo)) else {
            DeidentError::OutsideAggregate.report()
        };
        let call = site.call;
        let args = (*call).args.as_mut_slice(1);
        args[0] = pg_sys::NullableDatum { value: fmgr::arg(fcinfo, 0), isnull: false };
        (*call).context = (*fcinfo).context;
        (*call).fncollation = (*fcinfo).fncollation;
        (*call).isnull = false;
        let Some(finalfn) = (*(*call).flinfo).fn_addr else {
            DeidentError::PartialNotKAggregate(COMBINE).report()
        };
        let result = finalfn(call);
        if (*call).isnull {
            return fmgr::return_null(fcinfo);
        }
        result
    }
}
pg_function_info_v1!(pg_finfo_deident_k_combine_partials_final);

/// The k-aggregate of this final call (its Aggref's constant first argument), checked as the
/// transition checks it, and its final function's call.
///
/// # Safety
/// `fcinfo` is a call of `_k_combine_partials_final` inside an aggregate.
unsafe fn final_site(fcinfo: pg_sys::FunctionCallInfo) -> FinalSite {
    // SAFETY: per the contract; AggGetAggref gives the call's Aggref (or NULL), whose args are
    // TargetEntry nodes; allocations in fn_mcxt.
    unsafe {
        let aggref = pg_sys::AggGetAggref(fcinfo);
        let aggregate = if aggref.is_null() { None } else { constant_oid((*aggref).args) };
        let Some(aggregate) = aggregate else {
            DeidentError::PartialNotKAggregate(COMBINE).report()
        };
        check_combined(fcinfo, aggregate, 3);
        use catalog::AGG_FINALFN;
        let finalfn = catalog::aggregate_columns(aggregate, &[AGG_FINALFN])
            .and_then(|c| c[0])
            .map(|d| pg_sys::Oid::from(d.value() as u32))
            .filter(|&f| f != pg_sys::InvalidOid);
        let Some(finalfn) = finalfn else { DeidentError::PartialNotKAggregate(COMBINE).report() };
        let flinfo = (*fcinfo).flinfo;
        let cx = (*flinfo).fn_mcxt;
        let finfo = pg_sys::MemoryContextAllocZero(cx, std::mem::size_of::<pg_sys::FmgrInfo>())
            .cast::<pg_sys::FmgrInfo>();
        pg_sys::fmgr_info_cxt(finalfn, finfo, cx);
        let size = std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
            + std::mem::size_of::<pg_sys::NullableDatum>();
        let call =
            pg_sys::MemoryContextAllocZero(cx, size).cast::<pg_sys::FunctionCallInfoBaseData>();
        (*call).flinfo = finfo;
        (*call).nargs = 1;
        FinalSite { call }
    }
}

/// Are `aggregate`'s partial states ones that `_k_partial` makes and `_k_combine_partials`
/// combines (a k-aggregate's or a dp aggregate's)?
pub fn combinable(aggregate: pg_sys::Oid) -> bool {
    k_aggregate(aggregate).is_some()
}

/// The aggregate whose partial states a call of `deident._k_combine_partials` combines (its
/// constant first argument); None for a call of any other aggregate. The dp charge counts
/// such a call of a dp aggregate as a call of that aggregate (src/dp/charge.rs).
///
/// # Safety
/// `aggref` is a valid Aggref.
pub unsafe fn combined_by_us(aggref: *mut pg_sys::Aggref) -> Option<pg_sys::Oid> {
    // SAFETY: per the contract.
    unsafe {
        let aggregate = three_argument_aggregate(aggref)?;
        is_combine_partials((*aggref).aggfnoid).then_some(aggregate)
    }
}

/// Why a call of `deident._k_partial` is refused when it is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialProblem {
    /// Its aggregate is not a constant naming one of pg_deident's (42809).
    Unnamed,
    /// Its arguments are not of the aggregate's types (42804).
    Types,
}

/// The planning checks of a call of `deident._k_partial` (src/dp/plan.rs): what its
/// transition checks on its first row, checked before any row, so that no error of a bad call
/// depends on the data (a review had one tell whether a row existed, also inside a dp
/// statement). None for any other call; for dp_sum's and dp_avg's, their bound arguments
/// (lower, upper), which are checked as theirs are.
///
/// # Safety
/// `aggref` is a valid Aggref of a query being planned.
#[allow(clippy::type_complexity)]
pub unsafe fn partial_call(
    aggref: *mut pg_sys::Aggref,
) -> Option<Result<Option<(*mut pg_sys::Expr, *mut pg_sys::Expr)>, PartialProblem>> {
    // SAFETY: per the contract; the arguments are TargetEntry nodes.
    unsafe {
        // pointer reads first: _k_partial returns cstring and takes the aggregate's oid first
        if (*aggref).aggtype != pg_sys::CSTRINGOID || !is_partial((*aggref).aggfnoid) {
            return None;
        }
        let Some((aggregate, (_, nargs, family))) =
            constant_oid((*aggref).args).and_then(|a| Some((a, k_aggregate(a)?)))
        else {
            return Some(Err(PartialProblem::Unnamed));
        };
        // the call's arguments, without the columns an ORDER BY inside it adds (resjunk)
        let args = crate::dp::plan::aggregate_args(aggref);
        let types: Vec<pg_sys::Oid> =
            args.iter().skip(1).map(|&te| pg_sys::exprType((*te).expr.cast())).collect();
        if !takes(aggregate, nargs, &types) {
            return Some(Err(PartialProblem::Types));
        }
        may_execute(aggregate);
        Some(Ok((family == Kind::DpAggregate).then(|| ((*args[3]).expr, (*args[4]).expr))))
    }
}

/// Is `aggref` a call of `deident._k_combine_partials` whose first argument is not a constant
/// when the statement is planned? The planner may fold it into one later (a SQL function, a
/// parameter of a custom plan), past the checks of dp aggregate calls, which must see which
/// aggregate a combination is of (src/dp/plan.rs).
///
/// # Safety
/// `aggref` is a valid Aggref.
pub unsafe fn combines_unnamed(aggref: *mut pg_sys::Aggref) -> bool {
    // SAFETY: per the contract.
    unsafe {
        arg_count(aggref) == 3
            && constant_oid((*aggref).args).is_none()
            && is_combine_partials((*aggref).aggfnoid)
    }
}

/// Is `aggfnoid` `deident._k_combine_partials`?
fn is_combine_partials(aggfnoid: pg_sys::Oid) -> bool {
    combine_partials_aggregate().is_some_and(|(o, _)| o == aggfnoid)
}

/// The aggregate whose partial states a call of Citus's `coord_combine_agg` combines: what
/// the coordinator's plan holds while Citus's planner makes it (before the rewrite below).
///
/// # Safety
/// `aggref` is a valid Aggref.
pub unsafe fn combined_by_citus(aggref: *mut pg_sys::Aggref) -> Option<pg_sys::Oid> {
    // SAFETY: per the contract.
    unsafe {
        let aggregate = three_argument_aggregate(aggref)?;
        is_citus_function((*aggref).aggfnoid, c"coord_combine_agg", 3).then_some(aggregate)
    }
}

/// The constant first argument of a call of three arguments (what either combination takes:
/// the aggregate, the partial state, the result's type); pointer reads first.
///
/// # Safety
/// `aggref` is a valid Aggref.
unsafe fn three_argument_aggregate(aggref: *mut pg_sys::Aggref) -> Option<pg_sys::Oid> {
    // SAFETY: per the contract.
    unsafe {
        if arg_count(aggref) != 3 {
            return None;
        }
        constant_oid((*aggref).args)
    }
}

/// The constant (an oid, regproc or regprocedure, perhaps relabelled) in the first of an
/// aggregate call's arguments.
///
/// # Safety
/// `args` is an Aggref's argument list (TargetEntry nodes).
unsafe fn constant_oid(args: *mut pg_sys::List) -> Option<pg_sys::Oid> {
    // SAFETY: per the contract.
    unsafe {
        let first = list_ptrs::<pg_sys::TargetEntry>(args).next()?;
        let mut node = (*first).expr.cast::<pg_sys::Node>();
        while (*node).type_ == pg_sys::NodeTag::T_RelabelType {
            node = (*node.cast::<pg_sys::RelabelType>()).arg.cast();
        }
        let c = node.cast::<pg_sys::Const>();
        let usable = (*node).type_ == pg_sys::NodeTag::T_Const
            && [pg_sys::OIDOID, pg_sys::REGPROCEDUREOID, pg_sys::REGPROCOID]
                .contains(&(*c).consttype)
            && !(*c).constisnull;
        usable.then(|| pg_sys::Oid::from((*c).constvalue.value() as u32))
    }
}

/// On a Citus coordinator: the plan's `coord_combine_agg(<k-aggregate>, partial, NULL::type)`
/// calls become `deident._k_combine_partials(...)` (same arguments, same result), which
/// Citus's planner made with `standard_planner` inside its own, past the query rewrite above;
/// so this runs on the finished plan, after Citus's planner returned it. Only calls of a
/// constant k-aggregate of ours whose type argument is its result type, in Agg nodes that
/// finalize (not partial aggregation), with no ORDER BY, DISTINCT or FILTER, and a transition
/// state the planner does not share with another aggregate; the rest is left to Citus.
/// `dp_checked`: the statement's dp aggregate calls passed their checks (src/dp/plan.rs), so
/// that a combination of a dp aggregate's states made here is marked as its checked call.
/// `repeated`: the aggregates the statement calls more than once with one call
/// (`repeated_calls`).
///
/// # Safety
/// `stmt` is a valid PlannedStmt just made; `repeated` is a List of oids, or NIL.
#[pg_guard]
pub unsafe extern "C-unwind" fn rewrite_coordinator_combines(
    stmt: *mut pg_sys::PlannedStmt,
    dp_checked: bool,
    repeated: *mut pg_sys::List,
) {
    // SAFETY: per the contract; the Aggrefs are the plan's, changed in place.
    unsafe {
        let repeated: Vec<pg_sys::Oid> = list_oids(repeated).collect();
        // (the Agg node, each Aggref it evaluates), for Agg nodes over a Citus scan: a
        // coord_combine_agg a statement calls itself is the caller's (a review: rewritten, it
        // would be checked against another function's privileges)
        let mut calls: Vec<(*mut pg_sys::Plan, *mut pg_sys::Aggref)> = Vec::new();
        crate::dp::charge::each_node(stmt, &mut |plan, _| {
            if (*plan).type_ == pg_sys::NodeTag::T_Agg
                && (*plan.cast::<pg_sys::Agg>()).aggsplit == pg_sys::AggSplit::AGGSPLIT_SIMPLE
                && over_citus_scan((*plan).lefttree)
            {
                for tree in [(*plan).targetlist.cast::<pg_sys::Node>(), (*plan).qual.cast()] {
                    for a in crate::dp::plan::aggrefs(tree) {
                        calls.push((plan, a));
                    }
                }
            }
            false
        });
        // coord_combine_agg's arguments: oid, cstring, the result's type
        if !calls
            .iter()
            .any(|&(_, a)| (*a).aggtype != pg_sys::CSTRINGOID && list_len((*a).args) == 3)
        {
            return;
        }
        if !catalog::citus_installed() {
            return;
        }
        let mut ours: Option<(pg_sys::Oid, pg_sys::Oid)> = None;
        // the calls rewritten here (the only ones `merge_repeated` may merge)
        let mut rewritten: Vec<*mut pg_sys::Aggref> = Vec::new();
        for &(plan, a) in &calls {
            // A transition state the planner shares between two aggregates (nodeAgg.c: same
            // transition function and inputs, final functions that do not modify it) must not
            // get a final function that does: such a call is left to Citus.
            let shared = calls.iter().any(|&(p, b)| {
                p == plan && (*b).aggtransno == (*a).aggtransno && (*b).aggno != (*a).aggno
            });
            if shared
                || list_len((*a).args) != 3
                || !is_citus_function((*a).aggfnoid, c"coord_combine_agg", 3)
                || !(*a).aggorder.is_null()
                || !(*a).aggdistinct.is_null()
                || !(*a).aggfilter.is_null()
                || !(*a).aggdirectargs.is_null()
                || (*a).aggstar
                || (*a).aggvariadic
                || (*a).aggsplit != pg_sys::AggSplit::AGGSPLIT_SIMPLE
            {
                continue;
            }
            let Some(aggregate) = constant_oid((*a).args) else { continue };
            if k_aggregate(aggregate).is_none()
                || (*a).aggtype != pg_sys::get_func_rettype(aggregate)
            {
                continue;
            }
            let (combine, state) = match ours {
                Some(o) => o,
                None => match combine_partials_aggregate() {
                    Some(o) => *ours.insert(o),
                    None => return,
                },
            };
            (*a).aggfnoid = combine;
            rewritten.push(a);
            (*a).aggtranstype = state;
            // a dp aggregate's combination is its call, which the statement's checks passed
            // (src/dp/plan.rs, `CHECKED`; without them, the executor refuses it)
            if dp_checked {
                (*a).location = crate::dp::plan::CHECKED;
            }
            depends_on(stmt, combine);
        }
        if !repeated.is_empty() && !rewritten.is_empty() {
            merge_repeated(&calls, &rewritten, &repeated);
        }
    }
}

/// The k- and dp aggregates that `query` calls more than once, each time with the same call
/// (`equal`) and none with a volatile function in it, as `SELECT org, dp_count(p) ... HAVING
/// dp_count(p) > 10` does: PostgreSQL's planner gives such calls one aggno (prepagg.c), and
/// the executor evaluates and finalizes them once. Citus's planner makes a worker column and a
/// combination for each; `merge_repeated` makes those one again. NIL unless Citus is
/// installed; a List of oids in the current memory context (the planner hook calls this and
/// must hold nothing to drop while the planner runs: hooks.rs).
///
/// # Safety
/// `query` is a valid Query about to be planned.
#[pg_guard]
pub unsafe extern "C-unwind" fn repeated_calls(query: *mut pg_sys::Query) -> *mut pg_sys::List {
    // SAFETY: per the contract; a read-only walk, and syscache reads.
    unsafe {
        let mut found: Vec<*mut pg_sys::Aggref> = Vec::new();
        walk_tree(query.cast(), true, &mut |node| {
            if (*node).type_ == pg_sys::NodeTag::T_Aggref {
                found.push(node.cast());
            }
            Visit::Continue
        });
        let mut repeated: Vec<pg_sys::Oid> = Vec::new();
        for (i, &a) in found.iter().enumerate() {
            let oid = (*a).aggfnoid;
            // (once per aggregate, at its first call)
            if found[..i].iter().any(|&b| (*b).aggfnoid == oid) {
                continue;
            }
            // a volatile call is evaluated for each place it is written (prepagg.c
            // find_compatible_agg), so each has its own column, as on one node
            let mut calls = found[i..].iter().filter(|&&b| (*b).aggfnoid == oid);
            if calls.clone().count() >= 2
                && calls.all(|&b| pg_sys::equal(a.cast(), b.cast()))
                && !pg_sys::contain_volatile_functions(a.cast())
            {
                repeated.push(oid);
            }
        }
        // catalog reads last, for statements that repeat a call only
        if repeated.is_empty() || !catalog::citus_installed() {
            return std::ptr::null_mut();
        }
        let mut list: *mut pg_sys::List = std::ptr::null_mut();
        for oid in repeated {
            if k_aggregate(oid).is_some() {
                list = pg_sys::lappend_oid(list, oid);
            }
        }
        list
    }
}

/// In each Agg node of `calls`, the combinations of one repeated call (`repeated_calls`)
/// become one aggregate, as the calls are on one node: each takes the first's arguments (its
/// worker column; the workers compute the columns once, and send both) and its aggno and
/// transition, so the executor combines and finalizes it once. For a dp aggregate that is one
/// noisy answer for the target list and HAVING alike, and one charge (charge.rs counts equal
/// calls once), where there were two answers, each charged. That the two columns hold the same
/// states rests on `repeated_calls` (every call of the aggregate in the statement is one call,
/// and all of a node's combinations come from one query level); the `equal` test below only
/// makes sure the rest of the combination (its types, collations, mark) is the first's. The
/// node's aggnos and transitions are then numbered again without gaps (nodeAgg.c sizes its
/// arrays by the largest of each).
///
/// # Safety
/// `calls` are the Agg nodes and their Aggrefs (target list and qual) that
/// `rewrite_coordinator_combines` found, `rewritten` those of them it made combinations of
/// ours (a combination a statement wrote itself is never merged).
unsafe fn merge_repeated(
    calls: &[(*mut pg_sys::Plan, *mut pg_sys::Aggref)],
    rewritten: &[*mut pg_sys::Aggref],
    repeated: &[pg_sys::Oid],
) {
    // SAFETY: per the contract; the plan's own nodes, changed in place, and a copy.
    unsafe {
        let mut plans: Vec<*mut pg_sys::Plan> = calls.iter().map(|&(p, _)| p).collect();
        plans.dedup();
        for plan in plans {
            // a chain of Agg nodes (grouping sets) shares one AggState: left as it is
            if !(*plan.cast::<pg_sys::Agg>()).chain.is_null() {
                continue;
            }
            let mut aggrefs: Vec<*mut pg_sys::Aggref> = Vec::new();
            for &(p, a) in calls {
                // (each once, so that each is numbered once)
                if p == plan && !aggrefs.contains(&a) {
                    aggrefs.push(a);
                }
            }
            let of = |a: *mut pg_sys::Aggref| {
                rewritten.contains(&a).then(|| constant_oid((*a).args)).flatten()
            };
            let mut merged = false;
            for (i, &a) in aggrefs.iter().enumerate() {
                let Some(aggregate) = of(a).filter(|o| repeated.contains(o)) else { continue };
                let Some(&first) = aggrefs[..i].iter().find(|&&b| of(b) == Some(aggregate)) else {
                    continue;
                };
                if (*first).aggno == (*a).aggno {
                    continue;
                }
                let merged_call = pg_sys::copyObjectImpl(a.cast()).cast::<pg_sys::Aggref>();
                (*merged_call).args = pg_sys::copyObjectImpl((*first).args.cast()).cast();
                (*merged_call).aggno = (*first).aggno;
                (*merged_call).aggtransno = (*first).aggtransno;
                if pg_sys::equal(merged_call.cast(), first.cast()) {
                    (*a).args = (*merged_call).args;
                    (*a).aggno = (*first).aggno;
                    (*a).aggtransno = (*first).aggtransno;
                    merged = true;
                }
            }
            if merged {
                for number in [
                    |a: *mut pg_sys::Aggref| &mut (*a).aggno,
                    |a: *mut pg_sys::Aggref| &mut (*a).aggtransno,
                ] {
                    let mut used: Vec<i32> = aggrefs.iter().map(|&a| *number(a)).collect();
                    used.sort_unstable();
                    used.dedup();
                    for &a in &aggrefs {
                        if let Ok(dense) = used.binary_search(number(a)) {
                            *number(a) = dense as i32;
                        }
                    }
                }
            }
        }
    }
}

/// Whether `plan` is a Citus scan, or reaches one through the nodes Citus and the planner put
/// between it and the coordinator's aggregation (a sort, a projection, a materialization).
///
/// # Safety
/// `plan` is a valid Plan node or NULL.
unsafe fn over_citus_scan(plan: *mut pg_sys::Plan) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let mut plan = plan;
        while !plan.is_null() {
            match (*plan).type_ {
                pg_sys::NodeTag::T_CustomScan => {
                    return catalog::is_citus_scan(plan.cast());
                }
                pg_sys::NodeTag::T_Sort
                | pg_sys::NodeTag::T_IncrementalSort
                | pg_sys::NodeTag::T_Result
                | pg_sys::NodeTag::T_Material => plan = (*plan).lefttree,
                _ => return false,
            }
        }
        false
    }
}

/// Records that the plan uses function `func` (as the planner does for the functions it
/// plans: setrefs.c, `record_plan_function_dependency`), so that a cached plan is made again
/// if the function is dropped or replaced.
///
/// # Safety
/// `stmt` is a valid PlannedStmt being finished; `func` a function's OID.
unsafe fn depends_on(stmt: *mut pg_sys::PlannedStmt, func: pg_sys::Oid) {
    // SAFETY: per the contract; a PlanInvalItem node in the current memory context (the
    // plan's), added to the plan's list.
    unsafe {
        let cache = pg_sys::SysCacheIdentifier::PROCOID as i32;
        let hash = pg_sys::GetSysCacheHashValue(
            cache,
            pg_sys::Datum::from(func),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        );
        let recorded = list_ptrs::<pg_sys::PlanInvalItem>((*stmt).invalItems)
            .any(|i| (*i).cacheId == cache && (*i).hashValue == hash);
        if !recorded {
            let item = pg_sys::palloc0(std::mem::size_of::<pg_sys::PlanInvalItem>())
                .cast::<pg_sys::PlanInvalItem>();
            (*item).type_ = pg_sys::NodeTag::T_PlanInvalItem;
            (*item).cacheId = cache;
            (*item).hashValue = hash;
            (*stmt).invalItems = pg_sys::lappend((*stmt).invalItems, item.cast());
        }
    }
}

/// Whether `query` (at any level: subqueries, CTEs, sublinks) calls Citus's
/// `coord_combine_agg` itself. Such a statement's plan is left as Citus makes it
/// (`rewrite_coordinator_combines` is for the calls Citus writes): a review had a role's own
/// call over a distributed table rewritten, and so checked against another function's
/// privileges.
///
/// # Safety
/// `query` is a valid Query about to be planned.
#[pg_guard]
pub unsafe extern "C-unwind" fn names_coord_combine_agg(query: *mut pg_sys::Query) -> bool {
    // SAFETY: per the contract; a read-only walk.
    unsafe {
        let mut candidates: Vec<pg_sys::Oid> = Vec::new();
        walk_tree(query.cast(), true, &mut |node| {
            if (*node).type_ == pg_sys::NodeTag::T_Aggref {
                let a = node.cast::<pg_sys::Aggref>();
                if arg_count(a) == 3 && (*a).aggtype != pg_sys::CSTRINGOID {
                    candidates.push((*a).aggfnoid);
                }
            }
            Visit::Continue
        });
        !candidates.is_empty()
            && catalog::citus_installed()
            && candidates.iter().any(|&f| is_citus_function(f, c"coord_combine_agg", 3))
    }
}

/// The number of a call's arguments: its argument list without the columns that an ORDER BY
/// inside the call adds to it (resjunk), which are not arguments (a call with one was taken for
/// another function's: `_k_partial(..., p ORDER BY id)` was refused as of the wrong types).
///
/// # Safety
/// `aggref` is a valid Aggref.
unsafe fn arg_count(aggref: *mut pg_sys::Aggref) -> usize {
    // SAFETY: per the contract.
    unsafe { crate::dp::plan::aggregate_args(aggref).len() }
}

/// The length of a List (0 for NIL).
///
/// # Safety
/// `list` is a List or NULL.
unsafe fn list_len(list: *mut pg_sys::List) -> usize {
    // SAFETY: per the contract.
    if list.is_null() {
        0
    } else {
        unsafe { (*list).length.max(0) as usize }
    }
}

/// `deident._k_combine_partials(oid, cstring, anyelement)` and `deident.k_state`.
fn combine_partials_aggregate() -> Option<(pg_sys::Oid, pg_sys::Oid)> {
    let types = [pg_sys::OIDOID, pg_sys::CSTRINGOID, pg_sys::ANYELEMENTOID];
    let oid = our_function(c"_k_combine_partials", &types)?;
    let state = k_state_type();
    (state != pg_sys::InvalidOid).then_some((oid, state))
}

#[cfg(test)]
mod tests {
    use super::{Packed, Pre};
    use pgrx::pg_sys;

    #[test]
    fn a_pre_holds_a_128_bit_sum_in_its_8_byte_aligned_header() {
        assert_eq!(std::mem::size_of::<Pre>(), 32);
        assert_eq!(std::mem::align_of::<Pre>(), 8);
        let mut pre = Pre { sum_lo: 0, sum_hi: 0, rows: 0, cap: 5, n: 0 };
        let big = i128::from(i64::MAX);
        for sum in [0, 1, -1, big * 2, -big * 3, i128::MAX, i128::MIN] {
            pre.set_sum(sum);
            assert_eq!(pre.sum(), sum);
        }
        // a Pre's tag is neither a packed state's (odd) nor an object's datum's (a multiple of
        // 8 read-write, 2 past one read-only)
        let chunk = 0x7f00_0000_1000usize as *mut Pre;
        let d = Pre::datum(chunk);
        assert_eq!(Pre::of(d), Some(chunk));
        assert!(Packed::of(d).is_none());
        for other in [0x7f00_0000_1018usize, 0x7f00_0000_101a, 0x7f00_0000_1019] {
            assert!(Pre::of(pg_sys::Datum::from(other)).is_none());
        }
    }

    #[test]
    fn a_packed_state_holds_its_rows_and_sum_to_the_ends_of_its_range() {
        let rows_max = (1i64 << Packed::ROW_BITS) - 1;
        let sum_max = (1i64 << (Packed::SUM_BITS - 1)) - 1;
        for (rows, sum) in
            [(0, 0), (1, -1), (rows_max, sum_max), (rows_max, -sum_max - 1), (31, 31_000)]
        {
            let p = Packed::new(rows, sum).expect("in range");
            assert_eq!((p.rows(), p.sum()), (rows, sum));
            // a pointer to an object is never taken for a packed state, nor the reverse
            assert!(Packed::of(p.datum()).is_some());
        }
        for (rows, sum) in [(rows_max + 1, 0), (-1, 0), (0, sum_max + 1), (0, -sum_max - 2)] {
            assert!(Packed::new(rows, sum).is_none(), "{rows} {sum}");
        }
        assert!(Packed::of(pgrx::pg_sys::Datum::from(0x7f00_1234_5678usize)).is_none());
    }
}
