public import SluiceCore
public import SluiceQueue
import Foundation

/// The embedded default: one SQLite file holds the tables, the control plane and the export ledger.
public struct SQLiteBackend: Backend {
    public let path: String
    public init(path: String) { self.path = path }

    public var target: any DataTarget { SQLiteDataTarget(databasePath: path) }
    public func controlPlane() throws(SluiceError) -> (any QueueDriver)? { try SQLiteQueueDriver(path: path) }
    public func exportStore() async throws -> (any ExportStore)? { try SQLiteExportStore(path: path) }
    public var wakeSource: (@Sendable (@escaping @Sendable () -> Void) async -> Void)? { nil }
    public var displayName: String { path }
}

/// The tables of the embedded database.
public struct SQLiteDataTarget: DataTarget {
    public let databasePath: String
    public init(databasePath: String) { self.databasePath = databasePath }
    public var supportsRehearsal: Bool { true }

    public func schema(of table: String) async throws(SluiceError) -> TableSchema? {
        let path = databasePath
        return try await BlockingLane("sluice.sqlite.catalog").run { () throws(SluiceError) in try SQLiteTarget(path: path).schema(of: table) }
    }

    public func sink(entity: Entity, mode: WriteMode, scratchDir: String, completing: JobCompletion?) async throws(SluiceError) -> any LoadSink {
        // Kept apart per load: two loads of one process may share the scratch folder.
        if completing == nil { Self.sweepStages(in: scratchDir) }
        let stage = (scratchDir as NSString).appendingPathComponent(completing.map { "stage-\($0.job.id).db" }
            ?? "load-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).stage.db")
        var hook: SQLiteSink.CommitHook? = nil
        if let done = completing {
            hook = { (conn: SQLiteConnection, stats: LoadStats, context: CommitContext) throws(SluiceError) -> Void in
                guard try SQLiteQueueDriver.complete(conn, id: done.job.id, token: done.job.leaseToken, result: done.result(stats, context),
                                                     entity: done.job.entity, now: done.now(), refuseDuplicate: !done.job.spec.force) else { throw done.leaseLost }
            }
        }
        let sink = try await SQLiteSink.open(databasePath: databasePath, stagePath: stage, table: entity.table, schema: entity.schema, mode: mode,
                                             evolve: entity.evolve, onCommit: hook)
        sink.rejectNaN = !entity.nanAsNull  // set before any write
        return sink
    }

    /// Removes the stage files of loads whose process is gone (killed mid-load).
    static func sweepStages(in dir: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix("load-") && name.hasSuffix(".stage.db") {
            guard let pid = Int32(name.dropFirst(5).prefix { $0 != "-" }), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }  // its load still runs
            unlink((dir as NSString).appendingPathComponent(name))
        }
    }
}
