use attn_runtime::attention;

attention! {
    fn enormous<q: [2097152, 1048576, 1048576], k: [2097152, 4, 1048576], v: [2097152, 4, 3]>;
}

fn main() {}
