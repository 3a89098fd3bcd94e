use attn_runtime::attention;

attention! {
    /// 2^32 queries over 2^32 keys: the weights would be 2^66 bytes.
    #[attn(return_weights)]
    fn w<q: [1, 4294967296, 1], k: [1, 4294967296, 1], v: [1, 4294967296, 1]>;
}

fn main() {}
