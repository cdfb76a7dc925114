//! Where aggregate states live: PostgreSQL memory, and nothing else.
//!
//! A group's state (`Group`) is palloc'd in the aggregate context that `AggCheckCallContext`
//! returns, and so are all its arrays (`PgEnv`). PostgreSQL then owns the state's lifetime:
//! the executor resets that context after each group of a sorted aggregate, after each batch
//! of a hash aggregate, and at the end of the query, and nothing of ours needs to run then
//! (no reset callback, no Rust heap). A hash aggregate sees the states' real size when it
//! measures the context (nodeAgg.c, `hash_agg_check_limits` and `hash_agg_update_metrics`),
//! so it spills on time and EXPLAIN ANALYZE reports their memory; and a failed allocation is
//! palloc's ERROR ("out of memory", 53200), not an abort of the server process.
//!
//! Nothing here is ever dropped: the state is plain memory that the reset frees. Temporary
//! arrays (sort scratch) are freed when they go out of scope, with pfree.

use std::ptr::NonNull;

use pgrx::pg_sys;

use super::buf::Env;
use super::state::{KState, StateError};
use crate::error::DeidentError;

/// A memory context as the environment of a state (buf.rs).
#[derive(Clone, Copy)]
pub struct PgEnv(pub pg_sys::MemoryContext);

impl Env for PgEnv {
    /// MaxAllocSize (memutils.h): palloc refuses larger requests.
    const MAX_BYTES: usize = 0x3fff_ffff;

    fn alloc(self, bytes: usize) -> Result<NonNull<u8>, StateError> {
        // SAFETY: the context is valid for the state's life (it is the state's own, or the
        // current one for a temporary); MemoryContextAlloc raises an ERROR rather than return
        // NULL.
        let p = unsafe { pg_sys::MemoryContextAlloc(self.0, bytes) };
        NonNull::new(p.cast()).ok_or(StateError::OutOfMemory)
    }

    unsafe fn realloc(
        self,
        ptr: NonNull<u8>,
        _old: usize,
        new: usize,
    ) -> Result<NonNull<u8>, StateError> {
        // SAFETY: ptr is a palloc'd chunk (the trait's contract); repalloc keeps it in its
        // context and raises an ERROR rather than return NULL.
        let p = unsafe { pg_sys::repalloc(ptr.as_ptr().cast(), new) };
        NonNull::new(p.cast()).ok_or(StateError::OutOfMemory)
    }

    unsafe fn free(self, ptr: NonNull<u8>, _bytes: usize) {
        // SAFETY: ptr is a palloc'd chunk, not used again (the trait's contract).
        unsafe { pg_sys::pfree(ptr.as_ptr().cast()) }
    }

    /// CHECK_FOR_INTERRUPTS() (miscadmin.h): ProcessInterrupts raises the ERROR of a cancel or
    /// statement_timeout, which pgrx turns into a Rust panic that unwinds to the entry point's
    /// #[pg_guard] and is raised again there. The flag is read volatile, as the C macro does:
    /// the loops calling this touch no other shared state, and a plain read could be hoisted
    /// out of them.
    #[inline]
    fn check_interrupts(self) {
        // SAFETY: a sig_atomic_t of postgres.c that signal handlers set; reading it is atomic.
        let pending = unsafe { std::ptr::read_volatile(&raw const pg_sys::InterruptPending) };
        if pending != 0 {
            // SAFETY: called from a backend's own thread, outside any critical section.
            unsafe { pg_sys::ProcessInterrupts() }
        }
    }
}

/// The types one group's transition calls need besides the state, looked up once, when the
/// state is made.
#[derive(Clone, Copy, PartialEq)]
pub enum ValueType {
    None,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
}

