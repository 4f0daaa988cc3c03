"""The random streams of primitive scoring: one per use, all from ``scoring.seed``.

Every draw in scoring comes from ``SeedSequence(seed, spawn_key=(k,))`` for a
key that names its use, so no two uses read the same stream: the permutation
null of the gaps does not replay the shuffle that dealt the abstract
lexicon's folds, and the two composition nulls do not replay either fold
deal. Keys 0-2 are the ones the folds and the lexicon bootstrap have used
since they were written (``SeedSequence(seed).spawn(3)[k]``), so their draws,
and the gaps they give, are unchanged.
"""

from __future__ import annotations

import numpy as np

FOLDS_PHENOMENOLOGICAL = 0
FOLDS_ABSTRACT = 1
LEXICON_BOOTSTRAP = 2
GAP_PERMUTATIONS = 3
COMPOSITIONS_OPERATOR_SHUFFLED = 4
COMPOSITIONS_SEED_SHUFFLED = 5


def stream(seed: int, key: int) -> np.random.Generator:
    """The Generator of use ``key`` (one of this module's constants) under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key,)))
