use attn_runtime::attention;

attention! {
    fn batches<q: [6, 2, 3], k: [7, 4, 3], v: [7, 4, 3]>;
}

fn main() {}
