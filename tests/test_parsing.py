"""Reading judge answers: logprobs, free-text labels, repaired JSON, verdict fields, refusals."""

from __future__ import annotations

import math

import pytest

from rubrix.judges.parsing import (
    checklist_values,
    expected_from_logprobs,
    label_from_json,
    label_probs,
    looks_like_refusal,
    parse_json_object,
    parse_label,
    value_from_json,
)

YN = (("Yes", 1.0), ("No", 0.0))
SCALE = tuple((str(i), float(i)) for i in range(1, 6))
AB = (("A", 1.0), ("B", 0.0))


# ------------------------------------------------------------------ expected_from_logprobs


def test_expected_sums_spellings_and_normalizes():
    top = {"Yes": math.log(0.5), " yes": math.log(0.1), "YES": math.log(0.1), "No": math.log(0.2),
           "The": math.log(0.1)}
    p, coverage = expected_from_logprobs(top, YN)
    assert p == pytest.approx(0.7 / 0.9)
    assert coverage == pytest.approx(0.9)


def test_expected_accepts_pairs_and_wire_format():
    pairs = [("Yes", math.log(0.3)), ("No", math.log(0.6))]
    wire = [{"token": "Yes", "logprob": math.log(0.3), "bytes": None},
            {"token": "No", "logprob": math.log(0.6), "bytes": None}]
    assert expected_from_logprobs(pairs, YN)[0] == pytest.approx(1 / 3)
    assert expected_from_logprobs(wire, YN)[0] == pytest.approx(1 / 3)


def test_expected_scale_uses_exact_digits_only():
    top = [("4", math.log(0.5)), ("5", math.log(0.25)), ("10", math.log(0.1)), ("4.", math.log(0.1)),
           (" 3", math.log(0.05))]
    p, coverage = expected_from_logprobs(top, SCALE)
    assert p == pytest.approx((4 * 0.5 + 5 * 0.25 + 3 * 0.05) / 0.8)
    assert coverage == pytest.approx(0.8)


def test_expected_none_when_no_label_and_ignores_bad_values():
    assert expected_from_logprobs({"The": -0.1, "Answer": -2.0}, YN) == (None, 0.0)
    assert expected_from_logprobs([], YN) == (None, 0.0)
    top = [("Yes", None), ("No", float("-inf")), ("Yes", float("nan")), ("No", "x"), ("Yes", -0.5)]
    p, coverage = expected_from_logprobs(top, YN)
    assert p == 1.0 and coverage == pytest.approx(math.exp(-0.5))


def test_expected_pairwise_letters_and_label_probs():
    top = {"A": math.log(0.6), " B": math.log(0.3), "Both": math.log(0.1)}
    p, _ = expected_from_logprobs(top, AB)
    assert p == pytest.approx(2 / 3)
    assert label_probs(top, AB) == pytest.approx({"A": 0.6, "B": 0.3})


# ------------------------------------------------------------------ parse_label


@pytest.mark.parametrize("text,options,expected", [
    ("Yes", YN, "Yes"),
    ("Yes.", YN, "Yes"),
    (" yes", YN, "Yes"),
    ("**No**", YN, "No"),
    ("NO", YN, "No"),
    ("B", AB, "B"),
    ("[[A]]", AB, "A"),
    ("4", SCALE, "4"),
    ("Score: 4/5", SCALE, "4"),
    ("4 out of 5", SCALE, "4"),
    ("Yes, the response names Paris and has no errors.", YN, "Yes"),
    ("The response names Berlin.\n\nAnswer: No", YN, "No"),
    ("Verdict - **B**", AB, "B"),
    ("The answer is yes", YN, "Yes"),
    ("Final answer (Yes/No): No", YN, "No"),
    ("reasoning about it...\n\n**No**", YN, "No"),
    ("Rating: 3 out of 5 at first.\nOn reflection, Score: 2", SCALE, "2"),
    # the LAST explicit marker wins over labels quoted earlier
    ("I could say \"Answer: Yes\" but it misses the point.\nAnswer: No", YN, "No"),
])
def test_parse_label_reads(text, options, expected):
    label, value = parse_label(text, options)
    assert label == expected
    assert value == dict(options)[expected]


@pytest.mark.parametrize("text,options", [
    ("Yes or No", YN),
    ("Yes/No", YN),
    ("Answer: Yes or No", YN),
    ("The response says \"Yes\" to the user but that is not what was asked.", YN),
    ("It could be yes, it could be no.", YN),
    ("Yesterday it rained.", YN),
    ("Nothing to add.", YN),
    ("A good answer would mention both.", AB),
    ("1. The response is fine.\n2. It is short.", SCALE),
    ("4.5", SCALE),
    ("Score: 1-5", SCALE),
    ("", YN),
    (None, YN),
])
def test_parse_label_rejects_ambiguous(text, options):
    assert parse_label(text, options) is None


# ------------------------------------------------------------------ parse_json_object


