//! The k-aggregates' state type, `deident.k_state` (issue 11): between rows a state is an
//! expanded object in memory, and whenever PostgreSQL flattens it (a parallel worker's tuple
//! to its leader, Citus's `worker_partial_agg` rendering it as text, a value stored) it is
//! sealed (seal.rs), so that no partial state can be read or forged outside the aggregates.
//!
//! **Why an expanded object** (PostgreSQL's src/include/utils/expandeddatum.h): a transition
//! function that returns a read-write expanded datum whose memory context is a child of the
//! aggregate context has it adopted by nodeAgg without a copy (nodeAgg.c,
//! `ExecAggTransReparent`; Citus's `HandleTransition` does the same), and it is handed back as
//! the next row's state, so a row costs what it cost with `internal`: no flattening, no
//! sealing. The states of one aggregate context live in one memory context under it
//! (`states_context` says why one, not one each), freed with the aggregate context.
//!
//! **Flat form** = a varlena holding the sealed bytes: `get_flat_size` and `flatten_into`
//! encode the state (state.rs) and seal it with the active key of the query's ring, as the
//! next state of the process's batch (seal.rs). The type's output function writes those
//! bytes in base64; its input function accepts only bytes sealed by a key of this ring (and
//! that decode), so whatever reaches a support function from SQL was made by one of the
//! aggregates of a server with the same key ring. The k check stays in the final functions.

use std::ffi::c_void;

use pgrx::pg_guard;
use pgrx::pg_sys;

use super::memory::{
    agg_context, palloc_aligned, palloc_value, varlena_datum, Group, PersonType, PgEnv, ValueType,
};
use super::state::{Acc, KState, StateError};
use super::support::state_error;
use crate::dp::aggregates::DpGroup;
use crate::error::{DeidentError, OrReport};
use crate::fmgr::{self, pg_function_info_v1};
use crate::seal::{self, Kind, SealError};
use crate::{guc, keycache};
use zeroize::Zeroize;

/// A state as an expanded object: PostgreSQL's header, then the group; 192 bytes, started at
/// a cache line within a 256-byte chunk, the chunk the group alone took before it had the
/// header. What a row reads lies in the first two lines: the header's pointer and methods
/// (bytes 8-34), the group's types (48-49), the state's cap, rows and persons (56-104), and
/// the accumulator's tag and integer or double sum (104-128); the rest (the numeric sum's
/// second magnitude) is in the third. With rustc's own field order and a 16-byte-aligned i128
/// they spread over four (an interleaved A/B on 1,000,000 rows: parallel k_sum 4% faster,
/// serial plans unchanged; docs/benchmarks.md). A larger alignment that doubled the chunk
/// made a parallel k_sum slower, not faster.
#[repr(C)]
struct Expanded<G> {
    header: pg_sys::ExpandedObjectHeader,
    group: G,
}

/// A cache line of the processors we run on.
const LINE: usize = 64;

/// A family of states that a `deident.k_state` value holds: the k-aggregates' (and
/// dp_count's), memory.rs `Group`, and dp_sum's and dp_avg's (each person's total),
/// dp/aggregates.rs `DpGroup`. In memory the methods of an object tell its family (their
/// address), sealed bytes their kind (seal.rs); each family's functions refuse the other's
/// states. One SQL type for both keeps one set of Citus functions (`_k_partial`,
/// `_k_combine_partials`: partial.rs) for every aggregate pushed down.
pub trait Family: Sized {
    /// The kind its sealed states carry.
    const KIND: Kind;
    /// Its objects' methods: a static, whose address marks them.
    fn methods() -> &'static pg_sys::ExpandedObjectMethods;
    /// A group opened from an encoding (its types unknown: only combined or finalized).
    fn decode(encoding: &[u8], env: PgEnv) -> Result<Self, StateError>;
    /// The encoding's length, and the framed plaintext's (seal.rs `frame`, padded so that the
    /// number of persons of a group below k never shows).
    fn framed_len(&mut self) -> (usize, usize);
    /// Writes the encoding (`framed_len`'s first number of bytes).
    fn encode(&self, out: &mut [u8]);
    /// A copy in `env`'s memory.
    fn copy_in(&self, env: PgEnv) -> Result<Self, StateError>;
    /// Merges another partial state of the same aggregate in; a group opened from sealed bytes
    /// learns the other's types.
    fn merge(&mut self, other: &Self) -> Result<(), StateError>;
    /// Merges the state of an encoding in (sealed bytes just opened); decoded into `env`
    /// first unless the family can do without.
    fn merge_encoding(&mut self, encoding: &[u8], env: PgEnv) -> Result<(), StateError> {
        self.merge(&Self::decode(encoding, env)?)
    }
}

impl Family for Group {
    const KIND: Kind = Kind::KAggregate;

