"""Asset check results built from Problems: one shape for every feed's checks in the UI."""

import dagster as dg
import pandas as pd

from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.lib.markdown import to_markdown

SAMPLE_ROWS = 50


def problem_check_result(asset: str, check: str, problems: list[Problem]) -> dg.AssetCheckResult:
    """Passed when there are no problems; ERROR severity when any problem is an ERROR."""
    errors = sum(p.severity == "ERROR" for p in problems)
    sample = pd.DataFrame(
        [
            {"row": p.row, "column": p.column, "severity": p.severity, "problem": p.message}
            for p in problems[:SAMPLE_ROWS]
        ]
    )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=check,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        metadata={
            "num_failures": len(problems),
            "num_errors": errors,
            "failure_sample": dg.MetadataValue.md(to_markdown(sample)),
        },
    )
