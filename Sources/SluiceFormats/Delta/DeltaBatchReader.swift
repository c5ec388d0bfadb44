public import SluiceCore

/// Reads one snapshot of a Delta table into batches of a target schema: each live file in
/// turn through the Parquet reader (columns found by physical name or field id under column
/// mapping), partition values filled in as typed constants, rows a deletion vector removed
/// dropped. A row's line is its ordinal in the scan (files in log order), counting removed rows.
public final class DeltaBatchReader: BatchReader {
    let storage: any DeltaStorage
    public let snapshot: DeltaSnapshot
    let spec: ReadSpec
    /// Per target column: the partition column it reads, if it is one.
    let partitionOf: [String?]
    /// Per JSON column under column mapping: how the file's nested (physical) names become
    /// the table's.
    let renames: [Int: NestedNames]
    public let sourceFields: [String]
    public let unusedFields: [String]

    /// The files to read: the snapshot's, or a change read's, each with what its rows mean.
    let items: [(file: DeltaFileAction, kind: DeltaChange.Kind?)]
    var kind: DeltaChange.Kind?
    /// A condition the rows will be filtered by: files whose partition values or statistics
    /// show no row can meet it are not read.
    public var skip: Expr?
    /// Files not read because of ``skip``.
    public private(set) var filesSkipped = 0
    var fileIndex = -1
    var current: ParquetBatchReader?
    var currentFile = ""
    var deleted: [UInt64] = []
    var constants: [Int: Column] = [:]
    var partitionText: [Int: String?] = [:]
    /// Lines before the current file (rows of the files already read).
    var base: Int64 = 0
    var rowsInFile: Int64 = 0
    var bytesDone: Int64 = 0

    public init(storage: any DeltaStorage, snapshot: DeltaSnapshot, spec: ReadSpec) throws(SluiceError) {
        self.storage = storage
        self.snapshot = snapshot
        self.spec = spec
        let partitions = Set(snapshot.metadata.partitionColumns)
        partitionOf = spec.schema.columns.map { partitions.contains($0.sourceField) ? $0.sourceField : nil }
        var renames: [Int: NestedNames] = [:]
        if snapshot.columnMapping != .none {
            for (c, col) in spec.schema.columns.enumerated() where col.type == .json {
                if let f = snapshot.schema.field(named: col.sourceField), let r = NestedNames(f.type), r.renames { renames[c] = r }
            }
        }
        self.renames = renames
        items = snapshot.changes.map { $0.map { ($0.file, $0.kind) } } ?? snapshot.files.map { ($0, nil) }
        sourceFields = snapshot.schema.fields.map(\.name)
        let used = Set(spec.schema.columns.map { Self.top($0.sourceField, in: snapshot.schema) })
        unusedFields = sourceFields.filter { !used.contains($0) }
        for f in snapshot.schema.fields where used.contains(f.name) {
            if case .primitive("variant") = f.type { throw SluiceError(.unsupported, "column '\(f.name)' is a Delta variant, which Sluice does not read") }
        }
    }

