use attn_runtime::attention;

attention! {
    fn empty<q: [1, N, 3], k: [1, 4, 3], v: [1, 4, 3]>
    where N = 0;
}

fn main() {}
