public import SluiceConfig
public import SluiceCore
import SluiceFormats
public import SluiceLoad
import SluiceWorker
import SluiceQueue
import SluiceExport
import SluiceStorage
public import Foundation
import Logging

/// Where a pipeline run's lines and load summaries go: the CLI prints them (with a progress
/// display), the server logs them.
public struct PipelineReporter: Sendable {
    /// How a load of the run ended: its report, or the report of a load rolled back (nil when
    /// it never started).
    public enum LoadOutcome: Sendable { case loaded(LoadReport), failed(LoadReport?) }

    public var log: @Sendable (String) -> Void
    /// An observer for one load's progress (nil: none).
    public var loadObserver: @Sendable () -> (any LoadObserver & Sendable)?
    /// One load ended; its observer is handed back to close its display.
    public var loadFinished: @Sendable ((any LoadObserver & Sendable)?, LoadOutcome) -> Void

    public init(log: @escaping @Sendable (String) -> Void,
                loadObserver: @escaping @Sendable () -> (any LoadObserver & Sendable)? = { nil },
                loadFinished: @escaping @Sendable ((any LoadObserver & Sendable)?, LoadOutcome) -> Void = { _, _ in }) {
        self.log = log
        self.loadObserver = loadObserver
        self.loadFinished = loadFinished
    }
}

/// Runs pipelines: reads the source (files in the run's window), applies the steps, loads
/// the rows, and records the run (state, window, counts) in the control plane.
public struct PipelineExecution: Sendable {
    public struct Options: Sendable {
        /// In-process worker slots for staged pipelines (nil: the worker setting; 0: none).
        public var workers: Int?
        /// A run whose source matched no file fails (``RunOutcome/empty``) instead of succeeding.
        public var failIfEmpty = false
        /// Read every file again, even those an earlier run loaded (the file ledger is skipped).
        public var reprocess = false
        public init(workers: Int? = nil, failIfEmpty: Bool = false, reprocess: Bool = false) {
            self.workers = workers
            self.failIfEmpty = failIfEmpty
            self.reprocess = reprocess
        }
    }

    /// How a run ended.
    public enum RunOutcome: Sendable, Equatable {
        case succeeded, failed
        /// No file matched and ``Options/failIfEmpty`` was set (recorded as failed).
        case empty
    }

    /// The source matched no file, under ``Options/failIfEmpty``.
    struct NothingMatched: Error, CustomStringConvertible { var description: String }

    public let config: SluiceConfig
    public let runtime: Runtime
    public let options: Options
    public let reporter: PipelineReporter

    public init(config: SluiceConfig, runtime: Runtime, options: Options = Options(), reporter: PipelineReporter) {
        self.config = config
        self.runtime = runtime
        self.options = options
        self.reporter = reporter
    }

    public func log(_ line: String) { reporter.log(line) }

    /// A file handed over through the API (`POST /pipelines/{name}/runs`): the run reads it
    /// instead of the pipeline's source.
    public struct Upload: Sendable {
        /// A local file, or an object of the shared storage (fetched when the run starts).
        public var path: String
        public var name: String
        /// Its upload record, if any (a run taken over finds its file through it).
        public var id: String?
        public init(path: String, name: String, id: String? = nil) {
            self.path = path
            self.name = name
            self.id = id
        }
    }

    /// This process's name on the runs' leases.
    static let holder = LeasedService.holderName()

    /// One run of `name`. Failures are recorded, not thrown.
    public func run(_ name: String, scheduledFor: Date?, window: (Date?, Date?), upload: Upload? = nil) async throws -> RunOutcome {
        guard let pipeline = config.pipelines[name] else { throw SluiceError(.notFound, "no pipeline '\(name)'") }
        let id = try await runtime.driver.startRun(pipeline: name, scheduledFor: scheduledFor, windowFrom: window.0, windowTo: window.1, now: Date())
        return try await finish(pipeline, run: id, window: window, upload: upload)
    }

