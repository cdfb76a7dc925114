//! Just enough of the fmgr version-1 calling convention (fmgr.h) for the hot entry points:
//! arguments read in place, results built with one palloc, and a typed per-call-site cache in
//! `fn_extra`. Plain glue, with no knowledge of keys or aggregates.
//!
//! Why not `#[pg_extern]`: a pseudonym costs about 300 ns of real work (two SHA-256
//! compressions, the base-62 conversion), and pgrx's per-call argument machinery (a guarded
//! detoast per text argument, UTF-8 checks, a Rust `String` for the result) added about a third
//! on top (perf, docs/benchmarks.md). These entry points read their arguments in place and
//! build the result with one palloc. They stay `#[pg_guard]`, so a Rust panic still becomes a
//! PostgreSQL ERROR, and their SQL declarations are in `functions.rs`.

use std::ffi::c_void;

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
    // SAFETY: per the contract.
    unsafe { datum_bytes(arg(fcinfo, n)) }
}

/// A varlena datum's bytes, as `arg_bytes`.
///
/// # Safety
/// `d` points at a varlena that lives through the caller's use of the bytes.
#[inline]
pub unsafe fn datum_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: per the contract.
    unsafe {
        let mut ptr = d.cast_mut_ptr::<pg_sys::varlena>();
        #[cfg(target_endian = "little")]
        {
            // postgres.h's VARATT_IS_1B_E, VARATT_IS_4B_C, VARATT_IS_1B, VARSIZE_1B and
            // VARSIZE_4B for little-endian headers, written out: pgrx's versions are not
            // inlined across crates, and this runs for every row of the aggregates (perf: 2.6%
            // of dp_sum's backend in a call of its own)
            let h = ptr.cast::<u8>().read();
            if h == 0x01 || h & 0x03 == 0x02 {
                ptr = detoast_packed(ptr);
            }
            let p = ptr.cast::<u8>();
            let h = p.read();
            if h & 0x01 == 0x01 {
                let len = usize::from(h >> 1);
                std::slice::from_raw_parts(p.add(1), len - 1)
            } else {
                let len = (p.cast::<u32>().read_unaligned() >> 2) as usize;
                std::slice::from_raw_parts(p.add(4), len - 4)
            }
        }
        #[cfg(not(target_endian = "little"))]
        {
            if varlena::varatt_is_1b_e(ptr) || varlena::varatt_is_4b_c(ptr) {
                ptr = pg_sys::pg_detoast_datum_packed(ptr);
            }
            varlena::varlena_to_byte_slice(ptr)
        }
    }
}

/// pg_detoast_datum_packed, out of line: pgrx's guard around the call (a sigsetjmp buffer)
/// gave `datum_bytes` a 424-byte stack frame and kept it from being inlined, on every row of
/// the aggregates, although the call is only needed for compressed or out-of-line values.
///
/// # Safety
/// `ptr` points at a varlena.
#[cold]
#[inline(never)]
unsafe fn detoast_packed(ptr: *mut pg_sys::varlena) -> *mut pg_sys::varlena {
    // SAFETY: per the contract.
    unsafe { pg_sys::pg_detoast_datum_packed(ptr) }
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

unsafe extern "C" {
    // Without pgrx's guard (a sigsetjmp per call, about 2% of a pseudonym in perf): with
    // MCXT_ALLOC_NO_OOM it returns NULL rather than raise an ERROR when memory runs out, and
    // the only other ERROR it can raise is for a size over 1 GB (mcxt.c,
    // `MemoryContextAllocExtended`), which `alloc` rules out.
    #[link_name = "MemoryContextAllocExtended"]
    fn alloc_extended(cx: pg_sys::MemoryContext, size: usize, flags: i32) -> *mut c_void;
}

/// `size` bytes in the current memory context; an ERROR when out of memory or over 1 GB.
#[inline]
fn alloc(size: usize) -> *mut c_void {
    if size > 1024 {
        // SAFETY: palloc (guarded) returns the memory or raises an ERROR.
        return unsafe { pg_sys::palloc(size) };
    }
    // SAFETY: CurrentMemoryContext is valid during a function call; the size is valid (above),
    // so the call cannot raise an ERROR (see the declaration).
    let ptr = unsafe {
        alloc_extended(pg_sys::CurrentMemoryContext, size, pg_sys::MCXT_ALLOC_NO_OOM as i32)
    };
    if ptr.is_null() {
        // Out of memory: palloc (guarded) raises PostgreSQL's own ERROR.
        // SAFETY: as above.
        return unsafe { pg_sys::palloc(size) };
    }
    ptr
}

/// A new text (or bytea) holding `bytes`, in the current memory context.
pub fn text_datum(bytes: &[u8]) -> pg_sys::Datum {
    let total = pg_sys::VARHDRSZ + bytes.len();
    // SAFETY: alloc returns `total` writable bytes (or raises an ERROR); the header is
    // set before the data is written, and the data fits after it.
    unsafe {
        let ptr = alloc(total).cast::<pg_sys::varlena>();
        varlena::set_varsize_4b(ptr, total as i32);
        let data = varlena::vardata_4b(ptr).cast::<u8>().cast_mut();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        pg_sys::Datum::from(ptr)
    }
}

/// A new copy of `bytes` in the current memory context, as a pass-by-reference
/// Datum (a uuid's 16 bytes, say).
pub fn bytes_datum(bytes: &[u8]) -> pg_sys::Datum {
    // SAFETY: alloc returns bytes.len() writable bytes (or raises an ERROR).
    unsafe {
        let ptr = alloc(bytes.len()).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len());
        pg_sys::Datum::from(ptr)
    }
}

