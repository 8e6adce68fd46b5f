"""What the gRPC client (caldera_client) and the in-process package (caldera_local)
share: the job state enum, the exception types by status code, and the progress
display. One file: client/python_local/caldera_local/_common.py is a symbolic link
to it, so both packages install the same code (neither needs the other).
"""
import enum
import logging
import sys
from dataclasses import dataclass
from typing import Callable, Optional, Union


class WireEnum(enum.IntEnum):
    """An IntEnum of wire values that accepts values it does not know (a newer
    coordinator's task kind or state) as members named UNKNOWN_<value>, so an old
    client reads a new server's messages instead of raising ValueError."""

    @classmethod
    def _missing_(cls, value):
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        return member


class JobState(WireEnum):
    """A job's state (proto caldera.v1.JobState; the values are the wire values, so
    `state == jobs_pb2.SUCCEEDED` still holds)."""

    JOB_STATE_UNSPECIFIED = 0
    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


# --- exceptions ---------------------------------------------------------------

class CalderaError(Exception):
    """Base class of every error these packages raise. `code` is the canonical status
    code's name ("INVALID_ARGUMENT"; gRPC and absl share them), "" when none applies."""

    retryable = False
    code = ""


class InvalidJobError(CalderaError, ValueError):
    """The input is wrong (INVALID_ARGUMENT, OUT_OF_RANGE); the message names the fix."""


class JobNotFoundError(CalderaError, LookupError):
    """No such job, or no such file or object (NOT_FOUND)."""


class JobStateError(CalderaError):
    """The state forbids the operation (FAILED_PRECONDITION, ALREADY_EXISTS), e.g.
    cancel after the end, or an output folder holding files caldera did not write."""


class Unauthenticated(CalderaError):
    """No bearer token, or one the coordinator does not know (UNAUTHENTICATED); pass
    token= or set CALDERA_TOKEN."""


class PermissionDenied(CalderaError):
    """The token's role, or the file system, does not allow this (PERMISSION_DENIED).
    A submitter asking for another owner's job gets JobNotFoundError instead."""


class UnavailableError(CalderaError):
    """Unreachable or busy (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
    ABORTED); retry later."""

    retryable = True


class JobFailedError(CalderaError):
    """The job ended FAILED; `job` holds the final snapshot (or result) and its error."""

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


# Names by meaning (the canonical codes' own words).
InvalidArgumentError = InvalidJobError
NotFoundError = JobNotFoundError
FailedPreconditionError = JobStateError

_BY_CODE = {
    "INVALID_ARGUMENT": InvalidJobError,
    "OUT_OF_RANGE": InvalidJobError,
    "NOT_FOUND": JobNotFoundError,
    "FAILED_PRECONDITION": JobStateError,
    "ALREADY_EXISTS": JobStateError,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "UNAVAILABLE": UnavailableError,
    "DEADLINE_EXCEEDED": UnavailableError,
    "RESOURCE_EXHAUSTED": UnavailableError,
    "ABORTED": UnavailableError,
}


def error_for_code(code: str, message: str) -> CalderaError:
    """The typed exception for a canonical status code name and its message."""
    error = _BY_CODE.get(code, CalderaError)(message or code)
    error.code = code
    return error


# --- progress -----------------------------------------------------------------

@dataclass(frozen=True)
class ProgressEvent:
    """`done` of `total` steps (tasks of a job, layers of an evaluation); `message`
    names the step just finished."""

    done: int
    total: int
    message: str = ""


ProgressArg = Union[None, bool, Callable[[ProgressEvent], None]]
_LOG = logging.getLogger("caldera")


def interactive() -> bool:
    """True in a terminal (stderr is a tty) or a Jupyter notebook."""
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressDisplay:
    """A tqdm bar (tqdm.auto: a widget in a notebook) with elapsed time and rate, or
    plain "label: done/total message" lines on stderr when tqdm is not installed."""

    def __init__(self, label: str, unit: str = "step"):
        self._label = label
        self._bar = None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            self._bar = tqdm(total=None, desc=label, unit=unit, dynamic_ncols=True)

    def update(self, event: ProgressEvent) -> None:
        if self._bar is None:
            print(f"{self._label}: {event.done}/{event.total} {event.message}",
                  file=sys.stderr, flush=True)
            return
        if event.total and self._bar.total != event.total:
            self._bar.total = event.total
        if event.done >= self._bar.n:
            self._bar.update(event.done - self._bar.n)
        else:
            self._bar.n = event.done
        self._bar.set_postfix_str(event.message[-40:], refresh=True)

    def note(self, text: str) -> None:
        if self._bar is None:
            print(text, file=sys.stderr, flush=True)
        else:
            self._bar.write(text, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class Reporter:
    """Where an operation's progress and notes go, per its `progress` argument:
    a callable gets every ProgressEvent; True shows a ProgressDisplay; False shows
    nothing; None (the default) shows a ProgressDisplay in a terminal or notebook
    and nothing elsewhere. Notes go to the display, else to logging ("caldera")."""

    def __init__(self, label: str, progress: ProgressArg = None, unit: str = "step"):
        self._callback = progress if callable(progress) else None
        show = progress is True or (progress is None and interactive())
        self._display = ProgressDisplay(label, unit) if show else None

    def progress(self, done: int, total: int, message: str = "") -> None:
        event = ProgressEvent(int(done), int(total), message)
        if self._callback is not None:
            self._callback(event)
        if self._display is not None:
            self._display.update(event)

    def note(self, text: str) -> None:
        if self._display is not None:
            self._display.note(text)
        else:
            _LOG.info("%s", text)

    def close(self) -> None:
        if self._display is not None:
            self._display.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
