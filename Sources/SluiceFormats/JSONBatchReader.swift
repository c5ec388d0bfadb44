public import SluiceCore

/// Reads NDJSON or JSON arrays into batches of a target schema. Each column reads a
/// dotted path (`customer.address.city`); nested objects and arrays become JSON values.
/// A record that is not a valid JSON object is a rejected row, not a failed file. Each
/// record is read into a reused ``JSONTape`` and the columns' paths are found in one pass
/// (``JSONPathSet``): no value is built per record.
public final class JSONBatchReader: BatchReader {
    let framer: JSONFramer
    var builder: BatchBuilder
    let spec: ReadSpec
    public let sourceFields: [String]
    public private(set) var unusedFields: [String] = []
    var seenKeys: [String] = []
    var seenKeySet = Set<String>()
    /// The last record's top-level keys, back to back: a record with the same keys adds none.
    var lastKeys: [UInt8] = []
    var keys: [UInt8] = []
    /// The root names the columns and the op read (the rest are unused).
    let usedRoots: Set<String>
    var finished = false
    var tape = JSONTape()
    let pathSet: JSONPathSet
    /// Per column, then for the op: the answer of its name as one literal key (`{"a.b": 1}`,
    /// for a dotted name) and of its path; the literal wins.
    let columnAnswers: [(literal: Int?, path: Int)]
    let opAnswers: (literal: Int?, path: Int)?
    var answers: [Int] = []
    var scratch: [UInt8] = []

    public var bytesConsumed: Int64 { framer.bytesConsumed }

    public init(source: any ByteChunkReader, layout: JSONFramer.Layout = .detect, spec: ReadSpec) {
        self.framer = JSONFramer(source: source, layout: layout, maxRecordBytes: spec.limits.maxRecordBytes, fileName: spec.fileName,
                                 firstLine: spec.firstLine)
        self.spec = spec
        self.builder = BatchBuilder(schema: spec.schema, capacity: spec.limits.batchRows)
        builder.naiveZone = spec.naiveZone
        self.sourceFields = spec.schema.columns.map(\.sourceField)
        var paths: [[JSONPathStep]] = []
        func add(_ name: String) -> (literal: Int?, path: Int) {
            let segments = name.split(separator: ".", omittingEmptySubsequences: false)
            var literal: Int? = nil
            if segments.count > 1 {
                paths.append([JSONPathStep(name)])
                literal = paths.count - 1
            }
            paths.append(segments.map { JSONPathStep(String($0)) })
            return (literal, paths.count - 1)
        }
        columnAnswers = sourceFields.map(add)
        opAnswers = spec.opField.map(add)
        pathSet = JSONPathSet(paths)
        usedRoots = Set((sourceFields + (spec.opField.map { [$0] } ?? [])).compactMap { $0.split(separator: ".", omittingEmptySubsequences: false).first.map(String.init) })
    }

    /// The token a column (or the op) reads in the current record, if the record has it.
    @inline(__always) func token(_ a: (literal: Int?, path: Int)) -> Int? {
        if let l = a.literal, answers[l] >= 0 { return answers[l] }
        return answers[a.path] >= 0 ? answers[a.path] : nil
    }

    public var rejectFields: [String] { ["_record"] }

    public func sourceRecord(columnValues: [String?]) -> [String?] {
        let members = zip(sourceFields, columnValues).map { JSONMember(key: $0, value: $1.map { .string($0) } ?? .null) }
        return [JSONValue.object(members).text]
    }

    public func next() throws(SluiceError) -> DecodedBatch? {
        if finished { return nil }
        var rejects: [RowReject] = []
        while builder.count < spec.limits.batchRows {
            switch try framer.next() {
            case .end:
                finished = true
            case .tooLong(let bytes):
                rejects.append(RowReject(line: framer.line, reason: "record of \(bytes) bytes is longer than the limit of \(spec.limits.maxRecordBytes) bytes"))
            case .record:
                readRecord(into: &rejects)
            }
            if finished { break }
        }
        if builder.count == 0 && rejects.isEmpty { return nil }
        return DecodedBatch(batch: builder.take(), rejects: rejects)
    }

    func readRecord(into rejects: inout [RowReject]) {
        let raw = framer.record
        let line = framer.line
        do {
            try tape.parse(raw)
        } catch {
            rejects.append(RowReject(line: line, reason: error.description, fields: [String(decoding: raw, as: UTF8.self)]))
            return
        }
        guard tape.kind(0) == .object else {
            rejects.append(RowReject(line: line, reason: "expected a JSON object", fields: [String(decoding: raw, as: UTF8.self)]))
            return
        }
        if seenKeys.count < 1000 { noteKeys() }
        pathSet.resolve(tape, from: 0, into: &answers, scratch: &scratch)
        var op = RowOp.upsert
        var badOp: String? = nil
        if let opAnswers, let o = token(opAnswers) {
            switch tape.kind(o) {
            case .null: break
            case .string:
                if let parsed = tape.text(o, scratch: &scratch, { RowOp.parse($0) }) { op = parsed } else { badOp = tape.text(o, scratch: &scratch) { String(decoding: $0, as: UTF8.self) } }
            default: badOp = String(decoding: tape.raw(o), as: UTF8.self)
            }
        }
        builder.beginRow(line: line, op: op)
        if let badOp { builder.fail(column: spec.opField, "unknown op '\(SourceLocation.excerpt(badOp))' (use I, U or D)") }
        for c in columnAnswers.indices {
            if let t = token(columnAnswers[c]) { builder.setJSON(c, tape, t) } else { builder.setNull(c) }
        }
        if var r = builder.endRow() {
            r.fields = [String(decoding: raw, as: UTF8.self)]
            rejects.append(r)
        }
    }

    /// Adds the record's new top-level keys to those seen (for the unused fields); a record
    /// whose keys are the last one's costs one comparison.
    func noteKeys() {
        keys.removeAll(keepingCapacity: true)
        var k = 1
        let end = tape.tokens[0].next
        while k < end {
            tape.text(k, scratch: &scratch) { keys += $0 }
            keys.append(0)
            k = tape.tokens[k + 1].next
        }
        if keys == lastKeys { return }
        swap(&keys, &lastKeys)
        var added = false
        k = 1
        while k < end {
            let key = tape.text(k, scratch: &scratch) { String(decoding: $0, as: UTF8.self) }
            if seenKeySet.insert(key).inserted {
                seenKeys.append(key)
                added = true
            }
            k = tape.tokens[k + 1].next
        }
        if added { unusedFields = seenKeys.filter { !usedRoots.contains($0) && !sourceFields.contains($0) && $0 != spec.opField } }
    }
}