    fn methods() -> &'static pg_sys::ExpandedObjectMethods {
        &K_METHODS
    }

    fn decode(encoding: &[u8], env: PgEnv) -> Result<Group, StateError> {
        KState::decode(encoding, env)
            .map(|state| Group::new(ValueType::None, PersonType::Unknown, state))
    }

    /// Padded as if the state held at least k person hashes (its cap, or the current k for
    /// k_count_distinct's), to a power of two of at least 64 + 8k bytes. So the number of
    /// persons of a group below k never shows in the length, whatever else the state holds (a
    /// second review found that a fixed floor let it show once a numeric sum's digits filled
    /// the floor); what can show is the size class of a numeric sum's positive and negative
    /// parts (together past about 10^50 at k = 5), and, for k_count_distinct at or above k,
    /// the size class of the person count.
    ///
    /// A capped state that is full (it saw `cap` distinct persons, and holds no hashes) with
    /// a cap equal to the current k and a sum of fixed width (every value type but numeric)
    /// is only framed to AES's block (48 bytes for an integer sum): shorter than any state
    /// below k. Its length tells that the rows it was made of have at least k persons: what
    /// the aggregate itself releases of the same rows, and the final function of the state.
    /// It makes the bytes Citus moves for a group of k persons or more in a shard less than
    /// half (docs/sealed-states.md). Not for a state capped below the current k (made at a
    /// lower k: the final function refuses it whether it is full or not, so its length must
    /// not tell), nor above it (made at a higher k: its fullness would tell a count between k
    /// and the cap that the final function does not), nor for a numeric sum, whose positive
    /// and negative parts are encoded apart and would each show in 16-byte steps (the
    /// aggregate releases only their difference); two reviews found each. Those are padded
    /// as below, as if they held max(cap, k) persons.
    fn framed_len(&mut self) -> (usize, usize) {
        let state = &mut self.state;
        let len = state.encoded_len().unwrap_or_else(|e| state_error(e));
        if state.saturated()
            && state.cap() == guc::min_group_size()
            && !matches!(state.acc, Acc::Numeric(_))
        {
            return (len, seal::block_padded_len(len));
        }
        let k = state.cap().max(guc::min_group_size()) as usize;
        (len, seal::padded_as_if_k(len, state.persons_kept(), k, 8))
    }

    fn encode(&self, out: &mut [u8]) {
        self.state.encode(out)
    }

    fn copy_in(&self, env: PgEnv) -> Result<Group, StateError> {
        let copy = Group::new(self.value, self.person, self.state.copy_in(env)?);
        Ok(Group { unpacked: self.unpacked, ..copy })
    }

    fn merge(&mut self, other: &Group) -> Result<(), StateError> {
        self.state.merge(&other.state)?;
        if self.person == PersonType::Unknown {
            (self.value, self.person) = (other.value, other.person);
        }
        Ok(())
    }
}

/// Defines a family's methods, whose address also tells its objects from any other expanded
/// object's.
macro_rules! methods {
    ($methods:ident, $family:ty, $size:ident, $flatten:ident) => {
        static $methods: pg_sys::ExpandedObjectMethods = pg_sys::ExpandedObjectMethods {
            get_flat_size: Some($size),
            flatten_into: Some($flatten),
        };

        /// `get_flat_size`: the varlena header, and the sealed, framed encoding.
        #[pg_guard]
        unsafe extern "C-unwind" fn $size(eoh: *mut pg_sys::ExpandedObjectHeader) -> pg_sys::Size {
            // SAFETY: PostgreSQL calls the methods with the header of one of our objects.
            unsafe { flat_size::<$family>(eoh) }
        }

        /// `flatten_into`: the state sealed after a varlena header.
        #[pg_guard]
        unsafe extern "C-unwind" fn $flatten(
            eoh: *mut pg_sys::ExpandedObjectHeader,
            result: *mut c_void,
            allocated: pg_sys::Size,
        ) {
            // SAFETY: as above; `result` is `allocated` writable bytes.
            unsafe { flatten_into::<$family>(eoh, result, allocated) }
        }
    };
}
methods!(K_METHODS, Group, k_flat_size, k_flatten_into);
methods!(DP_METHODS, DpGroup, dp_flat_size, dp_flatten_into);

/// The methods of dp_sum's and dp_avg's objects (their `Family` impl, dp/aggregates.rs).
pub(crate) fn dp_methods() -> &'static pg_sys::ExpandedObjectMethods {
    &DP_METHODS
}

/// postgres.h: a 1-byte-header external datum (VARATT_IS_1B_E, little-endian) whose tag
/// (VARTAG_EXTERNAL) is an expanded pointer, read-only or read-write.
const VARTAG_EXPANDED_RO: u8 = pg_sys::vartag_external::VARTAG_EXPANDED_RO as u8;
const VARTAG_EXPANDED_RW: u8 = pg_sys::vartag_external::VARTAG_EXPANDED_RW as u8;

