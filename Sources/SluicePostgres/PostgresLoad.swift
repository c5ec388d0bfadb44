public import SluiceCore
public import PostgresNIO
import NIOCore
import Foundation
import Synchronization

/// Completes a job inside the load's transaction, if the job is still held (fencing).
public struct PostgresFence: Sendable {
    public var complete: @Sendable (PostgresConnection, SinkCounts, CommitContext) async throws -> Bool
    public init(complete: @escaping @Sendable (PostgresConnection, SinkCounts, CommitContext) async throws -> Bool) {
        self.complete = complete
    }
}

/// One load into one PostgreSQL table, in one transaction on one connection:
/// - a table this load creates takes each key's first row by `COPY` straight into it, and
///   its primary key is built once over them; the few rows whose key may have come before
///   (and deletes) go through the stage as below, merged over the table (``DirectRows``);
/// - otherwise `COPY` streams encoded batches into a temporary stage (typed, dropped at commit); then
/// - an empty target (or replace) gets the last row per key by one `INSERT ... SELECT
///   DISTINCT ON` — no MERGE needed — and a table created by this load gets its primary key
///   built once, after the rows are in;
/// - a non-empty target gets one `MERGE` from the stage deduplicated on the fly (in key
///   order, merge-joined to the primary key), under a lock that keeps other writers out
///   (readers are not blocked); inserted, updated and deleted come from PostgreSQL's own
///   per-transaction tuple counters and must add up to MERGE's row count;
/// - append checks keys against the table and the load itself and rejects repeats.
/// The job's completion (when fenced) commits in the same transaction.
public final class PostgresLoad: SessionSink, @unchecked Sendable {
    let db: PostgresPool
    let table: QualifiedName
    /// The load's columns; an existing table's array columns add their native types.
    var schema: TableSchema
    let mode: WriteMode
    let evolve: Bool
    let fence: PostgresFence?
    let stallTimeout: Duration
    var encoder: BulkTextEncoder
    var encoded: [UInt8] = []
    /// Encoded COPY buffers to the session, its commit or rollback, and its outcome.
    public let io = SinkSession<ByteBuffer>()
    static let stage = "sluice_stage"
    /// What this load does with its rows.
    public enum Role: Sendable {
        /// COPY into a temporary stage, then apply it to the table.
        case load
        /// Apply a chunked job's shared stage, already filled by its chunks (no COPY), and drop it.
        case applyShared(SharedStage)
        /// COPY one chunk into a shared stage (replacing that chunk's rows from an earlier
        /// attempt); the table is not touched.
        case fillChunk(SharedStage, lines: Range<Int64>)
    }

    /// The stage a chunked job's workers fill together (an unlogged table in schema `sluice`).
    public struct SharedStage: Sendable, Hashable {
        public var name: String
        public init(jobId: Int64) { name = "stage_\(jobId)" }
        public var quoted: String { "\"sluice\"." + SQLIdentifier.quoteValidated(name) }
    }

    let role: Role
    /// Set by the session before the first batch when the rows go straight into a table it
    /// created; read and written by `encode` after that.
    var direct: DirectRows?
    /// Rows encoded for the stage when no rows go straight into the table.
    var encodedForStage: Int64 = 0
    /// Rows this load put in the stage (a chunked job's shared stage: unknown).
    var stagedRows: Int64 { direct?.staged ?? encodedForStage }
    /// From this many staged rows a MERGE reads the stage's statistics first (``analyze(_:_:)``).
    static let analyzeFrom: Int64 = 10_000
    let tuning: DirectRows.Tuning
    /// The stage as SQL: the temporary stage, or a chunked job's shared stage.
    let stageRef: String
    var sharedStage: String? { if case .applyShared(let s) = role { s.quoted } else { nil } }
    /// Memory PostgreSQL may use per sort or hash in a load's transaction (server side).
    static let workMemMB = 256
    static let maintenanceWorkMemMB = 512
    static let final = "sluice_final"
    var finalRef: String { SQLIdentifier.quoteValidated(Self.final) }

