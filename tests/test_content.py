"""Attachments in, over HTTP: images, PDFs, audio and video from paths, URLs, bytes and wrappers."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import irouter
from irouter import PDF, Audio, Call, Chat, Image, Video
from irouter._content import AUDIO_TYPES, KNOWN_EXTENSIONS, to_content
from irouter.testing import OpenRouterDouble

from .media import WEBP, pdf, png, wav

M = "openai/gpt-4o-mini"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    made = {"cat.png": png(), "cat.webp": WEBP, "hello.wav": wav(), "report.pdf": pdf(), "noext": png()}
    for name, data in made.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "photo of me.JPG").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    return {name: tmp_path / name for name in [*made, "photo of me.JPG"]}


class FileServer:
    """A loopback web server for URL attachments; records the headers it was sent."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, float]] = {}
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path not in outer.files:
                    self.send_error(404)
                    return
                data, delay = outer.files[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                time.sleep(delay)
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def web() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def sent_parts(router: OpenRouterDouble) -> list[dict[str, Any]]:
    content = router.chat_requests[-1]["messages"][-1]["content"]
    assert isinstance(content, list)
    return content


def test_local_files_become_the_right_parts(router: OpenRouterDouble, connect: dict, files: dict) -> None:
    chat = Chat(M, **connect)
    chat(
        [
            "What is in these?",
            str(files["cat.png"]),
            files["cat.webp"],
            str(files["report.pdf"]),
            str(files["hello.wav"]),
            str(files["photo of me.JPG"]),
        ]
    )
    parts = sent_parts(router)
    assert parts == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png())}},
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64," + b64(WEBP)}},
        {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64," + b64(pdf())}},
        {"type": "input_audio", "input_audio": {"data": b64(wav()), "format": "wav"}},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/jpeg;base64," + b64(files["photo of me.JPG"].read_bytes())},
        },
    ]
    assert chat.history[1] == {"role": "user", "content": parts}  # history keeps the parts as sent
    chat("And now?")
    assert router.chat_requests[-1]["messages"][1]["content"] == parts  # resent on the next turn


def test_urls_data_urls_bytes_and_dicts(router: OpenRouterDouble, connect: dict) -> None:
    ready = {"type": "image_url", "image_url": {"url": "https://x.org/a", "detail": "low"}}
    data_url = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
    Call(M, **connect)(
        [
            "https://upload.example.org/Cat.PNG?size=large",
            "https://example.org/paper.pdf",
            "https://example.org/clip.mp4",
            "https://example.org/page",
            data_url,
            png(),
            pdf(),
            ready,
        ]
    )
    assert sent_parts(router) == [
        {"type": "image_url", "image_url": {"url": "https://upload.example.org/Cat.PNG?size=large"}},
        {"type": "file", "file": {"filename": "paper.pdf", "file_data": "https://example.org/paper.pdf"}},
        {"type": "video_url", "video_url": {"url": "https://example.org/clip.mp4"}},
        {"type": "text", "text": "https://example.org/page"},
        {"type": "image_url", "image_url": {"url": data_url}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png())}},
        {
            "type": "file",
            "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64," + b64(pdf())},
        },
        ready,
    ]


def test_wrappers_say_what_guessing_cannot(router: OpenRouterDouble, connect: dict, files: dict) -> None:
    Call(M, **connect)(
        [
            Image("https://example.org/render?id=7", detail="high"),
            Image(files["noext"]),
            PDF("https://example.org/download?id=9", filename="contract.pdf"),
            PDF(pdf(), filename="mine.pdf"),
            Video("https://youtu.be/abc"),
            Audio(wav(), format="wav"),
            {"type": "text", "text": "report.pdf"},
        ]
    )
    assert sent_parts(router) == [
        {"type": "image_url", "image_url": {"url": "https://example.org/render?id=7", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png())}},
        {"type": "file", "file": {"filename": "contract.pdf", "file_data": "https://example.org/download?id=9"}},
        {"type": "file", "file": {"filename": "mine.pdf", "file_data": "data:application/pdf;base64," + b64(pdf())}},
        {"type": "video_url", "video_url": {"url": "https://youtu.be/abc"}},
        {"type": "input_audio", "input_audio": {"data": b64(wav()), "format": "wav"}},
        {"type": "text", "text": "report.pdf"},
    ]


