"""Local judge on transformers: verdicts from next-token logits, with shared prefixes encoded once.

Why it is fast:

* A criterion check needs one next-token distribution, not generation. The answer is read from
  the logits of the label tokens ("Yes"/"No", "1".."5", "A"/"B") at the last position.
* All criteria of a sample share the same rendered prefix (instructions, conversation, fenced
  response); only the short criterion suffix differs. Requests are grouped by their longest
  common token prefix, the prefix is encoded once, and all suffixes of the group run as one
  batch on top of its key/value cache. Suffixes are left-padded *between* prefix and suffix, so
  every row ends at the last position and logits are computed for that one position only.
* Groups are processed in order of length and suffix batches are sized by a token budget.

fp32 on CPU (bf16 is several times slower on CPUs without AMX), bf16 on GPU.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass

from ..errors import MissingExtraError, UserError
from .base import JudgeRequest, Verdict

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
                 token_budget: int = 4096, kv_budget_tokens: int = 32768, name: str | None = None,
                 threads: int | None = None):
        torch, transformers = _import_torch()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
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
        self.kv_budget_tokens = kv_budget_tokens
        self._label_ids: dict[tuple, list[list[int]]] = {}
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "groups": 0, "prefix_tokens": 0, "suffix_tokens": 0, "forward_calls": 0}

    # -- public interface ----------------------------------------------------------------------

    def identity(self) -> str:
        return f"{self.name}|{self.dtype}|{self.device.split(':')[0]}"

    async def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        return await asyncio.to_thread(self.judge_sync, requests)

    async def generate(self, messages: list[list[dict[str, str]]], *, max_tokens: int = 512,
                       stop: list[str] | None = None) -> list[str | Verdict]:
        return await asyncio.to_thread(self.generate_sync, messages, max_tokens=max_tokens, stop=stop)

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
                for group in _group_by_prefix(prepared):
                    for i, verdict in self._run_group(group):
                        out[i] = verdict
            if generative:
                from .parsing import parse_json_object, value_from_json

                texts = self.generate_sync([list(requests[i].messages) for i in generative],
                                           max_tokens=max(requests[i].max_tokens for i in generative))
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

    def _run_group(self, group: list[_Prepared]):
        """Encode the group's shared prefix once, then all suffixes in token-budgeted batches."""
        torch = self.torch
        prefix_len = _common_prefix_len([p.ids for p in group])
        prefix_len = min(prefix_len, min(len(p.ids) for p in group) - 1)
        started = time.perf_counter()
        results = []
        with torch.inference_mode():
            cache = None
            if prefix_len >= 1:
                prefix = torch.tensor([group[0].ids[:prefix_len]], device=self.device)
                cache = self.model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
                self.stats["prefix_tokens"] += prefix_len
                self.stats["forward_calls"] += 1
            group = sorted(group, key=lambda p: len(p.ids))
            for chunk in self._chunks(group, prefix_len):
                logits = self._suffix_logits(chunk, prefix_len, cache)
                for p, row in zip(chunk, logits, strict=True):
                    verdict = self._read(p.request, row)
                    verdict.usage = {"prompt_tokens": len(p.ids), "completion_tokens": 0}
                    results.append((p.index, verdict))
        elapsed = time.perf_counter() - started
        self.stats["groups"] += 1
        for _, verdict in results:
            verdict.latency_s = elapsed / len(group)
        return results

    def _chunks(self, group: list[_Prepared], prefix_len: int):
        chunk: list[_Prepared] = []
        for p in group:
            longest = max([len(q.ids) - prefix_len for q in chunk] + [len(p.ids) - prefix_len])
            size = len(chunk) + 1
            too_many_tokens = size * longest > self.token_budget
            too_much_kv = size * (prefix_len + longest) > self.kv_budget_tokens
            if chunk and (too_many_tokens or too_much_kv):
                yield chunk
                chunk = []
            chunk.append(p)
        if chunk:
            yield chunk

    def _suffix_logits(self, chunk: list[_Prepared], prefix_len: int, cache):
        """Next-token logits at the last position of each suffix, continuing the shared prefix."""
        torch = self.torch
        from transformers import DynamicCache

        suffixes = [p.ids[prefix_len:] for p in chunk]
        width = max(len(s) for s in suffixes)
        pad = self.tokenizer.pad_token_id
        n = len(chunk)
        input_ids = torch.full((n, width), pad, dtype=torch.long)
        mask = torch.zeros((n, prefix_len + width), dtype=torch.long)
        mask[:, :prefix_len] = 1
        positions = torch.zeros((n, width), dtype=torch.long)
        for row, s in enumerate(suffixes):
            input_ids[row, width - len(s):] = torch.tensor(s)
            mask[row, prefix_len + width - len(s):] = 1
            positions[row, width - len(s):] = torch.arange(prefix_len, prefix_len + len(s))
        kwargs = {}
        if cache is not None:
            layers = [(layer.keys.expand(n, -1, -1, -1), layer.values.expand(n, -1, -1, -1))
                      for layer in cache.layers]
            kwargs["past_key_values"] = DynamicCache(ddp_cache_data=layers, config=self.model.config)
        out = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                         position_ids=positions.to(self.device), use_cache=cache is not None,
                         logits_to_keep=1, **kwargs)
        self.stats["suffix_tokens"] += sum(len(s) for s in suffixes)
        self.stats["forward_calls"] += 1
        return out.logits[:, -1, :].float()

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
                      stop: list[str] | None = None) -> list[str | Verdict]:
        """Batched greedy generation (left-padded), cut at the first stop string."""
        torch = self.torch
        texts = [self.tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                 for m in messages]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[str | Verdict] = [""] * len(texts)
        self.tokenizer.padding_side = "left"
        batch_size = max(1, self.token_budget // max(64, max_tokens * 2))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)
                gen = self.model.generate(**enc, max_new_tokens=max_tokens, do_sample=False,
                                          pad_token_id=self.tokenizer.pad_token_id,
                                          stop_strings=stop or None,
                                          tokenizer=self.tokenizer if stop else None)
                new = gen[:, enc["input_ids"].shape[1]:]
                for row, i in enumerate(idx):
                    text = self.tokenizer.decode(new[row], skip_special_tokens=True)
                    for s in stop or []:
                        cut = text.find(s)
                        if cut >= 0:
                            text = text[:cut]
                    results[i] = text
                self.stats["forward_calls"] += 1
        return results


def _verdict_from_json(request: JudgeRequest, text, parse_json_object, value_from_json) -> Verdict:
    if isinstance(text, Verdict):
        return text
    obj = parse_json_object(text)
    if obj is None:
        return Verdict.failed("parse", f"no JSON object in answer: {text[:200]!r}", raw=text)
    if request.kind == "checklist":
        values = {}
        for cid in request.checklist_ids:
            v = value_from_json(obj, cid, request.options)
            if v is None:
                return Verdict.failed("parse", f"checklist answer lacks a true/false for {cid!r}", raw=text)
            values[cid] = float(v)
        return Verdict(p=None, values=values, raw=text)
    v = value_from_json(obj, request.json_field, request.options)
    if v is None:
        return Verdict.failed("parse", f"answer lacks a usable {request.json_field!r}", raw=text)
    label = next((lab for lab, val in request.options if val == v), None)
    return Verdict(p=float(v), label=label, raw=text)


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

