//! Restricted roles (SPEC "Restricted roles"): a role labelled `restricted` reads every
//! identifier column as pseudonyms, by every path, and cannot write to labelled relations, call
//! the keyed functions, or set labels. The decisions live here; the hooks that call them are in
//! `hooks.rs`, with every other hook. The design, with what PostgreSQL 15 does at each step,
//! is in docs/restricted-roles.md.
//!
//! - `post_parse_analyze`: marks every analysed query as depending on the role
//!   (`hasRowSecurity`), so the plan cache analyses it again when the role changes, as for
//!   row security (plancache.c `RevalidateCachedQuery`): a statement prepared before SET ROLE
//!   is rewritten for the new role.
//! - `planner`: the rewrite (`rewrite`); every plan is marked `dependsOnRole`.
//! - `keeps_sql_functions_whole`: for a restricted role, SQL functions are not inlined
//!   (`needs_fmgr_hook`), so their bodies, `BEGIN ATOMIC` ones too, reach the planner as
//!   queries of their own instead of hiding inside the caller's after the rewrite.
//! - `utility`: COPY ... TO of a labelled table is turned into COPY (SELECT ...) TO; TRUNCATE,
//!   FETCH from another role's held cursor, and unlinking labelled children are refused.
//! - the tripwire (`tripwire`), at ExecutorCheckPerms and ExecutorRun.

pub mod catalog;
pub mod rewrite;
pub mod roles;
pub mod tripwire;

use std::cell::RefCell;
use std::ffi::CStr;

use pgrx::pg_sys;

use crate::error::DeidentError;

pub use roles::{current_is_restricted, surely_unrestricted};

/// pg_statistic_ext_data (pg_statistic_ext_data_d.h), read behind pg_stats_ext.
const STATISTIC_EXT_DATA_RELATION_ID: pg_sys::Oid = pg_sys::Oid::from_u32(3429);
/// The permissions of an entry that writes its relation.
const WRITE: u64 = (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE | pg_sys::ACL_DELETE) as u64;

/// The bit of column `attnum` in an entry's selectedCols (attnum 0: the whole row).
fn bit(attnum: i32) -> i32 {
    attnum - pg_sys::FirstLowInvalidHeapAttributeNumber
}

