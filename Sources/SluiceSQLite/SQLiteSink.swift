import VaporCSQLite
public import SluiceCore
import Foundation

/// The one way rows reach a SQLite table (the CLI, workers, watches and pipelines): a load in
/// two phases, so that the database's single write lock is held only briefly (API submissions
/// and other workers' heartbeats keep flowing while a big file loads):
///
/// 1. A merge's rows, and those of a table without a key, are held in memory while they fit
///    in ``memoryBudget`` bytes; past that (and for a keyed append or replace) they go to a
///    private stage file, with no lock on the main database: which of the two is chosen by
///    size alone, whoever loads. A keyed stage keeps
///    the last row per key; in append mode a repeated key, or a key already in the table, is
///    rejected here, row by row.
/// 2. ``commit(_:)`` takes the write lock (`BEGIN IMMEDIATE`), prepares the table by
///    ``TablePreparation``, applies the rows (a merge writes the last row per key in key
///    order; append and replace insert), runs the pipeline's `sql` steps and the owner's
///    commit hook (a worker completes its job there, fenced by its lease), and commits.
///    A row the table itself refuses (a constraint) is rejected with the reason.
///
/// Its SQLite work runs on its own ``BlockingLane``, one call at a time (so it is Sendable by
/// that lane: no field is touched anywhere else once the sink is handed out).
public final class SQLiteSink: LoadSink, @unchecked Sendable {
    /// Work the sink's owner adds to the load's transaction, with the load's settled figures.
    public typealias CommitHook = @Sendable (SQLiteConnection, LoadStats, CommitContext) throws(SluiceError) -> Void

    let databasePath: String
    let stagePath: String
    let table: String
    let schema: TableSchema
    let mode: WriteMode
    let onCommit: CommitHook?
    /// The stage file and its insert, opened when rows are first staged.
    struct Stage {
        let db: SQLiteConnection
        let upsert: SQLiteStatement
    }
    var stage: Stage?
    /// Rows held while they fit in memory, in the order they came, with their keys (a merge).
    struct MemoryRows {
        var rows: RecordBatch
        var keys: KeyedRows?

        init(_ schema: TableSchema) {
            rows = RecordBatch(fields: schema.fields)
            keys = schema.primaryKey.isEmpty ? nil : KeyedRows(keyColumns: schema.keyIndices)
        }

        mutating func add(_ batch: RecordBatch) {
            keys?.append(batch, rows: 0..<batch.count)
            for c in batch.columns.indices { rows.columns[c].append(from: batch.columns[c], range: 0..<batch.count) }
            rows.lines += batch.lines
            rows.ops += batch.ops
        }

        /// About what the rows and keys take (values, offsets, validity, lines and ops).
        var bytes: Int {
            (keys?.byteCount ?? 0) + rows.count * 9 + rows.columns.reduce(0) { $0 + $1.data.count + $1.count * 9 + $1.decimals.count * 16 }
        }
    }
    var memory: MemoryRows?
    /// Bytes of rows a merge keeps in memory before it moves them to the stage file.
    public var memoryBudget = 256 << 20
    /// Whether any row deletes (else a merge skips its delete pass).
    var deletes = false
    let mainReader: SQLiteConnection?
    let exists: SQLiteStatement?
    var binder: SQLiteBinder
    /// Whether any column is a float (only those can hold NaN).
    let floatColumns: Bool
    /// NaN rows are rejects (else SQLite stores NULL, as `nan: null` asks).
    var rejectNaN = true
    let keyIndices: [Int]
    static let stageName = "rows"
    static let cacheKiB = 64 * 1024
    static let mmapBytes = 1 << 30
    static let rowsPerStatement = 64
    var open = true
    let evolve: Bool

    let lane: BlockingLane

    /// A load into `table` of the database at `databasePath`, checked to fit the table, with
    /// its own lane for the blocking work; `stagePath` is scratch space for rows that do not
    /// fit in memory (replaced if present, removed at the end).
    public static func open(databasePath: String, stagePath: String, table: String, schema: TableSchema, mode: WriteMode,
                            evolve: Bool = false, onCommit: CommitHook? = nil) async throws(SluiceError) -> SQLiteSink {
        let lane = BlockingLane("sluice.sqlite.sink")
        return try await lane.run { () throws(SluiceError) in
            try SQLiteSink(databasePath: databasePath, stagePath: stagePath, table: table, schema: schema, mode: mode, evolve: evolve,
                           onCommit: onCommit, lane: lane)
        }
    }

