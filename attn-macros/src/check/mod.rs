//! Every rule of docs/DESIGN.md section 3, applied to one parsed kernel: the stage between the
//! user's declaration (`ast.rs`) and the checked model (`model.rs`).
//!
//! The checker reports every violation it finds, each at the token that caused it, and
//! returns a [`Kernel`] only when there is none. By file:
//!
//! | file | rules |
//! |---|---|
//! | `mod.rs` | the tensors (q, k, v, and a layer's x and out), their order and ranks |
//! | `options.rs` | each `#[attn(..)]` option's value, and options given twice |
//! | `names.rs` | sizes, the `where` clause, and the names it binds or leaves to const generics |
//! | `rules.rs` | the axes that must agree, masks and biases, causal masks, grouped heads, sizes that fit |
//! | `layer.rs` | the layer form's ranks and model sizes |

mod layer;
mod names;
mod options;
mod rules;

use crate::ast::{KernelDecl, TensorDecl};
use crate::errors::Errors;
use crate::model::{Causal, Dim, Dtype, Kernel, Layer, Size};
use layer::{layer_ranks, model_sizes};
use names::{Names, Resolved, Value, bindings};
use rules::{agreement, broadcast_shape, fits, grouped_heads, scratch, square};
use syn::Ident;

pub use options::options;

/// The three tensors of attention.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Role {
    Q,
    K,
    V,
    /// The layer form's embeddings.
    X,
    /// The layer form's output, after the output projection.
    Out,
}

impl Role {
    /// The tensors of attention, which every kernel declares.
    const ALL: [Role; 3] = [Role::Q, Role::K, Role::V];
    /// Every tensor, in the order they are declared.
    const DECLARED: [Role; 5] = [Role::X, Role::Q, Role::K, Role::V, Role::Out];

    pub(super) fn name(self) -> &'static str {
        match self {
            Role::Q => "q",
            Role::K => "k",
            Role::V => "v",
            Role::X => "x",
            Role::Out => "out",
        }
    }

    fn from_ident(ident: &Ident) -> Option<Role> {
        Role::DECLARED.into_iter().find(|role| ident == role.name())
    }

    /// How the user would write this tensor in a kernel of `rank`.
    pub(super) fn example(self, rank: usize) -> &'static str {
        match (self, rank) {
            (Role::Q, 4) => "q: [B, H, Nq, Dk]",
            (Role::K, 4) => "k: [B, H, Nk, Dk]",
            (Role::V, 4) => "v: [B, H, Nk, Dv]",
            (Role::Q, _) => "q: [B, Nq, Dk]",
            (Role::K, _) => "k: [B, Nk, Dk]",
            (Role::V, _) => "v: [B, Nk, Dv]",
            (Role::X, _) => "x: [B, N, Dm]",
            (Role::Out, _) => "out: [B, N, Dm]",
        }
    }
}

/// The size of `f32`, the element type of layers and of the weights.
pub(super) const ELEMENT_BYTES: u64 = 4;

