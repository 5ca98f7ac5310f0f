"""Great Expectations Data Docs for the validate stage's real results (issue 6 §3).

Each validate task saves its chunk's GX validation result as JSON under
``<data_dir>/validations/<mailbox>/<day>/``; the daily report renders that day's results with GX's
own renderer into ``<reports>/<day>-data-docs/`` next to the HTML report, with an index page.
"""

from __future__ import annotations

import html
import json
from datetime import date
from pathlib import Path


def results_folder(data_dir: Path, mailbox: str, day: date) -> Path:
    return Path(data_dir) / "validations" / mailbox / day.isoformat()


def build_data_docs(data_dir: Path, day: date, reports_dir: Path, mailbox: str | None = None) -> Path | None:
    """Render the day's saved validation results; returns the index page, or None if there are none."""
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    pattern = f"{mailbox or '*'}/{day.isoformat()}/*.json"
    files = sorted((Path(data_dir) / "validations").glob(pattern), key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    folder = Path(reports_dir) / f"{day.isoformat()}-data-docs"
    folder.mkdir(parents=True, exist_ok=True)
    schema, renderer = ExpectationSuiteValidationResultSchema(), ValidationResultsPageRenderer()
    view = DefaultJinjaPageView()
    rows = []
    for number, source in enumerate(files, 1):
        result = schema.load(json.loads(source.read_text(encoding="utf-8")))
        name = f"{source.parent.parent.name}-{number:04d}.html"
        (folder / name).write_text(view.render(renderer.render(result)), encoding="utf-8")
        stats = result.statistics or {}
        rows.append(
            f"<tr><td><a href='{html.escape(name)}'>{html.escape(source.parent.parent.name)} #{number}</a></td>"
            f"<td>{stats.get('evaluated_expectations', '')}</td><td>{stats.get('successful_expectations', '')}</td>"
            f"<td>{'yes' if result.success else 'no'}</td></tr>"
        )
    index = folder / "index.html"
    index.write_text(
        "<!doctype html><meta charset='utf-8'><title>Data Docs "
        f"{day.isoformat()}</title><h1>Validation results (Great Expectations), {day.isoformat()}</h1>"
        "<p>One page per validated chunk of mail. A failed expectation is a refusal reason or a note.</p>"
        "<table border='1' cellpadding='4'><tr><th>chunk</th><th>expectations</th><th>met</th><th>all met</th></tr>"
        + "".join(rows) + "</table>",
        encoding="utf-8",
    )
    return index
