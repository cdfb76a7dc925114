//! Every `deident.*` setting (SPEC "Keys").
//!
//! The key settings are PGC_SIGHUP (postgresql.conf or ALTER SYSTEM, then a reload) and
//! GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, so that a role without superuser (or
//! pg_read_all_settings, which PostgreSQL lets read any setting) can neither SHOW them,
//! read them with current_setting(), nor find them in pg_settings (guc.c, `ConfigOptionIsVisible`
//! and `GetConfigOptionByNum`). The prefix is reserved, so nobody can create a placeholder
//! `deident.*` setting of their own (guc.c, `MarkGUCPrefixReserved`).

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static KEY_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ACTIVE_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// Workplace Analytics' default minimum group size.
pub static MIN_GROUP_SIZE: GucSetting<i32> = GucSetting::<i32>::new(5);

/// ε per group and dp aggregate (SPEC "Differentially private aggregates").
pub static DP_EPSILON: GucSetting<f64> = GucSetting::<f64>::new(0.5);
/// How many groups of one dp aggregate call a person may count in (L).
pub static DP_MAX_GROUPS_PER_PERSON: GucSetting<i32> = GucSetting::<i32>::new(1);
/// The probability bound of releasing a group whose existence depends on one person.
pub static DP_DELTA: GucSetting<f64> = GucSetting::<f64>::new(1e-6);

/// Registers the settings; called once, from `_PG_init` during preload.
pub fn register() {
    let secret = GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL;
    GucRegistry::define_string_guc(
        c"deident.key_file",
        c"Path of the pseudonymization key-ring file.",
        c"One KEY_ID:HEX line per key; the file must be owned by the server's user and have mode 0600. A relative path is taken from the data directory.",
        &KEY_FILE,
        GucContext::Sighup,
        secret,
    );
    GucRegistry::define_string_guc(
        c"deident.active_key",
        c"Id of the key used when a call names none; empty means the first key in the file.",
        c"",
        &ACTIVE_KEY,
        GucContext::Sighup,
        secret,
    );
    // PGC_SUSET: only a superuser (or a role granted SET on it) changes it, so an analyst
    // cannot lower it; ALTER ROLE / ALTER DATABASE ... SET by a superuser raise it per role or
    // database. It is not secret: analysts may read it, to know why a group is NULL.
    // GUC_NO_RESET_ALL: a pooler that SETs it as a superuser and then SET ROLEs to an analyst
    // must not have it undone by the analyst's RESET ALL or DISCARD ALL (guc.c,
    // `ResetAllOptions`, skips such settings, as it does `role`).
    GucRegistry::define_int_guc(
        c"deident.min_group_size",
        c"Fewest distinct persons a group needs for the k_* aggregates to answer.",
        c"Groups with fewer distinct non-NULL persons give NULL. Memory per group of k_count, k_sum and k_avg grows with it.",
        &MIN_GROUP_SIZE,
        2,
        100_000,
        GucContext::Suset,
        GucFlags::NO_RESET_ALL,
    );
    // PGC_USERSET: the analyst chooses how much of the budget each answer spends. The range
    // keeps every noise scale within the sampler's (noise.rs MAX_SCALE: ε ≥ 0.01 with bounds
    // within ±2^52); ε above 100 is no protection worth charging for.
    GucRegistry::define_float_guc(
        c"deident.dp_epsilon",
        c"Privacy loss ε that each dp aggregate spends on each group it answers.",
        c"Each statement is charged this times dp_max_groups_per_person for each dp aggregate call, before it runs; smaller is more private and noisier.",
        &DP_EPSILON,
        0.01,
        100.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    // PGC_USERSET: a statement is charged ε × L per dp aggregate call, so a larger L costs the
    // analyst more (dp/charge.rs).
    GucRegistry::define_int_guc(
        c"deident.dp_max_groups_per_person",
        c"Most groups of one dp aggregate call that a person may count in.",
        c"A statement is charged dp_epsilon times this for each dp aggregate call, before it runs; a person found in more groups counts in that many of them, chosen from the person's own groups.",
        &DP_MAX_GROUPS_PER_PERSON,
        1,
        10_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    // PGC_SUSET, as min_group_size, and kept through RESET ALL for the same reason.
    GucRegistry::define_float_guc(
        c"deident.dp_delta",
        c"Largest probability with which a dp aggregate answers a group whose existence depends on one person.",
        c"Sets the release threshold of the noisy distinct-person count.",
        &DP_DELTA,
        1e-12,
        0.01,
        GucContext::Suset,
        GucFlags::NO_RESET_ALL,
    );
    reserve_prefix();
}

#[cfg(not(any(feature = "pg13", feature = "pg14")))]
fn reserve_prefix() {
    // SAFETY: called from _PG_init in the postmaster, after this prefix's settings are defined;
    // the string is a static C string.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"deident".as_ptr()) }
}

#[cfg(any(feature = "pg13", feature = "pg14"))]
fn reserve_prefix() {
    // Before PostgreSQL 15 the closest is a warning for (and, from 14, removal of) placeholders.
    // SAFETY: as above.
    unsafe { pg_sys::EmitWarningsOnPlaceholders(c"deident".as_ptr()) }
}

/// `deident.min_group_size` (the GUC bounds it to 2..=100000, so the conversion is exact).
pub fn min_group_size() -> u32 {
    u32::try_from(MIN_GROUP_SIZE.get()).unwrap_or(u32::MAX)
}

/// The setting's current value, '' when unset. Reads allocate, so the key cache reads the
/// settings only when it checks the ring (once per statement and transaction), not per row.
pub fn string_value(setting: &GucSetting<Option<CString>>) -> String {
    setting.get().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

pub fn dp_epsilon() -> f64 {
    DP_EPSILON.get()
}

pub fn dp_delta() -> f64 {
    DP_DELTA.get()
}

/// `deident.dp_max_groups_per_person` (the setting's range makes it positive).
pub fn dp_max_groups_per_person() -> u32 {
    u32::try_from(DP_MAX_GROUPS_PER_PERSON.get()).unwrap_or(1)
}
