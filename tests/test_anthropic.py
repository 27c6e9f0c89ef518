"""The native `AnthropicLLM` against the local mock server, next to distilabel's
`AnthropicLLM` (anthropic SDK 0.49.0) on the same server."""

import asyncio
import json
import logging
import pickle
import time
from typing import Any, Dict, List
from unittest.mock import AsyncMock, MagicMock, Mock

import pytest
from distilabel.models.llms import AnthropicLLM as DistilabelAnthropicLLM
from pydantic import BaseModel, ValidationError

from distilabel_rs import AnthropicLLM, _core
from distilabel_rs.models.llms.anthropic import AnthropicLLM as AtModulePath
from tests.conftest import FANOUT_FIELDS, without_fanout_fields

KEY = "sk-ant-secret-test-key"
# A model the anthropic SDK 0.49 lists (distilabel's `load()` rejects the others).
MODEL = "claude-3-5-sonnet-20241022"
CHAT = [{"role": "user", "content": "hello there"}]
SYSTEM_CHAT = [{"role": "system", "content": "be brief"}, *CHAT]


@pytest.fixture
def server() -> Any:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


@pytest.fixture
def reference() -> Any:
    mock = _core.MockServer(record=True)
    yield mock
    mock.stop()


def ours(server: Any, **kwargs: Any) -> AnthropicLLM:
    llm = AnthropicLLM(model=MODEL, base_url=server.origin, api_key=KEY, **kwargs)
    llm.load()
    return llm


def theirs(server: Any, **kwargs: Any) -> DistilabelAnthropicLLM:
    llm = DistilabelAnthropicLLM(model=MODEL, base_url=server.origin, api_key=KEY, **kwargs)
    llm.load()
    return llm


def bodies(server: Any) -> List[Any]:
    return sorted(
        ((r["method"], r["path"], json.loads(r["body"])) for r in server.recorded_requests()),
        key=lambda item: json.dumps(item, sort_keys=True),
    )


def header(request: Dict[str, Any], name: str) -> Any:
    return next((value for key, value in request["headers"] if key == name), None)


def test_importable_at_distilabels_paths() -> None:
    from distilabel_rs.models import AnthropicLLM as FromModels
    from distilabel_rs.models.llms import AnthropicLLM as FromLLMs

    assert AnthropicLLM is FromModels is FromLLMs is AtModulePath


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        ([CHAT], {}),
        ([CHAT, SYSTEM_CHAT], {"num_generations": 3}),
        ([SYSTEM_CHAT], {"temperature": 0.2, "top_p": 0.9, "top_k": 5, "stop_sequences": ["\n"]}),
        ([CHAT], {"max_tokens": 7}),
        (
            [
                [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "user", "content": [{"type": "text", "text": "blocks"}]},
                ]
            ],
            {},
        ),
        ([[{"role": "system", "content": ""}, {"role": "user", "content": "empty system"}]], {}),
    ],
)
def test_outputs_request_bodies_urls_and_headers_match_distilabel(
    inputs: list, kwargs: dict, server: Any, reference: Any
) -> None:
    expected = theirs(reference).generate(inputs, **kwargs)
    got = ours(server).generate(inputs, **kwargs)
    assert got == expected
    assert bodies(server) == bodies(reference)
    for mine, sdk in zip(server.recorded_requests(), reference.recorded_requests(), strict=True):
        assert mine["path"] == sdk["path"] == "/v1/messages"
        for name in ("x-api-key", "anthropic-version", "content-type"):
            assert header(mine, name) == header(sdk, name), name
        assert header(mine, "x-api-key") == KEY
        assert header(mine, "authorization") is None


