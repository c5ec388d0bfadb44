public import SluiceCore
public import SluiceQueue
import SluiceSQLite
public import SluicePostgres
import PostgresNIO
public import Foundation

/// Where a worker loads jobs: it reads table schemas and opens sinks whose commit also
/// completes the job, in the same transaction, only while the job's lease token holds.
public protocol JobTarget: Sendable {
    /// Table schemas, for planning (called on a plain thread).
    func catalog() throws(SluiceError) -> any TableCatalog
    /// The sink for one attempt of `job`.
    func sink(entity: Entity, mode: WriteMode, job: Job, sha256: String?, scratchDir: String,
              now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink
}

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

/// Production: the PostgreSQL database that holds both the tables and the control plane.
public struct PostgresJobTarget: JobTarget {
    public let pool: PostgresPool
    public init(pool: PostgresPool) { self.pool = pool }

    public func catalog() throws(SluiceError) -> any TableCatalog { PostgresCatalog(database: pool) }

    public func sink(entity: Entity, mode: WriteMode, job: Job, sha256: String?, scratchDir: String,
                     now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink {
        let pool = self.pool
        let fence = PostgresFence { conn, counts, context in
            var stats = context.stats
            stats.inserted = counts.inserted
            stats.updated = counts.updated
            stats.deleted = counts.deleted
            stats.rejected += Int64(counts.rejects.count)
            stats.skipped = stats.read - stats.rejected - counts.inserted - counts.updated - counts.deleted
            let result = JobResult(stats: stats, rejectsPath: context.rejectsFiles.first, sha256: sha256)
            return try await PostgresQueueDriver.complete(conn, db: pool, id: job.id, token: job.leaseToken, result: result,
                                                          entity: job.entity, now: now())
        }
        return try PostgresLoad(db: pool, table: entity.table, schema: entity.schema, mode: mode, evolve: entity.evolve, fence: fence)
    }
}
