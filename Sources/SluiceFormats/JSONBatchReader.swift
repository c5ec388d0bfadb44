public import SluiceCore

/// Reads NDJSON or JSON arrays into batches of a target schema. Each column reads a
/// dotted path (`customer.address.city`); nested objects and arrays become JSON values.
/// A record that is not a valid JSON object is a rejected row, not a failed file.
public final class JSONBatchReader: BatchReader {
    let framer: JSONFramer
    var builder: BatchBuilder
    let spec: ReadSpec
    let paths: [[Substring]]
    let opPath: [Substring]?
    public let sourceFields: [String]
    public private(set) var unusedFields: [String] = []
    var seenKeys: [String] = []
    var seenKeySet = Set<String>()
    var finished = false

    public var bytesConsumed: Int64 { framer.bytesConsumed }

    public init(source: any ByteChunkReader, layout: JSONFramer.Layout = .detect, spec: ReadSpec) {
        self.framer = JSONFramer(source: source, layout: layout, maxRecordBytes: spec.limits.maxRecordBytes, fileName: spec.fileName,
                                 firstLine: spec.firstLine)
        self.spec = spec
        self.builder = BatchBuilder(schema: spec.schema, capacity: spec.limits.batchRows)
        builder.naiveZone = spec.naiveZone
        self.paths = spec.schema.columns.map { $0.sourceField.split(separator: ".", omittingEmptySubsequences: false) }
        self.opPath = spec.opField.map { $0.split(separator: ".", omittingEmptySubsequences: false) }
        self.sourceFields = spec.schema.columns.map(\.sourceField)
    }

    /// Looks a path up, trying a literal key with dots first (`{"a.b": 1}`).
    static func lookup(_ v: JSONValue, _ path: [Substring]) -> JSONValue? {
        if path.count > 1, let direct = v[path.joined(separator: ".")] { return direct }
        return v.value(at: path)
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
        let value: JSONValue
        do {
            value = try JSONParser.parse(raw)
        } catch {
            rejects.append(RowReject(line: line, reason: error.description, fields: [String(decoding: raw, as: UTF8.self)]))
            return
        }
        guard case .object(let members) = value else {
            rejects.append(RowReject(line: line, reason: "expected a JSON object", fields: [String(decoding: raw, as: UTF8.self)]))
            return
        }
        if seenKeys.count < 1000 {
            for m in members where seenKeySet.insert(m.key).inserted { seenKeys.append(m.key) }
            let usedRoots = Set(paths.compactMap { $0.first.map(String.init) } + (opPath?.first.map { [String($0)] } ?? []))
            unusedFields = seenKeys.filter { !usedRoots.contains($0) && !sourceFields.contains($0) && $0 != spec.opField }
        }
        var op = RowOp.upsert
        var badOp: String? = nil
        if let opPath, let o = Self.lookup(value, opPath) {
            switch o {
            case .null: break
            case .string(let s):
                var s = s
                if let parsed = s.withUTF8({ RowOp.parse(UnsafeRawBufferPointer($0)) }) { op = parsed } else { badOp = s }
            default: badOp = o.text
            }
        }
        builder.beginRow(line: line, op: op)
        if let badOp { builder.fail(column: spec.opField, "unknown op '\(SourceLocation.excerpt(badOp))' (use I, U or D)") }
        for c in paths.indices {
            if let v = Self.lookup(value, paths[c]) { builder.setJSON(c, v) } else { builder.setNull(c) }
        }
        if var r = builder.endRow() {
            r.fields = [String(decoding: raw, as: UTF8.self)]
            rejects.append(r)
        }
    }
}