    init(databasePath: String, stagePath: String, table: String, schema: TableSchema, mode: WriteMode, evolve: Bool,
         onCommit: CommitHook?, lane: BlockingLane) throws(SluiceError) {
        self.lane = lane
        self.evolve = evolve
        try SQLIdentifier.validate(table)
        try schema.validate()
        if mode == .merge && schema.primaryKey.isEmpty { throw SluiceError(.invalidSchema, "merge into '\(table)' needs a primary key") }
        self.databasePath = databasePath
        self.stagePath = stagePath
        self.table = table
        self.schema = schema
        self.mode = mode
        self.onCommit = onCommit
        self.keyIndices = schema.keyIndices
        self.binder = SQLiteBinder(types: schema.columns.map(\.type))
        floatColumns = schema.columns.contains { $0.type == .float64 }
        try? FileManager.default.removeItem(atPath: stagePath)  // a leftover from a killed attempt
        if mode == .merge ? KeyedRows.supports(keyIndices.map { schema.columns[$0].type }) : keyIndices.isEmpty {
            memory = MemoryRows(schema)
        } else {
            stage = try Self.openStage(stagePath, schema, mode: mode)
        }
        // Fail fast on a table that cannot take this load (checked again under the lock).
        let reader = try SQLiteConnection(path: databasePath, readOnly: true)
        let target = try SQLiteTarget.catalogReader(reader)
        _ = try TablePreparation.decide(table: table, existing: try target.schema(of: table), load: schema, mode: mode, evolve: evolve)
        let tableExists = try target.tableExists(table)
        if mode == .append && !schema.primaryKey.isEmpty && tableExists {
            mainReader = reader
            exists = try reader.prepare(SQLiteSQL.keyExists(table, schema))
        } else {
            mainReader = nil
            exists = nil
        }
    }

    static func openStage(_ path: String, _ schema: TableSchema, mode: WriteMode) throws(SluiceError) -> Stage {
        let db = try SQLiteConnection(path: path)
        try db.execute("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -\(cacheKiB);")
        try db.execute(SQLiteSQL.createStage(stageName, schema, db: "main"))
        let upsert = try db.prepare(SQLiteSQL.upsertStage(stageName, schema, db: "main", keepFirst: mode == .append))
        try db.execute("BEGIN")
        return Stage(db: db, upsert: upsert)
    }

    deinit {
        binder.deallocate()
        rollbackNow()
    }

    public func write(_ batch: RecordBatch) async throws(SluiceError) -> [SinkReject] {
        try await lane.run { () throws(SluiceError) in try self.writeNow(batch) }
    }

    public func commit(_ context: CommitContext) async throws(SluiceError) -> SinkCounts {
        try await lane.run { () throws(SluiceError) in try self.commitNow(context) }
    }

    public func rollback() async {
        _ = try? await lane.run { () throws(SluiceError) in self.rollbackNow() }
    }

    func writeNow(_ batch: RecordBatch) throws(SluiceError) -> [SinkReject] {
        guard open else { throw SluiceError(.aborted, "the load is already finished") }
        if batch.isEmpty { return [] }
        // SQLite stores NaN as NULL without a word: such a row is a reject, with its reason.
        if floatColumns && rejectNaN, case let nan = batch.nanRows(), !nan.rows.isEmpty {
            return try writeNow(batch.removing(rows: nan.rows)) + nan.rejects
        }
        if batch.ops.contains(.delete) {
            deletes = true
            // Appended rows are refused a delete as they are staged; held ones, here.
            if mode == .append && memory != nil {
                let refused = batch.ops.indices.filter { batch.ops[$0] == .delete }
                let rejects = refused.map { reject(batch, $0, Self.deleteNeedsMerge) }
                return try writeNow(batch.removing(rows: Set(refused))) + rejects
            }
        }
        guard var held = memory else { return try stageBatch(batch) }
        memory = nil  // held alone while it grows (no copy of its buffers)
        held.add(batch)
        guard held.bytes > memoryBudget else {
            memory = held
            return []
        }
        // Too big to hold: the rows so far go to the stage file, and so do the next ones.
        stage = try Self.openStage(stagePath, schema, mode: mode)
        _ = try stageBatch(held.rows)
        return []
    }

