//! A heatmap of one attention head's weights over a sentence, as an SVG image.
//!
//! Without a model, `cargo run -p attn-bench --example heatmap [OUT.svg]`: one encoder
//! self-attention layer of fixed pseudo-random weights over a 10-word sentence. It writes
//! `attention_heads.safetensors` (an embedding table and the four projections of
//! `nn.MultiheadAttention(32, 4)`, in PyTorch's names and layout) into the target directory,
//! loads it back, embeds the sentence, runs the layer, and draws head 0's weights (default
//! `target/attention_heatmap.svg`). Nothing to download.
//!
//! With a real model, a Hugging Face folder of sentence-transformers/all-MiniLM-L6-v2:
//! `cargo run --release -p attn-bench --example heatmap -- --model <model-dir> [--layer L]
//! [--head H] [--out OUT.svg] "<sentence>"`: the sentence's word pieces through the model's
//! first `L` layers (0 to 5, default 0), then head `H` (0 to 11, default 0) of layer `L`,
//! with the word pieces on both axes.

use attn_bench::minilm::{HEADS, LAYERS, MiniLm};
use attn_runtime::safetensors::{from_bytes, serialize_f32};
use attn_runtime::{Embedding, Linear, attention};
use std::error::Error;
use std::path::PathBuf;

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
    let default_image = target.join("attention_heatmap.svg");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|arg| arg == "--model") {
        return real_model(&args, default_image);
    }
    let image = args.first().map_or(default_image, Into::into);
    synthetic(&target, &image)
}

/// The real model's head `--head` in layer `--layer` over the sentence given.
fn real_model(args: &[String], default_image: PathBuf) -> Result<(), Box<dyn Error>> {
    let usage =
        "usage: heatmap --model <model-dir> [--layer L] [--head H] [--out OUT.svg] \"<sentence>\"";
    let (mut folder, mut layer, mut head, mut image, mut text) = (None, 0, 0, default_image, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value; {usage}"));
        match arg.as_str() {
            "--model" => folder = Some(PathBuf::from(value()?)),
            "--layer" => layer = value()?.parse().map_err(|e| format!("--layer: {e}"))?,
            "--head" => head = value()?.parse().map_err(|e| format!("--head: {e}"))?,
            "--out" => image = value()?.into(),
            sentence if text.is_none() => text = Some(sentence.to_owned()),
            other => return Err(format!("unexpected argument {other:?}; {usage}").into()),
        }
    }
    let (Some(folder), Some(text)) = (folder, text) else {
        return Err(usage.into());
    };
    if layer >= LAYERS || head >= HEADS {
        return Err(format!(
            "the model has layers 0..{LAYERS} and heads 0..{HEADS}; asked for layer {layer}, head {head}"
        )
        .into());
    }
    let model = MiniLm::from_folder(&folder)?;
    let sentence = model.sentence(0, &text)?;
    let weights = model.attention_weights(&sentence, layer)?;
    let n = sentence.ids.len();
    let rows: Vec<Vec<f32>> = weights[0][head][..n]
        .iter()
        .map(|row| row[..n].to_vec())
        .collect();
    let title =
        format!("all-MiniLM-L6-v2, layer {layer}, head {head} (rows: queries, columns: keys)");
    print_rows(&title, &sentence.pieces, &rows);
    std::fs::write(&image, svg(&title, &sentence.pieces, &rows))?;
    println!("wrote {}", image.display());
    Ok(())
}

/// The pseudo-random layer over the built-in sentence.
fn synthetic(target: &std::path::Path, image: &std::path::Path) -> Result<(), Box<dyn Error>> {
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
    let words: Vec<String> = SENTENCE.map(String::from).to_vec();
    let rows: Vec<Vec<f32>> = weights[0][head].iter().map(|row| row.to_vec()).collect();
    let title = format!("attention weights of head {head} (rows: queries, columns: keys)");
    print_rows(&title, &words, &rows);
    println!("output row of \"it\": {:.3?}", &out[0][7][..4]);
    std::fs::write(image, svg(&title, &words, &rows))?;
    println!("wrote {}", image.display());
    Ok(())
}

/// The weights as text, a row per query.
fn print_rows(title: &str, words: &[String], rows: &[Vec<f32>]) {
    println!("{title}:");
    for (word, row) in words.iter().zip(rows) {
        let cells: Vec<String> = row.iter().map(|w| format!("{w:5.2}")).collect();
        println!("  {word:>10} {}", cells.join(" "));
    }
}

/// The weights as an SVG heatmap: one square per (query, key), from white for 0 to deep blue
/// for the largest weight, the words along both axes and each weight printed in its square.
fn svg(title: &str, words: &[String], weights: &[Vec<f32>]) -> String {
    const CELL: usize = 44;
    const LEFT: usize = 110;
    const TOP: usize = 110;
    let n = words.len();
    let size = LEFT + CELL * n + 60;
    let largest = weights
        .iter()
        .flatten()
        .fold(f32::MIN_POSITIVE, |m, &w| m.max(w));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"15\">{}</text>\n",
        TOP + CELL * n + 20,
        escape(title)
    );
    for (i, word) in words.iter().enumerate() {
        let (middle, word) = (i * CELL + CELL / 2, escape(word));
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

/// `text` with the characters XML gives a meaning escaped (word pieces such as `[CLS]` and
/// `'` come from the user's sentence).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
