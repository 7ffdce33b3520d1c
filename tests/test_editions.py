"""Editions: one grader, several handouts (``[editions.NAME]`` in grading.toml, ``--edition NAME``).

- the configuration overlay: an edition replaces data (graded files, aliases, conventions,
  the profile), unknown editions are refused with the list of known ones;
- ``uva2024`` (the UvA DL1 2024 template): a submission written here in a template student's
  style (``tests/template_style/uva2024``: Lightning ``train_pl.py`` importing the template's
  ``mnist`` module, ``Normal(0, 1).icdf`` in ``visualize_manifold`` as the template hints,
  make_grid with its own padding; part 2 on normalised CIFAR-shaped images with
  ``denormalize``, the batch-1 ``test_attack`` loop and the template's SGD ``train``) gets full
  marks; the same part 1 graded as this project's own handout loses only the policy point,
  charged to ``visualize_manifold``;
- part 2 in the template's style: every clamping convention and other correct way of writing a
  function (tests/mutants_uva2024.py VARIANTS) keeps full marks; each realistic bug (MUTANTS)
  costs points on its own function's checks, names the mistake, and costs nothing elsewhere;
  the untouched template scores 0 with one clear line per check;
- ``uva2021`` (the UvA DL1 2021 template: the VAE alone, in ``part2/`` or ``code/``, data module
  ``fmnist``): the same template-style code gets full marks there, the untouched template 0;
- a forbidden use elsewhere is still caught in the edition, and tagged with its function.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autograder import config
from tests import mutants_uva2024 as U
from tests.support import (ROOT, assert_mutants_caught, by_id, explain, grade, group_id, independent_groups, lost,
                           make_submission, stub_functions)

TEMPLATE = ROOT / "tests" / "template_style" / "uva2024"
POLICY = "part1.no_torch_distributions"


def _template(dest: Path) -> Path:
    shutil.copytree(TEMPLATE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_an_edition_overlays_data_and_unknown_ones_are_refused():
    base, uva = config.load(), config.load(edition="uva2024")
    assert base.edition == "" and uva.edition == "uva2024" and "uva2024" in base.editions
    assert uva.parts["part1"].graded_files == ("utils.py", "cnn_encoder_decoder.py", "train_pl.py")
    assert uva.parts["part1"].aliases == {"train": ("train_pl",)}
    assert uva.parts["part1"].depends == base.parts["part1"].depends  # tables merge key by key
    assert uva.convention("part1.forbidden_api_allow") == {"part1.utils.visualize_manifold": ["Normal"]}
    assert base.convention("part1.forbidden_api_allow") == {}
    assert uva.profile == "uva2024" and not any(uva.selected(c) for c in uva.checks.values() if c.number.startswith("1.11."))
    assert set(uva.checks) == set(base.checks)  # an edition changes data, never the check code
    with pytest.raises(config.ConfigError, match="uva2024"):
        config.load(edition="no_such_course")


@pytest.mark.slow
def test_template_style_submission_gets_full_marks_in_its_edition(tmp_path: Path):
    results = grade(_template(tmp_path / "sub"), tmp_path / "r.json", "--edition", "uva2024")
    got = by_id(results)
    assert {c.split(".")[0] for c in got} == {"part1", "part2"} and len(got) >= 44, sorted(got)
    assert not lost(results), explain(lost(results))
    assert "train_pl.py" in got["part1.vae.forward.losses"]["output"], "the Lightning trainer must be the one graded"
    assert "part2.adversarial_attack.test_attack.batches" not in got  # the template's loop has batch size 1


PART2_QUICK = ("--edition", "uva2024", "--profile", "quick", "--only", "2.*")
VARIANT_GROUPS = independent_groups(U.VARIANTS, base=U.TEMPLATE, edition="uva2024")
MUTANT_GROUPS = independent_groups(U.MUTANTS, base=U.TEMPLATE, edition="uva2024")


@pytest.mark.slow
@pytest.mark.parametrize("group", VARIANT_GROUPS, ids=group_id)
def test_template_style_part2_variants_keep_full_marks(tmp_path: Path, group: list):
    edits = [e for v in group for e in v.edits]
    sub = make_submission(tmp_path / "sub", edits, base=U.TEMPLATE, parts=("part2",))
    results = grade(sub, tmp_path / "r.json", *PART2_QUICK)
    assert len(by_id(results)) >= 15 and not lost(results), explain(lost(results))


@pytest.mark.slow
@pytest.mark.parametrize("group", MUTANT_GROUPS, ids=group_id)
def test_template_style_part2_bugs_cost_only_their_function(tmp_path: Path, group: list):
    sub = make_submission(tmp_path / "sub", [e for m in group for e in m.edits], base=U.TEMPLATE, parts=("part2",))
    assert_mutants_caught(grade(sub, tmp_path / "r.json", *PART2_QUICK), group)


@pytest.mark.slow
def test_the_untouched_template_scores_zero_with_one_line_per_check(tmp_path: Path):
    sub = make_submission(tmp_path / "sub", U.UNTOUCHED, base=U.TEMPLATE, parts=("part2",))
    results = grade(sub, tmp_path / "r.json", "--edition", "uva2024", "--only", "2.*")
    tests = results["tests"]
    assert len(tests) >= 18 and all(t["score"] == 0 for t in tests), explain([t for t in tests if t["score"]])
    for t in tests:
        first = t["output"].strip().splitlines()[0]
        assert "NotImplementedError" in first or "not implemented yet" in first, first
        assert "Traceback" not in t["output"] and "grader error" not in t["output"].lower(), t["output"][:800]


@pytest.mark.slow
def test_the_template_hint_is_a_policy_failure_only_where_the_handout_forbids_it(tmp_path: Path):
    """Graded as this project's handout (no torch.distributions anywhere), the same code loses the
    policy point alone, and the failure names visualize_manifold, the function that uses it."""
    results = grade(_template(tmp_path / "sub"), tmp_path / "r.json", "--profile", "quick",
                    *[a for q in ("1.7.*", "1.8.*", "1.9.*", "1.10.*") for a in ("--only", q)])
    failing = lost(results)
    assert [t["extra_data"]["check_id"] for t in failing] == [POLICY], explain(failing)
    assert failing[0]["tags"] == ["part1.utils.visualize_manifold"], failing[0]["tags"]
    assert "visualize_manifold" in failing[0]["output"] and "Normal" in failing[0]["output"]


@pytest.mark.slow
def test_a_forbidden_use_elsewhere_is_caught_in_the_edition_and_tagged(tmp_path: Path):
    sub = _template(tmp_path / "sub")
    utils = sub / "part1" / "utils.py"
    utils.write_text(utils.read_text().replace(
        "    noise = torch.randn_like(std)\n    z = mean + noise * std\n",
        "    z = torch.distributions.Normal(mean, std).rsample()\n"))
    results = grade(sub, tmp_path / "r.json", "--edition", "uva2024", "--profile", "quick",
                    *[a for q in ("1.7.*", "1.9.9") for a in ("--only", q)])
    failing = {t["extra_data"]["check_id"]: t for t in lost(results)}
    # Normal(mean, std) also refuses std = 0 (check 1.7.1): that is sample_reparameterize's own bug.
    assert set(failing) <= {POLICY, "part1.utils.sample_reparameterize.shape"}, explain(failing.values())
    policy = failing[POLICY]
    assert policy["tags"] == ["part1.utils.sample_reparameterize"], policy["tags"]
    assert "allowed here: visualize_manifold may use Normal" in policy["output"], policy["output"][:600]
    assert "mnist (imported by train_pl.py)" in results["output"], results["output"][:2000]


def test_the_gradescope_package_can_fix_the_edition(tmp_path: Path):
    """``tools/package_gradescope.py --edition NAME`` writes ``[grader] edition`` into the packaged config."""
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import package_gradescope
    finally:
        sys.path.pop(0)
    text = (ROOT / "grading.toml").read_text(encoding="utf-8")
    packaged = tmp_path / "grading.toml"
    packaged.write_text(package_gradescope.with_edition(text, "uva2024"), encoding="utf-8")
    for rel in ("student", "solutions", "autograder"):  # the config's relative paths
        (tmp_path / rel).symlink_to(ROOT / rel)
    cfg = config.load(packaged)
    assert cfg.edition == "uva2024" and cfg.profile == "uva2024"
    assert config.load(packaged, edition="default").edition == ""


@pytest.mark.parametrize("folder", ["part2", "code"])
def test_the_2021_layout_is_found_by_what_the_files_define(tmp_path: Path, folder: str):
    """The UvA 2021 layout keeps the VAE's files in ``part2/`` (later ``code/``): each file goes to
    the part whose functions it defines, whatever its folder says; part 2's own files stay."""
    from autograder.discovery import discover

    sub = tmp_path / "sub"
    (sub / folder).mkdir(parents=True)
    for name in ("utils.py", "cnn_encoder_decoder.py", "train_pl.py"):
        shutil.copyfile(ROOT / "solutions" / "part1" / name, sub / folder / name)
    (sub / "part3").mkdir()
    (sub / "part3" / "utils.py").write_text("def unrelated():\n    return 0\n")  # another assignment's file
    found = discover(sub, config.load())
    for name in ("utils.py", "cnn_encoder_decoder.py", "train_pl.py"):
        f = found.files[f"part1/{name}"]
        assert f.status == "found" and f.path == sub / folder / name, (name, f)
    assert found.files["part2/utils.py"].status == "missing"
    assert found.files["part2/adversarial_attack.py"].status == "missing"


