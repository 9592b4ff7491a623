"""display_frame: the deciding columns first, ids last, a missing value as a word and never "None"."""
import math

import pandas as pd

from core.output import display_frame


def test_columns_lead_and_trail_in_the_order_given():
    rows = [{"id": "x:1", "alias": "x", "backend": "foundry", "disk_mb": 86.1, "license": "mit", "name": "X"}]
    df = display_frame(rows, lead=("name", "disk_mb", "license", "absent"), last=("alias", "id"))
    assert list(df.columns) == ["name", "disk_mb", "license", "backend", "alias", "id"]


def test_missing_values_are_a_word_and_complete_columns_keep_their_type():
    df = display_frame(pd.DataFrame({"speed": [1.5, math.nan, 1234.5678], "n": [1, 2, 3],
                                     "license": ["mit", None, "apache-2.0"], "error": [None, "timeout", None]}))
    assert list(df["speed"]) == ["1.5", "unknown", "1,234.57"]
    assert df["n"].dtype.kind == "i"                                   # nothing missing: still numbers
    assert list(df["license"]) == ["mit", "unknown", "apache-2.0"]
    assert list(df["error"]) == ["", "timeout", ""]                    # no error is an empty cell
    assert "None" not in df.astype(str).to_string() and "nan" not in df.astype(str).to_string()
    assert list(display_frame([{"kappa": None}], missing="no data")["kappa"]) == ["no data"]
