#!/usr/bin/env python3
"""Structural checks for the Kubernetes manifests in deploy/k8s (no cluster needed).

    python3 deploy/k8s/check.py [DIR] [-v]

DIR defaults to the directory of this script. Exits 1 if any check fails and
always ends with the line `k8s: N passed, M failed`. -v lists passing checks too.

Checked: every file parses; every document has apiVersion/kind/metadata.name,
a known apiVersion, namespace `stream`; the Kustomization lists exactly the
manifests, namespace first; selectors match pod labels; Services,
StatefulSet serviceNames, Ingress backends, PDB and HPA targets resolve;
Service targetPorts and probe ports resolve to declared container ports;
env var names are exactly the documented ones and their addresses/URLs agree
with ports and Services; volumes, PVCs and ConfigMap refs resolve; resources,
security contexts, grace periods; NATS/Redis settings; the Dockerfile agrees
with the manifests (binaries, static dir, uid).
"""
import os
import re
import sys
from urllib.parse import urlparse

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("check.py needs PyYAML: pip install pyyaml")

NAMESPACE = "stream"
IMAGE = "ghcr.io/stream/stream:latest"
APPS = ("ingest", "edge", "control", "marker")
SHARED_ENV = {"NATS_URL", "REDIS_URL", "BUS_PREFIX", "REDIS_PREFIX",
              "MEDIA_STORE", "RUST_LOG", "LOG_FORMAT"}
APP_ENV = {
    "ingest": {"INGEST_HTTP_ADDR", "INGEST_SCRATCH_DIR", "INGEST_MAX_UPLOAD_BYTES",
               "INGEST_WORKERS", "INGEST_CORS_ORIGINS"},
    "edge": {"EDGE_HTTP_ADDR", "EDGE_STATIC_DIR", "EDGE_CORS_ORIGINS",
             "CONTROL_URL", "EDGE_INGEST_PUBLIC_URL", "EDGE_NATIVE_ADDR",
             "CONTROL_TOKEN_SECRET"},
    "control": {"CONTROL_GRPC_ADDR", "CONTROL_TOKEN_SECRET"},
    "marker": {"MARKER_HTTP_ADDR"},
}
APP_PORT = {"ingest": 8081, "edge": 8080, "control": 50051, "marker": 8082}
ADDR_VAR = {"ingest": "INGEST_HTTP_ADDR", "edge": "EDGE_HTTP_ADDR",
            "control": "CONTROL_GRPC_ADDR", "marker": "MARKER_HTTP_ADDR"}
API_VERSIONS = {
    "Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
    "PersistentVolumeClaim": "v1", "ServiceAccount": "v1",
    "Deployment": "apps/v1", "StatefulSet": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "Ingress": "networking.k8s.io/v1", "NetworkPolicy": "networking.k8s.io/v1",
}
CLUSTER_SCOPED = {"Namespace"}
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# Field names of the core/v1 Container, PodSpec and Probe (a typo in one is
# otherwise silently dropped by a lenient apply).
CONTAINER_KEYS = {"name", "image", "command", "args", "workingDir", "ports", "envFrom", "env",
                  "resources", "resizePolicy", "restartPolicy", "volumeMounts", "volumeDevices",
                  "livenessProbe", "readinessProbe", "startupProbe", "lifecycle",
                  "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy",
                  "securityContext", "stdin", "stdinOnce", "tty"}
POD_KEYS = {"volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
            "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "nodeSelector",
            "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName",
            "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "securityContext",
            "imagePullSecrets", "hostname", "subdomain", "affinity", "schedulerName", "tolerations",
            "hostAliases", "priorityClassName", "priority", "dnsConfig", "readinessGates",
            "runtimeClassName", "enableServiceLinks", "preemptionPolicy", "overhead",
            "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers",
            "schedulingGates", "resourceClaims", "resources"}
