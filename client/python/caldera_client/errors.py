"""Typed exceptions, mapped from gRPC status codes and job outcomes."""
import grpc


class CalderaError(Exception):
    """Base class of every error this client raises."""

    retryable = False


class InvalidJobError(CalderaError):
    """The job or request is wrong (INVALID_ARGUMENT); the message names the fix."""


class JobNotFoundError(CalderaError):
    """No such job (NOT_FOUND)."""


class JobStateError(CalderaError):
    """The job's state forbids the operation (FAILED_PRECONDITION), e.g. cancel after the end."""


class Unauthenticated(CalderaError):
    """No bearer token, or one the coordinator does not know (UNAUTHENTICATED); pass
    token= or set CALDERA_TOKEN."""


class PermissionDenied(CalderaError):
    """The token's role may not do this (PERMISSION_DENIED), e.g. a viewer cancelling.
    A submitter asking for another owner's job gets JobNotFoundError instead."""


class UnavailableError(CalderaError):
    """The coordinator is unreachable or busy (UNAVAILABLE, DEADLINE_EXCEEDED); retry later."""

    retryable = True


class JobFailedError(CalderaError):
    """The job ended FAILED; `job` holds the final snapshot and its error."""

    def __init__(self, job):
        super().__init__(f"{job.name} failed: {job.error}")
        self.job = job


class JobCancelledError(CalderaError):
    """The job ended CANCELLED."""

    def __init__(self, job):
        super().__init__(f"{job.name} was cancelled")
        self.job = job


class WaitTimeoutError(CalderaError, TimeoutError):
    """wait() ran out of time before the job ended; the job goes on."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidJobError,
    grpc.StatusCode.NOT_FOUND: JobNotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: JobStateError,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: UnavailableError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: UnavailableError,
}


def from_rpc_error(error: grpc.RpcError) -> CalderaError:
    """The typed exception for a failed RPC."""
    cls = _BY_CODE.get(error.code(), CalderaError)
    return cls(error.details() or str(error.code()))
