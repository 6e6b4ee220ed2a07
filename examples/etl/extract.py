"""Extract: orders as CSV (generated here, so the example needs no download): order id, day,
region, amount in cents. Deterministic: the check step knows what the load must hold."""

import csv
import sys

REGIONS = ("north", "south", "east", "west")


def main(path: str, rows: int) -> None:
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["order_id", "day", "region", "amount_cents"])
        for i in range(rows):
            out.writerow([i, f"2026-11-{1 + i % 28:02d}", REGIONS[i % len(REGIONS)], 100 + (i * 37) % 900])


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000)
