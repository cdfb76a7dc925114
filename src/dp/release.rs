//! The release rule and the split of ε (SPEC "Group release"), pure.
//!
//! A group is answered only if a noisy count of its distinct persons reaches τ, the release
//! threshold of noise.rs (`release_threshold`: the smallest τ with which a group of one person
//! passes with probability at most δ), and never below `deident.min_group_size`. Otherwise
//! the aggregate is NULL. Each aggregate decides from its own noisy count (aggregates.rs,
//! `decide`, says why decisions are not shared).
//!
//! ε of one aggregate in one group is spent so:
//! - dp_count: all of ε on its noisy count (scale 1/ε), which is both the answer and the
//!   release decision;
//! - dp_sum: ε/2 on the release count (scale 2/ε), ε/2 on the clamped sum (scale 2Δ/ε);
//! - dp_avg: ε/2 on the noisy count, which decides release and is the denominator, ε/2 on the
//!   clamped sum.
//!
//! By basic composition each aggregate is ε-DP for the group's values, and (ε, δ)-DP with its
//! release decision counted (docs/differential-privacy.md has the argument).

use super::noise::{noisy_integer, release_threshold, RandomError, RandomSource, Scale};

/// What an aggregate needs to decide and noise its group, read from the settings once per
/// call of a final function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub epsilon: f64,
    pub delta: f64,
    pub k: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseError {
    /// ε (or the noise scale it implies with the bounds) is out of the sampler's range.
    Scale,
    /// δ outside (0, 1).
    Delta,
    Random,
}

impl From<RandomError> for ReleaseError {
    fn from(_: RandomError) -> Self {
        ReleaseError::Random
    }
}

/// The threshold for a count noised with `count_epsilon`: max(τ, k).
pub fn threshold(count_epsilon: f64, delta: f64, k: u32) -> Result<i128, ReleaseError> {
    let scale = Scale::at_least(1.0 / count_epsilon).ok_or(ReleaseError::Scale)?;
    let tau = release_threshold(scale, delta).ok_or(ReleaseError::Delta)?;
    Ok(i128::from(tau).max(i128::from(k)))
}

/// The noisy distinct-person count of a group and whether it is released.
pub fn decide(
    rng: &mut impl RandomSource,
    persons: u64,
    count_epsilon: f64,
    p: Params,
) -> Result<(i128, bool), ReleaseError> {
    let tau = threshold(count_epsilon, p.delta, p.k)?;
    let noisy = noisy_integer(rng, i128::from(persons), 1.0, count_epsilon)
        .ok_or(ReleaseError::Scale)??;
    Ok((noisy, noisy >= tau))
}

#[cfg(test)]
mod tests {
    use super::super::noise::tests::Seeded;
    use super::*;

    const P: Params = Params { epsilon: 0.5, delta: 1e-6, k: 5 };

    #[test]
    fn thresholds_at_the_defaults() {
        // dp_count: scale 2 → 28 (noise.rs); dp_sum and dp_avg count at ε/2: scale 4
        assert_eq!(threshold(0.5, 1e-6, 5), Ok(28));
        let t = threshold(0.25, 1e-6, 5).unwrap();
        assert!((50..60).contains(&t), "{t}");
        // never below k
        assert_eq!(threshold(100.0, 0.4, 40), Ok(40));
        assert_eq!(threshold(0.5, 0.0, 5), Err(ReleaseError::Delta));
        assert_eq!(threshold(0.0, 1e-6, 5), Err(ReleaseError::Scale));
    }

    #[test]
    fn small_groups_stay_hidden_and_large_ones_are_answered() {
        let mut rng = Seeded(11);
        let one = (0..100_000).filter(|_| decide(&mut rng, 1, 0.5, P).unwrap().1).count();
        // P = δ at most: 0.1 expected in 100,000 tries
        assert!(one <= 2, "{one}");
        let big = (0..10_000).filter(|_| decide(&mut rng, 100, 0.5, P).unwrap().1).count();
        assert_eq!(big, 10_000);
    }
}
