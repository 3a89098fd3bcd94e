use attn_runtime::attention;

attention! {
    // The last two axes are queries, then keys: here they are swapped.
    #[attn(bias = [1, 8, Nk, Nq])]
    fn biased<q: [1, 8, Nq, 64], k: [1, 8, Nk, 64], v: [1, 8, Nk, 64]>
    where Nq = 16, Nk = 32;
}

fn main() {}
