#!/usr/bin/env bash
# CI: the wheel works after `pip install`, outside the repository (issue 15, item 2).
#
# Builds the wheel from a copy of the checkout's files (tracked and untracked, not ignored:
# no stale build/ can leak into it), installs it with its dependencies into a fresh
# virtual environment in a temporary directory, and from another temporary directory runs
# the command line and the Python API the README shows. The checkout is never on sys.path
# and CARTSIM_CONF_DIR is unset, so the configs must come from the wheel (cartsim/_conf).
# Usage: .ci/wheel_check.sh   (or `make wheel-check`); PYTHON picks the interpreter.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
unset CARTSIM_CONF_DIR PYTHONPATH
start=$SECONDS
step() { printf 'wheel-check [%3ds] %s\n' "$((SECONDS - start))" "$*"; }

step "copy the checkout"
mkdir -p "$tmp/src" "$tmp/dist" "$tmp/run"
(cd "$repo" && git ls-files -z -co --exclude-standard \
    | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf -) | tar -xf - -C "$tmp/src"

step "build the wheel"
"$python" -m pip wheel --quiet --no-deps -w "$tmp/dist" "$tmp/src"
wheel=("$tmp"/dist/cartsim-*.whl)
python3 - "${wheel[0]}" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
conf = [n for n in names if n.startswith("cartsim/_conf/")]
assert "cartsim/_conf/config.yaml" in conf, "the wheel has no cartsim/_conf/config.yaml"
print(f"wheel-check        {len(names)} files, {len(conf)} of them configs in cartsim/_conf")
PY

step "install it into a fresh virtual environment"
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet "${wheel[0]}"
export PATH="$tmp/venv/bin:$PATH"

cd "$tmp/run"
step "python: conf_dir() is the packaged copy"
python -c "import cartsim.config as c; d = c.conf_dir(); print(d); \
assert d.parts[-2:] == ('cartsim', '_conf') and 'site-packages' in d.parts, d"
step "cartsim --cfg job"
cartsim --cfg job > cfg.txt
grep -q '^product:' cfg.txt
step "cartsim (the default simulation)"
cartsim
ls outputs/*/*/simulation.nc > /dev/null
step "cartsim task=trial population.n=50 trial.html_report=true"
cartsim task=trial population.n=50 trial.html_report=true
ls outputs/*/*/trial_endpoints.nc outputs/*/*/trial_summary.csv outputs/*/*/report.html > /dev/null
step "python -c 'import cartsim; cartsim.simulate(cartsim.load_config())'"
python -c "import cartsim; ds = cartsim.simulate(cartsim.load_config()); \
assert int(ds['status'].max()) == 0, ds['status'].values; print(ds.attrs['title'])"
step "passed"