    /// The top-level field a source path starts with (the whole name when the table has a
    /// column of that name, dots and all).
    static func top(_ path: String, in schema: DeltaSchema) -> String {
        if schema.field(named: path) != nil { return path }
        return String(path.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }

    public var bytesConsumed: Int64 { bytesDone + (current?.bytesConsumed ?? 0) }

    public var rejectFields: [String] { spec.schema.columns.map(\.sourceField) + (spec.opField.map { [$0] } ?? []) }

    public func sourceRecord(columnValues: [String?]) -> [String?] { columnValues + (spec.opField == nil ? [] : [nil]) }

    public func next() throws(SluiceError) -> DecodedBatch? {
        while true {
            if current == nil {
                guard try openNext() else { return nil }
            }
            guard let decoded = try current!.next() else {
                bytesDone += current!.bytesConsumed
                current = nil
                base += rowsInFile
                continue
            }
            let out = try finish(decoded)
            if out.rowsRead > 0 { return out }
        }
    }

    /// Opens the next live file: its Parquet reader, deletion vector and partition constants.
    func openNext() throws(SluiceError) -> Bool {
        fileIndex += 1
        while fileIndex < items.count, let skip, items[fileIndex].kind == nil, !DeltaSkipping.mayMatch(skip, items[fileIndex].file, snapshot) {
            filesSkipped += 1
            fileIndex += 1
        }
        guard fileIndex < items.count else { return false }
        let add = items[fileIndex].file
        kind = items[fileIndex].kind
        let rel = try DeltaLog.relativePath(add.path)
        currentFile = snapshot.root + "/" + rel
        do throws(SluiceError) {
            let file = try ParquetFile(source: try storage.open(rel), fileName: currentFile)
            rowsInFile = file.metadata.numRows
            var inner = spec
            inner.fileName = currentFile
            inner.schema.columns = try spec.schema.columns.enumerated().map { (c, col) throws(SluiceError) in
                var col = col
                if partitionOf[c] != nil {
                    col.source = "\u{0}partition"
                    col.nullable = true
                } else {
                    col.source = try physicalPath(col.sourceField, file: file)
                }
                return col
            }
            if let op = spec.opField { inner.opField = try physicalPath(op, file: file) }
            if kind == .changeData { inner.schema.columns.append(ColumnSchema(name: "_change_type", type: .text, nullable: true)) }
            current = try ParquetBatchReader(file: file, spec: inner)
            deleted = []
            if let d = add.deletionVector { deleted = try deletionVector(d) }
        } catch {
            throw SluiceError(error.code, "version \(snapshot.version): \(error.message)", at: error.location ?? SourceLocation(file: currentFile))
        }
        constants = [:]
        partitionText = [:]
        for (c, p) in partitionOf.enumerated() {
            guard let p else { continue }
            let raw = add.partitionValues[snapshot.partitionKey(p)] ?? nil
            let col = spec.schema.columns[c]
            let text = DeltaPartitionValue.text(raw, type: col.type)
            partitionText[c] = text
            var b = BatchBuilder(schema: TableSchema(columns: [ColumnSchema(name: col.name, type: col.type, nullable: col.nullable)]), capacity: 1)
            b.naiveZone = spec.naiveZone
            b.beginRow(line: 1)
            if let text { b.setText(0, text) } else { b.setNull(0) }
            if let r = b.endRow() {
                throw SluiceError(.invalidInput, "version \(snapshot.version): partition value of \(r.message)", at: SourceLocation(file: currentFile, column: col.name, value: text ?? "NULL"))
            }
            constants[c] = b.take().columns[0]
        }
        return true
    }

    /// A source path (`col` or `col.inner.leaf`, logical names) as this file names it.
    func physicalPath(_ path: String, file: ParquetFile) throws(SluiceError) -> String {
        guard snapshot.columnMapping != .none else { return path }
        var fields = snapshot.schema.fields
        var parts: [Substring] = snapshot.schema.field(named: path) != nil ? [Substring(path)] : path.split(separator: ".", omittingEmptySubsequences: false)
        var node: ParquetSchema.Node? = file.schema.root
        var out: [String] = []
        while !parts.isEmpty {
            let name = parts.removeFirst()
            guard let f = fields.first(where: { $0.name == name }) else {
                // Below a field Delta does not describe as a struct: names as written.
                return (out + [String(name)] + parts.map(String.init)).joined(separator: ".")
            }
            switch snapshot.columnMapping {
            case .id:
                guard let id = f.fieldId else { throw SluiceError(.malformedFile, "column '\(f.name)' has no delta.columnMapping.id") }
                guard let n = node?.children.first(where: { $0.element.fieldId == id }) else { return "\u{0}missing" }  // NULL, as the protocol asks
                out.append(n.name)
                node = n
            default:
                out.append(f.physicalName ?? f.name)
            }
            if case .structure(let inner) = f.type { fields = inner } else { fields = [] }
        }
        return out.joined(separator: ".")
    }

    func deletionVector(_ d: DeletionVectorDescriptor) throws(SluiceError) -> [UInt64] {
        let dv: DeletionVector
        switch d.storageType {
        case "i":
            guard let bytes = Z85.decode(d.pathOrInlineDv), bytes.count >= d.sizeInBytes else {
                throw SluiceError(.malformedFile, "an inline deletion vector is not valid Z85 of \(d.sizeInBytes) bytes")
            }
            dv = try DeletionVector(serialized: Array(bytes.prefix(d.sizeInBytes)), maxRows: d.cardinality)
        case "u", "p":
            let rel = d.storageType == "u" ? try DeletionVector.relativePath(d) : try DeltaLog.relativePath(d.pathOrInlineDv)
            let source = try storage.open(rel)
            let at = d.offset ?? 0
            let count = 8 + d.sizeInBytes
            guard at >= 0, d.sizeInBytes >= 0, Int64(count) <= source.size - at else {
                throw SluiceError(.malformedFile, "the deletion vector at byte \(at) runs past the end of the file", at: SourceLocation(file: snapshot.root + "/" + rel))
            }
            dv = try DeletionVector(file: try source.read(at: at, count: count), expectedSize: d.sizeInBytes, maxRows: d.cardinality, fileName: snapshot.root + "/" + rel)
        default:
            throw SluiceError(.unsupported, "a deletion vector is stored as '\(d.storageType)', which Sluice does not know")
        }
        guard Int64(dv.rows.count) == d.cardinality else {
            throw SluiceError(.malformedFile, "a deletion vector holds \(dv.rows.count) rows and the log says \(d.cardinality)")
        }
        return dv.rows
    }

    /// The file's batch as the table's: lines counted over the scan, deleted rows dropped,
    /// partition columns filled.
    func finish(_ decoded: DecodedBatch) throws(SluiceError) -> DecodedBatch {
        var batch = decoded.batch
        var rejects = decoded.rejects
        switch kind {
        case .removed?:
            batch.ops = [RowOp](repeating: .delete, count: batch.count)
        case .changeData?:
            // The change type is the op; an update's before-image is not a row to write.
            let types = batch.columns.removeLast()
            batch.fields.removeLast()
            var drop = Set<Int>()
            for i in 0..<batch.count {
                switch ValueText.render(types, i) {
                case "delete": batch.ops[i] = .delete
                case "update_preimage": drop.insert(i)
                default: batch.ops[i] = .upsert
                }
            }
            if !drop.isEmpty { batch = batch.removing(rows: drop) }
            for i in rejects.indices where !rejects[i].fields.isEmpty { rejects[i].fields.removeLast() }
        default: break
        }
        if !deleted.isEmpty {
            var drop = Set<Int>()
            for (i, line) in batch.lines.enumerated() where isDeleted(line) { drop.insert(i) }
            if !drop.isEmpty { batch = batch.removing(rows: drop) }
            rejects.removeAll { isDeleted($0.line) }
        }
        for (c, k) in constants {
            var col = Column(type: k.type, capacity: batch.count)
            for _ in 0..<batch.count { col.append(from: k, at: 0) }
            if !spec.schema.columns[c].nullable, k.isNull(0), batch.count > 0 {
                throw SluiceError(.invalidInput, "version \(snapshot.version): partition column '\(spec.schema.columns[c].name)' is NULL in this file, and the column is NOT NULL", at: SourceLocation(file: currentFile))
            }
            batch.columns[c] = col
        }
        for (c, r) in renames where c < batch.columns.count {
            batch.columns[c] = try r.apply(batch.columns[c])
        }
        for i in batch.lines.indices { batch.lines[i] += base }
        for i in rejects.indices {
            rejects[i].line += base
            for (c, t) in partitionText where c < rejects[i].fields.count { rejects[i].fields[c] = t }
        }
        return DecodedBatch(batch: batch, rejects: rejects)
    }

    /// Whether the row at `line` (from 1 within the file) is in the deletion vector.
    func isDeleted(_ line: Int64) -> Bool {
        let pos = UInt64(line - 1)
        var lo = 0, hi = deleted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if deleted[mid] < pos { lo = mid + 1 } else { hi = mid }
        }
        return lo < deleted.count && deleted[lo] == pos
    }
}

