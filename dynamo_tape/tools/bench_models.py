"""The benchmark's models, each with how to make its batch: a deep narrow MLP (per-op overhead
shows) and a wide one (the ATen kernels dominate), defined here, a tiny GPT-2 and a small
ResNet CNN from the example models (`examples/models.py`), and some of the model zoo's
(`zoo_models.py`: transformers and torchvision models with tiny configs) where their library
imports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .examples import models as zoo
from .zoo_models import ZOO, key


class DeepMLP(nn.Module):
    """16 x (Linear, LayerNorm, GELU) at width 32: many small ops, so per-op overhead shows."""

    def __init__(self, width=32, depth=16, classes=10):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.LayerNorm(width), nn.GELU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x, labels):
        return F.cross_entropy(self.head(self.body(x)), labels)


class WideMLP(nn.Module):
    """512-2048-2048-10: few large matmuls, so the ATen kernels dominate."""

    def __init__(self, sizes=(512, 2048, 2048, 10)):
        super().__init__()
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x, labels):
        return F.cross_entropy(self.net(x), labels)


def classification_batch(batch, features, classes):
    def make(model, generator):
        x = torch.randn(batch, features, generator=generator)
        return x, torch.randint(0, classes, (batch,), generator=generator)

    return make


@dataclass
class Model:
    name: str
    make: Callable[[], nn.Module]
    batch: Callable  # (model, generator) -> tuple of tensors


MODELS = [
    Model(
        "deep MLP (16 x Linear-LayerNorm-GELU, w32, b8)", DeepMLP, classification_batch(8, 32, 10)
    ),
    Model(
        "tiny GPT-2 (2 layers, w64)",
        lambda: zoo.GPT(n_layer=2, n_embd=64, n_head=4, block=32, vocab=101),
        lambda model, generator: zoo.gpt_batch(model, generator, torch.float32, batch=4),
    ),
    Model("wide MLP (512-2048-2048-10, b64)", WideMLP, classification_batch(64, 512, 10)),
    Model(
        "ResNet CNN (zoo)",
        zoo.ResNet,
        lambda model, generator: zoo.resnet_batch(
            model, generator, torch.float32, batch=8, size=16
        ),
    ),
]


# the model zoo's entries the benchmark runs too (all of them: `dynamo-tape zoo`)
ZOO_MODELS = ("transformers/BERT", "transformers/GPT-2", "transformers/Llama",
              "torchvision/resnet18")  # fmt: skip


def zoo_models() -> tuple[list[Model], dict[str, str]]:
    """The entries of ZOO_MODELS as benchmark models, and for those whose library does not
    import here, the reason (name -> why)."""
    found, missing = [], {}
    for entry in ZOO:
        name = key(entry)
        if name not in ZOO_MODELS:
            continue
        why = entry.missing()
        if why is not None:
            missing[f"{name} (model zoo)"] = why
            continue
        found.append(
            Model(
                f"{name} (model zoo)",
                lambda entry=entry: entry.make(0),
                lambda model, generator, entry=entry: entry.batch(generator),
            )
        )
    return found, missing
