//! The k-anonymity-checked aggregates (SPEC "k-anonymity-checked aggregates"): k_count,
//! k_count_distinct, k_sum and k_avg, each answering only for a group in which at least
//! `deident.min_group_size` distinct non-NULL persons contributed.
//!
//! The state is `internal`: SQL can neither build nor read one, so no caller can obtain a
//! partial state below the threshold and re-aggregate it; k is checked only in the final
//! functions. The support functions are revoked from PUBLIC (the aggregates still run: only
//! their owner needs EXECUTE on them; nodeAgg.c, `ExecInitAgg`).
//!
//! The aggregates are declared with `CREATE AGGREGATE` in the SQL below, not `#[pg_aggregate]`
//! (pgrx issue 2351: a wrong deserialize signature for internal states), over plain fmgr
//! functions; `"any"` arguments let one transition function serve every value and person type,
//! which it learns from the call's expression once per group.

pub mod decimal;
pub mod state;

use std::ffi::c_void;
use std::str::FromStr;

use pgrx::pg_sys::{self, BuiltinOid};
use pgrx::prelude::*;
use pgrx::AnyNumeric;

use self::state::{person_hash, Acc, Decimal, KState, StateError};
use crate::error::{DeidentError, OrReport};
use crate::fmgr::{self, pg_function_info_v1};
use crate::{guc, preload};

/// What one group's transition calls need besides the state: the types of the value and of
/// the person, looked up once, when the state is made.
struct Group {
    state: KState,
    value: ValueType,
    person: PersonType,
}

#[derive(Clone, Copy)]
enum ValueType {
    None,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
}

#[derive(Clone, Copy)]
enum PersonType {
    Unknown,
    Varlena,
    Uuid,
    Int8,
    Int4,
}

fn value_type(oid: pg_sys::Oid) -> ValueType {
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

fn person_type(oid: pg_sys::Oid) -> PersonType {
    match oid {
        o if o == BuiltinOid::TEXTOID.value() => PersonType::Varlena,
        o if o == BuiltinOid::UUIDOID.value() => PersonType::Uuid,
        o if o == BuiltinOid::INT8OID.value() => PersonType::Int8,
        o if o == BuiltinOid::INT4OID.value() => PersonType::Int4,
        _ => PersonType::Unknown,
    }
}

fn state_error(e: StateError) -> ! {
    DeidentError::Aggregate(e).report()
}

/// The aggregate's memory context; raises an ERROR outside an aggregate.
///
/// # Safety
/// `fcinfo` is fmgr's call info.
unsafe fn agg_context(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    let mut cx: pg_sys::MemoryContext = std::ptr::null_mut();
    // SAFETY: AggCheckCallContext only reads fcinfo->context and writes cx.
    if unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut cx) } == 0 || cx.is_null() {
        pgrx::error!("pg_deident aggregate support function called outside an aggregate");
    }
    cx
}

/// Frees a group's state when its memory context is reset or deleted.
#[pg_guard]
unsafe extern "C-unwind" fn drop_group(arg: *mut c_void) {
    // SAFETY: arg is the Box::into_raw of `new_group`, registered once, called once.
    drop(unsafe { Box::from_raw(arg.cast::<Group>()) });
}

/// Puts a group on the Rust heap and ties its lifetime to `cx` with a reset callback (the
/// callback record itself lives in `cx`).
///
/// # Safety
/// `cx` is a valid memory context.
unsafe fn new_group(cx: pg_sys::MemoryContext, group: Group) -> *mut Group {
    let raw = Box::into_raw(Box::new(group));
    // SAFETY: MemoryContextAlloc returns memory for one callback record in cx, or raises an
    // ERROR (then `raw` leaks once, in an aborting transaction: acceptable).
    unsafe {
        let cb =
            pg_sys::MemoryContextAlloc(cx, std::mem::size_of::<pg_sys::MemoryContextCallback>())
                .cast::<pg_sys::MemoryContextCallback>();
        cb.write(pg_sys::MemoryContextCallback {
            func: Some(drop_group),
            arg: raw.cast(),
            next: std::ptr::null_mut(),
        });
        pg_sys::MemoryContextRegisterResetCallback(cx, cb);
    }
    raw
}

/// Argument `n` as a group pointer, None when NULL.
///
/// # Safety
/// Argument `n` is an internal made by this module (or NULL).
unsafe fn group_arg<'a>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<&'a mut Group> {
    // SAFETY: per the contract.
    unsafe {
        if fmgr::arg_is_null(fcinfo, n) {
            return None;
        }
        fmgr::arg(fcinfo, n).cast_mut_ptr::<Group>().as_mut()
    }
}

