//! Every PostgreSQL hook pg_deident installs, in one place (as sepgsql keeps its hooks in
//! hooks.c): each saves the previous hook and calls it, so other extensions keep working.
//! Installed from `_PG_init` during preload only.
//!
//! - `shmem_request_hook` / `shmem_startup_hook`: the per-leader key ring slots
//!   (`keycache::shared`) and the privacy ledger (`dp::budget`).
//! - `ExecutorStart_hook`, `ExecutorRun_hook`, `ExecutorFinish_hook`, `ExecutorEnd_hook`: follow
//!   each query, so that it keeps one key ring for its whole life, and, just before a parallel
//!   plan runs, publish that ring's identity for the workers (`keycache`); ExecutorRun also
//!   stops a restricted role running a plan made for another role (`enforcement`).
//! - `post_parse_analyze_hook`, `planner_hook`, `ProcessUtility_hook`,
//!   `ExecutorCheckPerms_hook`, `needs_fmgr_hook` / `fmgr_hook`: restricted roles
//!   (`enforcement`, which says what each does); the planner hook also checks the calls of
//!   dp aggregates (`dp::plan`) and the plan that runs them (`dp::grouping`).
//! - `create_upper_paths_hook`: a grouped statement with dp aggregates is planned with a
//!   hash aggregate (`dp::grouping`).

use pgrx::pg_guard;
use pgrx::pg_sys;

use crate::enforcement;
use crate::keycache;

static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_EXECUTOR_RUN: pg_sys::ExecutorRun_hook_type = None;
static mut PREV_EXECUTOR_FINISH: pg_sys::ExecutorFinish_hook_type = None;
static mut PREV_EXECUTOR_END: pg_sys::ExecutorEnd_hook_type = None;
static mut PREV_SHMEM_STARTUP: pg_sys::shmem_startup_hook_type = None;
static mut PREV_POST_PARSE_ANALYZE: pg_sys::post_parse_analyze_hook_type = None;
static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_UPPER_PATHS: pg_sys::create_upper_paths_hook_type = None;
static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;
static mut PREV_EXECUTOR_CHECK_PERMS: pg_sys::ExecutorCheckPerms_hook_type = None;
static mut PREV_NEEDS_FMGR: pg_sys::needs_fmgr_hook_type = None;
static mut PREV_FMGR: pg_sys::fmgr_hook_type = None;
static mut PREV_EMIT_LOG: pg_sys::emit_log_hook_type = None;
#[cfg(not(any(feature = "pg13", feature = "pg14")))]
static mut PREV_SHMEM_REQUEST: pg_sys::shmem_request_hook_type = None;

/// Installs the hooks; called once, from `_PG_init` while preloading.
pub fn install() {
    // SAFETY: _PG_init runs in the postmaster before any other process exists; the hook
    // variables are PostgreSQL's, saved and replaced once.
    unsafe {
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREV_EXECUTOR_RUN = pg_sys::ExecutorRun_hook;
        pg_sys::ExecutorRun_hook = Some(executor_run);
        PREV_EXECUTOR_FINISH = pg_sys::ExecutorFinish_hook;
        pg_sys::ExecutorFinish_hook = Some(executor_finish);
        PREV_EXECUTOR_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end);
        PREV_POST_PARSE_ANALYZE = pg_sys::post_parse_analyze_hook;
        pg_sys::post_parse_analyze_hook = Some(post_parse_analyze);
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
        PREV_UPPER_PATHS = pg_sys::create_upper_paths_hook;
        pg_sys::create_upper_paths_hook = Some(upper_paths);
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
        PREV_EXECUTOR_CHECK_PERMS = pg_sys::ExecutorCheckPerms_hook;
        pg_sys::ExecutorCheckPerms_hook = Some(executor_check_perms);
        PREV_NEEDS_FMGR = pg_sys::needs_fmgr_hook;
        pg_sys::needs_fmgr_hook = Some(needs_fmgr);
        PREV_FMGR = pg_sys::fmgr_hook;
        pg_sys::fmgr_hook = Some(fmgr);
        PREV_EMIT_LOG = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(emit_log);
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::PROCOID as i32,
            Some(function_changed),
            pg_sys::Datum::from(0usize),
        );
        PREV_SHMEM_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(shmem_startup);
        #[cfg(not(any(feature = "pg13", feature = "pg14")))]
        {
            PREV_SHMEM_REQUEST = pg_sys::shmem_request_hook;
            pg_sys::shmem_request_hook = Some(shmem_request);
        }
    }
    // Before 15, shared memory is requested from _PG_init itself.
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    request_shared_memory();
}

