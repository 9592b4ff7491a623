"""Blind scoring by hand: shuffled order per prompt, progress, resume, reveal; annotation CSV.

The order of the candidates for one prompt is a shuffle seeded by sha256(run, prompt, rater): it
differs between prompts and raters and is the same every time it is recomputed (reload, another
process, an annotation file). Candidates are shown as "A", "B", ...; the model names are revealed
only when asked.
"""
from __future__ import annotations

import csv
import hashlib
import io
import random
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from core.output import CSV_EOL, csv_row

SLOTS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BASE_COLUMNS = ["run_id", "rubric", "rater", "prompt_id", "candidate", "item_id", "prompt", "output"]


def _seed(*parts: str) -> int:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return int(digest[:16], 16)


def blind_order(run_id: str, prompt_id: str, rater: str, request_ids: list[str]) -> list[str]:
    """The request ids of one prompt in the rater's blind order (stable, seeded)."""
    ids = sorted(request_ids)
    random.Random(_seed(run_id, prompt_id, rater.strip().casefold())).shuffle(ids)
    return ids


def slot_name(i: int) -> str:
    return SLOTS[i] if i < len(SLOTS) else f"Z{i}"


def item_id(run_id: str, request_id: str) -> str:
    """An opaque id for an output in annotation files (does not reveal the model)."""
    return hashlib.sha256(f"{run_id}\x1f{request_id}".encode("utf-8")).hexdigest()[:12]


@dataclass
class Candidate:
    slot: str
    request_id: str
    item_id: str
    model: str            # revealed only on request
    output_text: str
    scores: dict[str, float] = field(default_factory=dict)   # this rater's, if any
    comment: str = ""
    cut: str = ""         # "cut at N tokens" when the token limit stopped the output


@dataclass
class BlindPrompt:
    index: int            # 0-based position in the session
    prompt_id: str
    prompt_text: str
    candidates: list[Candidate]

    def done(self, criteria: list[str]) -> bool:
        return all(all(c in cand.scores for c in criteria) for cand in self.candidates)


@dataclass
class BlindSession:
    run_id: str
    rubric: str
    rater: str
    criteria: list[str]
    prompts: list[BlindPrompt]

    @property
    def total(self) -> int:
        return len(self.prompts)

    @property
    def done_count(self) -> int:
        return sum(1 for p in self.prompts if p.done(self.criteria))

    def resume_index(self) -> int:
        """The first prompt not fully scored (where the rater left off); the last one when all are done."""
        for p in self.prompts:
            if not p.done(self.criteria):
                return p.index
        return max(self.total - 1, 0)

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.done_count == self.total


def blind_session(run_id: str, rubric_name: str, rater: str, order: list[str] | None = None) -> BlindSession:
    """Everything the scoring page shows for one rater, with their saved scores (resume). Prompts in the
    run's order, or in ``order`` (prompt ids; core.quality.paired.scoring_priority: most decisive first)."""
    from core.quality.outputs import run_outputs
    from core.quality.views import cut_mark
    from core.quality.rubrics import get_rubric
    from core.store import quality as store

    rater = _rater(rater)
    rubric = get_rubric(rubric_name)
    outputs = run_outputs(run_id)
    saved: dict[str, dict[str, float]] = {}
    for r in store.human_scores(run_id, rubric.name, rater):
        saved.setdefault(r["request_id"], {})[r["criterion"]] = r["score"]
    comments = store.human_comments(run_id, rubric.name, rater)
    by_prompt: dict[str, list[dict]] = {}
    prompt_meta: dict[str, tuple[int, str]] = {}
    for o in outputs:
        by_prompt.setdefault(o["prompt_id"], []).append(o)
        prompt_meta[o["prompt_id"]] = (o["position"], o["prompt_text"])
    prompts = []
    rank = {pid: i for i, pid in enumerate(order or [])}
    for pid in sorted(by_prompt, key=lambda p: (rank.get(p, len(rank)), prompt_meta[p][0], p)):
        rows = {o["request_id"]: o for o in by_prompt[pid]}
        order = blind_order(run_id, pid, rater, list(rows))
        cands = [Candidate(slot_name(i), rid, item_id(run_id, rid), rows[rid]["model"],
                           rows[rid]["output_text"], saved.get(rid, {}), comments.get((rid, rater), "") or "",
                           cut_mark(rows[rid].get("finish_reason"), rows[rid].get("completion_tokens")))
                 for i, rid in enumerate(order)]
        prompts.append(BlindPrompt(len(prompts), pid, prompt_meta[pid][1], cands))
    return BlindSession(run_id, rubric.name, rater, rubric.criterion_names, prompts)


