#!/usr/bin/env bash
# Rebuilds tests/data/tuning_db_v1.db from tuning_db_v1.sql (needs the sqlite3 shell:
# apt-get install sqlite3). The result is committed so the migration test needs no shell.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rm -f "$here/tuning_db_v1.db"
sqlite3 "$here/tuning_db_v1.db" < "$here/tuning_db_v1.sql"
sqlite3 "$here/tuning_db_v1.db" "PRAGMA integrity_check; PRAGMA user_version;"
