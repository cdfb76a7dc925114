//! The labels of a relation as the catalog holds them, read without SQL (the planner hook must
//! not re-enter the planner through SPI): pg_seclabel by index, pg_inherits for the relatives.
//!
//! A column's effective label is the strongest (`policy::Label`) of its own and those of the
//! same-named column of every ancestor (partition parents and inheritance parents, to the
//! root), and, for a scan that includes them (`with_descendants`: an RTE with `inh`), of every
//! descendant: a parent whose partitions carry labels is read through them.
//!
//! **Caching.** pg_seclabel has no syscache. The result is kept for one transaction at most,
//! and dropped earlier on any relcache invalidation: SECURITY LABEL FOR deident sends one for
//! the labelled relation (`labels.rs`), and so do ATTACH / DETACH PARTITION, INHERIT / NO
//! INHERIT, and column renames and drops. A label set in another session therefore applies
//! to a restricted role's next statement that takes a lock (which processes invalidations),
//! and to its next transaction at the latest.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::rc::Rc;

use pgrx::pg_sys;

use crate::policy::{self, Label};

/// pg_inherits_d.h.
const INHERITS_RELATION_ID: pg_sys::Oid = pg_sys::Oid::from_u32(2611);
const INHERITS_RELID_SEQNO_INDEX_ID: pg_sys::Oid = pg_sys::Oid::from_u32(2680);
const ANUM_PG_INHERITS_INHRELID: i16 = 1;
const ANUM_PG_INHERITS_INHPARENT: usize = 2;

unsafe extern "C-unwind" {
    /// common/hashfn.h (not in pgrx's bindings): the hash behind `hash_any`, which Citus uses
    /// for long shard names. It raises no error.
    fn hash_bytes(k: *const u8, keylen: i32) -> u32;
    /// pg_inherits.h (not in pgrx's bindings).
    fn find_all_inheritors(
        parent: pg_sys::Oid,
        lockmode: pg_sys::LOCKMODE,
        numparents: *mut *mut pg_sys::List,
    ) -> *mut pg_sys::List;
    fn has_subclass(relation: pg_sys::Oid) -> bool;
}

/// One labelled column of a relation.
#[derive(Debug, Clone)]
pub struct ColumnLabel {
    pub attnum: i16,
    pub name: String,
    pub label: Label,
}

pub type Labels = Rc<Vec<ColumnLabel>>;

thread_local! {
    static CACHE: RefCell<HashMap<(u32, bool), Labels>> = RefCell::new(HashMap::new());
    /// `shard_of`'s answers, dropped with the labels.
    static SHARDS: RefCell<HashMap<u32, ShardOf>> = RefCell::new(HashMap::new());
}

/// Drops every cached label (a relcache invalidation, the end of a transaction, a label set
/// in this backend).
pub fn forget() {
    CACHE.with(|c| c.borrow_mut().clear());
    SHARDS.with(|c| c.borrow_mut().clear());
}

/// What a relation is to Citus, as far as labels go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardOf {
    /// Not named like a shard, or Citus is not installed in the database.
    Nothing,
    /// A shard of this distributed (or reference, or Citus local) table: it has the table's
    /// labels, by column name.
    Table(pg_sys::Oid),
    /// Named like a shard, but Citus's metadata does not say of which table (a split's old
    /// shard waiting for its deferred drop, a worker without metadata, a table of the DBA's
    /// named like a shard), or one of the table's labelled columns is missing from it; or
    /// Citus's per-tenant statistics (`citus_stat_tenants`, `citus_stat_tenants_local`, which
    /// hold raw values of the distribution column). A restricted role may not read it.
    Unknown,
}

/// Is `relid` a relation that a restricted role must not read on a Citus node
/// (`ShardOf::Unknown`)?
///
/// Citus gives a column's label to the workers' copy of the distributed table and to shards
/// made after the label, not to shards that existed before it, so a shard's labels are read
/// from its table (`shard_of`), and what cannot be matched to a table fails closed (docs/citus.md).
pub fn citus_shard(relid: pg_sys::Oid) -> bool {
    shard_of(relid) == ShardOf::Unknown
}

