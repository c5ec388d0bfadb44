public import SluiceCore

/// Reads an Avro object container file into batches of a target schema. Each column's
/// source field is a top-level field of the file's record (nested values arrive as JSON);
/// fields no column reads are skipped. A row's line is its ordinal in the file.
public final class AvroBatchReader: TypedFileReader {
    let file: AvroReader
    let spec: ReadSpec
    let fields: [AvroSchema.Field]
    /// Per file field: the natural column it fills, or nil to skip it.
    let fieldColumn: [Int?]
    let plans: [AvroPlan]
    let columnSource: [Int?]
    let opSource: Int?
    let naturalTypes: [ColumnType]
    /// Per natural column: JSON Sluice renders itself (valid by construction).
    let naturalTrusted: [Bool]
    var converter: TypedBatchConverter
    /// When every field is a (nullable) string: per field its null branch (-1: not a union),
    /// read straight into the target's builder like CSV fields, with no column in between.
    let textNullBranch: [Int64]?
    /// Per target column, the file field it reads (nil: NULL).
    let columnField: [Int?]
    let opField: Int?
    var builder: BatchBuilder
    var fieldStart: [Int]
    var fieldLength: [Int]
    public let sourceFields: [String]
    public let unusedFields: [String]

    var block: [UInt8] = []
    var blockLeft = 0
    var blockPos = 0
    var nextLine: Int64 = 1
    var scratch: [UInt8] = []

    public var bytesConsumed: Int64 { file.bytesConsumed }

    public convenience init(source: any ByteChunkReader, spec: ReadSpec) throws(SluiceError) {
        try self.init(file: try AvroReader(source: source, fileName: spec.fileName), spec: spec)
    }

    public init(file: AvroReader, spec: ReadSpec) throws(SluiceError) {
        self.file = file
        self.spec = spec
        guard case .record(_, let fields) = file.schema.kind else {
            throw SluiceError(.unsupported, "the Avro file holds \(file.schema.columnType) values, not records", at: SourceLocation(file: spec.fileName))
        }
        self.fields = fields
        sourceFields = fields.map(\.name)
        var natural: [Int] = []  // field index per natural column
        func bind(_ name: String) -> Int? {
            guard let f = fields.firstIndex(where: { $0.name == name }) else { return nil }
            if let i = natural.firstIndex(of: f) { return i }
            natural.append(f)
            return natural.count - 1
        }
        columnSource = spec.schema.columns.map { bind($0.sourceField) }
        opSource = spec.opField.flatMap { bind($0) }
        fieldColumn = fields.indices.map { natural.firstIndex(of: $0) }
        plans = fields.map { AvroPlan($0.type) }
        naturalTypes = natural.map { fields[$0].type.columnType }
        let plans = self.plans
        naturalTrusted = natural.map { f in
            switch plans[f] {
            case .json, .nullable(_, .json): true
            default: false
            }
        }
        let used = Set(natural)
        unusedFields = fields.indices.filter { !used.contains($0) }.map { fields[$0].name }
        let branches = self.plans.map { p -> Int64? in
            switch p {
            case .text: -1
            case .nullable(let ni, .text): ni
            default: nil
            }
        }
        textNullBranch = branches.allSatisfy { $0 != nil } ? branches.map { $0 ?? -1 } : nil
        columnField = columnSource.map { $0.map { natural[$0] } }
        opField = opSource.map { natural[$0] }
        // Only the path this file takes reserves a batch's room.
        converter = TypedBatchConverter(schema: spec.schema, capacity: textNullBranch == nil ? spec.limits.batchRows : 0)
        builder = BatchBuilder(schema: spec.schema, capacity: textNullBranch == nil ? 0 : spec.limits.batchRows)
        fieldStart = Array(repeating: -1, count: fields.count)
        fieldLength = Array(repeating: 0, count: fields.count)
    }

