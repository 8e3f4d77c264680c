"""A small client for an OpenAI-compatible text-generation endpoint (vLLM, llama.cpp's server, Ollama, a hosted API).

Only what the plug-ins need: list the served models (to fail fast on a wrong
URL) and complete a prompt, through ``/v1/completions`` (base models,
few-shot prompts) or ``/v1/chat/completions`` (instruction-tuned models and
hosted APIs that have no plain completions). httpx is imported when a client
is made, so the CLI's start-up does not pay for it; the API key, when the
endpoint needs one, is read from an environment variable, never from a flag
(it would land in the shell history and the build manifest).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from fieldtune.errors import FieldtuneError, require_extra

logger = logging.getLogger("fieldtune.llm")

#: the environment variable holding the endpoint's API key (sent as ``Authorization: Bearer ...``)
LLM_API_KEY_ENV = "FIELDTUNE_LLM_API_KEY"
_ERROR_BODY_CHARS = 300


class LLMApi(str, Enum):
    """Which OpenAI-compatible route a prompt goes to."""

    COMPLETIONS = "completions"  # /v1/completions: base models, few-shot prompts
    CHAT = "chat"  # /v1/chat/completions: the prompt as one user message


class LLMEndpointError(FieldtuneError):
    """The LLM endpoint is unreachable, refuses the request, or answers something unreadable."""


@dataclass(frozen=True)
class LLMEndpoint:
    """Where the LLM is and how to talk to it (no secret in here: ``api_key_env`` names the variable)."""

    url: str
    model: str
    api: LLMApi = LLMApi.COMPLETIONS
    api_key_env: str = LLM_API_KEY_ENV
    #: seconds to open a connection: short, so a wrong URL fails at once
    connect_timeout: float = 5.0
    #: seconds to wait for one answer (a CPU server may take a while)
    timeout: float = 300.0
    #: requests in flight at once (a vLLM server batches them; llama.cpp's serves one slot)
    concurrency: int = 1

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "api", LLMApi(self.api))
        except ValueError:
            choices = ", ".join(a.value for a in LLMApi)
            raise ValueError(f"llm api must be one of {choices}; got {self.api!r}") from None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the LLM URL must look like http://HOST:PORT[/v1]; got {self.url!r}")
        if not self.model.strip():
            raise ValueError("the LLM model name is empty (give --llm-model NAME, as the server lists it)")
        if self.connect_timeout <= 0 or self.timeout <= 0:
            raise ValueError("LLM timeouts must be positive")
        if self.concurrency < 1:
            raise ValueError(f"LLM concurrency must be at least 1; got {self.concurrency}")

    def base_url(self) -> str:
        """The URL up to and including ``/v1`` (the user may give it with or without)."""
        url = self.url.rstrip("/")
        return url if url.endswith("/v1") else f"{url}/v1"

    def describe(self) -> str:
        """What a log line or a stats record says about the endpoint (model, route, URL)."""
        return f"{self.model} via {self.base_url()}/{'chat/completions' if self.api is LLMApi.CHAT else 'completions'}"


class LLMClient:
    """Talks to one :class:`LLMEndpoint`; use as a context manager or call :meth:`close`."""

    def __init__(self, endpoint: LLMEndpoint, *, api_key: str | None = None) -> None:
        """``api_key`` overrides the variable ``endpoint.api_key_env`` (for a server this process started)."""
        try:
            endpoint.validate()
        except ValueError as error:
            raise LLMEndpointError(str(error)) from None
        httpx = require_extra("httpx", "llm")
        self.endpoint = endpoint
        self._httpx = httpx
        headers = {"Content-Type": "application/json"}
        key = api_key if api_key is not None else os.environ.get(endpoint.api_key_env, "").strip()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(
            base_url=endpoint.base_url(),
            headers=headers,
            timeout=httpx.Timeout(endpoint.timeout, connect=endpoint.connect_timeout),
        )

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        httpx = self._httpx
        where = f"{self.endpoint.base_url()}{path}"
        try:
            response = self._http.request(method, path, json=payload)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise LLMEndpointError(
                f"cannot reach the LLM endpoint {self.endpoint.base_url()} ({error.__class__.__name__}: {error}); "
                "is the server running there? (see 'Using a local LLM' in the README)"
            ) from error
        except httpx.TimeoutException as error:
            raise LLMEndpointError(
                f"the LLM endpoint {where} gave no answer within {self.endpoint.timeout:.0f}s "
                f"({error.__class__.__name__})"
            ) from error
        except httpx.HTTPError as error:
            raise LLMEndpointError(f"request to the LLM endpoint {where} failed: {error}") from error
        if response.status_code in (401, 403):
            raise LLMEndpointError(
                f"the LLM endpoint {where} refused the request (HTTP {response.status_code}): "
                f"set {self.endpoint.api_key_env} to its API key"
            )
        if response.status_code >= 400:
            raise LLMEndpointError(
                f"the LLM endpoint {where} answered HTTP {response.status_code}: "
                f"{response.text[:_ERROR_BODY_CHARS]}"
            )
        try:
            data = response.json()
        except ValueError as error:
            raise LLMEndpointError(f"the LLM endpoint {where} answered something that is not JSON") from error
        if not isinstance(data, dict):
            raise LLMEndpointError(f"the LLM endpoint {where} answered JSON that is not an object")
        return data

    def models(self) -> list[str]:
        """The model ids the server lists (``GET /v1/models``); raises when it cannot be reached."""
        data = self._request("GET", "/models")
        return [str(item.get("id")) for item in data.get("data") or [] if isinstance(item, dict)]

    def check(self) -> None:
        """Fail fast (connect timeout) when the endpoint is unreachable; warn when it lists another model.

        llama.cpp's server answers for whatever model it loaded, whatever name is asked
        for, so a model missing from the list is a warning here, not an error.
        """
        served = self.models()
        if served and self.endpoint.model not in served:
            logger.warning("the LLM endpoint %s lists %s, not %r; asking for %r anyway",
                           self.endpoint.base_url(), ", ".join(served), self.endpoint.model, self.endpoint.model)

    def complete(self, prompt: str, *, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0,
                 seed: int = 0) -> str:
        """The model's continuation of ``prompt`` (chat: its answer to ``prompt`` as one user message)."""
        payload: dict[str, Any] = {"model": self.endpoint.model, "max_tokens": max_tokens,
                                   "temperature": temperature, "seed": seed}
        if stop:
            payload["stop"] = list(stop)
        if self.endpoint.api is LLMApi.CHAT:
            payload["messages"] = [{"role": "user", "content": prompt}]
            data = self._request("POST", "/chat/completions", payload)
        else:
            payload["prompt"] = prompt
            data = self._request("POST", "/completions", payload)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.endpoint.api is LLMApi.CHAT else choice["text"]
        except (KeyError, IndexError, TypeError) as error:
            raise LLMEndpointError(
                f"the LLM endpoint {self.endpoint.base_url()} answered without choices[0] text: "
                f"{str(data)[:_ERROR_BODY_CHARS]}"
            ) from error
        return str(text or "")

    def complete_many(self, prompts: Sequence[str], *, max_tokens: int, stop: Sequence[str] = (),
                      temperature: float = 0.0, seed: int = 0) -> list[str]:
        """:meth:`complete` for each prompt, ``endpoint.concurrency`` at a time; answers in prompt order."""
        def one(prompt: str) -> str:
            return self.complete(prompt, max_tokens=max_tokens, stop=stop, temperature=temperature, seed=seed)

        if self.endpoint.concurrency == 1 or len(prompts) < 2:
            return [one(prompt) for prompt in prompts]
        with ThreadPoolExecutor(max_workers=min(self.endpoint.concurrency, len(prompts))) as pool:
            return list(pool.map(one, prompts))


def endpoint_from_options(url: str | None, model: str | None, chat: bool = False) -> LLMEndpoint | None:
    """The endpoint the CLI's ``--llm-url``/``--llm-model``/``--llm-chat`` name, or None without a URL.

    Raises ``ValueError`` (the CLI's bad-parameter error) for a model or ``--llm-chat`` without a URL,
    a URL without a model, or a URL that is not http(s)://HOST[:PORT][/v1].
    """
    if url is None:
        if model is not None or chat:
            raise ValueError("--llm-model and --llm-chat need --llm-url URL (an OpenAI-compatible server)")
        return None
    if not model:
        raise ValueError("--llm-url needs --llm-model NAME (the model name the server lists at /v1/models)")
    endpoint = LLMEndpoint(url, model, api=LLMApi.CHAT if chat else LLMApi.COMPLETIONS)
    endpoint.validate()
    return endpoint


def check_endpoint(endpoint: LLMEndpoint | None) -> None:
    """Fail fast (:class:`LLMEndpointError`, within the connect timeout) when ``endpoint`` is set but unreachable."""
    if endpoint is not None:
        with LLMClient(endpoint) as client:
            client.check()
