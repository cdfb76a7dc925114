//! The backend's key ring and the domain keys derived from it, fixed for each query.
//!
//! **One ring per query.** The ring a query uses is settled at its first use of a key and then
//! kept for the query's whole life: every later row, every nested query it runs (SPI, PL/pgSQL,
//! triggers, which share their outer query's ring), every FETCH of a cursor over it, every
//! Execute message of a portal (the extended protocol, a JDBC fetch size), and its parallel
//! workers. Settling checks the file (one `stat`, a read only when the file, `deident.key_file`
//! or `deident.active_key` changed) at most once per top-level statement and transaction
//! (`Epoch`); queries of one statement (the SQL of a DO block, say) share one ring, and so do
//! expressions evaluated outside any query (PL/pgSQL assignments). A reload or a rewritten key
//! file therefore takes effect at the next statement, and never in the middle of a query.
//!
//! How a query is followed: the executor hooks (`hooks.rs`) give each QueryDesc a `Pin` when it
//! starts (its outer query's, if it starts while another runs; otherwise the statement's) and
//! make it the current pin while the query runs (ExecutorRun, ExecutorFinish).
//!
//! **Parallel queries**: workers read the file themselves and must find the ring the leader
//! published just before running the query, or fail it (`shared`).
//!
//! **Per call site.** A call site (an FmgrInfo) keeps the domain key it resolved, with the
//! serial number of the ring it came from, in its `fn_extra` (`Site`), so a row costs one
//! comparison of that serial with the running query's and the HMAC, with no lookup of the key
//! id or the domain. Arguments that are constants in the query are not even compared. Key
//! material derived from the raw key instead (`pseudonymize_int`'s AES key schedule) is kept
//! the same way (`KeySite`).
//!
//! **Bounded memory.** Besides the rings in use, the backend keeps at most `MAX_DOMAINS` derived
//! domain keys, for domains of at most `MAX_CACHED_DOMAIN` bytes; nothing longer that a caller
//! passes outlives its statement. Everything lives in thread_locals: a backend is
//! single-threaded, so no lock is needed.

pub mod shared;

use std::cell::RefCell;
use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use pgrx::pg_sys;
use sha2::{Digest, Sha256};

use crate::error::{DeidentError, Result};
use crate::fmgr;
use crate::guc;
use crate::keys::{self, FileStamp, KeyRing};
use crate::pseudonym::DomainKey;
use crate::seal::SealKey;
use shared::RingId;

/// At most this many (key, domain) pairs are kept across statements; a query over more
/// domains than this derives again, which is correct, only slower.
const MAX_DOMAINS: usize = 32;
/// Longer domains (and, at a call site, longer non-constant domain or key id arguments) are
/// not kept past the statement.
pub const MAX_CACHED_DOMAIN: usize = 64;

/// Counts transaction ends in this backend (`end_of_transaction`).
static XACT_EPOCH: AtomicU64 = AtomicU64::new(1);

/// When the ring may change: a new top-level statement (its start timestamp, which parallel
/// workers share with their leader) or a new transaction (a procedure's COMMIT keeps the
/// statement; a background worker that never sets statement timestamps still ends
/// transactions).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Epoch {
    xact: u64,
    stmt: i64,
}

impl Epoch {
    #[inline]
    pub fn now() -> Epoch {
        Epoch { xact: XACT_EPOCH.load(Ordering::Relaxed), stmt: shared::statement_start() }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn end_of_transaction(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    XACT_EPOCH.fetch_add(1, Ordering::Relaxed);
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PREPARE
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_PARALLEL_ABORT
    ) {
        forget_queries();
    }
}

/// Registers the transaction callbacks; called once, from `_PG_init` during preload, so that
/// every backend (forked from the postmaster) has them.
pub fn register_xact_callbacks() {
    // SAFETY: guarded C callbacks with no state; registered once.
    unsafe {
        pg_sys::RegisterXactCallback(Some(end_of_transaction), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subtransaction_event), std::ptr::null_mut());
    }
}

