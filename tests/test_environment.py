"""environment.yml (conda-forge) and pyproject.toml (pip) list the same dependencies."""

from pathlib import Path

from crm_helpers.environment import conda_requirements, pip_requirements

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_pyproject():
    pip = pip_requirements(ROOT / "pyproject.toml")
    conda = conda_requirements(ROOT / "environment.yml")
    assert set(pip) == set(conda), f"only in pyproject: {set(pip) - set(conda)}; only in environment.yml: {set(conda) - set(pip)}"
    assert pip == conda


def test_environment_installs_the_package_itself():
    assert "-e ." in (ROOT / "environment.yml").read_text()
