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
//! function through one FmgrInfo for every row, and whose final function is the state type's
//! output function, as `worker_partial_agg`'s is. The result is the same text (a sealed state
//! in base64), so the coordinator's `coord_combine_agg` reads it as before.

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::memory::agg_context;
use crate::dp::plan::{walk_tree, Visit};
use crate::enforcement::catalog;
use crate::enforcement::list_ptrs;
use crate::error::DeidentError;
use crate::fmgr::{self, pg_function_info_v1};

/// The most arguments a k-aggregate takes (k_sum, k_avg: value and person).
const MAX_ARGS: usize = 2;

/// What a `_k_partial` call site keeps between rows (fn_extra of its FmgrInfo).
struct Site {
    aggregate: pg_sys::Oid,
    nargs: usize,
    /// The call info of the aggregate's transition function (its FmgrInfo in `flinfo`),
    /// reused for every row: the state and the aggregate's arguments.
    call: pg_sys::FunctionCallInfo,
}

/// `_k_partial_trans(k_state, aggregate oid, "any" [, "any"])`: the aggregate's transition
/// function, called with the state and the arguments after the first.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_partial_trans(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the transition function declared in SQL; the site's call
    // info has room for 1 + nargs arguments, and its FmgrInfo and arrays live in fn_mcxt,
    // as long as the call site.
    unsafe {
        agg_context(fcinfo);
        if fmgr::arg_is_null(fcinfo, 1) {
            DeidentError::PartialNotKAggregate.report();
        }
        let aggregate = pg_sys::Oid::from(fmgr::arg(fcinfo, 1).value() as u32);
        let Some(site) = fmgr::call_site(fcinfo, || site_for(fcinfo, aggregate)) else {
            DeidentError::OutsideAggregate.report()
        };
        if site.aggregate != aggregate {
            DeidentError::PartialNotKAggregate.report();
        }
        let call = site.call;
        let args = (*call).args.as_mut_slice(1 + site.nargs);
        let from = (*fcinfo).args.as_slice(2 + site.nargs);
        args[0] = pg_sys::NullableDatum { value: from[0].value, isnull: from[0].isnull };
        for i in 0..site.nargs {
            args[1 + i] =
                pg_sys::NullableDatum { value: from[2 + i].value, isnull: from[2 + i].isnull };
        }
        (*call).context = (*fcinfo).context;
        (*call).fncollation = (*fcinfo).fncollation;
        (*call).isnull = false;
        let Some(transition) = (*(*call).flinfo).fn_addr else {
            DeidentError::PartialNotKAggregate.report()
        };
        let state = transition(call);
        if (*call).isnull {
            return fmgr::return_null(fcinfo);
        }
        state
    }
}
pg_function_info_v1!(pg_finfo_deident_k_partial_trans);

/// Checks, once per call site, that `aggregate` is a k-aggregate (`k_aggregate`) whose
/// argument types are the call's, and that the caller may execute it; then sets up its
/// transition function's call.
///
/// # Safety
/// `fcinfo` is a call of `_k_partial_trans` inside an aggregate.
unsafe fn site_for(fcinfo: pg_sys::FunctionCallInfo, aggregate: pg_sys::Oid) -> Site {
    // SAFETY: per the contract; syscache reads, and allocations in fn_mcxt.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        let Some((transfn, nargs)) = k_aggregate(aggregate) else {
            DeidentError::PartialNotKAggregate.report()
        };
        // the aggregate's argument types, against the call's (after the aggregate's oid)
        let mut types: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut declared = 0;
        pg_sys::get_func_signature(aggregate, &mut types, &mut declared);
        let given = (*fcinfo).nargs.max(0) as usize;
        if declared.max(0) as usize != nargs || given != 2 + nargs {
            DeidentError::PartialArgumentTypes.report();
        }
        for i in 0..nargs {
            let t = pg_sys::get_fn_expr_argtype(flinfo, (2 + i) as i32);
            if t == pg_sys::InvalidOid || t != types.add(i).read() {
                DeidentError::PartialArgumentTypes.report();
            }
        }
        // what running the aggregate itself would need (nodeAgg.c, ExecInitAgg)
        if pg_sys::pg_proc_aclcheck(aggregate, pg_sys::GetUserId(), pg_sys::ACL_EXECUTE as _)
            != pg_sys::AclResult::ACLCHECK_OK
        {
            pg_sys::aclcheck_error(
                pg_sys::AclResult::ACLCHECK_NO_PRIV,
                pg_sys::ObjectType::OBJECT_AGGREGATE,
                pg_sys::get_func_name(aggregate),
            );
        }
        let cx = (*flinfo).fn_mcxt;
        let finfo = pg_sys::MemoryContextAllocZero(cx, std::mem::size_of::<pg_sys::FmgrInfo>())
            .cast::<pg_sys::FmgrInfo>();
        pg_sys::fmgr_info_cxt(transfn, finfo, cx);
        if (*finfo).fn_strict {
            // ours are not strict; a strict one would need nodeAgg's NULL rules here
            DeidentError::PartialNotKAggregate.report();
        }
        let size = std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
            + (1 + nargs) * std::mem::size_of::<pg_sys::NullableDatum>();
        let call =
            pg_sys::MemoryContextAllocZero(cx, size).cast::<pg_sys::FunctionCallInfoBaseData>();
        (*call).flinfo = finfo;
        (*call).nargs = (1 + nargs) as i16;
        Site { aggregate, nargs, call }
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
        if !is_worker_partial_agg((*a).aggfnoid)
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
        let mut node = (*first).expr.cast::<pg_sys::Node>();
        while (*node).type_ == pg_sys::NodeTag::T_RelabelType {
            node = (*node.cast::<pg_sys::RelabelType>()).arg.cast();
        }
        let oid = node.cast::<pg_sys::Const>();
        if (*node).type_ != pg_sys::NodeTag::T_Const
            || ![pg_sys::OIDOID, pg_sys::REGPROCEDUREOID, pg_sys::REGPROCOID]
                .contains(&(*oid).consttype)
            || (*oid).constisnull
        {
            return;
        }
        let aggregate = pg_sys::Oid::from((*oid).constvalue.value() as u32);
        let Some((_, nargs)) = k_aggregate(aggregate) else { return };
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

