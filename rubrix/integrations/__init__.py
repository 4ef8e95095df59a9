"""Thin adapters from rubrix rubrics to RL trainers (TRL, verl, OpenRLHF, verifiers).

Each adapter wraps :class:`~rubrix.integrations.base.RubricReward`, which wraps
:class:`~rubrix.scoring.Scorer`. Adapters import their trainer lazily (or not at all), so importing
``rubrix.integrations.trl`` does not import TRL.
"""

from .base import Reward, RewardItem, RubricReward, completion_text

__all__ = ["Reward", "RewardItem", "RubricReward", "completion_text"]
