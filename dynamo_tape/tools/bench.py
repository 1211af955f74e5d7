"""The benchmark: eager, aot_eager, tape, Dynamo alone (and inductor when asked) on the same
models, in one process, interleaved, several rounds; medians and ratios against eager.

    python -m dynamo_tape.tools.bench --out reports/benchmarks.md [--rounds 7] [--processes 3]

Per model and backend it measures: the first call (compile + one forward and backward), the
steady-state training step (forward + backward), inference under `torch.no_grad()`, and the
bytes the autograd graph keeps for backward (every tensor `saved_tensors_hooks` sees, counted
once per storage, leaving out the parameters' and the batch's own storages, which live anyway).

Ratios near 1.00 move by a few hundredths from one process to the next (where the allocator
puts things), so the whole measurement runs in several fresh processes, and the report gives
the median over processes of each process's own ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tabulate import tabulate
from torch import nn

from .examples import models as zoo

# --- the models ------------------------------------------------------------------------------


class DeepMLP(nn.Module):
    """16 x (Linear, LayerNorm, GELU) at width 32: many small ops, so per-op overhead shows."""

    def __init__(self, width=32, depth=16, classes=10):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.LayerNorm(width), nn.GELU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x, labels):
        return F.cross_entropy(self.head(self.body(x)), labels)


class WideMLP(nn.Module):
    """512-2048-2048-10: few large matmuls, so the ATen kernels dominate."""

    def __init__(self, sizes=(512, 2048, 2048, 10)):
        super().__init__()
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x, labels):
        return F.cross_entropy(self.net(x), labels)


def _classification_batch(batch, features, classes):
    def make(model, generator):
        x = torch.randn(batch, features, generator=generator)
        return x, torch.randint(0, classes, (batch,), generator=generator)

    return make


@dataclass
class Model:
    name: str
    make: Callable[[], nn.Module]
    batch: Callable  # (model, generator) -> tuple of tensors


MODELS = [
    Model(
        "deep MLP (16 x Linear-LayerNorm-GELU, w32, b8)", DeepMLP, _classification_batch(8, 32, 10)
    ),
    Model(
        "tiny GPT-2 (2 layers, w64)",
        lambda: zoo.GPT(n_layer=2, n_embd=64, n_head=4, block=32, vocab=101),
        lambda model, generator: zoo.gpt_batch(model, generator, torch.float32, batch=4),
    ),
    Model("wide MLP (512-2048-2048-10, b64)", WideMLP, _classification_batch(64, 512, 10)),
    Model(
        "ResNet CNN (zoo)",
        zoo.ResNet,
        lambda model, generator: zoo.resnet_batch(
            model, generator, torch.float32, batch=8, size=16
        ),
    ),
]

BACKENDS = ["eager", "aot_eager", "tape"]


# --- measuring -------------------------------------------------------------------------------


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

    def __post_init__(self):
        self.parameters = list(self.model.parameters())


# Dynamo with its `eager` backend: the captured graph runs as it is. Its first call is the
# part every backend pays (Dynamo's tracing and guards, the kernels): the floor for first calls.
# Its steady state shows what Dynamo's frame and guards cost per call.
DYNAMO_ALONE = "Dynamo alone"


def _compile(model: nn.Module, backend: str):
    if backend == "eager":
        return model
    return torch.compile(model, backend="eager" if backend == DYNAMO_ALONE else backend)


def _step(runner: Runner, batch):
    for p in runner.parameters:
        p.grad = None
    runner.fn(*batch).backward()


def _first_call(spec: Model, backend: str, batch) -> Runner:
    torch.manual_seed(0)
    model = spec.make()
    start = _clock()
    runner = Runner(backend, model, _compile(model, backend))
    _step(runner, batch)
    runner.first_call_s = _clock() - start
    return runner


# CPU time of this process: the machine may be shared, and time spent waiting for a core is
# noise, not cost (every backend here computes on this one thread)
_clock = time.process_time


def _timed(fn, repeat: int) -> float:
    start = _clock()
    for _ in range(repeat):
        fn()
    return (_clock() - start) / repeat


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
    once = _timed(lambda: _step(runner, batch), 1)
    return max(1, int(budget_s / max(once, 1e-6)))


def warm_up(backends):
    """Compile a small model once per backend, so that one-time imports and caches of torch
    are not charged to the first model's first call."""
    spec = Model("warm-up", lambda: WideMLP((4, 8, 3)), _classification_batch(2, 4, 3))
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
    for _ in range(rounds):
        for backend in first_calls:
            torch.compiler.reset()
            runners.pop(backend, None)
            gc.collect()  # no backend pays for collecting another's garbage
            runners[backend] = _first_call(spec, backend, batch)
            first_calls[backend].append(runners[backend].first_call_s)
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
        for _ in range(repeat):
            for runner in runners.values():
                runner.step_s.append(_timed(lambda r=runner: _step(r, batch), 1))
        with torch.no_grad():
            for _ in range(repeat):
                for runner in runners.values():
                    runner.inference_s.append(_timed(lambda r=runner: r.fn(*batch), 1))
    for runner in runners.values():  # keep the numbers, let the models and graphs go
        runner.model = runner.fn = None
        runner.parameters = []
    torch.compiler.reset()
    gc.collect()
    return runners


