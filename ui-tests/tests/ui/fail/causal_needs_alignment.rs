use attn_runtime::attention;

attention! {
    #[attn(causal)]
    fn decode<q: [B, Nq, D], k: [B, Nk, D], v: [B, Nk, D]>
    where B = 1, Nq = 1, Nk = 16, D = 8;
}

fn main() {}