/// Argument `n` is a constant in the call's expression (a `Const` node), so it has the same
/// value on every call through this FmgrInfo. Parameters are not counted: a PL/pgSQL simple
/// expression keeps its FmgrInfo while its parameters change from one evaluation to the next.
///
/// # Safety
/// `fcinfo` is fmgr's call info.
pub unsafe fn arg_is_const(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> bool {
    // SAFETY: flinfo, when set, is valid for the call; fn_expr is a node tree or NULL
    // (fmgr.h, `fmgr_info_set_expr`), and a FuncExpr's args is a List of nodes.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if flinfo.is_null() || (*flinfo).fn_expr.is_null() {
            return false;
        }
        let expr = (*flinfo).fn_expr;
        let args = match (*expr).type_ {
            pg_sys::NodeTag::T_FuncExpr => (*expr.cast::<pg_sys::FuncExpr>()).args,
            _ => return false,
        };
        let args = pgrx::PgList::<pg_sys::Node>::from_pg(args);
        match args.get_ptr(n) {
            Some(node) => (*node).type_ == pg_sys::NodeTag::T_Const,
            None => false,
        }
    }
}

/// The call site's cache of type `T` in `flinfo->fn_extra`, made by `init` on the first call
/// through this FmgrInfo, or None when there is no FmgrInfo (DirectFunctionCall).
///
/// fn_extra lives as long as the FmgrInfo: one execution of a query, or, for a PL/pgSQL simple
/// expression, the transaction (a non-atomic procedure's, across its COMMITs). It is zeroed
/// when the FmgrInfo is set up (fmgr.c, `fmgr_info_cxt_security`). The value is allocated in
/// `fn_mcxt` and dropped (Rust `Drop`: a key is wiped) by a reset callback of that context.
/// Every function that uses this helper must use it with one `T` only.
///
/// # Safety
/// `fcinfo` is fmgr's call info, and this FmgrInfo's fn_extra is used by this helper with
/// this `T` only.
pub unsafe fn call_site<'a, T>(
    fcinfo: pg_sys::FunctionCallInfo,
    init: impl FnOnce() -> T,
) -> Option<&'a mut T> {
    // palloc'd memory is MAXALIGNed (8 bytes here), enough for T.
    const { assert!(std::mem::align_of::<T>() <= 8) };
    // SAFETY: per the contract; the allocation and its drop callback live in fn_mcxt, as long
    // as the FmgrInfo whose fn_extra points at them.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if flinfo.is_null() {
            return None;
        }
        let mut site = (*flinfo).fn_extra.cast::<T>();
        if site.is_null() {
            let value = init();
            let cx = (*flinfo).fn_mcxt;
            site = pg_sys::MemoryContextAlloc(cx, std::mem::size_of::<T>()).cast::<T>();
            let cb = pg_sys::MemoryContextAlloc(
                cx,
                std::mem::size_of::<pg_sys::MemoryContextCallback>(),
            )
            .cast::<pg_sys::MemoryContextCallback>();
            site.write(value);
            cb.write(pg_sys::MemoryContextCallback {
                func: Some(drop_call_site::<T>),
                arg: site.cast(),
                next: std::ptr::null_mut(),
            });
            pg_sys::MemoryContextRegisterResetCallback(cx, cb);
            (*flinfo).fn_extra = site.cast();
        }
        site.as_mut()
    }
}

/// The aggregate node running this call (an aggregate's transition, combine or final
/// function: nodeAgg.c passes its AggState as the context), None for any other caller (a
/// window aggregate, a plain call).
///
/// # Safety
/// `fcinfo` is fmgr's call info.
#[inline]
pub unsafe fn agg_state(fcinfo: pg_sys::FunctionCallInfo) -> Option<*mut pg_sys::AggState> {
    // SAFETY: per the contract; a non-NULL context is a Node.
    unsafe {
        let cx = (*fcinfo).context;
        (!cx.is_null() && (*cx).type_ == pg_sys::NodeTag::T_AggState).then(|| cx.cast())
    }
}

/// The value `call_site` keeps for this call site, if it has made one yet (for a function's
/// fast path, which must not make it).
///
/// # Safety
/// As `call_site`.
#[inline(always)]
pub unsafe fn made_call_site<'a, T>(fcinfo: pg_sys::FunctionCallInfo) -> Option<&'a mut T> {
    // SAFETY: per the contract; a non-NULL fn_extra is the T that call_site wrote.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if flinfo.is_null() {
            return None;
        }
        (*flinfo).fn_extra.cast::<T>().as_mut()
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn drop_call_site<T>(arg: *mut c_void) {
    // SAFETY: arg is the value `call_site` wrote, dropped once, when its context goes.
    unsafe { std::ptr::drop_in_place(arg.cast::<T>()) }
}
