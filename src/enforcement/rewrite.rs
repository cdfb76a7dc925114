//! The rewrite for a restricted role, run by the planner hook on the query as the rewriter left
//! it (views expanded, row security applied), so that owner views, rules, DECLARE CURSOR,
//! CREATE TABLE AS, materialized views and the bodies of SQL functions (which reach the
//! planner as queries of their own: `enforcement::keeps_sql_functions_whole`) are all seen.
//!
//! Every relation with identifier columns, wherever it appears (FROM, JOIN, subqueries, CTEs,
//! sublinks, set operations, LATERAL, row-security quals), becomes a subquery over itself
//! that has one output column per attribute, in attnum order: the column itself, or its
//! pseudonym in the column's own type, or (a dropped column) a NULL, as expandRTE has it. So
//! every outer reference, whole-row references included (`t.*`, `row_to_json(t)`: pullup
//! builds a ROW() of the outputs), reads pseudonyms, and no outer expression (a cast that
//! fails, a division by zero, a comparison) ever sees a raw value. The pseudonyms come from
//! the C functions of the extension's schema, found by qualified name and argument types and
//! checked to be C functions (only a superuser can create one): no search_path, and no
//! function a user created, can stand in for them. Their calls carry a mark SQL cannot write
//! (`COERCE_SQL_SYNTAX`, which the grammar gives only to functions of pg_catalog), and the
//! keyed functions refuse a restricted role's calls without it (`is_mask_call`).
//!
//! The inner range-table entry keeps everything of the original (inh, TABLESAMPLE, lock mode,
//! permissions, checkAsUser, row-security quals, renumbered to the subquery); its identifier
//! columns' SELECT privilege is checked here, as the executor would, and their bits are then
//! cleared, so the tripwire (`tripwire`) can tell a masked read from a raw one. pg_statistic
//! and pg_statistic_ext_data (behind pg_stats, pg_stats_ext) become empty.

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::pg_sys::{Oid, Query, RangeTblEntry};

use super::catalog::C_LANGUAGE_ID;
use super::list_ptrs;
use super::{bit, catalog, tripwire, STATISTIC_EXT_DATA_RELATION_ID, WRITE};
use crate::dp::plan::{walk_tree, walk_tree_levels, Visit};
use crate::error::DeidentError;

struct Ctx {
    funcs: Option<Funcs>,
    /// Does the statement read a Citus table anywhere (`reads_citus_table`, asked once, before
    /// the rewrite changes anything)? Citus may then send parts of it to other nodes, or
    /// plan them again as SQL on this one, without the marks and views of this pass.
    citus: bool,
    /// The query level being rewritten is a view body whose owner the restricted session may
    /// act as (`Owner::Member`): its conditions may touch no identifier column.
    member_view: Option<Oid>,
    /// The queries that feed rows to a DBA's view (its FROM subqueries, WITH queries, the
    /// branches of its UNION ..., and theirs), with the view: their own conditions would test
    /// pseudonyms where the DBA meant raw values (`dba_view_source`).
    sources: Vec<(*mut Query, Oid)>,
}

#[derive(Clone, Copy)]
struct Funcs {
    text: Oid,
    uuid: Oid,
    bigint: Oid,
    int: Oid,
}

/// The length of the text pseudonym a masked column gets (SPEC's default).
const MASK_LENGTH: i32 = 22;