    func stageBatch(_ batch: RecordBatch) throws(SluiceError) -> [SinkReject] {
        try SQLiteBinder.withPointers(batch, kinds: binder.kinds) { cols in
            Result { () throws(SluiceError) in try self.stageRows(batch, cols) }
        }
    }

    func stageRows(_ batch: RecordBatch, _ cols: [SQLiteBinder.ColumnPointers]) throws(SluiceError) -> [SinkReject] {
        guard let stage else { throw SluiceError(.aborted, "the stage is not open") }
        let upsert = stage.upsert, stageDB = stage.db
        // A local binder: binding through the property paid an exclusivity check per value.
        var binder = self.binder
        defer { self.binder = binder }
        var rejects: [SinkReject] = []
        let n = Int32(cols.count)
        for r in 0..<batch.count {
            let op = batch.ops[r]
            if mode == .append {
                if op == .delete { rejects.append(reject(batch, r, Self.deleteNeedsMerge)); continue }
                if let exists {
                    for (p, c) in keyIndices.enumerated() { binder.bind(exists, Int32(p + 1), cols[c], column: c, row: r, decimals: batch.columns[c].decimals) }
                    if try exists.step() {
                        exists.reset()
                        rejects.append(reject(batch, r, "duplicate key (\(schema.primaryKey.joined(separator: ", "))): already in the table"))
                        continue
                    }
                }
            }
            for c in cols.indices { binder.bind(upsert, Int32(c + 1), cols[c], column: c, row: r, decimals: batch.columns[c].decimals) }
            upsert.bind(n + 1, int: Int64(op.rawValue))
            upsert.bind(n + 2, int: batch.lines[r])
            let rc = upsert.run()
            guard rc == SQLITE_DONE else { throw stageDB.error(rc, "SQLite staging") }
            if mode == .append && !keyIndices.isEmpty && stageDB.changes == 0 {
                rejects.append(reject(batch, r, "duplicate key (\(schema.primaryKey.joined(separator: ", "))): repeated in the file"))
            }
        }
        return rejects
    }

    static let deleteNeedsMerge = "op D (delete) needs merge mode"

    func reject(_ batch: RecordBatch, _ r: Int, _ reason: String) -> SinkReject {
        SinkReject(line: batch.lines[r], reason: reason, values: batch.columns.map { ValueText.render($0, r) })
    }

    func commitNow(_ context: CommitContext) throws(SluiceError) -> SinkCounts {
        guard open else { throw SluiceError(.aborted, "the load is already finished") }
        if let stage { try stage.db.execute("COMMIT") }
        let main = try SQLiteConnection(path: databasePath)
        // A fresh connection starts with a 2 MB cache: the merge's key lookups would re-read
        // the table's index pages from the OS, one syscall and copy each. Mapped reads and a
        // cache the size of the worker's own keep it to the index's first touch.
        try main.execute("PRAGMA cache_size = -\(Self.cacheKiB); PRAGMA mmap_size = \(Self.mmapBytes);")
        if stage != nil {
            let attach = try main.prepare("ATTACH DATABASE ?1 AS stage")
            attach.bind(1, .text(stagePath))
            try attach.step()
            try main.execute("PRAGMA stage.cache_size = -\(Self.cacheKiB); PRAGMA stage.mmap_size = \(Self.mmapBytes);")
        }
        defer {
            // Detaching can only fail if a statement is still open; none is at this point.
            if stage != nil { try? main.execute("DETACH DATABASE stage") }
            cleanup()
        }
        // Sorted before taking the write lock: other writers need not wait for it.
        let order = memory?.keys?.lastPerKey() ?? []
        try main.execute("BEGIN IMMEDIATE")
        do throws(SluiceError) {
            let target = try SQLiteTarget.catalogReader(main)
            try target.prepareTable(table, schema, mode: mode, evolve: evolve)
            var counts = SinkCounts()
            switch mode {
            case .merge where memory != nil:
                counts = try applyMemory(order, on: main)
            case .merge:
                counts = try mergeStage(on: main)
            case .append, .replace:
                // (A `where` would guard only the last pattern of a case.)
                if let held = memory { counts = try applyMemory(Array(0..<held.rows.count), on: main) } else { counts = try insertStage(on: main) }
            }
            try SQLiteConnection.runSteps(context.afterSQL, on: main)
            if context.rehearsal {
                try main.execute("ROLLBACK")
                open = false
                return counts
            }
            try onCommit?(main, context.settled(counts), context)
            try main.execute("COMMIT")
            open = false
            return counts
        } catch {
            try? main.execute("ROLLBACK")  // the error being thrown is what matters
            main.shrinkLog()
            open = false
            throw error
        }
    }

