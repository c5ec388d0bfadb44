import SluiceCore

/// Turns columns decoded in a file's own types (Parquet, Avro) into a batch of the target
/// schema. When every column already has its target type, holds no NULL a NOT NULL column
/// refuses, and no row deletes, the columns are taken as they are; otherwise rows go one by
/// one through a ``BatchBuilder``, so a value that does not fit rejects only its row.
struct TypedBatchConverter {
    let schema: TableSchema
    var builder: BatchBuilder

    init(schema: TableSchema, capacity: Int) {
        self.schema = schema
        self.builder = BatchBuilder(schema: schema, capacity: capacity)
    }

    /// - Parameters:
    ///   - columns: per target column, its decoded values, or nil when the file lacks it.
    ///   - trusted: per column, whether json values were built by the reader (valid by
    ///     construction) rather than read as text from the file.
    ///   - ops: the op field's values as text, when merging with an op field.
    ///   - firstLine: the ordinal (from 1) of the first row, used as its line.
    mutating func convert(_ columns: [Column?], trusted: [Bool], ops: Column?, count n: Int, firstLine: Int64,
                          opField: String?) -> DecodedBatch {
        var rowOps = [RowOp](repeating: .upsert, count: n)
        var badOps: [Int: String] = [:]
        if let ops {
            for i in 0..<n where !ops.isNull(i) {
                let op = ops.withBytes(at: i) { RowOp.parse($0) }
                if let op { rowOps[i] = op } else { badOps[i] = ValueText.render(ops, i) ?? "" }
            }
        }
        if badOps.isEmpty && !rowOps.contains(.delete),
           let batch = direct(columns, trusted: trusted, count: n, firstLine: firstLine) {
            return DecodedBatch(batch: batch, rejects: [])
        }
        var rejects: [RowReject] = []
        // Read in place, not bound per value: `if let col = columns[c]` copied a column (a
        // retain and release of each of its arrays) for every value.
        let present = columns.map { $0 != nil }
        let source = columns.map { $0 ?? Column(type: .text) }
        source.withUnsafeBufferPointer { source in
            for i in 0..<n {
                let line = firstLine + Int64(i)
                builder.beginRow(line: line, op: rowOps[i])
                if let bad = badOps[i] { builder.fail(column: opField, "unknown op '\(SourceLocation.excerpt(bad))' (use I, U or D)") }
                for c in source.indices {
                    if present[c] { builder.setValue(c, from: source[c], at: i) } else { builder.setNull(c) }
                }
                if var r = builder.endRow() {
                    r.fields = columns.map { $0.flatMap { ValueText.render($0, i) } } + (ops.map { [ValueText.render($0, i)] } ?? [])
                    rejects.append(r)
                }
            }
        }
        return DecodedBatch(batch: builder.take(), rejects: rejects)
    }

    /// The batch made of the columns as they are, or nil when any needs converting.
    func direct(_ columns: [Column?], trusted: [Bool], count n: Int, firstLine: Int64) -> RecordBatch? {
        var out = RecordBatch(fields: schema.fields)
        for (c, target) in schema.columns.enumerated() {
            guard let col = columns[c] else {
                guard target.nullable else { return nil }
                var empty = Column(type: target.type, capacity: n)
                for _ in 0..<n { empty.appendNull() }
                out.columns[c] = empty
                continue
            }
            guard col.type == target.type, col.count == n else { return nil }
            if target.type == .json && !trusted[c] { return nil }
            if !target.nullable && col.validity.contains(false) { return nil }
            if target.type == .text && !Self.validText(col) { return nil }
            out.columns[c] = col
        }
        out.lines = (0..<Int64(n)).map { firstLine + $0 }
        out.ops = [RowOp](repeating: .upsert, count: n)
        return out
    }

    /// Whether every value of a text column is valid UTF-8: the whole buffer is, and no value
    /// starts inside a character.
    static func validText(_ col: Column) -> Bool {
        let ok = col.data.withUnsafeBytes { Coercion.isValidUTF8($0) }
        guard ok else { return false }
        let data = col.data
        for o in col.offsets where o < data.count && data[o] & 0xC0 == 0x80 { return false }
        return true
    }
}

/// A reader of a self-describing file (Parquet, Avro): its rejects hold the row's values as
/// read, one field per column, then the op field.
protocol TypedFileReader: BatchReader {
    var spec: ReadSpec { get }
    /// The next batch; errors need not name the file (``next()`` adds it).
    func nextBatch() throws(SluiceError) -> DecodedBatch?
}

extension TypedFileReader {
    public func next() throws(SluiceError) -> DecodedBatch? {
        do throws(SluiceError) {
            return try nextBatch()
        } catch {
            throw spec.fileName.map { error.inFile($0) } ?? error
        }
    }

    public var rejectFields: [String] { spec.schema.columns.map(\.sourceField) + (spec.opField.map { [$0] } ?? []) }

    public func sourceRecord(columnValues: [String?]) -> [String?] { columnValues + (spec.opField == nil ? [] : [nil]) }
}
