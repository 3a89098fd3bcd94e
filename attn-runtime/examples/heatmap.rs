//! One encoder self-attention layer over a short sentence, from a safetensors file to a
//! heatmap of one head's attention weights.
//!
//! Run with `cargo run -p attn-runtime --features safetensors --example heatmap [OUT.svg]`.
//! It writes `attention_heads.safetensors` (fixed pseudo-random weights: an embedding table
//! and the four projections of `nn.MultiheadAttention(32, 4)`, in PyTorch's names and
//! layout) into the target directory, loads it back, embeds the sentence, runs the layer, and
//! renders head 0's weights as an SVG image (default `target/attention_heatmap.svg`).

use attn_runtime::safetensors::{from_bytes, serialize_f32};
use attn_runtime::{Embedding, Linear, attention};
use std::error::Error;

attention! {
    /// `nn.MultiheadAttention(32, 4)` over a sentence of 10 tokens, with the weights.
    #[attn(split_heads, return_weights)]
    pub fn encoder<x: [1, N, Dm], q: [1, H, N, Dh], k: [1, H, N, Dh], v: [1, H, N, Dh], out: [1, N, Dm]>
    where N = 10, Dm = 32, H = 4, Dh = 8;
}

/// The sentence, and the vocabulary its words are looked up in.
const SENTENCE: [&str; 10] = [
    "the", "cat", "sat", "on", "the", "mat", "because", "it", "was", "tired",
];
const VOCABULARY: [&str; 12] = [
    "<unk>", "the", "cat", "sat", "on", "mat", "because", "it", "was", "tired", "dog", "ran",
];
const WIDTH: usize = 32;

fn main() -> Result<(), Box<dyn Error>> {
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| "target".into(), |workspace| workspace.join("target"));
    std::fs::create_dir_all(&target)?;
    let image = std::env::args()
        .nth(1)
        .map_or_else(|| target.join("attention_heatmap.svg"), Into::into);

    // 1. Fixed pseudo-random weights, saved as a PyTorch checkpoint would name them.
    let mut rng = SplitMix(2026);
    let table = rng.values(VOCABULARY.len() * WIDTH, 1.0);
    let projections: Vec<Vec<f32>> = (0..4)
        .map(|_| rng.values(WIDTH * WIDTH, (3.0 / WIDTH as f32).sqrt()))
        .collect();
    let biases: Vec<Vec<f32>> = (0..4).map(|_| rng.values(WIDTH, 0.1)).collect();
    let names = ["q_proj", "k_proj", "v_proj", "out_proj"];
    let weight_names: Vec<String> = names.iter().map(|n| format!("{n}.weight")).collect();
    let bias_names: Vec<String> = names.iter().map(|n| format!("{n}.bias")).collect();
    let mut tensors = vec![(
        "embed_tokens.weight",
        vec![VOCABULARY.len(), WIDTH],
        &table[..],
    )];
    for i in 0..4 {
        tensors.push((&weight_names[i], vec![WIDTH, WIDTH], &projections[i]));
        tensors.push((&bias_names[i], vec![WIDTH], &biases[i]));
    }
    let file_path = target.join("attention_heads.safetensors");
    std::fs::write(&file_path, serialize_f32(tensors)?)?;

    // 2. Load them back.
    let bytes = std::fs::read(&file_path)?;
    let file = from_bytes(&bytes)?;
    let table = Embedding::<12, 32>::from_safetensors(&file, "embed_tokens.weight")?;
    let query = Linear::<32, 32>::from_safetensors(&file, "q_proj")?;
    let key = Linear::<32, 32>::from_safetensors(&file, "k_proj")?;
    let value = Linear::<32, 32>::from_safetensors(&file, "v_proj")?;
    let output = Linear::<32, 32>::from_safetensors(&file, "out_proj")?;
    println!(
        "loaded {} tensors from {}",
        file.names().len(),
        file_path.display()
    );

    // 3. The sentence's embeddings: each word's row of the table plus a sinusoidal position.
    let ids = [SENTENCE.map(|word| VOCABULARY.iter().position(|&w| w == word).unwrap_or(0) as u32)];
    let mut x = table.embed(&ids)?;
    for (position, row) in x[0].iter_mut().enumerate() {
        for (i, value) in row.iter_mut().enumerate() {
            let frequency = 1.0 / 10000f32.powf((i / 2 * 2) as f32 / WIDTH as f32);
            let angle = position as f32 * frequency;
            *value += if i % 2 == 0 { angle.sin() } else { angle.cos() };
        }
    }

    // 4. The layer, and one head's weights as a heatmap.
    let (out, weights) = encoder(&x, &query, &key, &value, &output);
    let head = 0;
    println!("head {head}'s attention weights (rows: queries, columns: keys):");
    for (word, row) in SENTENCE.iter().zip(&weights[0][head]) {
        let cells: Vec<String> = row.iter().map(|w| format!("{w:5.2}")).collect();
        println!("  {word:>8} {}", cells.join(" "));
    }
    println!("output row of \"it\": {:.3?}", &out[0][7][..4]);
    std::fs::write(&image, svg(&weights[0][head], head))?;
    println!("wrote {}", image.display());
    Ok(())
}

/// The weights as an SVG heatmap: one square per (query, key), from white for 0 to deep blue
/// for the largest weight, the words along both axes and each weight printed in its square.
fn svg(weights: &[[f32; 10]; 10], head: usize) -> String {
    const CELL: usize = 44;
    const LEFT: usize = 90;
    const TOP: usize = 100;
    let size = LEFT + CELL * 10 + 60;
    let largest = weights
        .iter()
        .flatten()
        .fold(f32::MIN_POSITIVE, |m, &w| m.max(w));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"20\" font-size=\"15\">attention weights of head {head} \
         (rows: queries, columns: keys)</text>\n",
        TOP + CELL * 10 + 20
    );
    for (i, word) in SENTENCE.iter().enumerate() {
        let middle = i * CELL + CELL / 2;
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{word}</text>\n",
            LEFT - 8,
            TOP + middle + 4
        );
        svg += &format!(
            "<text transform=\"translate({},{}) rotate(-45)\">{word}</text>\n",
            LEFT + middle,
            TOP - 8
        );
    }
    for (i, row) in weights.iter().enumerate() {
        for (j, &w) in row.iter().enumerate() {
            let level = (w / largest).clamp(0.0, 1.0);
            let shade = |full: f32| (255.0 - level * (255.0 - full)) as u8;
            let (r, g, b) = (shade(8.0), shade(48.0), shade(107.0));
            let text = if level > 0.6 { "white" } else { "black" };
            let (x, y) = (LEFT + j * CELL, TOP + i * CELL);
            svg += &format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{CELL}\" height=\"{CELL}\" \
                 fill=\"rgb({r},{g},{b})\" stroke=\"#ddd\"/>\n\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{text}\" \
                 font-size=\"10\">{w:.2}</text>\n",
                x + CELL / 2,
                y + CELL / 2 + 4
            );
        }
    }
    svg + "</svg>\n"
}

/// splitmix64: fixed pseudo-random weights, the same on every run.
struct SplitMix(u64);

impl SplitMix {
    fn values(&mut self, n: usize, magnitude: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = self.0;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                let unit = ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32;
                (unit * 2.0 - 1.0) * magnitude
            })
            .collect()
    }
}
