"""What each image runs, and what those modules import, measured against pyproject's extras.

The images (Dockerfile targets, used by docker-compose.yml and deploy/k8s) each install the base dependencies and
one extra. A module that imports a library its extra does not declare still works in a checkout, where
`make install` installs everything, and fails only in the image: so the tests compare the two here, from the
installed distributions' metadata, without building an image. Shared by tests/unit/test_packaging.py and
tests/unit/test_deployment.py.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])
FIRST_PARTY = ("likeopt", "gateway", "retrieval_svc", "generation_svc", "cache_svc")

MODEL_LIBRARIES = ("torch", "transformers", "sentence_transformers", "llama_cpp", "faiss", "onnxruntime", "onnx")
"""Modules the light images must never load: the model runtimes and what only they need."""
MODEL_DISTRIBUTIONS = frozenset(
    {"torch", "transformers", "sentence-transformers", "llama-cpp-python", "faiss-cpu", "onnxruntime", "onnx"}
)


@dataclass(frozen=True)
class Image:
    """One Dockerfile target: the extra it installs and the programs it runs.

    ``packages`` are scanned whole (every module may be imported lazily by the service); ``modules`` are the
    shared ones it runs as programs (``python -m ...``), scanned with everything they import; ``commands`` are
    the ``python -m`` modules and console scripts the image is started with in compose and Kubernetes.
    """

    extra: str
    packages: tuple[str, ...]
    modules: tuple[str, ...]
    commands: tuple[str, ...]


IMAGES: dict[str, Image] = {
    "cache": Image("cache", ("cache_svc",), ("likeopt.ops.healthcheck",), ("cache_svc", "likeopt.ops.healthcheck")),
    "retrieval": Image(
        "retrieval",
        ("retrieval_svc",),
        ("likeopt.ops.healthcheck",),
        ("retrieval_svc", "retrieval_svc.onnx_query", "likeopt.ops.healthcheck"),
    ),
    "generation": Image(
        "generation", ("generation_svc",), ("likeopt.ops.healthcheck",), ("generation_svc", "likeopt.ops.healthcheck")
    ),
    # The gateway's image also renders Envoy's configuration and runs `likeopt ingest` (the demo corpus).
    "gateway": Image(
        "gateway",
        ("gateway",),
        ("likeopt.ops.healthcheck", "likeopt.ops.envoy_config", "likeopt.ops.ingest"),
        ("gateway", "likeopt.ops.healthcheck", "likeopt.ops.envoy_config", "likeopt ingest"),
    ),
}
LIGHT_IMAGES = ("cache", "gateway")
"""The images that carry neither torch nor llama.cpp."""


# --- pyproject's requirements and what they install -------------------------------------------------------------


def requirements(extra: str | None) -> list[Requirement]:
    """The base dependencies plus one extra's, with references to this project's own extras expanded."""
    project = PYPROJECT["project"]
    pending = [Requirement(text) for text in project["dependencies"]]
    if extra is not None:
        pending += [Requirement(text) for text in project["optional-dependencies"][extra]]
    found: list[Requirement] = []
    while pending:
        requirement = pending.pop()
        if canonicalize_name(requirement.name) == PROJECT:
            for name in requirement.extras:
                pending += [Requirement(text) for text in project["optional-dependencies"][name]]
        else:
            found.append(requirement)
    return found


def installed_closure(roots: Iterable[Requirement]) -> set[str]:
    """Every installed distribution that the requirements bring, transitively, as canonical names.

    A requirement that is not installed here is left out: that can only make the closure smaller, so a check
    against it fails rather than passes wrongly.
    """
    seen: set[str] = set()
    pending = [(requirement, "") for requirement in roots]
    while pending:
        requirement, parent_extra = pending.pop()
        if requirement.marker and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in {parent_extra, *([""] if parent_extra else [])}
        ):
            continue
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras)
        key = f"{name}[{','.join(extras)}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            child = Requirement(text)
            for extra in extras or [""]:
                pending.append((child, extra))
    return {key.split("[", 1)[0] for key in seen}


# --- which distribution a module comes from -----------------------------------------------------------------------


@functools.cache
def _owners() -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """Each installed file's distribution, by its path under site-packages; each directory's distributions."""
    files: dict[str, str] = {}
    directories: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or []:
            path = file.as_posix()
            if path.startswith("..") or ".dist-info/" in path:
                continue
            files[path] = name
            parts = path.split("/")
            for depth in range(1, len(parts)):
                directories.setdefault("/".join(parts[:depth]), set()).add(name)
    return files, {path: frozenset(names) for path, names in directories.items()}


def distribution_of_module(name: str) -> str | None:
    """The distribution a module name would be imported from, found on disk without importing it.

    Namespace packages (``google``, ``opentelemetry``) belong to several distributions, so the longest part of
    the dotted name that one distribution owns decides.
    """
    files, directories = _owners()
    parts = name.split(".")
    for depth in range(len(parts), 0, -1):
        stem = "/".join(parts[:depth])
        for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
            if candidate in files:
                return files[candidate]
        owners = directories.get(stem, frozenset())
        if len(owners) == 1:
            return next(iter(owners))
        if depth == 1 and not owners:
            extension = [owner for path, owner in files.items() if "/" not in path and path.startswith(f"{stem}.")]
            if extension:
                return extension[0]
    return None


# --- what first-party code imports ------------------------------------------------------------------------------


def module_file(name: str) -> Path | None:
    """The checkout's file for a first-party module (a package's ``__init__.py``), or None."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


