import VaporCSQLite
public import SluiceCore
public import SluiceQueue
public import Foundation

/// A worker's load into the embedded database, in two phases so that the database's
/// single write lock is held only briefly (API submissions and other workers' heartbeats
/// keep flowing while a big file loads):
///
/// 1. Rows go to a private stage file next to the job (no lock on the main database).
///    A keyed stage keeps the last row per key. In append mode a repeated key, or a key
///    already in the table, is rejected here, row by row.
/// 2. ``commit(_:)`` attaches the stage and, in one `BEGIN IMMEDIATE` transaction, applies
///    it to the table and marks the job complete — only if the job still carries the
///    lease token this worker claimed it with. A stale worker's commit changes nothing.
public final class SQLiteStagedLoad: LoadSink {
    /// The job whose lease guards the commit.
    public struct Fence: Sendable {
        public var jobId: Int64
        public var token: Int64
        public var entity: String
        public var sha256: String?
        public var now: @Sendable () -> Date
        public init(jobId: Int64, token: Int64, entity: String, sha256: String?, now: @escaping @Sendable () -> Date) {
            self.jobId = jobId
            self.token = token
            self.entity = entity
            self.sha256 = sha256
            self.now = now
        }
    }

    let databasePath: String
    let stagePath: String
    let table: String
    let schema: TableSchema
    let mode: WriteMode
    let fence: Fence
    let stageDB: SQLiteConnection
    let mainReader: SQLiteConnection?
    let upsert: SQLiteStatement
    let exists: SQLiteStatement?
    var binder: SQLiteBinder
    let keyIndices: [Int]
    static let stageName = "rows"
    static let cacheKiB = 64 * 1024
    static let mmapBytes = 1 << 30
    var open = true
    /// The result recorded with the completion (available after a successful commit).
    public private(set) var result: JobResult?

    let evolve: Bool

    public init(databasePath: String, stagePath: String, table: String, schema: TableSchema, mode: WriteMode, evolve: Bool = false,
                fence: Fence) throws(SluiceError) {
        self.evolve = evolve
        try SQLIdentifier.validate(table)
        try schema.validate()
        if mode == .merge && schema.primaryKey.isEmpty { throw SluiceError(.invalidSchema, "merge into '\(table)' needs a primary key") }
        self.databasePath = databasePath
        self.stagePath = stagePath
        self.table = table
        self.schema = schema
        self.mode = mode
        self.fence = fence
        self.keyIndices = schema.keyIndices
        self.binder = SQLiteBinder(types: schema.columns.map(\.type))
        try? FileManager.default.removeItem(atPath: stagePath)  // a leftover from a killed attempt
        stageDB = try SQLiteConnection(path: stagePath)
        try stageDB.execute("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -\(Self.cacheKiB);")
        try stageDB.execute(SQLiteSQL.createStage(Self.stageName, schema, db: "main"))
        upsert = try stageDB.prepare(SQLiteSQL.upsertStage(Self.stageName, schema, db: "main", keepFirst: mode == .append))
        // Fail fast on a table that cannot take this load (checked again under the lock).
        let reader = try SQLiteConnection(path: databasePath, readOnly: true)
        let target = try SQLiteTarget.catalogReader(reader)
        if let existing = try target.schema(of: table), mode != .replace, !evolve {
            try SQLiteTarget.check(existing: existing, against: schema, table: table, mode: mode)
        }
        let tableExists = try target.tableExists(table)
        if mode == .append && !schema.primaryKey.isEmpty && tableExists {
            mainReader = reader
            exists = try reader.prepare(SQLiteSQL.keyExists(table, schema))
        } else {
            mainReader = nil
            exists = nil
        }
        try stageDB.execute("BEGIN")
    }

    deinit {
        binder.deallocate()
        rollback()
    }

    public func write(_ batch: RecordBatch) throws(SluiceError) -> [SinkReject] {
        guard open else { throw SluiceError(.aborted, "the load is already finished") }
        if batch.isEmpty { return [] }
        return try SQLiteBinder.withPointers(batch, kinds: binder.kinds) { cols in
            Result { () throws(SluiceError) in try self.stageRows(batch, cols) }
        }
    }