    func rollbackNow() {
        guard open else { return }
        open = false
        cleanup()
    }

    func cleanup() {
        memory = nil
        guard let stage else { return }
        // The stage is scratch: a failed removal only leaves a file the next attempt replaces.
        try? stage.db.execute("ROLLBACK")
        try? FileManager.default.removeItem(atPath: stagePath)
    }

    /// Append and replace: copies the stage's rows into the table in one statement; when the
    /// table refuses one (a CHECK, NOT NULL or foreign-key constraint of a table someone else
    /// made), copies them one at a time instead and rejects only the refused rows.
    func insertStage(on main: SQLiteConnection) throws(SluiceError) -> SinkCounts {
        let all = try main.prepare(SQLiteSQL.insertFromStage(table, Self.stageName, schema, db: "stage"))
        let rc = all.run()
        if rc == SQLITE_DONE { return SinkCounts(inserted: main.changes) }
        guard rc & 0xFF == SQLITE_CONSTRAINT else { throw main.error(rc, "SQLite insert into \(table)") }
        return try stageOneByOne(on: main, write: try main.prepare(SQLiteSQL.insert(table, schema)), probe: nil)
    }

    /// The slow path of a bulk statement the table refused: writes the stage's upsert rows one
    /// at a time with `write`, rejecting each row the table refuses. `probe` (a key lookup)
    /// tells updated rows from inserted ones; without it every written row is new.
    func stageOneByOne(on main: SQLiteConnection, write: SQLiteStatement, probe: SQLiteStatement?) throws(SluiceError) -> SinkCounts {
        var counts = SinkCounts()
        let width = schema.columns.count
        let rows = try main.prepare(SQLiteSQL.selectStage(Self.stageName, schema, db: "stage"))
        while try rows.step() {
            let values = (0..<width).map { rows.value($0) }
            var existed = false
            if let probe {
                for (p, c) in keyIndices.enumerated() { probe.bind(p + 1, values[c]) }
                existed = try probe.step()
                if existed { probe.reset() }
            }
            for (c, v) in values.enumerated() { write.bind(c + 1, v) }
            let rc = write.run()
            if rc == SQLITE_DONE {
                if existed { counts.updated += 1 } else { counts.inserted += 1 }
            } else if rc & 0xFF == SQLITE_CONSTRAINT {
                counts.rejects.append(SinkReject(line: rows.int64(width), reason: refusal(rc, main), values: values.map(\.rendered)))
            } else {
                throw main.error(rc, "SQLite write into \(table)")
            }
        }
        return counts
    }

    /// A merge of rows that did not fit in memory: applies the keyed stage (last row per key)
    /// with one UPDATE-or-INSERT statement and one DELETE, whose change counts are the
    /// figures; when the table refuses a row, upserts them one at a time instead.
    func mergeStage(on main: SQLiteConnection) throws(SluiceError) -> SinkCounts {
        let stage = Self.stageName
        var counts = SinkCounts()
        let existing = try main.query(SQLiteSQL.mergeCountExisting(table, stage, schema, db: "stage")).first?.first?.int ?? 0
        let upsert = try main.prepare(SQLiteSQL.mergeUpsert(table, stage, schema, db: "stage"))
        let rc = upsert.run()
        if rc == SQLITE_DONE {
            // A table of key columns only takes existing keys as they are (DO NOTHING: not counted).
            let keyOnly = schema.columns.allSatisfy { schema.primaryKey.contains($0.name) }
            counts.updated = existing
            counts.inserted = keyOnly ? main.changes : main.changes - existing
        } else {
            guard rc & 0xFF == SQLITE_CONSTRAINT else { throw main.error(rc, "SQLite merge into \(table)") }
            counts = try stageOneByOne(on: main, write: try main.prepare(SQLiteSQL.upsertRows(table, schema, rows: 1)),
                                       probe: try main.prepare(SQLiteSQL.keyExists(table, schema)))
        }
        if deletes {
            try main.execute(SQLiteSQL.mergeDelete(table, stage, schema, db: "stage"))
            counts.deleted = main.changes
        }
        return counts
    }

