"""bench/cpuwatch.py: CPU of a group of processes over a stretch, processes born during it included,
what a process used before the stretch left out."""

import subprocess
import sys
import time

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))

from cpuwatch import CpuWatch, cpu_seconds  # noqa: E402

BURN = "import sys, time\nend = time.process_time() + float(sys.argv[1])\nwhile time.process_time() < end: pass\n"
# Burns 0.4 s, then waits for a line and burns that many seconds more.
BURN_WAIT_BURN = (
    BURN + "seconds = float(sys.stdin.readline())\n"
    "end = time.process_time() + seconds\nwhile time.process_time() < end: pass\n"
)


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_counts_a_process_from_the_start_of_the_stretch_and_one_born_during_it():
    # One burns 0.4 s of CPU before the stretch, then 0.3 s in it; another is born in the stretch.
    early = subprocess.Popen([sys.executable, "-c", BURN_WAIT_BURN, "0.4"], stdin=subprocess.PIPE, text=True)
    late: list[subprocess.Popen] = []
    try:
        _until(lambda: (cpu_seconds(early.pid) or 0) >= 0.4)
        watch = CpuWatch({"group": lambda: [p.pid for p in (early, *late)]}, interval=0.02).start()
        early.stdin.write("0.3\n")
        early.stdin.flush()
        late.append(subprocess.Popen([sys.executable, "-c", BURN, "0.3"]))
        late[0].wait(30)
        early.stdin.close()
        early.wait(30)
        seconds = watch.stop()["group"]
    finally:
        for process in (early, *late):
            process.kill()
    # 0.3 s each in the stretch, plus interpreter start-up of the late one; the early one's 0.4 s
    # before it is not counted. What each did after its last sample is lost (an interval's worth).
    assert 0.45 <= seconds <= 0.9, seconds
    assert watch.processes() == {"group": 2}
