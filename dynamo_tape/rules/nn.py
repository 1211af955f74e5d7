"""Neural-network rules (convolution, normalisation, pooling, losses...).
g: cotangent of the output; return one cotangent per argument."""

import torch

aten = torch.ops.aten

RULES = {}
