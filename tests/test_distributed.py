"""Tensor parallelism (DTensor) and FSDP2 on two gloo processes, compiled on the tape, and the
probes on DTensor programs.

Each case trains a few steps uncompiled, on the tape and (for tensor parallelism) under
`aot_eager`, every rank with its own data, and compares losses and gradients (the full
tensors, gathered from the shards) step by step. The processes start on a free loopback port
and are bounded in time, as in test_ddp.py.
"""

import copy

import pytest
import torch
import torch.distributed as dist
from processes import WORLD, join_group, run_workers
from torch._dynamo.testing import CompileCounter
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Shard
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    RowwiseParallel,
    SequenceParallel,
    parallelize_module,
)

import dynamo_tape
from dynamo_tape.backend import TapeCounter
from dynamo_tape.subclasses import Boundary
from dynamo_tape.tracker import last_compiled

DEADLINE_S = 90  # a guard against hangs
STEPS = 3


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    layers = [torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8)]
    return torch.nn.Sequential(*layers).double()


def norm_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    layers = [torch.nn.LayerNorm(8), torch.nn.Linear(8, 16), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(16, 8)).double()


def train(model, rank, shape, steps=STEPS):
    """(loss, full gradients) of each step, on this rank's own data."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(100 + rank)
    record = []
    for _ in range(steps):
        x = torch.randn(*shape, dtype=torch.float64, generator=generator)
        optimizer.zero_grad()
        loss = model(x).pow(2).sum()
        loss.backward()
        grads = [getattr(p.grad, "full_tensor", p.grad.clone)() for p in model.parameters()]
        record.append((loss.detach().clone(), grads))
        optimizer.step()
    return record


def assert_same_training(got, expected, what):
    for step, ((loss, grads), (want_loss, want_grads)) in enumerate(zip(got, expected)):

        def message(m, step=step):
            return f"{what} step {step}: {m}"

        torch.testing.assert_close(loss, want_loss, msg=message)
        for g, w in zip(grads, want_grads, strict=True):
            torch.testing.assert_close(g, w, msg=message)


def collectives(counter) -> set:
    """The `_c10d_functional` ops that the tapes' DTensor calls run on the local tensors."""
    return {
        str(entry.op).split(".")[1]
        for graph in counter.graphs
        for entry in graph.compiled.tape.entries
        if isinstance(entry.op, Boundary)
        for entry in entry.op.local_tape.entries
        if str(entry.op).startswith("_c10d_functional.")
    }


def check_compiled_parallel(rank, make, plan, shape, expected_collectives):
    torch._dynamo.reset()  # the modules' code objects are shared: no recompile across cases
    mesh = init_device_mesh("cpu", (WORLD,))

    def parallel():
        return parallelize_module(copy.deepcopy(make()), mesh, plan)

    eager = train(parallel(), rank, shape)
    counter = TapeCounter()
    on_tape = train(torch.compile(parallel(), backend=counter), rank, shape)
    assert_same_training(on_tape, eager, f"rank {rank} tape")
    assert_same_training(train(torch.compile(parallel(), backend="aot_eager"), rank, shape),
                         eager, f"rank {rank} aot_eager")  # fmt: skip
    assert counter.graph_count >= 1 and not any(g.not_on_tape for g in counter.graphs)
    assert sum(g.compiled.calls["backward"] for g in counter.graphs) == STEPS
    assert collectives(counter) >= expected_collectives
    assert "{S(0)}" in counter.graphs[0].compiled.tape.text()  # types show their placements
    # the backward runs eager's own backward of each DTensor call
    backward = next(iter(counter.graphs[0].compiled.plans.values())).backward.tape
    assert any(e.op.name.startswith("vjp[redistribute") for e in backward.entries)


