import SluiceCore

/// Dates and timestamps that Spark 2 (and Spark 3 in LEGACY mode) wrote in its hybrid
/// calendar — Julian before 1582-10-15, Gregorian after — rebased to the proleptic Gregorian
/// calendar every other reader (and Sluice) uses, as Spark itself reads them. The file says so
/// with the `org.apache.spark.legacyDateTime` key, or by being written by Spark 1.x or 2.x.
enum LegacyCalendar {
    /// 1582-10-15, the first Gregorian day, in days since 1970-01-01 (both calendars agree from it).
    static let cutoverDays: Int64 = -141_427

    /// Whether `metadata` marks the file's dates and TIMESTAMP_MILLIS/MICROS values (or, with
    /// `int96`, its INT96 timestamps) as hybrid.
    static func applies(_ metadata: [Parquet.KeyValue], int96: Bool = false) -> Bool {
        let key = int96 ? "org.apache.spark.legacyINT96" : "org.apache.spark.legacyDateTime"
        if metadata.contains(where: { $0.key == key }) { return true }
        guard let version = metadata.first(where: { $0.key == "org.apache.spark.version" })?.value else { return false }
        return version.hasPrefix("1.") || version.hasPrefix("2.")
    }

    /// Hybrid-calendar `days` as proleptic Gregorian days: the same year, month and day.
    static func rebase(days: Int64) -> Int64 {
        guard days < cutoverDays, days > -2_400_000 else { return days }  // from 4713 BC on the formulas hold
        let jdn = days + 2_440_588  // Julian day number
        let c = jdn + 32_082
        let d = (4 * c + 3) / 1461
        let e = c - 1461 * d / 4
        let m = (5 * e + 2) / 153
        let day = e - (153 * m + 2) / 5 + 1
        let month = m + 3 - 12 * (m / 10)
        let year = d - 4800 + m / 10
        return Coercion.daysFromCivil(year: Int(year), month: Int(month), day: Int(day))
    }

    /// Hybrid-calendar microseconds (UTC) rebased the same way, the time of day kept.
    static func rebase(micros: Int64) -> Int64 {
        let day: Int64 = 86_400_000_000
        guard micros < cutoverDays * day else { return micros }
        let days = micros >= 0 ? micros / day : (micros - (day - 1)) / day
        return rebase(days: days) * day + (micros - days * day)
    }

    /// Rebases a decoded column of `kind` in place: dates and millisecond/microsecond
    /// timestamps under `dates`, INT96 timestamps under `int96`.
    static func rebase(_ col: inout Column, kind: ParquetValueMapping.Kind, dates: Bool, int96: Bool) {
        switch kind {
        case .date32 where dates:
            for i in col.ints.indices where col.ints[i] < cutoverDays && col.validity[i] { col.ints[i] = rebase(days: col.ints[i]) }
        case .timestampMicros where dates, .timestampMillis where dates, .int96Timestamp where int96:
            for i in col.ints.indices where col.ints[i] < cutoverDays * 86_400_000_000 && col.validity[i] { col.ints[i] = rebase(micros: col.ints[i]) }
        default: break
        }
    }
}
