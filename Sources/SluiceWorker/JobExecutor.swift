public import SluiceCore
public import SluiceQueue
public import SluiceConfig
import SluiceFormats
import SluiceLoad
import SluiceSQLite
public import Foundation
public import Logging
import Synchronization

/// How a worker runs jobs: lease timing, retries, where scratch files go.
public struct WorkerOptions: Sendable {
    public var id: String
    public var concurrency: Int
    public var leaseDuration: Duration
    public var pollInterval: Duration
    public var retry: RetryPolicy
    public var workDir: String

    public init(id: String = WorkerOptions.defaultID(), concurrency: Int = 2, leaseDuration: Duration = .seconds(30),
                pollInterval: Duration = .seconds(1), retry: RetryPolicy = RetryPolicy(), workDir: String) {
        self.id = id
        self.concurrency = max(1, concurrency)
        self.leaseDuration = leaseDuration
        self.pollInterval = pollInterval
        self.retry = retry
        self.workDir = workDir
    }

    /// `host:pid`, so operators can tell which process holds a job.
    public static func defaultID() -> String {
        "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// Options from the `worker:` section of `sluice.yml`.
    public init(settings: WorkerSettings, workDir: String) {
        self.init(concurrency: settings.concurrency, leaseDuration: .milliseconds(Int64(settings.leaseSeconds * 1000)),
                  pollInterval: .milliseconds(Int64(settings.pollSeconds * 1000)),
                  retry: RetryPolicy(maxAttempts: settings.maxAttempts, base: .milliseconds(Int64(settings.retryBaseSeconds * 1000))),
                  workDir: workDir)
    }
}

/// Runs one claimed job from start to end: keeps its lease alive, fetches the source,
/// skips files already loaded, loads through a staged sink that completes the job in the
/// data transaction, and records failures as retryable or final.
public struct JobExecutor: Sendable {
    let driver: any QueueDriver
    let target: any JobTarget
    let config: SluiceConfig
    let fetcher: SourceFetcher
    let options: WorkerOptions
    let now: @Sendable () -> Date
    let random: @Sendable () -> Double
    let logger: Logger

    public init(driver: any QueueDriver, target: any JobTarget, config: SluiceConfig, policy: SourcePolicy, options: WorkerOptions,
                now: @escaping @Sendable () -> Date = { Date() }, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
                logger: Logger = Logger(label: "sluice.worker")) {
        self.driver = driver
        self.target = target
        self.config = config
        self.fetcher = SourceFetcher(policy: policy, driver: driver)
        self.options = options
        self.now = now
        self.random = random
        self.logger = logger
    }

    /// Lease state shared by the heartbeat loop and the load thread.
    final class Lease: Sendable {
        /// 0 held, 1 cancelled, 2 lost.
        let status = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        let bytes = Atomic<Int64>(0)
        let rows = Atomic<Int64>(0)
        var held: Bool { status.load(ordering: .relaxed) == 0 }
    }

    /// The outcome of one attempt.
    enum Outcome {
        case loaded
        case duplicate(of: Int64, sha256: String)
        case failed(SluiceError, JobResult? = nil)
    }

    public func execute(_ job: Job) async {
        let lease = Lease()
        let dir = (options.workDir as NSString).appendingPathComponent("jobs/\(job.id)/attempt-\(job.attempts)")
        let outcome: Outcome = await withTaskGroup(of: Outcome?.self) { group in
            group.addTask { await keepLease(job, lease); return nil }
            group.addTask { await attempt(job, lease, dir: dir) }
            var result: Outcome = .failed(SluiceError(.aborted, "no outcome"))
            for await o in group {
                if let o {
                    result = o
                    lease.done.store(true, ordering: .relaxed)
                    group.cancelAll()
                }
            }
            return result
        }
        await record(job, outcome, lease: lease)
    }

    func record(_ job: Job, _ outcome: Outcome, lease: Lease) async {
        let log = logger
        switch outcome {
        case .loaded:
            log.info("job complete", metadata: ["job": "\(job.id)", "entity": "\(job.entity)"])
        case .duplicate(let prior, let sha):
            let result = JobResult(stats: LoadStats(), duplicateOf: prior, sha256: sha)
            _ = try? await driver.completeJob(JobCompleteParams(id: job.id, token: job.leaseToken, result: result, now: now()))
        case .failed(let error, let result):
            if !lease.held || error.code == .aborted {
                // Cancelled, or rescued by another worker: the job is not ours to record.
                log.notice("job stopped", metadata: ["job": "\(job.id)", "reason": "\(error.description)"])
                return
            }
            let transient = error.isTransient
            let wait = options.retry.delay(afterAttempt: job.attempts, random: random())
            let retryAt = now().addingTimeInterval(Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18)
            do {
                _ = try await driver.failJob(JobFailParams(id: job.id, token: job.leaseToken, error: error.description,
                                                           transient: transient, retryAt: retryAt, result: result, now: now()))
            } catch {
                log.error("cannot record job failure", metadata: ["job": "\(job.id)", "error": "\(error)"])
            }
            log.warning("job attempt failed", metadata: ["job": "\(job.id)", "transient": "\(transient)", "error": "\(error.description)"])
        }
    }

