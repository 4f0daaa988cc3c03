"""Training-checkpoint revisions: branch names, selection rules and manifests.

Pure and offline: no network and no torch. A *revision* is one published
branch of a Hub repository that holds a pretraining checkpoint. Two naming
schemes occur in the three studied models:

- ``stepN`` (Pythia): tokens are not in the name, so the caller gives the
  tokens per optimizer step and tokens = N x tokens_per_step;
- ``stepN-tokensX<unit>`` (OLMo, OLMoE): tokens are READ from the name and never
  recomputed, because the published names drift from step x batch (OLMo 1B 0724
  names ``step1454000-tokens3048B`` although 1454000 x 2^21 is 3049.3B).

Other branch names (``main``, ``v1``...) are not checkpoints and are skipped
unless the caller maps them (``aliases``). A *manifest* is a JSON list of the
revisions of one repository, bundled under ``config/revisions/`` so that the
workflow can build its DAG offline in milliseconds.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import json
import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from circuitsweep.config.patterns import branch_pattern_regex
from circuitsweep.errors import InputError
from circuitsweep.io.atomic import atomic_write_text
from circuitsweep.io.json_text import json_type, short_json
from circuitsweep.io.names import check_name

MANIFEST_FORMAT = "circuitsweep.revisions/1"

#: Bundled manifests live at ``<repository root>/config/revisions``.
BUNDLED_DIR = Path(__file__).resolve().parents[3] / "config" / "revisions"

#: Decimal multipliers of the token units used in branch names.
TOKEN_UNITS: dict[str, int] = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}

_STEP_RE = re.compile(r"step(\d+)(?:-tokens(\d+(?:\.\d+)?)([KMBTkmbt]?))?")

PYTHIA_TOKENS_PER_STEP = 2_097_152  # 1024 sequences x 2048 tokens
OLMO_0724_TOKENS_PER_STEP = 2_097_152  # 512 x 4096; names drift from it, read them
OLMOE_TOKENS_PER_STEP = 4_194_304  # 1024 x 4096


#: The largest step or token count a revision may have: the tables store them as signed 64-bit integers.
MAX_COUNT = 2**63 - 1


@dataclass(frozen=True)
class Revision:
    """One checkpoint branch: its name, optimizer step and training tokens seen.

    ``commit`` (40-hex) is known when listed from the Hub or a refreshed
    manifest; it does not take part in equality, so a revision read from a
    bundled manifest equals the same revision listed from the Hub.
    """

    name: str
    step: int
    tokens: int
    commit: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # the name becomes a folder of the results tree: refuse '..', '/', control characters
        check_name(self.name, "revision name")
        for what, value in (("step", self.step), ("tokens", self.tokens)):
            if not 0 <= value <= MAX_COUNT:
                raise ValueError(
                    f"revision {self.name}: {what} {value} is outside 0 .. 2^63-1, the range the tables hold"
                )

    def to_json(self) -> dict[str, Any]:
        """The manifest entry of this revision (commit only when known)."""
        entry: dict[str, Any] = {"name": self.name, "step": self.step, "tokens": self.tokens}
        if self.commit:
            entry["commit"] = self.commit
        return entry

    @classmethod
    def from_json(cls, entry: Mapping[str, Any], index: int | None = None) -> Revision:
        """Inverse of :meth:`to_json`. Raises ``ValueError`` naming the entry (by name, else as entry ``index``,
        counted from 1) for anything but a name, whole non-negative step and tokens and an optional commit."""
        where = "a revision entry" if index is None else f"revision entry {index}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} is a JSON {json_type(entry)}, not an object with name, step and tokens")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where} has name {short_json(name)}, not a branch name (a string)")
        where = f"revision {name!r}"
        counts = []
        for key in ("step", "tokens"):
            if key not in entry:
                raise ValueError(f"{where}: no {key!r}")
            value = entry[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{where}: {key} {short_json(value)} is not a count (a whole number >= 0)")
            counts.append(value)
        commit = entry.get("commit")
        if commit is not None and not isinstance(commit, str):
            raise ValueError(f"{where}: commit {short_json(commit)} is not a commit id (a string)")
        return cls(name, counts[0], counts[1], commit)


# ---------------------------------------------------------------------------
# Parsing branch names


def parse_tokens(text: str, unit: str = "") -> int:
    """Token count written in a branch name: ``2`` + ``B`` -> 2_000_000_000 (decimal units)."""
    multiplier = TOKEN_UNITS[unit.upper()] if unit else 1
    return int(Decimal(text) * multiplier)


def is_checkpoint_name(name: str) -> bool:
    """Whether ``name`` claims to be a checkpoint branch (starts with ``step`` and a digit)."""
    return name.startswith("step") and name[4:5].isdigit()


def parse_branch(name: str, *, tokens_per_step: int | None = None, commit: str | None = None) -> Revision:
    """Parse one checkpoint branch name into a :class:`Revision`.

    ``stepN-tokensX<unit>``: tokens read from the name. ``stepN``: tokens =
    N x ``tokens_per_step``, which must then be given. Raises ``ValueError``
    naming the branch for anything else.
    """
    match = _STEP_RE.fullmatch(name)
    if match is None:
        raise ValueError(
            f"branch {name!r} is not a checkpoint name: expected 'stepN' or 'stepN-tokensX' with X in K/M/B/T units"
        )
    step = int(match.group(1))
    if match.group(2) is not None:
        return Revision(name, step, parse_tokens(match.group(2), match.group(3)), commit)
    if tokens_per_step is None:
        raise ValueError(f"branch {name!r} has no token count in its name; give tokens_per_step to compute it")
    return Revision(name, step, step * tokens_per_step, commit)


@dataclass(frozen=True)
class BranchPattern:
    """A ``source.branch_pattern``: branch names as a format string with ``{step}`` and optionally ``{tokens}``.

    The format-string rules of a run_dir ``pattern`` (one ``{step}``, optionally
    ``{step:07d}``-style), plus ``{tokens}``: a decimal count whose unit is the
    letter right after the field in the pattern (K, M, B or T; none: tokens),
    e.g. ``stage1-step{step}-tokens{tokens}B`` (OLMo 2). Tokens in a name are
    read from it, never recomputed; without ``{tokens}`` they are step x tokens_per_step.
    """

    pattern: str

    def __post_init__(self) -> None:
        self.regex  # noqa: B018 - validates the pattern

    @functools.cached_property
    def regex(self) -> re.Pattern[str]:
        return branch_pattern_regex(self.pattern)

    @property
    def unit(self) -> str:
        """The unit letter after ``{tokens}`` ("" when none)."""
        parts = list(string.Formatter().parse(self.pattern))
        for i, (_, name, _, _) in enumerate(parts):
            if name == "tokens" and i + 1 < len(parts):
                following = parts[i + 1][0][:1]
                return following.upper() if following.upper() in TOKEN_UNITS else ""
        return ""

    def parse(self, name: str, tokens_per_step: int | None, commit: str | None = None) -> Revision | None:
        """The revision branch ``name`` holds, or None when it does not match the pattern."""
        match = self.regex.fullmatch(name)
        if match is None:
            return None
        step = int(match.group("step"))
        if "tokens" in match.groupdict():
            return Revision(name, step, int(Decimal(match.group("tokens")) * TOKEN_UNITS.get(self.unit, 1)), commit)
        if tokens_per_step is None:
            raise ValueError(f"branch {name!r} has no token count in its name; give tokens_per_step to compute it")
        return Revision(name, step, step * tokens_per_step, commit)


def lacks_token_count(name: str) -> bool:
    """Whether branch ``name`` is a checkpoint name without a token count (``stepN``): tokens need tokens_per_step."""
    match = _STEP_RE.fullmatch(name)
    return match is not None and match.group(2) is None


def parse_branches(
    names: Iterable[str],
    *,
    tokens_per_step: int | None = None,
    aliases: Mapping[str, int | tuple[int, int]] | None = None,
    commits: Mapping[str, str] | None = None,
    pattern: str | None = None,
) -> list[Revision]:
    """Checkpoint revisions among branch ``names``, sorted by (step, tokens, name).

    Names that do not start with ``step<digit>`` (``main``...) are skipped
    unless ``aliases`` maps them to a step, or to (step, tokens). Names that
    start like a checkpoint but do not parse raise ``ValueError``. With
    ``pattern`` (a :class:`BranchPattern`'s format string), the checkpoints are
    the names that match it, and every other name is skipped.
    """
    aliases = aliases or {}
    commits = commits or {}
    revisions: list[Revision] = []
    branch_pattern = BranchPattern(pattern) if pattern else None
    for name in names:
        commit = commits.get(name)
        if branch_pattern is not None and name not in aliases:
            revision = branch_pattern.parse(name, tokens_per_step, commit)
            if revision is not None:
                revisions.append(revision)
        elif name in aliases:
            revisions.append(_alias_revision(name, aliases[name], tokens_per_step, commit))
        elif is_checkpoint_name(name):
            revisions.append(parse_branch(name, tokens_per_step=tokens_per_step, commit=commit))
    return sort_revisions(revisions)


def _alias_revision(
    name: str, target: int | tuple[int, int], tokens_per_step: int | None, commit: str | None
) -> Revision:
    """A revision for a non-checkpoint branch that the caller maps to a step (and tokens)."""
    if isinstance(target, tuple):
        return Revision(name, int(target[0]), int(target[1]), commit)
    if tokens_per_step is None:
        raise ValueError(f"branch {name!r} is aliased to step {target} but tokens_per_step is not given")
    return Revision(name, int(target), int(target) * tokens_per_step, commit)


def same_point(revisions: Iterable[Revision]) -> list[tuple[Revision, Revision]]:
    """Pairs of revisions at one point of training (equal step and tokens), each pair once, in training order.

    Two names for one checkpoint (``stage1-step100-tokens1B`` and ``stage1-step0100-tokens1B``) would be
    measured twice and count twice in every table ordered by tokens and step."""
    first: dict[tuple[int, int], Revision] = {}
    pairs = []
    for revision in sort_revisions(revisions):
        seen = first.setdefault((revision.step, revision.tokens), revision)
        if seen is not revision:
            pairs.append((seen, revision))
    return pairs


def fewer_tokens(revisions: Iterable[Revision]) -> list[tuple[Revision, Revision]]:
    """Revisions with fewer tokens than a revision at an earlier step, each as (that earlier revision, the most
    tokens so far; the revision), in training order: tokens never decrease as training goes on, so one of the
    two is misstated (an extra zero in a manifest or a hub_repos entry)."""
    pairs = []
    most: Revision | None = None
    for revision in sort_revisions(revisions):
        if most is not None and revision.step > most.step and revision.tokens < most.tokens:
            pairs.append((most, revision))
        if most is None or revision.tokens > most.tokens:
            most = revision
    return pairs


def sort_revisions(revisions: Iterable[Revision]) -> list[Revision]:
    """Revisions in training order: by step, then tokens, then name."""
    return sorted(revisions, key=lambda r: (r.step, r.tokens, r.name))


# ---------------------------------------------------------------------------
# Selection rules


def select_revisions(revisions: Sequence[Revision], spec: Any, *, model: str = "") -> list[Revision]:
    """Apply a selection rule from the config to the available ``revisions``.

    ``spec`` is one of the schema's forms: ``"all"``; a list of revision
    names (or steps, as ints); ``{"every": k}``; or
    ``{"log_count": n, "by": "tokens"|"steps"}``. Returns revisions in
    training order. ``model`` names the model in error messages.
    """
    ordered = sort_revisions(revisions)
    if spec == "all" or spec is None:
        return ordered
    if isinstance(spec, (list, tuple)):
        return select_explicit(ordered, spec, model=model)
    if isinstance(spec, Mapping):
        return _select_from_mapping(ordered, spec, model=model)
    raise ValueError(f"unknown revision selection {spec!r} for {model or 'model'}")


def _select_from_mapping(ordered: list[Revision], spec: Mapping[str, Any], *, model: str) -> list[Revision]:
    """Dispatch a mapping-form selection rule."""
    if "every" in spec:
        return select_every(ordered, int(spec["every"]))
    if "log_count" in spec:
        return select_log_count(ordered, int(spec["log_count"]), by=str(spec.get("by", "tokens")))
    raise ValueError(f"unknown revision selection {dict(spec)!r} for {model or 'model'}: use every or log_count")


def select_every(revisions: Sequence[Revision], k: int) -> list[Revision]:
    """Every ``k``-th revision in training order, always keeping the first and the last."""
    if k < 1:
        raise ValueError(f"every must be >= 1, got {k}")
    ordered = sort_revisions(revisions)
    if not ordered:
        return []
    chosen = ordered[::k]
    if chosen[-1] is not ordered[-1]:
        chosen.append(ordered[-1])
    return chosen


def select_log_count(revisions: Sequence[Revision], n: int, *, by: str = "tokens") -> list[Revision]:
    """``n`` revisions log-spaced in tokens (or steps), always including the first and the last.

    A revision at 0 (step0) has no logarithm: it is kept as the first, and the
    other n - 1 are log-spaced from the smallest positive value to the last.
    Each log-spaced target takes the nearest revision not taken yet, so the
    result has exactly min(n, len(revisions)) distinct revisions.
    """
    if by not in ("tokens", "steps"):
        raise ValueError(f"log_count spacing must be 'tokens' or 'steps', got {by!r}")
    if n < 2:
        raise ValueError(f"log_count must be >= 2 (first and last are always kept), got {n}")
    ordered = sort_revisions(revisions)
    if n >= len(ordered):
        return ordered
    value = (lambda r: r.tokens) if by == "tokens" else (lambda r: r.step)
    zeros = [r for r in ordered if value(r) <= 0]
    positive = [r for r in ordered if value(r) > 0]
    head = zeros[:1]
    chosen_positive = _nearest_log_spaced(positive, n - len(head), value)
    return head + chosen_positive


def _nearest_log_spaced(revisions: list[Revision], n: int, value: Any) -> list[Revision]:
    """``n`` of ``revisions`` (sorted, values > 0) nearest to log-spaced targets, both ends included."""
    if n >= len(revisions):
        return list(revisions)
    if n == 1:
        return [revisions[-1]]
    logs = [math.log(value(r)) for r in revisions]
    lo, hi = logs[0], logs[-1]
    taken = {0, len(logs) - 1}
    for i in range(1, n - 1):
        taken.add(_nearest_free(logs, lo + (hi - lo) * i / (n - 1), taken))
    return [revisions[i] for i in sorted(taken)]


def _nearest_free(logs: list[float], target: float, taken: set[int]) -> int:
    """Index of the value in sorted ``logs`` nearest to ``target`` that is not in ``taken``."""
    right = bisect.bisect_left(logs, target)
    left = right - 1
    while left >= 0 and left in taken:
        left -= 1
    while right < len(logs) and right in taken:
        right += 1
    candidates = [i for i in (left, right) if 0 <= i < len(logs)]
    return min(candidates, key=lambda i: (abs(logs[i] - target), i))


def select_explicit(revisions: Sequence[Revision], wanted: Iterable[str | int], *, model: str = "") -> list[Revision]:
    """The requested revisions, by name (str) or step (int), in training order.

    Every unknown request is reported at once, naming the model and the
    closest published names.
    """
    by_name = {r.name: r for r in revisions}
    by_step: dict[int, list[Revision]] = {}
    for r in revisions:
        by_step.setdefault(r.step, []).append(r)
    chosen: dict[str, Revision] = {}
    unknown: list[str | int] = []
    for item in wanted:
        found = _lookup(item, by_name, by_step)
        if found is None:
            unknown.append(item)
        else:
            chosen[found.name] = found
    if unknown:
        raise ValueError(_unknown_message(unknown, revisions, model))
    return sort_revisions(chosen.values())


def _lookup(item: str | int, by_name: Mapping[str, Revision], by_step: Mapping[int, list[Revision]]) -> Revision | None:
    """One requested revision: a name, or a step (int) that exactly one revision has."""
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        matches = by_step.get(item, [])
        return matches[0] if len(matches) == 1 else None
    return by_name.get(str(item))


#: The step number a requested revision name carries (``step9999``, ``stage1-step100-tokens1B``).
_NAMED_STEP_RE = re.compile(r"step[-_]?(\d+)", re.IGNORECASE)
#: A name that ends in digits after some fixed text (``checkpoint-999``, ``iter_0001000``): text, digits.
_TRAILING_DIGITS_RE = re.compile(r"(.*?)(\d+)")


def _trailing_step(name: str) -> tuple[str, int] | None:
    """``(fixed text, number)`` of a name ending in digits (``checkpoint-999``: ``("checkpoint-", 999)``), or None."""
    match = _TRAILING_DIGITS_RE.fullmatch(name)
    return (match.group(1), int(match.group(2))) if match else None


def _requested_step(item: str | int, revisions: Sequence[Revision] = ()) -> int | None:
    """The step a requested revision names: an int request itself, the number after ``step`` in a name, or
    the digits a name ends in where a published revision is named by the same text and its own step
    (``checkpoint-999`` beside ``checkpoint-50`` at step 50, a run_dir's folders)."""
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item
    match = _NAMED_STEP_RE.search(item)
    if match:
        return int(match.group(1))
    trailing = _trailing_step(item)
    if trailing is not None and any(_trailing_step(r.name) == (trailing[0], r.step) for r in revisions):
        return trailing[1]
    return None


def _closest(item: str | int, revisions: Sequence[Revision]) -> list[str]:
    """Published names nearest to ``item``: by step when it carries one, else by spelling."""
    step = _requested_step(item, revisions)
    if step is None or not revisions:
        return difflib.get_close_matches(str(item), [r.name for r in revisions], n=3, cutoff=0.6)
    distance = min(abs(r.step - step) for r in revisions)
    return [r.name for r in sort_revisions(revisions) if abs(r.step - step) == distance][:3]


def _unknown_message(unknown: Sequence[str | int], revisions: Sequence[Revision], model: str) -> str:
    """Error text for revisions that are not published, with the nearest names as hints.

    A request that carries a step (``step9999``, a step given as a number, or
    ``checkpoint-999`` where the published names end in their steps) is pointed
    at the published revision(s) nearest by step; any other name at the most
    similar spellings.
    """
    parts = []
    for item in unknown:
        close = _closest(item, revisions)
        hint = f" (closest: {', '.join(close)})" if close else ""
        parts.append(f"{str(item)!r}{hint}")
    known = len({r.name for r in revisions})
    return f"unknown revision(s) for {model or 'model'}: {'; '.join(parts)}; {known} revisions are known"


# ---------------------------------------------------------------------------
# Manifests


@dataclass(frozen=True)
class Manifest:
    """The revisions of one repository, as stored in a manifest file.

    ``partial`` is true when the list is known to be incomplete (built
    without reaching the Hub); ``refresh_manifest`` in :mod:`circuitsweep.checkpoints.hub`
    rebuilds it from the Hub's branch list. ``published``: about how many
    branches the repository has, where a partial list knows it.
    """

    repo_id: str
    revisions: tuple[Revision, ...]
    tokens_per_step: int | None = None
    partial: bool = False
    source: str = ""
    note: str = ""
    published: int | None = None

    def names(self) -> list[str]:
        """Revision names in training order."""
        return [r.name for r in self.revisions]

    def by_name(self) -> dict[str, Revision]:
        """Revisions keyed by branch name."""
        return {r.name: r for r in self.revisions}


def manifest_text(manifest: Manifest) -> str:
    """Deterministic JSON text of a manifest: header fields, then one revision per line."""
    header = {
        "format": MANIFEST_FORMAT,
        "repo_id": manifest.repo_id,
        "tokens_per_step": manifest.tokens_per_step,
        "partial": manifest.partial,
        "source": manifest.source,
        "note": manifest.note,
        "count": len(manifest.revisions),
    }
    if manifest.published is not None:
        header["published"] = manifest.published
    lines = [f" {json.dumps(key)}: {json.dumps(value)}," for key, value in header.items()]
    entries = ",\n".join("  " + json.dumps(r.to_json()) for r in manifest.revisions)
    return "{\n" + "\n".join(lines) + '\n "revisions": [\n' + entries + "\n ]\n}\n"


def write_manifest(path: Path | str, manifest: Manifest) -> None:
    """Write ``manifest`` to ``path`` atomically (revisions sorted in training order)."""
    ordered = Manifest(
        manifest.repo_id,
        tuple(sort_revisions(manifest.revisions)),
        manifest.tokens_per_step,
        manifest.partial,
        manifest.source,
        manifest.note,
        manifest.published,
    )
    atomic_write_text(path, manifest_text(ordered))


#: The step a checkpoint name states: ``step`` and digits, not followed by a digit, a letter or a point
#: (``step1``, ``stage1-step100-tokens1B``; not ``step-1431k``, whose unit the name alone gives).
_STATED_STEP_RE = re.compile(r"(?<![A-Za-z])step(\d+)(?![A-Za-z\d.])")


def named_step(name: str) -> int | None:
    """The step a revision name states (``step1000-tokens2B``: 1000), or None when it states none."""
    match = _STATED_STEP_RE.search(name)
    return int(match.group(1)) if match else None


def read_manifest(path: Path | str) -> Manifest:
    """Read a manifest written by :func:`write_manifest`.

    Raises :class:`~circuitsweep.errors.InputError` (a ``ValueError``) in one line naming the file, and the
    revision where one is at fault, for a file that is not UTF-8 JSON, not a manifest object of this format,
    an entry without a name, a step or tokens that are not whole counts (null, NaN, ``2e12``, ``true``), a
    name that states another step than its entry, or a count that disagrees with the revisions listed.
    """
    data = _manifest_json(Path(path))
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a revision manifest (expected a JSON object, found a JSON {json_type(data)})")
    if data.get("format") != MANIFEST_FORMAT:
        raise InputError(
            f"{path}: not a revision manifest (format {data.get('format')!r}, expected {MANIFEST_FORMAT!r})"
        )
    repo_id = data.get("repo_id")
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or "" in repo_id.split("/"):
        raise InputError(f"{path}: repo_id {short_json(repo_id)} is not a Hub repository (owner/name)")
    entries = data.get("revisions")
    if not isinstance(entries, list):
        raise InputError(f"{path}: revisions is {short_json(entries)}, not a list of revision entries")
    revisions = []
    for index, entry in enumerate(entries, start=1):
        try:
            revision = Revision.from_json(entry, index)
        except ValueError as error:
            raise InputError(f"{path}: {error}") from None
        stated = named_step(revision.name)
        if stated is not None and stated != revision.step:
            raise InputError(
                f"{path}: revision {revision.name!r}: its name says step {stated} but its entry says step "
                f"{revision.step}; correct the entry"
            )
        revisions.append(revision)
    fields = {key: data.get(key) for key in ("count", "tokens_per_step", "published")}
    for key, value in fields.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InputError(f"{path}: {key} {short_json(value)} is not a count (a whole number >= 0)")
    if fields["count"] is not None and fields["count"] != len(revisions):
        raise InputError(f"{path}: manifest says {fields['count']} revisions but lists {len(revisions)}")
    if not isinstance(data.get("partial", False), bool):
        raise InputError(f"{path}: partial {short_json(data['partial'])} is not true or false")
    for key in ("source", "note"):
        if not isinstance(data.get(key, ""), str):
            raise InputError(f"{path}: {key} {short_json(data[key])} is not a string")
    return Manifest(
        repo_id=repo_id,
        revisions=tuple(revisions),
        tokens_per_step=fields["tokens_per_step"],
        partial=data.get("partial", False),
        source=data.get("source", ""),
        note=data.get("note", ""),
        published=fields["published"],
    )


def _manifest_json(path: Path) -> Any:
    """The JSON value of manifest file ``path``; :class:`InputError` naming it when it is not UTF-8 JSON."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text (byte {error.start}); a revision manifest is UTF-8 JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        cut = "; the file is empty" if not text.strip() else ""
        raise InputError(f"{path}: not JSON (line {error.lineno} column {error.colno}: {error.msg}){cut}") from None
    except RecursionError:
        raise InputError(f"{path}: not a revision manifest (nested too deep)") from None


def bundled_manifest(name: str) -> Manifest:
    """A manifest shipped in ``config/revisions`` by file stem, e.g. ``"pythia-1b"``."""
    return read_manifest(BUNDLED_DIR / f"{name}.json")


# ---------------------------------------------------------------------------
# Generators for the bundled manifests


def floor_billions_name(step: int, tokens_per_step: int) -> str:
    """``stepN-tokensXB`` with X = floor(N x tokens_per_step / 1e9), the rule AI2's names follow.

    Checked against the OLMoE names in docs/methods.md (e.g. step25000 -> 104B, where
    rounding would give 105B). Tokens of the revision are then read back from
    the name, so they are a whole number of billions.
    """
    return f"step{step}-tokens{step * tokens_per_step // 10**9}B"


def pythia_steps() -> list[int]:
    """Pythia's 154 checkpoint steps: 0, 1, 2, 4, ..., 512, then 1000 to 143000 every 1000."""
    return [0] + [2**i for i in range(10)] + list(range(1000, 143_001, 1000))


def pythia_manifest(repo_id: str = "EleutherAI/pythia-1b") -> Manifest:
    """The complete Pythia branch list (identical across Pythia sizes)."""
    revisions = tuple(parse_branch(f"step{s}", tokens_per_step=PYTHIA_TOKENS_PER_STEP) for s in pythia_steps())
    return Manifest(
        repo_id,
        revisions,
        tokens_per_step=PYTHIA_TOKENS_PER_STEP,
        partial=False,
        source="generated: circuitsweep.checkpoints.revisions.pythia_manifest",
        note=(
            "step143000 == main; step0 and step1 serve identical weights; "
            "intermediate branches hold only pytorch_model.bin"
        ),
    )


def olmoe_manifest(repo_id: str = "allenai/OLMoE-1B-7B-0924") -> Manifest:
    """The 244 OLMoE 1B-7B 0924 branches, step5000-tokens20B to step1220000-tokens5117B every 5000 steps."""
    names = [floor_billions_name(s, OLMOE_TOKENS_PER_STEP) for s in range(5000, 1_220_001, 5000)]
    return Manifest(
        repo_id,
        tuple(parse_branches(names)),
        tokens_per_step=OLMOE_TOKENS_PER_STEP,
        partial=False,
        source="generated: circuitsweep.checkpoints.revisions.olmoe_manifest",
        note="main is the annealed model, not a pretraining checkpoint; tokens read from the names (floor of billions)",
    )


#: OLMo 1B 0724 branches known without the Hub. The study's ten (docs/methods.md)
#: plus names that public code uses as ``revision=`` for this repository; the
#: names stop following floor(step x 2^21 / 1e9) after step ~551000, so the
#: full ~1,446-branch list cannot be generated: refresh it from the Hub.
OLMO_0724_KNOWN_BRANCHES: tuple[str, ...] = (
    "step0-tokens0B",
    "step1000-tokens2B",
    "step2000-tokens4B",
    "step3000-tokens6B",
    "step4500-tokens9B",
    "step5000-tokens10B",
    "step7000-tokens14B",
    "step11000-tokens23B",
    "step16000-tokens33B",
    "step18000-tokens37B",
    "step25000-tokens52B",
    "step30000-tokens62B",
    "step49000-tokens102B",
    "step56000-tokens117B",
    "step79000-tokens165B",
    "step126000-tokens264B",
    "step128000-tokens268B",
    "step137000-tokens287B",
    "step209000-tokens438B",
    "step285000-tokens597B",
    "step288000-tokens603B",
    "step339000-tokens710B",
    "step551000-tokens1155B",
    "step577000-tokens1209B",
    "step644000-tokens1350B",
    "step865000-tokens1813B",
    "step895000-tokens1876B",
    "step1165000-tokens2442B",
    "step1454000-tokens3048B",
)


def olmo_0724_manifest(repo_id: str = "allenai/OLMo-1B-0724-hf") -> Manifest:
    """The known subset of OLMo 1B 0724's branches; marked partial."""
    return Manifest(
        repo_id,
        tuple(parse_branches(OLMO_0724_KNOWN_BRANCHES)),
        tokens_per_step=OLMO_0724_TOKENS_PER_STEP,
        partial=True,
        source="known offline: the study's revisions and names used as revision= in public code",
        note=(
            "about 1,446 branches exist (step0-tokens0B .. step1454000-tokens3048B); "
            "run `circuitsweep refresh-manifest` to list them all"
        ),
        published=1446,
    )


#: Every Pythia model (EleutherAI/pythia-<size>): all publish the same 154 branches at 2,097,152 tokens per step.
PYTHIA_SIZES: tuple[str, ...] = ("14m", "31m", "70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")
#: The sizes also trained on the deduplicated Pile (EleutherAI/pythia-<size>-deduped).
PYTHIA_DEDUPED_SIZES: tuple[str, ...] = ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")


def pythia_repos() -> list[str]:
    """Hub repositories of the whole Pythia suite, standard then deduplicated, small to large."""
    return [f"EleutherAI/pythia-{size}" for size in PYTHIA_SIZES] + [
        f"EleutherAI/pythia-{size}-deduped" for size in PYTHIA_DEDUPED_SIZES
    ]


#: File stem in config/revisions -> generator of its manifest.
BUNDLED_GENERATORS = {
    "pythia-1b": pythia_manifest,
    "olmo-1b-0724-hf": olmo_0724_manifest,
    "olmoe-1b-7b-0924": olmoe_manifest,
    **{
        repo.split("/")[1]: functools.partial(pythia_manifest, repo)
        for repo in pythia_repos()
        if repo != "EleutherAI/pythia-1b"
    },
}


def write_bundled_manifests(directory: Path | str = BUNDLED_DIR) -> list[Path]:
    """(Re)generate the bundled manifests into ``directory``; returns the paths written."""
    paths = []
    for stem, generate in BUNDLED_GENERATORS.items():
        path = Path(directory) / f"{stem}.json"
        write_manifest(path, generate())
        paths.append(path)
    return paths
