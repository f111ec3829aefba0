"""Which chart, if any, suits a query result: a picture only when it says more than the table.

One label column and one number column -> a bar chart (a line chart when the labels are years or dates);
anything else -> no chart.
"""

import re
from dataclasses import dataclass

MAX_BARS = 50  # past this a bar chart is unreadable

_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?([ T].*)?$")


@dataclass
class Chart:
    kind: str  # "bar" or "line"
    x: str  # label column
    y: str  # number column


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def choose_chart(columns: list[str], rows: list[list]) -> Chart | None:
    if len(columns) != 2 or not 2 <= len(rows) <= MAX_BARS or len(set(columns)) != 2:
        return None
    numeric = [all(is_number(r[i]) for r in rows if r[i] is not None) and any(r[i] is not None for r in rows)
               for i in range(2)]
    if numeric.count(True) != 1:
        # Two numbers: a year column and a count is still a time series.
        if all(numeric) and _is_year(columns[0], [r[0] for r in rows]):
            return Chart("line", columns[0], columns[1])
        return None
    y = numeric.index(True)
    x = 1 - y
    labels = [r[x] for r in rows]
    kind = "line" if all(isinstance(v, str) and _DATE.match(v) for v in labels) else "bar"
    return Chart(kind, columns[x], columns[y])


def _is_year(name: str, values: list) -> bool:
    return "year" in name.lower() and all(isinstance(v, int) and 1000 <= v <= 3000 for v in values)
