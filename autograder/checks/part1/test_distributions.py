"""The forbidden-API policy of part 1: no ``torch.distributions`` (a static and a run-time check).

- Static: the submission's graded part-1 files are parsed (``ast``, in the grading
  process; discovery already parsed them once in a subprocess) and every use of
  ``torch.distributions`` is listed with the function it sits in.
- Run time: ``import torch`` itself imports ``torch.distributions``, so its presence in
  ``sys.modules`` proves nothing. Instead the worker wraps
  ``torch.distributions.Distribution.__init__`` and runs every graded function once on
  small inputs (a few seconds each: a function that hangs is judged by its own checks); a
  distribution object created from a student file is recorded with its function.

The policy is a convention of the edition (``[conventions.part1]`` in grading.toml):
``forbidden_api_allow`` maps a function id to the ``torch.distributions`` names it may use
(the UvA template's ``visualize_manifold`` hints at ``Normal(0, 1).icdf``). A failure is
tagged with the functions that contain the forbidden uses. The penalty is this check's
weight; it scores only when the student's code ran at all (the untouched handout scores 0
here like everywhere).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from autograder.checks.part1 import vae_support as vs
from autograder.sandbox import WorkerDied, WorkerMemoryExceeded, WorkerTimeout
from autograder.registry import ALL, check, fail, grades, tags

PART1_FUNCTIONS = (
    "part1.utils.sample_reparameterize", "part1.utils.KLD", "part1.utils.elbo_to_bpd", "part1.utils.visualize_manifold",
    "part1.cnn_encoder_decoder.CNNEncoder", "part1.cnn_encoder_decoder.CNNDecoder",
    "part1.train.VAE.forward", "part1.train.VAE.sample",
    "part1.estimators.log_likelihood_bernoulli", "part1.estimators.log_likelihood_normal",
    "part1.estimators.log_mean_exp", "part1.estimators.kl_gaussian_gaussian_analytic",
    "part1.estimators.kl_gaussian_gaussian_mc", "part1.estimators.importance_weighted_log_likelihood",
)


@dataclass(frozen=True)
class Use:
    """One use of the forbidden API: where, in which function, and which name (``Normal``, or '' for the module)."""

    file: str
    line: int
    function: str  # qualified name in the file ('<module>' at top level)
    name: str
    text: str


def _is_distributions(name: str) -> bool:
    return name == "torch.distributions" or name.startswith("torch.distributions.")


def static_uses(source: str, filename: str) -> list[Use]:
    """Every use of torch.distributions in one file's source, with the enclosing function."""
    try:
        tree = ast.parse(source, filename=filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []  # discovery reported the file; its checks use the handout version
    torch_names = {"torch"} | {a.asname for n in ast.walk(tree) if isinstance(n, ast.Import)
                               for a in n.names if a.name == "torch" and a.asname}
    parents: dict[int, ast.AST] = {}
    owners: dict[int, str] = {}

    def visit(node: ast.AST, owner: str) -> None:
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
            inner = owner
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = child.name if owner == "<module>" else f"{owner}.{child.name}"
            owners[id(child)] = inner
            visit(child, inner)

    visit(tree, "<module>")
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        owner = owners.get(id(node), "<module>")
        if isinstance(node, ast.Import):
            for a in node.names:
                if _is_distributions(a.name):
                    found.append(Use(filename, line, owner, a.name.split(".")[2] if a.name.count(".") >= 2 else "",
                                     f"import {a.name}"))
        elif isinstance(node, ast.ImportFrom) and node.module and (
                _is_distributions(node.module) or (node.module == "torch" and any(a.name == "distributions" for a in node.names))):
            names = [a.name for a in node.names] if _is_distributions(node.module) else [""]
            for name in names:
                found.append(Use(filename, line, owner, "" if name == "*" else name,
                                 f"from {node.module} import {', '.join(a.name for a in node.names)}"))
        elif isinstance(node, ast.Attribute) and node.attr == "distributions" and \
                isinstance(node.value, ast.Name) and node.value.id in torch_names:
            parent = parents.get(id(node))
            name = parent.attr if isinstance(parent, ast.Attribute) else ""
            found.append(Use(filename, line, owner, name, ast.unparse(parent if name else node)[:80]))
        elif isinstance(node, ast.Call) and any(
                isinstance(a, ast.Constant) and isinstance(a.value, str) and (_is_distributions(a.value) or a.value == "distributions")
                for a in node.args):
            found.append(Use(filename, line, owner, "", ast.unparse(node)[:80]))
    return found


def function_id(part: str, filename: str, qualname: str, aliases: dict[str, tuple[str, ...]]) -> str:
    """``("part1", "train_pl.py", "VAE.forward")`` -> ``part1.train.VAE.forward`` (aliases applied)."""
    stem = Path(filename).stem
    module = next((alias for alias, modules in aliases.items() if stem in modules), stem)
    top = qualname.split(".")[0]
    # A method is graded as the class's method (VAE.forward) or as its class (CNNEncoder).
    return f"{part}.{module}.{qualname if module != stem or not top[:1].isupper() else top}"


def _allowed(use_function: str, name: str, allow: dict[str, list[str]]) -> bool:
    """Whether ``name`` used inside the function (id) is one of its allowed names. Where the
    edition allows anything, a module-level import of the module or of allowed names is
    allowed too: each use is then judged where it happens (the run-time probe sees aliases)."""
    if use_function in allow:
        return bool(name) and name in allow[use_function]
    if use_function.endswith(".<module>") and allow:
        return not name or name in {n for ns in allow.values() for n in ns}
    return False


@check("part1.no_torch_distributions")
@grades(ALL)  # a policy over every function: runs the student's own code everywhere
@tags(*PART1_FUNCTIONS)
def test_no_torch_distributions(part1, cfg, partial_credit):
    """No graded part-1 file uses torch.distributions, statically or at run time, except where
    the edition's convention allows a name in a function."""
    allow = {str(k): list(v) for k, v in (cfg.convention("part1.forbidden_api_allow", {}) or {}).items()}
    aliases = cfg.parts["part1"].aliases
    uses: list[Use] = []
    for key, f in sorted(part1.discovery.files.items()):
        if f.part != "part1" or not f.usable or f.path is None:
            continue
        try:
            source = f.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        uses += static_uses(source, f.name)
    try:
        probe = part1.driver(f"{vs.DRIVER}.probe_distributions")
    except (WorkerDied, WorkerMemoryExceeded, WorkerTimeout):
        # A function that kills its worker (a memory bomb, say) loses its own checks; the policy
        # is then judged by the static scan alone rather than charging that bug a second time.
        probe = {"records": [], "ran": True}
    for record in probe["records"]:
        if isinstance(record, list) and len(record) == 4:
            file, line, qualname, cls = (str(record[0]), int(record[1]), str(record[2]), str(record[3]))
            uses.append(Use(file, line, qualname, cls, f"torch.distributions.{cls}(...) created at run time"))
    bad = []
    for use in uses:
        fid = function_id("part1", use.file, use.function, aliases)
        if not _allowed(fid, use.name, allow):
            bad.append((fid, use))
    if bad:
        lines = list(dict.fromkeys(f"{u.file}, line {u.line} (in {u.function}): {u.text}" for _, u in bad))
        # Tagged with the functions that contain a forbidden use; a use at a file's top level
        # concerns every graded function of that file.
        tagged: list[str] = []
        for fid, _ in bad:
            tagged += [f for f in PART1_FUNCTIONS if f.startswith(fid[:-len("<module>")])] \
                if fid.endswith(".<module>") else [fid]
        partial_credit.tags = tuple(dict.fromkeys(tagged))
        exceptions = "; ".join(f"{k.split('.', 2)[-1]} may use {', '.join(v)}" for k, v in allow.items())
        fail("torch.distributions is not allowed in this assignment (write the densities and samplers with plain "
             "tensor operations, e.g. torch.randn, torch.multinomial, log-densities by formula"
             + (f"; allowed here: {exceptions}" if exceptions else "") + "); found:\n  "
             + "\n  ".join(lines[:12]) + (f"\n  ... and {len(lines) - 12} more" if len(lines) > 12 else ""),
             "torch.distributions used")
    if not probe["ran"]:
        fail("None of the part 1 functions ran yet (they all raise an error, e.g. the handout's NotImplementedError), "
             "so there is nothing to check for torch.distributions; this check scores once your code runs.")
