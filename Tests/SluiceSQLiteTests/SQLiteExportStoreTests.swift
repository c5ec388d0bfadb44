import Testing
import Foundation
@testable import SluiceCore
@testable import SluiceQueue
@testable import SluiceSQLite
import SluiceTesting

@Suite struct SQLiteExportStoreTests {
    /// The plan of a statement, one line per step.
    func plan(_ db: SQLiteConnection, _ sql: String, _ binds: [SQLiteValue]) throws -> String {
        try db.query("EXPLAIN QUERY PLAN " + sql, binds).map { $0[3].string ?? "" }.joined(separator: "\n")
    }

    /// A ledger made before ranges moved to a rowid table (hashes inside a WITHOUT ROWID key
    /// b-tree, read whole at every probe) is moved over with its rows, and the planner's
    /// anti-join then reads ranges from the covering index, never the row with its hashes.
    @Test(arguments: [true, false])
    func oldRangeLedgersAreMovedAndProbedByTheirIndex(withHashes: Bool) throws {
        let dir = TempDir()
        let path = dir.file("x.db")
        let old = try SQLiteConnection(path: path)
        try old.execute("""
            CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);
            CREATE TABLE sluice_export_ranges (dest INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, batch INTEGER NOT NULL,
              \(withHashes ? "hashes BLOB, " : "")PRIMARY KEY (dest, lo)) WITHOUT ROWID;
            """)
        for i in 1...30 { _ = try old.query("INSERT INTO t VALUES (?1, 'n')", [.integer(Int64(i))]) }
        let hashes: [Int64] = Array(1...10)
        _ = try old.query("INSERT INTO sluice_export_ranges (dest, lo, hi, batch\(withHashes ? ", hashes" : "")) VALUES (1, 1, 10, 1\(withHashes ? ", ?1" : ""))",
                          withHashes ? [.blob(LedgerRanges.packed(hashes))] : [])

        let store = try SQLiteExportStore(path: path)
        _ = try SQLiteExportStore(path: path)  // a second opening finds it moved
        let ddl = try store.db.query("SELECT sql FROM sqlite_master WHERE name = 'sluice_export_ranges'").first?.first?.string ?? ""
        #expect(!ddl.uppercased().contains("WITHOUT ROWID"), "\(ddl)")
        let kept = try store.db.query("SELECT dest, lo, hi, batch, hashes FROM sluice_export_ranges")
        #expect(kept.count == 1 && kept[0][0].int == 1 && kept[0][1].int == 1 && kept[0][2].int == 10 && kept[0][3].int == 1)
        #expect(kept.first?[4] == (withHashes ? SQLiteValue.blob(LedgerRanges.packed(hashes)) : SQLiteValue.null))
        #expect(try store.db.query("SELECT count(*) FROM sqlite_master WHERE name = 'sluice_export_ranges_old'").first?.first?.int == 0)

        let scan = try store.scanNow(ExportSource(table: "t", key: "id"), destinationID: 1, resendChanged: false, pageSize: 100)
        let probe = try plan(store.db, scan.nextPage.sql, [.integer(1), .integer(100), .integer(0)])
        #expect(probe.contains("COVERING INDEX sluice_export_ranges_span"), "\(probe)")
        let page = try #require(try scan.nextNow())
        #expect(page.keys.map(\.text) == (11...30).map(String.init), "keys 1...10 lie in the range")
    }

    /// With ranges sent, an integer key's scan reads only the gaps between them: the same
    /// rows, in the same order, as probing every row's range (pages that cross gaps, adjacent
    /// ranges, a range past the last row, a key sent on its own in a gap, a key below every
    /// range, a filter).
    @Test func gapsGiveWhatProbingEveryRowGives() throws {
        let dir = TempDir()
        let path = dir.file("x.db")
        let setup = try SQLiteConnection(path: path)
        try setup.execute("CREATE TABLE t (id INTEGER NOT NULL UNIQUE, name TEXT)")
        for i in 1...100 { _ = try setup.query("INSERT INTO t VALUES (?1, 'n')", [.integer(Int64(i))]) }
        _ = try setup.query("INSERT INTO t VALUES (-7, 'skip')")
        let store = try SQLiteExportStore(path: path)
        for (lo, hi) in [(1, 10), (11, 20), (31, 40), (95, 200)] {
            _ = try store.db.query("INSERT INTO sluice_export_ranges (dest, lo, hi, batch) VALUES (1, ?1, ?2, 1)", [.integer(Int64(lo)), .integer(Int64(hi))])
        }
        _ = try store.db.query("INSERT INTO sluice_export_keys (dest, key, batch) VALUES (1, 25, 1)")

        func keys(_ source: ExportSource, gaps: Bool) throws -> [String] {
            let scan = try store.scanNow(source, destinationID: 1, resendChanged: false, pageSize: 7)
            #expect(scan.gaps != nil)
            if !gaps { scan.gaps = nil }
            var out: [String] = []
            while let page = try scan.nextNow() {
                #expect(page.keys.count <= 7)
                out += page.keys.map(\.text)
            }
            return out
        }
        let all = ExportSource(table: "t", key: "id")
        var expected: [String] = ["-7"]
        expected += (21...24).map { String($0) }
        expected += (26...30).map { String($0) }
        expected += (41...94).map { String($0) }
        #expect(try keys(all, gaps: true) == expected)
        #expect(try keys(all, gaps: false) == expected)
        let filtered = ExportSource(table: "t", filter: "name <> 'skip' AND id % 2 = 0", key: "id")
        #expect(try keys(filtered, gaps: true) == keys(filtered, gaps: false))
        #expect(try keys(filtered, gaps: true).first == "22")
    }
}
