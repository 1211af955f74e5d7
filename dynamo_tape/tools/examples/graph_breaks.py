"""A script with deliberate graph breaks and recompiles, for the compile reports.

    python -m dynamo_tape.tools.examples.graph_breaks
    dynamo-tape report dynamo_tape/tools/examples/graph_breaks.py --out reports

- `logs_in_the_middle`: a print() between two computations; Dynamo compiles the part before
  it, runs the print eagerly, and compiles the rest as a resume frame;
- `branches_on_data`: an `if` on a tensor's value, which Dynamo cannot trace;
- `power_norm`: recompiled once for a new input shape and once for a new int argument.
"""

from __future__ import annotations

import torch


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


if __name__ == "__main__":
    main()
