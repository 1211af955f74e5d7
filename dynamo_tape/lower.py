"""Lowering: Dynamo's torch-level FX graph -> a functional ATen graph -> a forward Tape.

The ATen graph is recorded by running Dynamo's graph on its fake tensors under a dispatch mode
(`_AtenRecorder`), with a decomposition table; where that cannot be done, `make_fx` or
`aot_export_module` trace it. It is functional and lists the inputs the graph mutates
(BatchNorm's running statistics, `x.add_(1)`): their new values are extra leading outputs,
listed in `Lowered.mutations`, for the runtime to write back. Entries computed under
`torch.no_grad()` inside the graph are non-differentiable.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.fx

from . import torch_private as tp
from .checkpoint import Checkpointed
from .control_flow import Cond, Map, While, WhileBackward
from .custom_function import CustomFunction
from .dynamo_graph import (
    DynamoGraph,
    LoweringError,
    example_values,
    function_name,
    read,
    source_of,
    symbolic,
    where,
    without_grad_mode_changes,
)
from .forms import functional_form, in_place_variant, may_mutate, mutates_unsaid
from .hooks import TensorHook
from .ir import Namer, Tape, TapeEntry, is_random
from .ops import aten, present
from .rules import RULES, attention, lookup
from .subclasses import Boundary, boundary_of
from .subgraphs import (
    FlexAttention,
    InvokeSubgraph,
    flex_attention_arguments,
    indexing_by_score_indices,
)
from .torch_private import OpOverload, schema, tree_map

# Entries whose op runs a tape of its own, recorded from a body of a higher-order op, and whose
# rule records another body (the user's backward, the recompute, the hook) onto the backward
BODIES = (
    CustomFunction,
    Checkpointed,
    TensorHook,
    Cond,
    Map,
    While,
    WhileBackward,
    InvokeSubgraph,
    FlexAttention,
)


@dataclass
class Lowered:
    tape: Tape  # outputs: mutated inputs' new values first, then the user outputs
    namer: Namer
    fake_mode: object
    mutations: list[int] = field(default_factory=list)  # input index per leading output
    # user output position -> input index, for outputs that ARE an input (`self.n += 1` makes
    # Dynamo return the buffer itself): the caller gets that very tensor back, as in eager
    returns_input: dict[int, int] = field(default_factory=dict)
    aten_graph: torch.fx.GraphModule | None = None
    # per mutation: does eager autograd record it? Yes for `x.add_(w)`, no for BatchNorm's
    # running statistics (updated inside the kernel); read off Dynamo's traced fake inputs
    recorded_mutations: list[bool] = field(default_factory=list)
    # user output positions eager returns as tensors of their own, not views (read off
    # Dynamo's output values): where the tape's is a view of an intermediate (its `stack` is
    # `unsqueeze` then `cat`... then a view), it is handed back detached from that base
    fresh_outputs: list[int] = field(default_factory=list)

    @property
    def recorded(self) -> list[bool]:
        """`recorded_mutations`, or when unknown (tapes built by hand) every mutation."""
        return self.recorded_mutations or [True] * len(self.mutations)

    @property
    def user_outputs(self) -> list:
        return self.tape.outputs[len(self.mutations) :]


# Ops with a rule that stay whole rather than decompose: one entry and one backward kernel, as
# in eager, where the decomposition records many (cross_entropy's nll_loss: about twenty).
KEEP_WHOLE = (
    aten.nll_loss_forward.default,
    aten.nll_loss2d_forward.default,
    aten.mse_loss.default,
    aten.multilabel_margin_loss_forward.default,  # its decomposition computes another loss
    aten.silu.default,
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


# Static shapes (most training graphs): the ATen graph is recorded by a dispatch mode that runs
# Dynamo's graph once on fake tensors and appends one node per ATen call. make_fx does the same
# through proxies at about twice the cost, and aot_export_module traces twice: they were most of
# the compile time. In-place ops on tensors nothing else views (`out += x`, BatchNorm's running
# statistics) are recorded in their functional form; the new values of mutated graph inputs
# become leading outputs, as aot_export_module gives them. Anything else (symbolic sizes, a
# mutation of a view, a constant it cannot place) goes to make_fx or aot_export_module.
class _NotRecordable(Exception):
    pass


def _record(gm, dynamo: DynamoGraph) -> tuple[torch.fx.GraphModule, list[int], object] | None:
    # It runs on Dynamo's own fake inputs: the fake mode Dynamo hands backends is a fresh one,
    # in which converting each input again cost 0.6 ms.
    if dynamo.fake_mode is None:
        return None
    recorder = _AtenRecorder(_decompositions())  # read only: no copy
    try:
        with dynamo.fake_mode, torch.no_grad(), recorder:
            mutated = recorder.run(gm, dynamo.inputs)
    except Exception:  # noqa: BLE001 - NotRecordable, or what make_fx or aot_export will report
        return None
    _drop_unread(recorder.graph)  # what a composite kernel made and dropped
    # lazy: its Python code is generated only if someone runs it (the coverage sweep)
    return tp.LazyGraphModule(recorder.constants, recorder.graph), mutated, dynamo.fake_mode


def _drop_unread(graph: torch.fx.Graph):
    """Unread values go (BatchNorm's composite kernel makes an empty tensor it never uses);
    checks, random draws (their order fixes the numbers drawn) and mutations stay."""
    for node in reversed(graph.nodes):
        op = node.target
        if node.op != "call_function" or node.users:
            continue
        if op is operator.getitem or (
            isinstance(op, OpOverload)
            and schema(op).returns
            and not schema(op).is_mutable
            and not is_random(op)
        ):
            graph.erase_node(node)


_storage = tp.storage_id


def _layout(x: torch.Tensor) -> tuple:
    return x.shape, x.stride(), x.storage_offset(), x.dtype


class _AtenRecorder(tp.TorchDispatchMode):
    """Runs a torch-level FX graph and records the ATen ops it dispatches (decomposed by
    `table`) as a new FX graph, each node with its fake value (`val`) and the Dynamo node's
    stack trace."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.graph = torch.fx.Graph()
        self.constants = torch.nn.Module()
        self.nodes: dict[int, tuple[torch.Tensor, torch.fx.Node]] = {}  # id(fake) -> node
        self.inputs: dict[int, int] = {}  # id(fake input) -> its position
        self.new_values: dict[int, torch.Tensor] = {}  # input position -> its value now
        self.views: Counter = Counter()  # storage -> how many recorded tensors use it
        self.hooks: dict[int, TensorHook] = {}  # id(hooked value) -> its hooks
        self.subgraphs: dict[str, InvokeSubgraph] = {}  # invoke_subgraph's identifier -> op
        self.meta: dict = {}
        # a selectively checkpointed region's policy, while its body is recorded; the values
        # of the ops it says to save; how deep in a decomposition the dispatch now is
        self.policy = None
        self.saved_by_policy: set[int] = set()
        self.depth = 0
        self.passing = False  # set while a DTensor call runs: its ops are not recorded

    def _add(self, value: torch.Tensor, node: torch.fx.Node):
        self.nodes[id(value)] = (value, node)
        self.views[_storage(value)] += 1

    def run(self, gm: torch.fx.GraphModule, fakes) -> list[int]:
        """Records the graph; returns the positions of the inputs it mutates."""
        env = {}
        args = iter(fakes)
        for node in gm.graph.nodes:
            if node.op == "placeholder":
                env[node] = value = next(args)
                placeholder = self.graph.placeholder(node.name)
                placeholder.meta["val"] = value
                if isinstance(value, torch.Tensor):
                    self._add(value, placeholder)
                    self.inputs[id(value)] = len(self.inputs)
            elif node.op == "output":
                mutated = sorted(self.new_values)
                out = torch.fx.node.map_arg(node.args[0], env.__getitem__)
                new = [self.new_values[i] for i in mutated]
                flat = out if isinstance(out, tuple | list) else (out,)  # a body may return one
                self.graph.output(tree_map(self._node_of, (*new, *flat)))
                self.outputs = out
                return mutated
            else:
                self.meta = {"stack_trace": node.meta.get("stack_trace"), "origin": node.name}
                args_, kwargs = torch.fx.node.map_arg((node.args, node.kwargs), env.__getitem__)
                if node.op == "call_function" and node.target is tp.autograd_function_apply:
                    env[node] = self._custom_function(node, args_, kwargs)
                elif node.op == "call_function" and node.target is tp.tag_activation_checkpoint:
                    env[node] = self._checkpoint(node, args_, kwargs)
                elif node.op == "call_function" and node.target is tp.cond:
                    env[node] = self._cond(node, args_)
                elif node.op == "call_function" and node.target is tp.map_impl:
                    env[node] = self._map(node, args_)
                elif node.op == "call_function" and node.target is tp.while_loop:
                    env[node] = self._while_loop(node, args_)
                elif node.op == "call_function" and node.target is tp.invoke_subgraph:
                    env[node] = self._invoke_subgraph(node, args_)
                elif node.op == "call_function" and node.target is tp.flex_attention:
                    env[node] = self._flex_attention(node, args_)
                elif node.op == "call_function" and tp.is_register_hook(node.target):
                    env[node] = self._tensor_hook(node, args_)
                elif (boundary := boundary_of(node, args_, kwargs)) is not None:
                    env[node] = self._boundary(boundary, args_[0])
                elif node.op == "call_function":
                    env[node] = node.target(*args_, **kwargs)
                elif node.op == "call_method":
                    env[node] = getattr(args_[0], node.target)(*args_[1:], **kwargs)
                elif node.op == "call_module":
                    env[node] = gm.get_submodule(node.target)(*args_, **kwargs)
                else:  # get_attr: Dynamo's constants are real tensors
                    env[node] = tp.get_attr(gm, node.target)
        raise _NotRecordable  # a graph without output

    def _body(self, gm: torch.fx.GraphModule, inputs, pick, written=None):
        """The ATen graph of a body of a higher-order op (`fwd_body_0`), recorded as a graph of
        its own from `inputs`; it returns `pick(the body's outputs)`, a flat list. An input the
        body writes must be among those, or, where `written` is a list, its new value is
        returned after them and its position appended to `written`."""
        outer = (self.graph, self.constants, self.nodes, self.inputs, self.new_values, self.views)
        meta = self.meta  # the higher-order op's own node's, which `run` sets anew per node
        self.graph, self.constants = torch.fx.Graph(), torch.nn.Module()
        self.nodes, self.inputs, self.new_values, self.views = {}, {}, {}, Counter()
        try:
            mutated = self.run(without_grad_mode_changes(gm), inputs)
            picked = pick(self.outputs)
            unreturned = [i for i in mutated if not any(inputs[i] is x for x in picked)]
            if unreturned and written is None:
                raise _NotRecordable  # it writes an input it does not return
            if unreturned:  # torch 2.12 returns `x.view_as(x)` for a `ctx.mark_dirty(x)`
                written.extend(unreturned)
                picked = [*picked, *(inputs[i] for i in unreturned)]
            self.graph.erase_node(self.graph.output_node())
            # a written input's node is now its new value (`ctx.mark_dirty`)
            self.graph.output(tuple(self._node_of(x) for x in picked))
            _drop_unread(self.graph)
            return tp.LazyGraphModule(self.constants, self.graph)
        finally:
            self.graph, self.constants, self.nodes, self.inputs, self.new_values, self.views = outer
            self.meta = meta

    def _record_call(self, op, inputs, values) -> list[torch.fx.Node]:
        """One node calling `op` (a body-running op, lower.BODIES) on `inputs`, and a getitem
        node per value it returns; later reads of those values read the getitems."""
        call = self.graph.call_function(op, tuple(self._node_of(x) for x in inputs))
        call.meta.update(self.meta, val=tuple(values))
        items = []
        for i, v in enumerate(values):
            item = self.graph.call_function(operator.getitem, (call, i))
            item.meta.update(self.meta, val=v)
            self._add(v, item)
            items.append(item)
        return items

    def _custom_function(self, node: torch.fx.Node, args, kwargs):
        """A custom autograd.Function: one node whose target is a `CustomFunction` (see
        custom_function.py), returning the Function's outputs, then the saved intermediates."""
        forward, backward, *operands = args
        recorded = {}

        def outputs_and_intermediates(result):
            outs, saved = result
            recorded["outs"], recorded["saved"] = list(outs), list(saved)
            where, extra = [], []
            for s in saved:
                k = next((k for k, x in enumerate(operands) if x is s), None)
                i = next((i for i, x in enumerate(outs) if x is s), None)
                if k is not None:
                    where.append(("input", k))
                elif i is not None:
                    where.append(("output", i))
                else:
                    where.append(("intermediate", len(extra)))
                    extra.append(s)
            recorded["where"], recorded["extra"] = where, extra
            return [*outs, *extra]

        written: list[int] = []  # operands the forward writes and does not return
        forward_graph = self._body(forward, operands, outputs_and_intermediates, written)
        later = {n for n in node.graph.nodes if n > node}
        for k in written:  # read later, they would miss the gradient of their new value
            if any(user in later for user in node.args[2 + k].users):
                raise _NotRecordable
        # cotangents, then saved values: Dynamo's fakes, which may share one fake between a
        # cotangent and a saved output; the body must tell them apart
        grads_in, seen = [], set()
        for x in example_values(backward):
            if isinstance(x, torch.Tensor) and id(x) in seen:
                x = torch.empty_like(x)  # recorded here, and dropped as unread
            seen.add(id(x))
            grads_in.append(x)
        backward_graph = self._body(backward, grads_in, list)
        name, defined_at = function_name(node, forward)
        function = CustomFunction(
            name,
            defined_at,
            forward_graph,
            backward_graph,
            len(recorded["outs"]),
            recorded["where"],
            tuple(kwargs.get("non_differentiable_idx") or ()),
            once_differentiable=tp.is_once_differentiable(backward),
            n_written=len(written),
        )
        # Dynamo's own values for the outputs: fresh tensors, never one of the operands
        outs = node.meta.get("example_value") or recorded["outs"]
        # the written operands' new values last: later reads of them read those
        values = [*outs, *recorded["extra"], *(operands[k] for k in written)]
        items = self._record_call(function, operands, values)
        for k, x in enumerate(operands):  # `ctx.mark_dirty(x)`: x's new value is an output
            i = next((i for i, o in enumerate(recorded["outs"]) if o is x), None)
            if i is None or k not in (kwargs.get("dirty_idx") or ()):
                continue
            if self.views[_storage(x)] != 1:
                raise _NotRecordable  # a view, or a tensor something views: refused
            self.nodes[id(x)] = (x, items[i])
            if id(x) in self.inputs:
                self.new_values[self.inputs[id(x)]] = values[i]
        return tuple(outs)

    def _checkpoint(self, node: torch.fx.Node, args, kwargs):
        """A `torch.utils.checkpoint` region: one node whose target is a `Checkpointed` (see
        checkpoint.py), returning the region's outputs, then its random draws."""
        body, *operands = args
        try:
            policy = tp.checkpoint_policy(body)
        except tp.NotSelective:
            raise _NotRecordable from None  # a context_fn of the user's own: aot_export's
        outer = self.policy, self.saved_by_policy
        self.policy, self.saved_by_policy = policy, set()
        try:
            body_graph = self._body(body, operands, list)
            saved = self.saved_by_policy
        finally:
            self.policy, self.saved_by_policy = outer
        outs = self.outputs
        graph = body_graph.graph
        output = graph.output_node()
        # kept rather than recomputed: random draws, and what the policy says to save (but the
        # region's outputs, saved as such); a value of an op with several outputs
        # (native_dropout: output, mask) is read through getitems
        saved -= {id(o) for o in outs}
        kept = {}
        for n in graph.nodes:
            val = n.meta.get("val")
            if n.op == "call_function" and is_random(n.target):
                kept.update(dict.fromkeys(n.users if isinstance(val, tuple) else [n]))
            elif n.op == "call_function" and isinstance(val, torch.Tensor) and id(val) in saved:
                kept[n] = None
        kept = list(kept)
        output.args = ((*output.args[0], *kept),)
        values = [*outs, *(n.meta["val"] for n in kept)]
        self._record_call(Checkpointed(body_graph, len(outs), len(kept)), operands, values)
        return tuple(outs)

    def _cond(self, node: torch.fx.Node, args):
        """`torch.cond`: one node whose target is a `Cond` (control_flow.py)."""
        pred, true_body, false_body, operands = args
        graphs = [self._body(body, list(operands), list) for body in (true_body, false_body)]
        outs = list(self.outputs)  # the false branch's: same metadata as the true one's
        given = node.meta.get("example_value")
        if isinstance(given, tuple | list) and len(given) == len(outs):
            outs = list(given)
        self._record_call(Cond(*graphs), [pred, *operands], outs)
        return tuple(outs)

    def _map(self, node: torch.fx.Node, args):
        """`map_impl(body, mapped, whole)`: one node whose target is a `Map` (control_flow.py)."""
        body, mapped, whole = args
        inputs = example_values(body)  # Dynamo's values of a slice, then of the whole ones
        if len(inputs) != len(mapped) + len(whole) or any(x is None for x in inputs):
            raise _NotRecordable
        body_graph = self._body(body, inputs, list)
        outs = node.meta.get("example_value")
        if not isinstance(outs, tuple | list):
            raise _NotRecordable
        self._record_call(Map(body_graph, len(mapped)), [*mapped, *whole], list(outs))
        return tuple(outs)

    def _while_loop(self, node: torch.fx.Node, args):
        """`while_loop(cond_fn, body_fn, carried, additional)`: one node whose target is a
        `While` (control_flow.py)."""
        cond_fn, body_fn, carried, additional = args
        inputs = [*carried, *additional]
        cond_graph = self._body(cond_fn, inputs, lambda out: [out])
        body_graph = self._body(body_fn, inputs, list)
        outs = node.meta.get("example_value")
        if not isinstance(outs, tuple | list) or len(outs) != len(carried):
            raise _NotRecordable
        self._record_call(While(cond_graph, body_graph, len(carried)), inputs, list(outs))
        return tuple(outs)

    def _invoke_subgraph(self, node: torch.fx.Node, args):
        """`invoke_subgraph(subgraph, identifier, *operands)`: one node whose target is the
        identifier's `InvokeSubgraph` (subgraphs.py), recorded from its first call."""
        body, identifier, *operands = args
        outs = node.meta.get("example_value")
        if not isinstance(outs, tuple | list):
            raise _NotRecordable
        if identifier not in self.subgraphs:
            graph = self._body(body, operands, list)
            self.subgraphs[identifier] = InvokeSubgraph(graph, f"invoke_subgraph.{identifier}")
        self._record_call(self.subgraphs[identifier], operands, list(outs))
        return tuple(outs)

    def _flex_attention(self, node: torch.fx.Node, args):
        """`flex_attention(q, k, v, score_mod, block_mask, ...)`: one node whose target is a
        `FlexAttention` (subgraphs.py), its score_mod and mask_mod recorded from Dynamo's
        values of their scalar inputs."""
        found = flex_attention_arguments(args)
        outs = node.meta.get("example_value")
        if found is None or not isinstance(outs, tuple | list):
            raise _NotRecordable
        arguments, operands, spec, positions = found
        flat = tp.tree_leaves(list(args))
        graphs = []
        for i in positions:
            inputs = example_values(flat[i])
            if any(x is None for x in inputs):
                raise _NotRecordable
            body = indexing_by_score_indices(flat[i])
            graphs.append((i, self._body(body, inputs, lambda out: [out])))
        self._record_call(FlexAttention(arguments, spec, graphs), operands, list(outs))
        return tuple(outs)

    def _tensor_hook(self, node: torch.fx.Node, args):
        """`register_hook(y, hook_body)`: one node whose target is a `TensorHook` (hooks.py)."""
        y, body = args
        gradient = torch.empty_like(y)  # the hook's input: recorded here, dropped as unread
        body_graph = self._body(body, [gradient], lambda out: [out])
        if id(y) in self.hooks:  # a further hook on the same tensor: runs after the others
            self.hooks[id(y)].body_graphs.append(body_graph)
            return y
        hooked = node.meta.get("example_value")
        if not isinstance(hooked, torch.Tensor) or hooked is y:
            hooked = torch.empty_like(y)
        hook = TensorHook(body_graph)
        self._record_call(hook, [y], [hooked])
        self.hooks[id(hooked)] = hook
        return hooked

    def _whole_aliases(self, target) -> list[torch.Tensor]:
        """The recorded tensors an in-place write to `target` writes: itself alone, or also its
        aliases of the same layout (dropout's kernel writes `bernoulli_` into a `detach` of a
        fresh tensor), none a graph input. A partial view is aot_export's to functionalize."""
        if id(target) not in self.nodes:
            raise _NotRecordable
        if self.views[_storage(target)] == 1:
            return [target]
        layout = _layout(target)
        same = [v for v, _ in self.nodes.values() if _storage(v) == _storage(target)]
        if any(_layout(v) != layout or id(v) in self.inputs for v in same):
            raise _NotRecordable
        return same

    def _boundary(self, boundary: Boundary, x):
        """A DTensor call (subclasses.py): one node whose target is the `Boundary`."""
        self.passing = True  # the call's own ATen ops are DTensor's business
        try:
            values = boundary(x)
            boundary.record_local(x)
        finally:
            self.passing = False
        self._record_call(boundary, [x], values)
        return values[0]

    def _node_of(self, x):
        if not isinstance(x, torch.Tensor):
            if symbolic(x):
                raise _NotRecordable
            return x
        found = self.nodes.get(id(x))
        if found is not None:
            return found[1]
        if isinstance(x, tp.FakeTensor):
            raise _NotRecordable  # made by something this recorder did not see
        name = f"_tensor_constant{len(self.nodes)}"
        setattr(self.constants, name, x)
        node = self.graph.get_attr(name)
        self._add(x, node)
        return node

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.passing:
            return func(*args, **kwargs)
        if self.policy is None:
            return self._dispatch(func, args, kwargs)
        self.depth += 1  # the policy is asked of the ops the region calls, as eager's is
        try:
            out = self._dispatch(func, args, kwargs)
        finally:
            self.depth -= 1
        if self.depth == 0 and tp.checkpoint_policy_says_save(self.policy, func, args, kwargs, out):
            flat = out if isinstance(out, tuple | list) else (out,)
            self.saved_by_policy.update(id(o) for o in flat if isinstance(o, torch.Tensor))
        return out

    def _dispatch(self, func, args, kwargs):
        if func is aten.lift_fresh.default:  # `torch.tensor(2.0)`: a copy, as make_fx records
            func = aten.lift_fresh_copy.default
        # the table's decomposition, else the op's own composite one (an op called below
        # autograd skips it), as make_fx does
        decomposition = self.table.get(func)
        if decomposition is None and func.namespace != "prim":  # prim ops have no such kernel
            decomposition = func.decompose
        if decomposition is not None:
            with self:
                out = decomposition(*args, **kwargs)
            if out is not NotImplemented:
                return out
        if schema(func).is_mutable:
            return self._functionalized(func, args, kwargs)
        if mutates_unsaid(func):
            raise _NotRecordable
        out = func(*args, **kwargs)
        flat = out if isinstance(out, tuple | list) else (out,)
        if any(symbolic(o) for o in flat) or torch.Tag.data_dependent_output in func.tags:
            raise _NotRecordable  # sizes or values known only at run time: make_fx's
        if schema(func).returns and not any(isinstance(o, torch.Tensor) for o in flat):
            return out  # a metadata query (prim.device, is_contiguous...): nothing to record
        # (an op that returns nothing is a check, `_linalg_check_errors`: recorded)
        node = self.graph.call_function(func, *tree_map(self._node_of, (tuple(args), kwargs)))
        node.meta.update(self.meta, val=out)
        if out is flat:
            for i, o in enumerate(flat):
                if isinstance(o, torch.Tensor):
                    item = self.graph.call_function(operator.getitem, (node, i))
                    item.meta.update(self.meta, val=o)
                    self._add(o, item)
        else:
            self._add(out, node)
        return out

    def _functionalized(self, func, args, kwargs):
        """An in-place op on a tensor nothing else views (a graph input, an intermediate),
        recorded as its functional form: later reads of that tensor read the new value."""
        form = functional_form(func)
        if form is None:
            raise _NotRecordable
        functional, n_returned = form
        from .record import normalize

        positional, keyword = normalize(func, args, kwargs)
        values = {**dict(zip((a.name for a in schema(func).arguments), positional)), **keyword}
        targets = [
            values[a.name]
            for a in schema(func).arguments
            if a.alias_info is not None and a.alias_info.is_write
        ]
        aliases = [self._whole_aliases(target) for target in targets]
        with self:  # with the defaults the in-place call left out (`bernoulli_()`'s p)
            out = functional(*positional, **keyword)
        flat = list(out) if isinstance(out, tuple | list) else [out]
        for target, same, new in zip(targets, aliases, flat[n_returned:], strict=True):
            if (new.shape, new.dtype) != (target.shape, target.dtype):
                raise _NotRecordable  # `int_tensor.add_(0.5)`: eager would refuse it
            for alias in same:  # each now reads the new value
                self.nodes[id(alias)] = (alias, self.nodes[id(new)][1])
            if id(target) in self.inputs:
                self.new_values[self.inputs[id(target)]] = new
        return tuple(flat[:n_returned]) if n_returned else targets[0]


def lower(gm: torch.fx.GraphModule, example_inputs, fake_mode, strict: bool) -> Lowered:
    dynamo = read(gm)
    if dynamo.subclass is not None:
        raise LoweringError(
            f"tensor subclass {dynamo.subclass.name}{where(dynamo.subclass.source)}: the tape "
            "runs plain tensors and DTensor only, and refuses other subclasses rather than "
            "differentiate ops whose meaning they change"
        )
    try:
        aten_gm, mutations, fake_mode = to_aten(
            without_grad_mode_changes(gm), dynamo, example_inputs, fake_mode
        )
    except Exception as e:  # noqa: BLE001 - reported to the user with the cause attached
        raise LoweringError(f"could not lower the graph to ATen: {type(e).__name__}: {e}") from e
    tape, namer = to_tape(aten_gm, strict, no_grad=dynamo.no_grad)
    traced = dynamo.inputs
    quiet = dynamo.written_under_no_grad
    recorded = [_recorded(traced[i]) and i not in quiet for i in mutations]
    leaves = [k for k, i in enumerate(mutations) if _is_leaf_requiring_grad(traced[i])]
    _differentiate_later_reads_as_the_leaf(tape, namer, mutations, leaves)
    return Lowered(
        tape,
        namer,
        fake_mode,
        mutations,
        dynamo.returns_input,
        aten_gm,
        recorded_mutations=recorded,
        fresh_outputs=dynamo.fresh_outputs,
    )


def _recorded(value) -> bool:
    """Whether eager's autograd records an in-place update of this graph input. Not for one
    that needs no gradient, and not for a leaf that requires one: eager refuses to write such a
    leaf under grad mode, so a program that does (`w.data.mul_(2)`, `nn.Embedding(max_norm=1)`
    renormalizing its weight under no_grad) writes it unrecorded."""
    return getattr(value, "requires_grad", True) and not getattr(value, "is_leaf", False)


def _is_leaf_requiring_grad(value) -> bool:
    return bool(getattr(value, "requires_grad", False) and getattr(value, "is_leaf", False))


class _WrittenLeaf:
    """`new = written_leaf(leaf, new)`: the value of a leaf that requires grad after an update
    autograd does not record (`w.data.mul_(2)`). Later reads of it are reads of the leaf, as in
    eager, where the leaf itself holds the new value: their gradient goes to the leaf, and
    none through the update."""

    name = __name__ = "written_leaf"

    def __call__(self, leaf, new):
        return [new]

    @staticmethod
    def propagate(g, y, leaf, new):
        return (g[0], None)


_WRITTEN_LEAF = _WrittenLeaf()


def _differentiate_later_reads_as_the_leaf(tape: Tape, namer, mutations, leaves: list[int]):
    for k in leaves:
        new, leaf = tape.outputs[k], tape.inputs[mutations[k]]
        at = next((i + 1 for i, e in enumerate(tape.entries) if new in e.outputs), None)
        user = len(mutations)
        read_later = at is not None and (
            any(new in e.inputs for e in tape.entries[at:]) or new in tape.outputs[user:]
        )
        if not read_later:  # an optimizer's update: nothing in the graph reads the new value
            continue
        read = namer(new.meta)
        source = tape.entries[at - 1].source
        entry = TapeEntry(_WRITTEN_LEAF, [leaf, new], {}, [read], source=source)
        entry.propagate, entry.kind = _WrittenLeaf.propagate, "rule"
        later = [
            dataclasses.replace(
                e,
                args=_replaced(e.args, new, read),
                kwargs={name: _replaced(a, new, read) for name, a in e.kwargs.items()},
            )
            for e in tape.entries[at:]
        ]
        tape.entries[at:] = [entry, *later]
        tape.outputs[user:] = [read if o is new else o for o in tape.outputs[user:]]


def _replaced(a, old, new):
    if a is old:
        return new
    if isinstance(a, list | tuple):
        return type(a)(_replaced(x, old, new) for x in a)
    return a


def _origin(node: torch.fx.Node) -> str | None:
    """The name of the Dynamo node an ATen node comes from: the recorder's own note, or the
    provenance make_fx and aot_export_module keep."""
    if "origin" in node.meta:
        return node.meta["origin"]
    sources = node.meta.get("from_node") or ()
    return getattr(sources[0], "name", None) if sources else None


_SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool, int, float, bool)


