//! The weights of an attention layer and its embedding table, loaded at run time from slices
//! or (with the `safetensors` feature) from a safetensors file, with errors that name the
//! tensor and both shapes.
//!
//! Weights are in PyTorch's layout: a linear map from `IN` to `OUT` features is a matrix
//! `[OUT, IN]` and an optional bias `[OUT]`, as `nn.Linear` stores them, so a checkpoint's
//! tensors load as they are.

use crate::tensor::{Array, Tensor};
use std::fmt;

/// Why weights could not be loaded: each variant names the tensor.
///
/// ```
/// use attn_runtime::{Linear, WeightError};
/// let error = Linear::<4, 2>::from_slices("q_proj", &[0.0; 6], None).unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "`q_proj.weight` holds 6 values, but the layer expects shape [2, 4] ([out, in]), 8 values"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightError {
    /// A slice of the wrong length.
    Length {
        /// The tensor's name, such as `q_proj.weight`.
        tensor: String,
        /// The shape the layer expects.
        expected: Vec<usize>,
        /// The number of values given.
        actual: usize,
    },
    /// A stored tensor of the wrong shape.
    Shape {
        /// The tensor's name.
        tensor: String,
        /// The shape the layer expects.
        expected: Vec<usize>,
        /// The shape stored.
        actual: Vec<usize>,
    },
    /// A stored tensor of an element type other than f32.
    DType {
        /// The tensor's name.
        tensor: String,
        /// The element type stored, as the file names it.
        dtype: String,
    },
    /// A tensor the file does not have.
    Missing {
        /// The tensor's name.
        tensor: String,
    },
    /// A file that is not a valid safetensors file.
    File(String),
}

impl fmt::Display for WeightError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let layout = |shape: &[usize]| if shape.len() == 2 { " ([out, in])" } else { "" };
        match self {
            WeightError::Length {
                tensor,
                expected,
                actual,
            } => {
                let values = expected
                    .iter()
                    .try_fold(1usize, |n, &axis| n.checked_mul(axis))
                    .map_or("more than 2^64 values".to_owned(), |n| {
                        format!("{n} values")
                    });
                write!(
                    f,
                    "`{tensor}` holds {actual} values, but the layer expects shape {expected:?}{}, {values}",
                    layout(expected),
                )
            }
            WeightError::Shape {
                tensor,
                expected,
                actual,
            } => write!(
                f,
                "`{tensor}` has shape {actual:?}, but the layer expects {expected:?}{}",
                layout(expected)
            ),
            WeightError::DType { tensor, dtype } => {
                write!(
                    f,
                    "`{tensor}` holds {dtype} values, but the layer takes f32"
                )
            }
            WeightError::Missing { tensor } => write!(f, "the file has no tensor `{tensor}`"),
            WeightError::File(problem) => write!(f, "not a safetensors file: {problem}"),
        }
    }
}

impl std::error::Error for WeightError {}

/// `values` as a tensor of shape `A`, or an error naming `tensor` and both sizes.
fn tensor_from<A: Array<Element = f32>>(
    tensor: &str,
    values: &[f32],
) -> Result<Tensor<A>, WeightError> {
    Tensor::from_slice(values).map_err(|_| WeightError::Length {
        tensor: tensor.to_owned(),
        expected: A::dims(),
        actual: values.len(),
    })
}

/// A linear map from `IN` to `OUT` features, `y = W·x + b`, as PyTorch's `nn.Linear`: the
/// weight is `[OUT, IN]`, the bias, if any, `[OUT]`.
///
/// ```
/// use attn_runtime::Linear;
/// // y = [x0 + x1, 2·x1] + [0.5, 0]
/// let linear = Linear::<2, 2>::from_slices("proj", &[1.0, 1.0, 0.0, 2.0], Some(&[0.5, 0.0]))?;
/// assert_eq!(linear.apply(&[1.0, 3.0]), [4.5, 6.0]);
/// # Ok::<(), attn_runtime::WeightError>(())
/// ```
#[derive(Clone)]
pub struct Linear<const IN: usize, const OUT: usize> {
    weight: Tensor<[[f32; IN]; OUT]>,
    bias: Option<Tensor<[f32; OUT]>>,
    /// The weight packed for the product over many rows, made at the first use: as large
    /// again as the weight (see `project::Packed`).
    packed: std::sync::OnceLock<crate::project::Packed>,
}

impl<const IN: usize, const OUT: usize> PartialEq for Linear<IN, OUT> {
    /// Equal weights and biases (whether either is packed yet does not count).
    fn eq(&self, other: &Self) -> bool {
        self.weight == other.weight && self.bias == other.bias
    }
}

