"""The persistent compile cache (dynamo_tape/cache.py): a second process hits, and runs what the
first compiled without lowering, differentiating or generating code; what keys an entry; the
graphs it refuses; corrupt entries ignored; the off switch and clearing.

conftest.py turns the cache off for the suite; each test here turns it on in a folder of its
own (`cache_dir`)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import dynamo_tape
from dynamo_tape import cache
from dynamo_tape.tools.examples.models import GPT, gpt_batch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DYNAMO_TAPE_CACHE_DIR", str(folder))
    monkeypatch.setenv("DYNAMO_TAPE_CACHE", "1")
    cache.counters.clear()
    return folder


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dtc")) if folder.is_dir() else []


# ---- a second process -----------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    import dynamo_tape
    from dynamo_tape import cache
    from dynamo_tape.tools.examples.models import GPT, gpt_batch

    if sys.argv[1] == "forbid":  # a hit must not lower, differentiate or generate code
        import dynamo_tape.backend, dynamo_tape.codegen, dynamo_tape.runtime

        def forbidden(*args, **kwargs):
            raise AssertionError("ran on a cache hit")

        dynamo_tape.backend.lower = dynamo_tape.runtime.grad = forbidden
        dynamo_tape.codegen.generate = dynamo_tape.runtime.compile_tape = forbidden
        dynamo_tape.runtime.compile_whole = forbidden

    torch.manual_seed(0)
    model = GPT().double()
    batch = gpt_batch(model, torch.Generator().manual_seed(0), torch.float64)
    step = torch.compile(model, backend="tape")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses, grads = [], []
    for _ in range(3):
        optimizer.zero_grad()
        loss = step(*batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        grads.append([p.grad.flatten().tolist() for p in model.parameters()])
    print(json.dumps({
        "outcome": cache.last_outcome, "counters": dict(cache.counters), "losses": losses,
        "grads": grads, "tapes": dynamo_tape.last_tapes(sources=True),
        "traces": [t.text() for t in dynamo_tape.last_traces()],
    }))
    """
)


