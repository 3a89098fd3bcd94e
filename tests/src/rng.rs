//! Inputs: the seeded random generator and the textbook example.

/// splitmix64: seeded, so a failing case reproduces.
pub struct Rng(u64);

impl Rng {
    /// A generator with this seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value uniform in `[-magnitude, magnitude]`.
    pub fn uniform(&mut self, magnitude: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (unit * 2.0 - 1.0) * magnitude
    }

    /// `n` values uniform in `[-magnitude, magnitude]`.
    pub fn values(&mut self, n: usize, magnitude: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(magnitude)).collect()
    }

    /// A tensor of shape `A` of values uniform in `[-magnitude, magnitude]`.
    pub fn tensor<A: attn_runtime::Array<Element = f32>>(
        &mut self,
        magnitude: f32,
    ) -> attn_runtime::Tensor<A> {
        let values = self.values(A::LEN, magnitude);
        attn_runtime::Tensor::from_vec(values).expect("A::LEN values")
    }

    /// A random index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The textbook example's q `[1, 2, 3]`, k `[1, 4, 3]` and v `[1, 4, 3]`.
pub type Textbook = ([[[f32; 3]; 2]; 1], [[[f32; 3]; 4]; 1], [[[f32; 3]; 4]; 1]);

/// The textbook example's inputs: two queries over four tokens, depth three.
///
/// ```
/// let (q, k, v) = attn_tests::textbook();
/// assert_eq!((q[0][1], k[0][3], v[0][0]), ([0.0, 2.0, 0.0], [1.0; 3], [1.0, 2.0, 3.0]));
/// ```
pub fn textbook() -> Textbook {
    let q = [[[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]]];
    let k = [[
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 1.0],
    ]];
    let v = [[
        [1.0, 2.0, 3.0],
        [4.0, 5.0, 6.0],
        [7.0, 8.0, 9.0],
        [10.0, 11.0, 12.0],
    ]];
    (q, k, v)
}
