"""Random schema pairs (seeded, so failures replay): every sync must converge exactly.

The corpus covers each kind of change alone; this mixes many at once (column order, types,
indexes in every group and order, checks, options), which is where ordering bugs hide.
"""

from __future__ import annotations

import random

import pytest

from dbrepl.sync.schema import apply_schema, plan_schema
from tests.sync.test_schema_corpus import run, snapshot

TYPES = ["INT", "BIGINT", "SMALLINT UNSIGNED", "VARCHAR(20)", "VARCHAR(40) CHARACTER SET latin1",
         "VARCHAR(40) COLLATE utf8mb4_bin", "TEXT", "DECIMAL(8,2)", "DATETIME", "DATE", "ENUM('a','b')",
         "CHAR(3)", "TINYINT(1)", "DOUBLE"]
INDEXABLE = ("INT", "BIGINT", "SMALLINT", "VARCHAR", "DECIMAL", "DATE", "ENUM", "CHAR", "TINYINT", "DOUBLE")


def random_schema(rng: random.Random) -> list[str]:
    tables = [rng.choice(["CREATE TABLE p (id INT NOT NULL PRIMARY KEY)",
                          "CREATE TABLE p (id INT NOT NULL PRIMARY KEY, code INT NOT NULL, UNIQUE KEY (code))"])]
    for t in range(3):
        if rng.random() < 0.25:
            continue
        cols = {f"c{i}": rng.choice(TYPES) for i in range(7) if rng.random() < 0.6}
        names = list(cols)
        rng.shuffle(names)
        defs = ["id INT NOT NULL"]
        for n in names:
            typ = cols[n]
            extra = rng.choice(["", " NOT NULL", " DEFAULT NULL", " COMMENT 'x'", " INVISIBLE"])
            if extra == " NOT NULL" and typ.startswith(("INT", "BIGINT")):
                extra += " DEFAULT 7"
            defs.append(f"{n} {typ}{extra}")
        indexable = [n for n in names if cols[n].startswith(INDEXABLE)]
        keys = ["PRIMARY KEY (id)"]
        for k in range(rng.randint(0, 4)):
            if not indexable:
                break
            kcols = rng.sample(indexable, rng.randint(1, min(2, len(indexable))))
            parts = ", ".join(c + (" DESC" if rng.random() < 0.2 else "") for c in kcols)
            kind = rng.choice(["KEY", "KEY", "UNIQUE KEY"])
            keys.append(f"{kind} k{k}_{'_'.join(kcols)} ({parts})")
        if rng.random() < 0.5:  # a reference to p, sometimes enforced
            defs.append("pid INT")
            if rng.random() < 0.3:
                keys.append("KEY k_pid (pid)")
            if rng.random() < 0.6:
                action = rng.choice(["", " ON DELETE CASCADE", " ON DELETE SET NULL", " ON UPDATE CASCADE"])
                keys.append(f"CONSTRAINT fk_t{t} FOREIGN KEY (pid) REFERENCES p (id){action}")
        if rng.random() < 0.3:
            defs.append(f"g INT AS (id * {rng.choice([2, 3])}) {rng.choice(['VIRTUAL', 'STORED'])}")
        ints = [n for n in names if cols[n] in ("INT", "BIGINT")]
        checks = [f"CONSTRAINT ck_{n} CHECK ({n} > -100)" for n in ints if rng.random() < 0.4]
        rng.shuffle(checks)
        options = rng.choice(["", "COMMENT='v1'", "ROW_FORMAT=COMPACT", "DEFAULT CHARSET=latin1"])
        tables.append(f"CREATE TABLE t{t} (" + ", ".join(defs + keys + checks) + f") {options}")
    if len(tables) > 1 and rng.random() < 0.5:
        tables.append("CREATE VIEW v AS SELECT id FROM " + tables[1].split()[2])
    return tables


@pytest.mark.mariadb
@pytest.mark.parametrize("seed", range(16))
def test_random_pair_converges(mariadb, db_pair, seed):
    rng = random.Random(seed)
    src_db, dst_db = db_pair
    conn = mariadb.connect(ssl_disabled=True)
    run(conn, src_db, random_schema(rng))
    run(conn, dst_db, random_schema(rng))
    plan = plan_schema(conn, conn, [(src_db, dst_db)])
    assert plan.notes == []
    assert apply_schema(conn, plan, allow_destructive=True).converged
    assert snapshot(conn, dst_db) == snapshot(conn, src_db)
    assert plan_schema(conn, conn, [(src_db, dst_db)]).statements == []
