"""Strip outputs and execution counts from notebooks before committing.

Usage (from the repository root)::

    .venv/bin/python notebooks/strip_outputs.py              # every notebooks/*.ipynb
    .venv/bin/python notebooks/strip_outputs.py a.ipynb ...  # the given ones

Equivalent to ``jupyter nbconvert --clear-output --inplace notebooks/*.ipynb``. The test
suite (``tests/test_notebooks.py``) fails on a notebook stored with outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def strip(path: Path) -> bool:
    """Clear the outputs of ``path`` in place; True if anything changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            cell.outputs, cell.execution_count, changed = [], None, True
        for key in ("execution", "collapsed", "scrolled"):
            changed |= cell.metadata.pop(key, None) is not None
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted(Path(__file__).parent.glob("*.ipynb"))
    for path in paths:
        print(f"{path}: {'stripped' if strip(path) else 'already clean'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
