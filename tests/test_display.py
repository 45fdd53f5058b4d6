"""Notebook display, checked through IPython's own display formatters (what Jupyter calls to show an object)."""

from __future__ import annotations

import base64

from IPython.core.formatters import DisplayFormatter

from irouter import Chat
from irouter._display import Progress, in_notebook
from irouter.testing import OpenRouterDouble, Text, ToolCall

from .media import png


def shown(obj: object) -> dict[str, object]:
    data, _ = DisplayFormatter().format(obj)
    return data


def get_weather(city: str) -> str:
    """Weather."""
    return "sunny"


def test_one_model_chat_renders_as_markdown(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(
        Text(
            tool_calls=[ToolCall("get_weather", {"city": "Oslo"})],
            usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": 0.001},
        ),
        Text(
            "It is **sunny**.", usage={"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24, "cost": 0.002}
        ),
    )
    chat = Chat("openai/gpt-4o-mini", **connect)
    chat("Weather in Oslo?", tools=[get_weather])
    data = shown(chat)
    assert "text/html" not in data
    markdown = data["text/markdown"]
    assert markdown.startswith("*openai/gpt-4o-mini · 1 turn · 36 tokens · $0.003000*")
    assert "**user:** Weather in Oslo?" in markdown
    assert '> **calls** `get_weather({"city": "Oslo"})`' in markdown
    assert "> **tool result:** sunny" in markdown
    assert markdown.endswith("**assistant:** It is **sunny**.")
    assert data["text/plain"] == repr(chat)


def test_several_models_side_by_side(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]), "A says <sunny>", model="a/a")
    router.queue("B says rain", model="b/b")
    chat = Chat(["a/a", "b/b"], **connect)
    chat("Weather?", tools=[get_weather])
    chat("Thanks")
    data = shown(chat)
    assert "text/markdown" not in data
    page = data["text/html"]
    assert "a/a, b/b · 2 turns" in page
    assert page.count("<tr>") == 3  # a header and one row per user message
    assert "<th style='text-align:left;vertical-align:top;white-space:pre-wrap'>a/a</th>" in page
    assert "A says &lt;sunny&gt;" in page  # escaped
    assert "<details><summary>2 tool steps</summary>" in page  # the call and its result, folded
    assert "B says rain" in page


def test_generated_images_show_inline(router: OpenRouterDouble, connect: dict) -> None:
    picture = png(2, 2)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(picture).decode()}}
    router.queue(Text("A red square.", extra_message={"images": [image]}))
    chat = Chat("google/gemini-2.5-flash-image", **connect)
    chat("draw", modalities=["image", "text"])
    assert shown(chat.images[0])["image/png"] == picture


def test_progress_line() -> None:
    lines: list[tuple[str, bool]] = []
    progress = Progress(["a/a", "b/b"], show=lambda text, update: lines.append((text, update)))
    progress.finished("b/b")
    progress.finished("a/a")
    assert lines[0][0].startswith("⏳ 0/2 answered")
    assert "waiting for a/a" in lines[1][0]
    assert lines[2][0].startswith("✓ 2 models answered in")
    assert [update for _, update in lines] == [False, True, True]


def test_no_progress_outside_notebooks() -> None:
    assert in_notebook() is False  # a script (or a terminal IPython) gets no progress output
