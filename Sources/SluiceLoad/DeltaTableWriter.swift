public import SluiceCore
public import SluiceFormats
import Foundation

/// A write ready to commit elsewhere (a table in an object store): the commit's body, the
/// data files written (relative to the table), the version read, and whether it only appends.
public struct DeltaPrepared: Sendable {
    public let body: [UInt8]
    public let files: [String]
    public let base: Int64?
    public let blindAppend: Bool
}

/// Writes rows into a Delta table in a local folder: Parquet files (a folder per partition,
/// with per-file statistics), then one commit that adds them — and, overwriting, removes
/// every file the table had. The commit file is created only if absent (a hard link of a
/// finished file), so two writers never both take a version; an append that loses the race
/// to other appends commits as the next version, anything else fails and leaves the table
/// as the other writer made it. Files of a write that never commits are invisible to readers.
public final class DeltaTableWriter: BatchWriter {
    public enum Mode: String, Sendable { case append, overwrite, merge }

    let root: String
    let mode: Mode
    /// The rows' columns (their stored types) and the partition columns among them.
    let columns: [ColumnSchema]
    let partitionColumns: [String]
    let partitionIndex: [Int]
    let dataIndex: [Int]
    let dataSchema: TableSchema
    let options: ParquetWriteOptions
    /// The table as read before writing (nil: it does not exist yet).
    let base: DeltaSnapshot?
    let engine: String
    static let maxRowsPerFile: Int64 = 4_000_000
    /// A checkpoint every this many commits (delta-rs's and Spark's default).
    static let checkpointInterval: Int64 = 10

    struct OpenFile {
        var sink: FileSink
        var writer: ParquetWriter
        var stats: DeltaFileStats
        var path: String
        var values: [String: String?]
    }
    var open: [String: OpenFile] = [:]
    var written: [DeltaFileAction] = []
    var fileCount = 0
    let writeID = UUID().uuidString.lowercased()
    public private(set) var rowsWritten: Int64 = 0
    /// The version committed, once ``finish()`` returns.
    public private(set) var committedVersion: Int64?
    /// Files a merge rewrote: removed in the same commit.
    var replacing: [DeltaFileAction] = []
    /// Set: ``finish()`` hands the write over instead of committing it (the caller commits).
    public var onPrepared: ((DeltaPrepared) -> Void)?

    /// - Parameter partitionBy: the partition columns of a new table (an existing table keeps its own).
    public init(root: String, schema: TableSchema, mode: Mode, partitionBy: [String], options: ParquetWriteOptions, engine: String) throws(SluiceError) {
        self.root = root
        self.mode = mode
        self.engine = engine
        columns = schema.columns.map { var c = $0; c.type = DeltaCommit.storedType(c.type); return c }
        base = DeltaLocation.isTable(root) ? try DeltaLog.snapshot(LocalDeltaStorage(root: root)) : nil
        if let base {
            try Self.checkWritable(base, mode: mode)
            if !partitionBy.isEmpty && partitionBy != base.metadata.partitionColumns {
                throw SluiceError(.invalidArgument, "\(root) is partitioned by (\(base.metadata.partitionColumns.joined(separator: ", "))), not (\(partitionBy.joined(separator: ", ")))")
            }
            partitionColumns = base.metadata.partitionColumns
            if mode != .overwrite {
                let have = try base.columns().map { "\($0.name) \($0.type.name)" }
                let bring = columns.map { "\($0.name) \($0.type.name)" }
                guard Set(have) == Set(bring) else {
                    throw SluiceError(.invalidSchema, "\(root) has columns (\(have.joined(separator: ", "))); the rows have (\(bring.joined(separator: ", "))): \(mode == .append ? "append" : "merge") rows of the same columns, or overwrite")
                }
            }
        } else {
            partitionColumns = partitionBy
        }
        var pIndex: [Int] = []
        for p in partitionColumns {
            guard let i = columns.firstIndex(where: { $0.name == p }) else { throw SluiceError(.invalidArgument, "partition column '\(p)' is not among the columns (\(columns.map(\.name).joined(separator: ", ")))") }
            guard columns[i].type != .json, columns[i].type != .bytes, columns[i].type != .float64 else {
                throw SluiceError(.invalidArgument, "column '\(p)' (\(columns[i].type.name)) cannot partition a table: choose text, integer, date, timestamp, decimal or bool columns")
            }
            pIndex.append(i)
        }
        partitionIndex = pIndex
        let all = columns
        let data = all.indices.filter { !pIndex.contains($0) }
        guard !data.isEmpty else { throw SluiceError(.invalidArgument, "a Delta table needs at least one column that does not partition it") }
        dataIndex = data
        dataSchema = TableSchema(columns: data.map { var c = all[$0]; c.nullable = true; return c })
        var o = options
        if !partitionColumns.isEmpty { o.rowGroupRows = min(o.rowGroupRows, 1 << 18) }  // one open file per partition
        self.options = o
    }

