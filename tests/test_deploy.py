"""The deployments, checked offline: deploy/k8s/ (rendered) against the Kubernetes schemas of K8S_VERSIONS, with
kubernetes-validate; deploy/compose.yaml against compose-spec's own schema (check-jsonschema's); bad values give one
line each. And the health endpoint the probes use (--health-port), on a real process."""

from __future__ import annotations

import copy
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from deploy import check_manifests as cm
from dogfilter.common.stage import NAMES
from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose.yaml"


def by_id(docs: list[dict]) -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


@pytest.mark.system
@pytest.mark.timeout(120)
def test_every_deployment_passes_its_schemas_and_the_range_checks() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "deploy" / "check_manifests.py")], capture_output=True,
                         text=True, timeout=100)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(cm.DEFAULTS) and all(line.startswith("ok ") for line in lines)


@pytest.mark.system
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kdir", ["base", "overlays/gpu"])
def test_the_python_renderer_renders_what_kubectl_kustomize_renders(kdir: str) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the checker renders with its own renderer, not compared here")
    ours, theirs = cm.render(K8S / kdir, "python"), cm.render(K8S / kdir, "kubectl")
    assert by_id(ours) == by_id(theirs)


@pytest.mark.system
@pytest.mark.timeout(60)
def test_the_manifests_say_what_the_issue_asks() -> None:
    base, gpu = by_id(cm.render(K8S / "base", "python")), by_id(cm.render(K8S / "overlays" / "gpu", "python"))
    pipe = base["StatefulSet/dogfilter-pipeline"]["spec"]["template"]["spec"]
    assert [c["name"] for c in pipe["containers"]] == ["capture", "composite", "display"]
    svc = base["Service/dogfilter-pipeline"]["spec"]
    assert svc["clusterIP"] == "None" and {p["port"] for p in svc["ports"]} == {5551, 5552, 5553}
    for worker, port in (("detect", 5551), ("classify", 5553)):
        spec = base[f"Deployment/dogfilter-{worker}"]["spec"]["template"]["spec"]
        env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
        assert env["DOGFILTER_CONNECT"] == f"tcp://dogfilter-pipeline:{port}"  # the headless Service's name
        assert env["DOGFILTER_CURVE_DIR"]
    for d in base.values():
        for c in cm._containers(d):
            if c["name"] != "private":
                assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
                assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
    secrets = {v["secret"]["secretName"] for d in base.values() for v in (cm._pod_spec(d) or {}).get("volumes", [])
               if "secret" in v}
    assert secrets == {"dogfilter-curve-server", "dogfilter-curve-client", "dogfilter-pipeline-secret"}
    assert not any(d["kind"] == "Secret" for d in base.values()), "Secrets are the user's, never in the repository"
    hpa = base["HorizontalPodAutoscaler/dogfilter-classify"]["spec"]
    assert hpa["metrics"][0]["pods"]["metric"]["name"] == "dogfilter_classify_busy_ratio"
    assert any(d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"] == {} for d in base.values())
    classify = gpu["Deployment/dogfilter-classify"]["spec"]["template"]["spec"]["containers"][0]
    assert classify["resources"]["limits"]["nvidia.com/gpu"] == 1 and classify["image"].endswith(":gpu")
    assert {"name": "DOGFILTER_DEVICE", "value": "cuda"} in classify["env"]


@pytest.mark.unit
@pytest.mark.timeout(60)
def test_the_network_policies_open_only_the_ports_of_the_ports_table() -> None:
    table = (ROOT / "deploy" / "README.md").read_text().split("\n## Ports\n", 1)[1]
    documented = {int(p) for line in table.splitlines() if line.startswith("|") for p in re.findall(r"\b\d{4}\b", line)}
    opened = {p["port"] for d in cm.render(K8S / "base", "python") if d["kind"] == "NetworkPolicy"
              for way in ("ingress", "egress") for rule in d["spec"].get(way, []) for p in rule.get("ports", [])}
    opened -= {53}  # DNS
    assert opened <= documented, f"ports opened but not in deploy/README.md's table: {opened - documented}"


def _bad(tmp_path: Path, kdir: str, edit) -> list[str]:
    """The base copied, one value made bad by ``edit(docs)``, checked."""
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work)
    docs_file = work / "base" / kdir
    docs = list(yaml.safe_load_all(docs_file.read_text()))
    edit(docs)
    docs_file.write_text(yaml.safe_dump_all(docs))
    problems, _ = cm.check(work / "base", "python")
    return problems


