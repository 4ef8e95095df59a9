"""Thin adapters from the reward core (:class:`rubrix.rewards.RubricReward`) to RL trainers.

One module per trainer (``trl``, ``verl``, ``openrlhf``, ``verifiers``), each only the trainer's
protocol shape: argument names, return types, what a missing reward must look like there.
Batching, de-duplication, failure policy and the breaker are the core's. Adapters import their
trainer lazily (or not at all), so importing ``rubrix.integrations.trl`` does not import TRL.
"""