@dataclass
class Summary:
    """One backend on one model in one process: the medians of that process's rounds."""

    step_s: float
    inference_s: float
    first_call_s: float
    saved_bytes: int


def summarize(runners: dict[str, Runner]) -> dict[str, Summary]:
    return {
        backend: Summary(
            statistics.median(r.step_s),
            statistics.median(r.inference_s),
            r.first_call_s,
            r.saved_bytes,
        )
        for backend, r in runners.items()
    }


# Results: model name -> one {backend: Summary} per process.
Results = dict[str, list[dict[str, Summary]]]


# --- the report ------------------------------------------------------------------------------


def _ratio(runs: list[dict[str, Summary]], backend: str, attr: str) -> float:
    """`backend` over eager, taken within each process, then the median over processes."""
    return statistics.median(getattr(r[backend], attr) / getattr(r["eager"], attr) for r in runs)


def _first_call_ratio(runs: list[dict[str, Summary]], backend: str) -> float:
    return statistics.median(r[backend].first_call_s / r["aot_eager"].first_call_s for r in runs)


def _median(runs: list[dict[str, Summary]], backend: str, attr: str) -> float:
    return statistics.median(getattr(r[backend], attr) for r in runs)


def _markdown(rows, headers) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _measured(backends) -> list[str]:
    """The compiled backends, then Dynamo alone."""
    return [*(b for b in backends if b != "eager"), DYNAMO_ALONE]


def steady_table(results: Results, backends) -> str:
    """Step and no_grad time of every compiled backend, and of Dynamo alone, over eager's."""
    measured = _measured(backends)
    headers = ["model", *(f"step {b}" for b in measured), *(f"no_grad {b}" for b in measured)]
    rows = [
        [name]
        + [f"{_ratio(runs, b, 'step_s'):.2f}" for b in measured]
        + [f"{_ratio(runs, b, 'inference_s'):.2f}" for b in measured]
        for name, runs in results.items()
    ]
    return _markdown(rows, headers)


def first_call_table(results: Results, backends) -> str:
    measured = _measured(backends)
    headers = ["model", *(f"{b} (s)" for b in measured)]
    headers += ["tape/aot_eager", f"floor: {DYNAMO_ALONE}/aot_eager"]
    rows = [
        [name]
        + [f"{_median(runs, b, 'first_call_s'):.2f}" for b in measured]
        + [f"{_first_call_ratio(runs, b):.2f}" for b in ("tape", DYNAMO_ALONE)]
        for name, runs in results.items()
    ]
    return _markdown(rows, headers)


def saved_table(results: Results, backends) -> str:
    rows = [
        [name, *(f"{_median(runs, b, 'saved_bytes') / 1024:.1f}" for b in backends)]
        for name, runs in results.items()
    ]
    return _markdown(rows, ["model", *backends])


def targets_table(results: Results) -> str:
    """Issue 6's targets, model by model: met or not, with the ratio to three places (the
    tables above round to two), and Dynamo alone's beside it (for the first call, a floor no
    backend can go below)."""

    def verdict(value, limit, dynamo_alone):
        met = "yes" if value <= limit else "no"
        return f"{met} ({value:.3f}; {DYNAMO_ALONE} {dynamo_alone:.3f})"

    rows = []
    for name, runs in results.items():
        saved = _median(runs, "tape", "saved_bytes")
        limit = min(_median(runs, b, "saved_bytes") for b in ("aot_eager", "eager"))
        rows.append(
            [
                name,
                verdict(_ratio(runs, "tape", "step_s"), 1.0, _ratio(runs, DYNAMO_ALONE, "step_s")),
                verdict(
                    _ratio(runs, "tape", "inference_s"),
                    1.0,
                    _ratio(runs, DYNAMO_ALONE, "inference_s"),
                ),
                verdict(
                    _first_call_ratio(runs, "tape"),
                    0.5,
                    _first_call_ratio(runs, DYNAMO_ALONE),
                ),
                f"{'yes' if saved <= limit else 'no'} ({saved / 1024:.1f} KiB)",
            ]
        )
    headers = [
        "model",
        "step tape/eager <= 1.00",
        "no_grad tape/eager <= 1.00",
        "first call tape/aot_eager <= 0.50",
        "saved tape <= aot_eager, eager",
    ]
    return _markdown(rows, headers)


