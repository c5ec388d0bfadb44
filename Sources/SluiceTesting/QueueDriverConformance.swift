import Testing
public import SluiceQueue
import SluiceCore
import Foundation

/// The suites' clock: `at(s)` is `s` seconds after a fixed instant.
fileprivate func at(_ s: Double) -> Date { Date(timeIntervalSince1970: 1_800_000_000 + s) }
fileprivate func spec(_ s: String = "upload:x") -> JobSpec { JobSpec(source: s) }

/// The checks every control-plane driver must pass (SQLite, PostgreSQL, in memory), one
/// suite per concern, as River's `riverdrivertest` does for its drivers. Each check gets a
/// fresh, migrated driver.
public enum QueueDriverConformance {
    public typealias Make = @Sendable () async throws -> any QueueDriver

    /// Every suite, and the readiness ping.
    public static func run(_ make: Make) async throws {
        try await JobStoreConformance.run { try await make() }
        try await UploadStoreConformance.run { try await make() }
        try await FileLedgerConformance.run { try await make() }
        try await EnrichStoreConformance.run { try await make() }
        try await RunStoreConformance.run { try await make() }
        try await HandOffStoreConformance.run { try await make() }
        try await LeaseStoreConformance.run { try await make() }
        try await finishingARunForgetsItsLease(make)
        try await make().ping()
    }

    /// A run's lease (held while a process carries it out) goes with the run's end; another
    /// run's stays.
    static func finishingARunForgetsItsLease(_ make: Make) async throws {
        let d = try await make()
        let a = try await d.startRun(pipeline: "p", scheduledFor: nil, windowFrom: nil, windowTo: nil, now: at(1))
        let b = try await d.startRun(pipeline: "p", scheduledFor: nil, windowFrom: nil, windowTo: nil, now: at(2))
        for r in [a, b] { #expect(try await d.acquireLease(name: RunLease.name(r), holder: "h", seconds: 30) != nil) }
        try await d.finishRun(id: a, state: .succeeded, counts: nil, error: nil, now: at(3))
        #expect(try await d.leases().map(\.name) == [RunLease.name(b)])
    }
}

/// Jobs: idempotent inserts, claims by priority that never share a job, leases and fencing tokens, failures with backoff, rescues, cancel and retry, keyset listing.
public enum JobStoreConformance {
    public typealias Make = @Sendable () async throws -> any JobStore

    public static func run(_ make: Make) async throws {
        try await insertAndIdempotency(make)
        try await claimOrderAndLeases(make)
        try await concurrentClaimsNeverShareAJob(make)
        try await heartbeatsAndFencing(make)
        try await failuresRetriesAndBackoff(make)
        try await rescueOfExpiredLeases(make)
        try await cancelAndRetry(make)
        try await listingWithKeysetPagination(make)
        try await finishedJobsAreForgottenOnRequest(make)
        try await completionsInABatch(make)
    }

