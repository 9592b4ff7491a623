"""What a run bundle brings beside its run's rows, checked before it is taken (``core.store.bundles`` imports):
the device labels it carries (the one label rule), its campaign link (taken only for this store's plan, never in
place of a run the store already links) and its rubric versions (``rubric import``'s validation; a rubric new to
this store gets its current form from its newest validated version, never from the bundle's own rows). Each
function reads the bundle's Parquet files on the import's connection, inside its transaction."""
from __future__ import annotations

from core.errors import UserError, one_line


def _rows(con, f: str, cols: str) -> list[tuple]:
    return con.execute(f"SELECT {cols} FROM read_parquet('{f}')").fetchall()


def check_devices(con, files: dict[str, str | None], bad: str) -> None:
    """Every device label the bundle carries ({table: its Parquet file}: the run's, its campaign link's) follows
    the one label rule."""
    from core.config import check_device_label
    for table, f in files.items():
        if f is None:
            continue
        for (device,) in _rows(con, f, "DISTINCT device"):
            if device is not None:
                try:
                    check_device_label(device)
                except UserError as exc:
                    raise UserError(f"{bad}: {table}.{exc.one_line()}") from None


def campaign_link_refusal(con, f: str | None, rid: str) -> str | None:
    """Why the bundle's campaign link is not taken (the run is imported all the same), or None: it names a
    campaign version of this store with another plan, or the device already has a done or running run of that
    campaign here (a bundle never replaces the run a store links)."""
    if f is None:
        return None
    for campaign, version, sha, device in _rows(con, f, "DISTINCT campaign, version, plan_sha256, device"):
        shown = f"{str(campaign)[:60]} v{version}"
        row = con.execute("SELECT plan_sha256 FROM campaigns WHERE name = ? AND version = ?",
                          [campaign, version]).fetchone()
        if row is not None and row[0] != sha:
            return f"its link to campaign {shown} was not taken: it names another plan than this store's"
        held = con.execute(
            "SELECT l.run_id FROM campaign_runs l JOIN runs r USING (run_id) WHERE l.campaign = ? AND "
            "l.plan_sha256 = ? AND l.device = ? AND l.run_id <> ? AND r.status IN ('completed', 'running') "
            "ORDER BY l.created_at LIMIT 1", [campaign, sha, device, rid]).fetchone()
        if held is not None:
            return (f"its link to campaign {shown} was not taken: {str(device)[:60]} already has run "
                    f"{held[0]} for it here, which stays the campaign's")
    return None


def add_rubrics(con, f: str | None, bad: str, check_rubric) -> dict[tuple[str, int], int]:
    """Add the bundle's rubric versions this store lacks (by content) as new versions, each validated by
    ``check_rubric`` first; a rubric the store does not have at all also gets its current form, from its newest
    version. Nothing stored is replaced: a rubric the store has keeps its current form, which (when versions
    were added) becomes the newest version again. {(rubric, bundle version): version here} for every version the
    bundle carries."""
    from core.store.quality import rubric_hash, write_current_form
    from core.store.db import from_json

    mapping: dict[tuple[str, int], int] = {}
    if f is None:
        return mapping
    bundle_versions: dict[str, list[tuple]] = {}
    for rubric, version, digest, doc, created in sorted(
            _rows(con, f, "rubric, version, content_hash, doc, created_at"), key=lambda r: (r[0], r[1])):
        parsed = from_json(doc)
        if not isinstance(parsed, dict) or rubric_hash(parsed) != digest:
            raise UserError(f"{bad}: rubric {rubric[:60]} version {version}: its content does not match its hash")
        if check_rubric is None:
            raise UserError(f"{bad}: it carries rubrics, and this import cannot check them")
        try:
            checked = check_rubric(parsed)          # `rubric import`'s own validation
        except (UserError, ValueError) as exc:
            raise UserError(f"{bad}: rubric {rubric[:60]} version {version}: {one_line(exc, 200)}") from None
        if getattr(checked, "name", rubric) != rubric:
            raise UserError(f"{bad}: rubric {rubric[:60]} version {version} holds another rubric's name")
        bundle_versions.setdefault(rubric, []).append((version, digest, doc, created, checked))
    for rubric, versions in bundle_versions.items():
        stored = con.execute("SELECT version, content_hash FROM rubric_versions WHERE rubric = ? ORDER BY version",
                             [rubric]).fetchall()
        by_hash = {}
        for v, h in stored:
            by_hash.setdefault(h, v)
        had_rubric = con.execute("SELECT count(*) FROM rubrics WHERE name = ?", [rubric]).fetchone()[0] > 0
        top = current = max((v for v, _ in stored), default=0)
        for version, digest, doc, created, _ in versions:
            if digest not in by_hash:
                top += 1
                con.execute("INSERT INTO rubric_versions (rubric, version, content_hash, doc, created_at) "
                            "VALUES (?, ?, ?, ?, ?)", [rubric, top, digest, doc, created])
                by_hash[digest] = top
            mapping[(rubric, version)] = by_hash[digest]
        if had_rubric and current and top > current:
            # the store's own rubric stays current, and the latest version is what it holds (scores given from
            # now on are given against it): its content again, under the newest number
            con.execute("INSERT INTO rubric_versions (rubric, version, content_hash, doc, created_at) "
                        "SELECT rubric, ?, content_hash, doc, now()::TIMESTAMP FROM rubric_versions "
                        "WHERE rubric = ? AND version = ?", [top + 1, rubric, current])
        if not had_rubric:      # its newest validated version, never the bundle's own rows
            write_current_form(con, versions[-1][4])
    return mapping
