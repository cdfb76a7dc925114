//! Integer-valued noise for differential privacy, exact and from the operating system's CSPRNG.
//!
//! **The discrete Laplace distribution** with scale `s/t`: P[X = x] ∝ exp(−|x|·t/s), for every
//! integer x. Added to a count (sensitivity 1) with scale 1/ε it gives ε-differential privacy,
//! and to a clamped integer sum (sensitivity Δ) with scale Δ/ε likewise; its variance is
//! 2q/(1−q)² with q = exp(−t/s).
//!
//! **Exact sampling**, after Canonne, Kamath and Steinke, "The Discrete Gaussian for
//! Differential Privacy" (NeurIPS 2020), algorithms 1 and 2: every step draws uniform integers
//! and compares them with integers, so the output distribution is exactly the one above, with
//! no floating-point rounding for an attacker to read (Mironov, "On significance of the least
//! significant bits for differential privacy", CCS 2012, broke floating-point Laplace that
//! way). The scale comes in as a rational `s/t`; `Scale::at_least` turns a real scale into one,
//! rounding up, so the noise is never smaller than asked for.
//!
//! The randomness comes through `RandomSource`: `OsRandom` (getrandom(2), buffered) in the
//! server; seeded generators only in this module's tests.

/// A source of uniform 64-bit words.
pub trait RandomSource {
    fn next_u64(&mut self) -> Result<u64, RandomError>;
}

/// The operating system gave no random bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomError;

/// The OS CSPRNG (getrandom(2) on Linux), read 512 bytes at a time.
pub struct OsRandom {
    buf: [u8; 512],
    pos: usize,
}

impl OsRandom {
    pub fn new() -> OsRandom {
        OsRandom { buf: [0; 512], pos: 512 }
    }
}

impl Default for OsRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl RandomSource for OsRandom {
    fn next_u64(&mut self) -> Result<u64, RandomError> {
        if self.pos + 8 > self.buf.len() {
            getrandom::fill(&mut self.buf).map_err(|_| RandomError)?;
            self.pos = 0;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.buf[self.pos..self.pos + 8]);
        // the bytes are used once
        self.buf[self.pos..self.pos + 8].fill(0);
        self.pos += 8;
        Ok(u64::from_le_bytes(word))
    }
}

/// A uniform integer in [0, n), n > 0, without bias: words from the top of the range that
/// would make some results likelier are drawn again (at most half of them, for any n).
pub fn uniform_below(rng: &mut impl RandomSource, n: u64) -> Result<u64, RandomError> {
    debug_assert!(n > 0);
    let n = n.max(1);
    // the largest multiple of n that fits: words at or above it are refused
    let zone = u64::MAX - (u64::MAX % n + 1) % n;
    loop {
        let w = rng.next_u64()?;
        if w <= zone {
            return Ok(w % n);
        }
    }
}

/// True with probability num/den (num ≤ den, den > 0).
pub fn bernoulli(rng: &mut impl RandomSource, num: u64, den: u64) -> Result<bool, RandomError> {
    Ok(uniform_below(rng, den)? < num)
}

/// True with probability exp(−num/den), exactly (CKS algorithm 1).
pub fn bernoulli_exp_neg(
    rng: &mut impl RandomSource,
    num: u64,
    den: u64,
) -> Result<bool, RandomError> {
    if num <= den {
        // K counts the Bernoulli(γ/k) successes in a row; exp(−γ) is the chance K ends odd.
        // Bernoulli(γ/k) is Bernoulli(num/den) and Bernoulli(1/k) together: no product to
        // overflow.
        let mut k: u64 = 1;
        while bernoulli(rng, num, den)? && bernoulli(rng, 1, k)? {
            k += 1;
        }
        Ok(k % 2 == 1)
    } else {
        // exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋))
        for _ in 0..num / den {
            if !bernoulli_exp_neg(rng, 1, 1)? {
                return Ok(false);
            }
        }
        bernoulli_exp_neg(rng, num % den, den)
    }
}

/// A discrete Laplace scale s/t, s, t > 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub s: u64,
    pub t: u64,
}

