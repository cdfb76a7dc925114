//! SQL entry points for pseudonymization (SPEC "Pseudonymization", "Keys").
//!
//! All are STRICT (NULL in, NULL out), STABLE (the result depends on the key ring, which a
//! reload can change) and PARALLEL SAFE (workers read the same key file). `key_id` '' means
//! the active key: a NULL default would make a STRICT function return NULL. They are plain
//! fmgr functions (see `fmgr.rs` for why), declared by the SQL at the end of this file.

use pgrx::prelude::*;

use crate::error::{DeidentError, OrReport, Result};
use crate::fmgr::{self, pg_function_info_v1};
use crate::keycache;
use crate::preload;
use crate::pseudonym::{self, MAX_LENGTH, MIN_LENGTH};

fn checked_length(length: i32) -> Result<usize> {
    if (MIN_LENGTH..=MAX_LENGTH).contains(&length) {
        // In 8..=43, so the conversion is exact.
        Ok(length as usize)
    } else {
        Err(DeidentError::InvalidLength(length))
    }
}

/// M = HMAC-SHA256(DK(key, domain), value), checking the key ring once per call site and
/// execution. The caller has checked the preload.
fn keyed_mac(
    fcinfo: pg_sys::FunctionCallInfo,
    value: &[u8],
    domain: &[u8],
    key_id: &[u8],
) -> Result<[u8; 32]> {
    // SAFETY: fcinfo is the call info fmgr passed to the entry point calling this.
    let checked = unsafe { fmgr::checked_this_execution(fcinfo) };
    let m = keycache::with_domain_key(key_id, domain, checked, |dk| dk.mac(value))?;
    if !checked {
        // SAFETY: as above.
        unsafe { fmgr::mark_checked(fcinfo) };
    }
    Ok(m)
}

/// `pseudonymize(value text|bytea, domain text, length int, key_id text) RETURNS text`; text and
/// bytea share it, since both are varlenas whose bytes are hashed as they are.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_pseudonymize(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr calls this STRICT function with its four declared arguments, none NULL.
    let (value, domain, length, key_id) = unsafe {
        (
            fmgr::arg_bytes(fcinfo, 0),
            fmgr::arg_bytes(fcinfo, 1),
            fmgr::arg_i32(fcinfo, 2),
            fmgr::arg_bytes(fcinfo, 3),
        )
    };
    preload::check().or_report();
    let length = checked_length(length).or_report();
    let m = keyed_mac(fcinfo, value, domain, key_id).or_report();
    let mut buf = [0u8; MAX_LENGTH as usize];
    pseudonym::encode_base62(&m, length, &mut buf);
    fmgr::text_datum(&buf[..length])
}
pg_function_info_v1!(pg_finfo_deident_pseudonymize);

/// M for the functions declared `(value text, domain text, key_id text)`.
///
/// # Safety
/// `fcinfo` is fmgr's call info of such a STRICT function.
unsafe fn mac_of_value_domain_key(fcinfo: pg_sys::FunctionCallInfo) -> [u8; 32] {
    preload::check().or_report();
    // SAFETY: per the contract, three non-NULL text arguments.
    let (value, domain, key_id) = unsafe {
        (fmgr::arg_bytes(fcinfo, 0), fmgr::arg_bytes(fcinfo, 1), fmgr::arg_bytes(fcinfo, 2))
    };
    keyed_mac(fcinfo, value, domain, key_id).or_report()
}

/// `pseudonymize_uuid(value text, domain text, key_id text) RETURNS uuid`
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_pseudonymize_uuid(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr calls this function as declared below.
    let bytes = pseudonym::to_uuid(&unsafe { mac_of_value_domain_key(fcinfo) });
    // SAFETY: a uuid Datum is a pointer to its 16 bytes (uuid.h); palloc returns 16 writable
    // bytes in the current memory context, or raises an ERROR.
    unsafe {
        let ptr = pg_sys::palloc(bytes.len()).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len());
        pg_sys::Datum::from(ptr)
    }
}
pg_function_info_v1!(pg_finfo_deident_pseudonymize_uuid);

/// `pseudonymize_bigint(value text, domain text, key_id text) RETURNS bigint`
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_pseudonymize_bigint(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr calls this function as declared below.
    let m = unsafe { mac_of_value_domain_key(fcinfo) };
    // int8 is pass-by-value on every 64-bit build PostgreSQL supports (USE_FLOAT8_BYVAL).
    pg_sys::Datum::from(pseudonym::to_bigint(&m))
}
pg_function_info_v1!(pg_finfo_deident_pseudonymize_bigint);

/// `key_fingerprint(key_id text) RETURNS text`: 16 hex digits that identify a key without
/// revealing it, so two servers can check that they share one.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_key_fingerprint(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr calls this STRICT function with its one declared argument, not NULL.
    let key_id = unsafe { fmgr::arg_bytes(fcinfo, 0) };
    preload::check().or_report();
    let fingerprint = keycache::with_key(key_id, false, pseudonym::fingerprint).or_report();
    fmgr::text_datum(fingerprint.as_bytes())
}
pg_function_info_v1!(pg_finfo_deident_key_fingerprint);

extension_sql!(
    r#"
CREATE FUNCTION deident.pseudonymize(value text, domain text DEFAULT '', length integer DEFAULT 22, key_id text DEFAULT '')
RETURNS text LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'deident_pseudonymize';
COMMENT ON FUNCTION deident.pseudonymize(text, text, integer, text) IS
'keyed pseudonym of a text value (its UTF-8 bytes), in base 62: HMAC-SHA256 under the domain''s key';

CREATE FUNCTION deident.pseudonymize(value bytea, domain text DEFAULT '', length integer DEFAULT 22, key_id text DEFAULT '')
RETURNS text LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'deident_pseudonymize';
COMMENT ON FUNCTION deident.pseudonymize(bytea, text, integer, text) IS
'keyed pseudonym of a bytea value (its bytes as they are), in base 62';

CREATE FUNCTION deident.pseudonymize_uuid(value text, domain text DEFAULT '', key_id text DEFAULT '')
RETURNS uuid LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'deident_pseudonymize_uuid';
COMMENT ON FUNCTION deident.pseudonymize_uuid(text, text, text) IS
'keyed pseudonym of a text value as an RFC 9562 version-8 UUID';

CREATE FUNCTION deident.pseudonymize_bigint(value text, domain text DEFAULT '', key_id text DEFAULT '')
RETURNS bigint LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'deident_pseudonymize_bigint';
COMMENT ON FUNCTION deident.pseudonymize_bigint(text, text, text) IS
'keyed pseudonym of a text value as a non-negative bigint';

CREATE FUNCTION deident.key_fingerprint(key_id text DEFAULT '')
RETURNS text LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'deident_key_fingerprint';
COMMENT ON FUNCTION deident.key_fingerprint(text) IS
'16 hex digits identifying a key (default: the active key) without revealing it';
"#,
    name = "pseudonym_functions",
);
