use attn_runtime::attention;

attention! {
    /// Keys and values of depth 16384: 16 keys a block already take 1 MiB each.
    fn deep<q: [1, N, 16384], k: [1, N, 16384], v: [1, N, 16384]>;
}

fn main() {}
