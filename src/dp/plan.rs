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
use super::grouping::GroupingProblem;
use super::state::BoundsError;
use crate::enforcement::catalog;
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

/// The mark of a dp aggregate call that passed these checks: its Aggref's `location`, which
/// the parser sets to a byte offset or -1 and nothing at run time reads (only error cursors
/// do), and which copies of the node keep. The executor refuses a plan that finalizes a dp
/// call without it (charge.rs): one that reached the plan past the planner hook, such as the
/// body of a set-returning SQL function that PostgreSQL inlines after the hook's check, with a
/// view in it (a review counted 500 "persons" of one row that way).
pub const CHECKED: i32 = -0x6470_6368;

/// What is wrong with a dp aggregate call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CallProblem {
    Bounds(BoundsError),
    Person(PersonProblem),
    Grouping(GroupingProblem),
    /// A `deident._k_combine_partials` call whose aggregate is not a constant yet.
    UnnamedCombination,
    /// A `deident._k_partial` call that its transition would refuse.
    Partial(crate::aggregates::partial::PartialProblem),
}

/// Why a call's person or value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonProblem {
    /// The person is not a column labelled identifier of a table in FROM.
    NotIdentifier,
    /// The value reads something other than the person's own row, or through functions that
    /// are not built-in and immutable.
    ValueElsewhere,
    /// The statement calls a volatile or user-defined function.
    Functions,
    /// A table with identifier columns read other than as a dp call's person table.
    OtherPersonalTable,
    /// A function that is not leakproof runs on input rows.
    Leaky,
    /// The persons' table is a Citus shard, read on a worker: Citus sent the statement to
    /// the workers whole (one shard's rows, or groups by the distribution column).
    WorkerShard,
    /// A combination of a dp aggregate's partial states written in the statement
    /// (`deident._k_combine_partials`, `coord_combine_agg`): its states may come from any
    /// expression; only the plan's own, which the coordinator's rewrite makes, is the dp call.
    WrittenCombination,
}

struct Ctx {
    /// The queries being walked, innermost last (an Aggref's Vars belong to one of them).
    queries: Vec<*mut pg_sys::Query>,
    /// A dp aggregate call was found.
    found: bool,
    /// The persons' tables: (query, range-table index) of each dp aggregate call.
    persons: Vec<(usize, i32)>,
    /// Dp aggregate calls found already marked: checked with the statement they belong to,
    /// whose part is planned again on its own (Citus plans a subquery it cannot push down
    /// with `planner`, after the statement's checks and restricted roles' rewrite).
    marked: usize,
    problem: Option<CallProblem>,
}

/// Checks every dp aggregate call's bounds in `query`; raises the ERROR of the first bad one.
/// True if the query has dp aggregate calls.
///
/// # Safety
/// `query` is the planner's input.
#[pg_guard]
pub unsafe extern "C-unwind" fn check_query(query: *mut pg_sys::Query) -> bool {
    let mut ctx =
        Ctx { queries: Vec::new(), found: false, persons: Vec::new(), marked: 0, problem: None };
    // SAFETY: per the contract; the walker is a guarded C callback.
    unsafe {
        walker(query.cast(), (&raw mut ctx).cast());
    }
    // SAFETY: per the contract.
    if ctx.found && unsafe { reads_worker_shard(query) } {
        ctx.problem = Some(CallProblem::Person(PersonProblem::WorkerShard));
    }
    // A part of a statement already checked whole (every dp call in it carries the mark) is
    // not checked again: restricted roles' rewrite has turned its persons into masking calls
    // over subqueries, which the checks of a statement as written would refuse.
    let checked_whole = ctx.marked > 0 && ctx.persons.is_empty();
    if ctx.problem.is_none() && ctx.found && !checked_whole {
        // SAFETY: per the contract.
        unsafe {
            if !statement_functions_ok(query) {
                ctx.problem = Some(CallProblem::Person(PersonProblem::Functions));
            } else if let Err(problem) = strict_query(query, &ctx.persons) {
                ctx.problem = Some(CallProblem::Person(problem));
            }
        }
    }
    match ctx.problem {
        Some(CallProblem::Bounds(problem)) => DeidentError::DpBounds(problem).report(),
        Some(CallProblem::Person(problem)) => DeidentError::DpPerson(problem).report(),
        Some(CallProblem::Grouping(problem)) => DeidentError::DpGrouping(problem).report(),
        Some(CallProblem::UnnamedCombination) => {
            DeidentError::PartialNotKAggregate(crate::aggregates::partial::COMBINE).report()
        }
        Some(CallProblem::Partial(problem)) => {
            use crate::aggregates::partial::PartialProblem;
            match problem {
                PartialProblem::Unnamed => DeidentError::PartialNotKAggregate("_k_partial"),
                PartialProblem::Types => DeidentError::PartialArgumentTypes("_k_partial"),
            }
            .report()
        }
        None => ctx.found,
    }
}

