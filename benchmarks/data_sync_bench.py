"""Data sync benchmark: dbrepl against pt-table-sync and mysqldump | mysql, same server, same run.

    python benchmarks/data_sync_bench.py [--rows 1000000] [--skip-pt-10] [--repeat N] [--scenario "empty target"]

Starts a private MariaDB (tests/mariadb_server.py) and builds a wide source table of N rows
(integer key; VARCHAR(64), CHAR(8), INT, DECIMAL(12,2), DATETIME, nullable TEXT, and four more
VARCHAR(40-80) filled to 25-70 characters, DECIMAL(14,4), DATETIME(3)). For each scenario the
target is rebuilt from the source and then made to differ in the given share of rows, the
same way for every tool:

    5/10 of them  qty + 1
    1/10          note NULL <-> ''              (NULL versus empty string)
    1/10          name in upper case            (a case-only change)
    1/10          price swapped with the next row (same multiset of values)
    1/10          deleted on the target         (to insert)
    + as many extra rows on the target          (to delete)

Scenarios: 0%, 0.1% and 10% differing (dbrepl vs `pt-table-sync --execute
h=127.0.0.1,P=PORT,u=root,D=src,t=t D=dst,t=t`), and an empty target (dbrepl vs
`mysqldump --no-create-info --single-transaction src t | mariadb dst`), and "0.1% paired":
0.1% of rows in pairs 150 apart flipping the same bit of `qty`, the changes pt-table-sync's
BIT_XOR(CRC32()) checksum cancels out. dbrepl runs with its default verification before COMMIT
(`verify="changed"`), and in the pt-table-sync scenarios also with `--verify full` and
`--verify none`, so the price of each is printed beside the default. Every tool's result
is then checked: CHECKSUM TABLE equal, and the number of rows still differing when compared
byte for byte (BINARY, <=>). Times, ratios (dbrepl / other) and correctness are printed,
and the figures are written as JSON to benchmarks/data_sync_results.json.

`--repeat N` times each tool N times per scenario, alternating which goes first, and keeps
the fastest (all times go into the JSON file too). `--scenario LABEL` (repeatable) runs only
those scenarios and replaces only their entries in the JSON file, keeping the others (when
it was written for the same --rows).

The machine's load matters: run it on an otherwise idle host for comparable figures. The load
average before each scenario goes into the JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbrepl.sync.data import sync_data  # noqa: E402
from tests import mariadb_server  # noqa: E402

SRC, DST = "bench_src", "bench_dst"
TABLE_DDL = (
    "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, code CHAR(8),"
    " qty INT, price DECIMAL(12,2), updated DATETIME, note TEXT, email VARCHAR(80),"
    " street VARCHAR(60), city VARCHAR(40), company VARCHAR(50), amount DECIMAL(14,4),"
    " created DATETIME(3)) ENGINE=InnoDB"
)
TABLE_KIND = "wide-13"  # results of another table shape are not mixed into the JSON file


def run(conn, *statements):
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)
        return cur.fetchall()


def build_source(conn, rows: int) -> None:
    run(conn, f"DROP DATABASE IF EXISTS `{SRC}`", f"CREATE DATABASE `{SRC}`", TABLE_DDL.format(db=SRC),
        f"INSERT INTO `{SRC}`.t SELECT seq, CONCAT('name-', seq), LPAD(HEX(seq), 8, '0'),"
        f" seq % 1000, seq / 7, '2024-01-01' + INTERVAL seq SECOND,"
        f" IF(seq % 3 = 0, NULL, REPEAT('x', seq % 50)),"
        f" CONCAT('user.', seq, '@', REPEAT(CHAR(97 + seq % 26), 20 + seq % 30), '.example.com'),"
        f" CONCAT(seq % 9999, ' ', REPEAT('Long Street Name ', 1 + seq % 3)),"
        f" CONCAT('City of ', REPEAT(CHAR(65 + seq % 26), 10 + seq % 20)),"
        f" CONCAT('Company ', HEX(seq * 7919), ' Holdings International Ltd'),"
        f" seq / 13, '2020-01-01' + INTERVAL seq * 1001 MICROSECOND"
        f" FROM `{SRC}`.seq_1_to_{rows}")


def build_target(conn, rows: int, share: float | None) -> int:
    """Target = source with `share` of rows differing (None: empty). Returns rows differing."""
    run(conn, f"DROP DATABASE IF EXISTS `{DST}`", f"CREATE DATABASE `{DST}`", TABLE_DDL.format(db=DST))
    if share is None:
        return rows
    run(conn, f"INSERT INTO `{DST}`.t SELECT * FROM `{SRC}`.t")
    if share == 0:
        return 0
    step = max(10, round(1 / share))
    # Rows id = step*k; which change by k % 10.
    sel = f"id % {step} = 0 AND id + 1 <= {rows}"
    k = f"(id DIV {step}) % 10"
    run(conn,
        f"UPDATE `{DST}`.t SET qty = qty + 1 WHERE {sel} AND {k} < 5",
        f"UPDATE `{DST}`.t SET note = IF(note IS NULL, '', NULL) WHERE {sel} AND {k} = 5",
        f"UPDATE `{DST}`.t SET name = UPPER(name) WHERE {sel} AND {k} = 6",
        # price of id and id+1 exchanged (relative to the source).
        f"UPDATE `{DST}`.t d JOIN `{SRC}`.t s ON s.id = d.id + 1 SET d.price = s.price"
        f" WHERE d.id % {step} = 0 AND d.id + 1 <= {rows} AND (d.id DIV {step}) % 10 = 7",
        f"UPDATE `{DST}`.t d JOIN `{SRC}`.t s ON s.id = d.id - 1 SET d.price = s.price"
        f" WHERE s.id % {step} = 0 AND (s.id DIV {step}) % 10 = 7",
        f"DELETE FROM `{DST}`.t WHERE {sel} AND {k} = 8",
        f"INSERT INTO `{DST}`.t (id, name) SELECT {rows} + seq, 'extra' FROM `{SRC}`.seq_1_to_{rows // step // 10}",
    )
    return differing(conn)


def build_paired_target(conn, rows: int, share: float) -> int:
    """pt-table-sync's blind spot: pairs of rows 150 apart changed the same way (the last
    digit of qty flips its low bit, so both rows' bytes change by the same delta with the
    same number of bytes after it: price, updated and note have equal lengths 150 rows
    apart). CRC32 is affine, so the two CRC changes are equal and cancel in BIT_XOR
    whenever both rows fall in one pt-table-sync chunk."""
    build_target(conn, rows, 0)
    step = max(300, round(2 / share))
    run(conn, f"UPDATE `{DST}`.t SET qty = qty ^ 1 WHERE id % {step} IN (1, 151) AND id <= {rows}")
    return differing(conn)


def differing(conn) -> int:
    """Rows that differ byte for byte between source and target (both directions)."""
    same = ("BINARY s.name = BINARY d.name AND BINARY s.code <=> BINARY d.code AND s.qty <=> d.qty"
            " AND s.price <=> d.price AND s.updated <=> d.updated AND BINARY s.note <=> BINARY d.note"
            " AND BINARY s.email <=> BINARY d.email AND BINARY s.street <=> BINARY d.street"
            " AND BINARY s.city <=> BINARY d.city AND BINARY s.company <=> BINARY d.company"
            " AND s.amount <=> d.amount AND s.created <=> d.created")
    missing_or_changed = run(conn, f"SELECT COUNT(*) FROM `{SRC}`.t s LEFT JOIN `{DST}`.t d USING (id)"
                                   f" WHERE d.id IS NULL OR NOT ({same})")[0][0]
    extra = run(conn, f"SELECT COUNT(*) FROM `{DST}`.t d LEFT JOIN `{SRC}`.t s USING (id) WHERE s.id IS NULL")[0][0]
    return int(missing_or_changed) + int(extra)


def checksums_equal(conn) -> bool:
    rows = run(conn, f"CHECKSUM TABLE `{SRC}`.t, `{DST}`.t")
    return rows[0][1] == rows[1][1]


def time_dbrepl(server, verify: str = "changed") -> float:
    source, target = server.connect(), server.connect()
    started = time.monotonic()
    sync_data(source, target, [(SRC, "t")], target_databases={SRC: DST}, verify=verify)
    seconds = time.monotonic() - started
    source.close()
    target.close()
    return seconds


def time_pt(server) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        ["pt-table-sync", "--execute",
         f"h=127.0.0.1,P={server.port},u=root,D={SRC},t=t", f"D={DST},t=t"],
        capture_output=True, text=True)
    seconds = time.monotonic() - started
    # Exit 2 means "differences found and synced"; 1 and >= 3 are failures.
    if proc.returncode not in (0, 2):
        print(f"  pt-table-sync exited {proc.returncode}: {proc.stderr.strip()[:300]}")
    return seconds


def time_dump(server) -> float:
    dump = shutil.which("mysqldump") or shutil.which("mariadb-dump")
    client = shutil.which("mariadb") or shutil.which("mysql")
    base = ["-h127.0.0.1", f"-P{server.port}", "-uroot"]
    started = time.monotonic()
    dumper = subprocess.Popen([dump, *base, "--no-create-info", "--single-transaction", SRC, "t"],
                              stdout=subprocess.PIPE)
    subprocess.run([client, *base, DST], stdin=dumper.stdout, check=True)
    dumper.stdout.close()
    dumper.wait()
    return time.monotonic() - started


SCENARIOS = [("0%", 0.0, "pt-table-sync"), ("0.1%", 0.001, "pt-table-sync"),
             ("10%", 0.1, "pt-table-sync"), ("empty target", None, "mysqldump | mysql"),
             ("0.1% paired", 0.001, "pt-table-sync")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-pt-10", action="store_true", help="skip pt-table-sync at 10%% (minutes)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per tool and scenario, alternating which tool goes first; the fastest counts")
    parser.add_argument("--no-verify-modes", dest="verify_modes", action="store_false",
                        help="time dbrepl only with its default verification")
    parser.add_argument("--scenario", action="append", choices=[label for label, _, _ in SCENARIOS],
                        help="run only this scenario (repeatable); the JSON file keeps the others")
    args = parser.parse_args()
    if not shutil.which("pt-table-sync"):
        sys.exit("pt-table-sync not found (apt-get install percona-toolkit)")
    scenarios = [s for s in SCENARIOS if not args.scenario or s[0] in args.scenario]
    server = mariadb_server.start(("--innodb-buffer-pool-size=1G",))
    results = []
    try:
        admin = server.connect()
        t0 = time.monotonic()
        build_source(admin, args.rows)
        print(f"source: {args.rows:,} rows built in {time.monotonic() - t0:.1f} s")
        for label, share, other in scenarios:
            row = {"scenario": label, "load_average_1min": round(os.getloadavg()[0], 2)}
            tools = [t for t in ("dbrepl", other)
                     if not (t == "pt-table-sync" and share == 0.1 and args.skip_pt_10)]
            if other == "pt-table-sync" and args.verify_modes:
                tools[1:1] = ["dbrepl --verify full", "dbrepl --verify none"]
            runs: dict[str, list[dict]] = {t: [] for t in tools}
            for rep in range(args.repeat):
                for tool in (tools if rep % 2 == 0 else tools[::-1]):  # alternate who goes first
                    if label.endswith("paired"):
                        before = build_paired_target(admin, args.rows, share)
                    else:
                        before = build_target(admin, args.rows, share)
                    timer = {"dbrepl": time_dbrepl, "pt-table-sync": time_pt,
                             "mysqldump | mysql": time_dump,
                             "dbrepl --verify full": lambda s: time_dbrepl(s, "full"),
                             "dbrepl --verify none": lambda s: time_dbrepl(s, "none")}[tool]
                    seconds = timer(server)
                    left = differing(admin)
                    same = checksums_equal(admin)
                    runs[tool].append({"seconds": round(seconds, 2), "before": before, "left": left, "same": same})
                    print(f"  {label:>12}  {tool:<20} {seconds:7.1f} s   differing before {before:>7,}"
                          f"  after {left:>7,}  checksum {'equal' if same else 'DIFFERENT'}", flush=True)
            for tool, done in runs.items():
                # Fastest run's time; correctness from the worst run.
                row[tool] = {"seconds": min(r["seconds"] for r in done),
                             "rows_differing_before": done[0]["before"],
                             "checksum_equal": all(r["same"] for r in done),
                             "rows_differing_after": max(r["left"] for r in done)}
                if len(done) > 1:
                    row[tool]["runs_seconds"] = [r["seconds"] for r in done]
            if other in row:
                row["ratio"] = round(row["dbrepl"]["seconds"] / row[other]["seconds"], 3)
                print(f"  {label:>12}  dbrepl / {other} = {row['ratio']:.2f}", flush=True)
                for mode in ("full", "none"):
                    if f"dbrepl --verify {mode}" in row:
                        seconds = row[f"dbrepl --verify {mode}"]["seconds"]
                        row[f"ratio_verify_{mode}"] = round(seconds / row[other]["seconds"], 3)
                        print(f"  {label:>12}  dbrepl --verify {mode} / {other} ="
                              f" {row[f'ratio_verify_{mode}']:.2f}", flush=True)
            results.append(row)
        admin.close()
    finally:
        server.stop()
    out = ROOT / "benchmarks" / "data_sync_results.json"
    if args.scenario and out.exists():
        kept = json.loads(out.read_text())
        if kept.get("rows") == args.rows and kept.get("table") == TABLE_KIND:
            new = {r["scenario"]: r for r in results}
            old = {r["scenario"]: r for r in kept.get("results", [])}
            results = [new.get(label) or old[label] for label, _, _ in SCENARIOS if label in new or label in old]
    out.write_text(json.dumps({"rows": args.rows, "table": TABLE_KIND, "results": results}, indent=2) + "\n")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
