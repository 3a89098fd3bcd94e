use attn_runtime::attention;

attention! {
    /// The textbook example: two queries over four tokens, depth three.
    pub fn seed_example<q: [B, Nq, Dk], k: [B, Nk, Dk], v: [B, Nk, Dv]>
    where B = 1, Nq = 2, Nk = 4, Dk = 3, Dv = 3;
}

fn main() {
    let q = [[[1.0f32; 3]; 2]; 1];
    let kv = [[[1.0f32; 3]; 4]; 1];
    let out: [[[f32; 3]; 2]; 1] = seed_example(&q, &kv, &kv);
    assert_eq!(out, [[[1.0; 3]; 2]; 1]);
    const _: attn_runtime::KernelInfo = seed_example::INFO;
}
