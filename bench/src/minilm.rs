//! all-MiniLM-L6-v2, the most used sentence-embedding model, through attn: a BERT encoder of
//! six layers, hidden size 384, 12 heads of depth 32, read from a Hugging Face model folder
//! (`config.json`, `model.safetensors`, `tokenizer.json`).
//!
//! A sentence's word pieces (`[CLS] .. [SEP]`, from the `tokenizers` crate) are embedded
//! (word + position + token type, then LayerNorm); each layer is attn's attention layer (the
//! checkpoint's query, key, value and output projections with their biases), the residual
//! and LayerNorm, the GELU feed-forward, the residual and LayerNorm; the sentence's embedding
//! is the mean of its tokens' last hidden states, L2-normalized, as sentence-transformers
//! computes it.
//!
//! Every size is a constant checked at compile time by the kernel's types: a checkpoint of
//! another size is an error naming the tensor (or `config.json`'s value) and both sizes.
//! Sentences of different lengths share one kernel of capacity [`CAPACITY`] word pieces: its
//! valid lengths and valid query counts skip the padding, so that a 10-piece sentence costs
//! 10 rows, not 128.
//!
//! ```no_run
//! use attn_bench::minilm::{MiniLm, cosine};
//! let model = MiniLm::from_folder("all-MiniLM-L6-v2".as_ref())?;
//! let [a, b] = model.embed_sentences(&["The weather is lovely today.", "It's so sunny outside!"])?;
//! println!("cos = {:.4}", cosine(&a, &b)); // 0.6660
//! # Ok::<(), attn_bench::minilm::ModelError>(())
//! ```

use attn_runtime::safetensors::{SafeTensors, from_bytes, load};
use attn_runtime::{Embedding, Linear, Tensor, TokenError, WeightError, attention};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most word pieces a sentence may have, `[CLS]` and `[SEP]` included: the model's
/// tokenizer pads and truncates to this length.
///
/// ```
/// assert_eq!(attn_bench::minilm::CAPACITY, 128);
/// ```
pub const CAPACITY: usize = 128;
/// The hidden size: each token's state has this many features.
///
/// ```
/// use attn_bench::minilm::{HEADS, WIDTH};
/// assert_eq!(WIDTH / HEADS, 32, "heads of depth 32");
/// ```
pub const WIDTH: usize = 384;
/// The attention heads of a layer.
///
/// ```
/// assert_eq!(attn_bench::minilm::HEADS, 12);
/// ```
pub const HEADS: usize = 12;
/// The features of the feed-forward's hidden layer.
///
/// ```
/// assert_eq!(attn_bench::minilm::FEED_FORWARD, 4 * attn_bench::minilm::WIDTH);
/// ```
pub const FEED_FORWARD: usize = 1536;
/// The encoder layers.
///
/// ```
/// assert_eq!(attn_bench::minilm::LAYERS, 6);
/// ```
pub const LAYERS: usize = 6;
/// The word pieces the model knows.
///
/// ```
/// assert_eq!(attn_bench::minilm::VOCABULARY, 30522);
/// ```
pub const VOCABULARY: usize = 30522;
/// The positions the model has embeddings for.
///
/// ```
/// assert!(attn_bench::minilm::POSITIONS >= attn_bench::minilm::CAPACITY);
/// ```
pub const POSITIONS: usize = 512;

attention! {
    /// BERT's self-attention over a batch of sentences: x `[B, 128, 384]` through the query,
    /// key and value projections to 12 heads of depth 32, attention over each sentence's
    /// valid word pieces only, the heads merged and projected.
    #[attn(split_heads, valid_lengths, valid_queries)]
    fn self_attention<x: [B, N, Dm], q: [B, H, N, Dh], k: [B, H, N, Dh], v: [B, H, N, Dh], out: [B, N, Dm]>
    where N = 128, Dm = 384, H = 12, Dh = 32;

    /// The same over one sentence, also returning each head's attention weights.
    #[attn(split_heads, valid_lengths, valid_queries, return_weights)]
    fn self_attention_weights<x: [1, N, Dm], q: [1, H, N, Dh], k: [1, H, N, Dh], v: [1, H, N, Dh], out: [1, N, Dm]>
    where N = 128, Dm = 384, H = 12, Dh = 32;
}

/// The attention weights of one sentence in one layer: `[1][head][query][key]`.
///
/// ```
/// let weights = attn_runtime::Tensor::<attn_bench::minilm::HeadWeights>::zeros();
/// assert_eq!(weights[0].len(), 12);
/// ```
pub type HeadWeights = [[[[f32; CAPACITY]; CAPACITY]; HEADS]; 1];

