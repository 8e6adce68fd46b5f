"""Python client of the Caldera Service coordinator.

    from caldera_client import Client
    c = Client("localhost:50051")   # token=..., tls_ca=... for a secured coordinator
    job = c.submit(model="s3://b/llama", calibration="s3://b/calib.safetensors",
                   out="s3://b/out", rank=64)
    for event in c.watch(job.name):
        print(event.message)
    final = c.wait(job.name, timeout=3600)   # raises JobFailedError / JobCancelledError
"""
import os
import sys

# The generated stubs import "caldera.v1..." absolutely.
_PROTO_DIR = os.path.join(os.path.dirname(__file__), "_proto")
if _PROTO_DIR not in sys.path:
    sys.path.insert(0, _PROTO_DIR)

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

__all__ = [
    "Client",
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
