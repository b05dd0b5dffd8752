"""The package finds its configs wherever it runs: ``conf_dir()`` order and the wheel's map.

Building and installing a real wheel is ``.ci/wheel_check.sh`` (``make wheel-check``);
these tests check the same two halves in milliseconds: which directory ``conf_dir()``
picks in a checkout, an installed wheel and under ``CARTSIM_CONF_DIR``, and that
``setup.py`` maps every file of ``conf/`` into the wheel.
"""

from __future__ import annotations

import fnmatch
import runpy
from pathlib import Path

import pytest

import cartsim
from cartsim.config import CONF_DIR_ENV, ConfigError, conf_dir

REPO = Path(__file__).resolve().parents[1]


def _layout(root: Path, *, checkout: bool, packaged: bool) -> Path:
    """A fake install: ``root/cartsim/__init__.py`` with a checkout's ``conf/`` and
    ``pyproject.toml`` beside it and/or the wheel's ``cartsim/_conf``; returns the
    ``__init__.py`` path."""
    pkg = root / "cartsim"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    if checkout:
        (root / "conf").mkdir()
        (root / "conf" / "config.yaml").write_text("task: simulate\n")
        (root / "pyproject.toml").write_text("[project]\nname = 'cartsim'\n")
    if packaged:
        (pkg / "_conf").mkdir()
        (pkg / "_conf" / "config.yaml").write_text("task: simulate\n")
    return pkg / "__init__.py"


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(CONF_DIR_ENV, raising=False)
    return monkeypatch


def test_this_checkout_uses_its_own_conf(no_env):
    assert conf_dir() == REPO / "conf"


def test_a_checkout_wins_over_a_packaged_copy(tmp_path, no_env):
    init = _layout(tmp_path, checkout=True, packaged=True)
    no_env.setattr(cartsim, "__file__", str(init))
    assert conf_dir() == (tmp_path / "conf").resolve()


def test_an_installed_wheel_uses_its_packaged_copy(tmp_path, no_env):
    init = _layout(tmp_path / "site-packages", checkout=False, packaged=True)
    no_env.setattr(cartsim, "__file__", str(init))
    assert conf_dir() == (tmp_path / "site-packages" / "cartsim" / "_conf").resolve()


def test_a_conf_folder_without_a_checkout_is_not_taken_for_one(tmp_path, no_env):
    # site-packages/conf/ of some other distribution, beside an installed cartsim
    init = _layout(tmp_path, checkout=True, packaged=True)
    (tmp_path / "pyproject.toml").unlink()
    no_env.setattr(cartsim, "__file__", str(init))
    assert conf_dir() == (tmp_path / "cartsim" / "_conf").resolve()


def test_the_environment_variable_wins_over_both(tmp_path, no_env):
    init = _layout(tmp_path / "install", checkout=True, packaged=True)
    own = tmp_path / "mine"
    own.mkdir()
    (own / "config.yaml").write_text("task: simulate\n")
    no_env.setattr(cartsim, "__file__", str(init))
    no_env.setenv(CONF_DIR_ENV, str(own))
    assert conf_dir() == own.resolve()


def test_a_bad_environment_variable_is_an_error_not_a_fallback(tmp_path, no_env):
    no_env.setenv(CONF_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=rf"nowhere.*{CONF_DIR_ENV}"):
        conf_dir()


def test_no_config_anywhere_names_both_places(tmp_path, no_env):
    init = _layout(tmp_path, checkout=False, packaged=False)
    no_env.setattr(cartsim, "__file__", str(init))
    with pytest.raises(ConfigError, match=rf"_conf.*{CONF_DIR_ENV}"):
        conf_dir()


def test_setup_maps_every_config_file_into_the_wheel(monkeypatch):
    """Each file of conf/ lands in a package of the wheel whose data patterns match it."""
    setuptools = pytest.importorskip("setuptools")
    seen: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: seen.update(kw))
    monkeypatch.chdir(REPO)
    runpy.run_path(str(REPO / "setup.py"))
    assert seen["package_dir"]["cartsim._conf"] == "conf"
    patterns = seen["package_data"][""]
    files = sorted(p for p in (REPO / "conf").rglob("*") if p.is_file())
    assert any(f.name == "config.yaml" for f in files)
    for f in files:
        rel = f.relative_to(REPO / "conf")
        package = ".".join(("cartsim", "_conf", *rel.parent.parts))
        assert package in seen["packages"], f"conf/{rel}: {package} is not in the wheel"
        assert any(fnmatch.fnmatch(f.name, p) for p in patterns), \
            f"conf/{rel} matches no package_data pattern of setup.py ({patterns})"
    assert "cartsim" in seen["packages"] and "cartsim.models" in seen["packages"]
