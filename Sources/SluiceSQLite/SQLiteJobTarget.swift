public import SluiceCore
public import SluiceQueue
public import Foundation

/// The embedded default: the SQLite file that also holds the control plane.
public struct SQLiteJobTarget: JobTarget {
    public let databasePath: String
    public init(databasePath: String) { self.databasePath = databasePath }

    public func catalog() throws(SluiceError) -> any TableCatalog { try SQLiteTarget(path: databasePath) }

    /// The sink whose commit also completes `job`, only while it still holds its lease token.
    public func sink(entity: Entity, mode: WriteMode, job: Job, sha256: String?, scratchDir: String,
                     now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink {
        try SQLiteSink(databasePath: databasePath, stagePath: (scratchDir as NSString).appendingPathComponent("stage.db"),
                       table: entity.table, schema: entity.schema, mode: mode, evolve: entity.evolve) { conn, stats, context throws(SluiceError) in
            let result = JobResult(stats: stats, rejectsPath: context.rejectsFiles.first, sha256: sha256)
            guard try SQLiteQueueDriver.complete(conn, id: job.id, token: job.leaseToken, result: result, entity: job.entity, now: now()) else {
                throw SluiceError(.aborted, "job \(job.id) is no longer held with lease token \(job.leaseToken); nothing was written")
            }
        }
    }
}
