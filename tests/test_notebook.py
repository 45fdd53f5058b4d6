"""A real notebook, executed in a real Jupyter kernel (nbclient + ipykernel): what a notebook user sees."""

from __future__ import annotations

import json

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

CELLS = [
    "from irouter import Chat\nfrom irouter.testing import OpenRouterDouble, Text, ToolCall\n"
    "router = OpenRouterDouble().start()",
    "def get_weather(city: str) -> str:\n    '''Weather.'''\n    return 'sunny'\n"
    "router.queue(Text(tool_calls=[ToolCall('get_weather', {'city': 'Oslo'})]), 'It is **sunny**.')\n"
    "chat = Chat('openai/gpt-4o-mini', base_url=router.base_url, api_key=router.api_key)\n"
    "chat('Weather in Oslo?', tools=[get_weather])",
    "chat",
    "duo = Chat(['a/a', 'b/b'], base_url=router.base_url, api_key=router.api_key)\nduo('Hello')",
    "duo",
    "router.stop()",
]


def test_a_notebook_shows_chats_and_progress(tmp_path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    client = nbclient.NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [cell.outputs for cell in notebook.cells]

    # a reply is the seed's plain string
    assert outputs[1][0]["data"]["text/plain"] == "'It is **sunny**.'"
    # one model: the conversation as Markdown, tool steps marked
    markdown = outputs[2][0]["data"]["text/markdown"]
    assert markdown.startswith("*openai/gpt-4o-mini · 1 turn ·")
    assert '> **calls** `get_weather({"city": "Oslo"})`' in markdown
    assert markdown.endswith("**assistant:** It is **sunny**.")
    # several models: a progress line while they work (updated in place), then their answers side by side
    progress = [o for o in outputs[3] if o.get("output_type") in ("display_data", "update_display_data")]
    assert progress, json.dumps(outputs[3])[:500]
    final = progress[-1]["data"]["text/plain"]
    assert final.startswith("✓ 2 models answered in")
    assert "text/html" in outputs[4][0]["data"]
    page = outputs[4][0]["data"]["text/html"]
    assert "<th style='text-align:left;vertical-align:top;white-space:pre-wrap'>a/a</th>" in page
    assert "You said: Hello" in page
    assert not any(o.get("output_type") == "error" for cell in outputs for o in cell)


def test_a_report_shows_inline_in_a_notebook(tmp_path) -> None:
    cells = [
        "from irouter import Chat\nfrom irouter.testing import OpenRouterDouble\nrouter = OpenRouterDouble().start()\n"
        "chat = Chat(['x/m@deepinfra', 'x/m@together'], base_url=router.base_url, api_key=router.api_key)\n"
        "chat('Hello <world>')\nrouter.stop()",
        "chat.report()",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    (shown,) = [o for o in notebook.cells[1].outputs if o.get("output_type") == "execute_result"]
    page = shown["data"]["text/html"]
    assert page.startswith("<div class='irouter-report'>")
    assert page.count("<g class='point'") == 2
    assert "You said: Hello &lt;world&gt;" in page
    assert shown["data"]["text/plain"] == "Report('2 models compared', models=['x/m@deepinfra', 'x/m@together'])"
