"""segmentation/cluster.py and ``--scheduler``: the same zip from a Dask cluster, nothing lost when workers die.

The cluster is real: a ``dask scheduler`` and two ``dask worker`` processes
started with Dask's own command line tools, on 127.0.0.1.  Tests that need
Dask skip, saying so, when the ``cluster`` extra is not installed.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from segmentation import Params, cluster, segment
from segmentation import batch as batch_module
from segmentation.batch import process_one, run_batch
from segmentation.cli import main
from segmentation.export import zip_path
from segmentation.inputs import BatchInput

DASK_MISSING = 'the cluster extra is not installed (pip install -e ".[cluster]")'
BIN = Path(sys.executable).parent


def need_dask():
    return pytest.importorskip("distributed", reason=DASK_MISSING)


def tiff_bytes(data: np.ndarray) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, data)
    return buf.getvalue()


def zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def table(data: bytes, sort: list[str] | None = None) -> pd.DataFrame:
    df = pd.read_csv(io.BytesIO(data))
    return df.sort_values(sort).reset_index(drop=True) if sort else df


def assert_same_results(local: Path, remote: Path) -> None:
    """Same files; label images, masks, overlays and per-image tables byte for byte; summary and
    all-measurements tables with the same rows and values (ignoring the time each image took)."""
    a, b = zip_members(local), zip_members(remote)
    assert sorted(a) == sorted(b)
    tables = {zip_path("summary"), zip_path("all_measurements"), zip_path("readme")}
    for name in sorted(set(a) - tables):
        assert a[name] == b[name], name
    summary = zip_path("summary")
    pd.testing.assert_frame_equal(table(a[summary]).drop(columns="seconds"), table(b[summary]).drop(columns="seconds"))
    every = zip_path("all_measurements")
    pd.testing.assert_frame_equal(table(a[every], ["image", "label"]), table(b[every], ["image", "label"]))


@contextlib.contextmanager
def cli(*args: str, **popen):
    """``python -m segmentation ARGS`` with its stderr piped; killed and reaped however the block ends."""
    proc = subprocess.Popen([sys.executable, "-m", "segmentation", *args], stderr=subprocess.PIPE, text=True, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the cluster ----------------------------------------------------------------------


class Cluster:
    """A scheduler and two worker processes, and a client of the test's own to look at them."""

    def __init__(self, folder: Path, workers: int = 2):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []
        self.logs = []
        self.file = folder / "scheduler.json"
        self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(self.file))
        deadline = time.monotonic() + 60
        while not self.file.exists():
            assert time.monotonic() < deadline and self.procs[0].poll() is None, self.log("scheduler")
            time.sleep(0.1)
        for n in range(workers):
            self.start_worker(f"w{n + 1}")
        import distributed

        self.client = distributed.Client(scheduler_file=str(self.file), set_as_default=False)
        self.address = self.client.scheduler.address
        self.workers = workers
        if workers:
            self.wait_for_workers()

    def start_worker(self, name: str) -> None:
        self._start(name, "worker", "--scheduler-file", str(self.file), "--host", "127.0.0.1", "--nthreads", "1",
                    "--name", name, "--no-dashboard", "--local-directory", str(self.folder / name))

    def _start(self, name: str, *args: str) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed in close()
        self.logs.append(log)
        self.procs.append(subprocess.Popen([str(BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT,
                                           cwd=self.folder))

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    def wait_for_workers(self) -> None:
        """Both workers up, with this package imported (so that timing-sensitive tests start warm)."""
        self.client.wait_for_workers(self.workers, timeout=120)
        self.client.run(cluster._library_version)

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)

    def transitions(self, since: float) -> list[tuple[str, str, str, str]]:
        """(key, start, finish, stimulus) of the segment tasks since `since` (time.time()), from the scheduler's log."""
        return self.client.run_on_scheduler(
            lambda dask_scheduler, since=since: [(str(t.key), t.start, t.finish, t.stimulus_id)
                                                 for t in dask_scheduler.transition_log
                                                 if str(t.key).startswith("segment-") and t.timestamp >= since])

    def computed_on_workers(self, since: float) -> dict[str, int]:
        """Segment tasks each worker computed since `since`, from the workers' own logs."""
        return self.client.run(
            lambda dask_worker, since=since: len({e[0] for e in dask_worker.state.log
                                                  if str(e[0]).startswith("segment-") and e[1] == "put-in-memory"
                                                  and e[-1] >= since}))

    def segment_tasks(self) -> list[str]:
        return self.client.run_on_scheduler(
            lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks if str(k).startswith("segment-")])

    def set_allowed_failures(self, n: int) -> int:
        def swap(dask_scheduler, n=n):
            old, dask_scheduler.allowed_failures = dask_scheduler.allowed_failures, n
            return old
        return self.client.run_on_scheduler(swap)

    def close(self) -> None:
        self.client.shutdown()  # the scheduler closes its workers, then itself
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    need_dask()
    running = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture()
