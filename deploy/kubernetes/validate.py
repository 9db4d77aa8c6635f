#!/usr/bin/env python3
"""Validates the Kubernetes manifests of deploy/kubernetes (run by scripts/test).

1. Every manifest (secret.example.yaml included) against the schemas of one pinned Kubernetes
   version, strictly (an unknown or misspelt field is an error), with kubernetes-validate, which
   ships the schemas: no network.
2. What inlet needs of them: one replica with the Recreate strategy, liveness on /healthz and
   readiness on /readyz at the admin port 8080, Prometheus annotations, `inlet run --config` on
   the mounted ConfigMap, a TOML configuration whose admin listener is on that port with a token,
   the secret variables of the configuration filled from the Secret, and a termination grace
   period longer than --stop-grace.

Exits 1 naming every failure, 0 when all hold.

    .venv/bin/python deploy/kubernetes/validate.py [DIR]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info < (3, 11):
    sys.exit(f"validate: needs Python >= 3.11 (tomllib), this is {sys.version.split()[0]}")

import tomllib  # noqa: E402

import yaml  # noqa: E402
from kubernetes_validate import utils as kv  # noqa: E402

KUBERNETES_VERSION = "1.30.0"
ADMIN_PORT = 8080
SECRET_EXAMPLE = "secret.example.yaml"
# Resources kustomization.yaml must apply (pvc.yaml is optional: a local-disk lake).
REQUIRED_RESOURCES = {"configmap.yaml", "deployment.yaml", "service.yaml"}
PROMETHEUS_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(ADMIN_PORT),
    "prometheus.io/path": "/metrics",
}
# `inlet run --stop-grace` when the argument is absent.
DEFAULT_STOP_GRACE_MS = 30_000
# The pod's terminationGracePeriodSeconds when absent (Kubernetes' default).
DEFAULT_TERMINATION_GRACE_S = 30


class Checker:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def check(self, condition: bool, message: str) -> bool:
        if condition:
            self.passed += 1
        else:
            self.failures.append(message)
        return condition

    def fail(self, message: str) -> None:
        self.failures.append(message)


def parse_duration_ms(text: str) -> int | None:
    """inlet's durations (config/src/duration.rs): a whole number then ms, s, m or h."""
    match = re.fullmatch(r"\s*(\d+)(ms|s|m|h)\s*", text)
    if not match:
        return None
    value, unit = int(match.group(1)), match.group(2)
    return value * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[unit]


def listen_port(listen: str) -> int | None:
    """The port of `host:port` or `[v6]:port`."""
    match = re.fullmatch(r"(?:\[[^\]]*\]|[^:\[\]]*):(\d+)", listen.strip())
    return int(match.group(1)) if match else None


def load_documents(path: Path, c: Checker) -> list[dict]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        c.fail(f"{path.name}: not valid YAML: {e}")
        return []
    for doc in docs:
        if not isinstance(doc, dict):
            c.fail(f"{path.name}: a document is not a mapping: {doc!r}")
    return [d for d in docs if isinstance(d, dict)]


def validate_schema(path: Path, doc: dict, c: Checker) -> None:
    name = f"{path.name}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
    if "apiVersion" not in doc or "kind" not in doc:
        c.fail(f"{name}: apiVersion and kind are required")
        return
    try:
        kv.validate(doc, KUBERNETES_VERSION, strict=True)
        c.passed += 1
    except kv.ValidationError as e:
        where = ".".join(str(p) for p in e.path) or "(top level)"
        c.fail(f"{name}: schema of Kubernetes {e.version} (strict): at {where}: {e.message}")
    except kv.SchemaNotFoundError as e:
        c.fail(f"{name}: {e.message}")
    except (kv.VersionNotSupportedError, kv.InvalidSchemaError) as e:
        c.fail(f"{name}: kubernetes-validate cannot check it: {e.message}")


