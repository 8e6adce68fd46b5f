#!/usr/bin/env python3
"""Checks the layering of the whole tree (ctest: layering_check, label unit).

Above core, each top-level folder may include only the folders listed for it
in TREE_LAYERS below (its own always; "caldera/v1/..." is proto/; headers of
other projects are not checked); bench/, tests/ and tools/ may include
anything. So `client -> worker` or `server -> worker` fails, and a new
top-level folder of sources must be added to TREE_LAYERS.

Inside core/:

The allowed graph is written once, in the areas' CMakeLists.txt:
    caldera_core_area(<area> [SOURCES ...] [DEPS <area> ...])
DEPS are the areas whose headers <area> includes directly; they are also the
link dependencies of caldera::<area>. This script fails (exit 1) when
  - the DEPS graph has a cycle or names an undeclared area,
  - a folder core/<dir>/ is not a declared area, or a source file lies in
    core/ itself,
  - a file in core/<area>/ includes "core/<other>/..." where <other> is not
    <area> and not reachable through DEPS (an area above it or beside it),
  - a file in core/ includes a header of the code above core (storage/,
    server/, worker/, client/, job/, proto/, tests/, bench/, tools/),
  - an area lists a DEPS entry that none of its files includes (the graph
    must state the real include graph, not more).

    scripts/check_layering.py [REPO_ROOT]     (default: this script's repo)
"""
import pathlib
import re
import sys

# What each top-level folder above core may include directly. Dependencies
# point one way: client -> operations -> in_process_cluster -> server, worker -> pipeline -> job ->
# model_io -> storage -> core (docs/architecture.md).
TREE_LAYERS = {
    "storage": {"core"},
    "model_io": {"core", "storage"},
    "proto": set(),
    "job": {"core", "storage", "model_io", "proto"},
    "pipeline": {"core", "storage", "model_io", "job"},
    "service_runtime": {"core", "storage"},
    "server": {"core", "storage", "model_io", "job", "proto", "service_runtime"},
    "worker": {"core", "storage", "model_io", "job", "proto", "service_runtime", "pipeline"},
    "in_process_cluster": {"core", "storage", "model_io", "job", "proto", "service_runtime",
                           "pipeline", "server", "worker"},
    "operations": {"core", "storage", "model_io", "job", "proto", "service_runtime",
                   "in_process_cluster"},
    "client": {"core", "storage", "model_io", "job", "proto", "service_runtime", "pipeline",
               "in_process_cluster", "operations"},
}
# Folders whose sources may include anything of ours.
UNCHECKED = {"bench", "tests", "tools", "scripts", "deploy", "docs", "models", "build"}
OURS = set(TREE_LAYERS) | {"core"} | UNCHECKED
ABOVE_CORE = OURS - {"core", "scripts", "deploy", "docs", "models", "build"}
SOURCE_SUFFIXES = {".h", ".hh", ".hpp", ".cc", ".cpp", ".cu", ".cuh", ".inc"}
AREA_CALL = re.compile(r"caldera_core_area\s*\(([^)]*)\)", re.S)
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def strip_cmake_comments(text):
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def read_areas(core):
    """{area: [deps]} from every caldera_core_area() call under core/."""
    areas, errors = {}, []
    for cmake in sorted(core.rglob("CMakeLists.txt")):
        for call in AREA_CALL.finditer(strip_cmake_comments(cmake.read_text())):
            words = call.group(1).split()
            if not words:
                continue
            name, deps, key = words[0], [], None
            for w in words[1:]:
                if w in ("SOURCES", "DEPS"):
                    key = w
                elif key == "DEPS":
                    deps.append(w)
            if name in areas:
                errors.append(f"{cmake}: area '{name}' declared twice")
            areas[name] = deps
    return areas, errors


def reachable(areas, start):
    seen, todo = set(), list(areas.get(start, []))
    while todo:
        a = todo.pop()
        if a not in seen:
            seen.add(a)
            todo.extend(areas.get(a, []))
    return seen


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else __file__).resolve()
    if root.is_file():
        root = root.parent.parent
    core = root / "core"
    areas, errors = read_areas(core)

    for area, deps in areas.items():
        for d in deps:
            if d not in areas:
                errors.append(f"area '{area}' depends on undeclared area '{d}'")
        if area in reachable(areas, area):
            errors.append(f"area '{area}' depends on itself (a cycle in DEPS)")
    for d in sorted(p for p in core.iterdir() if p.is_dir()):
        if d.name not in areas:
            errors.append(f"core/{d.name}/ is not a declared area (caldera_core_area)")

    used = {a: set() for a in areas}
    for path in sorted(core.rglob("*")):
        if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
            continue
        rel = path.relative_to(root)
        if len(rel.parts) < 3:
            errors.append(f"{rel}: a source file outside every area (put it in core/<area>/)")
            continue
        area = rel.parts[1]
        if area not in areas:
            continue  # reported above
        allowed = reachable(areas, area) | {area}
        text = path.read_text(errors="replace")
        for m in INCLUDE.finditer(text):
            inc = m.group(1)
            parts = inc.split("/")
            line = text.count("\n", 0, m.start()) + 1
            where = f"{rel}:{line}"
            if parts[0] == "core" and len(parts) > 2:
                target = parts[1]
                if target not in allowed:
                    errors.append(
                        f'{where}: core/{area} may not include "{inc}" (core/{area} may use: '
                        f"{', '.join(sorted(allowed - {area})) or 'no other area'})")
                elif target != area:
                    used[area].add(target)
            elif len(parts) > 1 and parts[0] in ABOVE_CORE:
                errors.append(f'{where}: core may not include "{inc}" ({parts[0]}/ is above core)')

    for area, deps in areas.items():
        for d in deps:
            if d not in used[area]:
                errors.append(f"area '{area}' lists DEPS '{d}' but no file in core/{area}/ "
                              f"includes core/{d}/ (drop it from DEPS)")

    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"core layering: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    errors = check_tree(root) + check_target_guards(root)
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"tree layering: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    graph = "; ".join(f"{a} -> {' '.join(d) if d else '-'}" for a, d in areas.items())
    print(f"core layering ok: {graph}")
    print("tree layering ok: " +
          "; ".join(f"{a} -> {' '.join(sorted(d)) or '-'}" for a, d in TREE_LAYERS.items()))
    return 0