    /// Records a run of `name` over an uploaded file and carries it out in the background;
    /// returns the run's id at once.
    public func start(_ name: String, upload: Upload? = nil, window: (Date?, Date?) = (nil, nil)) async throws -> Int64 {
        guard let pipeline = config.pipelines[name] else { throw SluiceError(.notFound, "no pipeline '\(name)'") }
        let id = try await runtime.driver.startRun(pipeline: name, scheduledFor: nil, windowFrom: window.0, windowTo: window.1, upload: upload?.id, now: Date())
        Task { _ = try? await finish(pipeline, run: id, window: window, upload: upload) }
        return id
    }

    /// Carries on, here, each unfinished run whose lease lapsed (the process carrying it out
    /// died or was cut off for a whole lease period): a run over a posted file reads that file
    /// again from its upload record, a staged run queues what it had not queued yet (the same
    /// idempotency keys), a scheduled run reads its window again (the file ledger skips what
    /// was loaded). Returns the runs taken over.
    public func takeOverAbandoned() async -> [Int64] {
        let driver = runtime.driver
        do throws(SluiceError) {
            let lapsed = try await driver.leases().filter { $0.remaining <= 0 }.compactMap { RunLease.run($0.name) }
            guard !lapsed.isEmpty else { return [] }
            let running = try await driver.runs(pipeline: nil, limit: 100_000).filter { $0.state == .running }
            var taken: [Int64] = []
            for run in running where lapsed.contains(run.id) {
                guard let pipeline = config.pipelines[run.pipeline],
                      try await driver.acquireLease(name: RunLease.name(run.id), holder: Self.holder, seconds: config.server.leaseSeconds) != nil else { continue }
                var upload: Upload? = nil
                if let id = run.upload {
                    guard let u = try await driver.upload(id: id) else {
                        try await driver.finishRun(id: run.id, state: .failed, counts: nil, error: "its process died and its upload \(id) is gone", now: Date())
                        continue
                    }
                    upload = Upload(path: u.path, name: u.originalName ?? "upload \(id)", id: id)
                }
                log("\(run.pipeline): run \(run.id) lost its process (its lease lapsed): carrying it on here")
                taken.append(run.id)
                Task { _ = try? await finish(pipeline, run: run.id, window: (run.windowFrom, run.windowTo), upload: upload) }
            }
            return taken
        } catch {
            log("runs: cannot look for runs to take over: \(error)")
            return []
        }
    }

    /// Holds run `id`'s lease (taken and extended every third of it) until the task is cancelled.
    func holdLease(_ id: Int64) -> Task<Void, Never> {
        let (driver, seconds, name) = (runtime.driver, config.server.leaseSeconds, RunLease.name(id))
        return Task {
            var warned = false
            while !Task.isCancelled {
                let held: Int64?
                do {
                    held = try await driver.acquireLease(name: name, holder: Self.holder, seconds: seconds)
                } catch {
                    try? await Task.sleep(for: .seconds(min(1, seconds / 3)))  // the database is busy or away: soon again
                    continue
                }
                if held == nil && !warned {
                    warned = true
                    log("run \(id): another process holds its lease (carrying it on as asked)")
                }
                try? await Task.sleep(for: .seconds(seconds / 3))
            }
        }
    }

    /// Takes over a staged run whose coordinator died: queues what it had not queued yet
    /// (the same idempotency keys), waits for its jobs and records how it ended.
    public func resume(_ name: String, run id: Int64) async throws -> RunOutcome {
        guard let pipeline = config.pipelines[name], pipeline.staged else {
            throw SluiceError(.invalidArgument, "--resume takes over runs of staged pipelines; '\(name)' is not one")
        }
        guard let run = try await runtime.driver.runs(pipeline: name, limit: 1000).first(where: { $0.id == id }) else {
            throw SluiceError(.notFound, "pipeline \(name) has no run \(id) (see `sluice runs \(name)`)")
        }
        guard run.state == .running else { throw SluiceError(.refused, "run \(id) already ended (\(run.state.rawValue))") }
        return try await finish(pipeline, run: id, window: (run.windowFrom, run.windowTo), upload: nil)
    }

