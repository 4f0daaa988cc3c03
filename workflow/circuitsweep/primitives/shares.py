"""The phenomenological share of a primitive's evidence: from behavioural word counts and next-token masses.

Each score is phen / (phen + abstract), NaN where the primitive found no word
of either lexicon (so it is left out of a gap rather than scored 0). NumPy only:
the scoring job uses these without torch.
"""

from __future__ import annotations

import numpy as np


def lexicon_hits(phenomenological: np.ndarray, abstract: np.ndarray) -> np.ndarray:
    """Per primitive, lexicon words found in all its continuations: ``[P]`` from ``[P, K]`` counts."""
    return np.asarray(phenomenological, dtype=np.int64).sum(-1) + np.asarray(abstract, dtype=np.int64).sum(-1)


def lexicon_share(phenomenological: np.ndarray, abstract: np.ndarray) -> np.ndarray:
    """Per primitive, phen / (phen + abstract) over all its continuations, NaN if none: ``[P]`` from ``[P, K]``."""
    p = np.asarray(phenomenological, dtype=np.float64).sum(-1)
    total = lexicon_hits(phenomenological, abstract).astype(np.float64)
    return np.divide(p, total, out=np.full_like(p, np.nan), where=total > 0)


def next_word_share(phenomenological: np.ndarray, abstract: np.ndarray) -> np.ndarray:
    """phen / (phen + abstract) of the next-token masses ``[P]``; NaN where both are 0 (no lexicon token)."""
    p = np.asarray(phenomenological, dtype=np.float64)
    total = p + np.asarray(abstract, dtype=np.float64)
    return np.divide(p, total, out=np.full_like(p, np.nan), where=total > 0)
