"""Decision: the weighted selection matrix, how robust the winner is, and a record to present.

- criteria: THE table of criteria (name, metric, direction, unit, title, aggregation, formatter) and of the
  measures a constraint may test; everything below walks it.
- matrix: direction-aware normalisation (min-max or rank), weights and presets, hard constraints.
- licenses: license knowledge from data/licenses.json (unknown ids are flagged, never assumed permissive).
- robustness: win probability under Dirichlet weights, flip points, ties inside measurement noise.
- engine: prepare (once per runs/constraints) and evaluate (per weights): a typed Decision (its to_dict() is
  the `decide --json` document).
- request: DecisionRequest (runs or devices, gate, constraints, aggregation), built by the CLI and the page.
- report: the report view (every value formatted once; "unknown" the one word) the writers lay out.
- data: the one candidate builder (runs and devices) from the store and quality from core.quality; record:
  saved decisions;
  export: Markdown, self-contained HTML, CSV, JSON; charts: Altair; view: tables for the pages;
  overview: the whole pipeline at a glance (the app's home page).
"""
