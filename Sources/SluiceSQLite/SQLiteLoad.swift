import VaporCSQLite
public import SluiceCore

/// One load into one SQLite table, inside one `BEGIN IMMEDIATE` transaction.
///
/// How rows are applied depends on the mode and on whether the table starts empty:
/// - append: plain INSERT; a duplicate key or other constraint failure rejects the row.
/// - merge or replace into an empty table: rows go straight in (`ON CONFLICT DO NOTHING`,
///   then an UPDATE for a key seen earlier in this load, a DELETE for op = D), so the
///   last row per key wins and the net insert count is exact.
/// - merge into a table with rows: rows go to a keyed temp stage (last row per key wins
///   there), and commit applies it with one UPDATE ... FROM, one INSERT ... SELECT and one
///   DELETE, whose change counts are the updated, inserted and deleted figures.
public final class SQLiteLoad: LoadSink {
    enum Path { case append, direct, staged }

    let target: SQLiteTarget
    let table: String
    let schema: TableSchema
    let path: Path
    let keyIndices: [Int]
    let nonKeyIndices: [Int]
    var binder: SQLiteBinder
    let stage: String
    var insert: SQLiteStatement?
    var update: SQLiteStatement?
    var delete: SQLiteStatement?
    var stageUpsert: SQLiteStatement?
    var netInserted: Int64 = 0
    var open = true

    init(target: SQLiteTarget, table: String, schema: TableSchema, mode: WriteMode, evolve: Bool) throws(SluiceError) {
        let conn = target.connection
        self.target = target
        self.table = table
        self.schema = schema
        self.keyIndices = schema.keyIndices
        self.nonKeyIndices = schema.columns.indices.filter { !schema.keyIndices.contains($0) }
        self.binder = SQLiteBinder(types: schema.columns.map(\.type))
        self.stage = "_sluice_stage_\(table.utf8.count)_\(UInt32.random(in: 0...UInt32.max))"

        try target.prepareTable(table, schema, mode: mode, evolve: evolve)

        switch mode {
        case .append:
            path = .append
        case .replace:
            path = schema.primaryKey.isEmpty ? .append : .direct
        case .merge:
            let hasRows = try !conn.query("SELECT 1 FROM \(SQLIdentifier.quoteValidated(table)) LIMIT 1").isEmpty
            path = hasRows ? .staged : .direct
        }
        switch path {
        case .append:
            insert = try conn.prepare(SQLiteSQL.insert(table, schema))
        case .direct:
            insert = try conn.prepare(SQLiteSQL.insert(table, schema, onConflictDoNothing: true))
            update = try SQLiteSQL.updateByKey(table, schema).map { (sql) throws(SluiceError) in try conn.prepare(sql) }
            delete = try conn.prepare(SQLiteSQL.deleteByKey(table, schema))
        case .staged:
            try conn.execute(SQLiteSQL.createStage(stage, schema))
            stageUpsert = try conn.prepare(SQLiteSQL.upsertStage(stage, schema))
        }
    }

    deinit {
        binder.deallocate()
        rollback()
    }

    public func write(_ batch: RecordBatch) throws(SluiceError) -> [SinkReject] {
        guard open else { throw SluiceError(.aborted, "the load is already finished") }
        if batch.isEmpty { return [] }
        let kinds = binder.kinds
        return try SQLiteBinder.withPointers(batch, kinds: kinds) { cols in
            Result { () throws(SluiceError) in try self.writeRows(batch, cols) }
        }
    }