def run_script(tmp_path: Path, cache_dir: Path, mode: str) -> dict:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(script), mode], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def eager_run():
    torch.manual_seed(0)
    model = GPT().double()
    batch = gpt_batch(model, torch.Generator().manual_seed(0), torch.float64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses, grads = [], []
    for _ in range(3):
        optimizer.zero_grad()
        loss = model(*batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        grads.append([p.grad.flatten().tolist() for p in model.parameters()])
    return losses, grads


def test_a_second_process_hits_runs_no_compile_step_and_trains_the_same(tmp_path, cache_dir):
    first = run_script(tmp_path, cache_dir, "plain")
    assert first["outcome"] == "miss" and first["counters"] == {"miss": 1, "stored": 1}
    assert len(entries(cache_dir)) == 1
    second = run_script(tmp_path, cache_dir, "forbid")  # lowering, grad, codegen would raise
    assert second["outcome"] == "hit" and second["counters"] == {"hit": 1}
    # what prints is what runs: the same tapes and traces as the process that compiled them
    assert second["tapes"] == first["tapes"]
    assert second["traces"] == first["traces"]
    assert second["losses"] == first["losses"] and second["grads"] == first["grads"]
    losses, grads = eager_run()
    torch.testing.assert_close(torch.tensor(second["losses"]), torch.tensor(losses), rtol=1e-10,
                               atol=1e-12)  # fmt: skip
    for ours, theirs in zip(second["grads"], grads, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-9, atol=1e-12)


# ---- in one process: a hit after torch._dynamo.reset() ------------------------------------


def mlp_step(options=None, x=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.GELU(), torch.nn.Linear(8, 3)
    ).double()
    x = torch.randn(5, 4, dtype=torch.float64) if x is None else x
    compiled = torch.compile(model, backend="tape", options=options)
    loss = compiled(x).pow(2).sum()
    loss.backward()
    return loss.detach(), [p.grad for p in model.parameters()], [*model.buffers()]


def compile_again(options=None, x=None):
    torch._dynamo.reset()
    return mlp_step(options, x)


def test_a_hit_prints_and_computes_what_the_miss_did(cache_dir):
    loss, grads, buffers = mlp_step()
    assert cache.last_outcome == "miss"
    tapes, traces = dynamo_tape.last_tapes(sources=True), dynamo_tape.last_traces()
    code = dynamo_tape.last_code()
    again, grads_again, buffers_again = compile_again()
    assert cache.last_outcome == "hit"
    assert dynamo_tape.last_tapes(sources=True) == tapes
    assert [t.text() for t in dynamo_tape.last_traces()] == [t.text() for t in traces]
    assert dynamo_tape.last_code() == code
    assert torch.equal(again, loss)
    for a, b in zip([*grads_again, *buffers_again], [*grads, *buffers], strict=True):
        assert torch.equal(a, b)  # BatchNorm's running statistics updated alike


def test_the_tracker_records_the_outcome(cache_dir):
    mlp_step()
    torch._dynamo.reset()
    with dynamo_tape.track() as tracked:
        mlp_step()
    (graph,) = tracked.graphs
    assert graph.cache == "hit" and graph.as_dict()["cache"] == "hit"


def test_a_loaded_graph_builds_new_plans_and_double_backward(cache_dir):
    def f(x, w):
        return (x * w).tanh().sum()

    x = torch.randn(3, dtype=torch.float64)
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    torch.compile(f, backend="tape")(x, w).backward()
    torch._dynamo.reset()
    compiled = torch.compile(f, backend="tape")
    w.grad = None
    compiled(x, w).backward()
    assert cache.last_outcome == "hit"
    # a double backward differentiates the loaded tapes: their fake tensors made again
    (g,) = torch.autograd.grad(compiled(x, w), w, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), w)
    w2 = w.detach().requires_grad_()
    (eg,) = torch.autograd.grad(f(x, w2), w2, create_graph=True)
    (egg,) = torch.autograd.grad(eg.sum(), w2)
    torch.testing.assert_close(g, eg, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gg, egg, rtol=1e-12, atol=1e-12)


def test_what_keys_an_entry(cache_dir, monkeypatch):
    mlp_step()
    assert cache.last_outcome == "miss"
    compile_again()
    assert cache.last_outcome == "hit"
    compile_again({"fallback": "error"})  # another option
    assert cache.last_outcome == "miss"
    compile_again({"memory_budget": 0.5})  # every option is part of the key
    assert cache.last_outcome == "miss"
    compile_again({"memory_budget": 0.5})
    assert cache.last_outcome == "hit"
    compile_again(x=torch.randn(6, 4, dtype=torch.float64))  # another shape: another graph
    assert cache.last_outcome == "miss"
    torch._dynamo.reset()
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.GELU(), torch.nn.Linear(8, 3)
    ).double()
    with torch.no_grad():  # grad mode
        torch.compile(model, backend="tape")(torch.randn(5, 4, dtype=torch.float64))
    assert cache.last_outcome == "miss"
    with monkeypatch.context() as patched:
        patched.setattr(torch, "__version__", "2.99.0+another")  # another torch
        cache._environment.cache_clear()
        try:
            compile_again()
            assert cache.last_outcome == "miss"
        finally:
            cache._environment.cache_clear()
    compile_again()
    assert cache.last_outcome == "hit"


def test_the_source_hash_changes_with_any_source_file(tmp_path):
    package = tmp_path / "package"
    (package / "rules").mkdir(parents=True)
    (package / "rules" / "pointwise.py").write_text("RULES = {}\n")
    (package / "ir.py").write_text("x = 1\n")
    before = cache.source_hash(package)
    (package / "rules" / "pointwise.py").write_text("RULES = {1: 2}\n")
    assert cache.source_hash(package) != before
    assert cache.source_hash() == cache.source_hash()  # the package's own: stable


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "flipped byte"])
def test_a_corrupt_entry_is_ignored_and_replaced(cache_dir, damage):
    loss, grads, _ = mlp_step()
    (path,) = entries(cache_dir)
    data = path.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "garbage": os.urandom(len(data)),
        "empty": b"",
        "flipped byte": data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:],
    }[damage]
    path.write_bytes(damaged)
    again, grads_again, _ = compile_again()
    assert cache.last_outcome == "miss" and cache.counters["unreadable"] == 1
    assert torch.equal(again, loss)
    assert path.read_bytes() != damaged  # compiled again, and stored over it
    compile_again()
    assert cache.last_outcome == "hit"


