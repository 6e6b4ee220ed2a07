"""Transform (PySpark): orders.csv -> totals per day and region, as one CSV file for the load.

The files are the driver's (the step's directories): the executors run on the cluster's workers,
which do not see them, so the driver reads the orders and writes the totals, and the cluster does
the aggregation. (At a size where that matters, the source and target are shared storage, e.g.
s3a:// or hdfs:// paths, read and written by the executors themselves.)"""

import csv
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

SCHEMA = StructType([StructField("order_id", LongType()), StructField("day", StringType()),
                     StructField("region", StringType()), StructField("amount_cents", IntegerType())])


def main(source: str, target: str) -> None:
    spark = SparkSession.builder.appName("etl-transform").getOrCreate()
    with open(source, newline="") as fh:
        rows = [(int(r["order_id"]), r["day"], r["region"], int(r["amount_cents"])) for r in csv.DictReader(fh)]
    orders = spark.createDataFrame(rows, SCHEMA)
    totals = (orders.groupBy("day", "region")
              .agg(F.count("*").alias("orders"), F.sum("amount_cents").alias("amount_cents"))
              .orderBy("day", "region")
              .collect())
    with open(target, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["day", "region", "orders", "amount_cents"])
        for row in totals:
            out.writerow([row["day"], row["region"], row["orders"], row["amount_cents"]])
    print(f"{len(totals)} rows of totals written to {target}", flush=True)
    print(f"action meta: rows={len(totals)}", flush=True)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
