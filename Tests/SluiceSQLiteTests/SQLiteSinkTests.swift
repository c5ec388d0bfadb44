import Testing
import Foundation
@testable import SluiceCore
@testable import SluiceSQLite
import SluiceQueue
import SluiceTesting

/// The one SQLite sink: its merge held in memory and through the stage file against an oracle
/// of "last row per key" applied to the table as it was, and rows a user's table refuses.
@Suite struct SQLiteSinkTests {
    /// A claimed job whose lease fences the commit.
    static func claimed(_ driver: SQLiteQueueDriver) async throws -> Job {
        let now = Date()
        _ = try await driver.insertJob(JobInsertParams(entity: "t", spec: JobSpec(source: "upload:x"), now: now))
        return try #require(try await driver.claimJobs(JobClaimParams(worker: "w", limit: 1, leaseDuration: .seconds(60), now: now)).first)
    }

    /// Loads `batches` by merge into `table`; `inMemory` false moves the rows to the stage file at once.
    static func merge(_ path: String, _ dir: TempDir, _ table: String, _ schema: TableSchema, _ batches: [RecordBatch],
                      inMemory: Bool) async throws -> SinkCounts {
        let driver = try SQLiteQueueDriver(path: path)
        try await driver.migrate()
        let job = try await claimed(driver)
        let sink = try await SQLiteDataTarget(databasePath: path).sink(entity: Entity(name: table, schema: schema), mode: .merge, scratchDir: dir.path,
                                                                       completing: JobCompletion(job: job, sha256: nil, now: { Date() }))
        let load = try #require(sink as? SQLiteSink)
        if !inMemory { load.memoryBudget = 0 }
        for b in batches { #expect(try await load.write(b).isEmpty) }
        #expect((load.stage == nil) == inMemory)
        var stats = LoadStats()
        stats.read = Int64(batches.reduce(0) { $0 + $1.count })
        return try await load.commit(CommitContext(stats: stats, rejectsFiles: []))
    }

    /// Random rows with repeated keys and deletes, in several batches.
    static func batches(_ schema: TableSchema, seed: UInt64, rows: Int, keys: Int, deletes: Bool) -> [RecordBatch] {
        var rng = SplitMix(seed: seed)
        var out: [RecordBatch] = []
        var line: Int64 = 2
        for _ in 0..<3 {
            var b = BatchBuilder(schema: schema, capacity: rows)
            for _ in 0..<rows {
                let k = Int(rng.next() % UInt64(keys))
                let op: RowOp = deletes && rng.next() % 5 == 0 ? .delete : .upsert
                b.beginRow(line: line, op: op)
                line += 1
                for (c, col) in schema.columns.enumerated() {
                    switch col.name {
                    case "k": b.setText(c, col.type == .int64 ? String(k * 7 - 40) : "key-\(k)\(k % 3 == 0 ? "\u{0}z" : "")")
                    case "k2": b.setText(c, String(k % 4))
                    case "d": b.setText(c, "\(k % 9).\(k % 10)")
                    default: if rng.next() % 6 == 0 { b.setNull(c) } else { b.setText(c, "v\(rng.next() % 1000)") }
                    }
                }
                #expect(b.endRow() == nil)
            }
            out.append(b.take())
        }
        return out
    }

    static func contents(_ path: String, _ table: String, _ schema: TableSchema) throws -> [[SQLiteValue]] {
        let names = schema.columns.map { "\"\($0.name)\"" }.joined(separator: ", ")
        return try SQLiteConnection(path: path).query("SELECT \(names) FROM \"\(table)\" ORDER BY \(schema.primaryKey.map { "\"\($0)\"" }.joined(separator: ", "))")
    }