def test_a_part2_folder_of_this_handout_keeps_its_files(tmp_path: Path):
    from autograder.discovery import discover

    sub = tmp_path / "sub"
    shutil.copytree(ROOT / "solutions", sub, ignore=shutil.ignore_patterns("__pycache__", "data"))
    found = discover(sub, config.load())
    for key, f in found.files.items():
        assert f.status == "found" and f.path == sub / key, (key, f)


# The UvA 2021 template's part 1 functions, as its stubs name them.
UVA2021_STUBS = {
    "utils.py": ["sample_reparameterize", "KLD", "elbo_to_bpd", "visualize_manifold"],
    "cnn_encoder_decoder.py": ["CNNEncoder.forward", "CNNDecoder.forward"],
    "train_pl.py": ["VAE.forward", "VAE.sample"],
}


def _uva2021(dest: Path, folder: str) -> Path:
    """The template-style part 1 written for 2021: the files in ``folder`` (2021: ``part2``,
    2022: ``code``) and the template's data module ``fmnist`` instead of 2024's ``mnist``."""
    (dest / folder).mkdir(parents=True)
    for name in UVA2021_STUBS:
        text = (TEMPLATE / "part1" / name).read_text(encoding="utf-8")
        text = text.replace("from mnist import mnist", "from fmnist import fmnist").replace("= mnist(", "= fmnist(")
        (dest / folder / name).write_text(text, encoding="utf-8")
    return dest


