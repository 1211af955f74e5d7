"""The recorder of higher-order ops: their bodies recorded as ATen graphs of their own.

Dynamo hands a custom autograd.Function, a checkpointed region, `torch.cond`, `map`,
`while_loop`, `invoke_subgraph`, `flex_attention` and a tensor hook over as a call of a
higher-order op whose bodies are submodules of the graph (`fwd_body_0`). `BodyRecorder` records
each body from its inputs' fake values as an ATen graph of its own, and the call as one node
whose target is an op of ours holding those graphs (`Cond(true_graph, false_graph)`...), then a
getitem per value it returns. The lowering makes the bodies into tapes (tape_builder.py).
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.fx

from . import torch_private as tp
from .aten_recorder import AtenRecorder, NotRecordable, drop_unread
from .checkpoint import Checkpointed
from .control_flow import Cond, Map, While
from .custom_function import CustomFunction
from .dynamo_graph import example_values, function_name, without_grad_mode_changes
from .hooks import TensorHook
from .ir import is_random
from .subgraphs import (
    FlexAttention,
    InvokeSubgraph,
    flex_attention_arguments,
    indexing_by_score_indices,
)


class BodyRecorder(AtenRecorder):
    """An `AtenRecorder` that also records higher-order ops; see the module docstring."""

    def __init__(self, table):
        super().__init__(table)
        self.hooks: dict[int, TensorHook] = {}  # id(hooked value) -> its hooks
        self.subgraphs: dict[str, InvokeSubgraph] = {}  # invoke_subgraph's identifier -> op
        # a selectively checkpointed region's policy, while its body is recorded; the values
        # of the ops it says to save; how deep in a decomposition the dispatch now is
        self.policy = None
        self.saved_by_policy: set[int] = set()
        self.depth = 0

    def call(self, gm: torch.fx.GraphModule, node: torch.fx.Node, args, kwargs):
        if node.op != "call_function":
            return super().call(gm, node, args, kwargs)
        if node.target is tp.autograd_function_apply:
            return self._custom_function(node, args, kwargs)
        if node.target is tp.tag_activation_checkpoint:
            return self._checkpoint(node, args, kwargs)
        if node.target is tp.cond:
            return self._cond(node, args)
        if node.target is tp.map_impl:
            return self._map(node, args)
        if node.target is tp.while_loop:
            return self._while_loop(node, args)
        if node.target is tp.invoke_subgraph:
            return self._invoke_subgraph(node, args)
        if node.target is tp.flex_attention:
            return self._flex_attention(node, args)
        if tp.is_register_hook(node.target):
            return self._tensor_hook(node, args)
        return super().call(gm, node, args, kwargs)

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
                raise NotRecordable  # it writes an input it does not return
            if unreturned:  # torch 2.12 returns `x.view_as(x)` for a `ctx.mark_dirty(x)`
                written.extend(unreturned)
                picked = [*picked, *(inputs[i] for i in unreturned)]
            self.graph.erase_node(self.graph.output_node())
            # a written input's node is now its new value (`ctx.mark_dirty`)
            self.graph.output(tuple(self._node_of(x) for x in picked))
            drop_unread(self.graph)
            return tp.LazyGraphModule(self.constants, self.graph)
        finally:
            self.graph, self.constants, self.nodes, self.inputs, self.new_values, self.views = outer
            self.meta = meta

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
                raise NotRecordable
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
            if self.views[tp.storage_id(x)] != 1:
                raise NotRecordable  # a view, or a tensor something views: refused
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
            raise NotRecordable from None  # a context_fn of the user's own: aot_export's
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
            raise NotRecordable
        body_graph = self._body(body, inputs, list)
        outs = node.meta.get("example_value")
        if not isinstance(outs, tuple | list):
            raise NotRecordable
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
            raise NotRecordable
        self._record_call(While(cond_graph, body_graph, len(carried)), inputs, list(outs))
        return tuple(outs)

    def _invoke_subgraph(self, node: torch.fx.Node, args):
        """`invoke_subgraph(subgraph, identifier, *operands)`: one node whose target is the
        identifier's `InvokeSubgraph` (subgraphs.py), recorded from its first call."""
        body, identifier, *operands = args
        outs = node.meta.get("example_value")
        if not isinstance(outs, tuple | list):
            raise NotRecordable
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
            raise NotRecordable
        arguments, operands, spec, positions = found
        flat = tp.tree_leaves(list(args))
        graphs = []
        for i in positions:
            inputs = example_values(flat[i])
            if any(x is None for x in inputs):
                raise NotRecordable
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

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.policy is None or self.passing:
            return super().__torch_dispatch__(func, types, args, kwargs)
        kwargs = kwargs or {}
        self.depth += 1  # the policy is asked of the ops the region calls, as eager's is
        try:
            out = self._dispatch(func, args, kwargs)
        finally:
            self.depth -= 1
        if self.depth == 0 and tp.checkpoint_policy_says_save(self.policy, func, args, kwargs, out):
            flat = out if isinstance(out, tuple | list) else (out,)
            self.saved_by_policy.update(id(o) for o in flat if isinstance(o, torch.Tensor))
        return out
