public import SluiceCore

/// Infers a table schema from the first rows of a file: field names from the CSV header
/// or the JSON objects' keys (in first-seen order), types from ``TypeObserver``.
public enum SchemaSampler {
    /// The default sample: up to 10,000 rows.
    public static let defaultRows = 10_000

    /// Reads up to `rows` records and returns the inferred columns (all nullable).
    /// `exclude` names fields that are not columns (the op field).
    public static func infer(source: any ByteChunkReader, format: SourceFormat, dialect: CSVDialect = CSVDialect(),
                             rows: Int = defaultRows, exclude: Set<String> = [], limits: ReadLimits = ReadLimits(),
                             fileName: String? = nil) throws(SluiceError) -> [ColumnSchema] {
        switch format {
        case .csv: return try inferCSV(source: source, dialect: dialect, rows: rows, exclude: exclude, limits: limits, fileName: fileName)
        case .ndjson, .json:
            return try inferJSON(source: source, layout: format == .ndjson ? .lines : .detect, rows: rows, exclude: exclude, limits: limits, fileName: fileName)
        case .parquet, .avro, .delta:
            throw SluiceError(.unsupported, "\(format.rawValue) files carry their own schema; read it from the file", at: SourceLocation(file: fileName))
        case .text:
            return exclude.contains("line") ? [] : [ColumnSchema(name: "line", type: .text)]  // one column: the record
        }
    }

    /// What a CSV sample's `N/N/YYYY` values show (see ``SlashDateSniffer``): day-first when
    /// proven, and the columns that stay ambiguous (no day over 12 in the sample).
    public struct DateSniff: Sendable, Equatable {
        public var dayFirst: Bool
        public var ambiguous: [String]
    }

    /// Reads up to `rows` CSV records for dates written `dd/mm/yyyy` (never guessed).
    public static func sniffDates(source: any ByteChunkReader, dialect: CSVDialect, rows: Int, limits: ReadLimits,
                                  fileName: String?) throws(SluiceError) -> DateSniff {
        let decoder = CSVDecoder(source: source, dialect: dialect, maxRecordBytes: limits.maxRecordBytes, fileName: fileName)
        var names = dialect.header ? try CSVBatchReader.readHeader(decoder, fileName: fileName) : []
        var sniffer = SlashDateSniffer(columns: names.count)
        var seen = 0
        while seen < rows {
            let event = try decoder.next()
            guard event == .record else { if event == .end { break } else { continue } }
            if names.isEmpty {
                names = (1...decoder.fieldCount).map { "column_\($0)" }
                sniffer = SlashDateSniffer(columns: names.count)
            }
            guard decoder.fieldCount == names.count else { continue }
            for i in 0..<names.count where !decoder.isNull(i) { decoder.withField(i) { sniffer.observe(i, $0) } }
            seen += 1
        }
        return DateSniff(dayFirst: sniffer.dayFirst, ambiguous: sniffer.ambiguousColumns.map { names[$0] })
    }

    static func inferCSV(source: any ByteChunkReader, dialect: CSVDialect, rows: Int, exclude: Set<String>,
                         limits: ReadLimits, fileName: String?) throws(SluiceError) -> [ColumnSchema] {
        let decoder = CSVDecoder(source: source, dialect: dialect, maxRecordBytes: limits.maxRecordBytes, fileName: fileName)
        var names: [String]
        var observers: [TypeObserver]
        var seen = 0
        if dialect.header {
            names = try CSVBatchReader.readHeader(decoder, fileName: fileName)
        } else {
            names = []
        }
        observers = Array(repeating: TypeObserver(), count: names.count)
        var number: [UInt8] = []
        decoder.skipBlankLines = names.count != 1
        while seen < rows {
            let event = try decoder.next()
            guard event == .record else { if event == .end { break } else { continue } }
            if names.isEmpty {
                names = (1...decoder.fieldCount).map { "column_\($0)" }
                observers = Array(repeating: TypeObserver(), count: names.count)
            }
            guard decoder.fieldCount == names.count else { continue }
            for i in 0..<names.count {
                if decoder.isNull(i) {
                    observers[i].observeNull()
                } else if dialect.localDates {
                    // `25/12/2024` is observed as `2024-12-25` when the dialect's formats read it.
                    decoder.withField(i) { raw in
                        if dialect.normalizeDate(raw, timestamp: true, into: &number) {
                            number.withUnsafeBytes { observers[i].observe(text: $0) }
                        } else if dialect.localNumbers, dialect.normalizeNumber(raw, into: &number),
                                  number.withUnsafeBytes({ Coercion.parseDouble(Coercion.trimmed($0)) != nil }) {
                            number.withUnsafeBytes { observers[i].observe(text: $0) }
                        } else {
                            observers[i].observe(text: raw)
                        }
                    }
                } else if dialect.localNumbers {
                    // `1.234,56` is observed as `1234.56` when it reads as a number that way.
                    decoder.withField(i) { raw in
                        guard dialect.normalizeNumber(raw, into: &number) else { return observers[i].observe(text: raw) }
                        number.withUnsafeBytes { n in
                            if Coercion.parseDouble(Coercion.trimmed(n)) != nil { observers[i].observe(text: n) } else { observers[i].observe(text: raw) }
                        }
                    }
                } else {
                    decoder.withField(i) { observers[i].observe(text: $0) }
                }
            }
            seen += 1
        }
        return zip(names, observers).filter { !exclude.contains($0.0) }.map { name, obs in
            ColumnSchema(name: name, type: obs.inferred, nullable: true, source: dialect.header ? nil : String(names.firstIndex(of: name)! + 1))
        }
    }

    static func inferJSON(source: any ByteChunkReader, layout: JSONFramer.Layout, rows: Int, exclude: Set<String>,
                          limits: ReadLimits, fileName: String?) throws(SluiceError) -> [ColumnSchema] {
        let framer = JSONFramer(source: source, layout: layout, maxRecordBytes: limits.maxRecordBytes, fileName: fileName)
        var names: [String] = []
        var observers: [String: TypeObserver] = [:]
        var seen = 0
        while seen < rows {
            let event = try framer.next()
            if event == .end { break }
            guard event == .record, case .object(let members)? = try? JSONParser.parse(framer.record) else { continue }
            var present = Set<String>()
            for m in members where !exclude.contains(m.key) {
                if observers[m.key] == nil {
                    names.append(m.key)
                    // Keys first seen late were missing (NULL) in every earlier record.
                    var o = TypeObserver()
                    for _ in 0..<seen { o.observeNull() }
                    observers[m.key] = o
                }
                observers[m.key]!.observe(json: m.value)
                present.insert(m.key)
            }
            for n in names where !present.contains(n) { observers[n]!.observeNull() }
            seen += 1
        }
        return names.map { ColumnSchema(name: $0, type: observers[$0]!.inferred, nullable: true) }
    }
}
