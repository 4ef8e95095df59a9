"""Where each trainer finds rubrix in an installed wheel (no checkout, no file of the user's own).

Trainers load reward code in three ways, and rubrix ships a target for each:

* **a file path** (OpenRLHF's ``--reward.remote_url x.py``; verl's ``custom_reward_function.path``
  in every version): the file runs as a top-level module, so it must use absolute imports.
  ``rubrix/integrations/openrlhf_reward_func.py`` and ``verl_compute_score.py`` are such files;
  :func:`path` returns where they are installed;
* **a module path** (verl >= 0.7.0: ``pkg://rubrix.integrations.verl``);
* **an id** (verifiers >= 0.4 imports a judge plugin by its id: ``rubrix-judge`` is the
  top-level package ``rubrix_judge``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError

_FILES = {"openrlhf": "openrlhf_reward_func.py", "verl": "verl_compute_score.py"}
_NO_PATH = {
    "trl": "TRL takes a Python function, not a path: reward_funcs=[rubrix.integrations.trl.reward_func(...)]",
    "verifiers": "verifiers finds rubrix's judge by its id, not a path: judges = [{id = \"rubrix-judge\", "
                 "rubric = \"...\", model = \"...\", base_url = \"...\"}] (the rubrix_judge package)",
}
TRAINERS = tuple(sorted({*_FILES, *_NO_PATH}))


def path(trainer: str) -> Path:
    """The installed file a trainer loads by path (``openrlhf``, ``verl``).

    Raises :class:`UserError` for a trainer that does not load rubrix from a file, saying what it
    takes instead.
    """
    name = trainer.strip().lower()
    if name in _FILES:
        found = Path(__file__).resolve().parent / _FILES[name]
        if not found.is_file():  # pragma: no cover - a broken install
            raise UserError(f"{found} is missing from this installation; reinstall rubrix", field="trainer")
        return found
    if name in _NO_PATH:
        raise UserError(_NO_PATH[name], field="trainer")
    raise UserError(f"unknown trainer {trainer!r} (one of {', '.join(TRAINERS)})", field="trainer")


__all__ = ["TRAINERS", "path"]
