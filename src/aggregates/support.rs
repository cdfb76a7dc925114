//! The aggregates' transition and combine functions: plain fmgr functions over the states of
//! expanded.rs (type deident.k_state), declared in sql/k_aggregates.sql.
//!
//! One C function serves every value and person type: SQL declares it once per pair of
//! types, and it learns them once per group, from the call's expression (nodeAgg.c builds one
//! for each transition function) or, when the caller gives none (Citus's `worker_partial_agg`
//! calls it through `fmgr_info` alone), from its own declaration.

use pgrx::pg_guard;
use pgrx::pg_sys::{self, BuiltinOid};

use super::expanded::{
    combine_placement, copy_arg, merge_arg, new_object, rw_datum, sealed_copy, update_arg, Family,
    Placement,
};
use super::memory::{agg_context, Group, PersonType, PgEnv, ValueType};
use super::numeric;
use super::state::{person_hash, Acc, Decimal, KState, StateError, Wide};
use crate::error::{DeidentError, OrReport};
use crate::fmgr::{self, pg_function_info_v1};
use crate::{guc, preload};

pub fn state_error(e: StateError) -> ! {
    DeidentError::Aggregate(e).report()
}

pub(crate) fn value_type(oid: pg_sys::Oid) -> ValueType {
    match oid {
        o if o == BuiltinOid::INT2OID.value() => ValueType::Int2,
        o if o == BuiltinOid::INT4OID.value() => ValueType::Int4,
        o if o == BuiltinOid::INT8OID.value() => ValueType::Int8,
        o if o == BuiltinOid::FLOAT4OID.value() => ValueType::Float4,
        o if o == BuiltinOid::FLOAT8OID.value() => ValueType::Float8,
        o if o == BuiltinOid::NUMERICOID.value() => ValueType::Numeric,
        _ => ValueType::None,
    }
}

pub(crate) fn person_type(oid: pg_sys::Oid) -> PersonType {
    match oid {
        o if o == BuiltinOid::TEXTOID.value() => PersonType::Varlena,
        o if o == BuiltinOid::UUIDOID.value() => PersonType::Uuid,
        o if o == BuiltinOid::INT8OID.value() => PersonType::Int8,
        o if o == BuiltinOid::INT4OID.value() => PersonType::Int4,
        _ => PersonType::Unknown,
    }
}

/// The type of argument `n` of the call: from the call's expression, or, when the caller
/// gives none, from the function's declaration (which names concrete types).
///
/// # Safety
/// `flinfo` is the call's FmgrInfo.
unsafe fn arg_type(flinfo: *mut pg_sys::FmgrInfo, n: usize) -> pg_sys::Oid {
    // SAFETY: per the contract; get_func_signature returns a palloc'd array of nargs types
    // (or raises an ERROR for a function that does not exist).
    unsafe {
        let t = pg_sys::get_fn_expr_argtype(flinfo, n as i32);
        if t != pg_sys::InvalidOid {
            return t;
        }
        let mut types: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut nargs = 0;
        pg_sys::get_func_signature((*flinfo).fn_oid, &mut types, &mut nargs);
        if (n as i32) < nargs {
            types.add(n).read()
        } else {
            pg_sys::InvalidOid
        }
    }
}

/// The group for this transition call: the state in argument 0, or, on the group's first
/// row, a new one in the aggregate context, for the call's argument types.
///
/// # Safety
/// `fcinfo` is a transition call of one of the aggregates.
#[inline(always)]
unsafe fn group_for<'a>(
    fcinfo: pg_sys::FunctionCallInfo,
    acc: impl Fn(ValueType, PgEnv) -> Acc<PgEnv>,
    value_arg: Option<usize>,
    person_arg: usize,
) -> &'a mut Group {
    // SAFETY: argument 0 is the transition state, which lives until its memory context is
    // reset or deleted, after the last call that uses it.
    // (Transition states stay in the shared context also under Citus's worker_partial_agg,
    // whose final step is the type's output function, ours.)
    match unsafe { update_arg::<Group>(fcinfo, Placement::Shared) } {
        Some(g) if g.person != PersonType::Unknown => g,
        // SAFETY: per the contract.
        existing => unsafe { first_row(fcinfo, existing, acc, value_arg, person_arg) },
    }
}

