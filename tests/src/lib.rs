//! Shared helpers of attn's integration tests: seeded inputs, an f64 reference, a plain f32
//! implementation, and the accuracy rule of docs/DESIGN.md section 6.
//!
//! ```
//! use attn_tests::{Problem, Rng, reference};
//! let problem = Problem::with_default_scale(1, 1, 2, 1, 1);
//! let out = reference(&problem, &[0.0], &[1.0, 1.0], &[2.0, 4.0]);
//! // Equal scores: the mean of the values.
//! assert!((out[0] - 3.0).abs() < 1e-12);
//! let mut rng = Rng::new(1);
//! assert!(rng.uniform(2.0).abs() <= 2.0);
//! ```

mod accuracy;
mod gradients;
mod isa;
mod layer;
mod problem;
mod reference;
mod rng;

pub use accuracy::{
    accurate_on_every_isa, assert_accurate, assert_lse_accurate, assert_weights_accurate,
};
pub use gradients::{
    Gradients, assert_gradients_within, naive_gradients_f32, reference_gradients, relative_error,
    sum_groups,
};
pub use isa::instruction_sets;
pub use layer::{LayerShape, LayerWeights, LinearRef, assert_layer_accurate};
pub use problem::{Mask, Problem, expand, repeat_heads};
pub use reference::{naive_f32, reference, reference_lse, reference_weights};
pub use rng::{Rng, Textbook, textbook};