/// Is `func` Citus's `pg_catalog.worker_partial_agg`?
fn is_worker_partial_agg(func: pg_sys::Oid) -> bool {
    catalog::with_proc(func, |form, _| {
        form.pronamespace == pg_sys::Oid::from_u32(pg_sys::PG_CATALOG_NAMESPACE)
            && form.pronargs == 2
            // SAFETY: a NameData is NUL-terminated.
            && unsafe { std::ffi::CStr::from_ptr(form.proname.data.as_ptr()) }
                == c"worker_partial_agg"
    })
    .unwrap_or(false)
}

/// `aggregate`'s transition function and number of arguments if it is one of pg_deident's
/// k-aggregates: a plain aggregate of pg_deident's schema over deident.k_state, of one or two
/// arguments, whose transition function is a C function of that schema.
fn k_aggregate(aggregate: pg_sys::Oid) -> Option<(pg_sys::Oid, usize)> {
    use catalog::{AGG_KIND, AGG_NUM_DIRECT_ARGS, AGG_TRANSFN, AGG_TRANSTYPE};
    let columns = catalog::aggregate_columns(
        aggregate,
        &[AGG_KIND, AGG_NUM_DIRECT_ARGS, AGG_TRANSFN, AGG_TRANSTYPE],
    )?;
    let [kind, direct, transfn, transtype] = columns[..] else { return None };
    let oid = |d: pg_sys::Datum| pg_sys::Oid::from(d.value() as u32);
    // SAFETY: syscache lookups by name and OID.
    let state = unsafe {
        let schema = pg_sys::get_namespace_oid(c"deident".as_ptr(), true);
        pg_sys::GetSysCacheOid(
            pg_sys::SysCacheIdentifier::TYPENAMENSP as i32,
            pg_sys::Anum_pg_type_oid as i16,
            pg_sys::Datum::from(c"k_state".as_ptr()),
            pg_sys::Datum::from(schema),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    };
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
    let nargs = catalog::with_proc(aggregate, |form, _| form.pronargs as usize)?;
    (1..=MAX_ARGS).contains(&nargs).then_some((transfn, nargs))
}

/// `deident._k_partial(oid, "any" × nargs)`.
fn partial_aggregate(nargs: usize) -> Option<pg_sys::Oid> {
    let types: Vec<pg_sys::Oid> =
        std::iter::once(pg_sys::OIDOID).chain(std::iter::repeat_n(pg_sys::ANYOID, nargs)).collect();
    // SAFETY: a lookup by qualified name; InvalidOid when there is none (missing_ok).
    let oid = unsafe {
        let names = pg_sys::list_make2_impl(
            pg_sys::NodeTag::T_List,
            pg_sys::ListCell {
                ptr_value: pg_sys::makeString(c"deident".as_ptr().cast_mut()).cast(),
            },
            pg_sys::ListCell {
                ptr_value: pg_sys::makeString(c"_k_partial".as_ptr().cast_mut()).cast(),
            },
        );
        pg_sys::LookupFuncName(names, types.len() as i32, types.as_ptr(), true)
    };
    (oid != pg_sys::InvalidOid).then_some(oid)
}