/// `group_for` on a group's first row (out of line: every other row only finds its state):
/// `existing` is the state opened from an initial value, if the aggregate has one.
///
/// # Safety
/// As `group_for`.
#[inline(never)]
unsafe fn first_row(
    fcinfo: pg_sys::FunctionCallInfo,
    existing: Option<&mut Group>,
    acc: impl Fn(ValueType, PgEnv) -> Acc<PgEnv>,
    value_arg: Option<usize>,
    person_arg: usize,
) -> &mut Group {
    // SAFETY: fcinfo is fmgr's call info.
    let cx = unsafe { agg_context(fcinfo) };
    preload::check().or_report();
    // SAFETY: fcinfo is valid; its flinfo is the call's.
    let (value, person) = unsafe {
        let flinfo = (*fcinfo).flinfo;
        let value = match value_arg {
            Some(n) => value_type(arg_type(flinfo, n)),
            None => ValueType::None,
        };
        (value, person_type(arg_type(flinfo, person_arg)))
    };
    match existing {
        // A state opened from sealed bytes (an aggregate's initial value): it learns the
        // call's types, and must be of this aggregate's kind.
        Some(g) => {
            if !g.state.same_kind(&acc(value, PgEnv(cx))) {
                state_error(StateError::Mismatch);
            }
            g.value = value;
            g.person = person;
            g
        }
        // SAFETY: cx is the aggregate context.
        None => unsafe {
            new_object(cx, Placement::Shared, |env| {
                Group::new(value, person, KState::new(acc(value, env), guc::min_group_size(), env))
            })
        },
    }
}

/// The person's hash.
///
/// # Safety
/// Argument `n` is a non-NULL value of the type `person` says.
#[inline(always)]
pub(crate) unsafe fn person_of(
    fcinfo: pg_sys::FunctionCallInfo,
    n: usize,
    person: PersonType,
) -> u64 {
    // SAFETY: per the contract.
    unsafe { datum_person(fmgr::arg(fcinfo, n), person) }
}

/// The hash of a person datum.
///
/// # Safety
/// `d` is a non-NULL value of the type `person` says, alive through the call.
#[inline(always)]
pub(crate) unsafe fn datum_person(d: pg_sys::Datum, person: PersonType) -> u64 {
    // SAFETY: per the contract, the datum is of the given type.
    unsafe {
        match person {
            PersonType::Varlena => person_hash(fmgr::datum_bytes(d)),
            PersonType::Uuid => person_hash(std::slice::from_raw_parts(d.cast_mut_ptr::<u8>(), 16)),
            PersonType::Int8 => person_hash(&(d.value() as i64).to_le_bytes()),
            PersonType::Int4 => person_hash(&(d.value() as i32).to_le_bytes()),
            PersonType::Unknown => pgrx::error!("pg_deident: unsupported person type"),
        }
    }
}

/// A transition call whose row contributes nothing: the state as it was (SQL NULL before the
/// first contributing row).
///
/// # Safety
/// `fcinfo` is a transition call of one of the aggregates.
unsafe fn state_unchanged(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: per the contract; argument 0 is the transition state.
    unsafe {
        match update_arg::<Group>(fcinfo, Placement::Shared) {
            Some(g) => rw_datum(g),
            None => {
                let _ = agg_context(fcinfo);
                fmgr::return_null(fcinfo)
            }
        }
    }
}

