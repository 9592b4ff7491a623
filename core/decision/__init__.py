"""Decision: the weighted selection matrix, how robust the winner is, and a record to present.

- matrix: criteria, direction-aware normalisation (min-max or rank), weights and presets, hard constraints.
- licenses: license knowledge from data/licenses.json (unknown ids are flagged, never assumed permissive).
- robustness: win probability under Dirichlet weights, flip points, ties inside measurement noise.
- engine: prepare (once per runs/constraints) and evaluate (per weights): the `decide --json` document.
- data: candidates from the store and quality from core.quality; record: saved decisions;
  export: Markdown, self-contained HTML, CSV, JSON; charts: Altair; view: tables for the pages;
  overview: the whole pipeline at a glance (the app's home page).
"""
