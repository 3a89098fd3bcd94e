use attn_runtime::{ValidLengthError, attention};

attention! {
    /// The output and each row's log-sum-exp.
    #[attn(return_lse)]
    pub fn with_lse<q: [1, 2, 8], k: [1, N, 8], v: [1, N, 8]>;

    /// With valid lengths too: a `Result` of both.
    #[attn(return_lse, valid_lengths)]
    pub fn padded<q: [2, 1, 8], k: [2, 4, 8], v: [2, 4, 8]>;
}

fn main() -> Result<(), ValidLengthError> {
    let (out, lse): ([[[f32; 8]; 2]; 1], [[f32; 2]; 1]) =
        with_lse(&[[[0.0; 8]; 2]], &[[[0.0; 8]; 4]], &[[[1.0; 8]; 4]]);
    assert_eq!(out[0][1], [1.0; 8]);
    assert!((lse[0][0] - 4f32.ln()).abs() < 1e-6);
    let (_, lse) = padded(&[[[0.0; 8]]; 2], &[[[0.0; 8]; 4]; 2], &[[[0.0; 8]; 4]; 2], &[0, 2])?;
    assert_eq!(lse[0][0], f32::NEG_INFINITY);
    Ok(())
}
