//! Is the current role restricted?
//!
//! A role is restricted when it carries the role label `restricted`, or has the privileges of
//! a role that does (`has_privs_of_role`: a member that inherits): a DBA labels a group such as
//! `analysts` and its members are covered. A superuser is never restricted (SPEC). The answer
//! is asked on every statement, so it is cached: the list of labelled roles (read from
//! pg_shseclabel) until a relcache-wide invalidation, which a role label sends (`labels.rs`),
//! and the answer per role until pg_authid or pg_auth_members change (syscache callbacks).
//! With no labelled role at all, the answer costs one comparison.

use pgrx::pg_sys;
use std::cell::RefCell;

use super::catalog::{self, text_of};
use crate::policy;

/// pg_shseclabel_d.h.
const SHARED_SEC_LABEL_RELATION_ID: pg_sys::Oid = pg_sys::Oid::from_u32(3592);
const ANUM_PG_SHSECLABEL_OBJOID: usize = 1;
const ANUM_PG_SHSECLABEL_CLASSOID: usize = 2;
const ANUM_PG_SHSECLABEL_PROVIDER: usize = 3;
const ANUM_PG_SHSECLABEL_LABEL: usize = 4;

// Plain reads of xact.c's and miscinit.c's state, which never raise an error: called without
// pgrx's guard (a sigsetjmp per call), since they run several times for every statement.
unsafe extern "C-unwind" {
    #[link_name = "IsTransactionState"]
    fn is_transaction_state() -> bool;
    #[link_name = "GetUserId"]
    fn get_user_id() -> pg_sys::Oid;
    #[link_name = "GetSessionUserId"]
    fn get_session_user_id() -> pg_sys::Oid;
}

#[derive(Default)]
struct Roles {
    /// The roles labelled restricted; None until read.
    labelled: Option<Vec<pg_sys::Oid>>,
    /// Answers already given, per role.
    answers: Vec<(pg_sys::Oid, bool)>,
}

thread_local! {
    static ROLES: RefCell<Roles> = RefCell::new(Roles::default());
}

/// Forgets the labelled roles (a role label changed: relcache-wide invalidation).
pub fn forget_labels() {
    ROLES.with(|r| *r.borrow_mut() = Roles::default());
}

/// Forgets the answers (a role or a membership changed).
pub fn forget_answers() {
    ROLES.with(|r| r.borrow_mut().answers.clear());
}

/// Is the current user restricted? It is when it is restricted itself, and also when the
/// session user is restricted and the current user is a role the session user is a member of:
/// a restricted login that runs SET ROLE to another of its roles, or a SECURITY DEFINER function
/// owned by one of them (which it could have made or given away itself), stays restricted. A
/// SECURITY DEFINER function owned by a role the session user is not a member of (the DBA's,
/// a deliberate exception) runs with its owner's rights, as PostgreSQL defines.
///
/// False outside a transaction (nothing to read the catalog with, and no query to protect).
pub fn current_is_restricted() -> bool {
    // SAFETY: plain reads of xact.c's and miscinit.c's state.
    let (user, session) = unsafe {
        if !is_transaction_state() {
            return false;
        }
        (get_user_id(), get_session_user_id())
    };
    if is_restricted(user) {
        return true;
    }
    // SAFETY: acl.c's role-membership cache, inside a transaction.
    session != user && is_restricted(session) && unsafe { pg_sys::is_member_of_role(session, user) }
}

/// True when the current role is surely not restricted, from the caches alone: no role is
/// labelled, or the answer for the current role (also the session user) is known to be no. It
/// calls nothing that can raise an error, so the hooks ask it before entering guarded code;
/// false means "ask `current_is_restricted`".
pub fn surely_unrestricted() -> bool {
    // SAFETY: as in current_is_restricted.
    let (user, session) = unsafe {
        if !is_transaction_state() {
            return true;
        }
        (get_user_id(), get_session_user_id())
    };
    ROLES.with(|r| {
        let Ok(r) = r.try_borrow() else { return false };
        match &r.labelled {
            Some(l) if l.is_empty() => true,
            Some(_) => {
                let known_no = |u: pg_sys::Oid| r.answers.iter().any(|&(a, ans)| a == u && !ans);
                known_no(user) && (session == user || known_no(session))
            }
            None => false,
        }
    })
}

