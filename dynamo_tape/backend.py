"""The `tape` backend: Dynamo calls `tape(gm, example_inputs)` once per captured graph.

Registered through the `torch_dynamo_backends` entry point (pyproject.toml); this module must
not call `register_backend` itself, or torch >= 2.5 fails with "duplicate name".
"""

from __future__ import annotations

import time

import torch

from . import cache, tracker
from . import torch_private as tp
from .config import Config
from .dynamo_graph import lift_attributes
from .lower import lower
from .probes import Probes
from .records import function_label
from .runtime import CompiledGraph


def tape(gm: torch.fx.GraphModule, example_inputs, **kwargs):
    options = kwargs.pop("options", None)
    tracker.mode_ignored(kwargs.pop("mode", None))  # modes tune inductor: warned once, reported
    if kwargs:
        raise TypeError(f"tape backend: unexpected arguments {sorted(kwargs)}")
    config = Config.from_options(options)
    start = time.perf_counter()
    try:
        return compile_graph(gm, example_inputs, config)
    except Exception as e:
        # Dynamo turns this into an error or a silent eager fallback: the tracker reports it
        tracker.graph_failed(gm, example_inputs, e, time.perf_counter() - start)
        raise


def compile_graph(gm, example_inputs, config: Config):
    """A CompiledGraph, or where Dynamo's graph reads parameters or buffers as attributes (a
    compiled optimizer step), a function that passes them to it after the graph's inputs."""
    start = time.perf_counter()
    fake_mode = tp.detect_fake_mode(example_inputs)
    if fake_mode is None:
        fake_mode = tp.FakeTensorMode()
    graph, attributes = lift_attributes(gm)
    inputs = [*example_inputs, *attributes]
    name = gm.__class__.__name__
    # a graph another process compiled already is loaded (cache.py), else compiled and stored
    cached = cache.Entry.of(graph, inputs, config)
    compiled = cached.load()
    if compiled is None:
        compiled = _compiled(graph, inputs, fake_mode, config, name)
        cached.store(compiled)
    compiled.cache = cached.outcome
    probes = compiled.probes
    tracker.graph_compiled(gm, example_inputs, compiled, time.perf_counter() - start)
    fn = compiled
    if attributes:

        def fn(*args):
            return compiled(*args, *attributes)

        fn.compiled = compiled
    profile = probes.profile
    if profile is None:
        return fn
    code = tp.compiled_code()
    frame = function_label(code.co_name) if code is not None else name
    profile.label = f"{tp.current_compile_id()} {frame}"  # as the report names the graph
    for generated in compiled.program.code.values():  # now, not in the first profiled call
        if generated.make_probed is not None:
            generated.probed  # noqa: B018 - a cached property, computed here

    def timed(*args):  # the profile (profile.py) times the whole call
        return profile.timed_call("forward", fn, *args)

    timed.compiled = compiled
    return timed


def _compiled(graph, inputs, fake_mode, config: Config, name: str) -> CompiledGraph:
    lowered = lower(graph, inputs, fake_mode, strict=config.strict)
    plain = not any(map(tp.is_functorch_wrapped, inputs))
    probes = Probes(name, config.probe, config.detect_anomaly, config.numerics, config.profile)
    compiled = CompiledGraph(
        lowered, name=name, plain_inputs=plain, probes=probes, memory_budget=config.memory_budget
    )
    wrt = tuple(
        i
        for i in compiled.differentiable_inputs
        if isinstance(inputs[i], torch.Tensor) and inputs[i].requires_grad
    )
    # the backward tape is built at compile time; Dynamo compiles a graph under no_grad again
    # for grad mode (it guards on it), so that graph never needs one
    if wrt and torch.is_grad_enabled():
        compiled.plan(wrt)
    else:  # the forward alone runs: generated now, so that what the tracker shows runs
        compiled.inference  # noqa: B018 - a cached property, computed here
    return compiled


class TapeCounter(tracker.Tracked):
    """A backend like Dynamo's `CompileCounter` that compiles on the tape and records."""

    def __init__(self, options: dict | None = None):
        self.options = options
        super().__init__()

    def __call__(self, gm, example_inputs, **kwargs):
        if self.options is not None:
            kwargs.setdefault("options", self.options)
        with tracker.recording_into(self):
            return tape(gm, example_inputs, **kwargs)