TARGET_GUARD = re.compile(r"\bif\s*\(([^)]*)\)")
TARGET_NAME = re.compile(r"\bTARGET\s+([A-Za-z0-9_:.+-]+)")
TARGET_DEFINED = re.compile(
    r"\b(?:add_library|add_executable|add_custom_target|caldera_add_test|caldera_add_bench|"
    r"pybind11_add_module|"
    r"caldera_core_area)\s*\(\s*([A-Za-z0-9_:.+-]+)")


def check_target_guards(root):
    """Errors for `if(TARGET x)` guards naming a target no CMakeLists.txt defines:
    such a guard is always false, so whatever it guards (tests!) silently drops out
    of the build when a target is renamed or removed."""
    defined, guards = set(), []
    for cmake in sorted(root.rglob("CMakeLists.txt")) + sorted((root / "cmake").rglob("*.cmake")):
        rel = cmake.relative_to(root)
        if rel.parts[0].startswith(("build", ".")):
            continue
        text = strip_cmake_comments(cmake.read_text())
        for m in TARGET_DEFINED.finditer(text):
            name = m.group(1)
            defined.add(name)
            if m.group(0).lstrip().startswith("caldera_core_area"):
                defined.add(f"caldera_{name}")
                defined.add(f"caldera::{name}")
        for m in re.finditer(r"add_library\s*\(\s*([A-Za-z0-9_:]+)\s+ALIAS", text):
            defined.add(m.group(1))
        for m in TARGET_GUARD.finditer(text):
            for t in TARGET_NAME.finditer(m.group(1)):
                line = text.count("\n", 0, m.start()) + 1
                guards.append((f"{rel}:{line}", t.group(1)))
    external = ("gRPC::", "protobuf::", "CUDA::", "GTest::", "absl::", "ICU::", "SQLite::",
                "prometheus-cpp::", "nlohmann_json::", "CLI11::", "OpenSSL::", "CURL::",
                "Threads::", "Eigen3::", "BLAS::", "LAPACK::", "Python3::")
    return [f"{where}: if(TARGET {name}) names a target that no CMakeLists.txt defines (it is "
            f"always false: what it guards is silently not built)"
            for where, name in guards if name not in defined and not name.startswith(external)]


def folder_of_include(inc):
    """The top-level folder an include names, or None for another project's."""
    parts = inc.split("/")
    if len(parts) < 2:
        return None
    if parts[0] == "caldera" and parts[1] == "v1":
        return "proto"  # generated from proto/caldera/v1/*.proto
    return parts[0] if parts[0] in OURS else None


def check_tree(root):
    """Errors for includes across top-level folders that TREE_LAYERS forbids."""
    errors = []
    for top in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        name = top.name
        if name == "core" or name in UNCHECKED or name.startswith("build"):
            continue  # build trees (build/, build-asan/, build-fuzz/...) hold generated code
        has_sources = any(p.suffix in SOURCE_SUFFIXES for p in top.rglob("*") if p.is_file())
        if name not in TREE_LAYERS:
            if has_sources:
                errors.append(f"{name}/: a folder of sources that scripts/check_layering.py does "
                              f"not know (add it to TREE_LAYERS)")
            continue
        allowed = TREE_LAYERS[name] | {name}
        for path in sorted(top.rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
                continue
            if any(part.startswith("_") or part == "node_modules" for part in path.parts):
                continue  # generated stubs (client/python/.../_proto)
            rel = path.relative_to(root)
            text = path.read_text(errors="replace")
            for m in INCLUDE.finditer(text):
                target = folder_of_include(m.group(1))
                if target is None or target in allowed:
                    continue
                line = text.count("\n", 0, m.start()) + 1
                errors.append(f'{rel}:{line}: {name}/ may not include "{m.group(1)}" ({name}/ '
                              f"may use: {', '.join(sorted(TREE_LAYERS[name])) or 'nothing of ours'})")
    return errors


if __name__ == "__main__":
    sys.exit(main())
