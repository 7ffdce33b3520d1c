"""The configuration and the check code agree: one source of truth for every check."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from autograder import config as config_mod
from autograder import registry
from tests.support import ROOT, declared_checks

TAG = re.compile(r"^part[0-9]+\.[a-z_][a-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _declared(checks_dir: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """check id -> (file, tags) for every @check(...) in a checks folder."""
    return {cid: (d["file"], d["tags"]) for cid, d in declared_checks(checks_dir).items()}


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


@pytest.mark.parametrize("edition", ["default", *config_mod.load().editions])
def test_every_question_has_a_title_and_checks(edition: str):
    """In every edition, each check it can grade (not of a part the edition drops) belongs to a
    question with a title."""
    cfg = config_mod.load(edition=edition)
    used = {c.question for c in cfg.checks.values() if c.id.split(".", 1)[0] not in cfg.dropped_parts}
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


def test_every_check_grades_one_function_it_exercises():
    """One mistake, one deduction: each check grades exactly one function (one of its tags) or,
    for a policy check, every function (``@grades(ALL)``); every graded file's functions are graded."""
    declared = declared_checks()
    for cid, d in declared.items():
        assert d["grades"] == registry.ALL or d["grades"] in d["tags"], (cid, d)
    graded = {d["grades"] for d in declared.values()}
    cfg = config_mod.load()
    for part, spec in cfg.parts.items():
        modules = {m for mods in spec.aliases.values() for m in mods}
        for fname in spec.graded_files:
            stem = fname[:-3]
            if stem in modules:
                continue
            assert any(g.startswith(f"{part}.{stem}.") for g in graded), f"no check grades a function of {part}/{fname}"
