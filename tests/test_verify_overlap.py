"""``verify.overlap``: the verifier's two overlapping runs, on a plain thread (see its docstring for why not a
thread pool), and ``alongside``, which never returns before both have ended."""

from __future__ import annotations

import threading
import time

import pytest

from lsp_verify.verify.overlap import alongside, in_thread


def test_the_result_and_the_exception_come_through_the_future() -> None:
    names: list[str] = []

    def work(a: int, *, b: int) -> int:
        names.append(threading.current_thread().name)
        return a + b

    assert in_thread("lsp-verify-test", work, 2, b=3).result(timeout=10) == 5
    assert names == ["lsp-verify-test"]

    def fail() -> None:
        raise ValueError("the fork server failed")

    with pytest.raises(ValueError, match="fork server failed"):
        in_thread("lsp-verify-test", fail).result(timeout=10)


def test_no_thread_pool_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures.thread as pool_module

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("ThreadPoolExecutor.submit takes the process-wide shutdown lock")

    monkeypatch.setattr(pool_module.ThreadPoolExecutor, "submit", refuse)
    assert in_thread("lsp-verify-test", lambda: "done").result(timeout=10) == "done"


def test_alongside_returns_both_and_waits_for_the_background_even_when_the_foreground_fails() -> None:
    ended: list[str] = []

    def slow() -> str:
        time.sleep(0.3)
        ended.append("background")
        return "mypy"

    future, value = alongside("lsp-verify-test", slow, lambda: "pytest")
    assert (future.result(timeout=0), value) == ("mypy", "pytest")

    ended.clear()

    def fail() -> str:
        raise RuntimeError("the tests could not run")

    with pytest.raises(RuntimeError, match="could not run"):
        alongside("lsp-verify-test", slow, fail)
    assert ended == ["background"]  # the shadow both use is removed next: the background is done with it

    def fail_behind() -> str:
        raise ValueError("the fork server failed")

    future, value = alongside("lsp-verify-test", fail_behind, lambda: "fresh")
    assert value == "fresh"
    with pytest.raises(ValueError, match="fork server failed"):
        future.result(timeout=0)
