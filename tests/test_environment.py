"""environment.yml (conda-forge) and pyproject.toml (pip) list the same dependencies."""

from crm_helpers import config
from crm_helpers.environment import conda_requirements, pip_requirements


def test_environment_yml_matches_pyproject():
    pip = pip_requirements(config.PROJECT_DIR / "pyproject.toml")
    conda = conda_requirements(config.PROJECT_DIR / "environment.yml")
    assert set(pip) == set(conda), f"only in pyproject: {set(pip) - set(conda)}; only in environment.yml: {set(conda) - set(pip)}"
    assert pip == conda


def test_environment_installs_the_package_itself():
    assert "-e ." in (config.PROJECT_DIR / "environment.yml").read_text()