/// The table whose shard `relid` is, from its name (`<table>_<shard id>`: Citus names a shard
/// after its table and its id, the id last even when it truncates a long name) and Citus's
/// metadata (`pg_dist_shard`, which a worker holds too since Citus 11).
pub fn shard_of(relid: pg_sys::Oid) -> ShardOf {
    if let Some(hit) = SHARDS.with(|c| c.borrow().get(&relid.to_u32()).copied()) {
        return hit;
    }
    let answer = read_shard_of(relid);
    SHARDS.with(|c| c.borrow_mut().insert(relid.to_u32(), answer));
    answer
}

fn read_shard_of(relid: pg_sys::Oid) -> ShardOf {
    // SAFETY: syscache and catalog reads in a transaction.
    unsafe {
        if pg_catalog_relation(c"pg_dist_shard").is_none() {
            return ShardOf::Nothing;
        }
        let name = pg_sys::get_rel_name(relid);
        if name.is_null() {
            return ShardOf::Nothing;
        }
        let name = CStr::from_ptr(name).to_bytes();
        if !shard_like(name) {
            return ShardOf::Nothing;
        }
        let Some(shard_id) = shard_id(name) else { return ShardOf::Unknown };
        let Some(table) = citus_row(
            c"pg_dist_shard",
            c"pg_dist_shard_shardid_index",
            c"shardid",
            shard_id,
            c"logicalrelid",
        )
        .and_then(|rows| rows.first().copied())
        .map(|d| pg_sys::Oid::from(d.value() as u32)) else {
            return ShardOf::Unknown;
        };
        // What makes it that shard and no other relation: Citus makes a shard in its table's
        // schema, owned by the table's owner, as a table, named `<table>_<shard id>` exactly
        // (`shard_name`), and Citus lists a placement of it on this node (so the shard itself
        // exists here, and no other relation of the schema can have its name). A relation a
        // role made itself and named like a shard would otherwise have its values masked:
        // the pseudonyms of values it chose.
        if table == relid
            || pg_sys::get_rel_namespace(table) != pg_sys::get_rel_namespace(relid)
            || rel_owner(table) != rel_owner(relid)
            || !matches!(pg_sys::get_rel_relkind(relid) as u8, b'r' | b'p' | b'f')
            || shard_name(table, shard_id).as_deref() != Some(name)
            || !placed_here(shard_id)
        {
            return ShardOf::Unknown;
        }
        // every labelled column of the table (its own labels and its relatives': `read`)
        // must be a column of the shard, by name
        if read(table, true).iter().any(|c| attnum_of(relid, &c.name).is_none()) {
            return ShardOf::Unknown;
        }
        ShardOf::Table(table)
    }
}

/// This node's group in Citus's metadata (`pg_dist_local_group`): 0 on the coordinator, the
/// worker's own group on a worker; None without Citus.
fn local_group() -> Option<i32> {
    // SAFETY: a catalog read in a transaction.
    unsafe {
        let local = pg_catalog_relation(c"pg_dist_local_group")?;
        let group_att = pg_sys::get_attnum(local, c"groupid".as_ptr());
        if group_att <= 0 || pg_sys::get_atttype(local, group_att) != pg_sys::INT4OID {
            return None;
        }
        let i = group_att as usize - 1;
        let mut group = None;
        scan_rows(local, None, &[], |values, nulls| {
            if i < values.len() && !nulls[i] {
                group = Some(values[i].value() as i32);
            }
        });
        group
    }
}

/// Is this node a Citus worker (its group is not the coordinator's, 0)?
pub fn citus_worker() -> bool {
    local_group().is_some_and(|group| group != 0)
}

/// Is `relid` a Citus table (distributed, reference or Citus local: listed in
/// `pg_dist_partition`)?
pub fn citus_table(relid: pg_sys::Oid) -> bool {
    // SAFETY: catalog reads in a transaction.
    unsafe {
        let (Some(partition), Some(index)) = (
            pg_catalog_relation(c"pg_dist_partition"),
            pg_catalog_relation(c"pg_dist_partition_logical_relid_index"),
        ) else {
            return false;
        };
        let att = pg_sys::get_attnum(partition, c"logicalrelid".as_ptr());
        if att <= 0 {
            return false;
        }
        let mut found = false;
        scan::<1>(partition, Some(index), &[(att, relid)], |_| found = true);
        found
    }
}

