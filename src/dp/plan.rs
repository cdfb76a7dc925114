//! The bounds of dp_sum and dp_avg, checked when the query is planned.
//!
//! A bound that is NULL, reversed, not finite or too wide must fail the statement whatever the
//! data: an ERROR raised on a group's first row would tell the analyst whether the group has
//! rows (`dp_sum(v, p, 10, 0) ... WHERE email = 'victim@...'` would fail exactly when the
//! victim is there). So the planner hook walks the query, every subquery and sublink
//! included, finds the calls of aggregates whose transition function is ours, and checks
//! their bounds after constant folding. A bound must be a constant or a query parameter; a
//! parameter whose value the planner is given (a custom plan) is checked too. A parameter of a
//! generic plan is checked on the group's first row (aggregates.rs, `first_row`): the one
//! case where a bad bound fails only when there are rows (docs/differential-privacy.md).

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
    params: pg_sys::ParamListInfo,
    problem: Option<BoundsError>,
}

/// Checks every dp aggregate call's bounds in `query`; raises the ERROR of the first bad one.
///
/// # Safety
/// `query` is the planner's input, `params` its bound parameters (or NULL).
#[pg_guard]
pub unsafe extern "C-unwind" fn check_query(
    query: *mut pg_sys::Query,
    params: pg_sys::ParamListInfo,
) {
    let mut ctx = Ctx { params, problem: None };
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
                if let Err(problem) = check_aggref(agg, c.params) {
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
unsafe fn check_aggref(
    agg: *mut pg_sys::Aggref,
    params: pg_sys::ParamListInfo,
) -> Result<(), BoundsError> {
    // SAFETY: per the contract; args is a List of TargetEntry.
    unsafe {
        let args: Vec<*mut pg_sys::TargetEntry> = list_ptrs((*agg).args).collect();
        if args.len() != 4 || !is_bounded_dp((*agg).aggfnoid) {
            return Ok(());
        }
        let (lower, upper) = ((*args[2]).expr, (*args[3]).expr);
        let typ = pg_sys::exprType(lower.cast());
        match (bound_value(lower, params)?, bound_value(upper, params)?) {
            (Some(l), Some(u)) => bounds_of(typ, l, u).map(|_| ()),
            _ => Ok(()),
        }
    }
}

/// The bound's value after constant folding; None for a parameter whose value is not known
/// yet (checked on the first row).
///
/// # Safety
/// `expr` is a valid expression; `params` NULL or the planner's bound parameters.
unsafe fn bound_value(
    expr: *mut pg_sys::Expr,
    params: pg_sys::ParamListInfo,
) -> Result<Option<pg_sys::Datum>, BoundsError> {
    // SAFETY: per the contract; eval_const_expressions returns a new tree.
    unsafe {
        let folded = pg_sys::eval_const_expressions(std::ptr::null_mut(), expr.cast());
        match (*folded).type_ {
            pg_sys::NodeTag::T_Const => {
                let c = folded.cast::<pg_sys::Const>();
                if (*c).constisnull {
                    Err(BoundsError::Null)
                } else {
                    Ok(Some((*c).constvalue))
                }
            }
            pg_sys::NodeTag::T_Param => {
                let p = folded.cast::<pg_sys::Param>();
                if (*p).paramkind != pg_sys::ParamKind::PARAM_EXTERN {
                    return Err(BoundsError::NotConstant);
                }
                if params.is_null() || (*params).paramFetch.is_some() {
                    return Ok(None);
                }
                let id = (*p).paramid;
                if id < 1 || id > (*params).numParams {
                    return Ok(None);
                }
                let prm = &(*params).params.as_slice((*params).numParams as usize)[id as usize - 1];
                if u32::from(prm.pflags) & pg_sys::PARAM_FLAG_CONST == 0
                    || prm.ptype != (*p).paramtype
                {
                    return Ok(None);
                }
                if prm.isnull {
                    return Err(BoundsError::Null);
                }
                Ok(Some(prm.value))
            }
            _ => Err(BoundsError::NotConstant),
        }
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