def check_kustomization(directory: Path, c: Checker) -> None:
    path = directory / "kustomization.yaml"
    docs = load_documents(path, c) if path.exists() else []
    if not c.check(len(docs) == 1, f"{path.name}: expected exactly one document"):
        return
    k = docs[0]
    c.check(
        k.get("apiVersion") == "kustomize.config.k8s.io/v1beta1" and k.get("kind") == "Kustomization",
        f"{path.name}: expected apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization",
    )
    resources = k.get("resources") or []
    for resource in resources:
        c.check((directory / resource).is_file(), f"{path.name}: resource {resource} does not exist")
    c.check(
        SECRET_EXAMPLE not in resources,
        f"{path.name}: {SECRET_EXAMPLE} must not be applied (placeholder values)",
    )
    missing = REQUIRED_RESOURCES - set(resources)
    c.check(not missing, f"{path.name}: resources miss {sorted(missing)}")


def find_one(docs: list[tuple[Path, dict]], kind: str, c: Checker) -> dict | None:
    found = [d for _, d in docs if d.get("kind") == kind]
    if not c.check(len(found) == 1, f"expected exactly one {kind}, found {len(found)}"):
        return None
    return found[0]


def probe_port_ok(probe: dict, container: dict) -> bool:
    port = (probe.get("httpGet") or {}).get("port")
    if port == ADMIN_PORT:
        return True
    return any(
        p.get("name") == port and p.get("containerPort") == ADMIN_PORT
        for p in container.get("ports") or []
    )