fn return_group(group: *mut Group) -> pg_sys::Datum {
    pg_sys::Datum::from(group)
}

/// The group for this transition call, made on the first row from the call's argument types.
///
/// # Safety
/// `fcinfo` is a transition call of one of the aggregates below.
unsafe fn group_for<'a>(
    fcinfo: pg_sys::FunctionCallInfo,
    acc: impl FnOnce(ValueType) -> Acc,
    value_arg: Option<usize>,
    person_arg: usize,
) -> &'a mut Group {
    // SAFETY: argument 0 is the transition state, which lives until its memory context is
    // reset, after the last call that uses it.
    if let Some(g) = unsafe { group_arg(fcinfo, 0) } {
        return g;
    }
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
    let cap = guc::min_group_size();
    let group = Group { state: KState::new(acc(value), cap), value, person };
    // SAFETY: inside an aggregate (checked), the new group lives in its context.
    unsafe { &mut *new_group(agg_context(fcinfo), group) }
}

/// The person's hash.
///
/// # Safety
/// Argument `n` is a non-NULL value of the type `person` says.
#[inline]
unsafe fn person_of(fcinfo: pg_sys::FunctionCallInfo, n: usize, person: PersonType) -> u64 {
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
/// `fcinfo` is a transition call of one of the aggregates below.
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
    // SAFETY: fmgr's call info of the transition function declared below.
    unsafe {
        if fmgr::arg_is_null(fcinfo, 1) || fmgr::arg_is_null(fcinfo, 2) {
            // A row without a value or without a person contributes nothing, not even its
            // person: otherwise the persons with values could be fewer than k.
            return state_unchanged(fcinfo);
        }
        let g = group_for(
            fcinfo,
            |v| match v {
                ValueType::Int2 | ValueType::Int4 | ValueType::Int8 => Acc::Int(0),
                ValueType::Float4 => {
                    Acc::Float4 { single: 0.0, double: 0.0, single_overflow: false }
                }
                ValueType::Float8 => Acc::Float(0.0),
                ValueType::Numeric => Acc::Numeric(Decimal::default()),
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
            ValueType::Numeric => {
                let n = AnyNumeric::from_datum(v, false);
                let text = n.map(|n| n.to_string()).unwrap_or_default();
                Decimal::parse(&text).and_then(|d| g.state.add_numeric(&d))
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
        let g = group_for(fcinfo, |_| if distinct { Acc::Distinct } else { Acc::Count }, None, 1);
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
    // SAFETY: fmgr's call info of the function declared below.
    unsafe { count_trans(fcinfo, false) }
}
pg_function_info_v1!(pg_finfo_deident_k_count_trans);

#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_distinct_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the function declared below.
    unsafe { count_trans(fcinfo, true) }
}
pg_function_info_v1!(pg_finfo_deident_k_distinct_trans);

/// `_k_combine(internal, internal)`: merges the second state into the first. A missing first
/// state is made anew in the aggregate context; the second is only read, and its pointer is
/// never returned (it may live in a shorter-lived context).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_combine(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the combine function declared below.
    unsafe {
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
                let copy = Group { state: b.state.clone(), value: b.value, person: b.person };
                return_group(new_group(agg_context(fcinfo), copy))
            }
        }
    }
}
pg_function_info_v1!(pg_finfo_deident_k_combine);

/// `_k_serial(internal) RETURNS bytea`
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_serial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the strict serial function declared below.
    let Some(g) = (unsafe { group_arg(fcinfo, 0) }) else {
        // SAFETY: as above.
        return unsafe { fmgr::return_null(fcinfo) };
    };
    fmgr::text_datum(&g.state.encode())
}
pg_function_info_v1!(pg_finfo_deident_k_serial);

/// `_k_deserial(bytea, internal) RETURNS internal`: refuses bytes it did not write.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_deserial(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the strict deserial function declared below.
    unsafe {
        // Only inside an aggregate: a state made from SQL-supplied bytes must not exist.
        let _ = agg_context(fcinfo);
        let state = KState::decode(fmgr::arg_bytes(fcinfo, 0)).unwrap_or_else(|e| state_error(e));
        let group = Group { state, value: ValueType::None, person: PersonType::Unknown };
        // The deserialized state lives in the current (per-input-tuple) context; combine
        // copies what it keeps.
        return_group(new_group(pg_sys::CurrentMemoryContext, group))
    }
}
pg_function_info_v1!(pg_finfo_deident_k_deserial);