impl<const IN: usize, const OUT: usize> fmt::Debug for Linear<IN, OUT> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "Linear {{ weight: [{OUT}, {IN}], bias: {} }}",
            if self.bias.is_some() { "yes" } else { "no" }
        )
    }
}

impl<const IN: usize, const OUT: usize> Linear<IN, OUT> {
    fn of(weight: Tensor<[[f32; IN]; OUT]>, bias: Option<Tensor<[f32; OUT]>>) -> Self {
        Linear {
            weight,
            bias,
            packed: std::sync::OnceLock::new(),
        }
    }

    /// The weight as the product over many rows reads it, packed at the first call.
    pub(crate) fn packed(&self) -> &crate::project::Packed {
        self.packed
            .get_or_init(|| crate::project::Packed::new(self.weight.as_flattened(), IN, OUT))
    }

    /// A linear map from its weight and optional bias.
    ///
    /// ```
    /// use attn_runtime::{Linear, Tensor};
    /// let linear = Linear::<3, 2>::new(Tensor::zeros(), None);
    /// assert_eq!(linear.apply(&[1.0, 2.0, 3.0]), [0.0, 0.0]);
    /// ```
    pub fn new(weight: Tensor<[[f32; IN]; OUT]>, bias: Option<Tensor<[f32; OUT]>>) -> Self {
        Linear::of(weight, bias)
    }

    /// Copies the weight (`[OUT, IN]`, row-major) and the optional bias (`[OUT]`) of the
    /// linear map `name`; an error, naming `name.weight` or `name.bias` and both sizes, when a
    /// slice has the wrong length.
    ///
    /// ```
    /// use attn_runtime::Linear;
    /// let error = Linear::<2, 2>::from_slices("k_proj", &[0.0; 4], Some(&[0.0; 3])).unwrap_err();
    /// assert!(error.to_string().starts_with("`k_proj.bias` holds 3 values"));
    /// ```
    pub fn from_slices(
        name: &str,
        weight: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self, WeightError> {
        let weight = tensor_from(&format!("{name}.weight"), weight)?;
        let bias = match bias {
            Some(bias) => Some(tensor_from(&format!("{name}.bias"), bias)?),
            None => None,
        };
        Ok(Linear::of(weight, bias))
    }

    /// The weight, `[OUT, IN]`.
    ///
    /// ```
    /// let linear = attn_runtime::Linear::<1, 2>::from_slices("p", &[3.0, 4.0], None)?;
    /// assert_eq!(linear.weight(), &[[3.0], [4.0]]);
    /// # Ok::<(), attn_runtime::WeightError>(())
    /// ```
    pub fn weight(&self) -> &[[f32; IN]; OUT] {
        &self.weight
    }

    /// The bias, `[OUT]`, if the map has one.
    ///
    /// ```
    /// let linear = attn_runtime::Linear::<1, 1>::from_slices("p", &[1.0], Some(&[2.0]))?;
    /// assert_eq!(linear.bias(), Some(&[2.0]));
    /// # Ok::<(), attn_runtime::WeightError>(())
    /// ```
    pub fn bias(&self) -> Option<&[f32; OUT]> {
        self.bias.as_deref()
    }

    /// `W·x + b` for one input row.
    ///
    /// ```
    /// let linear = attn_runtime::Linear::<2, 1>::from_slices("p", &[1.0, -1.0], None)?;
    /// assert_eq!(linear.apply(&[5.0, 2.0]), [3.0]);
    /// # Ok::<(), attn_runtime::WeightError>(())
    /// ```
    pub fn apply(&self, x: &[f32; IN]) -> [f32; OUT] {
        let mut y = [[0.0; OUT]];
        crate::project::rows(std::slice::from_ref(x), self, &mut y);
        y[0]
    }

    /// `y[r] = W·x[r] + b` for every row `r` of `x`, as a layer projects its tokens: on the
    /// active instruction set and, with the `threads` feature, over threads when the work
    /// pays; each row's result is the one [`apply`](Self::apply) gives it. `y` must have as
    /// many rows as `x`, else a [`ShapeError`](crate::ShapeError) naming both sizes and
    /// nothing written.
    ///
    /// ```
    /// let double = attn_runtime::Linear::<1, 1>::from_slices("p", &[2.0], None)?;
    /// let mut y = [[0.0]; 3];
    /// double.apply_rows(&[[1.0], [2.0], [3.0]], &mut y)?;
    /// assert_eq!(y, [[2.0], [4.0], [6.0]]);
    /// assert_eq!(
    ///     double.apply_rows(&[[1.0]; 2], &mut y).unwrap_err().to_string(),
    ///     "a tensor of shape [2, 1] holds 2 values, but 3 were given"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply_rows(
        &self,
        x: &[[f32; IN]],
        y: &mut [[f32; OUT]],
    ) -> Result<(), crate::ShapeError> {
        if x.len() != y.len() {
            return Err(crate::ShapeError {
                shape: vec![x.len(), OUT],
                expected: x.len() * OUT,
                actual: y.len() * OUT,
            });
        }
        crate::project::rows(x, self, y);
        Ok(())
    }
}

