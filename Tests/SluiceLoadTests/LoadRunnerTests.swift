import Testing
import Foundation
@testable import SluiceCore
@testable import SluiceConfig
@testable import SluiceLoad
@testable import SluiceSQLite
import SluiceTesting


func load(_ dir: TempDir, _ files: [String], into entity: String, config: SluiceConfig = SluiceConfig(),
          configure: (inout LoadRequest) -> Void = { _ in }) async throws -> LoadReport {
    var request = LoadRequest(files: files, entity: entity)
    configure(&request)
    let target = try SQLiteTarget(path: dir.file("sluice.db"))
    let plan = try LoadPlanner.plan(request, config: config, target: target)
    return try await LoadRunner(plan: plan, sink: { (e: Entity, m: WriteMode) throws(SluiceError) -> any LoadSink in
        try await target.beginLoad(table: e.table, schema: e.schema, mode: m, evolve: e.evolve)
    }, stateDir: dir.file(".sluice")).run()
}

@Suite struct LoadRunnerTests {
    @Test func inferredLoadThenChangesWithExactCounts() async throws {
        let dir = TempDir()
        let base = dir.write("base.csv", "id,valor,day\n1,1.5,2024-01-01\n2,2.5,2024-01-02\n3,3.5,2024-01-03\n")
        let r1 = try await load(dir, [base], into: "things") { $0.key = ["id"] }
        #expect(r1.inferred && r1.mode == .merge)
        #expect(r1.stats.read == 3 && r1.stats.inserted == 3 && r1.stats.skipped == 0)
        let changes = dir.write("changes.csv", "id,valor,day,op\n1,9,2024-02-01,U\n2,,,D\n4,4,2024-01-04,I\n4,44,2024-01-04,U\n5,,,D\n6,x,2024-01-06,I\n")
        let r2 = try await load(dir, [changes], into: "things")  // key and mode come from the existing table
        #expect(r2.mode == .merge)
        #expect(r2.stats.read == 6)
        #expect(r2.stats.inserted == 1 && r2.stats.updated == 1 && r2.stats.deleted == 1)
        #expect(r2.stats.rejected == 1 && r2.stats.skipped == 2)
        let rejects = try #require(r2.files[0].rejectsFile)
        let text = try String(contentsOfFile: rejects, encoding: .utf8)
        #expect(text == "id,valor,day,op,_line,_error\n6,x,2024-01-06,I,7,column 'valor': invalid float64 value 'x'\n")
        let summary = try #require(r2.summaryPath)
        #expect(FileManager.default.fileExists(atPath: summary))
    }

    @Test func maxRejectsRollsBackEverything() async throws {
        let dir = TempDir()
        let a = dir.write("a.csv", "id,n\n1,1\n2,2\n")
        _ = try await load(dir, [a], into: "t") { $0.key = ["id"] }
        let b = dir.write("b.csv", "id,n\n3,3\n4,bad\n5,bad\n")
        let e = await #expect(throws: LoadFailure.self) { try await load(dir, [b], into: "t") { $0.maxRejects = 1 } }
        #expect(e?.error.code == .tooManyRejects)
        #expect(e?.report.error != nil)
        let t = try SQLiteTarget(path: dir.file("sluice.db"))
        #expect(try t.connection.query("SELECT count(*) FROM t") == [[.integer(2)]])
    }

    @Test func fileErrorRollsBackEarlierFiles() async throws {
        let dir = TempDir()
        let good = dir.write("good.csv", "id,n\n1,1\n")
        let broken = dir.write("broken.csv", "id,n\n2,\"open\n3,3\n")
        let e = await #expect(throws: LoadFailure.self) { try await load(dir, [good, broken], into: "t") { $0.key = ["id"] } }
        #expect(e?.error.code == .unterminatedQuote)
        #expect(e?.error.location?.file == broken && e?.error.location?.line == 2)
        let t = try SQLiteTarget(path: dir.file("sluice.db"))
        #expect(try t.tableExists("t") == false)  // even the table's creation was rolled back
    }