/// What a k_state datum is, for a family's functions.
enum Datum<'a, G> {
    /// One of the family's expanded objects, through a read-write pointer or not.
    Object { object: &'a mut Expanded<G>, read_write: bool },
    /// Flat bytes, sealed (from the input function, a table, another process).
    Sealed(&'a [u8]),
}

/// The header of the expanded object a k_state datum points at, and whether the pointer is
/// read-write; None for flat bytes.
///
/// # Safety
/// `d` is a non-NULL datum of type deident.k_state.
#[inline(always)]
unsafe fn object_of(d: pg_sys::Datum) -> Option<(*mut pg_sys::ExpandedObjectHeader, bool)> {
    // SAFETY: a varlena datum: its first byte is readable, and a 1-byte external header is
    // followed by its tag and (for expanded pointers) a varatt_expanded (postgres.h).
    unsafe {
        let p = d.cast_mut_ptr::<u8>();
        if cfg!(target_endian = "little") && p.read() == 0x01 {
            let tag = p.add(1).read();
            if tag == VARTAG_EXPANDED_RW || tag == VARTAG_EXPANDED_RO {
                let eoh = p.add(2).cast::<*mut pg_sys::ExpandedObjectHeader>().read_unaligned();
                return Some((eoh, tag == VARTAG_EXPANDED_RW));
            }
        }
        None
    }
}

/// Reads a non-NULL k_state datum as a state of family `G`.
///
/// # Safety
/// `d` is a non-NULL datum of type deident.k_state, which lives through the caller's use.
#[inline(always)]
unsafe fn classify<'a, G: Family>(d: pg_sys::Datum) -> Datum<'a, G> {
    // SAFETY: per the contract.
    unsafe {
        match object_of(d) {
            Some((eoh, read_write)) => {
                if !std::ptr::eq((*eoh).eoh_methods, G::methods()) {
                    // A k_state value is made by our functions only; another family's object
                    // (or another type's) here is a declaration gone wrong.
                    DeidentError::NotOurState.report();
                }
                Datum::Object { object: &mut *eoh.cast::<Expanded<G>>(), read_write }
            }
            None => Datum::Sealed(flat_bytes(d.cast_mut_ptr())),
        }
    }
}

/// The bytes of a flat k_state datum, which must be sealed ones. The mark is checked before
/// the varlena header is trusted: a superuser's aggregate can hand the `internal`
/// declarations (0.1.0's, until the extension is updated) another aggregate's state, and that
/// must become an ERROR, not a read of a length taken from a struct.
///
/// # Safety
/// `p` points at a varlena, or at an `internal` state of at least 8 bytes.
#[cold]
#[inline(never)]
unsafe fn flat_bytes<'a>(p: *mut u8) -> &'a [u8] {
    // SAFETY: per the contract; 4 or 1 header bytes, then at least 4 more when the length
    // says so.
    unsafe {
        let h = p.read();
        let data = if h & 0x03 == 0x00 {
            let len = p.cast::<u32>().read_unaligned() >> 2;
            if len < 8 {
                sealed_error(SealError::NotSealed);
            }
            Some(p.add(4))
        } else if h & 0x01 == 0x01 && h != 0x01 {
            if h >> 1 < 5 {
                sealed_error(SealError::NotSealed);
            }
            Some(p.add(1))
        } else {
            None // compressed or external: detoasted first, then checked
        };
        if let Some(data) = data {
            if std::slice::from_raw_parts(data, 4) != seal::MAGIC {
                sealed_error(SealError::NotSealed);
            }
        }
        let bytes = fmgr::datum_bytes(pg_sys::Datum::from(p));
        if !bytes.starts_with(&seal::MAGIC) {
            sealed_error(SealError::NotSealed);
        }
        bytes
    }
}

/// The name of the memory context that holds the states of one aggregate context; its
/// address (a static) marks the context as ours.
static STATES: &std::ffi::CStr = c"deident k_states";

/// The context under the aggregate context `cx` that holds its states: found among `cx`'s
/// children, or made. One context for all of them rather than one each, because the hash
/// aggregate measures its memory, children included, every time it adds a group (nodeAgg.c,
/// `hash_agg_check_limits`, `MemoryContextMemAllocated(..., true)`): with a context per
/// state that walk grew with the groups, quadratic over a query (measured: 1,000 groups in each
/// of 32 Citus shards spent about a third of the workers' time there).
///
/// Sharing is sound because PostgreSQL deletes or moves a read-write expanded state only when
/// a transition or combine function returns a different pointer than the state it was given
/// (nodeAgg.c `ExecAggTransReparent`, nodeWindowAgg.c, Citus's `HandleTransition`), and ours
/// never do: `update_arg` keeps the read-write object it is given. PL/pgSQL, the one caller
/// that takes over read-write objects, could receive one of ours read-write as a moving
/// window aggregate's inverse function (a review crashed the server that way: window
/// aggregates are now refused before they make a state, memory.rs `agg_context`), or as the
/// final function of an aggregate combined by Citus's `coord_combine_agg` (a second review:
/// such states get a context each, `Placement::Own`); PostgreSQL itself hands final functions
/// read-only pointers.
///
/// # Safety
/// `cx` is a valid memory context.
unsafe fn states_context(cx: pg_sys::MemoryContext) -> pg_sys::MemoryContext {
    // SAFETY: the children of a valid context are valid contexts, linked through nextchild;
    // AllocSetContextCreateInternal makes one under `cx` (or raises an ERROR), and keeps the
    // name pointer, which is a static.
    unsafe {
        let mut c = (*cx).firstchild;
        while !c.is_null() {
            if std::ptr::eq((*c).name, STATES.as_ptr()) {
                return c;
            }
            c = (*c).nextchild;
        }
        // ALLOCSET_DEFAULT_SIZES (memutils.h)
        pg_sys::AllocSetContextCreateInternal(cx, STATES.as_ptr(), 0, 8 * 1024, 8 * 1024 * 1024)
    }
}

/// Where a new state's memory goes.
#[derive(Clone, Copy, PartialEq)]
pub enum Placement {
    /// The states' context shared by the aggregate context (`states_context`).
    Shared,
    /// A small context of its own, under the aggregate context: for a combine function called
    /// without a call expression, i.e. by a wrapper such as Citus's `coord_combine_agg`, whose
    /// final step (`coord_combine_agg_ffunc`) hands the live state read-write to the
    /// aggregate's final function, which may be a user's PL/pgSQL function that takes it over
    /// (a second review crashed the server that way with the shared context). Taking over one
    /// object then moves only that object.
    Own,
}

/// The placement for states made by the combine function of this call.
///
/// # Safety
/// `fcinfo` is fmgr's call info.
pub unsafe fn combine_placement(fcinfo: pg_sys::FunctionCallInfo) -> Placement {
    // SAFETY: per the contract; nodeAgg and nodeWindowAgg always give their support functions
    // a call expression (fn_expr), Citus's wrappers never do.
    if unsafe { (*(*fcinfo).flinfo).fn_expr.is_null() } {
        Placement::Own
    } else {
        Placement::Shared
    }
}

/// A new object for a group (made by `make` in the object's memory), in the states' context
/// under `parent`, or in a context of its own there.
///
/// # Safety
/// `parent` is a valid memory context (the aggregate context, for a transition state).
pub unsafe fn new_object<'a, G: Family>(
    parent: pg_sys::MemoryContext,
    placement: Placement,
    make: impl FnOnce(PgEnv) -> G,
) -> &'a mut G {
    // SAFETY: per the contract; the object lives in cx until cx is reset or deleted with its
    // parent, after the last call that uses the state. AllocSetContextCreateInternal makes a
    // context under `parent` (or raises an ERROR) and keeps the static name;
    // ALLOCSET_SMALL_SIZES (memutils.h) for a context of one state.
    unsafe {
        let cx = match placement {
            Placement::Shared => states_context(parent),
            Placement::Own => pg_sys::AllocSetContextCreateInternal(
                parent,
                c"deident k_state".as_ptr(),
                0,
                1024,
                8 * 1024,
            ),
        };
        let group = make(PgEnv(cx));
        // At a cache line's start: what a row reads of the header and of the group then lies
        // in the object's first two lines (`Expanded`), within the same 256-byte AllocSet
        // chunk (the test below).
        let object = palloc_aligned(cx, Expanded { header: std::mem::zeroed(), group }, LINE);
        pg_sys::EOH_init_header(&raw mut (*object).header, G::methods(), cx);
        &mut (*object).group
    }
}

