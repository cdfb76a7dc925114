//! The final functions: the k test, then the answer in the type PostgreSQL's own count, sum or
//! avg gives. The k test happens here and nowhere else; a group below it is NULL.
//!
//! Numeric results are built from the exact sum's digits (numeric.rs) in palloc'd memory,
//! and averages divided by numeric_div, as PostgreSQL's avg does (numeric.c, `numeric_avg`,
//! `int8_avg`), so the result's scale follows numeric_div's rules.

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::expanded::read_arg;
use super::memory::{agg_context, varlena_datum, PgEnv};
use super::numeric::{self, NumericValue};
use super::state::{Acc, KState, StateError};
use super::support::state_error;
use crate::error::OrReport;
use crate::fmgr::{self, pg_function_info_v1};
use crate::{guc, preload};

/// The group's state if it meets the current k, else None (the answer is NULL).
///
/// # Safety
/// Argument 0 is the aggregate's state (a k_state), or NULL.
unsafe fn answered<'a>(fcinfo: pg_sys::FunctionCallInfo) -> Option<&'a mut KState<PgEnv>> {
    preload::check().or_report();
    // SAFETY: per the contract. Only an aggregate finalizes a state: a sealed value from SQL
    // is not answered outside one.
    let g = unsafe {
        agg_context(fcinfo);
        read_arg::<super::memory::Group>(fcinfo, 0)
    }?;
    let k = guc::min_group_size();
    g.state.meets(k).unwrap_or_else(|e| state_error(e)).then_some(&mut g.state)
}

/// Defines a final function: `$body` maps the answered state to a Datum.
macro_rules! final_fn {
    ($name:ident, $finfo:ident, |$s:ident| $body:expr) => {
        #[pg_guard]
        #[unsafe(no_mangle)]
        pub unsafe extern "C-unwind" fn $name(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            // SAFETY: fmgr's call info of a final function declared in SQL.
            match unsafe { answered(fcinfo) } {
                Some($s) => $body,
                // SAFETY: as above.
                None => unsafe { fmgr::return_null(fcinfo) },
            }
        }
        pg_function_info_v1!($finfo);
    };
}

fn int_sum(s: &KState<PgEnv>) -> i128 {
    match s.acc {
        Acc::Int(v) => v.get(),
        _ => state_error(StateError::Mismatch),
    }
}

/// The double-precision sum (avg(real) and both aggregates over double precision).
fn float_sum(s: &KState<PgEnv>) -> f64 {
    match s.acc {
        Acc::Float(v) | Acc::Float4 { double: v, .. } => v,
        _ => state_error(StateError::Mismatch),
    }
}

/// A numeric datum holding `v`, in the current memory context.
fn numeric_datum(v: &NumericValue<'_>) -> pg_sys::Datum {
    let layout = numeric::layout(v).unwrap_or_else(|e| state_error(e));
    varlena_datum(layout.size(), |out| layout.write(out))
}

fn int_numeric(v: i128) -> pg_sys::Datum {
    let (negative, mag) = numeric::int_limbs(v);
    numeric_datum(&NumericValue::Finite { negative, mag: &mag, scale: 0 })
}

/// The exact sum as a numeric datum.
fn numeric_sum(s: &mut KState<PgEnv>) -> pg_sys::Datum {
    match &mut s.acc {
        Acc::Int(v) => int_numeric(v.get()),
        Acc::Numeric(d) => d.with_value(numeric_datum).unwrap_or_else(|e| state_error(e)),
        _ => state_error(StateError::Mismatch),
    }
}

// Each final function answers only its own aggregate's state: a state of another (combined
// through an aggregate a role declared over the support functions, or _k_combine_partials
// told the wrong aggregate) is refused, not read as this one's (a review had k_sum's partial
// states answered as k_count_distinct's, with the persons capped at k as the count).
final_fn!(deident_k_count_final, pg_finfo_deident_k_count_final, |s| match s.acc {
    Acc::Count => pg_sys::Datum::from(s.rows),
    _ => state_error(StateError::Mismatch),
});
final_fn!(deident_k_distinct_final, pg_finfo_deident_k_distinct_final, |s| match s.acc {
    Acc::Distinct => {
        let n = s.distinct_persons().unwrap_or_else(|e| state_error(e));
        pg_sys::Datum::from(n as i64)
    }
    _ => state_error(StateError::Mismatch),
});
final_fn!(deident_k_sum_int8_final, pg_finfo_deident_k_sum_int8_final, |s| {
    // sum(smallint) and sum(integer) are bigint, and fail as PostgreSQL's do when the sum
    // leaves bigint's range.
    let v = i64::try_from(int_sum(s)).unwrap_or_else(|_| state_error(StateError::Overflow));
    pg_sys::Datum::from(v)
});
final_fn!(deident_k_sum_numeric_final, pg_finfo_deident_k_sum_numeric_final, |s| numeric_sum(s));
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
    // As avg(numeric) and avg(integer types) do: numeric_div(sum, count).
    let sum = numeric_sum(s);
    let count = int_numeric(i128::from(s.rows));
    // SAFETY: numeric_div takes two numerics and returns one (or raises an ERROR).
    unsafe { pgrx::direct_function_call_as_datum(pg_sys::numeric_div, &[Some(sum), Some(count)]) }
        .unwrap_or_else(|| pgrx::error!("pg_deident: numeric_div returned NULL"))
});
final_fn!(deident_k_avg_float8_final, pg_finfo_deident_k_avg_float8_final, |s| {
    pg_sys::Datum::from((float_sum(s) / s.rows as f64).to_bits())
});