/// Is Citus installed in this database (its metadata tables are there)?
pub fn citus_installed() -> bool {
    pg_catalog_relation(c"pg_dist_partition").is_some()
}

/// Whether `scan` is one of Citus's custom scans (its provider's name starts with "Citus":
/// "Citus Adaptive", "Citus INSERT ... SELECT", ...).
///
/// # Safety
/// `scan` is a valid CustomScan node.
pub unsafe fn is_citus_scan(scan: *mut pg_sys::CustomScan) -> bool {
    // SAFETY: per the contract; a CustomScan's methods name its provider (a C string).
    unsafe {
        let methods = (*scan).methods;
        !methods.is_null()
            && !(*methods).CustomName.is_null()
            && CStr::from_ptr((*methods).CustomName).to_bytes().starts_with(b"Citus")
    }
}

/// A relation of pg_catalog, by name (where Citus keeps its metadata), if there is one.
fn pg_catalog_relation(name: &CStr) -> Option<pg_sys::Oid> {
    let ns = pg_sys::Oid::from_u32(pg_sys::PG_CATALOG_NAMESPACE);
    // SAFETY: a syscache lookup by name; InvalidOid when there is none.
    let relid = unsafe { pg_sys::get_relname_relid(name.as_ptr(), ns) };
    (relid != pg_sys::InvalidOid).then_some(relid)
}

/// The shard id at the end of a shard's name (`shard_like` holds).
fn shard_id(name: &[u8]) -> Option<i64> {
    let cut = name.iter().rposition(|&b| b == b'_')?;
    std::str::from_utf8(&name[cut + 1..]).ok()?.parse().ok()
}

/// The name Citus gives shard `shard_id` of `table` (relay_event_utility.c,
/// `AppendShardIdToName`): `<name>_<id>`, or, when that is longer than a name can be, the
/// name clipped, the hash of the whole name in 8 hex digits, and the id.
fn shard_name(table: pg_sys::Oid, shard_id: i64) -> Option<Vec<u8>> {
    const NAMEDATALEN: usize = pg_sys::NAMEDATALEN as usize;
    // SAFETY: syscache reads; the name is a NUL-terminated string of the catalog.
    unsafe {
        let name = pg_sys::get_rel_name(table);
        if name.is_null() {
            return None;
        }
        let bytes = CStr::from_ptr(name).to_bytes();
        let suffix = format!("_{shard_id}");
        let mut out = Vec::with_capacity(NAMEDATALEN);
        if bytes.len() < NAMEDATALEN - suffix.len() {
            out.extend_from_slice(bytes);
        } else {
            let hash = hash_bytes(bytes.as_ptr(), bytes.len() as i32);
            let clip = pg_sys::pg_mbcliplen(
                name,
                bytes.len() as i32,
                (NAMEDATALEN - suffix.len() - 10) as i32,
            );
            out.extend_from_slice(&bytes[..usize::try_from(clip).ok()?.min(bytes.len())]);
            out.extend_from_slice(format!("_{hash:08x}").as_bytes());
        }
        out.extend_from_slice(suffix.as_bytes());
        Some(out)
    }
}

/// Does Citus list a placement of shard `shard_id` on this node (pg_dist_placement's group
/// is pg_dist_local_group's)?
fn placed_here(shard_id: i64) -> bool {
    let Some(group) = local_group() else { return false };
    // SAFETY: a catalog read in a transaction.
    unsafe {
        citus_row(
            c"pg_dist_placement",
            c"pg_dist_placement_shardid_index",
            c"shardid",
            shard_id,
            c"groupid",
        )
        .is_some_and(|groups| groups.iter().any(|d| d.value() as i32 == group))
    }
}

