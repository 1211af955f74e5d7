"""Tiny models of the four families the tape must train exactly like eager, and a trainer that
runs an eager copy and a `backend="tape"` copy side by side from identical weights.

Every model's `forward(*batch)` returns the scalar loss, so one training loop serves them all.
Used by the tests, the demo, the reports and the benchmarks; sizes are kept small enough to
train in seconds on a CPU.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# --- MLP: Linear + an activation, cross-entropy or MSE ---------------------------------------

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


class MLP(nn.Module):
    def __init__(self, activation="relu", loss="cross_entropy", sizes=(12, 32, 32, 5)):
        super().__init__()
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)
        self.loss = loss

    def forward(self, x, target):
        out = self.net(x)
        if self.loss == "mse":
            return F.mse_loss(out, target)
        return F.cross_entropy(out, target)


def mlp_batch(model: MLP, generator, dtype, batch=16):
    n_in, n_out = model.net[0].in_features, model.net[-1].out_features
    x = torch.randn(batch, n_in, generator=generator, dtype=dtype)
    if model.loss == "mse":
        return x, torch.randn(batch, n_out, generator=generator, dtype=dtype)
    return x, torch.randint(0, n_out, (batch,), generator=generator)


# --- ResNet-style CNN ------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    def __init__(self, n_in, n_out, stride=1, groups=2):
        super().__init__()
        self.conv1 = nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(n_out)
        self.conv2 = nn.Conv2d(n_out, n_out, 3, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(n_out)
        self.shortcut = nn.Identity()
        if stride != 1 or n_in != n_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(n_in, n_out, 1, stride=stride, bias=False), nn.BatchNorm2d(n_out)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, channels=3, width=8, classes=10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.blocks = nn.Sequential(
            ResidualBlock(width, width), ResidualBlock(width, 2 * width, stride=2)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2 * width, classes)

    def forward(self, images, labels):
        x = self.pool(self.blocks(self.stem(images)))
        return F.cross_entropy(self.head(torch.flatten(x, 1)), labels)


def resnet_batch(model: ResNet, generator, dtype, batch=4, size=12):
    channels = model.stem[0].in_channels
    images = torch.randn(batch, channels, size, size, generator=generator, dtype=dtype)
    return images, torch.randint(0, model.head.out_features, (batch,), generator=generator)


# --- GPT-2 style transformer -----------------------------------------------------------------


@dataclass
class GPTConfig:
    vocab: int = 61
    block: int = 16
    n_embd: int = 32
    n_head: int = 4
    n_layer: int = 2
    dropout: float = 0.0
    attention: str = "manual"  # "manual" (matmul, masked_fill, softmax) or "sdpa"


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        mask = torch.tril(torch.ones(cfg.block, cfg.block, dtype=torch.bool))
        self.register_buffer("causal", mask.view(1, 1, cfg.block, cfg.block), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        heads = self.cfg.n_head
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, heads, C // heads).transpose(1, 2) for t in (q, k, v))
        if self.cfg.attention == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(~self.causal[:, :, :T, :T], float("-inf"))
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.proj(y))


class TransformerBlock(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig | None = None, **overrides):
        super().__init__()
        cfg = cfg or GPTConfig(**overrides)
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        for embedding in (self.wte, self.wpe):  # GPT-2's scale: logits start near uniform
            nn.init.normal_(embedding.weight, std=0.02)

    def forward(self, tokens, targets):
        positions = torch.arange(tokens.size(1), device=tokens.device)
        x = self.drop(self.wte(tokens) + self.wpe(positions))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def gpt_batch(model: GPT, generator, dtype, batch=4):
    cfg = model.cfg
    tokens = torch.randint(0, cfg.vocab, (batch, cfg.block + 1), generator=generator)
    return tokens[:, :-1], tokens[:, 1:]


# --- LSTM classifier -------------------------------------------------------------------------


class HandLSTMCell(nn.Module):
    """The LSTM cell written out: one Linear, chunk into four gates, sigmoid and tanh."""

    def __init__(self, n_in, n_hidden):
        super().__init__()
        self.gates = nn.Linear(n_in + n_hidden, 4 * n_hidden)

    def forward(self, x, state):
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class LSTMClassifier(nn.Module):
    """Two stacked cells (torch's nn.LSTMCell, then the hand-written one) in a Python loop."""

    def __init__(self, features=6, hidden=16, classes=4):
        super().__init__()
        self.hidden = hidden
        self.cell1 = nn.LSTMCell(features, hidden)
        self.cell2 = HandLSTMCell(hidden, hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, seq, labels):
        batch, steps, _ = seq.shape
        zeros = seq.new_zeros(batch, self.hidden)
        s1, s2 = (zeros, zeros), (zeros, zeros)
        outputs = []
        for t in range(steps):
            s1 = self.cell1(seq[:, t], s1)
            s2 = self.cell2(s1[0], s2)
            outputs.append(s2[0])
        pooled = torch.stack(outputs, dim=1).mean(dim=1)
        return F.cross_entropy(self.head(pooled), labels)


def lstm_batch(model: LSTMClassifier, generator, dtype, batch=8, steps=5):
    seq = torch.randn(batch, steps, model.cell1.input_size, generator=generator, dtype=dtype)
    return seq, torch.randint(0, model.head.out_features, (batch,), generator=generator)


# --- the side-by-side trainer ----------------------------------------------------------------


@dataclass
class SideBySide:
    eager_losses: list[float]
    tape_losses: list[float]
    eager_state: dict[str, torch.Tensor]  # parameters and buffers after training
    tape_state: dict[str, torch.Tensor]
    tape_model: torch.nn.Module  # the compiled copy, to keep using (eval mode...)

    def rows(self):
        """(step, eager loss, tape loss, relative difference) per step."""
        return [
            (i, e, t, abs(t - e) / max(abs(e), 1e-30))
            for i, (e, t) in enumerate(zip(self.eager_losses, self.tape_losses, strict=True))
        ]


def train_side_by_side(
    make_model, make_batch, steps=5, dtype=torch.float32, options=None, lr=0.05, train=True, seed=0
) -> SideBySide:
    """Train `make_model()` eagerly and through `torch.compile(backend="tape")` from the same
    weights on the same batches (`make_batch(model, generator, dtype)`) with SGD. The global RNG
    is reseeded before each step of each copy, so dropout draws the same masks in both."""
    torch.manual_seed(seed)
    eager = make_model().to(dtype)
    taped = copy.deepcopy(eager)
    eager.train(train)
    taped.train(train)
    compiled = torch.compile(taped, backend="tape", options=options)
    runs = [(eager, eager, []), (taped, compiled, [])]
    optimizers = [torch.optim.SGD(model.parameters(), lr=lr) for model, _, _ in runs]
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        batch = make_batch(eager, generator, dtype)
        for (_, forward, losses), optimizer in zip(runs, optimizers, strict=True):
            torch.manual_seed(seed + 1000 + step)
            optimizer.zero_grad()
            loss = forward(*batch)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return SideBySide(runs[0][2], runs[1][2], _state(eager), _state(taped), compiled)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
