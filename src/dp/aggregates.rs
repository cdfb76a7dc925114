//! dp_count, dp_sum and dp_avg in the server: transition, combine and final functions,
//! declared in sql/dp.sql.
//!
//! dp_count shares k_count_distinct's state and support functions (the distinct persons are
//! all it needs); dp_sum and dp_avg keep each person's total (state.rs), in a `deident.k_state`
//! of their own family (aggregates/expanded.rs: an expanded object between rows, sealed as
//! kind 2 when flattened), so that Citus pushes them down too (docs/citus.md). The final functions
//! take the terms their statement was charged for before it ran (charge.rs), leave out the
//! persons who do not count in the group (admission.rs), decide release (release.rs), then noise
//! (noise.rs), with randomness from the operating system.

use std::cell::RefCell;

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::admission;
use super::charge;
use super::noise::{self, OsRandom};
use super::release::{self, Params, ReleaseError};
use super::state::{self, Bounds, BoundsError, DpState};
use crate::aggregates::expanded::{self, new_object, rw_datum, update_arg, Family, Placement};
use crate::aggregates::memory::{agg_context, Group, PersonType, PgEnv, ValueType};
use crate::aggregates::numeric;
use crate::aggregates::state::StateError;
use crate::aggregates::support::{self, person_of, person_type, state_error, value_type};
use crate::error::{DeidentError, OrReport};
use crate::fmgr::{self, pg_function_info_v1};
use crate::seal::{self, Kind};
use crate::{guc, preload};

/// dp_sum's and dp_avg's group: the types learnt on its first row (None and Unknown in a
/// state opened from sealed bytes, which is only combined or finalized) and the persons'
/// totals. It lives in an expanded object (aggregates/expanded.rs), whose methods mark it; in C
/// order, so that a row's reads (the types, then the state's tail) follow the object's header
/// in its first two cache lines.
#[repr(C)]
pub struct DpGroup {
    value: ValueType,
    person: PersonType,
    state: DpState<PgEnv>,
}

impl Family for DpGroup {
    const KIND: Kind = Kind::DpAggregate;

    fn methods() -> &'static pg_sys::ExpandedObjectMethods {
        expanded::dp_methods()
    }

    fn decode(encoding: &[u8], env: PgEnv) -> Result<DpGroup, StateError> {
        let state = DpState::decode(encoding, env)?;
        Ok(DpGroup { value: ValueType::None, person: PersonType::Unknown, state })
    }

    /// Padded as if the group held at least k persons (16 bytes each), to a power of two of
    /// at least 64 + 16k bytes, as k_state's other family is (expanded.rs): the number of
    /// persons of a group below k never shows in the length; at or above k, its size class
    /// does (docs/sealed-states.md).
    fn framed_len(&mut self) -> (usize, usize) {
        let len = self.state.encoded_len().unwrap_or_else(|e| state_error(e));
        let k = guc::min_group_size() as usize;
        (len, seal::padded_as_if_k(len, self.state.person_count(), k, 16))
    }

    fn encode(&self, out: &mut [u8]) {
        self.state.encode(out)
    }

    fn copy_in(&self, env: PgEnv) -> Result<DpGroup, StateError> {
        Ok(DpGroup { value: self.value, person: self.person, state: self.state.copy_in(env)? })
    }

    fn merge(&mut self, other: &DpGroup) -> Result<(), StateError> {
        self.state.merge(&other.state)?;
        if self.person == PersonType::Unknown {
            (self.value, self.person) = (other.value, other.person);
        }
        Ok(())
    }

    /// Straight from the bytes: a parallel leader or a Citus coordinator combines thousands of
    /// these, each of a group's persons' totals.
    fn merge_encoding(&mut self, encoding: &[u8], _: PgEnv) -> Result<(), StateError> {
        self.state.merge_encoded(encoding)
    }
}

thread_local! {
    /// The OS CSPRNG, buffered (noise.rs); one per process, used by the final functions only.
    static RNG: RefCell<OsRandom> = RefCell::new(OsRandom::new());
}

