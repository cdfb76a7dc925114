//! Every error pg_deident raises, each with its SQLSTATE, in one place.
//!
//! Messages follow PostgreSQL's error style guide (lower case, no trailing period; detail and
//! hint are full sentences). None of them carries key bytes or a key-file line, and none echoes
//! an argument whole (`echo`: a short, printable prefix). The key file's path and the
//! configured active key id go only to a caller who is a superuser both as session user and as
//! current user (`privileged`), and to the server log: an analyst's client, also inside a
//! superuser's SECURITY DEFINER function, is told what is wrong and whom to ask, not where the
//! key lives.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use crate::aggregates::state::StateError;
use crate::dp::state::BoundsError;
use crate::keys::{FileProblem, LineProblem};
use crate::policy::LabelError;
use crate::pseudonym::{MAX_LENGTH, MIN_LENGTH};
use crate::seal::SealError;

#[derive(Debug, Clone)]
pub enum DeidentError {
    /// The library was loaded on demand, not by `shared_preload_libraries`.
    NotPreloaded,
    /// `deident.key_file` is empty.
    NoKeyFile,
    /// The key file cannot be used.
    KeyFile {
        path: String,
        problem: FileProblem,
    },
    /// `deident.active_key` names no key in the file (or is not a key id at all).
    UnknownActiveKey {
        id: String,
    },
    /// A `key_id` argument names no key in the ring (its bytes as passed).
    UnknownKeyId {
        id: Vec<u8>,
    },
    /// Part of a statement would use another key ring than the rest: a parallel worker read
    /// another ring than its leader, or a cursor settled in an earlier statement is read
    /// together with new pseudonyms.
    KeyRingChanged,
    /// A parallel worker of an operation whose leader published no key ring (a parallel index
    /// build: it does not run through the executor).
    KeyRingUnpublished,
    /// A `length` argument outside MIN_LENGTH..=MAX_LENGTH.
    InvalidLength(i32),
    /// A k-anonymity-checked aggregate failed.
    Aggregate(StateError),
    /// An aggregate support function was called by something other than an aggregate.
    OutsideAggregate,
    /// An aggregate support function was called by a window aggregate.
    WindowAggregate,
    /// An aggregate support function was given an `internal` state it did not make (an
    /// aggregate declared by a superuser that pairs our functions with others').
    NotOurState,
    /// deident._k_partial or _k_combine_partials (named) was given an aggregate that is not
    /// one of the k-aggregates, or none that it can find.
    PartialNotKAggregate(&'static str),
    /// Their arguments are not of the aggregate's argument types (_k_partial), or the type
    /// argument is not the aggregate's result type (_k_combine_partials).
    PartialArgumentTypes(&'static str),
    /// A k_state value that is not sealed by a key of this ring, or not intact (seal.rs).
    SealedState(SealError),
    /// A security label was refused.
    Label(LabelError),
    /// Text has a character without a UTF-8 form (its bytes are not shown).
    UnconvertibleText,
    /// The clamping bounds of dp_sum or dp_avg cannot be used.
    DpBounds(BoundsError),
    /// The person or value of a dp aggregate call is not the person's own.
    DpPerson(crate::dp::plan::PersonProblem),
    /// A dp aggregate is finalized in a statement that was not charged (a parallel worker
    /// finalizing groups itself).
    DpUncharged,
    /// A plan finalizes a dp aggregate call that the planner hook's checks did not see.
    DpUnchecked,
    /// EXPLAIN ANALYZE of a statement with dp aggregates by a role the budget charges.
    DpExplainAnalyze,
    DpGrouping(crate::dp::grouping::GroupingProblem),
    /// A noise scale out of the sampler's range (the settings' ranges exclude it).
    DpNoiseScale,
    /// The operating system gave no random bytes.
    DpRandom,
    /// A limited role without a privacy budget ran a dp aggregate.
    NoPrivacyBudget {
        role: String,
    },
    /// A charge would take a role past its privacy budget.
    PrivacyBudgetExhausted {
        role: String,
        asked: f64,
        remaining: f64,
    },
    /// A charge or budget change during recovery (a hot standby).
    BudgetOnStandby,
    /// A statement's charge (ε × L × calls) beyond what the ledger counts.
    InvalidEpsilon,
    /// The ledger file was written on another timeline.
    LedgerTimeline {
        file: u32,
        server: u32,
    },
    /// The ledger file could not be read at startup.
    LedgerUnreadable,
    /// Every account of the ledger is taken.
    LedgerFull,
    /// The ledger file could not be written (the I/O error's text).
    LedgerWrite(String),
    /// set_privacy_budget got a NULL.
    BudgetNull,
    /// set_privacy_budget by a role that is not a superuser.
    BudgetNotSuperuser,
    /// set_privacy_budget for a superuser, who is never limited.
    BudgetForSuperuser,
    /// A budget that is not finite and non-negative.
    InvalidBudget,
    /// A restricted role called a keyed function (testing guesses against pseudonyms).
    RestrictedKeyedCall,
    /// A restricted role would write to (or lock rows of, or truncate) a labelled relation.
    RestrictedWrite {
        relation: String,
    },
    /// The fail-closed tripwire: a restricted role's plan reads an identifier column that the
    /// rewrite did not mask (a path pg_deident does not cover, or a plan made for another role).
    RestrictedRawRead {
        relation: String,
    },
    /// A session restricted through its login, under another role, calls a Citus function
    /// that runs SQL on other nodes in new sessions of that role, or any restricted role
    /// calls a Citus function that shows raw values (the per-tenant statistics).
    RestrictedCitusCall {
        function: String,
        remote: bool,
    },
    /// Citus planned a restricted role's statement so that the coordinator would mask values
    /// that the workers already masked (docs/citus.md).
    RestrictedCitusPlan,
    /// UNION, INTERSECT or EXCEPT without ALL over Citus tables (docs/citus.md).
    RestrictedCitusSetOperation,
    /// A DBA's view filters a Citus table on its identifier columns (docs/citus.md).
    RestrictedCitusViewQuals {
        relation: String,
    },
    /// A view's or policy's conditions that read identifier columns (or use a subquery), on a
    /// relation owned by a role the restricted session is a member of.
    RestrictedMemberOwner {
        relation: String,
        owner: String,
    },
    /// A DBA's view's or policy's condition reads a view, a policy or a function that the
    /// restricted session controls, or a function that may read tables.
    RestrictedInDbaCondition {
        object: String,
    },
    /// A DBA's view whose conditions read identifier values through a subquery's, a CTE's or a
    /// join's outputs, which a restricted role's query masks.
    RestrictedViewQuals {
        relation: String,
    },
    /// A restricted role reads system columns (ctid, ...) of a labelled relation in a statement
    /// that reads a Citus table.
    RestrictedCitusSystemColumn {
        relation: String,
    },
    /// A restricted role reads a relation named like a Citus shard that Citus's metadata does
    /// not match to a table (docs/citus.md).
    RestrictedShard {
        relation: String,
    },
    /// A restricted role changes a labelled relation (its columns, indexes, policies, rules,
    /// triggers, statistics): as the relation's owner, it could copy or test raw values.
    RestrictedDdl {
        relation: String,
    },
    /// A restricted role runs a command that would evaluate expressions over the stored values
    /// of every relation it owns, or of the columns of a domain's type (the command's name).
    RestrictedCommand(&'static str),
    /// A restricted role makes a foreign key to a relation with identifier columns (its checks
    /// compare raw values: an existence oracle).
    RestrictedReference {
        relation: String,
    },
    /// A restricted role runs a query (a cursor, a portal) that another role started.
    RestrictedForeignQuery,
    /// A restricted role writes to a relation whose foreign key references an identifier
    /// column (the key's check compares raw values: an existence oracle).
    RestrictedKeyedWrite {
        relation: String,
        referenced: String,
    },
    /// A restricted role creates, alters, drops or grants roles.
    RestrictedRoleChange,
    /// A restricted role fetches from a held cursor it did not open while restricted.
    RestrictedHeldCursor,
    /// A role that is not a superuser detaches a partition or drops an inheritance link that
    /// carries labels (the child would stop being covered: the same as removing a label).
    UnlinkLabelled {
        relation: String,
    },
    /// A restricted role reads a labelled relation, and the masking functions are missing (the
    /// extension is not installed in this database).
    MaskingUnavailable,
}

pub type Result<T> = std::result::Result<T, DeidentError>;

/// An error as one reader sees it (`DeidentError::parts`).
#[derive(Debug)]
pub struct Report {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

/// The most of an argument an error message shows.
const ECHO_BYTES: usize = 32;

/// A caller's argument as an error message may show it: at most `ECHO_BYTES` bytes, anything
/// but printable ASCII as `?` (the text is neither cut inside a character nor sent in an
/// encoding the client does not expect), and `...` when cut.
pub fn echo(arg: &[u8]) -> String {
    let mut shown: String = arg
        .iter()
        .take(ECHO_BYTES)
        .map(|&b| if (0x20..0x7f).contains(&b) { char::from(b) } else { '?' })
        .collect();
    if arg.len() > ECHO_BYTES {
        shown.push_str("...");
    }
    shown
}

const FUNC: &str = "pg_deident";

fn file_problem_report(problem: &FileProblem) -> (PgSqlErrorCode, String, Option<String>) {
    use PgSqlErrorCode::*;
    match problem {
        FileProblem::Missing => (
            ERRCODE_UNDEFINED_FILE,
            "pseudonymization key file does not exist".into(),
            Some("Create the key file, or point deident.key_file at it, and reload the configuration.".into()),
        ),
        FileProblem::Unreadable(kind) => (
            if *kind == std::io::ErrorKind::PermissionDenied {
                ERRCODE_INSUFFICIENT_PRIVILEGE
            } else {
                ERRCODE_IO_ERROR
            },
            format!("could not read pseudonymization key file: {kind}"),
            Some("The file must be readable by the operating-system user that runs the database server.".into()),
        ),
        FileProblem::NotRegularFile => (
            ERRCODE_CONFIG_FILE_ERROR,
            "pseudonymization key file is not a regular file".into(),
            None,
        ),
        FileProblem::TooLarge => (
            ERRCODE_CONFIG_FILE_ERROR,
            "pseudonymization key file is larger than 1 MB".into(),
            Some("Check that deident.key_file names the key file.".into()),
        ),
        FileProblem::WrongOwner => (
            ERRCODE_CONFIG_FILE_ERROR,
            "pseudonymization key file must be owned by the database user or root".into(),
            Some("Change its owner to the operating-system user that runs the database server.".into()),
        ),
        FileProblem::GroupOrWorldAccess(_) => (
            ERRCODE_CONFIG_FILE_ERROR,
            "pseudonymization key file has group or world access".into(),
            Some("Remove every group and other permission from the file: chmod 0600 on it, as its owner.".into()),
        ),
        FileProblem::Line(lineno, problem) => (
            ERRCODE_CONFIG_FILE_ERROR,
            format!("pseudonymization key file is malformed at line {lineno}"),
            Some(match problem {
                LineProblem::DuplicateKeyId => "Give every key a distinct id.".into(),
                _ => "Each line must be KEY_ID:HEX, the id 1 to 32 characters from A-Z, a-z, 0-9, \"_\" and \"-\", the key at least 64 hex digits; lines starting with # are comments.".into(),
            }),
        ),
        FileProblem::ChangedWhileRead => (
            ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pseudonymization key file changed while it was read".into(),
            Some("Replace the key file by writing a new file and renaming it over the old one (mv), which is atomic.".into()),
        ),
        FileProblem::NoKeys => (
            ERRCODE_CONFIG_FILE_ERROR,
            "pseudonymization key file contains no keys".into(),
            Some("Add a line KEY_ID:HEX with at least 64 hex digits, for example from \"openssl rand -hex 32\".".into()),
        ),
    }
}

fn line_detail(problem: &FileProblem) -> Option<String> {
    match problem {
        FileProblem::Line(lineno, p) => {
            Some(format!("Line {lineno} is refused because {}.", p.describe()))
        }
        FileProblem::GroupOrWorldAccess(mode) => Some(format!("Its mode is {mode:04o}.")),
        _ => None,
    }
}

/// May the caller see the key file's path and the active key id? Only a superuser at the
/// prompt: the session user and the current user both superusers. `superuser()` alone is true
/// inside a superuser's SECURITY DEFINER function called by an analyst, and false after a
/// superuser's `SET ROLE` to an analyst.
fn privileged() -> bool {
    // SAFETY: superuser() and superuser_arg() read the user ids and a syscache entry; valid in
    // any backend inside a transaction, which every caller of this module is.
    unsafe { pg_sys::superuser() && pg_sys::superuser_arg(pg_sys::GetSessionUserId()) }
}

fn join(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a} {b}")),
        (a, b) => a.or(b),
    }
}

impl DeidentError {
    /// The SQLSTATE, message, detail and hint as a superuser sees them (`privileged`) or as
    /// anyone else does.
    pub fn parts(&self, privileged: bool) -> Report {
        use PgSqlErrorCode::*;
        let (code, message, detail, hint) = match self {
            DeidentError::UnconvertibleText => (
                ERRCODE_UNTRANSLATABLE_CHARACTER,
                "text to pseudonymize has a character with no equivalent in UTF8".to_string(),
                Some("Pseudonyms hash text as UTF-8; the character is not shown, since the text may be personal data.".to_string()),
                Some("Pseudonymize the value as bytea to hash its bytes as stored.".to_string()),
            ),
            DeidentError::NotPreloaded => (
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "pg_deident must be loaded via shared_preload_libraries".to_string(),
                None,
                Some("Add pg_deident to shared_preload_libraries in postgresql.conf and restart the server.".to_string()),
            ),
            DeidentError::NoKeyFile => (
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "no pseudonymization key is configured".to_string(),
                None,
                Some(if privileged {
                    "Set deident.key_file to a key-ring file and reload the configuration.".to_string()
                } else {
                    "Ask a superuser to configure deident.key_file.".to_string()
                }),
            ),
            DeidentError::KeyFile { path, problem } => {
                let (code, message, hint) = file_problem_report(problem);
                let detail = if privileged {
                    join(Some(format!("Key file: \"{path}\".")), line_detail(problem))
                } else {
                    line_detail(problem)
                };
                let hint = if privileged { hint } else { Some("Ask a superuser to check the server log.".to_string()) };
                (code, message, detail, hint)
            }
            DeidentError::UnknownActiveKey { id } => (
                ERRCODE_CONFIG_FILE_ERROR,
                "deident.active_key names no key in the key file".to_string(),
                privileged.then(|| format!("The setting deident.active_key is \"{id}\".")),
                Some(if privileged {
                    "Set deident.active_key to the id of a key in the file, or to '' for the first key, and reload the configuration.".to_string()
                } else {
                    "Ask a superuser to check the server log.".to_string()
                }),
            ),
            DeidentError::UnknownKeyId { id } => (
                ERRCODE_UNDEFINED_OBJECT,
                format!("pseudonymization key \"{}\" does not exist", echo(id)),
                None,
                Some("Pass '' to use the active key; deident.key_fingerprint(id) checks an id.".to_string()),
            ),
            DeidentError::KeyRingChanged => (
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "pseudonymization key ring changed while the statement ran".to_string(),
                Some("Part of the statement (a parallel worker, or a cursor opened before the key file changed) used another key ring than the rest; no pseudonym of the statement was returned.".to_string()),
                Some("Run the statement again; read a cursor opened before the change in statements of its own, or open it again.".to_string()),
            ),
            DeidentError::KeyRingUnpublished => (
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "pseudonymization keys cannot be used by this parallel worker".to_string(),
                Some("The parallel operation does not run through the executor, so its workers cannot check that they use the statement's key ring.".to_string()),
                Some("Run it without parallel workers, for an index build with max_parallel_maintenance_workers = 0.".to_string()),
            ),
            DeidentError::InvalidLength(length) => (
                ERRCODE_INVALID_PARAMETER_VALUE,
                format!("pseudonym length must be between {MIN_LENGTH} and {MAX_LENGTH}"),
                Some(format!("The length given was {length}.")),
                Some("The default is 22 characters (about 131 bits); 15 gives the seed's format.".to_string()),
            ),
            DeidentError::Aggregate(StateError::OutOfMemory) => (
                ERRCODE_OUT_OF_MEMORY,
                "out of memory".to_string(),
                Some("A k-anonymity-checked aggregate state could not grow.".to_string()),
                None,
            ),
            DeidentError::Aggregate(StateError::TooLarge) => (
                ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                "k-anonymity-checked aggregate state is too large".to_string(),
                Some("A group's state is limited to 1 GB, about 134 million distinct persons for k_count_distinct.".to_string()),
                None,
            ),
            DeidentError::Aggregate(StateError::Overflow) => (
                ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                "k-anonymity-checked aggregate result is out of range".to_string(),
                Some("The sum left the range of its type, as sum() would.".to_string()),
                None,
            ),
            DeidentError::Aggregate(StateError::Malformed) => (
                ERRCODE_INVALID_BINARY_REPRESENTATION,
                "invalid partial state of a k-anonymity-checked aggregate".to_string(),
                Some("The bytes were not written by this version of pg_deident.".to_string()),
                None,
            ),
            DeidentError::Aggregate(StateError::Mismatch) => (
                ERRCODE_INVALID_BINARY_REPRESENTATION,
                "invalid partial state of a k-anonymity-checked aggregate".to_string(),
                Some("Partial states of different aggregates cannot be combined.".to_string()),
                None,
            ),
            DeidentError::Aggregate(StateError::CappedBelowK { cap, k }) => (
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("k-anonymity-checked aggregate cannot check k = {k}: its partial states counted persons only up to {cap}"),
                Some(format!("The partial states were made where deident.min_group_size was {cap} (another node of a distributed table, or an earlier setting), and stop counting persons at that k.")),
                Some("Set deident.min_group_size alike on every node: ALTER ROLE or ALTER DATABASE ... SET reaches Citus's workers, a session's SET does not.".to_string()),
            ),
            // The executor hands the aggregate a numeric that numeric.c would never write: the
            // value is damaged, not the query.
            DeidentError::Aggregate(StateError::BadNumeric) => (
                ERRCODE_DATA_CORRUPTED,
                "invalid numeric value in a k-anonymity-checked aggregate".to_string(),
                Some("The value is not in the storage format of numeric.".to_string()),
                None,
            ),
            // As a set-returning function called where no set is accepted (execSRF.c).
            DeidentError::OutsideAggregate => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "pg_deident aggregate support function called outside an aggregate".to_string(),
                Some("These functions run only as part of deident.k_count, k_count_distinct, k_sum and k_avg.".to_string()),
                None,
            ),
            DeidentError::WindowAggregate => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "pg_deident aggregate support functions cannot be used in window functions".to_string(),
                Some("A running aggregate over a moving window frame would give away each row's value.".to_string()),
                None,
            ),
            DeidentError::NotOurState => (
                ERRCODE_DATATYPE_MISMATCH,
                "aggregate state was not made by pg_deident".to_string(),
                Some("An aggregate passes another aggregate's internal state to a pg_deident support function.".to_string()),
                None,
            ),
            DeidentError::PartialNotKAggregate(function) => (
                ERRCODE_WRONG_OBJECT_TYPE,
                format!("deident.{function} works for pg_deident's k- and dp aggregates only"),
                Some("Its first argument must be a constant naming deident.k_count, k_count_distinct, k_sum, k_avg, dp_count, dp_sum or dp_avg, as Citus gives it.".to_string()),
                None,
            ),
            DeidentError::PartialArgumentTypes(function) => (
                ERRCODE_DATATYPE_MISMATCH,
                format!("arguments of deident.{function} do not match the aggregate's types"),
                Some(if *function == "_k_partial" {
                    "The arguments after the first must be of the aggregate's argument types.".to_string()
                } else {
                    "The last argument must be of the aggregate's result type.".to_string()
                }),
                None,
            ),
            DeidentError::SealedState(SealError::UnknownKey) => (
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "aggregate state was sealed with a key this server does not hold".to_string(),
                Some("The key id in its header names no key of this server's key ring.".to_string()),
                Some("Every node that exchanges aggregate states must read the same key ring.".to_string()),
            ),
            DeidentError::SealedState(problem) => (
                ERRCODE_INVALID_TEXT_REPRESENTATION,
                "invalid sealed aggregate state".to_string(),
                Some(match problem {
                    SealError::Version(v) => format!("It is in format version {v}, which this version of pg_deident does not read."),
                    SealError::Kind => "It is the state of the other family of aggregates.".to_string(),
                    SealError::Forged => "It failed authentication: it was altered, or sealed under other key bytes of the same id.".to_string(),
                    _ => "It is not a pg_deident aggregate state sealed by this server's key ring.".to_string(),
                }),
                None,
            ),
            DeidentError::Label(LabelError::NotSuperuser) => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                "must be superuser to set or remove pg_deident security labels".to_string(),
                Some("The labels decide what is personal data; table ownership is not enough.".to_string()),
                None,
            ),
            DeidentError::Label(LabelError::UnknownColumnLabel(label)) => (
                ERRCODE_INVALID_PARAMETER_VALUE,
                format!("\"{}\" is not a pg_deident column label", echo(label.as_bytes())),
                None,
                Some("Column labels are identifier, quasi_identifier and sensitive (in any case).".to_string()),
            ),
            DeidentError::Label(LabelError::ColumnOfUnsupportedRelation) => (
                ERRCODE_WRONG_OBJECT_TYPE,
                "pg_deident labels columns of tables, partitioned tables, foreign tables, views and materialized views only".to_string(),
                None,
                None,
            ),
            DeidentError::Label(LabelError::UnknownRoleLabel(label)) => (
                ERRCODE_INVALID_PARAMETER_VALUE,
                format!("\"{}\" is not a pg_deident role label", echo(label.as_bytes())),
                None,
                Some("The role label is restricted (in any case).".to_string()),
            ),
            DeidentError::Label(LabelError::RestrictedSuperuser) => (
                ERRCODE_INVALID_PARAMETER_VALUE,
                "a superuser cannot be restricted".to_string(),
                Some("A superuser bypasses every check pg_deident makes.".to_string()),
                Some("Restrict a role without SUPERUSER.".to_string()),
            ),
            DeidentError::Label(LabelError::OwnerRestricted) => (
                ERRCODE_INVALID_PARAMETER_VALUE,
                "a relation owned by a restricted role cannot carry pg_deident labels".to_string(),
                Some("Its owner could change it in ways no query shows (its indexes, policies and the functions they call) and read the raw values.".to_string()),
                Some("Give the relation to a role that is not restricted (ALTER TABLE ... OWNER TO), then label it.".to_string()),
            ),
            DeidentError::Label(LabelError::RestrictedOwner) => (
                ERRCODE_INVALID_PARAMETER_VALUE,
                "a role that owns labelled relations cannot be restricted".to_string(),
                Some("The role, or a role that inherits its privileges, owns a relation with pg_deident labels; as its owner it could read the raw values.".to_string()),
                Some("Give those relations to a role that is not restricted (ALTER TABLE ... OWNER TO), then restrict the role.".to_string()),
            ),
            DeidentError::RestrictedKeyedCall => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                "a restricted role cannot call pg_deident's keyed functions".to_string(),
                Some("Comparing the pseudonym of a guess with a column would test guesses of raw values.".to_string()),
                Some("Columns labelled identifier already read as pseudonyms: compare and join them as they are.".to_string()),
            ),
            DeidentError::RestrictedWrite { relation } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("a restricted role cannot write to relation \"{}\"", echo(relation.as_bytes())),
                Some("The relation has columns labelled as personal data; INSERT, UPDATE, DELETE, MERGE, COPY FROM, TRUNCATE and SELECT FOR UPDATE/SHARE are refused.".to_string()),
                None,
            ),
            DeidentError::RestrictedRawRead { relation } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("a restricted role cannot read identifier columns of relation \"{}\" this way", echo(relation.as_bytes())),
                Some("The statement would read raw values that pg_deident cannot replace by pseudonyms on this path (for example a labelled column of a view over UNION); it is refused rather than answered.".to_string()),
                Some("Label the identifier columns of the tables that the view reads, or ask a role that is not restricted.".to_string()),
            ),
            DeidentError::RestrictedCitusCall { function, remote: true } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("a restricted session cannot call {}() as another role", echo(function.as_bytes())),
                Some("Citus runs the command on other nodes in new sessions of the current role, where the restriction that this session's login carries does not reach.".to_string()),
                Some("RESET ROLE first: the command then runs as the restricted login on every node.".to_string()),
            ),
            DeidentError::RestrictedCitusCall { function, remote: false } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("a restricted role cannot call {}()", echo(function.as_bytes())),
                Some("Citus's per-tenant and per-query statistics hold raw values of the distribution column.".to_string()),
                Some("Ask a role that is not restricted.".to_string()),
            ),
            DeidentError::RestrictedCitusPlan => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "pg_deident cannot answer this statement of a restricted role on Citus".to_string(),
                Some("Citus planned it to compute pseudonyms on the coordinator from values that the workers have already replaced by pseudonyms (a window function, for example, over columns of several shards): the answer would hold pseudonyms of pseudonyms.".to_string()),
                Some("Read the distributed table in a subquery that Citus runs on its own (with OFFSET 0, for example), and compute on its rows.".to_string()),
            ),
            DeidentError::RestrictedCitusSetOperation => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "pg_deident cannot answer UNION, INTERSECT or EXCEPT without ALL over Citus tables for a restricted role".to_string(),
                Some("For a restricted role each labelled table is read through a subquery, and Citus then combines the branches shard by shard, so rows that repeat across shards would not be merged.".to_string()),
                Some("Use UNION ALL and SELECT DISTINCT over it, or read each branch in a subquery with OFFSET 0.".to_string()),
            ),
            DeidentError::RestrictedCitusViewQuals { relation } => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("pg_deident cannot apply a view's conditions on \"{}\" for a restricted role in a statement that reads a Citus table", echo(relation.as_bytes())),
                Some("On one node a view's conditions see raw values, also in the tables their subqueries read; Citus sends such a statement to other nodes or plans it again as SQL, where a restricted role's query sees only pseudonyms, so the conditions would let rows through.".to_string()),
                Some("Filter in the view on columns that are not identifiers, without subqueries, or keep the filtered rows in a table of their own.".to_string()),
            ),
            DeidentError::RestrictedMemberOwner { relation, owner } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("a restricted role cannot use the conditions of \"{}\", owned by role \"{}\" of which it is a member", echo(relation.as_bytes()), echo(owner.as_bytes())),
                Some("They read identifier columns or use a subquery. A DBA's conditions see raw values; a role the restricted session is a member of could have been given conditions the session wrote, which would test guesses of raw values.".to_string()),
                Some("Have the DBA check that the conditions are the DBA's, then give the view or table an owner that the restricted role is not a member of.".to_string()),
            ),
            DeidentError::RestrictedInDbaCondition { object } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("a restricted role cannot use a view's or policy's conditions that use \"{}\"", echo(object.as_bytes())),
                Some("The conditions of a DBA's view or row-security policy see raw values. A table, view, policy or function there that the restricted role controls (its own, or one owned by a role it is a member of) would see them too or answer guesses; a function in SQL or a procedural language, or a domain's CHECK, may run the role's code or read tables as the role, over pseudonyms; current_setting() and current_query() hold values the role chose.".to_string()),
                Some("Use in such conditions only tables and views the DBA controls and built-in or C functions.".to_string()),
            ),
            DeidentError::RestrictedViewQuals { relation } => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("pg_deident cannot apply the conditions of view \"{}\" for a restricted role", echo(relation.as_bytes())),
                Some("They read identifier values through the outputs of a subquery, a WITH query, a join or a function of the view, or they are the conditions of such a subquery, or a HAVING under GROUPING SETS; there a restricted role's query sees pseudonyms, so the conditions would test pseudonyms and let rows through.".to_string()),
                Some("Read the table in the view's own FROM and write the condition in the view's own WHERE, JOIN ... ON or HAVING.".to_string()),
            ),
            DeidentError::RestrictedCitusSystemColumn { relation } => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("pg_deident cannot give a restricted role system columns of \"{}\" in a statement that reads a Citus table", echo(relation.as_bytes())),
                Some("A restricted role reads a labelled relation through a subquery, which carries system columns (ctid, xmin, tableoid, ...) as extra outputs; Citus drops them when it sends the statement to other nodes or plans it again as SQL.".to_string()),
                Some("Leave system columns out of the query.".to_string()),
            ),
            DeidentError::RestrictedShard { relation } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("a restricted role cannot read relation \"{}\" on a Citus node", echo(relation.as_bytes())),
                Some("It is named like a shard of a distributed table (ending in _ and digits) but Citus's metadata on this node does not say of which table (or the shard lacks one of the table's labelled columns), or it holds Citus's per-tenant statistics: pg_deident cannot tell which of its columns to replace by pseudonyms.".to_string()),
                Some("Query the distributed table on a node with Citus metadata (docs/citus.md); rename a table of your own that only looks like a shard.".to_string()),
            ),
            DeidentError::RestrictedDdl { relation } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("a restricted role cannot change relation \"{}\"", echo(relation.as_bytes())),
                Some("The relation has columns labelled as personal data; changing its columns, indexes, policies, rules, triggers or statistics could copy raw values or test guesses of them.".to_string()),
                Some("Ask a role that is not restricted to make the change.".to_string()),
            ),
            DeidentError::RestrictedCommand(command) => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("a restricted role cannot run {command}"),
                Some("The command would evaluate expressions over the stored values of relations that may hold personal data.".to_string()),
                Some("Name the relations, none of them labelled; or ask a role that is not restricted.".to_string()),
            ),
            DeidentError::RestrictedReference { relation } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("a restricted role cannot make a foreign key to relation \"{}\"", echo(relation.as_bytes())),
                Some("The relation has identifier columns; checking the key compares raw values, which would test guesses of them.".to_string()),
                None,
            ),
            DeidentError::RestrictedForeignQuery => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                "a restricted role cannot run a query that another role started".to_string(),
                Some("The cursor or portal was opened by another role, before SET ROLE or SET SESSION AUTHORIZATION; its plan was made for that role.".to_string()),
                Some("Open it again as this role.".to_string()),
            ),
            DeidentError::RestrictedKeyedWrite { relation, referenced } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("a restricted role cannot write to relation \"{}\"", echo(relation.as_bytes())),
                Some(format!("A foreign key of the relation references identifier columns of \"{}\"; checking it compares raw values, which would test guesses of them.", echo(referenced.as_bytes()))),
                None,
            ),
            DeidentError::RestrictedRoleChange => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                "a restricted role cannot create, alter, drop or grant roles".to_string(),
                Some("Changing role memberships could lift the restriction.".to_string()),
                Some("Ask a role that is not restricted to make the change.".to_string()),
            ),
            DeidentError::RestrictedHeldCursor => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                "a restricted role cannot read a held cursor opened by another role".to_string(),
                Some("A cursor declared WITH HOLD by a role that is not restricted is open in this session; its rows are stored unmasked.".to_string()),
                Some("CLOSE the cursor (or CLOSE ALL); declare it again as this role if needed.".to_string()),
            ),
            DeidentError::UnlinkLabelled { relation } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("must be superuser to unlink a child of relation \"{}\"", echo(relation.as_bytes())),
                Some("The relation's pg_deident labels cover its partitions and inheritance children; detaching one removes its labels.".to_string()),
                None,
            ),
            DeidentError::MaskingUnavailable => (
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "pg_deident is not installed in this database".to_string(),
                Some("A restricted role reads a relation with identifier columns, and the functions that replace them by pseudonyms are missing.".to_string()),
                Some("Run CREATE EXTENSION pg_deident in this database.".to_string()),
            ),
            DeidentError::DpBounds(problem) => {
                let (message, hint) = match problem {
                    BoundsError::NotFinite => ("the bounds of a dp aggregate must be finite", "Give lower and upper as finite numbers."),
                    BoundsError::Reversed => ("the lower bound of a dp aggregate must not exceed its upper bound", "Give the bounds as lower, upper."),
                    BoundsError::TooLarge => ("the bounds of a dp aggregate must lie between -2^52 and 2^52", "Each person's total is clamped to the bounds; bounds that wide would need noise beyond any use."),
                    BoundsError::TooSmall => ("the bounds of a dp aggregate must be 0 or at least 2^-1000 in magnitude", "Scale the values up."),
                    BoundsError::Null => ("the bounds of a dp aggregate must not be NULL", "Give lower and upper as constants."),
                    BoundsError::NotConstant => ("the bounds of a dp aggregate must be constants", "Write the bounds as literals (in PL/pgSQL, with EXECUTE format()): they are checked when the query is planned, so that a bad bound fails whatever the data, and parameters have no value then."),
                };
                (ERRCODE_INVALID_PARAMETER_VALUE, message.to_string(), None, Some(hint.to_string()))
            }
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::NotIdentifier) => (
                ERRCODE_INVALID_COLUMN_REFERENCE,
                "the person of a dp aggregate must be a column labelled identifier".to_string(),
                Some("The person is the unit of privacy: any expression of it could make one row many persons.".to_string()),
                Some("Pass the column itself, of a table in FROM, after SECURITY LABEL FOR deident ON COLUMN t.c IS 'identifier'.".to_string()),
            ),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::ValueElsewhere) => (
                ERRCODE_INVALID_COLUMN_REFERENCE,
                "the value of a dp aggregate must be a column of the person's own table".to_string(),
                Some("A value read from another table or a subquery could give one person's data to every person, and one computed could fail on one person's data.".to_string()),
                Some("Pass a column of the same table as the person; compute anything else on the answers.".to_string()),
            ),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::Functions) => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "a statement with dp aggregates cannot call volatile or user-defined functions".to_string(),
                Some("Such a function can change what the aggregates' arguments read from one row to the next (set_config), or read any row while declared IMMUTABLE or STABLE; nor can it make partial states itself (deident._k_partial).".to_string()),
                Some("Compute what the function gives in an earlier statement, or ask the DBA for a view.".to_string()),
            ),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::OtherPersonalTable) => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "a statement with dp aggregates can read a table with identifier columns only as the table of the aggregates' persons".to_string(),
                Some("A join, EXISTS or subquery over another person's rows could decide which rows every person contributes.".to_string()),
                Some("Join only tables without identifier columns (public lists); filter on the persons' own rows.".to_string()),
            ),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::Leaky) => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "a statement with dp aggregates can run only leakproof functions on its rows".to_string(),
                Some("A function that can raise an error (a division, a cast) in WHERE, JOIN, GROUP BY, HAVING or an aggregate's arguments would fail exactly when some person's row is there.".to_string()),
                Some("Compare columns with constants. Compute anything else in the select list over the aggregates' answers, or on the answers in a later statement (CREATE TEMP TABLE ... AS): a query around them is checked as the rows are.".to_string()),
            ),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::WrittenCombination) => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "the dp aggregates' partial states are combined only in the plan Citus makes for the dp aggregate".to_string(),
                Some("A call of deident._k_combine_partials or coord_combine_agg of dp_count, dp_sum or dp_avg in a statement would count the persons (and their values) of states made from anything (any expression as the person), which the rules on dp aggregate calls could not check.".to_string()),
                Some("Call the dp aggregate itself; on Citus its partial states are combined on the coordinator.".to_string()),
            ),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::WorkerShard) => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "dp aggregates over a distributed table are computed on the Citus coordinator, not on a worker's shards".to_string(),
                Some("Citus sends a statement to the workers whole when its rows come from one shard (a condition on the distribution column) or when it groups by the distribution column; computed on the workers, each shard would admit persons and charge a privacy ledger of its own.".to_string()),
                Some("Run the statement on the coordinator, grouped by other columns and without a condition that picks one shard, so that Citus brings the rows to the coordinator.".to_string()),
            ),
            DeidentError::DpGrouping(problem) => {
                use crate::dp::grouping::GroupingProblem::*;
                let (message, hint) = match problem {
                    GroupingSets => ("dp aggregates cannot be used with GROUPING SETS, ROLLUP or CUBE", "Run one statement for each grouping, or add the finer groups' answers up."),
                    OrderedAggregate => ("dp aggregates cannot be used with ORDER BY or DISTINCT inside an aggregate call of the same query", "Compute the ordered or distinct aggregate in another statement."),
                    NotHashable => ("dp aggregates can only be grouped by columns whose types can be hashed", "Group by columns of other types."),
                    Correlated => ("dp aggregates cannot be used in a correlated subquery or a LATERAL subquery", "Group by the outer query's columns in one statement instead."),
                    CitusLimit => ("dp aggregates over a Citus table cannot be used with LIMIT or OFFSET in the same query", "Put the grouped query in a subquery and apply LIMIT to its answers: SELECT * FROM (SELECT ...) s ORDER BY ... LIMIT n."),
                };
                (
                    ERRCODE_FEATURE_NOT_SUPPORTED,
                    message.to_string(),
                    Some("Each person counts in at most deident.dp_max_groups_per_person groups of a dp aggregate, chosen from all of the person's groups at once; only a hash aggregate that holds every group can do that.".to_string()),
                    Some(hint.to_string()),
                )
            }
            DeidentError::DpUncharged => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "dp aggregates can only be finalized where their statement's plan was charged for them".to_string(),
                Some("Each dp aggregate call is charged when its statement starts, from its plan, and counts every person in a bounded number of groups; a parallel worker finalizing groups itself, or a combination of Citus partial states that the plan does not show as dp_count's, would count them where no charge covers them.".to_string()),
                Some("SET enable_partitionwise_aggregate = off; and run dp aggregates outside functions that parallel workers run.".to_string()),
            ),
            DeidentError::DpUnchecked => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "a dp aggregate call reached the plan without the checks of dp aggregate calls".to_string(),
                Some("PostgreSQL inlines a set-returning SQL function's body, and the views it reads, after the checks of the statement that calls it: a dp aggregate there, or a combination of a dp aggregate's partial states, was not checked; nor is an aggregate of a role's own whose final function reaches a dp aggregate's.".to_string()),
                Some("Call dp aggregates in the statement itself or in a view it reads, not through a set-returning SQL function or an aggregate of your own.".to_string()),
            ),
            DeidentError::DpExplainAnalyze => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                "only superusers may run EXPLAIN ANALYZE on a statement with dp aggregates".to_string(),
                Some("Its row counts are exact; the answers of dp aggregates are noisy so that no single person's data shows.".to_string()),
                Some("Run the statement itself, or EXPLAIN without ANALYZE to see its plan; with auto_explain, set auto_explain.log_analyze = off.".to_string()),
            ),
            DeidentError::DpNoiseScale => (
                ERRCODE_INVALID_PARAMETER_VALUE,
                "the noise scale of a dp aggregate is out of range".to_string(),
                None,
                Some("Raise deident.dp_epsilon or narrow the bounds.".to_string()),
            ),
            DeidentError::DpRandom => (
                ERRCODE_SYSTEM_ERROR,
                "could not obtain random bytes from the operating system".to_string(),
                None,
                None,
            ),
            DeidentError::NoPrivacyBudget { role } => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("role \"{}\" has no privacy budget", echo(role.as_bytes())),
                Some("Every statement with dp aggregates is charged to the session's role and to the current role, unless they are superusers.".to_string()),
                Some("A superuser sets one with deident.set_privacy_budget(role, epsilon).".to_string()),
            ),
            DeidentError::PrivacyBudgetExhausted { role, asked, remaining } => (
                ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                format!("privacy budget of role \"{}\" is exhausted", echo(role.as_bytes())),
                Some(format!("The statement needs epsilon {asked} (dp_epsilon times dp_max_groups_per_person for each dp aggregate call); {remaining} remains.")),
                Some("Lower deident.dp_epsilon or deident.dp_max_groups_per_person, or ask a superuser to raise the budget.".to_string()),
            ),
            DeidentError::BudgetOnStandby => (
                ERRCODE_READ_ONLY_SQL_TRANSACTION,
                "privacy budgets cannot be charged or changed during recovery".to_string(),
                Some("A hot standby cannot record what is spent; a budget per replica could be spent once on each.".to_string()),
                Some("Run dp aggregates on the primary.".to_string()),
            ),
            DeidentError::InvalidEpsilon => (
                ERRCODE_INVALID_PARAMETER_VALUE,
                "the privacy charge of the statement is too large".to_string(),
                Some("It is deident.dp_epsilon times deident.dp_max_groups_per_person for each dp aggregate call.".to_string()),
                Some("Lower deident.dp_epsilon or deident.dp_max_groups_per_person.".to_string()),
            ),
            DeidentError::LedgerTimeline { file, server } => (
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the privacy ledger was written on another timeline".to_string(),
                Some(format!("The ledger file is from timeline {file}, this server is on timeline {server}: after a promotion or a point-in-time recovery it may be older than what was spent.")),
                Some("A superuser checks deident.privacy_budget and confirms it by calling deident.set_privacy_budget.".to_string()),
            ),
            DeidentError::LedgerUnreadable => (
                ERRCODE_DATA_CORRUPTED,
                "the privacy ledger could not be read when the server started".to_string(),
                Some("Every privacy budget charge is refused until it can; the server log has the reason.".to_string()),
                None,
            ),
            DeidentError::LedgerFull => (
                ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("at most {} roles can have a privacy budget", crate::dp::budget::MAX_ACCOUNTS),
                None,
                Some("Give budgets to group roles rather than to each login.".to_string()),
            ),
            DeidentError::LedgerWrite(e) => (
                ERRCODE_IO_ERROR,
                "could not write the privacy ledger".to_string(),
                Some(if privileged { format!("File \"pg_deident_privacy_ledger\" in the data directory: {e}.") } else { "The server log has the reason.".to_string() }),
                None,
            ),
            DeidentError::BudgetNull => (
                ERRCODE_NULL_VALUE_NOT_ALLOWED,
                "role and epsilon of a privacy budget must not be NULL".to_string(),
                None,
                None,
            ),
            DeidentError::BudgetNotSuperuser => (
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                "must be superuser to set a privacy budget".to_string(),
                None,
                None,
            ),
            DeidentError::BudgetForSuperuser => (
                ERRCODE_INVALID_PARAMETER_VALUE,
                "superusers have no privacy budget".to_string(),
                Some("Superusers are never limited.".to_string()),
                None,
            ),
            DeidentError::InvalidBudget => (
                ERRCODE_INVALID_PARAMETER_VALUE,
                "a privacy budget must be a finite, non-negative epsilon".to_string(),
                None,
                None,
            ),
            DeidentError::Label(LabelError::NotAColumn) => (
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "pg_deident labels columns only".to_string(),
                None,
                Some("Label each column: SECURITY LABEL FOR deident ON COLUMN t.c IS 'identifier' (or 'quasi_identifier', 'sensitive').".to_string()),
            ),
        };
        Report { code, message, detail, hint }
    }

    fn to_report(&self, privileged: bool) -> ErrorReport {
        let Report { code, message, detail, hint } = self.parts(privileged);
        let mut report = ErrorReport::new(code, message, FUNC);
        if let Some(detail) = detail {
            report = report.set_detail(detail);
        }
        if let Some(hint) = hint {
            report = report.set_hint(hint);
        }
        report
    }

    /// Raises the error. For anyone but a privileged caller, the full text first goes to the
    /// server log alone (LOG_SERVER_ONLY is never sent to a client, whatever
    /// client_min_messages says; elog.h), so a DBA can still find the path.
    pub fn report(self) -> ! {
        if privileged() {
            self.to_report(true).report(PgLogLevel::ERROR);
        } else {
            if matches!(self, DeidentError::KeyFile { .. } | DeidentError::UnknownActiveKey { .. })
            {
                let Report { code, message, detail, .. } = self.parts(true);
                let text = format!("{message}: {}", detail.unwrap_or_default());
                ErrorReport::new(code, text, FUNC).report(PgLogLevel::LOG_SERVER_ONLY);
            }
            self.to_report(false).report(PgLogLevel::ERROR);
        }
        unreachable!("an ERROR report does not return")
    }
}

