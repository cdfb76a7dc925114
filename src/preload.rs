//! The extension needs `shared_preload_libraries` (SPEC "Installation"). `_PG_init` records
//! whether it ran during preload; `CREATE EXTENSION` and every entry point check it.

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::{DeidentError, Result};

static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Called first thing in `_PG_init`; true when this is the preload.
pub fn note_load() -> bool {
    // SAFETY: a plain global of miscinit.c, read in the process that loads the library.
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    if preloading {
        PRELOADED.store(true, Ordering::Relaxed);
    }
    preloading
}

#[inline]
pub fn check() -> Result<()> {
    if PRELOADED.load(Ordering::Relaxed) {
        Ok(())
    } else {
        Err(DeidentError::NotPreloaded)
    }
}

/// Called by the extension script, so that `CREATE EXTENSION` fails with a hint when the
/// server did not preload the library.
#[pg_extern(volatile, parallel_unsafe)]
fn _assert_preloaded() {
    use crate::error::OrReport;
    check().or_report()
}

// The schema must be the installer's alone: a schema named deident made beforehand, owned by
// or writable by a role without superuser, or already holding objects, could hold objects
// (better-matching overloads of functions or operators the script and its callers use) that
// would run with the rights of whoever calls them, the installing superuser first. Checked
// first of all (bootstrap), with every name schema-qualified. A schema that CREATE EXTENSION
// makes itself passes: it is new, empty and the installer's.
extension_sql!(
    r#"
DO $$
DECLARE
  ns pg_catalog.oid := pg_catalog.to_regnamespace('deident');
BEGIN
  IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_namespace n
            JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
           WHERE n.oid OPERATOR(pg_catalog.=) ns)
     OR EXISTS (SELECT FROM pg_catalog.pg_namespace n,
                       LATERAL pg_catalog.aclexplode(n.nspacl) a
                 WHERE n.oid OPERATOR(pg_catalog.=) ns
                   AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
                   AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
                                      WHERE r.oid OPERATOR(pg_catalog.=) a.grantee), false))
     -- objects in the schema depend on it; the extension being created does too (extension.c)
     OR EXISTS (SELECT FROM pg_catalog.pg_depend d
                 WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
                   AND d.refobjid OPERATOR(pg_catalog.=) ns
                   AND d.classid OPERATOR(pg_catalog.<>) 'pg_catalog.pg_extension'::pg_catalog.regclass) THEN
    RAISE EXCEPTION 'schema "deident" already exists and is not the installing superuser''s alone'
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'It is owned by, or grants CREATE to, a role that is not a superuser, or it already holds objects.',
            HINT = 'Drop or rename that schema, and check what it contains, then CREATE EXTENSION pg_deident again.';
  END IF;
END $$;
"#,
    name = "schema_owner_check",
    bootstrap
);

// The preload check runs once, in the script, and its function goes with it. The schema is
// for every role to use; what each may call is decided per function (EXECUTE, granted to
// PUBLIC by default, as PostgreSQL does).
extension_sql!(
    "SELECT deident._assert_preloaded();\n\
     DROP FUNCTION deident._assert_preloaded();\n\
     GRANT USAGE ON SCHEMA deident TO PUBLIC;\n",
    name = "assert_preloaded",
    requires = [_assert_preloaded]
);
