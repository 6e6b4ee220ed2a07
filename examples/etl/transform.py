"""Transform (PySpark): orders.csv -> totals per day and region, as one CSV file for the load."""

import glob
import os
import shutil
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main(source: str, target: str) -> None:
    spark = SparkSession.builder.appName("etl-transform").getOrCreate()
    orders = spark.read.option("header", True).option("inferSchema", True).csv(source)
    totals = (orders.groupBy("day", "region")
              .agg(F.count("*").alias("orders"), F.sum("amount_cents").alias("amount_cents"))
              .orderBy("day", "region"))
    out = target + ".parts"
    totals.coalesce(1).write.mode("overwrite").option("header", True).csv(out)
    shutil.move(glob.glob(os.path.join(out, "part-*.csv"))[0], target)
    shutil.rmtree(out)
    count = totals.count()
    print(f"{count} rows of totals written to {target}", flush=True)
    print(f"action meta: rows={count}", flush=True)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