    /// Every table shape the counts are found differently for: rowid tables (text key,
    /// composite key with a decimal, key columns only), the key as the rowid (INTEGER
    /// PRIMARY KEY), and WITHOUT ROWID tables made by the user (keys looked up one by one,
    /// a decimal key rendered for both the lookup and the write).
    @Test(arguments: ["text", "int", "composite", "keyonly", "withoutrowid", "composite-withoutrowid"])
    func memoryAndStageMergesAgree(_ shape: String) async throws {
        let keyType: ColumnType = shape == "int" ? .int64 : .text
        var columns = [ColumnSchema(name: "k", type: keyType, nullable: false)]
        var key = ["k"]
        if shape.hasPrefix("composite") {
            columns += [ColumnSchema(name: "k2", type: .int64, nullable: false), ColumnSchema(name: "d", type: .decimal(precision: 6, scale: 1), nullable: false)]
            key += ["k2", "d"]
        }
        if shape != "keyonly" { columns += [ColumnSchema(name: "a", type: .text), ColumnSchema(name: "b", type: .text)] }
        let schema = TableSchema(columns: columns, primaryKey: key).normalized()
        var counts: [SinkCounts] = []
        var tables: [[[SQLiteValue]]] = []
        for inMemory in [true, false] {
            let dir = TempDir()
            let path = dir.file("t.db")
            if shape == "withoutrowid" {
                try SQLiteConnection(path: path).execute("CREATE TABLE t (k TEXT NOT NULL PRIMARY KEY, a TEXT, b TEXT) STRICT, WITHOUT ROWID")
            }
            if shape == "composite-withoutrowid" {
                let create = "CREATE TABLE t (k TEXT NOT NULL, k2 INTEGER NOT NULL, d TEXT NOT NULL, a TEXT, b TEXT, PRIMARY KEY (k, k2, d)) STRICT, WITHOUT ROWID"
                try SQLiteConnection(path: path).execute(create)
            }
            // A first load fills the table (new keys only), then a second one updates, inserts and deletes.
            let first = try await Self.merge(path, dir, "t", schema, Self.batches(schema, seed: 1, rows: 300, keys: 150, deletes: false), inMemory: inMemory)
            let filled = try Self.contents(path, "t", schema).count
            #expect(first.updated == 0 && first.deleted == 0 && first.inserted == Int64(filled))
            counts.append(try await Self.merge(path, dir, "t", schema, Self.batches(schema, seed: 2, rows: 400, keys: 300, deletes: true), inMemory: inMemory))
            tables.append(try Self.contents(path, "t", schema))
        }
        #expect(counts[0] == counts[1], "\(shape): in memory \(counts[0]), staged \(counts[1])")
        let same = tables[0] == tables[1]
        #expect(same, "\(shape): the tables differ")

        // The oracle: the second load's last row per key, applied to the first load's result.
        var state: [String: [SQLiteValue]] = [:]
        func keyOf(_ row: [SQLiteValue]) -> String { schema.keyIndices.map { "\(row[$0])" }.joined(separator: "|") }
        func apply(_ batches: [RecordBatch]) -> (inserted: Int64, updated: Int64, deleted: Int64) {
            var last: [String: ([SQLiteValue], RowOp)] = [:]
            for b in batches {
                for r in 0..<b.count {
                    let row = b.columns.map { col -> SQLiteValue in
                        guard col.validity[r] else { return .null }
                        switch col.type {
                        case .int64: return .integer(col.ints[r])
                        // Sluice stores decimal(6,1) as REAL; the user's WITHOUT ROWID table has it as TEXT.
                        case .decimal where shape == "composite": return .real(Double(ValueText.render(col, r) ?? "") ?? .nan)
                        default: return .text(ValueText.render(col, r) ?? "")
                        }
                    }
                    last[keyOf(row)] = (row, b.ops[r])
                }
            }
            var n: (Int64, Int64, Int64) = (0, 0, 0)
            for (k, (row, op)) in last {
                switch (op, state[k] != nil) {
                case (.upsert, false): n.0 += 1; state[k] = row
                case (.upsert, true): n.1 += 1; state[k] = row
                case (.delete, true): n.2 += 1; state[k] = nil
                case (.delete, false): break
                }
            }
            return n
        }
        _ = apply(Self.batches(schema, seed: 1, rows: 300, keys: 150, deletes: false))
        let expected = apply(Self.batches(schema, seed: 2, rows: 400, keys: 300, deletes: true))
        #expect(counts[0].inserted == expected.inserted && counts[0].updated == expected.updated && counts[0].deleted == expected.deleted,
                "\(shape): \(counts[0]) vs oracle \(expected)")
        #expect(expected.inserted > 0 && expected.updated > 0 && expected.deleted > 0)
        let oracleRows = state.values.sorted { keyOf($0) < keyOf($1) }
        #expect(Set(tables[0].map { keyOf($0) }) == Set(oracleRows.map { keyOf($0) }))
        let byKey = Dictionary(uniqueKeysWithValues: tables[0].map { (keyOf($0), $0) })
        for row in oracleRows { #expect(byKey[keyOf(row)] == row) }
    }

