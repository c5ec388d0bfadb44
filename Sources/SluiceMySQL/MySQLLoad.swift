public import SluiceCore
public import SluiceQueue
import NIOCore
import Foundation

/// One load into one MySQL table on one connection. MySQL commits implicitly around DDL, so
/// the table is created (or widened, `evolve`) before the load's transaction; then:
/// - `LOAD DATA LOCAL INFILE` streams encoded batches into a temporary stage of wide types;
/// - the last row per key goes to a second temporary table (`final`);
/// - merge counts inserts, updates and deletes by joining `final` to the table (locking the
///   rows it meets), then applies `INSERT ... ON DUPLICATE KEY UPDATE` and `DELETE ... JOIN`;
///   append rejects keys already there or repeated; replace fills a new table and swaps it in
///   with one `RENAME TABLE` after the commit, so readers see the old rows or the new;
/// - rows the server refuses (strict mode: out of range, too long, a constraint) are pinned
///   by bisecting line ranges under savepoints and rejected with the server's message;
/// - with a receipt, the job's result is recorded in the same transaction.
public final class MySQLLoad: LoadSink, @unchecked Sendable {
    enum Command { case commit(CommitContext), rollback }

    let pool: MySQLPool
    let table: QualifiedName
    let schema: TableSchema
    let mode: WriteMode
    let evolve: Bool
    let receipt: (id: String, done: JobCompletion)?
    var encoder: BulkTextEncoder
    var encoded: [UInt8] = []
    let feed = BoundedQueue<ByteBuffer>(capacity: 4)
    let commands: AsyncStream<Command>
    let commandSink: AsyncStream<Command>.Continuation
    let ready = OneShot<SluiceError?>()
    let finished = OneShot<Result<SinkCounts, SluiceError>>()
    var open = true

    public static func open(pool: MySQLPool, table: String, schema: TableSchema, mode: WriteMode, evolve: Bool = false,
                            receipt: (id: String, done: JobCompletion)? = nil) async throws(SluiceError) -> MySQLLoad {
        let load = try MySQLLoad(pool: pool, table: table, schema: schema, mode: mode, evolve: evolve, receipt: receipt)
        Task { await load.session() }
        if let e = await load.ready.value() { throw e }
        return load
    }

    init(pool: MySQLPool, table: String, schema: TableSchema, mode: WriteMode, evolve: Bool,
         receipt: (id: String, done: JobCompletion)?) throws(SluiceError) {
        try schema.validate()
        if mode == .merge && schema.primaryKey.isEmpty { throw SluiceError(.invalidSchema, "merge into '\(table)' needs a primary key") }
        self.pool = pool
        self.table = try QualifiedName(table)
        self.schema = schema
        self.mode = mode
        self.evolve = evolve
        self.receipt = receipt
        encoder = BulkTextEncoder(schema: schema, dialect: .mysqlLoadData)
        (commands, commandSink) = AsyncStream.makeStream(of: Command.self)
    }

    /// Where the rows go and what the table looked like.
    struct Plan {
        var into: QualifiedName
        var empty: Bool
        /// Replace: the new table swapped in after the commit.
        var swap: Bool
        var collations: [String: String]
    }

    func session() async {
        var signalled = false
        var outcome: Result<SinkCounts, SluiceError> = .failure(SluiceError(.aborted, "the load was rolled back"))
        var plan: Plan? = nil
        do {
            try await pool.withConnection { c in
                let p = try await prepare(c)
                plan = p
                try await c.query(MySQLSQL.createStage(MySQLSQL.stage, schema, collations: p.collations))
                try await c.query("START TRANSACTION")
                ready.set(nil)
                signalled = true
                let feed = self.feed
                let staged = try await c.loadLocal(MySQLSQL.loadStage(schema)) { await feed.next() }
                if staged.warnings > 0 {
                    // LOCAL turns conversion errors into warnings; the encoder should leave none.
                    let w = try await c.query("SHOW WARNINGS LIMIT 3").rows.compactMap { $0.last ?? nil }
                    throw SluiceError(.database, "MySQL altered \(staged.warnings) values while staging them: \(w.joined(separator: "; "))")
                }
                var commands = self.commands.makeAsyncIterator()
                guard case .commit(let context)? = await commands.next() else {
                    try await rollback(c, p)
                    return
                }
                let counts = try await apply(c, p)
                if let budget = context.rejectBudget, Int64(counts.rejects.count) > budget {
                    try await rollback(c, p)
                    outcome = .failure(SluiceError(.tooManyRejects, "\(counts.rejects.count) more rows refused by MySQL exceed the reject budget; nothing was written"))
                    return
                }
                for (i, sql) in context.afterSQL.enumerated() {
                    do { try await c.query(sql) } catch {
                        throw CommitContext.sqlStepFailed(i, sql, MySQLConnection.error(error, "running a sql step").message)
                    }
                }
                // Replace records its receipt after the swap: a crash in between replaces again.
                if let receipt, !p.swap { try await record(receipt, counts, context, on: c) }
                try await c.query("COMMIT")
                if p.swap {
                    try await swapIn(c, p)
                    if let receipt {
                        try await c.query("START TRANSACTION")
                        try await record(receipt, counts, context, on: c)
                        try await c.query("COMMIT")
                    }
                }
                try await c.query("DROP TEMPORARY TABLE IF EXISTS \(MySQLSQL.stage), \(MySQLSQL.final)")
                outcome = .success(counts)
            }
        } catch {
            // The connection was dropped (a failed borrower's is never reused): the server
            // rolls back its transaction and drops its temporary tables.
            let e = MySQLConnection.error(error, "MySQL load into \(table)")
            if let p = plan, p.swap { await dropQuietly(p.into) }
            if !signalled { ready.set(e) }
            outcome = .failure(e)
        }
        feed.close()
        ready.set(nil)
        finished.set(outcome)
    }

