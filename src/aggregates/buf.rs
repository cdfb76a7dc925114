//! Growable arrays of u64 for aggregate states, in memory chosen by the caller. Pure Rust.
//!
//! Why not `Vec`: a state must live in the aggregate's memory context. PostgreSQL's hash
//! aggregate decides when to spill by measuring the memory allocated in that context
//! (nodeAgg.c, `hash_agg_check_limits`: `MemoryContextMemAllocated` of
//! `hashcontext->ecxt_per_tuple_memory`), frees states by resetting it, and a failed palloc
//! raises an ERROR. Rust's global allocator is invisible to that accounting, and a failed
//! allocation there aborts the whole server process.
//!
//! So the state logic (state.rs, decimal.rs) is generic over an [`Env`]: in the server it is a
//! memory context (memory.rs, `PgEnv`: palloc, repalloc, pfree, and PostgreSQL's interrupt
//! check); under `cargo test` it is the Rust heap through the fallible `std::alloc` calls
//! (`tests::HeapEnv`). The only element type states need is u64 (person hashes, decimal limbs),
//! which keeps the unsafe part here small.

use std::ptr::NonNull;

use super::state::StateError;

/// Elements between two interrupt checks in loops over whole arrays, and the size of the runs
/// sorted without a check (state.rs, `sort_distinct`). On the project's machine, 65,536 u64
/// take 0.75 ms to sort (5 ms at worst, under load: docs/benchmarks.md), and far less to copy,
/// merge or validate.
pub const CHUNK: usize = 1 << 16;

/// What a state needs from where it runs: memory, and a way for long loops to let the server
/// act on a cancel or a statement timeout.
pub trait Env: Copy {
    /// The largest single allocation, in bytes (PostgreSQL: MaxAllocSize, 1 GB - 1).
    const MAX_BYTES: usize;

    /// `bytes` (> 0) new bytes, aligned for u64. May raise a PostgreSQL ERROR instead of
    /// returning an error (palloc does).
    fn alloc(self, bytes: usize) -> Result<NonNull<u8>, StateError>;

    /// Resizes an allocation of `old` bytes made by `alloc` to `new` (> 0) bytes, keeping the
    /// first min(old, new) bytes.
    ///
    /// # Safety
    /// `ptr` came from `alloc` or `realloc` of this environment, with size `old`.
    unsafe fn realloc(
        self,
        ptr: NonNull<u8>,
        old: usize,
        new: usize,
    ) -> Result<NonNull<u8>, StateError>;

    /// Frees an allocation.
    ///
    /// # Safety
    /// As `realloc`; `ptr` is not used afterwards.
    unsafe fn free(self, ptr: NonNull<u8>, bytes: usize);

    /// Called every `CHUNK` elements of a long loop; in the server it may raise the ERROR of a
    /// pending cancel or timeout (and so unwind out of the loop).
    fn check_interrupts(self);
}

/// A vector of u64 in an [`Env`]'s memory. Grows by doubling; every growth is fallible.
pub struct Buf<E: Env> {
    ptr: NonNull<u64>,
    len: usize,
    cap: usize,
    env: E,
}

impl<E: Env> Buf<E> {
    pub fn new(env: E) -> Self {
        Buf { ptr: NonNull::dangling(), len: 0, cap: 0, env }
    }

    pub fn with_capacity(env: E, cap: usize) -> Result<Self, StateError> {
        let mut b = Buf::new(env);
        b.grow_to(cap, false)?;
        Ok(b)
    }

    pub fn env(&self) -> E {
        self.env
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Makes room for at least `cap` elements: exactly that many, or (`double`) at least twice
    /// the present capacity.
    fn grow_to(&mut self, cap: usize, double: bool) -> Result<(), StateError> {
        if cap <= self.cap {
            return Ok(());
        }
        let limit = E::MAX_BYTES / 8;
        if cap > limit {
            return Err(StateError::TooLarge);
        }
        let at_least = if double { self.cap.saturating_mul(2).max(4) } else { 0 };
        let new_cap = cap.max(at_least).min(limit);
        let new = if self.cap == 0 {
            self.env.alloc(new_cap * 8)?
        } else {
            // SAFETY: ptr was allocated by this env with cap * 8 bytes.
            unsafe { self.env.realloc(self.ptr.cast(), self.cap * 8, new_cap * 8)? }
        };
        self.ptr = new.cast();
        self.cap = new_cap;
        Ok(())
    }

    /// Makes room for `additional` more elements.
    pub fn reserve(&mut self, additional: usize) -> Result<(), StateError> {
        let needed = self.len.checked_add(additional).ok_or(StateError::TooLarge)?;
        self.grow_to(needed, true)
    }

    /// Makes room for exactly `additional` more elements (no doubling).
    pub fn reserve_exact(&mut self, additional: usize) -> Result<(), StateError> {
        let needed = self.len.checked_add(additional).ok_or(StateError::TooLarge)?;
        self.grow_to(needed, false)
    }

    #[inline]
    pub fn push(&mut self, v: u64) -> Result<(), StateError> {
        if self.len == self.cap {
            self.reserve(1)?;
        }
        // SAFETY: len < cap, so the slot is inside the allocation.
        unsafe { self.ptr.as_ptr().add(self.len).write(v) };
        self.len += 1;
        Ok(())
    }

    pub fn extend_from_slice(&mut self, s: &[u64]) -> Result<(), StateError> {
        self.reserve(s.len())?;
        // SAFETY: reserve made room for s.len() elements after len; s cannot overlap our
        // allocation while we hold &mut self.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), self.ptr.as_ptr().add(self.len), s.len())
        };
        self.len += s.len();
        Ok(())
    }