@pytest.mark.parametrize("text,expected", [
    ('{"verdict": "Yes"}', {"verdict": "Yes"}),
    ('```json\n{"verdict": true,}\n```', {"verdict": True}),
    ('```\n{"a": 1}\n```\ntrailing prose', {"a": 1}),
    ("Sure! Here it is: {\"rationale\": \"uses {braces} and \\\"quotes\\\"\", \"verdict\": \"No\"} Thanks!",
     {"rationale": 'uses {braces} and "quotes"', "verdict": "No"}),
    ("{'verdict': True, 'note': None}", {"verdict": True, "note": None}),
    ("{'r': \"it's fine\", 'v': False}", {"r": "it's fine", "v": False}),
    ('{"a": [1, 2,], "b": {"c": null,},}', {"a": [1, 2], "b": {"c": None}}),
    ('{"verdict": True, "why": "True story"}', {"verdict": True, "why": "True story"}),
    ('{"rationale": "line one\nline two", "verdict": "Yes"}',
     {"rationale": "line one\nline two", "verdict": "Yes"}),
    # cut off by max_tokens after the verdict
    ('{"verdict": true, "rationale": "because it', {"verdict": True, "rationale": "because it"}),
    ('{"verdict": false,', {"verdict": False}),
])
def test_parse_json_object_repairs(text, expected):
    assert parse_json_object(text) == expected


@pytest.mark.parametrize("text", ["", None, "no json here", "[1, 2, 3]", "{this is not: json at all",
                                  "{'a': 'it's broken'}"])
def test_parse_json_object_gives_up(text):
    assert parse_json_object(text) is None


# ------------------------------------------------------------------ value_from_json / checklist


@pytest.mark.parametrize("obj,field,options,expected", [
    ({"verdict": True}, "verdict", YN, 1.0),
    ({"verdict": False}, "verdict", YN, 0.0),
    ({"verdict": "yes"}, "verdict", YN, 1.0),
    ({"Verdict": " NO. "}, "verdict", YN, 0.0),
    ({"verdict": "true"}, "verdict", YN, 1.0),
    ({"verdict": 1}, "verdict", YN, 1.0),
    ({"verdict": 0}, "verdict", YN, 0.0),
    ({"score": 4}, "score", SCALE, 4.0),
    ({"score": "4"}, "score", SCALE, 4.0),
    ({"score": 4.0}, "score", SCALE, 4.0),
    ({"score": "Score: 2/5"}, "score", SCALE, 2.0),
    ({"winner": "b"}, "winner", AB, 0.0),
    ({"winner": "A"}, "winner", AB, 1.0),
    ({"verdict": {"answer": "Yes", "confidence": "high"}}, "verdict", YN, 1.0),
    # unreadable: never coerced
    ({"verdict": "maybe"}, "verdict", YN, None),
    ({"verdict": True}, "verdict", AB, None),
    ({"score": 4.5}, "score", SCALE, None),
    ({"score": 7}, "score", SCALE, None),
    ({"score": float("nan")}, "score", SCALE, None),
    ({"rationale": "Yes it is"}, "verdict", YN, None),
    ({"verdict": None}, "verdict", YN, None),
    ({"verdict": ["Yes"]}, "verdict", YN, None),
])
def test_value_from_json(obj, field, options, expected):
    assert value_from_json(obj, field, options) == expected


def test_label_from_json_rationale_quoting_the_other_label():
    obj = parse_json_object('{"rationale": "The response says \'Yes\' to everything", "verdict": "No"}')
    assert label_from_json(obj, "verdict", YN) == ("No", 0.0)


@pytest.mark.parametrize("obj,expected", [
    ({"c1": True, "c2": "no"}, {"c1": 1.0, "c2": 0.0}),
    ({"c1": {"met": True, "why": "x"}, "c2": {"met": False}}, {"c1": 1.0, "c2": 0.0}),
    ({"criteria": {"c1": 1, "c2": 0}}, {"c1": 1.0, "c2": 0.0}),
    ({"results": [{"id": "c1", "met": True}, {"id": "c2", "met": "No"}]}, {"c1": 1.0, "c2": 0.0}),
    ([{"id": "c2", "verdict": False}, {"id": "c1", "verdict": True}], {"c1": 1.0, "c2": 0.0}),
    ({"c1": True}, None),                      # a missing id fails the whole checklist
    ({"c1": True, "c2": "perhaps"}, None),     # so does an unreadable one
    ("c1: yes", None),
])
def test_checklist_values(obj, expected):
    assert checklist_values(obj, ["c1", "c2"]) == expected


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("text", [
    "I can't help with that.",
    "I cannot evaluate this response.",
    "I'm sorry, but I can't assist with this request.",
    "Sorry, I cannot do that.",
    "As an AI language model, I cannot make judgments about this content.",
    "I must decline to rate this.",
    "Unfortunately, I am unable to assess this.",
    "I won't.",
])
def test_refusals(text):
    assert looks_like_refusal(text)


@pytest.mark.parametrize("text", [
    "", None, "Yes", "No", "The response says I cannot help, which is wrong.",
    "The assistant refused: \"I can't help with that\".", "Answer: No", '{"verdict": "No"}',
])
def test_not_refusals(text):
    assert not looks_like_refusal(text)