/// Adds the person in argument `n` to the group, unless the group already has enough persons
/// (then it is not even hashed).
///
/// # Safety
/// Argument `n` is a non-NULL value of the group's person type.
#[inline(always)]
unsafe fn add_person_arg(fcinfo: pg_sys::FunctionCallInfo, g: &mut Group, n: usize) {
    if !g.state.saturated() {
        // SAFETY: per the contract.
        unsafe { add_person_hash(fcinfo, g, n) };
    }
}

/// `add_person_arg` for a state that still remembers persons (out of line: once a capped
/// state is full, a row only tests that).
///
/// # Safety
/// As `add_person_arg`.
#[inline(never)]
unsafe fn add_person_hash(fcinfo: pg_sys::FunctionCallInfo, g: &mut Group, n: usize) {
    // SAFETY: per the contract.
    let hash = unsafe { person_of(fcinfo, n, g.person) };
    g.state.add_person(hash).unwrap_or_else(|e| state_error(e));
}

/// `_k_trans(internal, value "any", person "any")` for k_sum and k_avg.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the transition function declared in SQL.
    unsafe { k_trans(fcinfo) }
}
pg_function_info_v1!(pg_finfo_deident_k_trans);

/// An fmgr function's body, unguarded.
pub(crate) type Body = unsafe fn(pg_sys::FunctionCallInfo) -> pg_sys::Datum;

/// Which of the transition functions a body is (partial.rs keeps the full states of the
/// first two packed, `Packed`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// k_sum's and k_avg's: value, then person.
    Sum,
    /// k_count's: person.
    Count,
    /// k_count_distinct's (and dp_count's): person; never full.
    Distinct,
}

/// The transition functions' bodies, for a caller that is itself a guarded fmgr function
/// (partial.rs, `_k_partial`), so that a row does not pay a second guard: the body of the
/// function at `addr`, if it is one of them, and which it is.
pub(crate) fn transition_body(addr: pg_sys::PGFunction) -> Option<(Body, Transition)> {
    let addr = addr? as usize;
    let bodies: [(pg_sys::PGFunction, Body, Transition); 3] = [
        (Some(deident_k_trans), k_trans, Transition::Sum),
        (Some(deident_k_count_trans), |f| unsafe { count_trans(f, false) }, Transition::Count),
        (Some(deident_k_distinct_trans), |f| unsafe { count_trans(f, true) }, Transition::Distinct),
    ];
    bodies.into_iter().find(|(f, _, _)| f.map(|f| f as usize) == Some(addr)).map(|(_, b, t)| (b, t))
}

/// `deident_k_trans`'s body (inlined there: every row of k_sum and k_avg runs it).
///
/// # Safety
/// fmgr's call info of a k_sum or k_avg transition.
#[inline(always)]
unsafe fn k_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: per the contract.
    unsafe {
        if fmgr::arg_is_null(fcinfo, 1) || fmgr::arg_is_null(fcinfo, 2) {
            // A row without a value or without a person contributes nothing, not even its
            // person: otherwise the persons with values could be fewer than k.
            return state_unchanged(fcinfo);
        }
        let g = group_for(
            fcinfo,
            |v, env| match v {
                ValueType::Int2 | ValueType::Int4 | ValueType::Int8 => Acc::Int(Wide(0)),
                ValueType::Float4 => {
                    Acc::Float4 { single: 0.0, double: 0.0, single_overflow: false }
                }
                ValueType::Float8 => Acc::Float(0.0),
                ValueType::Numeric => Acc::Numeric(Decimal::new(env)),
                ValueType::None => pgrx::error!("pg_deident: unsupported value type"),
            },
            Some(1),
            2,
        );
        add_person_arg(fcinfo, g, 2);
        let v = fmgr::arg(fcinfo, 1);
        let added = match g.value {
            ValueType::Int2 | ValueType::Int4 | ValueType::Int8 => {
                g.state.add_int(g.value.integer(v))
            }
            ValueType::Float4 => g.state.add_float4(f32::from_bits(v.value() as u32)),
            ValueType::Float8 => g.state.add_float(f64::from_bits(v.value() as u64)),
            // The numeric's own bytes (detoasted if compressed or out of line), read in place.
            ValueType::Numeric => {
                numeric::read(fmgr::arg_bytes(fcinfo, 1)).and_then(|n| g.state.add_numeric(&n))
            }
            ValueType::None => Ok(()),
        };
        if let Err(e) = added {
            state_error(e);
        }
        rw_datum(g)
    }
}