/// The resolution of scales given as reals: 2^-20 (whole numbers above 2^43, where that
/// resolution would overflow the numerator).
const SCALE_DENOMINATOR: u64 = 1 << 20;
/// The largest scale accepted: at the smallest ε (0.01, `deident.dp_epsilon`'s range) and half
/// of it for a sum, bounds within ±2^52 (dp/plan.rs) need 200·2^52 < 10^18.
pub const MAX_SCALE: f64 = 1e18;

impl Scale {
    /// The smallest scale of the form s/2^20 (or s/1 for scales above 2^43) that is at least
    /// `scale`; None for a scale that is not finite and positive, or above MAX_SCALE.
    pub fn at_least(scale: f64) -> Option<Scale> {
        if !(scale.is_finite() && scale > 0.0 && scale <= MAX_SCALE) {
            return None;
        }
        let t = if scale < (1u64 << 43) as f64 { SCALE_DENOMINATOR } else { 1 };
        // exact in f64 up to 2^53; rounded up again below if the product was rounded down
        let mut s = (scale * t as f64).ceil() as u64;
        while (s as f64) / (t as f64) < scale {
            s += 1;
        }
        Some(Scale { s: s.max(1), t })
    }

    pub fn as_f64(self) -> f64 {
        self.s as f64 / self.t as f64
    }
}

/// A draw from the discrete Laplace distribution of scale `scale` (CKS algorithm 2, which
/// samples scale t/s: here t is the scale's numerator and s its denominator).
pub fn discrete_laplace(rng: &mut impl RandomSource, scale: Scale) -> Result<i64, RandomError> {
    let Scale { s: num, t: den } = scale;
    loop {
        // X = U + num·V is geometric with parameter exp(−1/num) (U uniform below num, kept
        // with probability exp(−U/num), V geometric with parameter exp(−1)); ⌊X/den⌋ is then
        // geometric with parameter exp(−den/num) = exp(−1/scale)
        let u = uniform_below(rng, num)?;
        if !bernoulli_exp_neg(rng, u, num)? {
            continue;
        }
        let mut v: u64 = 0;
        while bernoulli_exp_neg(rng, 1, 1)? {
            v += 1;
        }
        let x = u as u128 + num as u128 * v as u128;
        let y = x / den as u128;
        let negative = bernoulli(rng, 1, 2)?;
        if negative && y == 0 {
            // zero would otherwise come out twice as often
            continue;
        }
        let y = i64::try_from(y).unwrap_or(i64::MAX);
        return Ok(if negative { -y } else { y });
    }
}

/// The release threshold: a group is answered only if its noisy distinct-person count (its
/// count plus discrete Laplace noise of scale `scale`) is at least this. It is the smallest τ
/// with P[1 + X ≥ τ] ≤ δ for the noise X: a group of one person, whose existence depends on
/// that person alone, is released with probability at most δ. For X discrete Laplace of scale b,
/// with q = exp(−1/b), P[X ≥ k] = q^k / (1 + q) for k ≥ 1 (the geometric tail of
/// P[X = x] = (1 − q)/(1 + q) · q^|x|), so τ = 1 + ⌈ln(δ(1 + q)) / ln q⌉. The parameters are
/// public, so floating point is harmless here; the ceiling is taken after a tiny upward nudge
/// so that rounding can only raise τ. None for δ outside (0, 1).
pub fn release_threshold(scale: Scale, delta: f64) -> Option<i64> {
    if !(delta > 0.0 && delta < 1.0) {
        return None;
    }
    let b = scale.as_f64();
    let q = (-1.0 / b).exp();
    if !(q > 0.0 && q < 1.0) {
        // a scale so small that q underflows: any count of 1 is released only without noise
        return Some(2);
    }
    let k = ((delta * (1.0 + q)).ln() / q.ln() * (1.0 + 1e-12)).ceil();
    let k = if k.is_finite() { k.max(1.0) } else { return None };
    // the cast saturates; release counts have scales of at most 200 (ε ≥ 0.01, halved)
    Some(1 + k as i64)
}

