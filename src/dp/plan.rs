//! The bounds of dp_sum and dp_avg, checked when the query is planned.
//!
//! A bound that is NULL, reversed, not finite or too wide must fail the statement whatever the
//! data: an ERROR raised on a group's first row would tell the analyst whether the group has
//! rows (`dp_sum(v, p, 10, 0) ... WHERE email = 'victim@...'` would fail exactly when the
//! victim is there). So the planner hook walks the query, every subquery and sublink
//! included, finds the calls of aggregates whose transition function is ours, and checks
//! their bounds after constant folding. A bound must fold to a constant: a parameter (of a
//! prepared statement, a PL/pgSQL variable, a SQL function's argument) has no value to check
//! when a generic plan is made, and checking it on a group's first row would make the ERROR
//! depend on the data. The transition function checks again (aggregates.rs, `first_row`); with
//! this check passed, that one cannot fail.

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::aggregates::bounds_of;
use super::state::BoundsError;
use crate::enforcement::list_ptrs;
use crate::error::DeidentError;

/// Could the query hold an aggregate call at any level? Pointer reads only: the planner hook
/// calls this unguarded on every query, and walks only when it says yes.
///
/// # Safety
/// `query` is the planner's input.
#[inline]
pub unsafe fn worth_checking(query: *mut pg_sys::Query) -> bool {
    // SAFETY: per the contract.
    unsafe {
        (*query).hasAggs
            || (*query).hasSubLinks
            || !(*query).cteList.is_null()
            || list_ptrs::<pg_sys::RangeTblEntry>((*query).rtable)
                .any(|rte| (*rte).rtekind == pg_sys::RTEKind::RTE_SUBQUERY)
    }
}

/// pg_language's "c" (pg_language.dat) and pg_aggregate's aggtransfn column.
const C_LANGUAGE_ID: pg_sys::Oid = pg_sys::Oid::from_u32(13);
const ANUM_PG_AGGREGATE_AGGTRANSFN: i16 = 4;

struct Ctx {
    problem: Option<BoundsError>,
}

/// Checks every dp aggregate call's bounds in `query`; raises the ERROR of the first bad one.
///
/// # Safety
/// `query` is the planner's input.
#[pg_guard]
pub unsafe extern "C-unwind" fn check_query(query: *mut pg_sys::Query) {
    let mut ctx = Ctx { problem: None };
    // SAFETY: per the contract; the walker is a guarded C callback.
    unsafe {
        walker(query.cast(), (&raw mut ctx).cast());
    }
    if let Some(problem) = ctx.problem {
        DeidentError::DpBounds(problem).report();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, ctx: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: node is a valid Node; ctx is the Ctx that `check_query` passed.
    unsafe {
        let c = &mut *ctx.cast::<Ctx>();
        match (*node).type_ {
            pg_sys::NodeTag::T_Query => {
                return pg_sys::query_tree_walker(node.cast(), Some(walker), ctx, 0);
            }
            pg_sys::NodeTag::T_Aggref => {
                let agg = node.cast::<pg_sys::Aggref>();
                if let Err(problem) = check_aggref(agg) {
                    c.problem = Some(problem);
                    return true;
                }
            }
            _ => {}
        }
        pg_sys::expression_tree_walker(node, Some(walker), ctx)
    }
}

/// # Safety
/// `agg` is a valid Aggref.
unsafe fn check_aggref(agg: *mut pg_sys::Aggref) -> Result<(), BoundsError> {
    // SAFETY: per the contract; args is a List of TargetEntry.
    unsafe {
        let args = aggregate_args(agg);
        if args.len() != 4 || !is_bounded_dp((*agg).aggfnoid) {
            return Ok(());
        }
        let (lower, upper) = ((*args[2]).expr, (*args[3]).expr);
        let typ = pg_sys::exprType(lower.cast());
        bounds_of(typ, bound_value(lower)?, bound_value(upper)?).map(|_| ())
    }
}

/// The bound's value after constant folding, which must leave a constant. Parameters are
/// refused, even those whose value the planner is given: a prepared statement would fail
/// only when its plan turned generic, and a parameter checked on the group's first row would
/// fail only when the group has rows.
///
/// # Safety
/// `expr` is a valid expression.
unsafe fn bound_value(expr: *mut pg_sys::Expr) -> Result<pg_sys::Datum, BoundsError> {
    // SAFETY: per the contract; eval_const_expressions returns a new tree.
    unsafe {
        let folded = pg_sys::eval_const_expressions(std::ptr::null_mut(), expr.cast());
        if (*folded).type_ != pg_sys::NodeTag::T_Const {
            return Err(BoundsError::NotConstant);
        }
        let c = folded.cast::<pg_sys::Const>();
        if (*c).constisnull {
            Err(BoundsError::Null)
        } else {
            Ok((*c).constvalue)
        }
    }
}

/// The aggregate call's arguments, without the sort keys that `ORDER BY` inside the call adds
/// to them (resjunk entries: parse_agg.c, `transformAggregateCall`).
///
/// # Safety
/// `agg` is a valid Aggref.
pub unsafe fn aggregate_args(agg: *mut pg_sys::Aggref) -> Vec<*mut pg_sys::TargetEntry> {
    // SAFETY: per the contract; args is a List of TargetEntry.
    unsafe {
        list_ptrs::<pg_sys::TargetEntry>((*agg).args).filter(|&tle| !(*tle).resjunk).collect()
    }
}

/// Is `aggfnoid` one of dp_sum and dp_avg: an aggregate whose transition function is this
/// library's `deident._dp_trans`, a C function?
fn is_bounded_dp(aggfnoid: pg_sys::Oid) -> bool {
    // SAFETY: syscache reads in a transaction.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::AGGFNOID as i32,
            pg_sys::Datum::from(aggfnoid),
        );
        if tuple.is_null() {
            return false;
        }
        // pg_aggregate.aggtransfn is its 4th column (pg_aggregate.h), never NULL
        let mut isnull = false;
        let trans = pg_sys::SysCacheGetAttr(
            pg_sys::SysCacheIdentifier::AGGFNOID as i32,
            tuple,
            ANUM_PG_AGGREGATE_AGGTRANSFN,
            &mut isnull,
        );
        pg_sys::ReleaseSysCache(tuple);
        if isnull {
            return false;
        }
        let trans = pg_sys::Oid::from(trans.value() as u32);
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::PROCOID as i32,
            pg_sys::Datum::from(trans),
        );
        if tuple.is_null() {
            return false;
        }
        let form = &*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_proc>(tuple);
        let ours = form.prolang == C_LANGUAGE_ID
            && std::ffi::CStr::from_ptr(form.proname.data.as_ptr()).to_bytes() == b"_dp_trans"
            && {
                let ns = pg_sys::get_namespace_name(form.pronamespace);
                !ns.is_null() && std::ffi::CStr::from_ptr(ns).to_bytes() == b"deident"
            };
        pg_sys::ReleaseSysCache(tuple);
        ours
    }
}