    /// Why the table refused a row, from SQLite's constraint error.
    func refusal(_ rc: Int32, _ conn: SQLiteConnection) -> String {
        if rc == Self.constraintPrimaryKey || rc == Self.constraintUnique {
            return "duplicate key (\(schema.primaryKey.joined(separator: ", "))): \(conn.lastError)"
        }
        return "rejected by the table: \(conn.lastError)"
    }

    // Extended result codes (function-like macros in sqlite3.h, so not imported).
    static let constraintPrimaryKey: Int32 = SQLITE_CONSTRAINT | (6 << 8)
    static let constraintUnique: Int32 = SQLITE_CONSTRAINT | (8 << 8)

    /// Writes the in-memory rows inside the caller's transaction: a merge's last row per key,
    /// in key order, upserts first and then deletes; a keyless load's rows (not its deletes)
    /// in the order they came. New keys are counted by
    /// rowid (every row inserted here gets one above the table's highest before it), or,
    /// where the rowid says nothing (a WITHOUT ROWID table, an INTEGER PRIMARY KEY), by
    /// looking each key up before writing it.
    /// `order`: the rows to write (``KeyedRows/lastPerKey()``, or every row).
    func applyMemory(_ order: [Int], on main: SQLiteConnection) throws(SluiceError) -> SinkCounts {
        guard let rows = memory?.rows, !rows.isEmpty else { return SinkCounts() }
        // Into an empty table (or one without a key) every row is new and every delete finds
        // nothing: no lookups.
        let empty = keyIndices.isEmpty ? true : try main.query("SELECT 1 FROM main.\(SQLIdentifier.quoteValidated(table)) LIMIT 1").isEmpty
        let floor = empty ? nil : try Self.rowidFloor(main, table)
        // Several rows per statement: with one statement per row, ending statements
        // (sqlite3VdbeHalt) alone took 0.81 of the merge's 5.19 percent of a watch run's samples.
        let width = schema.columns.count
        let perStatement = max(1, min(Self.rowsPerStatement, 32_000 / max(1, width)))
        let upsertFull = try main.prepare(SQLiteSQL.upsertRows(table, schema, rows: perStatement))
        let delete = deletes && !empty ? try main.prepare(SQLiteSQL.deleteByKey(table, schema)) : nil
        let probe = floor == nil && !empty ? try main.prepare(SQLiteSQL.keyExists(table, schema)) : nil
        var binder = SQLiteBinder(types: schema.columns.map(\.type), rows: perStatement)
        defer { binder.deallocate() }
        // Key lookups and deletes render into scratch of their own: a lookup made while a
        // statement's rows are being bound must not overwrite what an earlier row rendered.
        var keyBinder = self.binder
        defer { self.binder = keyBinder }
        let keyIndices = self.keyIndices, table = self.table, schema = self.schema
        let verb = mode == .merge ? "merge into" : "insert into"
        let upserts = order.filter { rows.ops[$0] == .upsert }
        var refused: [SinkReject] = []
        let (existing, deleted) = try SQLiteBinder.withPointers(rows, kinds: binder.kinds) { cols -> Result<(Int64, Int64), SluiceError> in
            var existing: Int64 = 0, deleted: Int64 = 0
            func bindKey(_ st: SQLiteStatement, _ r: Int) {
                for (p, c) in keyIndices.enumerated() { keyBinder.bind(st, Int32(p + 1), cols[c], column: c, row: r, decimals: rows.columns[c].decimals) }
            }
            func bindRow(_ st: SQLiteStatement, _ r: Int, at j: Int) {
                for c in cols.indices {
                    binder.bind(st, Int32(j * width + c + 1), cols[c], column: c, row: r, decimals: rows.columns[c].decimals, slot: j * width + c)
                }
            }
            do throws(SluiceError) {
                var at = 0
                var existed: [Bool] = []
                while at < upserts.count {
                    let n = min(perStatement, upserts.count - at)
                    let st = n == perStatement ? upsertFull : try main.prepare(SQLiteSQL.upsertRows(table, schema, rows: n))
                    existed.removeAll(keepingCapacity: true)
                    for j in 0..<n {
                        let r = upserts[at + j]
                        if let probe {
                            bindKey(probe, r)
                            let found = try probe.step()
                            if found { existing += 1; probe.reset() }
                            existed.append(found)
                        }
                        bindRow(st, r, at: j)
                    }
                    let rc = st.run()
                    if rc != SQLITE_DONE {
                        guard rc & 0xFF == SQLITE_CONSTRAINT else {
                            throw main.error(rc, "SQLite \(verb) \(table) (one of the rows from lines \(upserts[at..<(at + n)].map { rows.lines[$0] }.min() ?? 0) to \(upserts[at..<(at + n)].map { rows.lines[$0] }.max() ?? 0))")
                        }
                        // The table refused one of these rows: write them one at a time, rejecting only those it refuses.
                        let one = try main.prepare(SQLiteSQL.upsertRows(table, schema, rows: 1))
                        for j in 0..<n {
                            let r = upserts[at + j]
                            bindRow(one, r, at: 0)
                            let rc = one.run()
                            guard rc != SQLITE_DONE else { continue }
                            guard rc & 0xFF == SQLITE_CONSTRAINT else { throw main.error(rc, "SQLite \(verb) \(table) (line \(rows.lines[r]))") }
                            refused.append(reject(rows, r, refusal(rc, main)))
                            if probe != nil && existed[j] { existing -= 1 }
                        }
                    }
                    at += n
                }
                if let delete {
                    for r in order where rows.ops[r] == .delete {
                        bindKey(delete, r)
                        let rc = delete.run()
                        guard rc == SQLITE_DONE else { throw main.error(rc, "SQLite delete from \(table) (line \(rows.lines[r]))") }
                        deleted += main.changes
                    }
                }
            } catch {
                return .failure(error)
            }
            return .success((existing, deleted))
        }
        let upserted = Int64(upserts.count - refused.count)
        var counts = SinkCounts(deleted: deleted, rejects: refused)
        if let floor {
            counts.inserted = try main.query("SELECT count(*) FROM main.\(SQLIdentifier.quoteValidated(table)) WHERE rowid > ?1", [.integer(floor)]).first?.first?.int ?? 0
        } else {
            counts.inserted = upserted - existing
        }
        counts.updated = upserted - counts.inserted
        return counts
    }