struct Ring {
    path: String,
    active_setting: String,
    stamp: FileStamp,
    keys: KeyRing,
    active: usize,
    id: RingId,
}

/// A ring, or why there is none, with its serial number: a new number for every ring read
/// and every failure, so that a call site can tell the ring its key came from.
#[derive(Clone)]
struct Settled {
    serial: u64,
    ring: std::result::Result<Rc<Ring>, DeidentError>,
}

/// The ring of a query (and of the queries nested in it), settled at its first use.
#[derive(Default)]
pub struct Pin(RefCell<Option<Settled>>);

#[derive(Default)]
struct Cache {
    /// The epoch `latest` was checked in.
    epoch: Option<Epoch>,
    /// The ring as last checked.
    latest: Option<Settled>,
    /// The pin of the current statement, for queries started outside any other query and for
    /// expressions outside queries.
    statement: Option<(Epoch, Rc<Pin>)>,
    /// Queries started and not yet ended, by QueryDesc address, with their pins.
    queries: Vec<(usize, Rc<Pin>)>,
    /// The pins of the queries running now (ExecutorRun, ExecutorFinish), innermost last.
    running: Vec<Rc<Pin>>,
    /// For each open subtransaction, how many queries were running when it started.
    subxact_depths: Vec<usize>,
    /// The ring used in an epoch: one statement uses one ring, also when it reads a cursor
    /// opened (and settled) in an earlier statement (`note_use`).
    used: Option<(Epoch, RingId)>,
    /// Derived domain keys: (ring serial, key index, domain, DK), most recent last.
    domains: Vec<(u64, usize, Vec<u8>, DomainKey)>,
    /// Derived state-sealing keys (seal.rs): (ring serial, key index, SK). A ring has a few
    /// keys, and each is derived once.
    seal_keys: Vec<(u64, usize, Rc<SealKey>)>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    /// The sealing key `seal_key` found last: the serial of its ring, the key id asked for,
    /// and the key. A Citus coordinator asks for it once per partial state.
    static LAST_SEAL_KEY: RefCell<Option<LastSealKey>> = const { RefCell::new(None) };
}

/// `LAST_SEAL_KEY`: a ring's serial, a key id as asked for ('' for the active key), its key.
type LastSealKey = (u64, Vec<u8>, Rc<SealKey>);

/// Serial numbers of rings: 0 means none.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);
/// The serial of the innermost running query's ring once settled, 0 otherwise: what a call
/// site compares its key's serial with on every row (one load, no borrow of the cache).
static RUNNING_SERIAL: AtomicU64 = AtomicU64::new(0);

/// The uid the server runs as: PostgreSQL refuses to start unless it owns the data directory
/// (miscinit.c, `checkDataDir`), so the directory's owner is that uid.
fn server_uid() -> Option<u32> {
    // SAFETY: DataDir is set at postmaster start and never freed; it is a C string.
    let dir = unsafe { pg_sys::DataDir };
    if dir.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated, see above.
    let dir = unsafe { CStr::from_ptr(dir) };
    std::fs::metadata(Path::new(&*dir.to_string_lossy())).ok().map(|m| m.uid())
}

/// What `RingId` digests: every key's id and bytes, in order, and which one is active.
fn ring_id(keys: &KeyRing, active: usize) -> RingId {
    let mut h = Sha256::new();
    h.update(b"pg_deident/v1/ring\0");
    for key in &keys.keys {
        h.update((key.id.len() as u64).to_le_bytes());
        h.update(key.id.as_bytes());
        h.update((key.bytes.len() as u64).to_le_bytes());
        h.update(&key.bytes[..]);
    }
    h.update((active as u64).to_le_bytes());
    h.finalize().into()
}

