"""Schema sync benchmark: dbrepl against skeema 1.9 on the same 200-table change set.

    python benchmarks/schema_sync_bench.py [--tables 200] [--changed 0.2]

Starts a private MariaDB (tests/mariadb_server.py), builds a source database of N tables
and two identical target copies in which 20% of the tables differ (columns added, dropped,
widened, reordered, defaults, nullability, indexes, foreign keys, table options). Then, in
the same run:

- dbrepl: plan_schema (diff) and apply_schema (apply + its own verification);
- skeema: `skeema init` from the source, the schema name pointed at the target, then
  `skeema diff` and `skeema push --allow-unsafe`.

For each tool it prints the times and whether it converged, judged two ways: the tool's own
re-diff is empty, and (strict) every SHOW CREATE TABLE matches the source (AUTO_INCREMENT
counter aside). skeema ignores index order by default, so the change set includes a few
index-order differences: skeema reports them converged, the strict check does not.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbrepl.sync.schema import apply_schema, plan_schema  # noqa: E402
from tests import mariadb_server  # noqa: E402

SRC, DST_DBREPL, DST_SKEEMA = "bench_src", "bench_dbrepl", "bench_skeema"
AUTO_INC = re.compile(r" AUTO_INCREMENT=\d+")


def table_sql(i: int, variant: str | None) -> str:
    """Table i as the source has it (variant None) or as a drifted target has it."""
    cols = [
        "id INT NOT NULL AUTO_INCREMENT",
        "account_id INT NOT NULL",
        "code VARCHAR(40) NOT NULL",
        "title VARCHAR(200) DEFAULT NULL",
        "amount DECIMAL(12,2) NOT NULL DEFAULT 0.00",
        "status ENUM('new','active','closed') NOT NULL DEFAULT 'new'",
        "created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP",
        "notes TEXT",
    ]
    keys = ["PRIMARY KEY (id)", "UNIQUE KEY uk_code (account_id, code)", "KEY k_created (created_at)",
            "KEY k_status (status, created_at)"]
    fks = ([f"CONSTRAINT fk_t{i}_parent FOREIGN KEY (account_id) REFERENCES t{i - 1:03d} (id)"]
           if i % 10 == 0 and i > 0 else [])
    options = f"ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='table {i}'"
    if variant == "column_added":  # the target lacks a column
        cols = [c for c in cols if not c.startswith("notes")]
    elif variant == "column_extra":  # the target has a column the source dropped (unsafe)
        cols.append("legacy_flag TINYINT(1) DEFAULT NULL")
    elif variant == "narrower":  # the target's column is narrower: widening is safe
        cols[3] = "title VARCHAR(100) DEFAULT NULL"
    elif variant == "default":
        cols[4] = "amount DECIMAL(12,2) NOT NULL DEFAULT 1.00"
    elif variant == "nullability":
        cols[3] = "title VARCHAR(200) NOT NULL DEFAULT ''"
    elif variant == "index_missing":
        keys = keys[:-1]
    elif variant == "index_extra":
        keys.append("KEY k_title (title)")
    elif variant == "index_order":  # same indexes, created in another order
        keys = [keys[0], keys[1], keys[3], keys[2]]
    elif variant == "column_order":
        cols = [cols[0], cols[2], cols[1], *cols[3:]]
    elif variant == "options":
        options = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 ROW_FORMAT=COMPACT COMMENT='old comment'"
    elif variant == "foreign_key" and i > 0:
        fks = []
    body = ",\n  ".join(cols + keys + fks)
    return f"CREATE TABLE t{i:03d} (\n  {body}\n) {options}"


VARIANTS = ["column_added", "narrower", "default", "index_missing", "index_extra", "column_order",
            "options", "foreign_key", "column_extra", "nullability", "index_order"]


def build(conn, db: str, n: int, changed: set[int], rewrite=None) -> None:
    """`n` tables in `db`, those in `changed` drifted; `rewrite(i, sql)` may alter each CREATE."""
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {db} DEFAULT CHARSET utf8mb4")
        conn.select_db(db)
        cur.execute("SET SESSION foreign_key_checks = 0")
        for i in range(n):
            variant = VARIANTS[sorted(changed).index(i) % len(VARIANTS)] if i in changed else None
            sql = table_sql(i, variant)
            cur.execute(rewrite(i, sql) if rewrite is not None else sql)
        cur.execute("SET SESSION foreign_key_checks = 1")


def strict_equal(conn, a: str, b: str) -> tuple[bool, int]:
    """Do all SHOW CREATE TABLE texts match? And how many tables differ."""
    def texts(db: str) -> dict[str, str]:
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (db,))
            out = {}
            for (name,) in cur.fetchall():
                cur.execute(f"SHOW CREATE TABLE `{db}`.`{name}`")
                out[name] = AUTO_INC.sub("", cur.fetchone()[1])
            return out
    ta, tb = texts(a), texts(b)
    differing = sum(1 for k in set(ta) | set(tb) if ta.get(k) != tb.get(k))
    return differing == 0, differing


def run_dbrepl(server) -> dict:
    src, dst = server.connect(), server.connect()
    t0 = time.perf_counter()
    plan = plan_schema(src, dst, [(SRC, DST_DBREPL)])
    t1 = time.perf_counter()
    result = apply_schema(dst, plan, allow_destructive=True, verify=True)
    t2 = time.perf_counter()
    again = plan_schema(src, dst, [(SRC, DST_DBREPL)])
    strict, differing = strict_equal(src, SRC, DST_DBREPL)
    return {"diff": t1 - t0, "apply": t2 - t1, "total": t2 - t0, "statements": len(plan.statements),
            "own_rediff_empty": not again.statements and result.converged, "strict": strict,
            "strict_differing": differing}


def run_skeema(server, workdir: Path) -> dict:
    skeema = shutil.which("skeema")
    if skeema is None:
        return {"error": "skeema not installed (apt-get install skeema)"}
    env = dict(os.environ, MYSQL_PWD=server.password)
    base = [skeema]
    conn_args = ["-h", server.host, "-P", str(server.port), "-u", server.user]
    # skeema takes --dir relative to the working directory even when absolute (FACTS.md).
    subprocess.run([*base, "init", "--dir", "sk", *conn_args, "--schema", SRC],
                   cwd=workdir, env=env, check=True, capture_output=True)
    cfg = workdir / "sk" / ".skeema"
    cfg.write_text(cfg.read_text().replace(f"schema={SRC}", f"schema={DST_SKEEMA}"))
    sk = workdir / "sk"
    t0 = time.perf_counter()
    diff = subprocess.run([*base, "diff", "--allow-unsafe"], cwd=sk, env=env, capture_output=True, text=True)
    t1 = time.perf_counter()
    push = subprocess.run([*base, "push", "--allow-unsafe"], cwd=sk, env=env, capture_output=True, text=True)
    t2 = time.perf_counter()
    again = subprocess.run([*base, "diff", "--allow-unsafe"], cwd=sk, env=env, capture_output=True, text=True)
    conn = server.connect()
    strict, differing = strict_equal(conn, SRC, DST_SKEEMA)
    statements = len(re.findall(r"^(ALTER|CREATE|DROP) ", diff.stdout, re.MULTILINE))
    out = {"diff": t1 - t0, "push": t2 - t1, "total": t2 - t0, "statements": statements,
           "diff_exit": diff.returncode, "push_exit": push.returncode,
           "own_rediff_empty": again.returncode == 0, "strict": strict, "strict_differing": differing}
    if push.returncode not in (0, 1):
        out["error"] = (push.stderr or push.stdout)[-500:]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=200)
    ap.add_argument("--changed", type=float, default=0.2)
    args = ap.parse_args()
    n = args.tables
    changed = set(range(0, n, max(1, round(1 / args.changed))))
    print(f"starting MariaDB; {n} tables, {len(changed)} changed ({', '.join(VARIANTS)})")
    server = mariadb_server.start()
    try:
        conn = server.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            print(f"server {cur.fetchone()[0]}")
        build(conn, SRC, n, set())
        build(conn, DST_DBREPL, n, changed)
        build(conn, DST_SKEEMA, n, changed)
        print(f"before: {strict_equal(conn, SRC, DST_DBREPL)[1]} tables differ in each target copy")
        with tempfile.TemporaryDirectory() as tmp:
            sk = run_skeema(server, Path(tmp))
        db = run_dbrepl(server)
    finally:
        server.stop()

    print(f"\n{'':10} {'diff s':>8} {'apply s':>8} {'total s':>8} {'stmts':>6}"
          "  own re-diff empty  strict SHOW CREATE match")
    print(f"{'dbrepl':10} {db['diff']:8.2f} {db['apply']:8.2f} {db['total']:8.2f} {db['statements']:6}  "
          f"{str(db['own_rediff_empty']):17}  {db['strict']} ({db['strict_differing']} differ)")
    if "diff" in sk:
        print(f"{'skeema':10} {sk['diff']:8.2f} {sk['push']:8.2f} {sk['total']:8.2f} {sk['statements']:6}  "
              f"{str(sk['own_rediff_empty']):17}  {sk['strict']} ({sk['strict_differing']} differ)")
        print(f"\nratio dbrepl/skeema: diff {db['diff'] / sk['diff']:.2f}, total {db['total'] / sk['total']:.2f} "
              f"(< 1 means dbrepl is faster)")
    if sk.get("error"):
        print(f"skeema error: {sk['error']}")


if __name__ == "__main__":
    main()
