use attn_runtime::attention;

attention! {
    /// A decoder's self-attention.
    #[attn(causal)]
    pub fn decoder<q: [1, 4, N, 16], k: [1, 4, N, 16], v: [1, 4, N, 16]>;

    /// One decode step: the query is the last position of the cache.
    #[attn(causal(bottom_right))]
    pub fn step<q: [1, 4, 1, 16], k: [1, 4, N, 16], v: [1, 4, N, 16]>;

    /// Top-left alignment, unrolled.
    #[attn(causal(top_left), scale = 0.5)]
    fn small<q: [1, 2, 3], k: [1, 3, 3], v: [1, 3, 3]>;
}

fn main() {
    let x = [[[[1.0f32; 16]; 5]; 4]];
    assert_eq!(decoder(&x, &x, &x)[0][3][4], [1.0; 16]);
    assert_eq!(step(&[[[[1.0; 16]]; 4]], &x, &x)[0][0][0], [1.0; 16]);
    let _ = small(&[[[0.0; 3]; 2]], &[[[0.0; 3]; 3]], &[[[0.0; 3]; 3]]);
}
