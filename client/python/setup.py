"""Build hook of the caldera-client package: the gRPC stubs are generated here.

`pip install client/python` (or building a wheel/sdist) runs grpcio-tools' protoc
on proto/caldera/v1/*.proto and puts the stubs into the built package, so an
installed client imports without any step by hand. The protos are found beside
the repository (../../proto) or, in an sdist, in proto/ beside this file (the sdist
step copies them there).

The generated code needs a protobuf runtime at least as new as the protoc that
wrote it, and grpcio at least as new as grpcio-tools (newer generated stubs check
both at import), so the runtime requirements are derived from the versions this
build used instead of being guessed.
"""
import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = pathlib.Path(__file__).resolve().parent
PROTO_PACKAGE = pathlib.Path("caldera") / "v1"


def _proto_root() -> pathlib.Path:
    for root in (HERE.parent.parent / "proto", HERE / "proto"):
        if (root / PROTO_PACKAGE).is_dir():
            return root
    raise RuntimeError("caldera-client: proto/caldera/v1/*.proto not found beside the "
                       "package or the repository; build from a checkout or an sdist")


def _generate(out: pathlib.Path) -> None:
    from grpc_tools import protoc  # build requirement (pyproject.toml)

    root = _proto_root()
    protos = sorted(str(p) for p in (root / PROTO_PACKAGE).glob("*.proto"))
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(["grpc_tools.protoc", f"-I{root}", f"-I{include}",
                      f"--python_out={out}", f"--grpc_python_out={out}", *protos])
    if rc != 0:
        raise RuntimeError(f"caldera-client: protoc failed on {protos} (exit {rc})")
    for d in (out / "caldera", out / PROTO_PACKAGE):
        (d / "__init__.py").touch()


def _runtime_requirements() -> list:
    from importlib.metadata import PackageNotFoundError, version
    try:
        tools_version = version("grpcio-tools")
        protobuf_version = version("protobuf")
    except PackageNotFoundError:  # a metadata-only step without the build requirements
        return ["grpcio>=1.51", "protobuf>=4.21"]
    major = int(protobuf_version.split(".")[0])
    return [f"grpcio>={tools_version}", f"protobuf>={protobuf_version},<{major + 1}"]


class BuildPyWithStubs(build_py):
    """build_py that also writes caldera_client/_proto into the build tree."""

    def run(self):
        super().run()
        _generate(pathlib.Path(self.build_lib) / "caldera_client" / "_proto")


class SdistWithProtos(sdist):
    """sdist that carries the .proto files so the sdist builds on its own."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        dest = pathlib.Path(base_dir) / "proto" / PROTO_PACKAGE
        dest.mkdir(parents=True, exist_ok=True)
        for p in (_proto_root() / PROTO_PACKAGE).glob("*.proto"):
            shutil.copy2(p, dest / p.name)


setup(install_requires=_runtime_requirements(),
      cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithProtos})