    func stageRows(_ batch: RecordBatch, _ cols: [SQLiteBinder.ColumnPointers]) throws(SluiceError) -> [SinkReject] {
        var rejects: [SinkReject] = []
        let n = Int32(cols.count)
        for r in 0..<batch.count {
            let op = batch.ops[r]
            if mode == .append {
                if op == .delete { rejects.append(reject(batch, r, "op D (delete) needs merge mode")); continue }
                if let exists {
                    for (p, c) in keyIndices.enumerated() { binder.bind(exists, Int32(p + 1), cols[c], column: c, row: r, decimals: batch.columns[c].decimals) }
                    if try exists.step() {
                        exists.reset()
                        rejects.append(reject(batch, r, "duplicate key (\(schema.primaryKey.joined(separator: ", "))): already in the table"))
                        continue
                    }
                }
            }
            for c in cols.indices { binder.bind(upsert, Int32(c + 1), cols[c], column: c, row: r, decimals: batch.columns[c].decimals) }
            upsert.bind(n + 1, int: Int64(op.rawValue))
            upsert.bind(n + 2, int: batch.lines[r])
            let rc = upsert.run()
            guard rc == SQLITE_DONE else { throw stageDB.error(rc, "SQLite staging") }
            if mode == .append && !keyIndices.isEmpty && stageDB.changes == 0 {
                rejects.append(reject(batch, r, "duplicate key (\(schema.primaryKey.joined(separator: ", "))): repeated in the file"))
            }
        }
        return rejects
    }

    func reject(_ batch: RecordBatch, _ r: Int, _ reason: String) -> SinkReject {
        SinkReject(line: batch.lines[r], reason: reason, values: batch.columns.map { ValueText.render($0, r) })
    }

    public func commit(_ context: CommitContext) throws(SluiceError) -> SinkCounts {
        guard open else { throw SluiceError(.aborted, "the load is already finished") }
        try stageDB.execute("COMMIT")
        let main = try SQLiteConnection(path: databasePath)
        // A fresh connection starts with a 2 MB cache: the merge's key lookups would re-read
        // the table's index pages from the OS, one syscall and copy each. Mapped reads and a
        // cache the size of the worker's own keep it to the index's first touch.
        try main.execute("PRAGMA cache_size = -\(Self.cacheKiB); PRAGMA mmap_size = \(Self.mmapBytes);")
        let attach = try main.prepare("ATTACH DATABASE ?1 AS stage")
        attach.bind(1, .text(stagePath))
        try attach.step()
        try main.execute("PRAGMA stage.cache_size = -\(Self.cacheKiB); PRAGMA stage.mmap_size = \(Self.mmapBytes);")
        defer {
            // Detaching can only fail if a statement is still open; none is at this point.
            try? main.execute("DETACH DATABASE stage")
            cleanup()
        }
        try main.execute("BEGIN IMMEDIATE")
        do throws(SluiceError) {
            let target = try SQLiteTarget.catalogReader(main)
            try target.prepareTable(table, schema, mode: mode, evolve: evolve)
            var counts = SinkCounts()
            let stage = Self.stageName
            switch mode {
            case .merge:
                counts = try main.merge(stage, into: table, schema, db: "stage")
            case .append, .replace:
                try main.execute(SQLiteSQL.insertFromStage(table, stage, schema, db: "stage"))
                counts.inserted = main.changes
            }
            try SQLiteConnection.runSteps(context.afterSQL, on: main)
            var stats = context.stats
            stats.inserted = counts.inserted
            stats.updated = counts.updated
            stats.deleted = counts.deleted
            stats.skipped = stats.read - stats.rejected - counts.inserted - counts.updated - counts.deleted
            let result = JobResult(stats: stats, rejectsPath: context.rejectsFiles.first, sha256: fence.sha256)
            guard try SQLiteQueueDriver.complete(main, id: fence.jobId, token: fence.token, result: result, entity: fence.entity, now: fence.now()) else {
                throw SluiceError(.aborted, "job \(fence.jobId) is no longer held with lease token \(fence.token); nothing was written")
            }
            try main.execute("COMMIT")
            self.result = result
            open = false
            return counts
        } catch {
            try? main.execute("ROLLBACK")  // the error being thrown is what matters
            open = false
            throw error
        }
    }

    public func rollback() {
        guard open else { return }
        open = false
        cleanup()
    }

    func cleanup() {
        // The stage is scratch: a failed removal only leaves a file the next attempt replaces.
        try? stageDB.execute("ROLLBACK")
        try? FileManager.default.removeItem(atPath: stagePath)
    }
}

extension SQLiteTarget {
    /// A target view over an already-open connection (no pragmas, no metadata creation).
    static func catalogReader(_ c: SQLiteConnection) throws(SluiceError) -> SQLiteTarget {
        SQLiteTarget(existing: c)
    }
}