/// Does the statement read a Citus shard anywhere, on a Citus worker? A dp aggregate call runs
/// on the coordinator, over the rows Citus gathers there; one that Citus sends to the workers
/// whole (a statement over one shard, or grouped by the distribution column) would admit each
/// person per shard, not per call, and be charged to the worker's ledger, not to the
/// coordinator's (docs/citus.md). Asked of the whole statement, whatever its dp calls'
/// persons look like: a restricted role's statement reaches a worker with its persons read
/// through the masking call. On the coordinator a shard is read by Citus's local execution
/// (a Citus local table, a reference table's copy), in one statement admitted and charged
/// there, as on one node.
///
/// # Safety
/// `query` is a valid Query.
unsafe fn reads_worker_shard(query: *mut pg_sys::Query) -> bool {
    if !catalog::citus_installed() || !catalog::citus_worker() {
        return false;
    }
    // SAFETY: per the contract.
    unsafe { reads_relation(query, &|rel| catalog::shard_of(rel) != catalog::ShardOf::Nothing) }
}

/// Does the statement read a relation for which `wanted` says yes, anywhere: its range
/// tables, subqueries, CTEs, sublinks?
///
/// # Safety
/// `query` is a valid Query.
pub unsafe fn reads_relation(
    query: *mut pg_sys::Query,
    wanted: &dyn Fn(pg_sys::Oid) -> bool,
) -> bool {
    // SAFETY: per the contract; the visitor reads the nodes it is handed.
    unsafe {
        walk_tree(query.cast(), true, &mut |n| {
            let found = (*n).type_ == pg_sys::NodeTag::T_Query
                && list_ptrs::<pg_sys::RangeTblEntry>((*n.cast::<pg_sys::Query>()).rtable).any(
                    |rte| (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION && wanted((*rte).relid),
                );
            if found {
                Visit::Stop
            } else {
                Visit::Continue
            }
        })
    }
}

/// Range-table entry `index` (1-based, as Vars and RangeTblRefs name them) of `query`.
///
/// # Safety
/// `query` is a valid Query.
unsafe fn range_table_entry(
    query: *mut pg_sys::Query,
    index: i32,
) -> Option<*mut pg_sys::RangeTblEntry> {
    let i = usize::try_from(index).ok()?.checked_sub(1)?;
    // SAFETY: per the contract; rtable is a List of RangeTblEntry.
    unsafe { list_ptrs::<pg_sys::RangeTblEntry>((*query).rtable).nth(i) }
}

#[pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, ctx: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: node is a valid Node; ctx is the Ctx that `check_query` passed.
    // The Ctx is reached through the raw pointer each time (no reference to it is held across
    // the recursive walk, which reaches it too).
    unsafe {
        let c = ctx.cast::<Ctx>();
        match (*node).type_ {
            pg_sys::NodeTag::T_Query => {
                (*c).queries.push(node.cast());
                let stop = pg_sys::query_tree_walker(node.cast(), Some(walker), ctx, 0);
                (*c).queries.pop();
                return stop;
            }
            pg_sys::NodeTag::T_Aggref => {
                let agg = node.cast::<pg_sys::Aggref>();
                // a call of a statement checked whole, planned again in part (`Ctx::marked`)
                if (*agg).location == CHECKED && is_dp_aggregate((*agg).aggfnoid) {
                    (*c).found = true;
                    (*c).marked += 1;
                    return pg_sys::expression_tree_walker(node, Some(walker), ctx);
                }
                match check_aggref(agg, &(*c).queries) {
                    Err(problem) => {
                        // (a dp call: only theirs are checked)
                        (*c).found = true;
                        (*c).problem = Some(problem);
                        return true;
                    }
                    Ok(Some(person)) => {
                        (*c).found = true;
                        (*c).persons.push(person);
                        (*agg).location = CHECKED;
                    }
                    Ok(None) => {}
                }
            }
            _ => {}
        }
        pg_sys::expression_tree_walker(node, Some(walker), ctx)
    }
}