    /// Several completions at once: each held one completes with its result, a stale token
    /// or a job no longer processing is refused (false in its place), and a result with a
    /// file digest joins its entity's loaded files as a single completion does.
    static func completionsInABatch(_ make: Make) async throws {
        let d = try await make()
        var ids: [Int64] = []
        for _ in 0..<4 { ids.append(try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), now: at(0))).job.id) }
        let claimed = try await d.claimJobs(JobClaimParams(worker: "w", limit: 3, leaseDuration: .seconds(30), now: at(1)))
        #expect(claimed.map(\.id) == Array(ids.prefix(3)))
        var stats = LoadStats()
        stats.read = 7
        let ps = [
            JobCompleteParams(id: claimed[0].id, token: claimed[0].leaseToken, result: JobResult(stats: stats), now: at(2)),
            JobCompleteParams(id: claimed[1].id, token: claimed[1].leaseToken + 1, result: JobResult(stats: LoadStats()), now: at(2)),
            JobCompleteParams(id: claimed[2].id, token: claimed[2].leaseToken, result: JobResult(stats: LoadStats(), sha256: "abc"), now: at(2), entity: "e"),
            JobCompleteParams(id: ids[3], token: 0, result: JobResult(stats: LoadStats()), now: at(2)),
        ]
        #expect(try await d.completeJobs(ps) == [true, false, true, false])
        let first = try await d.job(id: claimed[0].id)
        #expect(first?.state == .complete && first?.result?.stats.read == 7)
        #expect(try await d.job(id: claimed[1].id)?.state == .processing)
        #expect(try await d.job(id: ids[3])?.state == .queued)
        #expect(try await d.loadedFile(entity: "e", sha256: "abc") == claimed[2].id)
        #expect(try await d.completeJobs([]) == [])
    }

    /// Clean-up forgets jobs that ended before a time, never an unfinished one; their
    /// idempotency keys are free again.
    static func finishedJobsAreForgottenOnRequest(_ make: Make) async throws {
        let d = try await make()
        let done = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), idempotencyKey: "old", now: at(0))).job
        let waiting = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), now: at(0))).job
        let claimed = try await d.claimJobs(JobClaimParams(worker: "w", limit: 1, leaseDuration: .seconds(30), now: at(1)))
        #expect(claimed.map(\.id) == [done.id])
        #expect(try await d.completeJob(JobCompleteParams(id: done.id, token: claimed[0].leaseToken, result: JobResult(stats: LoadStats()), now: at(2))))
        #expect(try await d.deleteJobs(finishedBefore: at(2)) == 0, "ended at, not before")
        #expect(try await d.deleteJobs(finishedBefore: at(100)) == 1)
        #expect(try await d.job(id: done.id) == nil)
        #expect(try await d.job(id: waiting.id) != nil)
        #expect(try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), idempotencyKey: "old", now: at(101))).existing == false)
    }

    static func insertAndIdempotency(_ make: Make) async throws {
        let d = try await make()
        let a = try await d.insertJob(JobInsertParams(entity: "e", spec: spec("upload:1"), idempotencyKey: "k1", now: at(0)))
        #expect(!a.existing && a.job.state == .queued && a.job.attempts == 0 && a.job.spec.source == "upload:1")
        let b = try await d.insertJob(JobInsertParams(entity: "e", spec: spec("upload:2"), idempotencyKey: "k1", now: at(1)))
        #expect(b.existing && b.job.id == a.job.id && b.job.spec.source == "upload:1")
        var traced = spec()
        traced.trace = ["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]
        let c = try await d.insertJob(JobInsertParams(entity: "e", spec: traced, now: at(2)))
        #expect(!c.existing && c.job.id != a.job.id)
        #expect(try await d.job(id: c.job.id)?.spec.trace == traced.trace, "a job keeps the trace it was queued in")
        #expect(try await d.listJobs(JobListParams()).count == 2)
        #expect(try await d.job(id: a.job.id)?.idempotencyKey == "k1")
        #expect(try await d.job(idempotencyKey: "k1")?.id == a.job.id)
        #expect(try await d.job(idempotencyKey: "other") == nil)
        #expect(try await d.job(id: 999_999) == nil)
    }

    static func claimOrderAndLeases(_ make: Make) async throws {
        let d = try await make()
        let low = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), priority: 0, now: at(0))).job
        let high = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), priority: 5, now: at(0))).job
        let low2 = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), priority: 0, now: at(0))).job
        let first = try await d.claimJobs(JobClaimParams(worker: "w1", limit: 2, leaseDuration: .seconds(30), now: at(1)))
        #expect(first.map(\.id) == [high.id, low.id])
        for j in first {
            #expect(j.state == .processing && j.attempts == 1 && j.leaseToken == 1 && j.worker == "w1")
            #expect(j.leaseExpiresAt == at(31) && j.startedAt == at(1))
        }
        let second = try await d.claimJobs(JobClaimParams(worker: "w2", limit: 5, leaseDuration: .seconds(30), now: at(2)))
        #expect(second.map(\.id) == [low2.id])
        #expect(try await d.claimJobs(JobClaimParams(worker: "w3", limit: 5, leaseDuration: .seconds(30), now: at(3))).isEmpty)
        #expect(try await d.claimJobs(JobClaimParams(worker: "w3", limit: 0, leaseDuration: .seconds(30), now: at(3))).isEmpty)
    }

    static func concurrentClaimsNeverShareAJob(_ make: Make) async throws {
        let d = try await make()
        for _ in 0..<40 { _ = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), now: at(0))) }
        let claimed = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for w in 0..<8 {
                group.addTask {
                    var mine: [Int64] = []
                    while true {
                        let got = try await d.claimJobs(JobClaimParams(worker: "w\(w)", limit: 3, leaseDuration: .seconds(30), now: at(1)))
                        if got.isEmpty { return mine }
                        mine += got.map(\.id)
                    }
                }
            }
            var all: [Int64] = []
            for try await part in group { all += part }
            return all
        }
        #expect(claimed.count == 40)
        #expect(Set(claimed).count == 40)
    }

    static func heartbeatsAndFencing(_ make: Make) async throws {
        let d = try await make()
        let id = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), now: at(0))).job.id
        let job = try #require(try await d.claimJobs(JobClaimParams(worker: "w", limit: 1, leaseDuration: .seconds(10), now: at(0))).first)
        #expect(try await d.heartbeat(JobHeartbeatParams(id: id, token: job.leaseToken, leaseDuration: .seconds(10), now: at(5))) == .held)
        #expect(try await d.job(id: id)?.leaseExpiresAt == at(15))
        #expect(try await d.heartbeat(JobHeartbeatParams(id: id, token: job.leaseToken + 1, leaseDuration: .seconds(10), now: at(5))) == .lost)
        try await d.setProgress(JobProgressParams(id: id, token: job.leaseToken, progress: JobProgress(bytes: 10, rows: 2)))
        try await d.setProgress(JobProgressParams(id: id, token: job.leaseToken + 7, progress: JobProgress(bytes: 99, rows: 99)))
        #expect(try await d.job(id: id)?.progress == JobProgress(bytes: 10, rows: 2))
        let result = JobResult(stats: LoadStats(), sha256: "abc")
        #expect(try await d.completeJob(JobCompleteParams(id: id, token: job.leaseToken + 1, result: result, now: at(6))) == false)
        #expect(try await d.job(id: id)?.state == .processing)
        #expect(try await d.completeJob(JobCompleteParams(id: id, token: job.leaseToken, result: result, now: at(6))))
        let done = try await d.job(id: id)
        #expect(done?.state == .complete && done?.finishedAt == at(6) && done?.result?.sha256 == "abc" && done?.worker == nil)
        #expect(try await d.completeJob(JobCompleteParams(id: id, token: job.leaseToken, result: result, now: at(7))) == false)
        #expect(try await d.heartbeat(JobHeartbeatParams(id: id, token: job.leaseToken, leaseDuration: .seconds(10), now: at(8))) == .lost)
    }

    static func failuresRetriesAndBackoff(_ make: Make) async throws {
        let d = try await make()
        let id = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), maxAttempts: 2, now: at(0))).job.id
        var job = try #require(try await d.claimJobs(JobClaimParams(worker: "w", limit: 1, leaseDuration: .seconds(10), now: at(0))).first)
        #expect(try await d.failJob(JobFailParams(id: id, token: job.leaseToken + 1, error: "x", transient: true, retryAt: at(10), now: at(1))) == nil)
        let requeued = try #require(try await d.failJob(JobFailParams(id: id, token: job.leaseToken, error: "network down", transient: true, retryAt: at(10), now: at(1))))
        #expect(requeued.state == .queued && requeued.error == "network down" && requeued.runAfter == at(10) && requeued.finishedAt == nil)
        #expect(try await d.claimJobs(JobClaimParams(worker: "w", limit: 1, leaseDuration: .seconds(10), now: at(9))).isEmpty)  // backing off
        job = try #require(try await d.claimJobs(JobClaimParams(worker: "w", limit: 1, leaseDuration: .seconds(10), now: at(10))).first)
        #expect(job.attempts == 2 && job.leaseToken == 2)
        let spent = try #require(try await d.failJob(JobFailParams(id: id, token: job.leaseToken, error: "network down again", transient: true, retryAt: at(30), now: at(11))))
        #expect(spent.state == .error && spent.finishedAt == at(11))
        let id2 = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), maxAttempts: 5, now: at(0))).job.id
        let j2 = try #require(try await d.claimJobs(JobClaimParams(worker: "w", limit: 1, leaseDuration: .seconds(10), now: at(12))).first)
        #expect(j2.id == id2)
        let terminal = try #require(try await d.failJob(JobFailParams(id: id2, token: j2.leaseToken, error: "bad file", transient: false, retryAt: at(12), now: at(12))))
        #expect(terminal.state == .error && terminal.attempts == 1)
    }

    static func rescueOfExpiredLeases(_ make: Make) async throws {
        let d = try await make()
        var ids: [Int64] = []
        for _ in 0..<5 { ids.append(try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), maxAttempts: 2, now: at(0))).job.id) }
        let held = try await d.claimJobs(JobClaimParams(worker: "dead", limit: 5, leaseDuration: .seconds(10), now: at(0)))
        #expect(held.count == 5)
        // One keeps heartbeating: it must not be rescued.
        #expect(try await d.heartbeat(JobHeartbeatParams(id: held[0].id, token: held[0].leaseToken, leaseDuration: .seconds(10), now: at(9))) == .held)
        #expect(try await d.rescueExpired(JobRescueParams(now: at(5), batchSize: 2)) == 0)
        #expect(try await d.rescueExpired(JobRescueParams(now: at(11), batchSize: 2)) == 4)
        let after = try await d.listJobs(JobListParams())
        #expect(after.filter { $0.state == .queued }.count == 4)
        #expect(after.first { $0.id == held[0].id }?.state == .processing)
        let victim = held[1]
        // The old holder is fenced off: no heartbeat, no completion.
        #expect(try await d.heartbeat(JobHeartbeatParams(id: victim.id, token: victim.leaseToken, leaseDuration: .seconds(10), now: at(12))) == .lost)
        #expect(try await d.completeJob(JobCompleteParams(id: victim.id, token: victim.leaseToken, result: JobResult(stats: LoadStats()), now: at(12))) == false)
        // A dead worker's attempt is given back and counted as a rescue instead.
        #expect(after.filter { $0.state == .queued }.allSatisfy { $0.attempts == 0 && $0.rescues == 1 })
        let again = try await d.claimJobs(JobClaimParams(worker: "alive", limit: 10, leaseDuration: .seconds(10), now: at(12)))
        #expect(again.count == 4 && again.allSatisfy { $0.attempts == 1 && $0.leaseToken == 3 })
        // Crashes never spend a healthy job's attempts (max_attempts is 2 here) ...
        #expect(try await d.rescueExpired(JobRescueParams(now: at(30), batchSize: 100, maxRescues: 3)) == 5)
        let third = try await d.claimJobs(JobClaimParams(worker: "alive", limit: 10, leaseDuration: .seconds(10), now: at(31)))
        #expect(third.count == 5 && third.allSatisfy { $0.attempts == 1 })
        // ... but rescues have a limit of their own: the third lands in error with its reason.
        #expect(try await d.rescueExpired(JobRescueParams(now: at(50), batchSize: 100, maxRescues: 3)) == 5)
        let final = try await d.listJobs(JobListParams(state: .error))
        #expect(final.count == 4 && final.allSatisfy { $0.rescues == 3 && $0.attempts == 0 })
        #expect(final.allSatisfy { $0.error?.contains("stopped heartbeating (rescue 3 of 3)") == true && $0.finishedAt == at(50) })
        #expect(try await d.listJobs(JobListParams(state: .queued)).map(\.rescues) == [2])  // the one that heartbeated died once
        // An operator retry gives fresh attempts and rescues.
        #expect(try await d.retryJob(JobRetryParams(id: final[0].id, now: at(51)))?.rescues == 0)
    }

    static func cancelAndRetry(_ make: Make) async throws {
        let d = try await make()
        let q = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), now: at(0))).job
        #expect(try await d.cancelJob(JobCancelParams(id: q.id, now: at(1)))?.state == .cancelled)
        #expect(try await d.cancelJob(JobCancelParams(id: q.id, now: at(1))) == nil)
        let p = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), now: at(0))).job
        let running = try #require(try await d.claimJobs(JobClaimParams(worker: "w", limit: 1, leaseDuration: .seconds(10), now: at(1))).first)
        #expect(running.id == p.id)
        let cancelled = try #require(try await d.cancelJob(JobCancelParams(id: p.id, now: at(2))))
        #expect(cancelled.state == .cancelled && cancelled.leaseToken > running.leaseToken)
        #expect(try await d.heartbeat(JobHeartbeatParams(id: p.id, token: running.leaseToken, leaseDuration: .seconds(10), now: at(3))) == .cancelled)
        #expect(try await d.completeJob(JobCompleteParams(id: p.id, token: running.leaseToken, result: JobResult(stats: LoadStats()), now: at(3))) == false)
        let retried = try #require(try await d.retryJob(JobRetryParams(id: p.id, now: at(4))))
        #expect(retried.state == .queued && retried.attempts == 0 && retried.finishedAt == nil && retried.runAfter == at(4))
        #expect(try await d.retryJob(JobRetryParams(id: p.id, now: at(4))) == nil)  // queued: nothing to retry
        let r2 = try #require(try await d.claimJobs(JobClaimParams(worker: "w", limit: 1, leaseDuration: .seconds(10), now: at(5))).first)
        #expect(try await d.completeJob(JobCompleteParams(id: r2.id, token: r2.leaseToken, result: JobResult(stats: LoadStats()), now: at(6))))
        #expect(try await d.retryJob(JobRetryParams(id: r2.id, now: at(7))) == nil)  // complete jobs are never loaded twice
        #expect(try await d.cancelJob(JobCancelParams(id: r2.id, now: at(7))) == nil)
    }

    static func listingWithKeysetPagination(_ make: Make) async throws {
        let d = try await make()
        for i in 0..<7 { _ = try await d.insertJob(JobInsertParams(entity: i % 2 == 0 ? "a" : "b", spec: spec(), now: at(0))) }
        var seen: [Int64] = []
        var after: Int64? = nil
        while true {
            let page = try await d.listJobs(JobListParams(after: after, limit: 3))
            if page.isEmpty { break }
            seen += page.map(\.id)
            after = page.last?.id
        }
        #expect(seen.count == 7 && seen == seen.sorted())
        // Newest first, the same keyset the other way.
        var down: [Int64] = []
        after = nil
        while true {
            var p = JobListParams(after: after, limit: 3)
            p.newestFirst = true
            let page = try await d.listJobs(p)
            if page.isEmpty { break }
            down += page.map(\.id)
            after = page.last?.id
        }
        #expect(down == seen.reversed())
        #expect(try await d.listJobs(JobListParams(entity: "a")).count == 4)
        _ = try await d.claimJobs(JobClaimParams(worker: "w", limit: 2, leaseDuration: .seconds(10), now: at(1)))
        #expect(try await d.listJobs(JobListParams(state: .processing)).count == 2)
        #expect(try await d.listJobs(JobListParams(state: .queued, entity: "b")).count == 2)
    }
}

