"""irouter's exceptions: one root, one class per thing a caller may want to catch.

The tree::

    IrouterError
    ├── MissingAPIKeyError          no key given and none in OPENROUTER_API_KEY (also a ValueError)
    ├── MultiModelError             some models of a fan-out failed; carries .answers and .errors
    ├── StructuredOutputError       the reply does not validate against response_format (also a ValueError)
    ├── AttachmentError             an attachment cannot be used: unknown type, download failed or too big
    ├── BudgetExceeded              the request might pass the chat's max_cost or max_total_tokens; not sent
    ├── UnknownModelError           the catalog has no such model (also a ValueError); suggests close slugs
    ├── CapabilityError             the model cannot take what was sent (tools, images...) (also a ValueError)
    ├── LocalModelError             a local/ model cannot run: the extra is missing, or llama.cpp failed/died
    ├── BatchRefusedError           cells of a deferred grid the Batch API refuses; nothing submitted (ValueError)
    └── APIError                    anything the server (or the way to it) did wrong
        ├── APIConnectionError      could not reach the server / connection dropped
        │   └── APITimeoutError     the server took longer than `timeout`
        ├── APIResponseError        the server answered with something that is not a valid completion
        └── APIStatusError          the server answered with an error (HTTP status, or an error inside a 200 body)
            ├── BadRequestError         400  invalid request, unknown model, provider rejected input
            │   └── ContextWindowError      the conversation does not fit the model's context window
            ├── AuthenticationError     401  missing, invalid or disabled key
            ├── PaymentRequiredError    402  out of credits
            ├── PermissionDeniedError   403  moderation flag, guardrail, key limit
            ├── NotFoundError           404  no endpoint serves this model / these features
            ├── RequestTimeoutError     408  OpenRouter timed out
            ├── RateLimitError          429  rate limited, or 402 too many requests in flight (.retry_after)
            └── ServerError             5xx  provider down, overloaded, internal error

Every `APIStatusError` carries the HTTP ``status`` (also as ``status_code``, the openai SDK's name) and the response
``headers``, OpenRouter's ``code`` (the ``error.code`` in the body, which differs from ``status`` when the error came
inside an HTTP 200 body), its ``message`` and ``metadata``, the ``model`` asked for and the ``generation_id`` when
there was one. None of them ever holds the API key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AttachmentError",
    "AuthenticationError",
    "BadRequestError",
    "BatchRefusedError",
    "BudgetExceeded",
    "CapabilityError",
    "ContextWindowError",
    "IrouterError",
    "LocalModelError",
    "MissingAPIKeyError",
    "MultiModelError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerError",
    "StructuredOutputError",
    "UnknownModelError",
]


class IrouterError(Exception):
    """The root of every exception irouter raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled as its arguments and attributes: the subclasses' keyword-only arguments (status=, model=...)
        # would otherwise be missing when a pickle (a saved Review's failed verdicts, a grid's errors) is loaded
        return (_rebuilt, (type(self), self.args, dict(self.__dict__)))


def _rebuilt(kind: type[IrouterError], args: tuple[Any, ...], state: dict[str, Any]) -> IrouterError:
    error = kind.__new__(kind)
    error.args = args
    error.__dict__.update(state)
    return error


class MissingAPIKeyError(IrouterError, ValueError):
    """No API key: neither ``api_key=`` nor the ``OPENROUTER_API_KEY`` environment variable."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "No OpenRouter API key found. Set the OPENROUTER_API_KEY environment variable "
            "(for example in a .env file loaded with python-dotenv's load_dotenv()) or pass "
            "api_key=... to Chat/Call."
        )


class AttachmentError(IrouterError, ValueError):
    """An attachment cannot be sent: its type is unknown, or downloading it failed, took too long or was too big."""


class BudgetExceeded(IrouterError):
    """A budget of the chat is used up, so the request was not sent.

    ``kind`` is ``"cost"`` (dollars, ``max_cost``) or ``"tokens"`` (``max_total_tokens``); ``spent`` and ``limit``
    are in that unit; ``model`` is the slug whose request was stopped; ``needed`` is the worst case that request
    would have reserved (0 when the budget was already used up). ``messages`` holds what the interrupted turn had
    produced (the user message, tool steps included); it was not added to history.
    """

    def __init__(self, message: str, *, spent: float, limit: float, kind: str, model: str, needed: float = 0.0) -> None:
        super().__init__(message)
        self.spent, self.limit, self.kind, self.model, self.needed = spent, limit, kind, model, needed
        self.messages: list[dict[str, Any]] = []


class UnknownModelError(IrouterError, ValueError):
    """The endpoint's model catalog has no such slug. ``suggestions`` lists the closest ones."""

    def __init__(self, message: str, *, model: str, suggestions: list[str]) -> None:
        super().__init__(message)
        self.model, self.suggestions = model, suggestions


