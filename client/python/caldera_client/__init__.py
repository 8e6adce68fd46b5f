"""Python client of the Caldera Service coordinator.

    from caldera_client import Client
    c = Client("localhost:50051")   # token=..., tls_ca=... for a secured coordinator
    job = c.submit(model="s3://b/llama", calibration="s3://b/calib.safetensors",
                   out="s3://b/out", rank=64)
    for event in c.watch(job.name, progress=False):
        print(event.job.state.name, event.job.progress.done, event.message)
    final = c.wait(job.name, timeout=3600)   # a progress bar in a terminal or notebook;
                                             # raises JobFailedError / JobCancelledError
    final.state                              # JobState.SUCCEEDED (an IntEnum)

Results are typed views (caldera_client.types: Job, JobEvent, JobSpec, ... with enums and
dataclasses); Client(typed=False) returns the protobuf messages.
"""
import os
import sys

# The generated stubs import "caldera.v1..." absolutely.
_PROTO_DIR = os.path.join(os.path.dirname(__file__), "_proto")
if _PROTO_DIR not in sys.path:
    sys.path.insert(0, _PROTO_DIR)

from caldera_client._common import JobState, ProgressDisplay, ProgressEvent  # noqa: E402
from caldera_client.client import Client  # noqa: E402
from caldera_client.errors import (  # noqa: E402
    CalderaError,
    InvalidJobError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    PermissionDenied,
    Unauthenticated,
    UnavailableError,
    WaitTimeoutError,
)
from caldera_client.types import (  # noqa: E402
    Job,
    JobEvent,
    JobProgress,
    JobSpec,
    MatrixError,
    TaskCounts,
    TaskKind,
    TaskState,
    TaskStatus,
)

__all__ = [
    "Client",
    "Job",
    "JobEvent",
    "JobProgress",
    "JobSpec",
    "JobState",
    "MatrixError",
    "ProgressDisplay",
    "ProgressEvent",
    "TaskCounts",
    "TaskKind",
    "TaskState",
    "TaskStatus",
    "CalderaError",
    "InvalidJobError",
    "JobCancelledError",
    "JobFailedError",
    "JobNotFoundError",
    "JobStateError",
    "PermissionDenied",
    "Unauthenticated",
    "UnavailableError",
    "WaitTimeoutError",
]
