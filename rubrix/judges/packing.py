"""Prefix scheduling for the local judge: the requests of a batch as a token trie, and the order
in which its nodes are computed. Pure Python, no torch, so it can be tested and measured with a
tokenizer alone.

Why a trie: judge requests are built so that everything shared comes first (instructions, then
the prompt, then one answer, then the criterion). A batch of GRPO samples is therefore a tree —
one prompt, several answers under it, several criteria under each answer — and the cheapest
exact evaluation computes every node of that tree once, with each token attending to its
ancestors only. Grouping requests by a single shared prefix (the older packed engine, kept as a
baseline) cannot express two levels of sharing: either the answers are merged and every
criterion suffix carries the whole answer again, or they are not and the prompt is repeated.

The tree is a radix trie (each node is a run of tokens with no branching inside it) built from
the sorted token sequences in one pass. ``schedule`` cuts its nodes into forward passes of at
most ``token_budget`` new tokens each, in an order where a node's ancestors are always complete
before any of its tokens is computed; a long node is split across passes (chunked) rather than
making one pass large.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Node:
    """A run of tokens shared by every request below it.

    ``start`` is the position of the node's first token in each request that passes through it
    (the number of ancestor tokens), so a node's keys and values are valid for all descendants.
    """

    index: int
    tokens: list[int]
    start: int
    parent: int | None
    children: list[int] = field(default_factory=list)
    #: requests whose last token is this node's last token (their verdict is read there)
    ends: list[int] = field(default_factory=list)

    @property
    def stop(self) -> int:
        return self.start + len(self.tokens)


@dataclass
class PrefixTree:
    """The radix trie of a batch of token sequences; ``nodes[i].index == i``; roots have no parent."""

    nodes: list[Node]
    roots: list[int]
    request_tokens: int

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]]) -> PrefixTree:
        nodes: list[Node] = []
        roots: list[int] = []
        order = sorted(range(len(sequences)), key=lambda i: list(sequences[i]))
        path: list[int] = []  # nodes from a root down to where the previous sequence ended
        previous: Sequence[int] = ()
        for i in order:
            seq = list(sequences[i])
            if not seq:
                raise ValueError(f"request {i} has no tokens")
            lcp = _lcp(previous, seq)
            while path and nodes[path[-1]].start >= lcp:
                path.pop()
            if path and nodes[path[-1]].stop > lcp:  # the shared part ends inside this node: split it
                _split(nodes, path[-1], lcp)
            if lcp == len(seq):  # identical to the previous sequence (sorted order: never shorter)
                nodes[path[-1]].ends.append(i)
            else:
                parent = path[-1] if path else None
                node = Node(len(nodes), seq[lcp:], lcp, parent, ends=[i])
                nodes.append(node)
                (nodes[parent].children if parent is not None else roots).append(node.index)
                path.append(node.index)
            previous = seq
        return cls(nodes, roots, sum(len(s) for s in sequences))

    @property
    def token_count(self) -> int:
        """Tokens an exact evaluation must compute: each node once."""
        return sum(len(n.tokens) for n in self.nodes)

    def preorder(self) -> list[int]:
        out: list[int] = []
        stack = list(reversed(self.roots))
        while stack:
            i = stack.pop()
            out.append(i)
            stack.extend(reversed(self.nodes[i].children))
        return out

    def subtree_ranges(self) -> list[tuple[int, int]]:
        """Per node, ``(rank, end)`` in preorder: node ``a`` is an ancestor of (or is) node ``b``
        exactly when ``rank[a] <= rank[b] < end[a]``. This turns "sees its ancestors" into two
        comparisons per (query, key), which an attention mask function can evaluate blockwise."""
        order = self.preorder()
        rank = {n: r for r, n in enumerate(order)}
        end = {}
        for n in reversed(order):
            children = self.nodes[n].children
            end[n] = max((end[c] for c in children), default=rank[n] + 1)
        return [(rank[i], end[i]) for i in range(len(self.nodes))]

    def ancestors(self, index: int) -> list[int]:
        """Ancestors of a node, root first."""
        out = []
        parent = self.nodes[index].parent
        while parent is not None:
            out.append(parent)
            parent = self.nodes[parent].parent
        return out[::-1]


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _split(nodes: list[Node], index: int, at: int) -> None:
    """Cut node ``index`` at absolute position ``at``; the tail becomes its only child."""
    node = nodes[index]
    cut = at - node.start
    tail = Node(len(nodes), node.tokens[cut:], at, index, children=node.children, ends=node.ends)
    for child in tail.children:
        nodes[child].parent = tail.index
    nodes.append(tail)
    node.tokens = node.tokens[:cut]
    node.children = [tail.index]
    node.ends = []


@dataclass(frozen=True)
class Segment:
    """Tokens ``[lo, hi)`` (offsets inside the node) of one node, computed in one forward pass."""

    node: int
    lo: int
    hi: int


def schedule(tree: PrefixTree, token_budget: int, key_budget: int | None = None) -> list[list[Segment]]:
    """Cut the tree into forward passes of at most ``token_budget`` new tokens.

    Nodes become ready when their parent is complete and are taken in preorder, so a pass holds
    siblings and cousins (whose keys overlap) rather than unrelated subtrees; a pass is filled up
    to the budget, splitting the node that does not fit, whose remainder starts the next pass.
    Every pass therefore sees its ancestors' keys and values already computed.

    ``key_budget`` (default four times ``token_budget``) bounds the keys a pass attends to: its
    new tokens plus every ancestor token they see. Criteria of many unrelated samples would
    otherwise put all of those samples' prefixes in one pass, and the mask (new x keys) with them.
    A pass always takes at least one segment, so a single request longer than the budgets still
    runs, in chunks of ``token_budget``.
    """
    if token_budget < 1:
        raise ValueError("token_budget must be at least 1")
    key_budget = key_budget or 4 * token_budget
    rank = {node: r for r, node in enumerate(tree.preorder())}
    ready = sorted(tree.roots, key=rank.__getitem__)
    done = {i: 0 for i in range(len(tree.nodes))}  # tokens computed per node
    passes: list[list[Segment]] = []
    while ready:
        room = token_budget
        keys = 0
        visible: set[int] = set()
        step: list[Segment] = []
        for i in ready:
            if room == 0:
                break
            node = tree.nodes[i]
            lo = done[i]
            hi = min(len(node.tokens), lo + room)
            new = [a for a in tree.ancestors(i) if a not in visible]
            added = sum(len(tree.nodes[a].tokens) for a in new) + lo + (hi - lo)
            if step and keys + added > key_budget:
                break
            visible.update(new)
            keys += added
            step.append(Segment(i, lo, hi))
            room -= hi - lo
        completed = []
        for seg in step:
            done[seg.node] = seg.hi
            if seg.hi == len(tree.nodes[seg.node].tokens):
                completed.append(seg.node)
        finished = set(completed)
        ready = [i for i in ready if i not in finished]
        for i in completed:
            ready.extend(tree.nodes[i].children)
        ready.sort(key=rank.__getitem__)
        passes.append(step)
    return passes


def group_rows(tree: PrefixTree, step: list[Segment], min_row_tokens: int = 256) -> list[list[Segment]]:
    """Split one pass into batch rows for a dense attention kernel.

    In one row every new token is scored against every key of the row, visible or not. Siblings
    that are short next to the path they share (criteria under an answer, answers under a long
    prompt) belong in one row: the shared keys are stored once and the masked-out sibling pairs
    are few. Siblings that are long next to what they share (distinct samples under the same
    instructions) would mostly score each other for nothing, so a row takes siblings only while
    its new tokens stay within the shared path's length (at least ``min_row_tokens``); the shared
    keys are then copied into each row, which is cheap because they are short. Segments with
    different parents never share a row.
    """
    rows: list[list[Segment]] = []
    parent: object = object()
    size = 0
    for seg in step:
        node = tree.nodes[seg.node]
        shared = tree.nodes[node.parent].stop if node.parent is not None else 0
        n = seg.hi - seg.lo
        if rows and node.parent == parent and size + n <= max(min_row_tokens, shared):
            rows[-1].append(seg)
            size += n
        else:
            rows.append([seg])
            parent, size = node.parent, n
    return rows


def packed_token_count(sequences: Sequence[Sequence[int]], groups: Sequence[Sequence[int]]) -> int:
    """Tokens computed when each group of requests is packed as one shared prefix + suffixes.

    This is the cost model of the older packed engine (one common prefix per group, capped so
    each member keeps at least one token of its own), for comparing against ``token_count``.
    """
    total = 0
    for group in groups:
        seqs = [sequences[i] for i in group]
        shared = min(len(s) for s in seqs)
        for s in seqs[1:]:
            shared = min(shared, _lcp(seqs[0], s))
        shared = min(shared, min(len(s) for s in seqs) - 1)
        total += shared + sum(len(s) - shared for s in seqs)
    return total
