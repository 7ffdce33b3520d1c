"""``torch.distributions`` is not allowed in part 1 (the assignment says so): a static and a run-time check.

- Static: the submission's graded part-1 files are parsed (``ast``, in the grading
  process; discovery already parsed them once in a subprocess) and every import of
  ``torch.distributions``, attribute ``.distributions`` or dynamic import of it is listed.
- Run time: ``import torch`` itself imports ``torch.distributions``, so its presence in
  ``sys.modules`` proves nothing. Instead the worker wraps
  ``torch.distributions.Distribution.__init__`` and runs every graded function once on
  small inputs; a distribution object created from a student file is recorded.

The penalty is this check's weight in grading.toml. The check scores only when the
student's code ran at all (the untouched handout scores 0 here like everywhere).
"""
from __future__ import annotations

import ast

from autograder.checks.part1 import vae_support as vs
from autograder.registry import check, fail, tags

PART1_FUNCTIONS = (
    "part1.utils.sample_reparameterize", "part1.utils.KLD", "part1.utils.elbo_to_bpd", "part1.utils.visualize_manifold",
    "part1.cnn_encoder_decoder.CNNEncoder", "part1.cnn_encoder_decoder.CNNDecoder",
    "part1.train.VAE.forward", "part1.train.VAE.sample",
    "part1.estimators.log_likelihood_bernoulli", "part1.estimators.log_likelihood_normal",
    "part1.estimators.log_mean_exp", "part1.estimators.kl_gaussian_gaussian_analytic",
    "part1.estimators.kl_gaussian_gaussian_mc", "part1.estimators.importance_weighted_log_likelihood",
)


def _is_distributions(name: str) -> bool:
    return name == "torch.distributions" or name.startswith("torch.distributions.")


def static_findings(source: str, filename: str) -> list[str]:
    """Uses of torch.distributions in one file's source (line numbers for the message)."""
    try:
        tree = ast.parse(source, filename=filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # discovery reported the file; its checks use the handout version
    torch_names = {"torch"} | {a.asname for n in ast.walk(tree) if isinstance(n, ast.Import)
                               for a in n.names if a.name == "torch" and a.asname}
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Import) and any(_is_distributions(a.name) for a in node.names):
            found.append(f"{filename}, line {line}: import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.ImportFrom) and node.module and (
                _is_distributions(node.module) or (node.module == "torch" and any(a.name == "distributions" for a in node.names))):
            found.append(f"{filename}, line {line}: from {node.module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Attribute) and node.attr == "distributions" and \
                isinstance(node.value, ast.Name) and node.value.id in torch_names:
            found.append(f"{filename}, line {line}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and any(
                isinstance(a, ast.Constant) and isinstance(a.value, str) and (_is_distributions(a.value) or a.value == "distributions")
                for a in node.args):
            found.append(f"{filename}, line {line}: {ast.unparse(node)[:80]}")
    return found


@check("part1.no_torch_distributions")
@tags(*PART1_FUNCTIONS)
def test_no_torch_distributions(part1):
    """No graded part-1 file uses torch.distributions, statically or at run time."""
    findings: list[str] = []
    for key, f in sorted(part1.discovery.files.items()):
        if f.part != "part1" or not f.usable or f.path is None:
            continue
        try:
            source = f.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        findings += static_findings(source, f.name)
    probe = part1.driver(f"{vs.DRIVER}.probe_distributions")
    records = [r for r in probe["records"] if isinstance(r, str)]
    if findings or records:
        lines = list(dict.fromkeys(findings + records))
        fail("torch.distributions is not allowed in this assignment (write the densities and samplers with plain "
             "tensor operations, e.g. torch.randn, torch.multinomial, log-densities by formula); found:\n  "
             + "\n  ".join(lines[:12]) + (f"\n  ... and {len(lines) - 12} more" if len(lines) > 12 else ""),
             "torch.distributions used")
    if not probe["ran"]:
        fail("None of the part 1 functions ran yet (they all raise an error, e.g. the handout's NotImplementedError), "
             "so there is nothing to check for torch.distributions; this check scores once your code runs.")