def test_inputs_are_not_changed_by_the_system_mapping(server: Any, reference: Any) -> None:
    mine, sdk = [list(SYSTEM_CHAT)], [list(SYSTEM_CHAT)]
    ours(server).generate(mine, num_generations=2)
    theirs(reference).generate(sdk, num_generations=2)
    assert mine == sdk == [SYSTEM_CHAT]
    # Every generation had the system prompt (one request each).
    assert [body["system"] for _, _, body in bodies(server)] == ["be brief", "be brief"]


def test_fields_runtime_parameters_and_dump_match_distilabel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://localhost:1234")
    extra = [*FANOUT_FIELDS, "tokens_per_minute"]
    assert [f for f in AnthropicLLM.model_fields if f not in extra] == list(
        DistilabelAnthropicLLM.model_fields
    )
    for name, field in DistilabelAnthropicLLM.model_fields.items():
        mine = AnthropicLLM.model_fields[name]
        assert mine.description == field.description, name
        assert mine.exclude == field.exclude, name
        assert mine.get_default(call_default_factory=True) == field.get_default(
            call_default_factory=True
        ), name
    mine, reference = AnthropicLLM(model=MODEL), DistilabelAnthropicLLM(model=MODEL)
    assert mine.base_url == "http://localhost:1234"
    assert mine.api_key.get_secret_value() == KEY
    names = {k: v for k, v in mine.runtime_parameters_names.items() if k not in extra}
    assert names == reference.runtime_parameters_names
    info = [i for i in mine.get_runtime_parameters_info() if i["name"] not in extra]
    assert info == reference.get_runtime_parameters_info()
    dumped = without_fanout_fields(mine.dump())
    del dumped["tokens_per_minute"]
    expected = reference.dump()
    assert {k: v for k, v in dumped.items() if k != "type_info"} == {
        k: v for k, v in expected.items() if k != "type_info"
    }
    assert dumped["type_info"] == {
        "module": "distilabel_rs.models.llms.anthropic",
        "name": "AnthropicLLM",
    }
    assert "api_key" not in mine.dump() and "http_client" not in mine.dump()
    assert KEY not in repr(mine) and KEY not in str(mine.dump())
    assert isinstance(AnthropicLLM.from_dict(mine.dump()), AnthropicLLM)


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    mine, reference = AnthropicLLM(model=MODEL), DistilabelAnthropicLLM(model=MODEL)
    assert mine.base_url == reference.base_url == "https://api.anthropic.com"
    assert mine.api_key is reference.api_key is None
    assert (mine.timeout, mine.max_retries) == (reference.timeout, reference.max_retries)
    assert mine._num_generations_param_supported is False


def test_load_without_a_key_fails_like_distilabel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ValueError) as mine:
        AnthropicLLM(model=MODEL).load()
    with pytest.raises(ValueError) as reference:
        DistilabelAnthropicLLM(model=MODEL).load()
    assert str(mine.value) == str(reference.value)


def test_any_model_name_loads(server: Any) -> None:
    # distilabel checks the name against the installed SDK's list (0.49 has no Claude 4).
    with pytest.raises(ValueError, match="does not exist among available models"):
        DistilabelAnthropicLLM(model="claude-sonnet-4-5", api_key=KEY).load()
    llm = AnthropicLLM(model="claude-sonnet-4-5", base_url=server.origin, api_key=KEY)
    llm.load()
    assert llm.generate([CHAT])[0]["generations"] == ["echo: hello there"]


@pytest.mark.parametrize(
    ("inputs", "kwargs"),
    [
        ([CHAT], {"max_tokens": "many"}),
        ([CHAT], {"temperature": "hot"}),
        ([CHAT], {"top_k": 1.5}),
        ([CHAT], {"stop_sequences": "stop"}),
        ([CHAT], {"bogus": 1}),
        ([123], {}),
    ],
)
def test_validation_errors_match_distilabel(
    inputs: list, kwargs: dict, server: Any, reference: Any
) -> None:
    with pytest.raises(ValidationError) as expected:
        theirs(reference).generate(inputs, **kwargs)
    with pytest.raises(ValidationError) as mine:
        ours(server).generate(inputs, **kwargs)
    assert str(mine.value) == str(expected.value)
    assert server.requests == 0