/// ERRCODE_TO_CATEGORY of a data exception (SQLSTATE class 22): the first two characters,
/// six bits each.
const DATA_EXCEPTION: i32 = (b'2' - b'0') as i32 | (((b'2' - b'0') as i32) << 6);
/// What a restricted role reads instead of a data exception's message.
const HIDDEN_VALUE: &std::ffi::CStr = c"invalid value (its text is not shown to a restricted role)";
const HIDDEN_VALUE_HINT: &std::ffi::CStr =
    c"The value may be one a view's or policy's condition read before masking: ask the DBA.";

thread_local! {
    /// Did the last statement the executor ran here run for a restricted role (asked in
    /// `check_before_run`, where the catalog may be read)? `emit_log` reads it.
    static RESTRICTED_RUN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A data exception (SQLSTATE class 22: a failing cast or input function, a value out of
/// range) raised while a restricted role's statement runs may quote the value it failed on,
/// and a DBA's view condition or row-security policy evaluates raw values: a review read a
/// raw identifier from `invalid input syntax for type integer: "..."`, picking the row with
/// its own WHERE. For a role that is not surely unrestricted (from the caches alone: this
/// hook must not read the catalog or fail), such an error's message becomes a fixed one and
/// its detail goes; its SQLSTATE stays. PostgreSQL calls this hook only for messages it
/// logs, and with `log_min_messages` at `log`, `fatal` or `panic` it logs no ERROR: then the
/// message goes out as raised (docs/restricted-roles.md says to keep the default).
/// (Catching the error around the executor instead, through pgrx's guard, crashed the
/// server in the regress suite; not kept.)
#[pg_guard]
unsafe extern "C-unwind" fn emit_log(edata: *mut pg_sys::ErrorData) {
    // SAFETY: PostgreSQL hands the error being reported; the strings are palloc'd in the
    // current (error) context, as elog.c's own.
    unsafe {
        if let Some(prev) = PREV_EMIT_LOG {
            prev(edata);
        }
        if edata.is_null()
            || (*edata).elevel < pgrx::PgLogLevel::ERROR as i32
            || (*edata).sqlerrcode & 0xFFF != DATA_EXCEPTION
            || ours(edata)
            || !RESTRICTED_RUN.get() && crate::enforcement::roles::surely_unrestricted()
        {
            return;
        }
        (*edata).message = pg_sys::pstrdup(HIDDEN_VALUE.as_ptr());
        (*edata).detail = std::ptr::null_mut();
        (*edata).detail_log = std::ptr::null_mut();
        // (a JSON parse error's context quotes the input up to the error: a review)
        (*edata).context = std::ptr::null_mut();
        (*edata).hint = pg_sys::pstrdup(HIDDEN_VALUE_HINT.as_ptr());
    }
}

/// Was the error raised by pg_deident itself (its source file a Rust one)? Those never quote a
/// raw value.
///
/// # Safety
/// `edata` is the error being reported.
unsafe fn ours(edata: *mut pg_sys::ErrorData) -> bool {
    // SAFETY: per the contract; filename is a static C string or NULL.
    unsafe {
        let file = (*edata).filename;
        !file.is_null() && std::ffi::CStr::from_ptr(file).to_bytes().ends_with(b".rs")
    }
}

/// Everything pg_deident keeps in shared memory: the key ring slots and the privacy ledger.
fn request_shared_memory() {
    keycache::shared::request();
    crate::dp::budget::request();
}

#[cfg(not(any(feature = "pg13", feature = "pg14")))]
#[pg_guard]
unsafe extern "C-unwind" fn shmem_request() {
    // SAFETY: the saved hook is a valid function or None.
    unsafe {
        if let Some(prev) = PREV_SHMEM_REQUEST {
            prev();
        }
    }
    request_shared_memory();
}

#[pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    // SAFETY: the saved hook is a valid function or None.
    unsafe {
        if let Some(prev) = PREV_SHMEM_STARTUP {
            prev();
        }
    }
    keycache::shared::startup();
    crate::dp::budget::startup();
}

// The executor hooks call the next hook (or the standard function) directly, not through
// pgrx's guard: an ERROR raised below must reach PostgreSQL's handler as it was raised, with
// its CONTEXT lines and every other field (pgrx's guard would catch it and raise a copy
// without them, for every query on the server). So each hook is a plain frame with nothing to
// drop while the executor runs below it (a longjmp over it is then sound: RFC 2945's "plain
// old frames"), and its own Rust work runs in guarded helpers that return before the call.
// What an error skips (popping the running query) is undone by the (sub)transaction abort
// callbacks (`keycache`).
unsafe extern "C-unwind" {
    #[link_name = "standard_ExecutorStart"]
    fn standard_executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32);
    #[link_name = "standard_ExecutorRun"]
    fn standard_executor_run(
        query_desc: *mut pg_sys::QueryDesc,
        direction: pg_sys::ScanDirection::Type,
        count: u64,
        execute_once: bool,
    );
    #[link_name = "standard_ExecutorFinish"]
    fn standard_executor_finish(query_desc: *mut pg_sys::QueryDesc);
    #[link_name = "standard_ExecutorEnd"]
    fn standard_executor_end(query_desc: *mut pg_sys::QueryDesc);
    fn standard_planner(
        parse: *mut pg_sys::Query,
        query_string: *const std::ffi::c_char,
        cursor_options: i32,
        bound_params: pg_sys::ParamListInfo,
    ) -> *mut pg_sys::PlannedStmt;
    #[link_name = "standard_ProcessUtility"]
    fn standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const std::ffi::c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
}

