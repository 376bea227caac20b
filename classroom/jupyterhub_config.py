# A flashsale classroom on one machine: JupyterHub, its proxy, one Jupyter server per learner, idle ones culled.
#
#     jupyterhub -f classroom/jupyterhub_config.py        # as root, from the kit's checkout (docs/classroom.md)
#
# Every setting a teacher changes is an environment variable, read below; the rest is JupyterHub's own config.
# Any of JupyterHub's settings can also be given on its command line, after this file is read.
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # flashsale_spawner, cgroups

from flashsale.stack import kafka_dist  # noqa: E402

c = get_config()  # noqa: F821 (JupyterHub's config loader provides it)

# --- addresses --------------------------------------------------------------------------------------------------
# The hub's public address. Not JupyterHub's default 8000: that is the flashsale gateway's. Put TLS in front of it
# (c.JupyterHub.ssl_cert/ssl_key, or a reverse proxy) before learners send passwords over a network.
c.JupyterHub.bind_url = os.environ.get("FLASHSALE_HUB_URL", "http://:8080")
# The proxy's REST API, for the hub alone. Its default port, 8001, is the flashsale shop's: move it.
c.ConfigurableHTTPProxy.api_url = os.environ.get("FLASHSALE_HUB_PROXY_API", "http://127.0.0.1:8082")
c.JupyterHub.cleanup_servers = True  # the hub stopping stops every learner's server (and so their stacks)

# --- who the learners are ---------------------------------------------------------------------------------------
ACCOUNTS = os.environ.get("FLASHSALE_CLASSROOM_ACCOUNTS", "unix")
if ACCOUNTS == "unix":
    # Each learner a Unix account in the group `learners` (docs/classroom.md makes them), logging in with its
    # password through PAM, JupyterHub's default authenticator. Their servers run as them, in their own homes.
    c.JupyterHub.spawner_class = "flashsale_spawner.ClassroomSpawner"
    c.PAMAuthenticator.allowed_groups = {os.environ.get("FLASHSALE_CLASSROOM_GROUP", "learners")}
elif ACCOUNTS == "shared":
    # Every learner's server as the hub's own account, each in a home of its own: tests, or a throw-away machine.
    # Anyone who knows the class's one password (JupyterHub's SharedPasswordAuthenticator) may log in under any name.
    c.JupyterHub.spawner_class = "flashsale_spawner.SharedAccountClassroomSpawner"
    c.SharedAccountClassroomSpawner.home_dir_template = os.environ.get("FLASHSALE_CLASSROOM_HOMES",
                                                                       "/srv/flashsale/{username}")
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = os.environ["FLASHSALE_CLASSROOM_PASSWORD"]  # none, no class
    c.Authenticator.allow_all = True
    if os.geteuid() == 0:
        c.Spawner.args = ["--allow-root"]  # a Jupyter server refuses to run as root without it
else:
    raise ValueError(f"FLASHSALE_CLASSROOM_ACCOUNTS={ACCOUNTS!r}: 'unix' (one account per learner) or 'shared'")
c.Authenticator.admin_users = set(filter(None, os.environ.get("FLASHSALE_CLASSROOM_ADMINS", "").split(",")))

# --- what each learner gets -------------------------------------------------------------------------------------
# The limits: docs/classroom.md measures a learner (a stack on Apache Kafka peaks near 1.3 GiB) and sizes a machine.
c.Spawner.mem_limit = os.environ.get("FLASHSALE_LEARNER_MEMORY", "2G")
c.Spawner.cpu_limit = float(os.environ.get("FLASHSALE_LEARNER_CPUS", "1"))
c.Spawner.default_url = "/lab/tree/notebooks/00-setup.ipynb"
# A class logs in at once, and a busy machine starts a Jupyter server slowly: measured here under load, a learner's
# server took over 30 s (JupyterHub's http_timeout) to answer. JupyterHub's defaults are 60 s and 30 s.
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120
c.Spawner.environment = {"FLASHSALE_BROKER": os.environ.get("FLASHSALE_BROKER", "tansu")}
# Apache Kafka's jars, installed once by the teacher where every learner can read them.
jars = os.environ.get("FLASHSALE_KAFKA_HOME") or str(kafka_dist.cache())
if Path(jars).exists():
    c.ClassroomSpawner.kafka_jars = c.SharedAccountClassroomSpawner.kafka_jars = jars

# --- idle servers culled ----------------------------------------------------------------------------------------
# jupyterhub-idle-culler, as a service of the hub: a server nobody has used for an hour is stopped, and with it
# its kernels, its stacks and their memory. The learner's files stay; they start again from the hub's page.
IDLE_S = int(os.environ.get("FLASHSALE_CULL_IDLE_S", "3600"))
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={IDLE_S}",
                f"--cull-every={max(5, min(IDLE_S // 4, 600))}"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