/// Registers the cache invalidation callbacks; called once from `_PG_init`.
pub fn register_callbacks() {
    // SAFETY: registering guarded C callbacks with inval.c, once per backend (they are
    // inherited from the postmaster).
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0usize));
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::AUTHOID as i32,
            Some(role_changed),
            pg_sys::Datum::from(0usize),
        );
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::AUTHMEMROLEMEM as i32,
            Some(role_changed),
            pg_sys::Datum::from(0usize),
        );
        pg_sys::RegisterXactCallback(Some(xact_ended), std::ptr::null_mut());
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn xact_ended(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_PARALLEL_ABORT
            | XACT_EVENT_PREPARE
    ) {
        end_of_transaction();
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    catalog::forget();
    if relid == pg_sys::InvalidOid {
        roles::forget_labels();
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn role_changed(_arg: pg_sys::Datum, _cacheid: i32, _hash: u32) {
    roles::forget_answers();
}

/// The end of a transaction: labels are cached for one transaction at most.
pub fn end_of_transaction() {
    catalog::forget();
    STARTED_BY.with(|s| s.borrow_mut().clear());
}

unsafe extern "C-unwind" {
    /// utility.c: a switch on the node tag, which never raises an error; called unguarded
    /// from the post-parse-analysis hook.
    #[link_name = "UtilityContainsQuery"]
    fn utility_contains_query(parsetree: *mut pg_sys::Node) -> *mut pg_sys::Query;
}

/// Marks an analysed query (and the query inside a utility statement: DECLARE CURSOR,
/// CREATE TABLE AS, EXPLAIN) as depending on the role, when it reads anything at all. A query
/// with no range table, sublink or CTE (PL/pgSQL's simple expressions, `SELECT 1 + 1`) reads no
/// relation, also through an inlined SQL function (clauses.c `inline_function` inlines only
/// bodies without FROM or sublinks), and stays role-independent: the plan cache then keeps its
/// fast path for it (plancache.c `CachedPlanAllowsSimpleValidityCheck` refuses role-dependent
/// plans).
///
/// Runs unguarded: nothing in it can raise an error or panic.
///
/// # Safety
/// `query` is a valid Query.
pub unsafe fn mark_role_dependent(query: *mut pg_sys::Query) {
    // SAFETY: per the contract.
    unsafe {
        if (*query).commandType == pg_sys::CmdType::CMD_UTILITY {
            (*query).hasRowSecurity = true;
            if !(*query).utilityStmt.is_null() {
                let inner = utility_contains_query((*query).utilityStmt);
                if !inner.is_null() {
                    (*inner).hasRowSecurity = true;
                }
            }
        } else if !(*query).rtable.is_null() || (*query).hasSubLinks || !(*query).cteList.is_null()
        {
            (*query).hasRowSecurity = true;
        }
    }
}

/// Does a plan read anything, so that it must be planned again for another role? Only a plan
/// with no range table entry but the planner's empty-FROM placeholder (RTE_RESULT) does not.
///
/// # Safety
/// `stmt` is a valid PlannedStmt.
pub unsafe fn plan_reads_relations(stmt: *mut pg_sys::PlannedStmt) -> bool {
    // SAFETY: per the contract.
    unsafe {
        list_ptrs::<pg_sys::RangeTblEntry>((*stmt).rtable)
            .any(|rte| (*rte).rtekind != pg_sys::RTEKind::RTE_RESULT)
    }
}

/// The planner's first step: the rewrite, for a restricted role.
///
/// # Safety
/// `query` is the planner's input.
pub unsafe fn before_planning(query: *mut pg_sys::Query) {
    if current_is_restricted() {
        // SAFETY: per the contract.
        unsafe {
            rewrite::rewrite(query);
        }
    }
}

/// The planner's last step, for a restricted role: a Citus plan that would run the rewrite's
/// masking on the coordinator is refused (`rewrite::coordinator_masks`).
///
/// # Safety
/// `stmt` is the planner's output.
pub unsafe fn after_planning(stmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: per the contract.
    if current_is_restricted() && unsafe { rewrite::coordinator_masks(stmt) } {
        DeidentError::RestrictedCitusPlan.report();
    }
}

/// ExecutorCheckPerms: the tripwire. Returns false (refused) only when `abort` is false.
///
/// # Safety
/// `rtable` is the range table being checked.
pub unsafe fn check_permissions(rtable: *mut pg_sys::List, abort: bool) -> bool {
    if !current_is_restricted() {
        return true;
    }
    check_foreign_held_cursors();
    // SAFETY: per the contract.
    match unsafe { tripwire::check(rtable) } {
        Ok(()) => true,
        Err(v) if abort => v.report(),
        Err(_) => false,
    }
}

thread_local! {
    /// The role that started each query that has not ended (QueryDesc address, role). Queries
    /// that fail never reach ExecutorEnd; the list is cleared at the end of the transaction
    /// (a cursor that outlives it has been run to completion and is read from its store).
    static STARTED_BY: RefCell<Vec<(usize, pg_sys::Oid)>> = const { RefCell::new(Vec::new()) };
}

/// ExecutorStart: note who started the query.
pub fn query_started(query: usize) {
    // SAFETY: miscinit.c's current user, inside a transaction.
    let user = unsafe { pg_sys::GetUserId() };
    STARTED_BY.with(|s| {
        let mut s = s.borrow_mut();
        s.retain(|(q, _)| *q != query);
        s.push((query, user));
    });
}

/// ExecutorEnd.
pub fn query_ended(query: usize) {
    STARTED_BY.with(|s| s.borrow_mut().retain(|(q, _)| *q != query));
}

/// ExecutorRun: a restricted role runs only queries it started itself. A cursor or a portal
/// (the extended protocol's Bind) started by another role before SET ROLE has a plan made for
/// that role; it is refused, whatever it reads. And the plan must read no raw identifier.
///
/// # Safety
/// `query` is the QueryDesc about to run, `stmt` NULL or its PlannedStmt.
pub unsafe fn check_before_run(query: usize, stmt: *mut pg_sys::PlannedStmt) {
    if !current_is_restricted() {
        return;
    }
    // SAFETY: miscinit.c's current user.
    let user = unsafe { pg_sys::GetUserId() };
    let foreign = STARTED_BY.with(|s| s.borrow().iter().any(|(q, u)| *q == query && *u != user));
    if foreign {
        DeidentError::RestrictedForeignQuery.report();
    }
    if stmt.is_null() {
        return;
    }
    // SAFETY: per the contract.
    if let Err(v) = unsafe { tripwire::check((*stmt).rtable) } {
        v.report();
    }
}

/// `needs_fmgr_hook`: true for a SQL function while the role is restricted, which keeps the
/// planner from inlining it (clauses.c `inline_function`, `inline_set_returning_function`
/// test `FmgrHookIsNeeded`). Whether the function is an SQL function comes from the hook's
/// cache of pg_proc (`hooks::needs_fmgr`).
pub fn keeps_sql_functions_whole(sql_function: bool) -> bool {
    sql_function && current_is_restricted()
}

/// A keyed function's guard: a restricted role may call it only through the rewrite.
///
/// # Safety
/// `fcinfo` is fmgr's call info.
pub unsafe fn check_keyed_call(fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: per the contract.
    if current_is_restricted() && !unsafe { rewrite::is_mask_call(fcinfo) } {
        DeidentError::RestrictedKeyedCall.report();
    }
}

/// A held cursor (DECLARE ... WITH HOLD) as declared: its name, its portal's creation time
/// (which tells it from a later cursor of the same name), and whether it was declared while
/// restricted. At commit a held cursor's rows are stored, and FETCH, PL/pgSQL's FETCH and
/// cursor_to_xml() then read them from the store (pquery.c `RunFromStore`) without the
/// executor: the tripwire cannot see them. Only DECLARE (through ProcessUtility, also from SPI)
/// makes a held cursor, so these records know them all.
struct Held {
    name: String,
    created: i64,
    restricted: bool,
}

thread_local! {
    static HELD: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };
}

/// Does the portal of a held cursor record still exist?
unsafe fn held_portal(h: &Held) -> bool {
    let Ok(name) = std::ffi::CString::new(h.name.as_str()) else {
        return false;
    };
    // SAFETY: a portal lookup by name.
    unsafe {
        let portal = pg_sys::GetPortalByName(name.as_ptr());
        !portal.is_null() && (*portal).creation_time == h.created
    }
}

/// A restricted role's query, DO block or CALL may not start while a held cursor that a role
/// not restricted declared is open in the session (a superuser's cursor, before SET ROLE): it
/// could be read through SPI without the executor. CLOSE, transaction control and SET stay
/// allowed, so the cursor can be closed. Records of closed cursors go.
fn check_foreign_held_cursors() {
    let open_foreign = HELD.with(|h| {
        let mut h = h.borrow_mut();
        // SAFETY: portal lookups in a transaction.
        h.retain(|c| unsafe { held_portal(c) });
        h.iter().any(|c| !c.restricted)
    });
    if open_foreign {
        DeidentError::RestrictedHeldCursor.report();
    }
}

/// What ProcessUtility should run instead of the statement, if anything.
pub enum Utility {
    AsIs,
    Replace(*mut pg_sys::PlannedStmt),
}

/// ProcessUtility's checks and rewrites.
///
/// # Safety
/// `pstmt` is the utility statement ProcessUtility received.
pub unsafe fn before_utility(pstmt: *mut pg_sys::PlannedStmt) -> Utility {
    // SAFETY: per the contract; node types are checked before each cast.
    unsafe {
        let stmt = (*pstmt).utilityStmt;
        if stmt.is_null() {
            return Utility::AsIs;
        }
        // A DO block or a procedure can FETCH from a cursor without starting any query.
        if matches!((*stmt).type_, pg_sys::NodeTag::T_DoStmt | pg_sys::NodeTag::T_CallStmt)
            && !HELD.with(|h| h.borrow().is_empty())
            && current_is_restricted()
        {
            check_foreign_held_cursors();
        }
        match (*stmt).type_ {
            pg_sys::NodeTag::T_AlterTableStmt => {
                check_unlink(stmt.cast());
                if current_is_restricted() {
                    let alter = stmt.cast::<pg_sys::AlterTableStmt>();
                    check_ddl((*alter).relation);
                    for cmd in list_ptrs::<pg_sys::AlterTableCmd>((*alter).cmds) {
                        check_references((*cmd).def);
                        let def = (*cmd).def;
                        if !def.is_null() && (*def).type_ == pg_sys::NodeTag::T_PartitionCmd {
                            check_ddl((*def.cast::<pg_sys::PartitionCmd>()).name);
                        } else if !def.is_null() && (*def).type_ == pg_sys::NodeTag::T_RangeVar {
                            check_ddl(def.cast());
                        }
                    }
                }
                Utility::AsIs
            }
            // Rebuilding a labelled relation or its indexes evaluates its index expressions
            // over raw values (with whatever functions they call, which the owner may have
            // replaced), and ALTER DOMAIN ... ADD CONSTRAINT checks every stored value: refused
            // to a restricted role, and so are their forms without a relation (every relation
            // it owns).
            pg_sys::NodeTag::T_ReindexStmt if current_is_restricted() => {
                let reindex = stmt.cast::<pg_sys::ReindexStmt>();
                if (*reindex).relation.is_null() {
                    DeidentError::RestrictedCommand("REINDEX SCHEMA, DATABASE or SYSTEM").report();
                }
                check_ddl((*reindex).relation);
                Utility::AsIs
            }
            pg_sys::NodeTag::T_ClusterStmt if current_is_restricted() => {
                let cluster = stmt.cast::<pg_sys::ClusterStmt>();
                if (*cluster).relation.is_null() {
                    DeidentError::RestrictedCommand("CLUSTER without a table").report();
                }
                check_ddl((*cluster).relation);
                Utility::AsIs
            }
            pg_sys::NodeTag::T_VacuumStmt if current_is_restricted() => {
                let vacuum = stmt.cast::<pg_sys::VacuumStmt>();
                let full = list_ptrs::<pg_sys::DefElem>((*vacuum).options).any(|d| {
                    !(*d).defname.is_null() && CStr::from_ptr((*d).defname).to_bytes() == b"full"
                });
                if full {
                    if (*vacuum).rels.is_null() {
                        DeidentError::RestrictedCommand("VACUUM FULL without a table").report();
                    }
                    for rel in list_ptrs::<pg_sys::VacuumRelation>((*vacuum).rels) {
                        check_ddl((*rel).relation);
                    }
                }
                Utility::AsIs
            }
            pg_sys::NodeTag::T_AlterDomainStmt if current_is_restricted() => {
                DeidentError::RestrictedCommand("ALTER DOMAIN").report();
            }
            // DDL on one relation, which its owner may run
            pg_sys::NodeTag::T_IndexStmt
            | pg_sys::NodeTag::T_CreatePolicyStmt
            | pg_sys::NodeTag::T_AlterPolicyStmt
            | pg_sys::NodeTag::T_RuleStmt
            | pg_sys::NodeTag::T_CreateTrigStmt
                if current_is_restricted() =>
            {
                let relation = match (*stmt).type_ {
                    pg_sys::NodeTag::T_IndexStmt => (*stmt.cast::<pg_sys::IndexStmt>()).relation,
                    pg_sys::NodeTag::T_CreatePolicyStmt => {
                        (*stmt.cast::<pg_sys::CreatePolicyStmt>()).table
                    }
                    pg_sys::NodeTag::T_AlterPolicyStmt => {
                        (*stmt.cast::<pg_sys::AlterPolicyStmt>()).table
                    }
                    pg_sys::NodeTag::T_RuleStmt => (*stmt.cast::<pg_sys::RuleStmt>()).relation,
                    _ => (*stmt.cast::<pg_sys::CreateTrigStmt>()).relation,
                };
                check_ddl(relation);
                Utility::AsIs
            }
            pg_sys::NodeTag::T_CreateStatsStmt if current_is_restricted() => {
                for rv in
                    list_ptrs::<pg_sys::Node>((*stmt.cast::<pg_sys::CreateStatsStmt>()).relations)
                {
                    if (*rv).type_ == pg_sys::NodeTag::T_RangeVar {
                        check_ddl(rv.cast());
                    }
                }
                Utility::AsIs
            }
            pg_sys::NodeTag::T_CreateStmt if current_is_restricted() => {
                let create = stmt.cast::<pg_sys::CreateStmt>();
                // a new partition or child of a labelled parent: attaching it checks the
                // partition constraint (a default partition's: against raw rows)
                for parent in list_ptrs::<pg_sys::RangeVar>((*create).inhRelations) {
                    check_ddl(parent);
                }
                for element in list_ptrs::<pg_sys::Node>((*create).tableElts) {
                    check_references(element);
                }
                for c in list_ptrs::<pg_sys::Node>((*create).constraints) {
                    check_references(c);
                }
                Utility::AsIs
            }
            pg_sys::NodeTag::T_TruncateStmt if current_is_restricted() => {
                let rels = (*stmt.cast::<pg_sys::TruncateStmt>()).relations;
                for rv in list_ptrs::<pg_sys::RangeVar>(rels) {
                    let relid = pg_sys::RangeVarGetRelidExtended(
                        rv,
                        pg_sys::NoLock as _,
                        1,
                        None,
                        std::ptr::null_mut(),
                    );
                    if relid != pg_sys::InvalidOid
                        && !catalog::column_labels(relid, true).is_empty()
                    {
                        DeidentError::RestrictedWrite { relation: rewrite::rel_name(relid) }
                            .report();
                    }
                }
                Utility::AsIs
            }
            pg_sys::NodeTag::T_GrantRoleStmt
            | pg_sys::NodeTag::T_CreateRoleStmt
            | pg_sys::NodeTag::T_AlterRoleStmt
            | pg_sys::NodeTag::T_AlterRoleSetStmt
            | pg_sys::NodeTag::T_DropRoleStmt
                if current_is_restricted() =>
            {
                // With CREATEROLE (or ADMIN OPTION) a restricted role could revoke its own
                // membership in the labelled group, or grant itself pg_read_all_data and
                // other roles to SET ROLE to.
                DeidentError::RestrictedRoleChange.report();
            }
            pg_sys::NodeTag::T_FetchStmt if current_is_restricted() => {
                let name = (*stmt.cast::<pg_sys::FetchStmt>()).portalname;
                check_fetch(name);
                Utility::AsIs
            }
            pg_sys::NodeTag::T_CopyStmt if current_is_restricted() => copy_to(pstmt),
            _ => Utility::AsIs,
        }
    }
}

/// After ProcessUtility: note held cursors declared while restricted.
///
/// # Safety
/// `pstmt` is the utility statement ProcessUtility ran.
pub unsafe fn after_utility(pstmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: per the contract.
    unsafe {
        let stmt = (*pstmt).utilityStmt;
        if stmt.is_null() || (*stmt).type_ != pg_sys::NodeTag::T_DeclareCursorStmt {
            return;
        }
        let decl = stmt.cast::<pg_sys::DeclareCursorStmt>();
        if (*decl).options & pg_sys::CURSOR_OPT_HOLD as i32 == 0 {
            return;
        }
        let portal = pg_sys::GetPortalByName((*decl).portalname);
        if portal.is_null() {
            return;
        }
        let held = Held {
            name: CStr::from_ptr((*decl).portalname).to_string_lossy().into_owned(),
            created: (*portal).creation_time,
            restricted: current_is_restricted(),
        };
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            h.retain(|c| c.name != held.name && held_portal(c));
            h.push(held);
        });
    }
}

