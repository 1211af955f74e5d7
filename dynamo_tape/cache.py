"""A persistent compile cache: a process that compiles a graph another process compiled already
(a training job restarted, a test suite run again) loads what that one built, and skips the
lowering, the backward tape's construction, the passes and the code generation.

An entry holds the `CompiledGraph` as it was right after compiling: its program (every trace,
so `last_traces()`, `last_tapes()` and the reports show what runs), its plans, and the generated
sources with their compiled code objects (marshalled), exec'd again on load. Variables' fake
tensors are stored as plain specs (shape, strides, offset, dtype, device, requires_grad, which
storage) and become fake tensors again, in a fake mode of the loaded graph's own, only when
something reads them (printing a tape, building a plan for other inputs, a double backward):
running the loaded code reads none. Real tensors the tape holds (constants) are stored as
`torch.save` writes them.

The key is a hash of everything the compile reads: torch's version, Python's, pyproject.toml
(the project's version) and a hash of the package's source files (an edited checkout never
hits), the options, grad mode, the default dtype, autocast, the attention-kernel switches and
deterministic mode, and Dynamo's graph (each node as FX prints it, with its stack trace and
module path; each input's shape, strides, dtype, device, requires_grad, whether it is a leaf,
where Dynamo says it comes from, and which inputs share a storage). Graphs the cache cannot key
or store exactly are compiled as before, with the reason in `last_outcome` (and the tracker's
GraphRecord.cache): symbolic sizes, tensor subclasses (DTensor), functorch-wrapped inputs,
higher-order ops (their bodies), calls of functions that are not torch's own, attributes that
are no parameter or buffer, constants without a plain form, probe options.
`DYNAMO_TAPE_CACHE_KEYS=FILE` appends what each key hashes to FILE (to find why a graph missed).

`DYNAMO_TAPE_CACHE_DIR` says where (default `$XDG_CACHE_HOME/dynamo_tape`, else
`~/.cache/dynamo_tape`); `DYNAMO_TAPE_CACHE=0`, or `options={"cache": False}`, turns it off;
`python -m dynamo_tape.cache --clear` empties it (of its entries, `*.dtc`, only). Entries are
written to a temporary file and renamed into place; one that fails to load for any reason
(truncated, garbage, another key or format, a checksum that does not match, an error while
unpickling) is ignored and compiled again, and the new entry replaces it. Nothing evicts
entries. They are pickles: the cache directory must be the user's own, as torch's inductor
cache is.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import hashlib
import importlib
import io
import json
import logging
import marshal
import os
import pickle
import sys
import tempfile
import types
from pathlib import Path

import torch

from . import torch_private as tp
from .codegen import CompiledTape, compile_source
from .config import Config
from .dynamo_graph import module_root
from .ir import Namer, Variable
from .lower import Lowered
from .probes import Probes
from .runtime import CompiledGraph, Recompute
from .torch_private import FakeTensor, FakeTensorMode, OpOverload

log = logging.getLogger(__name__)

FORMAT = 1  # of an entry: bumped when what is stored changes
_MAGIC = b"dynamo_tape cache\n"
_SUFFIX = ".dtc"

# what happened to each graph in this process: hit, miss (compiled, then stored), off,
# not cacheable, unreadable (an entry ignored), store failed
counters: collections.Counter = collections.Counter()
last_outcome = ""  # of the last graph: "hit", "miss", "off", "not cacheable: ..."


class NotCacheable(Exception):
    """The graph cannot be keyed or stored exactly; the message says why."""


def directory() -> Path:
    found = os.environ.get("DYNAMO_TAPE_CACHE_DIR")
    if found:
        return Path(found)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dynamo_tape"


def enabled(config: Config) -> bool:
    return config.cache and os.environ.get("DYNAMO_TAPE_CACHE", "1") != "0"


def clear() -> int:
    """Remove every entry (and nothing else) from the cache directory; how many were removed."""
    folder = directory()
    removed = 0
    if folder.is_dir():
        for path in folder.iterdir():
            if path.suffix == _SUFFIX or (path.name.startswith(".tmp") and path.is_file()):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


# ---- the entry of one graph --------------------------------------------------------------


class Entry:
    """The cache's view of one graph being compiled: `load()` the CompiledGraph stored for it,
    or, once compiled, `store(compiled)`. Where the cache is off or the graph not cacheable,
    both do nothing."""

    def __init__(self, key: str | None, outcome: str):
        self.key, self.outcome = key, outcome

    @classmethod
    def of(cls, graph: torch.fx.GraphModule, inputs: list, config: Config) -> Entry:
        if not enabled(config):
            return cls(None, "off")
        try:
            return cls(graph_key(graph, inputs, config), "miss")
        except NotCacheable as e:
            return cls(None, f"not cacheable: {e}")
        except Exception as e:  # noqa: BLE001 - the cache never fails a compile
            return cls(None, f"not cacheable: {type(e).__name__} while keying it: {e}")

    @property
    def path(self) -> Path:
        return directory() / f"{self.key}{_SUFFIX}"

    def load(self) -> CompiledGraph | None:
        global last_outcome
        compiled = None
        if self.key is not None:
            try:
                compiled = _read(self.path, self.key)
            except FileNotFoundError:
                pass
            except Exception as e:  # noqa: BLE001 - never trusted: compiled again, replaced
                counters["unreadable"] += 1
                log.warning("dynamo_tape cache: ignoring entry %s: %s: %s", self.path,
                            type(e).__name__, e)  # fmt: skip
        if compiled is not None:
            self.outcome = last_outcome = "hit"
            counters["hit"] += 1
        return compiled

    def store(self, compiled: CompiledGraph) -> None:
        """After a miss (or where the cache is off, or the graph not cacheable: nothing)."""
        global last_outcome
        try:
            if self.key is not None:
                self._store(compiled)
        finally:
            last_outcome = self.outcome
            counters[self.outcome.split(":")[0]] += 1

    def _store(self, compiled: CompiledGraph) -> None:
        try:
            payload = dumps(compiled)
        except NotCacheable as e:
            self.outcome = f"not cacheable: {e}"
            return
        except Exception as e:  # noqa: BLE001 - an object pickle refuses: compiled each time
            self.outcome = f"not cacheable: {type(e).__name__}: {e}"
            return
        try:
            _write(self.path, self.key, payload)
            counters["stored"] += 1
        except Exception as e:  # noqa: BLE001 - a read-only or full disk costs the cache only
            counters["store failed"] += 1
            log.warning("dynamo_tape cache: could not write %s: %s", self.path, e)


def _read(path: Path, key: str) -> CompiledGraph:
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        raise ValueError("not a cache entry")
    header_end = data.index(b"\n", len(_MAGIC))
    header = json.loads(data[len(_MAGIC) : header_end])
    payload = data[header_end + 1 :]
    if header.get("format") != FORMAT or header.get("key") != key:
        raise ValueError("another format or key")
    if header.get("sha256") != hashlib.sha256(payload).hexdigest():
        raise ValueError("checksum mismatch")
    compiled = loads(payload)
    if not isinstance(compiled, CompiledGraph):
        raise TypeError(f"holds a {type(compiled).__name__}")
    return compiled


def _write(path: Path, key: str, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"format": FORMAT, "key": key, "torch": torch.__version__,
                         "sha256": hashlib.sha256(payload).hexdigest()})  # fmt: skip
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + header.encode() + b"\n" + payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- the key -----------------------------------------------------------------------------


def source_hash(root: Path = Path(__file__).parent) -> str:
    """A hash of the package's Python sources, names and contents: a checkout edited anywhere
    (a rule, a pass, the code generator) keys every graph anew."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if d != "__pycache__"]
        found += [os.path.join(folder, f) for f in files if f.endswith(".py")]
    sources = hashlib.sha256()
    for path in sorted(found):
        with open(path, "rb") as f:
            sources.update(os.path.relpath(path, root).encode() + b"\0" + f.read() + b"\0")
    return sources.hexdigest()


