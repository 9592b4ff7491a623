"""Benchmark, one sub-package per stage: ``run`` (inputs, order, schedule, runner, resume, persist,
progress, job), ``conditions`` (environment, noise, energy, paired comparisons and their lines) and
``sweep`` (the length sweep: plan, tokens, fit, charts); beside them the run's ``report``, ``charts``
and fleet ``campaign``. Every number is defined in ``core.metrics``."""