PROBE_KEYS = {"exec", "httpGet", "tcpSocket", "grpc", "initialDelaySeconds", "timeoutSeconds",
              "periodSeconds", "successThreshold", "failureThreshold",
              "terminationGracePeriodSeconds"}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Checker:
    def __init__(self, verbose=False):
        self.passed = 0
        self.failed = 0
        self.verbose = verbose

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            if self.verbose:
                print(f"  ok   {what}")
        else:
            self.failed += 1
            print(f"  FAIL {what}" + (f": {detail}" if detail else ""))
        return bool(ok)


# ---------------------------------------------------------------- helpers
def parse_quantity(q):
    """CPU or memory quantity → float (cores or bytes)."""
    s = str(q).strip()
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", s)
    if not m:
        raise ValueError(f"bad quantity {q!r}")
    num, suf = float(m.group(1)), m.group(2)
    mult = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    if suf not in mult:
        raise ValueError(f"bad quantity suffix {q!r}")
    return num * mult[suf]


def parse_nginx_size(s):
    m = re.fullmatch(r"([0-9]+)([kKmMgG]?)", str(s).strip())
    if not m:
        raise ValueError(f"bad nginx size {s!r}")
    return int(m.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2).lower()]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_spec(wl):
    return wl.get("spec", {}).get("template", {}).get("spec", {}) or {}


def pod_labels(wl):
    return wl.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}) or {}


def first_container(wl):
    ctrs = pod_spec(wl).get("containers") or []
    return ctrs[0] if ctrs and isinstance(ctrs[0], dict) else {}


def containers(wl):
    ps = pod_spec(wl)
    return (ps.get("initContainers") or []) + (ps.get("containers") or [])


def resolve_port(port, ctr_ports):
    """A named or numeric port → containerPort number, or None."""
    for p in ctr_ports:
        if isinstance(port, str) and not port.isdigit():
            if p.get("name") == port:
                return p.get("containerPort")
        elif p.get("containerPort") == int(port):
            return int(port)
    return None


def addr_port(addr):
    m = re.fullmatch(r"[^:]*:(\d+)", str(addr))
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- loading
def load(root, c):
    docs = []  # (file, doc)
    files = sorted(f for f in os.listdir(root)
                   if f.endswith((".yaml", ".yml", ".json")) and os.path.isfile(os.path.join(root, f)))
    kfiles = [f for f in KUSTOMIZATION_NAMES if os.path.isfile(os.path.join(root, f))]
    c.check(len(kfiles) == 1, "exactly one kustomization file", f"found {kfiles}")
    kust = None
    for f in files + [k for k in kfiles if k not in files]:
        path = os.path.join(root, f)
        try:
            with open(path) as fh:
                loaded = [d for d in yaml.safe_load_all(fh) if d is not None]
        except yaml.YAMLError as e:
            c.check(False, f"{f} parses as YAML", str(e).splitlines()[0])
            continue
        c.check(True, f"{f} parses as YAML")
        if f in KUSTOMIZATION_NAMES:
            kust = (f, loaded[0] if loaded else {})
            continue
        c.check(loaded, f"{f} has at least one document")
        for d in loaded:
            docs.append((f, d))
    return files, kust, docs


# ---------------------------------------------------------------- checks
def check_documents(docs, c):
    seen = {}
    for f, d in docs:
        if not isinstance(d, dict):
            c.check(False, f"{f}: document is a mapping", repr(d)[:60])
            continue
        kind, api = d.get("kind"), d.get("apiVersion")
        md = d.get("metadata") or {}
        name = md.get("name")
        where = f"{f}: {kind}/{name}"
        c.check(api and kind and name, f"{where} has apiVersion, kind, metadata.name")
        if kind in API_VERSIONS:
            c.check(api == API_VERSIONS[kind], f"{where} apiVersion", f"{api} != {API_VERSIONS[kind]}")
        else:
            c.check(False, f"{where} is a known kind", f"unknown kind {kind!r}")
        c.check(isinstance(name, str) and DNS1123.match(name or "") and len(name) <= 63,
                f"{where} name is DNS-1123")
        if kind in CLUSTER_SCOPED:
            c.check("namespace" not in md, f"{where} is cluster-scoped (no namespace)")
        else:
            c.check(md.get("namespace") == NAMESPACE, f"{where} namespace is {NAMESPACE}",
                    f"got {md.get('namespace')!r}")
        key = (kind, name)
        c.check(key not in seen, f"{where} is unique", f"also in {seen.get(key)}")
        seen[key] = f


