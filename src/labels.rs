//! The `deident` security-label provider (SPEC "Security labels"): which columns hold
//! personal data, and which roles see pseudonyms only, recorded in the catalog itself
//! (pg_seclabel, pg_shseclabel), so that labels follow renames, go away with their object, and
//! survive pg_dump / pg_restore.
//!
//! The relabel hook only sorts the object by class and hands it to the pure check in `policy`,
//! as PostgreSQL's own providers do (src/test/modules/dummy_seclabel, contrib/sepgsql/label.c).
//! Who may label: PostgreSQL already requires ownership of the table (seclabel.c,
//! `ExecSecLabelStmt`); pg_deident requires a superuser (`policy::check` says why).
//!
//! SECURITY LABEL sends no cache invalidation of its own, and what a restricted role sees
//! depends on the labels: so an accepted label invalidates the relation's relcache entry (a
//! column label) or every relcache entry (a role label), at commit and in every backend. That
//! re-plans cached plans built under the old labels (plancache.c listens to relcache
//! invalidations) and clears the label caches of `enforcement`.

use std::ffi::{c_char, CStr};

use pgrx::prelude::*;
use pgrx::{pg_guard, pg_sys};

use crate::enforcement::{self, catalog};
use crate::error::DeidentError;
use crate::policy::{self, Target};

/// The relabel hook, called by SECURITY LABEL FOR deident (and by pg_restore's replay of it).
#[pg_guard]
unsafe extern "C-unwind" fn check_object_label(
    object: *const pg_sys::ObjectAddress,
    seclabel: *const c_char,
) {
    // SAFETY: PostgreSQL passes a valid ObjectAddress and a NUL-terminated label or NULL.
    let (object, label) = unsafe {
        let label = if seclabel.is_null() {
            None
        } else {
            Some(CStr::from_ptr(seclabel).to_string_lossy().into_owned())
        };
        (&*object, label)
    };
    let target = if object.classId == pg_sys::RelationRelationId {
        if object.objectSubId > 0 {
            // SAFETY: a syscache lookup of a relation that ExecSecLabelStmt has locked.
            Target::Column(unsafe { pg_sys::get_rel_relkind(object.objectId) } as u8)
        } else {
            Target::Relation
        }
    } else if object.classId == pg_sys::AuthIdRelationId {
        // SAFETY: a syscache lookup of the role ExecSecLabelStmt resolved.
        Target::Role { superuser: unsafe { pg_sys::superuser_arg(object.objectId) } }
    } else {
        Target::Other
    };
    // SAFETY: superuser() checks the current user; we are inside a transaction.
    let superuser = unsafe { pg_sys::superuser() };
    if let Err(e) = policy::check(target, label.as_deref(), superuser) {
        DeidentError::Label(e).report();
    }
    // A restricted role must own no labelled relation: as its owner it could change it in ways
    // no query shows (REINDEX with its own index function, ALTER DOMAIN, the functions its
    // policies call). Refused both ways a label can bring the two together.
    if label.is_some() {
        match target {
            Target::Column(_)
                if enforcement::roles::is_restricted(catalog::rel_owner(object.objectId)) =>
            {
                DeidentError::Label(policy::LabelError::OwnerRestricted).report()
            }
            Target::Role { .. } if owns_labelled(object.objectId) => {
                DeidentError::Label(policy::LabelError::RestrictedOwner).report()
            }
            _ => {}
        }
    }
    // SAFETY: registering invalidations for the end of the command and the commit.
    unsafe {
        match target {
            Target::Column(_) => {
                // A column's label covers the same-named column of every descendant
                // (`catalog`): plans made for a child read directly depend on it too.
                pg_sys::CacheInvalidateRelcacheByRelid(object.objectId);
                let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
                for d in catalog::descendants_locked(object.objectId, lock) {
                    pg_sys::CacheInvalidateRelcacheByRelid(d);
                }
            }
            _ => pg_sys::CacheInvalidateRelcacheAll(),
        }
    }
    catalog::forget();
}

/// Does `role`, or a role that has its privileges (which the label would restrict too), own a
/// relation with a deident column label?
fn owns_labelled(role: pg_sys::Oid) -> bool {
    catalog::labelled_relations().into_iter().any(|relid| {
        let owner = catalog::rel_owner(relid);
        // SAFETY: syscache and acl.c's role-membership cache, inside a transaction. A
        // superuser "has the privileges" of every role, and is never restricted.
        owner != pg_sys::InvalidOid
            && unsafe { !pg_sys::superuser_arg(owner) && pg_sys::has_privs_of_role(owner, role) }
    })
}

/// Registers the provider; called once, from `_PG_init` during preload.
pub fn register() {
    // SAFETY: the provider name is a static C string; the hook is a guarded C function.
    unsafe { pg_sys::register_label_provider(c"deident".as_ptr(), Some(check_object_label)) }
}

/// `deident._column_labels(rel oid)`: the effective label of each labelled column of `rel`
/// (its own, or its ancestors': partitions and inheritance children are covered by their
/// parents' labels), in canonical lower case. The `personal_data` view and `k_anonymity` read
/// the labels through it, so SQL and the enforcement hooks cannot disagree.
#[pg_extern(stable, parallel_safe, strict)]
fn _column_labels(
    rel: pg_sys::Oid,
) -> TableIterator<'static, (name!(column_name, String), name!(attnum, i16), name!(label, String))>
{
    crate::preload::check().unwrap_or_else(|e| e.report());
    let rows: Vec<_> = catalog::column_labels(rel, false)
        .iter()
        .map(|c| (c.name.clone(), c.attnum, c.label.as_str().to_string()))
        .collect();
    TableIterator::new(rows)
}

pgrx::extension_sql_file!("../sql/labels.sql", name = "labels", requires = [_column_labels]);
