//! What generated kernels call. Not a public API: names and signatures change with the
//! macro, which is always the same version as this crate.
//!
//! Each function is one step of attention over rows held as arrays, so that its length is a
//! compile-time constant of the kernel that calls it. They are scalar here; each is the slot
//! where a vector implementation goes.

/// `exp(x)`, as the softmax needs it.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    x.exp()
}

/// `1 / sqrt(depth)`, the default scale, for kernels whose depth is a const generic.
#[inline]
pub fn default_scale(depth: usize) -> f32 {
    (1.0 / (depth as f64).sqrt()) as f32
}

/// `Σ_d a[d] · b[d]`: one query against one key.
#[inline(always)]
pub fn dot<const DEPTH: usize>(a: &[f32; DEPTH], b: &[f32; DEPTH]) -> f32 {
    let mut sum = 0.0f32;
    for d in 0..DEPTH {
        sum += a[d] * b[d];
    }
    sum
}

/// `max(start, max_j row[j])`, ignoring NaN as `f32::max` does: a NaN score still reaches
/// the output through its own exponential.
#[inline(always)]
pub fn max(start: f32, row: &[f32]) -> f32 {
    row.iter().fold(start, |m, &x| m.max(x))
}

/// `row[j] = exp(row[j] - shift)` for each j; returns the sum of the new values.
#[inline(always)]
pub fn exp_shifted_in_place(row: &mut [f32], shift: f32) -> f32 {
    let mut sum = 0.0f32;
    for x in row {
        *x = exp(*x - shift);
        sum += *x;
    }
    sum
}

/// `1 / sum`, except that a row which attended to no key (a kernel instantiated with zero
/// keys) has the sum 0 and gets the output 0 rather than NaN. A NaN sum stays NaN.
#[inline(always)]
pub fn reciprocal_or_zero(sum: f32) -> f32 {
    if sum == 0.0 { 0.0 } else { 1.0 / sum }
}

/// `row[e] *= factor` for each e.
#[inline(always)]
pub fn scale<const N: usize>(row: &mut [f32; N], factor: f32) {
    for x in row {
        *x *= factor;
    }
}

/// `acc[e] += weight · value[e]` for each e: one weighted value row into an output row.
#[inline(always)]
pub fn axpy<const N: usize>(acc: &mut [f32; N], weight: f32, value: &[f32; N]) {
    for e in 0..N {
        acc[e] += weight * value[e];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_sums_products() {
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
    }

    #[test]
    fn max_ignores_nan_and_keeps_start() {
        assert_eq!(max(1.0, &[0.5, f32::NAN, -3.0]), 1.0);
        assert_eq!(max(f32::NEG_INFINITY, &[0.5, 2.0]), 2.0);
    }

    #[test]
    fn exp_shifted_returns_sum() {
        let mut row = [0.0, 1.0];
        let sum = exp_shifted_in_place(&mut row, 1.0);
        assert!((row[0] - (-1.0f32).exp()).abs() < 1e-7 && row[1] == 1.0);
        assert!((sum - (1.0 + (-1.0f32).exp())).abs() < 1e-7);
    }

    #[test]
    fn scale_and_axpy() {
        let mut acc = [1.0, 2.0];
        scale(&mut acc, 2.0);
        axpy(&mut acc, 0.5, &[2.0, 4.0]);
        assert_eq!(acc, [3.0, 6.0]);
    }

    #[test]
    fn reciprocal_or_zero_keeps_nan() {
        assert_eq!(reciprocal_or_zero(4.0), 0.25);
        assert_eq!(reciprocal_or_zero(0.0), 0.0);
        assert!(reciprocal_or_zero(f32::NAN).is_nan());
    }

    #[test]
    fn default_scale_is_inverse_sqrt() {
        assert_eq!(default_scale(4), 0.5);
    }
}
