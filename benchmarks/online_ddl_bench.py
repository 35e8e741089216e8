"""What the ALGORITHM/LOCK probe (issue 20) adds to a schema plan's time.

    python benchmarks/online_ddl_bench.py [--tables 200] [--changed 0.2] [--runs 3]

Starts a private MariaDB (tests/mariadb_server.py) and builds the schema_sync_bench layout: a
source database of N tables and a target in which 20% differ (40 ALTERs at 200 tables). It
then times plan_schema without the probe and with it, alternating, in three set-ups:

- same shapes: the bench's tables share one definition (their comments aside), so tables
  given the same ALTER are probed once (the probe's shape cache); on the plan's one connection
  after the diff (every accepted ALTER runs on its empty copy), and with a connection factory
  ("4 connections": DSN runs and the function have one), where each table is probed as soon
  as both sides of it are read, while the plan reads the others, on up to 4 connections of
  the probe's own (copies held, ALTERs with NOWAIT);
- distinct shapes: every table gets a column of its own, so every ALTER is probed (the worst
  case), on the plan's one connection;
- distinct shapes, 4 connections: the same, with the connection factory.

Every connection (the plan's two and the probe's factory) is opened as DSN runs and the
deployed function open them: dbrepl.sync.connection.connect, TLS with an SSLContext of its own.
(pymysql's own default, `server.connect()`, builds a context loading the system's CA store for
every connection, about 45 ms of CPU each here, which the real factory does not pay.)

Prints the median plan time of each, the probe's added time and its share, and the answers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import schema_sync_bench  # noqa: E402

from dbrepl.sync.connection import connect  # noqa: E402
from dbrepl.sync.schema import plan_schema  # noqa: E402
from tests import mariadb_server  # noqa: E402

SRC, DST = "probe_src", "probe_dst"


def own_column(i: int, sql: str) -> str:
    """A column of its own: no two tables share a definition."""
    return sql.replace("id INT NOT NULL AUTO_INCREMENT", f"id INT NOT NULL AUTO_INCREMENT,\n  own_{i} INT")


def build(conn, db: str, n: int, changed: set[int], distinct: bool) -> None:
    schema_sync_bench.build(conn, db, n, changed, own_column if distinct else None)


def factory(server):
    """Connections as DSN runs and the function open them (TLS, no database selected)."""
    endpoint = server.endpoint()
    return lambda: connect(endpoint, select_database=False)


def timed(server, probe: bool, workers: bool) -> tuple[float, object]:
    opener = factory(server)
    src, dst = opener(), opener()
    started = time.perf_counter()
    plan = plan_schema(src, dst, [(SRC, DST)], probe=probe, probe_connect=opener if workers else None)
    took = time.perf_counter() - started
    src.close()
    dst.close()
    return took, plan


def measure(server, runs: int, workers: bool) -> dict:
    without, with_probe, plan = [], [], None
    for _ in range(runs):
        without.append(timed(server, False, workers)[0])
        took, plan = timed(server, True, workers)
        with_probe.append(took)
    answers = Counter((s.online.clauses or s.online.how) for s in plan.statements if s.online is not None)
    alters = sum(1 for s in plan.statements if s.online is not None)
    base, probed = statistics.median(without), statistics.median(with_probe)
    return {"base": base, "probed": probed, "added": probed - base, "share": (probed - base) / base,
            "alters": alters, "answers": answers, "runs_base": without, "runs_probed": with_probe}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=200)
    ap.add_argument("--changed", type=float, default=0.2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    n = args.tables
    changed = set(range(0, n, max(1, round(1 / args.changed))))
    server = mariadb_server.start()
    results = {}
    try:
        conn = server.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            print(f"server {cur.fetchone()[0]}; {n} tables, {len(changed)} changed")
        for label, distinct, workers in (("same shapes", False, False), ("same shapes, 4 connections", False, True),
                                         ("distinct shapes", True, False),
                                         ("distinct shapes, 4 connections", True, True)):
            build(conn, SRC, n, set(), distinct)
            build(conn, DST, n, changed, distinct)
            results[label] = measure(server, args.runs, workers)
    finally:
        server.stop()
    print(f"\n{'':32} {'plan s':>8} {'+probe s':>9} {'added s':>8} {'added':>7} {'ALTERs':>7}")
    for label, r in results.items():
        print(f"{label:32} {r['base']:8.2f} {r['probed']:9.2f} {r['added']:8.2f} {r['share']:7.0%} {r['alters']:7}")
    for label, r in results.items():
        runs = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(r["runs_base"], r["runs_probed"], strict=True))
        print(f"\n{label}: runs (plan/with probe) {runs}")
        for answer, count in sorted(r["answers"].items()):
            print(f"  {count:3} x {answer}")


if __name__ == "__main__":
    main()
