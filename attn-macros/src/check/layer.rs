//! The layer form's rules: the ranks of `x` and `out`, heads on q, k and v, and model sizes
//! that are known and fit in memory.

use super::names::{Resolved, Value};
use super::rules::MAX_ARRAY_BYTES;
use super::{ELEMENT_BYTES, Role};
use crate::ast::TensorDecl;
use crate::errors::Errors;
use crate::model::Options;

/// The layer form's ranks: x and out are `[batch, tokens, width]`, and q, k and v have heads.
pub(super) fn layer_ranks(
    rank: usize,
    q: &TensorDecl,
    x: &TensorDecl,
    out: Option<&TensorDecl>,
    errors: &mut Errors,
) -> Option<()> {
    let mut ok = true;
    for (role, tensor) in [(Role::X, Some(x)), (Role::Out, out)] {
        if let Some(tensor) = tensor
            && tensor.dims.len() != 3
        {
            ok = false;
            errors.at(
                tensor.bracket.span.join(),
                format!(
                    "`{}` has rank {}, but a layer's `{}` is `[batch, tokens, width]`",
                    role.name(),
                    tensor.dims.len(),
                    role.name()
                ),
                format!("write `{}`", role.example(3)),
            );
        }
    }
    if rank != 4 {
        ok = false;
        errors.at(
            q.bracket.span.join(),
            "a layer splits `x` into heads, but `q` has no heads axis",
            "declare q, k and v with their heads: `q: [B, H, N, Dh], k: [B, H, N, Dh], v: [B, H, N, Dh]`",
        );
    }
    ok.then_some(())
}

/// The sizes of a layer's weights are known: the model width, the heads and their depths,
/// and the output width. With `split_heads`, the model width is the heads times their depth.
pub(super) fn model_sizes(shapes: &[Vec<Resolved>; 5], options: &Options, errors: &mut Errors) {
    let [q, k, v, x, out] = shapes;
    let mut sizes = vec![
        (&x[2], "`x`'s model width"),
        (&q[1], "`q`'s heads"),
        (&k[1], "`k`'s heads"),
        (&q[3], "`q`'s depth"),
        (&v[3], "`v`'s depth"),
    ];
    if let Some(width) = out.get(2) {
        sizes.push((width, "`out`'s width"));
    }
    for (dim, what) in sizes {
        if let (Value::Unbound(name), Some(_)) = (&dim.value, &dim.name) {
            errors.at(
                dim.span,
                format!("{what} `{name}` is a size of the layer's weights, so it must be known"),
                format!(
                    "bind it in the `where` clause, such as `{name} = 64`, or write the number"
                ),
            );
        }
    }
    // Each weight matrix fits in memory: `[heads·depth, width]` and the like.
    let known = |dim: &Resolved| match dim.value {
        Value::Known(n) => Some(n),
        _ => None,
    };
    let features = |heads: &Resolved, depth: &Resolved| known(heads)?.checked_mul(known(depth)?);
    let width = known(&x[2]);
    for (what, outputs) in [
        ("`query`", features(&q[1], &q[3])),
        ("`key`", features(&k[1], &q[3])),
        ("`value`", features(&k[1], &v[3])),
    ] {
        let bytes = width
            .zip(outputs)
            .and_then(|(w, o)| w.checked_mul(o)?.checked_mul(ELEMENT_BYTES));
        if width.is_some() && outputs.is_some() && bytes.is_none_or(|b| b > MAX_ARRAY_BYTES) {
            errors.at(
                x[2].span,
                format!("the {what} weights of this layer would not fit in memory"),
                "use a smaller model width, fewer heads or shallower heads",
            );
        }
    }
    if options.split_heads.is_some()
        && let (Value::Known(width), Value::Known(heads), Value::Known(depth)) =
            (&x[2].value, &q[1].value, &q[3].value)
        && heads.checked_mul(*depth) != Some(*width)
    {
        errors.at(
            q[3].span,
            format!(
                "`split_heads`: `x`'s model width {} is not `q`'s {} heads times their depth {}",
                x[2], q[1], q[3]
            ),
            if width % heads == 0 {
                format!(
                    "with `split_heads` each head has depth width / heads: give q the depth {}, \
                     or remove `split_heads` if the model's heads do not split its width",
                    width / heads
                )
            } else {
                format!(
                    "{width} features do not split into {heads} equal heads: choose a head count \
                     that divides the width, or remove `split_heads`"
                )
            },
        );
    }
}
