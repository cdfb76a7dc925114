//! The fail-closed tripwire: whatever the rewrite missed, a restricted role's plan that still
//! reads an identifier column raw, or writes to a labelled relation, is stopped before it runs.
//!
//! It looks at what the executor checks permissions on: each RTE_RELATION's selected columns
//! (bit of attnum 0: the whole row). The rewrite clears the identifier columns' bits of the
//! entries it masked (after checking their privileges), and SQL has no way to clear them, so a
//! raw read cannot pass for a masked one. Called from ExecutorCheckPerms_hook (every plan's
//! start, and COPY, which scans a table without a plan) and from ExecutorRun (a cursor or a
//! portal planned for another role and run after SET ROLE).

use pgrx::pg_sys;
use pgrx::pg_sys::RangeTblEntry;

use super::rewrite::rel_name;
use super::{bit, catalog, list_ptrs, STATISTIC_EXT_DATA_RELATION_ID, WRITE};
use crate::error::DeidentError;

pub enum Violation {
    Write(pg_sys::Oid),
    /// (the written relation, the one its foreign key references)
    KeyedWrite(pg_sys::Oid, pg_sys::Oid),
    RawRead(pg_sys::Oid),
    /// A shard of a Citus table, which carries no labels (catalog::citus_shard).
    Shard(pg_sys::Oid),
}

impl Violation {
    pub fn report(self) -> ! {
        match self {
            Violation::Write(r) => DeidentError::RestrictedWrite { relation: rel_name(r) }.report(),
            Violation::KeyedWrite(r, f) => DeidentError::RestrictedKeyedWrite {
                relation: rel_name(r),
                referenced: rel_name(f),
            }
            .report(),
            Violation::RawRead(r) => {
                DeidentError::RestrictedRawRead { relation: rel_name(r) }.report()
            }
            Violation::Shard(r) => DeidentError::RestrictedShard { relation: rel_name(r) }.report(),
        }
    }
}

/// The relation with identifier columns that a foreign key of `rte`'s relation references, if
/// `rte` inserts rows, or updates a column of such a key: the key's check, run as the
/// referenced table's owner, would compare raw values.
///
/// # Safety
/// `rte` is a valid RTE_RELATION entry.
pub unsafe fn keyed_write(rte: *mut RangeTblEntry) -> Option<pg_sys::Oid> {
    const KEYED_WRITE: u64 = (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE) as u64;
    // SAFETY: per the contract.
    unsafe {
        let perms = (*rte).requiredPerms as u64;
        if perms & KEYED_WRITE == 0 {
            return None;
        }
        let updated =
            if perms & pg_sys::ACL_INSERT as u64 != 0 { None } else { Some((*rte).updatedCols) };
        catalog::referenced_identifiers((*rte).relid, updated)
    }
}

/// Checks a range table for a restricted role.
///
/// # Safety
/// `rtable` is NULL or a valid List of RangeTblEntry.
pub unsafe fn check(rtable: *mut pg_sys::List) -> Result<(), Violation> {
    // SAFETY: per the contract.
    unsafe {
        for rte in list_ptrs::<RangeTblEntry>(rtable) {
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
                continue;
            }
            let relid = (*rte).relid;
            let selected = (*rte).selectedCols;
            if relid == pg_sys::StatisticRelationId || relid == STATISTIC_EXT_DATA_RELATION_ID {
                if !selected.is_null() {
                    return Err(Violation::RawRead(relid));
                }
                continue;
            }
            if catalog::citus_shard(relid) {
                return Err(Violation::Shard(relid));
            }
            // Writes count the labels of the whole inheritance tree (catalog::tree_labelled).
            if (*rte).requiredPerms as u64 & WRITE != 0 && catalog::tree_labelled(relid) {
                return Err(Violation::Write(relid));
            }
            if let Some(referenced) = keyed_write(rte) {
                return Err(Violation::KeyedWrite(relid, referenced));
            }
            let labels = catalog::column_labels(relid, (*rte).inh);
            if labels.is_empty() {
                continue;
            }
            if selected.is_null() {
                continue;
            }
            let whole_row = pg_sys::bms_is_member(bit(0), selected);
            for a in catalog::identifiers(&labels) {
                if whole_row || pg_sys::bms_is_member(bit(a as i32), selected) {
                    return Err(Violation::RawRead(relid));
                }
            }
        }
    }
    Ok(())
}
