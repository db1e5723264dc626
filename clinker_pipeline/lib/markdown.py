"""Small tables rendered as Markdown for asset metadata (the UI shows them as tables)."""

from __future__ import annotations

import pandas as pd


def to_markdown(frame: pd.DataFrame, max_rows: int = 20, float_format: str = "{:,.0f}") -> str:
    if frame.empty:
        return "_none_"
    shown = frame.head(max_rows)

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if pd.isna(v) else float_format.format(v)
        return str(v).replace("|", "\\|")

    lines = [
        "| " + " | ".join(map(str, shown.columns)) + " |",
        "|" + "---|" * len(shown.columns),
    ]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in shown.itertuples(index=False)
    ]
    if len(frame) > max_rows:
        lines.append(f"\n_{len(frame) - max_rows} more rows_")
    return "\n".join(lines)
