"""The locked environment: the lock covers pyproject's dependencies inside their ranges, and the module that
overrides private Trainer methods refuses a transformers release outside the range it supports; the process
environment the package sets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from re_pipeline.training import hf_trainer

ROOT = Path(__file__).resolve().parents[1]


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def locked() -> dict[str, tuple[Version, int]]:
    """name -> (pinned version, number of hashes) from requirements.lock."""
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8").replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)(.*)$", line)
        if match:
            pins[canonicalize_name(match[1])] = (Version(match[2]), match[3].count("--hash=sha256:"))
    return pins


def test_the_lock_pins_every_dependency_with_hashes_inside_its_declared_range():
    pins = locked()
    assert pins and all(hashes >= 1 for _, hashes in pins.values())
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared in pyproject.toml but not locked: run `make lock`"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), f"{name} {version} outside {requirement}"


def test_the_supported_transformers_range_is_the_declared_one():
    (transformers,) = [r for r in declared() if r.name == "transformers"]
    assert transformers.specifier == SpecifierSet(hf_trainer.SUPPORTED_TRANSFORMERS)


@pytest.mark.parametrize("version", ["4.57.1", "6.0.0"])
def test_a_transformers_release_outside_the_range_is_refused_with_the_range(version):
    with pytest.raises(ImportError, match=re.escape(hf_trainer.SUPPORTED_TRANSFORMERS)) as caught:
        hf_trainer.check_transformers(version)
    assert version in str(caught.value) and "make install" in str(caught.value)


def test_the_installed_transformers_is_accepted():
    hf_trainer.check_transformers()


@pytest.mark.parametrize(("preset", "expected"), [(None, "0"), ("64", "64")])
def test_the_onednn_kernel_cache_is_off_unless_the_user_sets_it(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if preset is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = preset
    code = "import os, re_pipeline; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == expected
