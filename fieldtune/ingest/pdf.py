"""Text from PDF files, via the optional ``pypdf`` dependency."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

_INSTALL = "pip install fieldtune[pdf]"


class UnreadablePdf(Exception):
    """A PDF that could not be parsed or holds no extractable text."""


def require_pypdf() -> ModuleType:
    """Import ``pypdf`` or say which extra installs it."""
    try:
        import pypdf
    except ImportError as err:
        raise ImportError(f"reading PDF files needs pypdf: {_INSTALL}") from err
    return pypdf


def extract_pdf_text(path: Path) -> str:
    """All pages' text, pages separated by a blank line.

    Raises :class:`UnreadablePdf` for a file pypdf cannot parse, an encrypted
    file without an empty password, or one without any text (scanned images).
    """
    pypdf = require_pypdf()
    try:
        with path.open("rb") as handle:
            reader = pypdf.PdfReader(handle)
            if reader.is_encrypted and not reader.decrypt(""):
                raise UnreadablePdf("is encrypted with a password")
            pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadablePdf:
        raise
    except OSError as err:
        raise UnreadablePdf(f"cannot be read ({err.strerror or err})") from err
    except Exception as err:  # pypdf raises many exception types for damaged files
        raise UnreadablePdf(f"cannot be parsed as PDF ({type(err).__name__}: {err})") from err
    text = "\n\n".join(page.replace("\x00", "").strip() for page in pages).strip()
    if not text:
        raise UnreadablePdf("has no extractable text (scanned pages? run OCR on it first)")
    return text
