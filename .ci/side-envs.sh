#!/usr/bin/env bash
# Side environments for the trainers' real reward loaders (tests/test_trainer_loaders.py).
#
# One virtual environment per trainer, built from PyPI, CPU only. Each sees this environment's
# packages (torch CPU, transformers, numpy, aiohttp, pytest ...) through a .pth file and adds the
# trainer's own wheel with --no-deps plus the few pure-Python packages that its reward-loading
# modules import, so a trainer's GPU stack (vLLM, flash-attn, deepspeed, ray actors) is never
# installed. verifiers is installed with its dependencies (those already here are reused).
#
#   bash .ci/side-envs.sh [DIR]      # default DIR: /tmp/rubrix-side; run with the main venv active
set -euo pipefail
DIR="${1:-/tmp/rubrix-side}"
PY="${PYTHON:-python}"
MAIN_SITE="$("$PY" -c 'import site; print(site.getsitepackages()[0])')"
VERL="verl==0.9.1"
OPENRLHF="openrlhf==0.11.2"
VERIFIERS="verifiers==0.4.0"

side() {  # side NAME: a venv that also sees the main environment's packages
  local env="$DIR/$1"
  rm -rf "$env"
  "$PY" -m venv "$env"
  local site
  site="$("$env/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
  echo "$MAIN_SITE" > "$site/zz_rubrix_main_env.pth"
  "$env/bin/python" -m pip install -q --disable-pip-version-check "${@:2}"
}

start=$(date +%s)
# verl: verl.trainer.ppo.reward, verl.experimental.reward_loop.reward_manager.*, verl.DataProto
side verl --no-deps "$VERL" tensordict pyvers omegaconf antlr4-python3-runtime codetiming orjson
# OpenRLHF: openrlhf.utils.agent (SingleTurnAgentExecutor, its file loader and HTTP client)
side openrlhf --no-deps "$OPENRLHF" pylatexenc
# verifiers >= 0.4: verifiers.v1 (judge plugins resolved by id)
side verifiers "$VERIFIERS"
for t in verl openrlhf verifiers; do
  "$DIR/$t/bin/python" -c "import importlib, sys; importlib.import_module(sys.argv[1])" \
    "$(case $t in verl) echo verl.experimental.reward_loop.reward_manager.limited;;
                   openrlhf) echo openrlhf.utils.agent;; verifiers) echo verifiers.v1.utils.loaders;; esac)"
done
echo "side environments in $DIR ($VERL, $OPENRLHF, $VERIFIERS) built in $(( $(date +%s) - start )) s"