def test_off_by_the_environment_or_the_option(cache_dir, monkeypatch):
    mlp_step({"cache": False})
    assert cache.last_outcome == "off" and not entries(cache_dir)
    monkeypatch.setenv("DYNAMO_TAPE_CACHE", "0")
    compile_again()
    assert cache.last_outcome == "off" and not entries(cache_dir)


def test_clear_removes_the_entries_only(cache_dir):
    mlp_step()
    assert entries(cache_dir)
    (cache_dir / "notes.txt").write_text("not ours")
    done = subprocess.run(
        [sys.executable, "-m", "dynamo_tape.cache", "--clear"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "removed 1 entries" in done.stdout
    assert not entries(cache_dir) and (cache_dir / "notes.txt").exists()


def test_graphs_the_cache_refuses_say_why(cache_dir):
    def f(x):
        return (x.sin() * 2).sum()

    torch.compile(f, backend="tape", dynamic=True)(torch.randn(4, requires_grad=True))
    assert cache.last_outcome == "not cacheable: symbolic sizes"

    def checkpointed(x):
        return torch.utils.checkpoint.checkpoint(torch.sin, x, use_reentrant=False).sum()

    torch._dynamo.reset()
    torch.compile(checkpointed, backend="tape")(torch.randn(4, requires_grad=True))
    assert cache.last_outcome.startswith("not cacheable: higher-order op")

    torch._dynamo.reset()
    torch.compile(f, backend="tape", options={"probe": lambda *a: None})(torch.randn(4))
    assert cache.last_outcome.startswith("not cacheable: probe options")
    assert not entries(cache_dir)


def test_gpt_in_process_hit_matches(cache_dir):
    torch.manual_seed(0)
    model = GPT()
    batch = gpt_batch(model, torch.Generator().manual_seed(0), torch.float32)
    compiled = torch.compile(model, backend="tape")
    first = compiled(*batch)
    torch._dynamo.reset()
    again = torch.compile(model, backend="tape")(*batch)
    assert cache.last_outcome == "hit"
    assert torch.equal(first, again)


def adam_steps():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    step = torch.compile(optimizer.step, backend="tape")
    step()
    step()
    return [p.detach().clone() for p in model.parameters()]


def test_a_compiled_optimizer_step_hits_and_updates_alike(cache_dir):
    # its parameters and state are attributes of Dynamo's graph, made inputs (lift_attributes)
    first = adam_steps()
    assert cache.last_outcome == "miss"
    torch._dynamo.reset()
    again = adam_steps()
    assert cache.last_outcome == "hit"
    for a, b in zip(again, first, strict=True):
        assert torch.equal(a, b)


def test_a_graph_compiled_without_grad_hits(cache_dir):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8)).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    with torch.no_grad():
        first = torch.compile(model, backend="tape")(x)
        assert cache.last_outcome == "miss"
        tapes = dynamo_tape.last_tapes()
        torch._dynamo.reset()
        again = torch.compile(model, backend="tape")(x)
    assert cache.last_outcome == "hit" and dynamo_tape.last_tapes() == tapes
    assert torch.equal(first, again)


def test_a_graph_holding_a_real_constant_hits(cache_dir):
    # `torch.tensor(...)` in the function is a real tensor in the tape (Llama's tiny config
    # holds one); loaded inside the backend, where Dynamo's fake mode is ambient, it must come
    # back real, on its device, with its values
    def f(x):
        return (x * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum()

    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    outcomes = []
    for _ in range(2):
        torch._dynamo.reset()
        loss = torch.compile(f, backend="tape")(x)
        (grad,) = torch.autograd.grad(loss, x)
        outcomes.append(cache.last_outcome)
        assert torch.equal(loss, f(x)) and torch.equal(grad, torch.tensor([1.0, 2.0, 3.0]).double())
    assert outcomes == ["miss", "hit"]
