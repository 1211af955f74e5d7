"""What several test modules share; tests import it as `from helpers import ...` (pytest puts
tests/ first on sys.path, as for processes.py). No test module imports another one.

- the rule harness: tensor specs drawn when a case runs (`T`, `C`, `Index`, `Fixed`, ...),
  `case` (one pytest parameter per case line), `draw` and `assert_own_rule_matches_autograd`;
  the case lines themselves are in rule_cases.py;
- the seed: a pure-Python tape autograd that Dynamo traces (tests/test_seed.py runs it);
- `HuggingFaceGPT2`: transformers' GPT-2, its loss in the model's dtype.
"""

from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch
from torch.utils._pytree import tree_flatten, tree_map

from dynamo_tape.ir import op_name
from dynamo_tape.ops import MissingOp
from dynamo_tape.tools.check import check_rule

# ---- the rule harness: specs, case lines, the check (tests/test_rules*.py) -----------------------


class Spec:
    """A tensor drawn when the case runs: float64 `T` normal, `P` positive (log, sqrt, pow
    bases), `A` away from zero (divisors, relu's kink); `F` float32 normal (dtype promotion),
    `Z` int64 (not differentiable), `M` a boolean mask, `U` uniform in [0, 1) (probabilities);
    complex128 `C` normal, `D` away from zero (divisors, logs)."""

    def __init__(self, kind, *shape):
        self.kind, self.shape = kind, shape

    def draw(self, generator):
        if self.kind in "CD":
            z = torch.randn(self.shape, dtype=torch.complex128, generator=generator)
            return z / z.abs() * (z.abs() + 0.5) if self.kind == "D" else z
        if self.kind == "U":
            return torch.rand(self.shape, dtype=torch.float64, generator=generator)
        x = torch.randn(self.shape, dtype=torch.float64, generator=generator)
        if self.kind == "P":
            return x.abs() + 0.5
        if self.kind == "A":
            return x.sign() * (x.abs() + 0.5)
        if self.kind == "M":
            return x > 0
        if self.kind == "F":
            return x.float()
        if self.kind == "Z":
            return (x * 3).long()
        return x

    def __repr__(self):
        return self.kind + "x".join(map(str, self.shape)) if self.shape else self.kind + "0d"


T, P, A, F, Z, M, U, C, D = (lambda *shape, kind=k: Spec(kind, *shape) for k in "TPAFZMUCD")


class Index(Spec):
    """int64 indices in [0, high), repeats allowed; `unique=True` draws distinct ones."""

    def __init__(self, high, *shape, unique=False):
        super().__init__("I", *shape)
        self.high, self.unique = high, unique

    def draw(self, generator):
        if self.unique:
            n = torch.Size(self.shape).numel()
            return torch.randperm(self.high, generator=generator)[:n].reshape(self.shape)
        return torch.randint(0, self.high, self.shape, generator=generator)

    def __repr__(self):
        return f"I{self.high}:{'x'.join(map(str, self.shape))}"


class Fixed(Spec):
    """A tensor drawn as `kind` that gets no gradient: an input torch.autograd refuses to
    differentiate (fractional pooling's random samples)."""

    def __repr__(self):
        return "fixed " + super().__repr__()


def _text(a) -> str:
    if isinstance(a, torch.Tensor):  # a constant: its type, not its values
        return f"{str(a.dtype).removeprefix('torch.')}{list(a.shape)}"
    return repr(a)


def case(op, *args, **kwargs):
    text = ", ".join([*map(_text, args), *(f"{k}={_text(v)}" for k, v in kwargs.items())])
    if isinstance(op, MissingOp):  # an op this torch release does not have
        reason = f"torch {torch.__version__} has no aten.{op.name}"
        return pytest.param(
            op, args, kwargs, id=f"{op.name}({text})", marks=pytest.mark.skip(reason)
        )
    return pytest.param(op, args, kwargs, id=f"{op_name(op)}({text})")


def draw(args, kwargs, seed):
    generator = torch.Generator().manual_seed(seed)
    spec = lambda a: a.draw(generator) if isinstance(a, Spec) else a
    return tree_map(spec, list(args)), tree_map(spec, dict(kwargs))


def assert_own_rule_matches_autograd(op, args, kwargs):
    specs = tree_flatten([list(args), dict(kwargs)])[0]
    args, kwargs = draw(args, kwargs, seed=0)
    drawn = tree_flatten([args, kwargs])[0]
    fixed = [x for spec, x in zip(specs, drawn, strict=True) if isinstance(spec, Fixed)]
    try:
        result = check_rule(op, args, kwargs, constants=fixed)
    except NotImplementedError as e:  # the oracle's, when this torch has no formula (2.11's
        base = op_name(op).split(".")[0]  # nextafter): nothing to check the rule against
        if f"the derivative for '{base}' is not implemented" not in str(e):
            raise
        pytest.skip(f"torch {torch.__version__} has no derivative for {base} to compare with")
    assert result.kind == "rule", f"{op} ran the {result.kind} path, not a rule of ours"
    assert result.ok, result.message


