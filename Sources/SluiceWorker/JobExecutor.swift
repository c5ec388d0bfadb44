public import SluiceStorage
import SluiceCore
public import SluiceQueue
public import SluiceConfig
import SluiceFormats
import SluiceLoad
public import Foundation
public import Logging
import Synchronization
import Metrics
import Tracing

/// How a worker runs jobs: lease timing, retries, where scratch files go.
public struct WorkerOptions: Sendable {
    public var id: String
    public var concurrency: Int
    public var leaseDuration: Duration
    public var pollInterval: Duration
    public var retry: RetryPolicy
    public var workDir: String
    /// Split files larger than this into chunks for several workers (jobs may say otherwise).
    public var chunkBytes: Int64?
    /// Only jobs of these pipeline stages (`--stage`); nil runs every job.
    public var stages: [StageKind]?
    /// A stage takes no work while the next one has more than this many batches queued.
    public var maxBacklog = 32
    /// Whether any declared pipeline is staged: without one there is no stage backlog to read.
    public var stagedPipelines = true

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
        chunkBytes = settings.chunkMB.map { Int64($0) << 20 }
        maxBacklog = settings.maxBacklog
    }
}

/// Runs one claimed job from start to end: keeps its lease alive, fetches the source,
/// skips files already loaded, loads through a staged sink that completes the job in the
/// data transaction, and records failures as retryable or final.
public struct JobExecutor: Sendable {
    let driver: any QueueDriver
    let target: any DataTarget
    let config: SluiceConfig
    let fetcher: SourceFetcher
    let options: WorkerOptions
    let now: @Sendable () -> Date
    let random: @Sendable () -> Double
    let logger: Logger

    public init(driver: any QueueDriver, target: any DataTarget, config: SluiceConfig, policy: SourcePolicy, options: WorkerOptions,
                now: @escaping @Sendable () -> Date = { Date() }, random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
                logger: Logger = Logger(label: "sluice.worker")) {
        self.driver = driver
        self.target = target
        self.config = config
        var fetcher = SourceFetcher(policy: policy, driver: driver)
        fetcher.s3 = S3Config.from(config.s3)
        self.fetcher = fetcher
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
        var cancelled: Bool { status.load(ordering: .relaxed) == 1 }
    }

    /// The outcome of one attempt.
    enum Outcome {
        case loaded(LoadStats)
        /// A job whose work wrote no table rows (a stage that handed its batches on).
        case completed(JobResult)
        case duplicate(of: Int64, sha256: String)
        case failed(SluiceError, JobResult? = nil)
    }

    /// Runs one attempt of `job` in a span (`job load`, `job enrich`, …) that continues the
    /// trace of whoever queued it, with `fetch`, `plan`, `read_and_stage` and
    /// `apply_and_commit` spans below it.
    public func execute(_ job: Job) async {
        let kind = job.spec.stage?.kind.rawValue ?? "load"
        await withSpan("job \(kind)", context: TraceCarrier.context(job.spec.trace), ofKind: .consumer) { span in
            span.attributes["sluice.job.id"] = Int(job.id)
            span.attributes["sluice.job.attempt"] = job.attempts
            span.attributes["sluice.entity"] = job.entity
            if case .chunk(let parent, _) = job.spec.kind { span.attributes["sluice.job.parent"] = Int(parent) }
            let outcome = await execute(job, kind: kind)
            switch outcome {
            case .loaded(let s):
                span.attributes["sluice.rows.read"] = Int(s.read)
                span.attributes["sluice.rows.rejected"] = Int(s.rejected)
            case .completed, .duplicate: break
            case .failed(let e, _):
                if e.code != .aborted { span.setStatus(SpanStatus(code: .error, message: e.description)) }
            }
        }
    }

    func execute(_ job: Job, kind: String) async -> Outcome {
        let started = ContinuousClock.now
        Metrics.Timer(label: "sluice_job_queue_wait_seconds", dimensions: [("kind", kind)])
            .recordSeconds(max(0, now().timeIntervalSince(max(job.createdAt, job.runAfter))))
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
        let name: String
        switch outcome {
        case .loaded, .completed: name = "complete"
        case .duplicate: name = "duplicate"
        case .failed(let e, _): name = e.code == .aborted ? "stopped" : "failed"
        }
        Metrics.Timer(label: "sluice_job_duration_seconds", dimensions: [("kind", kind), ("outcome", name)]).record(duration: ContinuousClock.now - started)
        return outcome
    }

