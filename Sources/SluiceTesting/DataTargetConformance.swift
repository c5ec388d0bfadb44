import Testing
public import SluiceQueue
public import SluiceCore
import Foundation

/// A batch of text rows (`nil` = NULL) numbered from `firstLine`: a load's lines only grow,
/// across its batches too (the last row per key is the one with the highest line).
public func batch(_ schema: TableSchema, _ rows: [[String?]], ops: [RowOp]? = nil, firstLine: Int64 = 2) -> RecordBatch {
    var b = BatchBuilder(schema: schema, capacity: rows.count)
    for (i, row) in rows.enumerated() {
        b.beginRow(line: firstLine + Int64(i), op: ops?[i] ?? .upsert)
        for (c, v) in row.enumerated() { if let v { b.setText(c, v) } else { b.setNull(c) } }
        if let r = b.endRow() { Issue.record("test row rejected: \(r.message)") }
    }
    return b.take()
}

/// The checks every backend's ``DataTarget`` must pass (SQLite, PostgreSQL, and any backend
/// added later): the same loads give the same rows and the same exact counts everywhere,
/// a rollback leaves the table as it was, replace takes the load's types, and a worker's
/// commit completes its job only while it holds the lease.
public enum DataTargetConformance {
    /// A fresh, empty database: its data target, its control plane (migrated), and a way to
    /// read rows back as text (`query` selects from one table, ordered, every value as text
    /// the way the target renders integers, text and NULL).
    public struct Harness: Sendable {
        public var target: any DataTarget
        public var driver: any QueueDriver
        public var rows: @Sendable (_ table: String, _ columns: [String]) async throws -> [[String?]]
        public var scratch: String
        public init(target: any DataTarget, driver: any QueueDriver, scratch: String,
                    rows: @escaping @Sendable (_ table: String, _ columns: [String]) async throws -> [[String?]]) {
            self.target = target
            self.driver = driver
            self.rows = rows
            self.scratch = scratch
        }
    }
    public typealias Make = @Sendable () async throws -> Harness

    public static func run(_ make: Make) async throws {
        try await mergeCountsAgainstTheTableBefore(make)
        try await appendRejectsRepeatedAndExistingKeys(make)
        try await rollbackLeavesTheTableAsItWas(make)
        try await replaceTakesTheLoadsTypes(make)
        try await evolveAddsColumns(make)
        try await jobCompletionIsFencedByTheLease(make)
    }

    static let people = TableSchema(columns: [
        ColumnSchema(name: "id", type: .int64, nullable: false),
        ColumnSchema(name: "name", type: .text),
    ], primaryKey: ["id"])


    /// Loads `batches` in one transaction; returns the counts and every refused line.
    static func load(_ h: Harness, _ schema: TableSchema, _ mode: WriteMode, _ batches: [RecordBatch], evolve: Bool = false,
                     completing: JobCompletion? = nil) async throws -> (SinkCounts, [Int64]) {
        let sink = try await h.target.sink(entity: Entity(name: "people", schema: schema, evolve: evolve), mode: mode,
                                           scratchDir: h.scratch, completing: completing)
        var refused: [Int64] = []
        var stats = LoadStats()
        for b in batches {
            refused += try await sink.write(b).map(\.line)
            stats.read += Int64(b.count)
        }
        let counts = try await sink.commit(CommitContext(stats: stats, rejectsFiles: []))
        return (counts, refused + counts.rejects.map(\.line))
    }

    static func mergeCountsAgainstTheTableBefore(_ make: Make) async throws {
        let h = try await make()
        _ = try await load(h, people, .merge, [batch(people, (1...5).map { [String($0), "p\($0)"] })])
        // 1: updated twice (last wins); 2: deleted; 3: deleted then upserted again (an update);
        // 6: new; 7: new then deleted (no effect); 8: a delete of an absent key (no effect).
        let first = batch(people, [["1", "x"], ["2", nil], ["3", nil], ["1", "y"]], ops: [.upsert, .delete, .delete, .upsert])
        let second = batch(people, [["3", "back"], ["6", "new"], ["7", "gone"], ["7", nil], ["8", nil]],
                           ops: [.upsert, .upsert, .upsert, .delete, .delete], firstLine: 6)
        let (counts, refused) = try await load(h, people, .merge, [first, second])
        #expect(counts.inserted == 1 && counts.updated == 2 && counts.deleted == 1 && refused.isEmpty, "\(counts)")
        #expect(try await h.rows("people", ["id", "name"]) == [["1", "y"], ["3", "back"], ["4", "p4"], ["5", "p5"], ["6", "new"]])
    }