def tensor_parallel(rank):
    plan = {"0": ColwiseParallel(), "2": RowwiseParallel()}
    check_compiled_parallel(rank, mlp, plan, (4, 8), {"all_reduce", "wait_tensor"})
    # symbolic sizes: refused by name (make_fx would take the local tensors for constants)
    torch._dynamo.reset()
    model = parallelize_module(mlp(), init_device_mesh("cpu", (WORLD,)), plan)
    counter = TapeCounter()
    with pytest.raises(
        Exception,
        match=r"DTensor graph \(from .*\): the tape runs DTensor programs with static sizes only",
    ):
        torch.compile(model, backend=counter, dynamic=True)(torch.randn(4, 8).double())
    assert counter.graphs[0].not_on_tape.startswith("LoweringError")
    # sequence parallel: LayerNorm on the sequence shards, gathered for the column-wise layer
    plan = {
        "0": SequenceParallel(),
        "1": ColwiseParallel(input_layouts=Shard(1)),
        "3": RowwiseParallel(output_layouts=Shard(1)),
    }
    check_compiled_parallel(rank, norm_mlp, plan, (2, 4, 8), {"all_gather_into_tensor"})


def fully_sharded(rank):
    mesh = init_device_mesh("cpu", (WORLD,))

    def sharded():
        model = mlp()
        for layer in (model[0], model[2], model):
            fully_shard(layer, mesh=mesh)
        return model

    eager = train(sharded(), rank, (4, 8))
    # Compiling the root module: Dynamo breaks at FSDP2's hooks (torch._dynamo.disable) and
    # captures no graph, on the tape as under aot_eager; training is eager's.
    counter, dynamo_counter = TapeCounter(), CompileCounter()
    assert_same_training(train(torch.compile(sharded(), backend=counter), rank, (4, 8)), eager,
                         f"rank {rank} root compiled")  # fmt: skip
    train(torch.compile(sharded(), backend=dynamo_counter), rank, (4, 8), steps=1)
    assert counter.graph_count == dynamo_counter.frame_count == 0
    # Compiling each layer's forward: FSDP2's hooks run around it, the graphs get the
    # gathered parameters as plain tensors
    model, counter = sharded(), TapeCounter()
    for layer in (model[0], model[2]):
        layer.forward = torch.compile(layer.forward, backend=counter)
    assert_same_training(train(model, rank, (4, 8)), eager, f"rank {rank} layers compiled")
    assert counter.graph_count == 2 and not any(g.not_on_tape for g in counter.graphs)
    assert all(g.compiled.calls["backward"] == STEPS for g in counter.graphs)


def probed(rank):
    """The probes on DTensor programs: a user's probe, the float64 shadow and the anomaly check
    see DTensor values (the shadow's errors and the messages' extremes from this rank's
    shard, without collectives); training is unchanged; a NaN raises on every rank."""
    mesh = init_device_mesh("cpu", (WORLD,))
    plan = {"0": ColwiseParallel(), "2": RowwiseParallel()}
    eager = train(parallelize_module(mlp(), mesh, plan), rank, (4, 8))
    seen = []

    def probe(entry, inputs, outputs, phase):
        seen.append((phase, entry))

    model = parallelize_module(mlp(), mesh, plan)
    options = {"probe": probe, "numerics": "float64", "detect_anomaly": True}
    f = torch.compile(model, backend="tape", options=options)
    assert_same_training(train(f, rank, (4, 8)), eager, f"rank {rank} probed")
    compiled = last_compiled()
    program = compiled.program
    entries = {*program.final("forward_train").entries, *program.final("backward").entries}
    assert {e for _, e in seen} == entries
    assert {p for p, _ in seen} == {"forward", "backward"}
    shadowed = dynamo_tape.last_numerics().ranked()
    assert any(isinstance(e.entry.op, Boundary) for e in shadowed)
    assert all(e.error < 1e-12 for e in shadowed)  # float64 against float64
    x = torch.randn(4, 8, dtype=torch.float64)
    x[0, 0] = float("nan")
    with pytest.raises(dynamo_tape.NonFiniteError, match=r"input v0 \(args\[0\]\) .* already nan"):
        f(x)

    def root(x):
        return torch.sqrt(model(x) - 10).sum()

    with pytest.raises(dynamo_tape.NonFiniteError, match="made a NaN") as raised:
        torch.compile(root, backend="tape", options={"detect_anomaly": True})(x.nan_to_num())
    assert "return torch.sqrt(model(x) - 10).sum()" in str(raised.value)
    assert raised.value.entry.op is torch.ops.aten.sqrt.default


CASES = {"tensor_parallel": tensor_parallel, "fully_sharded": fully_sharded, "probed": probed}


def worker(rank, port, case):
    join_group(rank, port)
    try:
        CASES[case](rank)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_training_matches_uncompiled(case, monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    run_workers(worker, (case,), case, DEADLINE_S)
