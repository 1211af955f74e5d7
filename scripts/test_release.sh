#!/usr/bin/env bash
# Runs the default suite against one torch release, in a virtual environment of its own outside
# the repository ($DYNAMO_TAPE_VENVS, default ~/.cache/dynamo-tape/torch-VERSION), made on the
# first run and reused after:
#
#   bash scripts/test_release.sh 2.15.0            # the default suite on torch 2.15.0
#   bash scripts/test_release.sh 2.11.0 tests/test_models.py -x
#
# Supported: 2.11.0, 2.12.1, 2.13.0, 2.14.1, 2.15.0 (pyproject.toml: torch>=2.11,<2.16).
# Some machines cap pip at an older torch through a global constraints file; the installs here
# replace it with an empty one (PIP_CONSTRAINT=/dev/null), so any release of the range installs.
set -euo pipefail
version=${1:?usage: bash scripts/test_release.sh TORCH_VERSION [pytest arguments]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${DYNAMO_TAPE_VENVS:-$HOME/.cache/dynamo-tape}/torch-$version
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
export PIP_CONSTRAINT=/dev/null
"$venv/bin/python" -m pip install -q "torch==$version"
"$venv/bin/python" -m pip install -q -e "$root[test]"
cd "$root"
"$venv/bin/python" -c "import torch; print(f'torch {torch.__version__} in $venv')"
exec "$venv/bin/python" -m pytest -q "$@"