    /// - Parameter stallTimeout: how long a COPY write may make no progress before the
    ///   connection is presumed dead. The default is 60 seconds.
    /// - Parameter role: load (the default), fill one chunk of a shared stage, or apply one.
    /// - Parameter scratchDir: where rows set aside past 8 MiB spill (nil: the system temporary folder).
    /// - Parameter defaultSchema: where an unqualified `table` is (never the session's search path).
    public static func open(db: PostgresPool, table: String, defaultSchema: String = PostgresDataTarget.defaultSchema, schema: TableSchema,
                            mode: WriteMode, evolve: Bool = false, fence: PostgresFence? = nil, stallTimeout: Duration = .seconds(60),
                            role: Role = .load, scratchDir: String? = nil) async throws(SluiceError) -> PostgresLoad {
        try await start(PostgresLoad(db: db, table: try QualifiedName.target(table).inSchema(defaultSchema), schema: schema, mode: mode,
                                     evolve: evolve, fence: fence, stallTimeout: stallTimeout, role: role,
                                     tuning: DirectRows.Tuning(spillDirectory: scratchDir)))
    }

    /// Starts `load`'s session and waits until it takes rows.
    static func start(_ load: PostgresLoad) async throws(SluiceError) -> PostgresLoad {
        // The session holds one connection from here to the commit or rollback, which await it.
        Task { await load.session() }
        if let e = await load.io.ready.value() { throw e }
        return load
    }

    init(db: PostgresPool, table: QualifiedName, schema: TableSchema, mode: WriteMode, evolve: Bool,
         fence: PostgresFence?, stallTimeout: Duration, role: Role, tuning: DirectRows.Tuning = .init()) throws(SluiceError) {
        self.stallTimeout = stallTimeout
        self.role = role
        self.tuning = tuning
        switch role {
        case .load: stageRef = SQLIdentifier.quoteValidated(Self.stage)
        case .applyShared(let s), .fillChunk(let s, _): stageRef = s.quoted
        }
        try schema.validate()
        if mode == .merge && schema.primaryKey.isEmpty { throw SluiceError(.invalidSchema, "merge into '\(table)' needs a primary key") }
        self.db = db
        self.table = table
        self.schema = schema
        self.mode = mode
        self.evolve = evolve
        self.fence = fence
        self.encoder = BulkTextEncoder(schema: schema, dialect: .postgresCopy)
    }

