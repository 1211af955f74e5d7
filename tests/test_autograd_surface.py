"""The autograd surface, one line per situation, each compared with eager.

A case is a function and a maker of its inputs. `test_matches_eager` runs it in eager and
under `backend="tape"` (`fallback="error"` unless the case says otherwise) on equal copies of
the inputs, then compares: every output's value and flags (requires_grad, whether it has a
grad_fn, dtype, layout, shape, whether it is a view), and the gradients of every input for a
random cotangent over exactly the outputs eager differentiates, and the gradients' own flags;
`order=2` also compares the gradients of a random functional of those gradients (double
backward).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from torch.autograd.function import once_differentiable

import dynamo_tape

# ---- custom autograd.Functions, one per style the issue lists ------------------------------


class GradReverse(torch.autograd.Function):  # domain adaptation's gradient reversal
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -g


class ScaledSin(torch.autograd.Function):  # saved tensors, a non-tensor on ctx
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        ctx.save_for_backward(x)
        return torch.sin(x) * scale

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ctx.scale * torch.cos(x), None


class Cube(torch.autograd.Function):  # a differentiable backward: double backward works
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * g


class SavedOutputExp(torch.autograd.Function):  # the output is saved: d exp = exp
    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class NeedsInputGrad(torch.autograd.Function):  # gradients only where asked for
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = g * b if ctx.needs_input_grad[0] else None
        gb = g * a if ctx.needs_input_grad[1] else None
        return ga, gb


class ArgmaxAndValue(torch.autograd.Function):  # a non-differentiable output
    @staticmethod
    def forward(ctx, x):
        index = x.argmax(dim=-1)
        mask = (x > 0).to(x.dtype)
        ctx.mark_non_differentiable(index, mask)
        ctx.save_for_backward(x)
        return x * 2, index, mask

    @staticmethod
    def backward(ctx, g, g_index, g_mask):
        return g * 2


class TwoOutputs(torch.autograd.Function):  # several outputs, one unused by the loss
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y, x + y

    @staticmethod
    def backward(ctx, g_product, g_sum):
        x, y = ctx.saved_tensors
        return g_product * y + g_sum, g_product * x + g_sum


class NoMaterialize(torch.autograd.Function):  # set_materialize_grads(False)
    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        return x * 2, x * 3

    @staticmethod
    def backward(ctx, g2, g3):
        gx = None
        if g2 is not None:
            gx = g2 * 2
        if g3 is not None:
            gx = g3 * 3 if gx is None else gx + g3 * 3
        return gx


class StraightThrough(torch.autograd.Function):  # a forward with no derivative
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class SetupContextSquare(torch.autograd.Function):  # the setup_context style
    @staticmethod
    def forward(x, k):
        return x * x * k

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, k = inputs
        ctx.save_for_backward(x)
        ctx.k = k

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g * ctx.k, None


class OnceDifferentiableSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class WithNonTensorOutput(torch.autograd.Function):  # returns a Python number too
    @staticmethod
    def forward(ctx, x):
        return x * 2, 3

    @staticmethod
    def backward(ctx, g, g_number):
        return g * 2


def _non_tensor_output(x):
    y, n = WithNonTensorOutput.apply(x)
    return y * n


class ScaleInPlace(torch.autograd.Function):  # mark_dirty: the input itself is the output
    @staticmethod
    def forward(ctx, x):
        x.mul_(2)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return g * 2


# ---- the table -------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    name: str
    fn: Callable
    make: Callable  # () -> list of inputs (tensors made with torch.manual_seed(0) set)
    order: int = 1
    options: dict = dataclasses.field(default_factory=lambda: {"fallback": "error"})

    def __repr__(self):
        return self.name


def real(*shape, grad=True, dtype=torch.float64):
    return lambda: torch.randn(*shape, dtype=dtype).requires_grad_(grad)


def cplx(*shape, grad=True, dtype=torch.complex128):
    return lambda: torch.randn(*shape, dtype=dtype).requires_grad_(grad)


def inputs(*makers):
    return lambda: [m() for m in makers]


def _embedding_sparse(idx, w):
    return (torch.nn.functional.embedding(idx, w, sparse=True) ** 2).sum()


def _in_place_on_a_view(x):
    y = x * 1
    y[0].mul_(3)
    y[:, 1:].add_(x[:, :2])
    return y


def _fft_round_trip(x, k):
    return torch.fft.irfft(torch.fft.rfft(x) * k, n=x.shape[-1])


# fmt: off
CASES = [
    # custom autograd.Functions
    Case("grad_reverse", lambda x, w: (GradReverse.apply(x @ w) ** 2).sum(),
         inputs(real(3, 2, grad=False), real(2, 2))),
    Case("saved_tensor_and_ctx_attribute", lambda x: ScaledSin.apply(x, 2.5), inputs(real(4))),
    Case("differentiable_backward_second_order", lambda x: Cube.apply(x), inputs(real(4)),
         order=2),
    Case("saved_output", lambda x: SavedOutputExp.apply(x).sum(), inputs(real(4)), order=2),
    Case("needs_input_grad", lambda a, b: NeedsInputGrad.apply(a, b),
         inputs(real(3), real(3, grad=False))),
    Case("mark_non_differentiable", lambda x: ArgmaxAndValue.apply(x), inputs(real(2, 5))),
    Case("several_outputs_one_unused", lambda x, y: TwoOutputs.apply(x, y)[0],
         inputs(real(3), real(3))),
    Case("several_outputs", lambda x, y: TwoOutputs.apply(x, y), inputs(real(3), real(3))),
    Case("set_materialize_grads_false", lambda x: NoMaterialize.apply(x)[1].sum(),
         inputs(real(3))),
    Case("straight_through_estimator", lambda x: (StraightThrough.apply(x * 3) * x).sum(),
         inputs(real(5))),
    Case("setup_context_style", lambda x: SetupContextSquare.apply(x, 3.0), inputs(real(4))),
    Case("function_used_twice", lambda x: Cube.apply(Cube.apply(x) + 1), inputs(real(3)),
         order=2),
    Case("once_differentiable_first_order", lambda x: OnceDifferentiableSquare.apply(x),
         inputs(real(3))),
    # eager runs such a backward under no_grad: its gradients are constants (see also
    # test_double_backward_through_once_differentiable_raises_as_eager)
    Case("once_differentiable_gradients_are_constants",
         lambda x: OnceDifferentiableSquare.apply(x), inputs(real(3)), order=2),
    Case("mark_dirty", lambda x: ScaleInPlace.apply(x.clone()) * 3, inputs(real(3))),
    Case("non_tensor_output", _non_tensor_output, inputs(real(3))),
    # complex programs: a real loss's gradient is the conjugate Wirtinger derivative
    Case("complex_square_real_part", lambda z: (z * z).real.sum(), inputs(cplx(3))),
    Case("complex_mul_div_exp_log", lambda z, w: torch.log(torch.exp(z) * w / (z + 3)),
         inputs(cplx(4), cplx(4))),
    Case("complex_abs_angle", lambda z: z.abs() + z.angle(), inputs(cplx(5))),
    Case("complex_pow_conj", lambda z: (z**3 * z.conj()).imag, inputs(cplx(4))),
    Case("complex_matmul", lambda a, b: (a @ b).abs().sum(), inputs(cplx(3, 4), cplx(4, 2))),
    Case("complex_from_real_parts", lambda x, y: torch.complex(x, y).abs() ** 2,
         inputs(real(4), real(4))),
    Case("complex_polar", lambda r, t: torch.view_as_real(torch.polar(r, t)),
         inputs(lambda: (torch.rand(4, dtype=torch.float64) + 0.5).requires_grad_(), real(4))),
    Case("complex_view_as_complex", lambda x: torch.view_as_complex(x) * 2j,
         inputs(real(4, 2))),
    Case("complex_sgn", lambda z: torch.sgn(z) * z, inputs(cplx(4))),
    Case("complex64", lambda z: (z * z.exp()).real, inputs(cplx(3, dtype=torch.complex64))),
    Case("complex_second_order", lambda z: (z * z * z).abs().sum(), inputs(cplx(3)), order=2),
    Case("rfft_product_irfft", _fft_round_trip, inputs(real(8), cplx(5))),
    Case("rfft_of_real_input", lambda x: torch.fft.rfft(x).abs(), inputs(real(6))),
    # zero gradients: the output requires grad, the gradient is zeros
    Case("round_floor_ceil_trunc", lambda x: torch.round(x) + torch.floor(x) * torch.ceil(x)
         + torch.trunc(x), inputs(real(5))),
    Case("sign", lambda x: torch.sign(x) * 2, inputs(real(5))),
    Case("round_alone", lambda x: torch.round(x), inputs(real(5))),
    # outputs that never carry a gradient
    Case("lu_pivots", lambda a: torch.linalg.lu(a), inputs(real(4, 4))),
    Case("lu_unpack", lambda a: torch.lu_unpack(*torch.linalg.lu_factor(a)), inputs(real(3, 3))),
    Case("max_indices", lambda x: torch.max(x, dim=1), inputs(real(3, 4))),
    Case("sort_indices", lambda x: torch.sort(x), inputs(real(5))),
    # sparse gradients
    Case("embedding_sparse", _embedding_sparse,
         inputs(lambda: torch.tensor([[1, 2, 4], [4, 3, 9]]), real(10, 3))),
    # views and in-place on them
    Case("outputs_are_views", lambda x: (x.t(), x[1:], x.view(-1), x.unsqueeze(0)),
         inputs(real(3, 2))),
    Case("in_place_on_a_view", _in_place_on_a_view, inputs(real(3, 3))),
    Case("in_place_on_an_input_view", lambda x: x.clone()[0].add_(1), inputs(real(2, 3))),
]
# fmt: on


# ---- the comparison --------------------------------------------------------------------


def _flags(t):
    if not isinstance(t, torch.Tensor):
        return ("value", t)
    return (
        t.requires_grad,
        t.grad_fn is None,
        t.dtype,
        t.layout,
        tuple(t.shape),
        t._base is not None,
    )


def _leaves(out):
    return list(out) if isinstance(out, tuple | list) else [out]


def _run(fn, case, generator_seed):
    torch.manual_seed(0)
    xs = case.make()
    outs = _leaves(fn(*xs))
    flags = [_flags(o) for o in outs]
    values = [o.detach().clone() if isinstance(o, torch.Tensor) else o for o in outs]
    generator = torch.Generator().manual_seed(generator_seed)
    pairs = [
        (o, torch.randn(o.shape, dtype=o.dtype, generator=generator))
        for o in outs
        if isinstance(o, torch.Tensor) and o.requires_grad
    ]
    wrt = [x for x in xs if isinstance(x, torch.Tensor) and x.requires_grad]
    grads = second = None
    if pairs and wrt:
        grads = torch.autograd.grad(
            [o for o, _ in pairs],
            wrt,
            [c for _, c in pairs],
            allow_unused=True,
            create_graph=case.order == 2,
        )
        flags += [_flags(g) for g in grads]
        live = [g for g in grads if g is not None and g.requires_grad]
        if case.order == 2 and live:
            weights = [torch.randn(g.shape, dtype=g.dtype, generator=generator) for g in live]
            # a real functional of the gradients (complex ones through their real part)
            total = sum(
                torch.view_as_real((g * w).sum().to(torch.complex128)).sum()
                if g.is_complex()
                else (g * w).sum()
                for g, w in zip(live, weights)
            )
            second = torch.autograd.grad(total, wrt, allow_unused=True)
        grads = [None if g is None else g.detach() for g in grads]
    return values, flags, grads, second


def _close(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, torch.Tensor):
        if a.layout != b.layout:
            return False
        if a.is_sparse:
            a, b = a.to_dense(), b.to_dense()
        return a.dtype == b.dtype and a.shape == b.shape and torch.allclose(a, b, equal_nan=True)
    return a == b


def _same_list(xs, ys):
    if xs is None or ys is None:
        return xs is None and ys is None
    return len(xs) == len(ys) and all(_close(a, b) for a, b in zip(xs, ys))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_matches_eager(case):
    compiled = torch.compile(case.fn, backend="tape", options=case.options)
    expected = _run(case.fn, case, 1)
    actual = _run(compiled, case, 1)
    names = ("values", "flags", "gradients", "second-order gradients")
    for name, e, a in zip(names, expected, actual):
        if name == "flags":
            assert e == a, f"{name}: eager {e}, tape {a}"
        else:
            assert _same_list(e, a), f"{name}: eager {e}, tape {a}"


def test_double_backward_through_once_differentiable_raises_as_eager():
    def f(x):
        return (OnceDifferentiableSquare.apply(x) ** 2).sum()

    for fn in (f, torch.compile(f, backend="tape")):
        x = torch.randn(3, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(fn(x), x, create_graph=True)
        assert g.requires_grad  # its cotangent has history: a further gradient is refused
        with pytest.raises(RuntimeError, match="marked with @once_differentiable"):
            g.sum().backward()


def test_a_custom_function_in_a_graph_with_symbolic_sizes_is_refused_by_name():
    # make_fx would trace through the user's forward and drop their backward: refused instead
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    torch._dynamo.mark_dynamic(x, 0)
    f = torch.compile(lambda x: Cube.apply(x).sum(), backend="tape")
    with pytest.raises(Exception, match=r"custom torch.autograd.Function Cube \(from .*test_"):
        f(x)


# ---- how a custom Function reads on the tape -------------------------------------------


def test_a_custom_function_prints_as_the_users_and_its_backward_is_in_the_backward_tape():
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    torch.compile(lambda x: ScaledSin.apply(x, 2.5).sum(), backend="tape")(x).backward()
    text = dynamo_tape.last_tapes()
    assert "= ScaledSin.apply v" in text
    assert "# ScaledSin: a torch.autograd.Function defined at" in text
    assert f"{__file__.split('/')[-1]}" in text.split("defined at")[1].splitlines()[0]
    compiled = dynamo_tape.tracker.last_compiled()
    (plan,) = compiled.plans.values()
    ops = [str(e.op) for e in plan.backward.tape.entries]
    assert any("cos" in op for op in ops), ops  # the user's `torch.cos(x)` in their backward
    sources = [e.source for e in plan.backward.tape.entries if "cos" in str(e.op)]
    assert all("in backward" in s for s in sources), sources


def test_ignoring_the_users_backward_would_be_caught(monkeypatch):
    # the check above is a real check: differentiating the forward instead gives +g, not -g
    from dynamo_tape.custom_function import CustomFunction

    def differentiate_the_forward(self, g, y, *operands):
        return (g[0],)

    monkeypatch.setattr(CustomFunction, "propagate", differentiate_the_forward)
    (case,) = [c for c in CASES if c.name == "grad_reverse"]
    with pytest.raises(AssertionError, match="gradients"):
        test_matches_eager(case)
