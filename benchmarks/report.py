"""What every benchmark ends with: its result as one JSON line on stdout, optionally saved to a file."""
from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, out: str | None = None) -> str:
    """Print ``result`` as one JSON line (the line tools parse) and write it to ``out`` when given."""
    line = json.dumps(result)
    print(line)
    if out:
        Path(out).write_text(line + "\n")
    return line
