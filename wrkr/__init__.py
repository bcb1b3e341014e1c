"""wrkr: publish events, subscribe queues to them, and schedule them for later.

Users import from here; backend authors from `wrkr.backend`.
"""

from wrkr._app import Wrkr
from wrkr._blocking import BlockingWrkr
from wrkr._errors import (
    AlreadyStarted,
    BackendUnavailable,
    CallTimedOut,
    Fail,
    InvalidConfig,
    InvalidEvent,
    InvalidWhen,
    ItemNotFound,
    LeaseLost,
    NotStarted,
    NotSupported,
    UnknownBackend,
    WrkrError,
)
from wrkr._event import Event
from wrkr._flows import Flow, FlowContext, Job
from wrkr._hooks import Handled, Observer, Outcome
from wrkr._limiter import Limiter
from wrkr._retry import Retry
from wrkr._schedules import Schedule
from wrkr._version import __version__ as __version__
from wrkr.backend import Capability, ErrorRecord, State

__all__ = [
    "AlreadyStarted",
    "BackendUnavailable",
    "BlockingWrkr",
    "CallTimedOut",
    "Capability",
    "ErrorRecord",
    "Event",
    "Fail",
    "Flow",
    "FlowContext",
    "Handled",
    "InvalidConfig",
    "InvalidEvent",
    "InvalidWhen",
    "ItemNotFound",
    "Job",
    "LeaseLost",
    "Limiter",
    "NotStarted",
    "NotSupported",
    "Observer",
    "Outcome",
    "Retry",
    "Schedule",
    "State",
    "UnknownBackend",
    "Wrkr",
    "WrkrError",
]
