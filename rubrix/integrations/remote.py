"""A trainer adapter's reward core that lives in a ``rubrix serve`` process: one judge per node.

verl runs its reward function in ``reward.num_workers`` Ray actors (8 by default), and each one
that builds its own :class:`~rubrix.rewards.RubricReward` loads its own judge — eight copies of a
local model on one node, each batching only its own share of the samples. :class:`ServerReward`
is the part of ``RubricReward`` an adapter uses (``ascore`` / ``score``, ``criterion_ids``,
``row_rubric``, ``parse_label``, ``breaker``) answered by one ``rubrix serve`` on the node
instead: the workers only read rows and post them to ``POST /v1/score``; the server holds the one
judge, merges the workers' samples into its batches and applies the failure policy the adapter
asks for (``options.on_fail``).

Refusals come back as the core's exceptions, so an adapter handles a server exactly like a local
core: 503 ``judge_failing`` is :class:`~rubrix.policy.CircuitOpenError`, 502 ``judge_failed`` (the
``raise`` policy) is :class:`~rubrix.policy.RewardFailure`; any other refusal or a server that
cannot be reached is a :class:`RuntimeError` with the server's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import _aio
from ..labels import Label, RubricResolver, parse_label
from ..policy import CircuitBreaker, CircuitOpenError, RewardFailure
from ..rewards import Reward, RewardItem
from ..rubric import Rubric, load_rubric


class ServerReward:
    """Rewards from a ``rubrix serve`` at ``url``; picklable (it travels as its configuration)."""

    def __init__(self, url: str, rubric: str | Rubric | dict | None = None, *, failure: str = "constant:0",
                 breaker: float | None = 0.5, deadline_s: float | None = None, token: str | None = None,
                 timeout_s: float = 600.0):
        self._init = (url, rubric, dict(failure=failure, breaker=breaker, deadline_s=deadline_s, token=token,
                                        timeout_s=timeout_s))
        self.url = url.rstrip("/")
        self.rubric = None if rubric is None else load_rubric(rubric)
        self.failure = failure
        self.deadline_s = deadline_s
        self.token = token
        self.timeout_s = timeout_s
        self.breaker = CircuitBreaker(breaker)  # for rows the adapter cannot even send (see verl)
        self.resolver = RubricResolver(allow_paths=True)
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"init": self._init}

    def __setstate__(self, state: dict[str, Any]) -> None:
        url, rubric, kwargs = state["init"]
        self.__init__(url, rubric, **kwargs)  # type: ignore[misc]

    @property
    def name(self) -> str:
        return self.rubric.name if self.rubric is not None else "row_rubric"

    @property
    def criterion_ids(self) -> tuple[str, ...]:
        return self.rubric.result_ids() if self.rubric is not None else ()

    def row_rubric(self, value: Any, field: str = "rubric") -> Rubric | None:
        if value is None or value == "":
            return None
        return self.resolver.resolve(value, field)

    def parse_label(self, label: Any, where: str = "label") -> Label:
        return parse_label(label, self.resolver, where)

    async def ascore(self, items: Sequence[RewardItem]) -> list[Reward]:
        if not items:
            return []
        return await _aio.arun(self._post(list(items)))

    def score(self, items: Sequence[RewardItem]) -> list[Reward]:
        if not items:
            return []
        return _aio.run(self._post(list(items)))

    def body(self, items: list[RewardItem]) -> dict[str, Any]:
        """The ``/v1/score`` request: every sample with its rubric inline (the server reads no paths)."""
        samples = []
        for i, item in enumerate(items):
            rubric = item.rubric or self.rubric
            sample: dict[str, Any] = {"id": item.id or str(i), "prompt": item.prompt,
                                      "response": item.response}
            if rubric is not None:
                sample["rubric"] = rubric.to_dict()
            if item.reference:
                sample["reference"] = item.reference
            if item.group_id is not None:
                sample["group_id"] = str(item.group_id)
            samples.append(sample)
        options: dict[str, Any] = {"on_fail": self.failure}
        if self.deadline_s:
            options["deadline_ms"] = self.deadline_s * 1000.0
        return {"samples": samples, "options": options}

    async def _post(self, items: list[RewardItem]) -> list[Reward]:
        import httpx

        if self._client is None:  # one pooled client on rubrix's loop, shared by every caller
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._client = httpx.AsyncClient(base_url=self.url, headers=headers,
                                             timeout=httpx.Timeout(self.timeout_s, connect=10.0),
                                             limits=httpx.Limits(max_connections=256))
        try:
            resp = await self._client.post("/v1/score", json=self.body(items))
        except httpx.HTTPError as exc:
            raise RuntimeError(f"rubrix server {self.url} not reachable: {type(exc).__name__}: {exc}"
                               ) from None
        data = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
        if resp.status_code == 200:
            return [_reward(row) for row in data["results"]]
        error = (data.get("error") or {}) if isinstance(data, dict) else {}
        message = f"rubrix server {self.url}: {resp.status_code} {error.get('type')}: {error.get('message')}"
        if resp.status_code == 503 and error.get("type") == "judge_failing":
            raise CircuitOpenError(message)
        if resp.status_code == 502 and error.get("type") == "judge_failed":
            raise RewardFailure(message)
        raise RuntimeError(message)


def _reward(row: dict[str, Any]) -> Reward:
    criteria = {cid: c.get("p") for cid, c in (row.get("criteria") or {}).items()}
    errors = [f"{cid}: {c['error']}" for cid, c in (row.get("criteria") or {}).items() if c.get("error")]
    ok = row.get("status") == "ok"
    score = row.get("reward") if ok else None
    return Reward(id=str(row.get("id")), reward=row.get("reward"), score=score,
                  status=row.get("status", "failed"),
                  criteria=criteria, imputed_by=row.get("imputed_by"),
                  error=None if ok else ("; ".join(errors[:3]) or row.get("status")))


__all__ = ["ServerReward"]
