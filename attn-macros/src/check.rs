//! Every rule of DESIGN section 3, applied to one parsed kernel.
//!
//! The checker reports every violation it finds, each at the token that caused it, and
//! returns a [`Kernel`] only when there is none. A `Kernel` is therefore valid by
//! construction: `plan.rs` and `emit.rs` take it and cannot fail.

use crate::ast::{Binding, DimToken, KernelDecl, SizeToken, TensorDecl};
use crate::emit::RESERVED_NAMES;
use crate::errors::Errors;
use crate::options::{self, Causal, Options, edit_distance};
use proc_macro2::Span;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use syn::{Attribute, Ident, Visibility};

/// A checked kernel: three tensors of one rank whose shared axes agree.
pub struct Kernel {
    /// Doc comments and ordinary attributes, passed through to the generated functions.
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub options: Options,
    /// q's dimensions, `[batch, (heads,) queries, depth]`, each with the user's span.
    pub q: Vec<Dim>,
    /// k's dimensions, `[batch, (heads,) keys, depth]`.
    pub k: Vec<Dim>,
    /// v's dimensions, `[batch, (heads,) keys, value depth]`.
    pub v: Vec<Dim>,
    /// The names left unbound, in order of first appearance: the const generic parameters.
    pub generics: Vec<Ident>,
    /// The `mask = [..]` option's shape `[batch, (heads,) queries, keys]`: each axis the
    /// kernel's size or 1 (broadcast).
    pub mask: Option<Vec<Dim>>,
    /// The `bias = [..]` option's shape, as the mask's.
    pub bias: Option<Vec<Dim>>,
    /// The layer form's embeddings and output projection, when the kernel declares `x`.
    pub layer: Option<Layer>,
    /// The user's `q`, `k` and `v` tokens: the generated parameters carry their spans, so
    /// that rustc's note on a wrongly shaped argument shows the tensor's declaration.
    pub roles: [Ident; 3],
}

/// The layer form: `x` `[batch, tokens, model width]` is projected to q, k and v (split into
/// heads), and the merged heads go through an output projection to `out` when it is declared.
/// Every model size (the width, the heads, the depths) is known.
#[derive(Clone)]
pub struct Layer {
    /// x's dimensions, `[batch, tokens, model width]`.
    pub x: Vec<Dim>,
    /// out's dimensions, `[batch, tokens, output width]`, when there is an output projection.
    pub out: Option<Vec<Dim>>,
    /// The user's `x` token.
    pub x_role: Ident,
}

/// The size of one axis after checking.
#[derive(Clone)]
pub enum Size {
    Known(u64),
    /// An unbound name: a const generic parameter of the generated function.
    Generic(Ident),
}

/// One dimension of a checked tensor: its size and the span of the user's token.
#[derive(Clone)]
pub struct Dim {
    pub size: Size,
    pub span: Span,
}

impl Kernel {
    /// 3 for `[batch, sequence, depth]`, 4 for `[batch, heads, sequence, depth]`.
    pub fn rank(&self) -> usize {
        self.q.len()
    }
    pub fn batch(&self) -> &Size {
        &self.q[0].size
    }
    /// The query heads of a rank-4 kernel.
    pub fn heads(&self) -> Option<&Size> {
        (self.rank() == 4).then(|| &self.q[1].size)
    }
    /// The key/value heads of a rank-4 kernel: a divisor of the query heads.
    pub fn kv_heads(&self) -> Option<&Size> {
        (self.rank() == 4).then(|| &self.k[1].size)
    }
    pub fn queries(&self) -> &Size {
        &self.q[self.rank() - 2].size
    }
    pub fn keys(&self) -> &Size {
        &self.k[self.rank() - 2].size
    }
    pub fn depth(&self) -> &Size {
        &self.q[self.rank() - 1].size
    }
    pub fn value_depth(&self) -> &Size {
        &self.v[self.rank() - 1].size
    }
    /// The attention weights' dimensions, `[batch, (heads,) queries, keys]`.
    pub fn weights(&self) -> Vec<Dim> {
        let mut weights = self.q[..self.rank() - 1].to_vec();
        weights.push(self.k[self.rank() - 2].clone());
        weights
    }
    /// The output's dimensions, `[batch, (heads,) queries, value depth]`, with the spans of
    /// the q and v tokens they come from.
    pub fn out(&self) -> Vec<Dim> {
        let mut out = self.q[..self.rank() - 1].to_vec();
        out.push(self.v[self.rank() - 1].clone());
        out
    }
}

