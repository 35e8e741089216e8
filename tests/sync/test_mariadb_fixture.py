def test_server_answers(mariadb, db_pair):
    src, dst = db_pair
    conn = mariadb.connect(src)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (1),(2)")
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchone()[0] == 2
        cur.execute("SELECT VERSION()")
        assert "MariaDB" in cur.fetchone()[0]
