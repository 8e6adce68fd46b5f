"""Typed exceptions, mapped from gRPC status codes and job outcomes. The types live
in _common.py, shared with the in-process package caldera_local (the same names for
the same status codes)."""
import grpc

from caldera_client._common import (  # noqa: F401  (re-exported)
    CalderaError,
    FailedPreconditionError,
    InvalidArgumentError,
    InvalidJobError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    NotFoundError,
    PermissionDenied,
    Unauthenticated,
    UnavailableError,
    WaitTimeoutError,
    error_for_code,
)


def from_rpc_error(error: grpc.RpcError) -> CalderaError:
    """The typed exception for a failed RPC."""
    code = error.code()
    return error_for_code(code.name if code is not None else "", error.details() or str(code))