def _rater(rater: str) -> str:
    rater = " ".join((rater or "").split())
    if not rater:
        raise UserError("enter a rater name first")
    if len(rater) > 64:
        raise UserError("rater name: at most 64 characters")
    return rater


def validate_score(rubric, criterion: str, value) -> float:
    c = rubric.criterion(criterion)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UserError(f"score for {criterion!r} must be a number (got {value!r})") from None
    if v != int(v) or not (c.scale_min <= v <= c.scale_max):
        raise UserError(f"score for {criterion!r} must be a whole number from {c.scale_min} to {c.scale_max} (got {value})")
    return v


def save_prompt_scores(run_id: str, rubric_name: str, rater: str,
                       entries: dict[str, tuple[dict[str, float], str]]) -> int:
    """Save one prompt's form: {request_id: ({criterion: score}, comment)}; every criterion required."""
    from core.quality.outputs import run_outputs
    from core.quality.rubrics import get_rubric
    from core.store import quality as store

    rater = _rater(rater)
    rubric = get_rubric(rubric_name)
    valid_ids = {o["request_id"] for o in run_outputs(run_id)}
    rows = []
    for rid, (scores, comment) in entries.items():
        if rid not in valid_ids:
            raise UserError(f"output {rid!r} is not one of run {run_id}'s scored outputs")
        missing = [c for c in rubric.criterion_names if scores.get(c) is None]
        if missing:
            raise UserError(f"score every criterion (missing: {', '.join(missing)})")
        rows.append({"run_id": run_id, "request_id": rid, "rubric": rubric.name, "rater": rater,
                     "scores": {c: validate_score(rubric, c, scores[c]) for c in rubric.criterion_names},
                     "comment": (comment or "").strip()})   # the form shows the comment: empty clears it
    return store.save_human_scores(rows, rubric_version=rubric.version)


# ------------------------------------------------------------------ annotation files

def annotation_columns(criteria: list[str]) -> list[str]:
    return BASE_COLUMNS + list(criteria) + ["comment"]


def export_annotations(run_id: str, rubric_name: str, rater: str) -> str:
    """CSV text for scoring offline: one row per output, in the rater's blind order; saved scores filled in."""
    session = blind_session(run_id, rubric_name, rater)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=CSV_EOL)
    w.writerow(annotation_columns(session.criteria))
    for p in session.prompts:
        for c in p.candidates:
            w.writerow(csv_row([run_id, session.rubric, session.rater, p.prompt_id, c.slot, c.item_id, p.prompt_text,
                                c.output_text] + [_fmt(c.scores.get(k)) for k in session.criteria] + [c.comment]))
    return buf.getvalue()


def _fmt(v) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v) == int(v) else str(v)


