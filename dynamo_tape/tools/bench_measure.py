"""The benchmark's measurements, in one process. Per model and backend: the first call (compile
+ one forward and backward), the steady-state training step (forward + backward), inference
under `torch.no_grad()`, and the bytes the autograd graph keeps for backward (every tensor
`saved_tensors_hooks` sees, counted once per storage, leaving out the parameters' and the
batch's own storages, which live anyway). The backends run interleaved, step by step, in
several rounds; `summarize` takes each one's medians (`Summary`), which the report
(`bench_report.py`) renders."""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..backend import tape as tape_backend
from .bench_models import Model, WideMLP, classification_batch

BACKENDS = ["eager", "aot_eager", "tape"]

# Dynamo with its `eager` backend: the captured graph runs as it is. Its first call is the
# part every backend pays (Dynamo's tracing and guards, the kernels): the floor for first calls.
# Its steady state shows what Dynamo's frame and guards cost per call.
DYNAMO_ALONE = "Dynamo alone"


@dataclass
class Runner:
    backend: str
    model: nn.Module
    fn: Callable
    first_call_s: float = 0.0
    step_s: list[float] = field(default_factory=list)
    inference_s: list[float] = field(default_factory=list)
    saved_bytes: int = 0
    parameters: list = field(default_factory=list)
    backend_s: float = 0.0  # the tape's: CPU time inside the backend (compiling) in its first call
    hit: CacheHit | None = None  # the tape's: its first calls on a cache hit

    def __post_init__(self):
        self.parameters = list(self.model.parameters())


# the tape's first call where the persistent compile cache (dynamo_tape/cache.py) has the graph
CACHE_HIT = "tape, cache hit"


@dataclass
class CacheHit:
    """The tape's first calls on a cache hit, interleaved with Dynamo alone's (medians)."""

    first_call_s: float  # the tape's first call, its graphs loaded from the cache
    alone_first_call_s: float  # Dynamo alone's, in the same rounds
    backend_s: float  # CPU time inside the tape backend (keying and loading) in that first call


def _compile(model: nn.Module, backend: str, spent: list[float] | None = None):
    """`model` compiled for `backend`; for the tape, the CPU time each call of the backend
    takes (Dynamo calls it once per graph) is appended to `spent` where given."""
    spent = [] if spent is None else spent
    if backend == "eager":
        return model
    if backend in ("tape", CACHE_HIT):
        # the first call measures compiling, not loading from the cache; CACHE_HIT loads
        options = {"cache": False} if backend == "tape" else None

        def timed_tape(gm, example_inputs):
            start = _clock()
            try:
                return tape_backend(gm, example_inputs, options=options)
            finally:
                spent.append(_clock() - start)

        return torch.compile(model, backend=timed_tape)
    return torch.compile(model, backend="eager" if backend == DYNAMO_ALONE else backend)


def _step(runner: Runner, batch):
    for p in runner.parameters:
        p.grad = None
    runner.fn(*batch).backward()


def _first_call(spec: Model, backend: str, batch) -> Runner:
    torch.manual_seed(0)
    model = spec.make()
    spent: list[float] = []
    start = _clock()
    runner = Runner(backend, model, _compile(model, backend, spent))
    _step(runner, batch)
    runner.first_call_s = _clock() - start
    runner.backend_s = sum(spent)
    return runner


# CPU time of this process: the machine may be shared, and time spent waiting for a core is
# noise, not cost (every backend here computes on this one thread)
_clock = time.process_time


def _timed(fn) -> float:
    start = _clock()
    fn()
    return _clock() - start


def saved_bytes(runner: Runner, batch) -> int:
    """Bytes of the distinct storages the autograd graph saves for one step's backward, not
    counting storages of the parameters and of the batch."""
    live = {t.untyped_storage().data_ptr() for t in (*runner.model.parameters(), *batch)}
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in live:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = runner.fn(*batch)
    del loss
    return sum(seen.values())


def _steps_per_round(runner: Runner, batch, budget_s: float) -> int:
    once = _timed(lambda: _step(runner, batch))
    return max(1, int(budget_s / max(once, 1e-6)))


def warm_up(backends):
    """Compile a small model once per backend, so that one-time imports and caches of torch
    are not charged to the first model's first call."""
    spec = Model("warm-up", lambda: WideMLP((4, 8, 3)), classification_batch(2, 4, 3))
    for backend in backends:
        torch.compiler.reset()
        _first_call(spec, backend, spec.batch(None, torch.Generator().manual_seed(0)))
    torch.compiler.reset()


