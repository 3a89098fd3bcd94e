use attn_runtime::{Tensor, attention};

attention! {
    /// A depth left to a const generic: checked when the kernel is instantiated.
    fn any_depth<q: [1, 64, D], k: [1, 64, D], v: [1, 64, D]>;
}

fn main() {
    let q = Tensor::<[[[f32; 16384]; 64]; 1]>::zeros();
    let mut out = Tensor::<[[[f32; 16384]; 64]; 1]>::zeros();
    any_depth_into(&q, &q, &q, &mut out);
}
