"""Programs eager runs and the tape once refused or got wrong: compiled optimizer steps,
in-place updates of leaves, inference tensors. Each is compared with eager (and, where Dynamo
itself changes the program, with Dynamo alone: `torch.compile(..., backend="eager")`)."""

import copy

import pytest
import torch

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd_momentum_foreach": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=True),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=False),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01, foreach=False),
    "adam_foreach": lambda p: torch.optim.Adam(p, lr=0.01, foreach=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, foreach=False),
    "adamw_foreach": lambda p: torch.optim.AdamW(p, lr=0.01, foreach=True),
}


def _state(model, optimizer):
    tensors = [p.detach() for p in model.parameters()]
    for p in model.parameters():
        tensors += [t for t in optimizer.state[p].values() if isinstance(t, torch.Tensor)]
    return tensors


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_compiled_optimizer_step_updates_parameters_and_state_as_eager(name):
    # Dynamo compiles the step's attribute tensors (parameters, state) as get_attr nodes, and
    # torch's optimizers take other code paths under torch.compile (Adam's bias corrections as
    # tensors): the tape must equal Dynamo alone bit for bit, and eager to rounding
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))]
    models += [copy.deepcopy(models[0]) for _ in range(2)]
    optimizers = [OPTIMIZERS[name](m.parameters()) for m in models]
    steps = [
        optimizers[0].step,
        torch.compile(optimizers[1].step, backend="eager"),
        torch.compile(optimizers[2].step, backend="tape"),
    ]
    for _ in range(4):
        x = torch.randn(5, 4)
        for model, optimizer, step in zip(models, optimizers, steps):
            optimizer.zero_grad()
            model(x).pow(2).sum().backward()
            step()
    eager, dynamo, tape = (_state(m, o) for m, o in zip(models, optimizers))
    assert len(tape) == len(eager) >= 4  # four parameters, and their state
    for a, b in zip(tape, dynamo):
        assert torch.equal(a, b)
    for a, b in zip(tape, eager):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


class _ScalesItsWeight(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x):
        self.lin.weight.data.mul_(0.5)  # not recorded by autograd: later reads are the leaf's
        return self.lin(x)


@pytest.mark.parametrize(
    "make, batch",
    [
        (_ScalesItsWeight, lambda: torch.randn(4, 3)),
        # renormalizes its weight rows in place under no_grad before the lookup
        (lambda: torch.nn.Embedding(10, 4, max_norm=1.0), lambda: torch.tensor([1, 2, 2, 7])),
    ],
    ids=["weight_data_mul_", "embedding_max_norm"],
)
def test_unrecorded_in_place_updates_of_leaves_train_as_eager(make, batch):
    torch.manual_seed(0)
    eager = make()
    ours = copy.deepcopy(eager)
    compiled = torch.compile(ours, backend="tape", options={"fallback": "error"})
    for _ in range(3):
        x = batch()
        for model in (eager, compiled):
            model(x).pow(2).sum().backward()
    for a, b in zip(eager.parameters(), ours.parameters()):
        assert torch.equal(a, b)
        assert torch.equal(a.grad, b.grad)


def test_inputs_made_under_inference_mode_work_as_in_eager():
    with torch.inference_mode():
        x = torch.randn(3, 4)
    w = torch.randn(3, 4, requires_grad=True)

    def f(x, w):
        return (x + w).relu().sum()  # relu saves its output, not x: eager can differentiate

    f(x, w).backward()
    expected, w.grad = w.grad, None
    torch.compile(f, backend="tape")(x, w).backward()
    assert torch.equal(w.grad, expected)
    # double backward recomputes from the inputs: an inference tensor has no version counter
    (g,) = torch.autograd.grad(torch.compile(f, backend="tape")(x, w), w, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), w, allow_unused=True, materialize_grads=True)
    (eg,) = torch.autograd.grad(f(x, w), w, create_graph=True)
    (egg,) = torch.autograd.grad(eg.sum(), w, allow_unused=True, materialize_grads=True)
    assert torch.equal(g, eg) and torch.equal(gg, egg)
    with torch.inference_mode():
        out = torch.compile(lambda x: x * 2, backend="tape")(x)
    assert out.is_inference() and torch.equal(out, x * 2)
