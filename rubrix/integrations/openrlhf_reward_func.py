"""OpenRLHF's python-file reward function, as a file OpenRLHF can load by its path.

OpenRLHF loads ``--reward.remote_url`` (legacy ``--remote_rm_url``) with
``importlib.util.spec_from_file_location("reward_func", path)``: the file runs as a top-level
module, so it may use absolute imports only. This one ships in the wheel;
``rubrix integrations path openrlhf`` prints where it is installed::

    RUBRIX_RUBRIC=helpfulness RUBRIX_JUDGE=openai:MODEL RUBRIX_BASE_URL=http://judge:8000/v1 \\
    python -m openrlhf.cli.train_ppo_ray ... --reward.remote_url "$(rubrix integrations path openrlhf)"

It is :func:`rubrix.integrations.openrlhf.reward_func`, configured by the ``RUBRIX_*`` variables
listed there.
"""

from rubrix.integrations.openrlhf import reward_func

__all__ = ["reward_func"]