@functools.cache
def _environment() -> str:
    """What every key shares in this process: the releases and the project's own sources."""
    # the project's version and dependencies: pyproject.toml beside the package, in a
    # checkout (importlib.metadata's answer costs more than all the rest of the key)
    pyproject = Path(__file__).parent.parent / "pyproject.toml"
    if pyproject.is_file():
        project = hashlib.sha256(pyproject.read_bytes()).hexdigest()
    else:
        from importlib.metadata import version

        project = version("dynamo-tape")
    return "\n".join([
        f"format {FORMAT}", f"torch {torch.__version__} {torch.version.git_version}",
        f"python {sys.version}", f"dynamo-tape {project} {source_hash()}",
    ])  # fmt: skip


def graph_key(graph: torch.fx.GraphModule, inputs: list, config: Config) -> str:
    """The hash of everything compiling `graph` on `inputs` reads (the module docstring);
    raises NotCacheable for a graph the cache does not take."""
    if config.probe is not None or config.detect_anomaly or config.numerics or config.profile:
        raise NotCacheable("probe options (their code is generated in the process)")
    for node in graph.graph.nodes:  # the likeliest reason first
        if node.op == "call_function" and isinstance(node.target, tp.HigherOrderOperator):
            raise NotCacheable(f"higher-order op {node.target.__name__} (its bodies)")
    options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    options.pop("cache")
    parts = [_environment(), f"options {sorted(options.items())} grad {torch.is_grad_enabled()}"]
    parts.append(f"default dtype {torch.get_default_dtype()} autocast {_autocast()}")
    parts.append(_global_flags())
    root = module_root()
    parts.append(f"root {root}")
    placeholders = list(graph.graph.find_nodes(op="placeholder"))
    if len(placeholders) != len(inputs):
        raise NotCacheable("inputs do not match the graph's placeholders")
    storages: dict[int, int] = {}
    for node, x in zip(placeholders, inputs, strict=True):
        # what input_name reads (the placeholder's target is in its node's text below)
        source = f"{node.meta.get('attribute')} {tp.input_source(node)}"
        traced = _value(node.meta.get("example_value", node.meta.get("val")))
        storage = ""
        if isinstance(x, torch.Tensor):
            storage = storages.setdefault(tp.storage_id(x), len(storages))
        parts.append(f"input {source} {_value(x)}\n  traced {traced}\n  storage {storage}")
    parts += map(_node_text, graph.graph.nodes)
    text = "\n".join(parts)
    if os.environ.get("DYNAMO_TAPE_CACHE_KEYS"):  # what the key hashes, for finding a miss
        with open(os.environ["DYNAMO_TAPE_CACHE_KEYS"], "a") as f:
            f.write(text + "\n\n")
    return hashlib.sha256(text.encode()).hexdigest()


