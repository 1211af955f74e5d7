"""The model zoo's sweep: every zoo model (`zoo_models.py`) trained a few SGD steps under
eager, the tape, `aot_eager` and Dynamo alone from the same weights on the same batches, then
timed; writes a markdown report (`zoo_report.py`).

    python -m dynamo_tape.tools.zoo --out reports/model_zoo.md [--models bert,timm/] [--steps 3]
    dynamo-tape zoo ...                                      (the same command)

Per model:
- parity: the per-step losses, the final parameters and buffers, and the last step's
  gradients of the tape (and of aot_eager, for reference) against eager's: "exact" (bitwise),
  "within 1e-05" (|a - b| <= 1e-05 + 1e-05 |b| everywhere; the losses with no absolute term),
  "WRONG" or "ERROR" (the first line of the error); the largest absolute difference and where;
- what `track()` saw of the tape's compiles: graphs, graph-break sites, fallback ops (ops
  without a rule of ours, their VJP run by torch.autograd), recompiles;
- timings (unless `--no-timing`), CPU time of this process, one thread: the training step
  (forward + backward) of the four trained copies, interleaved step by step over `--rounds`
  rounds (bench_measure's loop), medians; and the first call (compile + first forward and
  backward) of the tape, aot_eager and Dynamo alone, each after `torch.compiler.reset()`;
  and the bytes each copy saves for backward (bench_measure's `saved_bytes`).
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from ..records import first_line
from ..tracker import track
from .bench_measure import (
    DYNAMO_ALONE,
    Runner,
    _clock,
    _compile,
    _interleaved_steps,
    _step,
    _steps_per_round,
    saved_bytes,
    warm_up,
)
from .zoo_models import ZooModel, key, select

# trained side by side, in this order at every step: the tape compiles each frame first, so
# its graphs are first compiles, not recompiles after another backend's
BACKENDS = ["eager", "tape", "aot_eager", DYNAMO_ALONE]
FIRST_CALLS = ["aot_eager", DYNAMO_ALONE, "tape"]
RTOL = ATOL = 1e-5  # float32
TOLERANCE_F64 = 1e-10  # the float64 rerun of a model WRONG in float32
SEED = 0


@dataclass
class Trained:
    """One backend's training run."""

    losses: list[float] = field(default_factory=list)
    state: dict = field(default_factory=dict)  # parameters and buffers after the last step
    grads: dict = field(default_factory=dict)  # the last step's gradients (None: none)
    first_grads: dict = field(default_factory=dict)  # the first step's
    error: str = ""  # the first line of what it raised, if it did


@dataclass
class Difference:
    """Another backend's run against eager's."""

    largest: float = 0.0  # the largest absolute difference over every value compared
    where: str = ""  # "loss 2", "parameter x", "buffer x", "gradient x"
    exact: bool = True
    within: bool = True  # every value within RTOL and ATOL

    @property
    def verdict(self) -> str:
        return "exact" if self.exact else f"within {RTOL:.0e}" if self.within else "WRONG"


@dataclass
class ZooResult:
    key: str
    name: str
    family: str
    config: str
    parameters: int = 0
    verdict: str = ""  # exact | within 1e-05 | WRONG | ERROR | skipped
    error: str = ""  # ERROR's first line, or why it was skipped
    tape: Difference | None = None
    aot_eager: Difference | None = None
    aot_error: str = ""
    # a model WRONG in float32, trained again in float64 (eager and tape): rounding that
    # training amplified, or a real difference?
    float64: Difference | None = None
    float64_error: str = ""
    first_step: Difference | None = None  # a WRONG model's gradients after its first step
    tracked: dict = field(default_factory=dict)  # track()'s summary counts
    fallback_ops: list[str] = field(default_factory=list)  # distinct op names
    breaks: list[str] = field(default_factory=list)  # "file:line: reason"
    run_as_python: list[str] = field(default_factory=list)  # frames Dynamo gave up on
    recompiles: list[str] = field(default_factory=list)  # "frame: the guard that failed"
    step_s: dict[str, float] = field(default_factory=dict)  # backend -> median step
    first_call_s: dict[str, float] = field(default_factory=dict)  # backend -> median
    saved_bytes: dict[str, int] = field(default_factory=dict)  # backend -> saved for backward
    seconds: float = 0.0  # CPU time this model took in the sweep

    @property
    def passed(self) -> bool:
        return self.verdict in ("exact", f"within {RTOL:.0e}")


