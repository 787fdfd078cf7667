"""The layers of ``docs/architecture.md`` hold: no module imports a module of a higher layer, and
every module that registers a model or a dataset is found without a list."""

import ast
import fnmatch
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import unsup
from unsup.data.registry import DATASETS
from unsup.models import MODELS, names

PACKAGE = Path(unsup.__file__).parent
DOC = PACKAGE.parent / "docs" / "architecture.md"


def layers() -> list[tuple[int, list[str]]]:
    """(layer number, module patterns) from the table of ``docs/architecture.md``."""
    rows = re.findall(r"^\| (\d+)\. [^|]+\| ([^|]+) \|", DOC.read_text(), flags=re.M)
    assert len(rows) >= 7, "docs/architecture.md lost its table of layers"
    return [(int(n), re.findall(r"`([\w.*<>]+)`", cell)) for n, cell in rows]


def layer_of(module: str) -> int | None:
    """The layer whose patterns match ``module`` (``X.*``: X and everything inside it)."""
    for number, patterns in layers():
        for p in patterns:
            p = p.replace("<family>", "*")
            if fnmatch.fnmatchcase(module, p) or (p.endswith(".*") and fnmatch.fnmatchcase(module, p[:-2])):
                return number
    return None


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every unsup module ``path`` imports, at the top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("unsup")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("unsup"):
            for a in node.names:  # `from unsup import data` imports the module unsup.data
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in known else node.module)
    return out


def test_every_module_has_a_layer():
    missing = [m for m in modules() if m != "unsup" and layer_of(m) is None]
    assert not missing, f"modules in no layer of docs/architecture.md: {missing}"


def test_no_module_imports_from_a_higher_layer():
    known = modules()
    upward = []
    for name, path in known.items():
        if name == "unsup":  # the front door imports from every layer
            continue
        mine = layer_of(name)
        for target in imports(path, known):
            theirs = layer_of(target) if target != "unsup" else 99
            if theirs is not None and theirs > mine:
                upward.append(f"{name} (layer {mine}) imports {target} (layer {theirs})")
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from unsup.train import Trainer\n")
    assert "unsup.train" in imports(bad, modules())
    assert layer_of("unsup.models.flows.glow") == 3 < layer_of("unsup.train") == 4


def test_every_registering_module_is_found_without_a_list():
    names()  # discovery: imports every module of the model packages
    import unsup.data

    unsup.data.names()
    registering = []
    for root in ("unsup.models", "unsup.data", "unsup.train"):
        package = importlib.import_module(root)
        for info in pkgutil.walk_packages(package.__path__, root + "."):
            text = Path(importlib.util.find_spec(info.name).origin).read_text()
            if re.search(r"^@(register|DATASETS\.register)\(", text, flags=re.M):
                registering.append(info.name)
    registered_by = {e.obj.__module__ for e in MODELS} | {e.obj.__module__ for e in DATASETS}
    assert registering and set(registering) <= registered_by


@pytest.mark.parametrize("family", ["autoregressive", "flows", "latent", "representation", "diffusion"])
def test_tests_mirror_the_families(family):
    tests = Path(__file__).parent / "models" / family
    sources = {p.stem for p in (PACKAGE / "models" / family).glob("*.py")}
    assert tests.is_dir() and all(p.stem[len("test_"):] in sources | {"flows"}
                                  for p in tests.glob("test_*.py"))


def _model_classes() -> set[str]:
    """Every model class of unsup (subclasses of Model), but the interface itself."""
    from unsup.models.base import LikelihoodModel, Model

    names()
    found, todo = set(), [Model]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("unsup.models"):
                found.add(sub.__name__)
            todo.append(sub)
    return found - {Model.__name__, LikelihoodModel.__name__}


def test_the_command_line_and_the_training_loop_name_no_model_class():
    classes = _model_classes()
    assert {"VAE", "Word2Vec", "VQVAE", "Glow"} <= classes
    generic = [*(PACKAGE / "cli").glob("*.py"),
               # the data sources derived from one family's runs (a VQ-VAE's codes, a VAE's latents)
               *(p for p in (PACKAGE / "train").glob("*.py") if p.name not in ("vqcodes.py", "latents.py"))]
    named = []
    for path in generic:
        for node in ast.walk(ast.parse(path.read_text())):
            ident = node.id if isinstance(node, ast.Name) else node.attr if isinstance(
                node, ast.Attribute) else None
            names_imported = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
            named += [f"{path.name}: {n}" for n in [ident, *names_imported] if n in classes]
    assert not named, f"model classes named in generic code: {named}"


def test_each_command_line_module_is_short():
    long = {p.name: n for p in (PACKAGE / "cli").glob("*.py")
            if (n := len(p.read_text().splitlines())) > 250}
    assert not long, f"unsup/cli modules over 250 lines: {long}"
