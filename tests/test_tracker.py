"""TapeCounter and track(): counts that agree with Dynamo's CompileCounter, break sites at the
user's line, recompiles with the guard that failed, splits, and what the tape did not run."""

import inspect
import json
import logging
import os
import traceback

import pytest
import torch
import torch._dynamo
from helpers import Variable as SeedVariable
from helpers import grad as seed_grad
from helpers import reset_tape, simple
from torch._dynamo.backends.distributed import DDPOptimizer
from torch._dynamo.output_graph import GraphCompileReason
from torch._dynamo.testing import CompileCounter
from torch._logging._internal import trace_log

import dynamo_tape
from dynamo_tape import TapeCounter, track, tracker


def with_print(x, n):
    y = x.sin() * n
    print("between the two graphs")
    return y.cos() + 1


def prints_first(x):
    print("before any op")
    y = x.sin()
    print("between ops")
    return y.cos()


def breaks_inside(y):
    torch._dynamo.graph_break()
    return y * 2


def calls_a_breaking_function(x):
    y = x.sin()
    z = breaks_inside(y)
    return z.cos()


def data_dependent(x):
    y = x * 2
    if y.sum() > 0:
        return y.sin()
    return y.cos()


def scaled(x, n):
    return x.sin() * n


def affine_relu(x, w):
    return (x @ w).relu().sum()


@torch.library.custom_op("dynamo_tape_test::opaque_sin", mutates_args=())
def opaque_sin(x: torch.Tensor) -> torch.Tensor:
    return x.sin()


opaque_sin.register_fake(torch.empty_like)
opaque_sin.register_autograd(
    lambda ctx, g: g * ctx.x.cos(),
    setup_context=lambda ctx, inputs, output: setattr(ctx, "x", inputs[0]),
)


def uses_opaque(x):
    return opaque_sin(x) * 2