/// FETCH or MOVE by a restricted role: a held cursor must have been declared while restricted
/// (an open, unheld one runs the executor, where the tripwire checks its plan).
unsafe fn check_fetch(name: *const std::ffi::c_char) {
    // SAFETY: a portal lookup by name; NULL when none (PostgreSQL then reports it).
    unsafe {
        if name.is_null() {
            return;
        }
        let portal = pg_sys::GetPortalByName(name);
        if portal.is_null() || (*portal).holdStore.is_null() {
            return;
        }
        let name = CStr::from_ptr(name).to_string_lossy().into_owned();
        let created = (*portal).creation_time;
        let ours = HELD.with(|h| {
            h.borrow().iter().any(|c| c.name == name && c.created == created && c.restricted)
        });
        if !ours {
            DeidentError::RestrictedHeldCursor.report();
        }
    }
}

/// DDL by a restricted role (which must own the relation for it) on a relation with any
/// deident label, or whose children carry one: refused. An owner could otherwise copy raw values
/// into a visible column (a generated column, `ALTER COLUMN org TYPE text USING (email)`), or
/// test guesses (a row-security policy `USING (email = 'guess')`, the size of a partial index
/// `WHERE email = 'guess'`, a partition bound checked when attaching).
unsafe fn check_ddl(rv: *mut pg_sys::RangeVar) {
    // SAFETY: a relation lookup by name, NULL-tolerant.
    unsafe {
        if rv.is_null() {
            return;
        }
        let relid = pg_sys::RangeVarGetRelidExtended(
            rv,
            pg_sys::NoLock as _,
            1,
            None,
            std::ptr::null_mut(),
        );
        if relid != pg_sys::InvalidOid && !catalog::column_labels(relid, true).is_empty() {
            DeidentError::RestrictedDdl { relation: rewrite::rel_name(relid) }.report();
        }
    }
}