/// Checks one aggregate call, if it is a dp aggregate: its bounds (dp_sum, dp_avg), and where
/// its person and value come from.
///
/// # Safety
/// `agg` is a valid Aggref of the innermost of `queries` or of one enclosing it.
unsafe fn check_aggref(
    agg: *mut pg_sys::Aggref,
    queries: &[*mut pg_sys::Query],
) -> Result<Option<(usize, i32)>, CallProblem> {
    // SAFETY: per the contract.
    unsafe {
        // a combination of a dp aggregate's states, which the statement wrote itself (the one the
        // coordinator's rewrite makes is in the plan, after this check)
        if dp_call(agg, true) && !is_dp_aggregate((*agg).aggfnoid) {
            return Err(CallProblem::Person(PersonProblem::WrittenCombination));
        }
        // one whose aggregate is not a constant yet could become a dp aggregate's after this check
        // (a function the planner folds): refused now, as its final function would refuse it
        if crate::aggregates::partial::combines_unnamed(agg) {
            return Err(CallProblem::UnnamedCombination);
        }
        // partial states made by a statement (what Citus's workers make): not a dp call, but
        // checked here rather than on its first row (its aggregate, its arguments' types, and
        // dp_sum's and dp_avg's bounds as theirs are)
        match crate::aggregates::partial::partial_call(agg) {
            None => {}
            Some(Err(problem)) => return Err(CallProblem::Partial(problem)),
            Some(Ok(None)) => return Ok(None),
            Some(Ok(Some((lower, upper)))) => return check_bounds(lower, upper).map(|()| None),
        }
        let args = aggregate_args(agg);
        let person_arg = match dp_kind((*agg).aggfnoid) {
            None => return Ok(None),
            Some(DpKind::Count) if args.len() == 1 => 0,
            Some(DpKind::Bounded) if args.len() == 4 => 1,
            // another aggregate with our support functions: only a superuser can make one
            Some(_) => return Ok(None),
        };
        let level = (*agg).agglevelsup as usize;
        let query = queries.len().checked_sub(1 + level).map(|i| queries[i]);
        let person = (*args[person_arg]).expr.cast::<pg_sys::Node>();
        let rel = person_relation(person, level, query)
            .ok_or(CallProblem::Person(PersonProblem::NotIdentifier))?;
        if person_arg == 1 {
            let value = (*args[0]).expr.cast::<pg_sys::Node>();
            if !value_is_column(value, level, rel) {
                return Err(CallProblem::Person(PersonProblem::ValueElsewhere));
            }
            check_bounds((*args[2]).expr, (*args[3]).expr)?;
        }
        if let Some(q) = query {
            grouping_ok(q).map_err(CallProblem::Grouping)?;
            if citus_limit(q, rel) {
                return Err(CallProblem::Grouping(GroupingProblem::CitusLimit));
            }
        }
        Ok(query.map(|q| (q as usize, rel)))
    }
}

/// The bounds of a dp_sum or dp_avg call (or of `_k_partial` of one): constants of the value's
/// type that make usable bounds.
///
/// # Safety
/// `lower` and `upper` are a call's argument expressions.
unsafe fn check_bounds(
    lower: *mut pg_sys::Expr,
    upper: *mut pg_sys::Expr,
) -> Result<(), CallProblem> {
    // SAFETY: per the contract.
    unsafe {
        let typ = pg_sys::exprType(lower.cast());
        (|| bounds_of(typ, bound_value(lower)?, bound_value(upper)?))()
            .map(|_| ())
            .map_err(CallProblem::Bounds)
    }
}

/// Does `query`, a level with a dp aggregate whose persons' table is range-table entry `rel`,
/// have LIMIT or OFFSET over a Citus table? Citus sends such a limit to the workers when the
/// order is the grouping's, so the coordinator would admit persons from some groups only.
///
/// # Safety
/// `query` is a valid Query and `rel` one of its range-table indexes.
unsafe fn citus_limit(query: *mut pg_sys::Query, rel: i32) -> bool {
    // SAFETY: per the contract.
    unsafe {
        if (*query).limitCount.is_null() && (*query).limitOffset.is_null() {
            return false;
        }
        range_table_entry(query, rel).is_some_and(|rte| catalog::citus_table((*rte).relid))
    }
}

/// A query level with dp aggregates must be one that a hash aggregate can compute
/// (grouping.rs): no grouping sets, and no ORDER BY or DISTINCT inside its aggregate calls
/// (PostgreSQL 15 computes those by sorting: planner.c, `create_grouping_paths`).
///
/// # Safety
/// `query` is a valid Query.
unsafe fn grouping_ok(query: *mut pg_sys::Query) -> Result<(), GroupingProblem> {
    // SAFETY: per the contract.
    unsafe {
        if !(*query).groupingSets.is_null() {
            return Err(GroupingProblem::GroupingSets);
        }
        for tree in [(*query).targetList.cast::<pg_sys::Node>(), (*query).havingQual] {
            for a in aggrefs(tree) {
                if (*a).agglevelsup == 0 && !((*a).aggorder.is_null() && (*a).aggdistinct.is_null())
                {
                    return Err(GroupingProblem::OrderedAggregate);
                }
            }
        }
        Ok(())
    }
}

