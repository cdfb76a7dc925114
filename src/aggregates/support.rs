//! The aggregates' transition, combine, serialize and deserialize functions: plain fmgr
//! functions over the states of memory.rs, declared in sql/k_aggregates.sql.
//!
//! `"any"` arguments let one transition function serve every value and person type; it
//! learns them from the call's expression once per group (nodeAgg.c builds one for each
//! transition function, so `get_fn_expr_argtype` works).

use pgrx::pg_guard;
use pgrx::pg_sys::{self, BuiltinOid};

use super::memory::{
    agg_context, group_arg, new_group, return_group, varlena_datum, Group, PersonType, PgEnv,
    ValueType,
};
use super::numeric;
use super::state::{person_hash, Acc, Decimal, KState, StateError};
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

/// The group for this transition call, made on the group's first row, in the aggregate
/// context, from the call's argument types.
///
/// # Safety
/// `fcinfo` is a transition call of one of the aggregates.
unsafe fn group_for<'a>(
    fcinfo: pg_sys::FunctionCallInfo,
    acc: impl FnOnce(ValueType, PgEnv) -> Acc<PgEnv>,
    value_arg: Option<usize>,
    person_arg: usize,
) -> &'a mut Group {
    // SAFETY: argument 0 is the transition state, which lives until its memory context is
    // reset, after the last call that uses it.
    if let Some(g) = unsafe { group_arg(fcinfo, 0) } {
        return g;
    }
    // SAFETY: fcinfo is fmgr's call info.
    let cx = unsafe { agg_context(fcinfo) };
    preload::check().or_report();
    // SAFETY: fcinfo is valid; flinfo carries the call's expression (nodeAgg.c builds one).
    let (value, person) = unsafe {
        let flinfo = (*fcinfo).flinfo;
        let value = match value_arg {
            Some(n) => value_type(pg_sys::get_fn_expr_argtype(flinfo, n as i32)),
            None => ValueType::None,
        };
        (value, person_type(pg_sys::get_fn_expr_argtype(flinfo, person_arg as i32)))
    };
    let state = KState::new(acc(value, PgEnv(cx)), guc::min_group_size(), PgEnv(cx));
    // SAFETY: cx is the aggregate context, and the state's arrays are (to be) allocated there.
    unsafe { &mut *new_group(cx, value, person, state) }
}

/// The person's hash.
///
/// # Safety
/// Argument `n` is a non-NULL value of the type `person` says.
#[inline]
pub(crate) unsafe fn person_of(
    fcinfo: pg_sys::FunctionCallInfo,
    n: usize,
    person: PersonType,
) -> u64 {
    // SAFETY: per the contract, the datum is of the given type.
    unsafe {
        match person {
            PersonType::Varlena => person_hash(fmgr::arg_bytes(fcinfo, n)),
            PersonType::Uuid => {
                let p = fmgr::arg(fcinfo, n).cast_mut_ptr::<u8>();
                person_hash(std::slice::from_raw_parts(p, 16))
            }
            PersonType::Int8 => person_hash(&(fmgr::arg(fcinfo, n).value() as i64).to_le_bytes()),
            PersonType::Int4 => person_hash(&(fmgr::arg(fcinfo, n).value() as i32).to_le_bytes()),
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
        match group_arg(fcinfo, 0) {
            Some(g) => return_group(g),
            None => fmgr::return_null(fcinfo),
        }
    }
}

/// Adds the person in argument `n` to the group, unless the group already has enough persons
/// (then it is not even hashed).
///
/// # Safety
/// Argument `n` is a non-NULL value of the group's person type.
#[inline]
unsafe fn add_person_arg(fcinfo: pg_sys::FunctionCallInfo, g: &mut Group, n: usize) {
    if !g.state.saturated() {
        // SAFETY: per the contract.
        let hash = unsafe { person_of(fcinfo, n, g.person) };
        g.state.add_person(hash).unwrap_or_else(|e| state_error(e));
    }
}

/// `_k_trans(internal, value "any", person "any")` for k_sum and k_avg.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the transition function declared in SQL.
    unsafe {
        if fmgr::arg_is_null(fcinfo, 1) || fmgr::arg_is_null(fcinfo, 2) {
            // A row without a value or without a person contributes nothing, not even its
            // person: otherwise the persons with values could be fewer than k.
            return state_unchanged(fcinfo);
        }
        let g = group_for(
            fcinfo,
            |v, env| match v {
                ValueType::Int2 | ValueType::Int4 | ValueType::Int8 => Acc::Int(0),
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
            ValueType::Int2 => g.state.add_int(i64::from(v.value() as i16)),
            ValueType::Int4 => g.state.add_int(i64::from(v.value() as i32)),
            ValueType::Int8 => g.state.add_int(v.value() as i64),
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
        return_group(g)
    }
}
pg_function_info_v1!(pg_finfo_deident_k_trans);

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
        return_group(g)
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

/// `_k_combine(internal, internal)`: merges the second state into the first. A missing first
/// state is made anew, a copy of the second, in the aggregate context; the second is only
/// read, and its pointer is never returned (it may live in a shorter-lived context: a
/// deserialized state is in the per-input-tuple one).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_combine(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the combine function declared in SQL.
    unsafe {
        let cx = agg_context(fcinfo);
        let a = group_arg(fcinfo, 0);
        let Some(b) = group_arg(fcinfo, 1) else {
            return match a {
                Some(a) => return_group(a),
                None => fmgr::return_null(fcinfo),
            };
        };
        match a {
            Some(a) => {
                if let Err(e) = a.state.merge(&b.state) {
                    state_error(e);
                }
                return_group(a)
            }
            None => {
                let copy = b.state.copy_in(PgEnv(cx)).unwrap_or_else(|e| state_error(e));
                return_group(new_group(cx, b.value, b.person, copy))
            }
        }
    }
}
pg_function_info_v1!(pg_finfo_deident_k_combine);

/// `_k_serial(internal) RETURNS bytea`: the bytes are written straight into the palloc'd
/// bytea.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_serial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the strict serial function declared in SQL.
    let Some(g) = (unsafe { group_arg(fcinfo, 0) }) else {
        // SAFETY: as above.
        return unsafe { fmgr::return_null(fcinfo) };
    };
    let len = g.state.encoded_len().unwrap_or_else(|e| state_error(e));
    varlena_datum(len, |out| g.state.encode(out))
}
pg_function_info_v1!(pg_finfo_deident_k_serial);

/// `_k_deserial(bytea, internal) RETURNS internal`: refuses bytes it did not write, and makes
/// no state outside an aggregate (a state built from SQL-supplied bytes must not exist). SQL
/// cannot call it directly (it has no `internal` to pass); an aggregate declared by a
/// superuser can hand it another aggregate's bytes.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_deserial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the strict deserial function declared in SQL.
    unsafe {
        // The deserialized state lives in the current (per-input-tuple) context; combine
        // copies what it keeps.
        let env = PgEnv(pg_sys::CurrentMemoryContext);
        let state =
            KState::decode(fmgr::arg_bytes(fcinfo, 0), env).unwrap_or_else(|e| state_error(e));
        let _ = agg_context(fcinfo);
        return_group(new_group(env.0, ValueType::None, PersonType::Unknown, state))
    }
}
pg_function_info_v1!(pg_finfo_deident_k_deserial);
