"""Exceptions of caldera_local: the types of caldera_client (the same names for the
same status codes, from _common.py), made from the absl::Status codes of the C++
library. CalderaError carries the message the C++ code wrote and `code`, the
status code's name."""
from caldera_local._common import (  # noqa: F401  (re-exported)
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
    error_for_code,
)

# absl::StatusCode values (absl/status/status.h) by name.
_CODE_NAMES = {
    1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}


def from_status(code: int, message: str) -> CalderaError:
    """The exception for a non-OK absl::Status (called by the C++ edge, _native)."""
    return error_for_code(_CODE_NAMES.get(code, "UNKNOWN"), message)