    /// Rows a finished job read and wrote, by entity and what became of them (a pipeline's
    /// rows are read once, by its extract stage; a chunked file's by its parent job).
    static func count(_ s: LoadStats, _ job: Job) {
        if case .chunk = job.spec.kind { return }
        let entity = job.entity
        let read = job.spec.stage.map { $0.kind == .extract } ?? true ? s.read : 0
        for (outcome, n) in [("read", read), ("inserted", s.inserted), ("updated", s.updated), ("deleted", s.deleted),
                             ("skipped", s.skipped), ("rejected", s.rejected)] where n > 0 {
            Counter(label: "sluice_rows_total", dimensions: [("entity", entity), ("outcome", outcome)]).increment(by: n)
        }
        if s.bytes > 0 { Counter(label: "sluice_bytes_loaded_total", dimensions: [("entity", entity)]).increment(by: s.bytes) }
    }

    func record(_ job: Job, _ outcome: Outcome, lease: Lease) async {
        let log = logger
        switch outcome {
        case .loaded(let s):
            log.info("job complete", metadata: ["job": "\(job.id)", "entity": "\(job.entity)", "read": "\(s.read)", "inserted": "\(s.inserted)",
                                                "updated": "\(s.updated)", "deleted": "\(s.deleted)", "skipped": "\(s.skipped)", "rejected": "\(s.rejected)"])
            Self.count(s, job)
            await fetcher.removeScratchUpload(of: job)
        case .completed(let result):
            if (try? await driver.completeJob(JobCompleteParams(id: job.id, token: job.leaseToken, result: result, now: now()))) != true {
                log.notice("stage job finished after losing its lease; its hand-offs stand, another attempt finds them done", metadata: ["job": "\(job.id)"])
            } else {
                Self.count(result.stats, job)
            }
        case .duplicate(let prior, let sha):
            let result = JobResult(stats: LoadStats(), duplicateOf: prior, sha256: sha)
            if (try? await driver.completeJob(JobCompleteParams(id: job.id, token: job.leaseToken, result: result, now: now()))) == true {
                await fetcher.removeScratchUpload(of: job)
            }
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
        let kind = job.spec.kind
        if case .stage(let stage) = kind { return await stageAttempt(job, stage, lease, dir: dir) }
        var job = job
        let local: LocalSource
        let fetching = ContinuousClock.now
        do {
            local = try await withSpan("fetch") { span in
                let local = try await fetcher.fetch(job.spec.source, into: dir, range: job.spec.chunk.flatMap { $0.start <= $0.end ? $0.start..<$0.end : nil })
                span.attributes["sluice.bytes"] = Int(local.size)
                return local
            }
        } catch let e as SluiceError {
            return .failed(e)
        } catch {
            return .failed(SluiceError(.io, "\(error)"))
        }
        Metrics.Timer(label: "sluice_load_phase_seconds", dimensions: [("phase", "fetch")]).record(duration: ContinuousClock.now - fetching)
        if local.ranged, var chunk = job.spec.chunk {
            // Only the chunk's bytes were fetched: its range now starts the file.
            chunk.end -= chunk.start
            chunk.start = 0
            job.spec.chunk = chunk
        }
        defer { if local.temporary { try? FileManager.default.removeItem(atPath: local.path) } }  // scratch download
        if kind == .load && !job.spec.force {
            do {
                if let prior = try await driver.loadedFile(entity: job.entity, sha256: local.sha256), prior != job.id {
                    return .duplicate(of: prior, sha256: local.sha256)
                }
            } catch {
                return .failed(error)
            }
        }
        let input = LoadInput(job: job, local: local, dir: dir)
        if kind == .load, let chunkBytes = job.spec.chunkBytes ?? options.chunkBytes, target.supportsChunks, !local.temporary || local.shared {
            switch await splitPlan(input, chunkBytes: chunkBytes) {
            case .failure(let e): return .failed(e)
            case .success(let split?):
                if let outcome = await coordinate(input, lease, plan: split.plan, chunks: split.chunks) { return outcome }
                logger.warning("job \(job.id): a record spans lines, so its chunks were dropped; loading the file whole")
            case .success(nil): break  // too small, or not splittable: one worker loads it
            }
        }
        return Self.blamingDisk(await load(input, lease), local)
    }

    /// A scratch copy that vanished under the load (this host's disk wiped or cleaned) says
    /// nothing about the input: the attempt fails as transient, and the next fetches again.
    static func blamingDisk(_ outcome: Outcome, _ local: LocalSource) -> Outcome {
        guard case .failed(let e, let result) = outcome, !e.isTransient, local.temporary, !FileManager.default.fileExists(atPath: local.path) else { return outcome }
        return .failed(SluiceError(.io, "\(e.message) (this host's copy of the file is gone; the next attempt fetches it again)", at: e.location), result)
    }

    // MARK: Chunked loads

    struct Split: Sendable {
        var plan: LoadPlan
        var chunks: [FileChunk]
    }

    /// The parent's plan (its schema is what every chunk loads with) and its chunks, or nil
    /// when the file is not worth or not safe to split.
    func splitPlan(_ input: LoadInput, chunkBytes: Int64) async -> Result<Split?, SluiceError> {
        let target = self.target
        do throws(SluiceError) {
            let plan = try await LoadPlanner.plan(request(for: input.job, file: input.local.path), config: config) { (table) throws(SluiceError) in
                try await target.schema(of: table)
            }
            // Finding line starts reads the file: on a thread of its own.
            return await runOnThread {
                Result { () throws(SluiceError) -> Split? in
                    try ChunkPlanner.split(plan.files[0], dialect: plan.entity.csv, chunkBytes: chunkBytes).map { Split(plan: plan, chunks: $0) }
                }
            }
        } catch {
            return .failure(error)
        }
    }

    /// A parent job: creates the shared stage and one chunk job per range (idempotently, so
    /// a rescued coordinator picks up where the last one stopped), waits while workers fill
    /// the stage, then applies it once — last row per key across all chunks — and completes.
    /// Nil when the file turns out not to split at lines; the caller loads it whole.
    func coordinate(_ input: LoadInput, _ lease: Lease, plan: LoadPlan, chunks: [FileChunk]) async -> Outcome? {
        let job = input.job
        do {
            try await target.prepareSharedStage(parent: job.id, schema: plan.entity.schema)
            var ids: [Int64] = []
            for (k, c) in chunks.enumerated() {
                var spec = job.spec
                spec.chunkBytes = nil
                spec.parent = job.id
                spec.chunk = c
                spec.schema = plan.entity.schema
                spec.mode = plan.mode
                spec.format = plan.files[0].format
                spec.trace = nil  // the chunk's span goes under this job's
                let r = try await driver.insertJob(JobInsertParams(entity: job.entity, spec: spec, priority: job.priority + 1,
                                                                   maxAttempts: job.maxAttempts, idempotencyKey: "job-\(job.id)-chunk-\(k)", now: now()))
                ids.append(r.job.id)
            }
            var stats = LoadStats()
            var rejects: [String] = []
            while true {
                if !lease.held {
                    // A cancelled parent takes its chunks with it (best effort). One that lost its
                    // lease leaves them to the attempt that took it over, which waits for the same chunks.
                    if lease.cancelled { for id in ids { _ = try? await driver.cancelJob(JobCancelParams(id: id, now: now())) } }
                    return .failed(SluiceError(.aborted, "the parent job was cancelled or lost its lease"))
                }
                var done = 0, rows: Int64 = 0, bytes: Int64 = 0
                stats = LoadStats()
                rejects = []
                for (k, id) in ids.enumerated() {
                    guard let c = try await driver.job(id: id) else { throw SluiceError(.notFound, "chunk \(k) of job \(job.id) vanished") }
                    switch c.state {
                    case .complete:
                        done += 1
                        if let s = c.result?.stats {
                            stats.read += s.read
                            stats.rejected += s.rejected
                            stats.bytes += s.bytes
                        }
                        if let r = c.result?.rejectsPath { rejects.append(r) }
                        rows += c.result?.stats.read ?? 0
                    case .error, .cancelled:
                        for other in ids where other != id { _ = try? await driver.cancelJob(JobCancelParams(id: other, now: now())) }  // best effort
                        await target.dropSharedStage(parent: job.id)
                        let why = c.error ?? c.state.rawValue
                        // A quoted field spanning lines past the sampled first MiB: lines are not
                        // records in this file, so load it whole instead.
                        if c.result?.errorCode == SluiceError.Code.unterminatedQuote.description { return nil }
                        return .failed(SluiceError(.invalidInput, "chunk \(k + 1) of \(ids.count) failed: \(why)"))
                    case .queued, .processing:
                        rows += c.progress.rows
                        bytes += c.progress.bytes
                    }
                }
                lease.rows.store(rows, ordering: .relaxed)
                lease.bytes.store(stats.bytes + bytes, ordering: .relaxed)
                if done == ids.count { break }
                // Help rather than wait: run a ready job here (chunks outrank other jobs), so a
                // single worker slot can never deadlock on its own chunks.
                if let next = try await driver.claimJobs(JobClaimParams(worker: options.id, limit: 1, leaseDuration: options.leaseDuration, now: now())).first {
                    await execute(next)
                } else {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            if let max = job.spec.atomic ? 0 : job.spec.maxRejects, stats.rejected > max {
                await target.dropSharedStage(parent: job.id)
                return .failed(SluiceError(.tooManyRejects, "more than \(max) rows rejected across the chunks; nothing was written"))
            }
            let combined = try combineRejects(rejects, into: (input.dir as NSString).appendingPathComponent("rejects.csv"))
            let target = self.target, now = self.now, sha = input.local.sha256
            let context = CommitContext(stats: stats, rejectsFiles: combined.map { [$0] } ?? [],
                                        rejectBudget: (job.spec.atomic ? 0 : job.spec.maxRejects).map { $0 - stats.rejected })
            do throws(SluiceError) {
                let sink = try await target.applySink(entity: plan.entity, mode: plan.mode, completing: JobCompletion(job: job, sha256: sha, now: now))
                let counts = try await sink.commit(context)
                var done = stats
                (done.inserted, done.updated, done.deleted) = (counts.inserted, counts.updated, counts.deleted)
                return .loaded(done)
            } catch {
                return .failed(error)
            }
        } catch let e as SluiceError {
            return .failed(e)
        } catch {
            return .failed(SluiceError(.unavailable, "\(error)"))
        }
    }

    /// The chunks' rejects files as one (header once), for the parent's rejects URL.
    func combineRejects(_ paths: [String], into out: String) throws(SluiceError) -> String? {
        if paths.isEmpty { return nil }
        var text = ""
        for (i, p) in paths.enumerated() {
            guard let content = try? String(contentsOfFile: p, encoding: .utf8) else { continue }
            text += i == 0 ? content : String(content.drop { $0 != "\n" }.dropFirst())
        }
        try createDirectory((out as NSString).deletingLastPathComponent)
        guard FileManager.default.createFile(atPath: out, contents: Data(text.utf8)) else { throw SluiceError(.io, "cannot write \(out)") }
        return out
    }

    func request(for job: Job, file: String, feed: RowFeed? = nil) -> LoadRequest {
        var request = feed.map { LoadRequest(feed: $0, entity: job.entity) } ?? LoadRequest(files: [file], entity: job.entity)
        request.mode = job.spec.mode
        request.format = job.spec.format
        request.maxRejects = job.spec.atomic ? 0 : job.spec.maxRejects
        request.schema = job.spec.schema
        request.chunk = job.spec.chunk
        if let stage = job.spec.stage { request.afterSQL = config.pipelines[stage.pipeline]?.sql ?? [] }
        return request
    }

    struct LoadInput: Sendable {
        var job: Job
        var local: LocalSource
        var dir: String
        /// A stage's rows, loaded instead of the file.
        var feed: RowFeed? = nil
    }

    /// Plans the load (the table's schema from the target, the file inspected on a thread),
    /// then runs it: decoding on the runner's threads, writing through the target's sink,
    /// which completes the job.
    func load(_ input: LoadInput, _ lease: Lease) async -> Outcome {
        let job = input.job
        var request = request(for: job, file: input.local.path, feed: input.feed)
        do {
            let target = self.target
            request.sessionTimeZone = await target.sessionTimeZone()
            let plan = try await withSpan("plan") { _ in
                try await LoadPlanner.plan(request, config: config) { (table) throws(SluiceError) in try await target.schema(of: table) }
            }
            // A stage batch is not a file to remember: its job's idempotency key already is.
            let now = self.now, sha = job.spec.stage == nil ? input.local.sha256 : nil, dir = input.dir
            try createDirectory(dir)
            let runner = LoadRunner(plan: plan, sink: { (e: Entity, m: WriteMode) async throws(SluiceError) -> any LoadSink in
                if case .chunk(let parent, let chunk) = job.spec.kind {
                    return try await target.chunkSink(job: job, parent: parent, schema: e.schema, chunk: chunk, now: now)
                }
                return try await target.sink(entity: e, mode: m, scratchDir: dir, completing: JobCompletion(job: job, sha256: sha, now: now))
            }, stateDir: dir)
            runner.loadId = "job-\(job.id)"
            let tap = ProgressTap(lease, phases: PhaseSpans(first: "read_and_stage"))
            defer { withExtendedLifetime(tap) {} }  // the runner holds its observer weakly
            runner.observer = tap
            runner.shouldContinue = { lease.held }
            let report: LoadReport
            do {
                report = try await runner.run()
                tap.phases.end()
            } catch {
                tap.phases.end(failing: error)
                throw error
            }
            Metrics.Timer(label: "sluice_load_phase_seconds", dimensions: [("phase", "read_and_stage")]).recordSeconds(max(0, report.seconds - report.commitSeconds))
            Metrics.Timer(label: "sluice_load_phase_seconds", dimensions: [("phase", "apply_and_commit")]).recordSeconds(report.commitSeconds)
            return .loaded(report.stats)
        } catch let e as LoadFailure {
            guard lease.held else { return .failed(SluiceError(.aborted, "the lease was lost")) }
            var partial = JobResult(stats: e.report.stats, rejectsPath: e.report.files.compactMap(\.rejectsFile).first, sha256: input.local.sha256)
            partial.errorCode = e.error.code.description
            return .failed(clientFacing(e.error, input), partial)
        } catch let e as SluiceError {
            return .failed(clientFacing(e, input))
        } catch {
            return .failed(SluiceError(.io, "\(error)"))
        }
    }

    /// `e` as the job's submitter should read it: the file by the name it was sent with (not
    /// where the server keeps it), the rejected rows by their URL (not a worker's folder).
    func clientFacing(_ e: SluiceError, _ input: LoadInput) -> SluiceError {
        let job = input.job
        let name = job.spec.fileName ?? job.spec.source
        var out = e
        if out.location?.file == input.local.path { out.location?.file = name }
        out.message = out.message.replacingOccurrences(of: input.local.path, with: name)
        if let see = out.message.range(of: "(see " + input.dir), let end = out.message[see.upperBound...].firstIndex(of: ")") {
            out.message.replaceSubrange(see.lowerBound...end, with: "(the rows: GET /\(job.entity)/_bulk/\(job.id)/rejects)")
        }
        return out
    }

    func createDirectory(_ dir: String) throws(SluiceError) {
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw SluiceError(.io, "cannot create '\(dir)': \(error.localizedDescription)")
        }
    }
}

/// Copies a load's progress into the lease's counters for the heartbeat loop to publish, and
/// turns its phases into spans.
final class ProgressTap: LoadObserver {
    let lease: JobExecutor.Lease
    let phases: PhaseSpans
    init(_ lease: JobExecutor.Lease, phases: PhaseSpans) {
        self.lease = lease
        self.phases = phases
    }
    func loadProgress(file: InputFile, index: Int, of count: Int, bytes: Int64, rows: Int64, elapsed: Double) {
        lease.bytes.store(bytes, ordering: .relaxed)
        lease.rows.store(rows, ordering: .relaxed)
    }
    func loadPhase(_ phase: String) {
        if phase == "committing" { phases.next("apply_and_commit") }
    }
}

/// One span per phase of a load, one after the other, all children of the span current
/// where it was made (the runner reports phases from its own threads).
final class PhaseSpans: Sendable {
    let parent: ServiceContext
    let current: Mutex<(any Span)?>

    init(first: String) {
        let parent = ServiceContext.current ?? .topLevel
        self.parent = parent
        current = Mutex(startSpan(first, context: parent))
    }

    /// Ends the phase under way and starts `name`.
    func next(_ name: String) {
        current.withLock {
            $0?.end()
            $0 = startSpan(name, context: parent)
        }
    }

    /// Ends the phase under way, marked failed when `error` is given.
    func end(failing error: (any Error)? = nil) {
        current.withLock {
            if let error { $0?.recordError(error); $0?.setStatus(SpanStatus(code: .error)) }
            $0?.end()
            $0 = nil
        }
    }
}