# ---- parity ------------------------------------------------------------------------------------


def _compiled(model, backend: str, options):
    if backend == "tape":
        return torch.compile(model, backend="tape", options=options)
    return _compile(model, backend)


def train(entry: ZooModel, steps: int, options=None, lr: float = 0.01, dtype=torch.float32,
          backends=BACKENDS):  # fmt: skip
    """Train a copy of `entry`'s model per backend (BACKENDS) from the same weights on the same
    batches, `steps` SGD steps each, interleaved step by step, with the global RNG reseeded
    before each step of each copy (dropout draws alike). Returns ({backend: Trained}, the
    tape's `track()` session, {backend: (model, compiled)})."""
    torch.compiler.reset()
    base = entry.make(SEED).to(dtype)
    models = {b: copy.deepcopy(base) for b in backends}
    del base
    fns = {b: _compiled(m, b, options) for b, m in models.items()}
    optimizers = {b: torch.optim.SGD(m.parameters(), lr=lr) for b, m in models.items()}
    runs = {b: Trained() for b in backends}
    generator = torch.Generator().manual_seed(SEED)
    with track() as tracked:
        for step in range(steps):
            batch = _to(entry.batch(generator), dtype)
            for backend in backends:
                run = runs[backend]
                if run.error or runs["eager"].error:
                    continue
                torch.manual_seed(SEED + 1000 + step)
                try:
                    optimizers[backend].zero_grad(set_to_none=True)
                    loss = fns[backend](*batch)
                    loss.backward()
                    if step == 0:
                        run.first_grads = _grads(models[backend])
                    optimizers[backend].step()
                    run.losses.append(loss.item())
                except Exception as e:  # noqa: BLE001 (reported, and the sweep goes on)
                    run.error = _error_line(e)
    for backend, run in runs.items():
        model = models[backend]
        run.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        run.grads = _grads(model)
    return runs, tracked, {b: (models[b], fns[b]) for b in backends}


def _grads(model) -> dict:
    return {
        k: None if p.grad is None else p.grad.detach().clone() for k, p in model.named_parameters()
    }


def _to(batch: tuple, dtype) -> tuple:
    """The batch's floating-point tensors in `dtype` (token ids and labels stay)."""
    return tuple(t.to(dtype) if t.is_floating_point() else t for t in batch)


def _error_line(e: BaseException) -> str:
    text = first_line(str(e)).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def compare(eager: Trained, other: Trained, rtol=RTOL, atol=ATOL) -> Difference:
    """`other`'s losses, final state and last gradients against eager's."""
    d = Difference()

    def check(what, a, b, atol):
        if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
            if not (a is None and b is None):
                d.exact = d.within = False
                d.largest, d.where = float("inf"), f"{what}: {_describe(a)} vs {_describe(b)}"
            return
        a64, b64 = a.double(), b.double()
        diff = (a64 - b64).abs()
        both_nan = a64.isnan() & b64.isnan()
        diff = torch.where(both_nan, torch.zeros_like(diff), diff.nan_to_num(nan=float("inf")))
        if not torch.equal(a64.nan_to_num(0.0), b64.nan_to_num(0.0)) or not torch.equal(
            a64.isnan(), b64.isnan()
        ):
            d.exact = False
        if diff.numel() and not bool((diff <= atol + rtol * b64.abs()).all()):
            d.within = False
        largest = float(diff.max()) if diff.numel() else 0.0
        if largest > d.largest:
            d.largest, d.where = largest, what

    if len(other.losses) != len(eager.losses):
        d.exact = d.within = False
        d.largest, d.where = float("inf"), f"{len(other.losses)} of {len(eager.losses)} losses"
        return d
    for i, (a, b) in enumerate(zip(other.losses, eager.losses)):
        f64 = torch.float64
        check(f"loss {i}", torch.tensor(a, dtype=f64), torch.tensor(b, dtype=f64), 0.0)
    parameters = set(eager.grads)
    for name, value in eager.state.items():
        kind = "parameter" if name in parameters else "buffer"
        check(f"{kind} {name}", other.state.get(name), value, atol)
    for name, grad in eager.grads.items():
        check(f"gradient {name}", other.grads.get(name), grad, atol)
    return d