/// A restricted role's foreign keys (a table constraint, a column's REFERENCES, one added by
/// ALTER TABLE) must not reference a relation with identifier columns: the checks run as the
/// referenced table's owner and compare raw values, so inserting a guess would tell whether it
/// exists.
unsafe fn check_references(node: *mut pg_sys::Node) {
    // SAFETY: node types are checked before each cast.
    unsafe {
        if node.is_null() {
            return;
        }
        match (*node).type_ {
            pg_sys::NodeTag::T_ColumnDef => {
                for c in list_ptrs::<pg_sys::Node>((*node.cast::<pg_sys::ColumnDef>()).constraints)
                {
                    check_references(c);
                }
            }
            pg_sys::NodeTag::T_Constraint => {
                let c = node.cast::<pg_sys::Constraint>();
                if (*c).contype != pg_sys::ConstrType::CONSTR_FOREIGN || (*c).pktable.is_null() {
                    return;
                }
                let relid = pg_sys::RangeVarGetRelidExtended(
                    (*c).pktable,
                    pg_sys::NoLock as _,
                    1,
                    None,
                    std::ptr::null_mut(),
                );
                if relid != pg_sys::InvalidOid
                    && catalog::identifiers(&catalog::column_labels(relid, true)).next().is_some()
                {
                    DeidentError::RestrictedReference { relation: rewrite::rel_name(relid) }
                        .report();
                }
            }
            _ => {}
        }
    }
}