@pytest.mark.slow
def test_the_2021_template_gets_full_marks_in_its_edition(tmp_path: Path):
    results = grade(_uva2021(tmp_path / "sub", "part2"), tmp_path / "r.json", "--edition", "uva2021")
    got = by_id(results)
    assert {c.split(".")[0] for c in got} == {"part1"} and len(got) >= 25, sorted(got)
    assert not lost(results), explain(lost(results))
    assert "train_pl.py" in got["part1.vae.forward.losses"]["output"], "the Lightning trainer must be the one graded"
    assert "fmnist (imported by train_pl.py)" in results["output"], results["output"][:2000]
    assert "part2/" not in results["output"].split("part1/")[0]  # no part 2 in this edition


@pytest.mark.slow
def test_the_untouched_2021_template_scores_zero(tmp_path: Path):
    sub = _uva2021(tmp_path / "sub", "code")
    for name, functions in UVA2021_STUBS.items():
        stub_functions(sub / "code" / name, functions)
    results = grade(sub, tmp_path / "r.json", "--edition", "uva2021", "--profile", "quick")
    tests = results["tests"]
    assert len(tests) >= 20 and all(t["score"] == 0 for t in tests), explain([t for t in tests if t["score"]])
    for t in tests:
        first = t["output"].strip().splitlines()[0]
        assert "NotImplementedError" in first or "not implemented yet" in first, (t["number"], first)