    func nextBatch() throws(SluiceError) -> DecodedBatch? {
        var natural = textNullBranch != nil ? [] : naturalTypes.map { Column(type: $0, capacity: spec.limits.batchRows) }
        var rejects: [RowReject] = []
        var n = 0
        let first = nextLine
        while n < spec.limits.batchRows {
            if blockLeft == 0 {
                if !block.isEmpty && blockPos != block.count {
                    throw SluiceError(.malformedFile, "an Avro block has \(block.count - blockPos) bytes after its last object", at: SourceLocation(file: spec.fileName))
                }
                guard let b = try file.nextBlock() else { break }
                block = b.data
                blockLeft = b.count
                blockPos = 0
                continue
            }
            let take = min(blockLeft, spec.limits.batchRows - n)
            if let branches = textNullBranch {
                try decodeText(rows: take, line: first + Int64(n), nullBranch: branches, rejects: &rejects)
            } else {
                try decode(rows: take, line: first + Int64(n), into: &natural)
            }
            blockLeft -= take
            n += take
        }
        if n == 0 { return nil }
        nextLine += Int64(n)
        if textNullBranch != nil { return DecodedBatch(batch: builder.take(), rejects: rejects) }
        let trusted = naturalTrusted
        let ops = opSource.map { ParquetBatchReader.text(natural[$0]) }
        return converter.convert(columnSource.map { $0.map { natural[$0] } }, trusted: columnSource.map { $0.map { trusted[$0] } ?? false },
                                 ops: ops, count: n, firstLine: first, opField: spec.opField)
    }

    /// Records of strings, each field found in place and coerced from its text as a CSV
    /// field would be: the same values, rejects and messages as the general path.
    func decodeText(rows: Int, line: Int64, nullBranch: [Int64], rejects: inout [RowReject]) throws(SluiceError) {
        // The reader's state goes in as inout (one exclusive access for the whole block, not
        // a checked access per field).
        try Self.decodeText(block, at: &blockPos, rows: rows, line: line, nullBranch: nullBranch, columnField: columnField, opField: opField,
                            spec: spec, builder: &builder, starts: &fieldStart, lengths: &fieldLength, rejects: &rejects)
    }

    static func decodeText(_ block: [UInt8], at blockPos: inout Int, rows: Int, line: Int64, nullBranch: [Int64], columnField: [Int?], opField: Int?,
                           spec: ReadSpec, builder: inout BatchBuilder, starts: inout [Int], lengths: inout [Int],
                           rejects: inout [RowReject]) throws(SluiceError) {
        try block.withBytes { (b) throws(SluiceError) in
            var c = AvroCursor(b)
            c.pos = blockPos
            var row = 0
            func text(_ f: Int) -> UnsafeRawBufferPointer? {
                starts[f] < 0 ? nil : UnsafeRawBufferPointer(rebasing: b[starts[f]..<(starts[f] + lengths[f])])
            }
            do throws(SluiceError) {
                while row < rows {
                    for f in nullBranch.indices {
                        if nullBranch[f] >= 0 {
                            let branch = try c.long()
                            if branch == nullBranch[f] {
                                starts[f] = -1
                                continue
                            }
                            guard branch == 1 - nullBranch[f] else { throw SluiceError(.malformedFile, "union branch \(branch) of 2") }
                        }
                        let n = try c.length()
                        starts[f] = c.pos
                        lengths[f] = n
                        c.pos += n
                    }
                    var op = RowOp.upsert
                    var badOp: String? = nil
                    if let of = opField, let raw = text(of) {
                        if let o = RowOp.parse(raw) { op = o } else { badOp = String(decoding: raw, as: UTF8.self) }
                    }
                    builder.beginRow(line: line + Int64(row), op: op)
                    if let badOp { builder.fail(column: spec.opField, "unknown op '\(SourceLocation.excerpt(badOp))' (use I, U or D)") }
                    for (col, f) in columnField.enumerated() {
                        if let f, let raw = text(f) { builder.setText(col, raw) } else { builder.setNull(col) }
                    }
                    if var r = builder.endRow() {
                        r.fields = columnField.map { $0.flatMap(text).map { String(decoding: $0, as: UTF8.self) } }
                            + (opField.map { [text($0).map { String(decoding: $0, as: UTF8.self) }] } ?? [])
                        rejects.append(r)
                    }
                    row += 1
                }
            } catch {
                throw SluiceError(error.code, "record \(line + Int64(row)): \(error.message)", at: SourceLocation(file: spec.fileName))
            }
            blockPos = c.pos
        }
    }

    func decode(rows: Int, line: Int64, into natural: inout [Column]) throws(SluiceError) {
        let fileName = spec.fileName
        try block.withBytes { (b) throws(SluiceError) in
            var c = AvroCursor(b)
            c.pos = blockPos
            var row = 0
            do throws(SluiceError) {
                while row < rows {
                    for f in fields.indices {
                        if let col = fieldColumn[f] {
                            try AvroValues.read(plans[f], &c, into: &natural[col], scratch: &scratch)
                        } else {
                            try AvroValues.skip(fields[f].type, &c, depth: 0)
                        }
                    }
                    row += 1
                }
            } catch {
                throw SluiceError(error.code, "record \(line + Int64(row)): \(error.message)", at: SourceLocation(file: fileName))
            }
            blockPos = c.pos
        }
    }
}
