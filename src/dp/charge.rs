//! What a statement is charged, and when: once, before it runs, an amount that does not
//! depend on the data.
//!
//! A first version charged ε for each group a dp aggregate evaluated (SPEC's simple rule). The
//! number of groups is data, and a role reads its own spent figure: a hostile review read one
//! person's salary bit by bit from what `WHERE email = 'victim' AND salary >= x GROUP BY email
//! HAVING dp_count(email) IS NOT NULL` cost (ε when true, nothing when false), with no group
//! ever released. So the charge is now made when the executor starts (`after_start`), from the
//! plan alone: ε × L × (dp aggregate calls that the plan finalizes), where L is
//! `deident.dp_max_groups_per_person`. What makes that sound is the bound L inside the
//! aggregates (admission.rs): each dp aggregate call lets a person count in at most L of its
//! groups, chosen from the person's own data, and leaves the person out of the others. Over the whole statement, a person then changes at most L groups of each call, each
//! by an ε-DP answer: by basic composition at most L·ε per call, which is what was charged
//! (docs/differential-privacy.md has the argument).
//!
//! The terms of the charge (ε, L) are kept for the statement's executor state, so that its
//! final functions use the ε that was charged even if the setting changes while it runs. A
//! final function that finds no terms (a parallel worker finalizing groups itself, in a
//! partitionwise aggregate: its counts of persons would be its own) refuses.

use std::cell::RefCell;

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::budget;
use super::plan;
use crate::error::DeidentError;
use crate::guc;

/// The ε and L a statement was charged for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Terms {
    pub epsilon: f64,
    pub per_person: u32,
}

/// A running statement this module follows, one that has dp aggregates or one the executor
/// instruments (EXPLAIN ANALYZE, auto_explain's `log_analyze`): its executor state's address,
/// the subtransaction it started in, and what it is.
struct Running {
    estate: usize,
    subxact: pg_sys::SubTransactionId,
    instrumented: bool,
    /// The terms it was charged for, if it has dp aggregates.
    terms: Option<Terms>,
}

thread_local! {
    /// The running statements followed, innermost last.
    static RUNNING: RefCell<Vec<Running>> = const { RefCell::new(Vec::new()) };
}

/// The entry of the statement of executor state `estate`, made if there is none.
fn running(r: &mut Vec<Running>, estate: usize) -> &mut Running {
    let i = match r.iter().rposition(|s| s.estate == estate) {
        Some(i) => i,
        None => {
            // SAFETY: a read of the transaction state's current subtransaction.
            let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
            r.push(Running { estate, subxact, instrumented: false, terms: None });
            r.len() - 1
        }
    };
    &mut r[i]
}

/// When the executor has started any statement: an instrumented one is noted, so that a dp
/// statement run inside it is refused as the statement itself would be. Citus runs a part
/// of a statement that it planned on its own (a subquery, a CTE, a view) as a plan of its
/// own, not instrumented even under EXPLAIN ANALYZE, whose rows the outer plan's instruments
/// then count (a review had such a statement charged, where one node refuses it). Pointer
/// reads only, unless instrumented.
///
/// # Safety
/// `query_desc` has just been started by the executor.
pub unsafe fn note_start(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: per the contract.
    unsafe {
        if (*query_desc).instrument_options != 0 {
            let estate = (*query_desc).estate as usize;
            RUNNING.with(|r| running(&mut r.borrow_mut(), estate).instrumented = true);
        }
    }
}

/// Could the plan finalize an aggregate? Pointer reads only, so that the executor hook can ask
/// for every statement, unguarded; the walk over the expressions comes only when it says yes.
///
/// # Safety
/// `stmt` is a valid PlannedStmt or NULL.
pub unsafe fn may_finalize_aggregates(stmt: *mut pg_sys::PlannedStmt) -> bool {
    // SAFETY: per the contract; the lists hold Plan nodes.
    unsafe {
        if stmt.is_null() {
            return false;
        }
        finalizing_aggs(stmt, &mut |_, _| true)
    }
}

/// Calls `f` on each Agg node of the plan (and its subplans) that finalizes its aggregates,
/// until `f` returns true; true if it did.
///
/// # Safety
/// `stmt` is a valid PlannedStmt.
pub(super) unsafe fn finalizing_aggs(
    stmt: *mut pg_sys::PlannedStmt,
    f: &mut dyn FnMut(*mut pg_sys::Agg, bool) -> bool,
) -> bool {
    // SAFETY: per the contract.
    unsafe {
        each_node(stmt, &mut |plan, parallel| {
            if (*plan).type_ != pg_sys::NodeTag::T_Agg {
                return false;
            }
            let agg = plan.cast::<pg_sys::Agg>();
            (*agg).aggsplit & pg_sys::AGGSPLITOP_SKIPFINAL == 0 && f(agg, parallel)
        })
    }
}

