"""Benchmark: what to run (``inputs``), how one level is scheduled (``schedule``), the runner that
orchestrates (``runner``), its progress (``progress``), where results go (``persist``), the environment
recorded (``environment``), the background job the page polls (``job``), reports and charts.
Every number is defined in ``core.metrics``."""
