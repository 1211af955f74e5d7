"""Dynamo's torch-level FX graph -> a functional ATen graph, and the inputs it mutates.

Static shapes (most training graphs): the recorder runs Dynamo's graph once on Dynamo's own
fake tensors (body_recorder.py). Where it cannot (symbolic sizes, a mutation of a view, a
constant it cannot place), `make_fx` traces a graph that mutates nothing, and
`aot_export_module` the rest; both decompose by the same table (`decompositions`). The new
values of the inputs the graph mutates (BatchNorm's running statistics, `x.add_(1)`) are the
graph's leading outputs.
"""

from __future__ import annotations

import functools

import torch
import torch.fx

from . import torch_private as tp
from .aten_recorder import drop_unread
from .body_recorder import BodyRecorder
from .dynamo_graph import DynamoGraph, LoweringError, where
from .forms import in_place_variant, may_mutate
from .ops import aten, present
from .rules import RULES, attention
from .torch_private import OpOverload

# Ops with a rule that stay whole rather than decompose: one entry and one backward kernel, as
# in eager, where the decomposition records many (cross_entropy's nll_loss: about twenty).
KEEP_WHOLE = (
    aten.nll_loss_forward.default,
    aten.nll_loss2d_forward.default,
    aten.mse_loss.default,
    aten.multilabel_margin_loss_forward.default,  # its decomposition computes another loss
    aten.silu.default,
    # eager runs one kernel each way; decomposed, hardswish ran 5 entries forward, 12 backward
    # (mobilenet_v3's and lcnet's step 1.1 to 1.4 of eager's)
    aten.hardswish.default,
    aten.hardsigmoid.default,
    # eager runs one kernel each way; decomposed, weight_norm ran 5 entries forward, 14 backward
    # (wav2vec2's positional convolution)
    aten._weight_norm_interface.default,
    aten.masked_fill.Scalar,
    aten.masked_fill.Tensor,
    # their decompositions give gradients eager does not (NaN through where, fully masked rows)
    aten._safe_softmax.default,
    aten.special_log_ndtr.default,
    # their decompositions round differently from eager's kernels: optimizer steps (Adam's
    # `exp_avg.lerp_`, `addcmul_`, `addcdiv_`) must update parameters exactly as eager
    aten.lerp.Scalar,
    aten.lerp.Tensor,
    aten.addcmul.default,
    aten.addcdiv.default,
    # decomposed into a factory (full_like, rand < p), their outputs stopped requiring grad
    # where eager's require it (with a zero gradient)
    aten.fill.Scalar,
    aten.fill.Tensor,
    aten.bernoulli.default,
    # matmul's reshapes: eager's result is a tensor of its own, the decomposition's `view` a
    # view of an intermediate (sdpa's output came out `._base`-ed)
    aten._unsafe_view.default,
)


def decompositions():
    return dict(_decompositions())


# The core ATen decompositions without the composite-implicit ops that core_aten_decompositions()
# adds by walking every operator namespace (0.08 s, paid by each process's first compile): those
# decompose all the same, by their own composite kernels, when they are traced.
@functools.cache
def _decompositions():
    table = dict(tp.core_aten_decompositions())
    for op in KEEP_WHOLE:
        if op in RULES:  # and its in-place form, which the recorder records as this op
            table.pop(op, None)
            table.pop(in_place_variant(op), None)
    table.update(present(attention.WITH_LOGSUMEXP))  # fused attention keeps what its backward reads
    if attention.CPU_FLASH in table:  # SDPA's CPU kernel, whole where it has no mask
        table[attention.CPU_FLASH] = attention.unmasked_whole(table[attention.CPU_FLASH])
    # `x.detach()` stays a detach (no gradient through it), not the alias it decomposes to:
    # the tape is differentiated by its rules, not traced under autograd as aot_eager's is
    table.pop(aten.detach.default, None)
    return table