/// An exact answer plus discrete Laplace noise of scale `sensitivity/epsilon`, in the answer's
/// own integer units: a count (sensitivity 1), a clamped integer sum (sensitivity Δ), or a
/// clamped real sum counted in grid units (`grid_step`). None when the scale is not finite and
/// positive or above MAX_SCALE; the sum saturates at the i128 range.
pub fn noisy_integer(
    rng: &mut impl RandomSource,
    exact: i128,
    sensitivity: f64,
    epsilon: f64,
) -> Option<Result<i128, RandomError>> {
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return None;
    }
    let scale = Scale::at_least(sensitivity / epsilon)?;
    Some(discrete_laplace(rng, scale).map(|noise| exact.saturating_add(i128::from(noise))))
}

/// The published grid of a real-valued sum (SPEC: non-integer sums need a mechanism that
/// floating point cannot betray): the step g = 2^(⌊log2 Δ⌋ − 20) for the sensitivity Δ, a
/// power of two fixed by the bounds alone, so it says nothing about the data. Each person's
/// clamped total is rounded to the nearest multiple of g (`grid_units`), which keeps it within
/// ⌈Δ/g⌉ ≤ 2^21 units of zero; the units are summed exactly in integers, and discrete Laplace
/// noise of scale ⌈Δ/g⌉/ε units is added (`noisy_integer`). The result, an integer times a
/// power of two, has no low-order bits of a floating-point computation for an attacker to
/// read (Mironov 2012 broke floating-point Laplace that way). None for Δ not finite and
/// positive.
pub fn grid_step(sensitivity: f64) -> Option<f64> {
    (sensitivity.is_finite() && sensitivity > 0.0)
        .then(|| (sensitivity.log2().floor() - 20.0).exp2())
}

/// The sensitivity of a grid sum in grid units: ⌈Δ/g⌉ (at most 2^21).
pub fn grid_sensitivity(sensitivity: f64, g: f64) -> f64 {
    (sensitivity / g).ceil()
}