def to_tape(
    gm: torch.fx.GraphModule,
    strict: bool,
    name: str = "forward",
    no_grad: set | frozenset | bool = frozenset(),
    namer: Namer | None = None,
) -> tuple[Tape, Namer]:
    """The tape of an ATen graph. `no_grad`: names of the Dynamo nodes whose entries are
    constants to the backward, or True for all of them (a custom Function's forward body)."""
    namer = namer or Namer()
    tape = Tape(name)
    env: dict[torch.fx.Node, object] = {}

    def value(a):
        return torch.fx.node.map_arg(a, lambda n: env[n])

    for node in gm.graph.nodes:
        meta = node.meta.get("val")
        if node.op == "placeholder":
            env[node] = namer(meta)
            tape.inputs.append(env[node])
        elif node.op == "get_attr":
            env[node] = getattr(gm, node.target)  # a constant tensor
        elif node.op == "output":
            tape.outputs = list(value(node.args[0]))
        elif node.target is operator.getitem and isinstance(env[node.args[0]], list):
            env[node] = env[node.args[0]][node.args[1]]
        elif isinstance(node.target, Boundary):
            env[node] = _entry(tape, namer, node, value, meta, strict, no_grad is True)
        elif isinstance(node.target, BODIES):
            _lower_bodies(node.target, strict, namer)
            differentiable = no_grad is not True and _origin(node) not in no_grad
            env[node] = _entry(tape, namer, node, value, meta, strict, not differentiable)
        elif isinstance(node.target, OpOverload) and (
            not _is_scalar(meta) or _reads_data(node.target)
        ):
            constant = no_grad is True or _origin(node) in no_grad
            env[node] = _entry(tape, namer, node, value, meta, strict, constant)
        elif _is_scalar(meta):
            # size arithmetic (sym_size, s0 * 2...): its value is a SymInt expression, which
            # the code generator writes out in terms of the input sizes
            env[node] = meta
        else:
            raise LoweringError(f"unsupported node {node.format_node()}{where(source_of(node))}")
    return tape, namer


