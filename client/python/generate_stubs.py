"""Generates the gRPC stubs of proto/caldera/v1 into caldera_client/_proto.

Run with an interpreter that has grpcio-tools (scripts/setup.sh does this):
    python client/python/generate_stubs.py
"""
import pathlib
import sys

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
OUT = HERE / "caldera_client" / "_proto"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p) for p in (PROTO_ROOT / "caldera" / "v1").glob("*.proto"))
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}",
                      f"--python_out={OUT}", f"--grpc_python_out={OUT}", *protos])
    if rc != 0:
        print("generate_stubs: protoc failed", file=sys.stderr)
        return rc
    for d in (OUT / "caldera", OUT / "caldera" / "v1"):
        (d / "__init__.py").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
