public import SluiceCore
public import SluiceFormats
import Foundation

/// Merges a file's rows into a Delta table by key, copy-on-write: the last row per key wins
/// (an `op` field of `D` deletes), the table's files that hold any of those keys (found by
/// their key statistics, then by reading them) are rewritten without them, and the new rows
/// are added — the removes and adds in one commit. The changes are held in memory, and so is
/// one file of the table at a time.
public enum DeltaMerge {
    public struct Report: Sendable, Codable {
        public var stats = LoadStats()
        public var version: Int64?
        /// Files of the table read for keys, and rewritten because they held some.
        public var filesScanned = 0
        public var filesRewritten = 0
        public var filesInTable = 0
        public init() {}
    }

    public static func run(input: String, inputFormat: SourceFormat?, table: String, key: [String], partitionBy: [String],
                           options: ConvertOptions, engine: String, prepared: ((DeltaPrepared) -> Void)? = nil) throws(SluiceError) -> Report {
        guard !key.isEmpty else { throw SluiceError(.invalidArgument, "merging into a Delta table needs the key: --key id") }
        let file = try InputFile.inspect(path: input, format: inputFormat)
        let storage = LocalDeltaStorage(root: table)
        let base = DeltaLocation.isTable(table) ? try DeltaLog.snapshot(storage) : nil
        let inferred = try file.inferColumns(dialect: options.csv, rows: SchemaSampler.defaultRows, exclude: [], limits: options.limits)
        let tableColumns = try base?.columns()
        let opField = inferred.contains { $0.name == "op" } && !(tableColumns?.contains { $0.name == "op" } ?? false) ? "op" : nil
        let columns = tableColumns ?? inferred.filter { $0.name != opField }.map { var c = $0; c.type = DeltaCommit.storedType(c.type); return c }
        for k in key where !columns.contains(where: { $0.name == k }) {
            throw SluiceError(.invalidArgument, "key column '\(k)' is not among the columns (\(columns.map(\.name).joined(separator: ", ")))")
        }
        let schema = TableSchema(columns: columns.map { var c = $0; c.nullable = true; return c }, primaryKey: key)
        let keyIndex = key.map { k in columns.firstIndex { $0.name == k }! }
        var report = Report()

        // The changes: the last row of each key.
        var spec = ReadSpec(schema: schema, limits: options.limits, fileName: input)
        spec.opField = opField
        let reader = try file.reader(spec: spec, dialect: options.csv)
        var batches: [RecordBatch] = []
        var last: [MergeKey: (batch: Int, row: Int)] = [:]
        while let decoded = try reader.next() {
            report.stats.read += Int64(decoded.rowsRead)
            report.stats.rejected += Int64(decoded.rejects.count)
            let b = decoded.batch
            for i in 0..<b.count {
                guard let k = MergeKey(b, i, keyIndex) else { report.stats.rejected += 1; continue }
                if last.updateValue((batches.count, i), forKey: k) != nil { report.stats.skipped += 1 }
            }
            batches.append(b)
        }

        let writer = try DeltaTableWriter(root: table, schema: TableSchema(columns: columns), mode: .merge, partitionBy: partitionBy, options: options.parquet, engine: engine)
        writer.onPrepared = prepared
        var found = Set<MergeKey>()
        if let base {
            report.filesInTable = base.files.count
            // Files whose key range can hold a changed key; each read once, and rewritten
            // without those keys when it does hold one (its rows are held meanwhile).
            let candidates = base.files.filter { mayHold($0, key: key, keys: last.keys, type: columns[keyIndex[0]].type) }
            report.filesScanned = candidates.count
            let spec = ReadSpec(schema: schema, limits: options.limits, fileName: table)
            for f in candidates {
                var held: [(RecordBatch, Set<Int>)] = []
                var holds = false
                let rows = try DeltaBatchReader(storage: storage, snapshot: base.restricted(to: [f]), spec: spec)
                while let d = try rows.next() {
                    var drop = Set<Int>()
                    for i in 0..<d.batch.count {
                        if let k = MergeKey(d.batch, i, keyIndex), last[k] != nil { found.insert(k); drop.insert(i) }
                    }
                    holds = holds || !drop.isEmpty
                    held.append((d.batch, drop))
                }
                guard holds else { continue }
                report.filesRewritten += 1
                writer.replacing.append(f)
                for (b, drop) in held { try writer.write(drop.isEmpty ? b : b.removing(rows: drop)) }
            }
        }
        // The new rows: each key's last, unless it deletes.
        var keep: [[Int]] = Array(repeating: [], count: batches.count)
        for (k, at) in last {
            let deletes = batches[at.batch].ops[at.row] == .delete
            switch (deletes, found.contains(k)) {
            case (true, true): report.stats.deleted += 1
            case (true, false): report.stats.skipped += 1
            case (false, true): report.stats.updated += 1; keep[at.batch].append(at.row)
            case (false, false): report.stats.inserted += 1; keep[at.batch].append(at.row)
            }
        }
        for (b, rows) in keep.enumerated() where !rows.isEmpty {
            try writer.write(batches[b].keeping(rows: rows.sorted().map { Int32($0) }))
        }
        try writer.finish()
        report.version = writer.committedVersion
        return report
    }

    /// A row's key: an integer as it is, anything else (or several columns) as text.
    enum MergeKey: Hashable {
        case int(Int64)
        case text(String)

        /// Nil when a key column is NULL.
        init?(_ b: RecordBatch, _ i: Int, _ index: [Int]) {
            if index.count == 1, b.columns[index[0]].type == .int64 {
                let c = b.columns[index[0]]
                if c.isNull(i) { return nil }
                self = .int(c.ints[i])
                return
            }
            var parts: [String] = []
            for c in index {
                guard let t = ValueText.render(b.columns[c], i) else { return nil }
                parts.append(t)
            }
            self = .text(parts.joined(separator: "\u{1}"))
        }
    }

    /// Whether a file's key statistics allow it to hold one of `keys` (a single integer or
    /// text key with both bounds written; otherwise it may).
    static func mayHold(_ f: DeltaFileAction, key: [String], keys: Dictionary<MergeKey, (batch: Int, row: Int)>.Keys, type: ColumnType) -> Bool {
        guard key.count == 1, let stats = f.stats, let json = try? JSONParser.parse(stats),
              let lo = json["minValues"]?[key[0]], let hi = json["maxValues"]?[key[0]] else { return true }
        switch (type, lo, hi) {
        case (.int64, .number(let a), .number(let b)):
            guard let a = Int64(a), let b = Int64(b) else { return true }
            return keys.contains { if case .int(let k) = $0 { k >= a && k <= b } else { true } }
        case (.text, .string(let a), .string(let b)):
            return keys.contains { if case .text(let k) = $0 { k >= a && k <= b } else { true } }
        default:
            return true
        }
    }
}
