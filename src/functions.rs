//! SQL entry points for pseudonymization (SPEC "Pseudonymization", "Keys").
//!
//! All are STRICT (NULL in, NULL out), STABLE (the result depends on the key ring, which a
//! reload can change) and PARALLEL SAFE (workers read the same key file). `key_id` '' means
//! the active key: a NULL default would make a STRICT function return NULL. They are plain
//! fmgr functions (see `fmgr.rs` for why), declared by the SQL at the end of this file. The
//! key ring is fixed per statement and each call site keeps its domain key, or for
//! `pseudonymize_int` its expanded AES key (`keycache`); text is hashed, and a domain used as
//! an FF1 tweak, as UTF-8 in every database encoding (`encoding`).

use std::borrow::Cow;

use pgrx::prelude::*;

use crate::encoding;
use crate::enforcement;
use crate::error::{DeidentError, OrReport, Result};
use crate::ff1::IntPermutation;
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

/// The pseudonym entry points' common part: M = HMAC-SHA256(DK(key_id, domain), value), the
/// value converted to UTF-8 unless it is a bytea (`raw`).
///
/// # Safety
/// `fcinfo` is fmgr's call info of a STRICT function whose arguments `value`, `domain` and
/// `key_id` are at those positions, non-NULL, of type text (bytea for `value` when `raw`).
unsafe fn mac_of(
    fcinfo: pg_sys::FunctionCallInfo,
    value: usize,
    domain: usize,
    key_id: usize,
    raw: bool,
) -> [u8; 32] {
    preload::check().or_report();
    // SAFETY: per the contract.
    unsafe { enforcement::check_keyed_call(fcinfo) };
    // SAFETY: per the contract.
    let (v, d, k) = unsafe {
        (
            fmgr::arg_bytes(fcinfo, value),
            fmgr::arg_bytes(fcinfo, domain),
            fmgr::arg_bytes(fcinfo, key_id),
        )
    };
    let v = if raw { Cow::Borrowed(v) } else { encoding::to_utf8(v) };
    let args =
        keycache::Args { fcinfo, domain: d, domain_arg: domain, key_id: k, key_id_arg: key_id };
    keycache::mac(&args, &v).or_report()
}

/// `pseudonymize(value text|bytea, domain text, length int, key_id text) RETURNS text`.
///
/// # Safety
/// As `mac_of`, for `(value, domain text, length int, key_id text)`.
unsafe fn pseudonymize(fcinfo: pg_sys::FunctionCallInfo, raw: bool) -> pg_sys::Datum {
    // SAFETY: fmgr calls this STRICT function with its four declared arguments, none NULL.
    let length = checked_length(unsafe { fmgr::arg_i32(fcinfo, 2) }).or_report();
    // SAFETY: as above.
    let m = unsafe { mac_of(fcinfo, 0, 1, 3, raw) };
    let mut buf = [0u8; MAX_LENGTH as usize];
    pseudonym::encode_base62(&m, length, &mut buf);
    fmgr::text_datum(&buf[..length])
}

/// `pseudonymize(value text, ...)`: the value's UTF-8 bytes.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_pseudonymize(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr calls this function as declared below.
    unsafe { pseudonymize(fcinfo, false) }
}
pg_function_info_v1!(pg_finfo_deident_pseudonymize);

/// `pseudonymize(value bytea, ...)`: the bytes as they are.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_pseudonymize_bytea(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr calls this function as declared below.
    unsafe { pseudonymize(fcinfo, true) }
}
pg_function_info_v1!(pg_finfo_deident_pseudonymize_bytea);

/// `pseudonymize_uuid(value text, domain text, key_id text) RETURNS uuid`
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_pseudonymize_uuid(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr calls this function as declared below.
    let bytes = pseudonym::to_uuid(&unsafe { mac_of(fcinfo, 0, 1, 2, false) });
    // A uuid Datum is a pointer to its 16 bytes (uuid.h).
    fmgr::bytes_datum(&bytes)
}
pg_function_info_v1!(pg_finfo_deident_pseudonymize_uuid);

/// `pseudonymize_bigint(value text, domain text, key_id text) RETURNS bigint`
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_pseudonymize_bigint(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: fmgr calls this function as declared below.
    let m = unsafe { mac_of(fcinfo, 0, 1, 2, false) };
    // int8 is pass-by-value on every 64-bit build PostgreSQL supports (USE_FLOAT8_BYVAL).
    pg_sys::Datum::from(pseudonym::to_bigint(&m))
}
pg_function_info_v1!(pg_finfo_deident_pseudonymize_bigint);

/// `pseudonymize_int(value integer, domain text, key_id text) RETURNS integer`: the value under
/// FF1 keyed by the ring key (not a domain key), with the domain (as UTF-8) as the tweak
/// (`ff1`). The expanded AES key stays at the call site (`keycache::with_derived_key`); the
/// tweak is absorbed on every call: eleven AES blocks for a domain of up to 13 bytes, one more
/// per 16 bytes beyond, with interrupt checks in a long one.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_pseudonymize_int(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    preload::check().or_report();
    // SAFETY: fmgr's call info.
    unsafe { enforcement::check_keyed_call(fcinfo) };
    // SAFETY: fmgr calls this STRICT function with its three declared arguments (integer,
    // text, text), none NULL.
    let (value, domain, key_id) = unsafe {
        (fmgr::arg_i32(fcinfo, 0), fmgr::arg_bytes(fcinfo, 1), fmgr::arg_bytes(fcinfo, 2))
    };
    let tweak = encoding::to_utf8(domain);
    // SAFETY: this entry point's fn_extra is used by with_derived_key alone, with one type.
    let out = unsafe {
        keycache::with_derived_key(fcinfo, key_id, 2, IntPermutation::new, |p| {
            p.permute_interruptible(&tweak, value, || {
                pg_sys::check_for_interrupts!();
            })
        })
    }
    .or_report();
    // int4 is pass-by-value (Int32GetDatum).
    pg_sys::Datum::from(out)
}
pg_function_info_v1!(pg_finfo_deident_pseudonymize_int);

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
    let fingerprint = keycache::with_key(key_id, pseudonym::fingerprint).or_report();
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
AS 'MODULE_PATHNAME', 'deident_pseudonymize_bytea';
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

CREATE FUNCTION deident.pseudonymize_int(value integer, domain text DEFAULT '', key_id text DEFAULT '')
RETURNS integer LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'deident_pseudonymize_int';
COMMENT ON FUNCTION deident.pseudonymize_int(integer, text, text) IS
'keyed permutation of the integer range (FF1 over AES-256, the domain as tweak): distinct values never collide';

CREATE FUNCTION deident.key_fingerprint(key_id text DEFAULT '')
RETURNS text LANGUAGE c STRICT STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'deident_key_fingerprint';
COMMENT ON FUNCTION deident.key_fingerprint(text) IS
'16 hex digits identifying a key (default: the active key) without revealing it';
"#,
    name = "pseudonym_functions",
);
