//! How a grouped statement with dp aggregates is executed: always by a hash aggregate that
//! keeps every group in memory, so that each call can choose a person's groups from all of
//! them before it finalizes the first (admission.rs).
//!
//! - When the query is planned, `upper_paths` (PostgreSQL's `create_upper_paths_hook`, for
//!   the grouping step of a query level whose aggregates include a dp aggregate) keeps only
//!   the paths that finalize in a hash aggregate, and makes one when the planner had none
//!   left (add_path drops a hash path that a sorted one beats on cost); in a parallel plan
//!   too, where the leader's hash aggregate finalizes the workers' partial states. Which paths survive
//!   the cost comparison depends on the statistics, that is on the data; this makes the
//!   strategy depend on the query alone. Grouped paths that would finalize in parallel
//!   workers (a partitionwise aggregate) go too.
//! - Grouping sets (ROLLUP, CUBE) and ORDER BY or DISTINCT inside an aggregate of the same
//!   level (which rule a hash aggregate out in PostgreSQL 15) are refused before planning
//!   (plan.rs), and a plan whose dp aggregate still finalizes in a sorted aggregate (grouping
//!   columns of a type that cannot be hashed) is refused after it (`check_plan`): both from
//!   the query alone.
//! - When the executor starts, `keep_in_memory` lifts the memory limit of those hash
//!   aggregates, so that they never spill to disk (a spilled batch is finalized after the
//!   groups in memory, whose persons' choices could not see it). Their memory then grows with
//!   the groups, as every hash aggregate's did before PostgreSQL 13.

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::charge;
use super::plan;
use crate::enforcement::list_ptrs;
use crate::error::DeidentError;

/// Why a grouped statement with dp aggregates is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupingProblem {
    /// GROUPING SETS, ROLLUP or CUBE.
    GroupingSets,
    /// ORDER BY or DISTINCT inside an aggregate call of the same query level.
    OrderedAggregate,
    /// The grouping columns cannot be hashed.
    NotHashable,
    /// The aggregate runs again for each row of something else (a correlated subquery,
    /// LATERAL).
    Correlated,
    /// LIMIT or OFFSET at the level of a dp aggregate over a Citus table: Citus sends the
    /// workers `ORDER BY <group> LIMIT n` when the order is the grouping's, and the
    /// coordinator's hash table then holds only the groups each shard put first, which other
    /// persons' rows decide (a hostile review moved 77 persons' counts with one person's row).
    CitusLimit,
}

unsafe extern "C" {
    /// prepagg.c (PostgreSQL 14 and later); not in pgrx's bindings.
    fn get_agg_clause_costs(
        root: *mut pg_sys::PlannerInfo,
        aggsplit: pg_sys::AggSplit::Type,
        costs: *mut pg_sys::AggClauseCosts,
    );
}

/// Does this query level aggregate with a dp aggregate? The planner's list of the level's
/// aggregates (prepagg.c) has them all, those written inside a sublink too.
///
/// # Safety
/// `root` is the planner's state for the level.
unsafe fn has_dp_aggregates(root: *mut pg_sys::PlannerInfo) -> bool {
    // SAFETY: per the contract; agginfos is a List of AggInfo.
    unsafe {
        list_ptrs::<pg_sys::AggInfo>((*root).agginfos).any(|info| {
            let a = (*info).representative_aggref;
            !a.is_null() && plan::dp_call(a, true)
        })
    }
}

/// Is the path a grouping that finalizes in a hash aggregate?
///
/// # Safety
/// `path` is a valid Path.
unsafe fn finalizes_hashed(path: *mut pg_sys::Path) -> bool {
    // SAFETY: per the contract.
    unsafe {
        (*path).type_ == pg_sys::NodeTag::T_AggPath
            && (*path.cast::<pg_sys::AggPath>()).aggstrategy == pg_sys::AggStrategy::AGG_HASHED
    }
}

/// The input of an aggregate that finalizes partial states, if `path` is one.
///
/// # Safety
/// `path` is a valid Path.
unsafe fn finalized_partial(path: *mut pg_sys::Path) -> Option<*mut pg_sys::Path> {
    // SAFETY: per the contract.
    unsafe {
        let agg = path.cast::<pg_sys::AggPath>();
        ((*path).type_ == pg_sys::NodeTag::T_AggPath
            && (*agg).aggsplit & pg_sys::AGGSPLITOP_COMBINE != 0)
            .then(|| (*agg).subpath)
    }
}

