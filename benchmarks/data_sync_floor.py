"""A DSN dry run against its physical floor (issue 17, point 5).

    python benchmarks/data_sync_floor.py [--rows 300000] [--share 0.001] [--repeat 7]

Starts two private MariaDB servers (tests/mariadb_server.py, TLS as dbrepl requires), one per
side, and builds on both the 7-column table of the earlier data sync benchmark (INT key,
VARCHAR(64), CHAR(8), INT, DECIMAL(12,2), DATETIME, nullable TEXT) with N rows; the target
then differs in `share` of them the way benchmarks/data_sync_bench.py makes it differ (half
qty + 1, NULL <-> '', upper case, a price swapped with the next row's, deleted rows, as many
extra rows).

It times, in turn in each of `--repeat` rounds (so a busy moment of the host hits every
figure alike):

- the digest floor: both servers hashing every row of their side at the same time, one MD5
  pass each (`SELECT COUNT(*), BIT_XOR(CONV(LEFT(MD5(CONCAT_WS(',', all columns)), 16), 16,
  10))`) on two connections opened beforehand, from sending both to having both answers;
  dbrepl's own row hash (SHA1 of its encoding) is timed the same way, for reference;
- a bare interpreter: `python3 -c pass` as a whole process;
- `dbrepl sync data SRC DST --table t --dry-run --json` as a whole process (the CLI of this
  checkout, byte-compiled first as an installed package is, verified TLS);
- for the breakdown: the CLI up to its first answer (`--dry-run` without `--table`: parsed,
  checked, exit 2, no connection), and the dry run of the library in this process
  (connections open, `sync_data(..., dry_run=True)` alone).

The floor is the digest floor (MD5) plus the bare interpreter; the ratio is the dry run's
median over the floor's (medians of the rounds). Minimum and median of every figure are
printed and written to benchmarks/data_sync_floor_results.json with the load average.

The pt-table-sync comparison on 1,000,000 rows (a real run with the default verification)
is benchmarks/data_sync_bench.py (`--scenario 0.1%`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbrepl.sync.data import sync_data  # noqa: E402
from tests import mariadb_server  # noqa: E402

DB = {"source": "floor_src", "target": "floor_dst"}
COLUMNS = "id, name, code, qty, price, updated, note"
TABLE_DDL = (
    "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, code CHAR(8),"
    " qty INT, price DECIMAL(12,2), updated DATETIME, note TEXT) ENGINE=InnoDB"
)
FILL = (
    "INSERT INTO `{db}`.t SELECT seq, CONCAT('name-', seq), LPAD(HEX(seq), 8, '0'),"
    " seq % 1000, seq / 7, '2024-01-01' + INTERVAL seq SECOND,"
    " IF(seq % 3 = 0, NULL, REPEAT('x', seq % 50)) FROM seq_1_to_{rows}"
)
MD5_DIGEST = f"SELECT COUNT(*), BIT_XOR(CONV(LEFT(MD5(CONCAT_WS(',', {COLUMNS})), 16), 16, 10)) FROM `{{db}}`.t"


def run(conn, *statements):
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)
        return cur.fetchall()


def build(servers: dict, rows: int, share: float) -> None:
    for side, server in servers.items():
        conn = server.connect()
        db = DB[side]
        run(conn, f"DROP DATABASE IF EXISTS `{db}`", f"CREATE DATABASE `{db}`", TABLE_DDL.format(db=db),
            f"USE `{db}`", FILL.format(db=db, rows=rows))
        conn.close()
    if not share:
        return
    # As benchmarks/data_sync_bench.py's build_target, on a server of its own: the source's
    # price of row id is id / 7, so the swap is written from that.
    step = max(10, round(1 / share))
    sel = f"id % {step} = 0 AND id + 1 <= {rows}"
    k = f"(id DIV {step}) % 10"
    conn = servers["target"].connect(DB["target"])
    run(conn,
        f"UPDATE t SET qty = qty + 1 WHERE {sel} AND {k} < 5",
        f"UPDATE t SET note = IF(note IS NULL, '', NULL) WHERE {sel} AND {k} = 5",
        f"UPDATE t SET name = UPPER(name) WHERE {sel} AND {k} = 6",
        f"UPDATE t SET price = (id + 1) / 7 WHERE {sel} AND {k} = 7",
        f"UPDATE t SET price = (id - 1) / 7 WHERE (id - 1) % {step} = 0 AND ((id - 1) DIV {step}) % 10 = 7"
        f" AND id <= {rows}",
        f"DELETE FROM t WHERE {sel} AND {k} = 8",
        f"INSERT INTO t (id, name) SELECT {rows} + seq, 'extra' FROM seq_1_to_{rows // step // 10}")
    conn.close()


def both_at_once(conns: dict, query: str) -> float:
    """Seconds from sending `query` to both servers to having both answers."""
    answers: dict[str, tuple] = {}

    def one(side: str) -> None:
        answers[side] = run(conns[side], query.format(db=DB[side]))[0]

    threads = [threading.Thread(target=one, args=(side,)) for side in conns]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    assert len(answers) == 2
    return seconds


def whole_process(argv: list[str], expect: int = 0) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if proc.returncode != expect:
        sys.exit(f"{' '.join(argv[:6])} ... exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return seconds, proc.stdout


def summary(values: list[float]) -> dict:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "runs": [round(v, 3) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--share", type=float, default=0.001, help="share of rows differing (default 0.001)")
    parser.add_argument("--repeat", type=int, default=7, help="rounds; medians are compared")
    args = parser.parse_args()

    servers = {side: mariadb_server.start(("--innodb-buffer-pool-size=512M",)) for side in DB}
    times: dict[str, list[float]] = {k: [] for k in ("md5", "sha1", "python", "dry_run", "cli_start", "library")}
    try:
        t0 = time.monotonic()
        build(servers, args.rows, args.share)
        print(f"built {args.rows:,} rows on each of two servers in {time.monotonic() - t0:.1f} s", flush=True)
        conns = {side: server.connect() for side, server in servers.items()}
        dsn = {side: f"mysql://root@127.0.0.1:{s.port}/{DB[side]}?ssl-ca={s.ca_bundle}" for side, s in servers.items()}
        # dbrepl's own row hash, as its chunk digest computes it (SHA1 of the encoding).
        from dbrepl.sync.data import statements
        from dbrepl.sync.data.shape import matching_shapes

        shape, _ = matching_shapes(conns["source"], conns["target"], DB["source"], "t", DB["target"])
        sha1_digest = statements.chunk_digest(shape, None, None).replace(f"`{DB['source']}`", "`{db}`")
        cli = [sys.executable, "-m", "dbrepl.cli", "sync", "data", dsn["source"], dsn["target"]]
        # Byte-compiled as pip leaves an installed package (PYTHONDONTWRITEBYTECODE, set on some
        # hosts, would otherwise have every run compile the CLI's modules again).
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "dbrepl")], check=True,
                       capture_output=True)
        load = os.getloadavg()[0]
        rows_synced = None
        for rnd in range(args.repeat + 1):  # round 0 warms caches and is not counted
            md5 = both_at_once(conns, MD5_DIGEST)
            sha1 = both_at_once(conns, sha1_digest)
            python, _ = whole_process([sys.executable, "-c", "pass"])
            dry, out = whole_process([*cli, "--table", "t", "--dry-run", "--json"])
            start, _ = whole_process([*cli, "--dry-run"], expect=2)
            src, dst = servers["source"].endpoint(DB["source"]), servers["target"].endpoint(DB["target"])
            from dbrepl.sync.connection import connect

            a, b = connect(src), connect(dst)
            started = time.perf_counter()
            sync_data(a, b, [(DB["source"], "t")], target_databases={DB["source"]: DB["target"]}, dry_run=True)
            library = time.perf_counter() - started
            a.close()
            b.close()
            rows_synced = json.loads(out)["rows_synced"]
            if rnd:
                for key, value in (("md5", md5), ("sha1", sha1), ("python", python), ("dry_run", dry),
                                   ("cli_start", start), ("library", library)):
                    times[key].append(value)
            print(f"  round {rnd}{' (warm-up)' if not rnd else ''}: digest md5 {md5:.3f} s, sha1 {sha1:.3f} s;"
                  f" python -c pass {python:.3f} s; dry run {dry:.3f} s (CLI start {start:.3f} s,"
                  f" library in-process {library:.3f} s); {rows_synced} rows would change", flush=True)
        for conn in conns.values():
            conn.close()
    finally:
        for server in servers.values():
            server.stop()

    s = {k: summary(v) for k, v in times.items()}
    floor = {m: round(s["md5"][m] + s["python"][m], 3) for m in ("min", "median")}
    floor_sha1 = {m: round(s["sha1"][m] + s["python"][m], 3) for m in ("min", "median")}
    ratio = round(s["dry_run"]["median"] / floor["median"], 2)
    print(f"\n{args.rows:,} rows, {args.share:.1%} differing ({rows_synced} rows would change), "
          f"{args.repeat} rounds, load average {load:.2f} at the start; seconds, min / median")
    rows = [
        ("digest floor: both servers, one MD5 pass each, at once", s["md5"]),
        ("  (the same with dbrepl's row hash, SHA1)", s["sha1"]),
        ("bare interpreter: python3 -c pass", s["python"]),
        ("floor = MD5 digest + bare interpreter", floor),
        ("dbrepl sync data --dry-run, whole process", s["dry_run"]),
        ("  CLI start to its first answer (exit 2, no connection)", s["cli_start"]),
        ("  library dry run in-process (sync_data alone)", s["library"]),
    ]
    for label, v in rows:
        print(f"  {label:<58} {v['min']:6.3f} / {v['median']:6.3f}")
    print(f"  dry run / floor (medians) = {ratio:.2f}   (target: at most 1.5)")
    print(f"  dry run / floor with the SHA1 digest (medians) = {s['dry_run']['median'] / floor_sha1['median']:.2f}")
    out = ROOT / "benchmarks" / "data_sync_floor_results.json"
    out.write_text(json.dumps({"rows": args.rows, "share": args.share, "rows_synced": rows_synced,
                               "load_average_1min": round(load, 2), "seconds": s, "floor": floor,
                               "floor_sha1": floor_sha1, "ratio": ratio}, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