/// Column `want` of the rows of Citus's catalog table `catalog` whose int8 column `key` is
/// `value`, by index scan of `index` (as Citus reads its own metadata); None if the table,
/// the index or the columns are not as expected.
///
/// # Safety
/// In a transaction.
unsafe fn citus_row(
    catalog: &CStr,
    index: &CStr,
    key: &CStr,
    value: i64,
    want: &CStr,
) -> Option<Vec<pg_sys::Datum>> {
    // SAFETY: per the contract; the columns' numbers and types are checked by name first.
    unsafe {
        let table = pg_catalog_relation(catalog)?;
        let index = pg_catalog_relation(index)?;
        let key_att = pg_sys::get_attnum(table, key.as_ptr());
        let want_att = pg_sys::get_attnum(table, want.as_ptr());
        if key_att <= 0 || want_att <= 0 || pg_sys::get_atttype(table, key_att) != pg_sys::INT8OID {
            return None;
        }
        let want = want_att as usize - 1;
        let mut out = Vec::new();
        let key = (key_att, pg_sys::Oid::from(pg_sys::F_INT8EQ), pg_sys::Datum::from(value));
        scan_rows(table, Some(index), &[key], |values, nulls| {
            if want < values.len() && !nulls[want] {
                out.push(values[want]);
            }
        });
        Some(out)
    }
}

