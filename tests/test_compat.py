"""Code written against irouter 0.3.1 runs unchanged: its positional argument orders, the names its docs showed,
and the openai SDK's conversions of raw responses and API errors."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irouter
from irouter import AsyncCall, AsyncChat, Call, Chat, Response
from irouter.testing import Error, OpenRouterDouble, Text, ToolCall

M = "openai/gpt-4o-mini"
ASSETS = Path(__file__).resolve().parents[1] / "docs" / "assets"


def get_weather(city: str) -> str:
    """The weather in a city.

    :param city: the city's name
    """
    return f"Sunny in {city}"


def _tool_turn(router: OpenRouterDouble) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]), "It is sunny in Oslo.")


# --------------------------------------------------------------------------------------------- constructors


def test_call_takes_base_url_and_api_key_positionally(router: OpenRouterDouble) -> None:
    """0.3.1: ``Call(model, base_url, api_key, system)``: the key goes to that URL and no system prompt is added."""
    ask = Call(M, router.base_url, router.api_key)
    assert ask("Say hi") == "You said: Say hi"
    assert router.chat_requests[-1]["messages"] == [{"role": "user", "content": "Say hi"}]
    assert router.requests[-1].headers["authorization"] == f"Bearer {router.api_key}"
    assert ask.base_url == router.base_url


def test_call_takes_system_fourth(router: OpenRouterDouble) -> None:
    Call(M, router.base_url, router.api_key, "Be brief.")("Hi")
    assert router.chat_requests[-1]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_chat_takes_system_base_url_and_api_key_positionally(router: OpenRouterDouble) -> None:
    """0.3.1: ``Chat(model, system, base_url, api_key)``."""
    chat = Chat(M, "You are terse.", router.base_url, router.api_key)
    assert chat("Hi") == "You said: Hi"
    assert router.chat_requests[-1]["messages"][0] == {"role": "system", "content": "You are terse."}
    assert router.requests[-1].headers["authorization"] == f"Bearer {router.api_key}"


def test_async_constructors_take_the_same_order(router: OpenRouterDouble) -> None:
    async def main() -> tuple[str, str]:
        one = await AsyncCall(M, router.base_url, router.api_key, "Be brief.")("a")
        two = await AsyncChat(M, "Terse.", router.base_url, router.api_key)("b")
        return one, two

    assert asyncio.run(main()) == ("You said: a", "You said: b")
    systems = [body["messages"][0] for body in router.chat_requests]
    assert systems == [{"role": "system", "content": "Be brief."}, {"role": "system", "content": "Terse."}]


@pytest.mark.parametrize("make", [lambda: Call(M, "Be brief."), lambda: Chat(M, "Terse.", "sk-or-v1-abc")])
def test_a_misplaced_argument_names_the_order(router: OpenRouterDouble, make: Any) -> None:
    """Code written for the keyword order of irouter 1.0 previews (system or key second) fails before sending."""
    with pytest.raises(ValueError, match=r"base_url must be an http\(s\) URL.*Chat\(model, system, base_url"):
        make()
    assert router.requests == []


def test_everything_new_is_keyword_only(connect: dict[str, str]) -> None:
    with pytest.raises(TypeError):
        Chat(M, "system", connect["base_url"], connect["api_key"], 0.5)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        Call(M, connect["base_url"], connect["api_key"], "", {"temperature": 0})  # type: ignore[call-overload]


# --------------------------------------------------------------------------------------------- Chat.__call__


def test_chat_runs_tools_given_positionally(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """0.3.1: ``chat(message, tools, max_steps, extra_headers, extra_body)``: the tool runs, the answer is text."""
    _tool_turn(router)
    chat = Chat(M, **connect)
    assert chat("Weather in Oslo?", [get_weather]) == "It is sunny in Oslo."
    first, second = router.chat_requests
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather"]
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["content"] == "Sunny in Oslo"


def test_chat_max_steps_positionally(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]), "Summary: sunny.")
    answer = Chat(M, **connect)("Weather?", [get_weather], 1)
    assert answer == "Summary: sunny."  # after one step, the summary request
    assert len(router.chat_requests) == 2
    assert router.chat_requests[-1]["tool_choice"] == "none"


def test_chat_extra_headers_and_body_positionally(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat(M, **connect)
    plugins = [{"id": "file-parser", "pdf": {"engine": "pdf-text"}}]
    assert chat("Hi", None, None, {"X-Title": "my app"}, {"plugins": plugins}) == "You said: Hi"
    assert router.requests[-1].headers["x-title"] == "my app"
    assert router.chat_requests[-1]["plugins"] == plugins
    assert "tools" not in router.chat_requests[-1]


def test_positional_none_unsets_a_default_like_the_keyword(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat(M, tools=[get_weather], **connect)
    chat("one", None)
    chat("two", tools=None)
    chat("three")  # the double's default answer calls the offered tool, then answers: two requests
    assert ["tools" in body for body in router.chat_requests] == [False, False, True, True]


def test_async_chat_runs_tools_given_positionally(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    _tool_turn(router)
    answer = asyncio.run(AsyncChat(M, **connect)("Weather in Oslo?", [get_weather]))
    assert answer == "It is sunny in Oslo."
    call, result = router.chat_requests[-1]["messages"][-2:]
    assert result == {"role": "tool", "tool_call_id": call["tool_calls"][0]["id"], "content": "Sunny in Oslo"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("hi", True), r"lands on tools=.*stream=/raw= by keyword"),
        (("hi", None, None, None, None, None), r"at most 4 more positional arguments"),
    ],
)
def test_bad_positional_arguments_raise_before_sending(
    router: OpenRouterDouble, connect: dict[str, str], args: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        Chat(M, **connect)(*args)
    assert router.chat_requests == []


def test_an_argument_given_twice_raises(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    with pytest.raises(TypeError, match="two values for tools="):
        Chat(M, **connect)("hi", [get_weather], tools=[get_weather])  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="two values for raw="):
        Call(M, **connect)("hi", None, None, True, raw=True)  # type: ignore[call-overload]
    assert router.chat_requests == []


# --------------------------------------------------------------------------------------------- Call.__call__


def test_call_extra_headers_positionally_returns_text(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """0.3.1: ``ask(message, extra_headers, extra_body, raw)``: a header dict second is headers, not ``raw``."""
    answer = Call(M, **connect)("Hi", {"X-Title": "my app"})
    assert answer == "You said: Hi"
    assert router.requests[-1].headers["x-title"] == "my app"


def test_call_extra_body_and_raw_positionally(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    ask = Call(M, **connect)
    assert ask("Hi", None, {"top_k": 3}) == "You said: Hi"
    assert router.chat_requests[-1]["top_k"] == 3
    raw = ask("Hi", None, None, True)
    assert isinstance(raw, Response)
    assert raw.choices[0].message.content == "You said: Hi"
    assert "raw" not in router.chat_requests[-1]


def test_async_call_takes_the_same_positional_order(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    async def main() -> tuple[Any, Any]:
        ask = AsyncCall(M, **connect)
        return await ask("Hi", {"X-Title": "async app"}), await ask("Hi", None, {"seed": 7}, True)

    text, raw = asyncio.run(main())
    assert text == "You said: Hi"
    assert router.requests[0].headers["x-title"] == "async app"
    assert router.chat_requests[1]["seed"] == 7
    assert isinstance(raw, Response)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headers=st.dictionaries(
        st.from_regex(r"X-[A-Za-z][A-Za-z0-9-]{0,12}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,20}", fullmatch=True).map(str.strip),
        max_size=3,
    ),
    body=st.dictionaries(
        st.sampled_from(["seed", "top_k", "temperature", "user"]), st.integers(0, 100) | st.text(max_size=8)
    ),
)
def test_positional_and_keyword_calls_send_the_same(
    router: OpenRouterDouble, connect: dict[str, str], headers: dict[str, str], body: dict[str, Any]
) -> None:
    """Whatever the headers and body fields, 0.3.1's positional form sends exactly what the keyword form sends."""
    ask = Call(M, **connect)
    ask("Hi", headers, body)
    positional = router.requests[-1]
    ask("Hi", extra_headers=headers, extra_body=body)
    keyword = router.requests[-1]
    assert positional.json == keyword.json
    for name, value in headers.items():
        assert positional.headers[name.lower()] == keyword.headers[name.lower()] == value
    for name, value in body.items():
        assert positional.json[name] == value