    /// The table's highest rowid, when every row inserted from now on gets a higher one; nil
    /// when rowids do not tell new rows apart (no rowid, the key is the rowid, a column
    /// named rowid, or the highest rowid is taken).
    static func rowidFloor(_ main: SQLiteConnection, _ table: String) throws(SluiceError) -> Int64? {
        let sql = try main.query("SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE", [.text(table)]).first?.first?.string
        guard let sql, !sql.uppercased().contains("WITHOUT ROWID") else { return nil }
        let columns = try main.query("SELECT name, type, pk FROM pragma_table_info(?1)", [.text(table)])
        if columns.contains(where: { $0[0].string?.lowercased() == "rowid" }) { return nil }
        let key = columns.filter { ($0[2].int ?? 0) > 0 }
        if key.count == 1, key[0][1].string?.uppercased() == "INTEGER" { return nil }
        let max = try main.query("SELECT max(rowid) FROM main.\(SQLIdentifier.quoteValidated(table))").first?.first?.int ?? 0
        return max == Int64.max ? nil : max
    }
}

extension SQLiteTarget {
    /// A target view over an already-open connection (no pragmas, no metadata creation).
    static func catalogReader(_ c: SQLiteConnection) throws(SluiceError) -> SQLiteTarget {
        SQLiteTarget(existing: c)
    }
}