    func writeRows(_ batch: RecordBatch, _ cols: [SQLiteBinder.ColumnPointers]) throws(SluiceError) -> [SinkReject] {
        var rejects: [SinkReject] = []
        let conn = target.connection
        for r in 0..<batch.count {
            let op = batch.ops[r]
            switch path {
            case .append:
                if op == .delete {
                    rejects.append(reject(batch, r, "op D (delete) needs merge mode"))
                    continue
                }
                let st = insert!
                bindAll(st, cols, r, batch)
                let rc = st.run()
                if rc == SQLITE_DONE { netInserted += 1 } else { rejects.append(try rowFailure(rc, batch, r)) }
            case .direct:
                if op == .delete {
                    let st = delete!
                    for (p, c) in keyIndices.enumerated() { binder.bind(st, Int32(p + 1), cols[c], column: c, row: r, decimals: batch.columns[c].decimals) }
                    let rc = st.run()
                    guard rc == SQLITE_DONE else { throw conn.error(rc, "SQLite delete") }
                    netInserted -= conn.changes
                    continue
                }
                let st = insert!
                bindAll(st, cols, r, batch)
                let rc = st.run()
                guard rc == SQLITE_DONE else { rejects.append(try rowFailure(rc, batch, r)); continue }
                if conn.changes == 1 {
                    netInserted += 1
                } else if let up = update {
                    // The key was written earlier in this same load: the later row wins.
                    var p: Int32 = 1
                    for c in nonKeyIndices { binder.bind(up, p, cols[c], column: c, row: r, decimals: batch.columns[c].decimals); p += 1 }
                    for c in keyIndices { binder.bind(up, p, cols[c], column: c, row: r, decimals: batch.columns[c].decimals); p += 1 }
                    let urc = up.run()
                    if urc != SQLITE_DONE { rejects.append(try rowFailure(urc, batch, r)) }
                }
            case .staged:
                let st = stageUpsert!
                bindAll(st, cols, r, batch)
                let n = Int32(cols.count)
                st.bind(n + 1, int: Int64(op.rawValue))
                st.bind(n + 2, int: batch.lines[r])
                let rc = st.run()
                guard rc == SQLITE_DONE else { throw conn.error(rc, "SQLite staging") }
            }
        }
        return rejects
    }

    @inline(__always)
    func bindAll(_ st: SQLiteStatement, _ cols: [SQLiteBinder.ColumnPointers], _ r: Int, _ batch: RecordBatch) {
        for c in cols.indices {
            binder.bind(st, Int32(c + 1), cols[c], column: c, row: r, decimals: batch.columns[c].decimals)
        }
    }

    func reject(_ batch: RecordBatch, _ r: Int, _ reason: String) -> SinkReject {
        SinkReject(line: batch.lines[r], reason: reason, values: batch.columns.map { ValueText.render($0, r) })
    }

    /// A constraint failure is the row's fault (rejected); anything else fails the load.
    func rowFailure(_ rc: Int32, _ batch: RecordBatch, _ r: Int) throws(SluiceError) -> SinkReject {
        let conn = target.connection
        if rc == Self.constraintPrimaryKey || rc == Self.constraintUnique {
            return reject(batch, r, "duplicate key (\(schema.primaryKey.joined(separator: ", "))): \(conn.lastError)")
        }
        if rc & 0xFF == SQLITE_CONSTRAINT {
            return reject(batch, r, "rejected by the table: \(conn.lastError)")
        }
        throw conn.error(rc, "SQLite insert")
    }

    // Extended result codes (function-like macros in sqlite3.h, so not imported).
    static let constraintPrimaryKey: Int32 = SQLITE_CONSTRAINT | (6 << 8)
    static let constraintUnique: Int32 = SQLITE_CONSTRAINT | (8 << 8)

    public func commit(_ context: CommitContext) throws(SluiceError) -> SinkCounts {
        guard open else { throw SluiceError(.aborted, "the load is already finished") }
        let conn = target.connection
        var counts = SinkCounts()
        do {
            switch path {
            case .append, .direct:
                counts.inserted = netInserted
            case .staged:
                counts = try conn.merge(stage, into: table, schema, db: "temp")
                try conn.execute("DROP TABLE temp.\(SQLIdentifier.quoteValidated(stage))")
            }
            insert = nil; update = nil; delete = nil; stageUpsert = nil
            try SQLiteConnection.runSteps(context.afterSQL, on: conn)
            try conn.execute("COMMIT")
            open = false
        } catch {
            rollback()
            throw error
        }
        return counts
    }

    public func rollback() {
        guard open else { return }
        open = false
        insert = nil; update = nil; delete = nil; stageUpsert = nil
        // Nothing useful can be done if ROLLBACK itself fails: the connection is closing
        // or the transaction is already gone, and either way nothing was committed.
        try? target.connection.execute("ROLLBACK")
        target.connection.shrinkLog()
    }
}
