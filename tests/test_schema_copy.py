"""The installed package carries a copy of trials/schema.json; they must not drift."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_packaged_schema_equals_trials_schema():
    a = (ROOT / "trials" / "schema.json").read_bytes()
    b = (ROOT / "metaanalysis" / "data" / "registry_schema.json").read_bytes()
    assert a == b, "run: cp trials/schema.json metaanalysis/data/registry_schema.json"
