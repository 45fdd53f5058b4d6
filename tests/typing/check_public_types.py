"""What a type checker sees of irouter's public surface, pinned with ``assert_type``.

Checked by ``mypy --strict tests/typing`` in ``.ci/run``; never run and never collected by pytest (its name does not
start with ``test_``). A change that makes a call's type less precise, or wrong, fails CI here.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypedDict

from pydantic import BaseModel

from irouter import (
    AsyncCall,
    AsyncChat,
    AsyncStream,
    Call,
    Chat,
    GeneratedImage,
    Percentiles,
    Provider,
    Providers,
    Ranked,
    Report,
    Response,
    Review,
    Stream,
    providers,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type

M = "openai/gpt-4o-mini"
MODELS = ["openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct"]


@dataclass
class City:
    name: str
    population: int


class Weather(BaseModel):
    celsius: float


class Point(TypedDict):
    x: int


def get_weather(city: str) -> str:
    return city


def check_chat_one_model() -> None:
    chat = Chat(M, system="Be brief.", temperature=0)
    assert_type(chat, Chat[str])
    assert_type(chat("hi"), str)
    assert_type(chat("hi", [get_weather]), str)
    assert_type(chat("hi", [get_weather], 5, {"X-Title": "app"}, {"top_k": 3}), str)
    assert_type(chat("hi", response_format={"type": "json_object"}), str)
    assert_type(chat("hi", response_format=City), City)
    assert_type(chat("hi", response_format=Weather), Weather)
    assert_type(chat("hi", stream=True), Stream[str])
    for piece in chat("hi", stream=True):
        assert_type(piece, str)
    assert_type(chat.fork(), Chat[str])
    assert_type(chat.images, Any)
    assert_type(Chat(M, "system", "http://localhost:8080/v1", "key"), Chat[str])


def check_chat_several_models(flag: bool) -> None:
    chat = Chat(MODELS)
    assert_type(chat, Chat[dict[str, str]])
    assert_type(chat("hi"), dict[str, str])
    assert_type(chat("hi", response_format=City), dict[str, City])
    assert_type(chat("hi", stream=True), Stream[tuple[str, str]])
    for slug, piece in chat("hi", stream=True):
        assert_type(slug, str)
        assert_type(piece, str)
    assert_type(chat("hi", stream=flag), dict[str, str] | Stream[tuple[str, str]])
    assert_type(Chat(("a/a", "b/b")), Chat[dict[str, str]])
    review = chat.review("judge/model", "Be strict.", blind=flag, swap=flag, temperature=0)
    assert_type(review, Review)
    assert_type(review.ranking, list[Ranked])
    assert_type(chat.review(["a/judge", "b/judge"]).best, str | None)
    assert_type(chat.synthesize("chair/model", "One paragraph."), str)
    assert_type(chat.adopt(MODELS[0]), None)
    assert_type(chat.adopt(text="agreed"), None)


def check_chat_of_unknown_shape(model: str | list[str]) -> None:
    chat = Chat(model)
    assert_type(chat, Chat[str] | Chat[dict[str, str]])
    assert_type(chat("hi"), str | dict[str, str])


async def check_async_chat(flag: bool) -> None:
    chat = AsyncChat(M)
    assert_type(chat, AsyncChat[str])
    pending = assert_type(chat("hi"), Coroutine[Any, Any, str])  # not a str: a forgotten await is caught
    assert_type(await pending, str)
    assert_type(await chat("hi", [get_weather]), str)
    assert_type(await chat("hi", response_format=City), City)
    stream = chat("hi", stream=True)
    assert_type(stream, AsyncStream[str])
    async for piece in stream:
        assert_type(piece, str)
    several = AsyncChat(MODELS)
    assert_type(await several("hi"), dict[str, str])
    assert_type(await several("hi", response_format=City), dict[str, City])
    async for slug, text in several("hi", stream=True):
        assert_type((slug, text), tuple[str, str])
    assert_type(chat("hi", stream=flag), Coroutine[Any, Any, str] | AsyncStream[str])
    judged = assert_type(several.review("judge/model"), Coroutine[Any, Any, Review])
    assert_type(await judged, Review)
    assert_type(await several.synthesize("chair/model"), str)
    assert_type(several.adopt(text="agreed"), None)


def check_call(flag: bool) -> None:
    ask = Call(M, "http://localhost:8080/v1", "key", "Be brief.")
    assert_type(ask, Call[str])
    assert_type(ask("hi"), str)
    assert_type(ask([{"role": "user", "content": "hi"}]), str)
    assert_type(ask("hi", {"X-Title": "app"}), str)
    assert_type(ask("hi", {"X-Title": "app"}, {"top_k": 3}, True), Response)
    assert_type(ask("hi", raw=True), Response)
    assert_type(ask("hi", response_format=Point), Point)
    assert_type(ask("hi", stream=True), Stream[str])
    assert_type(ask("hi", raw=flag), str | Response | Stream[str])
    assert_type(ask.batch(["a", "b"]), list[str | Exception])
    assert_type(ask.batch(["a"], response_format=City), list[City | Exception])
    several = Call(MODELS)
    assert_type(several("hi"), dict[str, str])
    assert_type(several("hi", raw=True), dict[str, Response])
    assert_type(several("hi", stream=True), Stream[tuple[str, str]])
    assert_type(several.batch(["a"]), list[dict[str, str | Exception]])


async def check_async_call() -> None:
    ask = AsyncCall(M)
    pending = assert_type(ask("hi"), Coroutine[Any, Any, str])
    assert_type(await pending, str)
    assert_type(await ask("hi", raw=True), Response)
    assert_type(await ask("hi", response_format=City), City)
    assert_type(ask("hi", stream=True), AsyncStream[str])
    assert_type(await ask.batch(["a"]), list[str | Exception])
    several = AsyncCall(MODELS)
    assert_type(await several("hi"), dict[str, str])
    assert_type(await several.batch(["a"], response_format=City), list[dict[str, City | Exception]])


def check_outputs(image: GeneratedImage, response: Response) -> None:
    assert_type(image.data, bytes)
    assert_type(response.model_dump(), dict[str, Any])
    assert_type(response.to_json(), str)


def check_providers_and_reports(chat: Chat[str], achat: AsyncChat[str]) -> None:
    found = assert_type(providers("moonshotai/kimi-k3"), Providers)
    first = assert_type(found[0], Provider)
    assert_type(first.slug, str)
    assert_type(first.latency, Percentiles | None)
    assert_type(first.prompt_price, float | None)
    report = assert_type(chat.report(), Report)
    assert_type(achat.report(), Report)
    assert_type(Report.of(chat), Report)
    assert_type(report.html(), str)