/// A token embedding table: row `id` is the embedding of token `id`, `[VOCAB, DM]`, as
/// PyTorch's `nn.Embedding` stores it.
///
/// ```
/// use attn_runtime::{Embedding, TokenError};
/// let table = Embedding::<3, 2>::from_slice("embed", &[0.0, 0.0, 1.0, 1.0, 2.0, 2.0])?;
/// let x = table.embed(&[[2, 0]]).unwrap();
/// assert_eq!(*x, [[[2.0, 2.0], [0.0, 0.0]]]);
/// assert_eq!(
///     table.embed(&[[1, 7]]).unwrap_err(),
///     TokenError { batch_entry: 0, position: 1, id: 7, vocabulary: 3 }
/// );
/// # Ok::<(), attn_runtime::WeightError>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct Embedding<const VOCAB: usize, const DM: usize> {
    table: Tensor<[[f32; DM]; VOCAB]>,
}

impl<const VOCAB: usize, const DM: usize> fmt::Debug for Embedding<VOCAB, DM> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Embedding {{ table: [{VOCAB}, {DM}] }}")
    }
}

/// A token id past the end of the embedding table, and where it was.
///
/// ```
/// let error = attn_runtime::TokenError { batch_entry: 1, position: 4, id: 900, vocabulary: 512 };
/// assert_eq!(
///     error.to_string(),
///     "token 4 of batch entry 1 has id 900, but the vocabulary has 512 tokens (ids 0..512)"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenError {
    /// The batch entry of the id.
    pub batch_entry: usize,
    /// Its position in the sequence.
    pub position: usize,
    /// The id.
    pub id: u32,
    /// The number of tokens in the table.
    pub vocabulary: usize,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "token {} of batch entry {} has id {}, but the vocabulary has {} tokens (ids 0..{})",
            self.position, self.batch_entry, self.id, self.vocabulary, self.vocabulary
        )
    }
}

impl std::error::Error for TokenError {}

impl<const VOCAB: usize, const DM: usize> Embedding<VOCAB, DM> {
    /// A table from its rows.
    ///
    /// ```
    /// use attn_runtime::{Embedding, Tensor};
    /// let table = Embedding::<4, 8>::new(Tensor::zeros());
    /// assert_eq!(table.table()[3], [0.0; 8]);
    /// ```
    pub fn new(table: Tensor<[[f32; DM]; VOCAB]>) -> Self {
        Embedding { table }
    }

    /// Copies the table `[VOCAB, DM]`, row-major; an error naming `name` and both sizes when
    /// `values` has the wrong length.
    ///
    /// ```
    /// let error = attn_runtime::Embedding::<4, 2>::from_slice("wte", &[0.0; 6]).unwrap_err();
    /// assert!(error.to_string().starts_with("`wte` holds 6 values"));
    /// ```
    pub fn from_slice(name: &str, values: &[f32]) -> Result<Self, WeightError> {
        Ok(Embedding {
            table: tensor_from(name, values)?,
        })
    }

    /// The table, `[VOCAB, DM]`.
    ///
    /// ```
    /// let table = attn_runtime::Embedding::<1, 2>::from_slice("e", &[1.0, 2.0])?;
    /// assert_eq!(table.table(), &[[1.0, 2.0]]);
    /// # Ok::<(), attn_runtime::WeightError>(())
    /// ```
    pub fn table(&self) -> &[[f32; DM]; VOCAB] {
        &self.table
    }

    /// The embeddings `x` `[B, N, DM]` of token ids `[B, N]`; an error naming the first id
    /// out of range and where it is.
    ///
    /// ```
    /// let table = attn_runtime::Embedding::<2, 1>::from_slice("e", &[5.0, 6.0])?;
    /// assert_eq!(*table.embed(&[[1, 1, 0]]).unwrap(), [[[6.0], [6.0], [5.0]]]);
    /// # Ok::<(), attn_runtime::WeightError>(())
    /// ```
    pub fn embed<const B: usize, const N: usize>(
        &self,
        ids: &[[u32; N]; B],
    ) -> Result<Tensor<[[[f32; DM]; N]; B]>, TokenError> {
        let mut x = Tensor::zeros();
        self.embed_into(ids, &mut x)?;
        Ok(x)
    }

