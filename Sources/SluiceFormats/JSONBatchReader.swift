public import SluiceCore
#if canImport(Glibc)
import Glibc
#endif

/// Reads NDJSON or JSON arrays into batches of a target schema. Each column reads a
/// dotted path (`customer.address.city`); nested objects and arrays become JSON values.
/// A record that is not a valid JSON object is a rejected row, not a failed file. Each
/// record is read into a reused ``JSONTape`` and the columns' paths are found in one pass
/// (``JSONPathSet``): no value is built per record.
public final class JSONBatchReader: BatchReader {
    let framer: JSONFramer
    let spec: ReadSpec
    public let sourceFields: [String]
    public var unusedFields: [String] { state.unusedFields }
    var finished = false
    /// Everything the per-record work touches, in one struct (as ``MappingSplitter``'s): its
    /// methods reach the tape, the answers and the builder without the exclusivity checks
    /// each access to a class's property takes.
    var state: State

    struct State {
        var builder: BatchBuilder
        var tape = JSONTape()
        let pathSet: JSONPathSet
        /// Per column, then for the op: the answer of its name as one literal key (`{"a.b": 1}`,
        /// for a dotted name) and of its path; the literal wins.
        let columnAnswers: [(literal: Int?, path: Int)]
        let opAnswers: (literal: Int?, path: Int)?
        let opField: String?
        let sourceFields: [String]
        /// The root names the columns and the op read (the rest are unused).
        let usedRoots: Set<String>
        var answers: [Int] = []
        var scratch: [UInt8] = []
        var unusedFields: [String] = []
        var seenKeys: [String] = []
        var seenKeySet = Set<String>()
        /// The last record's top-level keys as written, each ended by a 0: a record with the
        /// same keys adds none.
        var lastKeys: [UInt8] = []
        /// When no column (nor the op) reads a dotted path: reads plain flat records without a
        /// tape; keys are the columns' names, then the op's.
        var flat: FlatJSONScanner?
    }

    public var bytesConsumed: Int64 { framer.bytesConsumed }

    public init(source: any ByteChunkReader, layout: JSONFramer.Layout = .detect, spec: ReadSpec) {
        self.framer = JSONFramer(source: source, layout: layout, maxRecordBytes: spec.limits.maxRecordBytes, fileName: spec.fileName,
                                 firstLine: spec.firstLine)
        self.spec = spec
        var builder = BatchBuilder(schema: spec.schema, capacity: spec.limits.batchRows)
        builder.naiveZone = spec.naiveZone
        let sourceFields = spec.schema.columns.map(\.sourceField)
        self.sourceFields = sourceFields
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
        let columnAnswers = sourceFields.map(add)
        let opAnswers = spec.opField.map(add)
        let roots = (sourceFields + (spec.opField.map { [$0] } ?? [])).compactMap { $0.split(separator: ".", omittingEmptySubsequences: false).first.map(String.init) }
        let names = sourceFields + (spec.opField.map { [$0] } ?? [])
        state = State(builder: builder, pathSet: JSONPathSet(paths), columnAnswers: columnAnswers, opAnswers: opAnswers, opField: spec.opField,
                      sourceFields: sourceFields, usedRoots: Set(roots),
                      flat: names.contains { $0.contains(".") } || Set(names).count < names.count ? nil : FlatJSONScanner(keys: names))
    }

    public var rejectFields: [String] { ["_record"] }

    public func sourceRecord(columnValues: [String?]) -> [String?] {
        let members = zip(sourceFields, columnValues).map { JSONMember(key: $0, value: $1.map { .string($0) } ?? .null) }
        return [JSONValue.object(members).text]
    }

    public func next() throws(SluiceError) -> DecodedBatch? {
        if finished { return nil }
        var rejects: [RowReject] = []
        while state.builder.count < spec.limits.batchRows {
            switch try framer.next() {
            case .end:
                finished = true
            case .tooLong(let bytes):
                rejects.append(RowReject(line: framer.line, reason: "record of \(bytes) bytes is longer than the limit of \(spec.limits.maxRecordBytes) bytes"))
            case .record:
                state.read(framer.record, line: framer.line, into: &rejects)
            }
            if finished { break }
        }
        if state.builder.count == 0 && rejects.isEmpty { return nil }
        return DecodedBatch(batch: state.builder.take(), rejects: rejects)
    }
}

extension JSONBatchReader.State {
    /// The token a column (or the op) reads in the current record, if the record has it.
    @inline(__always) func token(_ a: (literal: Int?, path: Int)) -> Int? {
        if let l = a.literal, answers[l] >= 0 { return answers[l] }
        return answers[a.path] >= 0 ? answers[a.path] : nil
    }

