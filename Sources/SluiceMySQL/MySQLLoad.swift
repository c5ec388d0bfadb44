public import SluiceCore
public import SluiceQueue
public import NIOCore
import Foundation

/// One load into one MySQL table on one connection. MySQL commits implicitly around DDL, so
/// the table is created (or widened, `evolve`) before the load's transaction; then:
/// - `LOAD DATA LOCAL INFILE` streams encoded batches into a temporary stage of wide types,
///   keyed by the table's key for merge and replace so `REPLACE` keeps the last row per key;
///   into a table this load made (a first load, or replace's new table) rows stream straight
///   in with `REPLACE`, the deletes kept aside by key and applied at the end;
/// - merge applies `INSERT ... ON DUPLICATE KEY UPDATE` and `DELETE ... JOIN`, and reads its
///   exact counts from the statements' own answers (affected rows, records, duplicates);
///   append rejects keys already there or repeated; replace fills a new table and swaps it in
///   with one `RENAME TABLE` after the commit, so readers see the old rows or the new;
/// - rows the server refuses (strict mode: out of range, too long, a constraint) are pinned
///   by bisecting line ranges under savepoints and rejected with the server's message;
/// - with a receipt, the job's result is recorded in the same transaction.
public final class MySQLLoad: SessionSink, @unchecked Sendable {
    let pool: MySQLPool
    let table: QualifiedName
    let schema: TableSchema
    let mode: WriteMode
    let evolve: Bool
    let receipt: (id: String, done: JobCompletion)?
    var encoder: BulkTextEncoder
    var encoded: [UInt8] = []
    /// Encoded LOAD DATA buffers to the session, its commit or rollback, and its outcome.
    public let io = SinkSession<ByteBuffer>()
    /// Merge and replace stage by key (last row wins while loading); append must see repeats.
    var keyed: Bool { mode != .append && !schema.primaryKey.isEmpty }
    /// Rows go straight into a table this load made (set before the first write).
    var direct = false
    /// Direct loads: keys whose last row so far is a delete, with their SQL literals.
    var deletes: [String: [String]] = [:]

    public static func open(pool: MySQLPool, table: String, schema: TableSchema, mode: WriteMode, evolve: Bool = false,
                            receipt: (id: String, done: JobCompletion)? = nil) async throws(SluiceError) -> MySQLLoad {
        let load = try MySQLLoad(pool: pool, table: table, schema: schema, mode: mode, evolve: evolve, receipt: receipt)
        Task { await load.session() }
        if let e = await load.io.ready.value() { throw e }
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
    }

