"""Local judge on transformers: verdicts from next-token logits, each shared token computed once.

Why it is fast:

* A criterion check needs one next-token distribution, not generation. The answer is read from
  the logits of the label tokens ("Yes"/"No", "1".."5", "A"/"B") at the last position.
* Requests put everything shared first (instructions, prompt, answer, then the criterion), so a
  batch is a prefix tree: one prompt, its answers, each answer's criteria. The ``tree`` engine
  (default) builds that trie (:mod:`.packing`) and computes every node once: a forward pass takes
  up to ``token_budget`` new tokens of ready nodes, with the keys and values of their ancestors,
  already computed, passed in as a cache; a mask lets each token see its ancestors and the
  earlier tokens of its own node only, and position ids are each token's depth in the tree. So
  every request gets exactly the logits a full forward of its own tokens would give. The linear
  layers run once over the pass; attention runs per group of sibling segments over only the keys
  that group may see, so no mask or score tensor grows with the square of a row.
* Logits are computed only at the answer positions (hidden states are gathered before the
  vocabulary projection).

The ``packed`` engine (one shared prefix per group of requests, packed with the suffixes into one
row under a dense row x row mask) and ``naive`` (one forward per request) are kept selectable as
baselines for the benchmark.

fp32 on CPU (bf16 is several times slower on CPUs without AMX), bf16 on GPU. ``attention="flex"``
(the default on CUDA) hands the whole pass's tree mask to FlexAttention as a block mask instead,
so fully masked blocks are skipped and no dense masked kernel runs on long rows.
"""

from __future__ import annotations

import asyncio
import os
import resource
import threading
import time
from dataclasses import dataclass

from ..errors import MissingExtraError, UserError
from .base import Generation, JudgeRequest, Verdict
from .packing import PrefixTree, Segment, group_rows, schedule
from .parsing import cut_at_stop

