"""``fieldtune push``: publish a build's model, with its card, to the Hugging Face Hub.

The card pushed is the build's own ``DIR/model/README.md`` (the same metadata,
``model-index`` and sections), with two things a reader on the Hub needs: the
usage snippet loads the repository instead of a local path, and ``model-index``
is named after the repository.

Everything that can be checked without the network is checked first (the
directory, the repository id, the token), then whether the Hub answers at all,
within seconds: on a machine without a network, libraries would otherwise retry
DNS for over a minute before failing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id

from fieldtune.card import USAGE_MARK
from fieldtune.errors import FieldtuneError, InputError
from fieldtune.models import host_reachable
from fieldtune.stages.artifacts import MODEL

#: where the token is read from (a write token from https://huggingface.co/settings/tokens)
TOKEN_ENV = "HF_TOKEN"
#: huggingface_hub's own variables: another Hub (a mirror, an enterprise Hub) and offline mode
ENDPOINT_ENV = "HF_ENDPOINT"
OFFLINE_ENV = "HF_HUB_OFFLINE"
DEFAULT_ENDPOINT = "https://huggingface.co"
CARD_NAME = "README.md"
#: seconds to wait for the Hub to accept a connection before giving up
REACH_TIMEOUT = 3.0


class PushError(FieldtuneError):
    """The model could not be pushed; the message says why and what to do."""


@dataclass(frozen=True)
class PushResult:
    """What was published: the repository, its address, and how many files the commit carried."""

    repo_id: str
    url: str
    files: int
    private: bool


def model_directory(path: str | Path) -> Path:
    """The model directory of a build directory (``DIR/model``), or ``path`` itself if it is one; it needs a card."""
    path = Path(path)
    model_dir = path / MODEL if (path / MODEL).is_dir() else path
    if not (model_dir / "modules.json").exists():
        raise InputError(path, "is neither a build directory (with model/) nor a sentence-transformers model directory",
                         hint="push the --out directory of `fieldtune build`")
    if not (model_dir / CARD_NAME).exists():
        raise InputError(model_dir, f"has no model card ({CARD_NAME})",
                         hint="`fieldtune build` writes it; rerun the build to finish it")
    return model_dir


def hub_card(text: str, repo_id: str) -> str:
    """The card as published: ``model-index`` named after the repository, the usage snippet loading it."""
    card = ModelCard(text)
    if card.data.eval_results:
        card.data.model_name = repo_id
    pattern = re.compile(r'SentenceTransformer\("[^"\n]*"\)' + re.escape(USAGE_MARK))
    card.text = pattern.sub(lambda _: f'SentenceTransformer("{repo_id}"){USAGE_MARK}', card.text)
    return card.content


def _token(token: str | None) -> str:
    token = token or os.environ.get(TOKEN_ENV) or get_token()  # get_token: a `hf auth login` on this machine
    if token is None:
        raise PushError(f"no Hugging Face token: set {TOKEN_ENV} to a write token "
                        "(create one at https://huggingface.co/settings/tokens), e.g. "
                        f"{TOKEN_ENV}=hf_... fieldtune push DIR --repo-id you/name, or log in once (`hf auth login`)")
    return token


def _check_repo_id(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise PushError(f"--repo-id {repo_id!r} is not a Hub repository id (owner/name): {error}") from None


def _check_reachable(endpoint: str) -> None:
    if os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "on", "true", "yes"}:
        raise PushError(f"{OFFLINE_ENV} is set, so the Hub may not be contacted; unset it to push")
    url = urlparse(endpoint)
    if not url.hostname:
        raise PushError(f"{ENDPOINT_ENV}={endpoint!r} is not a URL such as {DEFAULT_ENDPOINT}")
    port = url.port or (443 if url.scheme == "https" else 80)
    if not host_reachable(url.hostname, port, timeout=REACH_TIMEOUT):
        raise PushError(f"cannot reach {endpoint} (no answer from {url.hostname}:{port} within {REACH_TIMEOUT:.0f} s): "
                        "this machine seems to be offline; push from a machine with a network, "
                        "or copy the model directory there")


def upload_operations(model_dir: Path, repo_id: str) -> list[CommitOperationAdd]:
    """One commit's files: everything in the model directory (hidden files left out), the card as published."""
    card = hub_card((model_dir / CARD_NAME).read_text(encoding="utf-8"), repo_id)
    names = [p.relative_to(model_dir) for p in sorted(model_dir.rglob("*")) if p.is_file()]
    kept = [name for name in names if name.as_posix() != CARD_NAME and not any(p.startswith(".") for p in name.parts)]
    operations = [CommitOperationAdd(path_in_repo=name.as_posix(), path_or_fileobj=str(model_dir / name))
                  for name in kept]
    return [*operations, CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=card.encode("utf-8"))]


def push_model(path: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> PushResult:
    """Create (or reuse) the Hub repository ``repo_id`` and upload the model directory with its card in one commit."""
    model_dir = model_directory(path)
    _check_repo_id(repo_id)
    token = _token(token)
    endpoint = os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT
    _check_reachable(endpoint)

    operations = upload_operations(model_dir, repo_id)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.create_commit(repo_id, operations, commit_message=f"fieldtune push of {model_dir}")
    except (HfHubHTTPError, httpx.HTTPError, OSError) as error:  # httpx: a connection lost during the upload
        raise PushError(f"the Hub refused the push to {repo_id}: {error}") from error
    return PushResult(repo_id=url.repo_id or repo_id, url=str(url), files=len(operations), private=private)