/// Uploads, and the loaded-files ledger a fresh control plane starts without.
public enum UploadStoreConformance {
    public typealias Make = @Sendable () async throws -> any UploadStore & JobStore

    public static func run(_ make: Make) async throws {
        try await uploadsAndLoadedFiles(make)
    }

    static func uploadsAndLoadedFiles(_ make: Make) async throws {
        let d = try await make()
        let u = Upload(id: "u1", path: "/tmp/u1", size: 3, sha256: "ff", originalName: "a.csv", createdAt: at(0))
        try await d.insertUpload(u)
        #expect(try await d.upload(id: "u1") == u)
        #expect(try await d.upload(id: "nope") == nil)
        #expect(try await d.loadedFile(entity: "e", sha256: "ff") == nil)
        // Listed in id order, a page at a time; forgotten on request.
        try await d.insertUpload(Upload(id: "u0", path: "/tmp/u0", size: 1, sha256: "aa", originalName: nil, createdAt: at(1)))
        try await d.insertUpload(Upload(id: "u2", path: "/tmp/u2", size: 2, sha256: "bb", originalName: nil, createdAt: at(2)))
        #expect(try await d.uploads(after: nil, limit: 2).map(\.id) == ["u0", "u1"])
        #expect(try await d.uploads(after: "u1", limit: 2) == [Upload(id: "u2", path: "/tmp/u2", size: 2, sha256: "bb", originalName: nil, createdAt: at(2))])
        try await d.deleteUploads(ids: ["u0", "u2"])
        #expect(try await d.uploads(after: nil, limit: 10).map(\.id) == ["u1"])
    }
}