# --------------------------------------------------------------------------------------------- 0.3.1's names


def test_base_module_names(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    from irouter import base

    assert base.BASE_URL == "https://openrouter.ai/api/v1"
    assert base.BASE_HEADERS["X-Title"]
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]), "Done")
    Chat(M, **connect)("Weather?", [get_weather], 1)
    assert router.chat_requests[-1]["messages"][-1]["content"] == base.TOOL_LOOP_FINAL_PROMPT  # what is sent


@pytest.mark.parametrize(
    ("item", "kind"),
    [
        ("hello", "text"),
        ("Summarise report.pdf please", "text"),
        ("https://example.com/cat.png", "image_url"),
        ("https://example.com/a/report.pdf?x=1", "pdf_url"),
        ("https://example.com/talk.mp3", "audio_url"),
        ("https://example.com/page", "text"),
        ("data:image/png;base64,iVBORw0KGgo=", "image_url"),
        (str(ASSETS / "cat.png"), "local_image"),
        (42, "text"),
    ],
)
def test_detect_content_type(item: Any, kind: str) -> None:
    from irouter.base import detect_content_type

    assert detect_content_type(item) == kind


def test_detect_content_type_of_local_files(tmp_path: Path) -> None:
    from irouter.base import detect_content_type

    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4\n")
    (tmp_path / "a.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    assert detect_content_type(str(tmp_path / "a.pdf")) == "local_pdf"
    assert detect_content_type(str(tmp_path / "a.wav")) == "local_audio"
    with pytest.raises(FileNotFoundError):
        detect_content_type(str(tmp_path / "missing.png"))


def test_encode_base64(tmp_path: Path) -> None:
    from irouter.base import encode_base64

    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)))
    assert base64.b64decode(encode_base64(str(path))) == bytes(range(256))
    assert encode_base64(path) == encode_base64(str(path))


