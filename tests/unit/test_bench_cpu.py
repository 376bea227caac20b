"""harness/cpu.py: a component's CPU is its whole process tree's, the children that came and went included."""
import subprocess
import sys
import time

from flashsale.harness.cpu import Meter, per_unit_ms

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
# A parent that starts a child which burns 0.3 s of CPU and exits; the parent waits for it, then idles.
PARENT = (f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {BURN!r}])\n"
          "print('done', flush=True)\ntime.sleep(30)")


def test_a_child_that_exited_and_was_reaped_is_counted_in_its_parents_component():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        meter = Meter({parent.pid: "postgres"}).start()  # as a postmaster reaps its backends
        assert parent.stdout.readline().strip() == "done"
        spent = meter.stop()
    finally:
        parent.kill()
    assert set(spent) == {"postgres"}
    assert 0.25 <= spent["postgres"] < 1.5, spent


def test_instances_of_one_service_add_up_and_the_total_is_per_unit():
    # each waits for the meter to start, burns 0.3 s of CPU, says so, then idles until killed
    code = f"import sys, time\nsys.stdin.readline()\n{BURN}\nprint('done', flush=True)\ntime.sleep(30)"
    instances = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    try:
        time.sleep(0.3)  # started up
        meter = Meter({p.pid: "inventory" for p in instances}).start()
        for p in instances:
            p.stdin.write("go\n")
            p.stdin.flush()
        assert [p.stdout.readline().strip() for p in instances] == ["done", "done"]
        spent = meter.stop()
    finally:
        for p in instances:
            p.kill()
    assert set(spent) == {"inventory"}
    assert 0.5 <= spent["inventory"] < 1.5, spent
    assert per_unit_ms({"a": 0.010, "b": 0.020}, 10) == {"a": 1.0, "b": 2.0, "total": 3.0}
