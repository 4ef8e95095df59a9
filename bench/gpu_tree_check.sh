#!/usr/bin/env bash
# The prefix-tree engine on a GPU: bf16, FlexAttention block masks (the CUDA default), same
# scheduling as on CPU. Written and checked on CPU only (fp32, and attention="flex" compiled for
# CPU); no GPU machine was available when it was written, so there are no GPU numbers yet.
#   bash bench/gpu_tree_check.sh            # needs the embedded 0.5B judge: rubrix models prepare 0.5b
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
# 1. exactness: tree verdicts vs one full forward per request (bf16 tolerance 2e-2, fp32 1e-4)
python -m pytest -q -m model tests/test_tree_engine.py
# 2. the three engines side by side on the GRPO shapes (bf16; budget sized for a GPU)
python bench/tree_engine.py --judge embedded:0.5b --shapes grpo8,grpo16x2 --token-budget 16384
# 3. a 7B-sized model with random weights, tree engine, model FLOPs utilisation (H100/H200 bf16 peak)
python bench/engines.py --random-config qwen2.5-7b --tokenizer ~/.cache/rubrix/models/qwen-coder-0.5b/hf \
  --criteria 12 --tokens 600 --samples 64 --engines rubrix --engine tree --token-budget 16384 --peak-tflops 989
