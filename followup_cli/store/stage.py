"""The staging table's name, layout setting and row outcomes: constants shared by the
statements (store/statements.py, build time) and the admission that runs them
(store/admission.py, run time), which must not import each other."""

from __future__ import annotations

# Outcomes of a staged row.
ADMITTED, DUPLICATE, AT_CAP, ACTIVE, OVER_LIMIT = (
    "admitted", "duplicate", "at_cap", "active", "over_limit")

STAGE_NAME = "followup_stage"

# A wave updates each row it decides (outcome and wave: the new version is a few bytes
# longer than the staged one). With a little more than half of every page left free and no
# index on a column a wave changes, PostgreSQL makes that update a heap-only tuple on the
# same page: no new index entry, a third of the cost at 100,000 rows (0.32 s against
# 0.80-0.89 s with an index on undecided rows, which a wave's plan did not use anyway: it
# reads the whole stage). At 50 the last row of about one page in ten did not fit.
STAGE_FILLFACTOR = 45
