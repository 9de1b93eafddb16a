"""``coea.interrupts.interruptible``: which signals it turns into KeyboardInterrupt, and that it gives the previous
handlers back (the command tests deliver real signals: tests/integration/test_interrupts.py)."""

import os
import signal

import pytest

from coea.interrupts import interruptible


def test_a_signal_the_caller_ignores_stays_ignored_and_the_handlers_come_back():
    """A background job's SIGINT is SIG_IGN: inside the block it stays ignored (a SIGINT sent then does nothing),
    while SIGTERM unwinds the block as Ctrl-C does; afterwards both handlers are the caller's again."""
    old_int, old_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interruptible():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)  # ignored: nothing happens
        with pytest.raises(KeyboardInterrupt), interruptible():
            os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == old_term
    finally:
        signal.signal(signal.SIGINT, old_int)
