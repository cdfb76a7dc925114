//! The key ring a parallel query agrees on.
//!
//! A parallel worker is a process of its own: it reads the key file itself, possibly after the
//! leader did, and the file may have changed in between (a rotation). So that one statement
//! never mixes pseudonyms from two rings, the leader publishes, before its workers start, the
//! identity of the ring it uses for the statement (`RingId`, a digest; never key bytes) in a
//! slot of shared memory, and each worker checks that the ring it read is the same one, or
//! fails the statement. The slot is the leader's: indexed by its `pgprocno` (a worker finds
//! its leader through `MyProc->lockGroupLeader`, which parallel.c sets for every worker), and
//! tagged with the statement's start timestamps, which parallel.c copies to the workers
//! (`SetParallelStartTimestamps`).
//!
//! Size: one slot (56 bytes) per backend slot (MaxBackends), requested while the library is
//! preloaded. A slot is written by its leader and read by the leader's workers; a tiny
//! spinlock (an atomic flag) makes its fields consistent. A process that dies holding it can
//! only be a crash, which reinitializes shared memory.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, Ordering};

use pgrx::pg_sys;

/// SHA-256 over the ring's ids and keys and the active key's index (see `ring_id`): equal
/// ids mean the same keys under the same ids, with the same active key.
pub type RingId = [u8; 32];

/// The statement as the leader and its workers all see it: the transaction's and the
/// statement's start timestamps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Statement {
    xact: i64,
    stmt: i64,
}

/// All zero bytes (as shared memory starts) is a valid slot: unlocked, no statement, no ring.
#[repr(C)]
struct Slot {
    lock: AtomicU32,
    /// False: the leader has no usable ring for the statement.
    has_ring: UnsafeCell<bool>,
    /// Two rings were published for the statement: no worker of it may go on.
    poisoned: UnsafeCell<bool>,
    statement: UnsafeCell<Statement>,
    ring: UnsafeCell<RingId>,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 56);

static mut SLOTS: *mut Slot = std::ptr::null_mut();
static mut NSLOTS: usize = 0;

unsafe extern "C" {
    // Read without pgrx's guard: they only read a variable of xact.c and cannot raise an error.
    fn GetCurrentTransactionStartTimestamp() -> i64;
    fn GetCurrentStatementStartTimestamp() -> i64;
}

impl Statement {
    pub fn current() -> Statement {
        // SAFETY: plain reads of xact.c's timestamps (see above).
        unsafe {
            Statement {
                xact: GetCurrentTransactionStartTimestamp(),
                stmt: GetCurrentStatementStartTimestamp(),
            }
        }
    }
}

/// The current statement's start timestamp (an unguarded call: a few nanoseconds).
#[inline]
pub fn statement_start() -> i64 {
    // SAFETY: as above.
    unsafe { GetCurrentStatementStartTimestamp() }
}

fn slots_wanted() -> usize {
    // SAFETY: read while preloading (13, 14) or in shmem_request_hook (15+); see `request`.
    unsafe {
        #[cfg(any(feature = "pg13", feature = "pg14"))]
        {
            // MaxBackends is not computed yet when 13 and 14 preload libraries (postmaster.c),
            // so it is computed here as InitializeMaxBackends does.
            (pg_sys::MaxConnections
                + pg_sys::autovacuum_max_workers
                + 1
                + pg_sys::max_worker_processes
                + pg_sys::max_wal_senders) as usize
        }
        #[cfg(not(any(feature = "pg13", feature = "pg14")))]
        {
            pg_sys::MaxBackends as usize
        }
    }
}

/// Asks for the slots' shared memory: from `shmem_request_hook` (15+) or `_PG_init` (13, 14).
pub fn request() {
    // SAFETY: called in the postmaster while libraries are preloaded, as PostgreSQL requires.
    unsafe { pg_sys::RequestAddinShmemSpace(slots_wanted() * std::mem::size_of::<Slot>()) }
}