def test_a_prompt_is_refused_with_a_clear_error(server: Any) -> None:
    with pytest.raises(TypeError, match="takes conversations"):
        ours(server).generate(["a plain prompt"])
    assert server.requests == 0


@pytest.mark.parametrize("status", [529, 429])
def test_overloaded_and_rate_limited_requests_are_retried_like_the_sdk(
    status: int, server: Any, reference: Any
) -> None:
    text = f"[[status={status} times=2 retry_after=0.3]] hi"
    started = time.monotonic()
    got = ours(server).generate([[{"role": "user", "content": text}]])
    assert time.monotonic() - started >= 0.6  # the server's retry-after, twice
    expected = theirs(reference).generate([[{"role": "user", "content": text}]])
    assert got == expected
    assert got[0]["generations"] == [f"echo: {text}"]
    assert server.requests == reference.requests == 3


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503, 529])
def test_each_transient_status_is_retried_like_the_sdk(
    status: int, server: Any, reference: Any
) -> None:
    # The server fails the first attempt only; one retry gets the answer.
    text = f"[[status={status} times=1]] hi"
    got = ours(server, retry_backoff_base=0.0).generate([[{"role": "user", "content": text}]])
    assert got[0]["generations"] == [f"echo: {text}"]
    assert server.requests == 2
    # The anthropic SDK (distilabel's AnthropicLLM) retries the same statuses.
    expected = theirs(reference).generate([[{"role": "user", "content": text}]])
    assert got == expected
    assert reference.requests == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_other_client_errors_are_not_retried_like_the_sdk(
    status: int, server: Any, reference: Any
) -> None:
    text = f"[[status={status} times=1]] hi"  # a retry would succeed: none is made
    with pytest.raises(_core.APIStatusError) as info:
        ours(server, retry_backoff_base=0.0).generate([[{"role": "user", "content": text}]])
    assert info.value.status_code == status
    assert server.requests == 1
    import anthropic

    with pytest.raises(anthropic.APIStatusError) as sdk:
        theirs(reference).generate([[{"role": "user", "content": text}]])
    assert sdk.value.status_code == status
    assert reference.requests == 1


def test_rate_limit_reset_times_are_honoured(server: Any) -> None:
    llm = ours(server, retry_backoff_base=0.0)
    started = time.monotonic()
    out = llm.generate(
        [[{"role": "user", "content": "[[status=429 times=1 ratelimit_reset=0.8]]"}]]
    )
    assert out[0]["generations"] == ["echo: [[status=429 times=1 ratelimit_reset=0.8]]"]
    assert time.monotonic() - started >= 0.6  # until the RFC 3339 reset time, not at once


def test_errors_carry_the_type_and_message_never_the_key(server: Any, reference: Any) -> None:
    with pytest.raises(_core.APIStatusError) as info:
        ours(server).generate([[{"role": "user", "content": "[[status=400]] no"}]])
    assert info.value.status_code == 400
    assert info.value.message == "invalid_request_error: Scripted failure with status 400"
    assert str(info.value) == (
        "Error code: 400 - invalid_request_error: Scripted failure with status 400"
    )
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert server.requests == 1  # not retried
    # distilabel's (the SDK's) error says the same, as a dict.
    import anthropic

    with pytest.raises(anthropic.BadRequestError) as sdk:
        theirs(reference).generate([[{"role": "user", "content": "[[status=400]] no"}]])
    assert "invalid_request_error" in str(sdk.value)
    assert "Scripted failure with status 400" in str(sdk.value)
    with pytest.raises(_core.APIStatusError) as overloaded:
        ours(server, max_retries=0).generate([[{"role": "user", "content": "[[status=529]] x"}]])
    assert overloaded.value.status_code == 529
    assert str(overloaded.value) == (
        "Error code: 529 - overloaded_error: Scripted failure with status 529"
    )
    with pytest.raises(_core.RateLimitError, match="rate_limit_error"):
        ours(server, max_retries=0).generate([[{"role": "user", "content": "[[status=429]] x"}]])