def pool(dask_cluster):
    workers = cluster.connect(dask_cluster.address)
    try:
        yield workers
    finally:
        workers.shutdown()
    dask_cluster.wait_for_workers()  # a test that killed one leaves the next a full cluster


@pytest.fixture()
def image_dir(tmp_path, sample) -> Path:
    """Five crops of the sample, one text file named .tif, and a zip holding one more image."""
    folder = tmp_path / "plate"
    (folder / "row_b").mkdir(parents=True)
    for i in range(4):
        tifffile.imwrite(folder / ("row_b" if i % 2 else "") / f"field_{i}.tif",
                         np.rot90(sample, i)[: 192 + 32 * i, : 256])
    (folder / "notes.tif").write_text("not an image\n")
    with zipfile.ZipFile(folder / "more.zip", "w") as z:
        z.writestr("inside/field_9.tif", tiff_bytes(sample[256:, 256:]))
    return folder


def jobs_of(folder: Path, sample: np.ndarray, n: int) -> list[BatchInput]:
    """`n` full-size variants of the sample on disk (each takes a moment to segment)."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs = []
    for i in range(n):
        path = folder / f"img_{i:02d}.tif"
        tifffile.imwrite(path, np.rot90(sample, i % 4) if i < 4 else np.fliplr(np.rot90(sample, i % 4)))
        inputs.append(BatchInput(path.name, path))
    return inputs


# --- without Dask, and bad addresses --------------------------------------------------------


def test_without_dask_scheduler_says_how_to_install_it_and_exits_2(image_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if Dask were not installed
    out = tmp_path / "results.zip"
    code = main([str(image_dir), "--out", str(out), "--scheduler", "tcp://127.0.0.1:8786"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ['error: running on a Dask cluster needs Dask: pip install -e ".[cluster]"']
    assert not out.exists()


def test_a_scheduler_that_is_not_there_is_reported_within_seconds(image_dir, tmp_path, capsys, monkeypatch):
    need_dask()
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(cluster.ClusterError, match=f"cannot reach a Dask scheduler at {address} within 5 s"):
        cluster.connect(address)
    assert time.monotonic() - start < 10
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)  # the command line says the same, sooner
    out = tmp_path / "results.zip"
    assert main([str(image_dir), "--out", str(out), "--scheduler", address]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot reach a Dask scheduler at {address}"), err
    assert "Traceback" not in err[0] and not out.exists()


@pytest.mark.parametrize("address, words", [
    ("http://127.0.0.1:8787/status", "is a web address (the Dask dashboard?)"),
    ("  ", "no scheduler address given"),
])
def test_addresses_that_cannot_be_a_scheduler_are_refused_with_a_hint(address, words):
    need_dask()
    with pytest.raises(cluster.ClusterError, match=words.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        cluster.connect(address)


def test_the_default_scheduler_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(cluster.SCHEDULER_ENV, raising=False)
    assert cluster.default_address() is None
    monkeypatch.setenv(cluster.SCHEDULER_ENV, " tcp://10.0.0.5:8786 ")
    assert cluster.default_address() == "tcp://10.0.0.5:8786"
    monkeypatch.setenv(cluster.SCHEDULER_ENV, "")
    assert cluster.default_address() is None


# --- the same results ------------------------------------------------------------------------


def test_the_cli_on_a_cluster_writes_the_local_runs_zip(dask_cluster, image_dir, tmp_path, capsys):
    local, remote = tmp_path / "local.zip", tmp_path / "remote.zip"
    assert main([str(image_dir), "--out", str(local), "--workers", "1"]) == 1  # notes.tif fails
    capsys.readouterr()
    since = time.time()
    assert main([str(image_dir), "--out", str(remote), "--scheduler", dask_cluster.address]) == 1
    err = capsys.readouterr().err
    assert f"cluster {dask_cluster.address}: 2 workers, 2 threads" in err
    assert "wrote" in err and "5 of 6 images segmented, 1 failed" in err
    assert_same_results(local, remote)
    assert table(zip_members(remote)[zip_path("errors")])["file"].tolist() == ["plate/notes.tif"]
    # the scheduler really ran one task per image (the failed one too), on both workers
    done = {key for key, start, finish, _ in dask_cluster.transitions(since) if (start, finish) == ("processing", "memory")}
    assert len(done) == 6
    computed = dask_cluster.computed_on_workers(since)
    assert sorted(computed.values())[0] >= 1 and sum(computed.values()) == 6, computed


def test_images_the_workers_cannot_see_travel_with_their_task(pool, tmp_path, sample, monkeypatch):
    params = Params()
    shared, private = tmp_path / "shared", tmp_path / "private"
    shared.mkdir()
    private.mkdir()
    tifffile.imwrite(shared / "seen.tif", sample[:256, :256])
    for i in range(3):
        tifffile.imwrite(private / f"unseen_{i}.tif", np.rot90(sample, i)[:256, 256:])
    inputs = [BatchInput("seen.tif", shared / "seen.tif"), BatchInput("uploaded.tif", tiff_bytes(sample[256:, :256]))]
    inputs += [BatchInput(f"unseen_{i}.tif", private / f"unseen_{i}.tif") for i in range(3)]
    real = cluster._signature

    def as_this_computer_sees_it(path):  # the workers see other files in the private folder
        return (0, 0) if Path(path).parent == private else real(path)

    monkeypatch.setattr(cluster, "_signature", as_this_computer_sees_it)
    futures = [pool.submit(batch_module._run_job, (inp, inp.name[:-4], params)) for inp in inputs]
    got = [f.result(timeout=120) for f in futures]
    assert [o.status for o in got] == ["ok"] * 5
    for inp, outcome in zip(inputs, got):
        here = process_one(inp, inp.name[:-4], params)
        assert outcome.files == here.files, inp.name
    # the upload and the three private files, not the one the workers can see
    assert pool.sent == 4
    assert str(private) in pool._elsewhere and str(shared) not in pool._elsewhere


# --- faults --------------------------------------------------------------------------------


def test_stop_cancels_the_remaining_tasks_and_keeps_what_is_done(pool, dask_cluster, tmp_path, sample):
    inputs = jobs_of(tmp_path / "in", sample, 10)
    done = []
    since = time.time()
    report = run_batch(inputs, Params(), tmp_path / "out.zip", pool=pool, on_progress=lambda d, n, o: done.append(o),
                       should_stop=lambda: len(done) >= 2)
    assert report.stopped and len(done) >= 2
    statuses = report.summary["status"].tolist()
    assert statuses.count("ok") == len(done) and statuses.count("not run") == 10 - len(done)
    labels = [n for n in zip_members(tmp_path / "out.zip") if n.startswith("labels/")]
    assert len(labels) == len(done)
    # the images in flight were cancelled on the scheduler, not left to run
    cancelled = {key for key, _, _, stimulus in dask_cluster.transitions(since) if stimulus.startswith("cancel-key")}
    assert 1 <= len(cancelled) <= 10 - len(done)
    deadline = time.monotonic() + 20  # the scheduler lets go of the cancelled tasks
    while dask_cluster.segment_tasks() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dask_cluster.segment_tasks() == []


def test_an_image_whose_task_raises_is_listed_with_the_reason(pool, tmp_path, sample, monkeypatch):
    def raises_on_img_01(job):  # sent to the workers by value
        if job[0].name == "img_01.tif":
            raise RuntimeError("worker-side trouble")
        from segmentation.batch import process_one

        return process_one(*job)

    monkeypatch.setattr(batch_module, "_run_job", raises_on_img_01)
    report = run_batch(jobs_of(tmp_path / "in", sample, 3), Params(), tmp_path / "out.zip", pool=pool)
    assert report.summary["status"].tolist() == ["ok", "failed", "ok"]
    errors = table(zip_members(tmp_path / "out.zip")[zip_path("errors")])
    assert errors["file"].tolist() == ["img_01.tif"]
    assert errors["reason"][0] == "the Dask worker could not run this image: RuntimeError: worker-side trouble"


def test_killing_a_worker_mid_batch_loses_no_image(pool, dask_cluster, tmp_path, sample):
    inputs = jobs_of(tmp_path / "in", sample, 8)
    pids = dask_cluster.worker_pids()
    killed: dict[str, list[str]] = {}

    def kill_a_busy_worker(done, total, outcome):
        if killed:
            return
        busy = {w: keys for w, keys in dask_cluster.client.processing().items() if keys}
        worker, keys = sorted(busy.items())[0]
        os.kill(pids[worker], signal.SIGKILL)
        killed[worker] = [str(k) for k in keys]

    since = time.time()
    report = run_batch(inputs, Params(), tmp_path / "out.zip", pool=pool, on_progress=kill_a_busy_worker)
    assert killed, "no worker was killed"
    assert report.summary["status"].tolist() == ["ok"] * 8 and report.errors == []
    files = zip_members(tmp_path / "out.zip")
    assert sorted(n for n in files if n.startswith("labels/")) == [f"labels/img_{i:02d}.tif" for i in range(8)]
    (worker, keys), = killed.items()
    transitions = dask_cluster.transitions(since)
    # the tasks the dead worker held (it may have been given one more meanwhile) went back to the
    # scheduler and were finished elsewhere
    requeued = {key for key, start, finish, _ in transitions if start == "processing" and finish != "memory"}
    assert requeued & set(keys)
    assert requeued <= {key for key, start, finish, _ in transitions if (start, finish) == ("processing", "memory")}
    assert worker not in dask_cluster.client.nthreads()


def test_an_image_that_kills_every_worker_it_lands_on_is_listed_in_errors_csv(pool, dask_cluster, tmp_path, sample,
                                                                                monkeypatch):
    def dies_on_img_00(job):  # as an out-of-memory kill would
        if job[0].name == "img_00.tif":
            import os

            os._exit(1)
        from segmentation.batch import process_one

        return process_one(*job)

    monkeypatch.setattr(batch_module, "_run_job", dies_on_img_00)
    before = dask_cluster.set_allowed_failures(1)  # give up after 2 deaths instead of 4, to keep the test short
    try:
        report = run_batch(jobs_of(tmp_path / "in", sample, 2), Params(), tmp_path / "out.zip", pool=pool)
    finally:
        dask_cluster.set_allowed_failures(before)
    assert report.summary["status"].tolist() == ["failed", "ok"]
    errors = table(zip_members(tmp_path / "out.zip")[zip_path("errors")])
    assert errors["file"].tolist() == ["img_00.tif"]
    assert errors["reason"][0] == cluster.WORKERS_DIED.format(n=2)


def test_the_cli_waits_for_the_first_worker_of_a_cluster_that_has_none_yet(tmp_path, sample):
    need_dask()
    folder = tmp_path / "in"
    jobs_of(folder, sample, 2)
    empty = Cluster(tmp_path / "dask", workers=0)  # as when the batch queue has not started the jobs yet
    try:
        with cli(str(folder), "--out", str(tmp_path / "out.zip"), "--scheduler", empty.address) as proc:
            first = proc.stderr.readline()
            empty.start_worker("late")
            rest = proc.stderr.read()
            code = proc.wait(timeout=120)
    finally:
        empty.close()
    assert first == f"cluster {empty.address} has no workers yet: waiting for the first (Ctrl-C to stop)\n"
    assert code == 0, rest
    assert f"cluster {empty.address}: 1 worker, 1 thread" in rest and "2 of 2 images segmented" in rest


class NeverDone:
    """A Dask future whose scheduler went away without telling."""

    def add_done_callback(self, fn):
        pass

    def cancel(self):
        pass


class LostClient:
    status = "running"

    def submit(self, *args, **kwargs):
        return NeverDone()


def test_images_in_flight_when_the_client_gives_up_on_its_scheduler_fail_instead_of_hanging(sample, tmp_path,
                                                                                               monkeypatch):
    monkeypatch.setattr(cluster, "WATCH_INTERVAL", 0.05)
    client = LostClient()
    pool = cluster.DaskWorkers(client)
    job = (BatchInput("a.tif", tmp_path / "a.tif"), "a", Params())
    future = pool.submit(batch_module._run_job, job)
    time.sleep(0.3)
    assert not future.done()  # still running, as far as anyone knows
    client.status = "closed"
    outcome = future.result(timeout=5)
    assert (outcome.status, outcome.reason, outcome.name) == ("failed", cluster.TASK_LOST, "a.tif")
    # and what is submitted afterwards fails at once
    assert pool.submit(batch_module._run_job, job).result(timeout=0).reason == cluster.TASK_LOST
    pool._closed.set()


def test_a_scheduler_that_dies_mid_batch_leaves_every_image_accounted_for(tmp_path, sample):
    need_dask()
    own = Cluster(tmp_path / "dask", workers=1)
    inputs = jobs_of(tmp_path / "in", sample, 6)
    pool = cluster.connect(own.address)
    scheduler = own.procs[0]

    def kill_the_scheduler(done, total, outcome):
        if scheduler.poll() is None:
            scheduler.kill()

    reports = []
    batch = threading.Thread(target=lambda: reports.append(
        run_batch(inputs, Params(), tmp_path / "out.zip", pool=pool, on_progress=kill_the_scheduler)), daemon=True)
    try:
        batch.start()
        batch.join(timeout=60)
        assert not batch.is_alive(), "the batch still waits for images the lost scheduler will never return"
        report, = reports
    finally:
        pool.shutdown()
        for proc in own.procs:
            proc.kill()
            proc.wait()
        for log in own.logs:
            log.close()
    statuses = report.summary["status"].tolist()
    assert statuses.count("ok") >= 1 and statuses.count("ok") + statuses.count("failed") == 6
    assert {reason for _, reason in report.errors} == {cluster.TASK_LOST}
    assert len(report.errors) == statuses.count("failed") and not report.stopped
    assert zipfile.ZipFile(tmp_path / "out.zip").testzip() is None


def test_workers_running_another_version_are_refused(dask_cluster, monkeypatch):
    import segmentation

    monkeypatch.setattr(segmentation, "__version__", "0.0.0-other")
    with pytest.raises(cluster.ClusterError, match=r"runs nuclei-segmentation .*, this computer 0\.0\.0-other"):
        cluster.connect(dask_cluster.address)


# --- a cluster on this computer ------------------------------------------------------------


def test_scheduler_local_starts_worker_processes_and_writes_the_same_zip(image_dir, tmp_path, capsys):
    need_dask()
    local, remote = tmp_path / "local.zip", tmp_path / "remote.zip"
    assert main([str(image_dir), "--out", str(local), "--workers", "1"]) == 1
    capsys.readouterr()
    assert main([str(image_dir), "--out", str(remote), "--scheduler", "local", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert ": 1 worker, 1 thread" in err and "5 of 6 images segmented" in err
    assert "Traceback" not in err
    assert_same_results(local, remote)


def test_ctrl_c_on_a_local_cluster_keeps_what_is_done_and_shows_no_traceback(tmp_path, sample):
    need_dask()
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(12):
        tifffile.imwrite(folder / f"big_{i:02d}.tif", np.tile(np.rot90(sample, i % 4), (2, 2)))
    out = tmp_path / "out.zip"
    # settings that take seconds per image (an exact rolling ball), so that Ctrl-C lands mid-batch
    slow = tmp_path / "slow.json"
    slow.write_text(Params(background="rolling_ball", background_radius=25).to_json())
    # a session of its own: Ctrl-C in a terminal reaches the whole process group, workers included
    with cli(str(folder), "--out", str(out), "--scheduler", "local", "--workers", "2", "--settings", str(slow),
             start_new_session=True) as proc:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("[1/12]"):
                os.killpg(proc.pid, signal.SIGINT)
                break
        lines += proc.stderr.readlines()
        code = proc.wait(timeout=60)
    err = "".join(lines)
    assert code == 130, err
    assert "Traceback" not in err and f"stopped: {out} holds the images finished so far" in err
    summary = table(zip_members(out)[zip_path("summary")])
    ok = int((summary["status"] == "ok").sum())
    assert 1 <= ok < 12 and (summary["status"] == "not run").sum() == 12 - ok
    # an image whose files were being written when Ctrl-C came may be in the zip but "not run" in the summary
    # (run_batch adds the files first, then the row)
    assert ok <= len([n for n in zip_members(out) if n.startswith("labels/")]) <= ok + 1


# --- speed -----------------------------------------------------------------------------------

FAULTS = """
import pathlib, resource, sys
from concurrent.futures import ThreadPoolExecutor
from segmentation import Params, cluster, segment
from segmentation.batch import process_one
from segmentation.inputs import BatchInput