@pytest.mark.system
@pytest.mark.timeout(60)
def test_bad_manifest_values_give_one_clear_line_each(tmp_path: Path) -> None:
    def replicas(docs):
        docs[0]["spec"]["replicas"] = -1

    def port(docs):
        docs[0]["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000

    def typo(docs):
        docs[0]["spec"]["replicas"] = "two"

    def hpa(docs):
        docs[1]["spec"]["maxReplicas"] = 0

    assert _bad(tmp_path / "a", "detect.yaml", replicas) == [
        f"{tmp_path / 'a' / 'k8s' / 'base'}: Deployment/dogfilter-detect: spec.replicas: -1 is below 0"]
    assert _bad(tmp_path / "b", "detect.yaml", port) == [
        f"{tmp_path / 'b' / 'k8s' / 'base'}: Deployment/dogfilter-detect: container detect: ports[0].containerPort: "
        "70000 is not a port (1..65535)"]
    (line,) = _bad(tmp_path / "c", "detect.yaml", typo)
    assert "Deployment/dogfilter-detect: spec.replicas: 'two' is not of type 'integer'" in line
    (line,) = _bad(tmp_path / "d", "classify.yaml", hpa)
    assert line.endswith("HorizontalPodAutoscaler/dogfilter-classify: spec.maxReplicas: 0 is below minReplicas 1")


@pytest.mark.system
@pytest.mark.timeout(60)
def test_bad_compose_values_give_one_clear_line_each(tmp_path: Path) -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert set(doc["services"]) >= {"capture", "detect", "classify", "composite", "display", "classify-gpu"}
    gpu = doc["services"]["classify-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for name, edit, want in (
            ("replicas", lambda d: d["services"]["detect"]["deploy"].update(replicas=-2),
             "services.detect.deploy.replicas: -2 is below 0"),
            ("port", lambda d: d["services"]["display"].update(ports=["127.0.0.1:99999:8080"]),
             "services.display.ports[0]: 99999 is not a port (1..65535)"),
            ("unknown", lambda d: d["services"]["capture"].update(restrat="always"),
             "services.capture: Unevaluated properties are not allowed ('restrat' was unexpected)")):
        bad = copy.deepcopy(doc)
        edit(bad)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(bad))
        out = subprocess.run([sys.executable, str(ROOT / "deploy" / "check_manifests.py"), str(path)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1 and out.stdout.splitlines() == [f"{path}: {want}"], out.stdout + out.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.mark.system
@pytest.mark.timeout(60)
def test_a_worker_health_port_answers_probes_and_exports_its_busy_fraction(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dogfilter.services.classify", "--health-port", str(port),
                             "--classify-addr", f"ipc://{tmp_path}/classify"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        code, text = get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        from prometheus_client.parser import text_string_to_metric_families

        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["dogfilter_up"].samples[0].value == 1
        assert families["dogfilter_classify_busy_ratio"].samples[0].value == 0  # no job yet
        assert get(f"http://127.0.0.1:{port}/nothing")[0] == 404
        proc.send_signal(19)  # SIGSTOP: the loop stops turning, but so does the health thread: the probe times out
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
        proc.send_signal(18)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.system
@pytest.mark.timeout(30)
def test_a_bad_health_port_is_one_line() -> None:
    out = subprocess.run([sys.executable, "-m", "dogfilter.services.classify", "--health-port", "70000"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2
    assert out.stderr.strip() == "dogfilter-classify: error: --health-port must be 1..65535 (0: off), got 70000"


def _sub(text: str, subst: dict[str, str]) -> str:
    """Every key of ``subst`` replaced in one pass (longest first), so a replacement is never replaced again."""
    pattern = "|".join(re.escape(k) for k in sorted(subst, key=len, reverse=True))
    return re.sub(pattern, lambda m: subst[m.group(0)], text)


def _pod_env(container: dict, subst: dict[str, str]) -> dict[str, str]:
    return {e["name"]: _sub(e["value"], subst) for e in container.get("env", [])}


@pytest.mark.system
@pytest.mark.timeout(120)
def test_the_pipeline_pod_and_its_workers_run_as_the_manifests_configure_them(tmp_path: Path) -> None:
    """The base's pipeline pod (init copy, CURVE on TCP, ipc:// inside the pod, the secret) and a detect and a
    classify worker, run here as processes with the manifests' own environment: only the paths (/run/dogfilter,
    /secrets), the ports (free ones) and the addresses (loopback for 0.0.0.0 and the Service's name) are mapped."""
    import os

    from dogfilter.common.transport.sockets import create_keys

    docs = by_id(cm.render(K8S / "base", "python"))
    pod = docs["StatefulSet/dogfilter-pipeline"]["spec"]["template"]["spec"]
    keys = create_keys(tmp_path / "keys")
    secrets = tmp_path / "secrets"
    for sub, files in (("curve", {"server.key": "server.key", "server.key_secret": "server.key_secret",
                                  "clients/client.key": "clients/client.key"}),
                       ("curve-client", {"server.key": "server.key", "client.key": "client.key",
                                         "client.key_secret": "client.key_secret"})):
        for dst, src in files.items():
            (secrets / sub / dst).parent.mkdir(parents=True, exist_ok=True)
            (secrets / sub / dst).write_bytes((keys / src).read_bytes())
            (secrets / sub / dst).chmod(0o440)  # as Kubernetes mounts them under fsGroup
    (secrets / "pipeline").mkdir()
    (secrets / "pipeline" / "secret").write_text("ab" * 32 + "\n")
    (secrets / "pipeline" / "secret").chmod(0o440)
    ports = {p: free_port() for p in (5551, 5552, 5553, 8080, 8081, 9100, 9101, 9102, 9103)}
    run = tmp_path / "run"
    subst = {"/run/dogfilter": str(run), "/secrets/": f"{secrets}/", "0.0.0.0": "127.0.0.1",
             "dogfilter-pipeline": "127.0.0.1", **{f":{a}": f":{b}" for a, b in ports.items()},
             **{str(a): str(b) for a, b in ports.items() if a >= 8080}}
    init = pod["initContainers"][0]["command"]
    script = _sub(init[2], subst)
    assert subprocess.run(["sh", "-c", script], timeout=10).returncode == 0
    assert oct((run / "keys" / "server.key_secret").stat().st_mode & 0o777) == "0o400"
    worker_run = tmp_path / "run-worker"
    wscript = docs["Deployment/dogfilter-classify"]["spec"]["template"]["spec"]["initContainers"][0]["command"][2]
    wsubst = {"/secrets/curve/": f"{secrets}/curve-client/", **subst, "/run/dogfilter": str(worker_run)}
    wscript = _sub(wscript, wsubst)
    assert subprocess.run(["sh", "-c", wscript], timeout=10).returncode == 0
    procs = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("DOGFILTER_")}
    try:
        for c in pod["containers"]:
            env = {**base_env, **_pod_env(c, subst)}
            procs.append(subprocess.Popen([sys.executable, "-m", f"dogfilter.services.{c['name']}"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        for worker in ("detect", "classify"):
            c = docs[f"Deployment/dogfilter-{worker}"]["spec"]["template"]["spec"]["containers"][0]
            env = {**base_env, **_pod_env(c, {**wsubst, "9100": str(ports[9100] if worker == "classify"
                                                                    else free_port())})}
            procs.append(subprocess.Popen([sys.executable, "-m", f"dogfilter.services.{worker}"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        _wait_for_classified_faces(procs, ports[8080], "the pod's links")
        for port in (9101, 9102, 9103, 9100):
            assert get(f"http://127.0.0.1:{ports[port]}/readyz")[0] == 200
    finally:
        _stop(procs)


@pytest.mark.system
@pytest.mark.timeout(120)
def test_the_compose_services_run_as_compose_configures_them(tmp_path: Path) -> None:
    """deploy/compose.yaml's services as processes with their own environment and commands (the `keys` one-shot
    too): every link CURVE over TCP, the shared private folder, the browser view. Mapped to this machine: the
    private volume to a folder, service names to loopback, ports to free ones, each health port its own."""
    import os

    doc = yaml.safe_load(COMPOSE.read_text())
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    ports = {p: free_port() for p in (5551, 5552, 5553, 5554, 5555, 8080, 8081)}
    subst = {"/run/dogfilter": str(private), "0.0.0.0": "127.0.0.1",
             **{f"{h}:{p}": f"127.0.0.1:{ports[p]}" for h in ("capture", "composite", "display") for p in ports},
             **{f"{h}:{p}": f"127.0.0.1:{q}" for h in ("127.0.0.1", "0.0.0.0") for p, q in ports.items()},
             **{str(p): str(q) for p, q in ports.items() if p >= 8080}}
    keys = doc["services"]["keys"]["command"]
    script = _sub(keys[2], subst).replace("dogfilter keys", f"{sys.executable} -m dogfilter.commands.run keys")
    for _ in range(2):  # once makes them, twice keeps them
        assert subprocess.run([*keys[:2], script], timeout=30).returncode == 0
    assert (private / "keys" / "server.key_secret").is_file()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("DOGFILTER_")}
    procs, health = [], {}
    try:
        for name in NAMES:
            svc = doc["services"][name]
            env = {**base_env, **{k: _sub(str(v), subst) for k, v in svc["environment"].items()}}
            health[name] = env["DOGFILTER_HEALTH_PORT"] = str(free_port())
            env["DOGFILTER_SOURCE"] = "demo"  # ${DOGFILTER_SOURCE:-demo}
            assert svc["command"] == [f"dogfilter-{name}"]
            procs.append(subprocess.Popen([sys.executable, "-m", f"dogfilter.services.{name}"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        _wait_for_classified_faces(procs, ports[8080], "compose's links")
        assert oct((private / "secret").stat().st_mode & 0o777) == "0o600"
        for name, port in health.items():
            assert get(f"http://127.0.0.1:{port}/readyz")[0] == 200, name
    finally:
        _stop(procs)


def _wait_for_classified_faces(procs: list[subprocess.Popen], view_port: int, links: str, want: float = 30) -> None:
    """Until the display's /metrics counts `want` faces with a mask chosen by the classifier (not the default
    emotion), every process staying up; at most 60 s."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline, faces = time.monotonic() + 60, 0.0
    while time.monotonic() < deadline and faces < want:
        time.sleep(1)
        assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs if p.poll() is not None]
        try:
            code, text = get(f"http://127.0.0.1:{view_port}/metrics")
        except OSError:
            continue
        assert code == 200
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        faces = sum(s.value for s in fams["dogfilter_faces"].samples if s.name.endswith("_total")
                    and s.labels.get("emotion") != "neutral") if "dogfilter_faces" in fams else 0.0
    assert faces >= want, f"no classified faces reached the display through {links}"


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
