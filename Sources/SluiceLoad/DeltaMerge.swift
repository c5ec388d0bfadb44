public import SluiceCore
public import SluiceFormats
import Foundation

/// Merges a file's rows into a Delta table by key, copy-on-write: the last row per key wins
/// (an `op` field of `D` deletes), the table's files that hold any of those keys (found by
/// their key statistics, then by reading their keys) are rewritten without them, and the
/// new rows are added — the removes and adds in one commit. The changes are held in memory;
/// the table's files are streamed.
public enum DeltaMerge {
    public struct Report: Sendable, Codable {
        public var stats = LoadStats()
        public var version: Int64?
        /// Files of the table read for keys, and rewritten because they held some.
        public var filesScanned = 0
        public var filesRewritten = 0
        public var filesInTable = 0
    }

    public static func run(input: String, inputFormat: SourceFormat?, table: String, key: [String], partitionBy: [String],
                           options: ConvertOptions, engine: String) throws(SluiceError) -> Report {
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
        var last: [String: (batch: Int, row: Int)] = [:]
        while let decoded = try reader.next() {
            report.stats.read += Int64(decoded.rowsRead)
            report.stats.rejected += Int64(decoded.rejects.count)
            let b = decoded.batch
            for i in 0..<b.count {
                guard let k = keyText(b, i, keyIndex) else { report.stats.rejected += 1; continue }
                if last.updateValue((batches.count, i), forKey: k) != nil { report.stats.skipped += 1 }
            }
            batches.append(b)
        }

        let writer = try DeltaTableWriter(root: table, schema: TableSchema(columns: columns), mode: .merge, partitionBy: partitionBy, options: options.parquet, engine: engine)
        var found = Set<String>()
        if let base {
            report.filesInTable = base.files.count
            // Files whose key range can hold a changed key, then those that do hold one.
            let candidates = base.files.filter { mayHold($0, key: key, keys: last.keys, type: columns[keyIndex[0]].type) }
            report.filesScanned = candidates.count
            let keySpec = ReadSpec(schema: TableSchema(columns: keyIndex.map { var c = columns[$0]; c.nullable = true; return c }), limits: options.limits, fileName: table)
            for f in candidates {
                var holds = false
                let keys = try DeltaBatchReader(storage: storage, snapshot: base.restricted(to: [f]), spec: keySpec)
                while let d = try keys.next() {
                    for i in 0..<d.batch.count {
                        if let k = keyText(d.batch, i, Array(keyIndex.indices)), last[k] != nil { found.insert(k); holds = true }
                    }
                }
                guard holds else { continue }
                // Rewritten: its rows but those the changes replace or delete.
                report.filesRewritten += 1
                writer.replacing.append(f)
                let rows = try DeltaBatchReader(storage: storage, snapshot: base.restricted(to: [f]), spec: ReadSpec(schema: schema, limits: options.limits, fileName: table))
                while let d = try rows.next() {
                    var drop = Set<Int>()
                    for i in 0..<d.batch.count where keyText(d.batch, i, keyIndex).map({ last[$0] != nil }) ?? false { drop.insert(i) }
                    try writer.write(drop.isEmpty ? d.batch : d.batch.removing(rows: drop))
                }
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
            let all = Set(0..<batches[b].count)
            try writer.write(batches[b].removing(rows: all.subtracting(rows)))
        }
        try writer.finish()
        report.version = writer.committedVersion
        return report
    }

    /// A row's key as text (nil when a key column is NULL).
    static func keyText(_ b: RecordBatch, _ i: Int, _ index: [Int]) -> String? {
        var parts: [String] = []
        for c in index {
            guard let t = ValueText.render(b.columns[c], i) else { return nil }
            parts.append(t)
        }
        return parts.joined(separator: "\u{1}")
    }

    /// Whether a file's key statistics allow it to hold one of `keys` (a single integer or
    /// text key with both bounds written; otherwise it may).
    static func mayHold(_ f: DeltaFileAction, key: [String], keys: Dictionary<String, (batch: Int, row: Int)>.Keys, type: ColumnType) -> Bool {
        guard key.count == 1, let stats = f.stats, let json = try? JSONParser.parse(stats),
              let lo = json["minValues"]?[key[0]], let hi = json["maxValues"]?[key[0]] else { return true }
        switch (type, lo, hi) {
        case (.int64, .number(let a), .number(let b)):
            guard let a = Int64(a), let b = Int64(b) else { return true }
            return keys.contains { Int64($0).map { $0 >= a && $0 <= b } ?? true }
        case (.text, .string(let a), .string(let b)):
            return keys.contains { $0 >= a && $0 <= b }
        default:
            return true
        }
    }
}