def bench_model(spec: Model, backends, rounds: int, budget_s: float) -> dict[str, Runner]:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    batch = spec.batch(spec.make(), generator)
    torch.compiler.reset()
    runners = {}
    first_calls: dict[str, list[float]] = {b: [] for b in (*backends, DYNAMO_ALONE)}
    in_backend: list[float] = []
    for _ in range(rounds):
        for backend in first_calls:
            torch.compiler.reset()
            runners.pop(backend, None)
            gc.collect()  # no backend pays for collecting another's garbage
            runners[backend] = _first_call(spec, backend, batch)
            first_calls[backend].append(runners[backend].first_call_s)
            if backend == "tape":
                in_backend.append(runners[backend].backend_s)
    hit = _cache_hit_first_calls(spec, batch, rounds) if "tape" in backends else None
    for backend, runner in runners.items():
        runner.first_call_s = statistics.median(first_calls[backend])
        _step(runner, batch)  # compiles again (after the resets above) outside the hooks
        runner.saved_bytes = saved_bytes(runner, batch)
        with torch.no_grad():
            runner.fn(*batch)  # compiles the no-grad graph outside the timing
        _step(runner, batch)
    # one step of each backend in turn, so that whatever else the machine does falls on all
    # of them alike; medians over every step of every round
    repeat = min(_steps_per_round(r, batch, budget_s) for r in runners.values())
    for _ in range(rounds):
        gc.collect()
        _interleaved_steps(runners, batch, repeat)
        with torch.no_grad():
            for _ in range(repeat):
                for runner in runners.values():
                    runner.inference_s.append(_timed(lambda r=runner: r.fn(*batch)))
    if "tape" in runners:
        runners["tape"].backend_s = statistics.median(in_backend)
        runners["tape"].hit = hit
    for runner in runners.values():  # keep the numbers, let the models and graphs go
        runner.model = runner.fn = None
        runner.parameters = []
    torch.compiler.reset()
    gc.collect()
    return runners


def _cache_hit_first_calls(spec: Model, batch, rounds: int) -> CacheHit:
    """The tape's first call, `rounds` times, each after a `torch.compiler.reset()`, loading its
    graphs from a cache folder of its own that one compile filled first (as a second process
    would find them), each round beside a first call of Dynamo alone's."""
    before = os.environ.get("DYNAMO_TAPE_CACHE_DIR")
    with tempfile.TemporaryDirectory() as folder:
        os.environ["DYNAMO_TAPE_CACHE_DIR"] = folder
        try:
            torch.compiler.reset()
            _first_call(spec, CACHE_HIT, batch)  # compiles and stores
            calls: dict[str, list[Runner]] = {DYNAMO_ALONE: [], CACHE_HIT: []}
            for _ in range(rounds):
                for backend, done in calls.items():
                    torch.compiler.reset()
                    gc.collect()
                    done.append(_first_call(spec, backend, batch))
        finally:
            if before is None:
                del os.environ["DYNAMO_TAPE_CACHE_DIR"]
            else:
                os.environ["DYNAMO_TAPE_CACHE_DIR"] = before
    torch.compiler.reset()
    hits = calls[CACHE_HIT]
    return CacheHit(
        statistics.median(r.first_call_s for r in hits),
        statistics.median(r.first_call_s for r in calls[DYNAMO_ALONE]),
        statistics.median(r.backend_s for r in hits),
    )


def _interleaved_steps(runners: dict, batch, repeat: int) -> None:
    """`repeat` training steps of each runner, one runner after the other, each timed."""
    for _ in range(repeat):
        for runner in runners.values():
            runner.step_s.append(_timed(lambda r=runner: _step(r, batch)))


# the tape's probe options (dynamo_tape/probes.py) the `--probes` table times, each on its own
PROBES = {
    "off": {},
    "detect_anomaly": {"detect_anomaly": True},
    "numerics": {"numerics": "float64"},
    "profile": {"profile": True},
}


def bench_probes(spec: Model, rounds: int, budget_s: float) -> dict[str, float]:
    """The median training step of eager and of the tape with each of `PROBES` ("tape off",
    "tape profile", ...), interleaved step by step as `bench_model`'s backends are."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    batch = spec.batch(spec.make(), generator)
    torch.compiler.reset()
    runners = {"eager": _first_call(spec, "eager", batch)}
    for name, options in PROBES.items():
        torch.manual_seed(0)
        model = spec.make()
        runner = Runner(
            f"tape {name}", model, torch.compile(model, backend="tape", options=options)
        )
        _step(runner, batch)
        _step(runner, batch)
        runners[runner.backend] = runner
    repeat = min(_steps_per_round(r, batch, budget_s) for r in runners.values())
    for _ in range(rounds):
        gc.collect()
        _interleaved_steps(runners, batch, repeat)
    medians = {name: statistics.median(r.step_s) for name, r in runners.items()}
    runners.clear()
    torch.compiler.reset()
    gc.collect()
    return medians


@dataclass
class Summary:
    """One backend on one model in one process: the medians of that process's rounds."""

    step_s: float
    inference_s: float
    first_call_s: float
    saved_bytes: int
    backend_s: float = 0.0  # the tape's: CPU time inside its backend in its first call
    hit: CacheHit | None = None  # the tape's: its first calls on a cache hit

    def __post_init__(self):  # read back from JSON (bench.py's processes): a dict
        if isinstance(self.hit, dict):
            self.hit = CacheHit(**self.hit)


def summarize(runners: dict[str, Runner]) -> dict[str, Summary]:
    return {
        backend: Summary(
            statistics.median(r.step_s),
            statistics.median(r.inference_s),
            r.first_call_s,
            r.saved_bytes,
            r.backend_s,
            r.hit,
        )
        for backend, r in runners.items()
    }


# Results: model name -> one {backend: Summary} per process.
Results = dict[str, list[dict[str, Summary]]]