def _describe(t) -> str:
    return "none" if t is None else f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)}"


# ---- timings -----------------------------------------------------------------------------------


def time_steps(trained: dict, batch, rounds: int, budget_s: float) -> dict[str, float]:
    """The median training step of each (model, compiled) in `trained`, interleaved."""
    runners = {b: Runner(b, model, fn) for b, (model, fn) in trained.items()}
    for runner in runners.values():  # compiled already; a step on this batch warms it
        _step(runner, batch)
    repeat = min(_steps_per_round(r, batch, budget_s) for r in runners.values())
    for _ in range(rounds):
        gc.collect()
        _interleaved_steps(runners, batch, repeat)
    return {b: statistics.median(r.step_s) for b, r in runners.items()}


def first_calls(entry: ZooModel, batch, rounds: int, options=None) -> dict[str, float]:
    """The median first call (compile, then one forward and backward) of each of FIRST_CALLS,
    each after `torch.compiler.reset()`, on a freshly built model."""
    seconds: dict[str, list[float]] = {b: [] for b in FIRST_CALLS}
    for _ in range(rounds):
        for backend in FIRST_CALLS:
            torch.compiler.reset()
            gc.collect()
            model = entry.make(SEED)
            start = _clock()
            # compiling, not loading what the training run stored in the compile cache
            uncached = {**(options or {}), "cache": False}
            runner = Runner(backend, model, _compiled(model, backend, uncached))
            _step(runner, batch)
            seconds[backend].append(_clock() - start)
            del runner, model
    torch.compiler.reset()
    return {b: statistics.median(s) for b, s in seconds.items()}


# ---- one model, the sweep ----------------------------------------------------------------------


def run_model(entry: ZooModel, steps=3, options=None, timing=True, rounds=5, budget_s=0.05,
              first_call_rounds=1, lr=0.01) -> ZooResult:  # fmt: skip
    """Parity, and (with `timing`) the timings, of one zoo model."""
    start = _clock()
    result = ZooResult(key(entry), entry.name, entry.family, entry.config)
    missing = entry.missing()
    if missing:
        result.verdict, result.error = "skipped", missing
        return result
    try:
        runs, tracked, trained = train(entry, steps, options, lr)
    except Exception as e:  # noqa: BLE001 (building the model failed: the zoo's own bug)
        result.verdict, result.error = "ERROR", "building: " + _error_line(e)
        return result
    eager = runs["eager"]
    result.parameters = sum(v.numel() for k, v in eager.state.items() if k in eager.grads)
    _record_tracked(result, tracked)
    if eager.error:
        result.verdict, result.error = "ERROR", "eager: " + eager.error
    elif runs["tape"].error:
        result.verdict, result.error = "ERROR", runs["tape"].error
    else:
        result.tape = compare(eager, runs["tape"])
        result.verdict = result.tape.verdict
        if result.verdict == "WRONG":  # from the first step on, or drifting with training?
            first = [Trained(grads=runs[b].first_grads) for b in ("eager", "tape")]
            result.first_step = compare(*first)
    if runs["aot_eager"].error:
        result.aot_error = runs["aot_eager"].error
    elif not eager.error:
        result.aot_eager = compare(eager, runs["aot_eager"])
    if timing and not result.error:
        working = {b: t for b, t in trained.items() if not runs[b].error}
        batch = entry.batch(torch.Generator().manual_seed(SEED + 1))
        result.step_s = time_steps(working, batch, rounds, budget_s)
        result.saved_bytes = {
            b: saved_bytes(Runner(b, model, fn), batch) for b, (model, fn) in working.items()
        }
        del working, trained, runs
        backends_ok = [b for b in FIRST_CALLS if b in result.step_s]
        if backends_ok == FIRST_CALLS:
            result.first_call_s = first_calls(entry, batch, first_call_rounds, options)
    else:
        del trained, runs
    if result.verdict == "WRONG":  # after the timings: this rerun resets Dynamo
        result.float64, result.float64_error = _float64_rerun(entry, steps, options, lr)
    torch.compiler.reset()
    gc.collect()
    result.seconds = _clock() - start
    return result


