"""Your own httpx2 client (``http_client=``), and releasing connections with ``close()`` / ``with``."""

from __future__ import annotations

import asyncio
import copy
import pickle
import threading
from typing import Any

import httpx2
import pytest

from irouter import AsyncCall, AsyncChat, Call, Chat, register_endpoint
from irouter.endpoints import unregister_endpoint
from irouter.testing import OpenRouterDouble, Text

M = "openai/gpt-4o-mini"


class Recording(httpx2.HTTPTransport):
    """A transport of the user's: records every request and stamps a header on it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["X-Through"] = "my-transport"
        self.seen.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


class AsyncRecording(httpx2.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["X-Through"] = "my-async-transport"
        self.seen.append(f"{request.method} {request.url.path}")
        return await super().handle_async_request(request)


def through(router: OpenRouterDouble, stamp: str) -> list[dict[str, Any]]:
    """The chat requests the double received that came through the user's transport (and client headers)."""
    return [
        r.json
        for r in router.requests
        if r.path.endswith("/chat/completions") and r.headers.get("x-through") == stamp
        if r.headers.get("x-client") == "mine" and r.headers.get("authorization") == f"Bearer {router.api_key}"
    ]


def test_a_chat_sends_through_the_users_client(router: OpenRouterDouble, connect: dict) -> None:
    transport = Recording()
    client = httpx2.Client(transport=transport, headers={"X-Client": "mine"})
    with Chat(M, http_client=client, **connect) as chat:
        assert chat("hi") == "You said: hi"
        assert "".join(chat("streamed", stream=True)) == "You said: streamed"
    assert transport.seen == ["POST /api/v1/chat/completions"] * 2
    assert [body["messages"][-1]["content"] for body in through(router, "my-transport")] == ["hi", "streamed"]
    assert not client.is_closed  # irouter never closes a client it was given
    assert Call(M, http_client=client, **connect)("still usable") == "You said: still usable"
    client.close()


def test_the_catalog_check_goes_through_the_users_client(router: OpenRouterDouble, connect: dict) -> None:
    """Behind a proxy only the user's client gets out: the model catalog is fetched through it too."""
    transport = Recording()
    with httpx2.Client(transport=transport) as client:
        assert Chat(M, http_client=client, check_capabilities=True, **connect)("hi") == "You said: hi"
    assert transport.seen == ["GET /api/v1/models", "POST /api/v1/chat/completions"]


def test_a_batch_and_several_models_use_the_users_client(router: OpenRouterDouble, connect: dict) -> None:
    transport = Recording()
    with httpx2.Client(transport=transport, headers={"X-Client": "mine"}) as client:
        call = Call(["a/a", "b/b"], http_client=client, **connect)
        results = call.batch(["one", "two", "three"], concurrency=3)
        assert results[2] == {"a/a": "You said: three", "b/b": "You said: three"}
        assert len(transport.seen) == 6
        assert len(through(router, "my-transport")) == 6 == len(router.chat_requests)


def test_a_registered_endpoint_uses_the_users_client(router: OpenRouterDouble) -> None:
    register_endpoint("mine/", router.base_url, api_key=router.api_key)
    try:
        transport = Recording()
        with httpx2.Client(transport=transport, headers={"X-Client": "mine"}) as client:
            assert Chat("mine/llama", http_client=client)("hi") == "You said: hi"
        assert transport.seen == ["POST /api/v1/chat/completions"]
        assert through(router, "my-transport")[0]["model"] == "llama"
    finally:
        unregister_endpoint("mine/")


def test_async_objects_send_through_the_users_async_client(router: OpenRouterDouble, connect: dict) -> None:
    transport = AsyncRecording()

    async def main() -> httpx2.AsyncClient:
        client = httpx2.AsyncClient(transport=transport, headers={"X-Client": "mine"})
        async with AsyncChat(M, http_client=client, **connect) as chat:
            assert await chat("hi") == "You said: hi"
            assert "".join([p async for p in chat("streamed", stream=True)]) == "You said: streamed"
        async with AsyncCall(M, http_client=client, **connect) as call:
            assert await call.batch(["a", "b"]) == ["You said: a", "You said: b"]
        assert not client.is_closed
        await client.aclose()
        return client

    asyncio.run(main())
    assert len(transport.seen) == 4
    sent = [b["messages"][-1]["content"] for b in through(router, "my-async-transport")]
    assert sent[:2] == ["hi", "streamed"]
    assert sorted(sent[2:]) == ["a", "b"]  # the batch's two requests are in flight together: either may come first


