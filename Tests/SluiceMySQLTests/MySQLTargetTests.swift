import Testing
import Foundation
@testable import SluiceMySQL
import SluiceCore
import SluiceQueue
import SluiceSQLite
import SluiceTesting

/// A MySQL target joined to a SQLite control plane, as `control:` + `target:` configure it.
func mysqlHarness(_ dir: TempDir) async throws -> DataTargetConformance.Harness {
    let pool = try await MY.freshPool()
    let driver = try SQLiteQueueDriver(path: dir.file("control-\(UUID().uuidString).db"))
    try await driver.migrate()
    let target = ReceiptFencedTarget(target: MySQLDataTarget(pool: pool), driver: driver)
    return DataTargetConformance.Harness(target: target, driver: driver, scratch: dir.path) { table, columns in
        let names = columns.map { "CAST(\(SQLIdentifier.backquoteValidated($0)) AS CHAR)" }.joined(separator: ", ")
        return try await MY.rows(pool, "SELECT \(names) FROM \(SQLIdentifier.backquoteValidated(table)) ORDER BY 1")
    }
}

@Suite("MySQL data target")
struct MySQLTargetTests {
    @Test func conformance() async throws {
        let dir = TempDir()
        try await DataTargetConformance.run { try await mysqlHarness(dir) }
    }
}

@Suite("MySQL sink semantics")
struct MySQLSinkTests {
    static func load(_ target: any DataTarget, _ table: String, _ schema: TableSchema, _ mode: WriteMode, _ rows: [[String?]],
                     ops: [RowOp]? = nil, completing: JobCompletion? = nil) async throws -> (SinkCounts, [SinkReject]) {
        let sink = try await target.sink(entity: Entity(name: table, schema: schema), mode: mode, scratchDir: NSTemporaryDirectory(), completing: completing)
        let early = try await sink.write(batch(schema, rows, ops: ops))
        var stats = LoadStats()
        stats.read = Int64(rows.count)
        let counts = try await sink.commit(CommitContext(stats: stats, rejectsFiles: []))
        return (counts, early + counts.rejects)
    }

