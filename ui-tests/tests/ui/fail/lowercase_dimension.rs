use attn_runtime::attention;

attention! {
    fn lower<q: [1, n, 3], k: [1, n, 3], v: [1, n, 3]>;
}

fn main() {}
