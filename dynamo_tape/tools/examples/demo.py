"""Train a model with `backend="tape"` next to eager and show what the tape ran.

    python -m dynamo_tape.tools.examples.demo                 # the ResNet-style CNN, 5 SGD steps
    python -m dynamo_tape.tools.examples.demo --model gpt     # the small GPT-2 style transformer

Prints the per-step losses of both copies side by side, then the forward and backward tapes
of the compiled graph, and writes the compile report to `--report DIR` (demo.md, demo.json,
demo.html).
"""

from __future__ import annotations

import argparse

import torch
from tabulate import tabulate

import dynamo_tape
from dynamo_tape.report import write
from dynamo_tape.tools.examples.models import (
    GPT,
    ResNet,
    gpt_batch,
    resnet_batch,
    train_side_by_side,
)

MODELS = {"cnn": (ResNet, resnet_batch), "gpt": (GPT, gpt_batch)}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def losses_table(run) -> str:
    return tabulate(
        run.rows(),
        headers=["step", "eager loss", "tape loss", "relative difference"],
        floatfmt=("d", ".8f", ".8f", ".1e"),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--report", default="demo-report", help="folder for the compile report")
    args = parser.parse_args(argv)

    make_model, make_batch = MODELS[args.model]
    # "error": every op must run on one of this project's rules, none on the generic fallback
    with dynamo_tape.track() as tracked:
        run = train_side_by_side(
            make_model, make_batch, args.steps, DTYPES[args.dtype], options={"fallback": "error"}
        )
    print(f"{args.model}: {args.steps} SGD steps, eager and backend='tape' from the same weights\n")
    print(losses_table(run))
    worst = max(
        float((run.tape_state[k].double() - e.double()).abs().max())
        for k, e in run.eager_state.items()
    )
    print(f"\nlargest parameter/buffer difference after training: {worst:.1e}\n")
    print(dynamo_tape.last_tapes())
    paths = write(tracked.as_dict(), args.report, "demo", f"dynamo-tape demo: {args.model}")
    print(f"\ncompile report: {' and '.join(paths)}")


if __name__ == "__main__":
    main()