/// Rewrites `query` (and everything below it) for a restricted role.
///
/// # Safety
/// `query` is a valid, rewritten Query that the caller may modify (the planner's input).
pub unsafe fn rewrite(query: *mut Query) {
    // SAFETY: per the contract; the walker is a guarded C callback.
    unsafe {
        let citus = catalog::citus_installed() && reads_citus_table(query);
        let mut ctx = Ctx { funcs: None, citus, member_view: None, sources: Vec::new() };
        walker(query.cast(), (&raw mut ctx).cast());
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, ctx: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: node is a valid Node; ctx is the Ctx that `rewrite` passed.
    unsafe {
        if (*node).type_ == pg_sys::NodeTag::T_Query {
            let query = node.cast::<Query>();
            // Row-security policies of a relation whose owner is not restricted are the DBA's:
            // their conditions see raw values, as their author wrote them (a policy
            // `email NOT IN (SELECT email FROM blocked)` must keep hiding the same rows), and
            // nothing of them reaches the role but which rows pass. They are set aside from
            // the rewrite; the relations they read keep raw columns (`allow_raw`). A policy a
            // restricted owner wrote is rewritten like the role's own queries: it could test
            // guesses.
            let mut set_aside: Vec<(*mut RangeTblEntry, *mut pg_sys::List)> = Vec::new();
            for (i, rte) in list_ptrs::<RangeTblEntry>((*query).rtable).enumerate() {
                if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION || (*rte).securityQuals.is_null()
                {
                    continue;
                }
                match owner_of((*rte).relid) {
                    Owner::Dba => {
                        set_aside.push((rte, (*rte).securityQuals));
                        (*rte).securityQuals = std::ptr::null_mut();
                    }
                    // rewritten as the role's own; refused if that could differ from the
                    // DBA's meaning (a subquery, an identifier column, a whole row)
                    Owner::Member(owner) => {
                        let quals = (*rte).securityQuals.cast::<pg_sys::Node>();
                        let labels = catalog::column_labels((*rte).relid, (*rte).inh);
                        let identifiers: Vec<i16> = catalog::identifiers(&labels).collect();
                        if pg_sys::checkExprHasSubLink(quals)
                            || quals_read(&[quals], i as i32 + 1, &identifiers)
                        {
                            DeidentError::RestrictedMemberOwner {
                                relation: rel_name((*rte).relid),
                                owner: catalog::role_name(owner),
                            }
                            .report();
                        }
                    }
                    Owner::Restricted => {}
                }
            }
            // Likewise the conditions of a DBA's view (WHERE, JOIN ... ON, HAVING): a security
            // barrier view `WHERE email NOT LIKE '%@secret.com'` must hide the same rows from a
            // restricted role. They read raw values (`mask_relation`), and only decide which
            // rows pass; what the view returns is masked.
            let view_owner = view_body_owner(query);
            // the view whose rows this query decides, if a DBA's: its body, or one of its
            // row sources (a view body of its own decides for itself)
            let dba_view = {
                let c = &*ctx.cast::<Ctx>();
                match view_owner {
                    Some(Owner::Dba | Owner::Member(_)) => {
                        list_ptrs::<RangeTblEntry>((*query).rtable).next().map(|rte| (*rte).relid)
                    }
                    Some(Owner::Restricted) => None,
                    None => c.sources.iter().find(|(q, _)| *q == query).map(|&(_, v)| v),
                }
            };
            let source_of = if view_owner.is_none() { dba_view } else { None };
            if let Some(view) = dba_view {
                let c = &mut *ctx.cast::<Ctx>();
                for rte in list_ptrs::<RangeTblEntry>((*query).rtable) {
                    if (*rte).rtekind == pg_sys::RTEKind::RTE_SUBQUERY {
                        c.sources.push(((*rte).subquery, view));
                    }
                }
                for cte in list_ptrs::<pg_sys::CommonTableExpr>((*query).cteList) {
                    c.sources.push(((*cte).ctequery.cast(), view));
                }
            }
            let slots = match view_owner {
                Some(Owner::Dba | Owner::Member(_)) => qual_slots(query),
                _ => Vec::new(),
            };
            let quals: Vec<*mut pg_sys::Node> = slots.iter().map(|&slot| *slot).collect();
            for &slot in &slots {
                *slot = std::ptr::null_mut();
            }
            // Children first (subqueries in FROM, CTEs, sublinks, row-security quals), so
            // that the subqueries built below are never walked themselves.
            pg_sys::query_tree_walker(query, Some(walker), ctx, 0);
            for (rte, quals) in set_aside {
                (*rte).securityQuals = quals;
                allow_raw(quals.cast(), std::ptr::null_mut());
            }
            for (&slot, &qual) in slots.iter().zip(&quals) {
                *slot = qual;
                allow_raw(qual, std::ptr::null_mut());
            }
            let raw_quals: Vec<*mut pg_sys::Node> =
                quals.into_iter().filter(|q| !q.is_null()).collect();
            let citus = (*ctx.cast::<Ctx>()).citus;
            if distinct_set_operation(query) && citus {
                DeidentError::RestrictedCitusSetOperation.report();
            }
            // The tables a DBA's view condition reads in a subquery keep their raw values on
            // this node (`allow_raw`); where Citus runs the statement they do not (a review saw
            // `WHERE org NOT IN (SELECT org FROM reference_table WHERE boss LIKE ...)` let the
            // rows through, the subquery's table masked on the node that ran it)
            if citus && raw_quals.iter().any(|&q| pg_sys::checkExprHasSubLink(q)) {
                DeidentError::RestrictedCitusViewQuals { relation: view_name(query) }.report();
            }
            let member_view = match view_owner {
                Some(Owner::Member(owner)) => Some(owner),
                _ => None,
            };
            if let Some(owner) = member_view {
                if raw_quals.iter().any(|&q| pg_sys::checkExprHasSubLink(q)) {
                    DeidentError::RestrictedMemberOwner {
                        relation: view_name(query),
                        owner: catalog::role_name(owner),
                    }
                    .report();
                }
            }
            let c = &mut *ctx.cast::<Ctx>();
            c.member_view = member_view;
            rewrite_rtable(query, c, &raw_quals);
            c.member_view = None;
            if let Some(view) = source_of {
                dba_view_source(query, view, c);
            }
            if let Some(view) = dba_view {
                dba_view_filters(query, view, c);
            }
            return false;
        }
        if (*node).type_ == pg_sys::NodeTag::T_FuncExpr {
            check_citus_call((*node.cast::<pg_sys::FuncExpr>()).funcid);
        }
        pg_sys::expression_tree_walker(node, Some(walker), ctx)
    }
}

/// Does the query combine its branches with UNION, INTERSECT or EXCEPT without ALL?
///
/// # Safety
/// `query` is a valid Query.
unsafe fn distinct_set_operation(query: *mut Query) -> bool {
    unsafe fn distinct(node: *mut pg_sys::Node) -> bool {
        // SAFETY: a node of a set operation tree: SetOperationStmt or RangeTblRef.
        unsafe {
            if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_SetOperationStmt {
                return false;
            }
            let op = node.cast::<pg_sys::SetOperationStmt>();
            !(*op).all || distinct((*op).larg) || distinct((*op).rarg)
        }
    }
    // SAFETY: per the contract.
    unsafe { distinct((*query).setOperations) }
}

/// Does the statement read a Citus table anywhere: its range tables, subqueries, CTEs,
/// sublinks? (Citus inlines CTEs after the planner hook has run, so a set operation over CTE
/// references is combined shard by shard too.)
///
/// # Safety
/// `query` is a valid Query.
unsafe fn reads_citus_table(query: *mut Query) -> bool {
    // SAFETY: per the contract.
    unsafe { crate::dp::plan::reads_relation(query, &catalog::citus_table) }
}

/// Citus's functions that run SQL on other nodes (or on this one) in new sessions of the
/// current role (`run_command_on_*`, `master_run_on_worker`).
const CITUS_REMOTE: [&str; 7] = [
    "run_command_on_workers",
    "run_command_on_placements",
    "run_command_on_colocated_placements",
    "run_command_on_shards",
    "run_command_on_all_nodes",
    "run_command_on_coordinator",
    "master_run_on_worker",
];
/// Citus's functions behind its per-tenant and per-query statistics, which hold raw values of
/// the distribution column (`tenant_attribute`, `partition_key`; the tenant views are refused
/// by name too: `catalog::citus_shard`).
const CITUS_TENANTS: [&str; 4] = [
    "citus_stat_tenants",
    "citus_stat_tenants_local",
    "citus_stat_tenants_local_internal",
    "citus_query_stats",
];

/// A restricted role's call of a Citus function that would show raw values: the per-tenant
/// statistics, always; a `run_command_on_*` function in a session that is restricted through
/// its login while the current role is another one (after SET ROLE, or in a SECURITY DEFINER
/// function of a role the login belongs to). Citus runs that command in new sessions of the
/// current role on the other nodes, where nothing tells them the login was restricted: the
/// role itself is not. Called by the rewrite's walk for every function call of the statement.
fn check_citus_call(func: Oid) {
    // SAFETY: syscache reads in a transaction.
    let (name, schema) = unsafe {
        let name = pg_sys::get_func_name(func);
        if name.is_null() {
            return;
        }
        (std::ffi::CStr::from_ptr(name).to_bytes(), pg_sys::get_func_namespace(func))
    };
    if schema != Oid::from_u32(pg_sys::PG_CATALOG_NAMESPACE) {
        return;
    }
    let name = String::from_utf8_lossy(name).into_owned();
    if CITUS_TENANTS.contains(&name.as_str()) {
        DeidentError::RestrictedCitusCall { function: name, remote: false }.report();
    }
    // SAFETY: miscinit.c's current user.
    if CITUS_REMOTE.contains(&name.as_str())
        && !super::roles::is_restricted(unsafe { pg_sys::GetUserId() })
    {
        DeidentError::RestrictedCitusCall { function: name, remote: true }.report();
    }
}

/// A query that feeds rows to a DBA's view `view` (a FROM subquery of it, a WITH query, a
/// UNION branch), now rewritten as the role's own: its conditions see pseudonyms, so if they
/// read an identifier value (through a masked relation or any output that holds one) or use a
/// subquery (which would read masked tables too), they would not hide the rows the DBA meant
/// to hide (a review: `SELECT * FROM (SELECT ... FROM t WHERE email NOT LIKE ...) s`): refused.
///
/// # Safety
/// `query` is a valid Query that the rewrite has finished.
unsafe fn dba_view_source(query: *mut Query, view: Oid, ctx: &mut Ctx) {
    // SAFETY: per the contract.
    unsafe {
        let quals: Vec<*mut pg_sys::Node> =
            qual_slots(query).into_iter().map(|slot| *slot).filter(|q| !q.is_null()).collect();
        if quals.is_empty() {
            return;
        }
        refuse_pseudonym_tests(query, &quals, view, ctx);
    }
}

/// Refuses (0A000) expressions of a DBA's view `view`, rewritten as the role's own, that
/// would test pseudonyms where the DBA meant raw values: that read a masked value, use a
/// subquery, or read an outer level (a LATERAL subquery's condition on the view's table,
/// which this check does not resolve; a review).
///
/// # Safety
/// `query` is a valid Query that the rewrite has finished; `exprs` are expressions of it.
unsafe fn refuse_pseudonym_tests(
    query: *mut Query,
    exprs: &[*mut pg_sys::Node],
    view: Oid,
    ctx: &mut Ctx,
) {
    // SAFETY: per the contract.
    unsafe {
        let funcs = ctx.funcs().oids();
        let outer =
            |q: *mut pg_sys::Node| visit_vars(q, 0, &mut |var, depth| (*var).varlevelsup > depth);
        if exprs.iter().any(|&q| pg_sys::checkExprHasSubLink(q) || outer(q))
            || quals_read_masked(query, exprs, &funcs)
        {
            DeidentError::RestrictedViewQuals { relation: rel_name(view) }.report();
        }
    }
}

/// Aggregate FILTER clauses of a DBA's view (its body or a query that feeds it) decide which
/// rows an aggregate sees, as conditions do; rewritten as the role's own they see
/// pseudonyms: refused if they read a masked value, use a subquery or read an outer level
/// (a review: `json_agg(t) FILTER (WHERE t.email NOT LIKE ...)` gave the hidden row).
///
/// # Safety
/// `query` is a valid Query that the rewrite has finished.
unsafe fn dba_view_filters(query: *mut Query, view: Oid, ctx: &mut Ctx) {
    // SAFETY: per the contract; the visitor reads the nodes it is handed.
    unsafe {
        let mut filters: Vec<*mut pg_sys::Node> = Vec::new();
        for root in [(*query).targetList.cast::<pg_sys::Node>(), (*query).havingQual] {
            walk_tree(root, false, &mut |n| {
                let filter = match (*n).type_ {
                    pg_sys::NodeTag::T_Aggref => (*n.cast::<pg_sys::Aggref>()).aggfilter,
                    pg_sys::NodeTag::T_WindowFunc => (*n.cast::<pg_sys::WindowFunc>()).aggfilter,
                    _ => std::ptr::null_mut(),
                };
                if !filter.is_null() {
                    filters.push(filter.cast());
                }
                Visit::Continue
            });
        }
        refuse_pseudonym_tests(query, &filters, view, ctx);
    }
}

/// Who owns the view whose body `query` is, if it is one? A view's query, as
/// ApplyRetrieveRule expands it, has the view's own entry (OLD, for permissions: not in FROM,
/// only SELECT) first.
unsafe fn view_body_owner(query: *mut Query) -> Option<Owner> {
    // SAFETY: a valid Query; its range table holds RangeTblEntry nodes.
    unsafe {
        if (*query).commandType != pg_sys::CmdType::CMD_SELECT {
            return None;
        }
        let first = list_ptrs::<RangeTblEntry>((*query).rtable).next()?;
        let body = (*first).rtekind == pg_sys::RTEKind::RTE_RELATION
            && (*first).relkind as u8 == b'v'
            && !(*first).inFromCl
            && (*first).requiredPerms as u64
                & !(pg_sys::ACL_SELECT as u64 | pg_sys::ACL_UPDATE as u64)
                == 0;
        body.then(|| owner_of((*first).relid))
    }
}

/// The name of the view whose body `query` is (its first entry's relation).
unsafe fn view_name(query: *mut Query) -> String {
    // SAFETY: a valid Query.
    let view =
        unsafe { list_ptrs::<RangeTblEntry>((*query).rtable).next().map(|rte| (*rte).relid) };
    rel_name(view.unwrap_or(pg_sys::InvalidOid))
}

/// The places that hold a query's row conditions: WHERE, each JOIN's ON, HAVING.
unsafe fn qual_slots(query: *mut Query) -> Vec<*mut *mut pg_sys::Node> {
    unsafe fn joins(node: *mut pg_sys::Node, out: &mut Vec<*mut *mut pg_sys::Node>) {
        // SAFETY: a jointree node: a FromExpr, JoinExpr or RangeTblRef.
        unsafe {
            if node.is_null() {
                return;
            }
            match (*node).type_ {
                pg_sys::NodeTag::T_JoinExpr => {
                    let j = node.cast::<pg_sys::JoinExpr>();
                    out.push(&raw mut (*j).quals);
                    joins((*j).larg, out);
                    joins((*j).rarg, out);
                }
                pg_sys::NodeTag::T_FromExpr => {
                    let f = node.cast::<pg_sys::FromExpr>();
                    out.push(&raw mut (*f).quals);
                    for n in list_ptrs::<pg_sys::Node>((*f).fromlist) {
                        joins(n, out);
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    // SAFETY: a valid Query.
    unsafe {
        joins((*query).jointree.cast(), &mut out);
        out.push(&raw mut (*query).havingQual);
    }
    out
}

/// Whose are a relation's conditions (its row-security policies, a view's WHERE ...)?
#[derive(Clone, Copy)]
enum Owner {
    /// The DBA's: the owner is not restricted, and the restricted session cannot act as it.
    /// They see raw values.
    Dba,
    /// The owner is restricted (or there is none): rewritten as the role's own.
    Restricted,
    /// The owner is not restricted, but the restricted session is a member of it
    /// (`roles::may_act_as`): the session could have written them. Rewritten as the role's
    /// own, and refused where that could differ from what a DBA meant.
    Member(Oid),
}

fn owner_of(relid: Oid) -> Owner {
    let owner = catalog::rel_owner(relid);
    if owner == pg_sys::InvalidOid || super::roles::is_restricted(owner) {
        Owner::Restricted
    } else if super::roles::may_act_as(owner) {
        Owner::Member(owner)
    } else {
        Owner::Dba
    }
}

/// Walks a DBA's row-security condition: every relation it reads keeps its raw columns; their
/// SELECT privilege is checked here and their bits taken away, so the tripwire knows these
/// reads are the policy's.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn allow_raw(node: *mut pg_sys::Node, ctx: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: node is a valid Node of the policy's expression.
    unsafe {
        if (*node).type_ == pg_sys::NodeTag::T_Query {
            let query = node.cast::<Query>();
            // A view body or a row-security policy inside the condition that the restricted
            // session controls (its own, or its owner's a role it is a member of) would see
            // raw values too: the session's own condition, a guess oracle (a review)
            if let Some(Owner::Restricted | Owner::Member(_)) = view_body_owner(query) {
                DeidentError::RestrictedInDbaCondition { object: view_name(query) }.report();
            }
            pg_sys::query_tree_walker(query, Some(allow_raw), ctx, 0);
            for rte in list_ptrs::<RangeTblEntry>((*query).rtable) {
                if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
                    continue;
                }
                // a table the session controls or may write is a guess oracle too (reviews)
                if matches!(owner_of((*rte).relid), Owner::Restricted | Owner::Member(_))
                    || super::roles::may_write((*rte).relid)
                {
                    DeidentError::RestrictedInDbaCondition { object: rel_name((*rte).relid) }
                        .report();
                }
                let labels = catalog::column_labels((*rte).relid, (*rte).inh);
                let identifiers: Vec<i16> = catalog::identifiers(&labels).collect();
                if identifiers.is_empty() {
                    continue;
                }
                take_identifier_bits_of(rte, &identifiers);
            }
            return false;
        }
        dba_condition_call(node);
        pg_sys::expression_tree_walker(node, Some(allow_raw), ctx)
    }
}

/// pg_language.dat: the language of built-in functions, which run no SQL of their own (nor,
/// as a rule, do C functions: `C_LANGUAGE_ID`).
const INTERNAL_LANGUAGE_ID: Oid = Oid::from_u32(12);

/// A function that a DBA's condition calls sees raw values (its arguments), and so do the
/// support functions of an aggregate it calls. Each must be the DBA's and run no SQL of its
/// own: refused (42501) if the restricted session controls it (its owner is restricted or a
/// role the session is a member of: it could copy the values out, reviews found), or if it is
/// in SQL or a procedural language (its body may call the session's functions, or read
/// tables as the restricted role, over pseudonyms, and let rows through: reviews found both,
/// also behind IMMUTABLE). `current_setting()` and `current_query()` give the condition a
/// value the session chose: compared with a raw value, a guess oracle (a review). A cast to a
/// domain runs its CHECK expressions, which may call anything: refused too.
///
/// # Safety
/// `node` is a valid node of a DBA's condition.
unsafe fn dba_condition_call(node: *mut pg_sys::Node) {
    // SAFETY: per the contract; the fields read are those of each node's type.
    let funcs: Vec<Oid> = unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_FuncExpr => vec![(*node.cast::<pg_sys::FuncExpr>()).funcid],
            pg_sys::NodeTag::T_OpExpr
            | pg_sys::NodeTag::T_DistinctExpr
            | pg_sys::NodeTag::T_NullIfExpr => vec![(*node.cast::<pg_sys::OpExpr>()).opfuncid],
            pg_sys::NodeTag::T_ScalarArrayOpExpr => {
                vec![(*node.cast::<pg_sys::ScalarArrayOpExpr>()).opfuncid]
            }
            pg_sys::NodeTag::T_Aggref => {
                aggregate_functions((*node.cast::<pg_sys::Aggref>()).aggfnoid)
            }
            pg_sys::NodeTag::T_WindowFunc => {
                aggregate_functions((*node.cast::<pg_sys::WindowFunc>()).winfnoid)
            }
            pg_sys::NodeTag::T_CoerceToDomain => {
                let domain = (*node.cast::<pg_sys::CoerceToDomain>()).resulttype;
                DeidentError::RestrictedInDbaCondition { object: type_name(domain) }.report()
            }
            // An input function (a cast through text to integer, date, jsonb ...) that fails
            // quotes the raw value in its error, which the role's own PL/pgSQL can catch and
            // read (a review; the message scrub in hooks.rs sees only reported errors): only
            // casts to text types, whose input cannot fail, are allowed.
            pg_sys::NodeTag::T_CoerceViaIO => {
                let target = (*node.cast::<pg_sys::CoerceViaIO>()).resulttype;
                let text_like = [pg_sys::TEXTOID, pg_sys::VARCHAROID, pg_sys::BPCHAROID];
                if !text_like.contains(&target) {
                    DeidentError::RestrictedInDbaCondition { object: type_name(target) }.report()
                }
                return;
            }
            _ => return,
        }
    };
    for func in funcs {
        if func == pg_sys::InvalidOid {
            continue;
        }
        let facts = catalog::with_proc(func, |form, _| {
            let name = form.proname.data.as_ptr();
            let name = std::ffi::CStr::from_ptr(name).to_bytes().to_vec();
            (form.proowner, form.prolang, form.pronamespace, name, form.pronargs)
        });
        let Some((owner, lang, namespace, name, nargs)) = facts else { continue };
        if namespace == Oid::from_u32(pg_sys::PG_CATALOG_NAMESPACE)
            && (SESSION_STEERED.contains(&name.as_slice())
                || nargs == 1 && TEXT_SEARCH_DEFAULTS.contains(&name.as_slice())
                || NAME_LOOKUPS.contains(&name.as_slice()) && text_argument(node))
        {
            DeidentError::RestrictedInDbaCondition { object: catalog::func_name(func) }.report();
        }
        let controlled = owner != pg_sys::InvalidOid
            && (super::roles::is_restricted(owner) || super::roles::may_act_as(owner));
        // (PostgreSQL's own SQL-language functions, in pg_catalog, call only built-ins)
        let runs_sql = lang != INTERNAL_LANGUAGE_ID
            && lang != C_LANGUAGE_ID
            && namespace != Oid::from_u32(pg_sys::PG_CATALOG_NAMESPACE);
        if controlled || runs_sql {
            DeidentError::RestrictedInDbaCondition { object: catalog::func_name(func) }.report();
        }
    }
}

/// Built-ins whose result the session steers: values it chose (settings, its query text,
/// its application_name through pg_stat_activity), or SQL text they run with its search_path
/// (reviews found a guess oracle in each kind).
/// Built-ins that look a name up, or parse their text: given a value (not a constant of the
/// condition), an unknown name or a parse error quotes the raw value in its error, which the
/// role's PL/pgSQL can catch, or the answer depends on the session's search_path (a review).
/// With OIDs and constants (as PostgreSQL's own catalog views call them) they are allowed.
const NAME_LOOKUPS: &[&[u8]] = &[
    b"pg_has_role",
    b"has_table_privilege",
    b"has_column_privilege",
    b"has_any_column_privilege",
    b"has_schema_privilege",
    b"has_database_privilege",
    b"has_function_privilege",
    b"has_sequence_privilege",
    b"has_type_privilege",
    b"has_language_privilege",
    b"has_server_privilege",
    b"has_tablespace_privilege",
    b"has_foreign_data_wrapper_privilege",
    b"has_parameter_privilege",
    b"regclass",
    b"to_regclass",
    b"to_regproc",
    b"to_regprocedure",
    b"to_regoper",
    b"to_regoperator",
    b"to_regtype",
    b"to_regnamespace",
    b"to_regrole",
    b"to_regcollation",
    // tsquery parsing errors quote the text
    b"to_tsquery",
];

/// Does the call `node` take a text-like argument that is not a constant?
///
/// # Safety
/// `node` is a valid node.
unsafe fn text_argument(node: *mut pg_sys::Node) -> bool {
    // SAFETY: per the contract; a FuncExpr's args are expressions.
    unsafe {
        if (*node).type_ != pg_sys::NodeTag::T_FuncExpr {
            return false;
        }
        list_ptrs::<pg_sys::Node>((*node.cast::<pg_sys::FuncExpr>()).args).any(|arg| {
            let typ = pg_sys::exprType(arg);
            let text_like =
                [pg_sys::TEXTOID, pg_sys::NAMEOID, pg_sys::VARCHAROID, pg_sys::BPCHAROID];
            text_like.contains(&typ) && (*arg).type_ != pg_sys::NodeTag::T_Const
        })
    }
}

const SESSION_STEERED: &[&[u8]] = &[
    b"current_setting",
    b"current_query",
    b"pg_show_all_settings",
    b"pg_stat_get_activity",
    b"query_to_xml",
    b"query_to_xmlschema",
    b"query_to_xml_and_xmlschema",
    b"cursor_to_xml",
    b"cursor_to_xmlschema",
    b"ts_stat",
    b"ts_rewrite",
    b"pg_settings_get_flags",
    b"set_config",
];
/// Text search functions that, with one argument, use `default_text_search_config`, a
/// setting the session can point at a configuration of its own (a review).
const TEXT_SEARCH_DEFAULTS: [&[u8]; 6] = [
    b"to_tsvector",
    b"to_tsquery",
    b"plainto_tsquery",
    b"phraseto_tsquery",
    b"websearch_to_tsquery",
    b"json_to_tsvector",
];

/// The functions a call of `func` runs: itself, and for an aggregate its support functions
/// (pg_aggregate.h: aggtransfn, 4, to aggmfinalfn, 11).
fn aggregate_functions(func: Oid) -> Vec<Oid> {
    let mut out = vec![func];
    let support = catalog::aggregate_functions(func, &[4, 5, 6, 7, 8, 9, 10, 11]);
    out.extend(support.into_iter().flatten().flatten());
    out
}

fn type_name(typ: Oid) -> String {
    // SAFETY: format_type_be palloc's a name, or raises an ERROR for a type that is gone.
    unsafe { std::ffi::CStr::from_ptr(pg_sys::format_type_be(typ)).to_string_lossy().into_owned() }
}

/// # Safety
/// `query` is a valid Query.
unsafe fn rewrite_rtable(query: *mut Query, ctx: &mut Ctx, raw_quals: &[*mut pg_sys::Node]) {
    // SAFETY: per the contract; the range table is a List of RangeTblEntry.
    unsafe {
        let mut replaced: Vec<(i32, Vec<i16>)> = Vec::new();
        let mut view: Option<(*mut RangeTblEntry, Vec<i16>)> = None;
        for (i, rte) in list_ptrs::<RangeTblEntry>((*query).rtable).enumerate() {
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
                continue;
            }
            let relid = (*rte).relid;
            if relid == pg_sys::StatisticRelationId || relid == STATISTIC_EXT_DATA_RELATION_ID {
                empty_statistics(rte);
                continue;
            }
            let rti = i as i32 + 1;
            // A write counts the labels of the relation's whole inheritance tree, whatever the
            // entry's inh (catalog::tree_labelled): a guess written to an unlabelled partition
            // would be read back as its pseudonym through the parent.
            if is_written(query, rte, rti) && catalog::tree_labelled(relid) {
                DeidentError::RestrictedWrite { relation: rel_name(relid) }.report();
            }
            if let Some(referenced) = tripwire::keyed_write(rte) {
                tripwire::Violation::KeyedWrite(relid, referenced).report();
            }
            let labels = catalog::column_labels(relid, (*rte).inh);
            if labels.is_empty() {
                continue;
            }
            let identifiers: Vec<i16> = catalog::identifiers(&labels).collect();
            if identifiers.is_empty() {
                continue;
            }
            // A view's own entry: the OLD entry that ApplyRetrieveRule leaves as the first of
            // the view's query, for permissions; it is not scanned. Its labelled columns are
            // the query's outputs, masked below once the relations it reads are.
            if (*rte).relkind as u8 == b'v' {
                if i == 0 {
                    view = Some((rte, identifiers));
                }
                continue;
            }
            let funcs = ctx.funcs();
            if already_masked(query, rti, &identifiers, &funcs) {
                continue;
            }
            // a statement Citus runs on this node reads its tables through the masking
            // calls of the coordinator's rewrite (unmask_pushed_calls)
            if catalog::citus_installed() {
                unmask_pushed_calls(query, rti, relid, &identifiers, &funcs, raw_quals);
            }
            // A DBA's view conditions read raw values through junk outputs of the relation's
            // subquery, which Citus does not keep when it sends the statement to the workers or
            // plans it again as SQL: they would test pseudonyms there, and let rows through
            if !raw_quals.is_empty() && quals_read(raw_quals, rti, &identifiers) {
                // under GROUPING SETS a raw junk output is no grouping column: a HAVING would
                // read some row's raw value in a total row (a review saw a hidden row's count)
                if !(*query).groupingSets.is_null()
                    && !(*query).havingQual.is_null()
                    && quals_read(&[(*query).havingQual], rti, &identifiers)
                {
                    DeidentError::RestrictedViewQuals { relation: view_name(query) }.report();
                }
                if let Some(owner) = ctx.member_view {
                    DeidentError::RestrictedMemberOwner {
                        relation: view_name(query),
                        owner: catalog::role_name(owner),
                    }
                    .report();
                }
                if ctx.citus {
                    DeidentError::RestrictedCitusViewQuals { relation: rel_name(relid) }.report();
                }
            }
            mask_relation(query, rte, rti, &identifiers, &funcs, raw_quals, ctx.citus);
            replaced.push((rti, identifiers));
        }
        if let Some((rte, identifiers)) = view {
            let funcs = ctx.funcs();
            mask_view_outputs(query, rte, &identifiers, &replaced, &funcs);
        }
        if !raw_quals.is_empty() {
            let funcs = ctx.funcs().oids();
            if quals_read_masked(query, raw_quals, &funcs) {
                let view =
                    list_ptrs::<RangeTblEntry>((*query).rtable).next().map(|rte| (*rte).relid);
                DeidentError::RestrictedViewQuals {
                    relation: rel_name(view.unwrap_or(pg_sys::InvalidOid)),
                }
                .report();
            }
        }
    }
}

/// Do a DBA's view conditions (`raw_quals`, rewritten: a masked relation's identifier
/// columns and whole rows moved to raw junk outputs) still read a masked value: an output of
/// a subquery, a CTE or a join of the view's query that is (or holds) a pseudonym? On one
/// node those conditions are meant to see raw values; through such an output they would test
/// pseudonyms and let rows through (a review: `FROM (SELECT * FROM t) s WHERE s.email NOT
/// LIKE ...`). The rewrite cannot give them the raw value there, so the statement is refused.
///
/// # Safety
/// `query` is a valid Query whose range table the rewrite has finished; the conditions are
/// expressions of it.
unsafe fn quals_read_masked(
    query: *mut Query,
    raw_quals: &[*mut pg_sys::Node],
    funcs: &[Oid; 4],
) -> bool {
    // SAFETY: per the contract.
    raw_quals.iter().any(|&q| unsafe {
        visit_vars(q, 0, &mut |var, depth| {
            (*var).varlevelsup == depth
                && output_masked(&[query], (*var).varno, (*var).varattno, funcs)
        })
    })
}

/// Calls `f` on each Var under `node` with the number of Query nodes entered to reach it
/// (counted from `depth`), until `f` returns true; true if it did. The Vars are the tree's
/// own: `f` may change them in place.
///
/// # Safety
/// `node` is a valid node tree.
unsafe fn visit_vars(
    node: *mut pg_sys::Node,
    depth: u32,
    f: &mut dyn FnMut(*mut pg_sys::Var, u32) -> bool,
) -> bool {
    // SAFETY: per the contract; the visitor is handed each node once.
    unsafe {
        walk_tree_levels(node, true, &mut |n, levels| {
            if (*n).type_ == pg_sys::NodeTag::T_Var && f(n.cast(), depth + levels) {
                Visit::Stop
            } else {
                Visit::Continue
            }
        })
    }
}

/// Is column `attno` (0: the whole row) of entry `varno` of the last query of `levels` (the
/// queries from the conditions' own down to it) a masked value, or does it hold one: an output
/// of a subquery or CTE that has a marked masking call or reads such a value in turn (a
/// relation the rewrite masked is a subquery of marked calls; a LATERAL subquery's outer
/// references are followed to the level they name), a column of a join, a function or a
/// VALUES list built from one? Past 64 levels of following: yes.
///
/// # Safety
/// The queries are valid, each an entry's or a sublink's query of the one before it.
unsafe fn output_masked(levels: &[*mut Query], varno: i32, attno: i16, funcs: &[Oid; 4]) -> bool {
    // SAFETY: per the contract.
    unsafe {
        let Some(&query) = levels.last() else { return true };
        let rte = match list_ptrs::<RangeTblEntry>((*query).rtable)
            .nth((varno as usize).wrapping_sub(1))
        {
            Some(rte) if levels.len() < 64 => rte,
            _ => return true,
        };
        let column = |exprs: Vec<*mut pg_sys::Node>| -> Vec<*mut pg_sys::Node> {
            if attno == 0 {
                exprs
            } else {
                exprs.get((attno as usize).wrapping_sub(1)).copied().into_iter().collect()
            }
        };
        // the outputs of `q`, an entry's query of the last of `above`
        let query_outputs = |above: &[*mut Query], q: *mut Query| -> bool {
            let mut below = above.to_vec();
            below.push(q);
            if !(*q).setOperations.is_null() {
                // the outputs of a UNION ...: any branch's
                let n = list_ptrs::<RangeTblEntry>((*q).rtable).count() as i32;
                return (1..=n).any(|i| output_masked(&below, i, attno, funcs));
            }
            // a window function's or aggregate's value depends on how rows are partitioned,
            // ordered or grouped: masked if any of that reads a masked value (a review:
            // `rank() OVER (ORDER BY email LIKE ...)`, `count(*) OVER (PARTITION BY
            // split_part(email, ...))`)
            let arranged = || -> bool {
                let mut refs: Vec<pg_sys::Index> = Vec::new();
                let mut clauses = |l: *mut pg_sys::List| {
                    for c in list_ptrs::<pg_sys::SortGroupClause>(l) {
                        refs.push((*c).tleSortGroupRef);
                    }
                };
                clauses((*q).groupClause);
                clauses((*q).distinctClause);
                for wc in list_ptrs::<pg_sys::WindowClause>((*q).windowClause) {
                    clauses((*wc).partitionClause);
                    clauses((*wc).orderClause);
                }
                !(*q).groupingSets.is_null()
                    || list_ptrs::<pg_sys::TargetEntry>((*q).targetList).any(|t| {
                        refs.contains(&(*t).ressortgroupref)
                            && expr_masked(&below, (*t).expr.cast(), funcs)
                    })
            };
            list_ptrs::<pg_sys::TargetEntry>((*q).targetList).any(|tle| {
                (attno == 0 && !(*tle).resjunk || (*tle).resno == attno)
                    && (expr_masked(&below, (*tle).expr.cast(), funcs)
                        || has_aggregate_or_window((*tle).expr.cast()) && arranged())
            })
        };
        match (*rte).rtekind {
            pg_sys::RTEKind::RTE_SUBQUERY => query_outputs(levels, (*rte).subquery),
            pg_sys::RTEKind::RTE_CTE => {
                let up = (*rte).ctelevelsup as usize;
                let Some(holder_at) = levels.len().checked_sub(up + 1) else {
                    return true;
                };
                let holder = levels[holder_at];
                let name = std::ffi::CStr::from_ptr((*rte).ctename);
                let cte = list_ptrs::<pg_sys::CommonTableExpr>((*holder).cteList)
                    .find(|&cte| std::ffi::CStr::from_ptr((*cte).ctename) == name);
                match cte {
                    // a recursive CTE's reference to itself: what its other branch reads
                    Some(cte) if (*cte).cterecursive && up > 0 => true,
                    Some(cte) => query_outputs(&levels[..=holder_at], (*cte).ctequery.cast()),
                    None => true,
                }
            }
            pg_sys::RTEKind::RTE_JOIN => {
                let aliases = list_ptrs::<pg_sys::Node>((*rte).joinaliasvars).collect();
                column(aliases).into_iter().any(|e| expr_masked(levels, e, funcs))
            }
            // a function that may read tables (not IMMUTABLE, in SQL or a procedural
            // language) runs its queries as the restricted role: pseudonyms
            pg_sys::RTEKind::RTE_FUNCTION => {
                list_ptrs::<pg_sys::RangeTblFunction>((*rte).functions).any(|f| {
                    expr_masked(levels, (*f).funcexpr, funcs) || may_read_tables((*f).funcexpr)
                })
            }
            pg_sys::RTEKind::RTE_VALUES => {
                list_ptrs::<pg_sys::List>((*rte).values_lists).any(|row| {
                    let cells = list_ptrs::<pg_sys::Node>(row).collect();
                    column(cells).into_iter().any(|e| expr_masked(levels, e, funcs))
                })
            }
            pg_sys::RTEKind::RTE_TABLEFUNC => expr_masked(levels, (*rte).tablefunc.cast(), funcs),
            _ => false,
        }
    }
}

/// Does `expr` hold an aggregate or a window function (of its own level)?
///
/// # Safety
/// `expr` is a valid expression.
unsafe fn has_aggregate_or_window(expr: *mut pg_sys::Node) -> bool {
    // SAFETY: per the contract; the visitor reads the nodes it is handed.
    unsafe {
        walk_tree(expr, false, &mut |n| match (*n).type_ {
            pg_sys::NodeTag::T_Aggref | pg_sys::NodeTag::T_WindowFunc => Visit::Stop,
            _ => Visit::Continue,
        })
    }
}

/// Is `expr` a call of a function that may read tables: not IMMUTABLE, in SQL or a
/// procedural language?
///
/// # Safety
/// `expr` is a valid expression.
unsafe fn may_read_tables(expr: *mut pg_sys::Node) -> bool {
    // SAFETY: per the contract.
    unsafe {
        if expr.is_null() || (*expr).type_ != pg_sys::NodeTag::T_FuncExpr {
            return false;
        }
        let func = (*expr.cast::<pg_sys::FuncExpr>()).funcid;
        catalog::with_proc(func, |form, _| {
            form.prolang != INTERNAL_LANGUAGE_ID
                && form.prolang != C_LANGUAGE_ID
                && form.provolatile != pg_sys::PROVOLATILE_IMMUTABLE as std::ffi::c_char
        })
        .unwrap_or(true)
    }
}

/// Is `expr`, of the last query of `levels`, a masked value or built from one
/// (`output_masked`)? An expression with a subquery counts as one (what the subquery reads is
/// not followed).
///
/// # Safety
/// As `output_masked`; `expr` is an expression of the last query.
unsafe fn expr_masked(levels: &[*mut Query], expr: *mut pg_sys::Node, funcs: &[Oid; 4]) -> bool {
    // SAFETY: per the contract; the visitor reads the nodes it is handed.
    unsafe {
        has_marked_call(expr, funcs)
            || pg_sys::checkExprHasSubLink(expr)
            || walk_tree(expr, false, &mut |n| {
                if (*n).type_ == pg_sys::NodeTag::T_Var {
                    let v = n.cast::<pg_sys::Var>();
                    let up = (*v).varlevelsup as usize;
                    let masked = match levels.len().checked_sub(up) {
                        Some(len) if len > 0 => {
                            output_masked(&levels[..len], (*v).varno, (*v).varattno, funcs)
                        }
                        _ => true,
                    };
                    if masked {
                        return Visit::Stop;
                    }
                }
                Visit::Continue
            })
    }
}

impl Ctx {
    fn funcs(&mut self) -> Funcs {
        *self.funcs.get_or_insert_with(lookup_funcs)
    }
}

impl Funcs {
    /// The masking functions' OIDs (`int` may be InvalidOid: an older install).
    fn oids(&self) -> [Oid; 4] {
        [self.text, self.uuid, self.bigint, self.int]
    }
}

/// Is `node` a marked call of one of the masking functions `funcs`: one the rewrite built?
///
/// # Safety
/// `node` is a valid Node.
unsafe fn is_marked_call(node: *mut pg_sys::Node, funcs: &[Oid; 4]) -> bool {
    // SAFETY: per the contract; a FuncExpr node is read as one.
    unsafe {
        if (*node).type_ != pg_sys::NodeTag::T_FuncExpr {
            return false;
        }
        let f = node.cast::<pg_sys::FuncExpr>();
        (*f).funcformat == pg_sys::CoercionForm::COERCE_SQL_SYNTAX
            && (*f).funcid != pg_sys::InvalidOid
            && funcs.contains(&(*f).funcid)
    }
}

/// Was entry `rti` masked by an earlier pass of this rewrite? Citus plans parts of a query
/// that the rewrite has already changed through `planner()` again (a subquery it plans
/// apart, recursive planning), and the hook then sees the subquery the rewrite built around
/// the relation: its identifier columns are read only as arguments of marked masking calls,
/// which SQL cannot write. Masking it again would give pseudonyms of pseudonyms. Its other
/// references to those columns are the rewrite's too (a DBA's view conditions moved to junk
/// outputs, row-security conditions), since every reference a user wrote was already
/// replaced by the subquery's output. An entry with no marked reference is masked as usual.
///
/// # Safety
/// `query` is a valid Query and `rti` one of its relation entries.
unsafe fn already_masked(query: *mut Query, rti: i32, identifiers: &[i16], funcs: &Funcs) -> bool {
    let funcs = funcs.oids();
    // SAFETY: per the contract; the visitors read the nodes they are handed.
    unsafe {
        walk_tree_levels(query.cast(), true, &mut |n, levels| {
            if !is_marked_call(n, &funcs) {
                return Visit::Continue;
            }
            // inside the call: the entry's columns, at the depth of the call's own query
            let reads = visit_vars(n, levels.saturating_sub(1), &mut |var, depth| {
                (*var).varno == rti
                    && (*var).varlevelsup == depth
                    && identifiers.contains(&(*var).varattno)
            });
            if reads {
                Visit::Stop
            } else {
                Visit::Skip
            }
        })
    }
}

/// Do a view's conditions read an identifier column (or the whole row) of entry `rti` of the
/// view's query?
///
/// # Safety
/// The conditions are valid expressions of the query that holds `rti`.
unsafe fn quals_read(quals: &[*mut pg_sys::Node], rti: i32, identifiers: &[i16]) -> bool {
    // SAFETY: per the contract.
    quals.iter().any(|&q| unsafe {
        visit_vars(q, 0, &mut |var, depth| {
            (*var).varno == rti
                && (*var).varlevelsup == depth
                && (identifiers.contains(&(*var).varattno) || (*var).varattno == 0)
        })
    })
}

/// A Citus worker's query on a shard, sent by the coordinator for a restricted role, already
/// reads each identifier column through the call that masks it (the coordinator's rewrite
/// built it, and Citus sent it as SQL, without the mark): masking the shard's column as well
/// would give the pseudonym of a pseudonym. So every expression of the query, at any depth,
/// that is exactly the rewrite's masking of an identifier column of entry `rti`
/// (`mask_expr`; `equal` ignores the call's form and locations) becomes the bare column,
/// which the rewrite then masks once, with its mark. The answer is the same as the call's,
/// and a call that differs (another length, another key) stays, unmarked, and is refused as
/// it would be on one node. The same holds for a table that is not a shard in a statement
/// Citus runs on its own node (the coordinator's local execution of a join with a reference
/// table): its masking calls come back as SQL too. A restricted role that writes the call
/// itself gets what reading the column gives.
///
/// The conditions of a DBA's view (`raw_quals`) are kept as they are, the same nodes: they
/// test raw values as their author wrote them, and `mask_relation` reads them by address (the
/// mutation copies every other node it passes, and a copy of them would be masked: a review
/// saw a view's `WHERE email NOT LIKE ...` let the excluded rows through).
///
/// # Safety
/// `query` is a valid Query and `rti` one of its relation entries, `relid`; `raw_quals` are
/// nodes of the query.
unsafe fn unmask_pushed_calls(
    query: *mut Query,
    rti: i32,
    relid: Oid,
    identifiers: &[i16],
    funcs: &Funcs,
    raw_quals: &[*mut pg_sys::Node],
) {
    // SAFETY: per the contract.
    unsafe {
        let rel = pg_sys::relation_open(relid, pg_sys::NoLock as _);
        let desc = (*rel).rd_att;
        let attrs = (*desc).attrs.as_slice((*desc).natts as usize);
        let columns: Vec<(i16, Oid, i32, Oid)> = identifiers
            .iter()
            .filter_map(|&a| {
                let att = attrs.get(a as usize - 1)?;
                Some((a, att.atttypid, att.atttypmod, att.attcollation))
            })
            .collect();
        pg_sys::relation_close(rel, pg_sys::NoLock as _);
        let mut pushed = Pushed { rti, columns, funcs: *funcs, canonical: Vec::new() };
        let mut unmask = |node: *mut pg_sys::Node, depth: u32| {
            if raw_quals.contains(&node) {
                return Some(node);
            }
            for &(var, masked) in pushed.canonical(depth) {
                if (*masked).type_ == (*node).type_ && pg_sys::equal(node.cast(), masked.cast()) {
                    return Some(pg_sys::copyObjectImpl(var.cast()).cast());
                }
            }
            None
        };
        mutate_query(query, &mut Mutation { depth: 0, f: &mut unmask });
    }
}

struct Pushed {
    rti: i32,
    /// (attnum, type, typmod, collation) of each identifier column.
    columns: Vec<(i16, Oid, i32, Oid)>,
    funcs: Funcs,
    /// By depth: each column's Var (levelsup = depth) and its masking expression.
    canonical: Vec<Vec<(*mut pg_sys::Var, *mut pg_sys::Node)>>,
}

impl Pushed {
    /// The columns' Vars and masking expressions `depth` query levels below the entry's.
    unsafe fn canonical(&mut self, depth: u32) -> &[(*mut pg_sys::Var, *mut pg_sys::Node)] {
        let depth = depth as usize;
        while self.canonical.len() <= depth {
            let level = self.canonical.len() as u32;
            let mut exprs = Vec::new();
            for &(attnum, typid, typmod, collation) in &self.columns {
                // SAFETY: nodes built in the planner's memory context.
                unsafe {
                    let var = pg_sys::makeVar(self.rti, attnum, typid, typmod, collation, level);
                    let copy = pg_sys::copyObjectImpl(var.cast()).cast::<pg_sys::Expr>();
                    let masked = mask_expr(copy, typid, typmod, collation, &self.funcs);
                    // a type without a pseudonym masks to a NULL constant: nothing to match
                    if (*masked).type_ != pg_sys::NodeTag::T_Const {
                        exprs.push((var, masked.cast()));
                    }
                }
            }
            self.canonical.push(exprs);
        }
        &self.canonical[depth]
    }
}

/// A change made in place to the expressions of a query and of the queries below it that can
/// refer to its entries (sublinks, LATERAL subqueries): `f` is offered each node with its
/// depth below the query, and gives its replacement, or None to look inside it.
struct Mutation<'a> {
    depth: u32,
    f: &'a mut dyn FnMut(*mut pg_sys::Node, u32) -> Option<*mut pg_sys::Node>,
}