/// Why the model could not be loaded or run: each names the file, tensor or sentence.
///
/// ```
/// use attn_bench::minilm::{MiniLm, ModelError};
/// let error = MiniLm::from_folder("/no/such/model".as_ref()).err().unwrap();
/// assert!(matches!(error, ModelError::Read { .. }));
/// assert!(error.to_string().starts_with("cannot read /no/such/model/config.json"));
/// ```
#[derive(Debug)]
pub enum ModelError {
    /// A file that could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// `config.json` is not JSON, or describes another model than the one compiled here.
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the value found and the one expected.
        problem: String,
    },
    /// A tensor of `model.safetensors` is missing, or of another shape or element type.
    Weights {
        /// The file.
        path: PathBuf,
        /// The tensor and what is wrong with it.
        error: WeightError,
    },
    /// `tokenizer.json` could not be loaded, or a sentence not tokenized.
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// What the tokenizer reported.
        problem: String,
    },
    /// A sentence of more word pieces than [`CAPACITY`].
    TooLong {
        /// The sentence's position among those given (0 is the first).
        sentence: usize,
        /// Its word pieces, `[CLS]` and `[SEP]` included.
        pieces: usize,
    },
    /// A word piece id past the embedding table (a tokenizer of another vocabulary).
    Token(TokenError),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ModelError::Read { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            ModelError::Config { path, problem } => write!(f, "{}: {problem}", path.display()),
            ModelError::Weights { path, error } => write!(f, "{}: {error}", path.display()),
            ModelError::Tokenizer { path, problem } => write!(f, "{}: {problem}", path.display()),
            ModelError::TooLong { sentence, pieces } => write!(
                f,
                "sentence {sentence} has {pieces} word pieces ([CLS] and [SEP] included), more \
                 than the {CAPACITY} the kernels are compiled for: shorten it"
            ),
            ModelError::Token(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for ModelError {}

impl From<TokenError> for ModelError {
    fn from(error: TokenError) -> Self {
        ModelError::Token(error)
    }
}

/// `path`'s bytes, or an error naming it.
fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|error| ModelError::Read {
        path: path.to_owned(),
        error,
    })
}

/// A sentence as the model reads it: its word pieces and their ids.
///
/// ```
/// let sentence = attn_bench::minilm::Sentence {
///     pieces: vec!["[CLS]".into(), "hello".into(), "[SEP]".into()],
///     ids: vec![101, 7592, 102],
/// };
/// assert_eq!(sentence.ids.len(), sentence.pieces.len());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Sentence {
    /// The word pieces, `[CLS]` first and `[SEP]` last.
    pub pieces: Vec<String>,
    /// Their ids in the vocabulary.
    pub ids: Vec<u32>,
}

/// The model's tokenizer: BERT's lower-casing WordPiece, from `tokenizer.json`, without the
/// padding and truncation that file asks for (the kernels' valid lengths replace the one,
/// and a sentence too long is an error rather than cut).
struct WordPieces {
    tokenizer: tokenizers::Tokenizer,
    path: PathBuf,
}

impl WordPieces {
    /// The tokenizer of `tokenizer.json` at `path`.
    fn from_file(path: &Path) -> Result<Self, ModelError> {
        let problem = |problem: String| ModelError::Tokenizer {
            path: path.to_owned(),
            problem,
        };
        let bytes = read(path)?;
        let mut tokenizer =
            tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| problem(e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| problem(e.to_string()))?;
        Ok(WordPieces {
            tokenizer,
            path: path.to_owned(),
        })
    }

    /// The word pieces of `text`, the `index`-th sentence given: an error if they are more
    /// than [`CAPACITY`].
    fn sentence(&self, index: usize, text: &str) -> Result<Sentence, ModelError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                problem: format!("sentence {index}: {e}"),
            })?;
        let pieces = encoding.get_tokens().to_vec();
        if pieces.len() > CAPACITY {
            return Err(ModelError::TooLong {
                sentence: index,
                pieces: pieces.len(),
            });
        }
        Ok(Sentence {
            pieces,
            ids: encoding.get_ids().to_vec(),
        })
    }
}

/// A LayerNorm over the hidden features: `(x - mean) / sqrt(var + eps) · weight + bias`.
struct LayerNorm {
    weight: Tensor<[f32; WIDTH]>,
    bias: Tensor<[f32; WIDTH]>,
    eps: f32,
}

