"""Data-parallel training: `DDP(torch.compile(model, backend=...))` with gloo, two processes.

On torch 2.13 this is the form that works: DDP's forward is running when Dynamo compiles the
wrapped module, so DDPOptimizer splits the graph at bucket boundaries and the backend is
called once per bucket. `torch.compile(DDP(model))` captures no graph (Dynamo breaks inside
DDP.forward and the module runs eagerly). The test starts both processes itself, on a free
loopback port, and is bounded in time.
"""

import copy

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from processes import join_group, run_workers
from torch._dynamo.testing import CompileCounter
from torch.nn.parallel import DistributedDataParallel as DDP

from dynamo_tape.backend import TapeCounter

DEADLINE_S = 90  # a guard against hangs; the test takes ~15 s on an idle machine
# DDPOptimizer's first bucket holds 1 MiB and bucket_cap_mb may not be smaller; a float64
# Linear(256, 256) is 0.5 MiB, so four of them make two buckets.
BUCKET_CAP_MB = 1
WIDTH, LAYERS = 256, 4


def make_model(width=WIDTH) -> torch.nn.Module:
    layers = []
    for _ in range(LAYERS):
        layers += [torch.nn.Linear(width, width), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers).double()


def train(model, steps, rank, width=WIDTH):
    """Gradients of each step; every rank sees different data, so DDP must average them."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(100 + rank)
    grads = []
    for _ in range(steps):
        x = torch.randn(8, width, dtype=torch.float64, generator=generator)
        cotangent = torch.randn(8, width, dtype=torch.float64, generator=generator)
        optimizer.zero_grad()
        model(x).backward(cotangent)
        grads.append([p.grad.clone() for p in model.parameters()])
        optimizer.step()
    return grads


def ddp_splits(counter):
    return [s for s in counter.splits if s.kind == "DDP bucket split"]


def worker(rank, port):
    join_group(rank, port)
    try:
        torch.manual_seed(0)
        model = make_model()

        def ddp(module):
            return DDP(module, bucket_cap_mb=BUCKET_CAP_MB)

        def ddp_of_compiled(backend, module=model):
            return ddp(torch.compile(copy.deepcopy(module), backend=backend))

        # same gradients as uncompiled DDP, step after step
        counter = TapeCounter()
        expected = train(ddp(copy.deepcopy(model)), 2, rank)
        got = train(ddp_of_compiled(counter), 2, rank)
        for step, (want, have) in enumerate(zip(expected, got)):
            for w, h in zip(want, have):
                torch.testing.assert_close(
                    h, w, msg=lambda m, step=step: f"rank {rank} step {step}: {m}"
                )
        assert all(g.compiled.calls["backward"] == 2 for g in counter.graphs)

        # the tracker reports DDPOptimizer's split: as many bucket graphs as Dynamo's own
        # counter sees with the same model and buckets
        dynamo_counter = CompileCounter()
        ddp_of_compiled(dynamo_counter)(torch.randn(8, WIDTH, dtype=torch.float64))
        assert counter.graph_count == dynamo_counter.frame_count > 1
        (split,) = ddp_splits(counter)
        assert split.count == counter.graph_count

        # without DDPOptimizer: one graph, no split
        torch._dynamo.reset()
        torch._dynamo.config.optimize_ddp = False
        whole = TapeCounter()
        train(ddp_of_compiled(whole), 1, rank)
        assert whole.graph_count == 1 and not ddp_splits(whole)
        torch._dynamo.config.optimize_ddp = True

        # parameters that fit one bucket: DDPOptimizer hands the graph over whole, no split
        torch._dynamo.reset()
        single = TapeCounter()
        train(ddp_of_compiled(single, make_model(width=32)), 1, rank, width=32)
        assert single.graph_count == 1 and not ddp_splits(single)

        # the other order captures nothing on torch 2.13 (README: which form works)
        torch._dynamo.reset()
        outside = TapeCounter()
        train(torch.compile(ddp(copy.deepcopy(model)), backend=outside), 1, rank)
        assert outside.graph_count == 0
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_ddp_of_compiled_model_matches_eager_ddp_and_reports_bucket_splits(monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    try:
        run_workers(worker, (), "DDP", DEADLINE_S)
    except mp.ProcessExitedException as e:
        # Once in a full CI run a worker died by SIGABRT inside torch ("terminate called without
        # an active exception") before any of our assertions; it never reproduced in dozens of
        # runs. A death by signal is retried once; a failed assertion (ProcessRaisedException)
        # never is.
        if e.signal_name is None:
            raise
        run_workers(worker, (), "DDP", DEADLINE_S)
