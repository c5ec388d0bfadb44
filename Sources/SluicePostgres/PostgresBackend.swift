public import SluiceCore
public import SluiceQueue
public import Foundation
public import Logging
import PostgresNIO

/// Production: one PostgreSQL database holds the tables, the control plane (woken by
/// LISTEN/NOTIFY) and the export ledger.
public struct PostgresBackend: Backend {
    public let pool: PostgresPool
    public init(pool: PostgresPool) { self.pool = pool }

    /// Runs `body` with the backend at `url`; its pool of `maxConnections` runs for exactly that long.
    public static func with<T: Sendable>(url: String, maxConnections: Int, logger: Logger?,
                                         _ body: @Sendable (PostgresBackend) async throws -> T) async throws -> T {
        let pool = try logger.map { l throws(SluiceError) in try PostgresPool(url: url, maxConnections: maxConnections, logger: l) }
            ?? PostgresPool(url: url, maxConnections: maxConnections)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { await pool.run(); return nil }
            defer { group.cancelAll() }
            return try await body(PostgresBackend(pool: pool))
        }
    }

    public var target: any DataTarget { PostgresDataTarget(pool: pool) }
    public func controlPlane() throws(SluiceError) -> (any QueueDriver)? { PostgresQueueDriver(db: pool) }
    public func exportStore() async throws -> (any ExportStore)? { try await PostgresExportStore(pool: pool) }
    public var wakeSource: (@Sendable (@escaping @Sendable () -> Void) async -> Void)? {
        let driver = PostgresQueueDriver(db: pool)
        return { poke in await driver.listen(poke) }
    }
    public var displayName: String { pool.displayURL }
}

/// The tables of a PostgreSQL database.
public struct PostgresDataTarget: DataTarget {
    public let pool: PostgresPool
    public init(pool: PostgresPool) { self.pool = pool }

    public func schema(of table: String) async throws(SluiceError) -> TableSchema? {
        let name = try QualifiedName(table)
        let pool = self.pool
        do {
            return try await pool.client.withConnection { try await pool.schema(of: name, on: $0) }
        } catch {
            throw PostgresPool.error(error, "cannot read the schema of '\(table)'")
        }
    }

    /// Completes the job in the load's transaction, with the load's exact figures; `ledger`:
    /// whether the file's digest is remembered against the entity (not for a chunk).
    func fence(_ done: JobCompletion, ledger: Bool) -> PostgresFence {
        let pool = self.pool
        return PostgresFence { conn, counts, context in
            try await PostgresQueueDriver.complete(conn, db: pool, id: done.job.id, token: done.job.leaseToken,
                                                   result: done.result(context.settled(counts), context),
                                                   entity: ledger ? done.job.entity : nil, now: done.now())
        }
    }

    public func sink(entity: Entity, mode: WriteMode, scratchDir: String, completing: JobCompletion?) async throws(SluiceError) -> any LoadSink {
        let load = try await PostgresLoad.open(db: pool, table: entity.table, schema: entity.schema, mode: mode, evolve: entity.evolve,
                                               fence: completing.map { fence($0, ledger: true) })
        load.encoder.nanAsNull = entity.nanAsNull  // set before any write
        return load
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
                          now: @escaping @Sendable () -> Date) async throws(SluiceError) -> any LoadSink {
        try await PostgresLoad.open(db: pool, table: job.entity, schema: schema, mode: .append,
                         fence: fence(JobCompletion(job: job, sha256: nil, now: now), ledger: false),
                         role: .fillChunk(PostgresLoad.SharedStage(jobId: parent), lines: chunk.firstLine..<chunk.endLine))
    }

    public func applySink(entity: Entity, mode: WriteMode, completing: JobCompletion) async throws(SluiceError) -> any LoadSink {
        try await PostgresLoad.open(db: pool, table: entity.table, schema: entity.schema, mode: mode, evolve: entity.evolve,
                         fence: fence(completing, ledger: true), role: .applyShared(PostgresLoad.SharedStage(jobId: completing.job.id)))
    }
}
