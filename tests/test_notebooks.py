"""Every notebook in notebooks/ runs top to bottom and is stored without outputs.

Cells are executed in order in one namespace with a non-interactive matplotlib
backend (no Jupyter kernel needed; a kernel-based runner comes with the
notebooks issue).
"""

import json
from pathlib import Path

import matplotlib
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_is_stripped(path):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nb = json.loads(path.read_text())
    ns: dict = {"__name__": "__main__"}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert not cell.get("outputs") and cell.get("execution_count") is None, (
            f"{path.name} cell {i} has stored outputs: strip them before committing")
        exec(compile("".join(cell["source"]), f"{path.name}[{i}]", "exec"), ns)
    plt.close("all")