/// Reads the settings and the file; None when `old` is still current.
fn load(old: Option<&Ring>) -> Result<Option<Ring>> {
    let path = guc::string_value(&guc::KEY_FILE);
    let active_setting = guc::string_value(&guc::ACTIVE_KEY);
    if path.is_empty() {
        return Err(DeidentError::NoKeyFile);
    }
    let file_error = |problem| DeidentError::KeyFile { path: path.clone(), problem };
    let stamp = keys::stamp(Path::new(&path)).map_err(file_error)?;
    if let Some(old) = old {
        if old.path == path && old.stamp == stamp && old.active_setting == active_setting {
            return Ok(None);
        }
    }
    // Without a data directory (never in a running server) trust no owner but root.
    let uid = server_uid().unwrap_or(0);
    let (keys, stamp) = keys::load(Path::new(&path), uid).map_err(file_error)?;
    let active = if active_setting.is_empty() {
        0
    } else {
        keys.find(active_setting.as_bytes())
            .ok_or_else(|| DeidentError::UnknownActiveKey { id: active_setting.clone() })?
    };
    let id = ring_id(&keys, active);
    Ok(Some(Ring { path, active_setting, stamp, keys, active, id }))
}

/// The ring as of `epoch`: checked once per epoch, kept (with its serial) while unchanged. In a
/// parallel worker, a ring other than the one the leader published fails the query.
fn latest(cache: &mut Cache, epoch: Epoch) -> Settled {
    if cache.epoch == Some(epoch) {
        if let Some(latest) = &cache.latest {
            return latest.clone();
        }
    }
    cache.epoch = Some(epoch);
    let old = cache.latest.as_ref().and_then(|l| l.ring.as_ref().ok());
    let mut ring = match load(old.map(|r| &**r)) {
        // "Unchanged" comes only with an old ring, which is the latest.
        Ok(None) => match &cache.latest {
            Some(latest) => return latest.clone(),
            None => Err(DeidentError::NoKeyFile),
        },
        Ok(Some(ring)) => Ok(Rc::new(ring)),
        Err(e) => Err(e),
    };
    // A worker that could not read the ring raises why; one that read another ring than its
    // leader published, or for which the leader published none, fails the query.
    if let Ok(r) = &ring {
        if shared::in_parallel_worker() {
            match shared::agrees(r.id) {
                shared::Agreement::Same => {}
                shared::Agreement::Different => ring = Err(DeidentError::KeyRingChanged),
                shared::Agreement::Unpublished => ring = Err(DeidentError::KeyRingUnpublished),
            }
        }
    }
    // Keys derived from an older ring are of no more use to new queries.
    cache.domains.clear();
    cache.seal_keys.clear();
    LAST_SEAL_KEY.set(None);
    let settled = Settled { serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed), ring };
    cache.latest = Some(settled.clone());
    settled
}

/// The pin of the current statement (a new one when the epoch changed).
fn statement_pin(cache: &mut Cache) -> Rc<Pin> {
    let epoch = Epoch::now();
    if let Some((e, pin)) = &cache.statement {
        if *e == epoch {
            return pin.clone();
        }
    }
    let pin = Rc::new(Pin::default());
    cache.statement = Some((epoch, pin.clone()));
    pin
}

/// The pin in force: the innermost running query's, or the statement's.
fn current_pin(cache: &mut Cache) -> Rc<Pin> {
    match cache.running.last() {
        Some(pin) => pin.clone(),
        None => statement_pin(cache),
    }
}

/// The pin's ring, settling it now if this is its first use.
fn settle(cache: &mut Cache, pin: &Pin) -> Settled {
    if let Some(settled) = &*pin.0.borrow() {
        return settled.clone();
    }
    let settled = latest(cache, Epoch::now());
    *pin.0.borrow_mut() = Some(settled.clone());
    settled
}