/// Checks one kernel, reporting every violation into `errors`.
pub fn kernel(decl: &KernelDecl, errors: &mut Errors) -> Option<Kernel> {
    not_a_primitive(&decl.name, errors);
    let options = options(&decl.options, errors);
    let attrs = decl.attrs.clone();
    let tensors = tensors(decl, errors);
    let bindings = bindings(&decl.bindings, errors);
    let mut names = Names::new(bindings);
    let mut resolved = Vec::new();
    for (role, tensor) in &tensors {
        resolved.push((*role, *tensor, names.resolve_dims(tensor, errors)));
    }
    names.report_unused(&decl.bindings, &tensors, errors);

    // The layer form's tensors, then attention's three, which every kernel declares.
    let mut take = |role: Role| {
        let at = resolved.iter().position(|(r, _, _)| *r == role)?;
        let (_, decl, shape) = resolved.remove(at);
        Some((decl, shape))
    };
    let (x, layer_out) = (take(Role::X), take(Role::Out));
    let [(q_decl, q), (k_decl, k), (v_decl, v)] = [take(Role::Q)?, take(Role::K)?, take(Role::V)?];
    let rank = ranks(
        &[(Role::Q, q_decl), (Role::K, k_decl), (Role::V, v_decl)],
        errors,
    )?;
    if let Some((x_decl, _)) = &x {
        layer_ranks(
            rank,
            q_decl,
            x_decl,
            layer_out.as_ref().map(|(d, _)| *d),
            errors,
        )?;
    }
    let mut shapes = [
        q,
        k,
        v,
        x.as_ref()
            .map(|(_, shape)| shape.clone())
            .unwrap_or_default(),
        layer_out
            .as_ref()
            .map(|(_, shape)| shape.clone())
            .unwrap_or_default(),
    ];
    agreement(&mut shapes, &mut names, errors);
    if x.is_some() {
        model_sizes(&shapes, &options, errors);
        if let Some((dtype, span)) = options.dtype
            && dtype != Dtype::F32
        {
            errors.at(
                span,
                format!("a layer computes in f32 in this version, not in {}", dtype.name()),
                "remove `dtype` from the layer, or declare its attention alone (q, k, v) with the dtype",
            );
        }
    }
    if let Some(span) = options.backward
        && x.is_some()
    {
        errors.at(
            span,
            "the layer form has no backward pass in this version",
            "declare the attention alone (q, k, v) with `backward`, and the projections \
                 around it in your training code",
        );
    }
    // Bytes per value of q, k, v and the output, counting the f32 copies that 16-bit
    // kernels widen them to; of the weights, the log-sum-exp and a bias (f64 or f32).
    let dtype = options.dtype.map_or(Dtype::F32, |(dtype, _)| dtype);
    let element = dtype.bytes().max(4);
    let computed = if dtype == Dtype::F64 { 8 } else { 4 };
    if rank == 4 {
        grouped_heads(&shapes[0][1], &shapes[1][1], errors);
    }
    if let (Some((_, span)), None) = (options.window, options.causal) {
        errors.at(
            span,
            "`window` needs `causal`: the window is the most recent keys of each query",
            "add `causal` (or `causal(top_left)`, `causal(bottom_right)`) beside `window`",
        );
    }
    if let Some((Causal::Square, span)) = options.causal {
        square(&shapes[0][rank - 2], &shapes[1][rank - 2], span, errors);
    }
    let decls = [q_decl, k_decl, v_decl];
    for (role, (shape, decl)) in Role::ALL.iter().zip(shapes.iter().zip(decls)) {
        fits(
            role.name(),
            shape,
            element,
            decl.bracket.span.join(),
            errors,
        );
    }
    let attention_shapes = [shapes[0].clone(), shapes[1].clone(), shapes[2].clone()];
    let extras = [&options.mask, &options.bias].map(|extra| {
        extra
            .as_ref()
            .and_then(|tensor| broadcast_shape(tensor, rank, &attention_shapes, &mut names, errors))
    });
    let [q, k, v, x_shape, out_shape] = shapes;
    let mut out = q[..rank - 1].to_vec();
    out.push(v[rank - 1].clone());
    fits(
        "the output",
        &out,
        element,
        q_decl.bracket.span.join(),
        errors,
    );
    // The arrays the options add, each at the option that adds it.
    let rows = &q[..rank - 1];
    if let Some(span) = options.return_weights {
        let mut weights = rows.to_vec();
        weights.push(k[rank - 2].clone());
        fits("the attention weights", &weights, computed, span, errors);
    }
    if let Some(span) = options.return_lse {
        fits("the log-sum-exp", rows, computed, span, errors);
    }
    for ((what, bytes, declared), shape) in [
        ("`mask`", 1, &options.mask),
        ("`bias`", computed, &options.bias),
    ]
    .into_iter()
    .zip(&extras)
    {
        if let (Some(tensor), Some(shape)) = (declared, shape) {
            fits(what, shape, bytes, tensor.bracket.span.join(), errors);
        }
    }
    for (what, shape, tensor) in [
        ("`x`", &x_shape, x.as_ref().map(|(decl, _)| *decl)),
        (
            "`out`",
            &out_shape,
            layer_out.as_ref().map(|(decl, _)| *decl),
        ),
    ] {
        if let Some(tensor) = tensor {
            fits(what, shape, 4, tensor.bracket.span.join(), errors);
        }
    }
    // The scratch follows from a plan, which only a kernel without other errors has.
    if errors.is_empty() && dtype != Dtype::F64 {
        scratch(
            [&q[rank - 1], &v[rank - 1]],
            &q[rank - 2],
            &k[rank - 2],
            errors,
        );
    }

    if !errors.is_empty() {
        return None;
    }
    let mut generics: Vec<Ident> = Vec::new();
    let mut finish = |shape: Vec<Resolved>| -> Option<Vec<Dim>> {
        shape
            .into_iter()
            .map(|dim| {
                let size = match dim.value {
                    Value::Known(n) => Size::Known(n),
                    Value::Unbound(name) => {
                        if !generics.contains(&name) {
                            generics.push(name.clone());
                        }
                        Size::Generic(name)
                    }
                    Value::Poison => return None,
                };
                Some(Dim {
                    size,
                    span: dim.span,
                })
            })
            .collect()
    };
    let (q, k, v) = (finish(q)?, finish(k)?, finish(v)?);
    let [mask, bias] = extras.map(|extra| extra.and_then(&mut finish));
    let layer = match &x {
        Some((x_decl, _)) => Some(Layer {
            x: finish(x_shape)?,
            out: if layer_out.is_some() {
                Some(finish(out_shape)?)
            } else {
                None
            },
            x_role: x_decl.role.clone(),
            features: layer_features(&q, &k, &v),
            merged: product(&q[1].size, &v[3].size),
        }),
        None => None,
    };
    Some(Kernel {
        attrs,
        vis: decl.vis.clone(),
        name: decl.name.clone(),
        options,
        q,
        k,
        v,
        generics,
        mask,
        bias,
        layer,
        roles: [
            q_decl.role.clone(),
            k_decl.role.clone(),
            v_decl.role.clone(),
        ],
    })
}

