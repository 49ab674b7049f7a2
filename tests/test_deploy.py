"""Static checks of the deployment files (deploy/, .dockerignore, docs/operations.md).

No Docker here: these check what can fail without building, i.e. that the Dockerfile keeps its
promises (locked dependencies, non-root, /livez), that the systemd unit parses and is hardened
(and passes ``systemd-analyze verify`` where systemd-analyze exists), that fhirtis is reachable
only through the proxy in the compose file, and that every FHIRTIS_* name the files and the guide
tell operators to set is a real setting.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values
from pydantic import BaseModel

from fhirtis.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
UNIT = DEPLOY / "fhirtis.service"
ENV_EXAMPLE = DEPLOY / "fhirtis.env.example"
COMPOSE = DEPLOY / "compose.yaml"
CADDYFILE = DEPLOY / "Caddyfile"
GUIDE = ROOT / "docs" / "operations.md"

# Settings issue 12 introduces. Remove each name here when its field lands in fhirtis.settings:
# test_pending_names_are_not_settings_yet fails to remind you.
PENDING: set[str] = set()  # names documented before their setting lands
# Environment variables fhirtis reads outside the Settings model.
NOT_SETTINGS = {"FHIRTIS_SETTINGS_FILE", "FHIRTIS_APP_CLIENT_ID", "FHIRTIS_VALIDATE"}

NAME = re.compile(r"\bFHIRTIS_[A-Z0-9_]*[A-Z0-9]\b")


# --- Dockerfile --------------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, continuations joined."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), " ".join(rest.split())))
    return result


def _stages(text: str) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions(text):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _args(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for word, args in stage if word == name]


def test_dockerfile_parser_sees_through_comments_and_continuations() -> None:
    text = "FROM a AS b\n# USER root\nRUN x \\\n    --flag\nUSER 10\n"
    assert _stages(text) == [[("FROM", "a AS b"), ("RUN", "x --flag"), ("USER", "10")]]


def test_dockerfile_is_multi_stage_and_installs_the_locked_dependencies() -> None:
    text = DOCKERFILE.read_text()
    stages = _stages(text)
    assert len(stages) >= 2
    syncs = [args for stage in stages for args in _args(stage, "RUN") if "uv sync" in args]
    assert syncs, "no uv sync"
    for args in syncs:
        assert "--frozen" in args and "--no-dev" in args, args
        assert re.search(r"--extra \"?\$\{APP_EXTRA\}\"?", args), args
    assert re.search(r"^ARG APP_EXTRA=serve$", text, re.MULTILINE)
    builder = next(stage for stage in stages if stage[0][1].endswith("AS builder"))
    assert any("uv.lock" in args.split() for args in _args(builder, "COPY"))


def test_dockerfile_runtime_stage_is_slim_non_root_and_checks_livez() -> None:
    runtime = _stages(DOCKERFILE.read_text())[-1]
    assert runtime[0][1].startswith("${PYTHON_IMAGE}")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", DOCKERFILE.read_text(), re.MULTILINE)
    users = _args(runtime, "USER")
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric UID (so runAsNonRoot can verify it)"
    # Only the virtual environment comes from the builder; no source tree, no secrets.
    copies = _args(runtime, "COPY")
    assert copies and all(c.startswith("--from=builder /opt/fhirtis/venv") for c in copies)
    assert _args(runtime, "EXPOSE") == ["8080"]
    (health,) = _args(runtime, "HEALTHCHECK")
    assert "/livez" in health and "CMD" in health
    (entry,) = _args(runtime, "ENTRYPOINT")
    assert json.loads(entry) == ["fhirtis", "serve", "--host", "0.0.0.0", "--port", "8080"]


def test_dockerfile_bakes_in_no_secret() -> None:
    for word, args in _instructions(DOCKERFILE.read_text()):
        if word in {"ENV", "ARG", "LABEL"}:
            assert not re.search(r"(KEY|TOKEN|SECRET|PASSWORD|PEM)\w*=", args, re.I), args
        if word in {"COPY", "ADD"}:
            assert not re.search(r"\.(pem|key|env)\b|secrets", args), args


def test_dockerignore_admits_only_the_package_sources() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert admitted == {"pyproject.toml", "uv.lock", "README.md", "LICENSE", "fhirtis", "profiles"}
    # Everything the Dockerfile copies from the context is admitted.
    runtime_context = {
        path.rstrip("/").removeprefix("./")
        for word, args in _instructions(DOCKERFILE.read_text())
        if word == "COPY" and not args.startswith("--from")
        for path in args.split()[:-1]
    }
    assert runtime_context <= admitted, runtime_context - admitted


# --- systemd -----------------------------------------------------------------------------------


def _unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's unit syntax: sections of keys that may repeat (configparser refuses that)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert current is not None and sep, f"not key=value inside a section: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_unit_is_hardened_and_serves_on_loopback() -> None:
    unit = _unit(UNIT.read_text())
    assert set(unit) == {"Unit", "Service", "Install"}
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["User"] == "fhirtis" and service["Group"] == "fhirtis"
    assert service["EnvironmentFile"] == "/etc/fhirtis/fhirtis.env"
    assert service["ExecStart"].endswith("fhirtis serve --host 127.0.0.1 --port 8080")
    assert service["Restart"] == "on-failure"
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert (
        service["ReadWritePaths"] == "/var/lib/fhirtis" == "/var/lib/" + service["StateDirectory"]
    )
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert re.fullmatch(r"\d+[KMG]", service["MemoryMax"])
    # The private key reaches the service as a credential file, never as a variable's value.
    environment = unit["Service"]["Environment"]
    assert "FHIRTIS_FHIR__PRIVATE_KEY_PATH=%d/fhir-private-key" in environment
    assert service["LoadCredential"].startswith("fhir-private-key:/etc/fhirtis/")
    assert not any("PRIVATE_KEY_PEM" in e or "BEARER_TOKEN" in e for e in environment)


def test_unit_parser_refuses_a_key_outside_a_section() -> None:
    with pytest.raises(AssertionError):
        _unit("User=root\n[Service]\n")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify wants ExecStart to exist: point it at this checkout's fhirtis.
    fhirtis = Path(sys.executable).parent / "fhirtis"
    assert fhirtis.exists()
    copy = tmp_path / "fhirtis.service"
    copy.write_text(UNIT.read_text().replace("/opt/fhirtis/venv/bin/fhirtis", str(fhirtis)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    # verify exits 0 on unknown keys and only warns: any output is a finding.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


# --- compose -----------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_publishes_only_the_proxy() -> None:
    services = _compose()["services"]
    assert set(services) == {"proxy", "fhirtis", "hapi"}
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}
    assert all("network_mode" not in s for s in services.values())
    networks = _compose()["networks"]
    assert networks["backend"] == {"internal": True}
    assert "backend" in services["fhirtis"]["networks"]
    assert "backend" in services["proxy"]["networks"]
    assert services["hapi"]["networks"] == ["backend"]
    # The proxy forwards to fhirtis's internal address and hides /metrics.
    caddy = CADDYFILE.read_text()
    assert "reverse_proxy fhirtis:8080" in caddy
    assert re.search(r"@internal path /metrics\b.*\n\s*respond @internal 404", caddy)


def test_compose_pins_images_and_checks_health() -> None:
    services = _compose()["services"]
    assert services["hapi"]["image"] == "hapiproject/hapi:v8.2.0-1"
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)
    for name in ("proxy", "fhirtis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert any("/livez" in part for part in services["fhirtis"]["healthcheck"]["test"])
    assert services["proxy"]["depends_on"]["fhirtis"]["condition"] == "service_healthy"
    assert services["fhirtis"]["user"] == "10001:10001"
    assert services["fhirtis"]["read_only"] is True


def test_compose_private_key_is_a_secret_file() -> None:
    compose = _compose()
    fhirtis = compose["services"]["fhirtis"]
    assert "fhir_private_key" in fhirtis["secrets"]
    assert compose["secrets"]["fhir_private_key"] == {"file": "./secrets/fhir_private_key.pem"}
    env = fhirtis["environment"]
    assert env["FHIRTIS_FHIR__PRIVATE_KEY_PATH"] == "/run/secrets/fhir_private_key"
    assert not {"FHIRTIS_FHIR__PRIVATE_KEY_PEM", "FHIRTIS_FHIR__BEARER_TOKEN"} & set(env)
    # Secret files and the edited settings are never committed.
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/deploy/secrets/" in ignored and "/deploy/fhirtis.env" in ignored


# --- settings names ----------------------------------------------------------------------------


def _model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``Model``, ``Model | None``, ``Optional[Model]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in {typing.Union, types.UnionType}:
        for arg in typing.get_args(annotation):
            found = _model(arg)
            if found is not None:
                return found
    return None


def _is_mapping(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict


def is_setting(name: str) -> bool:
    """Whether ``FHIRTIS_A__B`` names a field of Settings (nested by ``__``)."""
    parts = name.removeprefix("FHIRTIS_").lower().split("__")
    model: type[BaseModel] = Settings
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i == len(parts) - 1:
            return True
        if _is_mapping(field.annotation):
            return len(parts) == i + 2  # one key of a dict setting, e.g. default_uln
        nested = _model(field.annotation)
        if nested is None:
            return False
        model = nested
    return False


def _names(text: str) -> set[str]:
    return set(NAME.findall(text))


def _documented() -> dict[str, set[str]]:
    compose = _compose()
    return {
        "deploy/fhirtis.env.example": _names(ENV_EXAMPLE.read_text()),
        "docs/operations.md": _names(GUIDE.read_text()),
        "deploy/fhirtis.service": _names(UNIT.read_text()),
        "deploy/compose.yaml": {
            name
            for service in compose["services"].values()
            for name in service.get("environment", {})
            if name.startswith("FHIRTIS_")
        },
    }


def test_is_setting_follows_the_model() -> None:
    assert is_setting("FHIRTIS_FHIR__BASE_URL")
    assert is_setting("FHIRTIS_SERVICE__JWKS_PATH")
    assert is_setting("FHIRTIS_POLICY__CYCLE_GAP_DAYS")
    assert is_setting("FHIRTIS_DEFAULT_ULN__CK")
    assert not is_setting("FHIRTIS_FHIR__BASE_URI")
    assert not is_setting("FHIRTIS_SERVICE__AUTH_MODE__X")
    assert not is_setting("FHIRTIS_SERVICES__AUTH_MODE")
    assert not is_setting("FHIRTIS_SETTINGS_FILE")


@pytest.mark.parametrize("where", sorted(_documented()))
def test_every_documented_name_is_a_setting(where: str) -> None:
    names = _documented()[where]
    assert names, f"{where} names no FHIRTIS_* variable"
    unknown = sorted(n for n in names if not is_setting(n) and n not in PENDING | NOT_SETTINGS)
    assert unknown == [], f"{where}: not settings of fhirtis.settings: {unknown}"


def test_names_read_outside_settings_are_read_by_fhirtis() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "fhirtis").rglob("*.py"))
    for name in NOT_SETTINGS:
        assert re.search(rf"[\"']{name}[\"']", source), name


def test_pending_names_are_not_settings_yet() -> None:
    landed = sorted(n for n in PENDING if is_setting(n))
    assert landed == [], f"these settings exist now: remove them from PENDING: {landed}"


def test_guide_table_covers_the_example_settings() -> None:
    table = _names("\n".join(li for li in GUIDE.read_text().splitlines() if li.startswith("| `")))
    example = set(dotenv_values(ENV_EXAMPLE))
    assert example - table == set()


@pytest.fixture
def example_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    values = {k: v for k, v in dotenv_values(ENV_EXAMPLE).items() if v is not None}
    for name in list(os.environ):
        if name.startswith("FHIRTIS_"):
            monkeypatch.delenv(name)
    for name, value in values.items():
        if name not in PENDING | NOT_SETTINGS:
            monkeypatch.setenv(name, value)
    # What the unit and the compose file add: the key as a file.
    monkeypatch.setenv("FHIRTIS_FHIR__PRIVATE_KEY_PATH", "/run/secrets/fhir_private_key")
    yield values


def test_example_settings_load(example_environment: dict[str, str]) -> None:
    settings = Settings()
    assert settings.fhir is not None
    assert settings.fhir.base_url == "https://ehr.example.org/fhir"
    assert settings.fhir.auth_mode == "smart-backend"
    assert settings.service.auth_mode == "validate"
    assert settings.service.allowed_fhir_servers == ["https://ehr.example.org/fhir"]
    # The JSON-valued pending settings are at least valid JSON once quotes are taken off.
    for name in PENDING:
        value = example_environment[name]
        if value.startswith(("[", "{")):
            json.loads(value)
    # No secret in the example: the key is a path, the bearer token unset.
    assert settings.fhir.private_key_pem is None and settings.fhir.bearer_token is None
