public import SluiceCore

/// Reads CSV into batches of a target schema. Columns are matched to header names
/// (exactly, then ignoring case), or by position when the file has no header.
public final class CSVBatchReader: BatchReader {
    let decoder: CSVDecoder
    var builder: BatchBuilder
    let spec: ReadSpec
    /// Field index feeding each schema column.
    let mapping: [Int]
    let opIndex: Int?
    public let sourceFields: [String]
    public let unusedFields: [String]
    var expectedFields: Int
    /// A first data record read while learning a header-less file's width.
    var pendingFirstRecord = false
    var finished = false

    public var bytesConsumed: Int64 { decoder.bytesConsumed }

    public init(source: any ByteChunkReader, dialect: CSVDialect, spec: ReadSpec) throws(SluiceError) {
        let decoder = CSVDecoder(source: source, dialect: dialect, maxRecordBytes: spec.limits.maxRecordBytes, fileName: spec.fileName,
                                 firstLine: spec.firstLine)
        self.spec = spec
        self.builder = BatchBuilder(schema: spec.schema, capacity: spec.limits.batchRows)
        if dialect.localNumbers { builder.numbers = dialect }
        if dialect.localDates { builder.dates = dialect }
        builder.naiveZone = spec.naiveZone
        let names: [String]
        if let known = spec.knownHeader {
            names = known
        } else if dialect.header {
            names = try CSVBatchReader.readHeader(decoder, fileName: spec.fileName)
        } else {
            // The first record tells the width; it is data, so keep it for next().
            switch try decoder.next() {
            case .record: names = (1...decoder.fieldCount).map { "column_\($0)" }; pendingFirstRecord = true
            case .tooLong, .end: names = spec.schema.columns.indices.map { "column_\($0 + 1)" }
            }
        }
        decoder.skipBlankLines = names.count > 1
        self.decoder = decoder
        self.sourceFields = names
        self.expectedFields = names.count
        self.mapping = try CSVBatchReader.map(schema: spec.schema, to: names, header: dialect.header || spec.knownHeader != nil, fileName: spec.fileName)
        self.opIndex = spec.opField.flatMap { CSVBatchReader.find($0, in: names) }
        var used = Set(mapping)
        if let opIndex { used.insert(opIndex) }
        self.unusedFields = names.enumerated().filter { !used.contains($0.offset) }.map(\.element)
    }

    /// Reads the header record: names trimmed, empty names become `column_N`, duplicates refused.
    static func readHeader(_ decoder: CSVDecoder, fileName: String?) throws(SluiceError) -> [String] {
        guard case .record = try decoder.next() else {
            throw SluiceError(.malformedFile, "the file is empty: no header line", at: SourceLocation(file: fileName, line: 1))
        }
        var names: [String] = []
        var seen = Set<String>()
        for i in 0..<decoder.fieldCount {
            let valid = decoder.withField(i) { Coercion.isValidUTF8($0) }
            guard valid else {
                throw SluiceError(.malformedFile, "header field \(i + 1) is not valid UTF-8", at: SourceLocation(file: fileName, line: decoder.line))
            }
            var name = decoder.withField(i) { String(decoding: $0, as: UTF8.self) }.trimmingSpaces()
            if name.isEmpty { name = "column_\(i + 1)" }
            guard seen.insert(name).inserted else {
                throw SluiceError(.malformedFile, "header names column '\(name)' twice", at: SourceLocation(file: fileName, line: decoder.line))
            }
            names.append(name)
        }
        return names
    }

    static func find(_ field: String, in names: [String]) -> Int? {
        if let i = names.firstIndex(of: field) { return i }
        let lower = field.lowercased()
        return names.firstIndex { $0.lowercased() == lower }
    }

    static func map(schema: TableSchema, to names: [String], header: Bool, fileName: String?) throws(SluiceError) -> [Int] {
        var out: [Int] = []
        var missing: [String] = []
        for (pos, col) in schema.columns.enumerated() {
            if let i = find(col.sourceField, in: names) {
                out.append(i)
            } else if !header, let n = Int(col.sourceField), n >= 1, n <= names.count {
                out.append(n - 1)
            } else if !header, col.source == nil, pos < names.count {
                out.append(pos)
            } else {
                missing.append(col.source.map { "\(col.name) (from '\($0)')" } ?? col.name)
            }
        }
        if !missing.isEmpty {
            throw SluiceError(.invalidSchema, "columns not found in the file: \(missing.joined(separator: ", ")); the file has: \(names.joined(separator: ", "))",
                              at: SourceLocation(file: fileName, line: header ? 1 : nil))
        }
        return out
    }

    public var rejectFields: [String] { sourceFields }

    public func sourceRecord(columnValues: [String?]) -> [String?] {
        var out = [String?](repeating: nil, count: sourceFields.count)
        for (c, f) in mapping.enumerated() where c < columnValues.count { out[f] = columnValues[c] }
        return out
    }

    public func next() throws(SluiceError) -> DecodedBatch? {
        if finished { return nil }
        var rejects: [RowReject] = []
        // One exclusive access to the builder for the whole batch, not one per field.
        try fill(&builder, &rejects)
        if builder.count == 0 && rejects.isEmpty { return nil }
        return DecodedBatch(batch: builder.take(), rejects: rejects)
    }

    func fill(_ builder: inout BatchBuilder, _ rejects: inout [RowReject]) throws(SluiceError) {
        let limit = spec.limits.batchRows
        let decoder = self.decoder
        let mapping = self.mapping
        while builder.count < limit {
            let event: CSVDecoder.Event
            if pendingFirstRecord { pendingFirstRecord = false; event = .record } else { event = try decoder.next() }
            switch event {
            case .end:
                finished = true
                return
            case .tooLong(let bytes):
                rejects.append(RowReject(line: decoder.line, reason: "record of \(bytes) bytes is longer than the limit of \(spec.limits.maxRecordBytes) bytes"))
            case .record:
                let line = decoder.line
                if decoder.fieldCount != expectedFields {
                    rejects.append(RowReject(line: line, reason: "expected \(expectedFields) fields, found \(decoder.fieldCount)", fields: decoder.fieldStrings()))
                    continue
                }
                var op = RowOp.upsert
                var badOp: String? = nil
                if let o = opIndex, !decoder.isNull(o) {
                    if let parsed = decoder.withField(o, { RowOp.parse($0) }) { op = parsed } else {
                        badOp = decoder.withField(o) { SourceLocation.excerpt(String(decoding: $0, as: UTF8.self)) }
                    }
                }
                builder.beginRow(line: line, op: op)
                if let badOp { builder.fail(column: sourceFields[opIndex!], "unknown op '\(badOp)' (use I, U or D)") }
                decoder.forEachField(mapping) { c, bytes in
                    if let bytes { builder.setText(c, bytes) } else { builder.setNull(c) }
                }
                if var r = builder.endRow() {
                    r.fields = decoder.fieldStrings()
                    rejects.append(r)
                }
            }
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
