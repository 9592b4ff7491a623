"""The bounds every benchmark setting passes, wherever it comes from: `bench` flags, `campaign create`, a plan
file from another machine, a stored plan before `campaign run`. Past them a run would build absurd work up
front (every request, a task per slot), so a setting outside is refused in one line before anything runs.

A figure from outside (a context window an endpoint or a file claims, a token count) is range-checked by
``core.store.lengths.checked_count`` before it reaches a typed column: too large is unknown, never a crash.
"""
from __future__ import annotations

from core.errors import UserError

MAX_ROUNDS = 1_000
MAX_WARMUP = 100
MAX_TOKENS = 131_072          # output tokens of one request
MAX_CONCURRENCY = 256         # requests in flight at one level
MAX_LEVELS = 16               # concurrency levels in one run
MAX_TIMEOUT_S = 86_400.0
MAX_LENGTH = 1_000_000        # a length sweep's prompt, in tokens
MIN_LENGTH = 16
MAX_CONTEXT = 4 * MAX_LENGTH  # a context setting (n_ctx, max_length)
MAX_LENGTH_POINTS = 32        # lengths in one sweep
MAX_REQUESTS = 100_000        # measured requests of one model at one level: rounds x prompts


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_settings(*, rounds, warmup, max_tokens, concurrency, timeout_s=None, lengths=None,
                   prompts: int | None = None, what: str = "") -> None:
    """UserError in one line (``what`` names the source, e.g. "campaign plan p.json: plan.settings") when a
    setting is not a whole number within its bounds."""
    where = f"{what}." if what else ""

    def bad(name: str, low, high, unit: str = "") -> UserError:
        return UserError(f"{where}{name} must be a whole number from {low:,} to {high:,}{unit}")

    for name, value, low, high in (("rounds", rounds, 1, MAX_ROUNDS), ("warmup", warmup, 0, MAX_WARMUP),
                                   ("max_tokens", max_tokens, 1, MAX_TOKENS)):
        if not _whole(value) or not low <= value <= high:
            raise bad(name, low, high)
    if not isinstance(concurrency, (list, tuple)) or not concurrency or len(concurrency) > MAX_LEVELS:
        raise UserError(f"{where}concurrency must be a list of 1 to {MAX_LEVELS} levels")
    for c in concurrency:
        if not _whole(c) or not 1 <= c <= MAX_CONCURRENCY:
            raise bad("concurrency", 1, MAX_CONCURRENCY, " requests in flight")
    if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                                  or not 0 < timeout_s <= MAX_TIMEOUT_S):
        raise UserError(f"{where}timeout must be more than 0 and at most {MAX_TIMEOUT_S:,.0f} seconds")
    if lengths is not None:
        if not isinstance(lengths, (list, tuple)) or not lengths or len(lengths) > MAX_LENGTH_POINTS:
            raise UserError(f"{where}lengths must be a list of 1 to {MAX_LENGTH_POINTS} prompt lengths")
        for n in lengths:
            if not _whole(n) or not MIN_LENGTH <= n <= MAX_LENGTH:
                raise bad("lengths", MIN_LENGTH, MAX_LENGTH, " tokens")
    if prompts is not None:
        check_requests(rounds, prompts, what)


def check_requests(rounds: int, prompts: int, what: str = "") -> None:
    """UserError when rounds x prompts (the measured requests of one model at one level) passes MAX_REQUESTS."""
    if rounds * prompts > MAX_REQUESTS:
        where = f"{what}: " if what else ""
        raise UserError(f"{where}rounds x prompts is {rounds * prompts:,} requests per model and level; "
                        f"the limit is {MAX_REQUESTS:,}")


def check_sweep_targets(target_prompt, target_output, context=None) -> None:
    """UserError in one line when a length sweep's target lengths or its context setting are out of range."""
    for name, value in (("target prompt", target_prompt), ("target output", target_output)):
        if not _whole(value) or not 1 <= value <= MAX_LENGTH:
            raise UserError(f"the {name} length must be 1 to {MAX_LENGTH:,} tokens")
    if context is not None and (not _whole(context) or not 16 <= context <= MAX_CONTEXT):
        raise UserError(f"--context {context} is out of range (16 to {MAX_CONTEXT:,} tokens)")
