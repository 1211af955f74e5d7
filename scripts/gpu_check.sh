#!/usr/bin/env bash
# On a machine with a CUDA GPU: run the CUDA tests, the model-parity tests and the benchmark
# in under 8 minutes, then print a short summary. Uses the torch already installed (a CUDA
# build; .ci/run pins the CPU wheel) and installs only this package, offline, if missing.
# Logs go to $OUT (set by the device runner) or reports/gpu_check/.
#
#   bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}  # some GPU images have python3 but no python
if ! "$PY" - <<'EOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: no CUDA GPU visible to torch {torch.__version__} "
             f"(CUDA build: {torch.version.cuda or 'none'}); nothing was run")
print(f"gpu_check: torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"{torch.cuda.get_device_name()}")
EOF
then
    exit 2
fi

# backend="tape" is found through the package's entry point, so the package must be installed
if ! "$PY" -c "from importlib.metadata import entry_points as e
import sys; sys.exit(not e(group='torch_dynamo_backends', name='tape'))"; then
    "$PY" -m pip install -q --no-deps --no-index --no-build-isolation -e . ||
        { echo "gpu_check: could not install the package (offline, no deps)"; exit 2; }
fi

LOGS="${OUT:-reports/gpu_check}"
mkdir -p "$LOGS"
declare -a SUMMARY
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep the last line of output
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    [ $rc -eq 124 ] && echo "timed out after ${limit}s" >>"$LOGS/$name.log"
    [ $rc -ne 0 ] && status=1
    SUMMARY+=("$(printf '%-8s rc=%-3s %4ss  %s' "$name" "$rc" $((SECONDS - start)) \
        "$(grep -v '^\s*$' "$LOGS/$name.log" | tail -n 1)")")
}

PYTEST=("$PY" -m pytest -q -rs -p no:cacheprovider)
step cuda 210 "${PYTEST[@]}" tests/test_cuda.py
step models 150 "${PYTEST[@]}" tests/test_models.py
step bench 120 "$PY" -m dynamo_tape.tools.bench --processes 1 --rounds 3 --budget 0.2 --out "$LOGS/bench.md"

echo "== gpu_check summary (logs in $LOGS) =="
printf '%s\n' "${SUMMARY[@]}"
grep -h "SKIPPED" "$LOGS/cuda.log" | head -n 5
[ -f "$LOGS/bench.md" ] && grep '|' "$LOGS/bench.md" | head -n 12
exit $status
