//! SQL entry points for pseudonymization (SPEC "Pseudonymization", "Keys").
//!
//! All are STRICT (NULL in, NULL out), STABLE (the result depends on the key ring, which a
//! reload can change) and PARALLEL SAFE (workers read the same key file). `key_id` '' means
//! the active key: a NULL default would make a STRICT function return NULL.

use pgrx::prelude::*;

use crate::error::{DeidentError, OrReport, Result};
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

fn mac(value: &[u8], domain: &str, key_id: &str) -> Result<[u8; 32]> {
    preload::check()?;
    keycache::with_domain_key(key_id, domain.as_bytes(), |dk| dk.mac(value))
}

fn text_pseudonym(value: &[u8], domain: &str, length: i32, key_id: &str) -> Result<String> {
    let length = checked_length(length)?;
    let m = mac(value, domain, key_id)?;
    let mut buf = [0u8; MAX_LENGTH as usize];
    pseudonym::encode_base62(&m, length, &mut buf);
    // The base-62 alphabet is ASCII, so the bytes are UTF-8.
    Ok(buf[..length].iter().map(|&b| char::from(b)).collect())
}

/// The pseudonym of a text value (its UTF-8 bytes), in base 62.
#[pg_extern(stable, strict, parallel_safe)]
fn pseudonymize(
    value: &str,
    domain: default!(&str, "''"),
    length: default!(i32, 22),
    key_id: default!(&str, "''"),
) -> String {
    text_pseudonym(value.as_bytes(), domain, length, key_id).or_report()
}

/// The pseudonym of a bytea value (its bytes as they are), in base 62.
#[pg_extern(stable, strict, parallel_safe, name = "pseudonymize")]
fn pseudonymize_bytea(
    value: &[u8],
    domain: default!(&str, "''"),
    length: default!(i32, 22),
    key_id: default!(&str, "''"),
) -> String {
    text_pseudonym(value, domain, length, key_id).or_report()
}

/// The pseudonym as an RFC 9562 version-8 UUID.
#[pg_extern(stable, strict, parallel_safe)]
fn pseudonymize_uuid(
    value: &str,
    domain: default!(&str, "''"),
    key_id: default!(&str, "''"),
) -> pgrx::Uuid {
    let m = mac(value.as_bytes(), domain, key_id).or_report();
    pgrx::Uuid::from_bytes(pseudonym::to_uuid(&m))
}

/// The pseudonym as a non-negative bigint.
#[pg_extern(stable, strict, parallel_safe)]
fn pseudonymize_bigint(
    value: &str,
    domain: default!(&str, "''"),
    key_id: default!(&str, "''"),
) -> i64 {
    let m = mac(value.as_bytes(), domain, key_id).or_report();
    pseudonym::to_bigint(&m)
}

/// 16 hex digits that identify a key without revealing it, so two servers can check that they
/// share one.
#[pg_extern(stable, strict, parallel_safe)]
fn key_fingerprint(key_id: default!(&str, "''")) -> String {
    preload::check().or_report();
    keycache::with_key(key_id, pseudonym::fingerprint).or_report()
}
