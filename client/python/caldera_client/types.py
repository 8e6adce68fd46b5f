"""Typed views of the JobService messages: what Client returns (Client(typed=False)
returns the raw protobuf messages, as before). Each view has the fields of its
message with enums as enum.IntEnum (equal to the wire ints, so `job.state ==
jobs_pb2.SUCCEEDED` still holds), timestamps as datetime, and the settings under
calderactl's flag names; `proto` is the message itself, and any other attribute is
looked up on it, so code written against the messages keeps working."""
import datetime
import enum
from dataclasses import dataclass, field
from typing import List, Optional

from caldera_client._common import JobState, WireEnum


class TaskKind(WireEnum):
    TASK_KIND_UNSPECIFIED = 0
    CALIBRATE = 1
    DECOMPOSE = 2
    FINALIZE = 3
    FINETUNE = 20  # recovery fine-tuning of one block (finetune_steps > 0)


class TaskState(WireEnum):
    TASK_STATE_UNSPECIFIED = 0
    TASK_PENDING = 1
    TASK_LEASED = 2
    TASK_DONE = 3
    TASK_FAILED = 4
    TASK_CANCELLED = 5


class _View:
    """Attributes not on the view come from the message (`proto`)."""

    def __getattr__(self, name):
        if name == "proto" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.proto, name)


def _time(ts) -> Optional[datetime.datetime]:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=datetime.timezone.utc)


@dataclass(frozen=True)
class JobSpec(_View):
    """A job's settings; unset ones (0, "") take the defaults of job/job_spec.h."""

    model: str
    calibration: str
    out: str
    method: str
    rank: int
    q_bits: int
    lr_bits: int
    quantizer: str
    iters: int
    lplr_iters: int
    seed: Optional[int]
    q_group_size: int
    incoherence: str
    ttlora_rank: int
    ttlora_init: str
    ttlora_alpha: float
    modules: List[str]
    calibration_shards: int
    calibration_mode: str
    overwrite: bool
    target_bits: float
    share_heads: float
    hidden_dtype: str
    proto: object = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, p) -> "JobSpec":
        d, t = p.decomposition, p.ttlora
        return cls(model=p.model, calibration=p.calibration, out=p.out, method=d.method,
                   rank=d.rank, q_bits=d.q_bits, lr_bits=d.lr_bits, quantizer=d.quantizer,
                   iters=d.iters, lplr_iters=d.lplr_iters,
                   seed=d.seed if d.HasField("seed") else None, q_group_size=d.q_group_size,
                   incoherence=d.incoherence, ttlora_rank=t.rank, ttlora_init=t.init,
                   ttlora_alpha=t.alpha, modules=list(p.modules),
                   calibration_shards=p.calibration_shards,
                   calibration_mode=p.calibration_mode, overwrite=p.overwrite,
                   target_bits=p.target_bits, share_heads=p.share_heads,
                   hidden_dtype=p.hidden_dtype, proto=p)


@dataclass(frozen=True)
class TaskCounts(_View):
    kind: TaskKind
    done: int
    total: int
    proto: object = field(repr=False, compare=False)


@dataclass(frozen=True)
class MatrixError(_View):
    layer: int
    module: str  # "q_proj"
    weighted_relative_error: float
    proto: object = field(repr=False, compare=False)


@dataclass(frozen=True)
class JobProgress(_View):
    tasks: List[TaskCounts]
    current_layer: int
    elapsed_seconds: float
    estimated_remaining_seconds: Optional[float]  # None when unknown
    matrix_errors: List[MatrixError]
    proto: object = field(repr=False, compare=False)

    @property
    def done(self) -> int:
        return sum(t.done for t in self.tasks)

    @property
    def total(self) -> int:
        return sum(t.total for t in self.tasks)

    @classmethod
    def from_proto(cls, p) -> "JobProgress":
        return cls(tasks=[TaskCounts(TaskKind(t.kind), t.done, t.total, t) for t in p.tasks],
                   current_layer=p.current_layer, elapsed_seconds=p.elapsed_seconds,
                   estimated_remaining_seconds=(p.estimated_remaining_seconds
                                                if p.estimated_remaining_seconds >= 0 else None),
                   matrix_errors=[MatrixError(m.layer, m.module, m.weighted_relative_error, m)
                                  for m in p.matrix_errors], proto=p)


@dataclass(frozen=True)
class TaskStatus(_View):
    task_id: str
    kind: TaskKind
    layer: int  # -1 for finalize
    module: str
    state: TaskState
    attempts: int
    last_error: str
    seconds: float
    proto: object = field(repr=False, compare=False)


@dataclass(frozen=True)
class Job(_View):
    name: str  # "jobs/<id>"
    state: JobState
    error: str  # set when FAILED
    message: str  # what changed last, or why the job waits
    spec: JobSpec
    progress: JobProgress
    task_status: List[TaskStatus]
    create_time: Optional[datetime.datetime]
    update_time: Optional[datetime.datetime]
    request_id: str
    owner: str
    proto: object = field(repr=False, compare=False)

    @property
    def done(self) -> bool:
        """True once the job has ended (SUCCEEDED, FAILED or CANCELLED)."""
        return self.state.terminal

    @classmethod
    def from_proto(cls, p) -> "Job":
        tasks = [TaskStatus(t.task_id, TaskKind(t.kind), t.layer, t.module, TaskState(t.state),
                            t.attempts, t.last_error, t.seconds, t) for t in p.task_status]
        return cls(name=p.name, state=JobState(p.state), error=p.error, message=p.message,
                   spec=JobSpec.from_proto(p.spec), progress=JobProgress.from_proto(p.progress),
                   task_status=tasks, create_time=_time(p.create_time),
                   update_time=_time(p.update_time), request_id=p.request_id, owner=p.owner,
                   proto=p)


@dataclass(frozen=True)
class JobEvent(_View):
    sequence: int
    time: Optional[datetime.datetime]
    job: Job
    message: str  # "decompose layer 3 q_proj done"
    proto: object = field(repr=False, compare=False)

    @classmethod
    def from_proto(cls, p) -> "JobEvent":
        return cls(p.sequence, _time(p.time), Job.from_proto(p.job), p.message, p)
