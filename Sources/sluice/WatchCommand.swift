import ArgumentParser
import Foundation
import SluiceRuntime
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals
import SluiceConfig
import SluiceCore
import SluiceQueue
import SluiceStorage
import SluiceWatch
import SluiceWorker

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Watch a folder, S3 prefix or FTP folder and load each new file once.",
        discussion: """
            Each poll lists the location, matches the glob, and records every object version \
            (key + etag) in the file ledger. A version is loaded once it is stable: seen with the \
            same size and etag by an earlier poll, or older than --min-age. It is fetched (its \
            etag checked, so an object overwritten meanwhile is noticed), copied to the raw layer \
            and queued as a job under an idempotency key of the watch, key and etag: restarts, \
            crashes and several watchers never load a version twice.
            
            Examples:
              sluice watch 's3://landing/input/*.json' --into orders --once
              sluice watch ftp://user:pw@ftp.example.com/drop/ --glob '*.csv' --into points
              sluice watch status orders
            """,
        subcommands: [Run.self, Status.self],
        defaultSubcommand: Run.self
    )

    /// The spec from a declared watch and/or the command line (usage mistakes as such).
    static func spec(name: String?, source: String?, into: String?, config: SluiceConfig) throws -> WatchSpec {
        do { return try WatchSpec.from(config: config, name: name, source: source, into: into) } catch {
            if error.code == .invalidArgument { throw ValidationError(error.message) }
            throw error
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Poll until stopped (or once), loading new files.")

        @Argument(help: "s3://bucket/prefix/, gs://bucket/prefix/, gdrive://FOLDER_ID/, ftp://user:password@host/folder/, a folder, or the name of a watch declared in sluice.yml.") var source: String?
        @Option(help: "Entity the files load into.") var into: String?
        @Option(help: "Name of this watch in the file ledger (default: from the source and entity).") var name: String?
        @Option(help: "Only files matching this pattern, relative to the watched folder (`*.json`; `**` crosses folders).") var glob: String?
        @Option(help: "Seconds between polls (default 5).") var interval: Double?
        @Option(help: "Load objects this many seconds old at once (default: wait for a second poll to see them unchanged).") var minAge: Double?
        @Option(help: "A loaded object that changes: reprocess (default) or ignore.") var onChange: String?
        @Option(help: "At most this many files per poll.") var maxFiles: Int?
        @Option(help: "At most this many bytes per poll (at least one file).") var maxBytes: Int64?
        @Flag(help: "Only objects newer than the newest one already loaded.") var watermark = false
        @Option(help: "Copy each file unchanged here first (s3://bucket/raw/ or a folder), under NAME/yyyy/mm/dd/.") var raw: String?
        @Option(help: "Input format (default: from the file name or content).") var format: SourceFormat?
        @Option(help: "Write mode (default: the entity's).") var mode: WriteMode?
        @Flag(help: "Poll once, load what it queued, print a summary and exit.") var once = false
        @Flag(help: "Only queue jobs; leave loading to `sluice worker` / `sluice serve`.") var noWorkers = false
        @Option(help: "Jobs the in-process worker runs at once (default: worker.concurrency).") var concurrency: Int?
        @Flag(help: "Print the --once summary as JSON.") var json = false
        @Flag(help: "With --once: exit 4 when no file in the location matches.") var failIfEmpty = false
        @Option(help: "Serve Prometheus metrics (and /healthz) on this port, on 127.0.0.1 unless --metrics-host says otherwise.") var metricsPort: Int?
        @Option(help: "Address the metrics server binds (default 127.0.0.1).") var metricsHost = "127.0.0.1"
        @OptionGroup var shared: SharedOptions

        func run() async throws {
            let config = try shared.start()
            var spec = try WatchCommand.spec(name: name, source: source, into: into, config: config)
            if let name { spec.name = name }
            if let glob { spec.rules.glob = Glob(glob) }
            if let interval {
                guard interval > 0 else { throw ValidationError("--interval must be positive") }
                spec.interval = interval
            }
            if let minAge { spec.rules.minAge = minAge }
            if let onChange {
                guard let p = ChangePolicy(rawValue: onChange) else { throw ValidationError("--on-change is reprocess or ignore") }
                spec.rules.onChange = p
            }
            if let maxFiles { spec.rules.maxFiles = maxFiles }
            if let maxBytes { spec.rules.maxBytes = maxBytes }
            if watermark { spec.rules.watermark = true }
            if let raw { spec.raw = raw }
            if let format { spec.format = format }
            if let mode { spec.mode = mode }
            let (finalSpec, once, noWorkers, concurrency, json, failIfEmpty) = (spec, once, noWorkers, concurrency, json, failIfEmpty)
            let metricsAt = metricsPort.map { (metricsHost, $0) }
            do {
                try await Runtime.with(config) { runtime in
                    try FileManager.default.createDirectory(atPath: config.uploadDir, withIntermediateDirectories: true)
                    let watcher = try Watcher(spec: finalSpec, driver: runtime.driver, uploadDir: config.uploadDir, storage: runtime.policy.storage,
                                              s3: S3Config.from(config.s3), logger: runtime.logger)
                    let worker = runtime.worker(concurrency: concurrency, id: nil, wake: WakeSignal())
                    if once {
                        let report = try await watcher.poll()
                        if !noWorkers { _ = await worker.runOnce() }
                        var loaded = 0, failed = 0, same = 0, pending = 0
                        for id in report.jobs {
                            let job = try await runtime.driver.job(id: id)
                            switch job?.state {
                            case .complete? where job?.result?.duplicateOf != nil: same += 1  // the same bytes were loaded before
                            case .complete?: loaded += 1
                            case .error?, .cancelled?: failed += 1
                            default: pending += 1  // retried later (by the next pass, a worker or serve)
                            }
                        }
                        if json {
                            let enc = JSONEncoder()
                            enc.outputFormatting = [.sortedKeys]
                            print(String(decoding: try enc.encode(OnceSummary(poll: report, loaded: loaded, failedJobs: failed, sameContent: same, pending: pending)), as: UTF8.self))
                        } else {
                            print("listed \(report.listed); new \(report.seen) (loaded once stable); queued \(report.queued); loaded \(loaded); same content as a loaded file \(same); "
                                  + "pending \(pending); failed \(report.failed + failed); ignored \(report.ignored); deferred \(report.deferred); retry \(report.retry)")
                        }
                        // Files left to retry (a failed fetch or raw-layer copy) are not done either.
                        if report.failed + failed + report.retry > 0 { throw ExitCode(3) }
                        if report.matched == 0 {
                            FileHandle.standardError.write(Data("no file in \(finalSpec.source) matched\(finalSpec.rules.glob.map { " \($0.pattern)" } ?? "")\n".utf8))
                            if failIfEmpty { throw ExitCode(4) }
                        }
                        return
                    }
                    var services: [any Service] = [WatchService(watcher: watcher)] + metricsServer(metricsAt, runtime)
                    if !noWorkers { services.append(worker) }
                    let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: runtime.logger))
                    try await group.run()
                }
            } catch let e as SluiceError {
                throw fail(e.description)
            }
        }
    }

    struct OnceSummary: Encodable {
        var poll: WatchPollReport
        var loaded: Int
        var failedJobs: Int
        /// Jobs whose file had the bytes of one loaded before (nothing loaded again).
        var sameContent: Int
        /// Jobs not finished when the pass ended (a retry waits for its turn).
        var pending: Int
        enum CodingKeys: String, CodingKey { case poll, loaded, pending, failedJobs = "failed_jobs", sameContent = "same_content" }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The file ledger of a watch: each object version, its state and its job.")
        @Argument(help: "The watch's name.") var name: String
        @Flag(help: "Print as JSON.") var json = false
        @OptionGroup var shared: SharedOptions

        func run() async throws {
            let config = try shared.start()
            let (name, json) = (name, json)
            do {
                try await Runtime.with(config) { runtime in
                    let files = try await runtime.driver.watchedFiles(watch: name, keys: nil)
                    var rows: [(WatchedFile, String)] = []
                    for f in files {
                        var state = f.state.rawValue
                        if let id = f.jobID, let job = try await runtime.driver.job(id: id) {
                            state = job.state == .complete ? "loaded" : "\(f.state.rawValue) (job \(id) \(job.state.rawValue)\(job.error.map { ": \($0)" } ?? ""))"
                        }
                        rows.append((f, state))
                    }
                    if json {
                        let enc = JSONEncoder()
                        enc.outputFormatting = [.sortedKeys]
                        enc.dateEncodingStrategy = .iso8601
                        print(String(decoding: try enc.encode(files), as: UTF8.self))
                        return
                    }
                    for (f, state) in rows {
                        print("\(f.key)\t\(f.etag.prefix(12))\t\(f.size) bytes\t\(state)\(f.error.map { "\t\($0)" } ?? "")")
                    }
                    print("\(files.count) versions: " + WatchedFileState.allCases.map { s in "\(files.filter { $0.state == s }.count) \(s.rawValue)" }.joined(separator: ", "))
                }
            } catch let e as SluiceError {
                throw fail(e.description)
            }
        }
    }
}

/// A watcher as a service: polls until a graceful shutdown.
