//! The rules between axes: the sizes that must agree (docs/DESIGN.md section 3), the shapes of masks
//! and biases, causal masks, grouped heads, and tensors that fit in memory.

use super::Role;
use super::names::{Names, Resolved, Value};
use crate::ast::TensorDecl;
use crate::errors::Errors;
use crate::plan::Blocks;
use proc_macro2::Span;
use std::collections::hash_map::Entry;
use syn::Ident;

/// One rule of section 3: two axes that must have the same size.
pub(super) struct Rule {
    /// (tensor, axis index from the end, axis name) of each side.
    first: (Role, usize, &'static str),
    second: (Role, usize, &'static str),
    /// What the user learns when the sizes differ: `{first}` and `{second}` are replaced.
    problem: &'static str,
    help: &'static str,
}

/// The rules of section 3 for a kernel of `rank`. Axes count from the end, so that the rank-3
/// and rank-4 rules are the same list.
pub(super) fn rules(rank: usize) -> Vec<Rule> {
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
pub(super) fn layer_rules(rank: usize, out: bool) -> Vec<Rule> {
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
pub(super) fn agreement(shapes: &mut [Vec<Resolved>; 5], names: &mut Names, errors: &mut Errors) {
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

/// The most bytes rustc lets one array (or any value) take on a 64-bit target: below 2^61.
/// A 32-bit target's limit (2^31) is met by rustc's own error when the kernel is compiled.
pub(super) const MAX_ARRAY_BYTES: u64 = (1 << 61) - 1;

/// A tensor's storage fits in an array: its byte count, computed without overflow, is within
/// rustc's limit. Unbound names are checked by rustc when the kernel is instantiated.
pub(super) fn fits(what: &str, shape: &[Resolved], element: u64, span: Span, errors: &mut Errors) {
    let mut values: Option<u64> = Some(1);
    for dim in shape {
        if let Value::Known(n) = dim.value {
            values = values.and_then(|v| v.checked_mul(n));
        }
    }
    let bytes = values.and_then(|v| v.checked_mul(element));
    if bytes.is_none_or(|b| b > MAX_ARRAY_BYTES) {
        let count = match values {
            Some(v) => format!("{v} values"),
            None => "more than 2^64 values".to_owned(),
        };
        errors.at(
            span,
            format!(
                "{what} would hold {count} of {element} bytes, more than rustc allows one array \
                 on a 64-bit target (2^61 bytes)"
            ),
            "use smaller sizes",
        );
    }
}

/// A tiled kernel's scratch (`attn_rules::tiled_scratch_bytes`, for the blocks the planner
/// chooses: `Blocks::of`) fits the stack of any thread that runs it: past
/// `attn_rules::MAX_SCRATCH_BYTES` a thread would overflow its stack and abort. Reported at
/// the deeper of the depths, which the scratch grows with. A depth left to a const generic
/// is checked when the kernel is instantiated, by the loop nest's own assertion.
pub(super) fn scratch(
    [depth, value_depth]: [&Resolved; 2],
    queries: &Resolved,
    keys: &Resolved,
    errors: &mut Errors,
) {
    let known = |dim: &Resolved| match dim.value {
        Value::Known(n) => usize::try_from(n).ok(),
        _ => None,
    };
    let (Some(d), Some(dv)) = (known(depth), known(value_depth)) else {
        return;
    };
    let blocks = Blocks::of(known(queries), known(keys), Some(d.max(dv)));
    let bytes = attn_rules::tiled_scratch_bytes(
        blocks.query_block as u64,
        blocks.key_block as u64,
        d as u64,
        dv as u64,
        !blocks.direct,
    );
    if bytes > attn_rules::MAX_SCRATCH_BYTES {
        let deeper = if d >= dv { depth } else { value_depth };
        errors.at(
            deeper.span,
            format!(
                "a kernel of depth {d} and value depth {dv} would keep {} KiB of scratch on \
                 the stack of each thread that runs it, more than attn allows ({} KiB: a \
                 thread's stack is 2 MiB)",
                bytes.div_ceil(1 << 10),
                attn_rules::MAX_SCRATCH_BYTES >> 10
            ),
            "use shallower heads: keys and values of depth 1024 each keep 213 KiB",
        );
    }
}

/// Plain `causal` needs as many queries as keys, known to be equal here: otherwise the user
/// says how the queries line up with the keys.
pub(super) fn square(queries: &Resolved, keys: &Resolved, span: Span, errors: &mut Errors) {
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
pub(super) fn grouped_heads(query_heads: &Resolved, key_heads: &Resolved, errors: &mut Errors) {
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
pub(super) fn broadcast_shape(
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