/// Is the path a Gather Merge?
///
/// # Safety
/// `path` is a valid Path.
unsafe fn is_gather_merge(path: *mut pg_sys::Path) -> bool {
    // SAFETY: per the contract.
    unsafe { (*path).type_ == pg_sys::NodeTag::T_GatherMergePath }
}

/// The relation of partially grouped paths (parallel workers' partial aggregates under a
/// Gather) that the planner made for the grouping of `grouped`, if it made any: looked up as
/// `fetch_upper_rel` finds it (pathnodes.h, `upper_rels`), without making one.
///
/// # Safety
/// `root` and `grouped` are the planner's, during the grouping step.
unsafe fn partially_grouped(
    root: *mut pg_sys::PlannerInfo,
    grouped: *mut pg_sys::RelOptInfo,
) -> Option<*mut pg_sys::RelOptInfo> {
    // SAFETY: per the contract; upper_rels[kind] is a List of RelOptInfo.
    unsafe {
        let kind = pg_sys::UpperRelationKind::UPPERREL_PARTIAL_GROUP_AGG as usize;
        list_ptrs::<pg_sys::RelOptInfo>((*root).upper_rels[kind]).find(|&rel| {
            pg_sys::bms_equal((*rel).relids, (*grouped).relids)
                && !(*rel).pathlist.is_null()
                && !(*rel).cheapest_total_path.is_null()
        })
    }
}

/// The workers' partial aggregates of `partial` (a partially grouped relation) under a plain
/// Gather: its cheapest partial path, gathered as generate_gather_paths (allpaths.c) does;
/// its cheapest path as it is when it has no partial path left.
///
/// # Safety
/// The planner's state during the grouping step; `partial` is `partially_grouped`'s.
unsafe fn gathered(
    root: *mut pg_sys::PlannerInfo,
    partial: *mut pg_sys::RelOptInfo,
) -> *mut pg_sys::Path {
    // SAFETY: per the contract; partial_pathlist is a List of Path, cheapest first (add_partial_path).
    unsafe {
        let Some(cheapest) = list_ptrs::<pg_sys::Path>((*partial).partial_pathlist).next() else {
            return (*partial).cheapest_total_path;
        };
        let mut rows = (*cheapest).rows * f64::from((*cheapest).parallel_workers);
        pg_sys::create_gather_path(
            root,
            partial,
            cheapest,
            (*partial).reltarget,
            std::ptr::null_mut(),
            &mut rows,
        )
        .cast()
    }
}