/// The read-write datum of the object holding `group` (made by `new_object`).
pub fn rw_datum<G: Family>(group: &mut G) -> pg_sys::Datum {
    // SAFETY: every group handed out as a transition state lives in an Expanded (new_object),
    // after the header; the header's rw pointer is the datum EOHPGetRWDatum gives.
    unsafe {
        let object = (group as *mut G)
            .cast::<u8>()
            .sub(std::mem::offset_of!(Expanded<G>, group))
            .cast::<Expanded<G>>();
        pg_sys::Datum::from((*object).header.eoh_rw_ptr.as_mut_ptr())
    }
}

/// Opens sealed bytes and hands their encoding to `read` (scratch plaintext, wiped and freed
/// after: the persons' hashes need not outlive it).
fn open_with<G: Family, R>(bytes: &[u8], read: impl FnOnce(&[u8]) -> Result<R, StateError>) -> R {
    let id = seal::key_id(bytes, G::KIND).unwrap_or_else(|e| sealed_error(e));
    let key = keycache::seal_key(id).unwrap_or_else(|e| match e {
        DeidentError::UnknownKeyId { .. } => sealed_error(SealError::UnknownKey),
        e => e.report(),
    });
    let len = seal::plain_len(bytes, G::KIND).unwrap_or_else(|e| sealed_error(e));
    let mut small = [0u8; STACK_SCRATCH];
    let plain = Scratch::new(&mut small, len);
    seal::open(&key, G::KIND, bytes, plain.bytes).unwrap_or_else(|e| sealed_error(e));
    let result = match seal::unframe(plain.bytes) {
        Some(encoding) => read(encoding),
        None => Err(StateError::Malformed),
    };
    drop(plain);
    result.unwrap_or_else(|e| state_error(e))
}

/// The most bytes of a sealed state or its plaintext that scratch on the stack takes (a
/// Citus coordinator opens, and each worker seals, a state per shard and group: 101 sealed
/// bytes for a full one, 181 for one below k at k = 5), sparing two calls into PostgreSQL
/// (palloc, pfree) per state; anything larger goes to palloc'd scratch.
const STACK_SCRATCH: usize = 256;

/// Scratch for a state's plaintext or sealed bytes (`open_with`, `with_sealed`): the caller's
/// array on the stack when `len` fits in it, else palloc'd in the current memory context and
/// freed when dropped. Wiped when dropped, also when an ERROR unwinds through the frame that
/// holds it, unless it holds ciphertext only (`sealed`); only the bytes in use: `zeroize`
/// writes them one by one, which costs more than AES-GCM for a whole scratch array.
struct Scratch<'a> {
    bytes: &'a mut [u8],
    heap: Option<*mut u8>,
    wipe: bool,
}

