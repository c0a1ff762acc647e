"""pyproject's dependencies: minimums the checked-in stubs accept, one extra per service that covers what the
service imports (and, for the gateway and cache_svc, nothing of torch or llama.cpp), codegen and test tools in
``dev`` only, and a wheel that carries the files an installed copy reads.
"""

from __future__ import annotations

import ast
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.packaging import (
    IMAGES,
    LIGHT_IMAGES,
    MODEL_DISTRIBUTIONS,
    MODEL_LIBRARIES,
    PROJECT,
    PYPROJECT,
    ROOT,
    Image,
    distribution_of_module,
    image_roots,
    installed_closure,
    loaded_by_import,
    package_modules,
    requirements,
    static_imports,
)

STUBS = ROOT / "likeopt" / "v1"
SERVICE_EXTRAS = ("cache", "retrieval", "generation", "gateway")
CODEGEN_AND_TEST_ONLY = ("grpcio-tools", "rank-bm25", "pytest", "milvus-lite", "schemathesis", "hypothesis")


def declared(extra: str | None) -> dict[str, Requirement]:
    """The requirements pyproject lists for the base (None) or one extra, by canonical name, unexpanded."""
    project = PYPROJECT["project"]
    texts = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return {canonicalize_name(r.name): r for r in map(Requirement, texts)}


