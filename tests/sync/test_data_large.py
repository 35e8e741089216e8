"""1,000,000 rows with 0.1% differing: completes, converges, and memory stays bounded.

Peak memory is the process's resident set sampled during the sync (tracemalloc would slow
the run several times); the figures are printed and recorded as test properties.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from dbrepl.sync.data import sync_data
from tests.sync.test_data_sync import checksum, run

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ROWS = 1_000_000


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples the resident set every 5 ms while active."""

    def __enter__(self):
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def test_million_rows_with_one_in_a_thousand_differing(mariadb, db_pair, capsys, record_property):
    src, dst = db_pair
    admin = mariadb.connect()
    for db in (src, dst):
        run(admin, f"CREATE TABLE `{db}`.t (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL,"
                   " code CHAR(8), qty INT, price DECIMAL(12,2), updated DATETIME, note TEXT)")
    run(admin,
        f"INSERT INTO `{src}`.t SELECT seq, CONCAT('name-', seq), LPAD(HEX(seq), 8, '0'),"
        f" seq % 1000, seq / 7, '2024-01-01' + INTERVAL seq SECOND,"
        f" IF(seq % 3 = 0, NULL, REPEAT('x', seq % 50)) FROM `{src}`.seq_1_to_{ROWS}",
        f"INSERT INTO `{dst}`.t SELECT * FROM `{src}`.t",
        # 0.1% differing: 800 updated (incl. NULL <-> '' and a case change), 100 deleted
        # on the target (to insert), 100 extra on the target (to delete).
        f"UPDATE `{dst}`.t SET qty = qty + 1 WHERE id % 2500 = 1",
        f"UPDATE `{dst}`.t SET note = IF(note IS NULL, '', NULL) WHERE id % 2500 = 2",
        f"UPDATE `{dst}`.t SET name = UPPER(name) WHERE id % 5000 = 3",
        f"DELETE FROM `{dst}`.t WHERE id % 10000 = 4",
        f"INSERT INTO `{dst}`.t (id, name) SELECT {ROWS} + seq, 'extra' FROM `{src}`.seq_1_to_100")
    source, target = mariadb.connect(), mariadb.connect()
    started = time.monotonic()
    with PeakRss() as mem:
        result = sync_data(source, target, [(src, "t")], target_databases={src: dst})
    seconds = time.monotonic() - started
    t = result.tables[0]
    assert (t.updated, t.inserted, t.deleted) == (400 + 400 + 200, 100, 100)
    assert checksum(admin, dst, "t") == checksum(admin, src, "t")
    assert run(admin, f"SELECT COUNT(*) FROM `{src}`.t s JOIN `{dst}`.t d USING (id)"
                      " WHERE NOT (s.name <=> d.name AND BINARY s.name = BINARY d.name"
                      " AND s.note <=> d.note AND s.qty <=> d.qty)")[0][0] == 0
    growth_mb = (mem.peak - mem.base) / 2**20
    record_property("seconds", round(seconds, 1))
    record_property("peak_rss_mb", round(mem.peak / 2**20, 1))
    record_property("rss_growth_mb", round(growth_mb, 1))
    with capsys.disabled():
        print(f"\n1,000,000 rows, 0.1% differing: {seconds:.1f} s, peak RSS {mem.peak / 2**20:.0f} MiB"
              f" (+{growth_mb:.0f} MiB during the sync), {result.rows_synced} rows synced")
    # Bounded by the chunk, not the table: 1M rows of this table are ~100 MB as literals.
    assert growth_mb < 64
    started = time.monotonic()
    assert sync_data(source, target, [(src, "t")], target_databases={src: dst}).rows_synced == 0
    for c in (admin, source, target):
        c.close()
