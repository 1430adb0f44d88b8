"""Atomic writes (``retention_report.fsio``): the target is replaced whole or not at all."""

from __future__ import annotations

import os
import stat

import pytest

from retention_report.fsio import atomic_path, write_atomic


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_text_and_bytes(tmp_path):
    target = tmp_path / "new" / "metrics.json"  # the folder is created
    assert write_atomic(target, "ünïcode\n") == target
    assert target.read_bytes() == "ünïcode\n".encode()
    write_atomic(target, b"\x00\x01", fsync=True)
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]  # no temporary left


def test_permissions_follow_the_umask_unless_given(tmp_path):
    old = os.umask(0o027)
    try:
        assert _mode(write_atomic(tmp_path / "a", "x")) == 0o640
    finally:
        os.umask(old)
    assert _mode(write_atomic(tmp_path / "b", "x", mode=0o600)) == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / ".retention-report"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".retention-report.")  # hidden sibling
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == [".retention-report"]


def test_metrics_json_gets_the_users_file_permissions(tmp_path):
    """`metrics --out` is read by other tools and people: umask permissions, not owner-only."""
    import os

    from retention_report.pipeline import write_metrics

    old = os.umask(0o022)
    try:
        path = write_metrics({"period": "2024-Q1"}, tmp_path / "m" / "metrics.json")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
