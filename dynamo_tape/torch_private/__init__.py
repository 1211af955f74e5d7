"""Every read of torch's private surface, in one package.

The rest of dynamo_tape imports public torch APIs only, and this package for anything else,
as `from . import torch_private as tp` (then `tp.X`) or `from .torch_private import X`: the
names imported below are its API. Each is defined in the module of its area, whose docstring
says what it relies on:

  schemas.py         ops and their schemas (OpOverload's private attributes)
  dispatch.py        pytrees, dispatch modes, fake tensors
  lowering.py        decompositions, tracing, the ATen graph, the higher-order ops in it
  tensors.py         tensors at run time: storages, version counters, functorch, bindings
  subclasses.py      tensor subclasses: traceable wrappers, DTensor's calls in Dynamo's graph
  dynamo_inputs.py   Dynamo: where its graph's inputs come from
  dynamo_compile.py  Dynamo: the compile in progress, its graph breaks, recompiles, metrics
  tools.py           what only dynamo_tape.tools reads (the OpInfo database)

All of them were checked on torch 2.11.0, 2.12.1, 2.13.0, 2.14.1 and 2.15.0 (the supported
range, `torch>=2.11,<2.16`) by the default suite running on each
(`scripts/test_release.sh VERSION`). Where releases differ, the switch is in that module,
next to what it switches. The modules import torch and nothing of the rest of dynamo_tape;
of each other, only tensors.py imports subclasses.py.
"""

from .dispatch import (
    FakeTensor,
    FakeTensorMode,
    TorchDispatchMode,
    detect_fake_mode,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_unflatten,
)
from .dynamo_compile import (
    DDP_OPTIMIZER_FILE,
    RECOMPILE_LIMIT_GB_TYPE,
    TORCH_DIR,
    compile_subgraph_reason,
    compiled_code,
    compiles_between,
    compiling_a_wrapped_module,
    current_compile_id,
    default_backend,
    graph_break_message,
    graph_break_parts,
    graph_break_reason_at,
    outside_tracing,
    recompile_limit,
    recompile_reason,
    recompile_reason_parts,
    shorten_filename,
    trace_artifact,
)
from .dynamo_inputs import (
    attribute_sources,
    input_source,
)
from .lowering import (
    HigherOrderOperator,
    LazyGraphModule,
    NotSelective,
    PythonPrinter,
    aot_export_module,
    autograd_function_apply,
    checkpoint_policy,
    checkpoint_policy_says_save,
    cond,
    core_aten_decompositions,
    flex_attention,
    get_attr,
    invoke_subgraph,
    is_once_differentiable,
    is_register_hook,
    make_fx,
    map_impl,
    set_grad_enabled,
    size_hint,
    statically_known_true,
    symbolic_expr,
    tag_activation_checkpoint,
    while_loop,
)
from .schemas import (
    OpOverload,
    kernel,
    overload_name,
    schema,
)
from .subclasses import (
    dtensor_call_kind,
    is_traceable_wrapper_subclass,
    local_tensor,
    real_object,
)
from .tensors import (
    BINDINGS,
    c_apply,
    clear_saved_tensors,
    fake_empty_strided,
    foreach_copy_,
    functorch_transforms_active,
    is_alias_of,
    is_functorch_wrapped,
    profiler_enabled,
    storage_id,
    version,
    versions,
)
from .tools import (
    opinfo_database,
)

__all__ = [
    "BINDINGS",
    "DDP_OPTIMIZER_FILE",
    "FakeTensor",
    "FakeTensorMode",
    "LazyGraphModule",
    "OpOverload",
    "PythonPrinter",
    "TORCH_DIR",
    "TorchDispatchMode",
    "aot_export_module",
    "attribute_sources",
    "autograd_function_apply",
    "c_apply",
    "clear_saved_tensors",
    "fake_empty_strided",
    "compile_subgraph_reason",
    "compiled_code",
    "compiles_between",
    "compiling_a_wrapped_module",
    "graph_break_message",
    "graph_break_parts",
    "graph_break_reason_at",
    "cond",
    "core_aten_decompositions",
    "current_compile_id",
    "default_backend",
    "outside_tracing",
    "dtensor_call_kind",
    "detect_fake_mode",
    "flex_attention",
    "foreach_copy_",
    "get_attr",
    "functorch_transforms_active",
    "invoke_subgraph",
    "input_source",
    "is_alias_of",
    "is_functorch_wrapped",
    "is_once_differentiable",
    "is_register_hook",
    "is_traceable_wrapper_subclass",
    "local_tensor",
    "kernel",
    "make_fx",
    "map_impl",
    "opinfo_database",
    "profiler_enabled",
    "overload_name",
    "real_object",
    "RECOMPILE_LIMIT_GB_TYPE",
    "recompile_limit",
    "recompile_reason",
    "recompile_reason_parts",
    "schema",
    "set_grad_enabled",
    "shorten_filename",
    "size_hint",
    "statically_known_true",
    "tag_activation_checkpoint",
    "HigherOrderOperator",
    "checkpoint_policy",
    "checkpoint_policy_says_save",
    "NotSelective",
    "storage_id",
    "symbolic_expr",
    "trace_artifact",
    "tree_flatten",
    "tree_leaves",
    "tree_map",
    "tree_unflatten",
    "version",
    "versions",
    "while_loop",
]