def test_mutants_are_graded_in_groups_of_independent_functions():
    """tests/support.independent_groups: every mutant in exactly one group, one per function, no
    caller with its callee (part 2: fgsm_attack is called by three functions, train by none)."""
    from tests import mutants_part1_functions, mutants_part1_vae, mutants_part2
    from tests.support import _calls

    calls = _calls()
    assert ("part2.adversarial_attack.pgd_attack", "part2.adversarial_attack.fgsm_attack") in calls
    assert ("part1.train_pl.VAE.forward", "part1.utils.KLD") in calls  # aliases expanded
    for module in (mutants_part1_functions, mutants_part1_vae, mutants_part2):
        groups = independent_groups(module.MUTANTS)
        assert sorted(m.id for g in groups for m in g) == sorted(m.id for m in module.MUTANTS)
        assert len(groups) < len(module.MUTANTS)
        for g in groups:
            functions = [m.function for m in g]
            assert len(set(functions)) == len(functions), group_id(g)
            assert not any((a, b) in calls for a in functions for b in functions), group_id(g)


# ---------------------------------------------------------------------------- IFT6135, problem 1
IFT = ROOT / "tests" / "template_style" / "ift6135" / "q1_solution.py"
IFT_MC_Z = "    z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn_like(mu_q)\n"
IFT_UNTOUCHED = [  # the template's bare `return` where each function's code goes
    ("    return torch.sum(target * torch.log(mu) + (1 - target) * torch.log(1 - mu), dim=1)\n", "    return\n"),
    ("    return -0.5 * torch.sum(math.log(2 * math.pi) + logvar + (z - mu) ** 2 / torch.exp(logvar), dim=1)\n",
     "    return\n"),
    ("    a = torch.max(y, dim=1, keepdim=True)[0]\n", ""),
    ("    return (a + torch.log(torch.sum(torch.exp(y - a), dim=1, keepdim=True) / sample_size)).view(batch_size)\n",
     "    return\n"),
    ("    kl = logvar_p - logvar_q + (torch.exp(logvar_q) + (mu_q - mu_p) ** 2) / torch.exp(logvar_p) - 1\n", ""),
    ("    return 0.5 * torch.sum(kl, dim=1)\n", "    return\n"),
    (IFT_MC_Z + IFT.read_text().split(IFT_MC_Z, 1)[1], "    return\n"),
]


def _ift(dest: Path, edits: list[tuple[str, str]] = (), name: str = "q1_solution.py") -> Path:
    """A flat IFT6135 upload: the template-style q1_solution.py with ``edits`` (each find once)."""
    dest.mkdir(parents=True)
    text = IFT.read_text()
    for find, replace in edits:
        assert text.count(find) == 1, find
        text = text.replace(find, replace)
    (dest / name).write_text(text)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("name", ["q1_solution.py", "q1_vae.py"])
def test_the_ift6135_template_gets_the_course_points(tmp_path: Path, name: str):
    """Problem 1 in the course's file, graded under estimators.py with the course's contract ([B, D]
    inputs only) and points (4 per function); the importance-weighting checks are not the course's.
    (Problems 2 and 3 are tests/test_ift6135.py's.)"""
    results = grade(_ift(tmp_path / "sub", name=name), tmp_path / "r.json", "--edition", "ift6135", "--only", "1.11.*")
    assert not lost(results) and results["score"] == 20, explain(lost(results))
    assert {t["number"] for t in results["tests"]} == {f"1.11.{i}" for i in range(1, 9)}
    assert f"{name} is graded as estimators.py" in results["output"]


@pytest.mark.slow
def test_ift6135_variants_bugs_and_the_untouched_template(tmp_path: Path):
    # A Monte-Carlo KL through the student's own log_likelihood_normal on [B * S, D] rows: correct.
    through_normal = IFT.read_text().split(IFT_MC_Z, 1)[1]
    variant = [(through_normal,
                "    rows = (-1, input_size)\n"
                "    log_q = log_likelihood_normal(mu_q.reshape(rows), logvar_q.reshape(rows), z.reshape(rows))\n"
                "    log_p = log_likelihood_normal(mu_p.reshape(rows), logvar_p.reshape(rows), z.reshape(rows))\n"
                "    return (log_q - log_p).view(batch_size, num_samples).mean(1)\n")]
    results = grade(_ift(tmp_path / "v", variant), tmp_path / "v.json", "--edition", "ift6135", "--only", "1.11.*")
    assert not lost(results), explain(lost(results))
    # Realistic bugs: the variance used as the standard deviation of the samples; log_mean_exp
    # without the max shift (overflows at 1e4). Each costs its own function only.
    bugs = [(IFT_MC_Z, "    z = mu_q + torch.exp(logvar_q) * torch.randn_like(mu_q)\n"),
            ("    a = torch.max(y, dim=1, keepdim=True)[0]\n", "    a = torch.zeros_like(y[:, :1])\n")]
    results = grade(_ift(tmp_path / "m", bugs), tmp_path / "m.json", "--edition", "ift6135", "--only", "1.11.*")
    charged = {t["extra_data"]["grades"] for t in lost(results)}
    assert charged == {"part1.estimators.kl_gaussian_gaussian_mc", "part1.estimators.log_mean_exp"}, explain(lost(results))
    results = grade(_ift(tmp_path / "u", IFT_UNTOUCHED), tmp_path / "u.json", "--edition", "ift6135", "--only", "1.11.*")
    assert results["score"] == 0 and len(results["tests"]) == 8
    for t in results["tests"]:
        assert "None" in t["output"].splitlines()[0], t["output"][:300]