impl<'a> Scratch<'a> {
    fn new(small: &'a mut [u8; STACK_SCRATCH], len: usize) -> Scratch<'a> {
        if len <= STACK_SCRATCH {
            return Scratch { bytes: &mut small[..len], heap: None, wipe: true };
        }
        // SAFETY: palloc returns `len` bytes (or raises an ERROR), a slice while this lives;
        // its users write them all before they read any.
        unsafe {
            let p = pg_sys::palloc(len).cast::<u8>();
            Scratch { bytes: std::slice::from_raw_parts_mut(p, len), heap: Some(p), wipe: true }
        }
    }

    /// The bytes hold ciphertext only from now on: nothing to wipe.
    fn sealed(&mut self) {
        self.wipe = false;
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        if self.wipe {
            self.bytes.zeroize();
        }
        // Freed on a normal return; an ERROR that unwinds through here resets the context,
        // and nothing calls into PostgreSQL while it unwinds.
        if let Some(p) = self.heap.filter(|_| !std::thread::panicking()) {
            // SAFETY: palloc'd in `new`, not referenced after this.
            unsafe { pg_sys::pfree(p.cast()) };
        }
    }
}

/// Opens sealed bytes: the group they hold, decoded into `env`.
fn open<G: Family>(bytes: &[u8], env: PgEnv) -> G {
    open_with::<G, G>(bytes, |encoding| G::decode(encoding, env))
}

/// The statement (and fork) count that names this process's sealing batch (`batch`).
static EPOCH: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// When the executor starts a statement: its states are sealed in a batch of their own, so
/// that a batch's salt and count tell nothing about another statement's states (a role's
/// after another role's in one session, as a connection pool runs them).
pub fn new_batch() {
    EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// In a child forked from this process without PostgreSQL's process start (MyProcPid stays
/// the parent's): the child seals in batches of its own, never continuing the parent's
/// count under the parent's salt. Registered with pthread_atfork once, when the library is
/// loaded (`register_fork_handler`).
extern "C" fn forked_child() {
    new_batch();
}

/// Registers `forked_child` (the library's load, in the postmaster).
pub fn register_fork_handler() {
    // SAFETY: pthread_atfork with a child handler that only adds to an atomic.
    let rc = unsafe { libc::pthread_atfork(None, None, Some(forked_child)) };
    if rc != 0 {
        pgrx::error!("pg_deident: pthread_atfork failed ({rc})");
    }
}

/// The name of the batch this process seals in now (seal.rs): its process id and the count
/// of statements and forks, so that a new statement or a forked child starts a new batch.
fn batch() -> u64 {
    // SAFETY: a read of PostgreSQL's global, set when the process started.
    let pid = unsafe { pg_sys::MyProcPid } as u32;
    (u64::from(pid) << 32) | u64::from(EPOCH.load(std::sync::atomic::Ordering::Relaxed))
}

fn sealed_error(e: SealError) -> ! {
    match e {
        SealError::Random => DeidentError::DpRandom.report(),
        e => DeidentError::SealedState(e).report(),
    }
}

/// Argument `n` as a group to read (a final function's, or a combine function's second), None
/// when NULL. Sealed bytes are opened into a group in the current memory context.
///
/// # Safety
/// Argument `n` is a k_state or NULL.
pub unsafe fn read_arg<'a, G: Family>(
    fcinfo: pg_sys::FunctionCallInfo,
    n: usize,
) -> Option<&'a mut G> {
    // SAFETY: per the contract.
    unsafe {
        if fmgr::arg_is_null(fcinfo, n) {
            return None;
        }
        match classify::<G>(fmgr::arg(fcinfo, n)) {
            Datum::Object { object, .. } => Some(&mut object.group),
            Datum::Sealed(bytes) => {
                let env = PgEnv(pg_sys::CurrentMemoryContext);
                Some(&mut *palloc_value(env.0, open::<G>(bytes, env)))
            }
        }
    }
}

/// Merges argument `n` (a state of the same family, or NULL: nothing) into `into`: an object's
/// group, or the state of sealed bytes opened in the current (per-tuple) memory context.
///
/// # Safety
/// Argument `n` is a k_state or NULL.
pub unsafe fn merge_arg<G: Family>(fcinfo: pg_sys::FunctionCallInfo, n: usize, into: &mut G) {
    // SAFETY: per the contract.
    unsafe {
        if fmgr::arg_is_null(fcinfo, n) {
            return;
        }
        match classify::<G>(fmgr::arg(fcinfo, n)) {
            Datum::Object { object, .. } => {
                into.merge(&object.group).unwrap_or_else(|e| state_error(e));
            }
            Datum::Sealed(bytes) => {
                let env = PgEnv(pg_sys::CurrentMemoryContext);
                open_with::<G, ()>(bytes, |encoding| into.merge_encoding(encoding, env));
            }
        }
    }
}

/// Argument 0 of a transition or combine function as the state to update, None when NULL:
/// the object itself when it is ours to change (a read-write pointer, as every state we
/// return is); otherwise a new object holding a copy or the opened state (`copy_arg`), which
/// the caller returns and nodeAgg adopts in place of the old value.
///
/// The read-write case is every row's, so it asks nothing of the executor: a read-write
/// pointer to one of our objects exists only as the transition value of the aggregate that
/// made it (nodeAgg hands final functions and partial results read-only pointers:
/// `finalize_aggregate`, `finalize_partialaggregate`), and a support function called from SQL
/// can only be given a flat or read-only value, for which the aggregate context is checked.
///
/// # Safety
/// Argument 0 is a k_state or NULL.
#[inline]
pub unsafe fn update_arg<'a, G: Family>(
    fcinfo: pg_sys::FunctionCallInfo,
    placement: Placement,
) -> Option<&'a mut G> {
    // SAFETY: per the contract.
    unsafe {
        if fmgr::arg_is_null(fcinfo, 0) {
            return None;
        }
        let d = fmgr::arg(fcinfo, 0);
        if let Some(object) = own_rw_object::<G>(d) {
            return Some(&mut (*object).group);
        }
        match classify(d) {
            Datum::Object { object, read_write: true } => Some(&mut object.group),
            other => Some(copy_of(fcinfo, other, placement)),
        }
    }
}