/// The watch ledger: versions recorded once, batches that stay claimed, the watermark.
public enum FileLedgerConformance {
    public typealias Make = @Sendable () async throws -> any FileLedger

    public static func run(_ make: Make) async throws {
        try await fileLedger(make)
    }

    static func fileLedger(_ make: Make) async throws {
        let d = try await make()
        #expect(try await d.watermark(watch: "w") == nil)
        var a = WatchedFile(watch: "w", key: "in/a.json", etag: "e1", size: 10, lastModified: at(5), state: .seen, firstSeen: at(6))
        try await d.recordWatchedFile(a)
        a.state = .queued
        a.jobID = 7
        try await d.recordWatchedFile(a)  // same version: updated, not duplicated
        let a2 = WatchedFile(watch: "w", key: "in/a.json", etag: "e2", size: 12, lastModified: at(9), state: .ignored, firstSeen: at(10))
        try await d.recordWatchedFile(a2)
        let b = WatchedFile(watch: "w", key: "in/b.json", etag: "e3", size: 1, lastModified: at(20), state: .failed, firstSeen: at(21), error: "bad")
        try await d.recordWatchedFile(b)
        try await d.recordWatchedFile(WatchedFile(watch: "other", key: "in/a.json", etag: "e1", size: 1, lastModified: at(99), state: .queued, firstSeen: at(99)))
        #expect(try await d.watchedFiles(watch: "w", keys: ["in/a.json"]) == [a, a2])
        #expect(try await d.watchedFiles(watch: "w", keys: ["in/b.json", "nope"]) == [b])
        #expect(try await d.watchedFiles(watch: "w", keys: nil).count == 3)
        #expect(try await d.watchedFiles(watch: "w", keys: []).isEmpty)
        #expect(try await d.watermark(watch: "w") == at(5))  // queued files only
        #expect(try await d.oldestWaiting(watch: "w") == nil)  // none seen and not yet loaded
        // A version's batch, once claimed, stays.
        var c = WatchedFile(watch: "w", key: "in/c.json", etag: "e9", size: 1, lastModified: at(1), state: .seen, firstSeen: at(1), batch: "first")
        try await d.recordWatchedFile(c)
        c.batch = "second"
        try await d.recordWatchedFile(c)
        #expect(try await d.watchedFiles(watch: "w", keys: ["in/c.json"]).first?.batch == "first")
        #expect(try await d.oldestWaiting(watch: "w") == at(1))
        // Several versions in one call (one transaction); a claimed batch stays there too.
        let many = (0..<50).map { WatchedFile(watch: "m", key: "in/\($0).json", etag: "e", size: Int64($0), lastModified: at(Double($0)),
                                             state: .seen, firstSeen: at(1), batch: "b1") }
        try await d.recordWatchedFiles(many)
        try await d.recordWatchedFiles(many.map { var f = $0; f.state = .queued; f.jobID = 3; f.batch = "b2"; return f })
        let back = try await d.watchedFiles(watch: "m", keys: nil)
        #expect(back.count == 50 && back.allSatisfy { $0.state == .queued && $0.jobID == 3 && $0.batch == "b1" })
        #expect(try await d.watermark(watch: "m") == at(49))
        try await d.recordWatchedFiles([])
    }
}

