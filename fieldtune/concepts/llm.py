"""The LLM extractor: typed concepts, descriptions and relations read from each chunk by a model behind an endpoint.

Registered as ``"llm"``; selected by ``ConceptConfig(extractor="llm", llm=LLMEndpoint(...))``
(``fieldtune build --llm-url URL --llm-model NAME``). Each chunk is sent
alone in a few-shot prompt that works with base models on ``/v1/completions``
(and with chat models, which see the same text as one message); the answer
is a JSON object of the shape :data:`ANSWER_SCHEMA`::

    {"concepts": [[name, kind, description], ...], "relations": [[source, relation, target], ...]}

(arrays, not objects: a small model on a CPU writes fewer tokens; objects
with ``name``/``kind``/``description`` keys are read too).

Bad output is repaired where it can be and counted either way
(:meth:`LLMExtractor.stated`): a truncated answer keeps its complete items
(:mod:`fieldtune.llm.repair`), an unknown kind becomes ``other``, a missing
description is empty; a concept without a name, a name that is not in the
chunk (the model made it up or rephrased it), a name longer than
``max_words`` words, and a relation of an unknown type or between names not
in the chunk are dropped. Relations ``generalizes``, ``special_case_of``
(the reverse) and ``extends`` become the graph's typed edges.

The graph keeps a concept the model named in a single document unless
``min_df`` is set (:meth:`~fieldtune.concepts.ConceptConfig.doc_floor`): the
model's reading already filters what the statistical extractor needs a
second document to filter, and a small model seldom names one concept the
same way twice (case and plural still meet, as for every extractor).

Answers are cached per chunk text (:class:`~fieldtune.concepts.ExtractionCache`
for the terms, an :class:`~fieldtune.llm.cache.AnswerCache` beside it for the
kinds and relations) in batches of ``batch_size`` chunks, so an interrupted
extraction resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fieldtune.concepts.config import ConceptConfig
from fieldtune.concepts.extractors import (
    ExtractionCache,
    Found,
    StatedFacts,
    StatedRelation,
    TermCandidate,
    register_extractor,
    run_batches,
)
from fieldtune.llm.cache import AnswerCache, settings_hash
from fieldtune.llm.client import LLMClient, LLMEndpoint
from fieldtune.llm.repair import read_object
from fieldtune.types import Chunk, EdgeType

logger = logging.getLogger("fieldtune.concepts")

#: what a concept may be; anything else the model says becomes "other"
KINDS = ("object", "method", "process", "property", "quantity", "result", "substance", "condition", "field", "other")
#: the relations the model may state -> (edge type, whether the first name is the edge's source)
RELATIONS: dict[str, tuple[EdgeType, bool]] = {
    "generalizes": (EdgeType.GENERALIZES, True),
    "special_case_of": (EdgeType.GENERALIZES, False),
    "extends": (EdgeType.EXTENDS, True),
}
#: The answer's JSON schema (documentation for users of other servers, and the shape the prompt shows).
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "concepts": {
            "type": "array",
            "items": {"type": "array", "prefixItems": [
                {"type": "string", "description": "the concept's name, exactly as written in the text"},
                {"type": "string", "enum": list(KINDS)},
                {"type": "string", "description": "one short sentence saying what it is"},
            ]},
        },
        "relations": {
            "type": "array",
            "items": {"type": "array", "prefixItems": [
                {"type": "string"}, {"type": "string", "enum": list(RELATIONS)}, {"type": "string"},
            ]},
        },
    },
    "required": ["concepts"],
}
EXTRACTION_PROMPT_VERSION = "2"
_EXAMPLES = (
    ("A Young tableau is a filling of a Young diagram with positive integers. Semistandard tableaux generalize "
     "standard Young tableaux, and the Kostka number counts the semistandard tableaux of a given shape and weight.",
     '{"concepts": [["Young tableau", "object", "a filling of a Young diagram with positive integers"], '
     '["Young diagram", "object", "an arrangement of boxes in left-justified rows"], '
     '["semistandard tableaux", "object", "tableaux whose rows weakly increase and columns strictly increase"], '
     '["Kostka number", "quantity", "the number of semistandard tableaux of a given shape and weight"]], '
     '"relations": [["semistandard tableaux", "generalizes", "standard Young tableaux"]]}'),
    ("Metformin lowers blood glucose by inhibiting hepatic gluconeogenesis. It is the first-line drug for type 2 "
     "diabetes, a special case of metabolic disease.",
     '{"concepts": [["metformin", "substance", "a drug that lowers blood glucose"], '
     '["hepatic gluconeogenesis", "process", "the making of glucose in the liver"], '
     '["type 2 diabetes", "condition", "a metabolic disease with high blood glucose"]], '
     '"relations": [["type 2 diabetes", "special_case_of", "metabolic disease"]]}'),
)
EXTRACTION_PROMPT_HEADER = (
    "Extract the technical concepts of each text: their names exactly as written in the text, a kind "
    f"({', '.join(KINDS)}) and a short description, and relations between them "
    f"({', '.join(RELATIONS)}). Answer in JSON.\n\n"
)
_STOP = ("\nText:", "\n\n")
_SPACES = re.compile(r"\s+")


def build_prompt(text: str, max_chars: int) -> str:
    """The few-shot prompt for one chunk (the examples first, so a server can reuse their cached prefix)."""
    shots = "".join(f"Text: {example}\nJSON: {answer}\n\n" for example, answer in _EXAMPLES)
    return f"{EXTRACTION_PROMPT_HEADER}{shots}Text: {_SPACES.sub(' ', text[:max_chars]).strip()}\nJSON:"


def _find(text: str, name: str) -> tuple[int, str]:
    """Offset of ``name`` in ``text`` (case and spacing ignored, whole words) and its spelling there; (-1, "")."""
    words = name.split()
    if not words:
        return -1, ""
    pattern = r"(?<!\w)" + r"\s+".join(re.escape(word) for word in words) + r"(?!\w)"
    found = re.search(pattern, text, re.IGNORECASE)
    return (found.start(), " ".join(found.group(0).split())) if found else (-1, "")


def _fields(item: Any, keys: tuple[str, str, str]) -> list[Any] | None:
    """An answer item as a 3-list (accepting an object with ``keys``); None when it is neither."""
    if isinstance(item, dict):
        return [item.get(key) for key in keys]
    if isinstance(item, list):
        return [*item[:3], *[None] * (3 - len(item[:3]))]
    return None


@dataclass
class ChunkAnswer:
    """One chunk's answer after checks: concepts (name, offset, kind, description), relations, counts."""

    concepts: list[tuple[str, int, str, str]] = field(default_factory=list)
    relations: list[tuple[str, str, str]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {"concepts": [list(c) for c in self.concepts], "relations": [list(r) for r in self.relations],
                "counts": dict(self.counts)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkAnswer:
        return cls([(str(n), int(o), str(k), str(d)) for n, o, k, d in data.get("concepts", [])],
                   [(str(s), str(r), str(t)) for s, r, t in data.get("relations", [])],
                   Counter({str(k): int(v) for k, v in (data.get("counts") or {}).items()}))


def check_answer(text: str, answer: str, *, max_words: int, max_concepts: int) -> ChunkAnswer:
    """The concepts and relations of ``answer`` that hold up against the chunk ``text`` (module docstring)."""
    result = ChunkAnswer()
    counts = result.counts
    read = read_object(answer)
    if read.value is None:
        counts["unreadable_answers"] += 1
        return result
    counts["repaired_json"] += int(read.repaired)
    raw_concepts = read.value.get("concepts")
    raw_relations = read.value.get("relations") or []
    if not isinstance(raw_concepts, list):
        counts["missing_concepts_field"] += 1
        raw_concepts = []
    seen: set[str] = set()
    for item in raw_concepts:
        fields = _fields(item, ("name", "kind", "description"))
        name = " ".join(str(fields[0]).split()) if fields and isinstance(fields[0], str) else ""
        if not name:
            counts["dropped_no_name"] += 1
            continue
        if len(name.split()) > max_words:
            counts["dropped_too_long"] += 1
            continue
        start, name = _find(text, name)  # the chunk's own spelling: case counts when terms are scored
        if start < 0:
            counts["dropped_not_in_chunk"] += 1
            continue
        if name.casefold() in seen or len(seen) >= max_concepts:
            counts["dropped_duplicate_or_over_limit"] += 1
            continue
        seen.add(name.casefold())
        kind = str(fields[1]).strip().lower() if isinstance(fields[1], str) else ""
        if kind not in KINDS:
            counts["repaired_kind"] += 1
            kind = "other"
        description = " ".join(fields[2].split()) if isinstance(fields[2], str) else ""
        counts["repaired_description"] += int(not description)
        result.concepts.append((name, start, kind, description))
    for item in raw_relations if isinstance(raw_relations, list) else []:
        fields = _fields(item, ("source", "type", "target"))
        if not fields or not all(isinstance(f, str) and f.strip() for f in fields):
            counts["dropped_relation_incomplete"] += 1
            continue
        source, relation, target = (" ".join(f.split()) for f in fields)
        relation = relation.lower().replace(" ", "_").replace("-", "_")
        if relation not in RELATIONS:
            counts["dropped_relation_type"] += 1
        elif source.casefold() == target.casefold() or _find(text, source)[0] < 0 or _find(text, target)[0] < 0:
            counts["dropped_relation_not_in_chunk"] += 1
        else:
            result.relations.append((source, relation, target))
    counts["concepts_kept"] += len(result.concepts)
    counts["relations_kept"] += len(result.relations)
    return result


@dataclass
class LLMExtractor:
    """Concepts by an LLM behind an OpenAI-compatible endpoint; registered as ``"llm"`` (module docstring)."""

    endpoint: LLMEndpoint
    max_words: int = 4
    batch_size: int = 8
    max_tokens: int = 192
    max_chars: int = 1500
    max_concepts: int = 12
    name: ClassVar[str] = "llm"
    _facts: StatedFacts = field(default_factory=StatedFacts, repr=False)

    def config_hash(self) -> str:
        """Model, prompt and limits: changing any of them invalidates cached answers (the URL does not)."""
        return settings_hash(EXTRACTION_PROMPT_VERSION, build_prompt("", self.max_chars), self.endpoint.model,
                             self.endpoint.api.value, self.max_words, self.max_tokens, self.max_chars,
                             self.max_concepts)

    def stated(self) -> StatedFacts:
        return self._facts

    def extract(self, chunks: Sequence[Chunk], *, cache: ExtractionCache | None = None,
                progress: bool = True) -> list[TermCandidate]:
        answers = AnswerCache(Path(cache.path).with_name("llm-answers.jsonl")) if cache is not None else None
        config_hash = self.config_hash()
        fresh: dict[str, ChunkAnswer] = {}
        with contextlib.ExitStack() as stack:
            clients: list[LLMClient] = []  # made at the first request: a fully cached run needs no server

            def extract_batch(texts: Sequence[str]) -> list[list[Found]]:
                if not clients:
                    clients.append(stack.enter_context(LLMClient(self.endpoint)))
                    clients[0].check()
                replies = clients[0].complete_many([build_prompt(t, self.max_chars) for t in texts],
                                                   max_tokens=self.max_tokens, stop=_STOP)
                checked = [check_answer(t, r, max_words=self.max_words, max_concepts=self.max_concepts)
                           for t, r in zip(texts, replies, strict=True)]
                keys = [ExtractionCache.make_key(self.name, config_hash, t) for t in texts]
                if answers is not None:  # before run_batches caches the terms: never terms without their facts
                    answers.put_many({k: a.to_json() for k, a in zip(keys, checked, strict=True)})
                fresh.update(zip(keys, checked, strict=True))
                return [[(name, start, description) for name, start, _, description in a.concepts] for a in checked]

            candidates = run_batches(self.name, config_hash, chunks, extract_batch, batch_size=self.batch_size,
                                     cache=cache, progress=progress)
        self._facts = self._collect(chunks, config_hash, fresh, answers)
        return candidates

    def _collect(self, chunks: Sequence[Chunk], config_hash: str, fresh: dict[str, ChunkAnswer],
                 answers: AnswerCache | None) -> StatedFacts:
        """Relations, kinds and counts of every chunk, from this run's answers or the cache."""
        facts = StatedFacts()
        counts: Counter[str] = Counter()
        kinds: dict[str, Counter[str]] = {}
        seen: set[str] = set()
        for chunk in chunks:
            key = ExtractionCache.make_key(self.name, config_hash, chunk.text)
            answer = fresh.get(key)
            if answer is None and answers is not None:
                cached = answers.get(key)
                answer = ChunkAnswer.from_json(cached) if isinstance(cached, dict) else None
            if answer is None:
                continue
            if key not in seen:  # identical texts were asked once: count them once
                seen.add(key)
                counts.update(answer.counts)
                counts["chunks_answered"] += 1
                counts["chunks_from_cache"] += key not in fresh
            for name, _, kind, _ in answer.concepts:
                kinds.setdefault(name.casefold(), Counter())[kind] += 1
            for source, relation, target in answer.relations:
                edge_type, forward = RELATIONS[relation]
                source, target = (source, target) if forward else (target, source)
                facts.relations.append(StatedRelation(source, target, edge_type, chunk.id))
        facts.kinds = {  # the kind stated most often, a real kind before "other"
            name: min(tally.items(), key=lambda item: (item[0] == "other", -item[1], item[0]))[0]
            for name, tally in kinds.items()
        }
        facts.counts = dict(sorted(counts.items()))
        logger.info("llm extractor (%s): %s", self.endpoint.describe(), facts.counts)
        return facts


def _from_config(config: ConceptConfig) -> LLMExtractor:
    """The factory the registry calls; the endpoint is ``config.llm`` (validated to be set for this extractor)."""
    if config.llm is None:
        raise ValueError("the llm concept extractor needs an endpoint: give --llm-url URL and --llm-model NAME")
    return LLMExtractor(config.llm, max_words=config.max_words)


register_extractor(LLMExtractor.name, _from_config)
