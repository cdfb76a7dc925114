//! Just enough of the fmgr version-1 calling convention (fmgr.h) for the hot entry points.
//!
//! Why not `#[pg_extern]`: a pseudonym costs about 300 ns of real work (two SHA-256
//! compressions, the base-62 conversion), and pgrx's per-call argument machinery (a guarded
//! detoast per text argument, UTF-8 checks, a Rust `String` for the result) added about a third
//! on top (perf, docs/benchmarks.md). These entry points read their arguments in place and
//! build the result with one palloc. They stay `#[pg_guard]`, so a Rust panic still becomes a
//! PostgreSQL ERROR, and their SQL declarations are in `functions.rs`.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};

use pgrx::pg_guard;
use pgrx::pg_sys;
use pgrx::varlena;

/// Declares the `pg_finfo_*` record that tells fmgr a C function uses version 1.
macro_rules! pg_function_info_v1 {
    ($name:ident) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn $name() -> &'static pgrx::pg_sys::Pg_finfo_record {
            static V1: pgrx::pg_sys::Pg_finfo_record =
                pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}
pub(crate) use pg_function_info_v1;

/// Argument `n` as a Datum.
///
/// # Safety
/// `fcinfo` is fmgr's call info for a function declared with more than `n` arguments, and
/// argument `n` is not NULL (the functions are STRICT).
#[inline]
pub unsafe fn arg(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> pg_sys::Datum {
    // SAFETY: per this function's contract, args holds at least n + 1 entries.
    unsafe { (*fcinfo).args.as_slice(n + 1)[n].value }
}

/// True when argument `n` is NULL.
///
/// # Safety
/// `fcinfo` is fmgr's call info for a function declared with more than `n` arguments.
#[inline]
pub unsafe fn arg_is_null(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> bool {
    // SAFETY: per this function's contract, args holds at least n + 1 entries.
    unsafe { (*fcinfo).args.as_slice(n + 1)[n].isnull }
}

/// Returns SQL NULL (PG_RETURN_NULL).
///
/// # Safety
/// `fcinfo` is fmgr's call info.
#[inline]
pub unsafe fn return_null(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: per the contract.
    unsafe { (*fcinfo).isnull = true };
    pg_sys::Datum::from(0usize)
}

/// Argument `n`, a text or bytea, as its bytes (PG_GETARG_TEXT_PP, then VARDATA_ANY).
/// Compressed or out-of-line values are detoasted into the current memory context, which
/// outlives the call; short inline values (the common case) are read where they lie.
///
/// # Safety
/// As `arg`, and argument `n` is a varlena.
#[inline]
pub unsafe fn arg_bytes<'a>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> &'a [u8] {
    // SAFETY: per the contract the datum points at a varlena that lives through the call.
    unsafe {
        let mut ptr = arg(fcinfo, n).cast_mut_ptr::<pg_sys::varlena>();
        if varlena::varatt_is_1b_e(ptr) || varlena::varatt_is_4b_c(ptr) {
            ptr = pg_sys::pg_detoast_datum_packed(ptr);
        }
        varlena::varlena_to_byte_slice(ptr)
    }
}

/// Argument `n`, an int4.
///
/// # Safety
/// As `arg`, and argument `n` is an int4.
#[inline]
pub unsafe fn arg_i32(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> i32 {
    // SAFETY: an int4 Datum holds the value in its low 32 bits (DatumGetInt32).
    unsafe { arg(fcinfo, n).value() as i32 }
}

/// A new text (or bytea) holding `bytes`, in the current memory context.
pub fn text_datum(bytes: &[u8]) -> pg_sys::Datum {
    let total = pg_sys::VARHDRSZ + bytes.len();
    // SAFETY: palloc returns `total` writable bytes (or raises an ERROR); the header is set
    // before the data is written, and the data fits after it.
    unsafe {
        let ptr = pg_sys::palloc(total).cast::<pg_sys::varlena>();
        varlena::set_varsize_4b(ptr, total as i32);
        let data = varlena::vardata_4b(ptr).cast::<u8>().cast_mut();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        pg_sys::Datum::from(ptr)
    }
}

/// Counts transaction ends in this backend (see `register_xact_callback`). A call site's
/// check of the key ring is good for one transaction at most: a non-atomic procedure that
/// COMMITs keeps its expressions, and with them their fn_extra, across transactions.
static XACT_EPOCH: AtomicU64 = AtomicU64::new(1);

#[pg_guard]
unsafe extern "C-unwind" fn end_of_transaction(_event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    XACT_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// Registers the transaction callback; called once, from `_PG_init` during preload, so that
/// every backend (forked from the postmaster) has it.
pub fn register_xact_callback() {
    // SAFETY: a guarded C callback with no state; registered once.
    unsafe { pg_sys::RegisterXactCallback(Some(end_of_transaction), std::ptr::null_mut()) }
}

/// The per-call-site mark in `flinfo->fn_extra`: has this expression already checked that the
/// key ring is current, in this transaction? fn_extra lives as long as the FmgrInfo (one
/// execution of the query; for PL/pgSQL simple expressions, one transaction or a procedure's
/// life) and is zeroed when the FmgrInfo is set up (fmgr.c, `fmgr_info_cxt_security`); the
/// mark holds the transaction epoch it was made in.
///
/// # Safety
/// `fcinfo` is fmgr's call info, with a valid `flinfo`.
#[inline]
pub unsafe fn checked_this_execution(fcinfo: pg_sys::FunctionCallInfo) -> bool {
    // SAFETY: flinfo is valid per the contract; a non-null fn_extra is only ever set by
    // `mark_checked`, to a u64 in fn_mcxt.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if flinfo.is_null() {
            // Called without an FmgrInfo (DirectFunctionCall): never marked, always checked.
            return false;
        }
        let mark = (*flinfo).fn_extra.cast::<u64>();
        !mark.is_null() && *mark == XACT_EPOCH.load(Ordering::Relaxed)
    }
}

/// Marks the call site checked in this transaction (see `checked_this_execution`).
///
/// # Safety
/// As `checked_this_execution`.
pub unsafe fn mark_checked(fcinfo: pg_sys::FunctionCallInfo) {
    // SAFETY: flinfo is valid per the contract; this module owns fn_extra. The mark is
    // allocated once per FmgrInfo, in its own memory context, and lives as long as it.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if flinfo.is_null() {
            return;
        }
        let mut mark = (*flinfo).fn_extra.cast::<u64>();
        if mark.is_null() {
            mark = pg_sys::MemoryContextAlloc((*flinfo).fn_mcxt, std::mem::size_of::<u64>())
                .cast::<u64>();
            (*flinfo).fn_extra = mark.cast();
        }
        *mark = XACT_EPOCH.load(Ordering::Relaxed);
    }
}
