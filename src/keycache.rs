//! The backend's copy of the key ring and of the domain keys derived from it.
//!
//! Freshness: the file is checked (one `stat`) by the first call of each call site in each
//! execution of a query and each transaction (`fmgr::checked_this_execution`), not on every
//! row. A reload that changes `deident.key_file` or `deident.active_key`, or any change to the
//! file itself (content, `chmod`, `chown`, replacement), is noticed by the next query, except
//! by a PL/pgSQL simple expression evaluated again in the same transaction (its expression
//! state lives for the transaction): that one notices at the next transaction.
//!
//! Domain keys: deriving DK costs three SHA-256 compressions plus the keyed state setup; it is
//! done once per (key, domain) and backend, and kept in a small bounded list (searched
//! linearly; a statement nearly always uses one domain, found first). The whole cache lives in
//! a thread_local: a backend is single-threaded, so no lock is needed, and parallel workers
//! build their own from the same settings (GUCs are copied to workers; parallel.c).

use std::cell::RefCell;
use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use pgrx::pg_sys;

use crate::error::{DeidentError, Result};
use crate::guc;
use crate::keys::{self, FileStamp, KeyRing};
use crate::pseudonym::DomainKey;

/// At most this many (key, domain) pairs are kept; a query over more domains than this
/// re-derives, which is correct, only slower.
const MAX_DOMAINS: usize = 32;

struct Loaded {
    path: String,
    active_setting: String,
    stamp: FileStamp,
    ring: KeyRing,
    active: usize,
}

#[derive(Default)]
struct Cache {
    loaded: Option<Loaded>,
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

/// Makes the cache current: reads the settings, `stat`s the file, and reloads the ring when
/// anything changed.
fn refresh(cache: &mut Cache) -> Result<()> {
    let path = guc::string_value(&guc::KEY_FILE);
    let active_setting = guc::string_value(&guc::ACTIVE_KEY);
    if path.is_empty() {
        cache.loaded = None;
        cache.domains.clear();
        return Err(DeidentError::NoKeyFile);
    }
    let file_error = |problem| DeidentError::KeyFile { path: path.clone(), problem };
    let stamp = keys::stamp(Path::new(&path)).map_err(file_error)?;
    if let Some(l) = &cache.loaded {
        if l.path == path && l.stamp == stamp && l.active_setting == active_setting {
            return Ok(());
        }
    }
    // Something changed: forget every key and derived key before reading anew, so that a
    // failed reload leaves nothing usable behind.
    cache.loaded = None;
    cache.domains.clear();
    // Without a data directory (never in a running server) trust no owner but root.
    let uid = server_uid().unwrap_or(0);
    let ring = keys::load(Path::new(&path), &stamp, uid).map_err(file_error)?;
    let active = if active_setting.is_empty() {
        0
    } else {
        ring.find(active_setting.as_bytes())
            .ok_or_else(|| DeidentError::UnknownActiveKey { id: active_setting.clone() })?
    };
    cache.loaded = Some(Loaded { path, active_setting, stamp, ring, active });
    Ok(())
}

fn key_index(loaded: &Loaded, key_id: &[u8]) -> Result<usize> {
    if key_id.is_empty() {
        return Ok(loaded.active);
    }
    loaded.ring.find(key_id).ok_or_else(|| DeidentError::UnknownKeyId {
        id: String::from_utf8_lossy(key_id).into_owned(),
    })
}

/// The current ring: refreshed unless `checked` says that the caller's call site already did
/// so in this execution.
fn current(cache: &mut Cache, checked: bool) -> Result<&Loaded> {
    if !checked || cache.loaded.is_none() {
        refresh(cache)?;
    }
    cache.loaded.as_ref().ok_or(DeidentError::NoKeyFile)
}

/// Runs `f` with the domain key for (`key_id`, `domain`); `key_id` '' means the active key.
/// `checked`: the caller's call site already refreshed the cache in this execution.
#[inline]
pub fn with_domain_key<R>(
    key_id: &[u8],
    domain: &[u8],
    checked: bool,
    f: impl FnOnce(&DomainKey) -> R,
) -> Result<R> {
    CACHE.with_borrow_mut(|cache| {
        let index = key_index(current(cache, checked)?, key_id)?;
        if let Some(hit) = cache.domains.iter().find(|(i, d, _)| *i == index && d == domain) {
            return Ok(f(&hit.2));
        }
        let Some(loaded) = cache.loaded.as_ref() else {
            return Err(DeidentError::NoKeyFile);
        };
        let derived = DomainKey::derive(&loaded.ring.keys[index].bytes, domain);
        let result = f(&derived);
        if cache.domains.len() >= MAX_DOMAINS {
            cache.domains.remove(0);
        }
        cache.domains.push((index, domain.to_vec(), derived));
        Ok(result)
    })
}

/// Runs `f` with the raw bytes of the key `key_id` ('' for the active key).
pub fn with_key<R>(key_id: &[u8], checked: bool, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
    CACHE.with_borrow_mut(|cache| {
        let loaded = current(cache, checked)?;
        let index = key_index(loaded, key_id)?;
        Ok(f(&loaded.ring.keys[index].bytes))
    })
}