/// `create_upper_paths_hook`'s work (hooks.rs): for the grouping step of a query level with
/// dp aggregates, only paths that finalize in a hash aggregate.
///
/// # Safety
/// The planner's arguments to the hook.
#[pg_guard]
pub unsafe extern "C-unwind" fn upper_paths(
    root: *mut pg_sys::PlannerInfo,
    stage: pg_sys::UpperRelationKind::Type,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    extra: *mut std::ffi::c_void,
) {
    // SAFETY: the planner's arguments (planner.c, create_ordinary_grouping_paths): for the
    // grouping step, extra is its GroupPathExtraData and output_rel's pathlist is not empty.
    unsafe {
        if stage != pg_sys::UpperRelationKind::UPPERREL_GROUP_AGG {
            return;
        }
        let parse = (*root).parse;
        if !has_dp_aggregates(root) {
            return;
        }
        // Never in a parallel worker: a path marked parallel-unsafe stays above any Gather,
        // and so does a subquery or SubPlan built on it (a SubPlan whose plan is not
        // parallel-safe is parallel-restricted: clauses.c, max_parallel_hazard_walker).
        // Otherwise a worker could finalize it, where it finds no charge and fails, and
        // whether a worker runs it can depend on a person's row (`WHERE CASE WHEN p = 'x'
        // THEN v NOT IN (SELECT dp_count(...)) ...`).
        (*output_rel).consider_parallel = false;
        (*output_rel).partial_pathlist = std::ptr::null_mut();
        for p in list_ptrs::<pg_sys::Path>((*output_rel).pathlist) {
            (*p).parallel_safe = false;
        }
        if (*parse).groupClause.is_null() {
            return;
        }
        let paths: Vec<*mut pg_sys::Path> = list_ptrs((*output_rel).pathlist).collect();
        let Some(&any) = paths.first() else { return };
        let mut kept: Vec<*mut pg_sys::Path> =
            paths.iter().copied().filter(|&p| finalizes_hashed(p)).collect();
        let extra = extra.cast::<pg_sys::GroupPathExtraData>();
        let can_hash = (*extra).flags & pg_sys::GROUPING_CAN_USE_HASH as i32 != 0;
        // a hash aggregate of this grouping over `input`, never below a Gather
        let hashed = |input: *mut pg_sys::Path,
                      split: pg_sys::AggSplit::Type,
                      costs: *const pg_sys::AggClauseCosts| {
            let path = pg_sys::create_agg_path(
                root,
                output_rel,
                input,
                (*output_rel).reltarget,
                pg_sys::AggStrategy::AGG_HASHED,
                split,
                (*parse).groupClause,
                (*extra).havingQual.cast(),
                costs,
                (*any).rows,
            );
            (*path).path.parallel_safe = false;
            path.cast::<pg_sys::Path>()
        };
        if can_hash {
            if let Some(partial) = partially_grouped(root, output_rel) {
                // PostgreSQL made such a path too (planner.c, add_paths_to_grouping_rel), over
                // the partial relation's cheapest path, and add_path may have dropped it when
                // a sorted finalization over the same workers cost less. That cheapest path
                // is often a Sort in each process under a Gather Merge, which add_path keeps
                // over a plain Gather of nearly the same cost for its order: an order that a
                // hash aggregate does not use, and a sort that copies each partial state (in
                // the leader too, which then seals and opens its own states). So finalizations
                // over a Gather Merge go, one over a plain Gather comes, and so does one over
                // the cheapest path when that is something else (an Append of partitions'
                // partial aggregates, partitionwise aggregation); the cheapest of the kept
                // paths is chosen after this hook (set_cheapest).
                //
                // The inputs the kept finalizations read, and the ones wanted: a plain Gather
                // unless one is read already (PostgreSQL's, of the same cheapest partial
                // path), and the cheapest path unless it is a Gather Merge; each at most once
                // (with no partial path, `gathered` is the cheapest path itself).
                let mut inputs: Vec<*mut pg_sys::Path> = Vec::new();
                kept.retain(|&p| match finalized_partial(p) {
                    Some(input) if is_gather_merge(input) => false,
                    Some(input) => {
                        inputs.push(input);
                        true
                    }
                    None => true,
                });
                let mut wanted: Vec<*mut pg_sys::Path> = Vec::new();
                if !inputs.iter().any(|&i| (*i).type_ == pg_sys::NodeTag::T_GatherPath) {
                    wanted.push(gathered(root, partial));
                }
                let cheapest = (*partial).cheapest_total_path;
                if !is_gather_merge(cheapest) {
                    wanted.push(cheapest);
                }
                for input in wanted {
                    if !inputs.contains(&input) {
                        inputs.push(input);
                        kept.push(hashed(
                            input,
                            pg_sys::AggSplit::AGGSPLIT_FINAL_DESERIAL,
                            &(*extra).agg_final_costs,
                        ));
                    }
                }
            }
        }
        if kept.is_empty() {
            if !can_hash {
                // left as it is: `check_plan` refuses it
                return;
            }
            let mut costs: pg_sys::AggClauseCosts = std::mem::zeroed();
            get_agg_clause_costs(root, pg_sys::AggSplit::AGGSPLIT_SIMPLE, &mut costs);
            kept.push(hashed(
                (*input_rel).cheapest_total_path,
                pg_sys::AggSplit::AGGSPLIT_SIMPLE,
                &costs,
            ));
        }
        let mut list: *mut pg_sys::List = std::ptr::null_mut();
        for p in kept {
            list = pg_sys::lappend(list, p.cast());
        }
        (*output_rel).pathlist = list;
    }
}

