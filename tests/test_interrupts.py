"""Interrupts held until a training step is done (:mod:`foresight.training.interrupts`)."""

from __future__ import annotations

import os
import signal

import pytest

from foresight.training.interrupts import StepBoundary


def _interrupt() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_an_interrupt_is_held_while_holding_and_delivered_at_the_check() -> None:
    with StepBoundary() as boundary:
        boundary.holding = True
        _interrupt()  # held: nothing raised here
        assert boundary.requested == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            boundary.check()
        assert not boundary.holding and boundary.requested is None
        boundary.check()  # nothing held: nothing raised
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupt_outside_a_step_or_a_second_one_stops_at_once() -> None:
    with StepBoundary() as boundary:
        with pytest.raises(KeyboardInterrupt):
            _interrupt()  # not holding
        boundary.holding = True
        _interrupt()
        with pytest.raises(KeyboardInterrupt):
            _interrupt()  # pressed twice


def test_a_signal_left_to_its_default_is_not_taken_over() -> None:
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with StepBoundary():
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