def test_download_and_encode_url(router: OpenRouterDouble) -> None:
    from irouter.base import download_and_encode_url

    # The double serves its model catalog over plain GET: any http body will do.
    url = f"{router.base_url}/models"
    data = base64.b64decode(download_and_encode_url(url))
    assert json.loads(data)["data"]
    assert "authorization" not in router.requests[-1].headers  # the file's host gets no key
    with pytest.raises(irouter.AttachmentError):
        download_and_encode_url("ftp://example.com/a.mp3")


def test_tool_module_function_to_schema() -> None:
    from irouter.tool import function_to_schema

    schema = function_to_schema(get_weather)
    assert schema == irouter.function_schema(get_weather)
    assert schema["function"]["name"] == "get_weather"
    assert schema["function"]["parameters"]["properties"]["city"]["type"] == "string"
    assert schema["function"]["parameters"]["required"] == ["city"]


# --------------------------------------------------------------------------------------------- raw and errors


def test_raw_response_converts_like_the_openai_sdk(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    raw = Call(M, **connect)("Hi", raw=True)
    dumped = raw.model_dump()
    assert dumped == raw.to_dict() == json.loads(raw.to_json()) == json.loads(raw.model_dump_json())
    assert type(dumped) is dict
    assert type(dumped["choices"][0]["message"]) is dict  # plain data all the way down
    assert dumped["choices"][0]["message"]["content"] == "You said: Hi"
    assert dumped["usage"]["cost"] == raw.usage.cost
    assert raw.to_json().startswith('{\n  "')  # indented by 2, like the SDK
    assert "\n" not in raw.model_dump_json()  # one line, like pydantic
    assert raw.choices[0].message.model_dump() == dumped["choices"][0]["message"]
    dumped["choices"][0]["message"]["content"] = "changed"
    assert raw.choices[0].message.content == "You said: Hi"  # a copy


def test_raw_response_exclude_none_and_unknown_options(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text("Hi", extra_message={"refusal": None}))
    raw = Call(M, **connect)("Hi", raw=True)
    assert raw.model_dump()["choices"][0]["message"]["refusal"] is None
    assert "refusal" not in raw.model_dump(exclude_none=True)["choices"][0]["message"]
    assert "refusal" not in json.loads(raw.to_json(exclude_none=True))["choices"][0]["message"]
    assert raw.to_dict(mode="json", exclude_unset=True, use_api_names=True) == raw.to_dict()
    with pytest.raises(TypeError, match=r"does not take include="):
        raw.model_dump(include={"id"})


def test_api_errors_carry_status_code_and_headers(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Error(429, "Slow down", retry_after=3, headers={"X-RateLimit-Remaining": "0"}))
    with pytest.raises(irouter.RateLimitError) as caught:
        Call(M, max_retries=0, **connect)("Hi")
    error = caught.value
    assert error.status_code == error.status == 429
    assert error.headers["x-ratelimit-remaining"] == "0"
    assert error.headers["retry-after"] == "3"
    assert error.headers.get("content-type", "").startswith("application/json")
    assert router.api_key not in repr(error.headers)


def test_errors_inside_a_200_body_have_no_headers(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Error(502, "Provider returned error", in_body=True))
    with pytest.raises(irouter.ServerError) as caught:
        Call(M, max_retries=0, **connect)("Hi")
    assert caught.value.status_code == 200
    assert caught.value.code == 502
    assert caught.value.headers == {}
