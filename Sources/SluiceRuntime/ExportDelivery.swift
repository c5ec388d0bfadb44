public import SluiceExport
public import SluiceConfig
import SluiceLoad
public import SluiceCore
import SluiceFormats
import SluiceStorage
import SluiceWorker
public import SluiceQueue
import Foundation

/// One run of an export: plan the rows not yet sent, deliver every planned batch (or only
/// plan), and say what is left. `sluice export` and a pipeline's `export:` sink both use it.
public enum ExportDelivery {
    public struct Outcome: Sendable {
        public var report: ExportReport
        /// Batches dead-lettered for this receiver (they stay listed by `sluice export status`).
        public var dead: Int
        /// One or two lines for people.
        public var summary: String
    }

    public static func run(_ spec: ExportSpec, store: any ExportStore, planOnly: Bool,
                           progress: (@Sendable (ExportReport) -> Void)? = nil) async throws -> Outcome {
        let exporter = try Exporter(spec: spec, store: store)
        var report = ExportReport()
        if planOnly {
            let planned = try await exporter.plan()
            report.planned = planned.batches
            report.plannedRows = planned.rows
        } else {
            exporter.onProgress = progress
            report = try await exporter.run()
            if progress != nil { FileHandle.standardError.write(Data("\n".utf8)) }
        }
        let pending = try await store.batches(spec.url).filter { $0.state != .delivered }
        let dead = pending.filter { $0.state == .dead }.count
        var summary = "planned \(report.planned) new batches (\(report.plannedRows) rows); delivered \(report.delivered) (\(report.deliveredRows) rows) in \(String(format: "%.2f", report.seconds)) s, \(report.attempts) attempts"
        if !pending.isEmpty {
            summary += "\nnot delivered: \(pending.count) batches (\(dead) dead-lettered); see `sluice export status --to \(spec.url)`"
        }
        return Outcome(report: report, dead: dead, summary: summary)
    }
}

