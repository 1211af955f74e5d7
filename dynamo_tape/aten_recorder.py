"""The recorder: Dynamo's graph run once on fake tensors, its ATen calls appended to a new graph.

`AtenRecorder` is a dispatch mode that runs a torch-level FX graph and records each ATen op it
dispatches (decomposed by a table, else by the op's own composite kernel, as make_fx does) as
a node, with its fake value (`val`) and the Dynamo node's stack trace. make_fx does the same
through proxies at about twice the cost. In-place ops on tensors nothing else views (`out +=
x`, BatchNorm's running statistics) are recorded in their functional form; the new values of
mutated graph inputs become leading outputs, as aot_export_module gives them. DTensor's calls
are one node each (`Boundary`), their own ATen ops DTensor's business. What it cannot record
(symbolic sizes, a mutation of a view, a tensor it did not see made) raises `NotRecordable`,
and the graph goes to make_fx or aot_export_module (aten_graph.py). Higher-order ops are
body_recorder.py's.
"""

from __future__ import annotations

import operator
from collections import Counter

import torch
import torch.fx

from . import torch_private as tp
from .dynamo_graph import symbolic
from .forms import functional_form, mutates_unsaid
from .ir import is_random
from .metas import fake_call
from .ops import aten
from .record import normalize
from .subclasses import Boundary, boundary_of
from .torch_private import OpOverload, schema, tree_map


class NotRecordable(Exception):
    """The recorder cannot record this graph: make_fx's or aot_export_module's."""


_storage = tp.storage_id


def _layout(x: torch.Tensor) -> tuple:
    return x.shape, x.stride(), x.storage_offset(), x.dtype


def drop_unread(graph: torch.fx.Graph):
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


class AtenRecorder(tp.TorchDispatchMode):
    """Runs a torch-level FX graph and records the ATen ops it dispatches (decomposed by
    `table`) as a new FX graph; see the module docstring."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.graph = torch.fx.Graph()
        self.constants = torch.nn.Module()
        self.nodes: dict[int, tuple[torch.Tensor, torch.fx.Node]] = {}  # id(fake) -> node
        self.inputs: dict[int, int] = {}  # id(fake input) -> its position
        self.new_values: dict[int, torch.Tensor] = {}  # input position -> its value now
        self.views: Counter = Counter()  # storage -> how many recorded tensors use it
        self.meta: dict = {}  # of the Dynamo node being run: its stack trace, modules and name
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
                self.meta = {
                    "stack_trace": node.meta.get("stack_trace"),
                    "nn_module_stack": node.meta.get("nn_module_stack"),
                    "origin": node.name,
                }
                args_, kwargs = torch.fx.node.map_arg((node.args, node.kwargs), env.__getitem__)
                env[node] = self.call(gm, node, args_, kwargs)
        raise NotRecordable  # a graph without output

    def call(self, gm: torch.fx.GraphModule, node: torch.fx.Node, args, kwargs):
        """Runs one node of the graph on its values, recording the ATen ops it dispatches."""
        if (boundary := boundary_of(node, args, kwargs)) is not None:
            return self._boundary(boundary, args[0])
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        if node.op == "call_module":
            return gm.get_submodule(node.target)(*args, **kwargs)
        return tp.get_attr(gm, node.target)  # get_attr: Dynamo's constants are real tensors

    def _record_call(self, op, inputs, values) -> list[torch.fx.Node]:
        """One node calling `op` (an op of ours: a body-running op, a `Boundary`) on `inputs`,
        and a getitem node per value it returns; later reads of those values read the
        getitems."""
        call = self.graph.call_function(op, tuple(self._node_of(x) for x in inputs))
        call.meta.update(self.meta, val=tuple(values))
        items = []
        for i, v in enumerate(values):
            item = self.graph.call_function(operator.getitem, (call, i))
            item.meta.update(self.meta, val=v)
            self._add(v, item)
            items.append(item)
        return items

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

    def _whole_aliases(self, target) -> list[torch.Tensor]:
        """The recorded tensors an in-place write to `target` writes: itself alone, or also its
        aliases of the same layout (dropout's kernel writes `bernoulli_` into a `detach` of a
        fresh tensor), none a graph input. A partial view is aot_export's to functionalize."""
        if id(target) not in self.nodes:
            raise NotRecordable
        if self.views[_storage(target)] == 1:
            return [target]
        layout = _layout(target)
        same = [v for v, _ in self.nodes.values() if _storage(v) == _storage(target)]
        if any(_layout(v) != layout or id(v) in self.inputs for v in same):
            raise NotRecordable
        return same

    def _node_of(self, x):
        if not isinstance(x, torch.Tensor):
            if symbolic(x):
                raise NotRecordable
            return x
        found = self.nodes.get(id(x))
        if found is not None:
            return found[1]
        if isinstance(x, tp.FakeTensor):
            raise NotRecordable  # made by something this recorder did not see
        name = f"_tensor_constant{len(self.nodes)}"
        setattr(self.constants, name, x)
        node = self.graph.get_attr(name)
        self._add(x, node)
        return node

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.passing:
            return func(*args, **kwargs)
        return self._dispatch(func, args, kwargs)

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
            raise NotRecordable
        out = fake_call(func, args, kwargs)
        flat = out if isinstance(out, tuple | list) else (out,)
        if any(symbolic(o) for o in flat) or torch.Tag.data_dependent_output in func.tags:
            raise NotRecordable  # sizes or values known only at run time: make_fx's
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
            raise NotRecordable
        functional, n_returned = form
        positional, keyword = normalize(func, args, kwargs)
        values = {**dict(zip((a.name for a in schema(func).arguments), positional)), **keyword}
        targets = [
            values[a.name]
            for a in schema(func).arguments
            if a.alias_info is not None and a.alias_info.is_write
        ]
        aliases = [self._whole_aliases(target) for target in targets]
        with self:  # with the defaults the in-place call left out (`bernoulli_()`'s p)
            if func is aten.bernoulli_.float:
                out = _bernoulli_in_memory_order(functional, positional, keyword)
            else:
                out = functional(*positional, **keyword)
        flat = list(out) if isinstance(out, tuple | list) else [out]
        for target, same, new in zip(targets, aliases, flat[n_returned:], strict=True):
            if (new.shape, new.dtype) != (target.shape, target.dtype):
                raise NotRecordable  # `int_tensor.add_(0.5)`: eager would refuse it
            for alias in same:  # each now reads the new value
                self.nodes[id(alias)] = (alias, self.nodes[id(new)][1])
            if id(target) in self.inputs:
                self.new_values[self.inputs[id(target)]] = new
        return tuple(flat[:n_returned]) if n_returned else targets[0]


def _bernoulli_in_memory_order(functional, positional, keyword):
    """`bernoulli_` fills its tensor in memory order and `bernoulli.p` allocates its result
    contiguous, so for a permuted tensor (dropout's `empty_like` of a transposed input) the two
    draw different masks. Drawing through a permute to memory order and back draws eager's mask,
    in eager's layout."""
    target, *rest = positional
    order = sorted(range(target.dim()), key=lambda d: -target.stride(d))
    in_memory = target.permute(order)
    if target.is_contiguous() or not in_memory.is_contiguous():
        return functional(target, *rest, **keyword)
    back = [order.index(d) for d in range(target.dim())]
    return functional(in_memory, *rest, **keyword).permute(back)