    @Test func declaredEntityWithJSONPathsAndGzip() async throws {
        let dir = TempDir()
        let cfg = try ConfigReader.parse("""
            entities:
              orders:
                table: orders
                primary_key: id
                columns:
                  - {name: id, type: int64}
                  - {name: city, type: text, from: customer.address.city}
                  - {name: total, type: "decimal(10,2)"}
                  - {name: items, type: json}
            """)
        let path = dir.write("o.ndjson", """
            {"id": 1, "customer": {"address": {"city": "Recife"}}, "total": 10.5, "items": [{"sku": "a"}], "note": "x"}
            {"id": 2, "total": 10.555}
            """)
        let r = try await load(dir, [path], into: "orders", config: cfg)
        #expect(r.stats.inserted == 1 && r.stats.rejected == 1)
        #expect(r.unusedFields == ["note"])
        let t = try SQLiteTarget(path: dir.file("sluice.db"))
        #expect(try t.connection.query("SELECT id, city, total, items FROM orders") == [[.integer(1), .text("Recife"), .real(10.5), .text("[{\"sku\":\"a\"}]")]])
        let rj = try String(contentsOfFile: try #require(r.files[0].rejectsFile), encoding: .utf8)
        #expect(rj.contains("\"{\"\"id\"\": 2, \"\"total\"\": 10.555}\",2,column 'total': value '10.555' has more than 2 decimal places"))
    }

    @Test func sinkRejectsAreWrittenInSourceOrder() async throws {
        let dir = TempDir()
        let f = dir.write("dups.csv", "name,id\na,1\nb,1\n")
        let r = try await load(dir, [f], into: "t") { $0.key = ["id"]; $0.mode = .append }
        #expect(r.stats.inserted == 1 && r.stats.rejected == 1)
        let rj = try String(contentsOfFile: try #require(r.files[0].rejectsFile), encoding: .utf8)
        #expect(rj.hasPrefix("name,id,_line,_error\nb,1,3,duplicate key (id)"))
    }

    @Test func dryRunWritesNothing() async throws {
        let dir = TempDir()
        let f = dir.write("a.csv", "id\n1\n2\n")
        var request = LoadRequest(files: [f], entity: "t")
        request.dryRun = true
        let plan = try LoadPlanner.plan(request, config: SluiceConfig(), target: nil)
        let r = try await LoadRunner(plan: plan, sink: nil, stateDir: dir.file(".sluice")).run()
        #expect(r.dryRun && r.stats.read == 2 && r.stats.inserted == 0)
        #expect(!FileManager.default.fileExists(atPath: dir.file("sluice.db")))
    }

    @Test func existingTableRefusesUnknownColumns() async throws {
        let dir = TempDir()
        _ = try await load(dir, [dir.write("a.csv", "id,n\n1,1\n")], into: "t") { $0.key = ["id"] }
        let e = await #expect(throws: SluiceError.self) { try await load(dir, [dir.write("b.csv", "id,n,extra\n1,1,x\n")], into: "t") }
        #expect(e?.description.contains("has no column 'extra'") == true)
        // replace rebuilds the table from the new file's columns
        let r = try await load(dir, [dir.file("b.csv")], into: "t") { $0.mode = .replace }
        #expect(r.stats.inserted == 1)
    }
}

@Suite struct ConfigTests {
    @Test func mistakesNameTheirLine() {
        let text = "entities:\n  a:\n    table: t\n    columns:\n      - {name: x, type: flot}\n"
        let e = #expect(throws: SluiceError.self) { try ConfigReader.parse(text, fileName: "s.yml") }
        #expect(e?.location?.line == 5)
        #expect(e?.description.contains("unknown column type 'flot'") == true)
        let typo = #expect(throws: SluiceError.self) { try ConfigReader.parse("entities:\n  a:\n    primay_key: id\n", fileName: "s.yml") }
        #expect(typo?.location?.line == 3)
        #expect(typo?.description.contains("unknown key 'primay_key'") == true)
    }

    @Test func shortColumnFormAndCSVDialect() async throws {
        let c = try ConfigReader.parse("""
            database: data/x.db
            entities:
              e:
                mode: replace
                csv: {delimiter: ";", null: "NULL", header: false}
                columns: {id: int64, name: {type: text, from: "2"}}
            """)
        let e = try #require(c.entity("e"))
        #expect(c.database == "data/x.db")
        #expect(e.mode == .replace)
        #expect(e.csv == CSVDialect(delimiter: UInt8(ascii: ";"), nullToken: "NULL", header: false))
        #expect(e.schema.columns == [ColumnSchema(name: "id", type: .int64), ColumnSchema(name: "name", type: .text, source: "2")])
    }

    @Test func inferredYAMLReadsBack() async throws {
        let e = Entity(name: "my things", schema: TableSchema(columns: [
            ColumnSchema(name: "id", type: .int64, nullable: false), ColumnSchema(name: "true", type: .decimal(precision: 10, scale: 2)),
            ColumnSchema(name: "c", type: .text, source: "a.b"),
        ], primaryKey: ["id"]))
        let yaml = EntityYAML.render(e, format: .csv)
        let back = try #require(try ConfigReader.parse(yaml).entity("my things"))
        #expect(back.schema == e.schema)
    }
}
