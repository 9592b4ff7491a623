"""The suite's outcome is the code's, not the machine's: under CI (``make test`` sets CI=true) Hypothesis runs the
`ci` profile, derandomized with a fixed budget and no example database, so two runs try the same examples; `dev`
explores (tests/conftest.py)."""
import os
import subprocess
import sys

from hypothesis import given, settings, strategies as st

from core.config import REPO_ROOT

PROBE = ("import tests.conftest as c; from hypothesis import settings; s = settings(); "
         "print(c.PROFILE, s.derandomize, s.database is None, s.max_examples)")


def _profile(**env) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, env={**base, **env}, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return out.split()


def test_ci_is_the_derandomized_profile_and_dev_the_default():
    assert _profile(CI="true") == ["ci", "True", "True", "50"]
    name, derandomized, _, budget = _profile()
    assert name == "dev" and derandomized == "False" and int(budget) > 50
    assert _profile(CI="false")[0] == "dev" and _profile(HYPOTHESIS_PROFILE="ci")[0] == "ci"


def _examples() -> list:
    seen = []

    @settings(settings.get_profile("ci"))
    @given(st.text(max_size=8), st.integers())
    def prop(text, number):
        seen.append((text, number))
    prop()
    return seen


def test_two_runs_under_the_ci_profile_try_the_same_examples():
    first, second = _examples(), _examples()
    assert first == second
    assert len(set(first)) >= 20          # and they are examples, not one repeated