/// An export whose source is a Delta table (`--from delta:PATH`): the snapshot is first
/// mirrored into a table of the target database, keyed by the export's key, so the delivery
/// ledger works as for any table and each row still goes once. The mirror remembers the
/// version it holds (in the state folder): an unchanged table is not read again, appends are
/// merged in alone, anything else (deletes, rewrites, a re-created table) reloads it whole.
public enum DeltaExportSource {
    /// The mirror table of the table at `root`: `delta_<name>_<hash>` (a table of the user's
    /// database, visible to them; `sluice_` names are reserved for the control plane).
    public static func mirrorTable(_ root: String) -> String {
        let name = String((root as NSString).lastPathComponent.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }.prefix(30))
        return "delta_\(name)_\(fnv(URL(fileURLWithPath: root).standardizedFileURL.path))"
    }

    static func fnv(_ s: String) -> String {
        var h: UInt32 = 2_166_136_261
        for b in s.utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return String(h, radix: 16)
    }

    /// What the mirror holds: `<table id>@v<version>`, kept per mirror and database.
    static func stateFile(_ mirror: String, config: SluiceConfig) -> String {
        (config.stateDir as NSString).appendingPathComponent("delta/\(mirror)-\(fnv(config.targetDatabase)).version")
    }

    /// How a run refreshed the mirror.
    public enum Refresh: Sendable {
        case unchanged(version: Int64)
        case appended(rows: Int64, after: Int64, version: Int64)
        case reloaded(rows: Int64, version: Int64)

        public var line: String {
            switch self {
            case .unchanged(let v): "still at version \(v): the mirror is up to date"
            case .appended(let n, let a, let v): "\(n) rows added in \(a + 1 == v ? "version \(v)" : "versions \(a + 1)–\(v)") merged into the mirror"
            case .reloaded(let n, let v): "\(n) rows of version \(v) loaded into the mirror"
            }
        }
    }

    /// Refreshes the mirror of the Delta source of `spec`, if it has one, and points the export
    /// at it. Nil: the source is not a Delta table.
    public static func prepare(_ spec: inout ExportSpec, config: SluiceConfig) async throws -> Refresh? {
        guard let from = spec.source.table, let (named, _) = try DeltaLocation.parse(from) else { return nil }
        let mirror = mirrorTable(named)
        // A table in an object store: its snapshot is fetched first, then read as a local one.
        var scratch: String?
        defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
        var text = from
        if DeltaRemote.isRemote(from) {
            scratch = (config.stateDir as NSString).appendingPathComponent("downloads/\(UUID().uuidString)")
            text = try await DeltaRemote.localize(from, scratch: scratch!, s3: S3Config.from(config.s3))
        }
        guard let (root, selector) = try DeltaLocation.parse(text) else { return nil }
        let now = try DeltaLog.snapshot(LocalDeltaStorage(root: root), at: selector)
        let state = stateFile(mirror, config: config)
        let exists = try await Backends.with(database: config.targetDatabase, maxConnections: 1, tableSchema: config.targetSchema) { b in
            try await b.target.schema(of: mirror) != nil
        }
        spec.source.table = mirror
        let held = exists ? (try? String(contentsOfFile: state, encoding: .utf8)).flatMap(now.versionRead) : nil
        let refresh: Refresh
        if let last = held, last <= now.version {
            if last == now.version { return .unchanged(version: last) }
            if (try? DeltaLog.snapshot(LocalDeltaStorage(root: root), at: .changes(after: last, through: now.version))) != nil {
                let n = try await load("delta:\(root)@v\(last)..v\(now.version)", into: mirror, mode: .merge, key: spec.source.key, config: config)
                refresh = .appended(rows: n, after: last, version: now.version)
            } else {
                refresh = .reloaded(rows: try await load("delta:\(root)@v\(now.version)", into: mirror, mode: .replace, key: spec.source.key, config: config), version: now.version)
            }
        } else {
            refresh = .reloaded(rows: try await load("delta:\(root)@v\(now.version)", into: mirror, mode: .replace, key: spec.source.key, config: config), version: now.version)
        }
        try? FileManager.default.createDirectory(atPath: (state as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try? Data(now.readTag.utf8).write(to: URL(fileURLWithPath: state), options: .atomic)
        return refresh
    }

    /// A Delta export read straight from the table: what it reads, and what to do after the run.
    public struct Direct: Sendable {
        public let line: String
        /// After a run that planned its batches: remember the version sent, remove downloads.
        public let finish: @Sendable (_ planned: Bool) -> Void
    }

    /// Points `spec` at its Delta table directly (no mirror): the rows the ledger lacks are
    /// read from the snapshot — only the changes since the version the last run read, when it
    /// can tell them. Nil when the export needs the mirror (a `where:`, `resend_changed`, a
    /// composite key) or the source is not a Delta table.
    public static func direct(_ spec: inout ExportSpec, config: SluiceConfig) async throws -> Direct? {
        guard let from = spec.source.table, let (named, _) = try DeltaLocation.parse(from),
              spec.source.filter == nil, !spec.resendChanged, !spec.source.key.contains(",") else { return nil }
        var scratch: String?
        var text = from
        if DeltaRemote.isRemote(from) {
            scratch = (config.stateDir as NSString).appendingPathComponent("downloads/\(UUID().uuidString)")
            text = try await DeltaRemote.localize(from, scratch: scratch!, s3: S3Config.from(config.s3))
        }
        let cleanup = scratch
        do {
            guard let (root, selector) = try DeltaLocation.parse(text) else { return nil }
            let storage = LocalDeltaStorage(root: root)
            let now = try DeltaLog.snapshot(storage, at: selector)
            let columns = try now.columns()
            guard let keyIndex = columns.firstIndex(where: { $0.name == spec.source.key }) else {
                throw SluiceError(.invalidArgument, "\(named) has no column '\(spec.source.key)' (columns: \(columns.map(\.name).joined(separator: ", ")))")
            }
            let state = (config.stateDir as NSString).appendingPathComponent("delta/export-\(fnv(URL(fileURLWithPath: named).standardizedFileURL.path + "\n" + spec.url + "\n" + config.targetDatabase)).version")
            let held = (try? String(contentsOfFile: state, encoding: .utf8)).flatMap(now.versionRead)
            var read = now
            var line = "version \(now.version): the rows no batch carried yet"
            if let last = held, last <= now.version {
                if last == now.version {
                    read = now.restricted(to: [])
                    line = "still at version \(now.version): nothing new to read"
                } else if let changes = try? DeltaLog.snapshot(storage, at: .changes(after: last, through: now.version)) {
                    read = changes
                    line = "\(last + 1 == now.version ? "version \(now.version)" : "versions \(last + 1)–\(now.version)"): the changes since the last run"
                }
            }
            let schema = TableSchema(columns: columns.map { ColumnSchema(name: $0.name, type: $0.type, nullable: true) })
            let (snapshot, whole) = (read, now)
            spec.scanner = { store, destination, pageSize throws(SluiceError) in
                // A ledger that holds nothing for the receiver (a new database) overrides the
                // version remembered: the whole table is read.
                let from = try await store.hasKeys(destination) ? snapshot : whole
                let reader = try DeltaBatchReader(storage: storage, snapshot: from, spec: ReadSpec(schema: schema, limits: ReadLimits(batchRows: pageSize)))
                return DeltaExportScan(reader: reader, schema: schema, keyIndex: keyIndex, store: store, destinationID: destination, pageSize: pageSize)
            }
            spec.source.table = mirrorTable(named)  // a valid name for messages; the scanner reads the rows
            let tag = now.readTag
            return Direct(line: line) { planned in
                if planned {
                    try? FileManager.default.createDirectory(atPath: (state as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                    try? Data(tag.utf8).write(to: URL(fileURLWithPath: state), options: .atomic)
                }
                if let cleanup { try? FileManager.default.removeItem(atPath: cleanup) }
            }
        } catch {
            if let cleanup { try? FileManager.default.removeItem(atPath: cleanup) }
            throw error
        }
    }

    static func load(_ source: String, into mirror: String, mode: WriteMode, key: String, config: SluiceConfig) async throws -> Int64 {
        var request = LoadRequest(files: [source], entity: mirror)
        request.mode = mode
        request.key = key.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        request.table = mirror
        let report = try await Loader.load(request, config: config)
        return report.stats.inserted + report.stats.updated
    }
}

/// Seed 000's ledger as a Delta table (`ledger: delta:PATH` on an export): after a run, the
/// keys of the batches the receiver acknowledged are appended to the table, one row per key
/// with its batch, the receiver and the time — so a Spark or polars user sees exactly which
/// rows went out. The database's ledger still decides what is sent; the table is its published
/// copy, partitioned by receiver, and each run appends the delivered batches numbered after the
/// last one it holds, so a run that died before publishing is caught up by the next.
public enum DeltaLedger {
    /// Appends what the table lacks; returns the keys appended.
    public static func publish(_ table: String, url: String, key: String, store: any ExportStore, engine: String) async throws(SluiceError) -> Int {
        guard let (root, _) = try DeltaLocation.parse(table.hasPrefix("delta:") ? table : "delta:" + table) else { return 0 }
        if Source.isRemote(root) { throw SluiceError(.unsupported, "\(root): a ledger table is written to a local folder; Sluice does not write Delta tables in object stores yet") }
        let storage = LocalDeltaStorage(root: root)
        let existing = DeltaLocation.isTable(root) ? try DeltaLog.snapshot(storage) : nil
        var last: Int64 = 0
        if let existing { last = try lastBatch(existing, storage: storage, url: url) }
        let keys = try await store.deliveredKeys(url, after: last)
        guard !keys.isEmpty else { return 0 }
        let keyName = key.contains(",") ? "key" : key
        let keyType: ColumnType
        if let existing, let c = try existing.columns().first(where: { $0.name == keyName }) {
            keyType = c.type
        } else {
            keyType = keys.allSatisfy { Int64($0.key) != nil } ? .int64 : .text
        }
        let schema = TableSchema(columns: [ColumnSchema(name: keyName, type: keyType), ColumnSchema(name: "batch", type: .int64),
                                           ColumnSchema(name: "destination", type: .text), ColumnSchema(name: "sent_at", type: .timestamptz)])
        var b = BatchBuilder(schema: schema, capacity: keys.count)
        var stamp: [UInt8] = []
        ValueText.timestamp(micros: Int64(Date().timeIntervalSince1970 * 1_000_000), utc: true, into: &stamp)
        let now = String(decoding: stamp, as: UTF8.self)
        for (i, k) in keys.enumerated() {
            b.beginRow(line: Int64(i + 1))
            b.setText(0, k.key)
            b.setInt(1, k.batch)
            b.setText(2, url)
            b.setText(3, now)
            if let r = b.endRow() { throw SluiceError(.invalidInput, "key '\(k.key)' does not fit the ledger table's \(keyName) column: \(r.message)", at: SourceLocation(file: root)) }
        }
        let writer = try DeltaTableWriter(root: root, schema: schema, mode: .append, partitionBy: existing == nil ? ["destination"] : [], options: ParquetWriteOptions(), engine: engine)
        try writer.write(b.take())
        try writer.finish()
        return keys.count
    }

    /// The highest batch the table holds for `url`: from the files' statistics where they
    /// have them, else read.
    static func lastBatch(_ s: DeltaSnapshot, storage: LocalDeltaStorage, url: String) throws(SluiceError) -> Int64 {
        var best: Int64 = 0
        var unread: [DeltaFileAction] = []
        for f in s.files {
            let dest = f.partitionValues[s.partitionKey("destination")] ?? nil
            guard dest == nil || dest == url else { continue }
            if dest == url, let stats = f.stats, case .number(let n)? = (try? JSONParser.parse(stats))?["maxValues"]?["batch"], let v = Int64(n) {
                best = max(best, v)
            } else {
                unread.append(f)
            }
        }
        guard !unread.isEmpty else { return best }
        let spec = ReadSpec(schema: TableSchema(columns: [ColumnSchema(name: "batch", type: .int64), ColumnSchema(name: "destination", type: .text)]))
        let reader = try DeltaBatchReader(storage: storage, snapshot: s.restricted(to: unread), spec: spec)
        while let d = try reader.next() {
            for i in 0..<d.batch.count where !d.batch.columns[0].isNull(i) && ValueText.render(d.batch.columns[1], i) == url {
                best = max(best, d.batch.columns[0].ints[i])
            }
        }
        return best
    }
}