/// The enrich cache (fresh answers only, per namespace) and the shared token bucket.
public enum EnrichStoreConformance {
    public typealias Make = @Sendable () async throws -> any EnrichStore

    public static func run(_ make: Make) async throws {
        try await enrichCacheAndSharedRateLimit(make)
        try await lookupsAreClaimedByOneHolderAtATime(make)
    }

    /// A key claimed by one holder is not claimed by another until released or lapsed; a
    /// holder may claim its own again (extending it); namespaces are apart.
    static func lookupsAreClaimedByOneHolderAtATime(_ make: Make) async throws {
        let d = try await make()
        #expect(try await d.claimLookups(namespace: "geo", keys: ["a", "b"], holder: "w1", until: at(10), now: at(0)) == ["a", "b"])
        #expect(try await d.claimLookups(namespace: "geo", keys: ["b", "c"], holder: "w2", until: at(10), now: at(1)) == ["c"])
        #expect(try await d.claimLookups(namespace: "other", keys: ["a"], holder: "w2", until: at(10), now: at(1)) == ["a"])
        #expect(try await d.claimLookups(namespace: "geo", keys: ["a", "c"], holder: "w1", until: at(20), now: at(2)) == ["a"])
        // w1 looked "b" up: released, w2 may claim it; w2's release of "a" (not its own) changes nothing.
        try await d.releaseLookups(namespace: "geo", keys: ["b"], holder: "w1")
        try await d.releaseLookups(namespace: "geo", keys: ["a"], holder: "w2")
        #expect(try await d.claimLookups(namespace: "geo", keys: ["a", "b"], holder: "w2", until: at(10), now: at(3)) == ["b"])
        // w1's claim on "a" lapses at 20 (its process died): then w3 takes it.
        #expect(try await d.claimLookups(namespace: "geo", keys: ["a"], holder: "w3", until: at(40), now: at(19)).isEmpty)
        #expect(try await d.claimLookups(namespace: "geo", keys: ["a"], holder: "w3", until: at(40), now: at(20)) == ["a"])
        #expect(try await d.claimLookups(namespace: "geo", keys: [], holder: "w3", until: at(40), now: at(20)).isEmpty)
        // A key with a fresh answer in the cache is not claimed (it needs no lookup).
        try await d.cacheAnswers(namespace: "geo", entries: ["d": "[1]"], expiresAt: at(30))
        #expect(try await d.claimLookups(namespace: "geo", keys: ["d", "e"], holder: "w4", until: at(40), now: at(25)) == ["e"])
        #expect(try await d.claimLookups(namespace: "geo", keys: ["d"], holder: "w4", until: at(40), now: at(30)) == ["d"])
    }