def import_annotations(source: str | Path | bytes, *, rater: str, expect_run: str | None = None,
                       expect_rubric: str | None = None) -> dict:
    """Validate a whole annotation CSV, then store it in one transaction (all rows or none).

    ``rater`` is who imports (named on the page or the command line), never taken from the file: the
    file's rater column must be the same person (its blind order is theirs), else nothing is imported.
    Scores merge by (output, criterion, rater): a blank cell or comment changes nothing stored.

    Refuses, naming the line and the reason: not CSV/UTF-8, missing or unknown columns, a row whose
    run/rubric/rater differs from the first, an unknown run or rubric, an item that is not an output
    of that prompt of the run, a slot that does not match the rater's blind order, a score out of
    the scale or not a whole number, a row scored only in part, a duplicate item.
    Returns {"rows": N scored, "skipped": M blank, "run_id", "rubric", "rater"}.
    """
    from core.quality.outputs import run_outputs
    from core.quality.rubrics import get_rubric
    from core.store import quality as store

    text = _read_text(source)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise UserError("annotation file is empty") from None
    except csv.Error as exc:
        raise UserError(f"line 1: not a CSV header ({exc})") from None
    header = [h.strip() for h in header]
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    missing = [c for c in BASE_COLUMNS + ["comment"] if c not in header]
    if missing:
        raise UserError(f"line 1: missing column(s) {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise UserError("line 1: a column name appears twice")

    rows: list[tuple[int, dict]] = []
    line = 2
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UserError(f"line {start}: malformed CSV ({exc})") from None
        line = start
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise UserError(f"line {line}: {len(values)} fields, the header has {len(header)}")
        rows.append((line, dict(zip(header, values))))
    if not rows:
        raise UserError("annotation file has no rows")

    first_line, first = rows[0]
    run_id, rubric_name, file_rater = first["run_id"].strip(), first["rubric"].strip(), first["rater"].strip()
    rater = _rater(rater)
    if expect_run and run_id != expect_run:
        raise UserError(f"line {first_line}: file is for run {run_id!r}, not {expect_run!r}")
    if expect_rubric and rubric_name != expect_rubric:
        raise UserError(f"line {first_line}: file is for rubric {rubric_name!r}, not {expect_rubric!r}")
    if not store.run_exists(run_id):
        raise UserError(f"line {first_line}: unknown run {run_id!r}")
    try:
        rubric = get_rubric(rubric_name)
    except UserError as exc:
        raise UserError(f"line {first_line}: {exc.one_line()}") from None
    if " ".join(file_rater.split()).casefold() != rater.casefold():
        raise UserError(f"line {first_line}: this file was exported for rater {file_rater!r}, not {rater!r} "
                        "(each rater imports their own file)")
    crit_missing = [c for c in rubric.criterion_names if c not in header]
    if crit_missing:
        raise UserError(f"line 1: missing criterion column(s) {', '.join(crit_missing)} of rubric {rubric.name!r}")
    unknown = [h for h in header if h not in BASE_COLUMNS + ["comment"] + rubric.criterion_names]
    if unknown:
        raise UserError(f"line 1: unknown column {unknown[0]!r} (not a criterion of rubric {rubric.name!r})")

    outputs = run_outputs(run_id)
    by_item = {item_id(run_id, o["request_id"]): o for o in outputs}
    per_prompt: dict[str, list[str]] = {}
    for o in outputs:
        per_prompt.setdefault(o["prompt_id"], []).append(o["request_id"])

    entries, seen, skipped = [], set(), 0
    for line, row in rows:
        for col, want in (("run_id", run_id), ("rubric", rubric.name), ("rater", file_rater)):
            got = " ".join(row[col].split())
            if got != " ".join(want.split()):
                raise UserError(f"line {line}: {col} {got!r} differs from the first row's {want!r} (one file per run, rubric and rater)")
        iid = row["item_id"].strip()
        out = by_item.get(iid)
        if out is None:
            raise UserError(f"line {line}: item_id {iid!r} is not an output of run {run_id}")
        if out["prompt_id"] != row["prompt_id"].strip():
            raise UserError(f"line {line}: item_id {iid!r} belongs to prompt {out['prompt_id']!r}, not {row['prompt_id']!r}")
        order = blind_order(run_id, out["prompt_id"], rater, per_prompt[out["prompt_id"]])
        slot = slot_name(order.index(out["request_id"]))
        if row["candidate"].strip() != slot:
            raise UserError(f"line {line}: candidate {row['candidate']!r} does not match item {iid!r} (expected {slot!r})")
        if iid in seen:
            raise UserError(f"line {line}: item {iid!r} appears twice")
        seen.add(iid)
        cells = {c: row[c].strip() for c in rubric.criterion_names}
        filled = [c for c, v in cells.items() if v]
        if not filled:
            skipped += 1
            continue
        if len(filled) != len(cells):
            empty = [c for c, v in cells.items() if not v]
            raise UserError(f"line {line}: score missing for {', '.join(empty)} (fill every criterion or none)")
        scores = {}
        for c, v in cells.items():
            try:
                scores[c] = validate_score(rubric, c, v)
            except UserError as exc:
                raise UserError(f"line {line}: {exc.one_line()}") from None
        entries.append({"run_id": run_id, "request_id": out["request_id"], "rubric": rubric.name, "rater": rater,
                        "scores": scores, "comment": row["comment"].strip() or None})
    store.save_human_scores(entries, rubric_version=rubric.version)   # merges: an empty cell blanks nothing
    return {"rows": len(entries), "skipped": skipped, "run_id": run_id, "rubric": rubric.name, "rater": rater}


def _read_text(source: str | Path | bytes) -> str:
    """The file's text: bytes are the file's content (an upload), str or Path a file to read. Larger than
    SLM_MAX_FILE_MB: refused before it is read (a file) or parsed (an upload)."""
    from core.config import max_file_bytes

    limit = max_file_bytes()
    too_big = "annotation file {} is too large ({:.1f} MB; the limit is {:.0f} MB, SLM_MAX_FILE_MB)"
    if isinstance(source, bytes):
        data = source
        if len(data) > limit:
            raise UserError(too_big.format("(upload)", len(data) / 2**20, limit / 2**20))
    else:
        try:
            size = Path(source).stat().st_size
            if size > limit:
                raise UserError(too_big.format(source, size / 2**20, limit / 2**20))
            with open(source, "rb") as f:
                data = f.read(limit + 1)
        except OSError as exc:
            raise UserError(f"cannot read {source}: {exc.strerror or exc}") from None
        if len(data) > limit:       # it grew while being read
            raise UserError(too_big.format(source, len(data) / 2**20, limit / 2**20))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"annotation file is not UTF-8 text (byte {exc.start})") from None
