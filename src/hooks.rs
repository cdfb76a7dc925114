//! Every PostgreSQL hook pg_deident installs, in one place (as sepgsql keeps its hooks in
//! hooks.c): each saves the previous hook and calls it, so other extensions keep working.
//! Installed from `_PG_init` during preload only.
//!
//! - `shmem_request_hook` / `shmem_startup_hook`: the per-leader key ring slots
//!   (`keycache::shared`).
//! - `ExecutorStart_hook`: before a statement that may start parallel workers, settle the
//!   statement's key ring and publish its identity for the workers (`keycache`).

use pgrx::pg_guard;
use pgrx::pg_sys;

use crate::keycache;

static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_SHMEM_STARTUP: pg_sys::shmem_startup_hook_type = None;
#[cfg(not(any(feature = "pg13", feature = "pg14")))]
static mut PREV_SHMEM_REQUEST: pg_sys::shmem_request_hook_type = None;

/// Installs the hooks; called once, from `_PG_init` while preloading.
pub fn install() {
    // SAFETY: _PG_init runs in the postmaster before any other process exists; the hook
    // variables are PostgreSQL's, saved and replaced once.
    unsafe {
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
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
    keycache::shared::request();
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
    keycache::shared::request();
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
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: the executor passes a valid QueryDesc with its PlannedStmt. Workers start in
    // ExecutorRun (ExecGather), after this: the ring is published before any worker reads it.
    // EXPLAIN without ANALYZE starts no workers, but publishing costs only a stat.
    unsafe {
        let stmt = (*query_desc).plannedstmt;
        if !stmt.is_null() && (*stmt).parallelModeNeeded {
            keycache::begin_parallel_statement();
        }
        match PREV_EXECUTOR_START {
            Some(prev) => prev(query_desc, eflags),
            None => pg_sys::standard_ExecutorStart(query_desc, eflags),
        }
    }
}
