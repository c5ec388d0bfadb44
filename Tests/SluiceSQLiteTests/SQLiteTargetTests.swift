import Testing
import Foundation
@testable import SluiceCore
@testable import SluiceSQLite
import SluiceTesting


let people = TableSchema(columns: [
    ColumnSchema(name: "id", type: .int64, nullable: false),
    ColumnSchema(name: "name", type: .text),
    ColumnSchema(name: "score", type: .float64),
], primaryKey: ["id"])

func rows(_ t: SQLiteTarget, _ sql: String) throws -> [[SQLiteValue]] { try t.connection.query(sql) }

@Suite struct SQLiteTargetTests {
    @Test func storesEveryTypeInItsCanonicalForm() async throws {
        let dir = TempDir()
        let t = try SQLiteTarget(path: dir.file("t.db"))
        let s = TableSchema(columns: [
            ColumnSchema(name: "i", type: .int64), ColumnSchema(name: "f", type: .float64),
            ColumnSchema(name: "d", type: .decimal(precision: 10, scale: 2)), ColumnSchema(name: "b", type: .bool),
            ColumnSchema(name: "t", type: .text), ColumnSchema(name: "day", type: .date), ColumnSchema(name: "ts", type: .timestamp),
            ColumnSchema(name: "tz", type: .timestamptz), ColumnSchema(name: "u", type: .uuid), ColumnSchema(name: "j", type: .json),
            ColumnSchema(name: "raw", type: .bytes),
        ])
        let load = try await t.beginLoad(table: "all_types", schema: s, mode: .append)
        #expect(try await load.write(batch(s, [["-5", "2.5", "3.1", "yes", "", "2024-02-29", "2024-02-29 10:00:00.5", "2024-02-29T10:00:00+02:00",
                                          "123E4567-E89B-12D3-A456-426614174000", "{\"a\": [1]}", "\\x00ff"],
                                         [nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil]])).isEmpty)
        #expect(try await load.commit(CommitContext(stats: LoadStats(), rejectsFiles: [])) == SinkCounts(inserted: 2))
        let r = try rows(t, "SELECT i, f, d, b, t, day, ts, tz, u, j, raw FROM all_types ORDER BY rowid")
        #expect(r[0] == [.integer(-5), .real(2.5), .real(3.1), .integer(1), .text(""), .text("2024-02-29"),
                         .text("2024-02-29 10:00:00.500000"), .text("2024-02-29 08:00:00.000000Z"),
                         .text("123e4567-e89b-12d3-a456-426614174000"), .text("{\"a\":[1]}"), .blob([0, 255])])
        #expect(r[1].allSatisfy { $0 == .null })
        #expect(try t.schema(of: "all_types") == s)  // recorded logical types survive
    }

    @Test func appendRejectsDuplicateKeysAndDeletes() async throws {
        let dir = TempDir()
        let t = try SQLiteTarget(path: dir.file("t.db"))
        let load = try await t.beginLoad(table: "people", schema: people, mode: .append)
        let rejects = try await load.write(batch(people, [["1", "a", "1"], ["1", "again", "2"], ["2", "b", nil]], ops: [.upsert, .upsert, .delete]))
        #expect(rejects.map(\.line) == [3, 4])
        #expect(rejects[0].reason.hasPrefix("duplicate key (id)"))
        #expect(rejects[0].values == ["1", "again", "2"])
        #expect(rejects[1].reason == "op D (delete) needs merge mode")
        #expect(try await load.commit(CommitContext(stats: LoadStats(), rejectsFiles: [])) == SinkCounts(inserted: 1))
        #expect(try rows(t, "SELECT id, name FROM people") == [[.integer(1), .text("a")]])
    }

    @Test func mergeIntoEmptyTableLastRowWins() async throws {
        let dir = TempDir()
        let t = try SQLiteTarget(path: dir.file("t.db"))
        let load = try await t.beginLoad(table: "people", schema: people, mode: .merge)
        _ = try await load.write(batch(people, [["1", "a", "1"], ["2", "b", "2"], ["1", "a2", "3"], ["2", nil, nil], ["3", "c", nil], ["3", nil, nil], ["3", "c2", nil]],
                                 ops: [.upsert, .upsert, .upsert, .delete, .upsert, .delete, .upsert]))
        #expect(try await load.commit(CommitContext(stats: LoadStats(), rejectsFiles: [])) == SinkCounts(inserted: 2))
        #expect(try rows(t, "SELECT id, name, score FROM people ORDER BY id") == [[.integer(1), .text("a2"), .real(3)], [.integer(3), .text("c2"), .null]])
    }

    @Test func mergeIntoExistingTableCountsAgainstTheTableBefore() async throws {
        let dir = TempDir()
        let t = try SQLiteTarget(path: dir.file("t.db"))
        let first = try await t.beginLoad(table: "people", schema: people, mode: .merge)
        _ = try await first.write(batch(people, (1...5).map { [String($0), "p\($0)", nil] }))
        _ = try await first.commit(CommitContext(stats: LoadStats(), rejectsFiles: []))

        let load = try await t.beginLoad(table: "people", schema: people, mode: .merge)
        // 1: updated twice (last wins); 2: deleted; 3: deleted then re-upserted (update);
        // 6: new; 7: new then deleted (no effect); 8: delete of an absent key (no effect).
        let b = batch(people, [["1", "x", nil], ["2", nil, nil], ["3", nil, nil], ["1", "y", "9"], ["3", "back", nil],
                               ["6", "new", nil], ["7", "gone", nil], ["7", nil, nil], ["8", nil, nil]],
                      ops: [.upsert, .delete, .delete, .upsert, .upsert, .upsert, .upsert, .delete, .delete])
        // Spread over two batches so last-row-wins must hold across batches.
        let half = RecordBatchSlicer.split(b, at: 4)
        _ = try await load.write(half.0)
        _ = try await load.write(half.1)
        #expect(try await load.commit(CommitContext(stats: LoadStats(), rejectsFiles: [])) == SinkCounts(inserted: 1, updated: 2, deleted: 1))
        #expect(try rows(t, "SELECT id, name, score FROM people ORDER BY id") == [
            [.integer(1), .text("y"), .real(9)], [.integer(3), .text("back"), .null], [.integer(4), .text("p4"), .null],
            [.integer(5), .text("p5"), .null], [.integer(6), .text("new"), .null],
        ])
        #expect(try rows(t, "SELECT count(*) FROM sqlite_temp_schema").first == [.integer(0)])  // stage dropped
    }

    @Test func compositeAndKeyOnlyTables() async throws {
        let dir = TempDir()
        let t = try SQLiteTarget(path: dir.file("t.db"))
        let s = TableSchema(columns: [ColumnSchema(name: "a", type: .text, nullable: false), ColumnSchema(name: "b", type: .date, nullable: false)],
                            primaryKey: ["a", "b"])
        let l1 = try await t.beginLoad(table: "pairs", schema: s, mode: .merge)
        _ = try await l1.write(batch(s, [["x", "2024-01-01"], ["x", "2024-01-02"]]))
        #expect(try await l1.commit(CommitContext(stats: LoadStats(), rejectsFiles: [])) == SinkCounts(inserted: 2))
        let l2 = try await t.beginLoad(table: "pairs", schema: s, mode: .merge)
        _ = try await l2.write(batch(s, [["x", "2024-01-01"], ["x", "2024-01-02"], ["y", "2024-01-01"]], ops: [.upsert, .delete, .upsert]))
        #expect(try await l2.commit(CommitContext(stats: LoadStats(), rejectsFiles: [])) == SinkCounts(inserted: 1, updated: 1, deleted: 1))
    }

    @Test func rollbackLeavesTheTableExactlyAsBefore() async throws {
        let dir = TempDir()
        let t = try SQLiteTarget(path: dir.file("t.db"))
        let l1 = try await t.beginLoad(table: "people", schema: people, mode: .merge)
        _ = try await l1.write(batch(people, [["1", "a", "1"]]))
        _ = try await l1.commit(CommitContext(stats: LoadStats(), rejectsFiles: []))
        for mode in [WriteMode.merge, .append, .replace] {
            let l = try await t.beginLoad(table: "people", schema: people, mode: mode)
            _ = try await l.write(batch(people, [["2", "b", nil], ["1", nil, nil]], ops: mode == .merge ? [.upsert, .delete] : nil))
            await l.rollback()
            #expect(try rows(t, "SELECT id, name, score FROM people") == [[.integer(1), .text("a"), .real(1)]], "\(mode)")
        }
    }

    @Test func replaceIsAtomicForReaders() async throws {
        let dir = TempDir()
        let path = dir.file("t.db")
        let t = try SQLiteTarget(path: path)
        let l1 = try await t.beginLoad(table: "people", schema: people, mode: .append)
        _ = try await l1.write(batch(people, [["1", "old", nil], ["2", "old", nil]]))
        _ = try await l1.commit(CommitContext(stats: LoadStats(), rejectsFiles: []))
        let reader = try SQLiteConnection(path: path, readOnly: true)
        let l2 = try await t.beginLoad(table: "people", schema: people, mode: .replace)
        _ = try await l2.write(batch(people, [["7", "new", nil]]))
        // Mid-load, another connection still sees the old table, whole.
        #expect(try reader.query("SELECT id, name FROM people ORDER BY id") == [[.integer(1), .text("old")], [.integer(2), .text("old")]])
        #expect(try await l2.commit(CommitContext(stats: LoadStats(), rejectsFiles: [])) == SinkCounts(inserted: 1))
        #expect(try reader.query("SELECT id, name FROM people") == [[.integer(7), .text("new")]])
    }

    @Test func existingTablesMustFit() async throws {
        let dir = TempDir()
        let t = try SQLiteTarget(path: dir.file("t.db"))
        try t.connection.execute("CREATE TABLE legacy (id INTEGER PRIMARY KEY, name VARCHAR(20), amount NUMERIC, created DATE)")
        let s = try #require(try t.schema(of: "legacy"))
        #expect(s.primaryKey == ["id"])
        #expect(s.columns.map(\.type) == [.int64, .text, .decimal(precision: 38, scale: nil), .date])
        let wider = TableSchema(columns: people.columns + [ColumnSchema(name: "extra", type: .text)], primaryKey: ["id"])
        let l = try await t.beginLoad(table: "people", schema: people, mode: .merge)
        _ = try await l.commit(CommitContext(stats: LoadStats(), rejectsFiles: []))
        await #expect(throws: SluiceError.self) { try await t.beginLoad(table: "people", schema: wider, mode: .merge) }
        let otherKey = TableSchema(columns: people.columns, primaryKey: ["name"])
        await #expect(throws: SluiceError.self) { try await t.beginLoad(table: "people", schema: otherKey, mode: .merge) }
        // After refused loads, the connection is usable (no transaction left open).
        let ok = try await t.beginLoad(table: "people", schema: people, mode: .merge)
        _ = try await ok.commit(CommitContext(stats: LoadStats(), rejectsFiles: []))
    }

    @Test func oddNamesAreQuotedNotSpliced() async throws {
        let dir = TempDir()
        let t = try SQLiteTarget(path: dir.file("t.db"))
        let s = TableSchema(columns: [ColumnSchema(name: "we\"ird; DROP TABLE x --", type: .text, nullable: false),
                                      ColumnSchema(name: "Valor Total", type: .float64)], primaryKey: ["we\"ird; DROP TABLE x --"])
        let l = try await t.beginLoad(table: "tab\"le", schema: s, mode: .merge)
        _ = try await l.write(batch(s, [["k", "1.5"]]))
        #expect(try await l.commit(CommitContext(stats: LoadStats(), rejectsFiles: [])) == SinkCounts(inserted: 1))
        #expect(try rows(t, "SELECT \"Valor Total\" FROM \"tab\"\"le\"") == [[.real(1.5)]])
    }
}

/// Splits a batch in two (test helper).
enum RecordBatchSlicer {
    static func split(_ b: RecordBatch, at n: Int) -> (RecordBatch, RecordBatch) {
        func part(_ range: Range<Int>) -> RecordBatch {
            var out = RecordBatch(fields: b.fields)
            for r in range {
                for c in b.columns.indices {
                    let col = b.columns[c]
                    if col.isNull(r) { out.columns[c].appendNull(); continue }
                    switch col.type.storage {
                    case .int64: out.columns[c].append(int: col.ints[r])
                    case .float64: out.columns[c].append(double: col.doubles[r])
                    case .decimal: out.columns[c].append(decimal: col.decimals[r])
                    case .bytes: out.columns[c].append(bytes: col.bytes(at: r))
                    }
                }
                out.lines.append(b.lines[r])
                out.ops.append(b.ops[r])
            }
            return out
        }
        return (part(0..<n), part(n..<b.count))
    }
}
