//! The backend's key ring and the domain keys derived from it, fixed for each statement.
//!
//! **One ring per statement.** The ring is re-checked (one `stat` of the key file, and a read
//! only when the file, `deident.key_file` or `deident.active_key` changed) at most once per
//! top-level statement and transaction (`Epoch`), the first time a statement needs a key; every
//! later use in the statement, in any expression, function or nested query, uses that same
//! ring. A reload or a rewritten key file therefore takes effect at the next statement and never
//! in the middle of one. A parallel query's workers read the file themselves and must find the
//! ring the leader published for the statement, or fail it (`shared`). A procedure that COMMITs
//! is, for this, a series of statements: each of its transactions checks the ring anew.
//!
//! **Per call site.** A call site (an FmgrInfo) keeps the domain key it resolved, for the
//! epoch it resolved it in, in its `fn_extra` (`Site`), so a row costs an epoch comparison and
//! the HMAC, with no lookup of the key id or the domain. Arguments that are constants in the
//! query are not even compared.
//!
//! **Bounded memory.** Besides the ring, the backend keeps at most `MAX_DOMAINS` derived
//! domain keys, for domains of at most `MAX_CACHED_DOMAIN` bytes; nothing longer that a caller
//! passes outlives its statement. Everything lives in a thread_local: a backend is
//! single-threaded, so no lock is needed.

pub mod shared;

use std::cell::RefCell;
use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use pgrx::pg_sys;
use sha2::{Digest, Sha256};

use crate::error::{DeidentError, Result};
use crate::fmgr;
use crate::guc;
use crate::keys::{self, FileStamp, KeyRing};
use crate::pseudonym::DomainKey;
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
    _event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    XACT_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// Registers the transaction callback; called once, from `_PG_init` during preload, so that
/// every backend (forked from the postmaster) has it.
pub fn register_xact_callback() {
    // SAFETY: a guarded C callback with no state; registered once.
    unsafe { pg_sys::RegisterXactCallback(Some(end_of_transaction), std::ptr::null_mut()) }
}

struct Ring {
    path: String,
    active_setting: String,
    stamp: FileStamp,
    keys: KeyRing,
    active: usize,
    id: RingId,
}

