"""What ``pyproject.toml`` cannot say: the top-level ``conf/`` ships inside the wheel.

``conf/`` (the Hydra config groups) stays at the top of the repository, its one source.
``package_dir`` maps it to the package ``cartsim._conf`` (each group folder a subpackage),
so a wheel or an sdist carries it as ``cartsim/_conf/**.yaml`` and
:func:`cartsim.config.conf_dir` finds it after ``pip install``. Everything else about
the build is in ``pyproject.toml``.
"""

from setuptools import find_namespace_packages, setup

# Every folder is a (namespace) package, so these patterns reach every folder: the
# configs, and the templates and data tables the package reads at run time.
DATA = ["*.yaml", "*.csv", "*.json", "*.md", "*.html", "*.j2", "*.jinja", "*.css", "*.js"]

setup(
    packages=[*find_namespace_packages(include=["cartsim", "cartsim.*"],
                                       exclude=["*.__pycache__"]),
              "cartsim._conf",
              *(f"cartsim._conf.{p}" for p in find_namespace_packages(where="conf"))],
    package_dir={"cartsim._conf": "conf"},
    package_data={"": DATA},
)