    /// Carries out run `id` and records how it ended.
    func finish(_ pipeline: Pipeline, run id: Int64, window: (Date?, Date?), upload: Upload?) async throws -> RunOutcome {
        let (driver, name) = (runtime.driver, pipeline.name)
        let lease = holdLease(id)
        let ended: Result<String, any Error>
        do {
            // An uploaded file is one file: it runs inline even in a staged pipeline.
            ended = .success(pipeline.staged && upload == nil ? try await executeStaged(pipeline, window: window, run: id)
                             : try await execute(pipeline, window: window, upload: upload, run: id))
        } catch {
            ended = .failure(error)
        }
        // Its last extension done before the end is recorded (which forgets the lease).
        lease.cancel()
        await lease.value
        switch ended {
        case .success(let counts):
            try await driver.finishRun(id: id, state: .succeeded, counts: counts, error: nil, now: Date())
            return .succeeded
        case .failure(let error):
            let message = (error as? SluiceError)?.description ?? "\(error)"
            log("\(name): failed: \(message)")
            try await driver.finishRun(id: id, state: .failed, counts: nil, error: message, now: Date())
            return error is NothingMatched ? .empty : .failed
        }
    }

    /// Returns the run's counts as JSON.
    func execute(_ pipeline: Pipeline, window: (Date?, Date?), upload: Upload? = nil, run: Int64) async throws -> String {
        let scratch = (config.stateDir as NSString).appendingPathComponent("runs/\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let files: [(path: String, name: String, file: PipelineSource.File)]
        var loaded: [WatchedFile] = []  // ledger entries of this run's files, written once it succeeded
        var matched = 1  // files the source matched, loaded before or not
        if let upload, let storage = runtime.policy.storage, storage.holds(upload.path) {
            files = [(try await storage.fetch(upload.path, into: scratch).path, upload.name, PipelineSource.File())]
        } else if let upload {
            files = [(upload.path, upload.name, PipelineSource.File())]
        } else if pipeline.source == Pipeline.uploadSource {
            throw SluiceError(.invalidArgument, "pipeline \(pipeline.name) reads files posted to POST /pipelines/\(pipeline.name)/runs on `sluice serve`")
        } else if pipeline.sourceTable != nil {
            files = [try await tableSource(pipeline, scratch: scratch)]
        } else if let (root, selector) = try DeltaLocation.parse(pipeline.source) {
            (files, loaded) = try await deltaSource(pipeline, root: root, selector: selector, whole: options.reprocess, scratch: scratch)
        } else {
            // A backfill window asks for its files again; otherwise each file version (and each
            // content) is read once.
            let ledger = options.reprocess || window.0 != nil || window.1 != nil ? nil : FileLedger(pipeline: pipeline.name, driver: runtime.driver)
            (files, loaded, matched) = try await sourceFiles(pipeline, scratch: scratch, window: window, ledger: ledger)
        }
        if let first = files.first, upload == nil { try Self.checkFields(pipeline, firstFile: first.path) }
        if matched == 0 {
            let what = "no file in \(pipeline.source)\(pipeline.glob.map { " matched \($0)" } ?? "")"
            if options.failIfEmpty { throw NothingMatched(description: what + " (--fail-if-empty)") }
            log("\(pipeline.name): \(what)")
        }
        var runner = try PipelineRunner(pipeline: pipeline)
        let rejects = StepRejectLog(path: StepRejectLog.runFile(pipeline.name, run: run, stateDir: config.stateDir))
        runner.rejectLog = rejects
        defer { try? rejects.close() }  // closed (and checked) below on success
        let env = QueueEnrichEnvironment(driver: runtime.driver)
        // The steps' rows stream into the load as they are made: one transaction for the run.
        let feed = runner.feed(name: "pipeline \(pipeline.name)")
        var request = LoadRequest(feed: feed, entity: pipeline.into)
        request.mode = pipeline.mode
        request.afterSQL = pipeline.sql
        let (config, reporter, load) = (self.config, self.reporter, request)
        let total = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { feed.stop() }
                if try await feed.waitForRows() { _ = try await Loader.load(load, config: config, reporter: reporter) }
            }
            var total = PipelineRunner.FileResult()
            do {
                for f in files {
                    let r = try await runner.run(file: f.path, displayName: f.name, into: feed, env: env)
                    log("\(f.name): read \(r.read), kept \(r.kept), dropped \(r.dropped), rejected \(r.rejected)")
                    for line in r.rejects.prefix(5) { log("  rejected: \(line)") }
                    total.read += r.read
                    total.kept += r.kept
                    total.dropped += r.dropped
                    total.rejected += r.rejected
                }
                feed.finish()
            } catch {
                // The load fails with this error (a load that failed first keeps its own).
                await feed.fail(error as? SluiceError ?? SluiceError(.io, "\(error)"))
            }
            try await group.waitForAll()
            return total
        }
        for f in runner.figures {
            log("enrich: \(f.keys) distinct keys, \(f.cached) from the cache, \(f.fetched) fetched (\(f.attempts) requests), \(f.failed) failed")
        }
        try rejects.close()
        let rejectsFile = rejects.count > 0 ? rejects.path : nil
        log("\(pipeline.name): \(total.read) rows read, \(total.dropped) dropped by the steps, \(total.rejected) rejected\(rejectsFile.map { " (\($0))" } ?? ""), \(total.kept) to load into \(pipeline.into)")
        let counts = Self.counts(files: files.map(\.file), window: window, total.read, total.dropped, total.rejected, total.kept, rejectsFile: rejectsFile)
        try await runtime.driver.recordWatchedFiles(loaded)
        if upload == nil { try await afterLoad(pipeline, files.map(\.file)) }
        try await export(pipeline)
        return counts
    }

    /// A `table:NAME` source: the table's rows (matching `where:`), in key order, as one NDJSON file.
    func tableSource(_ pipeline: Pipeline, scratch: String) async throws -> (path: String, name: String, file: PipelineSource.File) {
        let table = pipeline.sourceTable!
        guard let key = config.entity(table)?.schema.primaryKey.first else {
            throw SluiceError(.invalidConfig, "pipeline \(pipeline.name) reads table \(table): declare entities.\(table) with a primary_key (rows are read in key order)")
        }
        let store = try await runtime.exportStore()
        let source = ExportSource(table: config.entity(table)!.table, filter: pipeline.sourceFilter, key: key)
        let path = "\(scratch)/table-\(table).ndjson"
        let n = try await TableDump.write(source, store: store, to: path)
        log("\(pipeline.name): \(n) rows read from table \(table)\(pipeline.sourceFilter.map { " where \($0)" } ?? "")")
        return (path, "table \(table)", PipelineSource.File())
    }

    /// The pipeline's `export:` sink: delivers the entity's rows not yet sent; dead-lettered
    /// batches fail the run (they stay listed by `sluice export status`).
    func export(_ pipeline: Pipeline) async throws {
        guard let name = pipeline.export else { return }
        let spec = try ExportSpec.declared(name, config: config)
        let delivery = try await ExportDelivery.run(spec, store: try await runtime.exportStore(), planOnly: false)
        log("\(pipeline.name) → export \(name): \(delivery.summary)")
        if delivery.dead > 0 { throw SluiceError(.aborted, "export \(name): \(delivery.dead) batches dead-lettered (`sluice export retry`)") }
    }

    /// A run's counts as JSON, with its watermark: the newest modification time read
    /// (scheduled runs read only newer files).

    static func counts(files: [PipelineSource.File], window: (Date?, Date?), _ read: Int, _ dropped: Int, _ rejected: Int, _ loaded: Int,
                       rejectsFile: String? = nil) -> String {
        let newest = files.compactMap(\.modified).max() ?? window.0
        let mark = newest.map { ",\"watermark\":\($0.timeIntervalSince1970)" } ?? ""
        let enc = JSONEncoder()
        enc.outputFormatting = .withoutEscapingSlashes
        let file = rejectsFile.flatMap { try? enc.encode($0) }.map { ",\"rejects_file\":" + String(decoding: $0, as: UTF8.self) } ?? ""
        return "{\"files\":\(files.count),\"read\":\(read),\"dropped\":\(dropped),\"rejected\":\(rejected),\"loaded\":\(loaded)\(mark)\(file)}"
    }

    /// Loaded (the load committed): the source files may go.
    func afterLoad(_ pipeline: Pipeline, _ files: [PipelineSource.File]) async throws {
        guard pipeline.afterLoad != .keep else { return }
        try await PipelineSource(pipeline, s3: config.s3).afterLoad(files)
        log("\(pipeline.name): \(files.count) source file\(files.count == 1 ? "" : "s") \(pipeline.afterLoad == .delete ? "deleted" : "moved")")
    }

    /// A run over the queue: one extract job per source file; the stages hand batches on
    /// through the control plane and are run by any worker serving them (this process too,
    /// unless `--workers 0`). Waits until every job of the run is final.
    func executeStaged(_ pipeline: Pipeline, window: (Date?, Date?), run: Int64) async throws -> String {
        guard pipeline.sourceTable == nil, pipeline.source != Pipeline.uploadSource else {
            throw SluiceError(.invalidConfig, "pipeline \(pipeline.name) reads a table or uploads, which run inline: remove staged: true")
        }
        guard config.entity(pipeline.into) != nil else {
            throw SluiceError(.invalidConfig, "pipeline \(pipeline.name) is staged, so it loads into a declared entity: add entities.\(pipeline.into) (batches loaded at once must agree on the columns)")
        }
        let driver = runtime.driver
        let files = try await PipelineSource(pipeline, s3: config.s3).list(window: window)
        for (i, f) in files.enumerated() {
            var spec = JobSpec(source: pipeline.source, mode: pipeline.mode, fileName: f.key ?? pipeline.source)
            spec.stage = StageSpec(pipeline: pipeline.name, run: run, kind: .extract, key: f.key, etag: f.etag)
            _ = try await driver.insertJob(JobInsertParams(entity: pipeline.into, spec: spec, maxAttempts: pipeline.maxAttempts,
                                                           idempotencyKey: "run-\(run)/extract-\(f.key ?? String(i))", now: Date()))
        }
        log("\(pipeline.name): run \(run): \(files.count) file\(files.count == 1 ? "" : "s") queued for its stages")
        let slots = options.workers ?? config.worker.concurrency
        let worker: Task<Void, Never>? = slots <= 0 ? nil : {
            var quiet = runtime
            quiet.logger.logLevel = max(quiet.logger.logLevel, .notice)  // the progress lines say what each job did
            let service = quiet.worker(concurrency: slots, id: nil, wake: WakeSignal(), stages: StageKind.allCases)
            return Task { try? await service.run() }
        }()
        defer { worker?.cancel() }
        var lastLine = Date.distantPast
        while true {
            let counts = try await driver.runJobCounts(run: run)
            let active = counts.filter { !$0.state.isFinal }.reduce(0) { $0 + $1.count }
            if Date().timeIntervalSince(lastLine) >= 5 || active == 0 {
                lastLine = Date()
                let line = StageKind.allCases.map { k in
                    let c = counts.filter { $0.stage == k }
                    let done = c.filter { $0.state == .complete }.reduce(0) { $0 + $1.count }
                    return "\(k.rawValue) \(done)/\(c.reduce(0) { $0 + $1.count })"
                }.joined(separator: ", ")
                log("\(pipeline.name): run \(run): \(line) jobs done")
            }
            if active == 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        // Sum what each stage did; list what failed; gather the stages' rejected rows.
        var read = 0, dropped = 0, rejected = 0, loaded = 0
        var failures: [String] = []
        var parts: [String] = []
        var after: Int64 = 0
        while true {
            let jobs = try await driver.listJobs(JobListParams(after: after, limit: 1000, run: run))
            guard let last = jobs.last else { break }
            after = last.id
            for j in jobs {
                guard let stage = j.spec.stage else { continue }
                if j.state != .complete { failures.append("\(stage.kind.rawValue) job \(j.id) (\(j.spec.fileName ?? "")): \(j.error ?? j.state.rawValue)"); continue }
                let s = j.result?.stats ?? LoadStats()
                if stage.kind == .extract { read += Int(s.read) }
                if stage.kind == .load { loaded += Int(s.inserted + s.updated) }
                dropped += Int(s.skipped)
                rejected += Int(s.rejected)
                if stage.kind != .load, let part = j.result?.rejectsPath { parts.append(part) }
                for r in (j.result?.rejects ?? []).prefix(5) where rejected <= 20 { log("  rejected: \(r)") }
            }
        }
        try await driver.deleteStageBatches(run: run)
        let rejectsFile = try StepRejectLog.merge(parts, into: StepRejectLog.runFile(pipeline.name, run: run, stateDir: config.stateDir))
        log("\(pipeline.name): \(read) rows read, \(dropped) dropped by the steps, \(rejected) rejected\(rejectsFile.map { " (\($0))" } ?? ""), \(loaded) written into \(pipeline.into)")
        if !failures.isEmpty {
            throw SluiceError(.aborted, "\(failures.count) stage job\(failures.count == 1 ? "" : "s") failed (the other batches are loaded; `sluice jobs retry ID` re-runs one): \(failures.prefix(3).joined(separator: "; "))")
        }
        try await afterLoad(pipeline, files)
        try await export(pipeline)
        return Self.counts(files: files, window: window, read, dropped, rejected, loaded, rejectsFile: rejectsFile)
    }

    /// The newest file modification time the pipeline's last successful run read.
    func watermark(_ name: String) async throws -> Date? {
        for r in try await runtime.driver.runs(pipeline: name, limit: 100) where r.state == .succeeded {
            guard let text = r.counts, let o = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { continue }
            return (o["watermark"] as? Double).map { Date(timeIntervalSince1970: $0) }
        }
        return nil
    }

    /// A scheduled run's window: files modified after the pipeline's watermark (all on a first run).
    func scheduledWindow(_ name: String) async throws -> (Date?, Date?) {
        (try await watermark(name)?.addingTimeInterval(1e-6), nil)
    }

    /// Runs every scheduled pipeline that is due at `now` — once, covering every firing
    /// missed since its last successful scheduled run — then the pipelines `after:` it.
    /// `carryOnLapsed`: a scheduled run whose process died is carried on here first (for
    /// `sluice schedule tick`, where no run takeover runs beside the schedule).
    public func tick(now: Date, carryOnLapsed: Bool = false) async throws -> [String] {
        var ran: [String] = []
        let graph = config.pipelines.mapValues(\.after)
        for name in try PipelineDAG.order(graph) {
            guard let p = config.pipelines[name], let text = p.schedule else { continue }
            let cron = try CronSchedule(text, timeZone: p.timeZone.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")!)
            // A firing still running is not fired again beside it. One whose process died is
            // carried on by the run takeover of `sluice serve`, or here when asked; one whose
            // process died before it took its lease (no takeover can see it) is carried on here.
            // Either way the firing keeps its one run.
            switch try await openScheduledRun(name) {
            case .none: break
            case .underway: continue
            case .lapsed(let run, let leased):
                guard carryOnLapsed || !leased,
                      try await runtime.driver.acquireLease(name: RunLease.name(run.id), holder: Self.holder, seconds: config.server.leaseSeconds) != nil
                else { continue }
                log("\(name): run \(run.id) \(leased ? "lost its process (its lease lapsed)" : "never took its lease (its process died as it began)"): carrying it on here")
                _ = try await finish(p, run: run.id, window: (run.windowFrom, run.windowTo), upload: nil)
                ran.append(name)
            }
            let last = try await runtime.driver.lastScheduledSuccess(pipeline: name)
            // A pipeline that never ran starts at its latest firing, or catches up from its start_date.
            guard let due = SchedulePlanner.due(cron, lastScheduled: last, first: p.startDate ?? now.addingTimeInterval(-400 * 86_400), now: now) else { continue }
            if due.missed > 0, last != nil || p.startDate != nil {
                log("\(name): \(due.missed) missed firing\(due.missed == 1 ? "" : "s") caught up in this run")
            }
            // The window: files newer than those the last successful run read (all on a first run).
            let ok = try await run(name, scheduledFor: due.scheduledFor, window: try await scheduledWindow(name)) == .succeeded
            ran.append(name)
            guard ok else { continue }
            for d in try PipelineDAG.downstream(of: name, graph) where config.pipelines[d]?.schedule == nil {
                _ = try await run(d, scheduledFor: due.scheduledFor, window: try await scheduledWindow(d))
                ran.append(d)
            }
        }
        return ran
    }

    /// A scheduled run that has not ended, as the schedule sees it; a lapsed one had a lease
    /// (`leased`) or died before it took one.
    enum OpenRun { case none, underway, lapsed(PipelineRun, leased: Bool) }

    /// Whether a scheduled run of `name` has not ended: underway (its lease runs, or it began
    /// less than a lease period ago) or lapsed (its process died: its lease lapsed, or it has
    /// had none for a whole lease period).
    func openScheduledRun(_ name: String) async throws -> OpenRun {
        let driver = runtime.driver
        let open = try await driver.runs(pipeline: name, limit: 100).filter { $0.state == .running && $0.scheduledFor != nil }
        guard !open.isEmpty else { return .none }
        let leases = Dictionary(try await driver.leases().compactMap { l in RunLease.run(l.name).map { ($0, l.remaining) } }, uniquingKeysWith: max)
        var found = OpenRun.none
        for run in open {
            if let remaining = leases[run.id] {
                if remaining > 0 { return .underway }
                found = .lapsed(run, leased: true)
            } else if Date().timeIntervalSince(run.startedAt) < config.server.leaseSeconds {
                return .underway
            } else {
                found = .lapsed(run, leased: false)
            }
        }
        return found
    }

    /// The fields of a CSV file's header, as a pipeline reads them (`line` for text records,
    /// or whenever the pipeline groups records); nil for other formats (JSON records need not
    /// share their fields) or an unreadable file.
    public static func csvFields(_ path: String, records: TextRecords? = nil) -> [String]? {
        if records != nil { return ["line"] }
        guard let file = try? InputFile.inspect(path: path, format: nil) else { return nil }
        if file.format == .text { return ["line"] }
        guard file.format == .csv,
              let columns = try? file.inferColumns(dialect: CSVDialect(), rows: 1, exclude: [], limits: ReadLimits()) else { return nil }
        return columns.map(\.sourceField)
    }

    /// Checks the steps against the first file's fields (a CSV header): a step naming a field
    /// the rows lack fails the run at once instead of dropping or rejecting every row.
    static func checkFields(_ pipeline: Pipeline, firstFile path: String) throws(SluiceError) {
        guard let fields = csvFields(path, records: pipeline.textRecords) else { return }
        do {
            _ = try Pipeline.check(pipeline.steps, fields: fields)
        } catch {
            throw SluiceError(.invalidConfig, "pipeline \(pipeline.name), step \(error.step + 1) (\(pipeline.steps[error.step].kind)): \(error.message)")
        }
    }

    /// A pipeline's seen-file record, in the control plane's file ledger (as watch
    /// `pipeline:NAME`): each file version it loaded (`key`, etag) and each content (SHA-256).
    struct FileLedger {
        let name: String
        let driver: any QueueDriver
        init(pipeline: String, driver: any QueueDriver) {
            name = "pipeline:" + pipeline
            self.driver = driver
        }
        static func version(_ key: String, _ etag: String) -> String { "v:\(key)\n\(etag)" }
        static func content(_ sha: String) -> String { "sha256:" + sha }
        /// Which of `keys` an earlier run loaded.
        func loaded(_ keys: [String]) async throws(SluiceError) -> Set<String> {
            var out = Set<String>()
            var at = 0
            while at < keys.count {
                let part = Array(keys[at..<min(at + 1000, keys.count)])
                for f in try await driver.watchedFiles(watch: name, keys: part) where f.state == .queued { out.insert(f.key) }
                at += 1000
            }
            return out
        }
        func entry(_ key: String, sha: String, size: Int64, modified: Date?) -> WatchedFile {
            WatchedFile(watch: name, key: key, etag: sha, size: size, lastModified: modified ?? Date(), state: .queued, firstSeen: Date())
        }
    }

    /// A Delta table as the run's one input: the changes since the version the last run read
    /// (recorded in the file ledger as `<table id>@v<N>`) — new rows, or with the change data
    /// feed updates and deletes too (`op`: D) — or the whole snapshot the first time, after
    /// `--reprocess`, or when the table was re-created. A version in between that removed or
    /// rewrote rows of a table without the feed fails the run, saying to read it whole.
    func deltaSource(_ p: Pipeline, root named: String, selector asked: DeltaVersionSelector, whole: Bool, scratch: String) async throws(SluiceError)
        -> (files: [(path: String, name: String, file: PipelineSource.File)], entries: [WatchedFile]) {
        var (root, selector) = (named, asked)
        if DeltaRemote.isRemote("delta:" + named) {
            // In an object store: the snapshot's files fetched, then read as a local table.
            let local = try await DeltaRemote.localize(p.source, scratch: scratch + "/delta", s3: S3Config.from(config.s3))
            guard let parsed = try DeltaLocation.parse(local) else { throw SluiceError(.io, "\(named): the fetched table cannot be read") }
            (root, selector) = parsed
        }
        let storage = LocalDeltaStorage(root: root)
        let now = try DeltaLog.snapshot(storage, at: selector)
        let key = "delta:" + (Source.isRemote(named) ? named : URL(fileURLWithPath: named).standardizedFileURL.path)
        let name = (named as NSString).lastPathComponent
        var path = "delta:\(root)@v\(now.version)"
        let ledger = FileLedger(pipeline: p.name, driver: runtime.driver)
        if !whole {
            let last = try await runtime.driver.watchedFiles(watch: ledger.name, keys: [key]).filter { $0.state == .queued }
                .compactMap { now.versionRead($0.etag) }.max()
            if let last {
                guard last < now.version else {
                    log("\(p.name): \(name) is still at version \(now.version), read by an earlier run — --reprocess reads it again")
                    return ([], [])
                }
                path = "delta:\(root)@v\(last)..v\(now.version)"
                do throws(SluiceError) {
                    _ = try DeltaLog.snapshot(storage, at: .changes(after: last, through: now.version))
                } catch {
                    throw SluiceError(error.code, error.message.replacingOccurrences(of: "(without @v\(last)..)", with: "with --reprocess"), at: error.location)
                }
                log("\(p.name): \(name) \(last + 1 == now.version ? "version \(now.version)" : "versions \(last + 1)–\(now.version)"): the changes since the last run")
            }
        }
        return ([(path, name, PipelineSource.File())], [ledger.entry(key, sha: now.readTag, size: now.files.reduce(0) { $0 + $1.size }, modified: nil)])
    }

    /// The source's files as local paths (objects fetched into `scratch`), with display names;
    /// with a `ledger`, only versions and contents no earlier run loaded, and the ledger
    /// entries to record once this run succeeds.
    func sourceFiles(_ p: Pipeline, scratch: String, window: (Date?, Date?), ledger: FileLedger?) async throws(SluiceError)
        -> (files: [(path: String, name: String, file: PipelineSource.File)], entries: [WatchedFile], matched: Int) {
        let source = try PipelineSource(p, s3: config.s3)
        var listed = try await source.list(window: window)
        guard let ledger else {
            var out: [(path: String, name: String, file: PipelineSource.File)] = []
            for (i, f) in listed.enumerated() {
                let local = try await source.fetch(f, into: scratch, n: i)
                out.append((local.path, local.name, f))
            }
            return (out, [], listed.count)
        }
        func version(_ f: PipelineSource.File) -> String { FileLedger.version(f.key ?? p.source, f.etag ?? "") }
        let known = try await ledger.loaded(listed.map(version))
        let before = listed.count
        listed.removeAll { known.contains(version($0)) }
        var out: [(path: String, name: String, file: PipelineSource.File)] = []
        var entries: [WatchedFile] = []
        var contents = Set<String>()
        var same = 0
        for (i, f) in listed.enumerated() {
            let local = try await source.fetch(f, into: scratch, n: i, hashing: true)
            let sha = local.sha256 ?? ""
            let v = ledger.entry(version(f), sha: sha, size: local.size, modified: f.modified)
            // The same bytes under another name or a new modification time: loaded already.
            var duplicate = !contents.insert(sha).inserted
            if !duplicate { duplicate = try await !ledger.loaded([FileLedger.content(sha)]).isEmpty }
            if duplicate {
                same += 1
                entries.append(v)
                if local.temporary { try? FileManager.default.removeItem(atPath: local.path) }
                continue
            }
            out.append((local.path, local.name, f))
            entries += [v, ledger.entry(FileLedger.content(sha), sha: sha, size: local.size, modified: f.modified)]
        }
        let skipped = before - listed.count + same
        if skipped > 0 {
            log("\(p.name): \(skipped) file\(skipped == 1 ? "" : "s") skipped: loaded by an earlier run\(same > 0 ? " (\(same) with the same content as a loaded file)" : "") — --reprocess reads them again")
        }
        return (out, entries, before)
    }
}
