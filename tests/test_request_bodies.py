"""Request bodies cross from Python to JSON once: written straight from the Python objects
when no tokens-per-minute limit needs the prompt counted, else through a JSON tree. Both ways
send the same bytes and refuse the same values with the same message."""

import json
import math
from typing import Any, Dict, Iterator, List

import pytest

from distilabel_rs import _core

WEIRD_TEXT = (
    'quote " backslash \\ slash / nl \n tab \t nul \x00 bell \x07 é 中文 🦀 \u2028 \U0010ffff'
)


@pytest.fixture
def server() -> Iterator[Any]:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


def _bodies() -> List[Dict[str, Any]]:
    return [
        {"model": "m", "messages": [{"role": "user", "content": WEIRD_TEXT}]},
        {
            "model": "m",
            "messages": [{"role": "user", "content": "numbers"}],
            "max_tokens": 2**63 - 1,
            "seed": 2**64 - 1,
            "logit_bias": {"50256": -100, "-1": -(2**63)},
            "temperature": 0.1,
            "top_p": 1.0,
            "floats": [1e300, -0.0, 5e-324, 123456789.123456789, 1.5e-7, 2.0**70],
            "flags": [True, False, None],
            "nested": {"a": ({"b": [()]}, [[], {}]), "": "empty key"},
        },
    ]


def _send(server: Any, bodies: List[Dict[str, Any]], **client: Any) -> List[str]:
    native = _core.NativeClient(
        "openai", server.base_url, api_key="sk-bodies", max_retries=0, **client
    )
    before = len(server.recorded())
    handle = native.start([("chat", body) for body in bodies], max_concurrency=1)
    assert handle.wait(60), "the requests ended within the bound"
    for result in handle.results():
        assert not isinstance(result, BaseException), result
    return [body for _, body, _ in server.recorded()[before:]]


def test_both_ways_send_the_same_bytes_and_the_same_json(server: Any) -> None:
    bodies = _bodies()
    direct = _send(server, bodies)
    through_tree = _send(server, bodies, tokens_per_minute=1e12)
    assert direct == through_tree
    for sent, body in zip(direct, bodies, strict=True):
        # Tuples are arrays; everything else is the value given.
        assert json.loads(sent) == json.loads(json.dumps(body))


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (
            object(),
            TypeError,
            "request 1.messages[0].content: a value of type `object` cannot be sent as JSON",
        ),
        (math.nan, ValueError, "request 1.messages[0].content: NaN is not valid JSON"),
        (math.inf, ValueError, "request 1.messages[0].content: inf is not valid JSON"),
        (2**64, ValueError, "request 1.messages[0].content: integer out of range"),
        (-(2**63) - 1, ValueError, "request 1.messages[0].content: integer out of range"),
        ({1: "x"}, TypeError, "request 1.messages[0].content: keys must be strings, not int"),
        ([1, {"k": {2}}], TypeError, "request 1.messages[0].content[1].k: a value of type `set`"),
        ("\ud800", UnicodeEncodeError, "surrogates not allowed"),
    ],
)
@pytest.mark.parametrize("tokens_per_minute", [None, 1e12])
def test_a_value_that_cannot_be_sent_is_named_with_its_place_either_way(
    server: Any, value: Any, error: type, message: str, tokens_per_minute: Any
) -> None:
    native = _core.NativeClient(
        "openai", server.base_url, api_key="sk-bodies", tokens_per_minute=tokens_per_minute
    )
    good = {"model": "m", "messages": [{"role": "user", "content": "fine"}]}
    bad = {"model": "m", "messages": [{"role": "user", "content": value}]}
    with pytest.raises(error) as raised:
        native.start([("chat", good), ("chat", bad)])
    assert message in str(raised.value)
    assert server.requests == 0, "nothing is sent when a body cannot be"
