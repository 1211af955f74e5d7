"""Fixtures shared by the tests (fixtures only)."""

import atexit
import os
import shutil
import tempfile

# every trace a program makes is verified (`Tape.check`) as it is made: set before the package
# loads, and inherited by the processes tests spawn
os.environ["DYNAMO_TAPE_CHECK"] = "1"
# the persistent compile cache (dynamo_tape/cache.py) is off, so that every test compiles as it
# always did, and pointed at a folder of the session's own, never the user's: tests/test_cache.py
# turns it on where it tests it
os.environ["DYNAMO_TAPE_CACHE"] = "0"
os.environ["DYNAMO_TAPE_CACHE_DIR"] = tempfile.mkdtemp(prefix="dynamo_tape_cache_")
atexit.register(shutil.rmtree, os.environ["DYNAMO_TAPE_CACHE_DIR"], True)

import pytest  # noqa: E402
import torch  # noqa: E402
import torch._dynamo  # noqa: E402


@pytest.fixture(autouse=True)
def reset_dynamo():
    # each test compiles from scratch: no cached frames, guards or recompile counts carry over
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# "cuda" is always listed, so the test report shows CUDA variants as skipped on CPU machines
DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
    ),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