def check_kustomization(root, files, kust, docs, c):
    if not kust:
        return
    kname, k = kust
    c.check(k.get("kind") == "Kustomization", f"{kname} is a Kustomization")
    res = k.get("resources") or []
    c.check(set(res) == set(files), f"{kname} lists every manifest and nothing else",
            f"missing {sorted(set(files) - set(res))}, extra {sorted(set(res) - set(files))}")
    for r in res:
        c.check(os.path.isfile(os.path.join(root, r)), f"{kname} resource {r} exists")
    c.check(kname not in files, "kustomization file is invisible to `kubectl apply -f DIR`",
            f"{kname} has a manifest extension; apply -f would fail on it")
    ns_files = [f for f, d in docs if isinstance(d, dict) and d.get("kind") == "Namespace"]
    c.check(ns_files and files and files[0] == ns_files[0],
            "Namespace is in the lexically first file (apply -f order)", f"first file {files[:1]}")
    c.check(res and ns_files and res[0] == ns_files[0], f"Namespace is first in {kname}")
    # Every non-Namespace object comes after the namespace in file order.
    for f, d in docs:
        if isinstance(d, dict) and d.get("kind") == "Namespace":
            c.check(d["metadata"]["name"] == NAMESPACE, f"namespace is named {NAMESPACE}")


def index(docs):
    by_kind = {}
    for _, d in docs:
        if isinstance(d, dict) and d.get("kind") and (d.get("metadata") or {}).get("name"):
            by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    return by_kind