/// The bounds of type `typ` from two datums: integer types as integers, real types and
/// numeric as doubles. Used at planning (plan.rs) and on a group's first row.
///
/// # Safety
/// The datums are of type `typ`.
pub unsafe fn bounds_of(
    typ: pg_sys::Oid,
    lower: pg_sys::Datum,
    upper: pg_sys::Datum,
) -> Result<Bounds, BoundsError> {
    // SAFETY: per the contract; numeric datums are read through their detoasted bytes.
    unsafe {
        let real = |d: pg_sys::Datum| -> Result<f64, BoundsError> {
            Ok(match value_type(typ) {
                ValueType::Float4 => f64::from(f32::from_bits(d.value() as u32)),
                ValueType::Float8 => f64::from_bits(d.value() as u64),
                _ => {
                    let bytes = fmgr::datum_bytes(d);
                    state::numeric_f64(&numeric::read(bytes).map_err(|_| BoundsError::NotFinite)?)
                }
            })
        };
        match value_type(typ) {
            ValueType::Int2 => {
                state::int_bounds(i64::from(lower.value() as i16), i64::from(upper.value() as i16))
            }
            ValueType::Int4 => {
                state::int_bounds(i64::from(lower.value() as i32), i64::from(upper.value() as i32))
            }
            ValueType::Int8 => state::int_bounds(lower.value() as i64, upper.value() as i64),
            ValueType::Float4 | ValueType::Float8 | ValueType::Numeric => {
                state::float_bounds(real(lower)?, real(upper)?)
            }
            ValueType::None => Err(BoundsError::NotConstant),
        }
    }
}

/// `_dp_trans(k_state, value "any", person "any", lower "any", upper "any")` for dp_sum and
/// dp_avg: adds the row's value to its person's total.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_dp_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the transition function declared in SQL.
    unsafe {
        let existing = update_arg::<DpGroup>(fcinfo, Placement::Shared);
        if fmgr::arg_is_null(fcinfo, 1) || fmgr::arg_is_null(fcinfo, 2) {
            // A row without a value or without a person contributes nothing.
            return match existing {
                Some(g) => rw_datum(g),
                None => {
                    let _ = agg_context(fcinfo);
                    fmgr::return_null(fcinfo)
                }
            };
        }
        let g = match existing {
            Some(g) if g.person != PersonType::Unknown => g,
            existing => first_row(fcinfo, existing),
        };
        let hash = person_of(fcinfo, 2, g.person);
        let v = fmgr::arg(fcinfo, 1);
        let word = match g.value {
            ValueType::Int2 => i64::from(v.value() as i16) as u64,
            ValueType::Int4 => i64::from(v.value() as i32) as u64,
            ValueType::Int8 => v.value() as u64,
            ValueType::Float4 => f64::from(f32::from_bits(v.value() as u32)).to_bits(),
            ValueType::Float8 => v.value() as u64,
            ValueType::Numeric => {
                let n =
                    numeric::read(fmgr::arg_bytes(fcinfo, 1)).unwrap_or_else(|e| state_error(e));
                state::numeric_f64(&n).to_bits()
            }
            ValueType::None => pgrx::error!("pg_deident: unsupported value type"),
        };
        g.state.add(hash, word).unwrap_or_else(|e| state_error(e));
        rw_datum(g)
    }
}
pg_function_info_v1!(pg_finfo_deident_dp_trans);