    func rollback(_ c: MySQLConnection, _ p: Plan) async throws {
        try await c.query("ROLLBACK")
        try await c.query("DROP TEMPORARY TABLE IF EXISTS \(MySQLSQL.stage), \(MySQLSQL.final)")
        if p.swap { try await c.query("DROP TABLE IF EXISTS \(p.into.backquoted)") }
    }

    func dropQuietly(_ t: QualifiedName) async {
        _ = try? await pool.withConnection { c in try await c.query("DROP TABLE IF EXISTS \(t.backquoted)") }
    }

    /// DDL before the transaction: create or widen the table, or make replace's new table.
    func prepare(_ c: MySQLConnection) async throws -> Plan {
        if receipt != nil { try await c.query(MySQLSQL.createReceipts(MySQLSQL.receipts)) }
        let existing = try await MySQLDataTarget.describe(table, on: c)
        if let d = existing {
            if let t = d.triggers.first {
                throw SluiceError(.unsupported, "table '\(table)' has trigger '\(t)': Sluice cannot count or swap rows exactly under triggers; load into a table without them")
            }
            if let g = d.generated.first(where: { schema.column(named: $0) != nil }) {
                throw SluiceError(.invalidSchema, "column '\(g)' of '\(table)' is generated by MySQL; leave it out of the load")
            }
        }
        if mode == .replace {
            try await sweepReplaceTables(c)
            let fresh = try QualifiedName((table.schema.map { $0 + "." } ?? "") + "sluice_replace_\(c.handshake.connectionID)")
            try await c.query("DROP TABLE IF EXISTS \(fresh.backquoted)")
            try await c.query(MySQLSQL.createTable(fresh, schema))
            return Plan(into: fresh, empty: true, swap: true, collations: [:])
        }
        switch try TablePreparation.decide(table: "\(table)", existing: existing?.schema, load: schema, mode: mode, evolve: evolve) {
        case .create:
            try await c.query(MySQLSQL.createTable(table, schema))
            return Plan(into: table, empty: true, swap: false, collations: [:])
        case .keep(let adding):
            for col in adding { try await c.query(MySQLSQL.addColumn(table, col)) }
        case .rebuild, .empty:
            break  // replace, handled above
        }
        let any = try await c.query("SELECT EXISTS (SELECT 1 FROM \(table.backquoted))").rows
        return Plan(into: table, empty: any.first?.first == "0", swap: false, collations: existing?.collations ?? [:])
    }

    /// Drops new tables of replaces whose connection is gone (a process died mid-load).
    func sweepReplaceTables(_ c: MySQLConnection) async throws {
        let db = table.schema.map(MySQLSQL.literal) ?? "DATABASE()"
        let rows = try await c.query("""
            SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = \(db) AND TABLE_NAME LIKE 'sluice\\_replace\\_%'
            AND CAST(SUBSTRING(TABLE_NAME, 16) AS UNSIGNED) NOT IN (SELECT ID FROM information_schema.PROCESSLIST)
            """).rows
        for r in rows {
            guard let n = r.first ?? nil, let t = try? QualifiedName((table.schema.map { $0 + "." } ?? "") + n) else { continue }
            try await c.query("DROP TABLE IF EXISTS \(t.backquoted)")
        }
    }