    /// The connection's whole life: setup, COPY, then commit or rollback.
    func session() async {
        var signalled = false
        var stageLeft = false
        var outcome: Result<SinkCounts, SluiceError> = .failure(SluiceError(.aborted, "the load was rolled back"))
        do {
            try await db.client.withConnection { conn in
                try await db.exec("BEGIN", on: conn)
                do {
                    // Bulk-load memory for this transaction only: sorts (last row per key),
                    // hash joins (MERGE) and the primary-key build stay in memory.
                    try await db.exec("SET LOCAL work_mem = '\(Self.workMemMB)MB'", on: conn)
                    try await db.exec("SET LOCAL maintenance_work_mem = '\(Self.maintenanceWorkMemMB)MB'", on: conn)
                    var state = TargetState(empty: false, created: false)
                    var copyInto: (table: String, columns: [String])? = nil
                    switch role {
                    case .load:
                        state = try await prepareTarget(conn)
                        if state.created, let d = DirectRows(schema: schema, mode: mode, tuning) {
                            direct = d
                            copyInto = (PostgresSQL.copyTableName(table), [])
                        } else {
                            try await db.exec(PostgresSQL.createStage(Self.stage, schema), on: conn)
                            copyInto = (Self.stage, PostgresSQL.stageColumns(schema))
                        }
                    case .applyShared:
                        state = try await prepareTarget(conn)
                    case .fillChunk(let stage, let lines):
                        // COPY names one unqualified table: find the shared stage by search path.
                        try await db.exec("SET LOCAL search_path TO sluice", on: conn)
                        try await db.exec("DELETE FROM \(stage.quoted) WHERE \(PostgresSQL.lineColumn) >= $1 AND \(PostgresSQL.lineColumn) < $2",
                                          [.int(lines.lowerBound), .int(lines.upperBound)], on: conn)
                        copyInto = (stage.name, PostgresSQL.stageColumns(schema))
                    }
                    io.ready.set(nil)
                    signalled = true
                    let feed = io.feed
                    let stall = stallTimeout
                    if let copyInto {
                        try await conn.copyFrom(table: copyInto.table, columns: copyInto.columns, logger: db.logger) { writer in
                            while let buffer = await feed.next() { try await Self.write(buffer, to: writer, on: conn, stallTimeout: stall) }
                        }
                    }
                    guard case .commit(let context)? = await io.command() else {
                        try await db.exec("ROLLBACK", on: conn)
                        return
                    }
                    var counts = SinkCounts()
                    if case .fillChunk = role {} else { counts = try await apply(conn, state, context) }
                    if let budget = context.rejectBudget, Int64(counts.rejects.count) > budget {
                        try await db.exec("ROLLBACK", on: conn)
                        outcome = .failure(SluiceError(.tooManyRejects, "\(counts.rejects.count) more rows refused by PostgreSQL exceed the reject budget; nothing was written"))
                        return
                    }
                    if let sharedStage {
                        // A chunk writer cut off mid-COPY still holds the shared stage until the
                        // server notices (a minute, by the keepalives): waiting for it would hold
                        // this commit. Wait 2 s at most, then leave the stage to `dropSharedStage`.
                        try await db.exec("SAVEPOINT drop_stage", on: conn)
                        do {
                            try await db.exec("SET LOCAL lock_timeout = '2s'", on: conn)
                            try await db.exec("DROP TABLE IF EXISTS \(sharedStage)", on: conn)
                            try await db.exec("RELEASE SAVEPOINT drop_stage", on: conn)
                        } catch {
                            try await db.exec("ROLLBACK TO SAVEPOINT drop_stage", on: conn)
                            stageLeft = true
                        }
                        try await db.exec("SET LOCAL lock_timeout = DEFAULT", on: conn)
                    }
                    for (i, sql) in context.afterSQL.enumerated() {
                        do { try await db.exec(sql, on: conn) } catch {
                            throw CommitContext.sqlStepFailed(i, sql, PostgresPool.error(error, "running a sql step").message)
                        }
                    }
                    if context.rehearsal {
                        try await db.exec("ROLLBACK", on: conn)
                        outcome = .success(counts)
                        return
                    }
                    if let fence, try await !fence.complete(conn, counts, context) {
                        try await db.exec("ROLLBACK", on: conn)
                        outcome = .failure(SluiceError(.aborted, "the job's lease was lost; nothing was written"))
                        return
                    }
                    try await db.exec("COMMIT", on: conn)
                    if stageLeft, let sharedStage {
                        db.logger.warning("the shared stage is still held by a chunk writer that was cut off; left in place", metadata: ["stage": "\(sharedStage)"])
                    }
                    outcome = .success(counts)
                } catch {
                    // Release the producer first, then drop the connection rather than send
                    // ROLLBACK on it: after a failed COPY its protocol state cannot be trusted,
                    // and the server rolls back a transaction whose connection is gone.
                    io.feed.close()
                    try? await conn.close()  // the error being thrown is what matters
                    throw error
                }
            }
        } catch {
            let e = PostgresPool.error(error, "PostgreSQL load into \(table)")
            if !signalled { io.ready.set(e) }
            outcome = .failure(e)
        }
        io.finish(outcome)
    }

