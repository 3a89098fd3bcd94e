use attn_runtime::{ValidLengthError, attention};

attention! {
    /// A batch of two sequences padded to 8 keys.
    #[attn(valid_lengths, causal(bottom_right))]
    pub fn padded<q: [2, 1, 16], k: [2, 8, 16], v: [2, 8, 16]>;
}

fn main() -> Result<(), ValidLengthError> {
    let q = [[[1.0f32; 16]; 1]; 2];
    let kv = [[[1.0f32; 16]; 8]; 2];
    let out = padded(&q, &kv, &kv, &[3, 8])?;
    assert_eq!(out[1][0], [1.0; 16]);
    assert!(padded(&q, &kv, &kv, &[3, 9]).is_err());
    Ok(())
}
