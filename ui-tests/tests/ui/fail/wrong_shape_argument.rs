use attn_runtime::attention;

attention! {
    fn textbook<q: [B, Nq, Dk], k: [B, Nk, Dk], v: [B, Nk, Dv]>
    where B = 1, Nq = 2, Nk = 4, Dk = 3, Dv = 3;
}

fn main() {
    let q = [[[0.0f32; 3]; 2]; 1];
    let k = [[[0.0f32; 3]; 5]; 1];
    let v = [[[0.0f32; 3]; 4]; 1];
    let _out = textbook(&q, &k, &v);
}
