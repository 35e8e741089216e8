"""`dbrepl apply` in the sandbox: when the stand-ins cannot be given their users after the apply
went through, what was applied (the summary, held-back notes) is still shown, then the error."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dbrepl.app import provision as app_provision
from dbrepl.cli import provision as cli_provision
from dbrepl.errors import DbreplError


class _Broken:
    def bind_stand_ins(self):
        raise DbreplError("stand-in for dev: its secret is not {username, password} JSON")


def _prepared():
    done = SimpleNamespace(summary={"create": 3, "update": 0, "delete": 0},
                           notes=["prod-aurora-cluster-x: prod is protected, so apply leaves them pending"])
    engine = SimpleNamespace(apply=lambda plan: done)
    plan = SimpleNamespace(changes=["one"])
    return SimpleNamespace(refusal=None, engine=engine, plan=plan, estate=_Broken()), done


def test_a_bind_failure_keeps_what_was_applied():
    prepared, done = _prepared()
    applied = app_provision.apply(prepared)
    assert applied.done is done and applied.bound == []
    assert isinstance(applied.bind_error, DbreplError)


def test_the_summary_and_held_back_notes_come_before_the_bind_error(capsys):
    prepared, _ = _prepared()
    with pytest.raises(DbreplError, match="not {username, password} JSON"):
        cli_provision._render_applied(app_provision.apply(prepared))
    shown = capsys.readouterr().out
    assert "Apply complete: 3 created, 0 updated, 0 deleted." in shown
    assert "held back: prod-aurora-cluster-x: prod is protected" in shown
