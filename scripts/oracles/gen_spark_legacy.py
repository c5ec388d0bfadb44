#!/usr/bin/env python3
"""Writes Tests/SluiceFormatsTests/Fixtures/spark_legacy_dates.parquet: dates and timestamps
before 1582 in Spark's hybrid calendar (LEGACY rebase on write), run from the repository root."""
import datetime, shutil, glob
from pyspark.sql import SparkSession
from pyspark.sql.types import *
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled","false").config("spark.sql.session.timeZone","UTC")
         .config("spark.driver.bindAddress","127.0.0.1").config("spark.driver.host","127.0.0.1")
         .config("spark.driver.extraJavaOptions","-Duser.timezone=UTC").getOrCreate())
spark.conf.set("spark.sql.parquet.datetimeRebaseModeInWrite", "LEGACY")
spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
rows = [(1, datetime.date(1000,1,1), datetime.datetime(1000,1,1,12,30,15)),
        (2, datetime.date(1582,10,4), datetime.datetime(1582,10,4,23,59,59)),
        (3, datetime.date(1582,10,15), datetime.datetime(1582,10,15,0,0,1)),
        (4, datetime.date(1,1,1), datetime.datetime(1,1,1,0,0,0)),
        (5, datetime.date(2000,2,29), datetime.datetime(2000,2,29,6,0,0)),
        (6, None, None)]
schema = StructType([StructField("id", IntegerType()), StructField("d", DateType()), StructField("ts", TimestampType())])
spark.createDataFrame(rows, schema).coalesce(1).write.mode("overwrite").parquet("/tmp/sluice-spark-legacy")
f = glob.glob("/tmp/sluice-spark-legacy/*.parquet")[0]
shutil.copy(f, "Tests/SluiceFormatsTests/Fixtures/spark_legacy_dates.parquet")

# INT96 timestamps (Spark's default output type) in the hybrid calendar too.
spark.conf.set("spark.sql.parquet.int96RebaseModeInWrite", "LEGACY")
spark.conf.set("spark.sql.parquet.outputTimestampType", "INT96")
rows = [(1, datetime.datetime(1000, 1, 1, 12, 30, 15)), (2, datetime.datetime(2000, 2, 29, 6, 0, 0))]
schema = StructType([StructField("id", IntegerType()), StructField("ts", TimestampType())])
spark.createDataFrame(rows, schema).coalesce(1).write.mode("overwrite").parquet("/tmp/sluice-spark-int96")
shutil.copy(glob.glob("/tmp/sluice-spark-int96/*.parquet")[0], "Tests/SluiceFormatsTests/Fixtures/spark_legacy_int96.parquet")
