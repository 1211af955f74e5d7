"""The benchmark: eager, aot_eager, tape, Dynamo alone (and inductor when asked) on the same
models, in one process, interleaved, several rounds; medians and ratios against eager.

    python -m dynamo_tape.tools.bench --out reports/benchmarks.md [--rounds 7] [--processes 3]

This module is its command line (`dynamo-tape bench` too): it picks the models
(`bench_models.py`), measures them (`bench_measure.py`: the first call, the training step,
no_grad inference, the bytes saved for backward) and renders the report (`bench_report.py`).

Ratios near 1.00 move by a few hundredths from one process to the next (where the allocator
puts things), so the whole measurement runs in several fresh processes (this module again,
with `--processes 1`, handing its numbers back as JSON), and the report gives the median over
processes of each process's own ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict

import torch
from tqdm import tqdm

from .bench_measure import (
    BACKENDS,
    DYNAMO_ALONE,
    Results,
    Summary,
    bench_model,
    bench_probes,
    summarize,
    warm_up,
)
from .bench_models import MODELS, zoo_models
from .bench_report import probes_table, report, steady_table
from .zoo import _quiet_transformers


def main(argv=None):
    parser = argparse.ArgumentParser(prog="dynamo-tape bench", description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write the markdown report here (printed otherwise)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per timed batch")
    parser.add_argument("--processes", type=int, default=3, help="fresh processes to run in")
    parser.add_argument("--inductor", action="store_true", help="also run inductor (slow)")
    parser.add_argument("--models", help="comma-separated substrings of model names to run")
    parser.add_argument(
        "--probes",
        action="store_true",
        help="also time the step with each probe option on (one model: the deep MLP if chosen)",
    )
    parser.add_argument("--json", help=argparse.SUPPRESS)  # a child process's results
    args = parser.parse_args(argv)
    backends = BACKENDS + (["inductor"] if args.inductor else [])
    if args.processes > 1:
        results, probes = _in_processes(args)
    else:
        run, probes = _in_this_process(backends, args)
        if args.json:  # a child of `_in_processes`: hand the numbers back
            numbers = {name: {b: asdict(s) for b, s in r.items()} for name, r in run.items()}
            with open(args.json, "w") as f:
                json.dump({"models": numbers, "probes": probes}, f)
            return 0
        results = {name: [r] for name, r in run.items()}
        probes = probes and (probes[0], [probes[1]])
    command = "python -m dynamo_tape.tools.bench" + (f" --out {args.out}" if args.out else "")
    if args.processes != 3:
        command += f" --processes {args.processes}"
    if args.inductor:
        command += " --inductor"
    if args.probes:
        command += " --probes"
    text = report(results, backends, args.rounds, command, probes, _chosen(args)[1])
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)
    return 0


def _chosen(args):
    """The models `--models` picks (all by default), and those of them the model zoo cannot
    build here, with why."""
    found, missing = zoo_models()

    def picked(name):
        wanted = args.models.split(",") if args.models else [""]
        return any(w.strip().lower() in name.lower() for w in wanted)

    return [m for m in (*MODELS, *found) if picked(m.name)], {
        name: why for name, why in missing.items() if picked(name)
    }


def _in_this_process(backends, args):
    """Each chosen model's summaries per backend; with `--probes`, (model, the step with each
    probe option) for one of them, else None."""
    chosen, _ = _chosen(args)
    _quiet_transformers()
    torch.set_num_threads(1)
    warm_up([*backends, DYNAMO_ALONE])
    results = {}
    bar = tqdm(chosen, desc="benchmark", unit="model")
    for spec in bar:
        bar.set_postfix_str(spec.name)
        results[spec.name] = summarize(bench_model(spec, backends, args.rounds, args.budget))
        bar.write(steady_table({spec.name: [results[spec.name]]}, backends))
    probes = None
    if args.probes and chosen:
        spec = next((m for m in chosen if m.name.startswith("deep MLP")), chosen[0])
        probes = (spec.name, bench_probes(spec, args.rounds, args.budget))
        bar.write(probes_table([probes[1]]))
    return results, probes


def _in_processes(args):
    """The whole benchmark in `args.processes` fresh interpreters, one after the other: the
    results, and with `--probes` (model, each process's probe steps), else None."""
    results: Results = {}
    probes = None
    child = [sys.executable, "-m", "dynamo_tape.tools.bench", "--processes", "1"]
    child += ["--rounds", str(args.rounds), "--budget", str(args.budget)]
    child += ["--inductor"] if args.inductor else []
    child += ["--models", args.models] if args.models else []
    child += ["--probes"] if args.probes else []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.processes):
            print(f"== process {i + 1} of {args.processes}", flush=True)
            path = os.path.join(folder, f"{i}.json")
            subprocess.run([*child, "--json", path], check=True)
            with open(path) as f:
                numbers = json.load(f)
            for name, run in numbers["models"].items():
                summaries = {b: Summary(**s) for b, s in run.items()}
                results.setdefault(name, []).append(summaries)
            if numbers["probes"]:
                model, steps = numbers["probes"]
                probes = probes or (model, [])
                probes[1].append(steps)
    return results, probes


if __name__ == "__main__":
    raise SystemExit(main())