/// The group's state if it meets the current k, else None (the answer is NULL).
///
/// # Safety
/// Argument 0 is a group made by this module, or NULL.
unsafe fn answered<'a>(fcinfo: pg_sys::FunctionCallInfo) -> Option<&'a mut KState> {
    preload::check().or_report();
    // SAFETY: per the contract.
    let g = unsafe { group_arg(fcinfo, 0) }?;
    let k = guc::min_group_size();
    g.state.meets(k).then_some(&mut g.state)
}

/// Defines a final function: `$body` maps the answered state to a Datum.
macro_rules! final_fn {
    ($name:ident, $finfo:ident, |$s:ident| $body:expr) => {
        #[pg_guard]
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn $name(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            // SAFETY: fmgr's call info of a final function declared below.
            match unsafe { answered(fcinfo) } {
                Some($s) => $body,
                // SAFETY: as above.
                None => unsafe { fmgr::return_null(fcinfo) },
            }
        }
        pg_function_info_v1!($finfo);
    };
}

fn int_sum(s: &KState) -> i128 {
    match s.acc {
        Acc::Int(v) => v,
        _ => state_error(StateError::Mismatch),
    }
}

/// The double-precision sum (avg(real) and both aggregates over double precision).
fn float_sum(s: &KState) -> f64 {
    match s.acc {
        Acc::Float(v) | Acc::Float4 { double: v, .. } => v,
        _ => state_error(StateError::Mismatch),
    }
}

/// The exact sum as numeric text.
fn numeric_sum_text(s: &KState) -> String {
    match &s.acc {
        Acc::Int(v) => v.to_string(),
        Acc::Numeric(d) => d.to_text(),
        _ => state_error(StateError::Mismatch),
    }
}

fn numeric_datum(text: &str) -> AnyNumeric {
    AnyNumeric::from_str(text).unwrap_or_else(|_| state_error(StateError::Overflow))
}

final_fn!(deident_k_count_final, pg_finfo_deident_k_count_final, |s| pg_sys::Datum::from(s.rows));
final_fn!(deident_k_distinct_final, pg_finfo_deident_k_distinct_final, |s| {
    pg_sys::Datum::from(s.distinct_persons() as i64)
});
final_fn!(deident_k_sum_int8_final, pg_finfo_deident_k_sum_int8_final, |s| {
    // sum(smallint) and sum(integer) are bigint, and fail as PostgreSQL's do when the sum
    // leaves bigint's range.
    let v = i64::try_from(int_sum(s)).unwrap_or_else(|_| state_error(StateError::Overflow));
    pg_sys::Datum::from(v)
});
final_fn!(deident_k_sum_numeric_final, pg_finfo_deident_k_sum_numeric_final, |s| {
    numeric_datum(&numeric_sum_text(s))
        .into_datum()
        .unwrap_or_else(|| state_error(StateError::Overflow))
});
final_fn!(deident_k_sum_float4_final, pg_finfo_deident_k_sum_float4_final, |s| {
    // sum(real) is summed in single precision, as float4pl does.
    match s.acc {
        Acc::Float4 { single_overflow: true, .. } => state_error(StateError::Overflow),
        Acc::Float4 { single, .. } => pg_sys::Datum::from(single.to_bits()),
        _ => state_error(StateError::Mismatch),
    }
});
final_fn!(deident_k_sum_float8_final, pg_finfo_deident_k_sum_float8_final, |s| {
    pg_sys::Datum::from(float_sum(s).to_bits())
});
final_fn!(deident_k_avg_numeric_final, pg_finfo_deident_k_avg_numeric_final, |s| {
    // As avg(numeric) and avg(integer types) do: numeric_div(sum, count), whose scale rules
    // then match PostgreSQL's own (numeric.c, `numeric_avg`, `int8_avg`).
    let avg = numeric_datum(&numeric_sum_text(s)) / numeric_datum(&s.rows.to_string());
    avg.into_datum().unwrap_or_else(|| state_error(StateError::Overflow))
});
final_fn!(deident_k_avg_float8_final, pg_finfo_deident_k_avg_float8_final, |s| {
    pg_sys::Datum::from((float_sum(s) / s.rows as f64).to_bits())
});