    /// Refuses tables whose writer features Sluice does not implement, naming them.
    static func checkWritable(_ s: DeltaSnapshot, mode: Mode) throws(SluiceError) {
        let p = s.protocolAction
        let supported: Set<String> = ["appendOnly", "invariants", "checkConstraints", "changeDataFeed", "timestampNtz", "deletionVectors", "vacuumProtocolCheck", "domainMetadata"]
        var missing: [String] = []
        // variantType asks nothing of a writer whose table has no variant column.
        let noVariant = !s.metadata.schemaString.contains("\"variant\"")
        if p.minWriterVersion == 7 { missing = p.writerFeatures.filter { !supported.contains($0) && !($0 == "variantType" && noVariant) } }
        if p.minWriterVersion >= 5 && p.minWriterVersion < 7 { missing.append(p.minWriterVersion == 5 ? "columnMapping" : "identityColumns") }
        if p.minWriterVersion > 7 { missing.append("writer version \(p.minWriterVersion)") }
        if s.metadata.configuration.keys.contains(where: { $0.hasPrefix("delta.constraints.") }) { missing.append("checkConstraints (constraints are set)") }
        for marker in ["delta.invariants", "delta.generationExpression", "delta.identity."] where s.metadata.schemaString.contains(marker) {
            missing.append("column metadata \(marker)")
        }
        if !missing.isEmpty {
            throw SluiceError(.unsupported, "\(s.root) (version \(s.version)) uses Delta writer feature\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")), which Sluice does not write")
        }
        if mode == .overwrite, s.metadata.configuration["delta.appendOnly"] == "true" {
            throw SluiceError(.refused, "\(s.root) is append-only (delta.appendOnly): it cannot be overwritten")
        }
    }

    public func write(_ batch: RecordBatch) throws(SluiceError) {
        guard batch.count > 0 else { return }
        var groups: [String: [Int32]] = [:]
        var order: [String] = []
        var valuesOf: [String: [(String, String?)]] = [:]
        for i in 0..<batch.count {
            let values = partitionIndex.map { (columns[$0].name, DeltaCommit.partitionText(batch.columns[$0], i)) }
            let key = values.map { $0.1.map { "=" + $0 } ?? "∅" }.joined(separator: "\u{1}")
            if groups[key] == nil { order.append(key); valuesOf[key] = values }
            groups[key, default: []].append(Int32(i))
        }
        for key in order {
            let rows = groups[key]!
            var part = RecordBatch(fields: dataSchema.fields, capacity: rows.count)
            rows.withUnsafeBufferPointer { idx in
                for (k, c) in dataIndex.enumerated() { part.columns[k].append(from: batch.columns[c], gathering: idx) }
            }
            part.lines = rows.map { batch.lines[Int($0)] }
            part.ops = [RowOp](repeating: .upsert, count: rows.count)
            try append(part, key: key, values: valuesOf[key]!)
        }
        rowsWritten += Int64(batch.count)
    }

    func append(_ part: RecordBatch, key: String, values: [(String, String?)]) throws(SluiceError) {
        if open[key] == nil {
            fileCount += 1
            let codec = options.compression == .uncompressed ? "" : "." + String(describing: options.compression).lowercased()
            let n = String(fileCount)
            let rel = DeltaCommit.partitionPath(values) + "part-" + String(repeating: "0", count: max(0, 5 - n.count)) + n + "-\(writeID)-c000\(codec).parquet"
            let full = root + "/" + rel
            try? FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let sink = try FileSink(path: full)
            open[key] = OpenFile(sink: sink, writer: try ParquetWriter(sink: sink, schema: dataSchema, options: options), stats: DeltaFileStats(columns: dataSchema.columns),
                                 path: rel, values: Dictionary(values.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a }))
        }
        try open[key]!.writer.write(part)
        open[key]!.stats.add(part)
        if open[key]!.stats.records >= Self.maxRowsPerFile { try close(key) }
    }

    /// Finishes one file and records its `add`.
    func close(_ key: String) throws(SluiceError) {
        guard let f = open.removeValue(forKey: key) else { return }
        try f.writer.finish()
        try f.sink.commit()
        let size = (try? FileManager.default.attributesOfItem(atPath: root + "/" + f.path)[.size] as? Int64) ?? 0
        written.append(DeltaFileAction(path: DeltaCommit.uriPath(f.path), partitionValues: f.values, size: size,
                                       modificationTime: Int64(Date().timeIntervalSince1970 * 1000), dataChange: true, stats: f.stats.json(), deletionVector: nil))
    }

    public func finish() throws(SluiceError) {
        do throws(SluiceError) {
            for key in open.keys.sorted() { try close(key) }
            if let onPrepared {
                var files: [String] = []
                for a in written { files.append(try DeltaLog.relativePath(a.path)) }
                onPrepared(DeltaPrepared(body: commitBody(), files: files, base: base?.version, blindAppend: mode == .append && base != nil))
                return
            }
            try commit()
        } catch {
            discard()
            throw error
        }
    }

    /// Removes this write's data files (a commit that did not happen leaves nothing behind).
    public func discard() {
        open = [:]  // their FileSinks remove the partial files
        for a in written { try? FileManager.default.removeItem(atPath: root + "/" + ((try? DeltaLog.relativePath(a.path)) ?? a.path)) }
    }

    /// Writes the checkpoint of `version` and points `_last_checkpoint` at it. The commit has
    /// happened already: a checkpoint that cannot be written only leaves readers more to replay.
    func checkpoint(_ version: Int64) {
        let log = root + "/_delta_log/"
        guard let s = try? DeltaLog.snapshot(LocalDeltaStorage(root: root), at: .version(version)),
              let (bytes, actions) = try? DeltaCheckpoint.bytes(s) else { return }
        let name = DeltaCheckpoint.fileName(version)
        let temp = log + ".sluice-\(writeID)-" + name
        guard FileManager.default.createFile(atPath: temp, contents: Data(bytes)), rename(temp, log + name) == 0 else { unlink(temp); return }
        let last = log + ".sluice-\(writeID)-last"
        if FileManager.default.createFile(atPath: last, contents: Data(DeltaCheckpoint.lastCheckpoint(version: version, actions: actions))) {
            if rename(last, log + "_last_checkpoint") != 0 { unlink(last) }
        }
    }

    /// The commit's JSON lines (the same whatever version it takes).
    func commitBody() -> [UInt8] {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let metadata: DeltaMetadata?
        let proto: DeltaProtocol?
        if let base, mode != .overwrite {
            (metadata, proto) = (nil, nil)
        } else {
            let id = base?.metadata.id ?? UUID().uuidString.lowercased()
            metadata = DeltaMetadata(id: id, schemaString: DeltaCommit.schemaString(columns), partitionColumns: partitionColumns,
                                     configuration: base?.metadata.configuration ?? [:], provider: "parquet")
            let wanted = DeltaCommit.protocolFor(columns)
            proto = base.map { b in b.protocolAction.minReaderVersion >= wanted.minReaderVersion ? nil : wanted } ?? wanted
        }
        let removes = mode == .overwrite ? (base?.files ?? []) : replacing
        return DeltaCommit.lines(timestamp: now, operation: mode == .merge ? "MERGE" : "WRITE", mode: mode == .append ? "Append" : mode == .merge ? "Merge" : "Overwrite",
                                 partitionBy: partitionColumns, protocolAction: proto, metadata: metadata, adds: written, removes: removes, engine: engine)
    }

    /// Commits the files as the next version, retrying past versions other appends took.
    func commit() throws(SluiceError) {
        let log = root + "/_delta_log"
        try? FileManager.default.createDirectory(atPath: log, withIntermediateDirectories: true)
        let body = commitBody()
        let temp = log + "/.sluice-commit-\(writeID).json.tmp"
        guard FileManager.default.createFile(atPath: temp, contents: Data(body)) else { throw SluiceError(.io, "cannot write the commit", at: SourceLocation(file: temp)) }
        defer { unlink(temp) }
        let fd = Foundation.open(temp, O_RDONLY)
        if fd >= 0 { fsync(fd); Foundation.close(fd) }
        var version = (base?.version ?? -1) + 1
        while true {
            let target = log + "/" + DeltaLog.fileName(version)
            if link(temp, target) == 0 {
                committedVersion = version
                if version > 0 && version % Self.checkpointInterval == 0 { checkpoint(version) }
                return
            }
            guard errno == EEXIST else { throw SluiceError(.io, "cannot commit: \(String(cString: strerror(errno)))", at: SourceLocation(file: target)) }
            // Another writer took this version: an append goes after other appends.
            let theirs = try DeltaLog.commitActions(LocalDeltaStorage(root: root), version: version)
            try DeltaCommit.checkFollows(theirs, blindAppend: mode == .append && base != nil, table: root, version: version)
            version += 1
        }
    }
}
