use attn_runtime::attention;

attention! {
    fn huge<q: [1, 0xFFFFFFFFFFFFFFFFFF, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {}
