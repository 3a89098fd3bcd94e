use attn_runtime::attention;

attention! {
    fn depths<q: [B, Nq, Dk], k: [B, Nk, 5], v: [B, Nk, Dv]>
    where B = 1, Nq = 2, Nk = 4, Dk = 3, Dv = 3;
}

fn main() {}
