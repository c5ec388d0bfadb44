import Testing
import Foundation
@testable import SluiceFormats
import SluiceCore

/// Issue 19: dates Spark wrote in its hybrid Julian/Gregorian calendar (LEGACY rebase mode,
/// `org.apache.spark.legacyDateTime` in the footer) read as Spark reads them. The fixture was
/// written by pyspark 4.3 with `spark.sql.parquet.datetimeRebaseModeInWrite=LEGACY`; pyarrow,
/// which does not rebase, reads 1000-01-01 as 1000-01-06.
@Suite struct LegacyCalendarTests {
    @Test func sparkLegacyDatesAreRebasedAsSparkReadsThem() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture("spark_legacy_dates.parquet"))))
        let file = try ParquetFile(source: MemoryRandomAccess(bytes), fileName: "spark_legacy_dates.parquet")
        let schema = TableSchema(columns: file.schema.columns)
        let reader = try ParquetBatchReader(file: file, spec: ReadSpec(schema: schema, fileName: "spark_legacy_dates.parquet"))
        let batch = try #require(try reader.next()).batch
        let dates = (0..<batch.count).map { ValueText.render(batch.columns[1], $0) ?? "NULL" }
        let times = (0..<batch.count).map { ValueText.render(batch.columns[2], $0) ?? "NULL" }
        #expect(dates == ["1000-01-01", "1582-10-04", "1582-10-15", "0001-01-01", "2000-02-29", "NULL"])
        #expect(times.map { String($0.prefix(19)) } == ["1000-01-01 12:30:15", "1582-10-04 23:59:59", "1582-10-15 00:00:01", "0001-01-01 00:00:00",
                                                         "2000-02-29 06:00:00", "NULL"], "\(times)")
    }

    @Test func sparkLegacyInt96TimestampsAreRebasedToo() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture("spark_legacy_int96.parquet"))))
        let file = try ParquetFile(source: MemoryRandomAccess(bytes), fileName: "spark_legacy_int96.parquet")
        let reader = try ParquetBatchReader(file: file, spec: ReadSpec(schema: TableSchema(columns: file.schema.columns)))
        let batch = try #require(try reader.next()).batch
        let times = (0..<batch.count).map { String((ValueText.render(batch.columns[1], $0) ?? "NULL").prefix(19)) }
        #expect(times == ["1000-01-01 12:30:15", "2000-02-29 06:00:00"], "\(times)")
    }

    @Test func theRebaseKeepsYearMonthDayAndLeavesGregorianDaysAlone() {
        #expect(LegacyCalendar.rebase(days: -354_280) == Coercion.daysFromCivil(year: 1000, month: 1, day: 1))
        #expect(LegacyCalendar.rebase(days: -141_428) == Coercion.daysFromCivil(year: 1582, month: 10, day: 4))
        #expect(LegacyCalendar.rebase(days: -141_427) == -141_427)
        #expect(LegacyCalendar.rebase(days: 11_016) == 11_016)
        #expect(LegacyCalendar.applies([.init(key: "org.apache.spark.version", value: "2.4.8")]))
        #expect(!LegacyCalendar.applies([.init(key: "org.apache.spark.version", value: "3.5.0")]))
    }
}
