"""Rubric extraction from preference pairs: per-pair Propose → Evaluate → Revise, then generalization.

One module per step: :mod:`.propose` (the per-pair loop and its provenance log), :mod:`.transfer`
(does a criterion agree with the labels across pairs), :mod:`.embed` (sentence embedders),
:mod:`.generalize` (coding-rate selection, Theme-Tips, the gate) and :mod:`.pipeline` (the run
that ``rubrix extract`` and ``rubrix generalize`` execute). See :mod:`.propose` and
:mod:`.generalize` for the method and why it differs from Auto-Rubric.
"""

from __future__ import annotations

from .embed import BundledEmbedder, Embedder, OpenAIEmbedder, get_embedder
from .generalize import (
    GeneralizeConfig,
    GeneralizeResult,
    NothingKept,
    PoolItem,
    coding_rate,
    drop_near_duplicates,
    generalize,
    pool_from_rows,
    read_pool,
    select_coding_rate,
)
from .pipeline import ExtractRun, extract, generalize_file, side_paths
from .propose import (
    ExtractConfig,
    ExtractionError,
    PairExtractor,
    PairResult,
    ProvenanceLog,
    SkippedPair,
    load_pairs,
    split_pairs,
)
from .transfer import TransferConfig, TransferStat, transfer_stats

__all__ = [
    "BundledEmbedder", "Embedder", "ExtractConfig", "ExtractRun", "ExtractionError", "GeneralizeConfig",
    "GeneralizeResult", "NothingKept", "OpenAIEmbedder", "PairExtractor", "PairResult", "PoolItem",
    "ProvenanceLog", "SkippedPair", "TransferConfig", "TransferStat", "coding_rate", "drop_near_duplicates",
    "extract", "generalize", "generalize_file", "get_embedder", "load_pairs", "pool_from_rows", "read_pool",
    "select_coding_rate", "side_paths", "split_pairs", "transfer_stats",
]
