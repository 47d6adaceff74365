"""The installed package carries a copy of trials/schema.json; they must not drift."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_packaged_schema_equals_trials_schema():
    a = (ROOT / "trials" / "schema.json").read_bytes()
    b = (ROOT / "metaanalysis" / "data" / "registry_schema.json").read_bytes()
    assert a == b, "run: cp trials/schema.json metaanalysis/data/registry_schema.json"


def test_schema_enumerations_equal_the_vocabulary():
    """The registry's measure, design and status values are the vocabulary's (metaanalysis/vocab.py)."""
    import json

    from metaanalysis.vocab import DESIGNS, MEASURES, STATUSES

    fields = {f["name"]: f for f in json.loads((ROOT / "trials" / "schema.json").read_text(encoding="utf-8"))["fields"]}
    enum = {name: fields[name]["constraints"]["enum"] for name in ("measure", "design", "status")}
    assert set(enum["measure"]) == set(MEASURES) and len(enum["measure"]) == len(MEASURES)
    assert tuple(enum["design"]) == DESIGNS
    assert tuple(enum["status"]) == STATUSES


def test_followup_limit_equals_the_vocabulary():
    import json

    from metaanalysis.vocab import MAX_FOLLOWUP_MONTHS

    fields = {f["name"]: f for f in json.loads((ROOT / "trials" / "schema.json").read_text(encoding="utf-8"))["fields"]}
    assert fields["followup_months"]["constraints"]["exclusiveMaximum"] == MAX_FOLLOWUP_MONTHS
