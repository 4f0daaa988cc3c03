"""Checkpoints: which revisions a source publishes, and one revision's files, fetched, verified and loaded safely.

Place in the data flow: after config, before the plan (the plan asks a source what
it publishes). It may import :mod:`circuitsweep.config`, :mod:`circuitsweep.io`
and :mod:`circuitsweep.errors`.

- :mod:`.revisions`: branch names, manifests and selections (``log_count``, ``every``, ...);
- :mod:`.hub`: Hub branch listing, verified downloads with retries and timeouts;
- :mod:`.local_hub`: folders in the Hub-cache layout (toy suite, packaged models);
- :mod:`.run_dir`: a training run's own checkpoint folders, listed by pattern and fingerprinted;
- :mod:`.snapshots`: one revision's snapshot folder and its verification record;
- :mod:`.loading`, :mod:`.streaming`: weights-only loading into the configured dtype and device.
"""