    @Test func keysEncodeInTheDatabasesOrderAndKeepTheLastRowOfEach() {
        let schema = TableSchema(columns: [ColumnSchema(name: "i", type: .int64, nullable: false),
                                           ColumnSchema(name: "t", type: .text, nullable: false)], primaryKey: ["i", "t"])
        var b = BatchBuilder(schema: schema, capacity: 8)
        let rows: [(String, String)] = [("5", "b"), ("-3", "a"), ("5", "a\u{0}"), ("5", "b"), ("-3", "a"), ("9000000000", ""), ("5", "a"), ("-3", "a")]
        for (i, (n, t)) in rows.enumerated() {
            b.beginRow(line: Int64(i))
            b.setText(0, n)
            b.setText(1, t)
            #expect(b.endRow() == nil)
        }
        var keys = KeyedRows(keyColumns: [0, 1])
        keys.append(b.take(), rows: 0..<rows.count)
        // -3 a (last at 7), 5 a (6), 5 a\0 (2), 5 b (last at 3), 9000000000 "" (5).
        #expect(keys.lastPerKey() == [7, 6, 2, 3, 5])
        #expect(!KeyedRows.supports([.int64, .float64]) && KeyedRows.supports([.text, .decimal(precision: 5, scale: 2), .uuid]))
    }

    /// A sink loading into the table `ddl` makes (a table someone else made), with its schema.
    func sink(on ddl: String, table: String, mode: WriteMode, in dir: TempDir) async throws -> (SQLiteTarget, TableSchema, SQLiteSink) {
        let path = dir.file("t.db")
        try SQLiteConnection(path: path).execute(ddl)
        let t = try SQLiteTarget(path: path)
        let schema = try #require(try t.schema(of: table))
        return (t, schema, try await t.beginLoad(table: table, schema: schema, mode: mode, stagePath: dir.file("stage.db")))
    }

    /// A table without a key is loaded from memory when its rows fit, from the stage file
    /// when not, with the same outcome: the rows in the order they came, a row the table
    /// refuses rejected alone, a delete refused in append mode and left out in replace mode.
    @Test(arguments: [WriteMode.append, .replace], [true, false])
    func keylessRowsLoadAlikeFromMemoryAndStage(_ mode: WriteMode, _ inMemory: Bool) async throws {
        let dir = TempDir()
        let (t, schema, load) = try await sink(on: "CREATE TABLE events (name TEXT NOT NULL, score INTEGER CHECK (score >= 0)); INSERT INTO events VALUES ('old', 1)",
                                               table: "events", mode: mode, in: dir)
        #expect(load.memory != nil, "a keyless load starts in memory")
        if !inMemory { load.memoryBudget = 0 }
        let rejects = try await load.write(batch(schema, [["z", "5"], ["b", "-7"], ["gone", "3"], ["a", "1"]], ops: [.upsert, .upsert, .delete, .upsert]))
        #expect(rejects.map(\.line) == (mode == .append ? [4] : []), "\(rejects)")
        var stats = LoadStats()
        stats.read = 4
        let counts = try await load.commit(CommitContext(stats: stats, rejectsFiles: []))
        #expect(counts.inserted == 2 && counts.updated == 0 && counts.rejects.map(\.line) == [3], "\(mode) \(inMemory): \(counts)")
        #expect(counts.rejects.first?.reason.contains("CHECK constraint failed") == true)
        let expected: [[SQLiteValue]] = (mode == .append ? [[.text("old")]] : []) + [[.text("z")], [.text("a")]]
        #expect(try rows(t, "SELECT name FROM events ORDER BY rowid") == expected)
    }

