"""LLM plug-ins' shared parts: an OpenAI-compatible endpoint client, answer repair and an answer cache.

The plug-ins themselves live with their seams: the concept extractor in
:mod:`fieldtune.concepts.llm`, the query generator in
:mod:`fieldtune.pseudo_queries.llm`. Both take an :class:`LLMEndpoint`
(``fieldtune build --llm-url URL --llm-model NAME``); httpx (``pip install
'fieldtune[llm]'``) is imported only when a client is made.
"""

from __future__ import annotations

from fieldtune.llm.cache import AnswerCache
from fieldtune.llm.client import LLM_API_KEY_ENV, LLMApi, LLMClient, LLMEndpoint, LLMEndpointError
from fieldtune.llm.repair import ReadResult, read_object

__all__ = [
    "LLM_API_KEY_ENV",
    "AnswerCache",
    "LLMApi",
    "LLMClient",
    "LLMEndpoint",
    "LLMEndpointError",
    "ReadResult",
    "read_object",
]