    /// Replace: the new table takes the old one's name in one atomic rename.
    func swapIn(_ c: MySQLConnection, _ p: Plan) async throws {
        let exists = try await MySQLDataTarget.describe(table, on: c) != nil
        if exists {
            let old = try QualifiedName((table.schema.map { $0 + "." } ?? "") + "sluice_old_\(c.handshake.connectionID)")
            try await c.query("DROP TABLE IF EXISTS \(old.backquoted)")
            try await c.query("RENAME TABLE \(table.backquoted) TO \(old.backquoted), \(p.into.backquoted) TO \(table.backquoted)")
            try await c.query("DROP TABLE \(old.backquoted)")
        } else {
            try await c.query("RENAME TABLE \(p.into.backquoted) TO \(table.backquoted)")
        }
    }

    func record(_ receipt: (id: String, done: JobCompletion), _ counts: SinkCounts, _ context: CommitContext, on c: MySQLConnection) async throws {
        let result = receipt.done.result(context.settled(counts), context)
        let json = String(decoding: try JSONEncoder().encode(result), as: UTF8.self)
        do {
            try await c.query(MySQLSQL.insertReceipt(MySQLSQL.receipts, id: receipt.id, result: json))
        } catch let e as MySQLProtocol.ServerError where e.code == 1062 {
            throw SluiceError(.aborted, "job \(receipt.done.job.id) was already loaded by another attempt; nothing was written")
        }
    }

    // MARK: Applying the stage

    static func isDataError(_ e: any Error) -> Bool {
        guard let s = e as? MySQLProtocol.ServerError else { return false }
        // Strict mode's conversion errors come as HY000 with these codes.
        let codes: Set<UInt16> = [1048, 1062, 1264, 1265, 1292, 1366, 1406, 1411, 1452, 1690, 3140, 3819, 4025]
        return s.sqlState.hasPrefix("22") || s.sqlState.hasPrefix("23") || codes.contains(s.code)
    }

    func apply(_ c: MySQLConnection, _ p: Plan) async throws -> SinkCounts {
        var rejects: [SinkReject] = []
        if mode == .append && !schema.primaryKey.isEmpty {
            rejects = try await rejectAppendConflicts(c, p)
        }
        try await c.query(MySQLSQL.createFinal(schema))
        try await c.query("SAVEPOINT sluice_apply")
        do {
            var counts = try await applyRange(c, p, nil)
            try await c.query("RELEASE SAVEPOINT sluice_apply")
            counts.rejects = rejects
            return counts
        } catch let e where Self.isDataError(e) {
            try await c.query("ROLLBACK TO SAVEPOINT sluice_apply")
            var counts = try await applyPinning(c, p)
            counts.rejects = rejects + counts.rejects
            return counts
        }
    }

    /// Applies the final rows in `lines` (all when nil); returns their exact effect.
    func applyRange(_ c: MySQLConnection, _ p: Plan, _ lines: Range<Int64>?) async throws -> SinkCounts {
        var counts = SinkCounts()
        let upsert = mode == .merge && !p.empty
        if upsert {
            let r = try await c.query(MySQLSQL.countEffects(p.into, schema, lines)).rows
            guard let f = r.first, f.count == 4, let ins = f[1].flatMap({ Int64($0) }), let upd = f[2].flatMap({ Int64($0) }), let del = f[3].flatMap({ Int64($0) }) else {
                throw SluiceError(.database, "cannot read the merge's counts")
            }
            counts = SinkCounts(inserted: ins, updated: upd, deleted: del)
        }
        let ok = try await c.query(MySQLSQL.insertFinal(p.into, schema, upsert: upsert, lines)).ok
        if upsert {
            // ROW_COUNT counts an insert as 1, a changed row as 2 and an unchanged one as 0.
            guard ok.affectedRows >= UInt64(counts.inserted), ok.affectedRows <= UInt64(counts.inserted + 2 * counts.updated) else {
                throw SluiceError(.database, "MySQL changed \(ok.affectedRows) rows where \(counts.inserted) inserts and \(counts.updated) updates were counted (another writer?)")
            }
            let deleted = try await c.query(MySQLSQL.deleteFinal(p.into, schema, lines)).ok.affectedRows
            guard deleted == UInt64(counts.deleted) else {
                throw SluiceError(.database, "MySQL deleted \(deleted) rows where \(counts.deleted) were counted (another writer?)")
            }
        } else {
            counts.inserted = Int64(clamping: ok.affectedRows)
        }
        return counts
    }