    /// Sets the length to `n`, filling new elements with zero.
    pub fn resize(&mut self, n: usize) -> Result<(), StateError> {
        if n > self.len {
            self.reserve(n - self.len)?;
            // SAFETY: reserve made room for n elements.
            unsafe { self.ptr.as_ptr().add(self.len).write_bytes(0, n - self.len) };
        }
        self.len = n;
        Ok(())
    }

    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// A copy in another environment's memory (combine copies into the aggregate context).
    pub fn copy_in<F: Env>(&self, env: F) -> Result<Buf<F>, StateError> {
        let mut b = Buf::new(env);
        b.extend_from_slice(self)?;
        Ok(b)
    }
}

impl<E: Env> std::ops::Deref for Buf<E> {
    type Target = [u64];
    #[inline]
    fn deref(&self) -> &[u64] {
        // SAFETY: the first len elements are initialized; ptr is dangling but aligned when
        // len is 0, which from_raw_parts allows.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<E: Env> std::ops::DerefMut for Buf<E> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u64] {
        // SAFETY: as for Deref, and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// Frees the array. In the server, a state's arrays are never dropped one by one: the state
/// itself lives in palloc'd memory that is never dropped, and the memory context reset frees
/// everything. Temporary arrays (sort scratch, a state replaced by another) are freed here.
impl<E: Env> Drop for Buf<E> {
    fn drop(&mut self) {
        if self.cap > 0 {
            // SAFETY: allocated by this env with cap * 8 bytes, and not used again.
            unsafe { self.env.free(self.ptr.cast(), self.cap * 8) };
        }
    }
}

impl<E: Env> std::fmt::Debug for Buf<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::alloc::Layout;
    use std::cell::Cell;

    thread_local! {
        /// Interrupt checks made on this thread (tests run on several threads).
        pub static CHECKS: Cell<usize> = const { Cell::new(0) };
    }

    /// The Rust heap through `std::alloc`, which returns null on failure instead of aborting.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct HeapEnv;

    fn layout(bytes: usize) -> Result<Layout, StateError> {
        Layout::from_size_align(bytes, 8).map_err(|_| StateError::TooLarge)
    }

    impl Env for HeapEnv {
        const MAX_BYTES: usize = 0x3fff_ffff;

        fn alloc(self, bytes: usize) -> Result<NonNull<u8>, StateError> {
            // SAFETY: bytes > 0 per the trait's contract.
            NonNull::new(unsafe { std::alloc::alloc(layout(bytes)?) })
                .ok_or(StateError::OutOfMemory)
        }

        unsafe fn realloc(
            self,
            ptr: NonNull<u8>,
            old: usize,
            new: usize,
        ) -> Result<NonNull<u8>, StateError> {
            // SAFETY: per the trait's contract ptr was allocated with layout(old).
            NonNull::new(unsafe { std::alloc::realloc(ptr.as_ptr(), layout(old)?, new) })
                .ok_or(StateError::OutOfMemory)
        }

        unsafe fn free(self, ptr: NonNull<u8>, bytes: usize) {
            if let Ok(l) = layout(bytes) {
                // SAFETY: per the trait's contract.
                unsafe { std::alloc::dealloc(ptr.as_ptr(), l) }
            }
        }

        fn check_interrupts(self) {
            CHECKS.with(|c| c.set(c.get() + 1));
        }
    }

    /// An environment that allows at most 64 elements per array, to test the limit.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct TinyEnv;

    impl Env for TinyEnv {
        const MAX_BYTES: usize = 64 * 8;
        fn alloc(self, bytes: usize) -> Result<NonNull<u8>, StateError> {
            HeapEnv.alloc(bytes)
        }
        unsafe fn realloc(
            self,
            ptr: NonNull<u8>,
            old: usize,
            new: usize,
        ) -> Result<NonNull<u8>, StateError> {
            // SAFETY: forwarded contract.
            unsafe { HeapEnv.realloc(ptr, old, new) }
        }
        unsafe fn free(self, ptr: NonNull<u8>, bytes: usize) {
            // SAFETY: forwarded contract.
            unsafe { HeapEnv.free(ptr, bytes) }
        }
        fn check_interrupts(self) {}
    }

    #[test]
    fn grows_keeps_contents_and_stops_at_the_limit() {
        let mut b = Buf::new(HeapEnv);
        for i in 0..1000 {
            b.push(i).unwrap();
        }
        assert_eq!(b.len(), 1000);
        assert!(b.iter().copied().eq(0..1000));
        b.resize(1003).unwrap();
        assert_eq!(&b[998..], &[998, 999, 0, 0, 0]);
        b.truncate(2);
        assert_eq!(&b[..], &[0, 1]);
        let c = b.copy_in(HeapEnv).unwrap();
        assert_eq!(&c[..], &[0, 1]);

        let mut t = Buf::new(TinyEnv);
        for i in 0..64 {
            t.push(i).unwrap();
        }
        assert_eq!(t.push(64), Err(StateError::TooLarge));
        assert_eq!(t.len(), 64);
        assert_eq!(Buf::with_capacity(TinyEnv, 65).err(), Some(StateError::TooLarge));
    }
}
