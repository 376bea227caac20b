"""environment.yml stays a thin wrapper around pyproject.toml, never a second dependency list."""
import re
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def load():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    return environment, project, conda, pip


def test_python_agrees_with_requires_python():
    environment, project, conda, _ = load()
    assert "conda-forge" in environment["channels"]
    python = next(d for d in conda if re.match(r"python\b", d))
    version = Version(re.match(r"python\s*=+\s*([\d.]+)", python).group(1))
    assert version in SpecifierSet(project["requires-python"])


def test_the_package_comes_through_pip_and_nothing_is_listed_twice():
    _, project, conda, pip = load()
    assert sorted(re.match(r"[\w-]+", d).group() for d in conda) == ["pip", "python"]
    assert len(pip) == 1 and re.fullmatch(r"-e \.(\[[\w,]+\])?", pip[0])
    extras = re.findall(r"\w+", pip[0][len("-e ."):])
    assert set(extras) <= set(project.get("optional-dependencies", {}))
