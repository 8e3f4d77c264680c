"""A local OpenAI-compatible server for a GGUF model: llama-cpp-python's, started and stopped from Python.

For the tests and the benchmark (and for users who want one command):
:func:`serve_gguf` starts ``python -m llama_cpp.server`` on a free local port,
waits until ``/v1/models`` lists the model, yields its URL, and stops it.
Needs ``pip install 'fieldtune[llm-server]'`` (llama-cpp-python compiles
llama.cpp from source: ~11 minutes on 2 cores). The command line it runs is
:func:`server_command`, the same as in the README's "Using a local LLM".
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fieldtune.errors import require_extra
from fieldtune.llm.client import LLMClient, LLMEndpoint, LLMEndpointError

#: seconds a server may take to load its model and answer /v1/models
START_TIMEOUT_S = 180.0
_LOG_TAIL = 3000


def free_port() -> int:
    """A local TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(model: Path, *, alias: str, port: int, threads: int, n_ctx: int = 2048,
                   api_key: str | None = None) -> list[str]:
    """The llama-cpp-python server command line (logits only for the last token: Gemma's vocabulary is 262k)."""
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", alias,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
               "--n_threads_batch", str(threads), "--logits_all", "False", "--verbose", "False"]
    return [*command, "--api_key", api_key] if api_key else command


@contextlib.contextmanager
def serve_gguf(model: Path, *, alias: str, threads: int = 2, n_ctx: int = 2048, api_key: str | None = None,
               log: Path | None = None) -> Iterator[str]:
    """Serve ``model`` as ``alias`` on a free port; yields the URL (``http://127.0.0.1:PORT/v1``).

    Raises :class:`LLMEndpointError` with the end of the server's log when it exits or does not answer in
    :data:`START_TIMEOUT_S` seconds.
    """
    require_extra("llama_cpp", "llm-server")
    port = free_port()
    log = log or Path(tempfile.gettempdir()) / f"fieldtune-llama-server-{port}.log"
    with open(log, "wb") as out:
        # llama.cpp's OpenMP pool follows OMP_NUM_THREADS, which a caller on a shared machine may have set to 1
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        process = subprocess.Popen(server_command(model, alias=alias, port=port, threads=threads, n_ctx=n_ctx,
                                                  api_key=api_key), stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait(process, LLMEndpoint(url, alias, connect_timeout=1.0), api_key, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait(process: subprocess.Popen, endpoint: LLMEndpoint, api_key: str | None, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with LLMClient(endpoint, api_key=api_key) as client:
        while True:
            if process.poll() is not None:
                raise LLMEndpointError(f"the llama.cpp server exited ({process.returncode}):\n"
                                       f"{log.read_text(errors='replace')[-_LOG_TAIL:]}")
            with contextlib.suppress(LLMEndpointError):
                if endpoint.model in client.models():
                    return
            if time.monotonic() > deadline:
                raise LLMEndpointError(f"the llama.cpp server did not answer in {START_TIMEOUT_S:.0f}s:\n"
                                       f"{log.read_text(errors='replace')[-_LOG_TAIL:]}")
            time.sleep(0.5)