    static func enrichCacheAndSharedRateLimit(_ make: Make) async throws {
        let d = try await make()
        try await d.cacheAnswers(namespace: "geo", entries: ["1,2": "{\"a\":1}", "3,4": "{}"], expiresAt: at(100))
        try await d.cacheAnswers(namespace: "other", entries: ["1,2": "x"], expiresAt: at(100))
        #expect(try await d.cachedAnswers(namespace: "geo", keys: ["1,2", "9,9"], now: at(50)) == ["1,2": "{\"a\":1}"])
        #expect(try await d.cachedAnswers(namespace: "geo", keys: ["1,2", "3,4"], now: at(100)).isEmpty)  // expired
        try await d.cacheAnswers(namespace: "geo", entries: ["1,2": "new"], expiresAt: at(200))
        #expect(try await d.cachedAnswers(namespace: "geo", keys: ["1,2"], now: at(150)) == ["1,2": "new"])
        // 2 tokens/s, burst 2: two at once, then a wait of half a second, then refilled.
        #expect(try await d.takeTokens(bucket: "b", rate: 2, burst: 2, count: 1, now: at(0)) == (1, 0))
        #expect(try await d.takeTokens(bucket: "b", rate: 2, burst: 2, count: 1, now: at(0)) == (1, 0))
        let (none, wait) = try await d.takeTokens(bucket: "b", rate: 2, burst: 2, count: 1, now: at(0))
        #expect(none == 0 && abs(wait - 0.5) < 1e-6, "\(wait)")
        #expect(try await d.takeTokens(bucket: "b", rate: 2, burst: 2, count: 1, now: at(0.5)).granted == 1)
        #expect(try await d.takeTokens(bucket: "b", rate: 2, burst: 2, count: 1, now: at(0.5)).wait > 0)
        // Several at once, never more than the bucket holds.
        #expect(try await d.takeTokens(bucket: "c", rate: 10, burst: 8, count: 5, now: at(0)).granted == 5)
        #expect(try await d.takeTokens(bucket: "c", rate: 10, burst: 8, count: 5, now: at(0)).granted == 3)
        #expect(try await d.takeTokens(bucket: "c", rate: 10, burst: 8, count: 5, now: at(0.25)).granted == 2)
        // A taker whose `now` is older than the last take's (it waited for the database) gets
        // nothing refilled, and the time since is not counted twice: 0.25 → 0.45 is 2 tokens.
        #expect(try await d.takeTokens(bucket: "c", rate: 10, burst: 8, count: 5, now: at(0.2)).granted == 0)
        #expect(try await d.takeTokens(bucket: "c", rate: 10, burst: 8, count: 5, now: at(0.45)).granted == 2)
    }
}

