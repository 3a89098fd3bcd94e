use attn_runtime::attention;

attention! {
    fn repeated<q: [1, 2, 3], k: [1, 4, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
