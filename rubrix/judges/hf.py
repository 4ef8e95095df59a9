"""Local judge on transformers: verdicts from next-token logits, with shared prefixes encoded once.

Why it is fast:

* A criterion check needs one next-token distribution, not generation. The answer is read from
  the logits of the label tokens ("Yes"/"No", "1".."5", "A"/"B") at the last position.
* All criteria of a sample share the same rendered prefix (instructions, conversation, fenced
  response); only the short criterion suffix differs. Requests are grouped by their longest
  common token prefix and each group is *packed* into one sequence: the prefix once, then every
  suffix, with an attention mask that lets a suffix see the prefix and itself only, and position
  ids that restart after the prefix. One forward pass scores the whole group with exactly the
  logits a separate full pass per request would give, and no key/value cache is copied.
* Logits are computed only at the answer positions (hidden states are gathered before the
  vocabulary projection).
* Packed rows are sorted by length and batched by a token budget, so many samples share a
  forward pass with little padding.

fp32 on CPU (bf16 is several times slower on CPUs without AMX), bf16 on GPU.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass

from ..errors import MissingExtraError, UserError
from .base import Generation, JudgeRequest, Verdict
from .parsing import cut_at_stop

MIN_SHARED_PREFIX = 16


def _import_torch():
    try:
        import torch
        import transformers
    except ImportError:
        raise MissingExtraError("the hf judge", "local", "torch/transformers") from None
    return torch, transformers


@dataclass
class _Prepared:
    index: int
    ids: list[int]
    request: JudgeRequest


class HFJudge:
    """A transformers causal LM used as a judge (``hf:MODEL_OR_PATH``)."""

    reads_logprobs = True

    def __init__(self, model: str, *, device: str | None = None, dtype: str | None = None,
                 token_budget: int = 4096, name: str | None = None,
                 threads: int | None = None, generator=None):
        torch, transformers = _import_torch()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        transformers.utils.logging.disable_progress_bar()  # rubrix shows its own progress
        transformers.utils.logging.set_verbosity_error()
        self.torch = torch
        self.model_path = model
        self.name = name or f"hf:{model}"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.dtype = getattr(torch, dtype)
        if threads:
            torch.set_num_threads(threads)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(model)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                model, dtype=self.dtype, attn_implementation="sdpa").to(self.device)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot load model: {first}", file=model, field="judge") from None
        self.model.eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.token_budget = token_budget
        #: optional engine for free text (see :mod:`.llamacpp`); verdicts always come from logits here
        self.generator = generator
        self._label_ids: dict[tuple, list[list[int]]] = {}
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "groups": 0, "prefix_tokens": 0, "suffix_tokens": 0, "forward_calls": 0}

    # -- public interface ----------------------------------------------------------------------

    def identity(self) -> str:
        base = f"{self.name}|{self.dtype}|{self.device.split(':')[0]}"
        return base if self.generator is None else f"{base}|gen={self.generator.name}"

    async def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        return await asyncio.to_thread(self.judge_sync, requests)

    async def generate(self, messages: list[list[dict[str, str]]], *, max_tokens: int = 512,
                       stop: list[str] | None = None, json_mode: bool = False) -> list[Generation]:
        return await asyncio.to_thread(self.generate_sync, messages, max_tokens=max_tokens, stop=stop,
                                       json_mode=json_mode)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Exact counts with this model's tokenizer (no special tokens, no chat template)."""
        return [len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]

    async def aclose(self) -> None:
        return None

    # -- verdicts from logits --------------------------------------------------------------------

    def judge_sync(self, requests: list[JudgeRequest]) -> list[Verdict]:
        """Answer every request; choice requests from logits, JSON/checklist ones by generation."""
        with self._lock:
            out: list[Verdict | None] = [None] * len(requests)
            choice = []
            generative = []
            for i, req in enumerate(requests):
                (generative if req.expects_json else choice).append(i)
            if choice:
                prepared = [_Prepared(i, self.encode(requests[i].messages), requests[i]) for i in choice]
                for i, verdict in self._run_groups(_group_by_prefix(prepared)):
                    out[i] = verdict
            if generative:
                from .parsing import parse_json_object, value_from_json

                texts = self.generate_sync([list(requests[i].messages) for i in generative],
                                           max_tokens=max(requests[i].max_tokens for i in generative),
                                           json_mode=True)
                for i, text in zip(generative, texts, strict=True):
                    out[i] = _verdict_from_json(requests[i], text, parse_json_object, value_from_json)
            self.stats["requests"] += len(requests)
            return out  # type: ignore[return-value]

    def encode(self, messages) -> list[int]:
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def label_token_ids(self, options: tuple[tuple[str, float], ...]) -> list[list[int]]:
        """For each answer label, the single tokens that spell it ("Yes", " yes", "YES"...)."""
        key = tuple(label for label, _ in options)
        if key not in self._label_ids:
            groups = []
            for label in key:
                ids: set[int] = set()
                for variant in {label, label.lower(), label.upper(), label.capitalize()}:
                    for text in (variant, " " + variant):
                        toks = self.tokenizer.encode(text, add_special_tokens=False)
                        if len(toks) == 1:
                            ids.add(toks[0])
                if not ids:
                    raise UserError(f"answer label {label!r} is not a single token for this tokenizer",
                                    field="template")
                groups.append(sorted(ids))
            self._label_ids[key] = groups
        return self._label_ids[key]

    def _run_groups(self, groups: list[list[_Prepared]]):
        """Score all groups: each group becomes one packed row, rows are batched by token budget."""
        rows = sorted((_PackedRow.build(g) for g in groups), key=lambda r: r.length)
        batch: list[_PackedRow] = []
        for row in rows:
            if batch and (len(batch) + 1) * row.length > self.token_budget:
                yield from self._forward_rows(batch)
                batch = []
            batch.append(row)
        if batch:
            yield from self._forward_rows(batch)

    def _forward_rows(self, rows: list[_PackedRow]):
        """One forward over packed rows; logits only at each request's answer position.

        A row holds a shared prefix followed by every suffix of its group. The attention mask
        lets each suffix see the prefix and itself (causally), never another suffix, and position
        ids restart after the prefix for every suffix, so each request computes exactly what a
        full forward of its own tokens would, while the prefix is encoded once and no key/value
        cache is copied.
        """
        torch = self.torch
        started = time.perf_counter()
        width = max(r.length for r in rows)
        n = len(rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((n, width), pad, dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        mask = torch.zeros((n, 1, width, width), dtype=torch.bool)
        gather_rows, gather_cols, owners = [], [], []
        for b, row in enumerate(rows):
            input_ids[b, :row.length] = torch.tensor(row.tokens)
            positions[b, :row.length] = torch.tensor(row.positions)
            L = row.prefix_len
            mask[b, 0, :L, :L] = torch.tril(torch.ones(L, L, dtype=torch.bool))
            for (start, stop), member in zip(row.spans, row.members, strict=True):
                size = stop - start
                mask[b, 0, start:stop, :L] = True
                mask[b, 0, start:stop, start:stop] = torch.tril(torch.ones(size, size, dtype=torch.bool))
                gather_rows.append(b)
                gather_cols.append(stop - 1)
                owners.append(member)
            idx = torch.arange(row.length, width)
            mask[b, 0, idx, idx] = True  # padding attends to itself only: no NaN rows
        with torch.inference_mode():
            hidden = self.model.model(input_ids=input_ids.to(self.device),
                                      attention_mask=mask.to(self.device),
                                      position_ids=positions.to(self.device),
                                      use_cache=False).last_hidden_state
            picked = hidden[torch.tensor(gather_rows), torch.tensor(gather_cols)]
            logits = self.model.lm_head(picked).float()
        self.stats["forward_calls"] += 1
        self.stats["groups"] += n
        self.stats["prefix_tokens"] += sum(r.prefix_len for r in rows)
        self.stats["suffix_tokens"] += sum(r.length - r.prefix_len for r in rows)
        per_request = (time.perf_counter() - started) / max(1, len(owners))
        for member, row_logits in zip(owners, logits, strict=True):
            verdict = self._read(member.request, row_logits)
            verdict.usage = {"prompt_tokens": len(member.ids), "completion_tokens": 0}
            verdict.latency_s = per_request
            yield member.index, verdict

    def _read(self, request: JudgeRequest, logits) -> Verdict:
        """Expected value over the answer labels, and how much mass the labels carry."""
        torch = self.torch
        groups = self.label_token_ids(request.options)
        logprobs = torch.log_softmax(logits, dim=-1)
        per_label = torch.stack([torch.logsumexp(logprobs[ids], dim=0) for ids in groups])
        coverage = float(per_label.exp().sum())
        probs = torch.softmax(per_label, dim=0)
        values = torch.tensor([v for _, v in request.options], dtype=probs.dtype)
        p = float((probs * values).sum())
        best = int(torch.argmax(probs))
        return Verdict(p=p, label=request.options[best][0], raw=request.options[best][0], from_logprobs=True,
                       coverage=coverage)

    # -- generation ------------------------------------------------------------------------------

    def generate_sync(self, messages: list[list[dict[str, str]]], *, max_tokens: int = 512,
                      stop: list[str] | None = None, json_mode: bool = False) -> list[Generation]:
        """Batched greedy generation (left-padded), cut at the first stop string.

        ``json_mode`` asks for a JSON object; only the llama.cpp generator can enforce it (with a
        grammar), transformers generation treats it as a hint the prompt already gives. Usage is
        counted with this model's tokenizer: the chat-templated prompt, and the tokens generated.
        """
        if self.generator is not None:
            return self.generator.generate_sync(messages, max_tokens=max_tokens, stop=stop,
                                                json_mode=json_mode)
        torch = self.torch
        texts = [self.tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                 for m in messages]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[Generation] = [Generation() for _ in texts]
        self.tokenizer.padding_side = "left"
        batch_size = max(1, self.token_budget // max(64, max_tokens * 2))
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                t0 = time.perf_counter()
                enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)
                gen = self.model.generate(**enc, max_new_tokens=max_tokens, do_sample=False,
                                          pad_token_id=pad,
                                          stop_strings=stop or None,
                                          tokenizer=self.tokenizer if stop else None)
                new = gen[:, enc["input_ids"].shape[1]:]
                per_row = (time.perf_counter() - t0) / len(idx)
                for row, i in enumerate(idx):
                    results[i] = Generation(
                        text=cut_at_stop(self.tokenizer.decode(new[row], skip_special_tokens=True), stop),
                        usage={"prompt_tokens": int(enc["attention_mask"][row].sum()),
                               "completion_tokens": int((new[row] != pad).sum())},
                        latency_s=per_row)
                self.stats["forward_calls"] += 1
        return results


def _verdict_from_json(request: JudgeRequest, generation: Generation, parse_json_object,
                       value_from_json) -> Verdict:
    """Read a JSON-format verdict from a generation; a failed generation stays the same typed failure."""
    if not generation.ok:
        return Verdict.failed(generation.error or "server", generation.error_detail or "generation failed",
                              usage=dict(generation.usage), latency_s=generation.latency_s)
    text = generation.text
    cost = {"usage": dict(generation.usage), "latency_s": generation.latency_s}
    obj = parse_json_object(text)
    if obj is None:
        return Verdict.failed("parse", f"no JSON object in answer: {text[:200]!r}", raw=text, **cost)
    if request.kind == "checklist":
        values = {}
        for cid in request.checklist_ids:
            v = value_from_json(obj, cid, request.options)
            if v is None:
                return Verdict.failed("parse", f"checklist answer lacks a true/false for {cid!r}", raw=text,
                                      **cost)
            values[cid] = float(v)
        return Verdict(p=None, values=values, raw=text, **cost)
    v = value_from_json(obj, request.json_field, request.options)
    if v is None:
        return Verdict.failed("parse", f"answer lacks a usable {request.json_field!r}", raw=text, **cost)
    label = next((lab for lab, val in request.options if val == v), None)
    return Verdict(p=float(v), label=label, raw=text, **cost)


@dataclass
class _PackedRow:
    """A group laid out as one sequence: shared prefix, then each member's own suffix."""

    tokens: list[int]
    positions: list[int]
    prefix_len: int
    spans: list[tuple[int, int]]
    members: list[_Prepared]

    @property
    def length(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, group: list[_Prepared]) -> _PackedRow:
        prefix_len = min(_common_prefix_len([p.ids for p in group]), min(len(p.ids) for p in group) - 1)
        tokens = list(group[0].ids[:prefix_len])
        positions = list(range(prefix_len))
        spans = []
        for p in group:
            suffix = p.ids[prefix_len:]
            spans.append((len(tokens), len(tokens) + len(suffix)))
            tokens.extend(suffix)
            positions.extend(range(prefix_len, prefix_len + len(suffix)))
        return cls(tokens, positions, prefix_len, spans, list(group))


def _common_prefix_len(seqs: list[list[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        i = 0
        while i < n and s[i] == first[i]:
            i += 1
        n = i
    return n


def _group_by_prefix(prepared: list[_Prepared]) -> list[list[_Prepared]]:
    """Group requests whose token sequences share a long prefix (sorted, then greedy by adjacency).

    A request joins the current group when the group's common prefix with it stays at least
    ``MIN_SHARED_PREFIX`` tokens and at least half of the request. Grouping is computed from the
    tokens themselves, so any template that puts the per-criterion text last benefits.
    """
    ordered = sorted(prepared, key=lambda p: p.ids)
    groups: list[list[_Prepared]] = []
    current: list[_Prepared] = []
    shared = 0
    for p in ordered:
        if current:
            lcp = _common_prefix_len([current[0].ids[:shared], p.ids])
            if lcp >= MIN_SHARED_PREFIX and lcp * 2 >= len(p.ids):
                current.append(p)
                shared = lcp
                continue
            groups.append(current)
        current, shared = [p], len(p.ids)
    if current:
        groups.append(current)
    return groups