impl LayerNorm {
    fn load(weights: &Weights, name: &str, eps: f32) -> Result<Self, ModelError> {
        Ok(LayerNorm {
            weight: weights.tensor(&format!("{name}.weight"))?,
            bias: weights.tensor(&format!("{name}.bias"))?,
            eps,
        })
    }

    /// Normalizes `x` in place (sums in f64, as the mean of 384 features wants).
    fn apply(&self, x: &mut [f32; WIDTH]) {
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / WIDTH as f64;
        let variance = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / WIDTH as f64;
        let inverse = 1.0 / (variance + self.eps as f64).sqrt();
        for ((v, w), b) in x.iter_mut().zip(self.weight.iter()).zip(self.bias.iter()) {
            *v = ((*v as f64 - mean) * inverse) as f32 * w + b;
        }
    }
}

/// One encoder layer's weights.
struct Layer {
    query: Linear<WIDTH, WIDTH>,
    key: Linear<WIDTH, WIDTH>,
    value: Linear<WIDTH, WIDTH>,
    output: Linear<WIDTH, WIDTH>,
    attention_norm: LayerNorm,
    expand: Linear<WIDTH, FEED_FORWARD>,
    contract: Linear<FEED_FORWARD, WIDTH>,
    output_norm: LayerNorm,
}

/// `model.safetensors`, with errors that name it.
struct Weights<'a> {
    file: SafeTensors<'a>,
    path: &'a Path,
}

impl Weights<'_> {
    fn error(&self, error: WeightError) -> ModelError {
        ModelError::Weights {
            path: self.path.to_owned(),
            error,
        }
    }

    fn tensor<A: attn_runtime::Array<Element = f32>>(
        &self,
        name: &str,
    ) -> Result<Tensor<A>, ModelError> {
        load(&self.file, name).map_err(|e| self.error(e))
    }

    fn linear<const IN: usize, const OUT: usize>(
        &self,
        name: &str,
    ) -> Result<Linear<IN, OUT>, ModelError> {
        Linear::from_safetensors(&self.file, name).map_err(|e| self.error(e))
    }

    fn table<const ROWS: usize>(&self, name: &str) -> Result<Embedding<ROWS, WIDTH>, ModelError> {
        Embedding::from_safetensors(&self.file, name).map_err(|e| self.error(e))
    }
}

/// Where forward passes spent their time, added up over the calls it is given to.
///
/// ```
/// let profile = attn_bench::minilm::Profile::default();
/// assert!(profile.attention_layers <= profile.total);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Profile {
    /// In attn's attention layers (projections in, attention, projection out).
    pub attention_layers: Duration,
    /// In all of it.
    pub total: Duration,
}

/// all-MiniLM-L6-v2's weights and tokenizer. The examples below that load the model need
/// its folder; the `minilm` example runs them on the real model (and CI with it).
///
/// ```no_run
/// use attn_bench::minilm::{MiniLm, Profile};
/// let model = MiniLm::from_folder("all-MiniLM-L6-v2".as_ref())?;
/// let sentence = model.sentence(0, "He drove to the stadium.")?;
/// let mut profile = Profile::default();
/// let [embedding] = model.embed(&[sentence], &mut profile)?;
/// println!("{:.1}% of the time in the attention layers", 100.0 * profile.attention_layers.as_secs_f64() / profile.total.as_secs_f64());
/// # Ok::<(), attn_bench::minilm::ModelError>(())
/// ```
pub struct MiniLm {
    words: Embedding<VOCABULARY, WIDTH>,
    positions: Embedding<POSITIONS, WIDTH>,
    token_types: Embedding<2, WIDTH>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    word_pieces: WordPieces,
}

/// The values of `config.json` that the compiled sizes fix.
const CONFIG: [(&str, usize); 7] = [
    ("hidden_size", WIDTH),
    ("num_attention_heads", HEADS),
    ("num_hidden_layers", LAYERS),
    ("intermediate_size", FEED_FORWARD),
    ("vocab_size", VOCABULARY),
    ("max_position_embeddings", POSITIONS),
    ("type_vocab_size", 2),
];