class CapabilityError(IrouterError, ValueError):
    """The catalog says the model cannot take what this request sends (``capability``: ``"tools"``,
    ``"structured output"``, ``"image input"``, ``"audio input"``, ``"video input"``)."""

    def __init__(self, message: str, *, model: str, capability: str) -> None:
        super().__init__(message)
        self.model, self.capability = model, capability


class LocalModelError(IrouterError):
    """A ``local/`` model cannot run: the ``local`` extra is not installed (the message gives the command), the
    name is unknown, or llama.cpp's server failed to start or died (exited, was killed by a signal, stopped
    listening). For a server, the first line says how it ended and, for a crash such as SIGILL, the command that
    rebuilds llama-cpp-python portably; the end of its log follows. Never retried."""


class StructuredOutputError(IrouterError, ValueError):
    """The model's reply is not valid JSON for the requested ``response_format`` type, or does not fit it.

    ``text`` holds the raw reply, ``target`` the type asked for, ``model`` the slug.
    """

    def __init__(self, message: str, *, text: str, target: Any = None, model: str | None = None) -> None:
        super().__init__(f"{message} (model: {model})" if model else message)
        self.text = text
        self.target = target
        self.model = model


class APIError(IrouterError):
    """Something went wrong talking to the server. ``model`` is the slug the request was for."""

    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.model = model

    def __str__(self) -> str:
        return f"{self.message} (model: {self.model})" if self.model else self.message


class APIConnectionError(APIError):
    """The server could not be reached, or the connection broke before the answer was complete."""


class APITimeoutError(APIConnectionError):
    """The request took longer than the configured ``timeout``."""


class APIResponseError(APIError):
    """The server answered 2xx, but not with something irouter can read as a completion."""

    def __init__(self, message: str, *, model: str | None = None, body: str = "") -> None:
        super().__init__(message, model=model)
        self.body = body