    /// Writes the embeddings of `ids` into `x`; on an id out of range, an error and nothing
    /// written.
    ///
    /// ```
    /// let table = attn_runtime::Embedding::<2, 1>::from_slice("e", &[5.0, 6.0])?;
    /// let mut x = [[[9.0f32; 1]; 2]; 1];
    /// assert!(table.embed_into(&[[0, 2]], &mut x).is_err());
    /// assert_eq!(x, [[[9.0], [9.0]]], "nothing half-written");
    /// # Ok::<(), attn_runtime::WeightError>(())
    /// ```
    pub fn embed_into<const B: usize, const N: usize>(
        &self,
        ids: &[[u32; N]; B],
        x: &mut [[[f32; DM]; N]; B],
    ) -> Result<(), TokenError> {
        for (batch_entry, row) in ids.iter().enumerate() {
            for (position, &id) in row.iter().enumerate() {
                if id as usize >= VOCAB {
                    return Err(TokenError {
                        batch_entry,
                        position,
                        id,
                        vocabulary: VOCAB,
                    });
                }
            }
        }
        for (row, out) in ids.iter().zip(x.iter_mut()) {
            for (&id, out) in row.iter().zip(out.iter_mut()) {
                *out = self.table[id as usize];
            }
        }
        Ok(())
    }
}

/// Loading from safetensors files (the `safetensors` feature).
#[cfg(feature = "safetensors")]
mod from_file {
    use super::{Embedding, Linear, WeightError};
    use crate::tensor::{Array, Tensor};
    pub use ::safetensors::SafeTensors;
    use ::safetensors::{Dtype, SafeTensorError};

    /// The f32 tensor `name` of `file`, of shape `A` (a LayerNorm's `[384]`, a table's
    /// `[512, 384]`): a missing tensor, another shape or another element type is a
    /// [`WeightError`] naming the tensor (and both shapes).
    ///
    /// ```
    /// use attn_runtime::{WeightError, safetensors::{from_bytes, load, serialize_f32}};
    /// let bytes = serialize_f32([("norm.weight", vec![3], &[1.0f32, 2.0, 3.0][..])])?;
    /// let file = from_bytes(&bytes)?;
    /// assert_eq!(*load::<[f32; 3]>(&file, "norm.weight")?, [1.0, 2.0, 3.0]);
    /// assert_eq!(
    ///     load::<[f32; 4]>(&file, "norm.weight").unwrap_err().to_string(),
    ///     "`norm.weight` has shape [3], but the layer expects [4]"
    /// );
    /// # Ok::<(), WeightError>(())
    /// ```
    pub fn load<A: Array<Element = f32>>(
        file: &SafeTensors,
        name: &str,
    ) -> Result<Tensor<A>, WeightError> {
        let view = file.tensor(name).map_err(|error| match error {
            SafeTensorError::TensorNotFound(_) => WeightError::Missing {
                tensor: name.to_owned(),
            },
            other => WeightError::File(other.to_string()),
        })?;
        if view.dtype() != Dtype::F32 {
            return Err(WeightError::DType {
                tensor: name.to_owned(),
                dtype: format!("{:?}", view.dtype()),
            });
        }
        if view.shape() != A::dims() {
            return Err(WeightError::Shape {
                tensor: name.to_owned(),
                expected: A::dims(),
                actual: view.shape().to_vec(),
            });
        }
        // The data is little-endian and need not be aligned for f32.
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        super::tensor_from(name, &values)
    }

    impl<const IN: usize, const OUT: usize> Linear<IN, OUT> {
        /// Loads `name.weight` (`[OUT, IN]`) and, if the file has it, `name.bias` (`[OUT]`),
        /// f32 as PyTorch saves an `nn.Linear`.
        ///
        /// ```
        /// use attn_runtime::{Linear, WeightError, safetensors::from_bytes};
        /// let bytes = attn_runtime::safetensors::serialize_f32([("q.weight", vec![2, 3], &[0.0f32; 6][..])])?;
        /// let file = from_bytes(&bytes)?;
        /// assert!(Linear::<3, 2>::from_safetensors(&file, "q")?.bias().is_none());
        /// assert_eq!(
        ///     Linear::<2, 3>::from_safetensors(&file, "q").unwrap_err().to_string(),
        ///     "`q.weight` has shape [2, 3], but the layer expects [3, 2] ([out, in])"
        /// );
        /// # Ok::<(), WeightError>(())
        /// ```
        pub fn from_safetensors(file: &SafeTensors, name: &str) -> Result<Self, WeightError> {
            let weight = load(file, &format!("{name}.weight"))?;
            let bias_name = format!("{name}.bias");
            let bias = match file.names().contains(&bias_name.as_str()) {
                true => Some(load(file, &bias_name)?),
                false => None,
            };
            Ok(Linear::of(weight, bias))
        }
    }

