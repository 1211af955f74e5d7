"""dynamo_tape.explain(fn)(*args): one call compiled on the tape, forward and backward, reported."""

import torch

import dynamo_tape


def _breaks_once(x, w):
    y = torch.tanh(x @ w)
    print("halfway")  # a graph break
    return (y * y).sum()


def test_explain_reports_the_graphs_the_break_and_the_tapes_of_one_call(capsys):
    x, w = torch.randn(3, 4), torch.randn(4, 2, requires_grad=True)
    explained = dynamo_tape.explain(_breaks_once)(x, w)
    assert len(explained.graphs) == 2 and len(explained.breaks) == 1
    assert explained.breaks[0].function == "_breaks_once"
    assert explained.backward and w.grad is not None  # the backward ran on the tape
    expected = torch.func.grad(lambda w: (torch.tanh(x @ w) ** 2).sum())(w.detach())
    torch.testing.assert_close(w.grad, expected)
    assert any(t.startswith("backward(") for t in explained.tapes)
    text = str(explained)
    assert text.startswith("# dynamo-tape explain") and "## Graph-break sites" in text
    assert "2 graphs, 1 graph-break sites" in repr(explained)


def test_explain_starts_from_a_clean_dynamo_so_a_second_call_reports_again():
    f = dynamo_tape.explain(lambda x: x.sin() * 2)
    x = torch.randn(5)
    assert len(f(x).graphs) == 1
    assert len(f(x).graphs) == 1  # not a cache hit of the first call
    assert not f(x).backward  # nothing requires grad: no backward to run