/// Calls `f` on each node of the plan and its subplans, with whether it runs below a Gather
/// or Gather Merge, until `f` returns true; true if it did.
///
/// # Safety
/// `stmt` is a valid PlannedStmt.
pub(crate) unsafe fn each_node(
    stmt: *mut pg_sys::PlannedStmt,
    f: &mut dyn FnMut(*mut pg_sys::Plan, bool) -> bool,
) -> bool {
    use crate::enforcement::list_ptrs;
    /// `parallel`: below a Gather or Gather Merge, run by parallel workers.
    unsafe fn walk(
        plan: *mut pg_sys::Plan,
        parallel: bool,
        f: &mut dyn FnMut(*mut pg_sys::Plan, bool) -> bool,
    ) -> bool {
        if plan.is_null() {
            return false;
        }
        // SAFETY: plan is a valid Plan node.
        let parallel = parallel
            || unsafe {
                matches!((*plan).type_, pg_sys::NodeTag::T_Gather | pg_sys::NodeTag::T_GatherMerge)
            };
        // SAFETY: plan is a valid Plan node; the child lists hold Plan nodes (plannodes.h).
        unsafe {
            if f(plan, parallel) {
                return true;
            }
            let children: Vec<*mut pg_sys::Plan> = match (*plan).type_ {
                pg_sys::NodeTag::T_Append => {
                    list_ptrs((*plan.cast::<pg_sys::Append>()).appendplans).collect()
                }
                pg_sys::NodeTag::T_MergeAppend => {
                    list_ptrs((*plan.cast::<pg_sys::MergeAppend>()).mergeplans).collect()
                }
                pg_sys::NodeTag::T_BitmapAnd => {
                    list_ptrs((*plan.cast::<pg_sys::BitmapAnd>()).bitmapplans).collect()
                }
                pg_sys::NodeTag::T_BitmapOr => {
                    list_ptrs((*plan.cast::<pg_sys::BitmapOr>()).bitmapplans).collect()
                }
                pg_sys::NodeTag::T_SubqueryScan => {
                    vec![(*plan.cast::<pg_sys::SubqueryScan>()).subplan]
                }
                pg_sys::NodeTag::T_CustomScan => {
                    list_ptrs((*plan.cast::<pg_sys::CustomScan>()).custom_plans).collect()
                }
                _ => Vec::new(),
            };
            children.into_iter().any(|c| walk(c, parallel, f))
                || walk((*plan).lefttree, parallel, f)
                || walk((*plan).righttree, parallel, f)
        }
    }
    // SAFETY: per the contract; subplans is a List of Plan (NULL entries for unused ones).
    unsafe {
        walk((*stmt).planTree, false, f)
            || list_ptrs::<pg_sys::Plan>((*stmt).subplans).any(|p| walk(p, false, f))
    }
}

/// The distinct dp aggregate calls an Agg node finalizes.
///
/// # Safety
/// `agg` is a valid Agg node.
pub(super) unsafe fn dp_calls(agg: *mut pg_sys::Agg) -> usize {
    // SAFETY: per the contract.
    unsafe { dp_aggrefs(agg).len() }
}

/// The dp aggregate calls an Agg node finalizes, each once.
///
/// # Safety
/// `agg` is a valid Agg node.
unsafe fn dp_aggrefs(agg: *mut pg_sys::Agg) -> Vec<*mut pg_sys::Aggref> {
    let mut found: Vec<*mut pg_sys::Aggref> = Vec::new();
    // SAFETY: per the contract; targetlist and qual are expression trees.
    unsafe {
        for tree in [(*agg).plan.targetlist.cast::<pg_sys::Node>(), (*agg).plan.qual.cast()] {
            for aggref in plan::aggrefs(tree) {
                // the same call written twice (in the target list and HAVING) is one call
                // (nodeAgg.c finds them equal and evaluates them once)
                let dup = found.iter().any(|&f| pg_sys::equal(f.cast(), aggref.cast()));
                if !dup && plan::dp_call(aggref, false) {
                    found.push(aggref);
                }
            }
        }
    }
    found
}