impl MiniLm {
    /// Loads the model folder `folder`: `config.json` (checked against the sizes compiled
    /// here), `model.safetensors` and `tokenizer.json`; an error names the file, and the
    /// value or tensor, that is missing or of another size.
    ///
    /// ```
    /// let error = attn_bench::minilm::MiniLm::from_folder("/no/such/model".as_ref()).err().unwrap();
    /// assert!(error.to_string().contains("config.json"));
    /// ```
    pub fn from_folder(folder: &Path) -> Result<Self, ModelError> {
        let eps = check_config(&folder.join("config.json"))?;
        let path = folder.join("model.safetensors");
        let bytes = read(&path)?;
        let file = from_bytes(&bytes).map_err(|error| ModelError::Weights {
            path: path.clone(),
            error,
        })?;
        let weights = Weights { file, path: &path };
        let layers = (0..LAYERS)
            .map(|i| {
                let name = |part: &str| format!("encoder.layer.{i}.{part}");
                Ok(Layer {
                    query: weights.linear(&name("attention.self.query"))?,
                    key: weights.linear(&name("attention.self.key"))?,
                    value: weights.linear(&name("attention.self.value"))?,
                    output: weights.linear(&name("attention.output.dense"))?,
                    attention_norm: LayerNorm::load(
                        &weights,
                        &name("attention.output.LayerNorm"),
                        eps,
                    )?,
                    expand: weights.linear(&name("intermediate.dense"))?,
                    contract: weights.linear(&name("output.dense"))?,
                    output_norm: LayerNorm::load(&weights, &name("output.LayerNorm"), eps)?,
                })
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(MiniLm {
            words: weights.table("embeddings.word_embeddings.weight")?,
            positions: weights.table("embeddings.position_embeddings.weight")?,
            token_types: weights.table("embeddings.token_type_embeddings.weight")?,
            embedding_norm: LayerNorm::load(&weights, "embeddings.LayerNorm", eps)?,
            layers,
            word_pieces: WordPieces::from_file(&folder.join("tokenizer.json"))?,
        })
    }

    /// The embeddings of `B` sentences, each L2-normalized, computed as one batch.
    ///
    /// ```no_run
    /// # let model = attn_bench::minilm::MiniLm::from_folder("all-MiniLM-L6-v2".as_ref())?;
    /// let [a, b] = model.embed_sentences(&["It's so sunny outside!", "He drove to the stadium."])?;
    /// assert!((attn_bench::minilm::cosine(&a, &b) - 0.1411).abs() < 5e-5);
    /// # Ok::<(), attn_bench::minilm::ModelError>(())
    /// ```
    pub fn embed_sentences<const B: usize>(
        &self,
        texts: &[&str; B],
    ) -> Result<[[f32; WIDTH]; B], ModelError> {
        let mut sentences = Vec::with_capacity(B);
        for (index, text) in texts.iter().enumerate() {
            sentences.push(self.sentence(index, text)?);
        }
        let sentences: &[Sentence; B] = sentences[..]
            .try_into()
            .unwrap_or_else(|_| unreachable!("one sentence per text"));
        self.embed(sentences, &mut Profile::default())
    }

    /// The word pieces of `text`, the `index`-th sentence given (the index names it in
    /// errors): an error if they are more than [`CAPACITY`].
    ///
    /// ```no_run
    /// # let model = attn_bench::minilm::MiniLm::from_folder("all-MiniLM-L6-v2".as_ref())?;
    /// let sentence = model.sentence(0, "The weather is lovely today.")?;
    /// assert_eq!(sentence.pieces, ["[CLS]", "the", "weather", "is", "lovely", "today", ".", "[SEP]"]);
    /// # Ok::<(), attn_bench::minilm::ModelError>(())
    /// ```
    pub fn sentence(&self, index: usize, text: &str) -> Result<Sentence, ModelError> {
        self.word_pieces.sentence(index, text)
    }

    /// The embeddings of `B` tokenized sentences, each the mean of its tokens' last hidden
    /// states, L2-normalized; `profile` adds the time spent. The sentences share one kernel
    /// call per layer, and each gives the embedding it gives alone.
    ///
    /// ```no_run
    /// # let model = attn_bench::minilm::MiniLm::from_folder("all-MiniLM-L6-v2".as_ref())?;
    /// let sentence = model.sentence(0, "He drove to the stadium.")?;
    /// let [alone] = model.embed(&[sentence.clone()], &mut Default::default())?;
    /// let batch = model.embed(&[sentence.clone(), sentence], &mut Default::default())?;
    /// assert_eq!(batch, [alone, alone]);
    /// # Ok::<(), attn_bench::minilm::ModelError>(())
    /// ```
    pub fn embed<const B: usize>(
        &self,
        sentences: &[Sentence; B],
        profile: &mut Profile,
    ) -> Result<[[f32; WIDTH]; B], ModelError> {
        let start = Instant::now();
        let states = self.hidden_states(sentences, LAYERS, profile)?;
        let mut embeddings = [[0.0; WIDTH]; B];
        for (embedding, rows) in embeddings.iter_mut().zip(states.entries()) {
            for row in rows {
                for (e, v) in embedding.iter_mut().zip(row) {
                    *e += v / rows.len() as f32;
                }
            }
            let norm = embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
            embedding.iter_mut().for_each(|v| *v /= norm.max(1e-12));
        }
        profile.total += start.elapsed();
        Ok(embeddings)
    }

    /// The attention weights of each head of layer `layer` (0 to 5; a larger one is the
    /// last) over one sentence: `[1][head][query][key]`, the first `sentence.ids.len()`
    /// queries and keys valid, the rest 0.
    ///
    /// ```no_run
    /// # let model = attn_bench::minilm::MiniLm::from_folder("all-MiniLM-L6-v2".as_ref())?;
    /// let sentence = model.sentence(0, "The cat sat on the mat.")?;
    /// let weights = model.attention_weights(&sentence, 2)?;
    /// let row: f32 = weights[0][5][0].iter().sum(); // head 5, the query [CLS]
    /// assert!((row - 1.0).abs() < 1e-5);
    /// # Ok::<(), attn_bench::minilm::ModelError>(())
    /// ```
    pub fn attention_weights(
        &self,
        sentence: &Sentence,
        layer: usize,
    ) -> Result<Tensor<HeadWeights>, ModelError> {
        let layer = layer.min(LAYERS - 1);
        let states = self.hidden_states(
            std::array::from_ref(sentence),
            layer,
            &mut Profile::default(),
        )?;
        let lengths = [sentence.ids.len()];
        let weights = &self.layers[layer];
        let mut x = Tensor::<[[[f32; WIDTH]; CAPACITY]; 1]>::zeros();
        states.scatter(&mut x);
        let mut out = Tensor::<[[[f32; WIDTH]; CAPACITY]; 1]>::zeros();
        let mut heads = Tensor::<HeadWeights>::zeros();
        self_attention_weights_into(
            &x,
            &weights.query,
            &weights.key,
            &weights.value,
            &weights.output,
            &lengths,
            &lengths,
            &mut out,
            &mut heads,
        )
        .unwrap_or_else(|_| unreachable!("lengths checked against the capacity"));
        Ok(heads)
    }

    /// The hidden states of `sentences` after the first `layers` layers.
    fn hidden_states<const B: usize>(
        &self,
        sentences: &[Sentence; B],
        layers: usize,
        profile: &mut Profile,
    ) -> Result<Tokens<B>, ModelError> {
        let mut ids = [[0u32; CAPACITY]; B];
        let mut lengths = [0; B];
        for (b, sentence) in sentences.iter().enumerate() {
            if sentence.ids.len() > CAPACITY {
                return Err(ModelError::TooLong {
                    sentence: b,
                    pieces: sentence.ids.len(),
                });
            }
            ids[b][..sentence.ids.len()].copy_from_slice(&sentence.ids);
            lengths[b] = sentence.ids.len();
        }
        let words = self.words.embed(&ids)?;
        let mut states = Tokens::gather(&words, lengths);
        for rows in states.entries_mut() {
            for (position, row) in rows.iter_mut().enumerate() {
                let (at, kind) = (
                    &self.positions.table()[position],
                    &self.token_types.table()[0],
                );
                for ((v, p), t) in row.iter_mut().zip(at).zip(kind) {
                    *v += p + t;
                }
                self.embedding_norm.apply(row);
            }
        }
        let mut padded = Tensor::<[[[f32; WIDTH]; CAPACITY]; B]>::zeros();
        let mut attended = Tensor::<[[[f32; WIDTH]; CAPACITY]; B]>::zeros();
        let mut expanded = vec![[0.0; FEED_FORWARD]; states.rows.len()];
        let mut contracted = vec![[0.0; WIDTH]; states.rows.len()];
        for layer in &self.layers[..layers] {
            // Attention, over the padded batch the kernel takes.
            let start = Instant::now();
            states.scatter(&mut padded);
            self_attention_into(
                &padded,
                &layer.query,
                &layer.key,
                &layer.value,
                &layer.output,
                &lengths,
                &lengths,
                &mut attended,
            )
            .unwrap_or_else(|_| unreachable!("lengths checked against the capacity"));
            profile.attention_layers += start.elapsed();
            for (rows, attended) in states.entries_mut().zip(attended.iter()) {
                for (row, attended) in rows.iter_mut().zip(attended) {
                    row.iter_mut().zip(attended).for_each(|(v, a)| *v += a);
                    layer.attention_norm.apply(row);
                }
            }
            // The feed-forward, over the valid tokens only, packed.
            let rows = &mut states.rows;
            let sizes = "the buffers have one row per token";
            layer.expand.apply_rows(rows, &mut expanded).expect(sizes);
            for row in &mut expanded {
                row.iter_mut().for_each(|v| *v = gelu(*v));
            }
            layer
                .contract
                .apply_rows(&expanded, &mut contracted)
                .expect(sizes);
            for (row, contracted) in rows.iter_mut().zip(&contracted) {
                row.iter_mut().zip(contracted).for_each(|(v, c)| *v += c);
                layer.output_norm.apply(row);
            }
        }
        Ok(states)
    }
}

/// The seconds of one forward pass over `sentences` spent in the scaled dot-product
/// attention alone: the kernel inside the six attention layers (without their projections),
/// over the sentences' lengths, timed on its own on random q, k and v for about `budget`
/// seconds. The kernel's work does not depend on the values.
///
/// ```
/// use attn_bench::minilm::{Sentence, attention_kernel_seconds};
/// let sentence = Sentence { pieces: vec![String::new(); 8], ids: vec![0; 8] };
/// assert!(attention_kernel_seconds(&[sentence], 0.01) > 0.0);
/// ```
pub fn attention_kernel_seconds<const B: usize>(sentences: &[Sentence; B], budget: f64) -> f64 {
    type Heads<const B: usize> = [[[[f32; WIDTH / HEADS]; CAPACITY]; HEADS]; B];
    let lengths = sentences
        .each_ref()
        .map(|sentence| sentence.ids.len().min(CAPACITY));
    let random = |seed| {
        Tensor::<Heads<B>>::from_vec(crate::values(B * HEADS * CAPACITY * WIDTH / HEADS, seed))
            .unwrap_or_else(|_| unreachable!("as many values as the shape holds"))
    };
    let (q, k, v) = (random(1), random(2), random(3));
    let mut out = Tensor::<Heads<B>>::zeros();
    let once = crate::median_seconds(budget, || {
        self_attention_attention_into(&q, &k, &v, &lengths, &lengths, &mut out)
    });
    once * LAYERS as f64
}

/// `config.json`'s layer_norm_eps, after checking that its sizes are those compiled here.
fn check_config(path: &Path) -> Result<f32, ModelError> {
    let problem = |problem: String| ModelError::Config {
        path: path.to_owned(),
        problem,
    };
    let config: serde_json::Value =
        serde_json::from_slice(&read(path)?).map_err(|e| problem(format!("not JSON: {e}")))?;
    for (key, expected) in CONFIG {
        match config.get(key).and_then(|v| v.as_u64()) {
            Some(found) if found == expected as u64 => {}
            Some(found) => {
                return Err(problem(format!(
                    "`{key}` is {found}, but this encoder is compiled for {expected}"
                )));
            }
            None => {
                return Err(problem(format!(
                    "no whole number `{key}` (expected {expected})"
                )));
            }
        }
    }
    match config.get("hidden_act").and_then(|v| v.as_str()) {
        Some("gelu") => {}
        Some(other) => {
            return Err(problem(format!(
                "`hidden_act` is \"{other}\", but this encoder computes \"gelu\""
            )));
        }
        None => {
            return Err(problem(
                "no text `hidden_act` (expected \"gelu\")".to_owned(),
            ));
        }
    }
    config
        .get("layer_norm_eps")
        .and_then(|v| v.as_f64())
        .map(|eps| eps as f32)
        .ok_or_else(|| problem("no number `layer_norm_eps`".to_owned()))
}

/// The hidden states of a batch's valid tokens, packed: entry `b`'s `lengths[b]` rows, then
/// the next entry's. The feed-forward runs over these rows only; the attention kernel takes
/// them scattered into its padded batch.
struct Tokens<const B: usize> {
    rows: Vec<[f32; WIDTH]>,
    lengths: [usize; B],
}

impl<const B: usize> Tokens<B> {
    fn gather(padded: &[[[f32; WIDTH]; CAPACITY]; B], lengths: [usize; B]) -> Self {
        let rows = padded
            .iter()
            .zip(lengths)
            .flat_map(|(entry, length)| entry[..length].iter().copied())
            .collect();
        Tokens { rows, lengths }
    }

    fn scatter(&self, padded: &mut [[[f32; WIDTH]; CAPACITY]; B]) {
        for (entry, rows) in padded.iter_mut().zip(self.entries()) {
            entry[..rows.len()].copy_from_slice(rows);
        }
    }

    fn entries(&self) -> impl Iterator<Item = &[[f32; WIDTH]]> {
        let mut rest = &self.rows[..];
        self.lengths.iter().map(move |&length| {
            let (entry, after) = rest.split_at(length);
            rest = after;
            entry
        })
    }

    fn entries_mut(&mut self) -> impl Iterator<Item = &mut [[f32; WIDTH]]> {
        let mut rest = &mut self.rows[..];
        self.lengths.iter().map(move |&length| {
            let (entry, after) = std::mem::take(&mut rest).split_at_mut(length);
            rest = after;
            entry
        })
    }
}

/// BERT's GELU, `x · Φ(x)` with the normal distribution's exact CDF (through erf). Inline,
/// so that a loop over a row of features is vector code.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf as a ratio of polynomials, `x·P(x²) / Q(x²)` over [-4, 4] (past which erf is ±1 in
/// f32), the approximation of Eigen's and XLA's f32 erf: no branch and no call, so that a
/// row of the feed-forward's GELU compiles to vector code. libm's `erff`, called value by
/// value, took 12% of a batch through the model. Within 4e-7 of libm's over [-6, 6] (3
/// units in the last place near ±1; the test below).
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ];
    const Q: [f32; 5] = [
        -1.456_607_2e-5,
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329e-3,
        -1.426_474e-2,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = P.iter().fold(0.0, |sum, &c| sum * x2 + c);
    let q = Q.iter().fold(0.0, |sum, &c| sum * x2 + c);
    x * p / q
}

/// The cosine similarity of two embeddings (their dot product, as both are normalized).
///
/// ```
/// assert_eq!(attn_bench::minilm::cosine(&[0.6; 384], &[0.0; 384]), 0.0);
/// ```
pub fn cosine(a: &[f32; WIDTH], b: &[f32; WIDTH]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use attn_runtime::safetensors::serialize_f32;

    /// A fresh folder of its own under the system's temporary directory.
    fn folder(name: &str) -> PathBuf {
        let folder =
            std::env::temp_dir().join(format!("attn-minilm-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).expect("a temporary folder");
        folder
    }

    /// all-MiniLM-L6-v2's config.json, with `change` applied.
    fn config(change: (&str, serde_json::Value)) -> String {
        let mut config = serde_json::json!({
            "hidden_size": 384, "num_attention_heads": 12, "num_hidden_layers": 6,
            "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512,
            "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12
        });
        config[change.0] = change.1;
        config.to_string()
    }

    fn load_error(folder: &Path) -> String {
        match MiniLm::from_folder(folder) {
            Ok(_) => panic!("{} loaded", folder.display()),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_missing_folder_names_the_file_it_looked_for() {
        let error = load_error(Path::new("/no/such/model"));
        assert!(
            error.starts_with("cannot read /no/such/model/config.json: "),
            "{error}"
        );
    }

    #[test]
    fn a_config_of_other_sizes_names_the_value_and_both_sizes() {
        let folder = folder("config");
        let path = folder.join("config.json");
        std::fs::write(&path, config(("hidden_size", 768.into()))).unwrap();
        let error = load_error(&folder);
        assert_eq!(
            error,
            format!(
                "{}: `hidden_size` is 768, but this encoder is compiled for 384",
                path.display()
            )
        );
        std::fs::write(&path, config(("hidden_act", "relu".into()))).unwrap();
        assert!(
            load_error(&folder)
                .ends_with("`hidden_act` is \"relu\", but this encoder computes \"gelu\"")
        );
        std::fs::write(&path, "{ not json").unwrap();
        assert!(load_error(&folder).contains("config.json: not JSON: "));
    }

    #[test]
    fn a_checkpoint_of_another_shape_or_a_broken_file_names_the_tensor() {
        let folder = folder("weights");
        std::fs::write(
            folder.join("config.json"),
            config(("layer_norm_eps", 1e-12.into())),
        )
        .unwrap();
        let path = folder.join("model.safetensors");
        // A query projection of a 768-wide model.
        let values = vec![0.0f32; 384 * 768];
        let name = "encoder.layer.0.attention.self.query.weight";
        std::fs::write(
            &path,
            serialize_f32([(name, vec![384, 768], &values[..])]).unwrap(),
        )
        .unwrap();
        assert_eq!(
            load_error(&folder),
            format!(
                "{}: `{name}` has shape [384, 768], but the layer expects [384, 384] ([out, in])",
                path.display()
            )
        );
        std::fs::write(&path, serialize_f32([]).unwrap()).unwrap();
        assert!(load_error(&folder).ends_with(&format!("the file has no tensor `{name}`")));
        std::fs::write(&path, b"not a safetensors file").unwrap();
        assert!(load_error(&folder).contains("model.safetensors: not a safetensors file: "));
    }

    /// A tokenizer.json of a tiny vocabulary, splitting on white space.
    fn tiny_tokenizer(folder: &Path) -> PathBuf {
        let path = folder.join("tokenizer.json");
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": { "type": "Whitespace" },
            "post_processor": null, "decoder": null,
            "model": { "type": "WordLevel", "vocab": { "[UNK]": 0, "sun": 1 }, "unk_token": "[UNK]" }
        });
        std::fs::write(&path, json.to_string()).unwrap();
        path
    }

    #[test]
    fn a_sentence_longer_than_the_capacity_is_an_error_naming_it() {
        let folder = folder("tokenizer");
        let word_pieces = WordPieces::from_file(&tiny_tokenizer(&folder)).unwrap();
        let fits = vec!["sun"; CAPACITY].join(" ");
        let sentence = word_pieces.sentence(0, &fits).unwrap();
        assert_eq!(
            (sentence.ids.len(), sentence.ids[0], &sentence.pieces[0][..]),
            (CAPACITY, 1, "sun")
        );
        let error = word_pieces.sentence(3, &format!("{fits} sun")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "sentence 3 has 129 word pieces ([CLS] and [SEP] included), more than the 128 the \
             kernels are compiled for: shorten it"
        );
    }

    #[test]
    fn a_malformed_tokenizer_file_is_an_error_naming_it() {
        let folder = folder("malformed");
        let path = folder.join("tokenizer.json");
        std::fs::write(&path, "{\"model\": 3}").unwrap();
        let error = WordPieces::from_file(&path)
            .err()
            .expect("an error")
            .to_string();
        assert!(
            error.starts_with(&format!("{}: ", path.display())),
            "{error}"
        );
    }

    #[test]
    fn gelu_is_x_times_the_normal_cdf() {
        // Φ(1) = 0.841344746..., Φ(-2) = 0.022750132...
        assert!((f64::from(gelu(1.0)) - 0.841_344_746).abs() < 1e-7);
        assert!((f64::from(gelu(-2.0)) + 2.0 * 0.022_750_132).abs() < 1e-7);
        assert_eq!(gelu(0.0), 0.0);
    }

    #[test]
    fn erf_is_libms_within_4e_7() {
        let worst = (-6000..=6000)
            .map(|i| {
                let x = i as f32 * 1e-3;
                (f64::from(erf(x)) - f64::from(libm::erff(x))).abs()
            })
            .fold(0.0, f64::max);
        println!("largest difference from libm's erff: {worst:.2e}");
        assert!(worst <= 4e-7, "{worst:e}");
        // Past the clamp, ±1 to a unit in the last place; NaN stays NaN.
        for (x, expected) in [(-9.0, -1.0), (9.0, 1.0), (f32::INFINITY, 1.0)] {
            assert!(
                (erf(x) - expected).abs() <= f32::EPSILON,
                "erf({x}) = {}",
                erf(x)
            );
        }
        assert!(erf(f32::NAN).is_nan());
    }

    #[test]
    fn layer_norm_centres_and_scales_the_features() {
        let norm = LayerNorm {
            weight: Tensor::from_vec(vec![2.0; WIDTH]).unwrap(),
            bias: Tensor::from_vec(vec![1.0; WIDTH]).unwrap(),
            eps: 1e-12,
        };
        let mut x: [f32; WIDTH] = std::array::from_fn(|i| if i % 2 == 0 { 5.0 } else { 3.0 });
        norm.apply(&mut x);
        // Mean 4, standard deviation 1: ±1, times 2, plus 1.
        assert!(
            x.iter()
                .enumerate()
                .all(|(i, &v)| v == if i % 2 == 0 { 3.0 } else { -1.0 })
        );
    }
}
