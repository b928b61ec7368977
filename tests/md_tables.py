"""Read the markdown tables the analysis tools write, and check them against ``results.json``."""
from __future__ import annotations

import json
import math
from pathlib import Path


def md_tables(text: str) -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    """``### TITLE`` + a pipe table -> {TITLE: (header cells, {first cell: other cells})}, rows in order (bold
    marks dropped from the first cell only)."""
    tables: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
    title, lines = None, text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("### "):
            title = line[4:].strip()
            continue
        is_row = line.startswith("| ") and line.endswith(" |")
        if title and is_row and title not in tables:
            assert set(lines[i + 1].replace("|", "")) <= set("-: "), lines[i + 1]   # the separator row
            tables[title] = ([c.strip() for c in line[2:-2].split(" | ")], {})
        elif title in tables and is_row and not set(line.replace("|", "")) <= set("-: "):
            cells = [c.strip() for c in line[2:-2].split(" | ")]
            tables[title][1][cells[0].replace("**", "")] = cells[1:]                 # the bold Mean row
        elif title in tables and not line.strip():
            title = None if tables[title][1] else title
    return tables


def ours(cell: str) -> float:
    """The number of ``12.34``, ``**12.34**`` or ``12.34 (14.39)`` / ``12.34 (14.39)†`` (ours, paper)."""
    value = float(cell.replace("*", "").split(" (")[0])
    assert math.isfinite(value), cell
    return value


def paper(cell: str) -> float:
    return float(cell.split(" (")[1].split(")")[0])


def check_compare_table(md: str, results: Path, columns: dict[str, tuple[str, str]], sets: list[str],
                        metrics: dict[str, str]) -> dict:
    """Every metric table of ``md`` (a compare.md) has the header ``| OOD set | <columns...> |``, one row per set in
    ``sets`` (display names, in order) and ``Mean``, and our numbers equal ``results.json``'s trial means (in %,
    2 decimals).  ``columns``: title -> (model label, detector); ``metrics``: table title -> results key."""
    doc = json.loads(Path(results).read_text())
    tables = md_tables(md)
    for title, key in metrics.items():
        head, rows = tables[title]
        assert head == ["OOD set", *columns], head
        assert list(rows) == [*sets, "Mean"], list(rows)
        for j, (model, detector) in enumerate(columns.values()):
            found = {r["display"]: r["protocol"]["mean"][key] for r in doc["rows"]
                     if r["model"] == model and r["detector"] == detector and r["status"] == "ok"}
            assert set(found) == set(sets), (model, detector, sorted(found))
            for name in sets:
                assert ours(rows[name][j]) == float(f"{100 * found[name]:.2f}"), (title, name, model, rows[name][j])
            mean = sum(found.values()) / len(found)
            assert ours(rows["Mean"][j]) == float(f"{100 * mean:.2f}"), (title, model, rows["Mean"][j])
    return tables