/// Attaches (and, the first time, zeroes) the slots: from `shmem_startup_hook`.
pub fn startup() {
    let n = slots_wanted();
    let size = n * std::mem::size_of::<Slot>();
    let mut found = false;
    // SAFETY: AddinShmemInitLock (lwlocknames.txt: 21) serializes ShmemInitStruct, as the
    // shmem_startup_hook convention asks; the struct is `size` bytes of shared memory, and an
    // all-zero Slot is valid (see `Slot`).
    unsafe {
        let lock = std::ptr::addr_of_mut!((*pg_sys::MainLWLockArray.add(21)).lock);
        pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let ptr = pg_sys::ShmemInitStruct(c"pg_deident key ring slots".as_ptr(), size, &mut found);
        if !found {
            std::ptr::write_bytes(ptr.cast::<u8>(), 0, size);
        }
        pg_sys::LWLockRelease(lock);
        SLOTS = ptr.cast();
        NSLOTS = n;
    }
}

/// The slot of this process's parallel group: its own, or its leader's for a worker.
fn group_slot() -> Option<&'static Slot> {
    // SAFETY: MyProc is set in every backend; lockGroupLeader is set for a parallel worker
    // before it runs anything (parallel.c, `ParallelWorkerMain`, BecomeLockGroupMember) and
    // is NULL or the process itself otherwise; SLOTS holds NSLOTS slots once attached.
    unsafe {
        let me = pg_sys::MyProc;
        if me.is_null() || SLOTS.is_null() {
            return None;
        }
        let leader = if (*me).lockGroupLeader.is_null() { me } else { (*me).lockGroupLeader };
        let index = usize::try_from((*leader).pgprocno).ok()?;
        (index < NSLOTS).then(|| &*SLOTS.add(index))
    }
}

impl Slot {
    fn with<R>(&self, f: impl FnOnce(&mut Statement, &mut bool, &mut bool, &mut RingId) -> R) -> R {
        while self.lock.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held: no other process touches the fields until it is released.
        let result = unsafe {
            f(
                &mut *self.statement.get(),
                &mut *self.has_ring.get(),
                &mut *self.poisoned.get(),
                &mut *self.ring.get(),
            )
        };
        self.lock.store(0, Ordering::Release);
        result
    }
}

// SAFETY: the fields behind UnsafeCell are only touched with the lock held.
unsafe impl Sync for Slot {}

/// The leader: the ring used by the statement about to start its workers.
pub fn publish(ring: Option<RingId>) {
    let statement = Statement::current();
    if let Some(slot) = group_slot() {
        slot.with(|s, has, poisoned, r| {
            if *s == statement && (*poisoned || (*has && Some(*r) != ring)) {
                // Another ring published earlier in this statement (a nested parallel query
                // of another pin): no worker of the statement may go on, early or late.
                *poisoned = true;
                *has = false;
                return;
            }
            *s = statement;
            *poisoned = false;
            *has = ring.is_some();
            *r = ring.unwrap_or_default();
        });
    }
}

/// What a worker finds in its leader's slot.
pub enum Agreement {
    /// The ring it read is the one the leader published for this statement.
    Same,
    /// The leader published another ring for this statement, or none (it could not read one).
    Different,
    /// The leader published nothing for this statement: a parallel operation that does not go
    /// through the executor's ExecutorRun (a parallel index build), or no slot at all.
    Unpublished,
}

/// A worker: is `ring` the one its leader published for this statement?
pub fn agrees(ring: RingId) -> Agreement {
    let statement = Statement::current();
    match group_slot() {
        Some(slot) => slot.with(|s, has, _, r| {
            if *s != statement {
                Agreement::Unpublished
            } else if *has && *r == ring {
                Agreement::Same
            } else {
                Agreement::Different
            }
        }),
        None => Agreement::Unpublished,
    }
}

/// True in a parallel worker.
pub fn in_parallel_worker() -> bool {
    // SAFETY: a plain global of parallel.c, -1 outside parallel workers.
    unsafe { pg_sys::ParallelWorkerNumber >= 0 }
}