def check_semantics(docs: list[tuple[Path, dict]], c: Checker) -> None:
    deployment = find_one(docs, "Deployment", c)
    configmap = find_one(docs, "ConfigMap", c)
    service = find_one(docs, "Service", c)
    secret = find_one(docs, "Secret", c)
    if deployment is None:
        return
    spec = deployment.get("spec") or {}
    template = spec.get("template") or {}
    pod = template.get("spec") or {}
    pod_labels = (template.get("metadata") or {}).get("labels") or {}

    # One writer per table: one pod, never two at once.
    c.check(spec.get("replicas") == 1, f"Deployment: replicas must be 1 (one writer per table), not {spec.get('replicas')!r}")
    strategy = spec.get("strategy") or {}
    c.check(
        strategy.get("type") == "Recreate",
        f"Deployment: strategy.type must be Recreate (never two pods at once), not {strategy.get('type')!r}",
    )

    annotations = (template.get("metadata") or {}).get("annotations") or {}
    for key, value in PROMETHEUS_ANNOTATIONS.items():
        c.check(
            annotations.get(key) == value,
            f"Deployment: pod template annotation {key} must be {value!r}, not {annotations.get(key)!r}",
        )

    containers = pod.get("containers") or []
    inlet = next((x for x in containers if x.get("name") == "inlet"), None)
    if not c.check(inlet is not None, "Deployment: no container named inlet"):
        return

    c.check(
        any(p.get("containerPort") == ADMIN_PORT for p in inlet.get("ports") or []),
        f"Deployment: container inlet must expose containerPort {ADMIN_PORT}",
    )
    for probe_name, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = inlet.get(probe_name)
        if not c.check(isinstance(probe, dict), f"Deployment: container inlet has no {probe_name}"):
            continue
        http = probe.get("httpGet") or {}
        c.check(http.get("path") == path, f"Deployment: {probe_name} must GET {path}, not {http.get('path')!r}")
        c.check(
            probe_port_ok(probe, inlet),
            f"Deployment: {probe_name} must use the admin port {ADMIN_PORT}, not {http.get('port')!r}",
        )

    # Hardening.
    pod_security = pod.get("securityContext") or {}
    security = inlet.get("securityContext") or {}
    c.check(
        security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True,
        "Deployment: runAsNonRoot must be true",
    )
    c.check(security.get("readOnlyRootFilesystem") is True, "Deployment: readOnlyRootFilesystem must be true")
    c.check(security.get("allowPrivilegeEscalation") is False, "Deployment: allowPrivilegeEscalation must be false")
    c.check(
        "ALL" in ((security.get("capabilities") or {}).get("drop") or []),
        "Deployment: capabilities.drop must contain ALL",
    )
    limits = (inlet.get("resources") or {}).get("limits") or {}
    c.check("memory" in limits, "Deployment: the inlet container needs a memory limit")
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    mounts = {m.get("mountPath"): m for m in inlet.get("volumeMounts") or []}
    tmp = mounts.get("/tmp")
    c.check(
        tmp is not None and "emptyDir" in volumes.get(tmp.get("name"), {}),
        "Deployment: /tmp must be a writable emptyDir (the root filesystem is read-only)",
    )

    # The command line: inlet run --config FILE [--stop-grace D].
    argv = [str(a) for a in (inlet.get("command") or []) + (inlet.get("args") or [])]
    c.check("run" in argv, f"Deployment: container inlet must run `inlet run`, args are {argv}")
    config_path = option_value(argv, "--config")
    c.check(config_path is not None, f"Deployment: `inlet run` needs --config FILE, args are {argv}")
    stop_grace = option_value(argv, "--stop-grace")
    grace_ms = DEFAULT_STOP_GRACE_MS if stop_grace is None else parse_duration_ms(stop_grace)
    if c.check(grace_ms is not None, f"Deployment: --stop-grace {stop_grace!r} is not a duration (e.g. 25s)"):
        termination_s = pod.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_S)
        c.check(
            termination_s * 1000 > grace_ms,
            f"Deployment: terminationGracePeriodSeconds ({termination_s}) must be greater than "
            f"--stop-grace ({stop_grace or '30s, the default'}), or the kubelet kills inlet mid-stop",
        )

    # The configuration file is the ConfigMap's key, mounted where --config points.
    config_text = None
    if configmap is not None:
        cm_name = (configmap.get("metadata") or {}).get("name")
        data = configmap.get("data") or {}
        if config_path is not None:
            config_text = mounted_configmap_key(config_path, mounts, volumes, cm_name, data, c)
    if config_text is None:
        return
    try:
        config = tomllib.loads(config_text)
        c.passed += 1
    except tomllib.TOMLDecodeError as e:
        c.fail(f"ConfigMap: {config_path} is not valid TOML: {e}")
        return

    admin = config.get("admin")
    if c.check(isinstance(admin, dict), "ConfigMap: inlet.toml has no [admin] table"):
        listen = admin.get("listen")
        c.check(
            isinstance(listen, str) and listen_port(listen) == ADMIN_PORT,
            f"ConfigMap: [admin] listen must be on port {ADMIN_PORT} (probes, Service, Prometheus), not {listen!r}",
        )
        c.check(
            isinstance(admin.get("token_env"), str) and admin["token_env"] != "",
            "ConfigMap: [admin] token_env must be set (a non-loopback listener requires a token)",
        )

    # Every variable that the configuration reads a secret from comes from a Secret.
    wanted = {}
    if isinstance(admin, dict) and isinstance(admin.get("token_env"), str):
        wanted[admin["token_env"]] = "[admin] token_env"
    pipelines = config.get("pipelines") or {}
    c.check(isinstance(pipelines, dict) and pipelines, "ConfigMap: inlet.toml has no [pipelines.*]")
    for name, pipeline in (pipelines.items() if isinstance(pipelines, dict) else []):
        source = (pipeline or {}).get("source") or {}
        c.check("password" not in source, f"ConfigMap: pipelines.{name}.source.password puts a secret in the ConfigMap; use password_env")
        if isinstance(source.get("password_env"), str):
            wanted[source["password_env"]] = f"pipelines.{name}.source.password_env"
    from_secret = {}
    for env in inlet.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            from_secret[env.get("name")] = ref
    for variable, field in wanted.items():
        ref = from_secret.get(variable)
        if not c.check(ref is not None, f"Deployment: {field} = {variable!r} but the container has no env {variable} from a secretKeyRef"):
            continue
        c.check(ref.get("optional") is not True, f"Deployment: env {variable} ({field}) must not be optional")
        if secret is not None:
            s_name = (secret.get("metadata") or {}).get("name")
            keys = set((secret.get("stringData") or {}).keys()) | set((secret.get("data") or {}).keys())
            c.check(
                ref.get("name") == s_name and ref.get("key") in keys,
                f"Deployment: env {variable} refers to secret {ref.get('name')!r} key {ref.get('key')!r}, "
                f"which {SECRET_EXAMPLE} ({s_name!r}, keys {sorted(keys)}) does not show",
            )
    for variable in set(from_secret) - set(wanted):
        c.check(
            variable.startswith("AWS_"),
            f"Deployment: env {variable} comes from a Secret but inlet.toml names no such password_env/token_env",
        )

    # The Service reaches the admin port of this pod.
    if service is not None:
        s_spec = service.get("spec") or {}
        selector = s_spec.get("selector") or {}
        c.check(
            bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items()),
            f"Service: selector {selector} does not select the Deployment's pods ({pod_labels})",
        )
        c.check(s_spec.get("type", "ClusterIP") == "ClusterIP", "Service: type must be ClusterIP")
        ports = s_spec.get("ports") or []
        admin_port = next((p for p in ports if p.get("name") == "admin"), None)
        c.check(
            admin_port is not None
            and admin_port.get("port") == ADMIN_PORT
            and admin_port.get("targetPort") in (ADMIN_PORT, "admin"),
            f"Service: needs port {ADMIN_PORT} named admin targeting the container's admin port, has {ports}",
        )
        if admin_port is not None and admin_port.get("targetPort") == "admin":
            c.check(
                any(p.get("name") == "admin" and p.get("containerPort") == ADMIN_PORT for p in inlet.get("ports") or []),
                f"Service: targetPort admin but the container has no port admin = {ADMIN_PORT}",
            )


