"""A small model catalog for the double's ``GET /models``, shaped like OpenRouter's 2026 records."""

from __future__ import annotations

from typing import Any

_TOOLS = [
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "response_format",
    "structured_outputs",
    "tools",
    "tool_choice",
]
_MODELS = [
    # id, name, context, input modalities, prompt $/token, completion $/token, supported parameters
    ("openai/gpt-4o-mini", "OpenAI: GPT-4o-mini", 128000, ["text", "image", "file"], "0.00000015", "0.0000006", _TOOLS),
    (
        "meta-llama/llama-3.3-70b-instruct",
        "Meta: Llama 3.3 70B Instruct",
        131072,
        ["text"],
        "0.00000013",
        "0.0000004",
        _TOOLS,
    ),
    (
        "anthropic/claude-sonnet-4.5",
        "Anthropic: Claude Sonnet 4.5",
        1000000,
        ["text", "image", "file"],
        "0.000003",
        "0.000015",
        [*_TOOLS, "reasoning", "include_reasoning"],
    ),
    (
        "google/gemini-2.0-flash-exp:free",
        "Google: Gemini 2.0 Flash Experimental (free)",
        1048576,
        ["text", "image", "file", "audio"],
        "0",
        "0",
        _TOOLS,
    ),
    (
        "google/gemma-3n-e2b-it:free",
        "Google: Gemma 3n 2B (free)",
        8192,
        ["text"],
        "0",
        "0",
        ["max_tokens", "temperature", "top_p"],
    ),
    ("moonshotai/kimi-k2:free", "MoonshotAI: Kimi K2 0711 (free)", 32768, ["text"], "0", "0", _TOOLS),
]


def model_record(
    id: str,
    name: str,
    context_length: int,
    input_modalities: list[str],
    prompt: str,
    completion: str,
    supported_parameters: list[str],
) -> dict[str, Any]:
    """One ``/models`` record with every field OpenRouter sends."""
    modality = "+".join(input_modalities) + "->text"
    return {
        "id": id,
        "canonical_slug": id.split(":")[0],
        "hugging_face_id": "",
        "name": name,
        "created": 1744651381,
        "description": f"{name}, served by the OpenRouter test double.",
        "context_length": context_length,
        "architecture": {
            "modality": modality,
            "input_modalities": input_modalities,
            "output_modalities": ["text"],
            "tokenizer": "Other",
            "instruct_type": None,
        },
        "pricing": {"prompt": prompt, "completion": completion},
        "top_provider": {"context_length": context_length, "max_completion_tokens": 16384, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": supported_parameters,
        "default_parameters": {},
        "supported_voices": None,
        "knowledge_cutoff": None,
        "expiration_date": None,
        "links": {"details": f"/api/v1/models/{id.split(':')[0]}/endpoints"},
    }


def default_models() -> list[dict[str, Any]]:
    return [model_record(*spec) for spec in _MODELS]


_PROVIDERS = (
    # display name, tag, quantization, price factor, latency p50 (ms), throughput p50 (tokens/s), uptime (1 day)
    ("DeepInfra", "deepinfra/fp8", "fp8", 1.0, 820.0, 95.0, 99.9),
    ("Together", "together", "fp16", 1.4, 610.0, 120.0, 99.5),
    ("Fireworks", "fireworks/fast", "unknown", 2.0, 310.0, 240.0, 98.7),
)


def endpoints_body(record: dict[str, Any]) -> dict[str, Any]:
    """A ``GET /models/{author}/{slug}/endpoints`` body derived from a ``/models`` record: three made-up providers
    (DeepInfra, Together, Fireworks) at the record's prices times 1, 1.4 and 2, shaped like OpenRouter's 2026
    records (openrouter-protocol.md §6.1)."""
    pricing = record.get("pricing") or {}
    context = record.get("context_length")
    endpoints = []
    for name, tag, quantization, factor, latency, throughput, uptime in _PROVIDERS:
        prices = {k: f"{float(pricing.get(k) or 0) * factor:.10g}" for k in ("prompt", "completion")}
        endpoints.append(
            {
                "name": f"{name} | {record['id']}",
                "model_id": record["id"],
                "model_name": record.get("name"),
                "context_length": context,
                "pricing": {**prices, "discount": 0},
                "provider_name": name,
                "tag": tag,
                "quantization": quantization,
                "max_completion_tokens": (record.get("top_provider") or {}).get("max_completion_tokens"),
                "max_prompt_tokens": None,
                "supported_parameters": list(record.get("supported_parameters") or []),
                "status": 0,
                "uptime_last_30m": uptime,
                "uptime_last_5m": uptime,
                "uptime_last_1d": uptime,
                "supports_implicit_caching": False,
                "supports_voice_cloning": False,
                "latency_last_30m": {"p50": latency, "p75": latency * 1.5, "p90": latency * 2.2, "p99": latency * 5},
                "throughput_last_30m": {
                    "p50": throughput,
                    "p75": throughput * 1.2,
                    "p90": throughput * 1.4,
                    "p99": throughput * 1.8,
                },
            }
        )
    keys = ("id", "name", "created", "description", "architecture")
    return {"data": {**{k: record.get(k) for k in keys}, "endpoints": endpoints}}