def minimum(requirement: Requirement) -> Version:
    """The lowest version a requirement accepts: its ``>=`` bound (every runtime pin here is one)."""
    bounds = [Version(spec.version) for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
    assert bounds, f"{requirement} has no lower bound"
    return max(bounds)


def protobuf_gencode_versions() -> dict[str, Version]:
    """What each *_pb2.py asks of the protobuf runtime (its ValidateProtobufRuntimeVersion call)."""
    found = {}
    for path in sorted(STUBS.glob("*_pb2.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "ValidateProtobufRuntimeVersion":
                major, minor, patch, suffix = (arg.value for arg in node.args[1:5])  # type: ignore[attr-defined]
                found[path.name] = Version(f"{major}.{minor}.{patch}{suffix}")
    return found


def grpc_generated_versions() -> dict[str, Version]:
    """What each *_pb2_grpc.py asks of grpcio (its GRPC_GENERATED_VERSION)."""
    found = {}
    for path in sorted(STUBS.glob("*_pb2_grpc.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "GRPC_GENERATED_VERSION":
                found[path.name] = Version(node.value.value)  # type: ignore[attr-defined]
    return found


# --- minimums that match the stubs ------------------------------------------------------------------------------


def test_every_stub_states_the_versions_that_generated_it() -> None:
    assert len(protobuf_gencode_versions()) == len(list(STUBS.glob("*_pb2.py"))) >= 3
    assert len(grpc_generated_versions()) == len(list(STUBS.glob("*_pb2_grpc.py"))) >= 3


def test_protobuf_minimum_is_no_older_than_the_stubs_gencode() -> None:
    """An older runtime makes every *_pb2.py raise VersionError at import: pip must not be allowed to pick one."""
    needed = max(protobuf_gencode_versions().values())
    assert minimum(declared(None)["protobuf"]) >= needed


def test_grpc_minimums_are_no_older_than_the_stubs_generator() -> None:
    """*_pb2_grpc.py raises at import under an older grpcio; health checking and reflection come in step."""
    needed = max(grpc_generated_versions().values())
    for name in ("grpcio", "grpcio-health-checking", "grpcio-reflection"):
        assert minimum(declared(None)[name]) >= needed, name
    assert minimum(declared("dev")["grpcio-tools"]) >= needed, "make protos would write stubs older than these"


def test_the_stub_generator_is_pinned_to_the_version_that_wrote_the_stubs() -> None:
    """The stub test compares bytes, and each grpcio-tools release writes its version into them: a range would let
    a fresh machine install a newer generator and fail on stubs nobody changed."""
    generator = declared("dev")["grpcio-tools"]
    pins = [Version(spec.version) for spec in generator.specifier if spec.operator == "=="]
    assert pins == [max(grpc_generated_versions().values())], f"{generator}: pin it to the stubs' version"


# --- where each package is declared ------------------------------------------------------------------------------


def test_pyproject_has_one_extra_per_service_and_all_of_them() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(SERVICE_EXTRAS) <= set(extras) and {"all", "dev"} <= set(extras)
    assert {image.extra for image in IMAGES.values()} == set(SERVICE_EXTRAS)
    everything = {canonicalize_name(r.name) for r in requirements("all")}
    for extra in SERVICE_EXTRAS:
        assert set(declared(extra)) <= everything, f"all leaves out part of {extra}"


@pytest.mark.parametrize("name", CODEGEN_AND_TEST_ONLY)
def test_codegen_and_test_only_packages_are_dev_dependencies(name: str) -> None:
    assert name in declared("dev")
    for extra in (None, *SERVICE_EXTRAS, "all"):
        assert name not in {canonicalize_name(r.name) for r in requirements(extra)}, f"{name} in {extra or 'base'}"


def unaccounted(roots: list[str], extra: str) -> tuple[list[str], list[str]]:
    """The imports of roots (followed through first-party code, lazy ones included) that base + extra do not
    install, and those no installed distribution provides at all."""
    _, imported = static_imports(roots)
    closure = installed_closure(requirements(extra)) | {PROJECT}
    owners = {name: distribution_of_module(name) for name in imported}
    unknown = sorted(name for name, owner in owners.items() if owner is None)
    missing = sorted(f"{name} ({owner})" for name, owner in owners.items() if owner and owner not in closure)
    return missing, unknown


@pytest.mark.parametrize("image", IMAGES.values(), ids=lambda image: image.extra)
def test_each_image_extra_installs_everything_its_programs_import(image: Image) -> None:
    missing, unknown = unaccounted(image_roots(image), image.extra)
    assert not missing, f"imported in the {image.extra} image but not installed by base + [{image.extra}]"
    assert not unknown, "no installed distribution provides these (so the check above could not see them)"


@pytest.mark.parametrize(
    ("module", "extra"),
    [("likeopt.ops.migrate", "retrieval"), ("gateway.mcp_stdio", "gateway"), ("likeopt.ops.ingest", "gateway")],
)
def test_commands_run_with_the_extra_the_readme_names(module: str, extra: str) -> None:
    """README's 'Installing' table: `likeopt migrate` runs with retrieval, `likeopt mcp` and `likeopt ingest` with
    gateway."""
    assert unaccounted([module], extra) == ([], [])


def test_all_installs_everything_the_runtime_code_imports() -> None:
    """Every first-party module but the stub generator (a dev tool) runs from an install of ``[all]``."""
    roots = [
        module
        for package in ("likeopt", "gateway", "retrieval_svc", "generation_svc", "cache_svc")
        for module in package_modules(package)
        if module != "likeopt.ops.protos"
    ]
    missing, unknown = unaccounted(roots, "all")
    assert not missing and not unknown, (missing, unknown)


@pytest.mark.parametrize("extra", LIGHT_IMAGES)
def test_light_extras_install_no_model_library(extra: str) -> None:
    assert not installed_closure(requirements(extra)) & MODEL_DISTRIBUTIONS


def entry_modules(image: Image) -> list[str]:
    """The modules Python imports to start the image's programs (``python -m X`` runs ``X.__main__`` for a
    package; ``likeopt ...`` is the console script's likeopt.ops.cli)."""
    modules = []
    for command in image.commands:
        if " " in command:
            modules.append("likeopt.ops.cli")
        elif (ROOT / command.replace(".", "/") / "__main__.py").is_file():
            modules.append(f"{command}.__main__")
        else:
            modules.append(command)
    return modules


@pytest.mark.parametrize("extra", LIGHT_IMAGES)
def test_light_programs_load_no_model_library(extra: str) -> None:
    """Imported in a fresh interpreter, the gateway's and cache_svc's programs leave torch, transformers,
    sentence-transformers, llama.cpp, FAISS and ONNX out of sys.modules."""
    loaded = loaded_by_import(entry_modules(IMAGES[extra]))
    assert "likeopt.runtime.config" in loaded, "the import ran"
    heavy = sorted(name for name in loaded if name.split(".")[0] in MODEL_LIBRARIES)
    assert not heavy, f"{extra} loads {heavy[:10]}"


def test_retrieval_program_does_load_a_model_library() -> None:
    """The check above can see a model library when one is loaded: retrieval_svc imports FAISS at start."""
    loaded = loaded_by_import(entry_modules(IMAGES["retrieval"]))
    assert any(name.split(".")[0] in MODEL_LIBRARIES for name in loaded)


# --- the wheel --------------------------------------------------------------------------------------------------


BUILD_REQUIRES = [Requirement(text) for text in PYPROJECT["build-system"]["requires"]]


def test_dev_installs_what_building_the_wheel_needs() -> None:
    """So the wheel below builds offline, without pip fetching a build backend into an isolated environment."""
    for requirement in BUILD_REQUIRES:
        assert minimum(declared("dev")[canonicalize_name(requirement.name)]) >= minimum(requirement)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the sources (a build in the shared checkout would leave
    build/ and *.egg-info behind), with the setuptools this environment has."""
    for requirement in BUILD_REQUIRES:
        installed = importlib.metadata.version(requirement.name)
        assert requirement.specifier.contains(installed), f"{requirement.name} {installed} here: {requirement}"
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("likeopt", "gateway", "retrieval_svc", "generation_svc", "cache_svc"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    done = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("like_opt-*.whl")
    return built


def test_wheel_carries_the_files_an_installed_copy_reads(wheel: Path) -> None:
    """Envoy's template, the off-topic questions of ``likeopt eval --answers``, the web UI and the stub types."""
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "likeopt/ops/envoy/envoy.tmpl.yaml" in names
    assert "likeopt/ops/data/offtopic_questions.txt" in names
    for path in (ROOT / "gateway" / "static").iterdir():
        assert f"gateway/static/{path.name}" in names
    assert {f"likeopt/v1/{p.name}" for p in STUBS.glob("*.pyi")} <= names
    assert not any(name.startswith(("tests/", "benchmarks/", "envoy/")) for name in names)


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked as an installed copy lays it out (a wheel is a zip of site-packages)."""
    site = tmp_path_factory.mktemp("site")
    zipfile.ZipFile(wheel).extractall(site)
    return site


def run_installed(site: Path, script: str, cwd: Path) -> str:
    """What script prints, run with only the installed copy on the path and outside the checkout, so that a file
    read from the checkout rather than the package is missing or shows in the paths printed."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_installed_wheel_renders_envoy_config_outside_the_checkout(site: Path, tmp_path: Path) -> None:
    """What the Envoy config job does in the gateway's image: the template is found in the installed package."""
    script = "import sys, likeopt; print(likeopt.__file__); from likeopt.ops.envoy_config import main; "
    script += "sys.exit(main(['out']))"
    printed = run_installed(site, script, tmp_path)
    assert Path(printed.splitlines()[0]).is_relative_to(site), "imported from the checkout, not the wheel"
    rendered = (tmp_path / "out" / "envoy.yaml").read_text()
    assert "static_resources" in rendered and "${" not in rendered


def test_installed_wheel_reads_the_off_topic_questions_from_the_package(site: Path, tmp_path: Path) -> None:
    """``likeopt eval --answers`` asks them by default: the path it uses must lie in the installed package."""
    script = "from likeopt.ops.answer_eval import OFF_TOPIC, read_questions; "
    script += "print(OFF_TOPIC); print(len(read_questions(OFF_TOPIC)))"
    path, count = run_installed(site, script, tmp_path).split()
    assert Path(path).is_relative_to(site), "read from the checkout, not the wheel"
    assert int(count) >= 100