/// Stage hand-offs: each batch stored with its consumer job once, claims by stage, backlog and per-run counts.
public enum HandOffStoreConformance {
    public typealias Make = @Sendable () async throws -> any HandOffStore & JobStore

    public static func run(_ make: Make) async throws {
        try await stageHandOffs(make)
    }

    static func stage(_ kind: StageKind, run: Int64 = 7, input: String? = nil) -> JobSpec {
        var s = JobSpec(source: "batch:x", force: true)
        s.stage = StageSpec(pipeline: "p", run: run, kind: kind, input: input)
        return s
    }

    static func stageHandOffs(_ make: Make) async throws {
        let d = try await make()
        let plain = try await d.insertJob(JobInsertParams(entity: "e", spec: spec(), now: at(0))).job
        _ = try await d.insertJob(JobInsertParams(entity: "e", spec: stage(.extract), idempotencyKey: "run-7/extract-0", now: at(0)))
        _ = try await d.insertJob(JobInsertParams(entity: "e", spec: stage(.extract, run: 8), now: at(0)))
        func hand(_ key: String, _ payload: String, _ kind: StageKind) async throws -> Bool {
            try await d.handOff(StageHandOffParams(key: key, payload: payload,
                                                   job: JobInsertParams(entity: "e", spec: stage(kind, input: key), priority: 100, now: at(1))))
        }
        #expect(try await hand("run-7/job-2/batch-0", "rows 0", .enrich))
        #expect(try await hand("run-7/job-2/batch-1", "rows 1", .enrich))
        // A retried extract re-cuts batch 0: neither its rows nor its job change.
        #expect(try await !hand("run-7/job-2/batch-0", "rows 0 again", .enrich))
        #expect(try await d.stageBatch(key: "run-7/job-2/batch-0") == "rows 0")
        #expect(try await d.stageBatch(key: "missing") == nil)
        let consumer = try #require(try await d.job(idempotencyKey: "run-7/job-2/batch-0"))
        #expect(consumer.spec.stage?.kind == .enrich && consumer.spec.stage?.input == "run-7/job-2/batch-0" && consumer.priority == 100)
        #expect(try await d.stageBacklog() == [.extract: 2, .enrich: 2])
        #expect(try await d.listJobs(JobListParams(run: 7)).count == 3)

        // A worker serving one stage claims only it; plain jobs go to workers that take them.
        let enrich = try await d.claimJobs(JobClaimParams(worker: "w", limit: 5, leaseDuration: .seconds(30), now: at(2), stages: [.enrich]))
        #expect(enrich.count == 2 && enrich.allSatisfy { $0.spec.stage?.kind == .enrich })
        let loads = try await d.claimJobs(JobClaimParams(worker: "w", limit: 5, leaseDuration: .seconds(30), now: at(2), stages: [.load]))
        #expect(loads.isEmpty)
        let mixed = try await d.claimJobs(JobClaimParams(worker: "w", limit: 5, leaseDuration: .seconds(30), now: at(2), stages: [.load], plainJobs: true))
        #expect(mixed.map(\.id) == [plain.id])
        #expect(try await d.stageBacklog() == [.extract: 2])
        for j in enrich { #expect(try await d.completeJob(JobCompleteParams(id: j.id, token: j.leaseToken, result: JobResult(stats: LoadStats()), now: at(3)))) }
        let counts = Set(try await d.runJobCounts(run: 7))
        #expect(counts == [StageJobCount(stage: .extract, state: .queued, count: 1), StageJobCount(stage: .enrich, state: .complete, count: 2)])
        #expect(try await d.runJobCounts(run: 8) == [StageJobCount(stage: .extract, state: .queued, count: 1)])
        // Every job by state, kind and entity (the metrics' gauge).
        let all = try await d.jobCounts()
        #expect(all.contains(JobCount(state: .complete, kind: "enrich", entity: enrich[0].entity, count: 2)), "\(all)")
        #expect(all.contains { $0.state == .processing && $0.kind == "load" && $0.entity == plain.entity }, "\(all)")
        try await d.deleteStageBatches(run: 7)
        #expect(try await d.stageBatch(key: "run-7/job-2/batch-1") == nil)
    }
}

/// Pipeline runs: started, finished with counts or an error, listed newest first, and the
/// last successful scheduled firing.
public enum RunStoreConformance {
    public typealias Make = @Sendable () async throws -> any RunStore

