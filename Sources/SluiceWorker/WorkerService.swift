public import SluiceQueue
import SluiceCore
public import ServiceLifecycle
public import Foundation
public import Logging
import Synchronization

/// A worker process's main loop as a `Service`: claims up to `concurrency` jobs, runs
/// each in a child task, and rescues expired leases (of any worker) every few seconds.
/// On graceful shutdown it stops claiming and lets running jobs finish.
public final class WorkerService: Service, Sendable {
    let driver: any JobStore & HandOffStore
    let executor: JobExecutor
    let options: WorkerOptions
    public let wake: WakeSignal
    let running = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let now: @Sendable () -> Date
    let logger: Logger
    /// Runs until cancelled, calling its argument whenever new work may be waiting
    /// (PostgreSQL's LISTEN/NOTIFY); polling remains the fallback.
    let wakeSource: (@Sendable (@escaping @Sendable () -> Void) async -> Void)?

    public init(driver: any JobStore & HandOffStore, executor: JobExecutor, options: WorkerOptions, wake: WakeSignal = WakeSignal(),
                now: @escaping @Sendable () -> Date = { Date() }, logger: Logger = Logger(label: "sluice.worker"),
                wakeSource: (@Sendable (@escaping @Sendable () -> Void) async -> Void)? = nil) {
        self.wakeSource = wakeSource
        self.driver = driver
        self.executor = executor
        self.options = options
        self.wake = wake
        self.now = now
        self.logger = logger
    }

    public func run() async throws {
        logger.info("worker started", metadata: ["worker": "\(options.id)", "concurrency": "\(options.concurrency)"])
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.rescueLoop() }
                if let wakeSource {
                    let wake = self.wake
                    group.addTask { await wakeSource { wake.poke() } }
                }
                defer { if wakeSource != nil { group.cancelAll() } }
                while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
                    let free = options.concurrency - running.load(ordering: .relaxed)
                    var claimed = 0
                    if free > 0 {
                        do {
                            let jobs = try await driver.claimJobs(try await claimParams(limit: free))
                            claimed = jobs.count
                            for job in jobs {
                                running.add(1, ordering: .relaxed)
                                group.addTask {
                                    await self.executor.execute(job)
                                    self.running.subtract(1, ordering: .relaxed)
                                    self.wake.poke()
                                }
                            }
                        } catch {
                            logger.error("claim failed", metadata: ["error": "\(error)"])
                        }
                    }
                    // A full claim may mean more work is waiting; otherwise sleep until poked.
                    if claimed == 0 || claimed < free { await wake.wait(upTo: options.pollInterval) }
                }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
            self.wake.poke()
        }
        logger.info("worker stopped", metadata: ["worker": "\(options.id)"])
    }

    /// What to claim: this worker's stages, less those whose next stage has more than
    /// `maxBacklog` batches waiting (back-pressure), and plain jobs unless `--stage` limits it.
    func claimParams(limit: Int) async throws(SluiceError) -> JobClaimParams {
        var p = JobClaimParams(worker: options.id, limit: limit, leaseDuration: options.leaseDuration, now: now())
        if options.stages == nil && !options.stagedPipelines { return p }  // no stage jobs: nothing to hold back
        let backlog = try await driver.stageBacklog()
        var stages = options.stages ?? StageKind.allCases
        if backlog[.load, default: 0] > options.maxBacklog { stages.removeAll { $0 != .load } }
        if backlog[.enrich, default: 0] > options.maxBacklog { stages.removeAll { $0 == .extract } }
        if options.stages == nil && stages.count == StageKind.allCases.count { return p }  // anything
        p.stages = stages
        p.plainJobs = options.stages == nil
        return p
    }

    /// Returns expired leases to the queue every `pollInterval × 5` (at most 5 s).
    func rescueLoop() async {
        let every = min(options.pollInterval * 5, .seconds(5))
        while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
            await runRescue()
            await wake.waitForStop(upTo: every, stopping: stopping)
        }
    }

    func runRescue() async {
        do {
            let n = try await driver.rescueExpired(JobRescueParams(now: now()))
            if n > 0 {
                logger.notice("rescued jobs with expired leases", metadata: ["count": "\(n)"])
                wake.poke()
            }
        } catch {
            logger.error("rescue failed", metadata: ["error": "\(error)"])
        }
    }

    /// One pass for tests and `--once`: rescue, then claim and run jobs until none is left.
    /// Returns how many jobs ran.
    public func runOnce() async -> Int {
        await runRescue()
        var total = 0
        while true {
            var jobs: [Job] = []
            if let p = try? await claimParams(limit: options.concurrency) { jobs = (try? await driver.claimJobs(p)) ?? [] }
            if jobs.isEmpty { return total }
            await withDiscardingTaskGroup { group in
                for job in jobs { group.addTask { await self.executor.execute(job) } }
            }
            total += jobs.count
        }
    }
}

extension WakeSignal {
    /// Sleeps up to `timeout`, checking a stop flag every 100 ms.
    func waitForStop(upTo timeout: Duration, stopping: borrowing Atomic<Bool>) async {
        var left = timeout
        while left > .zero && !stopping.load(ordering: .relaxed) {
            let step = min(left, .milliseconds(100))
            try? await Task.sleep(for: step)
            left -= step
        }
    }
}