def to_aten(gm: torch.fx.GraphModule, dynamo: DynamoGraph, example_inputs, fake_mode):
    """(ATen graph, the inputs it mutates, whose new values are its leading outputs, the fake
    mode of the graph's values). `gm` is Dynamo's graph without its grad-mode changes, `dynamo`
    what was read of it."""
    recorded = _record(gm, dynamo)
    if recorded is not None:
        return recorded
    if dynamo.dtensor is not None:
        # make_fx and aot_export_module would take a DTensor's local tensor for a constant
        raise LoweringError(
            f"DTensor graph{where(dynamo.dtensor.source)}: the tape runs DTensor programs with "
            "static sizes only (this one has symbolic sizes, or an op the recorder refuses); "
            "compile with dynamic=False"
        )
    function = dynamo.custom_function
    if function is not None:
        # make_fx and aot_export_module would trace through the user's forward and drop their
        # backward: a wrong gradient. Refused instead, naming the Function.
        raise LoweringError(
            f"custom torch.autograd.Function {function.name}{where(function.source)}: the tape "
            "runs a custom Function's own backward only in graphs with static sizes and no "
            "mutation of a view (mark the sizes static, or move the Function out of this graph)"
        )
    if dynamo.flex_attention is not None:
        # make_fx and aot_export_module fail inside its vmap ("TransformType.Vmap")
        raise LoweringError(
            f"flex_attention{where(dynamo.flex_attention.source)}: the tape runs flex_attention "
            "in graphs with static sizes (mark the sizes static, or move flex_attention out of "
            "this graph)"
        )
    fakes = [fake_mode.from_tensor(x) if isinstance(x, torch.Tensor) else x for x in example_inputs]
    # A graph that mutates nothing is functional as traced: one `make_fx` pass gives its ATen
    # graph, where aot_export_module traces twice (metadata, then graph) through
    # functionalization, which made it most of the compile time. Whether it mutates is read off
    # the ATen graph (in-place ops say so in their schemas; native_batch_norm's does not); the
    # likely cases go straight to aot_export_module (`DynamoGraph.may_mutate`).
    traced = None if dynamo.may_mutate else _trace_pure(gm, fakes, fake_mode)
    if traced is not None:
        return traced, [], fake_mode
    with fake_mode:
        aten_gm, signature = tp.aot_export_module(
            gm, fakes, trace_joint=False, decompositions=decompositions()
        )
    names = [n.name for n in aten_gm.graph.find_nodes(op="placeholder")]
    mutated = [names.index(name) for name in signature.user_inputs_to_mutate.values()]
    return aten_gm, mutated, fake_mode


def _trace_pure(gm, fakes, fake_mode) -> torch.fx.GraphModule | None:
    try:
        with fake_mode, torch.no_grad(), torch.fx.traceback.preserve_node_meta():
            run = torch.fx.Interpreter(gm).run  # carries each node's stack trace over
            trace = tp.make_fx(run, decomposition_table=decompositions(), tracing_mode="real")
            traced = trace(*fakes)
    except Exception:  # noqa: BLE001 - aot_export_module will try, and report what fails
        return None
    return None if _mutates(traced) else traced


def _mutates(traced: torch.fx.GraphModule) -> bool:
    ops = (node.target for node in traced.graph.nodes)
    return any(isinstance(op, OpOverload) and may_mutate(op) for op in ops)


def _record(gm, dynamo: DynamoGraph) -> tuple[torch.fx.GraphModule, list[int], object] | None:
    # It runs on Dynamo's own fake inputs: the fake mode Dynamo hands backends is a fresh one,
    # in which converting each input again cost 0.6 ms.
    if dynamo.fake_mode is None:
        return None
    recorder = BodyRecorder(_decompositions())  # read only: no copy
    try:
        with dynamo.fake_mode, torch.no_grad(), recorder:
            mutated = recorder.run(gm, dynamo.inputs)
    except Exception:  # noqa: BLE001 - NotRecordable, or what make_fx or aot_export will report
        return None
    drop_unread(recorder.graph)  # what a composite kernel made and dropped
    # lazy: its Python code is generated only if someone runs it (the coverage sweep)
    return tp.LazyGraphModule(recorder.constants, recorder.graph), mutated, dynamo.fake_mode