def test_a_single_path_string_or_attachment_is_a_message(router: OpenRouterDouble, connect: dict, files: dict) -> None:
    chat = Chat(M, **connect)
    chat(str(files["cat.png"]))
    assert sent_parts(router)[0]["type"] == "image_url"
    chat(Image(png()))
    assert sent_parts(router) == [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png())}}]
    chat("Summarise report.pdf please")
    assert router.chat_requests[-1]["messages"][-1]["content"] == "Summarise report.pdf please"


def test_audio_urls_are_downloaded_without_the_key(router: OpenRouterDouble, connect: dict, web: FileServer) -> None:
    web.files["/sounds/hello.mp3"] = (b"ID3" + b"\x00" * 100, 0)
    web.files["/sounds/stream"] = (wav(), 0)
    Call(M, **connect)(["Transcribe", web.url("/sounds/hello.mp3"), Audio(web.url("/sounds/stream"))])
    parts = sent_parts(router)
    assert parts[1] == {"type": "input_audio", "input_audio": {"data": b64(b"ID3" + b"\x00" * 100), "format": "mp3"}}
    assert parts[2] == {"type": "input_audio", "input_audio": {"data": b64(wav()), "format": "wav"}}
    for headers in web.headers:
        assert "authorization" not in headers
        assert router.api_key not in str(headers)
        assert "x-title" not in headers


def test_audio_download_limits(router: OpenRouterDouble, connect: dict, web: FileServer) -> None:
    web.files["/big.wav"] = (wav(seconds=1), 0)
    web.files["/slow.wav"] = (wav(), 2.0)
    ask = Call(M, **connect)
    with pytest.raises(irouter.AttachmentError, match=r"the limit is 1,000"):
        ask([Audio(web.url("/big.wav"), max_bytes=1000)])
    with pytest.raises(irouter.AttachmentError, match=r"longer than 0\.3 s"):
        ask([Audio(web.url("/slow.wav"), timeout=0.3)])
    with pytest.raises(irouter.AttachmentError, match="HTTP 404"):
        ask([web.url("/missing.mp3")])
    with pytest.raises(irouter.AttachmentError, match="Only http"):
        ask([Audio("ftp://example.org/a.wav")])
    assert router.requests == []  # nothing was sent to the model


def test_mistakes_raise_before_any_request(router: OpenRouterDouble, connect: dict, tmp_path: Path) -> None:
    chat = Chat(M, **connect)
    with pytest.raises(FileNotFoundError, match=r"holiday\.png"):
        chat(["Look at", "holiday.png"])
    with pytest.raises(FileNotFoundError, match=r"missing\.pdf"):
        chat(str(tmp_path / "missing.pdf"))
    with pytest.raises(irouter.AttachmentError, match="cannot tell what kind"):
        chat([b"just some bytes"])
    (tmp_path / "notes.xyz").write_text("hello")
    with pytest.raises(irouter.AttachmentError, match="not a file type irouter knows"):
        chat([tmp_path / "notes.xyz"])
    with pytest.raises(TypeError, match="message\\[0\\]"):
        chat([3.5])
    assert router.requests == []
    assert len(chat.history) == 1


def test_fan_out_encodes_each_file_once(router: OpenRouterDouble, connect: dict, files: dict) -> None:
    """Every model's history holds the same parts object: memory follows the file, not files x models."""
    chat = Chat(["a/a", "b/b", "c/c"], **connect)
    chat(["see", str(files["cat.png"])])
    contents = [chat.history[m][1]["content"] for m in ("a/a", "b/b", "c/c")]
    assert contents[0] is contents[1] is contents[2]
    assert all(r["messages"][1]["content"] == contents[0] for r in router.chat_requests)


# --------------------------------------------------------------------------------------------- properties

words = st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=12)