def _float64_rerun(entry, steps, options, lr):
    """(the tape's Difference against eager's in float64, or None; the error, if one)."""
    try:
        runs, _, _ = train(entry, steps, options, lr, torch.float64, ("eager", "tape"))
    except Exception as e:  # noqa: BLE001
        return None, _error_line(e)
    error = runs["eager"].error or runs["tape"].error
    if error:
        return None, error
    return compare(runs["eager"], runs["tape"], TOLERANCE_F64, TOLERANCE_F64), ""


def _record_tracked(result: ZooResult, tracked) -> None:
    result.tracked = tracked.summary(timings=False)
    names = [op["op"] for g in tracked.graphs for op in g.fallback_ops]
    result.fallback_ops = sorted(set(names))
    for site in tracked.breaks:
        where = f"{site.filename.rsplit('/', 1)[-1]}:{site.lineno}"
        result.breaks.append(f"{where}: {one_line_of(site.reason)}")
    for recompile in tracked.recompiles:
        result.recompiles.append(f"{recompile.frame}: {one_line_of(recompile.reason)}")
    for split in tracked.skipped_frames:
        where = split.where.rsplit("/", 1)[-1]
        result.run_as_python.append(f"{split.frame} ({where}): {one_line_of(split.reason)}")


def one_line_of(text: str, limit: int = 160) -> str:
    line = " ".join(first_line(text or "").split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def sweep(entries, steps=3, options=None, timing=True, rounds=5, budget_s=0.05,
          first_call_rounds=1, lr=0.01, progress=True) -> list[ZooResult]:  # fmt: skip
    """`run_model` over `entries`, one thread, with a progress bar."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _quiet_transformers()
    try:
        if timing:
            warm_up(BACKENDS)
        results = []
        bar = tqdm(entries, desc="model zoo", unit="model", disable=not progress)
        for entry in bar:
            bar.set_postfix_str(key(entry))
            result = run_model(entry, steps, options, timing, rounds, budget_s,
                               first_call_rounds, lr)  # fmt: skip
            results.append(result)
            bar.write(_line(result))
        return results
    finally:
        torch.set_num_threads(threads)


def _line(r: ZooResult) -> str:
    text = f"{r.key}: {r.verdict}"
    if r.error:
        text += f" ({r.error[:120]})"
    elif r.tape is not None:
        text += f", largest difference {r.tape.largest:.1e}"
    if "tape" in r.step_s and "eager" in r.step_s:
        text += f", step tape/eager {r.step_s['tape'] / r.step_s['eager']:.2f}"
    return text


def _quiet_transformers() -> None:
    """transformers' warnings about a tiny config's token ids are noise here."""
    try:
        import transformers
    except Exception:  # noqa: BLE001 (not installed: its models are skipped)
        return
    transformers.logging.set_verbosity_error()


def main(argv=None) -> int:
    from .zoo_report import report

    parser = argparse.ArgumentParser(prog="dynamo-tape zoo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write the markdown report here (printed otherwise)")
    parser.add_argument("--models", help="comma-separated substrings of family/name to run")
    parser.add_argument("--steps", type=int, default=3, help="SGD steps per model")
    parser.add_argument("--no-timing", action="store_true", help="parity only")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of interleaved steps")
    parser.add_argument("--budget", type=float, default=0.05, help="seconds per timed batch")
    parser.add_argument("--first-calls", type=int, default=1, help="first calls per backend")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    entries = select(args.models)
    if not entries:
        parser.error(f"no zoo model matches {args.models!r}")
    timing = not args.no_timing
    start = _clock()
    results = sweep(entries, args.steps, None, timing, args.rounds, args.budget,
                    args.first_calls, progress=not args.no_progress)  # fmt: skip
    command = "python -m dynamo_tape.tools.zoo"
    for flag, value, default in [
        ("--out", args.out, None),
        ("--models", args.models, None),
        ("--steps", args.steps, 3),
        ("--rounds", args.rounds, 5),
        ("--budget", args.budget, 0.05),
        ("--first-calls", args.first_calls, 1),
    ]:
        if value != default and (timing or flag not in ("--rounds", "--budget", "--first-calls")):
            command += f" {flag} {value}"
    command += "" if timing else " --no-timing"
    text = report(results, command, args.steps, timing, args.rounds, args.first_calls,
                  _clock() - start)  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
