//! The privacy budget (SPEC "Privacy budget"): each limited role's ε limit and what it has
//! spent, charged before each statement runs and never refunded.
//!
//! **Where it lives.** The live ledger is in shared memory (the library is preloaded), one
//! account per role, under one LWLock: sessions and parallel workers charge it in turn, so two
//! of them together cannot spend more than the limit (race-free). Charges are not part of any
//! transaction: ROLLBACK, an ERROR later in the statement or a killed backend leave them
//! spent (a backend killed by a signal makes the postmaster reinitialize shared memory, which
//! reloads the file below, which can only count more).
//!
//! **Durability.** The file `pg_deident_privacy_ledger` in the data directory holds each
//! role's limit and a *reservation*: before a charge would go past what is reserved, a larger
//! reservation is written to a new file, fsynced, renamed over the old one and the directory
//! fsynced (ledger.rs, `plan`), and only then is the charge made and the statement run.
//! After a crash or `pg_ctl stop -m immediate`, the file is read back with each reservation
//! counted as spent: the spent figure never goes down, and goes up by at most 1/64 of the
//! limit per restart. The file carries the WAL timeline it was written on; a server on another
//! timeline (a promoted standby, a point-in-time restore, which would bring back an older
//! file) refuses every charge until a superuser confirms the budgets with
//! `set_privacy_budget`. Why a file and not WAL or a sequence: docs/differential-privacy.md.
//!
//! **Hot standby.** Nothing durable can be written there, so a limited role's dp aggregates
//! refuse (a budget per replica would let an analyst spend it once per replica).

use std::io::Write;

use pgrx::pg_sys;
use pgrx::prelude::*;

use super::ledger::{self, Account, Plan};
use crate::error::{DeidentError, OrReport};

/// Roles with a budget, at most (32 bytes each in shared memory).
pub const MAX_ACCOUNTS: usize = 1024;
const FILE: &str = "pg_deident_privacy_ledger";
const TEMP: &str = "pg_deident_privacy_ledger.tmp";
const TRANCHE: &std::ffi::CStr = c"pg_deident privacy budget";

#[repr(C)]
struct Shared {
    /// The file exists but could not be read: every charge is refused (failing closed).
    broken: bool,
    /// The file's timeline was compared with the server's, and agreed.
    timeline_checked: bool,
    /// The timeline the file was written on; 0 when there was no file.
    file_timeline: u32,
    accounts: [Account; MAX_ACCOUNTS],
}

static mut SHARED: *mut Shared = std::ptr::null_mut();
static mut LOCK: *mut pg_sys::LWLock = std::ptr::null_mut();

/// Asks for the ledger's shared memory and its lock: from `shmem_request_hook` (15+) or
/// `_PG_init` (13, 14).
pub fn request() {
    // SAFETY: called in the postmaster while libraries are preloaded, as PostgreSQL requires.
    unsafe {
        pg_sys::RequestAddinShmemSpace(std::mem::size_of::<Shared>());
        pg_sys::RequestNamedLWLockTranche(TRANCHE.as_ptr(), 1);
    }
}

/// Attaches the ledger; the first time (the postmaster's start, or its reinitialization
/// after a crash) loads the file. From `shmem_startup_hook`.
pub fn startup() {
    let mut found = false;
    // SAFETY: AddinShmemInitLock (lwlocknames.txt: 21) serializes ShmemInitStruct, as the
    // shmem_startup_hook convention asks; an all-zero Shared is an empty ledger.
    unsafe {
        let init_lock = std::ptr::addr_of_mut!((*pg_sys::MainLWLockArray.add(21)).lock);
        pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let size = std::mem::size_of::<Shared>();
        let ptr = pg_sys::ShmemInitStruct(c"pg_deident privacy ledger".as_ptr(), size, &mut found);
        if !found {
            std::ptr::write_bytes(ptr.cast::<u8>(), 0, size);
            load(&mut *ptr.cast::<Shared>());
        }
        LOCK = std::ptr::addr_of_mut!((*pg_sys::GetNamedLWLockTranche(TRANCHE.as_ptr())).lock);
        pg_sys::LWLockRelease(init_lock);
        SHARED = ptr.cast();
    }
}

/// Reads the file into an empty ledger (the postmaster's working directory is the data
/// directory). A missing file is an empty ledger: no role has a budget, so no limited role
/// can spend anything.
fn load(sh: &mut Shared) {
    let text = match std::fs::read_to_string(FILE) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            sh.broken = true;
            pgrx::log!("pg_deident: could not read the privacy ledger \"{FILE}\": {e}; every privacy budget charge is refused");
            return;
        }
    };
    match ledger::decode(&text) {
        Ok((timeline, accounts)) if accounts.len() <= MAX_ACCOUNTS => {
            sh.file_timeline = timeline;
            sh.accounts[..accounts.len()].copy_from_slice(&accounts);
        }
        _ => {
            sh.broken = true;
            pgrx::log!("pg_deident: the privacy ledger \"{FILE}\" is malformed; every privacy budget charge is refused");
        }
    }
}