/// Unwraps a result or raises its error.
pub trait OrReport<T> {
    fn or_report(self) -> T;
}

impl<T> OrReport<T> for Result<T> {
    #[inline]
    fn or_report(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.report(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_errors() -> Vec<DeidentError> {
        let path = "/secret/place/pg_deident.keys".to_string();
        let mut errors = vec![
            DeidentError::UnconvertibleText,
            DeidentError::NotPreloaded,
            DeidentError::NoKeyFile,
            DeidentError::UnknownActiveKey { id: "hidden_active".into() },
            DeidentError::UnknownKeyId { id: b"asked".to_vec() },
            DeidentError::KeyRingChanged,
            DeidentError::KeyRingUnpublished,
            DeidentError::InvalidLength(99),
            DeidentError::Aggregate(StateError::OutOfMemory),
            DeidentError::Aggregate(StateError::TooLarge),
            DeidentError::Aggregate(StateError::Overflow),
            DeidentError::Aggregate(StateError::Malformed),
            DeidentError::Aggregate(StateError::Mismatch),
            DeidentError::Aggregate(StateError::BadNumeric),
            DeidentError::Aggregate(StateError::CappedBelowK { cap: 5, k: 10 }),
            DeidentError::OutsideAggregate,
            DeidentError::WindowAggregate,
            DeidentError::NotOurState,
            DeidentError::PartialNotKAggregate("_k_partial"),
            DeidentError::PartialArgumentTypes("_k_combine_partials"),
            DeidentError::SealedState(SealError::UnknownKey),
            DeidentError::SealedState(SealError::Forged),
            DeidentError::Label(LabelError::NotSuperuser),
            DeidentError::Label(LabelError::UnknownColumnLabel("secret".into())),
            DeidentError::Label(LabelError::ColumnOfUnsupportedRelation),
            DeidentError::Label(LabelError::UnknownRoleLabel("x".into())),
            DeidentError::Label(LabelError::RestrictedSuperuser),
            DeidentError::Label(LabelError::OwnerRestricted),
            DeidentError::Label(LabelError::RestrictedOwner),
            DeidentError::RestrictedKeyedCall,
            DeidentError::RestrictedWrite { relation: "t".into() },
            DeidentError::RestrictedRawRead { relation: "t".into() },
            DeidentError::RestrictedShard { relation: "t_102008".into() },
            DeidentError::RestrictedCitusCall {
                function: "run_command_on_workers".into(),
                remote: true,
            },
            DeidentError::RestrictedCitusCall {
                function: "citus_stat_tenants".into(),
                remote: false,
            },
            DeidentError::RestrictedCitusPlan,
            DeidentError::RestrictedCitusSetOperation,
            DeidentError::RestrictedCitusViewQuals { relation: "people".into() },
            DeidentError::RestrictedCitusSystemColumn { relation: "people".into() },
            DeidentError::RestrictedViewQuals { relation: "v".into() },
            DeidentError::RestrictedMemberOwner { relation: "v".into(), owner: "helper".into() },
            DeidentError::RestrictedInDbaCondition { object: "f".into() },
            DeidentError::RestrictedForeignQuery,
            DeidentError::RestrictedRoleChange,
            DeidentError::RestrictedHeldCursor,
            DeidentError::RestrictedReference { relation: "t".into() },
            DeidentError::RestrictedKeyedWrite { relation: "t".into(), referenced: "u".into() },
            DeidentError::RestrictedDdl { relation: "t".into() },
            DeidentError::RestrictedCommand("ALTER DOMAIN"),
            DeidentError::UnlinkLabelled { relation: "t".into() },
            DeidentError::MaskingUnavailable,
            DeidentError::Label(LabelError::NotAColumn),
            DeidentError::DpBounds(BoundsError::NotFinite),
            DeidentError::DpBounds(BoundsError::Reversed),
            DeidentError::DpBounds(BoundsError::TooLarge),
            DeidentError::DpBounds(BoundsError::TooSmall),
            DeidentError::DpBounds(BoundsError::Null),
            DeidentError::DpBounds(BoundsError::NotConstant),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::NotIdentifier),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::ValueElsewhere),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::Functions),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::OtherPersonalTable),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::Leaky),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::WorkerShard),
            DeidentError::DpPerson(crate::dp::plan::PersonProblem::WrittenCombination),
            DeidentError::DpUncharged,
            DeidentError::DpUnchecked,
            DeidentError::DpExplainAnalyze,
            DeidentError::DpGrouping(crate::dp::grouping::GroupingProblem::GroupingSets),
            DeidentError::DpGrouping(crate::dp::grouping::GroupingProblem::OrderedAggregate),
            DeidentError::DpGrouping(crate::dp::grouping::GroupingProblem::NotHashable),
            DeidentError::DpGrouping(crate::dp::grouping::GroupingProblem::Correlated),
            DeidentError::DpGrouping(crate::dp::grouping::GroupingProblem::CitusLimit),
            DeidentError::DpNoiseScale,
            DeidentError::DpRandom,
            DeidentError::NoPrivacyBudget { role: "analyst".into() },
            DeidentError::PrivacyBudgetExhausted {
                role: "analyst".into(),
                asked: 0.5,
                remaining: 0.25,
            },
            DeidentError::BudgetOnStandby,
            DeidentError::InvalidEpsilon,
            DeidentError::LedgerTimeline { file: 1, server: 2 },
            DeidentError::LedgerUnreadable,
            DeidentError::LedgerFull,
            DeidentError::LedgerWrite("No space left on device".into()),
            DeidentError::BudgetNull,
            DeidentError::BudgetNotSuperuser,
            DeidentError::BudgetForSuperuser,
            DeidentError::InvalidBudget,
        ];
        let problems = [
            FileProblem::Missing,
            FileProblem::Unreadable(std::io::ErrorKind::PermissionDenied),
            FileProblem::Unreadable(std::io::ErrorKind::Other),
            FileProblem::NotRegularFile,
            FileProblem::TooLarge,
            FileProblem::WrongOwner,
            FileProblem::GroupOrWorldAccess(0o640),
            FileProblem::Line(7, LineProblem::BadHex),
            FileProblem::Line(2, LineProblem::DuplicateKeyId),
            FileProblem::NoKeys,
            FileProblem::ChangedWhileRead,
        ];
        for problem in problems {
            errors.push(DeidentError::KeyFile { path: path.clone(), problem });
        }
        errors
    }

    fn text(r: &Report) -> String {
        format!(
            "{} {} {}",
            r.message,
            r.detail.as_deref().unwrap_or(""),
            r.hint.as_deref().unwrap_or("")
        )
    }

    #[test]
    fn analysts_never_see_the_path_or_the_active_key() {
        for e in all_errors() {
            let shown = text(&e.parts(false));
            assert!(!shown.contains("/secret/place"), "{e:?}: {shown}");
            assert!(!shown.contains("hidden_active"), "{e:?}: {shown}");
        }
    }

    #[test]
    fn superusers_see_the_path() {
        for e in all_errors() {
            if let DeidentError::KeyFile { .. } = e {
                assert!(text(&e.parts(true)).contains("\"/secret/place/pg_deident.keys\""));
            }
        }
    }

    #[test]
    fn messages_follow_the_style_guide() {
        for e in all_errors() {
            for privileged in [false, true] {
                let Report { message, detail, hint, .. } = e.parts(privileged);
                let first = message.chars().next().unwrap();
                assert!(!first.is_uppercase() && !message.ends_with('.'), "{message}");
                for sentence in detail.iter().chain(hint.iter()) {
                    assert!(sentence.ends_with('.'), "{sentence}");
                    assert!(sentence.chars().next().unwrap().is_uppercase(), "{sentence}");
                }
            }
        }
    }

    #[test]
    fn arguments_are_echoed_short_and_printable() {
        assert_eq!(echo(b"k2"), "k2");
        assert_eq!(echo(&[b'a', 0xc3, 0xa9, b'\n']), "a???");
        let long = vec![b'x'; 10_000];
        assert_eq!(echo(&long), format!("{}...", "x".repeat(32)));
        let e = DeidentError::UnknownKeyId { id: long.clone() };
        assert!(e.parts(false).message.len() < 100);
        let label = DeidentError::Label(LabelError::UnknownColumnLabel("y".repeat(5000)));
        assert!(label.parts(true).message.len() < 100);
    }

    #[test]
    fn each_error_has_its_sqlstate() {
        use PgSqlErrorCode::*;
        let codes: Vec<PgSqlErrorCode> = all_errors().iter().map(|e| e.parts(true).code).collect();
        assert_eq!(
            codes,
            vec![
                ERRCODE_UNTRANSLATABLE_CHARACTER,
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                ERRCODE_CONFIG_FILE_ERROR,
                ERRCODE_UNDEFINED_OBJECT,
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_OUT_OF_MEMORY,
                ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                ERRCODE_INVALID_BINARY_REPRESENTATION,
                ERRCODE_INVALID_BINARY_REPRESENTATION,
                ERRCODE_DATA_CORRUPTED,
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_DATATYPE_MISMATCH,
                ERRCODE_WRONG_OBJECT_TYPE,
                ERRCODE_DATATYPE_MISMATCH,
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                ERRCODE_INVALID_TEXT_REPRESENTATION,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_WRONG_OBJECT_TYPE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_INVALID_COLUMN_REFERENCE,
                ERRCODE_INVALID_COLUMN_REFERENCE,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_FEATURE_NOT_SUPPORTED,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_SYSTEM_ERROR,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
                ERRCODE_READ_ONLY_SQL_TRANSACTION,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                ERRCODE_DATA_CORRUPTED,
                ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                ERRCODE_IO_ERROR,
                ERRCODE_NULL_VALUE_NOT_ALLOWED,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_INVALID_PARAMETER_VALUE,
                ERRCODE_UNDEFINED_FILE,
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                ERRCODE_IO_ERROR,
                ERRCODE_CONFIG_FILE_ERROR,
                ERRCODE_CONFIG_FILE_ERROR,
                ERRCODE_CONFIG_FILE_ERROR,
                ERRCODE_CONFIG_FILE_ERROR,
                ERRCODE_CONFIG_FILE_ERROR,
                ERRCODE_CONFIG_FILE_ERROR,
                ERRCODE_CONFIG_FILE_ERROR,
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            ]
        );
    }
}
