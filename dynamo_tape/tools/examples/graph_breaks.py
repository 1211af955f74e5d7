"""A script with deliberate graph breaks and recompiles, for the compile reports.

    python -m dynamo_tape.tools.examples.graph_breaks
    dynamo-tape report dynamo_tape/tools/examples/graph_breaks.py --out reports

- `logs_in_the_middle`: a print() between two computations; Dynamo compiles the part before
  it, runs the print eagerly, and compiles the rest as a resume frame;
- `branches_on_data`: an `if` on a tensor's value, which Dynamo cannot trace;
- `power_norm`: recompiled once for a new input shape and once for a new int argument;
- `logs_every_step`: a print() inside a loop: Dynamo cannot resume inside a loop, so it runs
  the whole frame as Python;
- `scaled_by_name`: a new string argument is a new graph each time, up to the recompile limit
  (1 here, Dynamo's default is 8): past it, the frame runs as Python for new names;
- `shifted`: compiled with another backend ("eager"): Dynamo's graph, not the tape's;
- `autotuned`: compiled with `mode="max-autotune"`, an option that tunes inductor: the tape
  warns once that it ignores it, and the report lists it.
"""

from __future__ import annotations

import torch

from ... import torch_private as tp

SCALES = {"half": 0.5, "double": 2.0}


def logs_in_the_middle(x):
    y = torch.tanh(x) * 2
    print(f"logs_in_the_middle: halfway, y has shape {tuple(y.shape)}")
    return (y * y).sum()


def branches_on_data(x):
    h = torch.relu(x)
    if h.mean() > 0.4:  # a data-dependent branch: Dynamo breaks the graph here
        return h.sin().sum()
    return h.cos().sum()


def power_norm(x, power: int):
    return (x.abs() ** power).sum() ** (1.0 / power)


def logs_every_step(x):
    for step in range(2):
        x = torch.sin(x) * 2
        print(f"logs_every_step: step {step}")  # a break in a loop: the frame runs as Python
    return x.sum()


def scaled_by_name(x, name: str):
    return (x * SCALES[name]).sum()


def shifted(x):
    return (x + 1).sum()


def autotuned(x):
    return (x * x).mean()


def main():
    torch.manual_seed(0)
    logs = torch.compile(logs_in_the_middle, backend="tape")
    branch = torch.compile(branches_on_data, backend="tape")
    norm = torch.compile(power_norm, backend="tape")
    for _ in range(3):  # calling again reuses the compiled graphs: no new breaks or compiles
        x = torch.randn(8, 4, requires_grad=True)
        logs(x).backward()
        branch(x).backward()
        norm(x, 2).backward()
    norm(torch.randn(16, 4, requires_grad=True), 2).backward()  # a new shape: recompile
    norm(torch.randn(16, 4, requires_grad=True), 3).backward()  # a new int argument: recompile
    torch.compile(logs_every_step, backend="tape")(x).backward()
    scale = torch.compile(scaled_by_name, backend="tape")
    with tp.recompile_limit(1):
        for name in SCALES:  # the second name is past the limit
            scale(x, name).backward()
    torch.compile(shifted, backend="eager")(x).backward()
    torch.compile(autotuned, backend="tape", mode="max-autotune")(x).backward()


if __name__ == "__main__":
    main()
