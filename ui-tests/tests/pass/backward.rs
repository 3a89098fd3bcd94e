use attn_runtime::{Tensor, ValidLengthError, attention};

attention! {
    /// A training kernel: the forward returns the log-sum-exp, the backward the gradients.
    #[attn(backward, causal)]
    pub fn train<q: [2, 4, 16], k: [2, 4, 16], v: [2, 4, 8]>;

    /// With valid lengths, both return a `Result`; a mask comes right after v in both.
    #[attn(backward, valid_lengths, mask = [2, 1, 8])]
    pub fn padded<q: [2, 3, 8], k: [2, 8, 8], v: [2, 8, 8]>;

    /// In f64, with grouped heads left to the call.
    #[attn(backward, dtype = f64)]
    pub fn grouped<q: [1, Hq, 2, 4], k: [1, Hkv, 3, 4], v: [1, Hkv, 3, 4]>;
}

fn main() -> Result<(), ValidLengthError> {
    let (q, k, v) = ([[[0.5; 16]; 4]; 2], [[[0.25; 16]; 4]; 2], [[[1.0; 8]; 4]; 2]);
    let (out, lse): ([[[f32; 8]; 4]; 2], [[f32; 4]; 2]) = train(&q, &k, &v);
    let d_out = [[[1.0; 8]; 4]; 2];
    let (dq, dk, dv): ([[[f32; 16]; 4]; 2], [[[f32; 16]; 4]; 2], [[[f32; 8]; 4]; 2]) =
        train_backward(&q, &k, &v, &out, &lse, &d_out);
    // Every output row is the mean of the values it sees, so dv sums the rows' shares.
    assert!((dv[0][0][0] - (1.0 + 0.5 + 1.0 / 3.0 + 0.25)).abs() < 1e-6);
    assert_eq!((dq[0][0], dk[1][3][0]), ([0.0; 16], 0.0));

    let (q, kv) = (Tensor::<[[[f32; 8]; 3]; 2]>::zeros(), Tensor::<[[[f32; 8]; 8]; 2]>::zeros());
    let mask = [[[true; 8]; 1]; 2];
    let (out, lse) = padded(&q, &kv, &kv, &mask, &[8, 3])?;
    let (mut dq, mut dk, mut dv) = (Tensor::zeros(), Tensor::zeros(), Tensor::zeros());
    padded_backward_into(&q, &kv, &kv, &mask, &[8, 3], &out, &lse, &out, &mut dq, &mut dk, &mut dv)?;

    let (q, kv) = ([[[[0.0f64; 4]; 2]; 4]], [[[[1.0f64; 4]; 3]; 2]]);
    let (out, lse) = grouped(&q, &kv, &kv);
    let (_, dk, _) = grouped_backward(&q, &kv, &kv, &out, &lse, &out);
    assert_eq!(dk[0][1][2], [0.0; 4]);
    Ok(())
}