#[pg_guard]
unsafe extern "C-unwind" fn query_started(query_desc: *mut pg_sys::QueryDesc) {
    keycache::query_started(query_desc as usize);
    enforcement::query_started(query_desc as usize);
    crate::aggregates::expanded::new_batch();
}

#[pg_guard]
unsafe extern "C-unwind" fn query_ended(query_desc: *mut pg_sys::QueryDesc) {
    keycache::query_ended(query_desc as usize);
    enforcement::query_ended(query_desc as usize);
}

#[pg_guard]
unsafe extern "C-unwind" fn query_running(
    query_desc: *mut pg_sys::QueryDesc,
    publish: bool,
) -> usize {
    keycache::query_running(query_desc as usize, publish)
}

#[pg_guard]
unsafe extern "C-unwind" fn query_stopped(depth: usize) {
    keycache::query_stopped(depth);
}

unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: the executor passes a valid QueryDesc; the saved hook is a valid function or
    // None. Nothing in this frame needs dropping (see above).
    unsafe {
        query_started(query_desc);
        match PREV_EXECUTOR_START {
            Some(prev) => prev(query_desc, eflags),
            None => standard_executor_start(query_desc, eflags),
        }
        // dp aggregates: the statement's charge, before it runs (dp/charge.rs)
        crate::dp::charge::note_start(query_desc);
        if crate::dp::charge::may_finalize_aggregates((*query_desc).plannedstmt) {
            crate::dp::charge::after_start(query_desc, eflags);
        }
    }
}

unsafe extern "C-unwind" fn executor_run(
    query_desc: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
    execute_once: bool,
) {
    // SAFETY: as in executor_start. Workers start inside this call (ExecGather), with the
    // statement timestamp current now: the ring is published under it before any worker can
    // read it. (ExecutorStart can be long before: in the extended protocol it runs for Bind,
    // and Execute sets a new statement timestamp.)
    unsafe {
        let stmt = (*query_desc).plannedstmt;
        let parallel = !stmt.is_null() && (*stmt).parallelModeNeeded;
        if enforcement::surely_unrestricted() {
            RESTRICTED_RUN.set(false);
        } else {
            check_before_run(query_desc, stmt);
        }
        let depth = query_running(query_desc, parallel);
        match PREV_EXECUTOR_RUN {
            Some(prev) => prev(query_desc, direction, count, execute_once),
            None => standard_executor_run(query_desc, direction, count, execute_once),
        }
        query_stopped(depth);
    }
}

unsafe extern "C-unwind" fn executor_finish(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: as in executor_start. AFTER triggers run here: with the query's ring.
    unsafe {
        let depth = query_running(query_desc, false);
        match PREV_EXECUTOR_FINISH {
            Some(prev) => prev(query_desc),
            None => standard_executor_finish(query_desc),
        }
        query_stopped(depth);
    }
}

