public import SluiceCore
public import SluiceQueue
public import Foundation
import PostgresNIO

/// Production: the PostgreSQL database that holds both the tables and the control plane.
public struct PostgresJobTarget: JobTarget {
    public let pool: PostgresPool
    public init(pool: PostgresPool) { self.pool = pool }

    public func catalog() throws(SluiceError) -> any TableCatalog { PostgresCatalog(database: pool) }

    /// Completes `job` in the load's transaction, with the load's exact figures.
    func fence(_ job: Job, sha256: String?, ledger: Bool, now: @escaping @Sendable () -> Date) -> PostgresFence {
        let pool = self.pool
        return PostgresFence { conn, counts, context in
            let stats = context.settled(counts)
            let result = JobResult(stats: stats, rejectsPath: context.rejectsFiles.first, sha256: sha256)
            return try await PostgresQueueDriver.complete(conn, db: pool, id: job.id, token: job.leaseToken, result: result,
                                                          entity: ledger ? job.entity : nil, now: now())
        }
    }

    public func sink(entity: Entity, mode: WriteMode, job: Job, sha256: String?, scratchDir: String,
                     now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink {
        try PostgresLoad(db: pool, table: entity.table, schema: entity.schema, mode: mode, evolve: entity.evolve,
                         fence: fence(job, sha256: sha256, ledger: true, now: now))
    }

    public var supportsChunks: Bool { true }

    public func prepareSharedStage(parent: Int64, schema: TableSchema) async throws(SluiceError) {
        let pool = self.pool
        let sql = PostgresSQL.createSharedStage(PostgresLoad.SharedStage(jobId: parent).quoted, schema)
        do {
            try await pool.client.withConnection { conn in _ = try await pool.exec(sql, on: conn) }
        } catch {
            throw PostgresPool.error(error, "creating the shared stage of job \(parent)")
        }
    }

    public func dropSharedStage(parent: Int64) async {
        let pool = self.pool
        let sql = "DROP TABLE IF EXISTS \(PostgresLoad.SharedStage(jobId: parent).quoted)"
        // Best effort: a stage left behind is scratch space, dropped again by a later attempt.
        _ = try? await pool.client.withConnection { conn in try await pool.exec(sql, on: conn) }
    }

    public func chunkSink(job: Job, parent: Int64, schema: TableSchema, chunk: FileChunk,
                          now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink {
        try PostgresLoad(db: pool, table: job.entity, schema: schema, mode: .append,
                         fence: fence(job, sha256: nil, ledger: false, now: now),
                         role: .fillChunk(PostgresLoad.SharedStage(jobId: parent), lines: chunk.firstLine..<chunk.endLine))
    }

    public func applySink(entity: Entity, mode: WriteMode, job: Job, sha256: String?,
                          now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink {
        try PostgresLoad(db: pool, table: entity.table, schema: entity.schema, mode: mode, evolve: entity.evolve,
                         fence: fence(job, sha256: sha256, ledger: true, now: now), role: .applyShared(PostgresLoad.SharedStage(jobId: job.id)))
    }
}