/// The three tensors of attention.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
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

    fn name(self) -> &'static str {
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
    fn example(self, rank: usize) -> &'static str {
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
const ELEMENT_BYTES: u64 = 4;

/// Checks one kernel, reporting every violation into `errors`.
pub fn kernel(decl: &KernelDecl, errors: &mut Errors) -> Option<Kernel> {
    let (options, attrs) = options::parse(&decl.attrs, errors);
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
            && dtype != options::Dtype::F32
        {
            errors.at(
                span,
                format!("a layer computes in f32 in this version, not in {}", dtype.name()),
                "remove `dtype` from the layer, or declare its attention alone (q, k, v) with the dtype",
            );
        }
    }
    let element = options.dtype.map_or(4, |(dtype, _)| dtype.bytes());
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

/// A checked size, or the error at its token.
fn size(token: &SizeToken, errors: &mut Errors) -> Option<u64> {
    let (span, text) = match token {
        SizeToken::Int(lit) => {
            if !matches!(lit.suffix(), "" | "usize") {
                errors.at(
                    lit.span(),
                    format!("`{lit}` has the suffix `{}`", lit.suffix()),
                    format!("write the size without a suffix: `{}`", lit.base10_digits()),
                );
                return None;
            }
            match lit.base10_digits().parse::<u64>() {
                Ok(0) => {
                    errors.at(
                        lit.span(),
                        "a size of 0 leaves nothing to attend over",
                        "sizes are positive integers, such as `1` or `64`",
                    );
                    return None;
                }
                Ok(n) => return Some(n),
                Err(_) => (lit.span(), lit.to_string()),
            }
        }
        SizeToken::Invalid { span, text } => (*span, text.clone()),
    };
    let problem = if text.starts_with('-') {
        format!("`{text}` is negative")
    } else if text.chars().all(|c| c.is_ascii_digit() || c == '_') {
        format!("`{text}` is too large for a size")
    } else if text.starts_with(|c: char| c.is_ascii_digit()) {
        format!("`{text}` is not an integer")
    } else {
        format!("`{text}` is not a size")
    };
    errors.at(
        span,
        problem,
        "a size is a positive integer that fits in usize, such as `64`",
    );
    None
}

/// The `where` clause: each name bound once, to a valid size.
fn bindings(bindings: &[Binding], errors: &mut Errors) -> HashMap<String, Bound> {
    let mut bound: HashMap<String, Bound> = HashMap::new();
    for binding in bindings {
        let key = binding.name.to_string();
        if let Some(first) = bound.get(&key) {
            errors.at(
                binding.name.span(),
                format!("`{key}` is bound twice"),
                format!(
                    "keep one binding of `{key}`; the first one is `{}`",
                    first.text
                ),
            );
            continue;
        }
        let value = size(&binding.value, errors);
        let text = match &binding.value {
            SizeToken::Int(lit) => format!("{key} = {lit}"),
            SizeToken::Invalid { text, .. } => format!("{key} = {text}"),
        };
        bound.insert(key, Bound { value, text });
    }
    bound
}

/// A name of the `where` clause.
struct Bound {
    /// `None` when the size was invalid (already reported).
    value: Option<u64>,
    /// `Dk = 3`, for messages.
    text: String,
}

/// The value of a dimension while checking.
#[derive(Clone, PartialEq)]
enum Value {
    Known(u64),
    Unbound(Ident),
    /// An invalid size, already reported: agrees with everything, so it causes no more errors.
    Poison,
}

/// A dimension while checking: its value, its token, and the name it was written with.
#[derive(Clone)]
struct Resolved {
    value: Value,
    span: Span,
    name: Option<Ident>,
}