def test_system_messages_after_the_first_are_sent_as_distilabel_sends_them(
    server: Any, reference: Any
) -> None:
    # distilabel lifts only a leading system message; the API refuses a later one.
    inputs = [[*CHAT, {"role": "system", "content": "late"}]]
    with pytest.raises(_core.APIStatusError, match="messages.1.role"):
        ours(server).generate(inputs)
    import anthropic

    with pytest.raises(anthropic.BadRequestError):
        theirs(reference).generate(inputs)
    assert bodies(server) == bodies(reference)


def test_isolate_keeps_the_other_generations(server: Any) -> None:
    llm = ours(server, error_policy="isolate", max_retries=0)
    out = llm.generate([CHAT, [{"role": "user", "content": "[[status=500]] broken"}]], 2)
    assert out[0]["generations"] == ["echo: hello there"] * 2
    assert out[1]["generations"] == [None, None]
    assert (
        out[1]["error"]
        == ["APIStatusError: Error code: 500 - api_error: Scripted failure with status 500"] * 2
    )


def test_requests_per_minute_are_respected(server: Any) -> None:
    llm = ours(server, requests_per_minute=600)  # 10 per second, at most 10 at once
    started = time.monotonic()
    llm.generate([[{"role": "user", "content": str(i)}] for i in range(25)])
    assert time.monotonic() - started >= 1.45
    assert server.requests == 25


def test_tokens_per_minute_reserve_max_tokens(server: Any) -> None:
    # Each request reserves its prompt estimate plus max_tokens=1000 until its usage is
    # known: with 6000 tokens per minute at most 5 are in flight at once.
    llm = ours(server, tokens_per_minute=6000)
    inputs = [[{"role": "user", "content": f"[[sleep_ms=100]] {i}"}] for i in range(20)]
    out = llm.generate(inputs, max_tokens=1000)
    assert len(out) == 20 and server.requests == 20
    assert 1 <= server.peak_in_flight <= 5


class Person(BaseModel):
    """A person."""

    name: str
    age: int


def test_structured_output_is_a_forced_tool(server: Any) -> None:
    llm = ours(server, structured_output={"schema": Person})
    content = '[[content={"name":"Ada","age":36}]] who?'
    out = llm.generate([[{"role": "user", "content": content}]])
    assert out == [
        {
            "generations": ['{"name":"Ada","age":36}'],
            "statistics": {"input_tokens": [2], "output_tokens": [1]},
        }
    ]
    assert Person.model_validate_json(out[0]["generations"][0]) == Person(name="Ada", age=36)
    body = json.loads(server.recorded_requests()[0]["body"])
    assert body["tools"] == [
        {"name": "Person", "input_schema": Person.model_json_schema(), "description": "A person."}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "Person"}
    assert llm.structured_output["schema"] == Person.model_json_schema()  # dumpable
    per_input = {"schema": {"title": "Other", "type": "object", "properties": {}}}
    llm.generate([([{"role": "user", "content": "x"}], per_input)])
    assert json.loads(server.recorded_requests()[1]["body"])["tool_choice"]["name"] == "Other"


def test_agenerate_and_async_fan_out(server: Any) -> None:
    llm = ours(server)

    async def main() -> Any:
        one = await llm.agenerate(input=SYSTEM_CHAT, max_tokens=5)
        many = await llm._agenerate([CHAT, SYSTEM_CHAT], num_generations=2)
        return one, many

    one, many = asyncio.run(main())
    assert one["generations"] == ["echo: hello there"]
    assert [o["generations"] for o in many] == [["echo: hello there"] * 2] * 2


