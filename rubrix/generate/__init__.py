"""Per-prompt rubric generation with a discrimination check (``rubrix generate``).

One module per concern: :mod:`.draft` (reading the generator's rubric), :mod:`.lint` (model-free
checks of each criterion), :mod:`.degrade` (contrast answers: a good one and controlled
degradations), :mod:`.discriminate` (keep criteria whose verdicts separate them) and
:mod:`.pipeline` (the resumable run over a prompts file). Generation, parsing with repair and the
provenance log are extraction's (:mod:`rubrix.extract.propose`), reused.
"""

from __future__ import annotations

from .degrade import KINDS, Contrast
from .discriminate import CriterionCheck, check_criteria
from .draft import Draft, read_drafts
from .lint import Finding, lint
from .pipeline import (
    GenerateConfig,
    GenerateRun,
    PromptResult,
    PromptRow,
    RubricGenerator,
    Skipped,
    generate,
    load_prompts,
    side_paths,
)

__all__ = [
    "KINDS",
    "Contrast",
    "CriterionCheck",
    "Draft",
    "Finding",
    "GenerateConfig",
    "GenerateRun",
    "PromptResult",
    "PromptRow",
    "RubricGenerator",
    "Skipped",
    "check_criteria",
    "generate",
    "lint",
    "load_prompts",
    "read_drafts",
    "side_paths",
]