#[derive(Default)]
struct Cache {
    /// The epoch the ring below was checked in.
    epoch: Option<Epoch>,
    /// The statement's ring, or why there is none.
    ring: Option<Result<Ring>>,
    /// Derived domain keys: (key index, domain, DK), most recent last.
    domains: Vec<(usize, Vec<u8>, DomainKey)>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

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

/// Reads the settings and the file; keeps `old` when nothing changed.
fn load(old: Option<Ring>) -> Result<Ring> {
    let path = guc::string_value(&guc::KEY_FILE);
    let active_setting = guc::string_value(&guc::ACTIVE_KEY);
    if path.is_empty() {
        return Err(DeidentError::NoKeyFile);
    }
    let file_error = |problem| DeidentError::KeyFile { path: path.clone(), problem };
    let stamp = keys::stamp(Path::new(&path)).map_err(file_error)?;
    if let Some(old) = old {
        if old.path == path && old.stamp == stamp && old.active_setting == active_setting {
            return Ok(old);
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
    Ok(Ring { path, active_setting, stamp, keys, active, id })
}

/// Makes the cache hold the ring of `epoch`: checked once per epoch. In a parallel worker, a
/// ring other than the one the leader published fails the statement.
fn refresh(cache: &mut Cache, epoch: Epoch) {
    if cache.epoch == Some(epoch) {
        return;
    }
    cache.epoch = Some(epoch);
    let old = cache.ring.take().and_then(|r| r.ok());
    let old_id = old.as_ref().map(|r| r.id);
    let mut ring = load(old);
    // A worker that could not read the ring raises why; one that read another ring than its
    // leader published (or the leader none) fails the statement.
    if let Ok(r) = &ring {
        if shared::in_parallel_worker() && !shared::agrees(Some(r.id)) {
            ring = Err(DeidentError::KeyRingChanged);
        }
    }
    if ring.as_ref().ok().map(|r| r.id) != old_id {
        // A failed or different ring: forget every key derived from the old one.
        cache.domains.clear();
    }
    cache.ring = Some(ring);
}

/// The ring of `epoch`, checked once per epoch.
fn current(cache: &mut Cache, epoch: Epoch) -> Result<&Ring> {
    refresh(cache, epoch);
    ring_of(&cache.ring)
}

fn ring_of(ring: &Option<Result<Ring>>) -> Result<&Ring> {
    match ring {
        Some(Ok(ring)) => Ok(ring),
        Some(Err(e)) => Err(e.clone()),
        None => Err(DeidentError::NoKeyFile),
    }
}

fn key_index(ring: &Ring, key_id: &[u8]) -> Result<usize> {
    if key_id.is_empty() {
        return Ok(ring.active);
    }
    ring.keys.find(key_id).ok_or_else(|| DeidentError::UnknownKeyId { id: key_id.to_vec() })
}

/// The domain key for (`key_id`, `domain`) in the ring of `epoch`; `key_id` '' is the active
/// key, `domain` is UTF-8.
pub fn domain_key(epoch: Epoch, key_id: &[u8], domain: &[u8]) -> Result<DomainKey> {
    CACHE.with_borrow_mut(|cache| {
        refresh(cache, epoch);
        let Cache { ring, domains, .. } = cache;
        let ring = ring_of(ring)?;
        let index = key_index(ring, key_id)?;
        if let Some(hit) = domains.iter().find(|(i, d, _)| *i == index && d == domain) {
            return Ok(hit.2.clone());
        }
        let derived = DomainKey::derive(&ring.keys.keys[index].bytes, domain);
        if domain.len() <= MAX_CACHED_DOMAIN {
            if domains.len() >= MAX_DOMAINS {
                domains.remove(0);
            }
            domains.push((index, domain.to_vec(), derived.clone()));
        }
        Ok(derived)
    })
}

/// What the backend keeps of callers' domains: (entries, bytes of domain text).
#[cfg(any(test, feature = "pg_test"))]
pub fn cached_domains() -> (usize, usize) {
    CACHE.with_borrow(|c| (c.domains.len(), c.domains.iter().map(|(_, d, _)| d.len()).sum()))
}

/// Runs `f` with the raw bytes of the key `key_id` ('' for the active key) of this statement's
/// ring.
pub fn with_key<R>(key_id: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<R> {
    CACHE.with_borrow_mut(|cache| {
        let ring = current(cache, Epoch::now())?;
        let index = key_index(ring, key_id)?;
        Ok(f(&ring.keys.keys[index].bytes))
    })
}

/// Called by the executor hook before a statement that may start parallel workers: settles
/// this statement's ring (a failure is kept for the statement's calls to raise, not raised
/// here: the statement may not need a key) and publishes its identity for the workers.
pub fn begin_parallel_statement() {
    if shared::in_parallel_worker() {
        return;
    }
    let id = CACHE.with_borrow_mut(|cache| {
        refresh(cache, Epoch::now());
        cache.ring.as_ref().and_then(|r| r.as_ref().ok()).map(|r| r.id)
    });
    shared::publish(id);
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
    /// The epoch `dk` belongs to; None: nothing resolved.
    epoch: Option<Epoch>,
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
    let epoch = Epoch::now();
    // SAFETY: fcinfo is fmgr's call info of the entry point calling this; its fn_extra holds
    // a `Site` only (the pseudonym entry points use this function alone).
    let site = unsafe {
        fmgr::call_site(args.fcinfo, || Site {
            epoch: None,
            domain_const: fmgr::arg_is_const(args.fcinfo, args.domain_arg),
            key_id_const: fmgr::arg_is_const(args.fcinfo, args.key_id_arg),
            domain: SiteArg::EMPTY,
            key_id: SiteArg::EMPTY,
            dk: None,
        })
    };
    let Some(site) = site else {
        return Ok(resolve(epoch, args)?.mac_interruptible(value, check_for_interrupts));
    };
    if site.epoch == Some(epoch)
        && (site.domain_const || site.domain.matches(args.domain))
        && (site.key_id_const || site.key_id.matches(args.key_id))
    {
        if let Some(dk) = &site.dk {
            return Ok(dk.mac_interruptible(value, check_for_interrupts));
        }
    }
    let dk = resolve(epoch, args)?;
    let m = dk.mac_interruptible(value, check_for_interrupts);
    site.epoch = None;
    site.dk = None;
    if let (Some(domain), Some(key_id)) = (SiteArg::of(args.domain), SiteArg::of(args.key_id)) {
        *site = Site { epoch: Some(epoch), domain, key_id, dk: Some(dk), ..*site };
    } else if site.domain_const && site.key_id_const {
        *site = Site { epoch: Some(epoch), dk: Some(dk), ..*site };
    }
    Ok(m)
}

fn resolve(epoch: Epoch, args: &Args) -> Result<DomainKey> {
    let domain = crate::encoding::to_utf8(args.domain);
    domain_key(epoch, args.key_id, &domain)
}

fn check_for_interrupts() {
    pg_sys::check_for_interrupts!();
}
