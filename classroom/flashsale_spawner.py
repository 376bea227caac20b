"""JupyterHub's own local spawners, plus what a flashsale learner needs on a shared machine.

JupyterHub's LocalProcessSpawner starts each learner's Jupyter server as a local process, and does not enforce
`mem_limit` or `cpu_limit` (it only tells the server its limits). On a machine with systemd, `systemdspawner`
enforces them; on one without (a container, this project's CI), this spawner does, with a cgroup v1 group per
learner (classroom/cgroups.py). On top of the spawner it comes from, for each learner it:

- copies the kit's notebooks into the learner's home on their first start (never over their work);
- gives them their own FLASHSALE_HOME and their own ports for `flashsale up` (the contract's defaults
  8000-8002 would collide between learners; the notebooks already pick free ports of their own);
- makes the learner's cgroup before the server starts, so the server, its kernels and every process of every
  stack they start are in it, limited and counted together;
- once the server has stopped (stopped by the learner, culled, or the hub shutting down), stops whatever is still
  in the group, say a stack whose kernel was killed, and removes the group.

Two kinds, for the two ways a class can run:
- `ClassroomSpawner` (LocalProcessSpawner): each learner is a Unix account of the machine. The one for a class.
- `SharedAccountClassroomSpawner` (SimpleLocalProcessSpawner): every learner's server runs as the hub's own
  account, in a home of its own. No isolation between learners beyond the cgroup and the folders: for tests
  and for a throw-away machine whose learners trust each other.
"""
import os
import pwd
import shutil
from pathlib import Path

from cgroups import Cgroup
from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner
from traitlets import Bool, Integer, Unicode

KIT = Path(__file__).resolve().parents[1]
EPHEMERAL_FIRST = 32768  # Linux's first ephemeral port: free_port() and the kernels' ports come from above it


class ClassroomSpawner(LocalProcessSpawner):
    """Each learner a Unix account: their home is their account's, and their server runs as them."""

    notebooks = Unicode(str(KIT / "notebooks"), config=True,
                        help="The kit's notebooks folder, copied into each learner's home on their first start.")
    solutions = Bool(False, config=True, help="Copy notebooks/solutions too (off: the exercises without answers).")
    port_base = Integer(20000, config=True, help="Learner n's `flashsale up` uses ports base+3n to base+3n+2.")
    kafka_jars = Unicode("", config=True,
                         help="FLASHSALE_KAFKA_HOME for every learner: a folder of Apache Kafka jars they can read.")

    def learner_home(self) -> Path:
        return Path(pwd.getpwnam(self.user.name).pw_dir)

    def learner_ports(self) -> dict[str, int]:
        """Three ports of the learner's own, from their user id (stable across restarts, unique on the hub)."""
        first = self.port_base + 3 * self.user.id
        if first + 2 >= EPHEMERAL_FIRST:
            raise RuntimeError(f"user id {self.user.id}: no ports below {EPHEMERAL_FIRST} left; lower "
                               f"ClassroomSpawner.port_base")
        return {"FLASHSALE_GATEWAY_PORT": first, "FLASHSALE_SHOP_PORT": first + 1, "FLASHSALE_PSP_PORT": first + 2}

    def cgroup(self) -> Cgroup:
        return Cgroup(f"flashsale-learner-{self.user.name}")

    def get_env(self) -> dict:
        env = super().get_env()
        env["FLASHSALE_HOME"] = str(self.learner_home() / ".flashsale")
        env.update({name: str(port) for name, port in self.learner_ports().items()})
        if self.kafka_jars:
            env["FLASHSALE_KAFKA_HOME"] = self.kafka_jars
        return env

    def copy_notebooks(self, home: Path) -> None:
        target = home / "notebooks"
        if target.exists():
            return  # the learner's own work from an earlier session
        skip = [".flashsale", ".ipynb_checkpoints", "__pycache__", *([] if self.solutions else ["solutions"])]
        shutil.copytree(self.notebooks, target, ignore=shutil.ignore_patterns(*skip))
        self.give(home, target)

    def give(self, home: Path, target: Path) -> None:
        """Make the copy the learner's own: their account's."""
        account = pwd.getpwnam(self.user.name)
        for folder, _, files in os.walk(target):
            for path in (folder, *(os.path.join(folder, name) for name in files)):
                os.chown(path, account.pw_uid, account.pw_gid)

    async def start(self):
        home = self.learner_home()
        home.mkdir(parents=True, exist_ok=True)
        self.copy_notebooks(home)
        group = self.cgroup()
        group.remove()  # what a crashed hub left, if anything
        group.create(memory_bytes=self.mem_limit, cpus=self.cpu_limit)
        return await super().start()

    def make_preexec_fn(self, name):
        become, group = super().make_preexec_fn(name), self.cgroup()

        def preexec():
            group.join()  # first, while still root: a learner's account may not write to the cgroup files
            become()
        return preexec

    async def stop(self, now=False):
        await super().stop(now)
        left = self.cgroup().stop_all()
        if left:
            self.log.info("stopped %d processes %s left behind in their group: %s", len(left), self.user.name, left)
        self.cgroup().remove()


class SharedAccountClassroomSpawner(ClassroomSpawner, SimpleLocalProcessSpawner):
    """Every learner's server as the hub's account, each in the home `home_dir_template` names."""

    def learner_home(self) -> Path:
        return Path(self.home_dir)

    def give(self, home: Path, target: Path) -> None:
        """The hub's account owns it already."""
