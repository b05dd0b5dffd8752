"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel and is stored
without outputs.

Each ``notebooks/*.ipynb`` is executed by :mod:`nbclient` in an ``ipykernel`` kernel started
from this interpreter (so it sees the same installed cartsim), with ``notebooks/`` as the
working directory; any cell error fails the test and names the cell. Notebooks are small by
design (each says where to scale up), so the whole set runs in about a minute.

Strip outputs before committing: ``jupyter nbconvert --clear-output --inplace notebooks/*.ipynb``
(or ``python notebooks/strip_outputs.py``).
"""

import os
import sys
from pathlib import Path

import pytest

try:  # the dev extra installs them; without them notebooks cannot run in a kernel
    import ipykernel  # noqa: F401
    import nbclient
    import nbformat
except ImportError as exc:
    if os.environ.get("CI"):
        raise
    pytest.skip(f"{exc.name} is not installed (pip install -e '.[dev]')",
                allow_module_level=True)

NOTEBOOK_DIR = Path(__file__).parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
DRAWS_FIGURES = {"quickstart.ipynb", "dosing_what_if.ipynb", "observed_vs_simulated.ipynb",
                 "sweep_explorer.ipynb"}
TIMEOUT_S = 300  # per cell; a cell of a CI-sized notebook takes seconds


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, (
                f"{path.name} cell {i} has stored outputs: strip them before committing "
                "(python notebooks/strip_outputs.py)")


KERNEL_NAME = "cartsim-test-python"


@pytest.fixture(scope="module")
def kernel_spec_manager(tmp_path_factory):
    """Kernel specs holding one spec that starts ipykernel with *this* Python, whatever
    kernel specs the machine has (a user-wide 'python3' spec may point at another
    interpreter, without cartsim)."""
    import json

    from jupyter_client.kernelspec import KernelSpecManager

    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL_NAME
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cartsim test kernel", "language": "python"}))
    return KernelSpecManager(kernel_dirs=[str(root)])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_a_kernel(path, kernel_spec_manager, monkeypatch):
    from jupyter_client.manager import KernelManager

    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiet debugger warning
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the inline backend draws every figure
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_spec_manager)
    client = nbclient.NotebookClient(
        nb, km=km, kernel_name=KERNEL_NAME, timeout=TIMEOUT_S, startup_timeout=180,
        allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}", pytrace=False)
    errors = [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: error outputs in cells {[i for i, _ in errors]}"
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    if path.name in DRAWS_FIGURES:
        assert images, f"{path.name} drew no figure"
        # a figure built outside pyplot and not displayed shows up as its repr only
        reprs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "<Figure size" in "".join(o.get("data", {}).get("text/plain", ""))
                 and "image/png" not in o.get("data", {})]
        assert not reprs, f"{path.name} printed {len(reprs)} figure(s) as text, not drawn"