/// The privacy unit must be the person, and each contribution that person's own: the person
/// argument must be a column labelled `identifier` of a table in FROM, as it is (a
/// binary-compatible relabelling aside), and the value must be a column of that table's row
/// (`value_is_column`). Any function of the
/// person could tell copies of one row apart (a hostile review did it with `current_setting`
/// changed row by row by `set_config` in a join condition, and with functions that lie about
/// their volatility), and any other source of the value could give one person's value to every
/// person (a self-join, a subquery, a function reading another row). Rows repeated by a join
/// stay their person's: their totals add up and are clamped once. The check runs before
/// restricted roles' rewrite, on the query as written.
///
/// The range-table index of the person's table, or None.
///
/// # Safety
/// `person` is a valid expression whose Vars at `level` belong to `query`.
unsafe fn person_relation(
    person: *mut pg_sys::Node,
    level: usize,
    query: Option<*mut pg_sys::Query>,
) -> Option<i32> {
    // SAFETY: per the contract; rtable is a List of RangeTblEntry.
    unsafe {
        let query = query?;
        let mut node = person;
        while (*node).type_ == pg_sys::NodeTag::T_RelabelType {
            node = (*node.cast::<pg_sys::RelabelType>()).arg.cast();
        }
        if (*node).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let var = node.cast::<pg_sys::Var>();
        if (*var).varlevelsup as usize != level {
            return None;
        }
        let varno = (*var).varno;
        let rte = range_table_entry(query, varno)?;
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
            return None;
        }
        let labels = catalog::column_labels((*rte).relid, false);
        let attnum = (*var).varattno;
        let labelled = catalog::identifiers(&labels).any(|a| a == attnum);
        labelled.then_some(varno)
    }
}

/// Is `value` a column of range-table entry `rel` at `level` (a binary-compatible relabelling
/// or a cast that cannot fail aside), or a constant? Nothing computed: any function could
/// raise an error on one person's value (a division by zero), and an error that depends on the
/// data tells whether a row is there, with certainty.
///
/// # Safety
/// `value` is a valid expression.
unsafe fn value_is_column(value: *mut pg_sys::Node, level: usize, rel: i32) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let mut node = value;
        loop {
            match (*node).type_ {
                pg_sys::NodeTag::T_RelabelType => {
                    node = (*node.cast::<pg_sys::RelabelType>()).arg.cast();
                }
                // a cast that cannot fail (leakproof: int to bigint, say)
                pg_sys::NodeTag::T_FuncExpr => {
                    let f = node.cast::<pg_sys::FuncExpr>();
                    let cast = matches!(
                        (*f).funcformat,
                        pg_sys::CoercionForm::COERCE_EXPLICIT_CAST
                            | pg_sys::CoercionForm::COERCE_IMPLICIT_CAST
                    );
                    let args: Vec<*mut pg_sys::Node> = list_ptrs((*f).args).collect();
                    if !(cast
                        && args.len() == 1
                        && (*f).funcid.to_u32() < pg_sys::FirstNormalObjectId
                        && pg_sys::get_func_leakproof((*f).funcid))
                    {
                        return false;
                    }
                    node = args[0];
                }
                _ => break,
            }
        }
        match (*node).type_ {
            pg_sys::NodeTag::T_Const => true,
            pg_sys::NodeTag::T_Var => {
                let v = node.cast::<pg_sys::Var>();
                (*v).varlevelsup as usize == level && (*v).varno == rel
            }
            _ => false,
        }
    }
}

/// Is `expr` a constant expression of built-in immutable functions (a cast, a minus)? Such a
/// bound is folded, the same whatever the data, when the query is planned; a user's function
/// could fold to one value here and to another when the planner folds it again.
///
/// # Safety
/// `expr` is a valid expression.
unsafe fn constant_expression(expr: *mut pg_sys::Node) -> bool {
    // SAFETY: per the contract; the visitor reads the nodes it is handed.
    let refused = unsafe {
        walk_tree(expr, false, &mut |node| {
            use pg_sys::NodeTag::*;
            let allowed = match (*node).type_ {
                T_Const | T_RelabelType | T_List => true,
                T_FuncExpr => trusted_immutable((*node.cast::<pg_sys::FuncExpr>()).funcid),
                T_OpExpr => {
                    // a parse tree's OpExpr may not have its function looked up yet
                    let op = node.cast::<pg_sys::OpExpr>();
                    let func = if (*op).opfuncid == pg_sys::InvalidOid {
                        pg_sys::get_opcode((*op).opno)
                    } else {
                        (*op).opfuncid
                    };
                    trusted_immutable(func)
                }
                _ => false,
            };
            if allowed {
                Visit::Continue
            } else {
                Visit::Stop
            }
        })
    };
    !refused
}

