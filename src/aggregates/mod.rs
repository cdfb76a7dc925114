//! The k-anonymity-checked aggregates (SPEC "k-anonymity-checked aggregates"): k_count,
//! k_count_distinct, k_sum and k_avg, each answering only for a group in which at least
//! `deident.min_group_size` distinct non-NULL persons contributed.
//!
//! The state is `internal`: SQL can neither build nor read one, so no caller can obtain a
//! partial state below the threshold and re-aggregate it; k is checked only in the final
//! functions. The support functions are revoked from PUBLIC (the aggregates still run: only
//! their owner needs EXECUTE on them; nodeAgg.c, `ExecInitAgg`).
//!
//! The aggregates are declared with `CREATE AGGREGATE` in sql/k_aggregates.sql, not
//! `#[pg_aggregate]` (pgrx issue 2351: a wrong deserialize signature for internal states),
//! over plain fmgr functions.
//!
//! - `state`, `decimal`, `numeric`, `buf`: the pure core (no PostgreSQL types; `cargo test`):
//!   the state and its merge and bytes, exact numeric sums, numeric's storage format, and
//!   the growable arrays the state is made of, generic over where their memory comes from.
//! - `memory`: where states live in the server: the aggregate's memory context.
//! - `support`: transition, combine, serialize and deserialize functions.
//! - `finals`: the final functions, where k is checked.
//! - `expanded`: the state type deident.k_state (an expanded object, sealed when flattened).
//! - `partial`: what a Citus worker runs in `worker_partial_agg`'s place for a k-aggregate.

pub mod buf;
pub mod decimal;
pub(crate) mod expanded;
mod finals;
pub(crate) mod memory;
pub mod numeric;
pub(crate) mod partial;
pub mod state;
pub(crate) mod support;

pgrx::extension_sql_file!("../../sql/k_aggregates.sql", name = "k_aggregates");
#[cfg(any(test, feature = "pg_test"))]
mod tests;
