public import SluiceQueue
import SluiceCore
import Foundation

/// `sluice bench queue`: no-op jobs enqueued, then claimed and completed through the control
/// plane's own driver (as River's `river bench`), timed.
public struct QueueBench: Sendable {
    let driver: any QueueDriver
    let jobs: Int
    let workers: Int
    let batch: Int
    let producers: Int
    /// Complete a claimed batch in one call (``JobStore/completeJobs(_:)``), not job by job.
    let batchCompletions: Bool
    static let entity = "_bench"

    public struct Report: Sendable {
        var enqueueSeconds: Double
        var drainSeconds: Double
        var completed: Int
        var claim: [Double]
        var complete: [Double]
        var jobs: Int
        var workers: Int
        var batch: Int
        var batchCompletions: Bool

        static func percentile(_ sorted: [Double], _ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
        }

        public var json: [String: Any] {
            let c = claim.sorted(), d = complete.sorted()
            return ["jobs": jobs, "workers": workers, "batch": batch, "batch_completions": batchCompletions, "completed": completed,
                    "enqueue_s": enqueueSeconds, "enqueue_per_s": Double(jobs) / enqueueSeconds,
                    "drain_s": drainSeconds, "jobs_per_s": Double(completed) / drainSeconds,
                    "claim_p50_ms": Self.percentile(c, 0.5) * 1000, "claim_p99_ms": Self.percentile(c, 0.99) * 1000,
                    "complete_p50_ms": Self.percentile(d, 0.5) * 1000, "complete_p99_ms": Self.percentile(d, 0.99) * 1000]
        }

        public var text: String {
            let j = json
            func f(_ k: String) -> String { String(format: "%.2f", j[k] as? Double ?? 0) }
            return """
                \(jobs) no-op jobs, \(workers) worker\(workers == 1 ? "" : "s"), claims of up to \(batch), completed \(batchCompletions ? "a claim at a time" : "one by one")
                  enqueue   \(f("enqueue_s")) s   \(f("enqueue_per_s")) jobs/s
                  drain     \(f("drain_s")) s   \(f("jobs_per_s")) jobs/s (\(completed) completed)
                  claim     p50 \(f("claim_p50_ms")) ms   p99 \(f("claim_p99_ms")) ms
                  complete  p50 \(f("complete_p50_ms")) ms   p99 \(f("complete_p99_ms")) ms
                """
        }
    }

    public init(driver: any QueueDriver, jobs: Int, workers: Int, batch: Int, producers: Int, batchCompletions: Bool) {
        self.batchCompletions = batchCompletions
        self.driver = driver
        self.jobs = jobs
        self.workers = workers
        self.batch = batch
        self.producers = producers
    }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    public func run() async throws -> Report {
        let clock = ContinuousClock()
        let seconds = Self.seconds
        let (driver, batch, together) = (self.driver, self.batch, self.batchCompletions)
        // Enqueue, from a few tasks at once (as API replicas would).
        let started = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for p in 0..<producers {
                let share = jobs / producers + (p < jobs % producers ? 1 : 0)
                group.addTask {
                    for _ in 0..<share {
                        _ = try await driver.insertJob(JobInsertParams(entity: Self.entity, spec: JobSpec(source: "bench:noop"), now: Date()))
                    }
                }
            }
            try await group.waitForAll()
        }
        let enqueued = clock.now
        // Drain: each worker claims up to `batch`, completes each, until nothing is left.
        var s: (claim: [Double], complete: [Double], done: Int) = ([], [], 0)
        try await withThrowingTaskGroup(of: ([Double], [Double], Int).self) { group in
            for w in 0..<workers {
                group.addTask {
                    var claims: [Double] = [], completes: [Double] = [], done = 0
                    while true {
                        let t = clock.now
                        let got = try await driver.claimJobs(JobClaimParams(worker: "bench-\(w)", limit: batch, leaseDuration: .seconds(300), now: Date()))
                        claims.append(seconds(clock.now - t))
                        if got.isEmpty { break }
                        let ps = got.map { JobCompleteParams(id: $0.id, token: $0.leaseToken, result: JobResult(stats: LoadStats()), now: Date()) }
                        if together {
                            let t = clock.now
                            done += try await driver.completeJobs(ps).filter { $0 }.count
                            completes.append(seconds(clock.now - t))
                        } else {
                            for p in ps {
                                let t = clock.now
                                if try await driver.completeJob(p) { done += 1 }
                                completes.append(seconds(clock.now - t))
                            }
                        }
                    }
                    return (claims, completes, done)
                }
            }
            for try await (claims, completes, done) in group {
                s.claim += claims
                s.complete += completes
                s.done += done
            }
        }
        let drained = clock.now
        return Report(enqueueSeconds: seconds(enqueued - started), drainSeconds: seconds(drained - enqueued), completed: s.done,
                      claim: s.claim, complete: s.complete, jobs: jobs, workers: workers, batch: batch,
                      batchCompletions: batchCompletions)
    }
}
