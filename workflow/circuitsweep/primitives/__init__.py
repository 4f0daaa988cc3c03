"""Semantic primitives (docs/primitives.md): do scaffolding primitives (0a) lean more
phenomenological than content primitives (0b), layer by layer and checkpoint
by checkpoint, and do operator + seed compositions land on their
pre-registered targets?

Stimuli are data (``config/primitives.yaml``, read by :mod:`circuitsweep.config.stimuli`). Per
revision, ``measure.measure_primitives`` (needs the model) caches hidden-state
summaries and ``behaviour.measure_behaviour`` (generative models with a
tokenizer) caches word counts of sampled continuations;
``scoring.score_primitives`` turns a cache into the tables without a model
(nor torch).
``stage`` holds what the workflow's rules run. Nothing heavy is imported
here, so planning a sweep stays fast.

Place in the data flow: after the plan, beside heads (it reuses the heads'
first-token policy); it may import :mod:`circuitsweep.heads` and every stage before it.
"""