def _autocast() -> str:
    return " ".join(
        f"{d}:{torch.is_autocast_enabled(d)}:{torch.get_autocast_dtype(d)}" for d in ("cpu", "cuda")
    )


_SDP_FLAGS = ("flash_sdp_enabled", "mem_efficient_sdp_enabled", "math_sdp_enabled",
              "cudnn_sdp_enabled")  # fmt: skip


def _global_flags() -> str:
    """Switches tracing reads: which attention kernel the ATen graph records, and whether
    deterministic algorithms are asked for."""
    cuda = torch.backends.cuda
    sdp = [getattr(cuda, name)() for name in _SDP_FLAGS if hasattr(cuda, name)]
    return f"sdp {sdp} deterministic {torch.are_deterministic_algorithms_enabled()}"


_TENSORS = (torch.Tensor, torch.nn.Parameter, FakeTensor, torch.nn.Buffer)
_SYMBOLS = (torch.SymInt, torch.SymFloat, torch.SymBool)


def _value(x) -> str:
    """An input, or Dynamo's traced value of it: all the compile reads of it."""
    kind = type(x)
    if kind in _TENSORS:
        offset = x.storage_offset()
        if x._has_symbolic_sizes_strides or type(offset) is not int:
            raise NotCacheable("symbolic sizes")
        if kind is not FakeTensor and tp.is_functorch_wrapped(x):
            raise NotCacheable("a functorch-wrapped input")
        if x.layout is not torch.strided or x.is_conj() or x.is_neg():
            raise NotCacheable("a tensor input of another layout, or with its conj/neg bit set")
        return (f"{x.dtype} {x.device} {x.shape} {x.stride()} {offset} "
                f"grad={x.requires_grad} leaf={x.is_leaf} {kind.__name__}")  # fmt: skip
    if x is None:
        return "None"
    if kind in (bool, int, float):
        return repr(x)
    if isinstance(x, _SYMBOLS):
        raise NotCacheable("symbolic sizes")
    if isinstance(x, torch.Tensor):
        raise NotCacheable(f"a tensor subclass input ({kind.__name__})")
    raise NotCacheable(f"an input of type {kind.__name__}")


