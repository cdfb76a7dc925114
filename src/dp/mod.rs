//! Differentially private aggregates (SPEC "Differentially private aggregates"): dp_count,
//! dp_sum and dp_avg, with each person's contribution bounded inside the aggregate, a release
//! rule for groups, noise from the OS CSPRNG, and a privacy budget that nothing refunds.
//!
//! - `noise`, `state`, `release`, `ledger`: the pure core (`cargo test`): the samplers, the
//!   per-person totals, the release threshold and ε split, the ledger's rules and file.
//! - `aggregates`: the aggregates' functions in the server; `plan`: their bounds, checked
//!   when a query is planned; `budget`: the ledger in shared memory and its SQL functions.
//! - `charge`: what a statement is charged, before it runs; `admission`: the groups of a
//!   call each person counts in; `grouping`: the hash aggregate that makes that choice
//!   possible.
//!
//! docs/differential-privacy.md has the parameters, the accounting argument and the ledger's
//! design.

mod admission;
pub(crate) mod aggregates;
pub mod budget;
pub mod charge;
pub mod grouping;
pub mod ledger;
pub mod noise;
pub mod plan;
pub mod release;
pub mod state;

pgrx::extension_sql_file!(
    "../../sql/dp.sql",
    name = "dp",
    requires = ["k_aggregates", budget::_privacy_budgets]
);