def line_of(fn, text: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


# ---- scenarios run once under CompileCounter and once under TapeCounter ----


def run_affine_relu(backend):
    f = torch.compile(affine_relu, backend=backend)
    w = torch.randn(4, 3, requires_grad=True)
    f(torch.randn(5, 4), w).backward()
    f(torch.randn(5, 4), w).backward()


def run_with_print(backend):
    f = torch.compile(with_print, backend=backend)
    f(torch.randn(3), 2)
    f(torch.randn(4), 2)
    f(torch.randn(4), 3)


def run_data_dependent(backend):
    f = torch.compile(data_dependent, backend=backend)
    f(torch.ones(3))
    f(-torch.ones(3))


def run_seed_split(backend):
    """The seed's split case: its forward and its `grad` compiled as two frames."""

    def forward(a, b):
        return simple(a, b).sum()

    a = SeedVariable.constant(torch.randn(10), name="a")
    b = SeedVariable.constant(torch.randn(10), name="b")
    reset_tape()
    loss = torch.compile(forward, backend=backend, fullgraph=True)(a, b)
    torch.compile(seed_grad, backend=backend, fullgraph=True)(loss, [a, b])
    reset_tape()


def run_ddp_buckets(backend):
    """DDPOptimizer without a process group: it splits the graph at bucket boundaries (two
    Linear layers per bucket) and compiles each bucket's graph with `backend`."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(8, 8) for _ in range(4)])
    cap = 2 * 8 * 9 * 4
    ddp = DDPOptimizer(bucket_bytes_cap=cap, first_bucket_cap=cap, backend_compile_fn=backend)
    torch.compile(model, backend=ddp.compile_fn)(torch.randn(2, 8)).sum().backward()


SCENARIOS = [run_affine_relu, run_with_print, run_data_dependent, run_seed_split, run_ddp_buckets]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_frame_and_op_counts_equal_compile_counters(scenario):
    counts = {}
    for counter in (CompileCounter(), TapeCounter()):
        torch._dynamo.reset()
        scenario(counter)
        counts[type(counter).__name__] = (counter.frame_count, counter.op_count)
    assert counts["TapeCounter"] == counts["CompileCounter"]
    assert counts["TapeCounter"][0] > 0


def test_print_is_one_break_site_however_often_compiled_or_called():
    counter = TapeCounter()
    f = torch.compile(with_print, backend=counter)
    for _ in range(3):
        f(torch.randn(3), 2)
    f(torch.randn(5), 2)  # a new shape compiles `with_print` a second time
    line = line_of(with_print, 'print("')
    assert counter.graph_break_count == 1
    (site,) = counter.breaks
    assert (site.filename, site.lineno, site.function) == (__file__, line, "with_print")
    assert "print" in site.reason
    assert site.count == sum(g.frame == "with_print" for g in counter.graphs) == 2
    assert site.line == 'print("between the two graphs")'
    # the rest of the function ran as Dynamo's resume frame, named after the user's function
    resume = f"torch_dynamo_resume_in_with_print_at_{line}"
    (resumed,) = {g.function for g in counter.graphs if g.frame == resume}
    assert resumed == f"with_print (resumed after line {line})"
    assert counter.splits == []  # a graph break is a break site, not also a split


def test_a_break_before_any_op_is_found_from_its_resume_frame():
    counter = TapeCounter()
    f = torch.compile(prints_first, backend=counter)
    f(torch.randn(3))
    f(torch.randn(3))
    first, second = line_of(prints_first, "before any op"), line_of(prints_first, "between ops")
    # no graph ends at the first print (nothing ran before it), so the backend only sees the
    # frame that resumes after it
    assert [g.frame for g in counter.graphs] == [
        f"torch_dynamo_resume_in_prints_first_at_{first}",
        f"torch_dynamo_resume_in_prints_first_at_{second}",
    ]
    sites = sorted((b.lineno, b.function, b.count) for b in counter.breaks)
    assert sites == [(first, "prints_first", 1), (second, "prints_first", 1)]
    assert all(b.filename == __file__ for b in counter.breaks)


def test_a_break_in_a_called_function_is_one_site_in_that_function():
    counter = TapeCounter()
    torch.compile(calls_a_breaking_function, backend=counter)(torch.randn(3))
    # Dynamo resumes both the callee and the caller after the break: still one site
    assert len([g for g in counter.graphs if g.frame.startswith("torch_dynamo_resume")]) == 2
    (site,) = counter.breaks
    line = line_of(breaks_inside, "graph_break()")
    assert (site.filename, site.lineno, site.function) == (__file__, line, "breaks_inside")


def test_a_break_inside_torch_is_reported_at_the_user_line_that_called_it():
    torch_file = os.path.join(os.path.dirname(torch.__file__), "nn", "modules", "module.py")
    stack = [
        traceback.FrameSummary(__file__, 7, "train_step"),
        traceback.FrameSummary(__file__, 12, "model_forward"),
        traceback.FrameSummary(torch_file, 1700, "_call_impl"),
    ]
    site, user_lines = tracker._break_site(GraphCompileReason("why\nmore", stack))
    assert (site.filename, site.lineno, site.function) == (__file__, 12, "model_forward")
    assert user_lines == [(__file__, 7), (__file__, 12)]


def test_data_dependent_branch_breaks_at_the_if():
    counter = TapeCounter()
    f = torch.compile(data_dependent, backend=counter)
    f(torch.ones(3))
    f(-torch.ones(3))
    (site,) = counter.breaks
    assert (site.filename, site.lineno) == (__file__, line_of(data_dependent, "if y.sum()"))


def test_shape_change_and_int_argument_recompile_with_reasons():
    counter = TapeCounter()
    f = torch.compile(scaled, backend=counter)
    f(torch.randn(3), 2)
    f(torch.randn(3), 2)
    assert counter.recompile_count == 0
    f(torch.randn(4), 2)
    f(torch.randn(4), 3)
    assert counter.recompile_count == 2
    shape, integer = counter.recompiles
    assert shape.compile_id == "0/1" and shape.frame == "scaled"
    assert "'x'" in shape.reason and "size mismatch" in shape.reason
    assert integer.compile_id == "0/2" and "n == 2" in integer.reason


def test_track_records_tape_compiles_inside_the_block_with_the_same_fields():
    counter = TapeCounter()
    run_with_print(counter)
    torch._dynamo.reset()
    with track() as outer:
        with track() as inner:
            run_with_print("tape")
        torch.compile(scaled, backend="tape")(torch.randn(2), 2)
    torch.compile(scaled, backend="tape")(torch.randn(2, 2), 2)  # outside: not recorded
    assert inner.graph_count == counter.graph_count
    assert outer.graph_count == counter.graph_count + 1

    def fields(tracked):
        # the counter's session goes on: the later compiles are other backends' to it
        data = tracked.as_dict(timings=False)
        del data["summary"]["other_backend_graphs"], data["other_backends"]
        return data

    assert fields(inner) == fields(counter)
    assert "compile_seconds" not in json.dumps(inner.as_dict(timings=False))


def test_ddp_bucket_graphs_are_a_split_not_a_break():
    counter = TapeCounter()
    run_ddp_buckets(counter)
    assert counter.graph_count >= 2 and counter.graph_break_count == 0
    (split,) = counter.splits
    assert split.kind == "DDP bucket split" and split.count == counter.graph_count
    assert len({g.compile_id for g in counter.graphs}) == 1


def test_ops_and_graphs_not_run_on_the_tape_are_reported():
    counter = TapeCounter()
    x = torch.randn(3, requires_grad=True)
    torch.compile(uses_opaque, backend=counter)(x).sum().backward()
    source = f"{__file__}:{line_of(uses_opaque, 'opaque_sin(x)')} in uses_opaque"
    (graph,) = counter.graphs
    assert graph.fallback_ops == [{"op": "opaque_sin", "source": source}]
    (split,) = counter.splits
    assert (split.kind, split.where) == ("fallback op", source)
    assert "opaque_sin" in split.reason

    torch._dynamo.reset()
    strict = TapeCounter(options={"fallback": "error"})
    with pytest.raises(torch._dynamo.exc.BackendCompilerFailed):
        torch.compile(uses_opaque, backend=strict)(x)
    assert strict.frame_count == 1
    (split,) = strict.splits
    assert split.kind == "graph not on tape" and "opaque_sin" in split.reason


def test_bytes_saved_for_backward_are_what_the_forward_saves():
    counter = TapeCounter()
    f = torch.compile(affine_relu, backend=counter)
    x, w = torch.randn(5, 4), torch.randn(4, 3, dtype=torch.float64).requires_grad_()
    f(x.double(), w)  # compiles
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        f(x.double(), w)
    (graph,) = counter.graphs
    assert graph.saved_bytes == sum(saved) > 0
    assert graph.backward_entries > 0


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_tapes_go_into_the_structured_trace():
    handler = _Records()
    trace_log.addHandler(handler)
    try:
        f = torch.compile(scaled, backend="tape")
        f(torch.randn(3, requires_grad=True), 2)
    finally:
        trace_log.removeHandler(handler)
    artifacts = {
        r.metadata["artifact"]["name"]: r.payload
        for r in handler.records
        if "artifact" in r.metadata and r.metadata["artifact"]["name"].startswith("dynamo_tape")
    }
    assert artifacts.keys() == {"dynamo_tape_forward_train", "dynamo_tape_backward"}
    assert artifacts["dynamo_tape_forward_train"] + "\n\n" + artifacts["dynamo_tape_backward"] == (
        dynamo_tape.last_tapes(sources=True)  # with each entry's module and line
    )


def test_report_and_json_hold_the_same_data():
    counter = TapeCounter()
    run_with_print(counter)
    text = counter.report()
    for heading in ("Summary", "Graphs", "Graph-break sites", "Splits", "Recompiles", "Tapes"):
        assert f"\n## {heading}\n" in text
    (site,) = counter.breaks
    (explained,) = site.as_dict()["explained"]
    assert f"| {explained['gb_type']} " in text.replace("  ", " ")  # one line in the table
    assert "\n" in site.reason  # the full text is in the JSON
    data = json.loads(counter.to_json())
    assert data["breaks"][0]["reason"] == site.reason
    assert data["breaks"][0]["explained"] == [explained]
    assert data["summary"]["recompiles"] == len(data["recompiles"]) == counter.recompile_count > 0
    assert [g["tapes"][0] for g in data["graphs"]] == [
        g.compiled.tape.text(sources=True) for g in counter.graphs
    ]
    for tape_text in data["graphs"][0]["tapes"]:
        assert tape_text in text
    counter.clear()
    assert (counter.frame_count, counter.op_count, counter.breaks, counter.recompiles) == (
        0,
        0,
        [],
        [],
    )
