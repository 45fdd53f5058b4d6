"""What `Chat` and `Call` share: checking model slugs, the endpoint, defaults, and sending one request."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from . import _fallbacks as fallbacks
from . import _options as opts
from . import _retry as retry
from ._caching import check_ttl, rule_for
from ._cancel import Cancelled, CancelSignal, outlive_cancel
from ._capabilities import check as check_capabilities
from ._capabilities import check_spaces, needs
from ._compat import ORDER_HINT
from ._context import check_policy
from ._drivers import Recorder, StreamedTurn, ToolRunner, run_async, run_sync, stream_async, stream_sync
from ._engine import Engine, Send, TurnResult, TurnSpec, chat_turn, merge_options
from ._fallbacks import Fallbacks, check_fallbacks, check_reject
from ._ledger import Meter, Quote, answering, dearest
from ._routing import parse_slug
from ._streams import Emit
from ._structured import output_type, parser_for, response_format_for
from ._transport import Endpoint, arelease_pools, is_openrouter, release_pools, resolve_base_url
from ._wire import Reply, parse_completion
from .catalog import RECHECK_AFTER, cached_catalog, cached_records, find, list_models
from .endpoints import Route, json_object_format, route
from .errors import APIError, UnknownModelError
from .tools import AfterTool, BeforeTool, Toolbox, tool_servers

_Self = TypeVar("_Self")
CHAT_PATH = "chat/completions"
Start = dict[str, Any] | list[dict[str, Any]]
"""What starts a turn: the user message, or the tool messages answering pending calls."""
DEFAULT_MAX_STEPS = 100


def streaming_body(body: dict[str, Any]) -> dict[str, Any]:
    """The body with ``stream: true``, asking for usage in the stream (OpenRouter always sends it; llama.cpp,
    vLLM and others only when asked)."""
    return {**body, "stream": True, "stream_options": body.get("stream_options") or {"include_usage": True}}


def check_models(model: Any) -> list[str]:
    """``model`` as a list of slugs; raises ``TypeError``/``ValueError`` for anything that is not one."""
    models = [model] if isinstance(model, str) else model
    if not isinstance(models, (list, tuple)) or not models:
        raise TypeError(
            f"model must be a model slug such as 'openai/gpt-4o-mini' or a non-empty list of slugs, got {model!r}"
        )
    for slug in models:
        if not isinstance(slug, str) or not slug.strip() or slug != slug.strip():
            raise ValueError(f"Each model must be a non-empty slug without spaces around it, got {slug!r}")
    duplicates = sorted({s for s in models if models.count(s) > 1})
    if duplicates:
        raise ValueError(f"Each model may appear once; repeated: {', '.join(duplicates)}")
    for slug in models:
        parse_slug(slug)  # a provider suffix ("x/y@deepinfra:fp8") must be well formed
    return list(models)


def check_options(options: Mapping[str, Any], place: str, spelling: bool = True) -> None:
    """Reject keyword arguments that cannot be request options at ``place`` (see `_options`), before any
    request. ``spelling`` checks names against OpenRouter's fields (off for other servers, whose own parameters
    may look like typos of them)."""
    opts.check(options, place, spelling)
    for key in ("extra_body", "extra_headers"):
        value = options.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{key} must be a dict, got {type(value).__name__}")
    timeout = options.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")


@dataclass
class Plan:
    """A call's keyword arguments sorted out: request fields, transport settings, tools, output type."""

    body: dict[str, Any]
    extra_headers: Mapping[str, str] | None = None
    timeout: float | None = None
    toolbox: Toolbox | None = None
    max_steps: int = DEFAULT_MAX_STEPS
    before_tool: BeforeTool | None = None
    after_tool: AfterTool | None = None
    output_type: Any = None
    """What a typed ``response_format`` asks the reply to become (a class, ``list[City]``...)."""
    max_retries: int = retry.DEFAULT_MAX_RETRIES
    max_retry_wait: float = retry.DEFAULT_MAX_RETRY_WAIT
    check: bool | None = None
    """Capability checks: ``None`` (auto: with OpenRouter's catalog, or any catalog already at hand), on, off."""
    cancel: CancelSignal = field(default_factory=CancelSignal)
    """The call's one cancel signal, shared by every model's driver (a `Plan` is made per call)."""
    turn_options: dict[str, Any] | None = None
    """`Chat.answer_tool_calls`: the keyword arguments the turn goes on with, kept once it has gone on."""
    on_retry: Callable[[Exception, float], None] | None = None
    """Told of every retry (the failure and the wait): a grid slows down on rate limits."""
    response_cache: Any = None
    """The response cache (`irouter._log.ResponseCache`) when ``cache_responses`` is on, else ``None``."""
    cache: bool = False
    """Place prompt-cache breakpoints (``cache=True``, see `_caching`)."""
    cache_ttl: str | None = None
    on_overflow: str | None = None
    """What a chat does when a turn would not fit the context window (`_context`): ``None`` raises."""
    summarize_with: str | None = None
    fallbacks: Fallbacks = field(default_factory=Fallbacks)

    def tools(self) -> ToolRunner:
        return ToolRunner(self.toolbox, self.before_tool, self.after_tool, self.cancel)

    def policy(self) -> retry.RetryPolicy:
        """How this call's requests are retried."""
        return retry.RetryPolicy(self.max_retries, self.max_retry_wait, self.on_retry)

    def spec(self, model: str) -> TurnSpec:
        output = parser_for(self.output_type, model) if self.output_type is not None else None
        return TurnSpec(self.body, self.toolbox, self.max_steps, output)


