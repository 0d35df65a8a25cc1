"""The plan lock is safe in the shared temp folder and portable: every module on the `trtc build`
path imports and a build runs without POSIX-only APIs (fcntl, os.getuid, signal masks), as on
Windows, where most TensorRT-RTX users are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import models
from trtc.errors import UsageError
from trtc.incremental import lock

pytestmark = pytest.mark.build  # real TensorRT-RTX builds; `pytest -m "not build"` is the fast loop

REPO = Path(__file__).resolve().parents[2]

# What Windows lacks, taken away before trtc is imported.
WITHOUT_POSIX = """
import os, signal, sys
for name in ("fcntl", "resource", "pwd", "grp", "termios"):
    sys.modules[name] = None  # import fails, as on Windows
for name in ("getuid", "geteuid", "getgid"):
    delattr(os, name)
del signal.pthread_sigmask
sys.path.insert(0, {repo!r})
import importlib, pkgutil, trtc
for module in pkgutil.walk_packages(trtc.__path__, "trtc."):
    if module.name != "trtc.__main__":
        importlib.import_module(module.name)
from trtc.cli import main
main(["build", {spec!r}, "-q"])
"""


def test_every_module_imports_and_a_build_runs_without_posix_only_apis(model_dir, tmp_path):
    spec = models.write_spec(model_dir, "model: model.onnx\nmax_batch: 2\ntarget: {compute_capabilities: [8.9]}\n")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_POSIX.format(repo=str(REPO), spec=str(spec))],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (model_dir / "build" / "spec.plan").is_file()
    assert (tmp_path / "trtc-locks").is_dir()  # no uid to name it by: the (per-user, on Windows) temp folder's own


@pytest.fixture
def temp_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(lock.tempfile, "gettempdir", lambda: str(tmp_path))
    return tmp_path


def test_a_link_planted_where_the_lock_folder_goes_is_refused_and_not_followed(temp_folder, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("someone-elses")
    lock.lock_folder().symlink_to(elsewhere)
    with pytest.raises(UsageError, match="is not a folder \\(a link or a file\\); remove it"):
        with lock.plan_lock(temp_folder / "a.plan", print):
            pass
    assert list(elsewhere.iterdir()) == []


def test_a_lock_folder_of_another_user_or_writable_by_others_is_refused(temp_folder):
    folder = lock.lock_folder()
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o777)
    with pytest.raises(UsageError, match="can be written by other users"):
        with lock.plan_lock(temp_folder / "a.plan", print):
            pass
    os.chmod(folder, 0o700)
    if os.geteuid() != 0:
        return  # only root can hand a folder to another user
    os.chown(folder, 65534, 65534)  # hand it to nobody
    with pytest.raises(UsageError, match="belongs to another user"):
        with lock.plan_lock(temp_folder / "a.plan", print):
            pass


def test_a_new_lock_folder_is_private(temp_folder):
    with lock.plan_lock(temp_folder / "a.plan", print):
        pass
    assert lock.lock_folder().stat().st_mode & 0o777 == 0o700


def test_a_plan_locked_through_filelock_is_waited_for(temp_folder):
    """flock on POSIX, as filelock takes it: a trtc that still locks through filelock and one
    that does not exclude each other."""
    from filelock import FileLock, Timeout

    class Waited(Exception):
        pass

    def on_wait(message):
        raise Waited(message)

    plan = temp_folder / "a.plan"
    lock.private_folder(lock.lock_folder())
    with FileLock(str(lock.lock_path(plan))):
        with pytest.raises(Waited, match="waiting for another trtc process that is writing"):
            with lock.plan_lock(plan, on_wait):
                pass
    with lock.plan_lock(plan, on_wait):  # free again
        with pytest.raises(Timeout):
            FileLock(str(lock.lock_path(plan))).acquire(timeout=0)