/// `m` over one query's expressions, in place (the range table's entries keep their
/// addresses: the rewrite holds them).
///
/// # Safety
/// `query` is a valid Query, `m.depth` levels below the query `m` was made for; `m.f` gives
/// valid nodes.
unsafe fn mutate_query(query: *mut Query, m: &mut Mutation<'_>) {
    // SAFETY: per the contract; every field is an expression tree or NULL.
    unsafe {
        let c: *mut std::ffi::c_void = (m as *mut Mutation<'_>).cast();
        let f = |n: *mut pg_sys::Node| mutation_mutator(n, c);
        (*query).targetList = f((*query).targetList.cast()).cast();
        (*query).returningList = f((*query).returningList.cast()).cast();
        (*query).jointree = f((*query).jointree.cast()).cast();
        (*query).havingQual = f((*query).havingQual);
        (*query).limitOffset = f((*query).limitOffset);
        (*query).limitCount = f((*query).limitCount);
        (*query).onConflict = f((*query).onConflict.cast()).cast();
        for wc in list_ptrs::<pg_sys::WindowClause>((*query).windowClause) {
            (*wc).startOffset = f((*wc).startOffset);
            (*wc).endOffset = f((*wc).endOffset);
        }
        for rte in list_ptrs::<RangeTblEntry>((*query).rtable) {
            match (*rte).rtekind {
                pg_sys::RTEKind::RTE_SUBQUERY if (*rte).lateral => {
                    m.depth += 1;
                    mutate_query((*rte).subquery, m);
                    m.depth -= 1;
                }
                pg_sys::RTEKind::RTE_FUNCTION => {
                    (*rte).functions = f((*rte).functions.cast()).cast();
                }
                pg_sys::RTEKind::RTE_VALUES => {
                    (*rte).values_lists = f((*rte).values_lists.cast()).cast();
                }
                pg_sys::RTEKind::RTE_TABLEFUNC => {
                    (*rte).tablefunc = f((*rte).tablefunc.cast()).cast();
                }
                _ => {}
            }
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn mutation_mutator(
    node: *mut pg_sys::Node,
    ctx: *mut std::ffi::c_void,
) -> *mut pg_sys::Node {
    if node.is_null() {
        return node;
    }
    // SAFETY: node is a valid Node; ctx is the Mutation that mutate_query passed.
    unsafe {
        let m = &mut *ctx.cast::<Mutation<'_>>();
        if (*node).type_ == pg_sys::NodeTag::T_Query {
            // a sublink's query, one level down; changed in place
            m.depth += 1;
            mutate_query(node.cast(), m);
            m.depth -= 1;
            return node;
        }
        if let Some(replacement) = (m.f)(node, m.depth) {
            return replacement;
        }
        // nodeFuncs.h declares the mutator without parameters (`Node *(*mutator) ()`) and
        // calls it with (node, context), which is mutation_mutator's signature
        let mutator = std::mem::transmute::<
            unsafe extern "C-unwind" fn(
                *mut pg_sys::Node,
                *mut std::ffi::c_void,
            ) -> *mut pg_sys::Node,
            unsafe extern "C-unwind" fn() -> *mut pg_sys::Node,
        >(mutation_mutator);
        pg_sys::expression_tree_mutator(node, Some(mutator), ctx)
    }
}

/// The outputs of a view's query for the view's columns labelled identifier: each becomes its
/// pseudonym, unless it already reads one (a column of a relation masked above). Outer
/// references, pushed-down quals included, then see only the pseudonym. A view over a set
/// operation (UNION ...) keeps its outputs as they are, and the tripwire refuses reading
/// them: the outputs of a set operation must stay plain references.
///
/// # Safety
/// `query` is a view's query as the rewriter expanded it, and `rte` its first entry (OLD).
unsafe fn mask_view_outputs(
    query: *mut Query,
    rte: *mut RangeTblEntry,
    identifiers: &[i16],
    replaced: &[(i32, Vec<i16>)],
    funcs: &Funcs,
) {
    // SAFETY: per the contract; the target list is a List of TargetEntry.
    unsafe {
        if !(*query).setOperations.is_null() {
            return;
        }
        take_identifier_bits_of(rte, identifiers);
        for tle in list_ptrs::<pg_sys::TargetEntry>((*query).targetList) {
            if (*tle).resjunk || !identifiers.contains(&(*tle).resno) {
                continue;
            }
            let expr = (*tle).expr;
            if (*expr).type_ == pg_sys::NodeTag::T_Var {
                let var = expr.cast::<pg_sys::Var>();
                let masked = (*var).varlevelsup == 0
                    && replaced
                        .iter()
                        .any(|(rti, ids)| *rti == (*var).varno && ids.contains(&(*var).varattno));
                if masked {
                    continue;
                }
            }
            // an earlier pass masked it already (Citus plans rewritten queries again)
            if reads_masked(query, expr.cast(), funcs, 0) {
                continue;
            }
            let node = expr.cast::<pg_sys::Node>();
            (*tle).expr = mask_expr(
                expr,
                pg_sys::exprType(node),
                pg_sys::exprTypmod(node),
                pg_sys::exprCollation(node),
                funcs,
            );
        }
    }
}

/// Is `expr` (of `query`) the rewrite's own masking, a marked call, or a reference to a
/// subquery's output that is (to a few levels down)?
///
/// # Safety
/// `expr` is an expression of `query`.
unsafe fn reads_masked(
    query: *mut Query,
    expr: *mut pg_sys::Node,
    funcs: &Funcs,
    depth: u32,
) -> bool {
    // SAFETY: per the contract; a Var's varno indexes the query's range table.
    unsafe {
        if depth > 8 || expr.is_null() {
            return false;
        }
        if has_marked_call(expr, &funcs.oids()) {
            return true;
        }
        if (*expr).type_ != pg_sys::NodeTag::T_Var {
            return false;
        }
        let var = expr.cast::<pg_sys::Var>();
        if (*var).varlevelsup != 0 || (*var).varno < 1 {
            return false;
        }
        let Some(rte) = list_ptrs::<RangeTblEntry>((*query).rtable).nth((*var).varno as usize - 1)
        else {
            return false;
        };
        if (*rte).rtekind != pg_sys::RTEKind::RTE_SUBQUERY || (*rte).subquery.is_null() {
            return false;
        }
        let sub = (*rte).subquery;
        list_ptrs::<pg_sys::TargetEntry>((*sub).targetList)
            .find(|&t| (*t).resno == (*var).varattno)
            .is_some_and(|t| reads_masked(sub, (*t).expr.cast(), funcs, depth + 1))
    }
}

/// Does `node` hold a marked call of the masking functions `funcs` (not looking into
/// subqueries)?
///
/// # Safety
/// `node` is a valid expression tree.
unsafe fn has_marked_call(node: *mut pg_sys::Node, funcs: &[Oid; 4]) -> bool {
    // SAFETY: per the contract; the visitor reads the nodes it is handed.
    unsafe {
        walk_tree(node, false, &mut |n| {
            if is_marked_call(n, funcs) {
                Visit::Stop
            } else {
                Visit::Continue
            }
        })
    }
}

/// Does this plan, made by Citus, run a marked masking call on the coordinator? In a Citus
/// plan the coordinator's nodes read the workers' rows (or intermediate results, which Citus
/// planned apart), and a worker masks every shard column it reads for a restricted role: a
/// masking call that Citus moved out of the query it sends (a window function over several
/// shards' rows, for one) would mask a pseudonym. Plans without a Citus scan are never that.
///
/// # Safety
/// `stmt` is a valid PlannedStmt.
pub unsafe fn coordinator_masks(stmt: *mut pg_sys::PlannedStmt) -> bool {
    // SAFETY: per the contract: a walk over the plan's nodes and their expressions.
    unsafe {
        let mut plans: Vec<*mut pg_sys::Plan> = vec![(*stmt).planTree];
        plans.extend(list_ptrs::<pg_sys::Plan>((*stmt).subplans));
        let mut citus = false;
        let mut exprs: Vec<*mut pg_sys::Node> = Vec::new();
        while let Some(plan) = plans.pop() {
            if plan.is_null() {
                continue;
            }
            exprs.push((*plan).targetlist.cast());
            exprs.push((*plan).qual.cast());
            plans.push((*plan).lefttree);
            plans.push((*plan).righttree);
            match (*plan).type_ {
                pg_sys::NodeTag::T_CustomScan => {
                    let scan = plan.cast::<pg_sys::CustomScan>();
                    citus |= catalog::is_citus_scan(scan);
                    // (custom_exprs is the provider's: not walked, since it may hold nodes
                    // that the expression walker does not know)
                    plans.extend(list_ptrs::<pg_sys::Plan>((*scan).custom_plans));
                }
                pg_sys::NodeTag::T_Append => {
                    plans.extend(list_ptrs::<pg_sys::Plan>(
                        (*plan.cast::<pg_sys::Append>()).appendplans,
                    ));
                }
                pg_sys::NodeTag::T_MergeAppend => {
                    plans.extend(list_ptrs::<pg_sys::Plan>(
                        (*plan.cast::<pg_sys::MergeAppend>()).mergeplans,
                    ));
                }
                pg_sys::NodeTag::T_SubqueryScan => {
                    plans.push((*plan.cast::<pg_sys::SubqueryScan>()).subplan);
                }
                pg_sys::NodeTag::T_NestLoop
                | pg_sys::NodeTag::T_MergeJoin
                | pg_sys::NodeTag::T_HashJoin => {
                    exprs.push((*plan.cast::<pg_sys::Join>()).joinqual.cast());
                    match (*plan).type_ {
                        pg_sys::NodeTag::T_MergeJoin => {
                            exprs.push((*plan.cast::<pg_sys::MergeJoin>()).mergeclauses.cast())
                        }
                        pg_sys::NodeTag::T_HashJoin => {
                            exprs.push((*plan.cast::<pg_sys::HashJoin>()).hashclauses.cast())
                        }
                        _ => {}
                    }
                }
                pg_sys::NodeTag::T_Result => {
                    exprs.push((*plan.cast::<pg_sys::Result>()).resconstantqual);
                }
                pg_sys::NodeTag::T_WindowAgg => {
                    let w = plan.cast::<pg_sys::WindowAgg>();
                    exprs.push((*w).startOffset);
                    exprs.push((*w).endOffset);
                }
                _ => {}
            }
        }
        if !citus {
            return false;
        }
        let funcs = lookup_funcs().oids();
        exprs.into_iter().any(|e| !e.is_null() && has_marked_call(e, &funcs))
    }
}

/// Is the relation at `rti` written or locked by the query (result relation, INSERT/UPDATE/
/// DELETE permissions, or a FOR UPDATE/SHARE row mark)?
///
/// # Safety
/// `query` and `rte` are valid; `rte` is entry `rti` of `query`.
unsafe fn is_written(query: *mut Query, rte: *mut RangeTblEntry, rti: i32) -> bool {
    // SAFETY: per the contract; rowMarks is a List of RowMarkClause.
    unsafe {
        if (*query).resultRelation == rti || ((*rte).requiredPerms as u64 & WRITE) != 0 {
            return true;
        }
        if list_ptrs::<pg_sys::RowMarkClause>((*query).rowMarks).any(|rc| (*rc).rti as i32 == rti) {
            return true;
        }
    }
    false
}

/// The relation's name, for messages.
pub fn rel_name(relid: Oid) -> String {
    // SAFETY: a syscache read; NULL for a relation that does not exist.
    unsafe {
        let name = pg_sys::get_rel_name(relid);
        if name.is_null() {
            format!("{}", relid.to_u32())
        } else {
            std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()
        }
    }
}

fn lookup_funcs() -> Funcs {
    let found = (|| {
        Some(Funcs {
            text: lookup_func(
                "pseudonymize",
                &[pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::INT4OID, pg_sys::TEXTOID],
            )?,
            uuid: lookup_func(
                "pseudonymize_uuid",
                &[pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::TEXTOID],
            )?,
            bigint: lookup_func(
                "pseudonymize_bigint",
                &[pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::TEXTOID],
            )?,
            int: lookup_func(
                "pseudonymize_int",
                &[pg_sys::INT4OID, pg_sys::TEXTOID, pg_sys::TEXTOID],
            )
            .unwrap_or(pg_sys::InvalidOid),
        })
    })();
    found.unwrap_or_else(|| DeidentError::MaskingUnavailable.report())
}

/// `deident.<name>(<args>)`, if it exists and is a C function (only a superuser can create
/// one, and the extension's schema admits no one else's objects: `preload.rs`).
fn lookup_func(name: &str, args: &[Oid]) -> Option<Oid> {
    let name = CString::new(name).ok()?;
    // SAFETY: catalog lookups in a transaction; the name list is built of String nodes.
    unsafe {
        let schema = pg_sys::makeString(pg_sys::pstrdup(c"deident".as_ptr()));
        let func = pg_sys::makeString(pg_sys::pstrdup(name.as_ptr()));
        let mut names = pg_sys::lappend(std::ptr::null_mut(), schema.cast());
        names = pg_sys::lappend(names, func.cast());
        let oid = pg_sys::LookupFuncName(names, args.len() as i32, args.as_ptr(), true);
        if oid == pg_sys::InvalidOid {
            return None;
        }
        (catalog::func_language(oid) == Some(C_LANGUAGE_ID)).then_some(oid)
    }
}

/// Replaces the relation entry `rte` (number `rti`) by a subquery that masks `identifiers`.
///
/// # Safety
/// `rte` is a valid RTE_RELATION entry of the query being planned.
unsafe fn mask_relation(
    query: *mut Query,
    rte: *mut RangeTblEntry,
    rti: i32,
    identifiers: &[i16],
    funcs: &Funcs,
    raw_quals: &[*mut pg_sys::Node],
    citus: bool,
) {
    // SAFETY: per the contract; every node is built in the planner's memory context.
    unsafe {
        let relid = (*rte).relid;
        let inner = pg_sys::copyObjectImpl(rte.cast()).cast::<RangeTblEntry>();
        if !(*inner).securityQuals.is_null() {
            pg_sys::ChangeVarNodes((*inner).securityQuals.cast(), rti, 1, 0);
        }
        (*inner).inFromCl = true;
        (*inner).lateral = false;

        let rel = pg_sys::relation_open(relid, pg_sys::NoLock as _);
        let desc = (*rel).rd_att;
        let natts = (*desc).natts;
        let attrs = (*desc).attrs.as_slice(natts as usize);

        take_identifier_bits(inner, identifiers, attrs);

        let mut tlist: *mut pg_sys::List = std::ptr::null_mut();
        for (i, att) in attrs.iter().enumerate() {
            let attnum = i as i16 + 1;
            let expr: *mut pg_sys::Expr = if att.attisdropped {
                pg_sys::makeNullConst(pg_sys::INT4OID, -1, pg_sys::InvalidOid).cast()
            } else {
                let var =
                    pg_sys::makeVar(1, attnum, att.atttypid, att.atttypmod, att.attcollation, 0);
                if identifiers.contains(&attnum) {
                    mask_expr(var.cast(), att.atttypid, att.atttypmod, att.attcollation, funcs)
                } else {
                    var.cast()
                }
            };
            let name = if att.attisdropped {
                std::ptr::null_mut()
            } else {
                pg_sys::pstrdup(att.attname.data.as_ptr())
            };
            let tle = pg_sys::makeTargetEntry(expr, attnum, name, false);
            tlist = pg_sys::lappend(tlist, tle.cast());
        }
        pg_sys::relation_close(rel, pg_sys::NoLock as _);
        // System columns (ctid, tableoid, ...) a subquery does not have: each one the query
        // reads becomes a junk output after the attributes (junk, so that whole-row
        // references do not see it), and the query's references move there.
        let mut junk =
            JunkColumns { rti, depth: 0, next: natts as i16 + 1, raw: None, moved: Vec::new() };
        system_columns(query.cast(), &mut junk);
        // A DBA's view filters on raw values (`raw_quals`, set aside by the walker): its
        // conditions read the identifier columns from junk outputs too.
        if !raw_quals.is_empty() {
            junk.raw = Some(identifiers.to_vec());
            for &qual in raw_quals {
                junk.depth = 1;
                system_columns(qual, &mut junk);
            }
        }
        // Citus drops junk outputs when it sends a statement elsewhere or plans it again as
        // SQL (a review saw `invalid attnum` errors): refused there, with a clear error
        if citus && !junk.moved.is_empty() {
            DeidentError::RestrictedCitusSystemColumn { relation: rel_name(relid) }.report();
        }
        for (attnum, resno, var) in junk.moved {
            let v =
                pg_sys::makeVar(1, attnum, (*var).vartype, (*var).vartypmod, (*var).varcollid, 0);
            let tle = pg_sys::makeTargetEntry(v.cast(), resno, std::ptr::null_mut(), true);
            tlist = pg_sys::lappend(tlist, tle.cast());
        }

        let sub = new_select();
        (*sub).rtable = pg_sys::lappend(std::ptr::null_mut(), inner.cast());
        let rtr = pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblRef>())
            .cast::<pg_sys::RangeTblRef>();
        (*rtr).type_ = pg_sys::NodeTag::T_RangeTblRef;
        (*rtr).rtindex = 1;
        (*sub).jointree = pg_sys::makeFromExpr(
            pg_sys::lappend(std::ptr::null_mut(), rtr.cast()),
            std::ptr::null_mut(),
        );
        (*sub).targetList = tlist;
        (*sub).hasSubLinks = !(*inner).securityQuals.is_null()
            && pg_sys::checkExprHasSubLink((*inner).securityQuals.cast());
        (*sub).hasRowSecurity = true;

        become_subquery(rte, sub);
    }
}

/// The entry becomes the subquery `sub`, as ApplyRetrieveRule turns a view's entry into one:
/// the fields a subquery entry must not have are cleared.
///
/// # Safety
/// `rte` is a valid RTE_RELATION entry; `sub` a valid SELECT.
unsafe fn become_subquery(rte: *mut RangeTblEntry, sub: *mut Query) {
    // SAFETY: per the contract.
    unsafe {
        (*rte).rtekind = pg_sys::RTEKind::RTE_SUBQUERY;
        (*rte).subquery = sub;
        (*rte).security_barrier = false;
        (*rte).relid = pg_sys::InvalidOid;
        (*rte).relkind = 0;
        (*rte).rellockmode = 0;
        (*rte).tablesample = std::ptr::null_mut();
        (*rte).inh = false;
        (*rte).requiredPerms = 0;
        (*rte).checkAsUser = pg_sys::InvalidOid;
        (*rte).selectedCols = std::ptr::null_mut();
        (*rte).insertedCols = std::ptr::null_mut();
        (*rte).updatedCols = std::ptr::null_mut();
        (*rte).extraUpdatedCols = std::ptr::null_mut();
        (*rte).securityQuals = std::ptr::null_mut();
    }
}

/// Checks the SELECT privilege that the executor would check on the identifier columns of
/// `rte` (as `ExecCheckRTEPerms` does: the table's, else each column's, as `checkAsUser` or the
/// current user), then takes their bits out of its selected columns, and the whole-row bit,
/// which becomes the bits of every other live column. The tripwire then sees no raw read.
///
/// # Safety
/// `rte` is a valid RTE_RELATION entry, and `attrs` its relation's attributes.
unsafe fn take_identifier_bits(
    rte: *mut RangeTblEntry,
    identifiers: &[i16],
    attrs: &[pg_sys::FormData_pg_attribute],
) {
    // SAFETY: per the contract.
    unsafe {
        let relid = (*rte).relid;
        let selected = (*rte).selectedCols;
        let whole_row = pg_sys::bms_is_member(bit(0), selected);
        if (*rte).requiredPerms as u64 & pg_sys::ACL_SELECT as u64 != 0 {
            let user = if (*rte).checkAsUser != pg_sys::InvalidOid {
                (*rte).checkAsUser
            } else {
                pg_sys::GetUserId()
            };
            let table_ok = pg_sys::pg_class_aclcheck(relid, user, pg_sys::ACL_SELECT as _)
                == pg_sys::AclResult::ACLCHECK_OK;
            if !table_ok {
                for &a in identifiers {
                    if (whole_row || pg_sys::bms_is_member(bit(a as i32), selected))
                        && pg_sys::pg_attribute_aclcheck(relid, a, user, pg_sys::ACL_SELECT as _)
                            != pg_sys::AclResult::ACLCHECK_OK
                    {
                        pg_sys::aclcheck_error(
                            pg_sys::AclResult::ACLCHECK_NO_PRIV,
                            pg_sys::get_relkind_objtype((*rte).relkind),
                            pg_sys::get_rel_name(relid),
                        );
                    }
                }
            }
        }
        let mut cols = pg_sys::bms_copy(selected);
        if whole_row {
            cols = pg_sys::bms_del_member(cols, bit(0));
            for (i, att) in attrs.iter().enumerate() {
                if !att.attisdropped {
                    cols = pg_sys::bms_add_member(cols, bit(i as i32 + 1));
                }
            }
        }
        for &a in identifiers {
            cols = pg_sys::bms_del_member(cols, bit(a as i32));
        }
        (*rte).selectedCols = cols;
    }
}

/// The walk that moves references to columns of entry `rti` to junk outputs of its subquery:
/// its system columns (the whole query), or the raw identifier columns (a DBA's view's
/// conditions).
struct JunkColumns {
    rti: i32,
    /// Query levels entered before the walk starts: 0 from the query that holds the entry
    /// (which is then level 1), 1 from one of its conditions.
    depth: u32,
    next: i16,
    /// The attnums to move: system columns (None), or these.
    raw: Option<Vec<i16>>,
    /// (attnum, output number, a Var of it) for each column moved.
    moved: Vec<(i16, i16, *mut pg_sys::Var)>,
}

/// Moves the references `junk` asks for (see `JunkColumns`) under `node` to junk outputs.
///
/// # Safety
/// `node` is the query that holds entry `junk.rti` (`junk.depth` 0), or one of its
/// conditions (`junk.depth` 1). The Vars are the query's own, changed in place (the
/// planner's input is ours to change).
unsafe fn system_columns(node: *mut pg_sys::Node, junk: &mut JunkColumns) {
    // SAFETY: per the contract.
    unsafe {
        visit_vars(node, junk.depth, &mut |var, depth| {
            // depth counts the Query nodes entered, the holder itself being the first
            // (a whole row, 0, read by a DBA's condition is the raw row: a junk output of
            // the relation's whole row)
            let wanted = match &junk.raw {
                None => (*var).varattno < 0,
                Some(ids) => ids.contains(&(*var).varattno) || (*var).varattno == 0,
            };
            if (*var).varno == junk.rti && (*var).varlevelsup + 1 == depth && wanted {
                let attnum = (*var).varattno;
                let resno = match junk.moved.iter().find(|(a, _, _)| *a == attnum) {
                    Some((_, r, _)) => *r,
                    None => {
                        let r = junk.next;
                        junk.next += 1;
                        junk.moved.push((attnum, r, var));
                        r
                    }
                };
                (*var).varattno = resno;
                (*var).varattnosyn = resno;
            }
            false
        });
    }
}

/// `take_identifier_bits` for an entry whose relation is not open yet.
///
/// # Safety
/// `rte` is a valid RTE_RELATION entry of a relation the query has locked.
unsafe fn take_identifier_bits_of(rte: *mut RangeTblEntry, identifiers: &[i16]) {
    // SAFETY: per the contract.
    unsafe {
        let rel = pg_sys::relation_open((*rte).relid, pg_sys::NoLock as _);
        let desc = (*rel).rd_att;
        take_identifier_bits(rte, identifiers, (*desc).attrs.as_slice((*desc).natts as usize));
        pg_sys::relation_close(rel, pg_sys::NoLock as _);
    }
}

/// A new, empty SELECT.
unsafe fn new_select() -> *mut Query {
    // SAFETY: palloc0 gives zeroed memory, a valid empty Query once tagged.
    unsafe {
        let q = pg_sys::palloc0(std::mem::size_of::<Query>()).cast::<Query>();
        (*q).type_ = pg_sys::NodeTag::T_Query;
        (*q).commandType = pg_sys::CmdType::CMD_SELECT;
        (*q).querySource = pg_sys::QuerySource::QSRC_ORIGINAL;
        (*q).canSetTag = true;
        (*q).stmt_location = -1;
        q
    }
}

/// Replaces a statistics catalog's entry by an empty subquery of the same columns: a
/// restricted role sees no statistics (pg_stats, pg_stats_ext and their kin show no rows), so
/// no most-common value or histogram bound of an identifier column.
///
/// # Safety
/// `rte` is a valid RTE_RELATION entry of a catalog.
unsafe fn empty_statistics(rte: *mut RangeTblEntry) {
    // SAFETY: per the contract.
    unsafe {
        let rel = pg_sys::relation_open((*rte).relid, pg_sys::NoLock as _);
        let desc = (*rel).rd_att;
        let natts = (*desc).natts;
        let attrs = (*desc).attrs.as_slice(natts as usize);
        let mut tlist: *mut pg_sys::List = std::ptr::null_mut();
        for (i, att) in attrs.iter().enumerate() {
            let expr = pg_sys::makeNullConst(att.atttypid, att.atttypmod, att.attcollation);
            let tle = pg_sys::makeTargetEntry(
                expr.cast(),
                i as i16 + 1,
                pg_sys::pstrdup(att.attname.data.as_ptr()),
                false,
            );
            tlist = pg_sys::lappend(tlist, tle.cast());
        }
        pg_sys::relation_close(rel, pg_sys::NoLock as _);
        let sub = new_select();
        let never = pg_sys::makeBoolConst(false, false);
        (*sub).jointree = pg_sys::makeFromExpr(std::ptr::null_mut(), never);
        (*sub).targetList = tlist;
        become_subquery(rte, sub);
    }
}

/// The pseudonym of `var` in its own type (SPEC "Restricted roles"): text-like types (the
/// string category: text, varchar, char, name, citext, domains over them) the text pseudonym;
/// uuid, bigint and integer their own; anything else NULL.
///
/// # Safety
/// `var` is a valid expression of type `typid`.
unsafe fn mask_expr(
    var: *mut pg_sys::Expr,
    typid: Oid,
    typmod: i32,
    collation: Oid,
    funcs: &Funcs,
) -> *mut pg_sys::Expr {
    // SAFETY: per the contract; the coercions are found in pg_cast by type OIDs only.
    unsafe {
        let base = pg_sys::getBaseType(typid);
        let empty = text_const("");
        let (func, rettype, value, mut args) = if base == pg_sys::UUIDOID {
            (
                funcs.uuid,
                pg_sys::UUIDOID,
                to_type(var.cast(), typid, pg_sys::TEXTOID),
                vec![empty, text_const("")],
            )
        } else if base == pg_sys::INT8OID {
            (
                funcs.bigint,
                pg_sys::INT8OID,
                to_type(var.cast(), typid, pg_sys::TEXTOID),
                vec![empty, text_const("")],
            )
        } else if base == pg_sys::INT4OID {
            if funcs.int == pg_sys::InvalidOid {
                DeidentError::MaskingUnavailable.report();
            }
            (
                funcs.int,
                pg_sys::INT4OID,
                to_type(var.cast(), typid, pg_sys::INT4OID),
                vec![empty, text_const("")],
            )
        } else if pg_sys::TypeCategory(base) as u8 == pg_sys::TYPCATEGORY_STRING {
            let length = pg_sys::makeConst(
                pg_sys::INT4OID,
                -1,
                pg_sys::InvalidOid,
                4,
                pg_sys::Datum::from(MASK_LENGTH),
                false,
                true,
            );
            (
                funcs.text,
                pg_sys::TEXTOID,
                to_type(var.cast(), typid, pg_sys::TEXTOID),
                vec![empty, length.cast(), text_const("")],
            )
        } else {
            return pg_sys::makeNullConst(typid, typmod, collation).cast();
        };
        if value.is_null() {
            return pg_sys::makeNullConst(typid, typmod, collation).cast();
        }
        args.insert(0, value);
        let mut list: *mut pg_sys::List = std::ptr::null_mut();
        for a in args {
            list = pg_sys::lappend(list, a.cast());
        }
        let call = pg_sys::makeFuncExpr(
            func,
            rettype,
            list,
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::CoercionForm::COERCE_SQL_SYNTAX,
        );
        let back = to_type(call.cast(), rettype, typid);
        if back.is_null() {
            return pg_sys::makeNullConst(typid, typmod, collation).cast();
        }
        pg_sys::assign_expr_collations(std::ptr::null_mut(), back.cast());
        back
    }
}

/// `expr` (of type `from`) cast to `to` as `expr::to` would, or NULL when no cast exists.
unsafe fn to_type(expr: *mut pg_sys::Node, from: Oid, to: Oid) -> *mut pg_sys::Expr {
    if from == to {
        return expr.cast();
    }
    // SAFETY: a parser routine that needs no ParseState.
    unsafe {
        pg_sys::coerce_to_target_type(
            std::ptr::null_mut(),
            expr,
            from,
            to,
            -1,
            pg_sys::CoercionContext::COERCION_EXPLICIT,
            pg_sys::CoercionForm::COERCE_IMPLICIT_CAST,
            -1,
        )
        .cast()
    }
}

fn text_const(s: &str) -> *mut pg_sys::Expr {
    let c = CString::new(s).unwrap_or_default();
    // SAFETY: a palloc'd text datum in a new Const.
    unsafe {
        let t = pg_sys::cstring_to_text(c.as_ptr());
        pg_sys::makeConst(
            pg_sys::TEXTOID,
            -1,
            pg_sys::DEFAULT_COLLATION_OID,
            -1,
            pg_sys::Datum::from(t),
            false,
            false,
        )
        .cast()
    }
}

/// Is this call of a keyed function one the rewrite built? Its expression carries the
/// `COERCE_SQL_SYNTAX` mark, which SQL cannot put on a function outside pg_catalog.
///
/// # Safety
/// `fcinfo` is fmgr's call info.
pub unsafe fn is_mask_call(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: per the contract; fn_expr is NULL or a valid node.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if flinfo.is_null() {
            return false;
        }
        let expr = (*flinfo).fn_expr;
        !expr.is_null()
            && (*expr).type_ == pg_sys::NodeTag::T_FuncExpr
            && (*expr.cast::<pg_sys::FuncExpr>()).funcformat
                == pg_sys::CoercionForm::COERCE_SQL_SYNTAX
    }
}
