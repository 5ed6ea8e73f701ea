"""The cluster configs in cluster/ checked by the code that will consume them, without
starting a cluster: Ray's own cluster-launcher schema and checks, Ray's `ray start`
options, Ray Serve's config schema and application builder, the `quantum` CLI's parser,
and the fields the KubeRay CRDs and operator require."""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[3]
CLUSTER = ROOT / "cluster"
LAUNCHER = CLUSTER / "launcher" / "aws.yaml"
KUBERAY = CLUSTER / "kuberay"
MANIFESTS = {
    "raycluster.yaml": "RayCluster",
    "rayjob.yaml": "RayJob",
    "rayservice.yaml": "RayService",
}
PROJECT_IMAGE = "ghcr.io/your-org/quantum"
SECRET_ENV = ("WANDB_API_KEY", "QUANTUM_API_KEYS")
TORCH_PIN = "torch==2.13.0"


def _pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


# --------------------------------------------------------------------------------------
# Cluster launcher (AWS)
# --------------------------------------------------------------------------------------


def launcher_config() -> dict:
    return yaml.safe_load(LAUNCHER.read_text())


def ray_up_checks(config: dict) -> dict:
    """What `ray up` does to the file before it touches AWS: merge the provider's
    defaults, then validate against ray-schema.json plus Ray's cross-field checks
    (ray.autoscaler._private.commands._bootstrap_config)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_launcher_config_passes_rays_own_validation():
    config = launcher_config()
    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"

    # the file as written (no defaults merged) is already valid for the schema
    jsonschema.validate(config, json.loads(schema_path.read_text()))
    prepared = ray_up_checks(config)

    assert set(prepared["available_node_types"]) == {"head", "rollout", "learner_gpu"}
    assert prepared["head_node_type"] == "head"


def _typo_top_level(c: dict) -> None:
    c["max_worker"] = c.pop("max_workers")


def _string_min_workers(c: dict) -> None:
    c["available_node_types"]["rollout"]["min_workers"] = "0"


def _unknown_node_type_key(c: dict) -> None:
    c["available_node_types"]["rollout"]["instance_type"] = "c7i.4xlarge"


def _negative_custom_resource(c: dict) -> None:
    c["available_node_types"]["learner_gpu"]["resources"]["learner_gpu"] = -1


def _min_workers_over_global_max(c: dict) -> None:
    c["available_node_types"]["rollout"]["min_workers"] = c["max_workers"] + 1


def _unknown_head_type(c: dict) -> None:
    c["head_node_type"] = "ray.head.default"


@pytest.mark.parametrize(
    ("breakage", "error"),
    [
        (_typo_top_level, jsonschema.ValidationError),
        (_string_min_workers, jsonschema.ValidationError),
        (_unknown_node_type_key, jsonschema.ValidationError),
        (_negative_custom_resource, jsonschema.ValidationError),
        (_min_workers_over_global_max, ValueError),
        (_unknown_head_type, ValueError),
    ],
)
def test_launcher_validation_catches_a_broken_config(breakage, error):
    """The check above can fail: each deliberate mistake is refused by Ray itself."""
    config = launcher_config()
    breakage(config)
    with pytest.raises(error):
        ray_up_checks(config)


def _ray_start_args(commands: list[str]) -> list[list[str]]:
    """The arguments of every `ray start` in a list of shell command lines."""
    found = []
    for line in commands:
        for part in line.split(";"):
            words = shlex.split(part)
            if words[:2] == ["ray", "start"]:
                found.append(words[2:])
    return found


def test_launcher_start_commands_parse_with_ray_start_and_expose_the_dashboard():
    from ray.scripts.scripts import start

    config = launcher_config()
    (head_args,) = _ray_start_args(config["head_start_ray_commands"])
    (worker_args,) = _ray_start_args(config["worker_start_ray_commands"])

    head = start.make_context("ray start", head_args).params  # parses, does not run
    worker = start.make_context("ray start", worker_args).params
    assert head["head"] and head["dashboard_host"] == "0.0.0.0" and head["dashboard_port"] == 8265
    assert head["autoscaling_config"] == "~/ray_bootstrap_config.yaml"
    assert not worker["head"] and worker["address"] == "$RAY_HEAD_IP:6379"
    with pytest.raises(Exception, match="No such option"):
        start.make_context("ray start", [*head_args, "--dashboard-hots=0.0.0.0"])


def test_launcher_nodes_use_the_pinned_ray_image_and_the_head_does_real_work():
    config = launcher_config()
    types = config["available_node_types"]
    version = f"{ray.__version__}-py311"

    assert config["docker"]["image"] == f"rayproject/ray:{version}-cpu"
    assert types["learner_gpu"]["docker"]["worker_image"] == f"rayproject/ray:{version}-gpu"
    # the head runs drivers and the learner: no CPU: 0, real instance type
    assert types["head"]["resources"].get("CPU") != 0
    assert types["head"]["node_config"]["InstanceType"].startswith("m7i.")
    rollout, gpu = types["rollout"], types["learner_gpu"]
    assert rollout["min_workers"] == 0 < rollout["max_workers"]
    assert gpu["min_workers"] == 0 and gpu["resources"] == {"learner_gpu": 1}
    assert gpu["node_config"]["InstanceType"].startswith("g5.")


def _pip_index(commands: list[str], needle: str) -> int:
    hits = [i for i, c in enumerate(commands) if needle in c]
    assert hits, f"no command with {needle!r} in {commands}"
    return hits[0]


def test_launcher_installs_torch_then_the_project_on_every_node_type():
    prepared = ray_up_checks(launcher_config())
    project = "pip install --no-cache-dir -e ~/quantum -c ~/quantum/constraints.txt"
    cpu_torch = "--index-url https://download.pytorch.org/whl/cpu"
    gpu_commands = prepared["available_node_types"]["learner_gpu"]["worker_setup_commands"]

    # after merging, these are the exact lists the head and the CPU workers run
    for commands in (prepared["head_setup_commands"], prepared["worker_setup_commands"]):
        torch_at = _pip_index(commands, TORCH_PIN)
        assert cpu_torch in commands[torch_at]
        assert torch_at < _pip_index(commands, project)
    # the GPU node replaces them: PyPI's (CUDA) build of the same torch, then the project
    assert _pip_index(gpu_commands, TORCH_PIN) < _pip_index(gpu_commands, project)
    assert not any(cpu_torch in c for c in gpu_commands)
    # what the commands install is the synced working tree
    assert launcher_config()["file_mounts"] == {"~/quantum": "."}
    assert (ROOT / "constraints.txt").is_file() and (ROOT / "pyproject.toml").is_file()
    assert f"{TORCH_PIN}\n" in (ROOT / "constraints.txt").read_text()


def test_launcher_sets_wandb_mode_and_holds_no_key():
    config = launcher_config()
    (init,) = config["initialization_commands"]
    text = LAUNCHER.read_text()

    assert "WANDB_MODE=online" in init and "WANDB_MODE=offline" in init
    assert "--env-file ~/quantum.env" in config["docker"]["run_options"]
    assert "> ~/quantum.env" in init
    # the only WANDB_API_KEY= in the file is the printf template filled from SSM
    assert re.findall(r"WANDB_API_KEY=(\S{0,2})", text) == ["%s"]


# --------------------------------------------------------------------------------------
# KubeRay manifests
# --------------------------------------------------------------------------------------
# Required fields, from ray-project/kuberay ray-operator/apis/ray/v1/*_types.go (a field
# whose json tag has no `omitempty` and no `+optional` marker is listed as required in
# the generated CRDs under config/crd/bases/):
#   RayClusterSpec:  headGroupSpec
#   HeadGroupSpec:   template, rayStartParams
#   WorkerGroupSpec: groupName, template, minReplicas, maxReplicas, rayStartParams
# minReplicas/maxReplicas also carry CRD defaults (0 and maxInt32), and rayStartParams is
# optional from KubeRay 1.4.0 on (ray-project/ray#53943, the docs change); all are still
# required here so the manifests apply to older operators too. Every RayJobSpec and
# RayServiceSpec field is `+optional` in the CRD; the operator's checks
# (ray-operator/controllers/ray/utils/validation.go) add: rayClusterSpec or
# clusterSelector for a RayJob, ttlSecondsAfterFinished >= 0 and only with
# shutdownAfterJobFinishes, runtimeEnvYAML must parse as YAML, at least one container per
# group, no rayStartParams['labels'], names that are DNS-1035 labels. From Kubernetes
# core/v1: a PodSpec needs containers; a Container (name and, for a Pod, image), EnvVar
# and VolumeMount (name, mountPath) need their names; a SecretKeySelector needs key; a
# ContainerPort needs containerPort.
HEAD_REQUIRED = ("template", "rayStartParams")
WORKER_REQUIRED = ("groupName", "template", "minReplicas", "maxReplicas", "rayStartParams")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def manifest(name: str) -> dict:
    docs = [d for d in yaml.safe_load_all((KUBERAY / name).read_text()) if d is not None]
    assert len(docs) == 1, f"{name}: one object per file"
    return docs[0]


def cluster_spec(doc: dict) -> dict:
    key = {"RayCluster": None, "RayJob": "rayClusterSpec", "RayService": "rayClusterConfig"}
    spec = doc["spec"]
    return spec if key[doc["kind"]] is None else spec[key[doc["kind"]]]


def groups(spec: dict) -> Iterator[tuple[str, dict]]:
    yield "head", spec["headGroupSpec"]
    for i, group in enumerate(spec.get("workerGroupSpecs", [])):
        yield group.get("groupName", f"workerGroupSpecs[{i}]"), group


def container_problems(where: str, c: dict) -> list[str]:
    problems = [f"{where}: container without {f}" for f in ("name", "image") if not c.get(f)]
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if "name" not in e:
            problems.append(f"{where}: env without name")
        if ref is not None and "key" not in ref:
            problems.append(f"{where}: secretKeyRef without key")
    if any("containerPort" not in p for p in c.get("ports", [])):
        problems.append(f"{where}: port without containerPort")
    if any(not {"name", "mountPath"} <= set(m) for m in c.get("volumeMounts", [])):
        problems.append(f"{where}: volumeMount without name/mountPath")
    return problems


def group_problems(where: str, group: dict, required: tuple[str, ...]) -> list[str]:
    problems = [f"{where}.{f}" for f in required if f not in group]
    params = group.get("rayStartParams", {})
    for key, value in params.items():
        if not isinstance(value, str):
            problems.append(f"{where}.rayStartParams.{key} is not a string")
    if "labels" in params:
        problems.append(f"{where}.rayStartParams.labels")
    containers = group.get("template", {}).get("spec", {}).get("containers", [])
    if not containers:
        problems.append(f"{where}: no containers")
    for c in containers:
        problems += container_problems(where, c)
    if where != "head" and {"minReplicas", "maxReplicas"} <= set(group):
        replicas = group.get("replicas", group["minReplicas"])
        if not group["minReplicas"] <= replicas <= group["maxReplicas"]:
            problems.append(f"{where}: replicas outside [minReplicas, maxReplicas]")
    return problems


def kuberay_problems(doc: dict) -> list[str]:
    """Every missing required field or operator-rejected value (empty when valid)."""
    problems = []
    if doc.get("apiVersion") != "ray.io/v1":
        problems.append(f"apiVersion {doc.get('apiVersion')!r}")
    name = doc.get("metadata", {}).get("name", "")
    if not DNS_1035.match(name) or len(name) > 40:
        problems.append(f"metadata.name {name!r}")
    spec = cluster_spec(doc)
    if "headGroupSpec" not in spec:
        return [*problems, "headGroupSpec"]
    for where, group in groups(spec):
        required = HEAD_REQUIRED if where == "head" else WORKER_REQUIRED
        problems += group_problems(where, group, required)
    if doc.get("kind") == "RayJob":
        job = doc["spec"]
        ttl = job.get("ttlSecondsAfterFinished", 0)
        if not job.get("entrypoint"):
            problems.append("entrypoint")
        if ttl < 0 or (ttl > 0 and not job.get("shutdownAfterJobFinishes")):
            problems.append("ttlSecondsAfterFinished")
        yaml.safe_load(job.get("runtimeEnvYAML", ""))  # raises on invalid YAML
    if doc.get("kind") == "RayService" and not doc["spec"].get("serveConfigV2"):
        problems.append("serveConfigV2")
    return problems


@pytest.mark.parametrize(("name", "kind"), sorted(MANIFESTS.items()))
def test_kuberay_manifest_has_what_kuberay_requires(name, kind):
    doc = manifest(name)

    assert doc["kind"] == kind
    assert kuberay_problems(doc) == []
    spec = cluster_spec(doc)
    assert spec["rayVersion"] == ray.__version__
    for _, group in groups(spec):
        for c in group["template"]["spec"]["containers"]:
            image, tag = c["image"].rsplit(":", 1)
            assert image == PROJECT_IMAGE and tag.startswith(_pyproject()["project"]["version"])


def test_kuberay_check_can_fail():
    doc = manifest("raycluster.yaml")
    worker = doc["spec"]["workerGroupSpecs"][0]
    del worker["groupName"], doc["spec"]["headGroupSpec"]["rayStartParams"]
    worker["rayStartParams"] = {"num-cpus": 8}
    worker["template"]["spec"]["containers"][0].pop("image")
    doc["metadata"]["name"] = "Quantum_Cluster"

    problems = kuberay_problems(doc)

    assert "head.rayStartParams" in problems
    assert any("groupName" in p for p in problems)
    assert any("num-cpus is not a string" in p for p in problems)
    assert any("container without image" in p for p in problems)
    assert any("metadata.name" in p for p in problems)


def test_raycluster_head_dashboard_ports_and_worker_groups():
    spec = manifest("raycluster.yaml")["spec"]
    head = spec["headGroupSpec"]
    (container,) = head["template"]["spec"]["containers"]
    workers = {g["groupName"]: g for g in spec["workerGroupSpecs"]}

    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert {p["containerPort"] for p in container["ports"]} == {6379, 8265, 10001, 8000}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert float(container["resources"]["limits"]["cpu"]) > 0  # the head does work
    assert set(workers) == {"rollout", "learner-gpu"}
    rollout, gpu = workers["rollout"], workers["learner-gpu"]
    assert rollout["minReplicas"] <= rollout["replicas"] <= rollout["maxReplicas"]
    assert rollout["maxReplicas"] > rollout["minReplicas"] and spec["enableInTreeAutoscaling"]
    (gpu_container,) = gpu["template"]["spec"]["containers"]
    assert gpu["replicas"] == 0 and gpu_container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_ray_start_params_are_options_of_ray_start():
    """KubeRay turns each key into `ray start --KEY=VALUE` (in a shell)."""
    from ray.scripts.scripts import start

    options = {o for p in start.params for o in p.opts}
    for name in MANIFESTS:
        for group_name, group in groups(cluster_spec(manifest(name))):
            for key, value in group["rayStartParams"].items():
                assert f"--{key}" in options, f"{name} {group_name}: {key}"
                start.make_context("ray start", shlex.split(f"--{key}={value}"))
    gpu = {g["groupName"]: g for g in manifest("raycluster.yaml")["spec"]["workerGroupSpecs"]}
    (arg,) = shlex.split(f"--resources={gpu['learner-gpu']['rayStartParams']['resources']}")
    assert json.loads(arg.split("=", 1)[1]) == {"learner_gpu": 1}


def _containers(doc: dict) -> Iterator[tuple[str, dict]]:
    for group_name, group in groups(cluster_spec(doc)):
        for c in group["template"]["spec"]["containers"]:
            yield group_name, c


def literal_secrets(doc: Any) -> list[str]:
    """Env entries anywhere in ``doc`` that set a secret-looking variable to a literal."""
    found = []
    if isinstance(doc, dict):
        name = doc.get("name")
        secretish = isinstance(name, str) and (
            name in SECRET_ENV or re.search("KEY|TOKEN|SECRET|PASSWORD", name)
        )
        if secretish and ("value" in doc or "secretKeyRef" not in doc.get("valueFrom", {})):
            found.append(name)
        for v in doc.values():
            found += literal_secrets(v)
    elif isinstance(doc, list):
        for v in doc:
            found += literal_secrets(v)
    return found


def test_secrets_come_from_secret_key_refs_never_literals():
    for name in MANIFESTS:
        doc = manifest(name)
        assert literal_secrets(doc) == [], name
        text = (KUBERAY / name).read_text()
        # nor inside the embedded YAML strings (runtime env, Serve config)
        for variable in SECRET_ENV:
            assert not re.search(rf"{variable}\s*[:=]\s*\S", text), (name, variable)
        for _, c in _containers(doc):
            env = {e["name"]: e for e in c.get("env", [])}
            if "WANDB_API_KEY" in env:
                assert env["WANDB_API_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True
    leak = {"env": [{"name": "WANDB_API_KEY", "value": "0123456789abcdef"}]}
    assert literal_secrets(leak) == ["WANDB_API_KEY"]


def test_every_volume_claim_is_the_shared_runs_claim():
    pvc = yaml.safe_load((KUBERAY / "pvc.yaml").read_text())
    assert pvc["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" in pvc["spec"]["accessModes"]
    for name in MANIFESTS:
        for group_name, group in groups(cluster_spec(manifest(name))):
            pod = group["template"]["spec"]
            claims = {
                v["name"]: v["persistentVolumeClaim"]["claimName"]
                for v in pod["volumes"]
                if "persistentVolumeClaim" in v
            }
            assert claims == {"runs": pvc["metadata"]["name"]}, (name, group_name)
            for c in pod["containers"]:
                assert {"name": "runs", "mountPath": "/mnt/runs"} in c["volumeMounts"]


# --------------------------------------------------------------------------------------
# RayJob entrypoint: the project's CLI
# --------------------------------------------------------------------------------------


def parse_quantum(argv: list[str]):
    """Parse ``python -m quantum SUB ARGS`` with the real typer command (types converted,
    unknown options refused) without invoking it: no training starts."""
    import typer.main

    from quantum.cli import app

    assert argv[:3] == ["python", "-m", "quantum"], argv
    group = typer.main.get_command(app)
    command = group.commands[argv[3]]
    return command.make_context(argv[3], argv[4:])


def test_rayjob_entrypoint_is_a_valid_quantum_train_command():
    from rl.cli import load_config, parse_sets

    job = manifest("rayjob.yaml")["spec"]
    argv = shlex.split(job["entrypoint"])

    params = parse_quantum(argv).params
    known = inspect.signature(load_config).parameters
    config = load_config(**{k: v for k, v in params.items() if k in known})
    config = config.with_overrides(**parse_sets(list(params.get("set_") or [])))

    assert argv[3] == "train"
    assert config.steps == 1_000_000
    assert config.rollouts.env_runners == "auto"
    # the run folder is on the shared claim the head (where the driver runs) mounts
    head = job["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    mounts = [m["mountPath"] for m in head["volumeMounts"]]
    assert any(Path(params["out"]).is_relative_to(m) for m in mounts)
    assert job["shutdownAfterJobFinishes"] is True and job["ttlSecondsAfterFinished"] > 0
    env = yaml.safe_load(job["runtimeEnvYAML"])
    assert "working_dir" not in env and "pip" not in env  # the image has the project


def test_entrypoint_parser_refuses_unknown_flags_and_bad_values():
    with pytest.raises(Exception, match="No such option"):
        parse_quantum(["python", "-m", "quantum", "train", "--env-runner", "auto"])
    with pytest.raises(Exception, match="integer"):
        parse_quantum(["python", "-m", "quantum", "train", "--steps", "a million"])


# --------------------------------------------------------------------------------------
# RayService: Ray Serve's schema and the application builder
# --------------------------------------------------------------------------------------


def serve_config() -> dict:
    return yaml.safe_load(manifest("rayservice.yaml")["spec"]["serveConfigV2"])


def test_serve_config_validates_against_serve_deploy_schema():
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(serve_config())
    (app,) = schema.applications

    assert (app.name, app.route_prefix, app.import_path) == (
        "quantum",
        "/",
        "serving.app:build_app",
    )
    assert (schema.http_options.host, schema.http_options.port) == ("0.0.0.0", 8000)
    broken = serve_config()
    broken["applications"][0].pop("import_path")
    broken["applications"][0]["route_prefix"] = "quantum"
    with pytest.raises(ValidationError):
        ServeDeploySchema.model_validate(broken)


def test_serve_application_imports_and_builds_from_the_configured_args(monkeypatch):
    """The same import and builder call the Serve controller makes (no Ray needed)."""
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve._private.build_app import build_app

    (app,) = serve_config()["applications"]
    module, attr = app["import_path"].split(":")
    builder = import_attr(app["import_path"])
    assert builder is getattr(importlib.import_module(module), attr)

    monkeypatch.setenv("QUANTUM_API_KEYS", "test-key-not-a-secret-0123456789")
    built = build_app(
        call_user_app_builder_with_args_if_necessary(builder, app["args"]), name=app["name"]
    )
    deployments = {d.name: d for d in built.deployments}
    assert deployments["Gateway"].num_replicas == app["args"]["replicas"]
    # without the Secret's keys the application refuses to build: why the RayService's
    # secretKeyRef for QUANTUM_API_KEYS is not optional
    monkeypatch.delenv("QUANTUM_API_KEYS")
    monkeypatch.delenv("QUANTUM_API_KEYS_FILE", raising=False)
    with pytest.raises(ValueError, match="QUANTUM_API_KEYS"):
        call_user_app_builder_with_args_if_necessary(builder, app["args"])


def test_rayservice_serves_what_the_rayjob_trains_from_mounted_paths():
    (app,) = serve_config()["applications"]
    job_out = parse_quantum(shlex.split(manifest("rayjob.yaml")["spec"]["entrypoint"]))
    service = manifest("rayservice.yaml")

    assert Path(app["args"]["model_path"]) == job_out.params["out"]
    for group_name, c in _containers(service):
        mounts = [m["mountPath"] for m in c["volumeMounts"]]
        for key in ("model_path", "results_dir"):
            assert any(Path(app["args"][key]).is_relative_to(m) for m in mounts), group_name
        env = {e["name"]: e for e in c["env"]}
        assert env["QUANTUM_API_KEYS"]["valueFrom"]["secretKeyRef"].get("optional") in (None, False)
    ports = {p["containerPort"] for _, c in _containers(service) for p in c.get("ports", [])}
    assert serve_config()["http_options"]["port"] in ports


# --------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (KUBERAY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (w[0].upper(), w[1] if len(w) > 1 else "")
        for line in lines
        if line and not line.startswith("#")
        for w in [line.split(None, 1)]
    ]


def test_dockerfile_installs_torch_first_then_the_project_with_constraints():
    steps = dockerfile_instructions()
    runs = [(i, args) for i, (op, args) in enumerate(steps) if op == "RUN"]
    torch_at = [i for i, args in runs if TORCH_PIN in args]
    project = re.compile(r"pip install .*\s\.\s.*-c constraints\.txt")
    project_at = [i for i, args in runs if project.search(f"{args} ")]
    copies_constraints = [
        i
        for i, (op, args) in enumerate(steps)
        if op == "COPY" and "constraints.txt" in args.split()
    ]

    assert torch_at and project_at and copies_constraints
    assert torch_at[0] < project_at[0] and copies_constraints[0] < project_at[0]
    args = dict(a.split("=", 1) for op, a in steps if op == "ARG" and "=" in a)
    assert args["BASE_IMAGE"] == f"rayproject/ray:{ray.__version__}-py311"
    assert steps[[op for op, _ in steps].index("FROM")][1] == "${BASE_IMAGE}"


def test_dockerfile_copies_every_package_the_project_installs():
    """pyproject's package list and the Dockerfile's COPY lines must not drift apart."""
    include = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    copied = {args.split()[-1].strip("/") for op, args in dockerfile_instructions() if op == "COPY"}
    needed = {"pyproject.toml", "constraints.txt", _pyproject()["project"]["readme"]}
    sources = {
        w.strip("/")
        for op, args in dockerfile_instructions()
        if op == "COPY"
        for w in args.split()
        if not w.startswith("--")
    }

    assert packages <= copied, packages - copied
    assert needed <= sources, needed - sources


def test_the_ingress_terminates_tls_in_front_of_the_serve_service():
    """The only way in from outside: TLS with a redirect from plain HTTP, to KubeRay's
    serve Service of the RayService (named <RayService>-serve-svc) on the Serve port."""
    ingress = yaml.safe_load((KUBERAY / "ingress.yaml").read_text())
    service = manifest("rayservice.yaml")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]

    assert ingress["kind"] == "Ingress" and ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    assert ingress["spec"]["tls"][0]["secretName"]
    assert backend["name"] == f"{service['metadata']['name']}-serve-svc"
    assert backend["port"]["number"] == serve_config()["http_options"]["port"]
    assert "serveService" not in service["spec"]  # KubeRay's default: a ClusterIP Service


def test_the_served_state_lives_on_the_shared_volume():
    (app,) = serve_config()["applications"]
    mounts = [m["mountPath"] for _, c in _containers(manifest("rayservice.yaml"))
              for m in c["volumeMounts"]]
    for key in ("state_dir", "key_file", "model_root"):
        assert any(Path(app["args"][key]).is_relative_to(m) for m in mounts), key
    assert Path(app["args"]["key_file"]).parent == Path(app["args"]["state_dir"])