    @Test func everyTypeRoundTripsAndReadsBackItsSchema() async throws {
        let pool = try await MY.freshPool()
        let target = MySQLDataTarget(pool: pool)
        let schema = TableSchema(columns: [
            ColumnSchema(name: "id", type: .int64, nullable: false), ColumnSchema(name: "f", type: .float64),
            ColumnSchema(name: "d", type: .decimal(precision: 12, scale: 3)), ColumnSchema(name: "b", type: .bool),
            ColumnSchema(name: "t", type: .text), ColumnSchema(name: "day", type: .date), ColumnSchema(name: "ts", type: .timestamp),
            ColumnSchema(name: "tm", type: .time), ColumnSchema(name: "u", type: .uuid), ColumnSchema(name: "j", type: .json),
            ColumnSchema(name: "raw", type: .bytes),
        ], primaryKey: ["id"])
        let rows: [[String?]] = [
            ["1", "1.5", "12.345", "true", "tab\there\nnew \\ back ação", "2024-02-29", "2024-02-29 23:59:58.123456", "12:34:56.5",
             "0b7e4a4c-2f0b-4d5e-9a1c-3e5f6a7b8c9d", "{\"a\": [1, 2]}", "\\x00ff10"],
            ["2", nil, nil, "false", "", "0001-01-01", "9999-12-31 00:00:00", nil, nil, nil, nil],
        ]
        let (counts, refused) = try await Self.load(target, "every_type", schema, .merge, rows)
        #expect(counts.inserted == 2 && refused.isEmpty, "\(counts) \(refused)")
        let back = try await MY.rows(pool, "SELECT id, f, d, b, t, day, ts, tm, u, j, HEX(raw) FROM every_type ORDER BY id")
        #expect(back == [
            ["1", "1.5", "12.345", "1", "tab\there\nnew \\ back ação", "2024-02-29", "2024-02-29 23:59:58.123456", "12:34:56.500000",
             "0b7e4a4c-2f0b-4d5e-9a1c-3e5f6a7b8c9d", "{\"a\":[1,2]}", "00FF10"],
            ["2", nil, nil, "0", "", "0001-01-01", "9999-12-31 00:00:00.000000", nil, nil, nil, nil],
        ])
        let read = try #require(try await target.schema(of: "every_type"))
        #expect(read.columns.map(\.type) == schema.columns.map(\.type))
        #expect(read.primaryKey == ["id"])
        pool.shutdown()
    }

    @Test func rowsTheServerRefusesArePinnedWithItsMessage() async throws {
        let pool = try await MY.freshPool()
        // A DBA's table: a short code, a check, a NOT NULL without default.
        try await pool.withConnection { c in
            try await c.query("CREATE TABLE dba (id INT PRIMARY KEY, code VARCHAR(5) NOT NULL, qty SMALLINT CHECK (qty >= 0))")
            try await c.query("INSERT INTO dba VALUES (1, 'a', 1)")
        }
        let target = MySQLDataTarget(pool: pool)
        let schema = try #require(try await target.schema(of: "dba"))
        #expect(schema.columns.map(\.type) == [.int64, .text, .int64])
        let rows: [[String?]] = [["1", "b", "2"], ["2", "toolong", "1"], ["3", "ok", "-1"], ["4", "ok", "70000"], ["5", "fine", "5"]]
        let (counts, refused) = try await Self.load(target, "dba", schema, .merge, rows)
        #expect(counts.inserted == 1 && counts.updated == 1, "\(counts)")
        #expect(refused.map(\.line).sorted() == [3, 4, 5], "\(refused)")
        let reasons = refused.sorted { $0.line < $1.line }.map(\.reason)
        #expect(reasons[0].contains("too long") || reasons[0].contains("Data too long"), "\(reasons)")
        #expect(reasons.allSatisfy { $0.hasPrefix("MySQL refused the row") }, "\(reasons)")
        #expect(try await MY.rows(pool, "SELECT id, code, qty FROM dba ORDER BY id") == [["1", "b", "2"], ["5", "fine", "5"]])
        pool.shutdown()
    }

    @Test func mergeCountsUnchangedRowsAsUpdatesLikeTheOtherTargets() async throws {
        let pool = try await MY.freshPool()
        let target = MySQLDataTarget(pool: pool)
        let schema = TableSchema(columns: [ColumnSchema(name: "id", type: .int64, nullable: false), ColumnSchema(name: "v", type: .text)], primaryKey: ["id"])
        let rows: [[String?]] = (1...100).map { [String($0), "v\($0)"] }
        _ = try await Self.load(target, "same", schema, .merge, rows)
        let (counts, _) = try await Self.load(target, "same", schema, .merge, rows)
        #expect(counts.inserted == 0 && counts.updated == 100, "\(counts)")
        pool.shutdown()
    }

    /// A first load streams straight into the table it creates; deletes are applied by key
    /// at the end, a later upsert of the same key taking its row back.
    @Test func aFirstLoadStreamsStraightInAndAppliesItsDeletes() async throws {
        let pool = try await MY.freshPool()
        let target = MySQLDataTarget(pool: pool)
        let schema = TableSchema(columns: [ColumnSchema(name: "k", type: .text, nullable: false), ColumnSchema(name: "v", type: .int64)], primaryKey: ["k"])
        let long = String(repeating: "é", count: 256)
        let rows: [[String?]] = [["a", "1"], ["b", "1"], ["a", nil], ["c", nil], ["b", nil], ["b", "2"], ["d", "1"], ["d", "2"], [long, "9"], ["it's", "3"]]
        let ops: [RowOp] = [.upsert, .upsert, .delete, .delete, .delete, .upsert, .upsert, .upsert, .upsert, .upsert]
        let (counts, refused) = try await Self.load(target, "fresh", schema, .merge, rows, ops: ops)
        #expect(counts.inserted == 3, "\(counts)")
        #expect(refused.map(\.line) == [10] && refused.first?.reason.contains("255 characters") == true, "\(refused)")
        #expect(try await MY.rows(pool, "SELECT k, v FROM fresh ORDER BY k") == [["b", "2"], ["d", "2"], ["it's", "3"]])
        pool.shutdown()
    }

    @Test func replaceSwapsTablesAndLeavesNoScratchBehind() async throws {
        let pool = try await MY.freshPool()
        let target = MySQLDataTarget(pool: pool)
        let schema = TableSchema(columns: [ColumnSchema(name: "id", type: .int64, nullable: false), ColumnSchema(name: "v", type: .text)], primaryKey: ["id"])
        _ = try await Self.load(target, "rep", schema, .merge, [["1", "old"], ["2", "old"]])
        let (counts, _) = try await Self.load(target, "rep", schema, .replace, [["3", "new"], ["3", "newer"]])
        #expect(counts.inserted == 1)
        #expect(try await MY.rows(pool, "SELECT id, v FROM rep ORDER BY id") == [["3", "newer"]])
        let tables = try await MY.rows(pool, "SHOW TABLES").compactMap { $0.first ?? nil }
        #expect(tables == ["rep"], "\(tables)")
        pool.shutdown()
    }

    @Test func triggersAreRefusedAndGeneratedColumnsLeftOut() async throws {
        let pool = try await MY.freshPool()
        try await pool.withConnection { c in
            try await c.query("CREATE TABLE audited (id INT PRIMARY KEY, v INT)")
            try await c.query("CREATE TABLE log (n INT)")
            try await c.query("CREATE TRIGGER audit_ins AFTER INSERT ON audited FOR EACH ROW INSERT INTO log VALUES (NEW.id)")
            try await c.query("CREATE TABLE calc (id INT PRIMARY KEY, v INT, twice INT AS (v * 2) STORED)")
        }
        let target = MySQLDataTarget(pool: pool)
        let schema = TableSchema(columns: [ColumnSchema(name: "id", type: .int64, nullable: false), ColumnSchema(name: "v", type: .int64)], primaryKey: ["id"])
        do {
            _ = try await Self.load(target, "audited", schema, .merge, [["1", "1"]])
            Issue.record("loaded into a table with a trigger")
        } catch let e as SluiceError {
            #expect(e.message.contains("trigger 'audit_ins'"), "\(e)")
        }
        let calc = try #require(try await target.schema(of: "calc"))
        #expect(calc.columns.map(\.name) == ["id", "v"])
        _ = try await Self.load(target, "calc", calc, .merge, [["1", "21"]])
        #expect(try await MY.rows(pool, "SELECT id, v, twice FROM calc") == [["1", "21", "42"]])
        pool.shutdown()
    }

    /// A worker that died after the MySQL commit but before completing its job: the retry
    /// finds the receipt and completes the job with the first attempt's figures, no new rows.
    @Test func aRetryAfterACrashBetweenCommitAndCompletionDoesNotDoubleRows() async throws {
        let dir = TempDir()
        let pool = try await MY.freshPool()
        let driver = try SQLiteQueueDriver(path: dir.file("control.db"))
        try await driver.migrate()
        let inner = MySQLDataTarget(pool: pool)
        let fenced = ReceiptFencedTarget(target: inner, driver: driver)
        let schema = TableSchema(columns: [ColumnSchema(name: "id", type: .int64, nullable: false)], primaryKey: [])
        let now = Date()
        _ = try await driver.insertJob(JobInsertParams(entity: "events", spec: JobSpec(source: "upload:x"), now: now))
        let first = try #require(try await driver.claimJobs(JobClaimParams(worker: "a", limit: 1, leaseDuration: .seconds(1), now: now)).first)
        // The first attempt commits rows and receipt, then "dies" before the completion.
        let done = JobCompletion(job: first, sha256: "s1", now: { now })
        let (c1, _) = try await Self.load(inner, "events", schema, .append, [["1"], ["2"], ["3"]], completing: done)
        #expect(c1.inserted == 3)
        // Its lease runs out; another worker claims the job and runs it again.
        let later = now.addingTimeInterval(5)
        _ = try await driver.rescueExpired(JobRescueParams(now: later))
        let second = try #require(try await driver.claimJobs(JobClaimParams(worker: "b", limit: 1, leaseDuration: .seconds(60), now: later)).first)
        #expect(second.id == first.id && second.leaseToken != first.leaseToken)
        let (c2, _) = try await Self.load(fenced, "events", schema, .append, [["1"], ["2"], ["3"]], completing: JobCompletion(job: second, sha256: "s1", now: { later }))
        #expect(c2.inserted == 3)
        #expect(try await MY.rows(pool, "SELECT COUNT(*) FROM events") == [["3"]])
        let job = try #require(try await driver.job(id: first.id))
        #expect(job.state == .complete && job.result?.stats.inserted == 3)
        #expect(try await driver.loadedFile(entity: "events", sha256: "s1") == first.id)
        pool.shutdown()
    }

    /// The server drops the connection mid-`LOAD DATA`: the load fails as transient and
    /// nothing of it is in the table.
    @Test func aConnectionKilledMidLoadLeavesNothing() async throws {
        let pool = try await MY.freshPool()
        let target = MySQLDataTarget(pool: pool)
        let schema = TableSchema(columns: [ColumnSchema(name: "id", type: .int64, nullable: false), ColumnSchema(name: "v", type: .text)], primaryKey: ["id"])
        _ = try await Self.load(target, "victim", schema, .merge, [["0", "before"]])
        let sink = try await target.sink(entity: Entity(name: "victim", schema: schema), mode: .merge, scratchDir: NSTemporaryDirectory(), completing: nil)
        var failed: SluiceError? = nil
        var line: Int64 = 2
        do {
            for round in 0..<2_000 {
                _ = try await sink.write(batch(schema, (0..<1000).map { [String(line + $0), "row"] }, firstLine: line))
                line += 1000
                if round == 5 {
                    let ids = try await MY.rows(pool, "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'LOAD DATA%' AND DB = DATABASE()").compactMap { $0.first ?? nil }
                    #expect(!ids.isEmpty)
                    for id in ids { try await pool.withConnection { c in try await c.query("KILL CONNECTION \(id)") } }
                }
            }
            _ = try await sink.commit(CommitContext(stats: LoadStats(), rejectsFiles: []))
        } catch let e as SluiceError {
            failed = e
        }
        #expect(failed?.code == .unavailable, "\(String(describing: failed))")
        #expect(try await MY.rows(pool, "SELECT id, v FROM victim") == [["0", "before"]])
        pool.shutdown()
    }
}
