"""Two gloo processes on 127.0.0.1, started by a test and bounded in time."""

import datetime
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(worker, args: tuple, what: str, deadline_s: float) -> None:
    """`worker(rank, port, *args)` in WORLD spawned processes; the test fails if they do not
    finish within `deadline_s` (a guard against hangs), and none outlives it."""
    context = mp.start_processes(
        worker, args=(free_port(), *args), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + deadline_s
    try:
        while not context.join(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                pytest.fail(f"the {WORLD} processes of {what} did not finish within {deadline_s} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)


def join_group(rank: int, port: int) -> None:
    """In a worker: one thread, and the gloo process group on `port`."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=30),
    )