@given(st.lists(words, min_size=2, max_size=6), st.sampled_from(sorted(KNOWN_EXTENSIONS)))
def test_sentences_mentioning_files_are_text(parts: list[str], ext: str) -> None:
    sentence = " ".join([*parts[:-1], parts[-1] + ext])
    assert to_content(sentence) == sentence
    assert to_content([sentence]) == [{"type": "text", "text": sentence}]


@given(words, st.sampled_from(sorted(KNOWN_EXTENSIONS)))
def test_a_lone_missing_file_name_raises(stem: str, ext: str) -> None:
    with pytest.raises(FileNotFoundError, match="No such file"):
        to_content([f"{stem}{ext}"])


@given(words, st.sampled_from([".txt", ".py", ".md", ".html", ".csv", "", ".0", ".docx"]))
def test_tokens_without_a_known_extension_are_text(stem: str, ext: str) -> None:
    token = f"{stem}{ext}"
    if os.path.exists(token):
        return
    assert to_content(token) == token


@given(words, st.sampled_from(sorted(KNOWN_EXTENSIONS - set(AUDIO_TYPES))), st.booleans())
def test_urls_are_typed_by_extension(stem: str, ext: str, upper: bool) -> None:
    url = f"https://example.org/files/{stem}{ext.upper() if upper else ext}?v=1"
    part = to_content([url])[0]
    expected = {
        ".png": "image_url",
        ".jpg": "image_url",
        ".jpeg": "image_url",
        ".webp": "image_url",
        ".gif": "image_url",
        ".pdf": "file",
        ".mp4": "video_url",
        ".webm": "video_url",
        ".mov": "video_url",
        ".mpeg": "video_url",
        ".mpg": "video_url",
    }
    assert part["type"] == expected[ext]
    assert url in str(part)


@given(st.binary(min_size=0, max_size=64))
def test_unknown_bytes_never_pass_silently(data: bytes) -> None:
    from irouter._content import sniff

    if sniff(data) is None:
        with pytest.raises(irouter.AttachmentError):
            to_content([data])
    else:
        part = to_content([data])[0]
        assert part["type"] in {"image_url", "file", "input_audio", "video_url"}


# --------------------------------------------------------------------------------------------- big files


@pytest.fixture
def remote_router() -> Iterator[tuple[str, str]]:
    """The double in its own process, so this process's memory holds only the client's allocations."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "irouter.testing", "--latency", "0.3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip().split("=", 1)[1]
        key = proc.stdout.readline().strip().split("=", 1)[1]
        yield base, key
    finally:
        proc.terminate()
        proc.wait(10)


def test_big_attachment_memory_follows_the_file_not_the_models(remote_router: tuple[str, str]) -> None:
    """16 models at once, a 3 MB image: the client holds the file's encoding once, not once per request."""
    import tracemalloc

    base, key = remote_router
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(3 * 1024 * 1024)
    encoded = len(b64(data))
    chat = Chat([f"m/{i}" for i in range(16)], base_url=base, api_key=key)
    chat("warm up the connections")
    tracemalloc.start()
    try:
        answers = chat(["What is this?", data])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert set(answers.values()) == {"You said: What is this?"}
    # the base64 text, its data URL, one shared JSON encoding and temporaries: 4-5x (a little more under coverage);
    # one private encoding per request would add 16x
    assert peak < 7 * encoded, f"peak {peak:,} bytes for an attachment of {encoded:,} base64 characters"


def test_shared_encoding_sends_exact_json(router: OpenRouterDouble, connect: dict) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 1024
    text = 'quotes " and \\ and unicode \u00e9\u2615'
    chat = Chat(["a/a", "b/b"], **connect)
    chat([text, data, {"type": "text", "text": "x" * 70000}])
    chat("second turn resends the parts")
    expected = [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(data)}},
        {"type": "text", "text": "x" * 70000},
    ]
    assert len(router.chat_requests) == 4
    for body in router.chat_requests:
        assert body["messages"][1] == {"role": "user", "content": expected}
    for request in router.requests:
        assert int(request.headers["content-length"]) == len(request.body)
