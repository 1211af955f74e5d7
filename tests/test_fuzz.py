"""Property-based fuzzing: random small programs, eager vs backend="tape".

Each example draws 1-3 input shapes that broadcast against one another, then a straight-line
program of pointwise, reduction, shape, broadcasting binary and matmul steps over them (each
step is checked to run on the shapes at hand), written out as Python source so a failing
example prints a program that can be pasted into a regular test. Outputs and gradients are
compared with eager under a random cotangent; float64 examples are also differentiated twice
(a gradient penalty), float32 ones compare with float32's own tolerance.

The default suite runs a fixed handful of examples; the long run is
`python -m pytest tests/test_fuzz.py -m slow`.
"""

import linecache
import textwrap

import pytest
import torch
import torch._dynamo
import torch.nn.functional as F  # noqa: F401 - the generated programs use it
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

DEFAULT_EXAMPLES = 40
SLOW_EXAMPLES = 2000


# An op is a function (draw, shapes) -> a source template over {0}, {1} (its operands).
def unary(template):
    return 1, lambda draw, shapes: template


def binary(template):
    return 2, lambda draw, shapes: template


def along_a_dim(template):
    def make(draw, shapes):
        rank = len(shapes[0])
        if rank == 0:
            return None
        return template.format(
            "{0}", dim=draw(st.integers(-rank, rank - 1)), keep=draw(st.booleans())
        )

    return 1, make


def transpose(draw, shapes):
    rank = len(shapes[0])
    if rank < 2:
        return None
    d0, d1 = draw(st.permutations(range(rank)))[:2]
    return f"{{0}}.transpose({d0}, {d1})"


def permute(draw, shapes):
    return f"{{0}}.permute({list(draw(st.permutations(range(len(shapes[0])))))})"


def slice_last(draw, shapes):
    if not shapes[0] or shapes[0][-1] < 2:
        return None
    start = draw(st.integers(0, shapes[0][-1] - 2))
    return f"{{0}}[..., {start}:]"


def expand_front(draw, shapes):
    return f"{{0}}.expand({draw(st.integers(1, 3))}, *{{0}}.shape)"


OPS = {
    "sin": unary("torch.sin({0})"),
    "cos": unary("torch.cos({0})"),
    "tanh": unary("torch.tanh({0})"),
    "sigmoid": unary("torch.sigmoid({0})"),
    "exp_tanh": unary("torch.exp(torch.tanh({0}))"),
    "relu": unary("torch.relu({0})"),
    "gelu": unary("F.gelu({0})"),
    "silu": unary("F.silu({0})"),
    "softplus": unary("F.softplus({0})"),
    "neg": unary("-{0}"),
    "square": unary("{0} * {0}"),
    "cube": unary("{0} ** 3"),
    "sqrt": unary("torch.sqrt({0} * {0} + 1)"),
    "log": unary("torch.log({0} * {0} + 1)"),
    "rsqrt": unary("torch.rsqrt({0} * {0} + 0.5)"),
    "reciprocal": unary("1 / ({0} * {0} + 1)"),
    "scale": unary("{0} * 0.5 + 1.5"),
    "abs": unary("{0}.abs()"),
    "clamp": unary("{0}.clamp(-0.5, 0.75)"),
    "dropout": unary("F.dropout({0}, 0.3, training=True)"),
    "layer_norm": unary("F.layer_norm({0}, {0}.shape[-1:])"),
    "sum_all": unary("{0}.sum()"),
    "mean_all": unary("{0}.mean()"),
    "sum": along_a_dim("{0}.sum({dim}, keepdim={keep})"),
    "mean": along_a_dim("{0}.mean({dim}, keepdim={keep})"),
    "amax": along_a_dim("{0}.amax({dim}, keepdim={keep})"),
    "softmax": along_a_dim("torch.softmax({0}, {dim})"),
    "log_softmax": along_a_dim("torch.log_softmax({0}, {dim})"),
    "cat": along_a_dim("torch.cat([{0}, {0} * 2], {dim})"),
    "logsumexp": along_a_dim("torch.logsumexp({0}, {dim}, keepdim={keep})"),
    "cumsum": along_a_dim("torch.cumsum({0}, {dim})"),
    "transpose": (1, transpose),
    "permute": (1, permute),
    "flatten": unary("{0}.reshape(-1)"),
    "flatten_tail": unary("{0}.flatten(1)"),
    "by_last_size": unary("{0} / {0}.shape[-1]"),  # size arithmetic: SymInts when dynamic
    "in_place": unary("{0}.clone().mul_(1.5).add_({0})"),
    "unsqueeze": unary("{0}.unsqueeze(0)"),
    "slice": (1, slice_last),
    "expand": (1, expand_front),
    "add": binary("{0} + {1}"),
    "sub": binary("{0} - {1}"),
    "mul": binary("{0} * {1}"),
    "div": binary("{0} / ({1} * {1} + 1)"),
    "where": binary("torch.where({0} > {1}, {0}, {1})"),
    "maximum": binary("torch.maximum({0}, {1} + 0.25)"),
    "pow": binary("({0} * {0} + 1) ** torch.tanh({1})"),
    "matmul": binary("{0} @ {1}"),
    "matmul_t": binary("{0} @ {1}.transpose(-1, -2)"),
}