/// Notes that the current statement uses the ring of `settled`: an error if it used another
/// one already (compared by content, `RingId`). Two pins of one statement can hold different
/// rings: a cursor opened (and settled) in an earlier statement, then read by a statement
/// that also pseudonymizes anew. A pin without a ring raises its own error when used.
fn note_use(cache: &mut Cache, settled: &Settled) -> Result<()> {
    let Ok(ring) = &settled.ring else {
        return Ok(());
    };
    let epoch = Epoch::now();
    match cache.used {
        Some((e, used)) if e == epoch && used != ring.id => Err(DeidentError::KeyRingChanged),
        _ => {
            cache.used = Some((epoch, ring.id));
            Ok(())
        }
    }
}

/// Sets `RUNNING_SERIAL` for the innermost running query: its ring's serial if it is settled
/// and may be used by this statement, else 0 (the calls take the slow way, which raises the
/// conflict).
fn publish_running_serial(cache: &mut Cache) {
    let settled = cache.running.last().and_then(|pin| pin.0.borrow().clone());
    let serial = settled
        .filter(|settled| settled.ring.is_ok() && note_use(cache, settled).is_ok())
        .map_or(0, |settled| settled.serial);
    RUNNING_SERIAL.store(serial, Ordering::Relaxed);
}

fn ring_of(settled: &Settled) -> Result<&Ring> {
    settled.ring.as_deref().map_err(Clone::clone)
}

fn key_index(ring: &Ring, key_id: &[u8]) -> Result<usize> {
    if key_id.is_empty() {
        return Ok(ring.active);
    }
    ring.keys.find(key_id).ok_or_else(|| DeidentError::UnknownKeyId { id: key_id.to_vec() })
}

/// The ring in force (the innermost running query's, or the statement's), settled now if this
/// is its first use, and noted as the statement's.
fn usable_ring(cache: &mut Cache) -> Result<Settled> {
    let pin = current_pin(cache);
    let settled = settle(cache, &pin);
    note_use(cache, &settled)?;
    publish_running_serial(cache);
    Ok(settled)
}

/// The current ring's serial and the domain key for (`key_id`, `domain`) in it; `key_id` ''
/// is the active key, `domain` is UTF-8.
fn domain_key(key_id: &[u8], domain: &[u8]) -> Result<(u64, DomainKey)> {
    CACHE.with_borrow_mut(|cache| {
        let settled = usable_ring(cache)?;
        let ring = ring_of(&settled)?;
        let index = key_index(ring, key_id)?;
        let serial = settled.serial;
        let domains = &mut cache.domains;
        if let Some(hit) =
            domains.iter().find(|(s, i, d, _)| *s == serial && *i == index && d == domain)
        {
            return Ok((serial, hit.3.clone()));
        }
        let derived = DomainKey::derive(&ring.keys.keys[index].bytes, domain);
        if domain.len() <= MAX_CACHED_DOMAIN {
            if domains.len() >= MAX_DOMAINS {
                domains.remove(0);
            }
            domains.push((serial, index, domain.to_vec(), derived.clone()));
        }
        Ok((serial, derived))
    })
}

/// What the backend keeps of callers' domains: (entries, bytes of domain text).
#[cfg(any(test, feature = "pg_test"))]
pub fn cached_domains() -> (usize, usize) {
    CACHE.with_borrow(|c| (c.domains.len(), c.domains.iter().map(|(_, _, d, _)| d.len()).sum()))
}

/// The state-sealing key (seal.rs) of the key `key_id` ('' for the active key) of the current
/// ring, derived once per ring and key.
pub fn seal_key(key_id: &[u8]) -> Result<Rc<SealKey>> {
    // As a call site's domain key in `mac`: the key found last, while the running query's
    // ring is the one it was found in (one load and a comparison, not a walk of the cache).
    let running = RUNNING_SERIAL.load(Ordering::Relaxed);
    if running != 0 {
        let hit = LAST_SEAL_KEY.with_borrow(|last| match last {
            Some((serial, id, key)) if *serial == running && id == key_id => Some(key.clone()),
            _ => None,
        });
        if let Some(key) = hit {
            return Ok(key);
        }
    }
    let (serial, key) = seal_key_slow(key_id)?;
    LAST_SEAL_KEY.set(Some((serial, key_id.to_vec(), key.clone())));
    Ok(key)
}