class APIStatusError(APIError):
    """The server answered with an error object.

    Attributes:
        status: the HTTP status code of the response (200 when the error came inside a 200 body).
        code: OpenRouter's ``error.code`` (normally equal to ``status``; the real cause for errors in a 200 body).
        message: OpenRouter's ``error.message``.
        metadata: OpenRouter's ``error.metadata`` (``provider_name``, ``raw``, ``reasons``...), ``{}`` if none.
        generation_id: the ``gen-...`` id when the error arrived inside a completion.
        status_code: the same as ``status`` (the name the openai SDK and httpx use).
        retry_after: seconds the server asked to wait (``Retry-After``), if it said.
        headers: the error response's headers, names in lower case (``exc.headers.get("x-ratelimit-remaining")``);
            ``{}`` when the error came inside a successful response or stream.
        body: the parsed error body.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | str | None = None,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
        generation_id: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, model=model)
        self.status = status
        self.code = status if code is None else code
        self.metadata: dict[str, Any] = metadata or {}
        self.generation_id = generation_id
        self.retry_after = retry_after
        self.body = body
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}

    @property
    def status_code(self) -> int:
        """``status`` under the openai SDK's and httpx's name."""
        return self.status

    def __str__(self) -> str:
        parts = [f"{self.code}: {self.message}"]
        provider = self.metadata.get("provider_name")
        raw = self.metadata.get("raw")
        if provider:
            parts.append(f"provider {provider}")
        if self.model:
            parts.append(f"model {self.model}")
        text = parts[0] + (f" ({', '.join(parts[1:])})" if parts[1:] else "")
        if raw:
            text += f"\nprovider said: {str(raw)[:500]}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class BadRequestError(APIStatusError):
    """400: the request is invalid (bad parameter, unknown model id, or the provider rejected the input)."""


class ContextWindowError(BadRequestError):
    """The request does not fit the model's context window: its prompt (plus the ``max_tokens`` it asks for) is
    longer than the model takes.

    Raised before sending (``sent`` is ``False``: irouter's estimate, `Chat.count_tokens`, against the catalog's
    ``context_length``) or from the provider's 400 ("This endpoint's maximum context length is N tokens. However,
    you requested about M tokens ...", ``sent`` is ``True``). ``model`` is the slug, ``estimate`` the tokens the
    request needs (irouter's estimate, or the provider's M), ``limit`` the window (N); either is ``None`` when
    unknown. A chat's ``on_overflow="drop_oldest"`` or ``"summarize"`` makes room instead, and ``fallbacks=`` try
    a model with a larger window.
    """

    def __init__(
        self, message: str, *, estimate: int | None, limit: int | None, sent: bool = False, **details: Any
    ) -> None:
        details.setdefault("status", 400)
        super().__init__(message, **details)
        self.estimate, self.limit, self.sent = estimate, limit, sent


class AuthenticationError(APIStatusError):
    """401: the key is missing, invalid or disabled."""


class PaymentRequiredError(APIStatusError):
    """402: not enough credits for this request (add credits, or lower max_tokens)."""


class PermissionDeniedError(APIStatusError):
    """403: moderation flagged the input, a guardrail blocked it, or the key may not do this."""


class NotFoundError(APIStatusError):
    """404: no endpoint serves this model, or none supports the requested features."""


class RequestTimeoutError(APIStatusError):
    """408: OpenRouter gave up waiting for the provider."""


class RateLimitError(APIStatusError):
    """429: rate limited, by OpenRouter (free tier) or by the provider upstream. Also OpenRouter's transient 402
    (``metadata["reason"] == "in_flight_budget_exhausted"``: too many paid requests in flight), and any retryable
    error whose ``Retry-After`` is longer than ``max_retry_wait``. ``retry_after`` says how long to wait."""


class ServerError(APIStatusError):
    """5xx: the provider is down or overloaded, or OpenRouter failed internally."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    429: RateLimitError,
}


def status_error_class(code: int | str | None) -> type[APIStatusError]:
    """The exception class for an HTTP status or OpenRouter error code (int or numeric string)."""
    try:
        number = int(code)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return APIStatusError
    if number in _STATUS_CLASSES:
        return _STATUS_CLASSES[number]
    return ServerError if number >= 500 else APIStatusError


class MultiModelError(IrouterError):
    """Some models of a multi-model call failed.

    Nothing that succeeded is lost: ``answers`` maps each successful slug to its return value (and those models'
    histories were updated), ``errors`` maps each failed slug to its exception (those histories are unchanged).
    """

    def __init__(self, answers: Mapping[str, Any], errors: Mapping[str, BaseException]) -> None:
        self.answers = dict(answers)
        self.errors = dict(errors)
        failed = ", ".join(f"{slug}: {type(e).__name__}: {e}" for slug, e in errors.items())
        super().__init__(
            f"{len(errors)} of {len(errors) + len(answers)} models failed ({failed}). "
            "The successful answers are in .answers, the errors in .errors."
        )


class StoreWarning(UserWarning):  # a warning, not an error: outside the tree and `__all__` (see irouter.__all__)
    """The conversation log or the response cache could not use its SQLite file (locked, full, corrupt): the chat
    went on without it. Said once per file and process (``warnings.simplefilter("error", StoreWarning)`` makes it
    an error)."""


class BatchRefusedError(IrouterError, ValueError):
    """Cells of a deferred grid that the Batch API would refuse (raised before anything is submitted).

    ``cells`` lists ``(prompt_id, model, reason)``. Run them the normal way with ``deferred="mixed"`` (the other
    cells still go through the Batch API), or drop them from the prompts."""

    def __init__(self, cells: list[tuple[Any, str, str]]) -> None:
        self.cells = cells
        shown = "; ".join(f"prompt {p!r} to {m}: {why}" for p, m, why in cells[:10])
        more = f" (and {len(cells) - 10} more)" if len(cells) > 10 else ""
        super().__init__(
            f"The Batch API refuses {len(cells)} cell(s) of this grid: {shown}{more}. Nothing was submitted. Pass "
            "deferred='mixed' to send these the normal way (full price) and the rest as batches, or leave them out."
        )
