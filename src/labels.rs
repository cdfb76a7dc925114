//! The `deident` security-label provider (SPEC "Security labels"): which columns hold
//! personal data, recorded in the catalog itself (pg_seclabel), so that it follows renames,
//! goes away with the column, and survives pg_dump / pg_restore.
//!
//! The relabel hook only sorts the object by class and hands it to a pure check, as
//! PostgreSQL's own providers do (src/test/modules/dummy_seclabel, contrib/sepgsql/label.c).
//! Who may label: PostgreSQL already requires ownership of the table (seclabel.c,
//! `ExecSecLabelStmt`); pg_deident also requires a superuser, because these labels are the
//! DBA's statement of what is personal data and (with restricted roles) of what an analyst may
//! see: a table owner must not be able to unlabel a column to read it in the clear.

use std::ffi::{c_char, CStr};

use pgrx::pg_guard;
use pgrx::pg_sys;

use crate::error::DeidentError;

/// The column labels, in their canonical (lower-case) spelling.
pub const COLUMN_LABELS: [&str; 3] = ["identifier", "quasi_identifier", "sensitive"];

/// What a label statement asks for, as far as the pure check needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A column of a relation of this relkind.
    Column(u8),
    /// A relation itself (objsubid 0).
    Relation,
    Role,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelError {
    NotSuperuser,
    UnknownColumnLabel(String),
    ColumnOfUnsupportedRelation,
    RoleLabelNotYet,
    NotAColumn,
}

/// The canonical form of a column label, if it is one (case-insensitive, nothing else
/// tolerated: ' identifier' is a typo to report, not to guess at).
pub fn canonical_column_label(label: &str) -> Option<&'static str> {
    COLUMN_LABELS.iter().copied().find(|l| l.eq_ignore_ascii_case(label))
}

/// The relation kinds whose columns can be labelled: tables, partitioned tables, foreign
/// tables, views and materialized views (pg_class.h RELKIND_*).
const LABELLED_RELKINDS: &[u8] = b"rpfvm";

/// Decides whether `label` (None: removal) may be put on `target`.
pub fn check(target: Target, label: Option<&str>, superuser: bool) -> Result<(), LabelError> {
    if !superuser {
        return Err(LabelError::NotSuperuser);
    }
    let Some(label) = label else {
        // Removing a label is always allowed: it cannot make anything less protected than
        // a label that was checked when it was set.
        return Ok(());
    };
    match target {
        Target::Column(relkind) => {
            if !LABELLED_RELKINDS.contains(&relkind) {
                return Err(LabelError::ColumnOfUnsupportedRelation);
            }
            canonical_column_label(label)
                .map(|_| ())
                .ok_or_else(|| LabelError::UnknownColumnLabel(label.to_string()))
        }
        Target::Role => Err(LabelError::RoleLabelNotYet),
        Target::Relation | Target::Other => Err(LabelError::NotAColumn),
    }
}

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
        Target::Role
    } else {
        Target::Other
    };
    // SAFETY: superuser() checks the current user; we are inside a transaction.
    let superuser = unsafe { pg_sys::superuser() };
    if let Err(e) = check(target, label.as_deref(), superuser) {
        DeidentError::Label(e).report();
    }
}

/// Registers the provider; called once, from `_PG_init` during preload.
pub fn register() {
    // SAFETY: the provider name is a static C string; the hook is a guarded C function.
    unsafe { pg_sys::register_label_provider(c"deident".as_ptr(), Some(check_object_label)) }
}

pgrx::extension_sql_file!("../sql/labels.sql", name = "labels");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_labels_are_case_insensitive_and_exact() {
        for (given, canonical) in [
            ("identifier", Some("identifier")),
            ("IDENTIFIER", Some("identifier")),
            ("Quasi_Identifier", Some("quasi_identifier")),
            ("sensitive", Some("sensitive")),
            (" identifier", None),
            ("quasi-identifier", None),
            ("restricted", None),
            ("", None),
        ] {
            assert_eq!(canonical_column_label(given), canonical, "{given:?}");
        }
    }

    #[test]
    fn each_target_is_checked() {
        let col = Target::Column(b'r');
        assert_eq!(check(col, Some("Sensitive"), true), Ok(()));
        assert_eq!(check(Target::Column(b'p'), Some("identifier"), true), Ok(()));
        assert_eq!(check(Target::Column(b'v'), Some("identifier"), true), Ok(()));
        assert_eq!(check(col, None, true), Ok(()));
        assert_eq!(
            check(col, Some("secret"), true),
            Err(LabelError::UnknownColumnLabel("secret".into()))
        );
        assert_eq!(
            check(Target::Column(b'i'), Some("identifier"), true),
            Err(LabelError::ColumnOfUnsupportedRelation)
        );
        assert_eq!(check(Target::Relation, Some("identifier"), true), Err(LabelError::NotAColumn));
        assert_eq!(check(Target::Other, Some("identifier"), true), Err(LabelError::NotAColumn));
        assert_eq!(check(Target::Role, Some("restricted"), true), Err(LabelError::RoleLabelNotYet));
        assert_eq!(check(Target::Role, None, true), Ok(()));
        assert_eq!(check(col, Some("identifier"), false), Err(LabelError::NotSuperuser));
        assert_eq!(check(col, None, false), Err(LabelError::NotSuperuser));
    }
}