    impl<const VOCAB: usize, const DM: usize> Embedding<VOCAB, DM> {
        /// Loads the table `name` (`[VOCAB, DM]`, f32).
        ///
        /// ```
        /// use attn_runtime::{Embedding, WeightError, safetensors::from_bytes};
        /// let bytes = attn_runtime::safetensors::serialize_f32([("wte", vec![2, 2], &[1.0f32, 2.0, 3.0, 4.0][..])])?;
        /// let file = from_bytes(&bytes)?;
        /// assert_eq!(Embedding::<2, 2>::from_safetensors(&file, "wte")?.table()[1], [3.0, 4.0]);
        /// assert!(matches!(
        ///     Embedding::<2, 2>::from_safetensors(&file, "embed"),
        ///     Err(WeightError::Missing { .. })
        /// ));
        /// # Ok::<(), WeightError>(())
        /// ```
        pub fn from_safetensors(file: &SafeTensors, name: &str) -> Result<Self, WeightError> {
            Ok(Embedding {
                table: load(file, name)?,
            })
        }
    }

    /// The safetensors file in `bytes`, read in place: a truncated or malformed file (its
    /// header, its offsets, a shape whose element count overflows) is a
    /// [`WeightError::File`] that says what is wrong.
    ///
    /// ```
    /// use attn_runtime::{Embedding, WeightError};
    /// use attn_runtime::safetensors::{from_bytes, serialize_f32};
    /// let bytes = serialize_f32([("wte", vec![2, 2], &[1.0f32, 2.0, 3.0, 4.0][..])])?;
    /// let table = Embedding::<2, 2>::from_safetensors(&from_bytes(&bytes)?, "wte")?;
    /// assert_eq!(table.table()[1], [3.0, 4.0]);
    /// assert!(matches!(from_bytes(&bytes[..10]), Err(WeightError::File(_))));
    /// # Ok::<(), WeightError>(())
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<SafeTensors<'_>, WeightError> {
        SafeTensors::deserialize(bytes).map_err(|error| WeightError::File(error.to_string()))
    }

    /// A safetensors file holding these named f32 tensors, each `(name, shape, values)`:
    /// what a program writes to save weights that the loaders above read back.
    ///
    /// ```
    /// let bytes = attn_runtime::safetensors::serialize_f32([("b", vec![1], &[2.5f32][..])])?;
    /// let file = attn_runtime::safetensors::from_bytes(&bytes)?;
    /// assert_eq!(file.tensor("b").unwrap().shape(), &[1]);
    /// # Ok::<(), attn_runtime::WeightError>(())
    /// ```
    pub fn serialize_f32<'a>(
        tensors: impl IntoIterator<Item = (&'a str, Vec<usize>, &'a [f32])>,
    ) -> Result<Vec<u8>, WeightError> {
        let bytes: Vec<(&str, Vec<usize>, Vec<u8>)> = tensors
            .into_iter()
            .map(|(name, shape, values)| {
                let data = values.iter().flat_map(|x| x.to_le_bytes()).collect();
                (name, shape, data)
            })
            .collect();
        let mut views = Vec::new();
        for (name, shape, data) in &bytes {
            let wrong_length = || WeightError::Length {
                tensor: (*name).to_owned(),
                expected: shape.clone(),
                actual: data.len() / 4,
            };
            // The shape's element count, checked here: safetensors multiplies it unchecked.
            let values = shape
                .iter()
                .try_fold(1usize, |n, &axis| n.checked_mul(axis))
                .ok_or_else(wrong_length)?;
            if values.checked_mul(4) != Some(data.len()) {
                return Err(wrong_length());
            }
            let view = ::safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                .map_err(|_| wrong_length())?;
            views.push((*name, view));
        }
        ::safetensors::serialize(views, None).map_err(|error| WeightError::File(error.to_string()))
    }
}

/// Weights from safetensors files: [`from_bytes`](safetensors::from_bytes) to read a file,
/// [`Linear::from_safetensors`], [`Embedding::from_safetensors`], [`load`](safetensors::load)
/// for any other f32 tensor, and
/// [`serialize_f32`](safetensors::serialize_f32) to write them (the `safetensors` feature).
#[cfg(feature = "safetensors")]
pub mod safetensors {
    pub use super::from_file::{SafeTensors, from_bytes, load, serialize_f32};
}
