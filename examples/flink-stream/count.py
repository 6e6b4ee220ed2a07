"""A streaming count: a datagen sequence counted by SQL and printed by the TaskManager. Its state
(the sequence's position and the count) is in every savepoint, so an upgrade of the service
(a new release, a new parallelism, a rollback) carries on counting where the last job stopped."""

import sys

from pyflink.table import EnvironmentSettings, TableEnvironment

rate = sys.argv[1] if len(sys.argv) > 1 else "10"
env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
env.execute_sql(
    "CREATE TABLE clicks (n BIGINT) WITH ('connector'='datagen', "
    f"'rows-per-second'='{int(rate)}', 'fields.n.kind'='sequence', 'fields.n.start'='1', 'fields.n.end'='100000')"
)
env.execute_sql("CREATE TABLE counts (c BIGINT, last_n BIGINT) WITH ('connector'='print', 'print-identifier'='clicks')")
env.execute_sql("INSERT INTO counts SELECT COUNT(*), MAX(n) FROM clicks")
