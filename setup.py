"""Package list only (metadata lives in pyproject.toml): ``baselines/`` installs as ``fsrbench_baselines``."""
from setuptools import find_packages, setup

core = find_packages(include=["fsrbench", "fsrbench.*"])
baselines = ["fsrbench_baselines" + p[len("baselines"):] for p in find_packages(include=["baselines", "baselines.*"])]
setup(packages=core + baselines, package_dir={"fsrbench_baselines": "baselines"})
