"""verl's ``custom_reward_function``, as a file verl can load by its path (any verl version).

verl loads ``custom_reward_function.path`` with ``importlib.util.spec_from_file_location``
(every version) or, from verl 0.7.0, a ``pkg://`` module path. Loaded from a path, a file runs as
a top-level module and may use absolute imports only, so this file (shipped in the wheel; printed
by ``rubrix integrations path verl``) re-exports the entry points of
:mod:`rubrix.integrations.verl`::

    python -m verl.trainer.main_ppo ... \\
        reward.custom_reward_function.path="$(rubrix integrations path verl)" \\
        reward.custom_reward_function.name=compute_score \\
        +reward.custom_reward_function.reward_kwargs.rubric=helpfulness

``compute_score`` is async (verl >= 0.6.1 awaits it); ``compute_score_sync`` is for older verl and
the ``remote`` manager; ``compute_score_batch`` for the legacy ``batch`` manager.
"""

from rubrix.integrations.verl import compute_score, compute_score_batch, compute_score_sync

__all__ = ["compute_score", "compute_score_batch", "compute_score_sync"]
