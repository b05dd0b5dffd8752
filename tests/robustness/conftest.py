"""Fixtures of the bad-input corpus."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture
def run_cli(tmp_path):
    """Run ``python -m cartsim.cli ARGS`` in a tmp dir (outputs under it); returns the process."""

    def run(*args: str, env: dict | None = None, timeout: float = 600):
        full = {k: v for k, v in os.environ.items()
                if k not in ("HYDRA_FULL_ERROR", "CARTSIM_DEBUG")}
        full.update(env or {})
        return subprocess.run([sys.executable, "-m", "cartsim.cli", *args], cwd=tmp_path,
                              env=full, capture_output=True, text=True, timeout=timeout,
                              check=False)

    return run
