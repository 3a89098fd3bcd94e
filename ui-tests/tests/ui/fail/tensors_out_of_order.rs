use attn_runtime::attention;

attention! {
    fn reordered<k: [1, 4, 3], q: [1, 2, 3], v: [1, 4, 3]>;
}

fn main() {}