def check_http_client(client: Any, asynchronous: bool) -> Any:
    """``client`` if it is an ``httpx2.Client`` (``httpx2.AsyncClient`` for the async classes), or ``None``."""
    if client is None:
        return None
    import httpx2  # the user made the client, so httpx2 is already imported

    wanted = httpx2.AsyncClient if asynchronous else httpx2.Client
    if not isinstance(client, wanted):
        raise TypeError(
            f"http_client must be an httpx2.{wanted.__name__}, got {type(client).__module__}.{type(client).__name__}"
        )
    return client


class AsyncClosing:
    """``async with`` and `aclose` for `AsyncChat` and `AsyncCall`."""

    _asynchronous = True

    async def aclose(self) -> None:
        """`close`, awaited: also closes the running event loop's idle pooled connections. A client given as
        ``http_client=`` is never closed by irouter."""
        await arelease_pools()
        for server in tool_servers(getattr(self, "defaults", {}).get("tools")):
            await server.aclose()

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def check_max_steps(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_steps must be a whole number of at least 1, got {value!r}")
    return value


def check_cache_setting(value: Any) -> bool | str:
    """``cache_responses``: ``True``, ``False``/``None`` or ``"always"`` (see `irouter._log.ResponseCache`)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if value == "always":
        return "always"
    raise ValueError(f"cache_responses must be True, False or 'always', got {value!r}")


def check_cache_ttl(value: Any) -> float | None:
    """``cache_responses_ttl``: seconds a cached answer stays usable (``None``: forever)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"cache_responses_ttl must be a positive number of seconds (or None: forever), got {value!r}")
    return float(value)