/// DETACH PARTITION and NO INHERIT remove the parent's labels from the child: like removing a
/// label, only a superuser may do that to a labelled parent.
unsafe fn check_unlink(stmt: *mut pg_sys::AlterTableStmt) {
    // SAFETY: the commands of an AlterTableStmt, each an AlterTableCmd.
    unsafe {
        for cmd in list_ptrs::<pg_sys::AlterTableCmd>((*stmt).cmds) {
            let parent_rv = match (*cmd).subtype {
                pg_sys::AlterTableType::AT_DetachPartition
                | pg_sys::AlterTableType::AT_DetachPartitionFinalize => (*stmt).relation,
                pg_sys::AlterTableType::AT_DropInherit => (*cmd).def.cast::<pg_sys::RangeVar>(),
                _ => continue,
            };
            if parent_rv.is_null() || pg_sys::superuser() {
                continue;
            }
            let parent = pg_sys::RangeVarGetRelidExtended(
                parent_rv,
                pg_sys::NoLock as _,
                1,
                None,
                std::ptr::null_mut(),
            );
            if parent != pg_sys::InvalidOid && !catalog::column_labels(parent, false).is_empty() {
                DeidentError::UnlinkLabelled { relation: rewrite::rel_name(parent) }.report();
            }
        }
    }
}