MIN_SHARED_PREFIX = 16
ENGINES = ("tree", "packed", "naive")
ATTENTIONS = ("sdpa", "flex")


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
                 threads: int | None = None, generator=None, engine: str = "tree",
                 attention: str | None = None):
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
        if engine not in ENGINES:
            raise UserError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})", field="engine")
        #: how verdict requests are scheduled: ``tree`` (default), ``packed`` or ``naive`` (baselines)
        self.engine = engine
        attention = attention or ("flex" if self.device.startswith("cuda") else "sdpa")
        if attention not in ATTENTIONS:
            raise UserError(f"unknown attention {attention!r} (choose from {', '.join(ATTENTIONS)})",
                            field="attention")
        #: attention kernel of the tree engine: ``sdpa`` with a boolean mask, or ``flex`` (block mask)
        self.attention = attention
        #: optional engine for free text (see :mod:`.llamacpp`); verdicts always come from logits here
        self.generator = generator
        self._label_ids: dict[tuple, list[list[int]]] = {}
        self._lock = threading.RLock()  # held by judge_sync, which may call generate_sync
        self.stats = new_stats()

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
                for i, verdict in self._score(prepared):
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

    def _score(self, prepared: list[_Prepared]):
        """Verdicts for logit-read requests, scheduled by the selected engine."""
        if self.engine == "tree":
            yield from self._run_tree(prepared)
        elif self.engine == "packed":
            yield from self._run_groups(_group_by_prefix(prepared))
        else:
            for p in prepared:
                yield from self._run_tree([p])
        self.stats["peak_rss_mb"] = peak_rss_mb()
        if self.device.startswith("cuda"):
            self.stats["peak_gpu_mb"] = self.torch.cuda.max_memory_allocated() / (1 << 20)

    # -- the tree engine ----------------------------------------------------------------------------

    def _run_tree(self, prepared: list[_Prepared]):
        """Compute each node of the batch's prefix trie once, in budgeted passes (see :mod:`.packing`).

        Keys and values are kept per node only while it has descendants left to compute; leaves
        (the criterion suffixes) need none, only the logits at their last token.
        """
        tree = PrefixTree.build([p.ids for p in prepared])
        self.stats["groups"] += len(tree.roots)
        store: dict[int, list] = {}  # node -> per layer (keys, values), each (1, kv_heads, len, dim)
        pending = dict.fromkeys(range(len(tree.nodes)), 0)  # descendants not yet complete
        for node in tree.nodes:
            for a in tree.ancestors(node.index):
                pending[a] += 1
        ranges = tree.subtree_ranges()
        for step in schedule(tree, self.token_budget):
            groups = [step] if self.attention == "flex" else group_rows(tree, step)
            yield from self._tree_forward(tree, ranges, groups, store, prepared)
            for seg in step:
                if seg.hi == len(tree.nodes[seg.node].tokens):
                    if not tree.nodes[seg.node].children:
                        store.pop(seg.node, None)  # a leaf split across passes kept its first chunks
                    for a in tree.ancestors(seg.node):
                        pending[a] -= 1
                        if pending[a] == 0:
                            store.pop(a, None)

    @property
    def _cache_kwarg(self) -> str:
        """transformers renamed ``past_key_values`` to ``cache`` (5.24); pass whichever this one takes."""
        import inspect

        params = inspect.signature(self.model.model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def _tree_forward(self, tree: PrefixTree, ranges: list[tuple[int, int]], groups: list[list[Segment]],
                      store: dict, prepared: list[_Prepared]):
        """One forward pass over the segments of a pass, one row; logits only where a request ends.

        The past is the concatenated keys/values of every node a segment may see (its ancestors,
        and the part of its own node computed by an earlier pass), each stored once. A query token
        sees a key when the key's node is an ancestor of (or is) its own node and the key's
        position is not after its own: causal attention along the request's own path, nothing
        across branches. Keys and values carry their rotary position already, so their order in
        the past does not matter.

        With ``sdpa`` the pass's segments are split into attention groups
        (:func:`.packing.group_rows`) and each group attends only to the keys it may see, so a
        dense kernel neither scores unrelated branches against each other nor needs padding;
        the linear layers still run once over the whole row. FlexAttention skips masked blocks
        itself, so there the pass is one group.
        """
        torch = self.torch
        started = time.perf_counter()
        step = [seg for group in groups for seg in group]
        past: list[int] = []  # every node visible from this pass, once
        group_past: list[list[int]] = []
        for group in groups:
            mine: list[int] = []
            for seg in group:
                for a in tree.ancestors(seg.node) + ([seg.node] if seg.lo else []):
                    if a not in mine:
                        mine.append(a)
            group_past.append(mine)
            past += [a for a in mine if a not in past]
        k_lo, k_hi, k_pos, span = [], [], [], {}
        for n in past:
            length = store[n][0][0].shape[2]
            span[n] = (len(k_pos), len(k_pos) + length)
            k_lo += [ranges[n][0]] * length
            k_hi += [ranges[n][1]] * length
            k_pos += range(tree.nodes[n].start, tree.nodes[n].start + length)
        n_past = len(k_pos)
        input_ids, q_pos, gather, owners, bounds = [], [], [], [], []
        for group in groups:
            lo = len(input_ids)
            for seg in group:
                node = tree.nodes[seg.node]
                size = seg.hi - seg.lo
                input_ids += node.tokens[seg.lo:seg.hi]
                k_lo += [ranges[seg.node][0]] * size
                k_hi += [ranges[seg.node][1]] * size
                q_pos += range(node.start + seg.lo, node.start + seg.hi)
                if seg.hi == len(node.tokens) and node.ends:
                    gather.append(len(input_ids) - 1)
                    owners.append([prepared[r] for r in node.ends])
            bounds.append((lo, len(input_ids)))
        n_new = len(input_ids)
        dev = self.device
        long = {"dtype": torch.long, "device": dev}
        k_lo_t, k_hi_t = torch.tensor(k_lo, **long), torch.tensor(k_hi, **long)
        k_pos_t, q_pos_t = torch.tensor(k_pos + q_pos, **long), torch.tensor(q_pos, **long)
        q_rank_t = k_lo_t[n_past:]
        kwargs = {}
        if self.attention == "flex":
            mask = _flex_block_mask(torch, q_rank_t, q_pos_t, k_lo_t, k_hi_t, k_pos_t)
            implementation = _register_tree_flex()
            scores = n_new * (n_past + n_new)
        else:
            mask, implementation, plan, scores = None, _register_tree_sdpa(), [], 0
            for (lo, hi), mine in zip(bounds, group_past, strict=True):
                idx = [i for n in mine for i in range(*span[n])] + list(range(n_past + lo, n_past + hi))
                idx_t = torch.tensor(idx, **long)
                q_r, q_p = q_rank_t[lo:hi, None], q_pos_t[lo:hi, None]
                g_lo, g_hi, g_pos = k_lo_t[idx_t][None], k_hi_t[idx_t][None], k_pos_t[idx_t][None]
                allowed = (g_lo <= q_r) & (q_r < g_hi) & (g_pos <= q_p)
                plan.append((lo, hi, idx_t, allowed[None, None]))
                scores = max(scores, (hi - lo) * len(idx))
            kwargs["rubrix_tree_groups"] = plan
        from transformers import DynamicCache

        cache = DynamicCache()  # filled in place by the forward pass, so read back from this object
        if past:
            for layer in range(len(store[past[0]])):
                cache.update(torch.cat([store[n][layer][0] for n in past], dim=2),
                             torch.cat([store[n][layer][1] for n in past], dim=2), layer)
        previous = self.model.config._attn_implementation
        try:
            self.model.config._attn_implementation = implementation
            with torch.inference_mode():
                out = self.model.model(input_ids=torch.tensor([input_ids], device=dev), attention_mask=mask,
                                       position_ids=q_pos_t[None], use_cache=True,
                                       **{self._cache_kwarg: cache}, **kwargs)
                logits = self.model.lm_head(out.last_hidden_state[0, gather]).float().cpu() if gather else []
        finally:
            self.model.config._attn_implementation = previous
        offset = n_past
        for seg in step:
            node = tree.nodes[seg.node]
            size = seg.hi - seg.lo
            if node.children or seg.hi < len(node.tokens):  # for its descendants, or its own next chunk
                parts = store.setdefault(seg.node, [])
                for layer, (k, v) in enumerate(_cache_layers(cache)):
                    k_new, v_new = k[:, :, offset:offset + size], v[:, :, offset:offset + size]
                    if layer < len(parts):
                        parts[layer] = (torch.cat([parts[layer][0], k_new], dim=2),
                                        torch.cat([parts[layer][1], v_new], dim=2))
                    else:
                        parts.append((k_new.clone(), v_new.clone()))
            offset += size
        st = self.stats
        st["forward_calls"] += 1
        st["computed_tokens"] += n_new
        shared = sum(seg.hi - seg.lo for seg in step if tree.nodes[seg.node].children)
        st["prefix_tokens"] += shared  # tokens of nodes that have descendants: computed once, shared
        st["suffix_tokens"] += n_new - shared
        st["max_forward_tokens"] = max(st["max_forward_tokens"], n_new)
        st["max_attention_scores"] = max(st["max_attention_scores"],
                                         self.model.config.num_attention_heads * scores)
        per_request = (time.perf_counter() - started) / max(1, sum(len(o) for o in owners))
        for members, row_logits in zip(owners, logits, strict=True):
            for member in members:
                verdict = self._read(member.request, row_logits)
                verdict.usage = {"prompt_tokens": len(member.ids), "completion_tokens": 0}
                verdict.latency_s = per_request
                yield member.index, verdict

    # -- the packed engine (baseline) ------------------------------------------------------------

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
        self.stats["computed_tokens"] += sum(r.length for r in rows)
        self.stats["max_forward_tokens"] = max(self.stats["max_forward_tokens"], n * width)
        self.stats["max_attention_scores"] = max(self.stats["max_attention_scores"],
                                                 self.model.config.num_attention_heads * n * width * width)
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
        with self._lock:  # the tree engine switches the model's attention function while it runs
            return self._generate_with_model(messages, max_tokens=max_tokens, stop=stop)

    def _generate_with_model(self, messages, *, max_tokens: int,
                             stop: list[str] | None) -> list[str | Verdict]:
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



def new_stats() -> dict:
    """Counters of the local engine; ``max_attention_scores`` is heads x queries x keys of the largest
    attention call (what a dense kernel would materialize), ``peak_rss_mb`` the process's peak
    resident memory."""
    return {"requests": 0, "groups": 0, "prefix_tokens": 0, "suffix_tokens": 0, "forward_calls": 0,
            "computed_tokens": 0, "max_forward_tokens": 0, "max_attention_scores": 0, "peak_rss_mb": 0.0}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if os.uname().sysname == "Darwin" else peak / 1024


def _cache_layers(cache):
    """(keys, values) per layer of a transformers cache, across the cache APIs of 4.56+ and 5.x."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def _bucket(n: int) -> int:
    """Padded length for FlexAttention: a power of two of at least one block, so a handful of
    compiled kernels serve every pass (padding sits in fully masked blocks, which are skipped)."""
    return max(128, 1 << (n - 1).bit_length())


def _flex_block_mask(torch, q_rank, q_pos, k_lo, k_hi, k_pos):
    """The tree mask as a FlexAttention block mask over bucket-padded lengths.

    A key is visible when its node's preorder range holds the query's node (an ancestor or the
    node itself) and its position is not after the query's. Padded queries get rank -1 and padded
    keys an empty range, so they see, and are seen by, nothing.
    """
    from torch.nn.attention.flex_attention import create_block_mask

    q_len, k_len = _bucket(q_rank.shape[0]), _bucket(k_pos.shape[0])

    def pad(t, size, value):
        return torch.nn.functional.pad(t, (0, size - t.shape[0]), value=value)

    q_rank, q_pos = pad(q_rank, q_len, -1), pad(q_pos, q_len, 0)
    k_lo, k_hi, k_pos = pad(k_lo, k_len, 1), pad(k_hi, k_len, 0), pad(k_pos, k_len, 0)

    def tree_mask(b, h, q, k):
        return (k_lo[k] <= q_rank[q]) & (q_rank[q] < k_hi[k]) & (k_pos[k] <= q_pos[q])

    return create_block_mask(tree_mask, B=None, H=None, Q_LEN=q_len, KV_LEN=k_len, device=q_rank.device)


_FLEX: dict = {}


def _register_tree_flex() -> str:
    """Register the tree engine's FlexAttention function with transformers (once); returns its name.

    transformers' own ``flex_attention`` path compiles for every new shape (and on CPU its
    dynamic-shape kernel fails to build), so the tree engine pads queries and keys to the block
    mask's bucketed lengths and calls one ``torch.compile``'d ``flex_attention`` itself.
    """
    name = "rubrix_tree_flex"
    if name not in _FLEX:
        import torch
        from torch.nn.attention.flex_attention import flex_attention
        from transformers import AttentionInterface

        compiled = torch.compile(flex_attention, dynamic=False)

        def tree_flex_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
            q_len = query.shape[2]
            q_pad = attention_mask.shape[-2] - q_len
            k_pad = attention_mask.shape[-1] - key.shape[2]
            query = torch.nn.functional.pad(query, (0, 0, 0, q_pad))
            key = torch.nn.functional.pad(key, (0, 0, 0, k_pad))
            value = torch.nn.functional.pad(value, (0, 0, 0, k_pad))
            out = compiled(query, key, value, block_mask=attention_mask, scale=scaling,
                           enable_gqa=query.shape[1] != key.shape[1])
            return out[:, :, :q_len].transpose(1, 2).contiguous(), None

        AttentionInterface.register(name, tree_flex_attention)
        _FLEX[name] = tree_flex_attention
    return name


def _register_tree_sdpa() -> str:
    """Register the tree engine's grouped SDPA attention with transformers (once); returns its name.

    The model runs its linear layers over the whole pass as one row; attention is computed per
    group of segments (``rubrix_tree_groups``: query range, the indices of the keys the group may
    see, and their mask), so each query is scored only against keys of its own branch of the tree.
    """
    name = "rubrix_tree_sdpa"
    if name not in _FLEX:
        import torch

        def tree_sdpa_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
            out = query.new_empty(query.shape)
            gqa = query.shape[1] != key.shape[1]
            for lo, hi, idx, allowed in kwargs["rubrix_tree_groups"]:
                out[:, :, lo:hi] = torch.nn.functional.scaled_dot_product_attention(
                    query[:, :, lo:hi], key.index_select(2, idx), value.index_select(2, idx),
                    attn_mask=allowed, scale=scaling, enable_gqa=gqa)
            return out.transpose(1, 2).contiguous(), None

        from transformers import AttentionInterface

        AttentionInterface.register(name, tree_sdpa_attention)
        _FLEX[name] = tree_sdpa_attention
    return name