/// Every row's case of `update_arg`: `d` is the read-write pointer that the header of one of
/// the family's objects holds, so the object is where the pointer's own address says. The
/// address is computed from the datum, not read through it, and only compared with the
/// pointer the datum holds: the loads of the group's fields need not wait for the load of
/// the pointer, as they must when the object's address is that pointer (with `internal`
/// states a row's first loads were the group's own). None otherwise (`classify` decides).
///
/// # Safety
/// `d` is a non-NULL datum of type deident.k_state.
#[inline(always)]
unsafe fn own_rw_object<G: Family>(d: pg_sys::Datum) -> Option<*mut Expanded<G>> {
    let p = d.cast_mut_ptr::<u8>();
    let object = p
        .wrapping_sub(
            std::mem::offset_of!(Expanded<G>, header)
                + std::mem::offset_of!(pg_sys::ExpandedObjectHeader, eoh_rw_ptr),
        )
        .cast::<Expanded<G>>();
    // SAFETY: per the contract; `object` is read only once the datum has been found to be
    // the read-write pointer held by the header at that address.
    unsafe {
        match object_of(d) {
            Some((eoh, true))
                if eoh.cast::<Expanded<G>>() == object
                    && std::ptr::eq((*object).header.eoh_methods, G::methods()) =>
            {
                Some(object)
            }
            _ => None,
        }
    }
}

/// The group of a transition value that is the read-write pointer of one of family `G`'s
/// objects (its header's own), None for anything else that is a k_state datum: another
/// family's object, a read-only pointer, flat bytes.
///
/// # Safety
/// `d` is a non-NULL datum of type deident.k_state that lives through the caller's use.
#[inline(always)]
pub(crate) unsafe fn rw_group<'a, G: Family>(d: pg_sys::Datum) -> Option<&'a mut G> {
    // SAFETY: per the contract; own_rw_object checks the header before it is trusted.
    unsafe { own_rw_object::<G>(d).map(|object| &mut (*object).group) }
}

/// Argument `n` as a new object of this aggregate's, None when NULL: a copy of an object
/// (a read-only pointer), or the state of sealed bytes opened straight into it (an initial
/// value, a partial state from another process).
///
/// # Safety
/// Argument `n` is a k_state or NULL.
pub unsafe fn copy_arg<'a, G: Family>(
    fcinfo: pg_sys::FunctionCallInfo,
    n: usize,
    placement: Placement,
) -> Option<&'a mut G> {
    // SAFETY: per the contract.
    unsafe {
        if fmgr::arg_is_null(fcinfo, n) {
            return None;
        }
        Some(copy_of(fcinfo, classify(fmgr::arg(fcinfo, n)), placement))
    }
}

/// A new object in the aggregate context, holding what `datum` holds.
///
/// # Safety
/// `fcinfo` is a support function's call info; `datum` is one of its arguments.
unsafe fn copy_of<'a, G: Family>(
    fcinfo: pg_sys::FunctionCallInfo,
    datum: Datum<'_, G>,
    placement: Placement,
) -> &'a mut G {
    // SAFETY: per the contract.
    unsafe {
        let cx = agg_context(fcinfo);
        match datum {
            Datum::Object { object, .. } => {
                let g = &object.group;
                new_object(cx, placement, |env| g.copy_in(env).unwrap_or_else(|e| state_error(e)))
            }
            Datum::Sealed(bytes) => new_object(cx, placement, |env| open::<G>(bytes, env)),
        }
    }
}

/// A state datum of an aggregate's own (a transition value: nodeAgg's hash table, dp's
/// admission.rs) as its group; None for a NULL pointer.
///
/// # Safety
/// `d` is a transition value of one of the aggregates, or NULL.
pub unsafe fn state_datum<'a, G: Family>(d: pg_sys::Datum) -> Option<&'a mut G> {
    if d.is_null() {
        return None;
    }
    // SAFETY: per the contract.
    match unsafe { classify::<G>(d) } {
        Datum::Object { object, .. } => Some(&mut object.group),
        Datum::Sealed(_) => DeidentError::NotOurState.report(),
    }
}

/// What identifies a state, whichever pointer to it `d` holds: an expanded object's address
/// (the hash table of an aggregate holds its read-write pointer, a final function gets the
/// read-only one: nodeAgg.c, `finalize_aggregate`), or the flat datum's.
///
/// # Safety
/// `d` is a non-NULL k_state datum.
pub unsafe fn identity(d: pg_sys::Datum) -> usize {
    // SAFETY: per the contract.
    match unsafe { object_of(d) } {
        Some((eoh, _)) => eoh as usize,
        None => d.value(),
    }
}

/// A k_state datum as a flat, sealed varlena (a copy in the current memory context when it
/// was an expanded object).
///
/// # Safety
/// `d` is a non-NULL k_state datum.
pub unsafe fn sealed_copy(d: pg_sys::Datum) -> pg_sys::Datum {
    // SAFETY: per the contract; pg_detoast_datum flattens an expanded datum into a palloc'd
    // copy (detoast.c), through our flatten_into.
    unsafe {
        match object_of(d) {
            Some(_) => pg_sys::Datum::from(pg_sys::pg_detoast_datum(d.cast_mut_ptr())),
            None => {
                let bytes = flat_bytes(d.cast_mut_ptr());
                varlena_datum(bytes.len(), |out| out.copy_from_slice(bytes))
            }
        }
    }
}

/// The sealing key for flattening: the active key of the query's ring.
fn sealing_key() -> std::rc::Rc<seal::SealKey> {
    keycache::seal_key(b"").or_report()
}

/// A group's sealed size under `key`, with its encoding's length and its framed plaintext's.
fn sealed_size<G: Family>(group: &mut G, key: &seal::SealKey) -> (usize, usize, usize) {
    let (len, plain) = group.framed_len();
    (seal::sealed_len(key.id().len(), plain), len, plain)
}

