"""Token-aware chunking with stable ids.

Lengths are measured with the model's own tokenizer. A document is tokenized
once (with character offsets); chunks are windows of at most ``max_tokens``
tokens that end at a sentence boundary where one fits, and the next window
starts ``overlap`` tokens back (again snapped to a sentence start where
possible). Each chunk's text is the exact character span of the document it
covers, so every token of the document lands in some chunk and a rebuild with
the same settings yields the same ``<doc_id>#<n>`` ids.
"""

from __future__ import annotations

import bisect
import copy
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fieldtune.types import Chunk, Document

DEFAULT_MAX_TOKENS = 256
DEFAULT_OVERLAP = 32

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets)
# before whitespace, or at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n")


class TokenOffsets(Protocol):
    """Character spans of a text's tokens, in order (special tokens excluded), and
    the indices of tokens that begin a word (a cut inside a word would re-tokenize
    into more pieces than were counted)."""

    def __call__(self, text: str) -> tuple[list[tuple[int, int]], list[int]]: ...


@dataclass(frozen=True)
class ChunkingConfig:
    max_tokens: int = DEFAULT_MAX_TOKENS
    overlap: int = DEFAULT_OVERLAP

    def validate(self) -> None:
        if self.max_tokens < 8:
            raise ValueError(f"max_tokens must be at least 8 (got {self.max_tokens})")
        if not 0 <= self.overlap < self.max_tokens // 2:
            raise ValueError(
                f"overlap must be between 0 and half of max_tokens ({self.max_tokens // 2}); got {self.overlap}"
            )


def tokenizer_offsets(tokenizer: Any) -> TokenOffsets:
    """Adapt a Hugging Face tokenizer (fast or slow) to a :class:`TokenOffsets`."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # A copy without the model's truncation (MiniLM's tokenizer.json truncates at 128):
        # we must see every token to measure and cover the whole document.
        backend = copy.deepcopy(backend)
        backend.no_truncation()
        backend.no_padding()
        # The Rust tokenizer: no length warnings, no truncation, fast.
        def offsets(text: str) -> tuple[list[tuple[int, int]], list[int]]:
            encoding = backend.encode(text, add_special_tokens=False)
            kept = [
                (span, word)
                for span, word in zip(encoding.offsets, encoding.word_ids, strict=True)
                if span[1] > span[0]
            ]
            spans = [span for span, _ in kept]
            words = [i for i, (_, word) in enumerate(kept) if i == 0 or word is None or word != kept[i - 1][1]]
            return spans, words

        return offsets

    def slow_offsets(text: str) -> tuple[list[tuple[int, int]], list[int]]:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
        spans = [tuple(span) for span in encoded["offset_mapping"] if span[1] > span[0]]
        # Without word ids, a token that follows a gap begins a word.
        words = [i for i, span in enumerate(spans) if i == 0 or span[0] > spans[i - 1][1]]
        return spans, words

    return slow_offsets


def sentence_starts(text: str) -> list[int]:
    """Character positions where sentences begin (always includes 0)."""
    starts = [0]
    for match in _SENTENCE_END.finditer(text):
        if match.end() < len(text):
            starts.append(match.end())
    return starts


def _token_boundaries(spans: Sequence[tuple[int, int]], char_starts: Sequence[int]) -> list[int]:
    """Token indices at which a sentence starts (sorted, unique, includes 0)."""
    token_starts = [start for start, _ in spans]
    indices = {0}
    for char in char_starts:
        index = bisect.bisect_left(token_starts, char)
        if index < len(spans):
            indices.add(index)
    return sorted(indices)


def _latest(points: Sequence[int], start: int, limit: int) -> int | None:
    """The largest point in (start, limit], if any."""
    cut = bisect.bisect_right(points, limit) - 1
    return points[cut] if cut >= 0 and points[cut] > start else None


def _earliest(points: Sequence[int], low: int, below: int) -> int | None:
    """The smallest point in [low, below), if any."""
    index = bisect.bisect_left(points, low)
    return points[index] if index < len(points) and points[index] < below else None


def _windows(
    n_tokens: int, boundaries: Sequence[int], word_starts: Sequence[int], max_tokens: int, overlap: int
) -> Iterator[tuple[int, int]]:
    """Yield [start, end) token windows covering 0..n_tokens."""
    start = 0
    while start < n_tokens:
        limit = start + max_tokens
        if limit >= n_tokens:
            yield start, n_tokens
            return
        # Latest sentence boundary that still fits, unless it would leave a sliver;
        # otherwise the latest word start; a word longer than a window is cut anyway.
        end = _latest(boundaries, start, limit)
        if end is None or end - start < max_tokens // 4:
            end = _latest(word_starts, start, limit) or limit
        yield start, end
        if overlap == 0:
            start = end
            continue
        # Step back by at most `overlap` tokens, preferring a sentence start.
        # The next window must still advance, so never step back to `start` itself.
        back = max(end - overlap, start + 1)
        start = _earliest(boundaries, back, end) or _earliest(word_starts, back, end) or end


def chunk_document(document: Document, offsets: TokenOffsets, config: ChunkingConfig) -> list[Chunk]:
    """Split one document into chunks; a title-only document becomes one empty-text chunk."""
    text = document.text
    spans, word_starts = offsets(text) if text.strip() else ([], [])
    if not spans:
        return [Chunk(f"{document.id}#0", document.id, 0, "", 0, 0, 0, document.title)]
    boundaries = _token_boundaries(spans, sentence_starts(text))
    chunks = []
    for n, (first, last) in enumerate(_windows(len(spans), boundaries, word_starts, config.max_tokens, config.overlap)):
        start, end = spans[first][0], spans[last - 1][1]
        chunks.append(
            Chunk(
                id=f"{document.id}#{n}",
                doc_id=document.id,
                index=n,
                text=text[start:end],
                start=start,
                end=end,
                n_tokens=last - first,
                title=document.title,
            )
        )
    return chunks


def chunk_documents(documents: Iterable[Document], tokenizer: Any, config: ChunkingConfig | None = None) -> list[Chunk]:
    """Chunk every document with ``tokenizer`` (a Hugging Face tokenizer)."""
    config = config or ChunkingConfig()
    config.validate()
    offsets = tokenizer_offsets(tokenizer)
    chunks: list[Chunk] = []
    for document in documents:
        chunks.extend(chunk_document(document, offsets, config))
    return chunks


def load_tokenizer(model_spec: str) -> Any:
    """The tokenizer of a registered model or model directory, without loading weights."""
    from fieldtune.models import check_model_files, enforce_offline, resolve_model

    ref = resolve_model(model_spec)
    if ref.kind != "hub":
        enforce_offline()
        check_model_files(Path(ref.location))  # a truncated tokenizer.json is named, not a traceback
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ref.location)