    /// Where the rows go and what the table looked like.
    struct Plan {
        var into: QualifiedName
        var empty: Bool
        /// Replace: the new table swapped in after the commit.
        var swap: Bool
        /// Made by this load (so its types are Sluice's own).
        var created = false
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
                // Straight in when the table is new and its keys can be deleted by value.
                let keyTypes = schema.primaryKey.compactMap { schema.column(named: $0)?.type }
                direct = p.created && keyed && keyTypes.allSatisfy { $0 == .int64 || $0 == .text || $0 == .uuid }
                if direct {
                    encoder.skipDeletes = true
                    for (i, c) in schema.columns.enumerated() where c.type == .text && schema.primaryKey.contains(c.name) { encoder.textLimits[i] = 255 }
                } else {
                    try await c.query(MySQLSQL.createStage(schema, keyed: keyed, collations: p.collations))
                }
                // The file's bytes go in packets the server takes (a packet as long as its
                // max_allowed_packet ends the load; rows may be longer: they span packets).
                let allowed = (try await c.query("SELECT @@max_allowed_packet").rows.first?.first ?? nil).flatMap { Int($0) } ?? 1 << 20
                try await c.query("START TRANSACTION")
                io.ready.set(nil)
                signalled = true
                let feed = io.feed
                let statement = direct ? MySQLSQL.loadTable(p.into, schema) : MySQLSQL.loadStage(schema, keyed: keyed)
                let staged = try await c.loadLocal(statement, packetBytes: min(1 << 20, max(allowed / 2, 512))) { await feed.next() }
                if staged.warnings > 0 {
                    // LOCAL turns conversion errors into warnings; the encoder should leave none.
                    let w = try await c.query("SHOW WARNINGS LIMIT 3").rows.compactMap { $0.last ?? nil }
                    throw SluiceError(.database, "MySQL altered \(staged.warnings) values while staging them: \(w.joined(separator: "; "))")
                }
                guard case .commit(let context)? = await io.command() else {
                    try await rollback(c, p)
                    return
                }
                let counts = direct ? try await applyDeletes(c, p, loaded: staged) : try await apply(c, p)
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
                try await c.query("DROP TEMPORARY TABLE IF EXISTS \(MySQLSQL.stage)")
                outcome = .success(counts)
            }
        } catch {
            // The connection was dropped (a failed borrower's is never reused): the server
            // rolls back its transaction and drops its temporary tables.
            let e = MySQLConnection.error(error, "MySQL load into \(table)")
            if let p = plan, p.swap { await dropQuietly(p.into) }
            if let p = plan, p.created, !p.swap { await dropIfEmpty(p.into) }
            if !signalled { io.ready.set(e) }
            outcome = .failure(e)
        }
        io.finish(outcome)
    }

    func rollback(_ c: MySQLConnection, _ p: Plan) async throws {
        try await c.query("ROLLBACK")
        try await c.query("DROP TEMPORARY TABLE IF EXISTS \(MySQLSQL.stage)")
        if p.swap { try await c.query("DROP TABLE IF EXISTS \(p.into.backquoted)") }
        if p.created && !p.swap { await dropIfEmpty(p.into) }
    }

    func dropQuietly(_ t: QualifiedName) async {
        _ = try? await pool.withConnection { c in try await c.query("DROP TABLE IF EXISTS \(t.backquoted)") }
    }

    /// A table this load created (DDL commits at once in MySQL), dropped again when the load
    /// fails, unless rows from elsewhere have arrived in it meanwhile.
    func dropIfEmpty(_ t: QualifiedName) async {
        _ = try? await pool.withConnection { c in
            if try await c.query("SELECT EXISTS (SELECT 1 FROM \(t.backquoted))").rows.first?.first == "0" {
                try await c.query("DROP TABLE IF EXISTS \(t.backquoted)")
            }
        }
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
            return Plan(into: fresh, empty: true, swap: true, created: true, collations: [:])
        }
        switch try TablePreparation.decide(table: "\(table)", existing: existing?.schema, load: schema, mode: mode, evolve: evolve) {
        case .create:
            try await c.query(MySQLSQL.createTable(table, schema))
            return Plan(into: table, empty: true, swap: false, created: true, collations: [:])
        case .keep(let adding):
            for col in adding { try await c.query(MySQLSQL.addColumn(table, col)) }
        case .rebuild, .empty:
            break  // replace, handled above
        }
        let any = try await c.query("SELECT EXISTS (SELECT 1 FROM \(table.backquoted))").rows
        return Plan(into: table, empty: any.first?.first == "0", swap: false, collations: existing?.collations ?? [:])
    }

    /// Drops the new and old tables of replaces whose connection is gone (a process died
    /// mid-load, or between the swap and dropping the old table).
    func sweepReplaceTables(_ c: MySQLConnection) async throws {
        let db = table.schema.map(MySQLSQL.literal) ?? "DATABASE()"
        let rows = try await c.query("""
            SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = \(db) AND (
              (TABLE_NAME LIKE 'sluice\\_replace\\_%' AND CAST(SUBSTRING(TABLE_NAME, 16) AS UNSIGNED) NOT IN (SELECT ID FROM information_schema.PROCESSLIST))
              OR (TABLE_NAME LIKE 'sluice\\_old\\_%' AND CAST(SUBSTRING(TABLE_NAME, 12) AS UNSIGNED) NOT IN (SELECT ID FROM information_schema.PROCESSLIST)))
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

    // MARK: Applying the rows

    /// A direct load: the rows are in; deletes the keys whose last row was a delete. The
    /// table was empty, so the keys it holds now are the inserts.
    func applyDeletes(_ c: MySQLConnection, _ p: Plan, loaded: MySQLProtocol.OK) async throws -> SinkCounts {
        guard let records = Self.infoCount("Records", loaded.info), let replaced = Self.infoCount("Deleted", loaded.info) else {
            throw SluiceError(.database, "MySQL's LOAD DATA answer has no counts: '\(loaded.info)'")
        }
        var removed: Int64 = 0
        let keys = Array(deletes.values)
        var at = 0
        while at < keys.count {
            let part = Array(keys[at..<min(keys.count, at + 500)])
            removed += Int64(clamping: try await c.query(MySQLSQL.deleteKeys(p.into, schema, part)).ok.affectedRows)
            at += part.count
        }
        return SinkCounts(inserted: records - replaced - removed)
    }

    /// A figure from an OK packet's info (`Records: 3  Deleted: 0  Skipped: 0  Warnings: 0`).
    static func infoCount(_ name: String, _ info: String) -> Int64? {
        guard let r = info.range(of: name + ": ") else { return nil }
        return Int64(info[r.upperBound...].prefix { $0.isNumber })
    }

    /// Direct loads keep the keys whose last row is a delete (a later upsert takes it back).
    func trackDeletes(_ batch: RecordBatch) {
        let keyIndexes = schema.primaryKey.compactMap { k in schema.columns.firstIndex { $0.name == k } }
        for r in 0..<batch.count where batch.ops[r] == .delete || !deletes.isEmpty {
            var literals: [String] = []
            for k in keyIndexes {
                let text = ValueText.render(batch.columns[k], r) ?? ""
                literals.append(schema.columns[k].type == .int64 ? text : MySQLSQL.literal(text))
            }
            let id = literals.joined(separator: ",")
            if batch.ops[r] == .delete { deletes[id] = literals } else { deletes[id] = nil }
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

    /// Applies the staged rows in `lines` (all when nil); returns their exact effect.
    func applyRange(_ c: MySQLConnection, _ p: Plan, _ lines: Range<Int64>?) async throws -> SinkCounts {
        let upsert = mode == .merge && !p.empty
        let ok = try await c.query(MySQLSQL.insertStaged(p.into, schema, upsert: upsert, lines)).ok
        guard upsert else { return SinkCounts(inserted: Int64(clamping: ok.affectedRows)) }
        // Exact counts from the statement itself: of R rows, an insert adds 1 to the affected
        // rows, a changed row 2 (and is a "duplicate"), an unchanged row 0 (and is not).
        guard let records = Self.infoCount("Records", ok.info), let changed = Self.infoCount("Duplicates", ok.info) else {
            throw SluiceError(.database, "MySQL's INSERT answer has no counts: '\(ok.info)'")
        }
        let inserted = Int64(clamping: ok.affectedRows) - 2 * changed
        guard inserted >= 0, inserted <= records else {
            throw SluiceError(.database, "MySQL's INSERT counts do not add up (\(ok.affectedRows) affected, '\(ok.info)')")
        }
        let deleted = try await c.query(MySQLSQL.deleteStaged(p.into, schema, lines)).ok.affectedRows
        return SinkCounts(inserted: inserted, updated: records - inserted, deleted: Int64(clamping: deleted))
    }

    /// The slow path: bisects the staged rows by line ranges, each range under a savepoint,
    /// until every refused row is alone and rejected with the server's message.
    func applyPinning(_ c: MySQLConnection, _ p: Plan) async throws -> SinkCounts {
        var counts = SinkCounts()
        let bounds = try await c.query("SELECT MIN(\(MySQLSQL.line)), MAX(\(MySQLSQL.line)), COUNT(*) FROM \(MySQLSQL.stage)").rows
        guard let b = bounds.first, b.count == 3, let lo = b[0].flatMap({ Int64($0) }), let hi = b[1].flatMap({ Int64($0) }) else { return counts }
        var work: [Range<Int64>] = [lo..<(hi + 1)]
        while let r = work.popLast() {
            let n = try await c.query("SELECT COUNT(*) FROM \(MySQLSQL.stage) WHERE \(MySQLSQL.line) >= \(r.lowerBound) AND \(MySQLSQL.line) < \(r.upperBound)").rows
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
                    let line = try await c.query("SELECT \(MySQLSQL.line) FROM \(MySQLSQL.stage) WHERE \(MySQLSQL.line) >= \(r.lowerBound) AND \(MySQLSQL.line) < \(r.upperBound)").rows
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

    public var streamName: String { "LOAD DATA" }

    public func encode(_ batch: RecordBatch) -> (ByteBuffer?, [SinkReject]) {
        encoded.removeAll(keepingCapacity: true)
        let rejects = encoder.encode(batch, into: &encoded)
        if direct { trackDeletes(batch) }
        return (encoded.isEmpty ? nil : ByteBuffer(bytes: encoded), rejects)
    }

    deinit { io.abandon() }
}
