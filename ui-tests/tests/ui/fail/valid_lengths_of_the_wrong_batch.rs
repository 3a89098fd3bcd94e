use attn_runtime::attention;

attention! {
    #[attn(valid_lengths)]
    fn padded<q: [2, 1, 16], k: [2, 8, 16], v: [2, 8, 16]>;
}

fn main() {
    let q = [[[1.0f32; 16]; 1]; 2];
    let kv = [[[1.0f32; 16]; 8]; 2];
    // One length per batch entry: two, not three.
    let _ = padded(&q, &kv, &kv, &[3, 8, 8]);
}