/// `<anything>_<digits>`, or Citus's per-tenant statistics views.
fn shard_like(name: &[u8]) -> bool {
    if name == b"citus_stat_tenants" || name == b"citus_stat_tenants_local" {
        return true;
    }
    match name.iter().rposition(|&b| b == b'_') {
        Some(cut) => {
            let digits = &name[cut + 1..];
            cut > 0 && !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

/// The effective labels of `relid`'s columns, by attnum.
pub fn column_labels(relid: pg_sys::Oid, with_descendants: bool) -> Labels {
    let key = (relid.to_u32(), with_descendants);
    if let Some(hit) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return hit;
    }
    let mut labels = read(relid, with_descendants);
    if let ShardOf::Table(table) = shard_of(relid) {
        // a shard has its own labels (if Citus gave it any) and its table's, by column name
        // (a shard's columns are numbered without the table's dropped ones)
        for c in read(table, with_descendants) {
            let Some(attnum) = attnum_of(relid, &c.name) else { continue };
            match labels.iter_mut().find(|l| l.attnum == attnum) {
                Some(l) => l.label = l.label.strongest(c.label),
                None => labels.push(ColumnLabel { attnum, name: c.name, label: c.label }),
            }
        }
        labels.sort_by_key(|c| c.attnum);
    }
    let labels = Rc::new(labels);
    CACHE.with(|c| c.borrow_mut().insert(key, labels.clone()));
    labels
}

/// The attnums of `relid`'s identifier columns.
pub fn identifiers(labels: &[ColumnLabel]) -> impl Iterator<Item = i16> + '_ {
    labels.iter().filter(|c| c.label == Label::Identifier).map(|c| c.attnum)
}

fn read(relid: pg_sys::Oid, with_descendants: bool) -> Vec<ColumnLabel> {
    let mut relatives = vec![relid];
    let mut i = 0;
    while i < relatives.len() {
        for p in parents(relatives[i]) {
            if !relatives.contains(&p) {
                relatives.push(p);
            }
        }
        i += 1;
    }
    // SAFETY: a syscache read of a relation the caller has open or locked.
    if with_descendants && unsafe { has_subclass(relid) } {
        for d in descendants(relid) {
            if !relatives.contains(&d) {
                relatives.push(d);
            }
        }
    }
    let mut found: Vec<(String, Label)> = Vec::new();
    for rel in relatives {
        for (attnum, label) in own_labels(rel) {
            if let Some(name) = live_attname(rel, attnum) {
                found.push((name, label));
            }
        }
    }
    let strongest = policy::strongest_by_name(found.iter().map(|(n, l)| (n.as_str(), *l)));
    let mut out: Vec<ColumnLabel> = strongest
        .into_iter()
        .filter_map(|(name, label)| {
            let attnum = attnum_of(relid, name)?;
            Some(ColumnLabel { attnum, name: name.to_string(), label })
        })
        .collect();
    out.sort_by_key(|c| c.attnum);
    out
}

/// The name of a column that is not dropped.
fn live_attname(rel: pg_sys::Oid, attnum: i16) -> Option<String> {
    // SAFETY: syscache reads; get_attname with missing_ok returns NULL for no such column.
    unsafe {
        let name = pg_sys::get_attname(rel, attnum, true);
        if name.is_null() {
            return None;
        }
        // get_attnum ignores dropped columns, so a dropped one ("........pg.dropped.N........")
        // does not come back as itself.
        if pg_sys::get_attnum(rel, name) != attnum {
            return None;
        }
        Some(CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}

fn attnum_of(rel: pg_sys::Oid, name: &str) -> Option<i16> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a syscache read; InvalidAttrNumber (0) for no such (or a dropped) column.
    let attnum = unsafe { pg_sys::get_attnum(rel, c.as_ptr()) };
    (attnum > 0).then_some(attnum)
}

/// Scans a catalog: by index `index` with equality keys `(attnum, oid)` on oid columns, or the
/// whole table (`index` None, no keys), and hands each tuple's first `N` columns (when none
/// of them is NULL) to `f`.
pub fn scan<const N: usize>(
    catalog: pg_sys::Oid,
    index: Option<pg_sys::Oid>,
    keys: &[(i16, pg_sys::Oid)],
    mut f: impl FnMut(&[pg_sys::Datum; N]),
) {
    let keys: Vec<(i16, pg_sys::Oid, pg_sys::Datum)> = keys
        .iter()
        .map(|&(attnum, value)| {
            (attnum, pg_sys::Oid::from(pg_sys::F_OIDEQ), pg_sys::Datum::from(value))
        })
        .collect();
    let mut first = [pg_sys::Datum::from(0usize); N];
    scan_rows(catalog, index, &keys, |values, nulls| {
        if nulls.len() >= N && !nulls[..N].iter().any(|&n| n) {
            first.copy_from_slice(&values[..N]);
            f(&first);
        }
    });
}

/// Scans a catalog as `scan` does, with equality keys `(attnum, equality function, value)`,
/// and hands `f` each tuple's columns and their NULL flags, as many as the catalog has.
fn scan_rows(
    catalog: pg_sys::Oid,
    index: Option<pg_sys::Oid>,
    keys: &[(i16, pg_sys::Oid, pg_sys::Datum)],
    mut f: impl FnMut(&[pg_sys::Datum], &[bool]),
) {
    // SAFETY: a catalog scan in a transaction, as seclabel.c's GetSecurityLabel does it; each
    // tuple is deformed through the catalog's own descriptor, into arrays of its size.
    unsafe {
        let rel = pg_sys::table_open(catalog, pg_sys::AccessShareLock as _);
        let mut scan_keys: Vec<pg_sys::ScanKeyData> = Vec::with_capacity(keys.len());
        for &(attnum, procedure, value) in keys {
            let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
            pg_sys::ScanKeyInit(
                &mut key,
                attnum,
                pg_sys::BTEqualStrategyNumber as _,
                procedure,
                value,
            );
            scan_keys.push(key);
        }
        let scan = pg_sys::systable_beginscan(
            rel,
            index.unwrap_or(pg_sys::InvalidOid),
            index.is_some(),
            std::ptr::null_mut(),
            scan_keys.len() as i32,
            if scan_keys.is_empty() { std::ptr::null_mut() } else { scan_keys.as_mut_ptr() },
        );
        let desc = (*rel).rd_att;
        // heap_deform_tuple fills as many entries as the catalog has columns
        let natts = (*desc).natts as usize;
        let mut values = vec![pg_sys::Datum::from(0usize); natts];
        let mut nulls = vec![false; natts];
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            pg_sys::heap_deform_tuple(tuple, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
            f(&values, &nulls);
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as _);
    }
}

/// The `deident` column labels stored on `rel` itself, by index scan of pg_seclabel.
fn own_labels(rel: pg_sys::Oid) -> Vec<(i16, Label)> {
    let mut out = Vec::new();
    let col = |anum: u32| anum as usize - 1;
    scan::<5>(
        pg_sys::SecLabelRelationId,
        Some(pg_sys::Oid::from_u32(pg_sys::SecLabelObjectIndexId)),
        &[
            (pg_sys::Anum_pg_seclabel_objoid as i16, rel),
            (pg_sys::Anum_pg_seclabel_classoid as i16, pg_sys::RelationRelationId),
        ],
        |values| {
            let subid = values[col(pg_sys::Anum_pg_seclabel_objsubid)].value() as i32;
            // SAFETY: provider and label are text columns.
            let provider = unsafe { text_of(values[col(pg_sys::Anum_pg_seclabel_provider)]) };
            if subid <= 0 || subid > i16::MAX as i32 || provider != "deident" {
                return;
            }
            // A label the provider did not accept cannot be here; one that is not a column
            // label is ignored rather than guessed at.
            let text = unsafe { text_of(values[col(pg_sys::Anum_pg_seclabel_label)]) };
            if let Some(label) = Label::parse(&text) {
                out.push((subid as i16, label));
            }
        },
    );
    out
}

/// # Safety
/// `d` is a text datum.
pub unsafe fn text_of(d: pg_sys::Datum) -> String {
    // SAFETY: text_to_cstring detoasts; the result is a palloc'd C string.
    unsafe {
        let s = pg_sys::text_to_cstring(d.cast_mut_ptr());
        let out = CStr::from_ptr(s).to_string_lossy().into_owned();
        pg_sys::pfree(s.cast());
        out
    }
}

/// Every relation that has a deident column label of its own (a full scan of pg_seclabel,
/// which holds one row per labelled object).
pub fn labelled_relations() -> Vec<pg_sys::Oid> {
    let mut out = Vec::new();
    let col = |anum: u32| anum as usize - 1;
    scan::<5>(pg_sys::SecLabelRelationId, None, &[], |values| {
        let class =
            pg_sys::Oid::from(values[col(pg_sys::Anum_pg_seclabel_classoid)].value() as u32);
        let relid = pg_sys::Oid::from(values[col(pg_sys::Anum_pg_seclabel_objoid)].value() as u32);
        // SAFETY: the provider column is text.
        let provider = unsafe { text_of(values[col(pg_sys::Anum_pg_seclabel_provider)]) };
        if class == pg_sys::RelationRelationId && provider == "deident" && !out.contains(&relid) {
            out.push(relid);
        }
    });
    out
}

/// pg_language's "c" (pg_language.dat).
pub const C_LANGUAGE_ID: pg_sys::Oid = pg_sys::Oid::from_u32(13);

/// Columns of pg_aggregate (pg_aggregate.h).
pub const AGG_KIND: i16 = 2;
pub const AGG_NUM_DIRECT_ARGS: i16 = 3;
pub const AGG_TRANSFN: i16 = 4;
pub const AGG_FINALFN: i16 = 5;
pub const AGG_TRANSTYPE: i16 = 17;

/// Runs `f` on the row of syscache `cache` under `key`, None if there is no such row; the row
/// is released after `f` has used it.
fn with_syscache_row<R>(
    cache: pg_sys::SysCacheIdentifier::Type,
    key: pg_sys::Oid,
    f: impl FnOnce(pg_sys::HeapTuple) -> R,
) -> Option<R> {
    // SAFETY: a syscache read in a transaction; the tuple lives until it is released.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(cache as i32, pg_sys::Datum::from(key));
        if tuple.is_null() {
            return None;
        }
        let result = f(tuple);
        pg_sys::ReleaseSysCache(tuple);
        Some(result)
    }
}

/// The owner of a relation (InvalidOid if there is none such).
pub fn rel_owner(relid: pg_sys::Oid) -> pg_sys::Oid {
    with_syscache_row(pg_sys::SysCacheIdentifier::RELOID, relid, |tuple| {
        // SAFETY: a pg_class row's fixed part.
        unsafe { (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner }
    })
    .unwrap_or(pg_sys::InvalidOid)
}

/// Runs `f` on a function's pg_proc row (through the syscache), None if there is no such
/// function. `f` gets the row's fixed part and the tuple, for its variable-length columns
/// (SysCacheGetAttr with PROCOID).
pub fn with_proc<R>(
    func: pg_sys::Oid,
    f: impl FnOnce(&pg_sys::FormData_pg_proc, pg_sys::HeapTuple) -> R,
) -> Option<R> {
    with_syscache_row(pg_sys::SysCacheIdentifier::PROCOID, func, |tuple| {
        // SAFETY: a pg_proc row's fixed part, borrowed while the row is held.
        f(unsafe { &*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_proc>(tuple) }, tuple)
    })
}

/// The columns `attnums` of aggregate `aggfnoid`'s pg_aggregate row (None for a NULL one), or
/// None when it is not an aggregate.
pub fn aggregate_columns(
    aggfnoid: pg_sys::Oid,
    attnums: &[i16],
) -> Option<Vec<Option<pg_sys::Datum>>> {
    with_syscache_row(pg_sys::SysCacheIdentifier::AGGFNOID, aggfnoid, |tuple| {
        attnums
            .iter()
            .map(|&attnum| {
                let mut isnull = false;
                // SAFETY: a column of the row held, by number.
                let d = unsafe {
                    pg_sys::SysCacheGetAttr(
                        pg_sys::SysCacheIdentifier::AGGFNOID as i32,
                        tuple,
                        attnum,
                        &mut isnull,
                    )
                };
                (!isnull).then_some(d)
            })
            .collect()
    })
}

/// The regproc (or other oid) columns `attnums` of aggregate `aggfnoid`'s pg_aggregate row
/// (None for a NULL one), or None when it is not an aggregate.
pub fn aggregate_functions(
    aggfnoid: pg_sys::Oid,
    attnums: &[i16],
) -> Option<Vec<Option<pg_sys::Oid>>> {
    let columns = aggregate_columns(aggfnoid, attnums)?;
    Some(columns.into_iter().map(|d| d.map(|d| pg_sys::Oid::from(d.value() as u32))).collect())
}

/// The language of a function (pg_language OID), if the function exists.
pub fn func_language(func: pg_sys::Oid) -> Option<pg_sys::Oid> {
    with_proc(func, |form, _| form.prolang)
}

/// Is `ns` pg_deident's schema? Only a superuser can create anything there (the extension's
/// schema is refused if anyone else could), so what is in it is pg_deident's own.
pub fn is_deident_namespace(ns: pg_sys::Oid) -> bool {
    // SAFETY: a syscache read in a transaction; NULL for no such schema.
    unsafe {
        let name = pg_sys::get_namespace_name(ns);
        !name.is_null() && std::ffi::CStr::from_ptr(name).to_bytes() == b"deident"
    }
}

/// The name of `func` if it is a C function in schema `deident`.
pub fn our_function_name(func: pg_sys::Oid) -> Option<String> {
    with_proc(func, |form, _| {
        let ours = form.prolang == C_LANGUAGE_ID && is_deident_namespace(form.pronamespace);
        // SAFETY: proname is a NUL-terminated NameData.
        let name = unsafe { std::ffi::CStr::from_ptr(form.proname.data.as_ptr()) };
        ours.then(|| name.to_string_lossy().into_owned())
    })
    .flatten()
}

/// The direct parents of `rel` (partition parent or inheritance parents), from pg_inherits.
fn parents(rel: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    let mut out = Vec::new();
    scan::<4>(
        INHERITS_RELATION_ID,
        Some(INHERITS_RELID_SEQNO_INDEX_ID),
        &[(ANUM_PG_INHERITS_INHRELID, rel)],
        |values| out.push(pg_sys::Oid::from(values[ANUM_PG_INHERITS_INHPARENT - 1].value() as u32)),
    );
    out
}

/// Every descendant of `rel` (partitions and inheritance children, to the leaves).
fn descendants(rel: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    // NoLock, as the planner locks the children it scans itself.
    descendants_locked(rel, pg_sys::NoLock as _)
}

/// Every descendant of `rel`, each locked in `lockmode` (one dropped meanwhile is left out,
/// unless `lockmode` is NoLock).
pub fn descendants_locked(rel: pg_sys::Oid, lockmode: pg_sys::LOCKMODE) -> Vec<pg_sys::Oid> {
    // SAFETY: find_all_inheritors reads pg_inherits. The list holds OIDs.
    unsafe {
        let list = find_all_inheritors(rel, lockmode, std::ptr::null_mut());
        super::list_oids(list).filter(|&oid| oid != rel).collect()
    }
}

/// A relation that one of `relid`'s foreign keys references on an identifier column, if any.
/// Writing a row checks its key against the referenced table as that table's owner (ri_triggers.c
/// `ri_PerformCheck`), raw values against the written value: a restricted role's INSERT or
/// UPDATE there would confirm or refute a guess. `updated`: None for an INSERT (every key is
/// checked), or the updated columns (RangeTblEntry.updatedCols): only a key with an updated
/// column is checked.
///
/// # Safety
/// `updated`, when given, is a valid Bitmapset or NULL.
pub unsafe fn referenced_identifiers(
    relid: pg_sys::Oid,
    updated: Option<*mut pg_sys::Bitmapset>,
) -> Option<pg_sys::Oid> {
    // SAFETY: the relation is open for the statement that writes it; the foreign-key list is
    // the relcache's own (not to be freed), a List of ForeignKeyCacheInfo.
    unsafe {
        let rel = pg_sys::relation_open(relid, pg_sys::AccessShareLock as _);
        let list = pg_sys::RelationGetFKeyList(rel);
        let mut found = None;
        for fk in super::list_ptrs::<pg_sys::ForeignKeyCacheInfo>(list) {
            let fk = &*fk;
            let n = fk.nkeys.clamp(0, 32) as usize;
            let checked = match updated {
                None => true,
                Some(cols) => fk.conkey[..n].iter().any(|&a| {
                    pg_sys::bms_is_member(
                        a as i32 - pg_sys::FirstLowInvalidHeapAttributeNumber,
                        cols,
                    )
                }),
            };
            if !checked {
                continue;
            }
            let labels = column_labels(fk.confrelid, true);
            let keys = &fk.confkey[..n];
            if identifiers(&labels).any(|a| keys.contains(&a)) {
                found = Some(fk.confrelid);
                break;
            }
        }
        pg_sys::relation_close(rel, pg_sys::AccessShareLock as _);
        found
    }
}

/// Does any relation of `relid`'s inheritance tree (from each root down to every leaf) carry a
/// label? A row written anywhere in such a tree is read back through the root, masked by a
/// label that sits on another branch (a sibling partition's): for a restricted role, a write
/// there would hand out the pseudonym of a guess, and an INSERT into a parent is routed to
/// its partitions, labelled ones included.
pub fn tree_labelled(relid: pg_sys::Oid) -> bool {
    let mut seen = Vec::new();
    let mut stack = vec![relid];
    let mut roots = Vec::new();
    while let Some(rel) = stack.pop() {
        if seen.contains(&rel) {
            continue;
        }
        seen.push(rel);
        let up = parents(rel);
        if up.is_empty() {
            roots.push(rel);
        } else {
            stack.extend(up);
        }
    }
    roots.into_iter().any(|root| !column_labels(root, true).is_empty())
}

/// A role's name, or its OID as text when it no longer exists (for messages).
pub fn role_name(role: pg_sys::Oid) -> String {
    // SAFETY: a syscache lookup; NULL (noerr) for a role that no longer exists.
    let name = unsafe { pg_sys::GetUserNameFromId(role, true) };
    if name.is_null() {
        return role.to_u32().to_string();
    }
    // SAFETY: a palloc'd C string.
    unsafe { std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned() }
}

/// A function's name, or its OID as text when it no longer exists (for messages).
pub fn func_name(func: pg_sys::Oid) -> String {
    // SAFETY: a syscache lookup; NULL for a function that no longer exists.
    let name = unsafe { pg_sys::get_func_name(func) };
    if name.is_null() {
        return func.to_u32().to_string();
    }
    // SAFETY: a palloc'd C string.
    unsafe { std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shard_like_names() {
        use super::shard_like;
        for n in ["people_102008", "a_1", "people_trun_8676aa29_102028", "citus_stat_tenants"] {
            assert!(shard_like(n.as_bytes()), "{n}");
        }
        for n in ["people", "_123", "people_", "people_12a", "people102008", "stats_x"] {
            assert!(!shard_like(n.as_bytes()), "{n}");
        }
    }
}