IFT_MC_RETURN = "    return torch.mean(torch.sum(log_q - log_p, dim=2), dim=1)\n"
IFT_MC_EXPAND = "    mu_q = mu_q.view(batch_size, -1).unsqueeze(1).expand(batch_size, num_samples, input_size)\n"


@pytest.mark.slow
def test_ift6135_library_forms_are_allowed(tmp_path: Path):
    """torch.logsumexp and torch.distributions are the course's to allow: no policy check in this
    edition (1.9.9 is not one of its questions), so a student who uses them keeps full marks."""
    variant = [("    a = torch.max(y, dim=1, keepdim=True)[0]\n", ""),
               ("    return (a + torch.log(torch.sum(torch.exp(y - a), dim=1, keepdim=True) / sample_size)).view(batch_size)\n",
                "    return torch.logsumexp(y, dim=1) - math.log(sample_size)\n"),
               ("    return -0.5 * torch.sum(math.log(2 * math.pi) + logvar + (z - mu) ** 2 / torch.exp(logvar), dim=1)\n",
                "    return torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(dim=1)\n")]
    results = grade(_ift(tmp_path / "v", variant), tmp_path / "v.json", "--edition", "ift6135", "--profile", "quick", "--only", "1.11.*")
    assert not lost(results) and results["score"] == 20, explain(lost(results))


@pytest.mark.slow
@pytest.mark.parametrize("bug", [
    (IFT_MC_RETURN, "    return torch.mean(torch.mean(log_q - log_p, dim=2), dim=1)\n"),            # mean over D
    (IFT_MC_RETURN, "    return torch.mean(torch.sum(log_q - log_p, dim=2))\n"),                    # one scalar
    (IFT_MC_RETURN, "    return torch.mean(torch.sum(log_q - log_p, dim=2), dim=1, keepdim=True)\n"),  # [B, 1]
    (IFT_MC_EXPAND, IFT_MC_EXPAND[:-1] + ".contiguous().view(batch_size * num_samples, -1).view(batch_size, num_samples, -1)"
                    ".transpose(0, 1).reshape(batch_size, num_samples, input_size)\n"),                # .view scrambles rows
], ids=["mean_over_d", "scalar", "keepdim", "view_scrambled"])
def test_ift6135_monte_carlo_kl_mistakes(tmp_path: Path, bug: tuple[str, str]):
    """Realistic mistakes of the course's Monte-Carlo KL: each costs kl_gaussian_gaussian_mc's points only."""
    results = grade(_ift(tmp_path / "m", [bug]), tmp_path / "m.json", "--edition", "ift6135", "--profile", "quick", "--only", "1.11.*")
    charged = {t["extra_data"]["grades"] for t in lost(results)}
    assert charged == {"part1.estimators.kl_gaussian_gaussian_mc"}, explain(lost(results))


@pytest.mark.slow
def test_the_untouched_2024_template_part1_scores_zero(tmp_path: Path):
    sub = _template(tmp_path / "sub")
    shutil.rmtree(sub / "part2")
    for name, functions in UVA2021_STUBS.items():  # the same functions, the same stubs in 2024
        stub_functions(sub / "part1" / name, functions)
    results = grade(sub, tmp_path / "r.json", "--edition", "uva2024", "--profile", "quick", "--only", "1.*")
    tests = results["tests"]
    assert len(tests) >= 20 and all(t["score"] == 0 for t in tests), explain([t for t in tests if t["score"]])
    for t in tests:
        first = t["output"].strip().splitlines()[0]
        assert "NotImplementedError" in first or "not implemented yet" in first, (t["number"], first)