/// Writes the ledger durably: a new file, fsynced, renamed over the old one, the directory
/// fsynced (the file is whole or absent after a crash, never half-written).
fn write_file(timeline: u32, accounts: &[Account]) -> std::io::Result<()> {
    let text = ledger::encode(timeline, accounts);
    let mut f = std::fs::File::create(TEMP)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(TEMP, FILE)?;
    std::fs::File::open(".")?.sync_all()
}

/// Runs `f` on the ledger with its lock held exclusively. `f` makes no PostgreSQL call that
/// can raise an ERROR (the lock would be released by the abort anyway: LWLockReleaseAll).
fn with_ledger<R>(f: impl FnOnce(&mut Shared) -> R) -> Result<R, DeidentError> {
    // SAFETY: SHARED and LOCK are set by shmem startup in the postmaster before any backend
    // exists, and backends inherit them; the lock makes access to the ledger exclusive.
    unsafe {
        if SHARED.is_null() || LOCK.is_null() {
            return Err(DeidentError::NotPreloaded);
        }
        pg_sys::LWLockAcquire(LOCK, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let r = f(&mut *SHARED);
        pg_sys::LWLockRelease(LOCK);
        Ok(r)
    }
}

/// The server's current timeline (only when not in recovery).
fn timeline() -> u32 {
    // SAFETY: called only after RecoveryInProgress() returned false.
    unsafe { pg_sys::GetWALInsertionTimeLine() }
}

fn in_recovery() -> bool {
    // SAFETY: reads shared state under its spinlock; cannot raise an ERROR.
    unsafe { pg_sys::RecoveryInProgress() }
}

/// Would a dp aggregate statement of this session be charged (charged_roles)?
pub fn charged() -> bool {
    !charged_roles().is_empty()
}

/// The roles a charge goes to: the session user (the person at the prompt: also inside a
/// superuser's SECURITY DEFINER function) and, when it differs, the current user, each unless
/// it is a superuser. Both must have budget left: SET ROLE to another role cannot spend
/// someone else's budget instead of one's own, nor a definer function escape the caller's.
fn charged_roles() -> Vec<pg_sys::Oid> {
    // SAFETY: plain reads of miscinit.c's variables, and syscache lookups in a transaction.
    unsafe {
        let session = pg_sys::GetSessionUserId();
        let current = pg_sys::GetUserId();
        let mut roles = Vec::with_capacity(2);
        for role in [session, current] {
            if !roles.contains(&role) && !pg_sys::superuser_arg(role) {
                roles.push(role);
            }
        }
        roles
    }
}

/// Failures of a charge, found with the lock held and raised after it is released.
enum Refusal {
    NoBudget(u32),
    Exhausted { role: u32, remaining: u64 },
    Timeline { file: u32, server: u32 },
    Unreadable,
    Full,
    Io(String),
}

impl Refusal {
    fn report(self, asked: u64) -> ! {
        match self {
            Refusal::NoBudget(role) => DeidentError::NoPrivacyBudget {
                role: crate::enforcement::catalog::role_name(pg_sys::Oid::from(role)),
            },
            Refusal::Exhausted { role, remaining } => DeidentError::PrivacyBudgetExhausted {
                role: crate::enforcement::catalog::role_name(pg_sys::Oid::from(role)),
                asked: ledger::epsilon(asked),
                remaining: ledger::epsilon(remaining),
            },
            Refusal::Timeline { file, server } => DeidentError::LedgerTimeline { file, server },
            Refusal::Unreadable => DeidentError::LedgerUnreadable,
            Refusal::Full => DeidentError::LedgerFull,
            Refusal::Io(e) => DeidentError::LedgerWrite(e),
        }
        .report()
    }
}

fn check_timeline(sh: &mut Shared) -> Result<(), Refusal> {
    if sh.broken {
        return Err(Refusal::Unreadable);
    }
    if !sh.timeline_checked {
        let server = timeline();
        if sh.file_timeline != 0 && sh.file_timeline != server {
            return Err(Refusal::Timeline { file: sh.file_timeline, server });
        }
        sh.timeline_checked = true;
    }
    Ok(())
}

/// Charges `epsilon` to the roles of `charged_roles` before a statement runs (charge.rs), or
/// raises the ERROR that refuses the statement. Superusers are not limited.
pub fn charge(epsilon: f64) {
    let roles = charged_roles();
    if roles.is_empty() {
        return;
    }
    if in_recovery() {
        DeidentError::BudgetOnStandby.report();
    }
    // ε × L × calls (charge.rs): beyond 1.8·10^10 ε only with ε and L near the top of their
    // ranges and thousands of calls in one statement, which no budget could pay anyway
    let Some(amount) = ledger::units(epsilon) else {
        DeidentError::InvalidEpsilon.report();
    };
    let result = with_ledger(|sh| -> Result<(), Refusal> {
        check_timeline(sh)?;
        let mut slots = [usize::MAX; 2];
        let mut reserve = false;
        for (slot, &role) in slots.iter_mut().zip(&roles) {
            let role = role.to_u32();
            let i =
                sh.accounts.iter().position(|a| a.role == role).ok_or(Refusal::NoBudget(role))?;
            match ledger::plan(&sh.accounts[i], amount) {
                Plan::Spend => {}
                Plan::Reserve(_) => reserve = true,
                Plan::Exhausted(remaining) => return Err(Refusal::Exhausted { role, remaining }),
            }
            *slot = i;
        }
        let slots = &slots[..roles.len()];
        if reserve {
            let mut next = sh.accounts;
            for &i in slots {
                if let Plan::Reserve(r) = ledger::plan(&next[i], amount) {
                    next[i].reserved = r;
                }
            }
            let tl = if sh.file_timeline == 0 { timeline() } else { sh.file_timeline };
            write_file(tl, &next).map_err(|e| Refusal::Io(e.to_string()))?;
            sh.accounts = next;
            sh.file_timeline = tl;
        }
        for &i in slots {
            sh.accounts[i].spent += amount;
        }
        Ok(())
    })
    .or_report();
    if let Err(refusal) = result {
        refusal.report(amount);
    }
}

/// `deident.set_privacy_budget(role regrole, epsilon float8)`: sets a role's limit (what it has
/// spent stays). Takes effect at once and is not undone by ROLLBACK, like the charges. It also
/// confirms the whole ledger on this server's timeline (see the module comment).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn deident_set_privacy_budget(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    crate::preload::check().or_report();
    // SAFETY: fmgr's call info of the function declared in SQL (regrole, float8), not strict.
    let (role, epsilon) = unsafe {
        if crate::fmgr::arg_is_null(fcinfo, 0) || crate::fmgr::arg_is_null(fcinfo, 1) {
            DeidentError::BudgetNull.report();
        }
        (
            pg_sys::Oid::from(crate::fmgr::arg(fcinfo, 0).value() as u32),
            f64::from_bits(crate::fmgr::arg(fcinfo, 1).value() as u64),
        )
    };
    // SAFETY: superuser() and superuser_arg() are syscache reads in a transaction.
    unsafe {
        if !pg_sys::superuser() {
            DeidentError::BudgetNotSuperuser.report();
        }
        if pg_sys::superuser_arg(role) {
            DeidentError::BudgetForSuperuser.report();
        }
    }
    let Some(limit) = ledger::units(epsilon) else {
        DeidentError::InvalidBudget.report();
    };
    if in_recovery() {
        DeidentError::BudgetOnStandby.report();
    }
    let result = with_ledger(|sh| -> Result<(), Refusal> {
        if sh.broken {
            return Err(Refusal::Unreadable);
        }
        let mut next = sh.accounts;
        let i = match next.iter().position(|a| a.role == role.to_u32()) {
            Some(i) => i,
            None => {
                let i = next.iter().position(|a| a.role == 0).ok_or(Refusal::Full)?;
                next[i] = Account { role: role.to_u32(), ..Account::default() };
                i
            }
        };
        next[i].limit = limit;
        let tl = timeline();
        write_file(tl, &next).map_err(|e| Refusal::Io(e.to_string()))?;
        sh.accounts = next;
        sh.file_timeline = tl;
        sh.timeline_checked = true;
        Ok(())
    })
    .or_report();
    if let Err(refusal) = result {
        refusal.report(0);
    }
    // SAFETY: as above; the function returns void.
    unsafe { crate::fmgr::return_null(fcinfo) }
}
crate::fmgr::pg_function_info_v1!(pg_finfo_deident_set_privacy_budget);

/// `deident._privacy_budgets()`: the accounts the caller may see: all of them for a
/// superuser, else those of the roles whose privileges it has (its own).
#[pg_extern(volatile, parallel_safe)]
fn _privacy_budgets() -> TableIterator<
    'static,
    (name!(role, pg_sys::Oid), name!(limit, f64), name!(spent, f64), name!(remaining, f64)),
> {
    crate::preload::check().or_report();
    let accounts = with_ledger(|sh| sh.accounts).or_report();
    // SAFETY: GetUserId is a plain read; has_privs_of_role reads the role cache.
    let me = unsafe { pg_sys::GetUserId() };
    let rows: Vec<_> = accounts
        .iter()
        .filter(|a| a.role != 0)
        // SAFETY: as above.
        .filter(|a| unsafe { pg_sys::has_privs_of_role(me, pg_sys::Oid::from(a.role)) })
        .map(|a| {
            (
                pg_sys::Oid::from(a.role),
                ledger::epsilon(a.limit),
                ledger::epsilon(a.spent),
                ledger::epsilon(a.limit.saturating_sub(a.spent)),
            )
        })
        .collect();
    TableIterator::new(rows)
}
