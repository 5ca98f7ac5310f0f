"""Parsing, rules and cleaning are pure: importable and usable without Prefect."""

from __future__ import annotations

import subprocess
import sys

PURE_MODULES = [
    "tasks.model", "tasks.message_key", "tasks.parse", "tasks.classify", "tasks.html_text", "tasks.clean",
    "tasks.extract", "tasks.validation", "tasks.drafts", "tasks.user_matrix", "tasks.acknowledge", "tasks.routing",
]


def test_pure_modules_do_not_import_prefect():
    code = (
        "import sys\n"
        f"for name in {PURE_MODULES!r}:\n"
        "    __import__(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        "print(','.join(leaked[:5]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"a pure module pulled in Prefect: {result.stdout}"