    public static func run(_ make: Make) async throws {
        let d = try await make()
        #expect(try await d.runs(pipeline: nil, limit: 10).isEmpty)
        #expect(try await d.lastScheduledSuccess(pipeline: "p") == nil)
        let a = try await d.startRun(pipeline: "p", scheduledFor: at(60), windowFrom: at(0), windowTo: at(60), now: at(61))
        let b = try await d.startRun(pipeline: "p", scheduledFor: at(120), windowFrom: at(60), windowTo: at(120), now: at(121))
        let c = try await d.startRun(pipeline: "q", scheduledFor: nil, windowFrom: nil, windowTo: nil, now: at(130))
        #expect(a != b && b != c)
        try await d.finishRun(id: a, state: .succeeded, counts: "{\"read\":3}", error: nil, now: at(62))
        try await d.finishRun(id: b, state: .failed, counts: nil, error: "boom", now: at(122))
        let runs = try await d.runs(pipeline: "p", limit: 10)
        #expect(runs.map(\.id) == [b, a])
        #expect(runs[0].state == .failed && runs[0].error == "boom" && runs[0].finishedAt == at(122))
        #expect(runs[1].state == .succeeded && runs[1].counts == "{\"read\":3}" && runs[1].windowFrom == at(0) && runs[1].startedAt == at(61))
        #expect(try await d.runs(pipeline: nil, limit: 2).map(\.id) == [c, b])
        #expect(try await d.runs(pipeline: "q", limit: 10).first?.state == .running)
        // A run over a posted file names its upload.
        let u = try await d.startRun(pipeline: "q", scheduledFor: nil, windowFrom: nil, windowTo: nil, upload: "up-1", now: at(131))
        #expect(try await d.runs(pipeline: "q", limit: 1).first.map { [$0.id: $0.upload] } == [u: "up-1"])
        #expect(try await d.runs(pipeline: "q", limit: 10).last?.upload == nil)
        try await d.deleteRuns(ids: [u])
        // Only successes count for the schedule: the failed 120 s firing is run again.
        #expect(try await d.lastScheduledSuccess(pipeline: "p") == at(60))
        try await d.deleteRuns(ids: [b, c])
        #expect(try await d.runs(pipeline: nil, limit: 10).map(\.id) == [a])
    }
}

/// Leases: one holder at a time, extended by their holder with the same token, taken over
/// with a larger token once they run out (on the database's clock: real time, short leases)
/// or are released, and exactly one winner among concurrent takers.
public enum LeaseStoreConformance {
    public typealias Make = @Sendable () async throws -> any LeaseStore

    public static func run(_ make: Make) async throws {
        let d = try await make()
        #expect(try await d.leases().isEmpty)
        let t1 = try #require(try await d.acquireLease(name: "schedule", holder: "a", seconds: 0.8))
        #expect(try await d.acquireLease(name: "schedule", holder: "b", seconds: 30) == nil)
        #expect(try await d.acquireLease(name: "schedule", holder: "a", seconds: 0.8) == t1)
        #expect(try await d.acquireLease(name: "watch:in", holder: "b", seconds: 30) != nil)
        try await Task.sleep(for: .milliseconds(1_200))
        let t2 = try #require(try await d.acquireLease(name: "schedule", holder: "b", seconds: 30))
        #expect(t2 > t1)
        #expect(try await d.acquireLease(name: "schedule", holder: "a", seconds: 30) == nil)
        try await d.releaseLease(name: "schedule", holder: "a")  // not a's: nothing changes
        #expect(try await d.acquireLease(name: "schedule", holder: "a", seconds: 30) == nil)
        try await d.releaseLease(name: "schedule", holder: "b")
        let t3 = try #require(try await d.acquireLease(name: "schedule", holder: "a", seconds: 30))
        #expect(t3 > t2)
        let all = try await d.leases()
        #expect(all.map(\.name) == ["schedule", "watch:in"])
        #expect(all.first?.holder == "a" && all.first?.token == t3 && (all.first?.remaining ?? 0) > 25 && (all.first?.remaining ?? 99) <= 30)
        let winners = try await withThrowingTaskGroup(of: Bool.self) { g in
            for i in 0..<8 { g.addTask { try await d.acquireLease(name: "race", holder: "h\(i)", seconds: 30) != nil } }
            return try await g.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(winners == 1)
    }
}