def option_value(argv: list[str], option: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(option + "="):
            return arg[len(option) + 1 :]
    return None


def mounted_configmap_key(path: str, mounts: dict, volumes: dict, cm_name: str, data: dict, c: Checker) -> str | None:
    """The ConfigMap data that the container sees at `path`, checking the mount on the way."""
    directory, _, filename = path.rpartition("/")
    mount = mounts.get(directory)
    if not c.check(mount is not None, f"Deployment: --config {path}: nothing is mounted at {directory}"):
        return None
    volume = volumes.get(mount.get("name")) or {}
    source = volume.get("configMap")
    if not c.check(
        source is not None and source.get("name") == cm_name,
        f"Deployment: {directory} must mount the ConfigMap {cm_name!r}",
    ):
        return None
    key = filename
    items = source.get("items")
    if items:
        key = next((i.get("key") for i in items if i.get("path") == filename), None)
    if not c.check(key in data, f"ConfigMap: {cm_name} has no key for --config {path} (keys {sorted(data)})"):
        return None
    return data[key]


def main() -> int:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent).resolve()
    c = Checker()
    manifests = sorted(p for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
    c.check(bool(manifests), f"no manifests in {directory}")
    c.check((directory / SECRET_EXAMPLE).is_file(), f"{SECRET_EXAMPLE} is missing")
    docs: list[tuple[Path, dict]] = []
    for path in manifests:
        for doc in load_documents(path, c):
            validate_schema(path, doc, c)
            docs.append((path, doc))
    check_kustomization(directory, c)
    check_semantics(docs, c)

    where = directory.relative_to(Path.cwd()) if directory.is_relative_to(Path.cwd()) else directory
    if c.failures:
        print(f"validate: {where}: {len(c.failures)} problem(s) (Kubernetes {KUBERNETES_VERSION}, strict):", file=sys.stderr)
        for failure in c.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(
        f"validate: {where}: {len(manifests)} manifests, {len(docs)} resources valid for Kubernetes "
        f"{KUBERNETES_VERSION} (strict); {c.passed} checks passed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