impl ValueType {
    /// An integer value datum of this type (smallint, integer or bigint), as an i64: the
    /// sum transitions' reading of one (support.rs, `k_trans`; partial.rs, `GroupKind::row`).
    #[inline(always)]
    pub fn integer(self, d: pg_sys::Datum) -> i64 {
        match self {
            ValueType::Int2 => i64::from(d.value() as i16),
            ValueType::Int4 => i64::from(d.value() as i32),
            _ => d.value() as i64,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum PersonType {
    Unknown,
    Varlena,
    Uuid,
    Int8,
    Int4,
}

/// One group's state, in PostgreSQL memory (inside its expanded object: expanded.rs).
#[repr(C)]
pub struct Group {
    pub value: ValueType,
    pub person: PersonType,
    /// A full state that `_k_partial` packed once and made an object again (partial.rs,
    /// `unpack`): it stays an object. (In the padding before `state`.)
    pub unpacked: bool,
    pub state: KState<PgEnv>,
}

impl Group {
    pub fn new(value: ValueType, person: PersonType, state: KState<PgEnv>) -> Group {
        Group { value, person, unpacked: false, state }
    }
}

/// The aggregate's memory context; raises an ERROR outside an aggregate.
///
/// # Safety
/// `fcinfo` is fmgr's call info.
pub unsafe fn agg_context(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    let mut cx: pg_sys::MemoryContext = std::ptr::null_mut();
    // SAFETY: AggCheckCallContext only reads fcinfo->context and writes cx.
    match unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut cx) } {
        // AGG_CONTEXT_AGGREGATE (fmgr.h): a grouped or plain aggregate, also Citus's
        // worker_partial_agg and coord_combine_agg, which pass their own context on
        1 if !cx.is_null() => cx,
        // AGG_CONTEXT_WINDOW: an aggregate declared over our support functions, used as a
        // window function. A running answer over a moving frame gives away each row's value
        // by subtraction, and a moving aggregate's inverse function receives the live
        // read-write state, which PL/pgSQL takes over (expanded.rs, states_context): refused
        // before any state exists.
        2 => DeidentError::WindowAggregate.report(),
        _ => DeidentError::OutsideAggregate.report(),
    }
}

/// Puts `value` in `cx`. palloc aligns to MAXALIGN (8); a state may need more (it holds an
/// i128), so the chunk is a little larger and the value starts at the first aligned address.
///
/// # Safety
/// `cx` is a valid memory context, and whatever `value` points to lives in `cx` or a
/// longer-lived one.
pub unsafe fn palloc_value<T>(cx: pg_sys::MemoryContext, value: T) -> *mut T {
    // SAFETY: per the contract.
    unsafe { palloc_aligned(cx, value, std::mem::align_of::<T>()) }
}

/// `palloc_value` at an address that is a multiple of `align`, a power of two at least T's
/// alignment (a cache line, for expanded.rs): the chunk has `align - 1` bytes more.
///
/// # Safety
/// As `palloc_value`.
pub unsafe fn palloc_aligned<T>(cx: pg_sys::MemoryContext, value: T, align: usize) -> *mut T {
    debug_assert!(align.is_power_of_two() && align >= std::mem::align_of::<T>());
    let size = std::mem::size_of::<T>() + align - 1;
    // SAFETY: MemoryContextAlloc returns `size` bytes or raises an ERROR; the aligned value
    // fits in them (at most align - 1 bytes are skipped); writing initializes it.
    unsafe {
        let raw = pg_sys::MemoryContextAlloc(cx, size).cast::<u8>();
        // computed, not `align_offset`, which may decline to give an offset
        let skip = (align - raw as usize % align) % align;
        let p = raw.add(skip).cast::<T>();
        p.write(value);
        p
    }
}

/// A new varlena (bytea, numeric) of `len` data bytes in the current memory context, filled by
/// `fill`.
pub fn varlena_datum(len: usize, fill: impl FnOnce(&mut [u8])) -> pg_sys::Datum {
    let total = pg_sys::VARHDRSZ + len;
    // SAFETY: palloc0 returns `total` writable, zeroed bytes (or raises an ERROR; a total above
    // 1 GB is its "invalid memory alloc request size"), so the slice never covers
    // uninitialized memory; the header is set before the data is handed out, and the data
    // slice is exactly the bytes after it.
    unsafe {
        let ptr = pg_sys::palloc0(total).cast::<pg_sys::varlena>();
        pgrx::varlena::set_varsize_4b(ptr, total as i32);
        let data = pgrx::varlena::vardata_4b(ptr).cast::<u8>().cast_mut();
        fill(std::slice::from_raw_parts_mut(data, len));
        pg_sys::Datum::from(ptr)
    }
}