class _Imports(ast.NodeVisitor):
    """Absolute names of everything a module imports, lazily too, except what it only tries to import
    (``try: import x / except ImportError``) or imports for type checking."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.names: list[str] = []

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        caught = {
            name.id
            for handler in node.handlers
            if handler.type is not None
            for name in ast.walk(handler.type)
            if isinstance(name, ast.Name)
        }
        optional = bool(caught & {"ImportError", "ModuleNotFoundError"})
        for child in [*([] if optional else node.body), *node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    def visit_With(self, node: ast.With) -> None:
        """``with contextlib.suppress(ImportError): import x`` is a try too."""
        suppressed = {
            name.id
            for item in node.items
            if isinstance(item.context_expr, ast.Call)
            and getattr(item.context_expr.func, "attr", getattr(item.context_expr.func, "id", "")) == "suppress"
            for argument in item.context_expr.args
            for name in ast.walk(argument)
            if isinstance(name, ast.Name)
        }
        if not suppressed & {"ImportError", "ModuleNotFoundError"}:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names += [alias.name for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            anchor = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            module = ".".join([*anchor, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        # `from likeopt import text` and `from opentelemetry import trace` import modules; when the name is not
        # a module, the lookups below fall back to the package that holds it.
        self.names += [module if alias.name == "*" else f"{module}.{alias.name}" for alias in node.names]


def imports_of(name: str) -> list[str]:
    """What one first-party module imports (absolute module names)."""
    path = module_file(name)
    assert path is not None, f"{name} is not a module of the checkout"
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    visitor = _Imports(package)
    visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return visitor.names


def package_modules(package: str) -> Iterator[str]:
    """Every module of a first-party package (its subpackages' too)."""
    directory = ROOT / package.replace(".", "/")
    for path in sorted(directory.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def static_imports(roots: Iterable[str]) -> tuple[set[str], set[str]]:
    """Following first-party imports from the roots: the first-party modules reached, and every other module
    name they import (standard library excluded)."""
    reached: set[str] = set()
    third_party: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        for imported in imports_of(name):
            top = imported.split(".")[0]
            if top in FIRST_PARTY:
                if module_file(imported):
                    pending.append(imported)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(imported)
    return reached, third_party


def image_roots(image: Image) -> list[str]:
    return [module for package in image.packages for module in package_modules(package)] + list(image.modules)


# --- what importing a program loads ------------------------------------------------------------------------------

_LOADED = """
import importlib, json, sys
before = set(sys.modules)
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n not in before}))
"""


def loaded_by_import(modules: Iterable[str]) -> dict[str, str | None]:
    """The modules (and their files) that importing these loads, in a fresh interpreter: nothing this test
    process has imported already can hide them."""
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, *modules], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])
