import Testing
import Foundation
@testable import SluiceQueue
@testable import SluiceSQLite
import SluiceCore
import SluiceTesting

@Suite struct JobLifecycleTests {
    typealias E = JobLifecycle.Event

    func step(_ s: JobState, _ e: E, attempts: Int = 1, max: Int = 3) -> JobLifecycle.Effect? {
        try? JobLifecycle.transition(from: s, on: e, attempts: attempts, maxAttempts: max).get()
    }

    @Test func allowedTransitions() throws {
        #expect(step(.queued, .claim)?.state == .processing)
        #expect(step(.queued, .claim)?.newToken == true && step(.queued, .claim)?.countAttempt == true)
        #expect(step(.processing, .complete)?.state == .complete)
        #expect(step(.processing, .fail(transient: true), attempts: 1)?.state == .queued)
        #expect(step(.processing, .fail(transient: true), attempts: 1)?.backoff == true)
        #expect(step(.processing, .fail(transient: true), attempts: 3)?.state == .error)
        #expect(step(.processing, .fail(transient: false), attempts: 1)?.state == .error)
        #expect(step(.processing, .leaseExpired, attempts: 3)?.state == .queued)  // crashes do not spend attempts
        #expect(step(.processing, .leaseExpired)?.countRescue == true)
        #expect(try JobLifecycle.transition(from: .processing, on: .leaseExpired, attempts: 1, maxAttempts: 3, rescues: 8, maxRescues: 10).get().state == .queued)
        #expect(try JobLifecycle.transition(from: .processing, on: .leaseExpired, attempts: 1, maxAttempts: 3, rescues: 9, maxRescues: 10).get().state == .error)
        #expect(step(.processing, .leaseExpired)?.newToken == true)
        #expect(step(.queued, .cancel)?.state == .cancelled)
        #expect(step(.processing, .cancel)?.newToken == true)
        #expect(step(.error, .retry)?.resetAttempts == true)
        #expect(step(.cancelled, .retry)?.state == .queued)
    }

    @Test func everyOtherPairIsRefused() {
        let events: [E] = [.claim, .complete, .fail(transient: true), .fail(transient: false), .leaseExpired, .cancel, .retry]
        let allowed: Set<String> = ["queued claim", "queued cancel", "processing complete", "processing fail(transient: true)",
                                    "processing fail(transient: false)", "processing leaseExpired", "processing cancel",
                                    "error retry", "cancelled retry"]
        for s in JobState.allCases {
            for e in events {
                let key = "\(s.rawValue) \(e)"
                #expect((step(s, e) != nil) == allowed.contains(key), "\(key)")
            }
        }
        #expect(JobState.complete.isFinal && !JobState.processing.isFinal)
    }

    @Test func backoffGrowsWithJitterAndCap() {
        let p = RetryPolicy(maxAttempts: 5, base: .seconds(2), max: .seconds(60), jitter: 0.5)
        #expect(p.delay(afterAttempt: 1, random: 0.5) == .seconds(2))
        #expect(p.delay(afterAttempt: 3, random: 0.5) == .seconds(8))
        #expect(p.delay(afterAttempt: 3, random: 0) == .seconds(4))
        #expect(p.delay(afterAttempt: 3, random: 0.999) < .seconds(12))
        #expect(p.delay(afterAttempt: 20, random: 0.9) == .seconds(60))
    }
}

/// The reference driver: the lifecycle's transitions applied in memory, held to the same suites.
@Suite struct MemoryControlPlaneTests {
    @Test func conformance() async throws {
        try await QueueDriverConformance.run { MemoryControlPlane() }
    }
}

@Suite struct SQLiteQueueDriverTests {
    @Test func conformance() async throws {
        let dir = TempDir()
        let counter = Counter()
        try await QueueDriverConformance.run {
            let d = try SQLiteQueueDriver(path: dir.file("q\(counter.next()).db"))
            try await d.migrate()
            return d
        }
    }

    @Test func claimsFromSeveralConnectionsNeverShareAJob() async throws {
        let dir = TempDir()
        let path = dir.file("shared.db")
        let setup = try SQLiteQueueDriver(path: path)
        try await setup.migrate()
        let now = Date()
        for _ in 0..<60 { _ = try await setup.insertJob(JobInsertParams(entity: "e", spec: JobSpec(source: "upload:x"), now: now)) }
        // One driver (connection) per claimer, as separate worker processes would have.
        let claimed = try await withThrowingTaskGroup(of: [Int64].self) { g in
            for w in 0..<6 {
                g.addTask {
                    let d = try SQLiteQueueDriver(path: path)
                    var mine: [Int64] = []
                    while true {
                        let got = try await d.claimJobs(JobClaimParams(worker: "w\(w)", limit: 2, leaseDuration: .seconds(30), now: now))
                        if got.isEmpty { return mine }
                        mine += got.map(\.id)
                    }
                }
            }
            var all: [Int64] = []
            for try await part in g { all += part }
            return all
        }
        #expect(claimed.count == 60 && Set(claimed).count == 60)
    }

    @Test func migrationsAreSafeToRunConcurrently() async throws {
        let dir = TempDir()
        let path = dir.file("m.db")
        try await withThrowingTaskGroup(of: Void.self) { g in
            for _ in 0..<6 { g.addTask { try await SQLiteQueueDriver(path: path).migrate() } }
            try await g.waitForAll()
        }
        let c = try SQLiteConnection(path: path)
        #expect(try c.query("SELECT count(*) FROM sluice_schema_version") == [[.integer(Int64(SQLiteQueueDriver.migrations.count))]])
    }
}

/// A thread-safe counter for unique names in tests.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
}
