//! Text to UTF-8 (SPEC "Pseudonymization", step 2): pseudonyms hash the UTF-8 bytes of text,
//! so the same person gets the same pseudonym in a UTF-8 and in a LATIN1 database. Text from a
//! database in another server encoding is converted first, with PostgreSQL's own conversion
//! (mbutils.c, `pg_server_to_any`); a character with no UTF-8 form is PostgreSQL's usual
//! error (22P05). SQL_ASCII declares no encoding at all, so its text is hashed as stored (the
//! same as UTF-8 for text that is UTF-8 or plain ASCII).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, Ordering};

use pgrx::pg_sys;

const UNKNOWN: u8 = 0;
const AS_IS: u8 = 1;
const CONVERT: u8 = 2;

/// Whether this backend's database needs conversion; the database (and so its encoding) is
/// fixed for a backend's life, so it is looked up once, on first use.
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

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
    // SAFETY: text is `len` bytes of server-encoded text (a varlena's content, at most 1 GB);
    // pg_server_to_any returns the input itself or a palloc'd, NUL-terminated conversion, and
    // raises an ERROR for invalid or unconvertible input.
    unsafe {
        let out =
            pg_sys::pg_server_to_any(text.as_ptr().cast(), len, pg_sys::pg_enc::PG_UTF8 as i32);
        if std::ptr::eq(out.cast::<u8>(), text.as_ptr()) {
            return Cow::Borrowed(text);
        }
        Cow::Borrowed(std::ffi::CStr::from_ptr(out).to_bytes())
    }
}