_PLAIN_TARGETS = (types.BuiltinFunctionType, types.MethodDescriptorType,
                  types.WrapperDescriptorType, OpOverload)  # fmt: skip
_TORCH_FUNCTIONS = ("torch.", "torch", "math", "operator", "builtins", "_operator")
_TARGET_TEXT: dict = {}  # a call's target -> its text in a key, for the ones keyed so far


def _target_text(target) -> str:
    """What a call_function node calls, by its module and name; NotCacheable for a function
    that is not torch's (or Python's) own, whose code the releases keyed do not fix."""
    text = _TARGET_TEXT.get(target)
    if text is None:
        module = getattr(target, "__module__", None) or ""
        # a Python function only where its module holds it by its name (max_pool2d, made by
        # boolean_dispatch), not one made at run time around the user's code
        plain = isinstance(target, _PLAIN_TARGETS) or (
            isinstance(target, types.FunctionType)
            and getattr(sys.modules.get(module), target.__name__, None) is target
        )
        if not plain or not module.startswith(_TORCH_FUNCTIONS):
            raise NotCacheable(f"a call of {getattr(target, '__qualname__', target)!r}")
        text = _TARGET_TEXT[target] = f"{module}.{getattr(target, '__qualname__', target)}"
    return text


def _node_text(node: torch.fx.Node) -> str:
    op = node.op
    if op == "call_function":
        target = _target_text(node.target)
    elif op == "call_module":
        raise NotCacheable(f"a call of module {node.target}")
    elif op == "get_attr":
        raise NotCacheable(f"an attribute read ({node.target}) that is no parameter or buffer")
    else:
        target = str(node.target)
    meta = node.meta
    # the modules it ran in by their paths and classes (repr names a class by module and
    # qualname), not by their ids; what module_of reads
    modules = repr(list((meta.get("nn_module_stack") or {}).values()))
    value = f"\n  value {_output_text(node)}" if op != "placeholder" else ""
    return (f"{op} {node.name} {target} {_arg_text((node.args, node.kwargs))}\n"
            f"  stack {meta.get('stack_trace')}\n  modules {modules}{value}")  # fmt: skip


def _output_text(node) -> str:
    value = node.meta.get("example_value")
    values = value if isinstance(value, list | tuple) else [value]
    found = []
    for v in values:
        if isinstance(v, torch.Tensor):
            found.append(f"{_value(v)} view={v._is_view()}")
        elif isinstance(v, _SYMBOLS):
            raise NotCacheable("symbolic sizes")
        else:
            found.append(type(v).__name__)
    return "; ".join(found)