/// `seal_key` through the cache: the ring in force settled and noted, and its serial.
fn seal_key_slow(key_id: &[u8]) -> Result<(u64, Rc<SealKey>)> {
    CACHE.with_borrow_mut(|cache| {
        let settled = usable_ring(cache)?;
        let ring = ring_of(&settled)?;
        let index = key_index(ring, key_id)?;
        if let Some((_, _, k)) =
            cache.seal_keys.iter().find(|(s, i, _)| *s == settled.serial && *i == index)
        {
            return Ok((settled.serial, k.clone()));
        }
        let key = &ring.keys.keys[index];
        // Key ids are SPEC's [A-Za-z0-9_-]{1,32} (keys.rs), which derive accepts.
        let sk = SealKey::derive(key.id.as_bytes(), &key.bytes)
            .map(Rc::new)
            .ok_or_else(|| DeidentError::UnknownKeyId { id: key.id.as_bytes().to_vec() })?;
        cache.seal_keys.push((settled.serial, index, sk.clone()));
        Ok((settled.serial, sk))
    })
}

/// Runs `f` with the raw bytes of the key `key_id` ('' for the active key) of the current
/// ring.
pub fn with_key<R>(key_id: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<R> {
    in_ring(key_id, f).map(|(_, r)| r)
}

/// `f` of the raw bytes of the key `key_id` ('' for the active key) of the current ring, with
/// that ring's serial.
fn in_ring<R>(key_id: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<(u64, R)> {
    CACHE.with_borrow_mut(|cache| {
        let settled = usable_ring(cache)?;
        let ring = ring_of(&settled)?;
        let index = key_index(ring, key_id)?;
        Ok((settled.serial, f(&ring.keys.keys[index].bytes)))
    })
}

/// ExecutorStart: the query gets its outer query's pin if it starts while another runs (a
/// nested query), else the statement's.
pub fn query_started(query: usize) {
    CACHE.with_borrow_mut(|cache| {
        let pin = current_pin(cache);
        cache.queries.retain(|(q, _)| *q != query);
        cache.queries.push((query, pin));
    });
}

/// ExecutorEnd: the query's pin is no longer needed.
pub fn query_ended(query: usize) {
    CACHE.with_borrow_mut(|cache| cache.queries.retain(|(q, _)| *q != query));
}

/// Top-level transaction end: queries that failed never reached ExecutorEnd, nor popped their
/// pin; none survives (a holdable cursor was run to completion before the commit's callbacks).
fn forget_queries() {
    CACHE.with_borrow_mut(|cache| {
        cache.queries.clear();
        cache.statement = None;
        cache.running.clear();
        cache.subxact_depths.clear();
    });
    RUNNING_SERIAL.store(0, Ordering::Relaxed);
}

/// Subtransactions: an ERROR skips the executor hooks' pop of the running query (they do not
/// catch errors, see `hooks.rs`), and a PL/pgSQL EXCEPTION block (a subtransaction) may go on
/// after it; aborting the subtransaction restores the running queries it started with.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn subtransaction_event(
    event: pg_sys::SubXactEvent::Type,
    _mine: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::SubXactEvent::*;
    CACHE.with_borrow_mut(|cache| match event {
        SUBXACT_EVENT_START_SUB => {
            let depth = cache.running.len();
            cache.subxact_depths.push(depth);
        }
        SUBXACT_EVENT_COMMIT_SUB => {
            cache.subxact_depths.pop();
        }
        SUBXACT_EVENT_ABORT_SUB => {
            if let Some(depth) = cache.subxact_depths.pop() {
                cache.running.truncate(depth);
            }
        }
        _ => {}
    });
    if event == SUBXACT_EVENT_ABORT_SUB {
        query_stopped(usize::MAX);
    }
}

/// ExecutorRun, ExecutorFinish: the query's pin is the current one until `query_stopped`;
/// returns the depth to restore. With `publish` (a leader about to run a parallel plan), the
/// ring is settled now and its identity published for the workers, under the statement
/// timestamp they will be started with (the Execute message's, in the extended protocol).
pub fn query_running(query: usize, publish: bool) -> usize {
    let (depth, id) = CACHE.with_borrow_mut(|cache| {
        let pin = match cache.queries.iter().find(|(q, _)| *q == query) {
            Some((_, pin)) => pin.clone(),
            None => current_pin(cache),
        };
        let depth = cache.running.len();
        cache.running.push(pin.clone());
        let id = (publish && !shared::in_parallel_worker()).then(|| {
            let settled = settle(cache, &pin);
            // A ring this statement may not use is published as none: workers fail.
            note_use(cache, &settled).ok().and(settled.ring.ok()).map(|r| r.id)
        });
        publish_running_serial(cache);
        (depth, id)
    });
    if let Some(id) = id {
        shared::publish(id);
    }
    depth
}

/// After ExecutorRun or ExecutorFinish: back to `depth` running queries (`usize::MAX`: as
/// many as there are, after a subtransaction abort truncated them).
pub fn query_stopped(depth: usize) {
    CACHE.with_borrow_mut(|cache| {
        cache.running.truncate(depth);
        publish_running_serial(cache);
    });
}

/// A non-constant argument's bytes as a call site last saw them; longer ones are not kept.
#[derive(Clone, Copy)]
struct SiteArg {
    len: usize,
    bytes: [u8; MAX_CACHED_DOMAIN],
}

impl SiteArg {
    const EMPTY: SiteArg = SiteArg { len: 0, bytes: [0; MAX_CACHED_DOMAIN] };

    /// None when `bytes` is too long to keep.
    fn of(bytes: &[u8]) -> Option<SiteArg> {
        let mut arg = SiteArg { len: bytes.len(), bytes: [0; MAX_CACHED_DOMAIN] };
        arg.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(arg)
    }

    #[inline]
    fn matches(&self, bytes: &[u8]) -> bool {
        self.len == bytes.len() && &self.bytes[..self.len] == bytes
    }
}

/// A call site's resolved domain key (kept in `fn_extra`, see `fmgr::call_site`).
pub struct Site {
    /// The serial of the ring `dk` belongs to; 0: nothing resolved.
    serial: u64,
    domain_const: bool,
    key_id_const: bool,
    domain: SiteArg,
    key_id: SiteArg,
    dk: Option<DomainKey>,
}

/// Where a call's domain and key id arguments are, for `mac`.
pub struct Args<'a> {
    pub fcinfo: pg_sys::FunctionCallInfo,
    pub domain: &'a [u8],
    pub domain_arg: usize,
    pub key_id: &'a [u8],
    pub key_id_arg: usize,
}