/// The statement around dp aggregate calls, checked so that neither which rows they see nor
/// whether the statement fails depends on anyone but the persons themselves:
/// - a table with `identifier` columns may appear only as a dp aggregate call's person table
///   (a join, an EXISTS or a subquery reading another person's row decided every row of the
///   aggregate: `... WHERE EXISTS (SELECT 1 FROM people v WHERE v.email = 'victim' AND
///   v.salary > x)` gave the whole count or NULL);
/// - every function that runs on input rows (in FROM, WHERE, JOIN ... ON, GROUP BY keys,
///   HAVING, aggregate arguments and FILTERs, subqueries, CTEs) must be leakproof (it raises
///   no error that depends on its arguments: `WHERE 1 / (salary - 1007) > 0` failed exactly
///   when someone earned 1007) or pg_deident's; constant expressions are folded at planning;
/// - output expressions over the groups' answers (a round() of a dp_avg) may use any function
///   the statement may call: they see released answers only, after HAVING.
///
/// # Safety
/// `query` is a valid Query; `persons` as collected by `check_aggref`.
unsafe fn strict_query(
    query: *mut pg_sys::Query,
    persons: &[(usize, i32)],
) -> Result<(), PersonProblem> {
    // SAFETY: per the contract; the lists hold the node types named.
    unsafe {
        for (i, rte) in list_ptrs::<pg_sys::RangeTblEntry>((*query).rtable).enumerate() {
            match (*rte).rtekind {
                pg_sys::RTEKind::RTE_RELATION => {
                    let labels = catalog::column_labels((*rte).relid, false);
                    let personal = catalog::identifiers(&labels).next().is_some();
                    if personal && !persons.contains(&(query as usize, i as i32 + 1)) {
                        return Err(PersonProblem::OtherPersonalTable);
                    }
                }
                pg_sys::RTEKind::RTE_SUBQUERY => strict_query((*rte).subquery, persons)?,
                pg_sys::RTEKind::RTE_FUNCTION
                | pg_sys::RTEKind::RTE_TABLEFUNC
                | pg_sys::RTEKind::RTE_VALUES => {
                    // functions in FROM: their own rows; VALUES: constants (checked strictly)
                    strict_expr((*rte).functions.cast(), persons)?;
                    strict_expr((*rte).tablefunc.cast(), persons)?;
                    strict_expr((*rte).values_lists.cast(), persons)?;
                }
                _ => {}
            }
        }
        for cte in list_ptrs::<pg_sys::CommonTableExpr>((*query).cteList) {
            strict_query((*cte).ctequery.cast(), persons)?;
        }
        strict_expr((*query).jointree.cast(), persons)?;
        strict_expr((*query).havingQual, persons)?;
        let grouped = (*query).hasAggs || !(*query).groupClause.is_null();
        let keys: Vec<u32> = list_ptrs::<pg_sys::SortGroupClause>((*query).groupClause)
            .map(|g| (*g).tleSortGroupRef)
            .collect();
        for tle in list_ptrs::<pg_sys::TargetEntry>((*query).targetList) {
            let expr = (*tle).expr.cast::<pg_sys::Node>();
            if !grouped || keys.contains(&(*tle).ressortgroupref) {
                strict_expr(expr, persons)?;
            } else {
                // an output over groups: only what it aggregates runs on input rows
                for aggref in aggrefs(expr) {
                    strict_expr(aggref.cast(), persons)?;
                }
                for query in sublink_queries(expr) {
                    strict_query(query, persons)?;
                }
            }
        }
        Ok(())
    }
}

/// The subqueries of the SubLinks in an expression (not inside them).
///
/// # Safety
/// `node` is a valid expression or NULL.
unsafe fn sublink_queries(node: *mut pg_sys::Node) -> Vec<*mut pg_sys::Query> {
    let mut out: Vec<*mut pg_sys::Query> = Vec::new();
    // SAFETY: per the contract; the visitor reads the nodes it is handed.
    unsafe {
        walk_tree(node, false, &mut |n| {
            if (*n).type_ == pg_sys::NodeTag::T_SubLink {
                out.push((*n.cast::<pg_sys::SubLink>()).subselect.cast());
            }
            Visit::Continue
        });
    }
    out
}