_PLAIN_VALUES = (type(None), bool, int, float, str, torch.dtype, torch.device, torch.layout,
                 torch.memory_format, type(...), slice)  # fmt: skip


def _arg_text(a) -> str:
    kind = type(a)
    if kind is torch.fx.Node:
        return a.name
    if kind in _SCALARS:
        return repr(a) if kind is not str else f"str:{a!r}"  # 1, 1.0, True: repr tells them
    if isinstance(a, list | tuple):
        return f"{kind.__name__}({', '.join(map(_arg_text, a))})"
    if isinstance(a, dict):
        return "{" + ", ".join(f"{k!r}: {_arg_text(v)}" for k, v in a.items()) + "}"
    if isinstance(a, slice):
        return f"slice({_arg_text((a.start, a.stop, a.step))})"
    if isinstance(a, _PLAIN_VALUES):
        return f"{kind.__name__}:{a!r}"
    raise NotCacheable(f"a constant of type {kind.__name__} in the graph")


_SCALARS = {type(None), bool, int, float, str}


# ---- storing: pickles with reducers of our own ----------------------------------------------


class _Pickler(pickle.Pickler):
    """Pickles a CompiledGraph: fake tensors as specs, ops by name, generated code as its
    source and globals, the fake mode and the probes as markers; refuses what it cannot store
    exactly (NotCacheable)."""

    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.storages: dict[int, int] = {}

    def persistent_id(self, obj):
        if obj is _CONTEXT:
            return "context"
        if isinstance(obj, FakeTensorMode):
            return "fake_mode"
        return None

    def reducer_override(self, obj):  # noqa: C901 - one case per kind of object
        kind = type(obj)
        if kind is FakeTensor:
            return _Spec, self._spec(obj)
        if isinstance(obj, torch.Tensor):
            if kind not in (torch.Tensor, torch.nn.Parameter) or tp.is_functorch_wrapped(obj):
                raise NotCacheable(f"a {kind.__name__} in the tape")
            return _constant, (_saved(obj),)  # a real constant
        if isinstance(obj, torch.SymInt | torch.SymFloat | torch.SymBool):
            raise NotCacheable("symbolic sizes")
        if isinstance(obj, OpOverload):
            return _op, (tp.schema(obj).name, tp.overload_name(obj))
        if isinstance(obj, Variable):
            return _variable, (obj.name, _SLOT.__get__(obj), obj.label)
        if kind is CompiledGraph:
            state = {k: v for k, v in vars(obj).items() if k not in ("probes", "calls")}
            return _graph, (state,)
        if kind is CompiledTape:
            return _code, _code_args(obj)
        if kind is Lowered:
            fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
            fields["aten_graph"] = None  # the ATen graph: only the coverage sweep reads it
            return _lowered, (fields,)
        if kind is Recompute:
            fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
            fields["graph"] = None  # compiled again on the first double backward
            return _recompute, (fields,)
        if kind is Namer:
            return _namer, (int(repr(obj._count)[len("count(") : -1]),)
        if kind is _KernelOf:
            return _kernel, (obj.op,)
        if kind is types.ModuleType:
            return importlib.import_module, (obj.__name__,)
        if kind in (types.BuiltinFunctionType, types.MethodDescriptorType):
            index = _binding_index(obj)
            return NotImplemented if index is None else (_binding, (index, obj.__name__))
        if isinstance(obj, types.FunctionType):
            op = _rule_ops().get(id(obj))
            if op is not None and ("<" in obj.__qualname__):  # a lambda or a closure of a table
                return _rule, (op,)
            return NotImplemented  # by reference: pickle refuses a local function itself
        if isinstance(obj, torch.fx.GraphModule | tp.HigherOrderOperator | types.CodeType):
            raise NotCacheable(f"a {kind.__name__} in the tape")
        if isinstance(obj, _ALLOWED) or kind.__module__.startswith("dynamo_tape."):
            _check_own(obj)
            return NotImplemented
        raise NotCacheable(f"a {kind.__module__}.{kind.__qualname__} in the tape")

    def _spec(self, t: FakeTensor) -> tuple:
        if t.layout is not torch.strided or t.is_conj() or t.is_neg():
            raise NotCacheable("a tensor of another layout, or with its conj/neg bit set")
        storage = t.untyped_storage()
        index = self.storages.setdefault(storage._cdata, len(self.storages))
        return (_CONTEXT, tuple(t.shape), tuple(t.stride()), t.storage_offset(), t.dtype,
                t.device, t.requires_grad, index, storage.nbytes())  # fmt: skip