extension_sql!(
    r#"
CREATE FUNCTION deident._k_trans(internal, "any", "any") RETURNS internal
  LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_trans';
CREATE FUNCTION deident._k_count_trans(internal, "any") RETURNS internal
  LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_count_trans';
CREATE FUNCTION deident._k_distinct_trans(internal, "any") RETURNS internal
  LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_distinct_trans';
CREATE FUNCTION deident._k_combine(internal, internal) RETURNS internal
  LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_combine';
CREATE FUNCTION deident._k_serial(internal) RETURNS bytea
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_serial';
CREATE FUNCTION deident._k_deserial(bytea, internal) RETURNS internal
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_deserial';
CREATE FUNCTION deident._k_count_final(internal) RETURNS bigint
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_count_final';
CREATE FUNCTION deident._k_distinct_final(internal) RETURNS bigint
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_distinct_final';
CREATE FUNCTION deident._k_sum_int8_final(internal) RETURNS bigint
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_int8_final';
CREATE FUNCTION deident._k_sum_numeric_final(internal) RETURNS numeric
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_numeric_final';
CREATE FUNCTION deident._k_sum_float4_final(internal) RETURNS real
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_float4_final';
CREATE FUNCTION deident._k_sum_float8_final(internal) RETURNS double precision
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_sum_float8_final';
CREATE FUNCTION deident._k_avg_numeric_final(internal) RETURNS numeric
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_avg_numeric_final';
CREATE FUNCTION deident._k_avg_float8_final(internal) RETURNS double precision
  LANGUAGE c STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'deident_k_avg_float8_final';

-- Support functions are for the aggregates alone.
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT oid::regprocedure FROM pg_proc
            WHERE pronamespace = 'deident'::regnamespace AND proname LIKE '\_k\_%'
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END $$;

-- One aggregate per person type (and value type): persons may be text, uuid, bigint or
-- integer; values the types PostgreSQL's sum and avg take, with the same result types.
DO $$
DECLARE
  person text;
  v record;
  -- FINALFUNC_MODIFY = READ_WRITE also makes PostgreSQL refuse the aggregates as window
  -- functions (nodeWindowAgg.c): a running k_sum OVER (ORDER BY ...) would give away each
  -- person's value as the difference between neighbouring rows.
  common text := 'STYPE = internal, COMBINEFUNC = deident._k_combine, '
              || 'SERIALFUNC = deident._k_serial, DESERIALFUNC = deident._k_deserial, '
              || 'FINALFUNC_MODIFY = READ_WRITE, PARALLEL = SAFE';
BEGIN
  FOREACH person IN ARRAY ARRAY['text', 'uuid', 'bigint', 'integer'] LOOP
    EXECUTE format('CREATE AGGREGATE deident.k_count(%s) (SFUNC = deident._k_count_trans, '
                   'FINALFUNC = deident._k_count_final, SSPACE = 128, %s)', person, common);
    EXECUTE format('CREATE AGGREGATE deident.k_count_distinct(%s) (SFUNC = deident._k_distinct_trans, '
                   'FINALFUNC = deident._k_distinct_final, SSPACE = 65536, %s)', person, common);
    FOR v IN SELECT * FROM (VALUES
        ('smallint', '_k_sum_int8_final', '_k_avg_numeric_final'),
        ('integer', '_k_sum_int8_final', '_k_avg_numeric_final'),
        ('bigint', '_k_sum_numeric_final', '_k_avg_numeric_final'),
        ('numeric', '_k_sum_numeric_final', '_k_avg_numeric_final'),
        ('real', '_k_sum_float4_final', '_k_avg_float8_final'),
        ('double precision', '_k_sum_float8_final', '_k_avg_float8_final')) AS t(value, sum_final, avg_final)
    LOOP
      EXECUTE format('CREATE AGGREGATE deident.k_sum(%s, %s) (SFUNC = deident._k_trans, '
                     'FINALFUNC = deident.%I, SSPACE = 160, %s)', v.value, person, v.sum_final, common);
      EXECUTE format('CREATE AGGREGATE deident.k_avg(%s, %s) (SFUNC = deident._k_trans, '
                     'FINALFUNC = deident.%I, SSPACE = 160, %s)', v.value, person, v.avg_final, common);
    END LOOP;
  END LOOP;
END $$;
"#,
    name = "k_aggregates",
);

extension_sql_file!("../../sql/k_anonymity.sql", name = "k_anonymity");
