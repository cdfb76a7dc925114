//! Text to UTF-8 (SPEC "Pseudonymization", step 2): pseudonyms hash the UTF-8 bytes of text,
//! so the same person gets the same pseudonym in a UTF-8 and in a LATIN1 database. Text from a
//! database in another server encoding is converted first, with PostgreSQL's own conversion
//! (mbutils.c, `pg_do_encoding_conversion_buf` with the database's default conversion to
//! UTF-8). A character with no UTF-8 form is an error (22P05) of pg_deident's own, converted
//! with `noError`: PostgreSQL's error would show the character's bytes, a piece of a value
//! that a restricted role must never see. SQL_ASCII declares no encoding at all, so its text
//! is hashed as stored (the same as UTF-8 for text that is UTF-8 or plain ASCII).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, Ordering};

use pgrx::pg_sys;

use crate::error::DeidentError;

const UNKNOWN: u8 = 0;
const AS_IS: u8 = 1;
const CONVERT: u8 = 2;

/// Whether this backend's database needs conversion; the database (and so its encoding) is
/// fixed for a backend's life, so it is looked up once, on first use.
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);
unsafe extern "C-unwind" {
    /// pg_conversion.c: the default conversion's function in one schema (not in bindgen's
    /// output; called through pgrx's FFI guard, since a catalog lookup can raise an error).
    /// pg_catalog's, not the search path's: a default conversion a user made in a schema ahead
    /// of pg_catalog must not change what is hashed.
    #[link_name = "FindDefaultConversion"]
    fn find_default_conversion(
        namespace: pg_sys::Oid,
        for_encoding: i32,
        to_encoding: i32,
    ) -> pg_sys::Oid;
}

/// The conversion function from the database's encoding to UTF-8 (InvalidOid: none yet).
static PROC: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn mode() -> u8 {
    match MODE.load(Ordering::Relaxed) {
        UNKNOWN => {
            // SAFETY: reads the database encoding, set when the backend connected.
            let encoding = unsafe { pg_sys::GetDatabaseEncoding() } as u32;
            let mode = if encoding == pg_sys::pg_enc::PG_UTF8
                || encoding == pg_sys::pg_enc::PG_SQL_ASCII
            {
                AS_IS
            } else {
                CONVERT
            };
            MODE.store(mode, Ordering::Relaxed);
            mode
        }
        mode => mode,
    }
}

/// `text` (in the server encoding) as UTF-8. The converted copy, if any, is palloc'd in the
/// current memory context (the per-row context for a function call), which outlives the call
/// that borrows it.
#[inline]
pub fn to_utf8(text: &[u8]) -> Cow<'_, [u8]> {
    if text.is_empty() || mode() == AS_IS || text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let len = i32::try_from(text.len()).unwrap_or(i32::MAX);
    // SAFETY: reads the database encoding; the conversion function is looked up in the catalog
    // once (the database is fixed for the backend's life), raising PostgreSQL's own error if
    // none exists (a message that names encodings, not data).
    let (encoding, proc) = unsafe {
        let encoding = pg_sys::GetDatabaseEncoding();
        let mut proc = pg_sys::Oid::from(PROC.load(Ordering::Relaxed));
        if proc == pg_sys::InvalidOid {
            proc = pg_sys::submodules::ffi::pg_guard_ffi_boundary(|| {
                find_default_conversion(
                    pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE),
                    encoding,
                    pg_sys::pg_enc::PG_UTF8 as i32,
                )
            });
            if proc == pg_sys::InvalidOid {
                // as pg_server_to_any would say it
                let p = pg_sys::pg_server_to_any(
                    text.as_ptr().cast(),
                    len,
                    pg_sys::pg_enc::PG_UTF8 as i32,
                );
                return Cow::Borrowed(std::ffi::CStr::from_ptr(p).to_bytes());
            }
            PROC.store(proc.to_u32(), Ordering::Relaxed);
        }
        (encoding, proc)
    };
    let dest_len =
        text.len().saturating_mul(pg_sys::MAX_CONVERSION_GROWTH as usize).saturating_add(1);
    let Ok(dest_len_i32) = i32::try_from(dest_len) else {
        DeidentError::UnconvertibleText.report()
    };
    // SAFETY: text is `len` bytes of server-encoded text (a varlena's content); the palloc'd
    // destination has room for the conversion's worst growth and its NUL (mbutils.c sizes it
    // the same way); with noError the conversion stops at the first byte it cannot convert,
    // and returns how many source bytes it converted.
    unsafe {
        let dest = pg_sys::palloc(dest_len).cast::<u8>();
        let converted = pg_sys::pg_do_encoding_conversion_buf(
            proc,
            encoding,
            pg_sys::pg_enc::PG_UTF8 as i32,
            text.as_ptr().cast_mut(),
            len,
            dest,
            dest_len_i32,
            true,
        );
        if converted < len {
            DeidentError::UnconvertibleText.report();
        }
        Cow::Borrowed(std::ffi::CStr::from_ptr(dest.cast()).to_bytes())
    }
}
