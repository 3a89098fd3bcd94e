//! all-MiniLM-L6-v2 sentence embeddings through attn, end to end: the model's cosine
//! similarities, then its latency on one and two threads with the share of the attention.
//!
//! Run: `cargo run --release -p attn-bench --example minilm -- <model-dir> [<sentence>...]`,
//! where `<model-dir>` is a Hugging Face folder of sentence-transformers/all-MiniLM-L6-v2
//! (`config.json`, `model.safetensors`, `tokenizer.json`). Without sentences, the model
//! card's three, whose similarities it publishes: 0.6660, 0.1046 and 0.1411.

use attn_bench::median_seconds;
use attn_bench::minilm::{MiniLm, Profile, Sentence, attention_kernel_seconds, cosine};
use attn_runtime::threads::with_threads;
use std::error::Error;

/// The model card's sentences.
const MODEL_CARD: [&str; 3] = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
];

/// The sentences of the latency's batch.
const BATCH: usize = 32;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let Some(folder) = args.next() else {
        return Err("usage: minilm <model-dir> [<sentence>...]".into());
    };
    let mut texts: Vec<String> = args.collect();
    if texts.is_empty() {
        texts = MODEL_CARD.map(String::from).to_vec();
    }
    let model = MiniLm::from_folder(folder.as_ref())?;
    let sentences = texts
        .iter()
        .enumerate()
        .map(|(index, text)| model.sentence(index, text))
        .collect::<Result<Vec<_>, _>>()?;

    // The embeddings, one sentence at a time.
    let embeddings = sentences
        .iter()
        .map(|sentence| {
            Ok(model.embed(std::array::from_ref(sentence), &mut Profile::default())?[0])
        })
        .collect::<Result<Vec<_>, Box<dyn Error>>>()?;
    for (i, sentence) in sentences.iter().enumerate() {
        println!("{i}: {:?} ({} word pieces)", texts[i], sentence.ids.len());
    }
    for i in 0..embeddings.len() {
        for j in i + 1..embeddings.len() {
            println!(
                "cos({i}, {j}) = {:.4}",
                cosine(&embeddings[i], &embeddings[j])
            );
        }
    }

    // A batch of 32 (the sentences over and over) in one call: the same embeddings, as each
    // sentence's valid lengths keep it from seeing the others' padding.
    let batch: [Sentence; BATCH] = std::array::from_fn(|i| sentences[i % sentences.len()].clone());
    let batched = model.embed(&batch, &mut Profile::default())?;
    let difference = batched
        .iter()
        .enumerate()
        .flat_map(|(i, e)| e.iter().zip(&embeddings[i % embeddings.len()]))
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("batch of {BATCH} in one call vs one at a time: largest difference {difference:.1e}");

    println!(
        "\nlatency on {} ({} word pieces for one sentence):",
        cpu(),
        batch[0].ids.len()
    );
    for threads in [1, 2] {
        with_threads(threads, || -> Result<(), Box<dyn Error>> {
            let one = std::array::from_ref(&batch[0]);
            report(
                "one sentence",
                threads,
                measure(&model, one)?,
                attention_kernel_seconds(one, 0.5),
            );
            report(
                "batch of 32",
                threads,
                measure(&model, &batch)?,
                attention_kernel_seconds(&batch, 0.5),
            );
            Ok(())
        })?;
    }
    Ok(())
}

/// The median time of one forward pass over `sentences`, and the share of it in the
/// attention layers (from the passes' own profile).
fn measure<const B: usize>(
    model: &MiniLm,
    sentences: &[Sentence; B],
) -> Result<(f64, f64), Box<dyn Error>> {
    let mut profile = Profile::default();
    let mut failed = None;
    let seconds = median_seconds(1.0, || {
        if let Err(error) = model.embed(sentences, &mut profile) {
            failed = Some(error);
        }
    });
    if let Some(error) = failed {
        return Err(error.into());
    }
    let share = profile.attention_layers.as_secs_f64() / profile.total.as_secs_f64();
    Ok((seconds, share))
}

fn report(what: &str, threads: usize, (seconds, layers): (f64, f64), kernel: f64) {
    println!(
        "  {what:<12} {threads} thread{}: {:8.2} ms; attention layers {:4.1}%, of which the \
         attention kernel alone {:4.1}% of the whole",
        if threads == 1 { " " } else { "s" },
        seconds * 1e3,
        layers * 100.0,
        kernel / seconds * 100.0,
    );
}

/// The CPU's model name, as Linux reports it.
fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|line| line.starts_with("model name"))?;
            Some(line.split(':').nth(1)?.trim().to_owned())
        })
        .unwrap_or_else(|| "this CPU".to_owned())
}