    /// Writes one COPY buffer, or fails if it makes no progress for `stallTimeout`, or at
    /// once (within a second) when the connection's socket has closed.
    ///
    /// postgres-nio 1.33.2 drops a write's pending backpressure promise when an error (such
    /// as the backend being terminated) arrives while the channel is not writable, so that
    /// write would never return. The watchdog turns that into a transient failure; the
    /// abandoned write goes with the dead connection. A restarted server closes the socket,
    /// so that case is told in a second rather than after the whole stall timeout.
    static func write(_ buffer: ByteBuffer, to writer: PostgresCopyFromWriter, on conn: PostgresConnection, stallTimeout: Duration) async throws {
        let once = OnceFlag()
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            let watchdog = Task {
                let clock = ContinuousClock()
                let deadline = clock.now + stallTimeout
                while clock.now < deadline {
                    do { try await Task.sleep(for: min(.seconds(1), deadline - clock.now)) } catch { return }  // the write finished
                    if conn.isClosed {
                        if once.claim() { cont.resume(throwing: SluiceError(.unavailable, "the connection to PostgreSQL closed during COPY (the server restarted or went away)")) }
                        return
                    }
                }
                if once.claim() {
                    cont.resume(throwing: SluiceError(.unavailable, "PostgreSQL stopped accepting COPY data for \(stallTimeout); the connection is presumed dead"))
                }
            }
            Task {
                do {
                    try await writer.write(buffer)
                    if once.claim() { cont.resume() }
                } catch {
                    if once.claim() { cont.resume(throwing: error) }
                }
                watchdog.cancel()
            }
        }
    }

    /// What the target looked like when the load began.
    struct TargetState {
        var empty: Bool
        /// Created by this load: its primary key is added after the rows are in.
        var created: Bool
    }

    func prepareTarget(_ conn: PostgresConnection) async throws -> TargetState {
        let existing = try await db.schema(of: table, on: conn)
        if let existing, mode != .replace {
            for i in schema.columns.indices {
                guard let native = existing.column(named: schema.columns[i].name)?.nativeType else { continue }
                if native.hasSuffix("[]") || (native == "numeric" && schema.columns[i].type == .text) { schema.columns[i].nativeType = native }
            }
        }
        switch try TablePreparation.decide(table: "\(table)", existing: existing, load: schema, mode: mode, evolve: evolve) {
        case .create:
            if let s = table.schema, try await !db.schemaExists(s, on: conn) {
                try await db.exec("CREATE SCHEMA IF NOT EXISTS \(SQLIdentifier.quoteValidated(s))", on: conn)
            }
            try await db.exec(PostgresSQL.createTable(table, schema, primaryKey: false), on: conn)
            return TargetState(empty: true, created: true)
        case .rebuild:
            // Replace takes the load's schema; the swap is part of the load's transaction.
            try await db.exec("DROP TABLE \(table.quoted)", on: conn)
            try await db.exec(PostgresSQL.createTable(table, schema, primaryKey: false), on: conn)
            return TargetState(empty: true, created: true)
        case .empty:
            try await db.exec("TRUNCATE \(table.quoted)", on: conn)
            return TargetState(empty: true, created: false)
        case .keep(let adding):
            for c in adding {
                try await db.exec("ALTER TABLE \(table.quoted) ADD COLUMN \(SQLIdentifier.quoteValidated(c.name)) \(PostgresSQL.typeName(c.type))", on: conn)
            }
        }
        let rows = try await conn.query(PostgresPool.query("SELECT EXISTS (SELECT 1 FROM \(table.quoted))"), logger: db.logger).get().rows
        let hasRows = try rows.first?.decode(Bool.self) ?? false
        return TargetState(empty: !hasRows, created: false)
    }

    /// Applies the stage; when PostgreSQL refuses some of the data (a value out of range for
    /// the column, a constraint), rolls back to a savepoint and pins the refused rows.
    func apply(_ conn: PostgresConnection, _ state: TargetState, _ context: CommitContext) async throws -> SinkCounts {
        if let direct { return try await applyDirect(conn, direct) }
        return try await applyStage(conn, state, mode: mode)
    }

    func applyStage(_ conn: PostgresConnection, _ state: TargetState, mode: WriteMode) async throws -> SinkCounts {
        try await db.exec("SAVEPOINT sluice_apply", on: conn)
        do {
            let counts = try await applyAll(conn, state, mode: mode)
            try await db.exec("RELEASE SAVEPOINT sluice_apply", on: conn)
            return counts
        } catch let e where Self.isDataError(e) {
            try await db.exec("ROLLBACK TO SAVEPOINT sluice_apply", on: conn)
            return try await applyPinning(conn, state, mode: mode)
        }
    }

    /// After the direct COPY: the primary key, built once; then the rows set aside, staged
    /// and applied over the table as a merge (append: checked for repeated keys). The table
    /// held nothing before this load, so every row in it now counts as inserted.
    func applyDirect(_ conn: PostgresConnection, _ d: DirectRows) async throws -> SinkCounts {
        if !schema.primaryKey.isEmpty { try await db.exec(PostgresSQL.addPrimaryKey(table, schema), on: conn) }
        guard d.staged > 0 else { return SinkCounts(inserted: d.rows) }
        try await db.exec(PostgresSQL.createStage(Self.stage, schema), on: conn)
        let stall = stallTimeout
        try await conn.copyFrom(table: Self.stage, columns: PostgresSQL.stageColumns(schema), logger: db.logger) { writer in
            try await d.side.forEachPiece { try await Self.write(ByteBuffer(bytes: $0), to: writer, on: conn, stallTimeout: stall) }
        }
        // Without a key (only rows with a NULL the table refuses are here) or in append: insert.
        let stageMode: WriteMode = schema.primaryKey.isEmpty || mode == .append ? .append : .merge
        var c = try await applyStage(conn, TargetState(empty: false, created: false), mode: stageMode)
        c.inserted = d.rows + c.inserted - c.deleted
        c.updated = 0
        c.deleted = 0
        return c
    }

    /// SQLSTATE classes 22 (data exception) and 23 (integrity constraint): the data's fault.
    static func isDataError(_ e: any Error) -> Bool {
        guard let p = e as? PSQLError, let state = p.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23")
    }

    static func reason(_ e: any Error) -> String {
        guard let p = e as? PSQLError, let info = p.serverInfo else { return "\(e)" }
        var r = "PostgreSQL refused the row: \(info[.message] ?? "error")"
        if let d = info[.detail] { r += " (\(d))" }
        return r
    }

    /// The slow path: bisects the last-row-per-key set by line ranges, each range in its own
    /// savepoint, until every refused row is alone and rejected; all other rows are applied.
    func applyPinning(_ conn: PostgresConnection, _ state: TargetState, mode: WriteMode) async throws -> SinkCounts {
        var counts = SinkCounts()
        if mode == .append && !schema.primaryKey.isEmpty {
            counts.rejects = try await rejectAppendConflicts(conn)
        }
        let final = finalRef
        try await db.exec("DROP TABLE IF EXISTS \(final)", on: conn)
        if schema.primaryKey.isEmpty {
            try await db.exec(PostgresSQL.createFinalWithoutKey(finalRef, stageRef), on: conn)
        } else {
            try await db.exec(PostgresSQL.createFinal(finalRef, stageRef, table, schema), on: conn)
        }
        let bounds = try await conn.query(PostgresPool.query("SELECT min(\(PostgresSQL.lineColumn)), max(\(PostgresSQL.lineColumn)) FROM \(final)"), logger: db.logger).get().rows
        guard let (lo, hi) = try bounds.first?.decode((Int64?, Int64?).self), let lo, let hi else { return counts }
        let useMerge = mode == .merge && !state.empty
        let statement = useMerge ? PostgresSQL.mergeRange(table, final, schema) : PostgresSQL.insertRange(table, final, schema)
        var work: [(Int64, Int64)] = [(lo, hi + 1)]
        while let (a, b) = work.popLast() {
            let c = try await conn.query(PostgresPool.query(PostgresSQL.countRange(final), [.int(a), .int(b)]), logger: db.logger).get().rows
            guard let (n, ins, upd, del) = try c.first?.decode((Int64, Int64, Int64, Int64).self), n > 0 else { continue }
            try await db.exec("SAVEPOINT sluice_range", on: conn)
            do {
                try await db.exec(statement, [.int(a), .int(b)], on: conn)
                try await db.exec("RELEASE SAVEPOINT sluice_range", on: conn)
                counts.inserted += useMerge ? ins : ins + upd
                counts.updated += useMerge ? upd : 0
                counts.deleted += useMerge ? del : 0
            } catch let e where Self.isDataError(e) {
                try await db.exec("ROLLBACK TO SAVEPOINT sluice_range", on: conn)
                if n == 1 {
                    // The range's one row need not start it: lines Sluice itself rejected
                    // never reached the stage.
                    let row = try await conn.query(PostgresPool.query(PostgresSQL.rowText(final, schema), [.int(a), .int(b)]), logger: db.logger).get().rows
                    let cells = try row.first.map { r in try r.makeRandomAccess().map { try $0.decode(String?.self) } } ?? []
                    let line = cells.first.flatMap { $0.flatMap { Int64($0) } } ?? a
                    counts.rejects.append(SinkReject(line: line, reason: Self.reason(e), values: Array(cells.dropFirst())))
                } else {
                    let mid = a + (b - a) / 2
                    work.append((mid, b))
                    work.append((a, mid))
                }
            }
        }
        if state.created && !schema.primaryKey.isEmpty {
            try await db.exec(PostgresSQL.addPrimaryKey(table, schema), on: conn)
        }
        return counts
    }

    /// Append with a key: a key already in the table, or repeated later in the load, is a
    /// rejected row (removed from the stage).
    func rejectAppendConflicts(_ conn: PostgresConnection) async throws -> [SinkReject] {
        let rows = try await conn.query(PostgresPool.query(PostgresSQL.appendConflicts(table, stageRef, schema)), logger: db.logger).get().rows
        let lines = try rows.map { try $0.decode(Int64.self) }
        if lines.isEmpty { return [] }
        try await db.exec("DELETE FROM \(stageRef) WHERE \(PostgresSQL.lineColumn) = ANY($1)", [.ints(lines)], on: conn)
        return lines.map { SinkReject(line: $0, reason: "duplicate key (\(schema.primaryKey.joined(separator: ", ")))", values: []) }
    }

    /// Gives the planner a stage's row count: a temporary table has no statistics, so the
    /// planner takes it for 200 rows and probes the key once per row, where a merge join over
    /// the whole key index is faster. A 300-row sample is enough and takes milliseconds (the
    /// default 30,000 rows read the whole stage: 130 ms for a million rows).
    func analyze(_ stage: String, _ conn: PostgresConnection) async throws {
        try await db.exec("SET LOCAL default_statistics_target = 1", on: conn)
        try await db.exec("ANALYZE \(stage)", on: conn)
        try await db.exec("SET LOCAL default_statistics_target TO DEFAULT", on: conn)
    }

    /// This transaction's (inserted, updated, deleted) tuple counts for the target so far.
    func counters(_ conn: PostgresConnection) async throws -> (Int64, Int64, Int64) {
        let rows = try await conn.query(PostgresPool.query(PostgresSQL.transactionCounters(table), [.text(table.quoted)]), logger: db.logger).get().rows
        guard let c = try rows.first?.decode((Int64, Int64, Int64).self) else { throw SluiceError(.database, "cannot read the table's counters") }
        return c
    }

    func applyAll(_ conn: PostgresConnection, _ state: TargetState, mode: WriteMode) async throws -> SinkCounts {
        var counts = SinkCounts()
        switch mode {
        case .append where !schema.primaryKey.isEmpty:
            counts.rejects = try await rejectAppendConflicts(conn)
            counts.inserted = try await db.exec(PostgresSQL.insertLastRows(table, stageRef, schema), on: conn)
        case .append, .replace:
            counts.inserted = try await db.exec(PostgresSQL.insertLastRows(table, stageRef, schema), on: conn)
        case .merge where state.empty:
            counts.inserted = try await db.exec(PostgresSQL.insertLastRows(table, stageRef, schema), on: conn)
        case .merge:
            // Other writers wait (readers do not): MERGE is not an atomic upsert, and a
            // concurrent insert of the same key would make it fail.
            try await db.exec("LOCK TABLE \(table.quoted) IN SHARE ROW EXCLUSIVE MODE", on: conn)
            // The deduplicated rows come out sorted by key: joining them to the primary key in
            // order (merge join) applies the changes in index order, faster than hashing.
            try await db.exec("SET LOCAL enable_hashjoin = off", on: conn)
            if sharedStage != nil || stagedRows >= Self.analyzeFrom { try await analyze(stageRef, conn) }
            // Exact counts from PostgreSQL's own per-transaction tuple counters, read around
            // the MERGE: no extra pass over the data, and checked against MERGE's row count.
            let before = try await counters(conn)
            let merged = try await db.exec(PostgresSQL.mergeFromStage(table, stageRef, schema), on: conn)
            let after = try await counters(conn)
            counts.inserted = after.0 - before.0
            counts.updated = after.1 - before.1
            counts.deleted = after.2 - before.2
            guard merged == counts.inserted + counts.updated + counts.deleted else {
                throw SluiceError(.database, "MERGE changed \(merged) rows but the table's counters moved by \(counts.inserted + counts.updated + counts.deleted) (a trigger writing to the same table?)")
            }
        }
        if state.created && !schema.primaryKey.isEmpty {
            try await db.exec(PostgresSQL.addPrimaryKey(table, schema), on: conn)
        }
        return counts
    }

    public var streamName: String { "COPY" }

    public func encode(_ batch: RecordBatch) -> (ByteBuffer?, [SinkReject]) {
        encoded.removeAll(keepingCapacity: true)
        let rejects: [SinkReject]
        if var d = direct.take() {
            rejects = d.route(batch, &encoder, direct: &encoded)
            direct = d
        } else {
            rejects = encoder.encode(batch, into: &encoded)
            encodedForStage += Int64(batch.count - rejects.count)
        }
        return (encoded.isEmpty ? nil : ByteBuffer(bytes: encoded), rejects)
    }

    deinit { io.abandon() }
}

