use attn_runtime::attention;

attention! {
    /// Twelve heads over any length.
    #[attn(scale = 0.125)]
    pub fn encoder<q: [B, H, N, Dh], k: [B, H, N, Dh], v: [B, H, N, Dh]>
    where B = 1, H = 12, Dh = 32;

    /// Different query and key lengths, both left to the call, and a value depth of its own.
    pub(crate) fn cross<q: [2, Nq, 16], k: [2, Nk, 16], v: [2, Nk, 4]>;

    fn tiny<q: [1, 1, 1], k: [1, 1, 1], v: [1, 1, 1],>;
}

fn main() {
    let x = vec![[[[0.5f32; 32]; 10]; 12]; 1];
    let out = encoder(&x[0..1].try_into().map(|a: &[_; 1]| a.clone()).unwrap(), &x.clone().try_into().unwrap(), &x.clone().try_into().unwrap());
    assert_eq!(out[0][11][9][31], 0.5);
    let q = [[[0.0f32; 16]; 3]; 2];
    let k = [[[0.0f32; 16]; 5]; 2];
    let v = [[[1.0f32; 4]; 5]; 2];
    assert_eq!(cross(&q, &k, &v), [[[1.0; 4]; 3]; 2]);
    assert_eq!(tiny(&[[[2.0]]], &[[[3.0]]], &[[[4.0]]]), [[[4.0]]]);
    assert_eq!(encoder::info::<10>().shape.heads, 12);
}