# ---- the seed: a pure-Python autograd (its vocabulary, written afresh) ---------------------------
# after PyTorch's test/dynamo/test_python_autograd.py; tests/test_seed.py and
# tests/test_tracker.py compile it

_next_id = 0


def fresh_name() -> str:
    global _next_id
    name = f"v{_next_id}"
    _next_id += 1
    return name


class Variable:
    """A tensor with a name; the tape refers to values by name."""

    def __init__(self, value: torch.Tensor, name: str | None = None):
        self.value = value
        self.name = name or fresh_name()

    @staticmethod
    def constant(value: torch.Tensor, name: str | None = None) -> "Variable":
        # a leaf: its value was not computed on the tape
        return Variable(value, name)

    def __mul__(self, other):
        return multiply(self, other)

    def __add__(self, other):
        return add(self, other)

    def sum(self, name: str | None = None):
        return total(self, name)

    def expand(self, *sizes):
        return broadcast(self, sizes)


class TapeEntry(NamedTuple):
    inputs: list[str]  # names of the values the operation read
    outputs: list[str]  # names of the values it produced
    propagate: Callable  # cotangents of the outputs -> cotangents of the inputs


gradient_tape: list[TapeEntry] = []


def reset_tape():
    global _next_id
    gradient_tape.clear()
    _next_id = 0


def record(inputs, output, propagate):
    gradient_tape.append(TapeEntry([v.name for v in inputs], [output.name], propagate))
    return output


def multiply(x: Variable, y):
    if isinstance(y, float) and y == 1.0:
        return x  # x * 1 needs no entry

    def propagate(cotangents):
        (g,) = cotangents
        return [g * y, g * x]  # d(xy) = y dx + x dy

    return record([x, y], Variable(x.value * y.value), propagate)


def add(x: Variable, y: Variable):
    def propagate(cotangents):
        (g,) = cotangents
        return [g * 1.0, g * 1.0]

    return record([x, y], Variable(x.value + y.value), propagate)


def total(x: Variable, name):
    def propagate(cotangents):
        (g,) = cotangents
        return [g.expand(*x.value.size())]  # every element contributed once

    return record([x], Variable(torch.sum(x.value), name), propagate)


def broadcast(x: Variable, sizes):
    assert x.value.dim() == 0, "the seed's expand broadcasts scalars only"

    def propagate(cotangents):
        (g,) = cotangents
        return [g.sum()]

    return record([x], Variable(x.value.expand(sizes)), propagate)


def grad(loss: Variable, wanted: list[Variable]) -> list[Variable]:
    cotangent: dict[str, Variable] = {loss.name: Variable(torch.ones(()))}  # dL/dL = 1

    def gather_grad(names):
        # a name never reached from the loss has no cotangent: None, not zeros
        return [cotangent.get(name) for name in names]

    for entry in reversed(gradient_tape):
        outputs = gather_grad(entry.outputs)
        if all(g is None for g in outputs):
            continue  # this entry does not influence the loss
        for name, g in zip(entry.inputs, entry.propagate(outputs), strict=True):
            if name in cotangent:
                cotangent[name].value += g.value  # each use of a value adds its share
            else:
                cotangent[name] = g
    return gather_grad(v.name for v in wanted)


def simple(a, b):
    t = a + b
    return t * b


# ---- models (tests/test_models.py, tests/test_eager_programs.py) ---------------------------------


class HuggingFaceGPT2(torch.nn.Module):
    """transformers' GPT-2, randomly initialised (no download), with the next-token loss
    taken in the model's dtype (transformers' own loss upcasts float64 logits to float32)."""

    def __init__(self):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            n_layer=2, n_embd=64, n_head=4, vocab_size=97, n_positions=32,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=0, eos_token_id=0,
        )  # fmt: skip
        self.gpt2 = GPT2LMHeadModel(config)
        self.vocab = config.vocab_size

    def forward(self, tokens):
        logits = self.gpt2(input_ids=tokens).logits[:, :-1]
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, self.vocab), tokens[:, 1:].reshape(-1)
        )


class Recorder:
    """A probe (dynamo_tape/probes.py) keeping every call: (entry, inputs, outputs, phase)."""

    def __init__(self):
        self.calls = []

    def __call__(self, entry, inputs, outputs, phase):
        self.calls.append((entry, inputs, outputs, phase))

    def lines(self, phase: str) -> list:
        """The user lines of the entries shown in `phase`, in order."""
        return [c[0].code for c in self.calls if c[3] == phase]

    def phases(self) -> list:
        return [c[3] for c in self.calls]

    def ops(self, phase: str) -> list:
        return [c[0].op for c in self.calls if c[3] == phase]