/// A flag that exactly one caller can claim.
final class OnceFlag: Sendable {
    let claimed = Mutex(false)
    func claim() -> Bool { claimed.withLock { c in if c { return false }; c = true; return true } }
}

/// The rows of a load into a table it created, split as they are encoded: a key's first
/// row goes straight into the table; a row whose key may have come before (the filter
/// says "maybe"), a delete, or a row with a NULL the table does not allow is set aside in
/// stage form (memory, then a temporary file) and applied over the table at commit, so the
/// last row per key still wins. Without a key every row goes straight in (deletes match
/// nothing). Only where equal keys are equal bytes (``KeyFilter/canFilter(_:)``).
struct DirectRows: @unchecked Sendable {
    var filter: KeyFilter?
    /// Columns the table declares NOT NULL.
    let notNull: [Int]
    /// Rows sent straight into the table, and rows set aside.
    var rows: Int64 = 0
    var staged: Int64 = 0
    let side: SpillBuffer
    var scratch: [UInt8] = []

    /// The filter's size and the bytes set aside that stay in memory (smaller in tests).
    struct Tuning: Sendable {
        var filterWords = 1 << 21
        var memoryBytes = 8 << 20
        /// The folder set-aside rows spill to past `memoryBytes` (nil: the system's temporary one).
        var spillDirectory: String? = nil
    }

