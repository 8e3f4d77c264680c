"""LLM queries (InPars-style): a model behind an OpenAI-compatible endpoint writes search queries for each chunk.

Selected with ``--pseudo-queries llm`` beside ``--llm-url URL --llm-model NAME``
(``PseudoQueryConfig.llm``). The prompt is few-shot (passage, then numbered
queries), so a base model on ``/v1/completions`` can continue it; a chat
model sees the same text as one message. Each distinct chunk text is asked
once; its queries are cleaned (numbering and quotes stripped), kept when they
have ``min_llm_query_words``..``max_llm_query_words`` words and do not copy a
whole sentence of the chunk, deduplicated (case and spacing ignored) and cut
to ``llm_queries_per_chunk``. A chunk whose answer leaves no usable query is
asked once more with the answer begun for the model (``RETRY_PRIMER``: a
question's first word), which a small model continues as a question where it
had copied the passage or written nothing. Answers are cached per chunk text and
configuration (``PseudoQueryConfig.llm_cache``, else the user cache of
``FIELDTUNE_CACHE``), a batch at a time, so a rerun asks only for new chunks.

Without an endpoint the source fails at once with an error naming the
option; an unreachable endpoint fails within its connect timeout.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from fieldtune.encoding import cache_dir
from fieldtune.errors import FieldtuneError
from fieldtune.llm.cache import AnswerCache, answer_key, settings_hash
from fieldtune.llm.client import LLMClient
from fieldtune.pairs.base import ConceptGraphLike
from fieldtune.pseudo_queries.base import Candidate, PseudoQueryConfig
from fieldtune.types import Chunk, PseudoQuery

logger = logging.getLogger("fieldtune.pseudo_queries")

QUERY_PROMPT_VERSION = "1"
#: chunk texts asked per cache flush
BATCH_SIZE = 8
MAX_CHARS = 1200
_EXAMPLES = (
    ("The Kostka number counts the semistandard Young tableaux of a given shape and weight; it is the coefficient "
     "of a monomial symmetric function in a Schur function.",
     ("how many semistandard tableaux have a given shape and weight", "Kostka number definition",
      "expand Schur function in monomial symmetric functions")),
    ("Metformin lowers blood glucose by inhibiting hepatic gluconeogenesis and is the first-line drug for "
     "type 2 diabetes.",
     ("how does metformin lower blood glucose", "first-line treatment for type 2 diabetes",
      "drugs that inhibit gluconeogenesis in the liver")),
)
QUERY_PROMPT_HEADER = "Write search queries that the passage answers.\n\n"
_STOP = ("\n\n", "Passage:")
#: the start of query 1 given to the model when its first answer had no usable query
RETRY_PRIMER = " What"
_NUMBERED = re.compile(r"^\s*(?:\d+[.)]|[-*])\s*")
_SPACES = re.compile(r"\s+")


class NoEndpointError(FieldtuneError):
    """The llm pseudo-query source was chosen without an endpoint."""


def build_prompt(text: str, n: int) -> str:
    """The few-shot prompt for one chunk, ending where the model writes query 1 of ``n``."""
    shots = "".join(
        f"Passage: {passage}\nQueries:\n" + "".join(f"{i}. {q}\n" for i, q in enumerate(queries[:n], 1)) + "\n"
        for passage, queries in _EXAMPLES
    )
    return f"{QUERY_PROMPT_HEADER}{shots}Passage: {_SPACES.sub(' ', text[:MAX_CHARS]).strip()}\nQueries:\n1."


def parse_queries(answer: str, text: str, config: PseudoQueryConfig) -> list[str]:
    """The usable queries of one answer, in order, at most ``config.llm_queries_per_chunk``."""
    source = " ".join(text.casefold().split())
    kept: list[str] = []
    seen: set[str] = set()
    for line in ("1." + answer).splitlines():
        query = _NUMBERED.sub("", line).strip().strip("\"'`").strip()
        query = " ".join(query.split())
        key = query.casefold()
        words = len(query.split())
        if not config.min_llm_query_words <= words <= config.max_llm_query_words or key in seen:
            continue
        if words >= 8 and key in source:  # a sentence copied out of the chunk is not a query
            continue
        seen.add(key)
        kept.append(query)
        if len(kept) == config.llm_queries_per_chunk:
            break
    return kept


class LLMQueries:
    """Per chunk, up to ``llm_queries_per_chunk`` queries written by the model (module docstring)."""

    name = "llm"

    def generate(self, chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PseudoQueryConfig) -> list[Candidate]:
        endpoint = config.llm
        if endpoint is None:
            raise NoEndpointError("the llm pseudo-query source needs an LLM endpoint: give --llm-url URL and "
                                  "--llm-model NAME (an OpenAI-compatible server, e.g. llama.cpp's)")
        cache = AnswerCache(Path(config.llm_cache) if config.llm_cache else cache_dir() / "llm" / "queries.jsonl")
        keys = [query_cache_key(chunk.text, config) for chunk in chunks]
        answers: dict[str, list[str]] = {}
        todo: dict[str, str] = {}
        retry: dict[str, str] = {}
        for key, chunk in zip(keys, chunks, strict=True):
            cached = cache.get(key)
            if isinstance(cached, list) and cached:
                answers[key] = [str(q) for q in cached]
            elif isinstance(cached, list):
                retry.setdefault(key, chunk.text)  # asked before, nothing usable: only the primed question is left
                answers[key] = []
            else:
                todo.setdefault(key, chunk.text)
        if todo:
            self._ask(todo, answers, cache, config)
        retry.update({key: todo[key] for key in todo if not answers.get(key)})
        if retry:
            self._ask(retry, answers, cache, config, primer=RETRY_PRIMER, retry_key=_retry_key)
        found = []
        for key, chunk in zip(keys, chunks, strict=True):
            for number, query in enumerate(answers.get(key, ())):
                found.append(Candidate(chunk.doc_id, PseudoQuery(f"{self.name}:{chunk.id}|{number}", query, self.name)))
        logger.info("llm queries (%s): %d queries for %d chunks (%d chunk texts asked, %d cached, %d asked again "
                    "with the answer begun)", endpoint.describe(), len(found), len(chunks), len(todo),
                    len(answers) - len(todo), len(retry))
        return found

    def _ask(self, todo: dict[str, str], answers: dict[str, list[str]], cache: AnswerCache,
             config: PseudoQueryConfig, *, primer: str = "", retry_key: Callable[[str], str] | None = None) -> None:
        """Ask for ``todo``'s chunks, the answer begun with ``primer``; a retry is cached under its own key."""
        assert config.llm is not None  # checked by generate
        items = []
        for key, text in todo.items():
            cached = cache.get(retry_key(key)) if retry_key else None
            if isinstance(cached, list):
                answers[key] = [str(q) for q in cached]
            else:
                items.append((key, text))
        if not items:
            return
        with LLMClient(config.llm) as client:
            client.check()
            for start in range(0, len(items), BATCH_SIZE):
                batch = items[start : start + BATCH_SIZE]
                prompts = [build_prompt(text, config.llm_queries_per_chunk) + primer for _, text in batch]
                replies = client.complete_many(prompts, max_tokens=config.llm_max_tokens, stop=_STOP)
                done = {key: parse_queries(primer + reply, text, config)
                        for (key, text), reply in zip(batch, replies, strict=True)}
                cache.put_many({retry_key(key): queries for key, queries in done.items()} if retry_key else done)
                answers.update(done)


def query_cache_key(text: str, config: PseudoQueryConfig) -> str:
    """The answer cache's key of one chunk text's queries under ``config`` (its endpoint set)."""
    assert config.llm is not None
    tag = settings_hash(QUERY_PROMPT_VERSION, build_prompt("", config.llm_queries_per_chunk), config.llm.model,
                        config.llm.api.value, config.llm_queries_per_chunk, config.llm_max_tokens,
                        config.min_llm_query_words, config.max_llm_query_words)
    return answer_key(LLMQueries.name, tag, text)


def _retry_key(key: str) -> str:
    return f"{key}|primed"