/// After the executor has started a statement whose plan may finalize aggregates: counts its
/// dp aggregate calls, charges ε × L × calls to the roles the budget names (or raises the
/// ERROR that refuses the statement), and keeps the terms for the final functions. Nothing is
/// charged for EXPLAIN without ANALYZE, nor for a parallel worker's part of its leader's plan
/// (partial aggregation: the leader charged for the whole plan).
///
/// # Safety
/// `query_desc` has just been started by the executor.
#[pg_guard]
pub unsafe extern "C-unwind" fn after_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: per the contract.
    unsafe {
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0 {
            return;
        }
        let worker = crate::keycache::shared::in_parallel_worker();
        let mut calls = 0usize;
        let mut in_workers = false;
        let mut unchecked = false;
        finalizing_aggs((*query_desc).plannedstmt, &mut |agg, parallel| {
            let found = dp_aggrefs(agg);
            calls += found.len();
            in_workers |= parallel && !found.is_empty();
            // a call the planner hook's checks did not mark (plan::CHECKED)
            unchecked |= found.iter().any(|&a| (*a).location != plan::CHECKED);
            false
        });
        if calls == 0 {
            return;
        }
        // Parallel workers finalizing groups themselves (a partitionwise aggregate below a
        // Gather) would each count persons on their own: refused here, from the plan, rather
        // than in a final function, which runs only where a group has rows. So is a plan in a
        // worker that finalizes dp aggregates: its leader gives workers partial aggregation
        // only, so the worker planned it itself (a statement in a PARALLEL SAFE function the
        // worker runs), and nothing charged it (a review probed groups for free that way:
        // the final function's error told which had rows).
        if in_workers || worker {
            DeidentError::DpUncharged.report();
        }
        // A dp call that reached the plan without the checks of its person, value and
        // statement (plan.rs), such as one in a set-returning SQL function's body that
        // PostgreSQL inlined after them: refused before anything is charged or read.
        if unchecked {
            DeidentError::DpUnchecked.report();
        }
        // An instrumented run (EXPLAIN ANALYZE, also of a prepared statement or a CREATE
        // TABLE AS; auto_explain with log_analyze) counts rows exactly: a scan's rows under a
        // view's WHERE, the groups a HAVING filtered out. For a role the budget charges, it is
        // refused before a row is read, whatever the data.
        // (this statement too: `note_start` noted it)
        let instrumented = RUNNING.with(|r| r.borrow().iter().any(|s| s.instrumented));
        if instrumented && budget::charged() {
            DeidentError::DpExplainAnalyze.report();
        }
        let terms =
            Terms { epsilon: guc::dp_epsilon(), per_person: guc::dp_max_groups_per_person() };
        budget::charge(terms.epsilon * f64::from(terms.per_person) * calls as f64);
        super::grouping::keep_in_memory(query_desc);
        let estate = (*query_desc).estate as usize;
        RUNNING.with(|r| running(&mut r.borrow_mut(), estate).terms = Some(terms));
    }
}

/// When the executor ends a statement: its terms go. Plain Rust (no PostgreSQL call), so the
/// executor hook calls it unguarded.
///
/// # Safety
/// `query_desc` is being ended by the executor.
pub unsafe fn before_end(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: a pointer read.
    let estate = unsafe { (*query_desc).estate } as usize;
    RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        if let Some(i) = r.iter().rposition(|s| s.estate == estate) {
            r.remove(i);
        }
    });
}

/// At the end of a transaction: statements that ended in an ERROR left their terms behind.
pub fn forget() {
    RUNNING.with(|r| r.borrow_mut().clear());
    plan::forget_kinds();
}

/// When a subtransaction aborts: the statements it started (and those of its own
/// subtransactions, which have larger ids) ended without the executor's end, so their terms
/// go. A portal dropped by the abort (a PL/pgSQL FOR loop over a dp statement, left by an
/// exception its EXCEPTION block caught) never reaches `before_end`; a review found its terms
/// then answered a later statement whose executor state had the same address, uncharged.
fn forget_subtransaction(subxact: pg_sys::SubTransactionId) {
    RUNNING.with(|r| r.borrow_mut().retain(|s| s.subxact < subxact));
}

/// The terms of the statement whose aggregate is being finalized, and a final function of a
/// dp aggregate only for the calls the planning checks marked (plan.rs, `CHECKED`): the dp
/// aggregates themselves, and a Citus coordinator's combination of their partial states. An
/// aggregate of a role's own whose final function reaches a dp aggregate's (through the
/// combination's final function, which PUBLIC may execute) is none of them: without this, a
/// review had it answer over states it made itself.
///
/// # Safety
/// `fcinfo` is a final function's call info.
pub unsafe fn terms(fcinfo: pg_sys::FunctionCallInfo) -> Terms {
    // SAFETY: the context of an aggregate's final function is its AggState (nodeAgg.c), whose
    // ss.ps.state is the statement's EState; AggGetAggref gives the call being finalized.
    let estate = unsafe {
        let Some(agg) = crate::fmgr::agg_state(fcinfo) else {
            DeidentError::OutsideAggregate.report()
        };
        let aggref = pg_sys::AggGetAggref(fcinfo);
        if aggref.is_null() || (*aggref).location != plan::CHECKED {
            DeidentError::DpUnchecked.report();
        }
        (*agg).ss.ps.state as usize
    };
    RUNNING
        .with(|r| r.borrow().iter().rev().find(|s| s.estate == estate).and_then(|s| s.terms))
        .unwrap_or_else(|| DeidentError::DpUncharged.report())
}

#[pg_guard]
unsafe extern "C-unwind" fn end_of_transaction(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(event, XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PREPARE) {
        forget();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn end_of_subtransaction(
    event: pg_sys::SubXactEvent::Type,
    subxact: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        forget_subtransaction(subxact);
    }
}

/// Registers the end-of-transaction and subtransaction-abort cleanup; called once, from
/// `_PG_init`.
pub fn register_callbacks() {
    // SAFETY: guarded C callbacks with no state; registered once.
    unsafe {
        pg_sys::RegisterXactCallback(Some(end_of_transaction), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(end_of_subtransaction), std::ptr::null_mut());
    }
}
