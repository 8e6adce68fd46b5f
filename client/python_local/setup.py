"""Build hook of the caldera-local package: the C++ extension caldera_local._native.

`pip install client/python_local` builds the CMake target caldera_local_native of
this repository (pybind11 over operations/) and puts the module into the package.
It needs the Debian packages of scripts/debian-packages.txt (pybind11-dev,
python3-dev and the C++ dependencies; scripts/setup.sh installs them) and a checkout
(the package is built from the repository, not from an sdist).

The build folder: $CALDERA_BUILD_DIR when set (relative to the repository), else
build/ when scripts/setup.sh configured it (only the extension is built there; the
rest is up to date or shared), else build-python/ (configured here: Release, no tests
or benchmarks, ccache when installed). A build folder made for another Python
version gets a build-python-<tag>/ of its own.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
TARGET = "caldera_local_native"


def _run(args):
    print("caldera-local:", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True)


def _configure(build: pathlib.Path) -> None:
    args = ["cmake", "-S", REPO, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
            "-DCALDERA_BUILD_TESTS=OFF", "-DCALDERA_BUILD_BENCH=OFF",
            f"-DPython_EXECUTABLE={sys.executable}"]
    if shutil.which("ninja"):
        args += ["-G", "Ninja"]
    launcher = REPO / "scripts" / "ccache-launcher.sh"
    if shutil.which("ccache") and launcher.exists():
        args += [f"-DCMAKE_C_COMPILER_LAUNCHER={launcher}",
                 f"-DCMAKE_CXX_COMPILER_LAUNCHER={launcher}"]
    _run(args)


def _build(build: pathlib.Path) -> pathlib.Path:
    """Builds the extension in `build` (configuring it when new); its path."""
    if not (build / "CMakeCache.txt").exists():
        _configure(build)
    _run(["cmake", "--build", build, "--target", TARGET, "-j", str(os.cpu_count() or 1)])
    listing = build / "python_local" / "native_path.txt"
    if not listing.exists():
        raise RuntimeError(f"caldera-local: {build} did not build {TARGET}; is pybind11-dev "
                           "(and python3-dev) installed? See docs/python.md")
    return pathlib.Path(listing.read_text().strip())


def _build_dir() -> pathlib.Path:
    if os.environ.get("CALDERA_BUILD_DIR"):
        return REPO / os.environ["CALDERA_BUILD_DIR"]
    if (REPO / "build" / "CMakeCache.txt").exists():
        return REPO / "build"
    return REPO / "build-python"


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        if not (REPO / "operations" / "compress.h").exists():
            raise RuntimeError("caldera-local builds from a checkout of the repository "
                               f"(no operations/ above {HERE})")
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        built = _build(_build_dir())
        if not built.name.endswith(suffix):
            # That folder was configured for another interpreter.
            tag = suffix.split(".")[1] if suffix.count(".") > 1 else "py"
            built = _build(REPO / f"build-python-{tag}")
        dest = pathlib.Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, dest)


setup(ext_modules=[Extension("caldera_local._native", sources=[])],
      cmdclass={"build_ext": CMakeBuild})
