import Testing
import Foundation
@testable import SluicePostgres
import SluiceCore
import PostgresNIO
import SluiceTesting

let people = TableSchema(columns: [
    ColumnSchema(name: "id", type: .int64, nullable: false),
    ColumnSchema(name: "name", type: .text),
    ColumnSchema(name: "score", type: .float64),
], primaryKey: ["id"])

/// Opens a load, writes the batches and commits.
func load(_ db: PostgresPool, _ table: String, _ schema: TableSchema, _ mode: WriteMode, _ batches: [RecordBatch],
          evolve: Bool = false, budget: Int64? = nil) async throws -> (SinkCounts, [SinkReject]) {
    do {
        let l = try await PostgresLoad.open(db: db, table: table, schema: schema, mode: mode, evolve: evolve)
        var rejects: [SinkReject] = []
        var read: Int64 = 0
        for b in batches {
            rejects += try await l.write(b)
            read += Int64(b.count)
        }
        var stats = LoadStats()
        stats.read = read
        let counts = try await l.commit(CommitContext(stats: stats, rejectsFiles: [], rejectBudget: budget))
        return (counts, rejects + counts.rejects)
    }
}

@Suite struct PostgresLoadTests {
    @Test func typesAreMappedFaithfully() async throws {
        try await PG.withDatabase { db, _ in
            let s = TableSchema(columns: [
                ColumnSchema(name: "i", type: .int64), ColumnSchema(name: "f", type: .float64),
                ColumnSchema(name: "d", type: .decimal(precision: 10, scale: 2)), ColumnSchema(name: "b", type: .bool),
                ColumnSchema(name: "t", type: .text), ColumnSchema(name: "day", type: .date), ColumnSchema(name: "ts", type: .timestamp),
                ColumnSchema(name: "tz", type: .timestamptz), ColumnSchema(name: "u", type: .uuid), ColumnSchema(name: "j", type: .json),
                ColumnSchema(name: "raw", type: .bytes),
            ])
            let rows: [[String?]] = [["-5", "2.5", "3.1", "yes", "tab\there\\ and \"quotes\"\nnewline", "2024-02-29", "2024-02-29 10:00:00.5",
                                      "2024-02-29T10:00:00+02:00", "123E4567-E89B-12D3-A456-426614174000", "{\"a\": [1, \"x\"]}", "\\x00ff"],
                                     [nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil]]
            let (counts, rejects) = try await load(db, "all_types", s, .append, [batch(s, rows)])
            #expect(counts.inserted == 2 && rejects.isEmpty)
            let types = try await PG.rows(db, "SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'all_types'::regclass AND attnum > 0")
            #expect(types == [["bigint,double precision,numeric(10,2),boolean,text,date,timestamp without time zone,timestamp with time zone,uuid,jsonb,bytea"]])
            try await PG.exec(db, "SET TIME ZONE 'UTC'")
            let values = try await PG.rows(db, "SELECT i::text, f::text, d::text, b::text, t, day::text, ts::text, (tz AT TIME ZONE 'UTC')::text, u::text, j::text, encode(raw, 'hex') FROM all_types ORDER BY i NULLS LAST")
            #expect(values[0] == ["-5", "2.5", "3.10", "true", "tab\there\\ and \"quotes\"\nnewline", "2024-02-29", "2024-02-29 10:00:00.5",
                                  "2024-02-29 08:00:00", "123e4567-e89b-12d3-a456-426614174000", "{\"a\": [1, \"x\"]}", "00ff"])
            #expect(values[1].allSatisfy { $0 == nil })
        }
    }

    @Test func mergeCountsAgainstTheTableBeforeAndLastRowWins() async throws {
        try await PG.withDatabase { db, _ in
            let (first, _) = try await load(db, "people", people, .merge, [batch(people, (1...5).map { [String($0), "p\($0)", nil] })])
            #expect(first.inserted == 5)
            let b1 = batch(people, [["1", "x", nil], ["2", nil, nil], ["3", nil, nil], ["1", "y", "9"]], ops: [.upsert, .delete, .delete, .upsert])
            let b2 = batch(people, [["3", "back", nil], ["6", "new", nil], ["7", "gone", nil], ["7", nil, nil], ["8", nil, nil]],
                           ops: [.upsert, .upsert, .upsert, .delete, .delete], firstLine: 6)
            let (c, rejects) = try await load(db, "people", people, .merge, [b1, b2])
            #expect(rejects.isEmpty)
            #expect(c.inserted == 1 && c.updated == 2 && c.deleted == 1)
            #expect(try await PG.rows(db, "SELECT id::text, name, score::text FROM people ORDER BY id") ==
                    [["1", "y", "9"], ["3", "back", nil], ["4", "p4", nil], ["5", "p5", nil], ["6", "new", nil]])
        }
    }

    @Test func emptyTargetSettlesLastRowWinsWithoutMerge() async throws {
        try await PG.withDatabase { db, _ in
            let b = batch(people, [["1", "a", "1"], ["2", "b", "2"], ["1", "a2", "3"], ["2", nil, nil], ["3", "c", nil], ["3", nil, nil], ["3", "c2", nil]],
                          ops: [.upsert, .upsert, .upsert, .delete, .upsert, .delete, .upsert])
            let (c, _) = try await load(db, "people", people, .merge, [b])
            #expect(c == SinkCounts(inserted: 2))
            #expect(try await PG.rows(db, "SELECT id::text, name FROM people ORDER BY id") == [["1", "a2"], ["3", "c2"]])
            // The table was created by the load, with its primary key.
            #expect(try await PG.rows(db, "SELECT count(*)::text FROM pg_index WHERE indrelid = 'people'::regclass AND indisprimary") == [["1"]])
        }
    }

    /// A table the load creates takes each key's first row by COPY straight into it, and the
    /// rest through the stage. However the rows split (a filter that says "maybe" to nearly
    /// every key, rows set aside that spill to a file), the table, the counts and the rejects
    /// are those of the stage path into the same table made empty beforehand.
    @Test func aNewTableLoadedDirectlyEqualsTheStagePath() async throws {
        try await PG.withDatabase { db, _ in
            let keyed = TableSchema(columns: [ColumnSchema(name: "id", type: .int64, nullable: false), ColumnSchema(name: "name", type: .text)],
                                    primaryKey: ["id"])
            let composite = TableSchema(columns: [ColumnSchema(name: "k", type: .text, nullable: false), ColumnSchema(name: "day", type: .date, nullable: false),
                                                  ColumnSchema(name: "v", type: .int64)], primaryKey: ["k", "day"])
            let unkeyed = TableSchema(columns: [ColumnSchema(name: "id", type: .int64), ColumnSchema(name: "name", type: .text)])
            var rng = SplitMix(seed: 7)
            func rows(_ s: TableSchema, _ n: Int) -> (RecordBatch, [RowOp]) {
                var values: [[String?]] = []
                var ops: [RowOp] = []
                for i in 0..<n {
                    let k = Int(rng.next() % 400)
                    let text: String? = i % 97 == 5 ? "bad\u{0}nul" : (i % 13 == 0 ? nil : "v\(i)")
                    values.append(s.columns.count == 3 ? ["k\(k % 37)", "2024-01-\(10 + k % 11)", text == nil ? nil : String(i)] : [String(k), text])
                    ops.append(rng.next() % 10 == 0 ? .delete : .upsert)
                }
                return (batch(s, values, ops: ops), ops)
            }
            let cases: [(WriteMode, TableSchema, String)] = [(.merge, keyed, "keyed"), (.append, keyed, "keyed"), (.replace, keyed, "keyed"),
                                                              (.append, unkeyed, "unkeyed"), (.merge, composite, "composite")]
            try await PG.exec(db, "CREATE SCHEMA \"s\"\"x\"")
            for (n, (mode, s, name)) in cases.enumerated() {
                let (data, _) = rows(s, 2_000)
                let parts = [data.keeping(rows: (0..<700).map { Int32($0) }), data.keeping(rows: (700..<2_000).map { Int32($0) })]
                // The stage path: the same table, made empty beforehand.
                let made = try QualifiedName("public.made_\(n)")
                let cols = s.columns.map { "\($0.name)::text" }.joined(separator: ", ")
                try await PG.exec(db, PostgresSQL.createTable(made, s))
                let (expected, expectedRejects) = try await load(db, "made_\(n)", s, mode, parts)
                let want = try await PG.rows(db, "SELECT \(cols) FROM made_\(n) ORDER BY 1, 2")
                for (t, tuning) in [DirectRows.Tuning(), DirectRows.Tuning(filterWords: 1, memoryBytes: 64)].enumerated() {
                    let table = "s\"x.ne\"w_\(n)_\(t)"
                    let l = try await PostgresLoad.start(PostgresLoad(db: db, table: try QualifiedName.target(table).inSchema("public"), schema: s, mode: mode,
                                                                      evolve: false, fence: nil, stallTimeout: .seconds(60), role: .load, tuning: tuning))
                    var rejects: [SinkReject] = []
                    for p in parts { rejects += try await l.write(p) }
                    let counts = try await l.commit(CommitContext(stats: LoadStats(), rejectsFiles: []))
                    let routed = try #require(l.direct, "\(name) \(mode): the new table took the direct route")
                    #expect(routed.rows > 0, "\(name) \(mode)")
                    if s.primaryKey.isEmpty { #expect(routed.staged == 0) } else { #expect(routed.staged > (t == 0 ? 0 : 1_000), "\(name) \(mode) \(t)") }
                    #expect(counts.inserted == expected.inserted && counts.updated == expected.updated && counts.deleted == expected.deleted, "\(name) \(mode) \(t)")
                    #expect((rejects + counts.rejects).map(\.line).sorted() == expectedRejects.map(\.line).sorted(), "\(name) \(mode) \(t)")
                    let got = try await PG.rows(db, "SELECT \(cols) FROM \"s\"\"x\".\"ne\"\"w_\(n)_\(t)\" ORDER BY 1, 2")
                    #expect(got == want, "\(name) \(mode) \(t)")
                    if !s.primaryKey.isEmpty {
                        #expect(try await PG.rows(db, "SELECT count(*)::text FROM pg_index WHERE indrelid = '\"s\"\"x\".\"ne\"\"w_\(n)_\(t)\"'::regclass AND indisprimary") == [["1"]])
                    }
                }
            }
        }
    }

    /// A merge into a table with rows (2,000 rows over 400 keys, deletes, NULs the encoder
    /// refuses) gives the counts, table and rejects of a model of last-row-wins, without and
    /// (second round) with a CHECK the table has refusing some rows.
    @Test func aMergeIntoATableWithRowsMatchesAModelOfLastRowWins() async throws {
        try await PG.withDatabase { db, _ in
            for t in 0..<2 {
                let name = "split_\(t)"
                try await PG.exec(db, "CREATE TABLE \(name) (id bigint PRIMARY KEY, name text CHECK (name <> 'bad'))")
                let s = TableSchema(columns: [ColumnSchema(name: "id", type: .int64, nullable: false), ColumnSchema(name: "name", type: .text)], primaryKey: ["id"])
                _ = try await load(db, name, s, .merge, [batch(s, (0..<300).map { [String($0), "base\($0)"] })])
                var rng = SplitMix(seed: 11)
                var values: [[String?]] = []
                var ops: [RowOp] = []
                for i in 0..<2_000 {
                    values.append([String(rng.next() % 400), t == 1 && i % 89 == 3 ? "bad" : (i % 97 == 5 ? "nul\u{0}" : "v\(i)")])
                    ops.append(rng.next() % 8 == 0 ? .delete : .upsert)
                }
                // The model: the last row per key that PostgreSQL or the encoder does not refuse.
                var table = Dictionary(uniqueKeysWithValues: (0..<300).map { ($0, "base\($0)") })
                var last: [Int: (Int, RowOp)] = [:]
                var refused: [Int64] = []
                for i in values.indices {
                    if values[i][1]!.contains("\u{0}") && ops[i] == .upsert { refused.append(Int64(i + 2)); continue }
                    last[Int(values[i][0]!)!] = (i, ops[i])
                }
                var want = SinkCounts()
                for (k, (i, op)) in last {
                    if op == .upsert && values[i][1] == "bad" { refused.append(Int64(i + 2)); continue }
                    if op == .delete {
                        if table.removeValue(forKey: k) != nil { want.deleted += 1 }
                    } else {
                        if table.updateValue(values[i][1]!, forKey: k) == nil { want.inserted += 1 } else { want.updated += 1 }
                    }
                }
                let data = batch(s, values, ops: ops)
                let l = try await PostgresLoad.open(db: db, table: name, schema: s, mode: .merge)
                var rejects = try await l.write(data.keeping(rows: (0..<900).map { Int32($0) }))
                rejects += try await l.write(data.keeping(rows: (900..<2_000).map { Int32($0) }))
                let counts = try await l.commit(CommitContext(stats: LoadStats(), rejectsFiles: []))
                #expect(counts.inserted == want.inserted && counts.updated == want.updated && counts.deleted == want.deleted, "\(t): \(counts) vs \(want)")
                #expect((rejects + counts.rejects).map(\.line).sorted() == refused.sorted(), "\(t)")
                let got = try await PG.rows(db, "SELECT t.id::text, t.name FROM \(name) t ORDER BY t.id")
                #expect(got == table.keys.sorted().map { [String($0), table[$0]] }, "\(t)")
            }
        }
    }

    /// Past its limit the buffer spills to a file in the folder it was given (the load's
    /// scratch folder), removed when the buffer goes.
    @Test func spilledBytesComeBackInOrder() async throws {
        let dir = NSTemporaryDirectory() + "sluice-spill-test-\(UUID().uuidString)/scratch"
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        var spill: SpillBuffer? = SpillBuffer(limit: 1_000, directory: dir)
        try await check(spill!)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == 1)
        spill = nil
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    func check(_ spill: SpillBuffer) async throws {
        var all: [UInt8] = []
        for i in 0..<500 {
            let piece = [UInt8]((0..<(i % 17)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) })
            spill.append(piece)
            all += piece
        }
        var back: [UInt8] = []
        try await spill.forEachPiece(300) { back += $0 }
        #expect(back == all && spill.count == all.count)
    }

    @Test func appendRejectsDuplicateKeys() async throws {
        try await PG.withDatabase { db, _ in
            _ = try await load(db, "people", people, .append, [batch(people, [["1", "a", nil]])])
            let (c, rejects) = try await load(db, "people", people, .append, [batch(people, [["1", "again", nil], ["2", "b", nil], ["2", "b2", nil]])])
            #expect(c.inserted == 1)
            #expect(rejects.map(\.line).sorted() == [2, 4])
            #expect(rejects.allSatisfy { $0.reason == "duplicate key (id)" })
        }
    }

    @Test func rowsPostgresRefusesArePinnedAndRejected() async throws {
        try await PG.withDatabase { db, _ in
            try await PG.exec(db, "CREATE TABLE scores (id bigint PRIMARY KEY, name text, score integer CHECK (score >= 0))")
            let s = TableSchema(columns: [ColumnSchema(name: "id", type: .int64, nullable: false), ColumnSchema(name: "name", type: .text),
                                          ColumnSchema(name: "score", type: .int64)], primaryKey: ["id"])
            _ = try await load(db, "scores", s, .merge, [batch(s, [["100", "old", "1"]])])
            var rows: [[String?]] = (1...50).map { [String($0), "n\($0)", String($0)] }
            rows[9][2] = "3000000000"  // out of range for integer
            rows[30][2] = "-7"          // breaks the CHECK constraint
            let (c, rejects) = try await load(db, "scores", s, .merge, [batch(s, rows)])
            #expect(c.inserted == 48)
            #expect(rejects.map(\.line).sorted() == [11, 32])
            let byLine = Dictionary(uniqueKeysWithValues: rejects.map { ($0.line, $0) })
            #expect(byLine[11]?.reason.contains("integer out of range") == true)
            #expect(byLine[32]?.reason.contains("check constraint") == true)
            #expect(byLine[11]?.values == ["10", "n10", "3000000000"])
            #expect(try await PG.rows(db, "SELECT count(*)::text FROM scores") == [["49"]])
            // With a budget of one reject, the same load is refused whole.
            await #expect(throws: SluiceError.self) { _ = try await load(db, "scores", s, .merge, [batch(s, rows)], budget: 1) }
        }
    }

    @Test func nulBytesAreRejectedBeforeCOPY() async throws {
        try await PG.withDatabase { db, _ in
            let s = TableSchema(columns: [ColumnSchema(name: "id", type: .int64), ColumnSchema(name: "t", type: .text)])
            var b = BatchBuilder(schema: s, capacity: 2)
            b.beginRow(line: 2); b.setText(0, "1"); b.setText(1, "a\u{0}b"); _ = b.endRow()
            b.beginRow(line: 3); b.setText(0, "2"); b.setText(1, "fine"); _ = b.endRow()
            let (c, rejects) = try await load(db, "t", s, .append, [b.take()])
            #expect(c.inserted == 1 && rejects.map(\.line) == [2])
            #expect(rejects.first?.reason == "column 't': PostgreSQL cannot store a NUL byte in text")
        }
    }

    @Test func schemaChangesEvolveOrFreeze() async throws {
        try await PG.withDatabase { db, _ in
            _ = try await load(db, "people", people, .merge, [batch(people, [["1", "a", "1"]])])
            let wider = TableSchema(columns: people.columns + [ColumnSchema(name: "city", type: .text)], primaryKey: ["id"])
            await #expect(throws: SluiceError.self) { _ = try await load(db, "people", wider, .merge, [batch(wider, [["2", "b", nil, "Recife"]])]) }
            let (c, _) = try await load(db, "people", wider, .merge, [batch(wider, [["2", "b", nil, "Recife"]])], evolve: true)
            #expect(c.inserted == 1)
            #expect(try await PG.rows(db, "SELECT id::text, city FROM people ORDER BY id") == [["1", nil], ["2", "Recife"]])
        }
    }

    @Test func rollbackAndAKilledConnectionLeaveTheTableAsBefore() async throws {
        try await PG.withDatabase { db, url in
            _ = try await load(db, "people", people, .merge, [batch(people, [["1", "a", "1"]])])
            do {
                let l = try await PostgresLoad.open(db: db, table: "people", schema: people, mode: .merge)
                _ = try await l.write(batch(people, [["2", "b", nil], ["1", nil, nil]], ops: [.upsert, .delete]))
                await l.rollback()
            }
            #expect(try await PG.rows(db, "SELECT id::text, name FROM people") == [["1", "a"]])
            // Cut the load's connection while COPY is streaming: nothing partial may remain.
            let big = batch(people, (10..<20_010).map { [String($0), "row \($0)", "1.5"] })
            let admin = try PostgresPool(url: url, maxConnections: 1)
            let adminTask = Task { await admin.run() }
            defer { adminTask.cancel() }
            let outcome: String = try await {
                let l = try await PostgresLoad.open(db: db, table: "people", schema: people, mode: .merge, stallTimeout: .seconds(3))
                _ = try await l.write(big)
                _ = try await admin.client.withConnection { conn in
                    try await admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY \"sluice_stage\"%' AND pid <> pg_backend_pid()", on: conn)
                }
                do {
                    for _ in 0..<20 { _ = try await l.write(big) }
                    _ = try await l.commit(CommitContext(stats: LoadStats(), rejectsFiles: []))
                    return "committed"
                } catch {
                    return "\(error)"
                }
            }()
            #expect(outcome != "committed")
            #expect(try await PG.rows(db, "SELECT count(*)::text FROM people") == [["1"]])
        }
    }
}