/// `v` (a clamped total, |v| ≤ Δ) in grid units, rounded to the nearest.
pub fn grid_units(v: f64, g: f64) -> i64 {
    // |v/g| ≤ Δ/g < 2^22: exact and far inside i64
    (v / g).round() as i64
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// SplitMix64: a seeded generator for the dp modules' tests only.
    pub struct Seeded(pub u64);

    impl RandomSource for Seeded {
        fn next_u64(&mut self) -> Result<u64, RandomError> {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            Ok(z ^ (z >> 31))
        }
    }

    #[test]
    fn uniform_below_is_uniform() {
        let mut rng = Seeded(1);
        let n = 10u64;
        let draws = 200_000;
        let mut counts = [0u64; 10];
        for _ in 0..draws {
            counts[uniform_below(&mut rng, n).unwrap() as usize] += 1;
        }
        // chi-square with 9 degrees of freedom: 27.9 is its 0.999 quantile
        let expected = draws as f64 / n as f64;
        let chi2: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
        assert!(chi2 < 27.9, "chi2 = {chi2}, counts {counts:?}");
        // and the extremes of the word range are handled
        for n in [1, 2, 3, u64::MAX, u64::MAX - 1, 1 << 63] {
            assert!(uniform_below(&mut rng, n).unwrap() < n);
        }
    }

    #[test]
    fn bernoulli_exp_neg_has_the_right_probability() {
        let mut rng = Seeded(2);
        let draws = 200_000u32;
        for (num, den) in [(0u64, 1u64), (1, 10), (1, 1), (5, 2), (7, 3), (3, 1)] {
            let hits =
                (0..draws).filter(|_| bernoulli_exp_neg(&mut rng, num, den).unwrap()).count();
            let p = (-(num as f64) / den as f64).exp();
            let observed = hits as f64 / draws as f64;
            // five standard errors
            let tolerance = 5.0 * (p * (1.0 - p) / draws as f64).sqrt() + 1e-9;
            assert!((observed - p).abs() <= tolerance, "exp(-{num}/{den}): {observed} vs {p}");
        }
    }

    fn moments(scale: f64, draws: usize, rng: &mut impl RandomSource) -> (f64, f64, f64) {
        let scale = Scale::at_least(scale).unwrap();
        let mut sum = 0f64;
        let mut sum_sq = 0f64;
        let mut zeros = 0usize;
        for _ in 0..draws {
            let x = discrete_laplace(rng, scale).unwrap() as f64;
            sum += x;
            sum_sq += x * x;
            zeros += usize::from(x == 0.0);
        }
        let n = draws as f64;
        (sum / n, sum_sq / n - (sum / n).powi(2), zeros as f64 / n)
    }

    /// The discrete Laplace's variance 2q/(1−q)² and P[X = 0] = (1−q)/(1+q), q = exp(−1/b).
    fn theory(b: f64) -> (f64, f64) {
        let q = (-1.0 / b).exp();
        (2.0 * q / (1.0 - q).powi(2), (1.0 - q) / (1.0 + q))
    }

    #[test]
    fn discrete_laplace_has_its_mean_spread_and_mode() {
        let draws = 200_000;
        for (seed, b) in [(3u64, 0.5f64), (4, 1.0), (5, 2.0), (6, 3.7), (7, 20.0)] {
            let mut rng = Seeded(seed);
            let (mean, var, p0) = moments(b, draws, &mut rng);
            let (var_t, p0_t) = theory(Scale::at_least(b).unwrap().as_f64());
            // the mean: five standard errors; the variance: within 4% (its relative standard
            // error is about sqrt(5/n) = 0.5% here, and a scale 10% off moves it by 20%); P[0]:
            // five standard errors
            assert!(mean.abs() <= 5.0 * (var_t / draws as f64).sqrt(), "b={b}: mean {mean}");
            assert!((var / var_t - 1.0).abs() < 0.04, "b={b}: variance {var} vs {var_t}");
            let se0 = (p0_t * (1.0 - p0_t) / draws as f64).sqrt();
            assert!((p0 - p0_t).abs() <= 5.0 * se0, "b={b}: P[0] {p0} vs {p0_t}");
        }
    }

    #[test]
    fn a_wrong_scale_fails_the_spread_test() {
        // the check above would catch noise 10% too small
        let mut rng = Seeded(8);
        let (_, var, _) = moments(2.0 * 0.9, 200_000, &mut rng);
        let (var_t, _) = theory(2.0);
        assert!((var / var_t - 1.0).abs() >= 0.04, "{var} vs {var_t}");
    }

    /// P[X ≥ k] for discrete Laplace of scale b, k ≥ 1.
    fn tail(b: f64, k: i64) -> f64 {
        let q = (-1.0 / b).exp();
        q.powi(k as i32) / (1.0 + q)
    }

    #[test]
    fn the_release_threshold_is_the_smallest_that_keeps_one_person_below_delta() {
        for b in [0.5, 1.0, 2.0, 4.0, 10.0] {
            for delta in [1e-3, 1e-6, 1e-9] {
                let scale = Scale::at_least(b).unwrap();
                let tau = release_threshold(scale, delta).unwrap();
                let b = scale.as_f64();
                // a one-person group passes when 1 + X ≥ τ, i.e. X ≥ τ − 1
                assert!(tail(b, tau - 1) <= delta, "b={b} δ={delta}: τ={tau}");
                assert!(
                    tau - 2 < 1 || tail(b, tau - 2) > delta,
                    "b={b} δ={delta}: τ={tau} not tight"
                );
            }
        }
        // at ε = 0.5 for the count (b = 2) and δ = 1e-6: q = e^−0.5, ln(δ(1 + q)) / ln q =
        // −13.34 / −0.5 = 26.7, so τ = 1 + 27
        assert_eq!(release_threshold(Scale::at_least(2.0).unwrap(), 1e-6), Some(28));
        for bad in [0.0, 1.0, -1.0, f64::NAN] {
            assert_eq!(release_threshold(Scale::at_least(2.0).unwrap(), bad), None);
        }
    }

    #[test]
    fn a_one_person_group_is_released_about_delta_of_the_time() {
        // empirical check of the threshold with the sampler itself: b = 1, δ = 1e-2 (large, to
        // be measurable), 200,000 one-person groups
        let scale = Scale::at_least(1.0).unwrap();
        let tau = release_threshold(scale, 1e-2).unwrap();
        let mut rng = Seeded(9);
        let draws = 200_000;
        let released =
            (0..draws).filter(|_| 1 + discrete_laplace(&mut rng, scale).unwrap() >= tau).count();
        let p = tail(scale.as_f64(), tau - 1);
        let observed = released as f64 / draws as f64;
        assert!(p <= 1e-2);
        assert!((observed - p).abs() <= 5.0 * (p / draws as f64).sqrt(), "{observed} vs {p}");
    }

    #[test]
    fn real_sums_get_grid_noise_of_the_right_spread() {
        let mut rng = Seeded(10);
        let (totals, delta, epsilon) = ([1234.5678f64, -99.99, 100.0, 0.3], 100.0f64, 0.5f64);
        let g = grid_step(delta).unwrap();
        assert_eq!(g, 2f64.powi(6 - 20));
        let units: i128 =
            totals.iter().map(|&t| i128::from(grid_units(t.clamp(-delta, delta), g))).sum();
        let exact: f64 = totals.iter().map(|t| t.clamp(-delta, delta)).sum();
        // rounding each total moves the sum by at most half a unit per person
        assert!((units as f64 * g - exact).abs() <= 2.0 * g);
        let sens = grid_sensitivity(delta, g);
        assert_eq!(sens, 2f64.powi(20) * 100.0 / 64.0);
        let draws = 100_000;
        let mut total = 0f64;
        let mut total_sq = 0f64;
        for _ in 0..draws {
            let out = noisy_integer(&mut rng, units, sens, epsilon).unwrap().unwrap();
            let noise = (out - units) as f64 * g;
            total += noise;
            total_sq += noise * noise;
        }
        let mean = total / draws as f64;
        let var = total_sq / draws as f64 - mean * mean;
        // the noise's scale in value units is Δ/ε = 200 (Δ/g is a whole number here):
        // variance ≈ 2b² = 80,000
        let b = sens / epsilon * g;
        let expected = 2.0 * b * b;
        assert!(mean.abs() < 5.0 * (expected / draws as f64).sqrt(), "mean {mean}");
        assert!((var / expected - 1.0).abs() < 0.05, "variance {var} vs {expected}");
        // a person's rounded total never exceeds the sensitivity in units
        for v in [delta, -delta, delta * 0.999_999_9, 1e-30] {
            assert!((grid_units(v, g).unsigned_abs() as f64) <= sens);
        }
        // refused parameters
        assert!(grid_step(0.0).is_none() && grid_step(f64::NAN).is_none());
        assert!(noisy_integer(&mut rng, 0, 1.0, 0.0).is_none());
        assert!(noisy_integer(&mut rng, 0, 1.0, f64::NAN).is_none());
        assert!(noisy_integer(&mut rng, 0, 1e16, 1e-3).is_none());
    }

    #[test]
    fn scales_are_rounded_up_and_bounded() {
        for scale in [1e-6, 0.3, 1.0, 2.0 / 3.0, 12345.678, 9e12, 1e16 / 3.0, MAX_SCALE] {
            let s = Scale::at_least(scale).unwrap();
            assert!(s.as_f64() >= scale, "{scale}");
            assert!(s.as_f64() - scale <= 1.0 / s.t as f64 + scale * 1e-15, "{scale}");
        }
        // the largest scale samples without overflow
        let mut rng = Seeded(12);
        let big = Scale::at_least(MAX_SCALE).unwrap();
        assert!((0..100).any(|_| discrete_laplace(&mut rng, big).unwrap().unsigned_abs() > 1 << 50));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_SCALE * 2.0] {
            assert_eq!(Scale::at_least(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_os_source_gives_distinct_words() {
        let mut rng = OsRandom::new();
        let words: Vec<u64> = (0..200).map(|_| rng.next_u64().unwrap()).collect();
        let mut sorted = words.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), words.len());
    }
}