impl fmt::Display for Resolved {
    /// `7`, `` `B` = 6 `` or `` `B` ``, as the dimension reads in a message.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match (&self.name, &self.value) {
            (Some(name), Value::Known(n)) => write!(f, "`{name}` = {n}"),
            (Some(name), _) => write!(f, "`{name}`"),
            (None, Value::Known(n)) => write!(f, "{n}"),
            (None, _) => write!(f, "an invalid size"),
        }
    }
}

/// What each name means: bound in `where`, taken from a known axis, or unbound.
struct Names {
    bound: HashMap<String, Bound>,
    /// Unbound names tied by a rule to an axis of known size.
    inferred: HashMap<String, u64>,
    /// Names already reported for their spelling, so each is reported once.
    misnamed: Vec<String>,
}

impl Names {
    fn new(bound: HashMap<String, Bound>) -> Self {
        Names {
            bound,
            inferred: HashMap::new(),
            misnamed: Vec::new(),
        }
    }

    fn value(&self, name: &Ident) -> Value {
        let key = name.to_string();
        match self.bound.get(&key) {
            Some(Bound { value: Some(n), .. }) => Value::Known(*n),
            Some(Bound { value: None, .. }) => Value::Poison,
            None => match self.inferred.get(&key) {
                Some(n) => Value::Known(*n),
                None => Value::Unbound(name.clone()),
            },
        }
    }

    fn resolve_dims(&mut self, tensor: &TensorDecl, errors: &mut Errors) -> Vec<Resolved> {
        tensor
            .dims
            .iter()
            .map(|dim| match dim {
                DimToken::Name(name) => {
                    self.check_spelling(name, errors);
                    Resolved {
                        value: self.value(name),
                        span: name.span(),
                        name: Some(name.clone()),
                    }
                }
                DimToken::Size(token) => Resolved {
                    value: size(token, errors).map_or(Value::Poison, Value::Known),
                    span: token.span(),
                    name: None,
                },
            })
            .collect()
    }

    /// Names become const generic parameters and live beside the kernel's own variables, so
    /// they are written like constants: an uppercase first letter, and none of attn's names.
    fn check_spelling(&mut self, name: &Ident, errors: &mut Errors) {
        let text = name.to_string();
        if self.misnamed.contains(&text) {
            return;
        }
        if !text.starts_with(|c: char| c.is_ascii_uppercase()) {
            self.misnamed.push(text.clone());
            let mut fixed = text.trim_start_matches('_').to_owned();
            if let Some(first) = fixed.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            errors.at(
                name.span(),
                format!("the dimension name `{text}` does not start with an uppercase letter"),
                format!(
                    "write dimension names like constants, such as `{fixed}`: they become const generic parameters"
                ),
            );
        } else if RESERVED_NAMES.contains(&text.as_str()) {
            self.misnamed.push(text.clone());
            errors.at(
                name.span(),
                format!("`{text}` is a name the generated kernel uses"),
                "rename this dimension",
            );
        }
    }