def _lower_bodies(op, strict: bool, namer: Namer) -> None:
    """The tapes of a body-running op's bodies, handed to it (bodies.py)."""
    tapes = [
        to_tape(b.graph, strict and b.strict, b.name, b.no_grad or frozenset(), namer)[0]
        for b in op.bodies_to_lower()
    ]
    if tapes:
        op.take_bodies(tapes)


def _is_scalar(meta) -> bool:
    return isinstance(meta, _SYMBOLIC)


def _reads_data(op) -> bool:
    # `x.item()`: a number known only at run time (an unbacked u0), computed by an entry
    return isinstance(op, OpOverload) and torch.Tag.data_dependent_output in op.tags


def _entry(tape, namer, node, value, meta, strict, no_grad=False):
    from .record import normalize

    args, kwargs = normalize(node.target, value(node.args), value(node.kwargs))
    several = isinstance(meta, tuple | list)
    outputs = [
        namer(m) if isinstance(m, torch.Tensor) or _reads_data(node.target) else None
        for m in (meta if several else [meta])
    ]
    entry = TapeEntry(node.target, args, kwargs, outputs, source=source_of(node))
    if no_grad:  # computed under torch.no_grad(): a constant to the backward, as in eager
        entry.propagate, entry.kind = None, "nondiff"
    elif isinstance(node.target, (*BODIES, Boundary)):  # rules of their own
        entry.propagate, entry.kind = node.target.propagate, "rule"
    else:
        entry.propagate, entry.kind = lookup(entry, strict=strict)
    tape.entries.append(entry)
    return outputs if several else outputs[0]
