"""requirements.lock (written by scripts/lock) against pyproject.toml: every run-time
dependency pinned, at a version its requirement allows. That the pins install together
into a fresh virtualenv is checked with the add-on's build in test_ha_addon.py."""

from __future__ import annotations

import re

from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

from .conftest import ROOT


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"not a pin: {line!r}"
        name = _name(match.group(1))
        assert name not in out, f"{name} pinned twice"
        out[name] = match.group(2)
    return out


def test_every_dependency_is_pinned_at_an_allowed_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = pins()
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = _name(requirement.name)
        assert name in locked, f"{name} is not in requirements.lock: run scripts/lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{name}=={locked[name]} does not satisfy {text}: run scripts/lock"
        )


def test_the_websocket_receivers_dependency_is_locked_already():
    assert int(pins()["websockets"].split(".")[0]) >= 13


def test_the_images_install_with_the_lock():
    assert "--constraint /wheels/requirements.lock" in (ROOT / "Dockerfile").read_text()
    addon = (ROOT / "ha-addon" / "Dockerfile").read_text()
    assert "--constraint /tmp/wheels/requirements.lock" in addon
