public import SluiceCore
public import SluiceQueue
public import Foundation

/// The embedded default: the SQLite file that also holds the control plane.
public struct SQLiteJobTarget: JobTarget {
    public let databasePath: String
    public init(databasePath: String) { self.databasePath = databasePath }

    public func catalog() throws(SluiceError) -> any TableCatalog { try SQLiteTarget(path: databasePath) }

    public func sink(entity: Entity, mode: WriteMode, job: Job, sha256: String?, scratchDir: String,
                     now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink {
        let fence = SQLiteStagedLoad.Fence(jobId: job.id, token: job.leaseToken, entity: job.entity, sha256: sha256, now: now)
        return try SQLiteStagedLoad(databasePath: databasePath, stagePath: (scratchDir as NSString).appendingPathComponent("stage.db"),
                                    table: entity.table, schema: entity.schema, mode: mode, evolve: entity.evolve, fence: fence)
    }
}