def env_switch(name: str) -> bool:
    """An environment switch such as ``IROUTER_CACHE=1`` (also ``true``, ``yes``, ``on``)."""
    import os

    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def check_hook(name: str, value: Any, awaits: bool = False) -> Any:
    """A ``before_tool``/``after_tool`` hook; an ``async def`` one only where it will be awaited (``awaits``)."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a function (or None), got {type(value).__name__}")
    if not awaits and is_async_callable(value):
        raise TypeError(
            f"{name} is an async function, which a Chat or Call cannot await (the tool would run unchecked): "
            f"use a plain def, or an AsyncChat/AsyncCall, which awaits it"
        )
    return value


def is_async_callable(value: Any) -> bool:
    """An ``async def`` function (or an object whose ``__call__`` is one, or a partial of one)."""
    import inspect

    return inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(type(value).__call__)


class ModelClient:
    """Base of `Chat` and `Call`: one or several models behind one endpoint.

    Pickles (and ``copy.deepcopy``) keep everything but the API key (see `Endpoint`) and the locks, which are made
    anew; an object given ``http_client=`` cannot be pickled (a client holds open connections).
    """

    _asynchronous = False
    """``True`` for `AsyncChat`/`AsyncCall`: they send through an ``httpx2.AsyncClient``."""

    _place_new = opts.NEW_CHAT
    """Where the constructor's options are given (`_options` places): checked against the option table."""
    _awaits = False
    """Turns are driven on an event loop (`AsyncChat`, `AsyncCall`): async hooks are awaited."""

    def __init__(
        self,
        model: str | list[str] | tuple[str, ...],
        api_key: str | None,
        base_url: str | None,
        defaults: dict[str, Any],
        http_client: Any = None,
    ) -> None:
        self._models = check_models(model)
        try:
            self._base_url = resolve_base_url(base_url)
        except ValueError as exc:
            if base_url is None:
                raise
            raise ValueError(f"{exc}. {ORDER_HINT}") from None
        check_spaces(self._models, self._base_url)
        self._http_client = check_http_client(http_client, self._asynchronous)
        self._routes = {m: self._with_client(route(m, None)) for m in self._models}
        self._route_fallbacks(check_fallbacks(defaults.get("fallbacks")))
        for model, found in self._routes.items():
            if found is not None and "@" in model:
                raise ValueError(
                    f"{model!r}: a provider after '@' picks one of OpenRouter's providers, but this slug goes to "
                    "another endpoint (a registered prefix or local/); drop the '@...' suffix"
                )
        main = any(r is None for r in self._routes.values())  # no OpenRouter key needed for local models only
        self._endpoint: Any = Endpoint(base_url, api_key, client=self._http_client) if main else None
        self._quotes: dict[str, Quote] = {}
        """The catalog's word on each model, as last seen: a budget stays a cap where no catalog is at hand (a
        pickled chat in a worker process or on another machine)."""
        self._openrouter = bool(
            self._endpoint is not None and self._endpoint.attribution and all(r is None for r in self._routes.values())
        )
        """Every model goes to OpenRouter (or OPENROUTER_BASE_URL): option names are checked against its fields."""
        self._plan(defaults, self._place_new)  # raises now, not at the first call, for a bad default
        self.defaults: dict[str, Any] = defaults
        """Options used by every request (``temperature``, ``provider``, ``tools``...); per-call arguments win."""

    def _route_fallbacks(self, models: Sequence[str]) -> None:
        """Fallbacks go where their slugs say, like the models (a registered prefix, ``local/``, else the default
        endpoint). A chat whose models are all elsewhere gets its default endpoint for a per-call fallback then
        (its key from the environment)."""
        new = {m: self._with_client(route(m, None)) for m in models if m not in self._routes}
        if new:  # a new dict: a turn running in another thread may be reading the routes
            self._routes = {**self._routes, **new}
        if getattr(self, "_endpoint", False) is None and any(self._routes[m] is None for m in models):
            self._endpoint = Endpoint(self._base_url, None, client=self._http_client)

    def _with_client(self, found: Route | None) -> Route | None:
        """A registered endpoint's route sends through the user's client too (``local/`` models do not: their
        server is on this machine)."""
        if found is not None and isinstance(found.endpoint, Endpoint):
            found.endpoint.client = self._http_client
        return found

    # ------------------------------------------------------------------------------------------ key, pickles, close
    @property
    def api_key(self) -> str | None:
        """Write-only: ``chat.api_key = "..."`` gives the key to use from now on (say, after unpickling). Reading it
        raises: irouter never hands a key back."""
        raise AttributeError("api_key can be set but not read: irouter never hands the key back")

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        if self._endpoint is None:
            raise ValueError(f"{self._models} are all served by other endpoints, which take no api_key here")
        self._endpoint.set_key(value)

    def _state(self) -> dict[str, Any]:
        """The attributes a copy or a pickle carries (subclasses drop what they make anew)."""
        return dict(self.__dict__)

    def __getstate__(self) -> dict[str, Any]:
        if self._http_client is not None:
            raise TypeError(
                f"A {type(self).__name__} given http_client= cannot be pickled (the client holds open connections); "
                "pickle one made without it, or make the object where it runs"
            )
        return self._state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        # a prefix registered in this process (with its key) wins over the route pickled elsewhere
        self._routes = {m: self._rerouted(m) or r for m, r in self._routes.items()}

    def _rerouted(self, model: str) -> Route | None:
        return None if model.startswith("local/") else self._with_client(route(model, None))

    def __copy__(self) -> Any:
        twin = type(self).__new__(type(self))
        twin.__setstate__({**self._state(), "_endpoint": copy.copy(self._endpoint)})
        return twin

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        """A deep copy shares the user's client (if any) and keeps the key, in this process."""
        twin = type(self).__new__(type(self))
        memo[id(self)] = twin
        if self._http_client is not None:
            memo[id(self._http_client)] = self._http_client
        twin.__setstate__(copy.deepcopy(self._state(), memo))
        return twin

    def close(self) -> None:
        """Release connections: irouter's shared pools close their idle connections (unless a request is in
        flight); the next request opens new ones, so the object stays usable. A client given as ``http_client=``
        is never closed by irouter: close it yourself. ``with Chat(...) as chat:`` calls this on leaving. MCP
        servers given as ``tools=`` when the object was made stop (a later turn starts them again)."""
        release_pools()
        for server in tool_servers(getattr(self, "defaults", {}).get("tools")):
            server.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def models(self) -> list[str]:
        """The model slugs, in the order given."""
        return list(self._models)

    @property
    def base_url(self) -> str:
        """The default endpoint's base URL (models of registered endpoints and ``local/`` ones go elsewhere)."""
        return self._base_url

    def _ep(self, model: str) -> Any:
        """The endpoint serving ``model``."""
        found = self._routes.get(model)
        return found.endpoint if found is not None else self._endpoint

    def _plan(self, kwargs: Mapping[str, Any], place: str) -> Plan:
        """Check the keyword arguments given at ``place`` (an `_options` place) and sort them out, over the
        defaults."""
        if self._endpoint is not None:
            self._endpoint.check_key()  # unpickled without its key: say so before anything is sent
        for model, found in self._routes.items():
            if found is not None and isinstance(found.endpoint, Endpoint):
                found.endpoint.check_key(f"register the endpoint of {model!r} again in this process, with its key.")
        check_options(kwargs, place, spelling=self._openrouter)
        defaults = getattr(self, "defaults", {})
        opts.check_defaults({k: v for k, v in defaults.items() if v is not None}, place, self._place_new)
        options = merge_options(defaults, kwargs)
        body, client = opts.split(options)
        plan = Plan(body, extra_headers=client.get("extra_headers"), timeout=client.get("timeout"))
        if client.get("max_retries") is not None:
            plan.max_retries = retry.check_retries(client["max_retries"])
        if client.get("max_retry_wait") is not None:
            plan.max_retry_wait = retry.check_retry_wait(client["max_retry_wait"])
        if client.get("tools") is not None:
            plan.toolbox = Toolbox(client["tools"], servers=place != self._place_new)  # servers start on first use
        if client.get("max_steps") is not None:
            plan.max_steps = check_max_steps(client["max_steps"])
        plan.before_tool = check_hook("before_tool", client.get("before_tool"), self._awaits)
        check = client.get("check_capabilities")
        if check is not None and not isinstance(check, bool):
            raise TypeError(f"check_capabilities must be True, False or None, got {check!r}")
        plan.check = check
        plan.after_tool = check_hook("after_tool", client.get("after_tool"), self._awaits)
        plan.response_cache = None if place == opts.GRID else self._response_cache(client)  # a grid has its own store
        self._long_conversation(plan, client)
        self._route_fallbacks(plan.fallbacks.models)
        plan.output_type = output_type(body.get("response_format"))  # raises now for what cannot be described
        if plan.output_type is not None:
            body["response_format"] = response_format_for(plan.output_type)
        for model in [*self._models, *plan.fallbacks.models]:
            parse_slug(model).apply(body)  # a provider= at odds with a slug's provider raises now
        fallbacks = body.get("models")
        if isinstance(fallbacks, (list, tuple)) and any(isinstance(m, str) and "@" in m for m in fallbacks):
            raise ValueError(
                f"models={list(fallbacks)!r}: OpenRouter's fallback models take plain slugs; a provider suffix "
                "('@...') only works on the chat's own models"
            )
        return plan

    def _response_cache(self, client: Mapping[str, Any]) -> Any:
        """The response cache a call uses (``cache_responses``, else ``IROUTER_CACHE``), or ``None``; checks its
        settings before any request."""
        setting = check_cache_setting(client.get("cache_responses"))
        ttl = check_cache_ttl(client.get("cache_responses_ttl"))
        if not setting and not (client.get("cache_responses") is None and env_switch("IROUTER_CACHE")):
            return None
        from ._log import ResponseCache  # sqlite3 loads only for the cache and the log

        return ResponseCache(self._store_path(), self.base_url, always=setting == "always", ttl=ttl)

    def _store_path(self) -> Any:
        """The file of the response cache (and of a chat's log): ``IROUTER_LOG_PATH``, else the user data folder's
        ``irouter/logs.db``."""
        from ._log import default_path

        return default_path()

    @staticmethod
    def _long_conversation(plan: Plan, client: Mapping[str, Any]) -> None:
        """The options of long conversations (caching, context overflow, fallbacks), checked into ``plan``."""
        cache = client.get("cache")
        if cache is not None and not isinstance(cache, bool):
            raise TypeError(f"cache must be True or False, got {cache!r}")
        plan.cache_ttl = check_ttl(client.get("cache_ttl"))
        plan.cache = cache if cache is not None else plan.cache_ttl is not None  # a TTL alone turns caching on
        plan.on_overflow = check_policy(client.get("on_overflow"))
        summarizer = client.get("summarize_with")
        if summarizer is not None and not isinstance(summarizer, str):
            raise TypeError(f"summarize_with must be one model slug, got {summarizer!r}")
        if plan.on_overflow == "summarize" and summarizer is None:
            raise ValueError(
                "on_overflow='summarize' needs the model that writes the summary: summarize_with='some/model'"
            )
        plan.summarize_with = check_models(summarizer)[0] if summarizer is not None else None
        reject = check_reject(client.get("fallback_on"))
        plan.fallbacks = Fallbacks(check_fallbacks(client.get("fallbacks")), reject)
        if reject is not None and client.get("stream"):
            raise ValueError(
                "fallback_on= cannot judge a streamed answer (its text is already out): "
                "drop stream=True or fallback_on="
            )

    def _check_capabilities(self, content: Any, plan: Plan, fetch: bool = True) -> bool:
        """Before any request: are the models in the catalog, and can they take tools, structured output and the
        attachments sent? Checked against OpenRouter's own catalog (fetched once a day), or any endpoint's when
        ``check_capabilities=True``; another endpoint's catalog cached by some earlier command never decides.
        A slug missing from a catalog older than `RECHECK_AFTER` is looked up in a fresh copy first. A catalog
        that cannot be fetched means no check (unless asked for). With ``fetch=False`` (async callers, which must
        not block their event loop) returns ``False`` instead of fetching: call again, in a thread, to finish."""
        chain = dict.fromkeys([*self._models, *plan.fallbacks.models])  # a fallback is checked like the models
        models = [m for m in chain if self._routes.get(m) is None]
        summarizer = plan.summarize_with if plan.on_overflow == "summarize" else None
        named: list[str] = []  # looked up in the catalog, with no needs of its own
        if summarizer is not None and not summarizer.startswith("local/") and route(summarizer, None) is None:
            named.append(summarizer)
        if plan.check is False or not (models or named) or not (plan.check or is_openrouter(self.base_url)):
            return True
        toolbox = plan.toolbox
        tools = bool(toolbox and any(s.get("type") == "function" for s in toolbox.schemas))
        response_format = plan.body.get("response_format")
        structured = isinstance(response_format, dict) and response_format.get("type") == "json_schema"
        requirements = needs(content, tools, structured)
        cached = cached_catalog(self.base_url)
        if cached is not None:
            age, records = cached
            try:
                check_capabilities(records, models, requirements)
                check_capabilities(records, named, [])
                return True
            except UnknownModelError:
                if age <= RECHECK_AFTER:
                    raise
        if not fetch:
            return False
        try:
            # through the user's client (a proxy...); an async one cannot serve this worker thread
            client = None if self._asynchronous else self._http_client
            records = list_models(
                self.base_url, refresh=cached is not None, max_retries=plan.max_retries, http_client=client
            )
        except APIError:
            if plan.check:
                raise
            return True
        check_capabilities(records, models, requirements)
        check_capabilities(records, named, [])
        return True

    async def _acheck_capabilities(self, content: Any, plan: Plan, pending: bool) -> None:
        """The rest of a check that needed the catalog fetched: in a worker thread, off the event loop."""
        if pending:
            import asyncio

            await asyncio.to_thread(self._check_capabilities, content, plan)

    def _quote(self, model: str, fetch: bool = False) -> Quote | None:
        """The catalog's prices and completion limit for ``model`` (its endpoint's catalog at hand, however old;
        fetched only when ``fetch``; else what this object last saw of it); ``None`` for models of other endpoints
        or missing from the catalog."""
        if self._routes.get(model) is not None:
            return None
        records = cached_records(self.base_url, max_age=float("inf"))
        if records is None and fetch:
            try:  # like the capability check's fetch: this object's retries, through the user's (sync) client
                retries = self.defaults.get("max_retries")
                records = list_models(
                    self.base_url,
                    max_retries=retry.DEFAULT_MAX_RETRIES if retries is None else retries,
                    http_client=None if self._asynchronous else self._http_client,
                )
            except APIError:
                records = None
        info = find(records, model) if records else None
        if info is None:
            return self._quotes.get(model)
        prices = [p if p is not None and p >= 0 else None for p in (info.prompt_price, info.completion_price)]
        quote = self._quotes[model] = Quote(
            prices[0], prices[1], info.max_completion_tokens, info.context_length, *info.cache_prices
        )
        return quote

    # ------------------------------------------------------------------------------------------ one model's turn
    def _engine(self, model: str, history: list[dict[str, Any]], user: Start, plan: Plan) -> Engine:
        return chat_turn(model, history, user, self._spec(model, plan))

    def _spec(self, model: str, plan: Plan) -> TurnSpec:
        """What one model's turn needs: the call's options, the model's wire name, cache rule and context window."""
        spec = plan.spec(model)
        found = self._routes.get(model)
        if found is None:  # the window is the largest of the models that may answer (OpenRouter's models=[...])
            quote = dearest([self._quote(slug) for slug in answering(model, plan.body)])
            spec.context_length = quote.context_length if quote is not None else None
            if plan.cache:
                records = cached_records(self.base_url, max_age=float("inf"))
                info = find(records, model) if records else None
                spec.cache = rule_for(model, info.raw if info is not None else None, plan.cache_ttl)
            if "@" in model:  # "x/y@provider:quant": the plain slug, with OpenRouter's routing pinned to it
                pinned = parse_slug(model)
                spec.wire_model, spec.options = pinned.model, pinned.apply(spec.options)
        else:
            spec.wire_model = found.wire_model
            if not found.json_schema and "response_format" in spec.options:
                spec.options = {**spec.options, "response_format": json_object_format(spec.options["response_format"])}
        return spec

    def _recorder(self, model: str) -> Recorder:
        """Where a request's accounts go; `Chat` keeps them, `Call` (stateless) lets them go."""
        return Recorder(Meter(), model)

    def _recording(self, model: str, plan: Plan, recorder: Recorder | None = None) -> Recorder:
        """The recorder of one model's turn (given, or the object's, see `_recorder`), with the call's response
        cache."""
        recorder = recorder or self._recorder(model)
        if plan.response_cache is not None:
            recorder = replace(recorder, cache=plan.response_cache)
        return recorder

    def _post(self, recorder: Recorder, plan: Plan) -> Callable[[Send], Reply]:
        model = recorder.model

        def send(action: Send) -> Reply:
            hit = recorder.cached(action.body, action.step)
            if hit is not None:
                return hit
            ticket = recorder.start(action.body)

            def attempt() -> Reply:
                plan.cancel.check()  # every attempt is a new request
                raw = self._ep(model).post(
                    CHAT_PATH, action.body, model=model, extra_headers=plan.extra_headers, timeout=plan.timeout
                )
                return parse_completion(raw, model=model)

            try:
                reply = retry.call(attempt, plan.policy(), plan.cancel.wait)
            except BaseException:
                recorder.done(None, None, ticket, action.step)  # nothing billed: the reservation goes
                raise
            recorder.done(reply, reply.usage, ticket, action.step)
            return reply

        return send

    def _apost(self, recorder: Recorder, plan: Plan) -> Callable[[Send], Awaitable[Reply]]:
        model = recorder.model

        async def send(action: Send) -> Reply:
            hit = recorder.cached(action.body, action.step)
            if hit is not None:
                return hit
            ticket = recorder.start(action.body)

            async def attempt() -> Reply:
                plan.cancel.check()  # every attempt is a new request
                try:
                    raw = await self._ep(model).apost(
                        CHAT_PATH, action.body, model=model, extra_headers=plan.extra_headers, timeout=plan.timeout
                    )
                except Exception:
                    plan.cancel.check()  # abandoned meanwhile: no retry
                    raise
                return parse_completion(raw, model=model)

            async def request() -> Reply:
                try:
                    reply = await retry.acall(attempt, plan.policy())
                except BaseException:
                    recorder.done(None, None, ticket, action.step)  # nothing billed: the reservation goes
                    raise
                recorder.done(reply, reply.usage, ticket, action.step)
                return reply

            # A cancelled call abandons the request (as a sync one does): it ends in the background and is counted.
            return await outlive_cancel(request())

        return send

    def _run(
        self, model: str, history: list[dict[str, Any]], user: Start, plan: Plan, recorder: Recorder | None = None
    ) -> TurnResult:
        """One model's whole turn (requests and tool steps), synchronously, passed on to the call's fallbacks when
        it fails (`_fallbacks`). ``recorder``: as for `_arun`."""

        def attempt(slug: str, accounts: Recorder) -> TurnResult:
            return run_sync(self._engine(slug, history, user, plan), self._post(accounts, plan), plan.tools())

        return fallbacks.run(model, plan.fallbacks, self._recording(model, plan, recorder), attempt)

    async def _arun(
        self, model: str, history: list[dict[str, Any]], user: Start, plan: Plan, recorder: Recorder | None = None
    ) -> TurnResult:
        """`_run`, awaited. ``recorder``: where the turn's accounts go (a grid cell's own; by default the
        object's, see `_recorder`)."""

        async def attempt(slug: str, accounts: Recorder) -> TurnResult:
            return await run_async(self._engine(slug, history, user, plan), self._apost(accounts, plan), plan.tools())

        return await fallbacks.arun(model, plan.fallbacks, self._recording(model, plan, recorder), attempt)

    def _run_streamed(
        self,
        model: str,
        history: list[dict[str, Any]],
        user: dict[str, Any],
        plan: Plan,
        emit: Emit,
        recorder: Recorder | None = None,
    ) -> TurnResult:
        """One model's turn as a stream: every piece of text goes to ``emit`` as it arrives. ``recorder``: as for
        `_arun`. A failure before the first piece passes the turn to the fallbacks; after it, it is raised."""
        emitted = _Emitted(emit)

        def attempt(slug: str, accounts: Recorder) -> TurnResult:
            return self._stream_once(slug, history, user, plan, emitted, accounts)

        return fallbacks.run(model, plan.fallbacks, self._recording(model, plan, recorder), attempt, emitted.said)

    def _stream_once(
        self, model: str, history: list[dict[str, Any]], user: Start, plan: Plan, emit: Emit, recorder: Recorder
    ) -> TurnResult:
        """One model's streamed turn (see `_run_streamed`)."""
        cancel = plan.cancel

        def open_stream(action: Send) -> Iterator[dict[str, Any]]:
            cancel.check()  # closed between two tool steps or retries: send nothing more
            chunks: Iterator[dict[str, Any]] = self._ep(model).stream(
                CHAT_PATH,
                streaming_body(action.body),
                model=model,
                extra_headers=plan.extra_headers,
                timeout=plan.timeout,
                cancel=cancel,
            )
            return chunks

        box = StreamedTurn()
        engine = self._engine(model, history, user, plan)
        pieces = stream_sync(engine, open_stream, plan.tools(), recorder, box, plan.policy(), cancel.wait)
        try:
            for piece in pieces:
                emit(piece)
        finally:
            pieces.close()
        if box.result is None or cancel.is_set():
            raise Cancelled
        return box.result

    async def _arun_streamed(
        self,
        model: str,
        history: list[dict[str, Any]],
        user: Start,
        plan: Plan,
        emit: Emit,
        recorder: Recorder | None = None,
    ) -> TurnResult:
        """`_run_streamed`, awaited."""
        emitted = _Emitted(emit)

        async def attempt(slug: str, accounts: Recorder) -> TurnResult:
            return await self._astream_once(slug, history, user, plan, emitted, accounts)

        accounts = self._recording(model, plan, recorder)
        return await fallbacks.arun(model, plan.fallbacks, accounts, attempt, emitted.said)

    async def _astream_once(
        self, model: str, history: list[dict[str, Any]], user: Start, plan: Plan, emit: Emit, recorder: Recorder
    ) -> TurnResult:
        """`_stream_once`, awaited."""
        import asyncio

        def open_stream(action: Send) -> AsyncIterator[dict[str, Any]]:
            plan.cancel.check()
            body, options = streaming_body(action.body), {"extra_headers": plan.extra_headers, "timeout": plan.timeout}
            chunks: AsyncIterator[dict[str, Any]] = self._ep(model).astream(CHAT_PATH, body, model=model, **options)
            return chunks

        box = StreamedTurn()
        engine = self._engine(model, history, user, plan)
        pieces = stream_async(engine, open_stream, plan.tools(), recorder, box, plan.policy())
        try:
            first = True
            async for piece in pieces:
                emit(piece)
                if first:  # let the reader have the first text now, before the chunks that came with it
                    first = False
                    await asyncio.sleep(0)
        finally:
            await pieces.aclose()
        if box.result is None:
            raise Cancelled
        return box.result

    def _shape(self, per_model: dict[str, Any]) -> Any:
        """One model -> its value; several -> ``{slug: value}`` (the seed's shapes)."""
        return per_model[self._models[0]] if len(self._models) == 1 else per_model


class _Emitted:
    """An `Emit` that remembers whether it passed on any text (a streamed turn that spoke cannot fall back)."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.spoken = False

    def __call__(self, piece: str) -> None:
        self.spoken = True
        self.emit(piece)

    def said(self) -> bool:
        return self.spoken