/// M = HMAC-SHA256(DK(key_id, domain), value) for one call, with `value` already in UTF-8
/// (or bytea) and `domain` and `key_id` as the server stores them.
pub fn mac(args: &Args, value: &[u8]) -> Result<[u8; 32]> {
    // SAFETY: fcinfo is fmgr's call info of the entry point calling this; its fn_extra holds
    // a `Site` only (the pseudonym entry points use this function alone).
    let site = unsafe {
        fmgr::call_site(args.fcinfo, || Site {
            serial: 0,
            domain_const: fmgr::arg_is_const(args.fcinfo, args.domain_arg),
            key_id_const: fmgr::arg_is_const(args.fcinfo, args.key_id_arg),
            domain: SiteArg::EMPTY,
            key_id: SiteArg::EMPTY,
            dk: None,
        })
    };
    let Some(site) = site else {
        return Ok(resolve(args)?.1.mac_interruptible(value, check_for_interrupts));
    };
    let args_match = (site.domain_const || site.domain.matches(args.domain))
        && (site.key_id_const || site.key_id.matches(args.key_id));
    // The common case: a running query whose ring is settled, and this call site resolved its
    // key from that ring (serial 0: none resolved, or no settled query running).
    if args_match && site.serial != 0 && site.serial == RUNNING_SERIAL.load(Ordering::Relaxed) {
        if let Some(dk) = &site.dk {
            return Ok(dk.mac_interruptible(value, check_for_interrupts));
        }
    }
    let (serial, dk) = resolve(args)?;
    let m = dk.mac_interruptible(value, check_for_interrupts);
    site.serial = 0;
    site.dk = None;
    if let (Some(domain), Some(key_id)) = (SiteArg::of(args.domain), SiteArg::of(args.key_id)) {
        *site = Site { serial, domain, key_id, dk: Some(dk), ..*site };
    } else if site.domain_const && site.key_id_const {
        *site = Site { serial, dk: Some(dk), ..*site };
    }
    Ok(m)
}

