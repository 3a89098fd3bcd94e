use attn_runtime::attention;

attention! {
    #[attn(mask = [2, 1, 4])]
    fn padded<q: [2, 3, 8], k: [2, 4, 8], v: [2, 4, 8]>;
}

fn main() {
    let q = [[[1.0f32; 8]; 3]; 2];
    let kv = [[[1.0f32; 8]; 4]; 2];
    // One row of four keys per batch entry: not three.
    let mask = [[[true; 3]; 1]; 2];
    let _ = padded(&q, &kv, &kv, &mask);
}
