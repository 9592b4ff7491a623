"""The LLM judge: any model in the list grades a run's outputs against a rubric. One job per module: the
versioned prompts and model families (`prompts`), constrained decoding (`constraints`), strict parsing of the
answer (`parse`), and calling the judge over a run (`run`)."""
from core.catalog.families import model_family, same_family_warnings  # noqa: F401
from core.quality.judge.constraints import (  # noqa: F401
    PAIRWISE_GRAMMAR, PAIRWISE_SCHEMA, judge_constraint, pointwise_grammar, pointwise_schema,
)
from core.quality.judge.parse import JudgeParseError, parse_pairwise, parse_pointwise  # noqa: F401
from core.quality.judge.prompts import (  # noqa: F401
    PAIRWISE_VERSION, POINTWISE_VERSION, TEMPLATES, nonce, pairwise_messages, pointwise_messages,
)
from core.quality.judge.run import (  # noqa: F401
    DEFAULT_MAX_TOKENS, DEFAULT_RETRIES, STRUCTURED_OUTPUT_LABEL, Attempted, JudgeModel, ask, combine_verdicts,
    resolve_judge, run_judge,
)
