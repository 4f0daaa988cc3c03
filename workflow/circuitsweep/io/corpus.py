"""The files of a natural-text corpus and their content digest (no torch: planning reads it).

A corpus is a file or a folder of :data:`CORPUS_SUFFIXES` files (read in path
order), or ``hf:<name or path>``, a Hugging Face dataset. Its digest is part of
the natural batch job's params, so a corpus edited in place rebuilds the batch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from circuitsweep.errors import DataError

CORPUS_SUFFIXES: tuple[str, ...] = (".txt", ".jsonl", ".parquet")
_BLOCK = 1 << 20


def corpus_files(corpus: str) -> list[Path]:
    """The files of a file or folder corpus, sorted by path; :class:`DataError` if there are none."""
    root = Path(corpus)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in CORPUS_SUFFIXES)
    else:
        raise DataError(f"natural-text corpus {corpus} does not exist")
    if not files or any(p.suffix not in CORPUS_SUFFIXES for p in files):
        raise DataError(f"natural-text corpus {corpus} holds no {'/'.join(CORPUS_SUFFIXES)} file")
    return files


def corpus_sha256(corpus: str) -> str | None:
    """sha256 (hex) over the names (relative to the corpus) and bytes of its files; None for ``hf:`` datasets."""
    if corpus.startswith("hf:"):
        return None
    root = Path(corpus)
    digest = hashlib.sha256()
    for path in corpus_files(corpus):
        name = path.relative_to(root).as_posix() if root.is_dir() else path.name
        digest.update(f"{name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            while block := handle.read(_BLOCK):
                digest.update(block)
    return digest.hexdigest()