/// The group on its first contributing row: the types from the call's expression, the
/// bounds from its arguments; a new group, or one opened from sealed bytes (an initial value
/// of a superuser's aggregate), whose bounds must then be these. They are the same on every
/// row: plan.rs refused, when the query was planned, any bound that is not a constant, and
/// checked its value, so that no ERROR here depends on the data (the checks below repeat it
/// for a plan made without that hook, which the preload rules out).
///
/// # Safety
/// `fcinfo` is a transition call of dp_sum or dp_avg (perhaps through partial.rs's
/// `_k_partial`, which gives it a call expression of its own).
unsafe fn first_row(
    fcinfo: pg_sys::FunctionCallInfo,
    existing: Option<&mut DpGroup>,
) -> &mut DpGroup {
    // SAFETY: per the contract; flinfo carries the call's expression (nodeAgg.c builds one).
    unsafe {
        let cx = agg_context(fcinfo);
        preload::check().or_report();
        let flinfo = (*fcinfo).flinfo;
        let value = value_type(pg_sys::get_fn_expr_argtype(flinfo, 1));
        let person = person_type(pg_sys::get_fn_expr_argtype(flinfo, 2));
        if fmgr::arg_is_null(fcinfo, 3) || fmgr::arg_is_null(fcinfo, 4) {
            DeidentError::DpBounds(BoundsError::Null).report();
        }
        let typ = pg_sys::get_fn_expr_argtype(flinfo, 3);
        let bounds = bounds_of(typ, fmgr::arg(fcinfo, 3), fmgr::arg(fcinfo, 4))
            .unwrap_or_else(|e| DeidentError::DpBounds(e).report());
        if person == PersonType::Unknown {
            pgrx::error!("pg_deident: unsupported person type");
        }
        let g = match existing {
            Some(g) => {
                if g.state.bounds != bounds {
                    state_error(StateError::Mismatch);
                }
                g
            }
            None => new_object(cx, Placement::Shared, |env| DpGroup {
                value,
                person,
                state: DpState::new(bounds, env),
            }),
        };
        (g.value, g.person) = (value, person);
        g
    }
}

/// `_dp_combine(k_state, k_state)`: merges the second state's per-person totals into the
/// first (aggregates/support.rs, `combine`).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_dp_combine(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the combine function declared in SQL.
    unsafe { support::combine::<DpGroup>(fcinfo) }
}
pg_function_info_v1!(pg_finfo_deident_dp_combine);

fn noise_error(e: ReleaseError) -> ! {
    match e {
        ReleaseError::Random => DeidentError::DpRandom.report(),
        ReleaseError::Scale | ReleaseError::Delta => DeidentError::DpNoiseScale.report(),
    }
}

fn with_rng<R>(f: impl FnOnce(&mut OsRandom) -> R) -> R {
    RNG.with(|r| f(&mut r.borrow_mut()))
}

/// A noisy integer: `exact` plus noise of scale sensitivity/ε.
fn noisy(exact: i128, sensitivity: f64, epsilon: f64) -> i128 {
    match with_rng(|rng| noise::noisy_integer(rng, exact, sensitivity, epsilon)) {
        Some(Ok(v)) => v,
        Some(Err(_)) => noise_error(ReleaseError::Random),
        None => noise_error(ReleaseError::Scale),
    }
}

/// The group's noisy distinct-person count at `count_epsilon`, and whether it is released.
/// Each aggregate decides for itself: a decision shared between the aggregates of a row,
/// keyed by their persons, would tell whether two aggregates saw the same persons (a
/// disagreement proves they did not), which is one person's presence with certainty.
fn decide(persons: u64, count_epsilon: f64, p: Params) -> (i128, bool) {
    with_rng(|rng| release::decide(rng, persons, count_epsilon, p))
        .unwrap_or_else(|e| noise_error(e))
}

/// The first steps of every final function: the terms the statement was charged for (the
/// charge itself was made before the statement ran: charge.rs), checked before the data is
/// looked at, so that no error depends on the data.
///
/// # Safety
/// `fcinfo` is a final function's call info.
unsafe fn begin_final(fcinfo: pg_sys::FunctionCallInfo, count_share: f64) -> (Params, u32) {
    preload::check().or_report();
    // SAFETY: per the contract.
    let terms = unsafe { charge::terms(fcinfo) };
    let p = Params { epsilon: terms.epsilon, delta: guc::dp_delta(), k: guc::min_group_size() };
    if release::threshold(p.epsilon * count_share, p.delta, p.k).is_err() {
        DeidentError::DpNoiseScale.report();
    }
    (p, terms.per_person)
}

