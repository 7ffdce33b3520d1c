"""The configuration and the check code agree: one source of truth for every check."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from autograder import config as config_mod
from autograder import registry
from tests.support import ROOT

TAG = re.compile(r"^part[12]\.[a-z_]+(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _declared(checks_dir: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """check id -> (file, tags) for every @check(...) in a checks folder, read from the modules.

    The check modules are trusted code (the grader imports them too); importing them
    resolves tags built from constants (``@tags(*TRAINED)``).
    """
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    sys.path.insert(0, str(checks_dir.parent))
    try:
        for path in sorted(checks_dir.rglob("test_*.py")):
            name = f"_declared_{checks_dir.name}_{path.parent.name}_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses look their module up while being defined
            spec.loader.exec_module(module)
            for obj in vars(module).values():
                cid = registry.check_id_of(obj) if callable(obj) else None
                if cid and getattr(obj, "__module__", None) == name:
                    assert cid not in found, f"check id {cid} declared twice ({found[cid][0]} and {path.name})"
                    found[cid] = (path.name, registry.tags_of(obj))
    finally:
        sys.path.remove(str(checks_dir.parent))
    return found


@pytest.mark.parametrize("cfg_path", [ROOT / "grading.toml", ROOT / "tests/fake_assignment/grading.toml"], ids=["real", "fake"])
def test_every_check_is_configured_and_every_config_entry_has_code(cfg_path: Path):
    cfg = config_mod.load(cfg_path)
    declared = _declared(cfg.checks_dir)
    assert set(declared) - set(cfg.checks) == set(), "checks missing from the config"
    assert set(cfg.checks) - set(declared) == set(), "config entries without a check"
    for cid, (_, tags) in declared.items():
        assert tags, f"{cid} has no @tags"
        if cfg_path.name == "grading.toml" and "fake" not in str(cfg_path):
            bad = [t for t in tags if not TAG.match(t)]
            assert not bad, f"{cid}: tags not spelled like SPEC ids: {bad}"


def test_every_question_has_a_title_and_checks():
    cfg = config_mod.load()
    used = {c.question for c in cfg.checks.values()}
    assert used <= set(cfg.questions), f"checks in unknown questions: {used - set(cfg.questions)}"


def test_profiles_select_something():
    cfg = config_mod.load()
    for name in cfg.profiles:
        chosen = [c for c in cfg.checks.values() if config_mod.load(profile=name).selected(c)]
        assert chosen or not cfg.checks, f"profile {name} selects no check"


def test_bad_config_is_reported(tmp_path: Path):
    bad = tmp_path / "g.toml"
    bad.write_text('[assignment]\nhandout="h"\nreference="r"\nchecks="c"\n[parts.p]\ngraded_files=["a.py"]\n'
                   '[checks.x]\nnumber="1.1"\nname="x"\nweight=1\nvisibility="sometimes"\n')
    with pytest.raises(config_mod.ConfigError, match="visibility"):
        config_mod.load(bad)
    bad.write_text("not toml [")
    with pytest.raises(config_mod.ConfigError, match="cannot read"):
        config_mod.load(bad)