/// After planning a statement with dp aggregates: each of them must finalize in a plain or a
/// hash aggregate (`upper_paths` made sure of it wherever the grouping columns can be hashed),
/// and not in a part of the plan that runs again with other parameters (a correlated
/// subquery, LATERAL): the runs come in the order of the rows that drive them, which other
/// persons' data can decide (the output of another dp aggregate's hash table), and each run
/// counts a person in what the call has left for them, so the order would choose a person's
/// groups. Parameters that initPlans set (an uncorrelated subquery, computed once) are fine.
///
/// # Safety
/// `stmt` is a valid PlannedStmt.
#[pg_guard]
pub unsafe extern "C-unwind" fn check_plan(stmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: per the contract; initPlan lists hold SubPlan nodes whose setParam is an
    // integer List (primnodes.h).
    unsafe {
        let mut once: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        charge::each_node(stmt, &mut |plan, _| {
            for sub in list_ptrs::<pg_sys::SubPlan>((*plan).initPlan) {
                let params = (*sub).setParam;
                let n = if params.is_null() { 0 } else { (*params).length as usize };
                for i in 0..n {
                    once = pg_sys::bms_add_member(once, (*(*params).elements.add(i)).int_value);
                }
            }
            false
        });
        let mut problem = None;
        charge::finalizing_aggs(stmt, &mut |agg, _| {
            if charge::dp_calls(agg) == 0 {
                return false;
            }
            if !matches!(
                (*agg).aggstrategy,
                pg_sys::AggStrategy::AGG_PLAIN | pg_sys::AggStrategy::AGG_HASHED
            ) {
                problem = Some(GroupingProblem::NotHashable);
            } else if !pg_sys::bms_is_subset((*agg).plan.extParam, once) {
                problem = Some(GroupingProblem::Correlated);
            }
            problem.is_some()
        });
        if let Some(problem) = problem {
            DeidentError::DpGrouping(problem).report();
        }
    }
}

/// When the executor has started a statement with dp aggregates: the hash aggregates that
/// finalize them never spill (their limits are set once, in ExecInitAgg, and again only when
/// a spilled batch is read back: nodeAgg.c, `hash_agg_set_limits`).
///
/// # Safety
/// `query_desc` has just been started by the executor.
pub unsafe fn keep_in_memory(query_desc: *mut pg_sys::QueryDesc) {
    /// # Safety
    /// `ps` is a valid PlanState or NULL.
    unsafe fn walk(ps: *mut pg_sys::PlanState) {
        if ps.is_null() {
            return;
        }
        // SAFETY: per the contract; the child arrays have the lengths beside them
        // (execnodes.h).
        unsafe {
            let many = |plans: *mut *mut pg_sys::PlanState, n: i32| {
                for i in 0..n.max(0) as usize {
                    walk(*plans.add(i));
                }
            };
            match (*ps).type_ {
                pg_sys::NodeTag::T_AggState => {
                    let state = ps.cast::<pg_sys::AggState>();
                    let agg = (*ps).plan.cast::<pg_sys::Agg>();
                    if (*state).aggstrategy == pg_sys::AggStrategy::AGG_HASHED
                        && (*agg).aggsplit & pg_sys::AGGSPLITOP_SKIPFINAL == 0
                        && charge::dp_calls(agg) > 0
                    {
                        (*state).hash_mem_limit = usize::MAX;
                        (*state).hash_ngroups_limit = u64::MAX;
                    }
                }
                pg_sys::NodeTag::T_AppendState => {
                    let s = ps.cast::<pg_sys::AppendState>();
                    many((*s).appendplans, (*s).as_nplans);
                }
                pg_sys::NodeTag::T_MergeAppendState => {
                    let s = ps.cast::<pg_sys::MergeAppendState>();
                    many((*s).mergeplans, (*s).ms_nplans);
                }
                pg_sys::NodeTag::T_BitmapAndState => {
                    let s = ps.cast::<pg_sys::BitmapAndState>();
                    many((*s).bitmapplans, (*s).nplans);
                }
                pg_sys::NodeTag::T_BitmapOrState => {
                    let s = ps.cast::<pg_sys::BitmapOrState>();
                    many((*s).bitmapplans, (*s).nplans);
                }
                pg_sys::NodeTag::T_SubqueryScanState => {
                    walk((*ps.cast::<pg_sys::SubqueryScanState>()).subplan);
                }
                pg_sys::NodeTag::T_CustomScanState => {
                    for c in list_ptrs::<pg_sys::PlanState>(
                        (*ps.cast::<pg_sys::CustomScanState>()).custom_ps,
                    ) {
                        walk(c);
                    }
                }
                _ => {}
            }
            walk((*ps).lefttree);
            walk((*ps).righttree);
        }
    }
    // SAFETY: per the contract; es_subplanstates holds every subplan's PlanState (NULL for
    // those not needed).
    unsafe {
        walk((*query_desc).planstate);
        for ps in list_ptrs::<pg_sys::PlanState>((*(*query_desc).estate).es_subplanstates) {
            walk(ps);
        }
    }
}
