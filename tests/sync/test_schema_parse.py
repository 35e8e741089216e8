"""The SHOW CREATE TABLE parser on MySQL 8.0 / Aurora MySQL 3 and 5.7 texts (no server needed).

The MariaDB texts are covered by every other schema test; these pin down the MySQL forms:
versioned comments, functional key parts, partitioning wrapped in /*!50100 ... */.
"""

from __future__ import annotations

from dbrepl.sync.schema.model import parse_create_table, strip_charset, with_charset

MYSQL80 = """CREATE TABLE `orders` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `customer_id` int NOT NULL,
  `note` varchar(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL COMMENT 'it''s, (odd)',
  `created` datetime NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  `amount` decimal(10,2) NOT NULL DEFAULT '0.00',
  `hidden` int DEFAULT NULL /*!80023 INVISIBLE */,
  `total` decimal(12,2) GENERATED ALWAYS AS ((`amount` * 2)) STORED,
  `doc` json DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_note` (`note`(20)),
  KEY `k_created` (`created` DESC),
  KEY `k_expr` ((lower(`note`))),
  KEY `fk_customer` (`customer_id`),
  CONSTRAINT `fk_customer` FOREIGN KEY (`customer_id`) REFERENCES `crm`.`customers` (`id`) ON DELETE CASCADE,
  CONSTRAINT `chk_amount` CHECK ((`amount` >= 0))
) ENGINE=InnoDB AUTO_INCREMENT=42 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci ROW_FORMAT=DYNAMIC COMMENT='orders, (all)'"""  # noqa: E501

MYSQL57_PARTITIONED = """CREATE TABLE `events` (
  `id` int(11) NOT NULL,
  `kind` varchar(10) NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=latin1
/*!50100 PARTITION BY RANGE (id)
(PARTITION p0 VALUES LESS THAN (1000) ENGINE = InnoDB,
 PARTITION p1 VALUES LESS THAN MAXVALUE ENGINE = InnoDB) */"""

INFO = {"note": {"charset": "utf8mb4", "collation": "utf8mb4_bin", "column_type": "varchar(200)"}}


def test_mysql80_columns():
    t = parse_create_table(MYSQL80, INFO)
    assert t.name == "orders"
    assert [c.name for c in t.columns] == ["id", "customer_id", "note", "created", "amount", "hidden", "total", "doc"]
    note = t.column("note")
    assert note.definition == "varchar(200) DEFAULT NULL COMMENT 'it''s, (odd)'"
    assert note.sql() == ("`note` varchar(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL "
                          "COMMENT 'it''s, (odd)'")
    assert t.column("hidden").definition == "int DEFAULT NULL /*!80023 INVISIBLE */"
    assert t.column("total").definition == "decimal(12,2) GENERATED ALWAYS AS ((`amount` * 2)) STORED"


def test_mysql80_keys_constraints_options():
    t = parse_create_table(MYSQL80, INFO)
    assert [(i.name, i.kind, i.columns) for i in t.indexes] == [
        ("PRIMARY", "primary", ("id",)), ("uk_note", "unique", ("note",)), ("k_created", "key", ("created",)),
        ("k_expr", "key", ("(lower(`note`))",)), ("fk_customer", "key", ("customer_id",))]
    (fk,) = t.foreign_keys
    assert (fk.name, fk.columns, fk.ref_database, fk.ref_table, fk.ref_columns, fk.actions) == (
        "fk_customer", ("customer_id",), "crm", "customers", ("id",), "ON DELETE CASCADE")
    assert fk.sql("crm") == ("CONSTRAINT `fk_customer` FOREIGN KEY (`customer_id`) REFERENCES `crm`.`customers` "
                             "(`id`) ON DELETE CASCADE")
    assert [(c.name, c.definition) for c in t.checks] == [
        ("chk_amount", "CONSTRAINT `chk_amount` CHECK ((`amount` >= 0))")]
    assert t.options == (("ENGINE", "InnoDB"), ("CHARSET", "utf8mb4"), ("COLLATE", "utf8mb4_0900_ai_ci"),
                         ("ROW_FORMAT", "DYNAMIC"), ("COMMENT", "'orders, (all)'"))
    assert "AUTO_INCREMENT=42" not in t.create_sql and t.partitioning is None


def test_mysql57_partitioning_in_a_versioned_comment():
    t = parse_create_table(MYSQL57_PARTITIONED, {})
    assert t.options == (("ENGINE", "InnoDB"), ("CHARSET", "latin1"))
    assert t.partitioning.startswith("/*!50100 PARTITION BY RANGE (id)") and t.partitioning.endswith("*/")


def test_charset_clauses_only_at_top_level():
    text = "varchar(10) CHARACTER SET latin1 COLLATE latin1_bin DEFAULT 'CHARACTER SET x' COMMENT 'COLLATE y'"
    assert strip_charset(text) == "varchar(10) DEFAULT 'CHARACTER SET x' COMMENT 'COLLATE y'"
    gen = "varchar(20) GENERATED ALWAYS AS (convert(`a` using latin1) collate latin1_bin) VIRTUAL"
    assert strip_charset(gen) == gen
    assert with_charset("enum('a','b') DEFAULT 'a'", "latin1", "latin1_swedish_ci") == (
        "enum('a','b') CHARACTER SET latin1 COLLATE latin1_swedish_ci DEFAULT 'a'")
    assert with_charset("int(11) DEFAULT NULL", None, None) == "int(11) DEFAULT NULL"
