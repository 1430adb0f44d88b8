"""The shared sentence helpers of ``retention_report.formatting``: one wording for a movement
in the findings, the revenue chart's title and the mail's chart caption."""

from __future__ import annotations

import math

import pytest

from retention_report.formatting import movement_phrase


@pytest.mark.parametrize(
    "value, reference, decimals, expected",
    [
        (110.0, 100.0, 1, "up 10.0% on Q4 2023"),
        (90.0, 100.0, 1, "down 10.0% on Q4 2023"),
        (100.0, 100.0, 1, "flat on Q4 2023"),
        (600.0, 800.0, 0, "down 25% on Q4 2023"),
        (600.0, 400.0, 0, "up 50% on Q4 2023"),
        (100.4, 100.0, 0, "up 0% on Q4 2023"),  # rounds to 0 but is not flat
        (1234.5, 100.0, 1, "up 1134.5% on Q4 2023"),  # no thousands separator (as in metrics.json)
        (-50.0, -100.0, 1, "up 50.0% on Q4 2023"),  # relative to |reference|: net revenue can be negative
        (-150.0, 100.0, 1, "down 250.0% on Q4 2023"),
    ],
)
def test_movement_phrase(value, reference, decimals, expected):
    assert movement_phrase(value, reference, "Q4 2023", decimals) == expected


@pytest.mark.parametrize("value, reference", [(100.0, 0.0), (100.0, None), (None, 100.0), (100.0, math.nan),
                                              (math.nan, 100.0)])
def test_movement_phrase_without_a_comparison_is_none(value, reference):
    assert movement_phrase(value, reference, "Q4 2023") is None
