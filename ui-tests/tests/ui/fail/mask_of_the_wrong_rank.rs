use attn_runtime::attention;

attention! {
    // A rank-4 kernel takes a rank-4 mask: 1 for the axes it is broadcast over.
    #[attn(mask = [Nq, Nk])]
    fn masked<q: [1, 8, Nq, 64], k: [1, 8, Nk, 64], v: [1, 8, Nk, 64]>
    where Nq = 16, Nk = 32;
}

fn main() {}
