use attn_runtime::attention;

attention! {
    fn any_heads<q: [1, Hq, 4, 8], k: [1, Hkv, 4, 8], v: [1, Hkv, 4, 8]>;
}

fn main() {
    // Five query heads cannot share two key/value heads evenly.
    let q = [[[[0.0f32; 8]; 4]; 5]];
    let kv = [[[[0.0f32; 8]; 4]; 2]];
    let _ = any_heads(&q, &kv, &kv);
}
