//! The layer form: token ids to embeddings, projections, heads, attention, output projection.
use attn_runtime::{Embedding, Linear, Tensor, attention};

attention! {
    /// A self-attention layer as `nn.MultiheadAttention(64, 4)`.
    #[attn(split_heads, causal)]
    pub fn layer<x: [B, N, Dm], q: [B, H, N, Dh], k: [B, H, N, Dh], v: [B, H, N, Dh], out: [B, N, Dm]>
    where B = 1, Dm = 64, H = 4, Dh = 16;
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let table = Embedding::<100, 64>::new(Tensor::zeros());
    let x = table.embed(&[[5, 17, 42]])?;
    let identity: Vec<f32> = (0..64 * 64).map(|i| if i % 65 == 0 { 1.0 } else { 0.0 }).collect();
    let linear = Linear::<64, 64>::from_slices("proj", &identity, None)?;
    let out: [[[f32; 64]; 3]; 1] = layer(&x, &linear, &linear, &linear, &linear);
    assert_eq!(out[0][2], [0.0; 64]);
    assert_eq!(layer_attention::info::<3>().shape.heads, 4);
    Ok(())
}
