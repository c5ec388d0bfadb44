import Testing
import Foundation
@testable import SluiceCore
@testable import SluiceConfig
@testable import SluiceLoad
@testable import SluiceSQLite
import SluiceTesting

/// Pipeline rows streamed into a load with no file between: inferred from the first rows,
/// every row loaded once and in order, bad rows rejected with their number, and a producer
/// that fails rolls the load back.
@Suite struct RowFeedTests {
    static func row(_ id: Int, _ amount: String?, op: String? = nil) -> PipelineRow {
        var values: [String: EValue] = ["id": .int(Int64(id)), "amount": amount.map(EValue.text) ?? .null]
        if let op { values["op"] = .text(op) }
        return PipelineRow(fields: ["id", "amount", "op"], values: values)
    }

    /// Loads what `produce` sends through a feed into table `t` of a fresh database.
    static func load(_ dir: TempDir, sampleRows: Int = 100, mode: WriteMode? = nil,
                     produce: @escaping @Sendable (RowFeed) async -> Void) async throws -> LoadReport {
        let feed = RowFeed(name: "pipeline p", fields: nil, sampleRows: sampleRows)
        let producer = Task { await produce(feed) }
        defer { feed.stop() }
        #expect(try await feed.waitForRows())
        var request = LoadRequest(feed: feed, entity: "t")
        request.mode = mode
        request.key = ["id"]
        let target = try SQLiteTarget(path: dir.file("t.db"))
        let plan = try LoadPlanner.plan(request, config: SluiceConfig(), target: target)
        let report = try await LoadRunner(plan: plan, sink: { (e: Entity, m: WriteMode) async throws(SluiceError) -> any LoadSink in
            try await target.beginLoad(table: e.table, schema: e.schema, mode: m, evolve: e.evolve, stagePath: dir.file("stage.db"))
        }, stateDir: dir.file(".sluice")).run()
        await producer.value
        return report
    }

    @Test func rowsPastTheSampleStreamInOrderAndTypesAreInferred() async throws {
        let dir = TempDir()
        let report = try await Self.load(dir, mode: .merge) { feed in
            for start in stride(from: 0, to: 25_000, by: 2_000) {
                let rows = (start..<min(start + 2_000, 25_000)).map { i in
                    Self.row(i % 20_000, i == 10_007 ? "not a number" : "\(i).5", op: i == 24_999 ? "D" : nil)
                }
                _ = await feed.send(rows)
            }
            feed.finish()
        }
        // 25,000 rows: keys 0..<5,000 come twice (the later row wins), row 10,008 (past the
        // sample, key 10,007) is rejected, the last row deletes key 4,999 (written earlier in
        // the load: no effect on the table).
        #expect(report.stats.read == 25_000 && report.stats.rejected == 1, "\(report.stats)")
        #expect(report.stats.inserted == 19_998 && report.stats.updated == 0 && report.stats.deleted == 0, "\(report.stats)")
        let db = try SQLiteConnection(path: dir.file("t.db"))
        #expect(try db.query("SELECT typeof(amount), amount FROM t WHERE id = 1") == [[.text("real"), .real(20_001.5)]])
        #expect(try db.query("SELECT count(*) FROM t WHERE id = 4999") == [[.integer(0)]])
        let rejects = try String(contentsOfFile: try #require(report.files.first?.rejectsFile), encoding: .utf8)
        #expect(rejects.contains("not a number") && rejects.contains(",10008,"), "\(rejects)")
    }

    @Test func aProducerThatFailsRollsTheLoadBack() async throws {
        let dir = TempDir()
        let failure = await #expect(throws: LoadFailure.self) {
            try await Self.load(dir) { feed in
                _ = await feed.send((0..<500).map { Self.row($0, "1") })
                await feed.fail(SluiceError(.unavailable, "the geocoder went away"))
            }
        }
        #expect(failure?.error.message.contains("the geocoder went away") == true)
        let db = try SQLiteConnection(path: dir.file("t.db"))
        #expect(try db.query("SELECT count(*) FROM sqlite_schema WHERE name = 't'") == [[.integer(0)]])
    }

    @Test func aFailureBeforeAnyRowIsTheProducersAndAnEmptyFeedLoadsNothing() async throws {
        let failed = RowFeed(name: "p", fields: ["id"])
        await failed.fail(SluiceError(.notFound, "no such bucket"))
        await #expect(throws: SluiceError.self) { try await failed.waitForRows() }
        let empty = RowFeed(name: "p", fields: ["id"])
        empty.finish()
        #expect(try await empty.waitForRows() == false)
        // A load that stops taking rows stops its producer.
        let stopped = RowFeed(name: "p", fields: nil, sampleRows: 1)
        #expect(await stopped.send([Self.row(1, "1")]))
        stopped.stop()
        #expect(await stopped.send([Self.row(2, "1")]) == false)
    }
}