/// The logical names of a nested Delta type's fields by their physical names (column
/// mapping renames struct fields inside the files too).
indirect enum NestedNames: Sendable {
    case object([String: (logical: String, inner: NestedNames?)])
    case array(NestedNames)
    case mapValues(NestedNames)

    init?(_ t: DeltaSchema.FieldType) {
        switch t {
        case .structure(let fields):
            var m: [String: (logical: String, inner: NestedNames?)] = [:]
            for f in fields { m[f.physicalName ?? f.name] = (f.name, NestedNames(f.type)) }
            self = .object(m)
        case .array(let e):
            guard let inner = NestedNames(e) else { return nil }
            self = .array(inner)
        case .map(_, let v):
            guard let inner = NestedNames(v) else { return nil }
            self = .mapValues(inner)
        default: return nil
        }
    }

    /// Whether any name changes (else the values are left as they are).
    var renames: Bool {
        switch self {
        case .object(let m): return m.contains { $0.key != $0.value.logical || $0.value.inner?.renames == true }
        case .array(let i), .mapValues(let i): return i.renames
        }
    }

    func apply(_ v: JSONValue) -> JSONValue {
        switch (self, v) {
        case (.object(let m), .object(let members)):
            return .object(members.map { mem in
                guard let r = m[mem.key] else { return mem }
                return JSONMember(key: r.logical, value: r.inner.map { $0.apply(mem.value) } ?? mem.value)
            })
        case (.array(let inner), .array(let items)): return .array(items.map { inner.apply($0) })
        case (.mapValues(let inner), .object(let members)): return .object(members.map { JSONMember(key: $0.key, value: inner.apply($0.value)) })
        default: return v
        }
    }

    /// A JSON column with every value renamed.
    func apply(_ col: Column) throws(SluiceError) -> Column {
        var out = Column(type: col.type, capacity: col.count)
        var bytes: [UInt8] = []
        for i in 0..<col.count {
            if col.isNull(i) { out.appendNull(); continue }
            let v: JSONValue
            do {
                v = try col.withBytes(at: i) { (b) throws(JSONParseError) -> JSONValue in try JSONParser.parse(b) }
            } catch {
                throw SluiceError(.malformedFile, "a nested value is not valid JSON: \(error)")
            }
            bytes.removeAll(keepingCapacity: true)
            apply(v).write(into: &bytes)
            out.append(bytes: bytes)
        }
        return out
    }
}