/// `_dp_count_final(k_state) RETURNS bigint` over k_count_distinct's state: all of ε on the
/// noisy distinct-person count, which is also the release decision.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_dp_count_final(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of a final function; argument 0 is the aggregate's state
    // (k_count_distinct's) or NULL.
    unsafe {
        let (p, per_person) = begin_final(fcinfo, 1.0);
        let Some(g) = expanded::state_datum::<Group>(fmgr::arg(fcinfo, 0)) else {
            // no persons: not released (the empty group's decision needs no noise)
            return fmgr::return_null(fcinfo);
        };
        // the group is known by its expanded object, whichever pointer to it a datum holds
        let state = expanded::identity(fmgr::arg(fcinfo, 0));
        let hashes = g.state.distinct_hashes().unwrap_or_else(|e| state_error(e));
        let mut persons = Vec::new();
        if persons.try_reserve_exact(hashes.len()).is_err() {
            state_error(crate::aggregates::state::StateError::OutOfMemory);
        }
        persons.extend_from_slice(hashes);
        // only the persons this call counts here (admission.rs)
        let key = |d: pg_sys::Datum| expanded::identity(d);
        let n = admission::admit(fcinfo, per_person, state, &mut persons, 1, &key, &mut |d, f| {
            let g = expanded::state_datum::<Group>(d)
                .unwrap_or_else(|| DeidentError::NotOurState.report());
            f(g.state.distinct_hashes().unwrap_or_else(|e| state_error(e)), 1);
        }) as u64;
        let (count, released) = decide(n, p.epsilon, p);
        if !released {
            return fmgr::return_null(fcinfo);
        }
        // a negative count is no answer; the clamp is post-processing
        pg_sys::Datum::from(i64::try_from(count.max(0)).unwrap_or(i64::MAX))
    }
}
pg_function_info_v1!(pg_finfo_deident_dp_count_final);

/// What dp_sum and dp_avg compute from a released group: the noisy clamped sum (ε/2).
enum Sum {
    Int(i128),
    /// Grid units and the grid step: the value is units · step, exactly.
    Real(i128, f64),
}

impl Sum {
    fn as_f64(&self) -> f64 {
        match *self {
            Sum::Int(v) => v as f64,
            Sum::Real(units, g) => units as f64 * g,
        }
    }
}

/// The shared part of dp_sum and dp_avg: charge, decide, and the noisy sum and count (None:
/// not released).
///
/// # Safety
/// Argument 0 is the aggregate's state or NULL.
unsafe fn sum_final(fcinfo: pg_sys::FunctionCallInfo) -> Option<(Sum, i128, Bounds)> {
    // SAFETY: per the contract.
    let (p, per_person) = unsafe { begin_final(fcinfo, 0.5) };
    // SAFETY: per the contract.
    let g = unsafe { expanded::state_datum::<DpGroup>(fmgr::arg(fcinfo, 0)) }?;
    let bounds = g.state.bounds;
    // the group is known by its expanded object, whichever pointer to it a datum holds
    // SAFETY: per the contract (not NULL: state_datum gave a group).
    let state = unsafe { expanded::identity(fmgr::arg(fcinfo, 0)) };
    let mut persons = g.state.persons().unwrap_or_else(|e| state_error(e));
    // only the persons this call counts here (admission.rs)
    // SAFETY: per the contract; the states of this call are dp_sum's or dp_avg's.
    let kept = unsafe {
        let key = |d: pg_sys::Datum| expanded::identity(d);
        admission::admit(fcinfo, per_person, state, &mut persons, 2, &key, &mut |d, f| {
            let g = expanded::state_datum::<DpGroup>(d)
                .unwrap_or_else(|| DeidentError::NotOurState.report());
            f(g.state.table().unwrap_or_else(|e| state_error(e)), 2);
        })
    };
    persons.truncate(2 * kept);
    let persons = persons.as_chunks::<2>().0;
    let (count, released) = decide(persons.len() as u64, p.epsilon / 2.0, p);
    if !released {
        return None;
    }
    let eps_sum = p.epsilon / 2.0;
    let sum = match bounds {
        Bounds::Int { lower, upper } => {
            let exact = state::clamped_int_sum(persons, lower, upper);
            let sens = bounds.sensitivity();
            // bounds of [0, 0] give a sum that is always 0: nothing to hide
            Sum::Int(if sens == 0.0 { exact } else { noisy(exact, sens, eps_sum) })
        }
        Bounds::Float { lower, upper } => match noise::grid_step(bounds.sensitivity()) {
            Some(g) => {
                let units = state::clamped_grid_sum(persons, lower, upper, g);
                Sum::Real(
                    noisy(units, noise::grid_sensitivity(bounds.sensitivity(), g), eps_sum),
                    g,
                )
            }
            None => Sum::Real(0, 1.0),
        },
    };
    Some((sum, count, bounds))
}