    init?(schema: TableSchema, mode: WriteMode, _ tuning: Tuning) {
        side = SpillBuffer(limit: tuning.memoryBytes, directory: tuning.spillDirectory)
        notNull = schema.columns.indices.filter { !schema.columns[$0].nullable }
        if schema.primaryKey.isEmpty {
            guard mode != .merge else { return nil }
            filter = nil
        } else {
            guard KeyFilter.canFilter(schema.keyIndices.map { schema.columns[$0].type }) else { return nil }
            filter = KeyFilter(schema: schema, words: tuning.filterWords)
        }
    }

    mutating func route(_ batch: RecordBatch, _ encoder: inout BulkTextEncoder, direct out: inout [UInt8]) -> [SinkReject] {
        var rejects: [SinkReject] = []
        scratch.removeAll(keepingCapacity: true)
        for r in 0..<batch.count {
            var aside = false
            if filter == nil {
                if batch.ops[r] == .delete { continue }
            } else {
                aside = filter!.insert(batch, row: r) || batch.ops[r] == .delete
            }
            if !aside { for c in notNull where batch.columns[c].isNull(r) { aside = true; break } }
            let refused = aside ? encoder.encodeRow(batch, r, into: &scratch, stage: true) : encoder.encodeRow(batch, r, into: &out, stage: false)
            if let refused {
                rejects.append(BulkTextEncoder.reject(batch, r, refused))
            } else if aside {
                staged += 1
            } else {
                rows += 1
            }
        }
        side.append(scratch)
        return rejects
    }
}