    mutating func read(_ raw: UnsafeRawBufferPointer, line: Int64, into rejects: inout [RowReject]) {
        if flat != nil, flat!.scan(raw) { return readFlat(raw, line: line, into: &rejects) }
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
        var op: (RowOp, bad: String?) = (.upsert, nil)
        if let opAnswers, let o = token(opAnswers) {
            switch tape.kind(o) {
            case .null: break
            case .string: op = tape.text(o, scratch: &scratch) { Self.op($0) }
            default: op = (.upsert, String(decoding: tape.raw(o), as: UTF8.self))
            }
        }
        beginRow(line: line, op)
        for c in columnAnswers.indices {
            if let t = token(columnAnswers[c]) { builder.setJSON(c, tape, t) } else { builder.setNull(c) }
        }
        endRow(raw, into: &rejects)
    }

    /// The op an op member's text names; when none, why (the row is then rejected).
    static func op(_ text: UnsafeRawBufferPointer) -> (RowOp, bad: String?) {
        RowOp.parse(text).map { ($0, nil) } ?? (.upsert, String(decoding: text, as: UTF8.self))
    }

    mutating func beginRow(line: Int64, _ op: (RowOp, bad: String?)) {
        builder.beginRow(line: line, op: op.0)
        if let bad = op.bad { builder.fail(column: opField, "unknown op '\(SourceLocation.excerpt(bad))' (use I, U or D)") }
    }

    /// Ends the row; a rejected one keeps the record as its field.
    mutating func endRow(_ raw: UnsafeRawBufferPointer, into rejects: inout [RowReject]) {
        if var r = builder.endRow() {
            r.fields = [String(decoding: raw, as: UTF8.self)]
            rejects.append(r)
        }
    }

    /// A record the flat scanner read: the same row as the tape would give.
    mutating func readFlat(_ raw: UnsafeRawBufferPointer, line: Int64, into rejects: inout [RowReject]) {
        let n = columnAnswers.count
        if seenKeys.count < 1000, flat!.keysChanged {
            // Plain keys: as written is as read.
            var added = false
            for key in flat!.recordKeys.split(separator: 0, omittingEmptySubsequences: false).dropLast() {
                added = see(String(decoding: key, as: UTF8.self)) || added
            }
            if added { refreshUnused() }
        }
        var op: (RowOp, bad: String?) = (.upsert, nil)
        if opField != nil, let o = flat?.slots[n] {
            let text = UnsafeRawBufferPointer(rebasing: raw[o.start..<o.end])
            switch o.kind {
            case .missing, .null: break
            case .string: op = Self.op(text)
            default: op = (.upsert, String(decoding: text, as: UTF8.self))
            }
        }
        beginRow(line: line, op)
        let slots = flat!.slots
        for c in 0..<n { builder.setJSON(c, slots[c], in: raw) }
        endRow(raw, into: &rejects)
    }

    /// Adds the record's new top-level keys to those seen (for the unused fields); a record
    /// whose keys are the last one's costs one comparison.
    mutating func noteKeys() {
        let end = tape.tokens[0].next
        if sameKeysAsLast(end) { return }
        lastKeys.removeAll(keepingCapacity: true)
        var added = false
        var k = 1
        while k < end {
            lastKeys += tape.raw(k)
            lastKeys.append(0)  // never inside a key: a string's raw bytes hold no control byte
            added = see(tape.text(k, scratch: &scratch) { String(decoding: $0, as: UTF8.self) }) || added
            k = tape.tokens[k + 1].next
        }
        if added { refreshUnused() }
    }

    /// Notes a top-level key; true when it is new.
    mutating func see(_ key: String) -> Bool {
        guard seenKeySet.insert(key).inserted else { return false }
        seenKeys.append(key)
        return true
    }

    mutating func refreshUnused() {
        unusedFields = seenKeys.filter { !usedRoots.contains($0) && !sourceFields.contains($0) && $0 != opField }
    }

    /// Whether the record's keys (as written) are the last record's, compared in place.
    func sameKeysAsLast(_ end: Int) -> Bool {
        var at = 0
        var k = 1
        return lastKeys.withUnsafeBytes { last in
            while k < end {
                let key = tape.raw(k)
                guard at + key.count < last.count, last[at + key.count] == 0,
                      key.count == 0 || memcmp(key.baseAddress!, last.baseAddress! + at, key.count) == 0 else { return false }
                at += key.count + 1
                k = tape.tokens[k + 1].next
            }
            return at == last.count
        }
    }
}