    /// A table made by someone else may refuse rows (CHECK, NOT NULL): those rows are rejected
    /// with the reason, the others load, whichever way the rows were held.
    @Test(arguments: [WriteMode.append, .merge, .replace], [true, false])
    func rowsTheTableRefusesAreRejectedAndTheRestLoad(_ mode: WriteMode, _ inMemory: Bool) async throws {
        let dir = TempDir()
        let (t, schema, load) = try await sink(on: "CREATE TABLE scores (id TEXT PRIMARY KEY, name TEXT NOT NULL, score INTEGER CHECK (score >= 0))",
                                               table: "scores", mode: mode, in: dir)
        if !inMemory { load.memoryBudget = 0 }
        #expect(try await load.write(batch(schema, [["a", "x", "5"], ["b", "y", "-7"], ["c", "z", "1"]])).isEmpty)
        var stats = LoadStats()
        stats.read = 3
        let context = CommitContext(stats: stats, rejectsFiles: [])
        let counts = try await load.commit(context)
        #expect(counts.inserted == 2 && counts.rejects.map(\.line) == [3], "\(mode) \(inMemory): \(counts)")
        #expect(counts.rejects.first?.reason.contains("CHECK constraint failed") == true)
        #expect(counts.rejects.first?.values == ["b", "y", "-7"])
        #expect(context.settled(counts).rejected == 1 && context.settled(counts).skipped == 0)
        #expect(try rows(t, "SELECT id FROM scores ORDER BY id") == [[.text("a")], [.text("c")]])
    }

    /// A table without a key takes its rows in the order they came (the stage is copied in
    /// rowid order, not sorted), also when one of its columns is named `rowid` or `oid`.
    @Test(arguments: [["v", "w"], ["rowid", "v"], ["rowid", "_rowid_", "oid"]])
    func aKeylessLoadKeepsTheRowsOrder(_ names: [String]) async throws {
        let dir = TempDir()
        let path = dir.file("t.db")
        let t = try SQLiteTarget(path: path)
        let schema = TableSchema(columns: names.map { ColumnSchema(name: $0, type: .int64, nullable: true) })
        let load = try await t.beginLoad(table: "seq", schema: schema, mode: .append, stagePath: dir.file("stage.db"))
        // Column values run against the order the rows come in.
        let values = (0..<300).map { i in names.indices.map { c in String((300 - i) * (c + 1)) } }
        for part in stride(from: 0, to: values.count, by: 100) {
            #expect(try await load.write(batch(schema, Array(values[part..<part + 100]), firstLine: Int64(part + 2))).isEmpty)
        }
        var stats = LoadStats()
        stats.read = Int64(values.count)
        #expect(try await load.commit(CommitContext(stats: stats, rejectsFiles: [])).inserted == Int64(values.count))
        let quoted = names.map { "\"\($0)\"" }.joined(separator: ", ")
        // A plain scan of a rowid table reads in rowid order (every alias of it may be a column here).
        let read = try rows(t, "SELECT \(quoted) FROM main.seq").map { $0.map { $0.int.map(String.init) ?? "?" } }
        #expect(read == values)
    }
}

/// A `sluice load` killed mid-way leaves its stage file; the next load removes it, and never
/// one of a load still running.
@Suite struct SQLiteStageSweepTests {
    @Test func stageFilesOfDeadLoadsAreSwept() async throws {
        let dir = TempDir()
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let dead = dir.write("load-\(gone.processIdentifier)-1.stage.db", "x")
        let mine = dir.write("load-\(getpid())-2.stage.db", "x")
        let path = dir.file("t.db")
        _ = try SQLiteTarget(path: path)
        let sink = try await SQLiteDataTarget(databasePath: path).sink(entity: Entity(name: "people", schema: people), mode: .merge,
                                                                       scratchDir: dir.path, completing: nil)
        await sink.rollback()
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(FileManager.default.fileExists(atPath: mine))
    }
}

/// The embedded backend against the suite every data target passes.
@Suite struct SQLiteDataTargetTests {
    @Test func conformance() async throws {
        let dir = TempDir()
        try await DataTargetConformance.run {
            let path = dir.file("t-\(UUID().uuidString).db")
            let driver = try SQLiteQueueDriver(path: path)
            try await driver.migrate()
            return DataTargetConformance.Harness(target: SQLiteDataTarget(databasePath: path), driver: driver, scratch: dir.path) { table, columns in
                let names = columns.map { SQLIdentifier.quoteValidated($0) }.joined(separator: ", ")
                return try SQLiteConnection(path: path).query("SELECT \(names) FROM \(SQLIdentifier.quoteValidated(table)) ORDER BY 1").map { $0.map(\.rendered) }
            }
        }
    }
}