def check_workloads(ix, c):
    workloads = {**ix.get("Deployment", {}), **ix.get("StatefulSet", {})}
    cms = ix.get("ConfigMap", {})
    pvcs = ix.get("PersistentVolumeClaim", {})
    for name, wl in workloads.items():
        w = f"{wl['kind']}/{name}"
        sel = (wl.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
        c.check(selects(sel, pod_labels(wl)), f"{w} selector matches its pod labels",
                f"{sel} vs {pod_labels(wl)}")
        ps = pod_spec(wl)
        c.check(ps.get("containers"), f"{w} has at least one container")
        c.check(set(ps) <= POD_KEYS, f"{w} pod spec has only known fields", f"{sorted(set(ps) - POD_KEYS)}")
        vols = {v["name"]: v for v in ps.get("volumes") or []}
        vcts = {t["metadata"]["name"] for t in wl.get("spec", {}).get("volumeClaimTemplates") or []}
        for v in vols.values():
            if "persistentVolumeClaim" in v:
                cn = v["persistentVolumeClaim"].get("claimName")
                c.check(cn in pvcs, f"{w} volume {v['name']} claims existing PVC {cn}")
            if "configMap" in v:
                c.check(v["configMap"].get("name") in cms, f"{w} volume {v['name']} ConfigMap exists")
        psc = ps.get("securityContext") or {}
        c.check((psc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost"),
                f"{w} seccompProfile RuntimeDefault")
        c.check(ps.get("automountServiceAccountToken") is False, f"{w} does not mount a SA token")
        for ctr in containers(wl):
            cw = f"{w}/{ctr.get('name')}"
            c.check(set(ctr) <= CONTAINER_KEYS, f"{cw} has only known container fields",
                    f"{sorted(set(ctr) - CONTAINER_KEYS)}")
            ports = ctr.get("ports") or []
            names = [p.get("name") for p in ports if p.get("name")]
            c.check(len(names) == len(set(names)) and all(len(n) <= 15 for n in names),
                    f"{cw} port names unique and <= 15 chars")
            c.check(ctr.get("image"), f"{cw} has an image")
            # volume mounts
            for vm in ctr.get("volumeMounts") or []:
                c.check(vm.get("name") in vols or vm.get("name") in vcts,
                        f"{cw} mount {vm.get('name')} refers to a declared volume")
            # probes
            for pk in ("livenessProbe", "readinessProbe"):
                c.check(pk in ctr, f"{cw} has a {pk}")
            for pk in ("startupProbe", "livenessProbe", "readinessProbe"):
                pr = ctr.get(pk)
                if not pr:
                    continue
                c.check(set(pr) <= PROBE_KEYS, f"{cw} {pk} has only known fields", f"{sorted(set(pr) - PROBE_KEYS)}")
                if "httpGet" in pr:
                    hp = pr["httpGet"]
                    c.check(resolve_port(hp.get("port"), ports) is not None,
                            f"{cw} {pk} httpGet port {hp.get('port')} is declared")
                    c.check(str(hp.get("path", "")).startswith("/"), f"{cw} {pk} path is absolute")
                elif "tcpSocket" in pr:
                    c.check(resolve_port(pr["tcpSocket"].get("port"), ports) is not None,
                            f"{cw} {pk} tcpSocket port is declared")
                elif "grpc" in pr:
                    gp = pr["grpc"].get("port")
                    c.check(isinstance(gp, int), f"{cw} {pk} grpc port is numeric", f"got {gp!r}")
                    c.check(isinstance(gp, int) and resolve_port(gp, ports) is not None,
                            f"{cw} {pk} grpc port {gp} is declared")
                elif "exec" in pr:
                    c.check(pr["exec"].get("command"), f"{cw} {pk} exec has a command")
                else:
                    c.check(False, f"{cw} {pk} has a handler")
            # resources
            res = ctr.get("resources") or {}
            req, lim = res.get("requests") or {}, res.get("limits") or {}
            for r in ("cpu", "memory"):
                ok = r in req and r in lim
                c.check(ok, f"{cw} has {r} request and limit")
                if ok:
                    try:
                        c.check(parse_quantity(req[r]) <= parse_quantity(lim[r]),
                                f"{cw} {r} request <= limit")
                    except ValueError as e:
                        c.check(False, f"{cw} {r} quantities parse", str(e))
            # security
            sc = ctr.get("securityContext") or {}
            c.check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, f"{cw} runAsNonRoot")
            uid = sc.get("runAsUser", psc.get("runAsUser"))
            c.check(isinstance(uid, int) and uid != 0, f"{cw} numeric non-zero runAsUser")
            c.check(sc.get("allowPrivilegeEscalation") is False, f"{cw} allowPrivilegeEscalation false")
            c.check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{cw} drops ALL capabilities")
            c.check(sc.get("readOnlyRootFilesystem") is True, f"{cw} readOnlyRootFilesystem")
            # env refs
            for ef in ctr.get("envFrom") or []:
                if "configMapRef" in ef:
                    c.check(ef["configMapRef"].get("name") in cms,
                            f"{cw} envFrom ConfigMap {ef['configMapRef'].get('name')} exists")
            for e in ctr.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
                if ref:
                    cm = cms.get(ref.get("name"))
                    c.check(cm is not None and ref.get("key") in (cm.get("data") or {}),
                            f"{cw} env {e['name']} → ConfigMap {ref.get('name')}/{ref.get('key')} exists")
    return workloads


def env_of(ctr, cms):
    """Effective env of a container: name → value (None if not a literal)."""
    env = {}
    for ef in ctr.get("envFrom") or []:
        cm = cms.get((ef.get("configMapRef") or {}).get("name"))
        if cm:
            env.update({k: str(v) for k, v in (cm.get("data") or {}).items()})
    for e in ctr.get("env") or []:
        if "value" in e:
            env[e["name"]] = str(e["value"])
        else:
            ref = (e.get("valueFrom") or {}).get("configMapKeyRef") or {}
            cm = cms.get(ref.get("name")) or {}
            env[e["name"]] = (cm.get("data") or {}).get(ref.get("key"))
    return env


def check_services(ix, workloads, c):
    svcs = ix.get("Service", {})
    for name, svc in svcs.items():
        sel = svc.get("spec", {}).get("selector") or {}
        targets = [wl for wl in workloads.values() if selects(sel, pod_labels(wl))]
        c.check(targets, f"Service/{name} selects existing pods", f"selector {sel}")
        for p in svc.get("spec", {}).get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            for wl in targets:
                ports = [q for ctr in containers(wl) for q in ctr.get("ports") or []]
                c.check(resolve_port(tp, ports) is not None,
                        f"Service/{name} port {p.get('port')} targetPort {tp} is a port of {wl['kind']}/{wl['metadata']['name']}")
    for name, sts in ix.get("StatefulSet", {}).items():
        sn = sts.get("spec", {}).get("serviceName")
        hs = svcs.get(sn)
        c.check(hs is not None and hs["spec"].get("clusterIP") == "None"
                and selects(hs["spec"].get("selector") or {}, pod_labels(sts)),
                f"StatefulSet/{name} serviceName {sn} is a headless Service selecting it")
    return svcs


def svc_port_of(svcs, host, port):
    svc = svcs.get(host)
    return svc is not None and any(p.get("port") == port for p in svc["spec"].get("ports") or [])


def check_apps(ix, svcs, c):
    deps, cms = ix.get("Deployment", {}), ix.get("ConfigMap", {})
    shared = cms.get("stream-config")
    c.check(shared is not None, "shared ConfigMap stream-config exists")
    if shared:
        c.check(SHARED_ENV <= set((shared.get("data") or {}).keys()),
                "stream-config holds every shared setting",
                f"missing {sorted(SHARED_ENV - set((shared.get('data') or {}).keys()))}")
    for app in APPS:
        d = deps.get(app)
        if not c.check(d is not None, f"Deployment/{app} exists"):
            continue
        ps = pod_spec(d)
        ctrs = ps.get("containers") or []
        if not c.check(len(ctrs) == 1, f"Deployment/{app} has one container"):
            continue
        ctr = ctrs[0]
        w = f"Deployment/{app}"
        c.check(ctr.get("image") == IMAGE, f"{w} image is {IMAGE}", ctr.get("image"))
        cmd = ctr.get("command") or []
        c.check(cmd and os.path.basename(cmd[0]) == app, f"{w} command runs the {app} binary", f"{cmd}")
        c.check(ps.get("terminationGracePeriodSeconds") == 30, f"{w} terminationGracePeriodSeconds 30")
        pre = ((ctr.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command") or []
        if pre[:1] == ["sleep"]:
            c.check(len(pre) == 2 and str(pre[1]).isdigit() and int(pre[1]) + 20 < 30, f"{w} preStop sleep + 20 s drain fits the grace period")
        # env names: exactly the documented ones
        names = [e["name"] for e in ctr.get("env") or []]
        c.check(len(names) == len(set(names)), f"{w} has no duplicate env entries")
        env = env_of(ctr, cms)
        want = SHARED_ENV | APP_ENV[app]
        c.check(set(env) == want, f"{w} env names are exactly the documented ones",
                f"missing {sorted(want - set(env))}, unexpected {sorted(set(env) - want)}")
        # listen address ↔ container port
        ports = ctr.get("ports") or []
        lp = addr_port(env.get(ADDR_VAR[app]))
        c.check(lp == APP_PORT[app], f"{w} {ADDR_VAR[app]} listens on {APP_PORT[app]}", f"got {lp}")
        c.check(resolve_port(APP_PORT[app], ports) is not None, f"{w} declares containerPort {APP_PORT[app]}")
        # probes: HTTP services use /healthz + /readyz, control uses grpc
        live, ready = ctr.get("livenessProbe") or {}, ctr.get("readinessProbe") or {}
        if app == "control":
            c.check("grpc" in live and "grpc" in ready, f"{w} uses grpc probes")
        else:
            c.check((live.get("httpGet") or {}).get("path") == "/healthz", f"{w} liveness is GET /healthz")
            c.check((ready.get("httpGet") or {}).get("path") == "/readyz", f"{w} readiness is GET /readyz")
        # URLs point at Services that exist, on a port they expose
        for var in ("NATS_URL", "REDIS_URL", "CONTROL_URL"):
            if var in env and env[var]:
                u = urlparse(env[var])
                c.check(svc_port_of(svcs, u.hostname, u.port),
                        f"{w} {var} ({env[var]}) is a Service and port")
        # media store
        mounts = {m["name"]: m for m in ctr.get("volumeMounts") or []}
        vols = {v["name"]: v for v in ps.get("volumes") or []}
        ms = env.get("MEDIA_STORE") or ""
        if app in ("ingest", "edge") and "://" not in ms:
            mm = [m for m in mounts.values() if m.get("mountPath") == ms]
            ok = c.check(mm and "persistentVolumeClaim" in vols.get(mm[0]["name"], {}),
                         f"{w} mounts a PVC at MEDIA_STORE {ms}")
            if ok:
                ro = bool(mm[0].get("readOnly"))
                c.check(ro == (app == "edge"), f"{w} media mount is {'read-only' if app == 'edge' else 'read-write'}")
        if app == "ingest":
            sd = env.get("INGEST_SCRATCH_DIR")
            mm = [m for m in mounts.values() if m.get("mountPath") == sd]
            c.check(mm and "emptyDir" in vols.get(mm[0]["name"], {}),
                    f"{w} INGEST_SCRATCH_DIR {sd} is an emptyDir")
            try:
                c.check(int(env.get("INGEST_MAX_UPLOAD_BYTES")) > 0, f"{w} INGEST_MAX_UPLOAD_BYTES is a number")
            except (TypeError, ValueError):
                c.check(False, f"{w} INGEST_MAX_UPLOAD_BYTES is a number")
            res = ctr.get("resources") or {}
            want_res = {"requests": {"cpu": 2, "memory": 2 * 2**30}, "limits": {"cpu": 4, "memory": 4 * 2**30}}
            for k, vals in want_res.items():
                for r, v in vals.items():
                    try:
                        got = parse_quantity((res.get(k) or {}).get(r, "0"))
                    except ValueError:
                        got = None
                    c.check(got == v, f"{w} {k}.{r} is {v}", f"got {(res.get(k) or {}).get(r)}")
    # the PVC behind the media store is RWX
    media = ix.get("PersistentVolumeClaim", {}).get("media")
    if media:
        c.check("ReadWriteMany" in (media["spec"].get("accessModes") or []), "PVC media is ReadWriteMany")


def check_edge_scaling(ix, c):
    deps = ix.get("Deployment", {})
    edge = deps.get("edge")
    for name, pdb in ix.get("PodDisruptionBudget", {}).items():
        sel = (pdb["spec"].get("selector") or {}).get("matchLabels") or {}
        c.check(any(selects(sel, pod_labels(d)) for d in deps.values()),
                f"PodDisruptionBudget/{name} selects existing pods")
    c.check(edge and any(selects((p["spec"].get("selector") or {}).get("matchLabels") or {}, pod_labels(edge))
                         for p in ix.get("PodDisruptionBudget", {}).values()),
            "edge is covered by a PodDisruptionBudget")
    hpas = ix.get("HorizontalPodAutoscaler", {})
    for name, h in hpas.items():
        ref = h["spec"].get("scaleTargetRef") or {}
        tgt = ix.get(ref.get("kind"), {}).get(ref.get("name"))
        c.check(tgt is not None, f"HorizontalPodAutoscaler/{name} target {ref.get('kind')}/{ref.get('name')} exists")
        c.check(1 <= h["spec"].get("minReplicas", 1) <= h["spec"].get("maxReplicas", 0),
                f"HorizontalPodAutoscaler/{name} 1 <= minReplicas <= maxReplicas")
        if tgt:
            c.check("replicas" not in tgt["spec"],
                    f"{ref.get('kind')}/{ref.get('name')} leaves replicas to the HPA")
            cpu_metric = any((m.get("resource") or {}).get("name") == "cpu" for m in h["spec"].get("metrics") or [])
            if cpu_metric:
                c.check(all(((ct.get("resources") or {}).get("requests") or {}).get("cpu")
                            for ct in pod_spec(tgt).get("containers") or []),
                        f"HorizontalPodAutoscaler/{name}: target containers request CPU")
    c.check(any((h["spec"].get("scaleTargetRef") or {}).get("name") == "edge" for h in hpas.values()),
            "edge has a HorizontalPodAutoscaler")


def check_ingress(ix, svcs, c):
    ings = ix.get("Ingress", {})
    c.check(ings, "an Ingress exists")
    routes = {}
    ingest = ix.get("Deployment", {}).get("ingest")
    max_upload = None
    if ingest:
        env = env_of(first_container(ingest), ix.get("ConfigMap", {}))
        try:
            max_upload = int(env.get("INGEST_MAX_UPLOAD_BYTES"))
        except (TypeError, ValueError):
            pass
    for name, ing in ings.items():
        c.check(ing["spec"].get("ingressClassName") == "nginx", f"Ingress/{name} class nginx")
        for rule in ing["spec"].get("rules") or []:
            for p in (rule.get("http") or {}).get("paths") or []:
                be = (p.get("backend") or {}).get("service") or {}
                svc = svcs.get(be.get("name"))
                bp = be.get("port") or {}
                ok = svc is not None and any(
                    (bp.get("name") and sp.get("name") == bp.get("name")) or
                    (bp.get("number") and sp.get("port") == bp.get("number"))
                    for sp in svc["spec"].get("ports") or [])
                c.check(ok, f"Ingress/{name} {p.get('path')} → Service {be.get('name')} port {bp} exists")
                c.check(p.get("pathType") in ("Prefix", "Exact", "ImplementationSpecific"),
                        f"Ingress/{name} {p.get('path')} has a pathType")
                routes[p.get("path")] = (be.get("name"), ing)
    c.check(routes.get("/", (None,))[0] == "edge", "Ingress routes / to edge")
    up = routes.get("/v1/videos")
    if c.check(up and up[0] == "ingest", "Ingress routes /v1/videos to ingest"):
        ann = (up[1]["metadata"].get("annotations") or {})
        size = ann.get("nginx.ingress.kubernetes.io/proxy-body-size")
        try:
            ok = size is not None and max_upload is not None and parse_nginx_size(size) >= max_upload
        except ValueError:
            ok = False
        c.check(ok, "upload Ingress proxy-body-size >= INGEST_MAX_UPLOAD_BYTES", f"{size} vs {max_upload}")


def check_infra(ix, c):
    sts = ix.get("StatefulSet", {})
    nats, redis = sts.get("nats"), sts.get("redis")
    if c.check(nats is not None, "StatefulSet/nats exists"):
        ctr = first_container(nats)
        args = ctr.get("args") or []
        c.check(ctr.get("image") == "nats:2.10-alpine", "nats image nats:2.10-alpine")
        c.check("-js" in args, "nats runs with JetStream (-js)")
        sd = args[args.index("-sd") + 1] if "-sd" in args[:-1] else None
        c.check("-m" in args[:-1] and args[args.index("-m") + 1] == "8222", "nats monitoring on 8222 (-m 8222)")
        vcts = {t["metadata"]["name"] for t in nats["spec"].get("volumeClaimTemplates") or []}
        c.check(sd and any(m.get("mountPath") == sd and m["name"] in vcts for m in ctr.get("volumeMounts") or []),
                f"nats store dir -sd {sd} is a volumeClaimTemplate mount")
        lp = (ctr.get("livenessProbe") or {}).get("httpGet") or {}
        c.check(str(lp.get("path", "")).startswith("/healthz")
                and resolve_port(lp.get("port"), ctr.get("ports") or []) == 8222,
                "nats liveness is /healthz on 8222")
    if c.check(redis is not None, "StatefulSet/redis exists"):
        ctr = first_container(redis)
        args = [str(a) for a in ctr.get("args") or []]
        c.check(ctr.get("image") == "redis:7-alpine", "redis image redis:7-alpine")

        def opt(flag):
            return args[args.index(flag) + 1] if flag in args[:-1] else None
        c.check(opt("--appendonly") == "yes", "redis AOF on (--appendonly yes)")
        c.check(opt("--appendfsync") == "everysec", "redis --appendfsync everysec")
        vcts = {t["metadata"]["name"] for t in redis["spec"].get("volumeClaimTemplates") or []}
        d = opt("--dir") or "/data"
        c.check(any(m.get("mountPath") == d and m["name"] in vcts for m in ctr.get("volumeMounts") or []),
                f"redis data dir {d} is a volumeClaimTemplate mount")


def check_dockerfile(root, ix, c):
    path = os.path.join(root, "..", "Dockerfile")
    if not c.check(os.path.isfile(path), "deploy/Dockerfile exists"):
        return
    text = open(path).read()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    c.check(stages[:1] == ["rust:1-bookworm"] and stages[-1:] == ["debian:bookworm-slim"],
            "Dockerfile: rust:1-bookworm builder, debian:bookworm-slim runtime", f"{stages}")
    c.check("cargo build --release --bins" in text, "Dockerfile builds all binaries")
    for b in APPS:
        c.check(re.search(rf"COPY --from=\S+ [^\n]*/{b}\b[^\n]*/usr/local/bin/", text),
                f"Dockerfile installs {b} in /usr/local/bin")
    for lib in ("libavcodec59", "libavformat59", "libavutil57", "libswscale6",
                "libswresample4", "libavfilter8", "libavdevice59", "ca-certificates"):
        c.check(re.search(rf"\b{lib}\b", text.split("FROM debian:bookworm-slim")[-1]),
                f"Dockerfile runtime installs {lib}")
    edge = ix.get("Deployment", {}).get("edge")
    if edge:
        static = env_of(first_container(edge), ix.get("ConfigMap", {})).get("EDGE_STATIC_DIR")
        c.check(re.search(rf"COPY --from=\S+ \S*frontend/dist/? {re.escape(static or '?')}/?\s", text),
                f"Dockerfile copies frontend/dist to EDGE_STATIC_DIR {static}")
    m = re.search(r"^USER\s+(\d+)", text, re.M)
    uid = int(m.group(1)) if m else None
    c.check(uid not in (None, 0), "Dockerfile runs as a numeric non-root USER")
    for app in APPS:
        d = ix.get("Deployment", {}).get(app)
        if d:
            c.check((pod_spec(d).get("securityContext") or {}).get("runAsUser") == uid,
                    f"Deployment/{app} runAsUser matches the image USER {uid}")


def check_render(root, docs, c):
    """If kubectl is installed, `kubectl kustomize` must render every object (offline)."""
    import shutil
    import subprocess
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print("  skip kubectl kustomize (kubectl not installed)")
        return
    r = subprocess.run([kubectl, "kustomize", root], capture_output=True, text=True)
    if not c.check(r.returncode == 0, "kubectl kustomize renders", r.stderr.strip()[:200]):
        return
    rendered = {(d.get("kind"), d["metadata"].get("name")) for d in yaml.safe_load_all(r.stdout) if d}
    mine = {(d.get("kind"), (d.get("metadata") or {}).get("name")) for _, d in docs if isinstance(d, dict)}
    c.check(rendered == mine, "kubectl kustomize renders exactly the manifests' objects",
            f"missing {sorted(mine - rendered, key=str)}, extra {sorted(rendered - mine, key=str)}")


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    root = os.path.abspath(args[0] if args else os.path.dirname(os.path.abspath(__file__)))
    c = Checker(verbose)
    try:
        files, kust, docs = load(root, c)
        check_documents(docs, c)
        check_kustomization(root, files, kust, docs, c)
        ix = index(docs)
        workloads = check_workloads(ix, c)
        svcs = check_services(ix, workloads, c)
        check_apps(ix, svcs, c)
        check_edge_scaling(ix, c)
        check_ingress(ix, svcs, c)
        check_infra(ix, c)
        check_dockerfile(root, ix, c)
        check_render(root, docs, c)
    except Exception as e:  # a manifest too malformed for the checks themselves
        import traceback
        traceback.print_exc()
        c.check(False, "manifests are well-formed enough to check", f"{type(e).__name__}: {e}")
    print(f"k8s: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