    /// Every binding is used by some tensor.
    fn report_unused(
        &self,
        bindings: &[Binding],
        tensors: &[(Role, &TensorDecl)],
        errors: &mut Errors,
    ) {
        let used: Vec<String> = tensors
            .iter()
            .flat_map(|(_, tensor)| &tensor.dims)
            .filter_map(|dim| match dim {
                DimToken::Name(name) => Some(name.to_string()),
                DimToken::Size(_) => None,
            })
            .collect();
        let mut reported = Vec::new();
        for binding in bindings {
            let key = binding.name.to_string();
            if used.contains(&key) || reported.contains(&key) {
                continue;
            }
            reported.push(key.clone());
            let unbound = used
                .iter()
                .filter(|name| !self.bound.contains_key(*name))
                .min_by_key(|name| edit_distance(name, &key))
                .filter(|name| edit_distance(name, &key) <= 2);
            let help = match unbound {
                Some(name) => format!("did you mean `{name}`? `{key}` appears in no shape"),
                None => format!("remove the binding, or use `{key}` in a shape"),
            };
            errors.at(
                binding.name.span(),
                format!("`{key}` is bound but no tensor uses it"),
                help,
            );
        }
    }
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

/// One rule of section 3: two axes that must have the same size.
struct Rule {
    /// (tensor, axis index from the end, axis name) of each side.
    first: (Role, usize, &'static str),
    second: (Role, usize, &'static str),
    /// What the user learns when the sizes differ: `{first}` and `{second}` are replaced.
    problem: &'static str,
    help: &'static str,
}

/// The rules of section 3 for a kernel of `rank`. Axes count from the end, so that the rank-3
/// and rank-4 rules are the same list.
fn rules(rank: usize) -> Vec<Rule> {
    let batch = rank; // from the end: [batch, (heads,) sequence, depth]
    let mut rules = vec![
        Rule {
            first: (Role::Q, batch, "batch"),
            second: (Role::K, batch, "batch"),
            problem: "batch sizes disagree: `q` has batch {first} but `k` has batch {second}",
            help: "q, k and v share one batch axis: give them the same size",
        },
        Rule {
            first: (Role::K, batch, "batch"),
            second: (Role::V, batch, "batch"),
            problem: "batch sizes disagree: `k` has batch {first} but `v` has batch {second}",
            help: "q, k and v share one batch axis: give them the same size",
        },
    ];
    if rank == 4 {
        rules.push(Rule {
            first: (Role::K, 3, "heads"),
            second: (Role::V, 3, "heads"),
            problem: "head counts disagree: `k` has {first} heads but `v` has {second}",
            help: "each key head has its value head: give k and v the same number of heads",
        });
    }
    rules.push(Rule {
        first: (Role::Q, 1, "depth"),
        second: (Role::K, 1, "depth"),
        problem: "depths disagree: `q` has depth {first} but `k` has depth {second}",
        help: "attention takes the dot product of each query with each key, so q and k need the same last axis",
    });
    rules.push(Rule {
        first: (Role::K, 2, "keys"),
        second: (Role::V, 2, "keys"),
        problem: "key counts disagree: `k` has {first} keys but `v` has {second}",
        help: "each key has one value: give k and v the same sequence length",
    });
    rules
}

/// The rules of the layer form: x's batch and tokens are q's batch and queries and k's keys
/// (self-attention: each token is a query and a key), and out's are x's.
fn layer_rules(rank: usize, out: bool) -> Vec<Rule> {
    let mut rules = vec![
        Rule {
            first: (Role::X, 3, "batch"),
            second: (Role::Q, rank, "batch"),
            problem: "batch sizes disagree: `x` has batch {first} but `q` has batch {second}",
            help: "the layer projects x to q, k and v: give them the same batch",
        },
        Rule {
            first: (Role::X, 2, "tokens"),
            second: (Role::Q, 2, "queries"),
            problem: "`x` has {first} tokens but `q` has {second} queries",
            help: "a self-attention layer makes one query of each token: give q's queries x's token count",
        },
        Rule {
            first: (Role::X, 2, "tokens"),
            second: (Role::K, 2, "keys"),
            problem: "`x` has {first} tokens but `k` has {second} keys",
            help: "a self-attention layer makes one key of each token: give k's keys x's token count",
        },
    ];
    if out {
        rules.push(Rule {
            first: (Role::X, 3, "batch"),
            second: (Role::Out, 3, "batch"),
            problem: "batch sizes disagree: `x` has batch {first} but `out` has batch {second}",
            help: "the layer's output has one entry per batch entry of x",
        });
        rules.push(Rule {
            first: (Role::X, 2, "tokens"),
            second: (Role::Out, 2, "tokens"),
            problem: "`x` has {first} tokens but `out` has {second}",
            help: "the layer's output has one row per token of x",
        });
    }
    rules
}

/// Applies the rules: ties unbound names to known sizes, then reports every disagreement.
fn agreement(shapes: &mut [Vec<Resolved>; 5], names: &mut Names, errors: &mut Errors) {
    let rank = shapes[Role::Q as usize].len();
    let mut rules = rules(rank);
    if !shapes[Role::X as usize].is_empty() {
        rules.extend(layer_rules(rank, !shapes[Role::Out as usize].is_empty()));
    }
    // Both sides of each rule; a tensor the kernel does not declare (the layer's) has no
    // axes, and its rules no sides.
    let sides = |shapes: &[Vec<Resolved>; 5]| -> Vec<(usize, Resolved, Resolved)> {
        let at = |(role, from_end, _): (Role, usize, &str)| {
            let shape = &shapes[role as usize];
            let index = shape.len().checked_sub(from_end)?;
            shape.get(index).cloned()
        };
        (rules.iter().enumerate())
            .filter_map(|(i, rule)| Some((i, at(rule.first)?, at(rule.second)?)))
            .collect()
    };
    // Where a rule ties an unbound name to an axis of known size, the name takes that size;
    // a few passes reach the fixed point, since each pass can only bind more names.
    for _pass in 0..rules.len() {
        let mut changed = false;
        for (_, a, b) in sides(shapes) {
            for (unbound, known) in [(&a, &b), (&b, &a)] {
                if let (Value::Unbound(name), Value::Known(n)) = (&unbound.value, &known.value)
                    && let Entry::Vacant(entry) = names.inferred.entry(name.to_string())
                {
                    entry.insert(*n);
                    changed = true;
                }
            }
        }
        for shape in shapes.iter_mut() {
            for dim in shape.iter_mut() {
                if let Some(name) = &dim.name {
                    dim.value = names.value(name);
                }
            }
        }
        if !changed {
            break;
        }
    }
    for (i, a, b) in sides(shapes) {
        let rule = &rules[i];
        let problem = || {
            rule.problem
                .replace("{first}", &a.to_string())
                .replace("{second}", &b.to_string())
        };
        match (&a.value, &b.value) {
            (Value::Known(x), Value::Known(y)) if x != y => errors.at(b.span, problem(), rule.help),
            (Value::Unbound(x), Value::Unbound(y)) if x != y => errors.at(
                b.span,
                format!(
                    "`{}` has {} `{x}` but `{}` has {} `{y}`: two different unbound names for axes that must be equal",
                    rule.first.0.name(),
                    rule.first.2,
                    rule.second.0.name(),
                    rule.second.2,
                ),
                format!("use one name for both, such as `{x}`, or bind both in the `where` clause"),
            ),
            _ => {}
        }
    }
}

/// A tensor's storage fits in an array: its byte count fits in `isize`, computed without
/// overflow. Unbound names are checked by rustc when the kernel is instantiated.
fn fits(what: &str, shape: &[Resolved], element: u64, span: Span, errors: &mut Errors) {
    let mut values: Option<u64> = Some(1);
    for dim in shape {
        if let Value::Known(n) = dim.value {
            values = values.and_then(|v| v.checked_mul(n));
        }
    }
    let bytes = values.and_then(|v| v.checked_mul(element));
    if bytes.is_none_or(|b| b > i64::MAX as u64) {
        let count = match values {
            Some(v) => format!("{v} values"),
            None => "more than 2^64 values".to_owned(),
        };
        errors.at(
            span,
            format!("{what} would hold {count}, more than an array can hold (isize::MAX bytes)"),
            "use smaller sizes",
        );
    }
}

/// Plain `causal` needs as many queries as keys, known to be equal here: otherwise the user
/// says how the queries line up with the keys.
fn square(queries: &Resolved, keys: &Resolved, span: Span, errors: &mut Errors) {
    let equal = match (&queries.value, &keys.value) {
        (Value::Known(a), Value::Known(b)) => a == b,
        (Value::Unbound(a), Value::Unbound(b)) => a == b,
        (Value::Poison, _) | (_, Value::Poison) => true,
        _ => false,
    };
    if !equal {
        errors.at(
            span,
            format!(
                "`causal` needs as many queries as keys, but `q` has {queries} queries and `k` has {keys} keys"
            ),
            "write `causal(top_left)` (query i sees keys 0..=i, as PyTorch) or \
             `causal(bottom_right)` (the queries are the last Nq positions, as FlashAttention \
             and a decode step over a cache)",
        );
    }
}

/// q's heads are a multiple of k's: each key/value head serves `Hq / Hkv` query heads
/// (grouped-query attention; one group per head is ordinary multi-head attention, one head
/// for all is multi-query attention). Where a count is a const generic, the generated code
/// checks it when the kernel is instantiated.
fn grouped_heads(query_heads: &Resolved, key_heads: &Resolved, errors: &mut Errors) {
    if let (Value::Known(hq), Value::Known(hkv)) = (&query_heads.value, &key_heads.value)
        && hq % hkv != 0
    {
        errors.at(
            key_heads.span,
            format!(
                "`q` has {query_heads} heads, which is not a multiple of `k`'s {key_heads} heads"
            ),
            "each key/value head serves Hq / Hkv query heads (grouped-query attention): give q a \
             multiple of k's heads, or as many (multi-head attention)",
        );
    }
}

/// The shape of a `mask = [..]` or `bias = [..]` option: q's rank, and each axis the size of
/// the kernel's (batch, query heads, queries, keys) or 1, broadcast over that axis. Names are
/// the kernel's own: one that no tensor uses is an error, as it could never be inferred.
fn broadcast_shape(
    tensor: &TensorDecl,
    rank: usize,
    shapes: &[Vec<Resolved>; 3],
    names: &mut Names,
    errors: &mut Errors,
) -> Option<Vec<Resolved>> {
    let option = tensor.role.to_string();
    let example = if rank == 4 {
        format!("`{option} = [B, H, Nq, Nk]`")
    } else {
        format!("`{option} = [B, Nq, Nk]`")
    };
    if tensor.dims.len() != rank {
        errors.at(
            tensor.bracket.span.join(),
            format!(
                "`{option}` has rank {} but `q` has rank {rank}",
                tensor.dims.len()
            ),
            format!("write {example}, with 1 for an axis to broadcast over"),
        );
        return None;
    }
    let [q, k, _] = shapes;
    let mut expected: Vec<(&Resolved, &str)> = vec![(&q[0], "batch")];
    if rank == 4 {
        expected.push((&q[1], "heads"));
    }
    expected.push((&q[rank - 2], "queries"));
    expected.push((&k[rank - 2], "keys"));
    let declared: Vec<&Ident> = shapes
        .iter()
        .flatten()
        .filter_map(|d| d.name.as_ref())
        .collect();
    let resolved = names.resolve_dims(tensor, errors);
    for (dim, (axis, what)) in resolved.iter().zip(expected) {
        if let Some(name) = &dim.name
            && !declared.contains(&name)
            && !names.bound.contains_key(&name.to_string())
        {
            errors.at(
                dim.span,
                format!("`{name}` appears in no tensor of this kernel"),
                format!(
                    "name the axes of `{option}` as q's and k's are named, or write 1 to broadcast"
                ),
            );
            continue;
        }
        let agrees = match (&dim.value, &axis.value) {
            (Value::Known(1), _) | (Value::Poison, _) | (_, Value::Poison) => true,
            (a, b) => a == b,
        };
        if !agrees {
            let owner = if what == "keys" { "k" } else { "q" };
            errors.at(
                dim.span,
                format!(
                    "the {what} axis of `{option}` is {dim}, but `{owner}` has {axis} {what}: each axis of `{option}` is the kernel's size or 1"
                ),
                format!("write {example}, with 1 for an axis to broadcast over"),
            );
        }
    }
    Some(resolved)
}

/// The layer form's ranks: x and out are `[batch, tokens, width]`, and q, k and v have heads.
fn layer_ranks(
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
fn model_sizes(shapes: &[Vec<Resolved>; 5], options: &Options, errors: &mut Errors) {
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
        if width.is_some() && outputs.is_some() && bytes.is_none_or(|b| b > i64::MAX as u64) {
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