/// `_k_count_trans(internal, person "any")` for k_count (`distinct` false) and, with its
/// twin below, k_count_distinct.
///
/// # Safety
/// fmgr's call info of one of the two functions.
unsafe fn count_trans(fcinfo: pg_sys::FunctionCallInfo, distinct: bool) -> pg_sys::Datum {
    // SAFETY: per the contract.
    unsafe {
        if fmgr::arg_is_null(fcinfo, 1) {
            return state_unchanged(fcinfo);
        }
        let g =
            group_for(fcinfo, |_, _| if distinct { Acc::Distinct } else { Acc::Count }, None, 1);
        add_person_arg(fcinfo, g, 1);
        g.state.add_row();
        rw_datum(g)
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_count_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the function declared in SQL.
    unsafe { count_trans(fcinfo, false) }
}
pg_function_info_v1!(pg_finfo_deident_k_count_trans);

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_distinct_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the function declared in SQL.
    unsafe { count_trans(fcinfo, true) }
}
pg_function_info_v1!(pg_finfo_deident_k_distinct_trans);

/// `_k_combine(k_state, k_state)`: merges the second state into the first (`combine`).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_combine(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the combine function declared in SQL.
    unsafe { combine::<Group>(fcinfo) }
}
pg_function_info_v1!(pg_finfo_deident_k_combine);

/// A combine function of family `G`: merges the second state into the first. A missing first
/// state is made anew from the second, in the aggregate context (sealed bytes are opened
/// straight into it); otherwise the second is only read (sealed bytes are opened into the
/// current, per-tuple, memory context).
///
/// # Safety
/// `fcinfo` is the call info of a combine function over family `G`'s states.
pub(crate) unsafe fn combine<G: Family>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: per the contract.
    unsafe {
        let _ = agg_context(fcinfo);
        let placement = combine_placement(fcinfo);
        match update_arg::<G>(fcinfo, placement) {
            Some(a) => {
                merge_arg(fcinfo, 1, a);
                rw_datum(a)
            }
            // the first state of a group: the second, copied (or opened) into a new object
            None => match copy_arg::<G>(fcinfo, 1, placement) {
                Some(b) => rw_datum(b),
                None => fmgr::return_null(fcinfo),
            },
        }
    }
}

/// `_k_serial(internal) RETURNS bytea`, for the aggregates that keep the state as `internal`
/// (0.1.0's k-aggregates, until the extension is updated): the state flattened,
/// that is sealed (expanded.rs), like a k_state crossing to another process.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_serial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the strict serial function; argument 0 is a state we made
    // (an expanded object's read-write pointer, passed as `internal`).
    unsafe {
        let _ = agg_context(fcinfo);
        sealed_copy(fmgr::arg(fcinfo, 0))
    }
}
pg_function_info_v1!(pg_finfo_deident_k_serial);

/// `_k_deserial(bytea, internal) RETURNS internal`: the sealed bytes themselves, in a plain
/// varlena, which the combine function opens (and so checks).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_deserial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the strict deserial function; argument 0 is a bytea;
    // pg_detoast_datum gives it a 4-byte header (a copy if it had a short one), so it cannot
    // be taken for an expanded pointer.
    unsafe {
        let _ = agg_context(fcinfo);
        pg_sys::Datum::from(pg_sys::pg_detoast_datum(fmgr::arg(fcinfo, 0).cast_mut_ptr()))
    }
}
pg_function_info_v1!(pg_finfo_deident_k_deserial);
