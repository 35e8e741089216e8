"""Sync metrics (issue 12, point 2): every function run prints one CloudWatch Embedded Metric
Format line. The handlers run in-process as Lambda calls them (moto for Secrets Manager and
SSM, two real MariaDB servers for the clusters); the lines are checked against the EMF
specification's rules, written out here independently of dbrepl.sync.metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dbrepl.sync import metrics
from tests.sync.test_data_handler import clusters, estate, invoke, staging  # noqa: F401  (fixtures)

pytestmark = pytest.mark.mariadb

# From the EMF specification (CloudWatch User Guide, "Specification: Embedded metric format").
UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
         "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
         "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
         "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"}


def check_emf(doc: Any) -> dict[str, float]:
    """Assert `doc` is a valid EMF document; return its metric values by name."""
    assert isinstance(doc, dict)
    meta = doc["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000  # epoch ms
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    out: dict[str, float] = {}
    for d in directives:
        assert isinstance(d["Namespace"], str) and 1 <= len(d["Namespace"]) <= 255
        assert isinstance(d["Dimensions"], list)
        for dim_set in d["Dimensions"]:
            assert isinstance(dim_set, list) and 1 <= len(dim_set) <= 30
            for key in dim_set:
                assert isinstance(doc.get(key), str) and doc[key], f"dimension {key} is not a string member"
                assert 1 <= len(doc[key]) <= 1024
        assert 1 <= len(d["Metrics"]) <= 100
        for m in d["Metrics"]:
            assert isinstance(m["Name"], str) and 1 <= len(m["Name"]) <= 1024
            assert m.get("Unit", "None") in UNITS
            value = doc[m["Name"]]
            assert isinstance(value, (int, float)) and not isinstance(value, bool), m["Name"]
            out[m["Name"]] = value
    return out


def emf_lines(captured: str) -> list[dict]:
    docs = []
    for line in captured.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def test_a_data_run_prints_one_valid_emf_line(estate, capsys) -> None:  # noqa: F811
    code, body = invoke({"source_env": "dev", "target_env": "staging", "tables": ["lookup_table"]})
    assert (code, body["status"]) == (200, "success")
    docs = emf_lines(capsys.readouterr().out)
    assert len(docs) == 1
    values = check_emf(docs[0])
    assert docs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "dbrepl"
    assert docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Suffix", "Route", "Kind"]]
    assert (docs[0]["Suffix"], docs[0]["Route"], docs[0]["Kind"]) == (estate["suffix"], "dev->staging", "data")
    assert values["Success"] == 1 and values["Failure"] == 0
    # lookup_table: row 1 updated, row 3 inserted, row 4 deleted.
    assert (values["RowsInserted"], values["RowsUpdated"], values["RowsDeleted"]) == (1, 1, 1)
    assert values["Statements"] == 3
    assert values["Duration"] > 0
    assert set(values) == {name for name, _ in metrics.METRICS}


def test_a_failing_run_emits_the_failure_metric(estate, capsys) -> None:  # noqa: F811
    code, body = invoke({"source_env": "dev", "target_env": "staging", "tables": ["lookup_table", "nokey"]})
    assert body["status"] == "error"
    docs = emf_lines(capsys.readouterr().out)
    assert len(docs) == 1
    values = check_emf(docs[0])
    assert (values["Success"], values["Failure"]) == (0, 1)
    assert (values["RowsInserted"], values["RowsUpdated"], values["RowsDeleted"]) == (0, 0, 0)
    assert docs[0]["Status"] == "error"


def test_a_dry_run_emits_nothing(estate, capsys) -> None:  # noqa: F811
    code, body = invoke({"source_env": "dev", "target_env": "staging", "tables": ["lookup_table"],
                         "dry_run": True})
    assert body["status"] == "success"
    assert emf_lines(capsys.readouterr().out) == []


def test_the_line_carries_only_its_own_fields(estate, capsys) -> None:  # noqa: F811
    """Nothing of the result (errors, statements, table contents) is copied into the line."""
    invoke({"source_env": "dev", "target_env": "staging", "tables": ["nokey"], "verbose": True})
    docs = emf_lines(capsys.readouterr().out)
    assert len(docs) == 1
    assert set(docs[0]) == {"_aws", "Suffix", "Route", "Kind", "Status", *(name for name, _ in metrics.METRICS)}


def test_schema_and_migrate_results_make_their_own_kind() -> None:
    schema = {"status": "success", "kind": "schema", "action": "schema", "source": "dev", "target": "staging",
              "counts": {"executed": 4}}
    doc = metrics.emf(schema, "s1", 12.5, now_ms=1_700_000_000_000)
    values = check_emf(doc)
    assert (doc["Kind"], values["Statements"], values["RowsInserted"]) == ("schema", 4, 0)
    migrate = {"status": "error", "kind": "schema", "action": "migrate", "source": "migrations",
               "target": "prod", "migrations": [{"applied": ["V1__a.sql", "V2__b.sql"]}, {"applied": []}]}
    doc = metrics.emf(migrate, "s1", 3.0, now_ms=1_700_000_000_000)
    values = check_emf(doc)
    assert (doc["Kind"], doc["Route"], values["Statements"], values["Failure"]) == ("migrate", "migrations->prod",
                                                                                  2, 1)
    assert metrics.emf({**migrate, "action": "migrate_status"}, "s1", 1.0) is None
    assert metrics.emf({"status": "invalid", "kind": "data"}, "s1", 1.0) is None  # no valid route