/// Writes the group's framed encoding where the ciphertext goes in `out` and seals it there
/// (`out` is `sealed_size`'s first number of bytes, `len` and `plain` its others).
fn seal_state<G: Family>(
    group: &G,
    key: &seal::SealKey,
    (len, plain): (usize, usize),
    out: &mut [u8],
) {
    let body = &mut out[seal::body_range(key.id().len(), plain)];
    group.encode(&mut body[seal::FRAME..seal::FRAME + len]);
    seal::frame(body, len);
    seal::seal_in_place(key, G::KIND, batch(), out).unwrap_or_else(|e| sealed_error(e));
}

/// `get_flat_size`'s body: the varlena header, and the sealed, framed encoding of the state.
///
/// # Safety
/// `eoh` is the header of one of family `G`'s objects.
unsafe fn flat_size<G: Family>(eoh: *mut pg_sys::ExpandedObjectHeader) -> pg_sys::Size {
    // SAFETY: per the contract.
    let object = unsafe { &mut *eoh.cast::<Expanded<G>>() };
    pg_sys::VARHDRSZ + sealed_size(&mut object.group, &sealing_key()).0
}

/// `flatten_into`'s body: the state sealed (`seal_state`) after a varlena header.
///
/// # Safety
/// As `flat_size`'s; `result` is `allocated` writable bytes, the size it returned.
unsafe fn flatten_into<G: Family>(
    eoh: *mut pg_sys::ExpandedObjectHeader,
    result: *mut c_void,
    allocated: pg_sys::Size,
) {
    // SAFETY: per the contract.
    let object = unsafe { &mut *eoh.cast::<Expanded<G>>() };
    let group = &mut object.group;
    let key = sealing_key();
    let (sealed, len, plain) = sealed_size(group, &key);
    let size = pg_sys::VARHDRSZ + sealed;
    if size != allocated {
        // The ring cannot change between the two calls (one query keeps one ring), nor k (a
        // setting changes between statements), and the encoding's length is fixed once the
        // persons are compacted.
        pgrx::error!("pg_deident: k_state flattened into {allocated} bytes, needs {size}");
    }
    // SAFETY: see above; the header is written first, then the bytes after it are filled.
    unsafe {
        pgrx::varlena::set_varsize_4b(result.cast(), size as i32);
        let out = std::slice::from_raw_parts_mut(result.cast::<u8>().add(pg_sys::VARHDRSZ), sealed);
        seal_state(group, &key, (len, plain), out);
    }
}

/// The sealed bytes of a state's text (base64), decoded straight into a new varlena in the
/// current memory context: the value and its bytes. Not yet opened or checked.
fn decode_text<'a>(text: &[u8]) -> (pg_sys::Datum, &'a [u8]) {
    // a varlena of the text's length (more than its bytes decode to), its length set to what
    // decoded
    let value = varlena_datum(text.len(), |_| ());
    // SAFETY: varlena_datum allocated VARHDRSZ + text.len() bytes at `value`, set as its
    // length; the length is lowered to the decoded bytes' before anything reads it.
    unsafe {
        let ptr = value.cast_mut_ptr::<pg_sys::varlena>();
        let data = std::slice::from_raw_parts_mut(
            pgrx::varlena::vardata_4b(ptr).cast::<u8>().cast_mut(),
            text.len(),
        );
        // Whitespace is skipped, as PostgreSQL's decode(..., 'base64') does: its encode
        // breaks lines every 76 characters. (A state from Citus has none: decoded as it is.)
        let n = base64_decode(text, data)
            .or_else(|| {
                let spaced = text.iter().any(|b| b.is_ascii_whitespace());
                let compact: Vec<u8> =
                    text.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
                spaced.then(|| base64_decode(&compact, data)).flatten()
            })
            .unwrap_or_else(|| sealed_error(SealError::NotSealed));
        pgrx::varlena::set_varsize_4b(ptr, (pg_sys::VARHDRSZ + n) as i32);
        (value, &data[..n])
    }
}

/// Standard base64 (RFC 4648, padded) decoded into `out`: the number of bytes, or None for
/// anything else, or when `out` is too short.
fn base64_decode(text: &[u8], out: &mut [u8]) -> Option<usize> {
    let n = base64_simd::STANDARD.decoded_length(text).ok()?;
    let out = out.get_mut(..n)?;
    base64_simd::STANDARD.decode(text, base64_simd::Out::from_slice(out)).ok().map(|d| d.len())
}

/// Combines the state of a text (base64 of sealed bytes, as `_k_state_in` reads it) into the
/// transition state in argument 0, or makes it the group's first state: what Citus's
/// `coord_combine_agg` does with the input and combine functions, which open each state twice
/// (the input function to check it, the combine function to read it), in one opening. The
/// sealed bytes are decoded and opened in the current (per-tuple) memory context.
///
/// # Safety
/// `fcinfo` is a transition call inside an aggregate whose argument 0 is a k_state or NULL.
pub unsafe fn combine_text<G: Family>(
    fcinfo: pg_sys::FunctionCallInfo,
    text: &[u8],
) -> pg_sys::Datum {
    // A state from Citus, decoded on the stack (no whitespace: `decode_text` otherwise).
    let mut sealed = [0u8; STACK_SCRATCH];
    let small = base64_decode(text, &mut sealed);
    // SAFETY: per the contract.
    unsafe {
        let bytes = match small {
            Some(n) => &sealed[..n],
            None => decode_text(text).1,
        };
        let env = PgEnv(pg_sys::CurrentMemoryContext);
        match update_arg::<G>(fcinfo, Placement::Shared) {
            Some(a) => {
                open_with::<G, ()>(bytes, |encoding| a.merge_encoding(encoding, env));
                rw_datum(a)
            }
            None => {
                let cx = agg_context(fcinfo);
                rw_datum(new_object(cx, Placement::Shared, |env| open::<G>(bytes, env)))
            }
        }
    }
}

