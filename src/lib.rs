//! pg_deident: de-identification of personal data inside PostgreSQL.
//!
//! SQL entry points live in `functions` (pseudonyms), `aggregates` (k-anonymity) and `labels`
//! (the label provider); the pure algorithms (`pseudonym`, `ff1`, `keys`,
//! `aggregates::state`, `policy`) have no PostgreSQL types and run under `cargo test`.
//! `keycache` holds the key ring per statement, `hooks` every PostgreSQL hook, `error` every
//! SQLSTATE, and `enforcement` decides what a restricted role may see and do.

mod aggregates;
mod dp;
mod encoding;
mod enforcement;
mod error;
mod ff1;
mod fmgr;
mod functions;
mod guc;
mod hooks;
mod k_anonymity;
mod keycache;
mod keys;
mod labels;
mod policy;
mod preload;
mod pseudonym;
/// Public: its items are the sealed-state format, not yet called from SQL (issue 11).
pub mod seal;
#[cfg(any(test, feature = "pg_test"))]
mod tests;

pgrx::pg_module_magic!(name, version);

/// Runs when the library is loaded. Everything is registered only when that happens through
/// `shared_preload_libraries`: settings, the label provider, shared memory and hooks must exist in
/// every backend, from the postmaster on, or not at all. A library loaded on demand registers
/// nothing, and every entry point refuses to run (see `preload`).
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    if !preload::note_load() {
        return;
    }
    guc::register();
    labels::register();
    keycache::register_xact_callbacks();
    enforcement::register_callbacks();
    dp::charge::register_callbacks();
    aggregates::expanded::register_fork_handler();
    hooks::install();
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        // The key file is relative to the test cluster's data directory; the tests write it.
        vec!["shared_preload_libraries = 'pg_deident'", "deident.key_file = 'deident_test.keys'"]
    }
}
