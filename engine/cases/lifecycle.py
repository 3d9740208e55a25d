"""The case lifecycle of digital city management (闭环管理), its roles and its stage clocks.

::

    report 上报 -> register 立案 -> dispatch 派遣 -> handle 处置 -> feedback 反馈 -> verify 核查 -> close 结案
                     |                 ^   |                          |
                     | reject 不予立案  |   +-- return 回退 (to the dispatcher, re-dispatched)
                     v                 +------ rework 返工 (verification failed) ---+
                  rejected          park 挂账 / unpark, extend 延期 (the handling deadline)

Each action moves an event from some states to one state and belongs to some roles
(:data:`TRANSITIONS`); a grid worker acts only on events dispatched to them. :func:`authorize` checks
both: a wrong role is :class:`Forbidden`, an action the event's state does not allow is
:class:`PreconditionFailed`, with a message naming the state and the actions it allows. Admins may do
everything. Reports that repeat an open case are ``duplicate`` (linked, never dispatched).

Every state but the terminal and parked ones runs a stage clock: the category's time limit for the
stage (:data:`STAGE_OF_STATE`, limits from the taxonomy) counted in working minutes from the moment
the stage began (:mod:`citygrid.engine.dispatch.worktime`). An event past its deadline is escalated (督办): to
its community at once, to its street when it is overdue by the stage limit again
(:class:`EscalationPolicy`).

>>> from citygrid.engine.access.principals import Principal, Role
>>> authorize(Action.VERIFY, State.FED_BACK, Principal("李核查", Role.VERIFIER), None)
<State.VERIFIED: 'verified'>
>>> authorize(Action.CLOSE, State.HANDLING, Principal("王调度", Role.DISPATCHER), "w1")
Traceback (most recent call last):
...
citygrid.engine.errors.PreconditionFailed: cannot close an event that is handling (处置中); allowed now: dispatch (dispatcher), feedback (worker), return (worker), extend (supervisor), park (supervisor)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from citygrid.engine.errors import Forbidden, PreconditionFailed
from citygrid.engine.access.principals import Principal, Role


class State(str, enum.Enum):
    REPORTED = "reported"
    REGISTERED = "registered"
    DISPATCHED = "dispatched"
    HANDLING = "handling"
    FED_BACK = "fed_back"
    VERIFIED = "verified"
    CLOSED = "closed"
    PARKED = "parked"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def is_open(self) -> bool:
        """Not finished: a later report of the same matter is a duplicate of this one."""
        return self not in (State.CLOSED, State.REJECTED, State.DUPLICATE)


_LABELS = {
    State.REPORTED: "已上报",
    State.REGISTERED: "已立案待派遣",
    State.DISPATCHED: "已派遣",
    State.HANDLING: "处置中",
    State.FED_BACK: "已反馈待核查",
    State.VERIFIED: "核查通过待结案",
    State.CLOSED: "已结案",
    State.PARKED: "挂账",
    State.REJECTED: "不予立案",
    State.DUPLICATE: "重复上报",
}

#: States in which an event counts on its worker's load.
LOADED_STATES = frozenset({State.DISPATCHED, State.HANDLING})
OPEN_STATES = frozenset(s for s in State if s.is_open)


class Action(str, enum.Enum):
    REGISTER = "register"
    REJECT = "reject"
    DISPATCH = "dispatch"
    HANDLE = "handle"
    FEEDBACK = "feedback"
    RETURN = "return"
    VERIFY = "verify"
    REWORK = "rework"
    CLOSE = "close"
    EXTEND = "extend"
    PARK = "park"
    UNPARK = "unpark"


@dataclass(frozen=True)
class Transition:
    sources: frozenset[State]
    #: The state the action leads to (``None``: the event stays where it is).
    target: State | None
    roles: tuple[Role, ...]
    #: Only the worker the event is dispatched to (for the worker role).
    own_only: bool = False


_S = State
TRANSITIONS: dict[Action, Transition] = {
    Action.REGISTER: Transition(frozenset({_S.REPORTED}), _S.REGISTERED, (Role.DISPATCHER,)),
    Action.REJECT: Transition(frozenset({_S.REPORTED}), _S.REJECTED, (Role.DISPATCHER,)),
    Action.DISPATCH: Transition(
        frozenset({_S.REGISTERED, _S.DISPATCHED, _S.HANDLING}), _S.DISPATCHED, (Role.DISPATCHER,)
    ),
    Action.HANDLE: Transition(frozenset({_S.DISPATCHED}), _S.HANDLING, (Role.WORKER,), own_only=True),
    Action.FEEDBACK: Transition(frozenset({_S.DISPATCHED, _S.HANDLING}), _S.FED_BACK, (Role.WORKER,), own_only=True),
    Action.RETURN: Transition(frozenset({_S.DISPATCHED, _S.HANDLING}), _S.REGISTERED, (Role.WORKER,), own_only=True),
    Action.VERIFY: Transition(frozenset({_S.FED_BACK}), _S.VERIFIED, (Role.VERIFIER,)),
    Action.REWORK: Transition(frozenset({_S.FED_BACK}), _S.DISPATCHED, (Role.VERIFIER,)),
    Action.CLOSE: Transition(frozenset({_S.VERIFIED}), _S.CLOSED, (Role.DISPATCHER, Role.SUPERVISOR)),
    Action.EXTEND: Transition(frozenset({_S.DISPATCHED, _S.HANDLING}), None, (Role.SUPERVISOR,)),
    Action.PARK: Transition(
        frozenset({_S.REGISTERED, _S.DISPATCHED, _S.HANDLING}), _S.PARKED, (Role.SUPERVISOR,)
    ),
    Action.UNPARK: Transition(frozenset({_S.PARKED}), _S.REGISTERED, (Role.SUPERVISOR,)),
}

#: Roles that may submit reports (上报).
REPORTER_ROLES = (Role.INTAKE, Role.WORKER, Role.DISPATCHER, Role.SUPERVISOR)


def target_of(action: Action, state: State) -> State:
    """The state ``action`` leads to from ``state`` (an extension stays where it is)."""
    target = TRANSITIONS[action].target
    return state if target is None else target


def allowed_actions(state: State, principal: Principal | None = None) -> list[Action]:
    """The actions the state allows (for ``principal``'s role, when given)."""
    out = []
    for action, t in TRANSITIONS.items():
        if state not in t.sources:
            continue
        if principal is not None and principal.role is not Role.ADMIN and principal.role not in t.roles:
            continue
        out.append(action)
    return out


def authorize(action: Action, state: State, principal: Principal, assignee: str | None) -> State:
    """Check that ``principal`` may take ``action`` on an event in ``state`` dispatched to
    ``assignee``; return the state it leads to."""
    t = TRANSITIONS[action]
    principal.require_role(*t.roles, action=f"{action.value} an event")
    if t.own_only and principal.role is Role.WORKER and principal.worker_id != assignee:
        raise Forbidden(
            f"{principal.name} may {action.value} only events dispatched to them"
            + ("" if assignee is None else "; this one is dispatched to another worker")
        )
    if state not in t.sources:
        allowed = ", ".join(
            f"{a.value} ({'/'.join(r.value for r in TRANSITIONS[a].roles)})" for a in allowed_actions(state)
        ) or "none (the case is finished)"
        raise PreconditionFailed(
            f"cannot {action.value} an event that is {state.value} ({state.label}); allowed now: {allowed}"
        )
    return target_of(action, state)


# ---------------------------------------------------------------------- stage clocks

#: Which stage's time limit runs in each state (taxonomy stage names).
STAGE_OF_STATE = {
    State.REPORTED: "register",
    State.REGISTERED: "dispatch",
    State.DISPATCHED: "handle",
    State.HANDLING: "handle",
    State.FED_BACK: "verify",
    State.VERIFIED: "verify",
}


def stage_of(state: State) -> str | None:
    return STAGE_OF_STATE.get(state)


def restarts_clock(before: State | None, after: State) -> bool:
    """Whether entering ``after`` from ``before`` starts a new stage clock. Moving within a stage
    (accepting a dispatched event, re-dispatching it to another worker, passing verification) keeps
    the running clock: the reporter's wait goes on."""
    return stage_of(after) is not None and (before is None or stage_of(before) != stage_of(after))


class Escalation(enum.IntEnum):
    """督办 levels: who is told that an event is overdue."""

    NONE = 0
    COMMUNITY = 1
    STREET = 2


@dataclass(frozen=True)
class EscalationPolicy:
    """Overdue -> the community; overdue by ``street_after`` working minutes more (default: the
    stage's own limit again) -> the street."""

    street_after_minutes: float | None = None

    def level(self, overdue_minutes: float, stage_limit: float) -> Escalation:
        if overdue_minutes <= 0:
            return Escalation.NONE
        street_after = stage_limit if self.street_after_minutes is None else self.street_after_minutes
        return Escalation.STREET if overdue_minutes >= street_after else Escalation.COMMUNITY
