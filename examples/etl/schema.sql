-- The load's table, emptied before each load (the pipeline is idempotent).
CREATE TABLE IF NOT EXISTS daily_totals (
    day date NOT NULL,
    region text NOT NULL,
    orders integer NOT NULL,
    amount_cents bigint NOT NULL,
    PRIMARY KEY (day, region)
);
TRUNCATE daily_totals;
