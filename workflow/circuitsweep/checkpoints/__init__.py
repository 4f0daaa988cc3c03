"""Checkpoints: fetch one revision's files, verify them, and load the model safely.

- :mod:`.hub`: Hub branch listing, verified downloads with retries and timeouts;
- :mod:`.local_hub`: folders in the Hub-cache layout (toy suite, packaged models);
- :mod:`.run_dir`: a training run's own checkpoint folders, listed by pattern and fingerprinted;
- :mod:`.snapshots`: one revision's snapshot folder and its verification record;
- :mod:`.loading`: weights-only loading into the configured dtype and device.
"""