def tables(results: Results, backends) -> str:
    return "\n\n".join(
        [
            "## Steady state: time over eager's (median)",
            steady_table(results, backends),
            "## First call: compile + first forward and backward (median)",
            first_call_table(results, backends),
            "## Saved for backward (KiB)",
            saved_table(results, backends),
            "## Issue 6's targets",
            targets_table(results),
        ]
    )


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    name = names[0] if names else platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} logical CPUs"


def report(results: Results, backends, rounds: int, command: str) -> str:
    n = len(next(iter(results.values())))
    processes = f"{n} fresh processes one after the other" if n > 1 else "one process"
    return f"""# Benchmarks

Generated by `{command}`: {processes}, each with `torch.set_num_threads(1)`
and backends interleaved step by step within each of {rounds} rounds; CPU time
(`time.process_time`, so that other load on a shared machine does not count). Each process
takes medians over its rounds and its ratios against eager; the tables give the median of
those over the processes. Step = forward + backward of one training batch (gradients reset to
None first); no_grad = the forward under `torch.no_grad()`. Ratios below 1.00 are faster than
eager. First call = compile + first forward and backward, median of {rounds} fresh compiles
after one warm-up compile per backend. Saved = distinct storages the autograd graph keeps for
backward (seen by `torch.autograd.graph.saved_tensors_hooks`), parameters and batch excluded.

"{DYNAMO_ALONE}" is `torch.compile` with Dynamo's own `eager` backend, which runs the captured
graph as it is. Its first call is Dynamo's tracing and guards plus the kernels, which every
backend's first call includes: no backend's first call can be below it. Its step and no_grad
show what Dynamo's frame and guards cost per call on top of eager's kernels.

Machine: {_cpu()}; {platform.system()} {platform.release()}; Python
{platform.python_version()}; torch {torch.__version__}.

{tables(results, backends)}
{_INDUCTOR_NOTE if "inductor" in backends else ""}"""


_INDUCTOR_NOTE = """
inductor compiles its C++ in worker processes, whose CPU time its first call does not count."""


def main(argv=None):
    parser = argparse.ArgumentParser(prog="dynamo-tape bench", description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write the markdown report here (printed otherwise)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per timed batch")
    parser.add_argument("--processes", type=int, default=3, help="fresh processes to run in")
    parser.add_argument("--inductor", action="store_true", help="also run inductor (slow)")
    parser.add_argument("--models", help="comma-separated substrings of model names to run")
    parser.add_argument("--json", help=argparse.SUPPRESS)  # a child process's results
    args = parser.parse_args(argv)
    backends = BACKENDS + (["inductor"] if args.inductor else [])
    if args.processes > 1:
        results = _in_processes(args)
    else:
        run = _in_this_process(backends, args)
        if args.json:  # a child of `_in_processes`: hand the numbers back
            numbers = {name: {b: asdict(s) for b, s in r.items()} for name, r in run.items()}
            with open(args.json, "w") as f:
                json.dump(numbers, f)
            return 0
        results = {name: [r] for name, r in run.items()}
    command = "python -m dynamo_tape.tools.bench" + (f" --out {args.out}" if args.out else "")
    if args.processes != 3:
        command += f" --processes {args.processes}"
    if args.inductor:
        command += " --inductor"
    text = report(results, backends, args.rounds, command)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)
    return 0


def _in_this_process(backends, args) -> dict[str, dict[str, Summary]]:
    chosen = [
        m
        for m in MODELS
        if not args.models
        or any(s.strip().lower() in m.name.lower() for s in args.models.split(","))
    ]
    torch.set_num_threads(1)
    warm_up([*backends, DYNAMO_ALONE])
    results = {}
    for spec in chosen:
        print(f"benchmarking {spec.name} ...", flush=True)
        results[spec.name] = summarize(bench_model(spec, backends, args.rounds, args.budget))
        print(steady_table({spec.name: [results[spec.name]]}, backends), flush=True)
    return results


def _in_processes(args) -> Results:
    """The whole benchmark in `args.processes` fresh interpreters, one after the other."""
    results: Results = {}
    child = [sys.executable, "-m", "dynamo_tape.tools.bench", "--processes", "1"]
    child += ["--rounds", str(args.rounds), "--budget", str(args.budget)]
    child += ["--inductor"] if args.inductor else []
    child += ["--models", args.models] if args.models else []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.processes):
            print(f"== process {i + 1} of {args.processes}", flush=True)
            path = os.path.join(folder, f"{i}.json")
            subprocess.run([*child, "--json", path], check=True)
            with open(path) as f:
                for name, run in json.load(f).items():
                    summaries = {b: Summary(**s) for b, s in run.items()}
                    results.setdefault(name, []).append(summaries)
    return results


if __name__ == "__main__":
    raise SystemExit(main())