/// `_k_state_in(cstring) RETURNS deident.k_state`: base64 of sealed bytes, accepted only if
/// a key of this ring sealed them and they decode as a state of the kind they name; the
/// value is the sealed bytes.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_state_in(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the strict input function; argument 0 is a C string.
    let text = unsafe { std::ffi::CStr::from_ptr(fmgr::arg(fcinfo, 0).cast_mut_ptr()) }.to_bytes();
    let (value, bytes) = decode_text(text);
    // SAFETY: a plain read of the current context, which holds the check's scratch.
    let env = PgEnv(unsafe { pg_sys::CurrentMemoryContext });
    match seal::kind_of(bytes) {
        Kind::KAggregate => drop(open::<Group>(bytes, env)),
        Kind::DpAggregate => drop(open::<DpGroup>(bytes, env)),
    }
    value
}
pg_function_info_v1!(pg_finfo_deident_k_state_in);

/// A family's object sealed into scratch memory, and `write` given the bytes (ciphertext:
/// nothing to wipe after; the framed encoding is written there first, so the scratch is
/// wiped if an ERROR unwinds before it is sealed).
fn with_sealed<G: Family, R>(group: &mut G, write: impl FnOnce(&[u8]) -> R) -> R {
    let key = sealing_key();
    let (sealed, len, plain) = sealed_size(group, &key);
    let mut small = [0u8; STACK_SCRATCH];
    let mut out = Scratch::new(&mut small, sealed);
    seal_state(group, &key, (len, plain), out.bytes);
    out.sealed();
    write(out.bytes)
}

/// Sealed bytes as a C string of their base64, in the current memory context.
fn base64_cstring(sealed: &[u8]) -> pg_sys::Datum {
    let n = base64_simd::STANDARD.encoded_length(sealed.len());
    // SAFETY: palloc'd n + 1 bytes, filled by the encoder (exactly n: encoded_length) and
    // NUL-terminated; base64 has no NUL.
    unsafe {
        let out = pg_sys::palloc(n + 1).cast::<u8>();
        let slice = std::slice::from_raw_parts_mut(out, n);
        let written = base64_simd::STANDARD.encode(sealed, base64_simd::Out::from_slice(slice));
        if written.len() != n {
            pgrx::error!("pg_deident: base64 of a sealed state: {} of {n} bytes", written.len());
        }
        out.add(n).write(0);
        pg_sys::Datum::from(out)
    }
}

/// A group's state as the output function gives it: sealed, in base64 (a C string).
pub(crate) fn group_text<G: Family>(group: &mut G) -> pg_sys::Datum {
    with_sealed(group, base64_cstring)
}

/// A non-NULL k_state datum as the output function gives it (an object of either family,
/// told by its methods, sealed first into scratch memory; flat bytes as they are).
///
/// # Safety
/// `d` is a non-NULL k_state datum.
pub(crate) unsafe fn state_text(d: pg_sys::Datum) -> pg_sys::Datum {
    // SAFETY: per the contract.
    unsafe {
        match object_of(d) {
            None => base64_cstring(flat_bytes(d.cast_mut_ptr())),
            Some((eoh, _)) if std::ptr::eq((*eoh).eoh_methods, dp_methods()) => {
                group_text(&mut (*eoh.cast::<Expanded<DpGroup>>()).group)
            }
            Some((eoh, _)) if std::ptr::eq((*eoh).eoh_methods, &K_METHODS) => {
                group_text(&mut (*eoh.cast::<Expanded<Group>>()).group)
            }
            Some(_) => DeidentError::NotOurState.report(),
        }
    }
}

/// `_k_state_out(deident.k_state) RETURNS cstring`: the sealed bytes in base64 (an expanded
/// state is sealed first, into scratch memory freed after).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_k_state_out(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr's call info of the strict output function; argument 0 is a k_state.
    unsafe { state_text(fmgr::arg(fcinfo, 0)) }
}
pg_function_info_v1!(pg_finfo_deident_k_state_out);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_fits_the_chunk_the_group_alone_took() {
        // new_object asks palloc_aligned for size + LINE - 1 bytes; AllocSet rounds small
        // requests up to a power of two: 256 bytes, as for the group without the header
        const { assert!(std::mem::size_of::<Expanded<Group>>() + LINE - 1 <= 256) };
        assert_eq!(std::mem::align_of::<Expanded<Group>>(), 8);
    }

    #[test]
    fn what_a_row_reads_is_in_the_first_two_cache_lines() {
        use std::mem::offset_of;
        assert_eq!(offset_of!(Expanded<Group>, header), 0);
        let state = offset_of!(Expanded<Group>, group) + offset_of!(Group, state);
        assert_eq!(offset_of!(Expanded<Group>, group), 48);
        assert_eq!(state, 56);
        // the accumulator's tag and first 16 bytes (an integer or double sum) end the second
        assert!(state + offset_of!(KState<PgEnv>, acc) + 24 <= 2 * LINE);
    }
}
