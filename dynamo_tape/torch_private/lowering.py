"""Lowering Dynamo's graph to ATen, and the higher-order ops in it.

Relies on torch's decompositions (torch._decomp), its tracers (AOTAutograd's
aot_export_module, make_fx) and symbolic shapes (statically_known_true, a SymInt's `.node`,
torch.utils._sympy's PythonPrinter), torch.fx's private _LazyGraphModule and _get_attr, the
higher-order ops Dynamo writes into its graph (torch.ops.higher_order) and what their bodies
carry: stack traces, a checkpointed region's `context_fn` and torch.utils.checkpoint's
selective-checkpointing internals. Where releases differ: an op a release lacks is None
(while_loop, invoke_subgraph, flex_attention; register_hook is looked up at each call), and
torch 2.11's SelectiveCheckpointContext takes no `op_output`.
"""

from __future__ import annotations

import re

import torch
import torch._decomp
import torch.fx._lazy_graph_module
import torch.utils.checkpoint
from torch._functorch.aot_autograd import aot_export_module as aot_export_module
from torch.fx.experimental.proxy_tensor import make_fx as make_fx
from torch.fx.experimental.symbolic_shapes import statically_known_true as statically_known_true
from torch.utils._sympy.printers import PythonPrinter as PythonPrinter
from torch.utils.checkpoint import SAC_IGNORED_OPS, CheckpointPolicy, SelectiveCheckpointContext

# torch._decomp._core_aten_decompositions_post_autograd is the core list without the walk over
# every composite op that core_aten_decompositions() adds (0.08 s per process); it exists on
# every supported release, and the public function is the fallback should it go.
core_aten_decompositions = getattr(
    torch._decomp,
    "_core_aten_decompositions_post_autograd",
    torch._decomp.core_aten_decompositions,
)
# aot_export_module(gm, args, trace_joint=False, decompositions=...) -> (graph, signature);
# `signature.user_inputs_to_mutate` maps output names to the input names they update.
# make_fx(fn, decomposition_table=..., tracing_mode="real") under a fake mode.
# statically_known_true(expr): a size comparison known without guarding on it.
# PythonPrinter (torch.utils._sympy.printers) prints a size expression as Python code.
# (all imported above)
# A GraphModule whose Python code is generated on first use (torch.fx._lazy_graph_module).
LazyGraphModule = torch.fx._lazy_graph_module._LazyGraphModule
# The value of a `get_attr` node: `gm.a.b` for the target "a.b".
get_attr = torch.fx.graph_module._get_attr
# A custom torch.autograd.Function in Dynamo's graph: autograd_function_apply(fwd_body,
# bwd_body, *operands, non_differentiable_idx=[...], saved_for_backward_idx=[...]); the bodies
# are submodules. torch 2.11 and 2.12 return extra forward values in the outputs tuple, which
# the backward body takes cotangent slots for (their example value is None).
autograd_function_apply = torch.ops.higher_order.autograd_function_apply
_ONCE_DIFFERENTIABLE = re.compile(
    r"autograd[/\\]function\.py\", line \d+, in wrapper\n.*\n(?:.*\n)*?.*in backward"
)


def is_once_differentiable(backward_body) -> bool:
    """Whether a custom Function's backward is `@once_differentiable`: Dynamo inlines the
    decorator, so its ops' stack traces pass through its `wrapper` in torch/autograd/function.py
    (checked on 2.11, 2.13, 2.15; the graph carries no other mark)."""
    traces = (n.meta.get("stack_trace") or "" for n in backward_body.graph.nodes)
    return any(_ONCE_DIFFERENTIABLE.search(t) for t in traces)


# A torch.utils.checkpoint region: tag_activation_checkpoint(body, *operands, use_reentrant=...);
# the body is a submodule.
tag_activation_checkpoint = torch.ops.higher_order.tag_activation_checkpoint
# the class of every op in torch.ops.higher_order (the cache refuses graphs that call one)
HigherOrderOperator = torch._ops.HigherOrderOperator


