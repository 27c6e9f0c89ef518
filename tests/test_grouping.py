"""`merge_responses` (Rust core) against distilabel 1.5.3's, including its errors."""

import random

import pytest
from distilabel.models.llms.base import merge_responses as dl_merge

from distilabel_rs import merge_responses
from distilabel_rs._core import merge_responses as core_merge


def _response(rng: random.Random, i: int, stat_keys: list, extras: list) -> dict:
    out = {
        "generations": [f"g{i}", "second"],
        "statistics": {k: [rng.randint(0, 9), 99] for k in stat_keys},
    }
    for key in extras:
        out[key] = [f"{key}{i}", "dropped"]
    return out


@pytest.mark.parametrize("seed", range(30))
def test_random_responses_merge_like_distilabel(seed: int) -> None:
    rng = random.Random(seed)
    keys = ["input_tokens", "output_tokens", "time", "cost"]
    responses = [
        _response(rng, i, rng.sample(keys, rng.randint(0, 4)), ["logprobs"])
        for i in range(rng.randint(1, 40))
    ]
    n = rng.randint(1, 6)
    assert merge_responses(responses, n=n) == dl_merge(responses, n=n)


@pytest.mark.parametrize(
    ("responses", "n"),
    [
        ([], 1),
        ([], 0),
        ([{"generations": ["a"], "statistics": {}}], 3),
        ([{"generations": ["a"], "statistics": {"x": [1]}, "logprobs": [[1]]}], 1),
        ([{"generations": ["a"], "statistics": {}}] * 3, 2),
        ([{"generations": ["a"], "statistics": {}}] * 3, -1),
        # Extra keys only later responses have are dropped.
        (
            [
                {"generations": ["a"], "statistics": {}},
                {"generations": ["b"], "statistics": {}, "x": [1]},
            ],
            2,
        ),
        # Keys kept in first-seen order across the group.
        (
            [
                {"generations": ["a"], "statistics": {"b": [1]}},
                {"generations": ["b"], "statistics": {"a": [2], "b": [3]}},
            ],
            2,
        ),
        ((({"generations": ("t",), "statistics": {}},)), 1),
    ],
)
def test_edge_cases_match_distilabel(responses: list, n: int) -> None:
    assert merge_responses(responses, n=n) == dl_merge(list(responses), n=n)


@pytest.mark.parametrize(
    ("responses", "n"),
    [
        ([{"generations": ["a"], "statistics": {"x": []}}], 1),
        ([{"generations": [], "statistics": {}}], 1),
        (
            [
                {"generations": ["a"], "statistics": {}, "lp": [1]},
                {"generations": ["b"], "statistics": {}},
            ],
            2,
        ),
        ([{"statistics": {}}], 1),
        ([{"generations": ["a"], "statistics": {}}], 0),
        ([{"generations": ["a"]}], 1),
        ([{"generations": None, "statistics": {}}], 1),
    ],
)
def test_malformed_responses_raise_what_distilabel_raises(responses: list, n: int) -> None:
    with pytest.raises(Exception) as expected:
        dl_merge(responses, n=n)
    with pytest.raises(type(expected.value)) as got:
        merge_responses(responses, n=n)
    assert str(got.value) == str(expected.value)


def test_values_are_the_same_objects_not_copies() -> None:
    generation = object()
    stat = object()
    merged = core_merge([{"generations": [generation], "statistics": {"s": [stat]}}], 1)
    assert merged[0]["generations"][0] is generation
    assert merged[0]["statistics"]["s"][0] is stat


def test_large_input_is_grouped_in_order() -> None:
    responses = [
        {"generations": [str(i)], "statistics": {"input_tokens": [i]}} for i in range(200_000)
    ]
    merged = merge_responses(responses, n=4)
    assert len(merged) == 50_000
    assert merged[-1]["generations"] == ["199996", "199997", "199998", "199999"]
    assert merged[123]["statistics"]["input_tokens"] == [492, 493, 494, 495]


def _core_output(rng: random.Random, generations: int, logprobs: bool) -> dict:
    # The shape `RequestsHandle.results()` builds: both token counts, `logprobs` (one entry
    # per generation) only when there are some.
    output: dict = {
        "generations": [f"g{rng.random()}" for _ in range(generations)],
        "statistics": {"input_tokens": [rng.randint(1, 9)], "output_tokens": [rng.randint(1, 9)]},
    }
    if logprobs:
        output["logprobs"] = [[[{"token": "t", "logprob": -0.5}]] for _ in range(generations)]
    return output


@pytest.mark.parametrize("seed", range(40))
def test_one_generation_outputs_skip_grouping_only_when_it_changes_nothing(seed: int) -> None:
    from distilabel_rs.models.llms._native import _grouping_is_identity

    rng = random.Random(seed)
    uniform = seed % 2 == 0
    with_logprobs = rng.random() < 0.5
    outputs = [
        _core_output(
            rng,
            1 if uniform else rng.choice([0, 1, 1, 2]),
            with_logprobs if uniform else rng.random() < 0.5,
        )
        for _ in range(rng.randint(1, 12))
    ]
    if _grouping_is_identity(outputs):
        assert dl_merge(outputs, n=1) == outputs
    # Uniform one-generation outputs (the common case) are never re-grouped.
    assert _grouping_is_identity(outputs) or not uniform