fn resolve(args: &Args) -> Result<(u64, DomainKey)> {
    let domain = crate::encoding::to_utf8(args.domain);
    domain_key(args.key_id, &domain)
}

fn check_for_interrupts() {
    pg_sys::check_for_interrupts!();
}

/// A call site's key material derived from a raw ring key rather than a domain key (the FF1
/// cipher of `pseudonymize_int`), kept in `fn_extra` as `Site` keeps a domain key: valid while
/// `serial` is the running query's ring and the key id argument is unchanged. Boxed: `fn_extra`
/// memory is 8-byte aligned, and an expanded AES key may want more (`fmgr::call_site`).
pub struct KeySite<T> {
    /// The serial of the ring `derived` belongs to; 0: nothing derived.
    serial: u64,
    key_id_const: bool,
    key_id: SiteArg,
    derived: Option<Box<T>>,
}

/// Runs `f` with `derive(K)`, K the raw bytes of the key `key_id` ('' for the active key) of
/// the ring in force. The derived value is kept at the call site and derived again only for
/// another ring or another key id, under the same rules as `mac`'s domain keys: a row costs one
/// comparison of serials. `key_id_arg` is the key id's argument position.
///
/// # Safety
/// `fcinfo` is fmgr's call info of the entry point calling this, and that entry point's
/// `fn_extra` is used by this function alone, always with the same `T`.
pub unsafe fn with_derived_key<T, R>(
    fcinfo: pg_sys::FunctionCallInfo,
    key_id: &[u8],
    key_id_arg: usize,
    derive: impl FnOnce(&[u8]) -> T,
    f: impl FnOnce(&T) -> R,
) -> Result<R> {
    // SAFETY: per the contract, fn_extra holds a `KeySite<T>` or nothing.
    let site = unsafe {
        fmgr::call_site(fcinfo, || KeySite::<T> {
            serial: 0,
            key_id_const: fmgr::arg_is_const(fcinfo, key_id_arg),
            key_id: SiteArg::EMPTY,
            derived: None,
        })
    };
    let Some(site) = site else {
        // No FmgrInfo (DirectFunctionCall): derive for this call; `f` runs outside the cache.
        return in_ring(key_id, derive).map(|(_, derived)| f(&derived));
    };
    // As in `mac`: a running query whose ring is settled, and this site derived from it.
    let key_id_matches = site.key_id_const || site.key_id.matches(key_id);
    if key_id_matches && site.serial != 0 && site.serial == RUNNING_SERIAL.load(Ordering::Relaxed) {
        if let Some(derived) = &site.derived {
            return Ok(f(derived));
        }
    }
    let (serial, derived) = in_ring(key_id, |k| Box::new(derive(k)))?;
    let r = f(&derived);
    site.serial = 0;
    site.derived = None;
    if let Some(arg) = SiteArg::of(key_id) {
        *site = KeySite { serial, key_id: arg, derived: Some(derived), ..*site };
    } else if site.key_id_const {
        *site = KeySite { serial, derived: Some(derived), ..*site };
    }
    Ok(r)
}