_ALLOWED = (torch.dtype, torch.device, torch.layout, torch.memory_format, functools.partial,
            range, slice, type(...), type, torch.fx.immutable_collections.immutable_list,
            torch.fx.immutable_collections.immutable_dict, torch.Size)  # fmt: skip


def _check_own(obj) -> None:
    from .subclasses import Boundary, BoundaryVJP
    from .tape_builder import BODIES

    if isinstance(obj, (*BODIES, Boundary, BoundaryVJP)):
        raise NotCacheable(f"{type(obj).__name__} runs bodies of its own")


_CONTEXT = object()  # stands for the loading graph's fake mode, in each spec


class _KernelOf:
    """`kernel(op)` in generated code's globals: stored as the op."""

    def __init__(self, op):
        self.op = op


def _code_args(code: CompiledTape) -> tuple:
    fn = code.fn
    kernels = {id(tp.kernel(e.op)): e.op for e in code.line_entries.values()
               if isinstance(e.op, OpOverload)}  # fmt: skip
    names = {k: v for k, v in fn.__globals__.items() if k not in ("__builtins__", fn.__name__)}
    names = {k: _KernelOf(kernels[id(v)]) if id(v) in kernels else v for k, v in names.items()}
    label = code.filename.removeprefix("<dynamo_tape ").rsplit(" #", 1)[0]
    lines = (code.line_entries, code.probe_lines)
    # the compiled code object too: loading it is a tenth of compiling the source again
    compiled = marshal.dumps(compile(code.source, code.filename, "exec"))
    return (code.source, names, fn.__name__, label, lines, code.make_probed, code.name,
            code.phase, compiled, code.boxed)  # fmt: skip


@functools.cache
def _rule_ops() -> dict:
    from .rules import RULES

    return {id(rule): op for op, rule in RULES.items()}


def _binding_index(fn) -> int | None:
    """Where a Python binding of an ATen op is found (pickle's own lookup by `__qualname__`
    misses `torch._C._VariableFunctions`); None for other builtins, pickled by reference."""
    for i, namespace in enumerate(tp.BINDINGS):
        if getattr(namespace, fn.__name__, None) is fn:
            return i
    return None


def dumps(compiled: CompiledGraph) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer).dump(compiled)
    return buffer.getvalue()


# ---- loading -------------------------------------------------------------------------------


class _Unpickler(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file)
        self.context = _Context()

    def persistent_load(self, pid):
        if pid == "context":
            return self.context
        if pid == "fake_mode":
            return self.context.fake_mode
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")


class _Context:
    """What the Variables of one loaded graph share: its fake mode, and one fake storage per
    storage of the compile's (views of one storage stay views of one)."""

    def __init__(self):
        self.fake_mode = FakeTensorMode()
        self.bases: dict[int, torch.Tensor] = {}


def loads(payload: bytes) -> CompiledGraph:
    return _Unpickler(io.BytesIO(payload)).load()