/// q, k and v each exactly once, in that order, and nothing else.
fn tensors<'a>(decl: &'a KernelDecl, errors: &mut Errors) -> Vec<(Role, &'a TensorDecl)> {
    let mut found: Vec<(Role, &TensorDecl)> = Vec::new();
    let mut unknown = Vec::new();
    for tensor in &decl.tensors {
        match Role::from_ident(&tensor.role) {
            Some(role) => match found.iter().find(|(seen, _)| *seen == role) {
                Some(_) => errors.at(
                    tensor.role.span(),
                    format!("`{}` is declared twice", role.name()),
                    "declare each tensor once",
                ),
                None => found.push((role, tensor)),
            },
            None => unknown.push(tensor),
        }
    }
    let rank = decl
        .tensors
        .iter()
        .find(|t| t.role != "x")
        .map_or(3, |t| t.dims.len());
    let mut missing: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|role| found.iter().all(|(seen, _)| seen != role))
        .collect();
    for tensor in unknown {
        let help = if missing.is_empty() {
            "attention takes q, k and v (and, as a layer, x and out); remove this tensor".to_owned()
        } else {
            // The likeliest reading of an unknown tensor is the missing one: say so once,
            // rather than reporting a missing tensor as well.
            let role = missing.remove(0);
            format!(
                "did you mean `{}`? attention takes exactly q, k and v, and `{}` is missing",
                role.name(),
                role.name()
            )
        };
        errors.at(
            tensor.role.span(),
            format!("unknown tensor `{}`", tensor.role),
            help,
        );
    }
    for role in missing {
        errors.at(
            decl.close_angle,
            format!(
                "kernel `{}` declares no `{}` tensor",
                decl.name,
                role.name()
            ),
            format!("add `{}`", role.example(rank)),
        );
    }
    if let Some((_, out)) = found.iter().find(|(role, _)| *role == Role::Out)
        && found.iter().all(|(role, _)| *role != Role::X)
    {
        errors.at(
            out.role.span(),
            "`out` is the output of a layer, and this kernel declares no embeddings `x`",
            "declare `x: [B, N, Dm]` first to make a layer (x projected to q, k and v, the \
             heads merged and projected to out), or remove `out`",
        );
    }
    if errors.is_empty() {
        let order: Vec<Role> = found.iter().map(|(role, _)| *role).collect();
        let expected: Vec<Role> = Role::DECLARED
            .into_iter()
            .filter(|role| order.contains(role))
            .collect();
        if order != expected {
            let (_, first) = found[0];
            let names = |roles: &[Role]| {
                roles
                    .iter()
                    .map(|r| r.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            errors.at(
                first.role.span(),
                format!("the tensors are declared in the order {}", names(&order)),
                format!(
                    "declare them as {}: the generated function takes its arguments in that order",
                    names(&expected)
                ),
            );
        }
    }
    found.sort_by_key(|(role, _)| Role::DECLARED.iter().position(|r| r == role));
    found
}

/// All three tensors have one rank, 3 or 4.
fn ranks(tensors: &[(Role, &TensorDecl); 3], errors: &mut Errors) -> Option<usize> {
    let mut ok = true;
    for (role, tensor) in tensors {
        let rank = tensor.dims.len();
        if rank != 3 && rank != 4 {
            ok = false;
            errors.at(
                tensor.bracket.span.join(),
                format!(
                    "`{}` has rank {rank}, but attention tensors have rank 3 or 4",
                    role.name()
                ),
                format!(
                    "write `{}` (rank 3) or `{}` (rank 4)",
                    role.example(3),
                    role.example(4)
                ),
            );
        }
    }
    if !ok {
        return None;
    }
    let (_, q) = tensors[0];
    for (role, tensor) in &tensors[1..] {
        if tensor.dims.len() != q.dims.len() {
            ok = false;
            errors.at(
                tensor.bracket.span.join(),
                format!(
                    "`{}` has rank {} but `q` has rank {}",
                    role.name(),
                    tensor.dims.len(),
                    q.dims.len()
                ),
                "q, k and v are all rank 3, `[batch, sequence, depth]`, or all rank 4, `[batch, heads, sequence, depth]`",
            );
        }
    }
    ok.then_some(q.dims.len())
}

/// The heads times the depth: a layer's model sizes are all known (`layer.rs` checks it).
fn product(heads: &Size, depth: &Size) -> Size {
    match (heads, depth) {
        (Size::Known(h), Size::Known(d)) => Size::Known(h.saturating_mul(*d)),
        // Not reached for a checked layer, whose model sizes are known.
        (Size::Generic(name), _) | (_, Size::Generic(name)) => Size::Generic(name.clone()),
    }
}

/// The output features of a layer's `query`, `key` and `value` projections.
fn layer_features(q: &[Dim], k: &[Dim], v: &[Dim]) -> [Dim; 3] {
    [(&q[1], &q[3]), (&k[1], &q[3]), (&k[1], &v[3])].map(|(heads, depth)| Dim {
        size: product(&heads.size, &depth.size),
        span: heads.span,
    })
}

/// The primitive types, which a kernel's facts module `name` would hide inside the crate.
const PRIMITIVES: &[&str] = &[
    "bool", "char", "str", "f16", "f32", "f64", "f128", "i8", "i16", "i32", "i64", "i128", "isize",
    "u8", "u16", "u32", "u64", "u128", "usize",
];

/// A kernel named `f32` defines a module `f32`, which then hides the primitive type `f32`
/// wherever the kernel's scope names it, its own signatures included.
fn not_a_primitive(name: &Ident, errors: &mut Errors) {
    let text = syn::ext::IdentExt::unraw(name).to_string();
    if PRIMITIVES.contains(&text.as_str()) {
        errors.at(
            name.span(),
            format!("a kernel named `{text}` would hide the primitive type `{text}`"),
            "each kernel defines a module of its name: give the kernel another name",
        );
    }
}
