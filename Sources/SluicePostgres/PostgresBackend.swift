public import SluiceCore
public import SluiceQueue
public import Foundation
public import Logging
import PostgresNIO

/// Production: one PostgreSQL database holds the tables, the control plane (woken by
/// LISTEN/NOTIFY) and the export ledger.
public struct PostgresBackend: Backend {
    public let pool: PostgresPool
    /// The schema of tables named without one (`target_schema`).
    public let tableSchema: String
    public init(pool: PostgresPool, tableSchema: String? = nil) {
        self.pool = pool
        self.tableSchema = tableSchema ?? PostgresDataTarget.defaultSchema
    }

    /// Runs `body` with the backend at `url`; its pool of `maxConnections` runs for exactly that long.
    public static func with<T: Sendable>(url: String, maxConnections: Int, logger: Logger?, tableSchema: String? = nil,
                                         _ body: @Sendable (PostgresBackend) async throws -> T) async throws -> T {
        if let s = tableSchema {
            try SQLIdentifier.validate(s)
            if s.lowercased() == QualifiedName.controlSchema { throw SluiceError(.invalidConfig, "target_schema cannot be '\(s)': it holds Sluice's own tables") }
        }
        let pool = try logger.map { l throws(SluiceError) in try PostgresPool(url: url, maxConnections: maxConnections, logger: l) }
            ?? PostgresPool(url: url, maxConnections: maxConnections)
        try await pool.probe()
        return try await withThrowingTaskGroup(of: T?.self) { group in
            await pool.start(in: &group)
            defer { group.cancelAll() }
            return try await body(PostgresBackend(pool: pool, tableSchema: tableSchema))
        }
    }

    public var target: any DataTarget { PostgresDataTarget(pool: pool, tableSchema: tableSchema) }
    public func controlPlane() throws(SluiceError) -> (any QueueDriver)? { PostgresQueueDriver(db: pool) }
    public func exportStore() async throws -> (any ExportStore)? { try await PostgresExportStore(pool: pool, tableSchema: tableSchema) }
    public var wakeSource: (@Sendable (@escaping @Sendable () -> Void) async -> Void)? {
        let driver = PostgresQueueDriver(db: pool)
        return { poke in await driver.listen(poke) }
    }
    public var displayName: String { pool.displayURL }
}

/// The tables of a PostgreSQL database.
public struct PostgresDataTarget: DataTarget {
    public let pool: PostgresPool
    /// The schema of tables named without one.
    public let tableSchema: String
    /// Where tables named without a schema go unless `target_schema` says otherwise.
    public static let defaultSchema = "public"
    public init(pool: PostgresPool, tableSchema: String = Self.defaultSchema) {
        self.pool = pool
        self.tableSchema = tableSchema
    }

    public func schema(of table: String) async throws(SluiceError) -> TableSchema? {
        let name = try QualifiedName.target(table).inSchema(tableSchema)
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
                                                   entity: ledger ? done.job.entity : nil, now: done.now(), refuseDuplicate: !done.job.spec.force)
        }
    }

    public func sink(entity: Entity, mode: WriteMode, scratchDir: String, completing: JobCompletion?) async throws(SluiceError) -> any LoadSink {
        let load = try await PostgresLoad.open(db: pool, table: entity.table, defaultSchema: tableSchema, schema: entity.schema, mode: mode, evolve: entity.evolve,
                                               fence: completing.map { fence($0, ledger: true) }, scratchDir: scratchDir)
        load.encoder.nanAsNull = entity.nanAsNull  // set before any write
        return load
    }

    public var supportsChunks: Bool { true }
    public var supportsRehearsal: Bool { true }

    public func sessionTimeZone() async -> String? { await pool.sessionTimeZone() }

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
        // Best effort, never waiting long on a writer that still holds it: a stage left behind
        // is scratch space, dropped again by a later attempt or by clean-up.
        _ = try? await pool.client.withConnection { conn in
            try await pool.exec("SET lock_timeout = '5s'", on: conn)
            _ = try? await pool.exec(sql, on: conn)
            try await pool.exec("RESET lock_timeout", on: conn)
        }
    }

    public func sharedStages() async -> [Int64] {
        let pool = self.pool
        let names = try? await pool.client.withConnection { conn in
            try await conn.query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'sluice' AND table_name ~ '^stage_[0-9]+$'",
                                 logger: pool.logger).collect().map { try $0.decode(String.self) }
        }
        return (names ?? []).compactMap { Int64($0.dropFirst("stage_".count)) }
    }

    public func chunkSink(job: Job, parent: Int64, schema: TableSchema, chunk: FileChunk,
                          now: @escaping @Sendable () -> Date) async throws(SluiceError) -> any LoadSink {
        try await PostgresLoad.open(db: pool, table: job.entity, defaultSchema: tableSchema, schema: schema, mode: .append,
                         fence: fence(JobCompletion(job: job, sha256: nil, now: now), ledger: false),
                         role: .fillChunk(PostgresLoad.SharedStage(jobId: parent), lines: chunk.firstLine..<chunk.endLine))
    }

    public func applySink(entity: Entity, mode: WriteMode, completing: JobCompletion) async throws(SluiceError) -> any LoadSink {
        try await PostgresLoad.open(db: pool, table: entity.table, defaultSchema: tableSchema, schema: entity.schema, mode: mode, evolve: entity.evolve,
                         fence: fence(completing, ledger: true), role: .applyShared(PostgresLoad.SharedStage(jobId: completing.job.id)))
    }
}
