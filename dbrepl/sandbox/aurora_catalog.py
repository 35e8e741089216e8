"""What Aurora MySQL offers, as the sandbox's AWS answers it: engine versions and the DB
instance classes orderable for each. Data only, one place.

Sources (AWS documentation, read 2026-11):
- Amazon Aurora User Guide, "Supported DB engines for DB instance classes"
  (Concepts.DBInstanceClass.SupportAurora): the instance classes Aurora MySQL supports;
  most rows read "All currently available versions", db.serverless and the newer
  Graviton/Intel generations need Aurora MySQL 3.
- Aurora MySQL Release Notes, "Release calendars for Aurora MySQL" and the document history:
  the versions available (Aurora MySQL 3, MySQL 8.0 compatible; Aurora MySQL 2, MySQL 5.7
  compatible, on RDS Extended Support). Older minor versions are deprecated and not listed.

db.t2.* and db.m* classes are not offered for Aurora MySQL 2 or 3; db.t3.small only for 2.
Real AWS also varies by region; the sandbox answers the same everywhere.
"""

from __future__ import annotations

ENGINE = "aurora-mysql"
SOURCE = ("AWS documentation: Amazon Aurora User Guide, 'Supported DB engines for DB instance classes'; "
          "Aurora MySQL Release Notes, 'Release calendars for Aurora MySQL'")

# Aurora MySQL 3 (MySQL 8.0 compatible): versions still available to create.
VERSIONS_3 = (
    "8.0.mysql_aurora.3.04.0", "8.0.mysql_aurora.3.04.1", "8.0.mysql_aurora.3.04.2", "8.0.mysql_aurora.3.04.3",
    "8.0.mysql_aurora.3.04.4", "8.0.mysql_aurora.3.05.2", "8.0.mysql_aurora.3.06.0", "8.0.mysql_aurora.3.06.1",
    "8.0.mysql_aurora.3.07.0", "8.0.mysql_aurora.3.07.1", "8.0.mysql_aurora.3.08.0", "8.0.mysql_aurora.3.08.1",
    "8.0.mysql_aurora.3.08.2", "8.0.mysql_aurora.3.09.0", "8.0.mysql_aurora.3.10.0", "8.0.mysql_aurora.3.10.1",
    "8.0.mysql_aurora.3.10.2", "8.0.mysql_aurora.3.10.3", "8.0.mysql_aurora.3.10.4", "8.0.mysql_aurora.3.11.0",
    "8.0.mysql_aurora.3.11.1", "8.0.mysql_aurora.3.12.0",
)
# Aurora MySQL 2 (MySQL 5.7 compatible): past standard support, on RDS Extended Support.
VERSIONS_2 = (
    "5.7.mysql_aurora.2.11.1", "5.7.mysql_aurora.2.11.2", "5.7.mysql_aurora.2.11.3", "5.7.mysql_aurora.2.11.4",
    "5.7.mysql_aurora.2.11.5", "5.7.mysql_aurora.2.11.6", "5.7.mysql_aurora.2.12.0", "5.7.mysql_aurora.2.12.1",
    "5.7.mysql_aurora.2.12.2", "5.7.mysql_aurora.2.12.3", "5.7.mysql_aurora.2.12.4", "5.7.mysql_aurora.2.12.5",
    "5.7.mysql_aurora.2.12.6",
)

_SIZES = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")
_R5_SIZES = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")


def _family(family: str, sizes: tuple[str, ...] = _SIZES) -> tuple[str, ...]:
    return tuple(f"db.{family}.{s}" for s in sizes)


# Offered for every available version of both major versions.
_COMMON = (*_family("r5", _R5_SIZES), *_family("r6g"), *_family("r6i", (*_SIZES, "24xlarge", "32xlarge")),
           "db.t3.medium", "db.t3.large", "db.t4g.medium", "db.t4g.large")
# Aurora MySQL 3 only.
_ONLY_3 = ("db.serverless", *_family("r7g"), *_family("r7i", (*_SIZES, "24xlarge", "48xlarge")),
           *_family("r8g", (*_SIZES, "24xlarge", "48xlarge")), *_family("x2g", _SIZES[1:]),
           *_family("r6gd", _SIZES[1:]), *_family("r6id", _SIZES[1:]))
# Aurora MySQL 2 only.
_ONLY_2 = ("db.t3.small",)

CLASSES_3 = tuple(sorted({*_COMMON, *_ONLY_3}))
CLASSES_2 = tuple(sorted({*_COMMON, *_ONLY_2}))


def versions() -> tuple[str, ...]:
    return (*VERSIONS_2, *VERSIONS_3)


def classes_for(version: str) -> tuple[str, ...]:
    """The instance classes orderable for `version` (none for a version not offered)."""
    if version in VERSIONS_3:
        return CLASSES_3
    if version in VERSIONS_2:
        return CLASSES_2
    return ()


def family_of(version: str) -> str:
    return "aurora-mysql8.0" if version.startswith("8.0.") else "aurora-mysql5.7"


def default_version() -> str:
    return "8.0.mysql_aurora.3.10.0"  # the current LTS line (Release Notes: 3.10, GA 2025-07-31)