/// Every function in `node` that runs on input rows is leakproof or pg_deident's; subqueries
/// are checked whole. Constant subexpressions (no Var, no aggregate, no subquery) are skipped:
/// they are folded when the query is planned, the same whatever the data.
///
/// # Safety
/// `node` is a valid expression tree or NULL.
unsafe fn strict_expr(
    node: *mut pg_sys::Node,
    persons: &[(usize, i32)],
) -> Result<(), PersonProblem> {
    #[pg_guard]
    unsafe extern "C-unwind" fn leaky(func: pg_sys::Oid, _ctx: *mut std::ffi::c_void) -> bool {
        if func.to_u32() >= pg_sys::FirstNormalObjectId {
            return foreign_function(func);
        }
        // count() cannot fail whatever it counts; other aggregates can (sum overflows)
        // SAFETY: a syscache read in a transaction.
        unsafe { !pg_sys::get_func_leakproof(func) && !is_count(func) }
    }
    fn is_count(func: pg_sys::Oid) -> bool {
        // SAFETY: a syscache read; get_func_name returns NULL for no such function.
        unsafe {
            let name = pg_sys::get_func_name(func);
            !name.is_null()
                && std::ffi::CStr::from_ptr(name).to_bytes() == b"count"
                && pg_sys::get_func_namespace(func)
                    == pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE)
        }
    }
    let mut problem = None;
    // SAFETY: per the contract; the visitor reads the nodes it is handed. A SubLink's query
    // reaches it as a Query node (expression_tree_walker hands the subselect over).
    unsafe {
        walk_tree(node, false, &mut |n| {
            use pg_sys::NodeTag::*;
            match (*n).type_ {
                T_Query => {
                    problem = strict_query(n.cast(), persons).err();
                    return if problem.is_some() { Visit::Stop } else { Visit::Skip };
                }
                T_CoerceToDomain | T_SubscriptingRef | T_WindowFunc => {
                    problem = Some(PersonProblem::Leaky);
                    return Visit::Stop;
                }
                _ => {}
            }
            if !is_constant(n)
                && pg_sys::check_functions_in_node(n, Some(leaky), std::ptr::null_mut())
            {
                problem = Some(PersonProblem::Leaky);
                return Visit::Stop;
            }
            Visit::Continue
        });
    }
    problem.map_or(Ok(()), Err)
}

/// No Var, Param of the executor, aggregate or subquery in it: folded at planning.
///
/// # Safety
/// `node` is a valid expression tree.
unsafe fn is_constant(node: *mut pg_sys::Node) -> bool {
    // SAFETY: per the contract; the visitor reads the nodes it is handed.
    let varying = unsafe {
        walk_tree(node, false, &mut |n| {
            use pg_sys::NodeTag::*;
            if matches!(
                (*n).type_,
                T_Var | T_Aggref | T_SubLink | T_Param | T_Query | T_WindowFunc | T_GroupingFunc
            ) {
                Visit::Stop
            } else {
                Visit::Continue
            }
        })
    };
    !varying
}

/// A built-in (not user-defined) immutable function.
fn trusted_immutable(func: pg_sys::Oid) -> bool {
    // SAFETY: a syscache read in a transaction.
    func.to_u32() < pg_sys::FirstNormalObjectId
        && unsafe { pg_sys::func_volatile(func) }
            == pg_sys::PROVOLATILE_IMMUTABLE as std::ffi::c_char
}

/// The whole statement, wherever a dp aggregate is in it, may call no volatile function and no
/// user-defined function (pg_deident's own aside): `set_config()` in a join condition changed
/// a setting row by row that the aggregates' arguments then read, and a function declared
/// IMMUTABLE or STABLE can do anything. Every function a node calls is checked: functions,
/// operators, type input and output, aggregates, window functions (nodeFuncs.c,
/// `check_functions_in_node`).
///
/// # Safety
/// `query` is a valid Query.
unsafe fn statement_functions_ok(query: *mut pg_sys::Query) -> bool {
    #[pg_guard]
    unsafe extern "C-unwind" fn refused(func: pg_sys::Oid, _ctx: *mut std::ffi::c_void) -> bool {
        // SAFETY: syscache reads in a transaction.
        unsafe {
            // pg_deident's own functions and aggregates are known; any other user's is refused,
            // and so is `_k_partial`, which only Citus's workers need (a dp statement's partial
            // states are combined by its own plan)
            if func.to_u32() >= pg_sys::FirstNormalObjectId {
                return foreign_function(func) || crate::aggregates::partial::is_partial(func);
            }
            pg_sys::func_volatile(func) == pg_sys::PROVOLATILE_VOLATILE as std::ffi::c_char
        }
    }
    // SAFETY: per the contract; the visitor reads the nodes it is handed, and the walk goes
    // into every subquery.
    let refused_somewhere = unsafe {
        walk_tree(query.cast(), true, &mut |n| {
            if (*n).type_ != pg_sys::NodeTag::T_Query
                && pg_sys::check_functions_in_node(n, Some(refused), std::ptr::null_mut())
            {
                Visit::Stop
            } else {
                Visit::Continue
            }
        })
    };
    !refused_somewhere
}

