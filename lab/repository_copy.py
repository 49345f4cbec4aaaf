"""Copies of a model repository for lab measurements: hard links, and where a measurement is
no client's request, the tokenizer's token budget lifted.

The budget (`max_request_tokens`) bounds what one client's request may cost on the CPU pod. A
request that stands for a batch the server would form from many one-text requests (the
simulator's service times), or one sent to a repository whose encoder costs nothing (the serving
path), is not such a request, and the budget would refuse it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pod_hooks.fit_instances import lift_request_tokens

TOKENIZER_CONFIG = Path("tokenizer") / "config.pbtxt"


def linked_copy(source: Path, destination: Path) -> Path:
    """`source` copied to `destination` (emptied first), hard links where possible: a copy of
    the encoder costs nothing. Rewrite a file of the copy with `replace_text`, never in place:
    writing through a hard link would change the source."""
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(source, destination, copy_function=_link_or_copy, symlinks=True)
    return destination


def replace_text(path: Path, text: str) -> None:
    """Give `path` (a hard link into the source, maybe) content of its own."""
    path.unlink()
    path.write_text(text)


def lift_token_budget(repository: Path) -> Path:
    """The tokenizer's `max_request_tokens` lifted to what its other limits allow, where the
    repository has one."""
    tokenizer = repository / TOKENIZER_CONFIG
    if tokenizer.is_file():
        replace_text(tokenizer, lift_request_tokens(tokenizer.read_text(), tokenizer))
    return repository


def _link_or_copy(source: str, destination: str) -> str:
    try:
        Path(destination).hardlink_to(source)
    except OSError:
        shutil.copy2(source, destination)
    return destination