    static func appendRejectsRepeatedAndExistingKeys(_ make: Make) async throws {
        let h = try await make()
        _ = try await load(h, people, .append, [batch(people, [["1", "a"]])])
        let (counts, refused) = try await load(h, people, .append, [batch(people, [["2", "b"], ["1", "again"], ["2", "twice"], ["3", "c"]])])
        #expect(counts.inserted == 2 && refused.sorted() == [3, 4], "\(counts) \(refused)")
        #expect(try await h.rows("people", ["id", "name"]) == [["1", "a"], ["2", "b"], ["3", "c"]])
    }

    static func rollbackLeavesTheTableAsItWas(_ make: Make) async throws {
        let h = try await make()
        _ = try await load(h, people, .merge, [batch(people, [["1", "a"]])])
        for mode in [WriteMode.merge, .append, .replace] {
            let sink = try await h.target.sink(entity: Entity(name: "people", schema: people), mode: mode, scratchDir: h.scratch, completing: nil)
            _ = try await sink.write(batch(people, [["2", "b"], ["1", "changed"]]))
            await sink.rollback()
            #expect(try await h.rows("people", ["id", "name"]) == [["1", "a"]], "\(mode)")
        }
    }

    /// Merge keeps the table's own types; replace takes the load's schema even when a column
    /// changes type (the same ``TablePreparation`` decision on every backend).
    static func replaceTakesTheLoadsTypes(_ make: Make) async throws {
        let h = try await make()
        let asText = TableSchema(columns: [ColumnSchema(name: "id", type: .int64, nullable: false), ColumnSchema(name: "score", type: .text)],
                                 primaryKey: ["id"])
        let asInt = TableSchema(columns: [ColumnSchema(name: "id", type: .int64, nullable: false), ColumnSchema(name: "score", type: .int64)],
                                primaryKey: ["id"])
        _ = try await load(h, asText, .merge, [batch(asText, [["1", "ten"]])])
        _ = try await load(h, asInt, .merge, [batch(asInt, [["2", "2"]])])
        #expect(try await h.target.schema(of: "people")?.columns.map(\.type) == [.int64, .text])
        let (counts, _) = try await load(h, asInt, .replace, [batch(asInt, [["2", "20"], ["3", "30"]])])
        #expect(counts.inserted == 2)
        #expect(try await h.target.schema(of: "people")?.columns.map(\.type) == [.int64, .int64])
        #expect(try await h.rows("people", ["id", "score"]) == [["2", "20"], ["3", "30"]])
    }

    static func evolveAddsColumns(_ make: Make) async throws {
        let h = try await make()
        _ = try await load(h, people, .merge, [batch(people, [["1", "a"]])])
        let wider = TableSchema(columns: people.columns + [ColumnSchema(name: "city", type: .text)], primaryKey: ["id"])
        await #expect(throws: SluiceError.self) { try await load(h, wider, .merge, [batch(wider, [["2", "b", "x"]])]) }
        _ = try await load(h, wider, .merge, [batch(wider, [["2", "b", "Porto Alegre"]])], evolve: true)
        #expect(try await h.rows("people", ["id", "name", "city"]) == [["1", "a", nil], ["2", "b", "Porto Alegre"]])
    }

    /// The rows and the job's completion commit together, and only while the worker still
    /// holds the job with the token it claimed it with.
    static func jobCompletionIsFencedByTheLease(_ make: Make) async throws {
        let h = try await make()
        let now = Date()
        _ = try await h.driver.insertJob(JobInsertParams(entity: "people", spec: JobSpec(source: "upload:x"), now: now))
        let job = try #require(try await h.driver.claimJobs(JobClaimParams(worker: "a", limit: 1, leaseDuration: .seconds(60), now: now)).first)
        _ = try await load(h, people, .merge, [batch(people, [["1", "a"]])], completing: JobCompletion(job: job, sha256: "ab", now: { now }))
        let done = try #require(try await h.driver.job(id: job.id))
        #expect(done.state == .complete && done.result?.stats.inserted == 1 && done.result?.stats.read == 1)
        #expect(try await h.driver.loadedFile(entity: "people", sha256: "ab") == job.id)
        // A worker whose lease was taken over writes nothing.
        _ = try await h.driver.insertJob(JobInsertParams(entity: "people", spec: JobSpec(source: "upload:y"), now: now))
        var stale = try #require(try await h.driver.claimJobs(JobClaimParams(worker: "b", limit: 1, leaseDuration: .seconds(60), now: now)).first)
        stale.leaseToken -= 1
        await #expect(throws: SluiceError.self) {
            try await load(h, people, .merge, [batch(people, [["2", "b"]])], completing: JobCompletion(job: stale, sha256: nil, now: { now }))
        }
        #expect(try await h.rows("people", ["id", "name"]) == [["1", "a"]])
        #expect(try await h.driver.job(id: stale.id)?.state == .processing)
    }
}