def _shape_after(template, shapes):
    """The result's shape, or None when the step does not run on these shapes."""
    values = [torch.ones(s, dtype=torch.float64) for s in shapes]
    env = {"torch": torch, "F": torch.nn.functional}
    env.update({f"a{i}": v for i, v in enumerate(values)})
    try:
        out = eval(template.format(*(f"a{i}" for i in range(len(values)))), env)
    except (RuntimeError, IndexError):
        return None
    return tuple(out.shape) if out.numel() <= 512 and out.dim() <= 4 else None


@st.composite
def programs(draw):
    base = draw(st.lists(st.integers(1, 4), min_size=0, max_size=3))
    n_inputs = draw(st.integers(1, 3))
    shapes = []
    for _ in range(n_inputs):  # a suffix of `base`, some dims squeezed to 1: all broadcast
        rank = draw(st.integers(0, len(base)))
        suffix = base[len(base) - rank :]
        shapes.append(tuple(1 if draw(st.booleans()) and d > 1 else d for d in suffix))
    names = [f"x{i}" for i in range(n_inputs)]
    lines, random_results = [], []
    for step in range(draw(st.integers(1, 6))):
        for _attempt in range(20):
            name = draw(st.sampled_from(sorted(OPS)))
            arity, make = OPS[name]
            operands = [draw(st.integers(0, len(names) - 1)) for _ in range(arity)]
            template = make(draw, [shapes[i] for i in operands])
            shape = template and _shape_after(template, [shapes[i] for i in operands])
            if shape is not None:
                break
        else:
            template, operands, shape = "torch.sin({0})", [len(names) - 1], shapes[-1]
        lines.append(f"v{step} = " + template.format(*(names[i] for i in operands)))
        names.append(f"v{step}")
        shapes.append(shape)
        if name == "dropout":
            random_results.append(names[-1])
    outputs = [names[-1]]
    if draw(st.booleans()) and len(names) > n_inputs + 1:
        outputs.append(names[draw(st.integers(n_inputs, len(names) - 2))])
    # a dropout nobody reads is dropped by the lowering (as aot_eager does), which shifts the
    # random numbers later ones draw: a documented difference, so every dropout is returned
    outputs += [r for r in random_results if r not in outputs]
    body = "\n".join(lines + [f"return {', '.join(outputs)},"])
    source = f"def program({', '.join(names[:n_inputs])}):\n{textwrap.indent(body, '    ')}\n"
    return source, shapes[:n_inputs]


_program_ids = iter(range(10**9))


def _function(source):
    filename = f"<fuzz program {next(_program_ids)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    env = {"torch": torch, "F": torch.nn.functional}
    exec(compile(source, filename, "exec"), env)
    return env["program"]


def check_program(source, shapes, dtype, requires_grad, seed, dynamic=False, twice=False):
    """Run `source` eagerly and under the tape; compare outputs, gradients and (`twice`) the
    gradients of a gradient penalty."""
    program = _function(source)
    generator = torch.Generator().manual_seed(seed)
    data = [torch.randn(s, dtype=torch.float64, generator=generator).to(dtype) for s in shapes]

    def run(fn):
        torch.manual_seed(seed)  # dropout draws the same mask in both runs
        inputs = [x.clone().requires_grad_(r) for x, r in zip(data, requires_grad, strict=True)]
        outs = fn(*inputs)
        differentiable = [o for o in outs if o.requires_grad]
        results = [*outs, [o.requires_grad for o in outs]]
        if not differentiable:
            return results
        cotangent_gen = torch.Generator().manual_seed(seed + 1)
        cts = [torch.randn(o.shape, dtype=o.dtype, generator=cotangent_gen) for o in differentiable]
        wrt = [x for x in inputs if x.requires_grad]
        grads = torch.autograd.grad(differentiable, wrt, cts, allow_unused=True, create_graph=twice)
        results += grads
        if twice:
            penalty = sum((g * g).sum() for g in grads if g is not None)
            if isinstance(penalty, torch.Tensor) and penalty.requires_grad:
                results += torch.autograd.grad(penalty, wrt, allow_unused=True)
            else:
                results += [None] * len(wrt)
        return results

    theirs = run(program)
    torch._dynamo.reset()
    ours = run(torch.compile(program, backend="tape", dynamic=dynamic))
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if a is None or b is None:  # no gradient on one side: it must be zero on the other
            other = a if b is None else b
            assert other is None or not other.abs().any(), f"result {i}: {a} != {b}"
            continue
        if not isinstance(b, torch.Tensor):  # the requires_grad flags
            assert a == b, f"result {i}: {a} != {b}"
            continue
        assert a.dtype == b.dtype, f"result {i}"
        torch.testing.assert_close(a, b, equal_nan=True, msg=lambda m, i=i: f"result {i}: {m}")


@st.composite
def examples(draw):
    source, shapes = draw(programs())
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    requires_grad = draw(st.lists(st.booleans(), min_size=len(shapes), max_size=len(shapes)))
    requires_grad[draw(st.integers(0, len(shapes) - 1))] = True
    return dict(
        source=source,
        shapes=shapes,
        dtype=dtype,
        requires_grad=requires_grad,
        seed=draw(st.integers(0, 2**16)),
        dynamic=draw(st.booleans()),
        twice=dtype == torch.float64 and draw(st.booleans()),
    )


def _fuzz(example):
    note(example["source"])
    note({k: v for k, v in example.items() if k != "source"})
    check_program(**example)


_settings = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)


@settings(max_examples=DEFAULT_EXAMPLES, **_settings)
@given(examples())
def test_random_programs_match_eager(example):
    _fuzz(example)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **{**_settings, "derandomize": False})
@given(examples())
def test_random_programs_match_eager_long_run(example):
    _fuzz(example)
