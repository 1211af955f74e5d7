"""What only dynamo_tape.tools reads, never the backend.

Relies on PyTorch's OpInfo database (torch.testing._internal, which needs `expecttest`),
imported when asked for.
"""

from __future__ import annotations


def opinfo_database() -> list:
    """PyTorch's OpInfo entries (torch.testing._internal, which needs `expecttest`)."""
    from torch.testing._internal.common_methods_invocations import op_db

    return op_db
