//! Differentially private aggregates (SPEC "Differentially private aggregates", issue 10): so
//! far only the noise, a pure module with its own statistical tests. The aggregates, the
//! release rule and the privacy budget build on it.

// Nothing calls the sampler yet: the dp aggregates that will are the rest of issue 10. The
// allowance goes with them.
#[allow(dead_code)]
pub mod noise;