def test_the_wrong_kind_of_client_is_refused_before_any_request(router: OpenRouterDouble, connect: dict) -> None:
    with httpx2.Client() as sync_client:
        with pytest.raises(TypeError, match=r"http_client must be an httpx2\.AsyncClient, got httpx2\.Client"):
            AsyncChat(M, http_client=sync_client, **connect)
        with pytest.raises(
            TypeError, match=r"http_client= is not an option of chat\(\.\.\.\).*given to the constructor"
        ):
            Chat(M, **connect)("hi", http_client=sync_client)
    with pytest.raises(TypeError, match=r"httpx2\.Client"):
        Call(M, http_client="http://proxy:8080", **connect)
    assert router.requests == []


def test_an_httpx_client_is_refused_naming_httpx2(router: OpenRouterDouble, connect: dict) -> None:
    """Code moving from httpx: its client is not silently ignored."""
    httpx = pytest.importorskip("httpx")
    with httpx.Client() as old, pytest.raises(TypeError, match=r"must be an httpx2\.Client, got httpx\.Client"):
        Chat(M, http_client=old, **connect)
    assert router.requests == []


def test_an_object_with_a_users_client_does_not_pickle_but_copies(router: OpenRouterDouble, connect: dict) -> None:
    transport = Recording()
    with httpx2.Client(transport=transport, headers={"X-Client": "mine"}) as client:
        chat = Chat(M, http_client=client, **connect)
        with pytest.raises(TypeError, match="given http_client= cannot be pickled"):
            pickle.dumps(chat)
        twin = copy.deepcopy(chat)
        assert twin._http_client is client  # shared, not copied
        assert twin("copied") == "You said: copied"
        assert chat.fork()("forked") == "You said: forked"
    assert len(transport.seen) == 2


# --------------------------------------------------------------------------------------------- close / with


def test_close_and_with_release_the_pooled_connections(router: OpenRouterDouble, connect: dict) -> None:
    chat = Chat(M, **connect)
    chat("one")
    chat("two")
    first = router.requests[-1].client
    assert router.requests[-2].client == first  # kept alive between turns...
    chat.close()
    chat("three")  # ...closed by close(); the chat still works, on a new connection
    assert router.requests[-1].client != first

    with Call(M, **connect) as call:
        call("in the block")
    inside = router.requests[-1].client
    Call(M, **connect)("after the block")
    assert router.requests[-1].client != inside


def test_close_releases_connections_while_another_request_is_in_flight(router: OpenRouterDouble, connect: dict) -> None:
    """Regression: ``close()`` did nothing while any request was in flight anywhere (one abandoned after Ctrl-C
    kept every pooled connection open). Now the idle ones close at once and the busy one when its request ends."""
    gate, inside = threading.Event(), threading.Event()

    def respond(body: dict[str, Any]) -> Text:
        if body["messages"][-1]["content"] == "slow":
            inside.set()
            gate.wait(10)
        return Text("ok")

    router.default = respond
    outcome: list[str] = []
    slow = threading.Thread(target=lambda: outcome.append(Call(M, **connect)("slow")), daemon=True)
    slow.start()
    assert inside.wait(10)
    chat = Chat(M, **connect)
    chat("one")
    chat("two")
    first = router.requests[-1].client
    assert router.requests[-2].client == first
    chat.close()
    chat("three")
    assert router.requests[-1].client != first
    gate.set()
    slow.join(10)
    assert outcome == ["ok"]  # the request in flight was not cut off


def test_async_with_releases_the_loops_connections(router: OpenRouterDouble, connect: dict) -> None:
    async def main() -> None:
        async with AsyncChat(M, **connect) as chat:
            await chat("one")
            await chat("two")
            assert router.requests[-1].client == router.requests[-2].client
        inside = router.requests[-1].client
        await AsyncCall(M, **connect)("after the block")
        assert router.requests[-1].client != inside
        call = AsyncCall(M, **connect)
        await call("a")
        await call.aclose()
        await call("b")  # still usable
        assert router.requests[-1].client != router.requests[-2].client

    asyncio.run(main())


def test_close_leaves_a_stream_in_flight_alone(router: OpenRouterDouble, connect: dict) -> None:
    """Closing one object while another's stream is open leaves that stream alone."""
    router.queue(Text("a long answer in many pieces", chunk_delay=0.05))
    reader = Chat(M, **connect)
    stream = reader("go", stream=True)
    pieces = [next(iter(stream))]
    Chat(M, **connect).close()
    pieces += list(stream)
    assert "".join(pieces) == "a long answer in many pieces"
    assert len(reader.history) == 3