class _Spec:
    """A fake tensor as stored; `tensor()` makes it again, in its graph's fake mode."""

    __slots__ = ("context", "shape", "stride", "offset", "dtype", "device", "requires_grad",
                 "storage", "nbytes")  # fmt: skip

    def __init__(self, context, shape, stride, offset, dtype, device, requires_grad, storage,
                 nbytes):  # fmt: skip
        self.context, self.shape, self.stride, self.offset = context, shape, stride, offset
        self.dtype, self.device, self.requires_grad = dtype, device, requires_grad
        self.storage, self.nbytes = storage, nbytes

    def tensor(self) -> torch.Tensor:
        context = self.context
        with torch.no_grad(), context.fake_mode:
            base = context.bases.get(self.storage)
            itemsize = self.dtype.itemsize
            if base is None:
                base = torch.empty(max(self.nbytes // itemsize, 1), dtype=self.dtype,
                                   device=self.device)  # fmt: skip
                context.bases[self.storage] = base
            if base.dtype == self.dtype:
                t = base.as_strided(self.shape, self.stride, self.offset)
            else:  # a storage read as two dtypes: each its own (rare; aliasing not kept)
                t = torch.empty_strided(self.shape, self.stride, dtype=self.dtype,
                                        device=self.device)  # fmt: skip
            if self.requires_grad:
                t.requires_grad_(True)
        return t


_SLOT = Variable.__dict__["meta"]


class _RestoredVariable(Variable):
    """A Variable of a loaded graph: its spec becomes a fake tensor when first read."""

    __slots__ = ()

    @property
    def meta(self):
        value = _SLOT.__get__(self)
        if type(value) is _Spec:
            value = value.tensor()
            _SLOT.__set__(self, value)
        return value

    @meta.setter
    def meta(self, value):
        _SLOT.__set__(self, value)


def _variable(name, meta, label):
    cls = _RestoredVariable if type(meta) is _Spec else Variable
    return cls(name, meta, label)


def _saved(t: torch.Tensor) -> bytes:
    """A real tensor of the tape (a constant) as `torch.save` writes it: dtype, device, sizes,
    strides, offset and requires_grad kept; two constants sharing a storage load as two."""
    buffer = io.BytesIO()
    torch.save(t, buffer)
    return buffer.getvalue()


def _constant(data: bytes) -> torch.Tensor:
    with tp.outside_tracing():  # loaded inside the backend, where Dynamo's fake mode is ambient
        return torch.load(io.BytesIO(data), weights_only=True)


def _op(name: str, overload: str):
    namespace, op = name.split("::")
    return getattr(getattr(getattr(torch.ops, namespace), op), overload)


def _kernel(op):
    return tp.kernel(op)


def _binding(index: int, name: str):
    return getattr(tp.BINDINGS[index], name)


def _rule(op):
    from .rules import RULES

    return RULES[op]


def _namer(start: int) -> Namer:
    namer = Namer()
    namer._count = __import__("itertools").count(start)
    return namer


def _lowered(fields) -> Lowered:
    return Lowered(**fields)


def _recompute(fields) -> Recompute:
    return Recompute(**fields)


def _graph(state) -> CompiledGraph:
    graph = CompiledGraph.__new__(CompiledGraph)
    graph.__dict__.update(state)
    graph.probes = Probes(graph.name)
    graph.calls = dict.fromkeys(("inference", "forward", "backward", "double_backward"), 0)
    return graph


def _code(source, names, fn_name, label, lines, make_probed, name, phase, compiled, boxed):
    code = compile_source(source, names, fn_name, label, lines, marshal.loads(compiled))
    code.make_probed, code.name, code.phase, code.boxed = make_probed, name, phase, boxed
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dynamo_tape.cache")
    parser.add_argument("--clear", action="store_true", help="remove every entry")
    options = parser.parse_args(argv)
    if options.clear:
        print(f"removed {clear()} entries from {directory()}")
    else:
        entries = list(directory().glob(f"*{_SUFFIX}")) if directory().is_dir() else []
        size = sum(p.stat().st_size for p in entries)
        print(f"{directory()}: {len(entries)} entries, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