    /// Heartbeats every third of the lease and publishes progress every second, until the
    /// attempt ends; flags the lease as lost or cancelled so the load stops.
    func keepLease(_ job: Job, _ lease: Lease) async {
        let beat = options.leaseDuration / 3
        var sinceBeat = Duration.zero
        var lastRows: Int64 = -1
        let tick = min(Duration.seconds(1), beat)
        while !lease.done.load(ordering: .relaxed) && !Task.isCancelled {
            try? await Task.sleep(for: tick)
            if lease.done.load(ordering: .relaxed) { return }
            sinceBeat += tick
            if sinceBeat >= beat {
                sinceBeat = .zero
                if let s = try? await driver.heartbeat(JobHeartbeatParams(id: job.id, token: job.leaseToken, leaseDuration: options.leaseDuration, now: now())) {
                    switch s {
                    case .held: break
                    case .cancelled: lease.status.store(1, ordering: .relaxed)
                    case .lost: lease.status.store(2, ordering: .relaxed)
                    }
                }
            }
            let rows = lease.rows.load(ordering: .relaxed)
            if rows != lastRows && lease.held {
                lastRows = rows
                try? await driver.setProgress(JobProgressParams(id: job.id, token: job.leaseToken,
                                                                progress: JobProgress(bytes: lease.bytes.load(ordering: .relaxed), rows: rows)))
            }
        }
    }

    func attempt(_ job: Job, _ lease: Lease, dir: String) async -> Outcome {
        let local: LocalSource
        do {
            local = try await fetcher.fetch(job.spec.source, into: dir)
        } catch {
            return .failed(error)
        }
        defer { if local.temporary { try? FileManager.default.removeItem(atPath: local.path) } }  // scratch download
        if !job.spec.force {
            do {
                if let prior = try await driver.loadedFile(entity: job.entity, sha256: local.sha256), prior != job.id {
                    return .duplicate(of: prior, sha256: local.sha256)
                }
            } catch {
                return .failed(error)
            }
        }
        let input = LoadInput(job: job, local: local, dir: dir)
        return await runOnThread { self.load(input, lease) }
    }

    struct LoadInput: Sendable {
        var job: Job
        var local: LocalSource
        var dir: String
    }

    /// The blocking part: plan and load (decoding and SQLite work run on threads).
    func load(_ input: LoadInput, _ lease: Lease) -> Outcome {
        let job = input.job
        var request = LoadRequest(files: [input.local.path], entity: job.entity)
        request.mode = job.spec.mode
        request.format = job.spec.format
        request.maxRejects = job.spec.atomic ? 0 : job.spec.maxRejects
        do {
            let plan = try LoadPlanner.plan(request, config: config, target: try target.catalog())
            let target = self.target, now = self.now, sha = input.local.sha256, dir = input.dir
            try createDirectory(dir)
            let runner = LoadRunner(plan: plan, sink: { (e: Entity, m: WriteMode) throws(SluiceError) -> any LoadSink in
                try target.sink(entity: e, mode: m, job: job, sha256: sha, scratchDir: dir, now: now)
            }, stateDir: dir)
            runner.loadId = "job-\(job.id)"
            let tap = ProgressTap(lease)
            runner.observer = tap
            runner.shouldContinue = { lease.held }
            _ = try withExtendedLifetime(tap) { () throws(LoadFailure) in try runner.run() }
            return .loaded
        } catch let e as LoadFailure {
            guard lease.held else { return .failed(SluiceError(.aborted, "the lease was lost")) }
            let partial = JobResult(stats: e.report.stats, rejectsPath: e.report.files.compactMap(\.rejectsFile).first, sha256: input.local.sha256)
            return .failed(e.error, partial)
        } catch let e as SluiceError {
            return .failed(e)
        } catch {
            return .failed(SluiceError(.io, "\(error)"))
        }
    }

    func createDirectory(_ dir: String) throws(SluiceError) {
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw SluiceError(.io, "cannot create '\(dir)': \(error.localizedDescription)")
        }
    }
}

/// Copies a load's progress into the lease's counters for the heartbeat loop to publish.
final class ProgressTap: LoadObserver {
    let lease: JobExecutor.Lease
    init(_ lease: JobExecutor.Lease) { self.lease = lease }
    func loadProgress(file: InputFile, index: Int, of count: Int, bytes: Int64, rows: Int64, elapsed: Double) {
        lease.bytes.store(bytes, ordering: .relaxed)
        lease.rows.store(rows, ordering: .relaxed)
    }
    func loadPhase(_ phase: String) {}
}