/// A double as a numeric datum (float8_numeric: the shortest decimal that reads back as it).
fn numeric_of(v: f64) -> pg_sys::Datum {
    // SAFETY: float8_numeric takes a float8 and returns a numeric (finite input: no ERROR).
    unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::float8_numeric,
            &[Some(pg_sys::Datum::from(v.to_bits()))],
        )
    }
    .unwrap_or_else(|| pgrx::error!("pg_deident: float8_numeric returned NULL"))
}

/// Defines a final function of dp_sum or dp_avg: `$body` maps (sum, count, bounds) to a Datum.
macro_rules! dp_final {
    ($name:ident, $finfo:ident, |$s:ident, $c:ident, $b:ident| $body:expr) => {
        #[pg_guard]
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn $name(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            // SAFETY: fmgr's call info of a final function declared in SQL.
            match unsafe { sum_final(fcinfo) } {
                #[allow(unused_variables)]
                Some(($s, $c, $b)) => $body,
                // SAFETY: as above.
                None => unsafe { fmgr::return_null(fcinfo) },
            }
        }
        pg_function_info_v1!($finfo);
    };
}

/// The average of the persons' totals, from the noisy sum and count, within the bounds
/// (post-processing: the true average of clamped totals always is).
fn average(sum: &Sum, count: i128, bounds: Bounds) -> f64 {
    let avg = sum.as_f64() / (count.max(1) as f64);
    match bounds {
        Bounds::Int { lower, upper } => avg.clamp(lower as f64, upper as f64),
        Bounds::Float { lower, upper } => avg.clamp(lower, upper),
    }
}

dp_final!(deident_dp_sum_int8_final, pg_finfo_deident_dp_sum_int8_final, |s, c, b| {
    let v = match s {
        Sum::Int(v) => v,
        Sum::Real(..) => state_error(crate::aggregates::state::StateError::Mismatch),
    };
    // saturating at bigint's range is post-processing of the noisy sum
    pg_sys::Datum::from(v.clamp(i64::MIN.into(), i64::MAX.into()) as i64)
});
dp_final!(deident_dp_sum_float8_final, pg_finfo_deident_dp_sum_float8_final, |s, c, b| {
    pg_sys::Datum::from(s.as_f64().to_bits())
});
dp_final!(deident_dp_sum_numeric_final, pg_finfo_deident_dp_sum_numeric_final, |s, c, b| {
    numeric_of(s.as_f64())
});
dp_final!(deident_dp_avg_float8_final, pg_finfo_deident_dp_avg_float8_final, |s, c, b| {
    pg_sys::Datum::from(average(&s, c, b).to_bits())
});
dp_final!(deident_dp_avg_numeric_final, pg_finfo_deident_dp_avg_numeric_final, |s, c, b| {
    numeric_of(average(&s, c, b))
});