/// Could the restricted session (its login, or the current role if that is restricted) have
/// made an object owned by `owner`, though `owner` is not restricted: is it a member of
/// `owner`? It can then create objects as `owner` (SET ROLE) or give its own to it (ALTER ...
/// OWNER TO), so such an object's conditions are not surely the DBA's (a review read raw
/// values through a view the login handed to pg_read_all_data).
pub fn may_act_as(owner: pg_sys::Oid) -> bool {
    // SAFETY: plain reads of miscinit.c's state, and acl.c's role-membership cache inside a
    // transaction.
    unsafe {
        if !is_transaction_state() {
            return false;
        }
        [get_session_user_id(), get_user_id()]
            .into_iter()
            .any(|u| u != owner && is_restricted(u) && pg_sys::is_member_of_role(u, owner))
    }
}

/// May the restricted session (its login, or its current role if restricted) change the rows
/// of `relid` (INSERT, UPDATE, DELETE or TRUNCATE, also through pg_write_all_data)? A DBA's
/// condition that reads such a table answers guesses the session writes into it.
pub fn may_write(relid: pg_sys::Oid) -> bool {
    const WRITES: pg_sys::AclMode =
        (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE | pg_sys::ACL_DELETE | pg_sys::ACL_TRUNCATE)
            as pg_sys::AclMode;
    // SAFETY: plain reads of miscinit.c's state, and acl.c's checks inside a transaction.
    unsafe {
        if !is_transaction_state() {
            return false;
        }
        [get_session_user_id(), get_user_id()].into_iter().any(|u| {
            is_restricted(u)
                && (pg_sys::pg_class_aclmask(relid, u, WRITES, pg_sys::AclMaskHow::ACLMASK_ANY) != 0
                    // a column's INSERT or UPDATE privilege is enough to write a guess (a review)
                    || pg_sys::pg_attribute_aclcheck_all(
                        relid,
                        u,
                        (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE) as pg_sys::AclMode,
                        pg_sys::AclMaskHow::ACLMASK_ANY,
                    ) == pg_sys::AclResult::ACLCHECK_OK)
        })
    }
}

pub fn is_restricted(user: pg_sys::Oid) -> bool {
    if user == pg_sys::InvalidOid {
        return false;
    }
    let known = ROLES.with(|r| {
        let r = r.borrow();
        match &r.labelled {
            Some(l) if l.is_empty() => Some(false),
            Some(_) => r.answers.iter().find(|(u, _)| *u == user).map(|(_, a)| *a),
            None => None,
        }
    });
    if let Some(answer) = known {
        return answer;
    }
    let labelled = ROLES.with(|r| r.borrow().labelled.clone());
    let labelled = match labelled {
        Some(l) => l,
        None => {
            let l = read_labelled();
            ROLES.with(|r| r.borrow_mut().labelled = Some(l.clone()));
            l
        }
    };
    // SAFETY: syscache and acl.c's role-membership cache, inside a transaction.
    let answer = !labelled.is_empty()
        && unsafe { !pg_sys::superuser_arg(user) }
        && labelled.iter().any(|&r| unsafe { pg_sys::has_privs_of_role(user, r) });
    ROLES.with(|r| {
        let mut r = r.borrow_mut();
        if r.answers.len() >= 64 {
            r.answers.clear();
        }
        r.answers.push((user, answer));
    });
    answer
}

/// The roles labelled `restricted` by the deident provider. pg_shseclabel is small (one row
/// per labelled shared object): a full scan.
fn read_labelled() -> Vec<pg_sys::Oid> {
    let mut out = Vec::new();
    catalog::scan::<4>(SHARED_SEC_LABEL_RELATION_ID, None, &[], |values| {
        let class = pg_sys::Oid::from(values[ANUM_PG_SHSECLABEL_CLASSOID - 1].value() as u32);
        // SAFETY: provider and label are text columns.
        let ours = unsafe {
            text_of(values[ANUM_PG_SHSECLABEL_PROVIDER - 1]) == "deident"
                && policy::is_restricted_label(&text_of(values[ANUM_PG_SHSECLABEL_LABEL - 1]))
        };
        if class == pg_sys::AuthIdRelationId && ours {
            out.push(pg_sys::Oid::from(values[ANUM_PG_SHSECLABEL_OBJOID - 1].value() as u32));
        }
    });
    out
}
