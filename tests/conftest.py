"""Settings every test module shares."""

from __future__ import annotations

import pytest

#: The modules whose end-to-end runs take minutes, longest first (`pytest --durations=0`: the default toy run
#: alone is about 500 s of one core's time). They are collected first, so that with one worker per core
#: (pytest-xdist, pyproject's addopts) they start at once and the short modules fill the other workers.
SLOW_MODULES = ("test_workflow.py", "test_refine_workflow.py", "test_benchmark.py", "test_decoder_classes_sweep.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the slow modules' tests to the front, each module's tests kept together and in their order."""
    rank = {name: position for position, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
