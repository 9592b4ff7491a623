"""Quality: rubrics, automatic checks, blind scoring by hand, the LLM judge, agreement, quality per model.

The decision matrix reads `model_quality(run_id)`: {model: {"mean","ci_low","ci_high","n","source"}}
with "mean" on the rubric's normalised 0..1 scale (see core.quality.scores).
"""
from core.quality.scores import model_quality, quality_report  # noqa: F401

__all__ = ["model_quality", "quality_report"]
