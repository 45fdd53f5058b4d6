"""What comes out besides text: generated images, web citations, file annotations and reasoning."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from irouter import Chat
from irouter.testing import OpenRouterDouble, Raw, Text, ToolCall

from .conftest import SAMPLES
from .media import png

M = "google/gemini-2.5-flash-image"


def image_part(data: bytes) -> dict:
    return {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()},
        "index": 0,
    }


def citation(url: str, title: str) -> dict:
    return {
        "type": "url_citation",
        "url_citation": {"url": url, "title": title, "content": f"About {title}", "start_index": 0, "end_index": 10},
    }


def test_generated_images(router: OpenRouterDouble, connect: dict, tmp_path: Path) -> None:
    picture = png(3, 2)
    router.queue(Text("Here is a cat for you!", extra_message={"images": [image_part(picture)]}))
    chat = Chat(M, modalities=["image", "text"], **connect)
    assert chat("Draw a cat") == "Here is a cat for you!"
    assert router.chat_requests[-1]["modalities"] == ["image", "text"]
    assert chat.history[-1] == {
        "role": "assistant",
        "content": "Here is a cat for you!",
        "images": [image_part(picture)],
    }
    [image] = chat.images
    assert image.mime == "image/png"
    assert image.data == picture
    assert image._repr_png_() == picture
    assert image.save(tmp_path / "cat.png").read_bytes() == picture
    assert image.save(tmp_path).name == "image.png"
    assert "GeneratedImage('data:image/png;base64," in repr(image)

    # an editing conversation goes on: the image travels back with the assistant message
    router.queue(Text("Now with a hat.", extra_message={"images": [image_part(png(1, 1))]}))
    chat("Give it a hat")
    assert router.chat_requests[-1]["messages"][2]["images"] == [image_part(picture)]
    assert [i.data for i in chat.images] == [picture, png(1, 1)]
    chat.reset_history()
    assert chat.images == []


def test_web_citations_per_model_and_reset(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(
        Text("News [a.org]", extra_message={"annotations": [citation("https://a.org", "A")]}),
        model="openai/gpt-4o-mini:online",
    )
    router.queue(Text("Nothing found."), model="x/y")
    chat = Chat(["openai/gpt-4o-mini:online", "x/y"], plugins=[{"id": "web", "max_results": 2}], **connect)
    chat("What's new?")
    assert chat.web_citations == {
        "openai/gpt-4o-mini:online": [{"url": "https://a.org", "title": "A", "content": "About A"}],
        "x/y": [],
    }
    assert chat.history["x/y"][-1] == {"role": "assistant", "content": "Nothing found."}
    router.queue(
        Text("More [b.org]", extra_message={"annotations": [citation("https://b.org", "B")]}),
        model="openai/gpt-4o-mini:online",
    )
    chat("And more?")
    assert [c["url"] for c in chat.web_citations["openai/gpt-4o-mini:online"]] == ["https://a.org", "https://b.org"]
    chat.reset_history()
    assert chat.web_citations == {"openai/gpt-4o-mini:online": [], "x/y": []}


def test_captured_web_search_sample(router: OpenRouterDouble, connect: dict) -> None:
    body = (SAMPLES / "chat-nonstream-web-search-annotations-2026-08.response.json").read_bytes()
    router.queue(Raw(body))
    chat = Chat("openai/gpt-4.1", **connect)
    chat("Search", tools=[{"type": "openrouter:web_search", "parameters": {"max_uses": 1}}])
    annotations = json.loads(body)["choices"][0]["message"]["annotations"]
    assert chat.web_citations == [
        {k: v for k, v in a["url_citation"].items() if k not in ("start_index", "end_index")} for a in annotations
    ]
    assert chat.web_citations
    assert all("start_index" not in c for c in chat.web_citations)


def test_file_annotations_are_kept_and_sent_back(router: OpenRouterDouble, connect: dict) -> None:
    body = (SAMPLES / "chat-nonstream-pdf-file-annotation.response.json").read_bytes()
    annotations = json.loads(body)["choices"][0]["message"]["annotations"]
    router.queue(Raw(body))
    chat = Chat("anthropic/claude-sonnet-4.5", **connect)
    chat(["Summarise", "https://example.org/dummy.pdf"])
    assert chat.history[-1]["annotations"] == annotations
    assert chat.web_citations == []  # file annotations are not web citations, and do not crash anything
    chat("Thanks")
    assert router.chat_requests[-1]["messages"][2]["annotations"] == annotations  # no re-parsing needed


def test_captured_image_generation_sample(router: OpenRouterDouble, connect: dict) -> None:
    body = (SAMPLES / "chat-nonstream-image-generation.response.truncated.json").read_bytes()
    router.queue(Raw(body))
    chat = Chat(M, **connect)
    text = chat("A cat", modalities=["image", "text"])
    assert text == json.loads(body)["choices"][0]["message"]["content"]
    assert len(chat.images) == 1
    assert chat.images[0].url.startswith("data:image/png;base64,iVBORw0KGgo")


def test_reasoning_is_reachable_and_details_go_back(router: OpenRouterDouble, connect: dict) -> None:
    details = [
        {
            "type": "reasoning.text",
            "text": "Let me think.",
            "signature": "Et0Bxyz",
            "format": "anthropic-claude-v1",
            "index": 0,
        }
    ]

    def lookup(term: str) -> str:
        """Look a term up."""
        return f"{term}: found"

    router.queue(
        Text(
            tool_calls=[ToolCall("lookup", {"term": "venus"}, id="t1")],
            extra_message={"reasoning": "Let me think.", "reasoning_details": details},
        ),
        Text("Venus is hot.", extra_message={"reasoning": "Easy now.", "reasoning_details": []}),
    )
    chat = Chat("anthropic/claude-sonnet-4.5", reasoning={"effort": "high"}, **connect)
    assert chat("Tell me about Venus", tools=[lookup]) == "Venus is hot."
    step = chat.history[2]
    assert step["reasoning_details"] == details  # exactly as returned
    assert step["reasoning"] == "Let me think."
    # the second request carried the reasoning back, as multi-turn tool use with reasoning models requires
    assert router.chat_requests[1]["messages"][2]["reasoning_details"] == details
    assert chat.reasoning == "Easy now."
    assert "reasoning_details" not in chat.history[-1]  # empty details are not kept
    assert router.chat_requests[0]["reasoning"] == {"effort": "high"}


def test_captured_reasoning_sample(router: OpenRouterDouble, connect: dict) -> None:
    body = (SAMPLES / "chat-nonstream-reasoning-anthropic-2026-05.response.json").read_bytes()
    message = json.loads(body)["choices"][0]["message"]
    router.queue(Raw(body))
    chat = Chat("anthropic/claude-sonnet-4.5", **connect)
    chat("Think hard")
    assert chat.reasoning == message["reasoning"]
    assert chat.history[-1]["reasoning_details"] == message["reasoning_details"]


@pytest.mark.parametrize(
    "sample",
    ["chat-nonstream-tool-call-mistral.response.json", "chat-nonstream-model-fallback-provider-only.response.json"],
)
def test_plain_replies_keep_the_two_key_message(router: OpenRouterDouble, connect: dict, sample: str) -> None:
    router.queue(Raw((SAMPLES / sample).read_bytes()))
    chat = Chat("m/m", **connect)
    chat("hi")
    assert set(chat.history[-1]) <= {"role", "content", "tool_calls"}