def test_unload_pickle_and_http_client_warning(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    llm = ours(server)
    llm.generate([CHAT])
    copy = pickle.loads(pickle.dumps(llm))
    copy.load()
    assert copy.generate([CHAT])[0]["generations"] == ["echo: hello there"]
    llm.unload()
    pickle.loads(pickle.dumps(llm))
    with caplog.at_level(logging.WARNING):
        ours(server, http_client=object())
    assert "`http_client` is not used" in caplog.text


def completion(text: str) -> Mock:
    return Mock(content=[Mock(text=text)], usage=Mock(input_tokens=100, output_tokens=100))


def test_an_sdk_client_assigned_to_aclient_is_used_as_in_distilabels_tests() -> None:
    # distilabel's unit tests assign a mocked `AsyncAnthropic` to `_aclient` (without
    # `load()`): the same test passes on both classes.
    for cls in (DistilabelAnthropicLLM, AnthropicLLM):
        llm = cls(model=MODEL, api_key="api.key")
        llm._aclient = MagicMock()
        llm._aclient.messages.create = AsyncMock(return_value=completion("Aenean"))
        result = asyncio.run(llm.agenerate(input=SYSTEM_CHAT))
        assert result == {
            "generations": ["Aenean"],
            "statistics": {"input_tokens": [100], "output_tokens": [100]},
        }, cls
        kwargs = llm._aclient.messages.create.call_args.kwargs
        assert kwargs["system"] == "be brief" and kwargs["messages"] == CHAT, cls
        assert llm.generate(inputs=[SYSTEM_CHAT], num_generations=2) == [
            {
                "generations": ["Aenean", "Aenean"],
                "statistics": {"input_tokens": [100, 100], "output_tokens": [100, 100]},
            }
        ], cls
    llm = AnthropicLLM(model=MODEL, api_key="api.key")
    llm._aclient = MagicMock()
    llm._aclient.messages.create = AsyncMock(
        return_value=Mock(
            content=[], stop_reason="max_tokens", usage=Mock(input_tokens=1, output_tokens=0)
        )
    )
    assert asyncio.run(llm.agenerate(input=CHAT))["generations"] == [None]
    pickle.loads(pickle.dumps(llm))  # the assigned client is process-local


def test_an_instructor_style_client_in_aclient_gives_the_model_json() -> None:
    class User(BaseModel):
        name: str

    parsed = User(name="John")
    object.__setattr__(parsed, "_raw_response", Mock(usage=Mock(input_tokens=3, output_tokens=4)))
    llm = AnthropicLLM(model=MODEL, api_key="k", structured_output={"schema": User})
    llm._aclient = MagicMock()
    llm._aclient.messages.create = AsyncMock(return_value=parsed)
    assert asyncio.run(llm.agenerate(input=CHAT)) == {
        "generations": ['{"name":"John"}'],
        "statistics": {"input_tokens": [3], "output_tokens": [4]},
    }


def test_the_command_speaks_the_messages_api(tmp_path: Any) -> None:
    from tests.test_cli import cli, read_output, write_lines

    source = write_lines(
        tmp_path / "in.jsonl",
        [
            {"messages": SYSTEM_CHAT},
            {"custom_id": "x", "body": {"messages": CHAT, "max_tokens": 5, "top_k": 2}},
            {"prompt": "no prompts here"},
        ],
    )
    result = cli(
        "generate",
        str(source),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--model",
        MODEL,
        "--provider",
        "anthropic",
        "--mock",
        "--temperature",
        "0.5",
    )
    assert result.returncode == 1, result.stderr  # the prompt failed
    rows = {row["custom_id"]: row for row in read_output(tmp_path / "out.jsonl")}
    assert set(rows) == {"1", "x", "3"}
    message = rows["1"]["response"]["body"]
    assert message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": "echo: hello there"}]
    assert "send a conversation" in rows["3"]["error"]["message"]