/// SQL functions returning sets are inlined into the calling query after the planner hook has
/// checked it (clauses.c, `inline_set_returning_function`), so dp aggregates in their bodies
/// would escape the checks; the needs_fmgr hook keeps such functions whole (they are then
/// planned, and checked, on their own). A function's body is searched for the aggregates'
/// names; a BEGIN ATOMIC body (stored parsed) is kept whole whenever it has aggregates.
#[pg_guard]
pub unsafe extern "C-unwind" fn keeps_sql_function_whole(func: pg_sys::Oid) -> bool {
    /// pg_language_d.h.
    const SQL_LANGUAGE_ID: pg_sys::Oid = pg_sys::Oid::from_u32(14);
    const ANUM_PROSRC: i16 = pg_sys::Anum_pg_proc_prosrc as i16;
    const ANUM_PROSQLBODY: i16 = pg_sys::Anum_pg_proc_prosqlbody as i16;
    if func.to_u32() < pg_sys::FirstNormalObjectId {
        return false;
    }
    catalog::with_proc(func, |form, tuple| {
        if !(form.prolang == SQL_LANGUAGE_ID && form.proretset) {
            return false;
        }
        // (a combination of partial states too: its aggregate may be written as a number)
        [
            (ANUM_PROSRC, "dp_"),
            (ANUM_PROSRC, "combine_partials"),
            (ANUM_PROSRC, "coord_combine_agg"),
            (ANUM_PROSQLBODY, ":aggfnoid"),
        ]
        .iter()
        .any(|&(attnum, needle)| {
            let mut isnull = false;
            // SAFETY: a column of the syscache row `with_proc` holds; a text when not NULL.
            unsafe {
                let d = pg_sys::SysCacheGetAttr(
                    pg_sys::SysCacheIdentifier::PROCOID as i32,
                    tuple,
                    attnum,
                    &mut isnull,
                );
                !isnull && catalog::text_of(d).to_lowercase().contains(needle)
            }
        })
    })
    .unwrap_or(false)
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
        if !constant_expression(expr.cast()) {
            return Err(BoundsError::NotConstant);
        }
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

thread_local! {
    /// dp_kind's answers in this transaction: the executor hook asks about every aggregate of
    /// every statement that has one (charge.rs). Dropped at the end of each transaction
    /// (`forget_kinds`), so a dropped and re-created aggregate is not mistaken for another.
    static KINDS: std::cell::RefCell<std::collections::HashMap<u32, Option<DpKind>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Is `aggfnoid` one of dp_count, dp_sum, dp_avg?
pub fn is_dp_aggregate(aggfnoid: pg_sys::Oid) -> bool {
    dp_kind(aggfnoid).is_some()
}

/// Does `aggref` finalize a dp aggregate call: one of dp_count, dp_sum, dp_avg, or, on a Citus
/// coordinator, `deident._k_combine_partials` of their partial states (docs/citus.md)?
/// With `citus_planning`, Citus's `coord_combine_agg` of them too, which the coordinator's
/// plan holds while Citus makes it (and which, left in a plan, is not charged: its final
/// function then finds no terms and refuses).
///
/// # Safety
/// `aggref` is a valid Aggref.
pub unsafe fn dp_call(aggref: *mut pg_sys::Aggref, citus_planning: bool) -> bool {
    use crate::aggregates::partial;
    let combined_dp = |a: pg_sys::Oid| is_dp_aggregate(a) && partial::combinable(a);
    // SAFETY: per the contract.
    unsafe {
        is_dp_aggregate((*aggref).aggfnoid)
            || partial::combined_by_us(aggref).is_some_and(combined_dp)
            || (citus_planning && partial::combined_by_citus(aggref).is_some_and(combined_dp))
    }
}

/// At the end of a transaction.
pub fn forget_kinds() {
    KINDS.with(|k| k.borrow_mut().clear());
}

/// The aggregate calls in an expression tree.
///
/// # Safety
/// `node` is a valid expression tree or NULL.
pub unsafe fn aggrefs(node: *mut pg_sys::Node) -> Vec<*mut pg_sys::Aggref> {
    let mut out: Vec<*mut pg_sys::Aggref> = Vec::new();
    // SAFETY: per the contract; the visitor reads the nodes it is handed.
    unsafe {
        walk_tree(node, false, &mut |n| {
            if (*n).type_ == pg_sys::NodeTag::T_Aggref {
                out.push(n.cast());
                Visit::Skip
            } else {
                Visit::Continue
            }
        });
    }
    out
}

/// What `walk_tree` does after visiting a node.
pub enum Visit {
    /// Go on into the node's children.
    Continue,
    /// Not into this node's children.
    Skip,
    /// End the walk.
    Stop,
}

/// Visits the nodes of an expression tree, parents first, until `visit` says Stop (then true).
/// A subquery is visited as its Query node; with `into_queries`, its contents are visited
/// too (query_tree_walker). The one C callback for the walks of this module
/// (expression_tree_walker, nodeFuncs.c).
///
/// # Safety
/// `node` is a valid node tree or NULL; `visit` may read the nodes it is handed.
pub unsafe fn walk_tree(
    node: *mut pg_sys::Node,
    into_queries: bool,
    visit: &mut dyn FnMut(*mut pg_sys::Node) -> Visit,
) -> bool {
    // SAFETY: per the contract.
    unsafe { walk_tree_levels(node, into_queries, &mut |n, _| visit(n)) }
}

/// `walk_tree`, telling `visit` how many Query nodes the walk entered to reach each node (a
/// Query node itself is visited before it is entered).
///
/// # Safety
/// As `walk_tree`.
pub unsafe fn walk_tree_levels(
    node: *mut pg_sys::Node,
    into_queries: bool,
    visit: &mut dyn FnMut(*mut pg_sys::Node, u32) -> Visit,
) -> bool {
    struct Ctx<'a> {
        into_queries: bool,
        depth: u32,
        visit: &'a mut dyn FnMut(*mut pg_sys::Node, u32) -> Visit,
    }
    #[pg_guard]
    unsafe extern "C-unwind" fn walker(
        node: *mut pg_sys::Node,
        ctx: *mut std::ffi::c_void,
    ) -> bool {
        if node.is_null() {
            return false;
        }
        // SAFETY: node is a valid Node; ctx is the Ctx below, whose visitor is called once at
        // a time (it returns before the walk goes deeper).
        unsafe {
            let c = ctx.cast::<Ctx>();
            match ((*c).visit)(node, (*c).depth) {
                Visit::Stop => return true,
                Visit::Skip => return false,
                Visit::Continue => {}
            }
            if (*node).type_ == pg_sys::NodeTag::T_Query {
                if !(*c).into_queries {
                    return false;
                }
                (*c).depth += 1;
                let r = pg_sys::query_tree_walker(node.cast(), Some(walker), ctx, 0);
                (*c).depth -= 1;
                return r;
            }
            pg_sys::expression_tree_walker(node, Some(walker), ctx)
        }
    }
    let mut ctx = Ctx { into_queries, depth: 0, visit };
    // SAFETY: per the contract; the walker is a guarded C callback.
    unsafe { walker(node, (&raw mut ctx).cast()) }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DpKind {
    /// dp_count(person)
    Count,
    /// dp_sum and dp_avg (value, person, lower, upper)
    Bounded,
}

/// Is `aggfnoid` a dp aggregate: one whose final function is one of this library's
/// `deident._dp_*_final` C functions? Which kind: dp_sum and dp_avg have `_dp_trans` as their
/// transition function.
fn dp_kind(aggfnoid: pg_sys::Oid) -> Option<DpKind> {
    if let Some(kind) = KINDS.with(|k| k.borrow().get(&aggfnoid.to_u32()).copied()) {
        return kind;
    }
    let kind = dp_kind_uncached(aggfnoid);
    KINDS.with(|k| k.borrow_mut().insert(aggfnoid.to_u32(), kind));
    kind
}

fn dp_kind_uncached(aggfnoid: pg_sys::Oid) -> Option<DpKind> {
    {
        let columns =
            catalog::aggregate_functions(aggfnoid, &[catalog::AGG_TRANSFN, catalog::AGG_FINALFN])?;
        let (trans, fin) = (columns[0], columns[1]);
        let name = |f: pg_sys::Oid| catalog::our_function_name(f);
        let fin = name(fin?)?;
        if !(fin.starts_with("_dp_") && fin.ends_with("_final")) {
            return None;
        }
        Some(if name(trans?).as_deref() == Some("_dp_trans") {
            DpKind::Bounded
        } else {
            DpKind::Count
        })
    }
}

/// A user-defined function (not built in) outside pg_deident's schema.
fn foreign_function(func: pg_sys::Oid) -> bool {
    // SAFETY: a syscache read in a transaction.
    func.to_u32() >= pg_sys::FirstNormalObjectId
        && !catalog::is_deident_namespace(unsafe { pg_sys::get_func_namespace(func) })
}
