use attn_runtime::attention;

attention! {
    fn heads<q: [B, H, N, D], k: [B, 5, N, D], v: [B, 5, N, D]>
    where B = 1, H = 6, N = 16, D = 8;
}

fn main() {}
