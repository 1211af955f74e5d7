"""Tapes name things: inputs say what they are, entries where they come from, lines wrap.

The goldens print this file's own lines (`tests/test_tape_names.py:NN`, relative to the
repository root, where the tests change directory to): the model is defined first, so that
editing the tests below it moves none of them. Regenerate with `EXPECTTEST_ACCEPT=1 python -m
pytest tests/test_tape_names.py` and review the diff.
"""

# the goldens are printed tapes, whose lines run to `text.WIDTH` (120), past this file's 100
# ruff: noqa: E501

import pathlib

import pytest
import torch
from expecttest import assert_expected_inline
from torch import nn

import dynamo_tape.text
from dynamo_tape.dynamo_graph import input_name, readable
from dynamo_tape.ir import Tape, TapeEntry, Variable
from dynamo_tape.ops import aten
from dynamo_tape.tracker import last_compiled


class Features(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = Features()
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        y = self.features(x).mean((2, 3))
        return self.head(y)


REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def at_the_repository_root(monkeypatch):
    monkeypatch.chdir(REPO)  # the sources print relative to it


def _train_step():
    torch.manual_seed(0)
    compiled = torch.compile(Net(), backend="tape", dynamic=False)
    compiled(torch.randn(2, 3, 5, 5)).sum().backward()


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_inputs_named_and_entries_under_their_module_and_line():
    _train_step()
    verbose = dynamo_tape.last_tapes(sources=True)
    assert_expected_inline(
        verbose,
        """\
forward_train(
    v0:f32[4,3,3,3] features.conv.weight,
    v1:f32[4]       features.conv.bias,
    v2:f32[2,3,5,5] x,
    v3:i64[]        features.bn.num_batches_tracked,
    v4:f32[4]       features.bn.running_mean,
    v5:f32[4]       features.bn.running_var,
    v6:f32[4]       features.bn.weight,
    v7:f32[4]       features.bn.bias,
    v8:f32[2,4]     head.weight,
    v9:f32[2]       head.bias,
):
  # features.conv | tests/test_tape_names.py:33 in forward | return torch.relu(self.bn(self.conv(x)))
  v10:f32[2,4,5,5] = convolution v2 v0 v1 [stride=[1, 1], padding=[1, 1], dilation=[1, 1], transposed=False,
      output_padding=[0, 0], groups=1]
  # features.bn | tests/test_tape_names.py:33 in forward | return torch.relu(self.bn(self.conv(x)))
  v11:i64[] = add_.Tensor v3 [other=1]
  v12:f32[2,4,5,5] v13:f32[4] v14:f32[4] = _native_batch_norm_legit v10 v6 v7 v4 v5 [training=True, momentum=0.1,
      eps=1e-05]
  # features | tests/test_tape_names.py:33 in forward | return torch.relu(self.bn(self.conv(x)))
  v17:f32[2,4,5,5] = relu v12
  # tests/test_tape_names.py:43 in forward | y = self.features(x).mean((2, 3))
  v18:f32[2,4] = mean.dim v17 [dim=[2, 3]]
  # head | tests/test_tape_names.py:44 in forward | return self.head(y)
  v20:f32[2,2] = linear v18 v8 v9
  return (None, None, None, v20, v8, v18, v17, v10, v6, v13, v14, v2, v0)

backward(
    v8:f32[2,4]     head.weight,
    v18:f32[2,4], v17:f32[2,4,5,5], v10:f32[2,4,5,5],
    v6:f32[4]       features.bn.weight,
    v13:f32[4], v14:f32[4],
    v2:f32[2,3,5,5] x,
    v0:f32[4,3,3,3] features.conv.weight,
    v21:f32[2,2],
):
  # head | tests/test_tape_names.py:44 in forward | return self.head(y)
  v22:f32[2,4] = mm v21 v8
  v23:f32[2,2] = permute v21 [dims=[1, 0]]
  v24:f32[2,4] = mm v23 v18
  v26:f32[2] = sum.dim_IntList v21 [dim=[0]]
  # tests/test_tape_names.py:43 in forward | y = self.features(x).mean((2, 3))
  v27:f32[2,4,1] = unsqueeze v22 [dim=2]
  v28:f32[2,4,1,1] = unsqueeze v27 [dim=3]
  v29:f32[2,4,5,5] = expand v28 [size=[2, 4, 5, 5]]
  v30:f32[2,4,5,5] = div.Tensor v29 [other=25]
  # features | tests/test_tape_names.py:33 in forward | return torch.relu(self.bn(self.conv(x)))
  v31:f32[2,4,5,5] = threshold_backward v30 v17 [threshold=0]
  # features.bn | tests/test_tape_names.py:33 in forward | return torch.relu(self.bn(self.conv(x)))
  v32:f32[2,4,5,5] v33:f32[4] v34:f32[4] = native_batch_norm_backward v31 v10 v6 v13 v14 [running_mean=None,
      running_var=None, train=True, eps=1e-05, output_mask=[True, True, True]]
  # features.conv | tests/test_tape_names.py:33 in forward | return torch.relu(self.bn(self.conv(x)))
  _ v35:f32[4,3,3,3] v36:f32[4] = convolution_backward v32 v2 v0 [bias_sizes=[4], stride=[1, 1], padding=[1, 1],
      dilation=[1, 1], transposed=False, output_padding=[0, 0], groups=1, output_mask=[False, True, True]]
  return (v35, v36, v33, v34, v24, v26)""",
    )
    compact = dynamo_tape.last_tapes()
    # the default form is the same tape without the comments
    assert compact == _without_comments(verbose)
    for text in (compact, verbose):
        assert max(map(len, text.splitlines())) <= dynamo_tape.text.WIDTH


def test_names_are_for_reading_the_code_keeps_its_own():
    _train_step()
    graph = last_compiled()
    labels = {v.name: v.label for v in graph.tape.inputs}
    assert labels["v2"] == "x"
    assert labels["v4"] == "features.bn.running_mean"
    for source in dynamo_tape.last_code().values():
        assert "features" not in source  # the code's identifiers are v0, v1...


def test_entries_made_after_differentiation_keep_where_they_come_from():
    _train_step()
    graph = last_compiled()
    lowered = {e.op: e for e in graph.tape.entries}
    addmm = lowered[aten.addmm.default]
    forward = graph.program.final("forward_train")
    # fuse_linear made this `linear` from the lowered `permute` and `addmm` of `self.head(y)`
    (linear,) = [e for e in forward.entries if e.op is aten.linear.default]
    assert (linear.module, linear.source) == ("head", addmm.source) == ("head", linear.source)
    assert linear.code == "return self.head(y)"
    # every backward entry comes from the forward entry it differentiates
    backward = graph.program.final("backward")
    modules = {e.module for e in backward.entries}
    assert modules == {"head", None, "features", "features.bn", "features.conv"}
    assert all(e.source for e in backward.entries)


def test_long_lines_wrap_at_their_separators():
    def many(x):
        parts = x.view(2, *[1] * 30, 3).split(1, dim=-1)
        return tuple(p * i for i, p in enumerate(parts * 14))

    compiled = torch.compile(many, backend="tape", dynamic=False)
    compiled(torch.randn(6))
    tape = last_compiled().tape
    text = tape.text()
    assert max(map(len, text.splitlines())) <= dynamo_tape.text.WIDTH
    # the wrapped lines, joined again, are each entry's own line
    joined = " ".join(line.strip() for line in text.splitlines()[1:])
    for e in tape.entries:
        assert e.text() in joined
    # continuation lines start with a whole constant or value, not inside a list
    (view,) = [line for line in text.splitlines() if " = view " in line]
    assert view.endswith(" = view v0")
    continued = text.splitlines()[text.splitlines().index(view) + 1]
    assert continued.startswith("      [size=[2, 1, 1,")
    returns = text[text.index("  return (") :].splitlines()
    assert len(returns) > 1 and all(line.startswith(" " * 10 + "v") for line in returns[1:])


def test_header_one_line_where_it_fits_else_one_labeled_input_per_line():
    short = [Variable("v0", torch.empty(3), "weight"), Variable("v1", torch.empty(3))]
    tape = Tape("forward", short, [], short[:1])
    assert tape.text() == "forward(v0:f32[3] weight, v1:f32[3]):\n  return (v0,)"
    many = [Variable(f"v{i}", torch.empty(8, 8), f"blocks.{i}.weight") for i in range(6)]
    many += [Variable(f"v{i}", torch.empty(2)) for i in range(6, 30)]
    entry = TapeEntry(aten.add.Tensor, [many[0], many[1]], {}, [Variable("v30", torch.empty(8, 8))])
    assert_expected_inline(
        Tape("forward", many, [entry], many[6:30]).text(sources=True),
        """\
forward(
    v0:f32[8,8] blocks.0.weight,
    v1:f32[8,8] blocks.1.weight,
    v2:f32[8,8] blocks.2.weight,
    v3:f32[8,8] blocks.3.weight,
    v4:f32[8,8] blocks.4.weight,
    v5:f32[8,8] blocks.5.weight,
    v6:f32[2], v7:f32[2], v8:f32[2], v9:f32[2], v10:f32[2], v11:f32[2], v12:f32[2], v13:f32[2], v14:f32[2], v15:f32[2],
    v16:f32[2], v17:f32[2], v18:f32[2], v19:f32[2], v20:f32[2], v21:f32[2], v22:f32[2], v23:f32[2], v24:f32[2],
    v25:f32[2], v26:f32[2], v27:f32[2], v28:f32[2], v29:f32[2],
):
  v30:f32[8,8] = add.Tensor v0 v1
  return (v6, v7, v8, v9, v10, v11, v12, v13, v14, v15, v16, v17, v18, v19, v20, v21, v22, v23, v24, v25, v26, v27, v28,
          v29)""",
    )


def test_the_comment_before_a_run_of_entries():
    x, y = Variable("v0", torch.empty(3)), Variable("v1", torch.empty(3))
    long_line = "tests/test_tape_names.py:1 in forward"
    entries = [
        TapeEntry(
            aten.relu.default, [x], {}, [y], module="block.act", source=f"{REPO}/{long_line}"
        ),
        TapeEntry(aten.relu.default, [y], {}, [Variable("v2", torch.empty(3))]),
    ]
    text = Tape("forward", [x], entries, [entries[1].outputs[0]]).text(sources=True)
    code = (
        '"""Tapes name things: inputs say what they are, entries where they come from, lines wrap.'
    )
    assert text.splitlines()[1:4] == [
        f"  # block.act | {long_line}",  # the code on a line of its own: one would be too long
        f"  #   {code}",
        "  v1:f32[3] = relu v0",
    ]
    assert text.splitlines()[4] == "  # (no source line)"


@pytest.mark.parametrize(
    "source, name",
    [
        ("L['self']._modules['bn1']._buffers['running_mean']", "bn1.running_mean"),
        ("L['self']._modules['layer1']._modules['0']._parameters['weight']", "layer1.0.weight"),
        ("L['x']", "x"),
        ("L['model']._modules['fc']._parameters['bias']", "model.fc.bias"),
        ("G['linear']._parameters['weight']", "linear.weight"),
        ("L['self'].layer1.0.conv1", "layer1.0.conv1"),  # a module path of nn_module_stack
        ("L['self'].state[list(dict.keys(L['self'].state))[1]]['exp_avg']", "state[#1]['exp_avg']"),
    ],
)
def test_readable_names(source, name):
    assert readable(source) == name


def test_a_torch_nn_module_compiled_whole_is_named_as_named_parameters_does():
    # Dynamo enters an nn.Sequential through a wrapper of its own, whose sources say `fn`
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5))
    torch.compile(model, backend="tape")(torch.randn(4, 6))
    tape = last_compiled().tape
    labels = [v.label for v in tape.inputs]
    assert {n for n, _ in model.named_parameters()} <= set(labels)
    assert "1.running_mean" in labels
    assert {e.module for e in tape.entries} == {"0", "1"}


def test_a_placeholder_without_a_source_is_named_from_its_own_name():
    graph = torch.fx.Graph()
    weight = graph.placeholder("L_self_modules_conv1_parameters_weight_")
    x = graph.placeholder("L_x_")
    assert (input_name(weight), input_name(x)) == ("conv1.weight", "x")
    assert input_name(graph.placeholder("arg0_1")) is None


def test_optimizer_state_lifted_from_attributes_is_named():
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(3, 4)).sum().backward()

    @torch.compile(backend="tape")
    def step():
        opt.step()

    step()
    labels = [v.label for v in last_compiled().tape.inputs]
    assert "param_groups[0]['params'][0].grad" in labels  # a graph input
    assert "param_groups[0]['params'][0]" in labels  # an attribute made an input
