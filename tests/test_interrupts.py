"""geex.interrupts: a Ctrl-C inside ``deferred()`` is raised when the block ends, not inside it."""

from __future__ import annotations

import pytest

from geex import interrupts


def test_an_interrupt_inside_a_critical_write_waits_for_its_end():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            assert interrupts.defer_now() is True  # what the SIGINT handler asks
            done.append("write finished")  # the write goes on
            with interrupts.deferred():  # nested sections: raised only at the outermost end
                pass
            done.append("still writing")
    assert done == ["write finished", "still writing"]
    assert interrupts.defer_now() is False  # outside: the handler raises at once


def test_no_interrupt_no_raise():
    with interrupts.deferred():
        pass