inp = BatchInput("x.tif", pathlib.Path(sys.argv[1]))

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    process_one(inp, "x", Params())
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

thread = ThreadPoolExecutor(1)  # a Dask worker runs its tasks in a thread of its own
faults_in_thread = lambda: thread.submit(faults).result()
faults_in_thread()
untuned = faults_in_thread()
changed = cluster._tune_malloc()
faults_in_thread()  # the heap grows once
print(untuned, faults_in_thread(), changed, cluster._tune_malloc())
"""


def test_workers_segment_without_the_page_faults_of_dasks_malloc_setting(tmp_path, sample, monkeypatch):
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, np.tile(sample, (2, 2)))
    # a process started as Dask's nanny starts its workers
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", FAULTS, str(path)], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    untuned, tuned = int(out[0]), int(out[1])
    assert out[2:] == ["True", "False"]  # changed once
    assert tuned * 2 < untuned, (untuned, tuned)  # measured: 35,000 -> 6,000-12,000
    # this process was started without it: left alone
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.setattr(cluster, "_malloc_tuned", False)
    assert cluster._tune_malloc() is False


def test_the_tasks_tune_their_workers(pool, dask_cluster, tmp_path, sample):
    run_batch(jobs_of(tmp_path / "in", sample, 2), Params(), tmp_path / "out.zip", pool=pool)
    assert dask_cluster.client.run(lambda: __import__("segmentation.cluster").cluster._malloc_tuned) == \
        {w: True for w in dask_cluster.client.nthreads()}


# --- the Batch page -----------------------------------------------------------------------------

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def batch_page(monkeypatch, address: str | None):
    from streamlit.testing.v1 import AppTest

    if address is None:
        monkeypatch.delenv(cluster.SCHEDULER_ENV, raising=False)
    else:
        monkeypatch.setenv(cluster.SCHEDULER_ENV, address)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/batch.py").run()
    return at


def upload_and_run(at, files: list[tuple[str, bytes, str]]):
    at.file_uploader(key="batch_folder").set_value(files).run()
    at.button(key="batch_start").click().run()
    job = at.session_state["batch_job"]
    assert job.finished.wait(120), "batch not finished after 120 s"
    at.run()
    return job


def test_the_batch_page_offers_only_the_servers_scheduler(monkeypatch):
    at = batch_page(monkeypatch, None)
    assert not [t for t in at.toggle if t.key == "batch_use_cluster"]  # no cluster set for this server
    assert not at.text_input  # and no box to type an address into (pickled results would run on the server)


def test_the_batch_page_runs_on_the_servers_dask_cluster(dask_cluster, monkeypatch, sample):
    at = batch_page(monkeypatch, dask_cluster.address)
    assert at.toggle(key="batch_use_cluster").value is True
    files = [(f"exp/field_{i}.tif", tiff_bytes(np.rot90(sample, i)[:256]), "image/tiff") for i in range(3)]
    at.file_uploader(key="batch_folder").set_value(files).run()
    assert any("3 images on the lab's Dask cluster" in c.value for c in at.caption)
    at.button(key="batch_start").click().run()
    job = at.session_state["batch_job"]
    assert job.finished.wait(120), "batch not finished after 120 s"
    at.run()
    assert job.error is None and job.report.n_ok == 3
    assert job.where.startswith("the Dask cluster")
    assert dask_cluster.address in job.where
    with zipfile.ZipFile(job.zip_path) as z:
        for i in range(3):
            got = tifffile.imread(io.BytesIO(z.read(f"labels/exp/field_{i}.tif")))
            np.testing.assert_array_equal(got, segment(np.rot90(sample, i)[:256], Params()).labels)


@pytest.mark.shows_errors
def test_an_unreachable_scheduler_is_a_clear_message_and_the_toggle_falls_back(monkeypatch, sample):
    need_dask()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    at = batch_page(monkeypatch, f"tcp://127.0.0.1:{port}")
    job = upload_and_run(at, [("exp/a.tif", tiff_bytes(sample[:128]), "image/tiff")])
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("did not start" in e and str(port) in e for e in errors), errors
    assert job.report is None
    at.toggle(key="batch_use_cluster").set_value(False).run()
    at.button(key="batch_start").click().run()
    job = at.session_state["batch_job"]
    assert job.finished.wait(120)
    at.run()
    assert job.error is None and job.report.n_ok == 1  # on this server's own workers
