"""The default, offline extractor: word n-grams that look like technical terms.

No language model, no download, no part-of-speech tagger. A chunk's words are
split into runs at stop words (function words, verbs and adjectives of
academic prose, see ``stopwords.txt``), punctuation, numbers, acronyms and
LaTeX; every 2..``max_words`` window of a run is a candidate unless it starts
with a generic noun ("problem ..."), consists only of generic nouns
("error bound"), or ends like a participle or adjective ("... induced",
"... continuous"). Which candidates become concepts is decided later from
corpus statistics (:mod:`fieldtune.concepts.terms`).

Single words are kept conservative: a single word is a candidate only if it is
rare in general English (not a whole word of the bundled model's WordPiece
vocabulary, the 30k most frequent word pieces of Wikipedia and books, in
singular or plural), at least 6 letters, and does not end like an adverb,
participle, verb or adjective. "cohomology", "hypergraph", "tableaux" pass;
"construction", "particularly", "interesting" do not.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from fieldtune.concepts.config import ConceptConfig
from fieldtune.concepts.extractors import (
    ExtractionCache,
    Found,
    TermCandidate,
    register_extractor,
    run_batches,
)
from fieldtune.concepts.text import (
    Token,
    generic_words,
    is_stopword,
    singularize,
    tokenize,
    word_lists_digest,
)
from fieldtune.models import DEFAULT_MODEL, resolve_model
from fieldtune.types import Chunk

logger = logging.getLogger("fieldtune.concepts")

#: Bump when the extraction rules change, so cached results are not reused.
RULES_VERSION = "1"
_BAD_LAST = ("ed", "ous", "able", "ible", "ful", "less")
_BAD_SINGLE = (
    "ly",
    "ed",
    "ing",
    "ize",
    "izes",
    "ise",
    "ises",
    "ous",
    "able",
    "ible",
    "ive",
    "ful",
    "less",
    "al",
    "ic",
    "ar",
)
MIN_SINGLE_LETTERS = 6


@functools.lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Whole words of the bundled model's vocabulary: a proxy for everyday English."""
    try:
        vocab = Path(resolve_model(DEFAULT_MODEL).location) / "vocab.txt"
        words = vocab.read_text(encoding="utf-8").split()
    except Exception as error:  # no bundled model: single words are simply not proposed
        logger.warning(
            "no vocabulary to tell common from technical words (%s); single-word terms disabled",
            error,
        )
        return frozenset()
    return frozenset(w for w in words if w.isalpha() and w.islower())


def _runs(tokens: Sequence[Token]) -> list[list[Token]]:
    """Maximal runs of consecutive non-stop tokens within one segment."""
    runs: list[list[Token]] = []
    current: list[Token] = []
    for token in tokens:
        if is_stopword(token.text):
            if current:
                runs.append(current)
            current = []
            continue
        if current and current[-1].segment != token.segment:
            runs.append(current)
            current = []
        current.append(token)
    if current:
        runs.append(current)
    return runs


def acceptable_phrase(words: Sequence[str]) -> bool:
    """Whether a multi-word window looks like a term (see the module docstring)."""
    generic, no_start = generic_words()
    lowered = [w.lower() for w in words]
    if lowered[0] in no_start or all(w in generic for w in lowered):
        return False
    return not lowered[-1].endswith(_BAD_LAST)


def technical_word(word: str, common: frozenset[str]) -> bool:
    """Whether a single word is rare and shaped like a technical noun."""
    lower = word.lower()
    if not common or len(lower) < MIN_SINGLE_LETTERS or not word[0].isalpha():
        return False
    generic, _ = generic_words()
    if lower in generic or lower.endswith(_BAD_SINGLE):
        return False
    if "-" in lower:  # "quasi-polynomial": technical if any part is
        return any(part not in common for part in lower.split("-") if len(part) > 2)
    return lower not in common and singularize(lower) not in common


@dataclass(frozen=True)
class StatisticalExtractor:
    """Candidate terms from word n-grams; registered as ``"statistical"``."""

    max_words: int = 4
    single_words: bool = True
    batch_size: int = 256
    name: ClassVar[str] = "statistical"

    def config_hash(self) -> str:
        """Identifies everything that changes this extractor's output."""
        common = common_words() if self.single_words else frozenset()
        vocab = hashlib.sha256("\n".join(sorted(common)).encode()).hexdigest()[:12]
        settings = (
            f"{RULES_VERSION}|{self.max_words}|{self.single_words}|{word_lists_digest()}|{vocab}"
        )
        return hashlib.sha256(settings.encode()).hexdigest()[:16]

    def extract(
        self,
        chunks: Sequence[Chunk],
        *,
        cache: ExtractionCache | None = None,
        progress: bool = True,
    ) -> list[TermCandidate]:
        return run_batches(
            self.name,
            self.config_hash(),
            chunks,
            self.extract_batch,
            batch_size=self.batch_size,
            cache=cache,
            progress=progress,
        )

    def extract_batch(self, texts: Sequence[str]) -> list[list[Found]]:
        """Candidates of each text: (surface, offset, "")."""
        common = common_words() if self.single_words else frozenset()
        return [self.extract_text(text, common) for text in texts]

    def extract_text(self, text: str, common: frozenset[str]) -> list[Found]:
        """Candidates of one text; ``common`` is everyday vocabulary (empty: no single words)."""
        found: list[Found] = []
        for run in _runs(tokenize(text)):
            words = [token.text for token in run]
            for i, token in enumerate(run):
                if common and technical_word(token.text, common):
                    found.append((token.text, token.start, ""))
                for n in range(2, min(self.max_words, len(run) - i) + 1):
                    window = words[i : i + n]
                    if acceptable_phrase(window):
                        found.append((" ".join(window), token.start, ""))
        return found


def _from_config(config: ConceptConfig) -> StatisticalExtractor:
    """The factory the registry calls: the extractor's settings are part of :class:`ConceptConfig`."""
    return StatisticalExtractor(
        max_words=config.max_words, single_words=config.single_words, batch_size=config.batch_size
    )


register_extractor(StatisticalExtractor.name, _from_config)