/// COPY table TO by a restricted role, from a table with identifier columns: the same as
/// COPY (SELECT columns FROM ONLY schema.table) TO, which the planner hook rewrites. The query
/// is built as a raw parse tree with the schema-qualified name of the relation COPY itself
/// resolved, so no search_path is involved. COPY FROM is left to the tripwire (DoCopy checks
/// INSERT permission through ExecutorCheckPerms).
unsafe fn copy_to(pstmt: *mut pg_sys::PlannedStmt) -> Utility {
    // SAFETY: the statement is a CopyStmt; everything new is palloc'd in the current context.
    unsafe {
        let copy = (*pstmt).utilityStmt.cast::<pg_sys::CopyStmt>();
        if (*copy).relation.is_null() || (*copy).is_from {
            return Utility::AsIs;
        }
        let relid = pg_sys::RangeVarGetRelidExtended(
            (*copy).relation,
            pg_sys::AccessShareLock as _,
            1,
            None,
            std::ptr::null_mut(),
        );
        if relid == pg_sys::InvalidOid
            || pg_sys::get_rel_relkind(relid) as u8 != b'r'
                && pg_sys::get_rel_relkind(relid) as u8 != b'm'
                && pg_sys::get_rel_relkind(relid) as u8 != b'f'
        {
            return Utility::AsIs;
        }
        let labels = catalog::column_labels(relid, false);
        if catalog::identifiers(&labels).next().is_none() {
            return Utility::AsIs;
        }
        let rv = pg_sys::makeRangeVar(
            pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid)),
            pg_sys::get_rel_name(relid),
            -1,
        );
        (*rv).inh = false;
        let mut targets: *mut pg_sys::List = std::ptr::null_mut();
        let names: Vec<*mut std::ffi::c_char> = if (*copy).attlist.is_null() {
            let rel = pg_sys::relation_open(relid, pg_sys::NoLock as _);
            let desc = (*rel).rd_att;
            let names = (*desc)
                .attrs
                .as_slice((*desc).natts as usize)
                .iter()
                // as COPY's own column list (copy.c CopyGetAttnums): no generated columns
                .filter(|a| !a.attisdropped && a.attgenerated == 0)
                .map(|a| pg_sys::pstrdup(a.attname.data.as_ptr()))
                .collect();
            pg_sys::relation_close(rel, pg_sys::NoLock as _);
            names
        } else {
            list_ptrs::<pg_sys::String>((*copy).attlist).map(|s| (*s).sval).collect()
        };
        for name in names {
            let col = pg_sys::palloc0(std::mem::size_of::<pg_sys::ColumnRef>())
                .cast::<pg_sys::ColumnRef>();
            (*col).type_ = pg_sys::NodeTag::T_ColumnRef;
            (*col).fields = pg_sys::lappend(std::ptr::null_mut(), pg_sys::makeString(name).cast());
            (*col).location = -1;
            let target = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResTarget>())
                .cast::<pg_sys::ResTarget>();
            (*target).type_ = pg_sys::NodeTag::T_ResTarget;
            (*target).val = col.cast();
            (*target).location = -1;
            targets = pg_sys::lappend(targets, target.cast());
        }
        let select =
            pg_sys::palloc0(std::mem::size_of::<pg_sys::SelectStmt>()).cast::<pg_sys::SelectStmt>();
        (*select).type_ = pg_sys::NodeTag::T_SelectStmt;
        (*select).targetList = targets;
        (*select).fromClause = pg_sys::lappend(std::ptr::null_mut(), rv.cast());
        (*select).limitOption = pg_sys::LimitOption::LIMIT_OPTION_DEFAULT;
        (*select).op = pg_sys::SetOperation::SETOP_NONE;

        let new_copy = pg_sys::copyObjectImpl(copy.cast()).cast::<pg_sys::CopyStmt>();
        (*new_copy).relation = std::ptr::null_mut();
        (*new_copy).attlist = std::ptr::null_mut();
        (*new_copy).query = select.cast();
        let new_pstmt = pg_sys::copyObjectImpl(pstmt.cast()).cast::<pg_sys::PlannedStmt>();
        (*new_pstmt).utilityStmt = new_copy.cast();
        Utility::Replace(new_pstmt)
    }
}

/// The pointers of a List.
pub(crate) unsafe fn list_ptrs<T>(list: *mut pg_sys::List) -> impl Iterator<Item = *mut T> {
    let len = if list.is_null() { 0 } else { unsafe { (*list).length as usize } };
    // SAFETY: a pointer List of `len` cells.
    (0..len).map(move |i| unsafe { (*(*list).elements.add(i)).ptr_value.cast::<T>() })
}

/// The OIDs of an OID List (NIL: none).
pub(crate) unsafe fn list_oids(list: *mut pg_sys::List) -> impl Iterator<Item = pg_sys::Oid> {
    let len = if list.is_null() { 0 } else { unsafe { (*list).length as usize } };
    // SAFETY: an OID List of `len` cells.
    (0..len).map(move |i| unsafe { (*(*list).elements.add(i)).oid_value })
}