    /// The slow path: bisects the final rows by line ranges, each range under a savepoint,
    /// until every refused row is alone and rejected with the server's message.
    func applyPinning(_ c: MySQLConnection, _ p: Plan) async throws -> SinkCounts {
        var counts = SinkCounts()
        let bounds = try await c.query("SELECT MIN(\(MySQLSQL.line)), MAX(\(MySQLSQL.line)), COUNT(*) FROM \(MySQLSQL.final)").rows
        guard let b = bounds.first, b.count == 3, let lo = b[0].flatMap({ Int64($0) }), let hi = b[1].flatMap({ Int64($0) }) else { return counts }
        var work: [Range<Int64>] = [lo..<(hi + 1)]
        while let r = work.popLast() {
            let n = try await c.query("SELECT COUNT(*) FROM \(MySQLSQL.final) WHERE \(MySQLSQL.line) >= \(r.lowerBound) AND \(MySQLSQL.line) < \(r.upperBound)").rows
            guard let rows = n.first?.first.flatMap({ $0.flatMap { Int64($0) } }), rows > 0 else { continue }
            try await c.query("SAVEPOINT sluice_range")
            do {
                let got = try await applyRange(c, p, r)
                try await c.query("RELEASE SAVEPOINT sluice_range")
                counts.inserted += got.inserted
                counts.updated += got.updated
                counts.deleted += got.deleted
            } catch let e where Self.isDataError(e) {
                try await c.query("ROLLBACK TO SAVEPOINT sluice_range")
                if rows == 1 {
                    let line = try await c.query("SELECT \(MySQLSQL.line) FROM \(MySQLSQL.final) WHERE \(MySQLSQL.line) >= \(r.lowerBound) AND \(MySQLSQL.line) < \(r.upperBound)").rows
                    let l = line.first?.first.flatMap { $0.flatMap { Int64($0) } } ?? r.lowerBound
                    let values = try await c.query(MySQLSQL.rowText(schema, line: l)).rows.first ?? []
                    let message = (e as? MySQLProtocol.ServerError).map { "MySQL refused the row: \($0.message)" } ?? "\(e)"
                    counts.rejects.append(SinkReject(line: l, reason: message, values: values))
                } else {
                    let mid = r.lowerBound + (r.upperBound - r.lowerBound) / 2
                    work.append(mid..<r.upperBound)
                    work.append(r.lowerBound..<mid)
                }
            }
        }
        return counts
    }

    /// Append with a key: a key already in the table, or repeated later in the load, is a
    /// rejected row (removed from the stage).
    func rejectAppendConflicts(_ c: MySQLConnection, _ p: Plan) async throws -> [SinkReject] {
        let lines = try await c.query(MySQLSQL.appendConflicts(p.into, schema)).rows.compactMap { $0.first.flatMap { $0.flatMap { Int64($0) } } }
        var at = 0
        while at < lines.count {
            let part = lines[at..<min(lines.count, at + 1000)]
            try await c.query("DELETE FROM \(MySQLSQL.stage) WHERE \(MySQLSQL.line) IN (\(part.map(String.init).joined(separator: ",")))")
            at += part.count
        }
        return lines.map { SinkReject(line: $0, reason: "duplicate key (\(schema.primaryKey.joined(separator: ", ")))", values: []) }
    }

    // MARK: LoadSink

    public func write(_ batch: RecordBatch) async throws(SluiceError) -> [SinkReject] {
        guard open else { throw SluiceError(.aborted, "the load is already finished") }
        if batch.isEmpty { return [] }
        encoded.removeAll(keepingCapacity: true)
        let rejects = encoder.encode(batch, into: &encoded)
        if !encoded.isEmpty, await !feed.send(ByteBuffer(bytes: encoded)) {
            open = false
            if case .failure(let e) = await finished.value() { throw e }
            throw SluiceError(.database, "the LOAD DATA stream closed unexpectedly")
        }
        return rejects
    }

    public func commit(_ context: CommitContext) async throws(SluiceError) -> SinkCounts {
        guard open else { throw SluiceError(.aborted, "the load is already finished") }
        return try await end(.commit(context)).get()
    }

    public func rollback() async {
        guard open else { return }
        _ = await end(.rollback)
    }

    func end(_ command: Command) async -> Result<SinkCounts, SluiceError> {
        open = false
        feed.close()
        commandSink.yield(command)
        commandSink.finish()
        return await finished.value()
    }

    deinit {
        feed.close()
        commandSink.finish()
    }
}