class NotSelective(Exception):
    """A checkpoint's `context_fn` that is not `create_selective_checkpoint_contexts(...)`."""


def checkpoint_policy(body: torch.fx.GraphModule):
    """The selective-checkpointing policy of a checkpointed region's body, else None. Dynamo
    keeps the region's `context_fn` in `body.meta["_checkpoint_context_fn"]`; that of
    `create_selective_checkpoint_contexts(policy)` makes a forward context (a
    `torch.utils.checkpoint._CachingTorchDispatchMode`) holding the policy as `.policy_fn`
    (a list of ops given to it made into a function). Any other context_fn: NotSelective."""
    context_fn = body.meta.get("_checkpoint_context_fn")
    if context_fn is None:
        return None
    forward_context, _ = context_fn()
    if not isinstance(forward_context, torch.utils.checkpoint._CachingTorchDispatchMode):
        raise NotSelective(context_fn)
    return forward_context.policy_fn


def checkpoint_policy_says_save(policy, func, args, kwargs, out) -> bool:
    """What the policy says of one op of the region's forward: save (MUST_SAVE, PREFER_SAVE, or
    True), or recompute. The ops the policy is not asked about (torch.utils.checkpoint's
    SAC_IGNORED_OPS: detach, metadata queries) are recomputed. torch 2.11's
    SelectiveCheckpointContext takes no `op_output`."""
    if func in SAC_IGNORED_OPS:
        return False
    try:
        context = SelectiveCheckpointContext(is_recompute=False, op_output=out)
    except TypeError:
        context = SelectiveCheckpointContext(is_recompute=False)
    said = policy(context, func, *args, **kwargs)
    if isinstance(said, bool):
        return said
    return said in (CheckpointPolicy.MUST_SAVE, CheckpointPolicy.PREFER_SAVE)


def is_register_hook(target) -> bool:
    """`torch.ops.higher_order.register_hook(y, hook_body)`: a tensor hook registered inside the
    graph (torch 2.13 on; the op exists only once Dynamo has made one; 2.11 and 2.12 hand a hook
    over as a custom autograd.Function)."""
    return target is getattr(torch.ops.higher_order, "register_hook", None) is not None


# torch.cond(pred, true_fn, false_fn, operands): cond(pred, true_graph, false_graph, operands)
cond = torch.ops.higher_order.cond
# torch._higher_order_ops.map(f, xs, *args): map_impl(body_graph, [xs...], [args...])
map_impl = torch.ops.higher_order.map_impl
# while_loop(cond_fn, body_fn, carried, additional): while_loop(cond_graph, body_graph,
# (carried...), (additional...)), the functions taking the carried then the additional values
while_loop = getattr(torch.ops.higher_order, "while_loop", None)
# mark_compile_region(fn) (torch._higher_order_ops.invoke_subgraph): at each call
# invoke_subgraph(subgraph, identifier, *operands), one identifier per region
invoke_subgraph = getattr(torch.ops.higher_order, "invoke_subgraph", None)
# torch.nn.attention.flex_attention: flex_attention(q, k, v, score_mod, block_mask (sizes,
# tensors, None, the mask_mod graph), scale, kernel_options, score_mod_other_buffers,
# mask_mod_other_buffers) -> (out, logsumexp, ...); called with plain functions for the two
# graphs, its CPU kernel vmaps them over the scores as eager's does
flex_attention = getattr(torch.ops.higher_order, "flex_attention", None)
# Dynamo writes `with torch.no_grad():` inside a graph as calls of this function.
set_grad_enabled = torch._C._set_grad_enabled


def symbolic_expr(s):
    """The sympy expression of a SymInt / SymFloat / SymBool (`s.node.expr`)."""
    return s.node.expr


def size_hint(s) -> int | None:
    """The example value behind a symbolic size, or None (an unbacked size has none)."""
    return s.node.hint if s.node.has_hint() else None
