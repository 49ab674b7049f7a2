"""Digests of what fhirtis writes, per patient: the transaction Bundle (the exact bytes of
``fhirtis evaluate --out``) and the summary record (the bytes of ``fhirtis evaluate --json``'s
entry, without ``file``). ``tests/data/output-digests.txt`` holds them as produced before the
one-core performance work (issue 13); ``tests/test_output_digests.py`` checks that the output
stays byte-identical. Regenerate only for an intended change of output:

    uv run --frozen python -m tests.output_digests > tests/data/output-digests.txt
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings, load_settings
from tests.synthetic import make_cohort

ROOT = Path(__file__).resolve().parent.parent
SYNTHETIC_PATIENTS = 1000
SYNTHETIC_SEED = 20221006


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(blob: bytes, settings: Settings, name: str) -> tuple[str, str]:
    """(bundle sha256, summary sha256) of one patient Bundle's bytes."""
    resources = read_patient_bundle(blob, name)
    result = evaluate_patient_resources(resources, settings)
    plan = result.plan()
    bundle = b"" if plan.bundle is None else orjson.dumps(plan.bundle, option=orjson.OPT_INDENT_2)
    summary = dumps(patient_summary(result.patient_ref, result.evaluation, result.issues))
    return _sha(bundle + b"\n"), _sha(summary.encode())


def inputs() -> Iterator[tuple[str, bytes, Settings]]:
    """(name, Bundle bytes, settings) of every example and every synthetic patient."""
    examples = load_settings(ROOT / "examples" / "settings.toml")
    for path in sorted((ROOT / "examples" / "bundles").glob("*.json")):
        yield f"examples/{path.name}", path.read_bytes(), examples
    plain = Settings()
    for i, bundle in enumerate(make_cohort(SYNTHETIC_PATIENTS, seed=SYNTHETIC_SEED)):
        yield f"synthetic/{i:06d}", orjson.dumps(bundle), plain


def digests() -> Iterator[str]:
    for name, blob, settings in inputs():
        bundle, summary = digest_of(blob, settings, name)
        yield f"{name} {bundle} {summary}"


if __name__ == "__main__":
    for line in digests():
        sys.stdout.write(line + "\n")