unsafe extern "C-unwind" fn executor_end(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: as in executor_start.
    unsafe {
        crate::dp::charge::before_end(query_desc);
        match PREV_EXECUTOR_END {
            Some(prev) => prev(query_desc),
            None => standard_executor_end(query_desc),
        }
        query_ended(query_desc);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn check_before_run(
    query_desc: *mut pg_sys::QueryDesc,
    stmt: *mut pg_sys::PlannedStmt,
) {
    // (asked here, guarded: it may read the catalog)
    RESTRICTED_RUN.set(enforcement::current_is_restricted());
    // SAFETY: the QueryDesc about to run, and its PlannedStmt or NULL.
    unsafe { enforcement::check_before_run(query_desc as usize, stmt) }
}

#[pg_guard]
unsafe extern "C-unwind" fn before_planning(query: *mut pg_sys::Query) {
    // SAFETY: the planner's input Query.
    unsafe { enforcement::before_planning(query) }
}

#[pg_guard]
unsafe extern "C-unwind" fn after_planning(stmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: the planner's output.
    unsafe { enforcement::after_planning(stmt) }
}

#[pg_guard]
unsafe extern "C-unwind" fn before_utility(
    pstmt: *mut pg_sys::PlannedStmt,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: the statement ProcessUtility received.
    match unsafe { enforcement::before_utility(pstmt) } {
        enforcement::Utility::AsIs => pstmt,
        enforcement::Utility::Replace(other) => other,
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn after_utility(pstmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: the statement ProcessUtility ran.
    unsafe { enforcement::after_utility(pstmt) }
}

#[pg_guard]
unsafe extern "C-unwind" fn check_permissions(rtable: *mut pg_sys::List, abort: bool) -> bool {
    // SAFETY: the range table ExecCheckRTPerms received.
    unsafe { enforcement::check_permissions(rtable, abort) }
}

unsafe extern "C-unwind" fn post_parse_analyze(
    pstate: *mut pg_sys::ParseState,
    query: *mut pg_sys::Query,
    jstate: *mut pg_sys::JumbleState,
) {
    // SAFETY: as in executor_start.
    unsafe {
        if let Some(prev) = PREV_POST_PARSE_ANALYZE {
            prev(pstate, query, jstate);
        }
        // pointer writes and a node-tag switch: nothing that can raise an error
        enforcement::mark_role_dependent(query);
    }
}

unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: i32,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: as in executor_start. A plan that reads a relation depends on the role: the
    // plan cache makes a new one when another role runs it (plancache.c CheckCachedPlan).
    unsafe {
        // Citus's partial aggregation of the k-aggregates, done without its per-row lookups
        // (a pointer read first: most statements have no aggregate)
        let aggregates = (*parse).hasAggs;
        let mut rewrite_combines = false;
        let mut repeated: *mut pg_sys::List = std::ptr::null_mut();
        if aggregates {
            crate::aggregates::partial::rewrite_worker_partial_aggs(parse);
            rewrite_combines = !crate::aggregates::partial::names_coord_combine_agg(parse);
            if rewrite_combines {
                repeated = crate::aggregates::partial::repeated_calls(parse);
            }
        }
        // dp aggregate calls (their bounds, person and value: dp/plan.rs), on the query as
        // written, before restricted roles' rewrite turns tables into subqueries
        let dp = crate::dp::plan::worth_checking(parse) && crate::dp::plan::check_query(parse);
        let restricted = !enforcement::surely_unrestricted();
        if restricted {
            before_planning(parse);
        }
        let stmt = match PREV_PLANNER {
            Some(prev) => prev(parse, query_string, cursor_options, bound_params),
            None => standard_planner(parse, query_string, cursor_options, bound_params),
        };
        if restricted && !stmt.is_null() {
            after_planning(stmt);
        }
        // the k- and dp aggregates' combination on a Citus coordinator, in the plan Citus's
        // planner made; then the dp aggregates' plan, their combinations included
        if rewrite_combines && !stmt.is_null() {
            crate::aggregates::partial::rewrite_coordinator_combines(stmt, dp, repeated);
        }
        if dp && !stmt.is_null() {
            crate::dp::grouping::check_plan(stmt);
        }
        // pointer reads: nothing that can raise an error
        if !stmt.is_null() && enforcement::plan_reads_relations(stmt) {
            (*stmt).dependsOnRole = true;
        }
        stmt
    }
}

unsafe extern "C-unwind" fn upper_paths(
    root: *mut pg_sys::PlannerInfo,
    stage: pg_sys::UpperRelationKind::Type,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    extra: *mut std::ffi::c_void,
) {
    // SAFETY: as in executor_start; the planner's arguments, passed on.
    unsafe {
        if let Some(prev) = PREV_UPPER_PATHS {
            prev(root, stage, input_rel, output_rel, extra);
        }
        crate::dp::grouping::upper_paths(root, stage, input_rel, output_rel, extra);
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: as in executor_start. A replaced statement is a new tree of ours, which
    // ProcessUtility may scribble on.
    unsafe {
        let run = before_utility(pstmt);
        let read_only = read_only_tree && run == pstmt;
        match PREV_PROCESS_UTILITY {
            Some(prev) => prev(run, query_string, read_only, context, params, query_env, dest, qc),
            None => standard_process_utility(
                run,
                query_string,
                read_only,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
        after_utility(pstmt);
    }
}

unsafe extern "C-unwind" fn executor_check_perms(rtable: *mut pg_sys::List, abort: bool) -> bool {
    // SAFETY: as in executor_start.
    unsafe {
        if !enforcement::surely_unrestricted() && !check_permissions(rtable, abort) {
            return false;
        }
        match PREV_EXECUTOR_CHECK_PERMS {
            Some(prev) => prev(rtable, abort),
            None => true,
        }
    }
}

unsafe extern "C-unwind" fn needs_fmgr(fn_oid: pg_sys::Oid) -> bool {
    // SAFETY: as in executor_start.
    unsafe {
        if let Some(prev) = PREV_NEEDS_FMGR {
            if prev(fn_oid) {
                return true;
            }
        }
        let oid = fn_oid.to_u32();
        let (last, last_facts) = LAST_FUNCTION.get();
        let facts = if last == oid && oid != 0 {
            last_facts
        } else {
            let known =
                FUNCTION_FACTS.with(|f| f.try_borrow().ok().and_then(|m| m.get(&oid).copied()));
            let facts = match known {
                Some(facts) => facts,
                None => function_facts(fn_oid),
            };
            LAST_FUNCTION.set((oid, facts));
            facts
        };
        facts & KEPT_WHOLE_FOR_DP != 0
            || enforcement::keeps_sql_functions_whole(facts & SQL_FUNCTION != 0)
    }
}

/// What `needs_fmgr` needs to know of a function, as bits: an SQL function (kept whole for a
/// restricted role: `enforcement::keeps_sql_functions_whole`), or one kept whole because of
/// the dp aggregates in its body (`dp::plan::keeps_sql_function_whole`).
const SQL_FUNCTION: u8 = 1;
const KEPT_WHOLE_FOR_DP: u8 = 2;

thread_local! {
    /// The facts by function OID, read once per function and kept until pg_proc changes
    /// (`function_changed`). PostgreSQL asks the hook in every `fmgr_info` of a function that
    /// is not built in, and Citus's `worker_partial_agg` calls `fmgr_info` on the aggregate's
    /// transition function for every row: two syscache lookups per row there (each through
    /// pgrx's guard) were most of what a k-aggregate cost Citus beyond a built-in aggregate.
    static FUNCTION_FACTS: std::cell::RefCell<std::collections::HashMap<u32, u8>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
    /// The last function asked about and its facts (Citus asks about the same one row after
    /// row); OID 0 asks about nothing.
    static LAST_FUNCTION: std::cell::Cell<(u32, u8)> = const { std::cell::Cell::new((0, 0)) };
}

/// Reads a function's facts from pg_proc and keeps them.
#[pg_guard]
unsafe extern "C-unwind" fn function_facts(fn_oid: pg_sys::Oid) -> u8 {
    /// pg_language_d.h.
    const SQL_LANGUAGE_ID: pg_sys::Oid = pg_sys::Oid::from_u32(14);
    let mut facts = 0;
    if enforcement::catalog::func_language(fn_oid) == Some(SQL_LANGUAGE_ID) {
        facts |= SQL_FUNCTION;
        // SAFETY: a pg_proc lookup inside a transaction (fmgr_info runs in one).
        if unsafe { crate::dp::plan::keeps_sql_function_whole(fn_oid) } {
            facts |= KEPT_WHOLE_FOR_DP;
        }
    }
    FUNCTION_FACTS.with(|f| {
        if let Ok(mut m) = f.try_borrow_mut() {
            m.insert(fn_oid.to_u32(), facts);
        }
    });
    facts
}

/// A pg_proc row changed (CREATE OR REPLACE can change a function's language and body): the
/// facts are read again.
#[pg_guard]
unsafe extern "C-unwind" fn function_changed(_arg: pg_sys::Datum, _cacheid: i32, _hash: u32) {
    LAST_FUNCTION.set((0, 0));
    FUNCTION_FACTS.with(|f| {
        if let Ok(mut m) = f.try_borrow_mut() {
            m.clear();
        }
    });
}

unsafe extern "C-unwind" fn fmgr(
    event: pg_sys::FmgrHookEventType::Type,
    flinfo: *mut pg_sys::FmgrInfo,
    arg: *mut pg_sys::Datum,
) {
    // SAFETY: as in executor_start. pg_deident needs no work at function entry or exit: it
    // asks for the hook only to keep SQL functions from being inlined.
    unsafe {
        if let Some(prev) = PREV_FMGR {
            prev(event, flinfo, arg);
        }
    }
}
