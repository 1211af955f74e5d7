"""Every read of torch's private surface: moving into one module per area (next commit)."""

from .dynamo_compile import *  # noqa: F403
from .dynamo_compile import __all__  # noqa: F401
