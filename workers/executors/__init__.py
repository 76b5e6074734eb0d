"""What each step type does, one module each, listed explicitly in :data:`EXECUTORS`.

An executor turns a claimed action into something sent: ``prepare`` renders
and checks (raising ``Skip`` or ``TemplateProblem``), ``send`` hands it to
the channel or platform (raising ``TransientError`` or ``PermanentError``).
The step types here, the ones rules accept (``rules/step_schemas.py``) and the
registry (``core/steps.py``) are the same set; a test keeps them so.
"""

from __future__ import annotations

from aftersale.workers.executors.base import ActionContext, Executor, Prepared
from aftersale.workers.executors.email import EmailExecutor
from aftersale.workers.executors.platform import (
    DiscountCodeExecutor,
    NoteOrderExecutor,
    TagCustomerExecutor,
    TagOrderExecutor,
)
from aftersale.workers.executors.sms import SMSExecutor
from aftersale.workers.executors.webhook import WebhookExecutor

EXECUTORS: dict[str, Executor] = {
    executor.step: executor
    for executor in (
        EmailExecutor(),
        SMSExecutor(),
        WebhookExecutor(),
        TagOrderExecutor(),
        TagCustomerExecutor(),
        NoteOrderExecutor(),
        DiscountCodeExecutor(),
    )
}

__all__ = ["EXECUTORS", "ActionContext", "Executor", "Prepared"]
