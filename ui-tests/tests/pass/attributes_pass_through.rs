#![deny(missing_docs, warnings)]
//! Generated items are documented and warning-free, even under `deny(missing_docs)`.

use attn_runtime::attention;

/// Kernels in a module of their own.
pub mod kernels {
    use attn_runtime::attention;

    attention! {
        /// A documented kernel whose attributes reach the generated functions.
        #[must_use]
        #[cfg(not(any()))]
        pub fn documented<q: [1, Nq, 8], k: [1, Nk, 8], v: [1, Nk, 8]>;
    }
}

attention! {
    /// A private kernel.
    fn private_kernel<q: [1, 2, 3], k: [1, 4, 3], v: [1, 4, 3]>;
}

fn main() {
    let q = [[[0.0f32; 8]; 2]];
    let kv = [[[0.0f32; 8]; 3]];
    let _ = kernels::documented(&q, &kv, &kv);
    let _ = kernels::documented::info::<2, 3>();
    let _ = private_kernel(&[[[0.0; 3]; 2]], &[[[0.0; 3]; 4]], &[[[0.0; 3]; 4]]);
    let _ = private_kernel::INFO;
}
