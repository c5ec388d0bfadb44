import ArgumentParser
import Synchronization
import Foundation
import SluiceRuntime
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals
import SluiceConfig
import SluiceCore
import SluiceHTTP
import SluiceQueue
import SluiceExport
import SluiceWorker
import SluiceWatch
import SluiceStorage

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the bulk-ingest API and run workers in the same process.",
        discussion: """
            API tokens come from server.tokens in sluice.yml and $SLUICE_API_TOKENS (comma-separated). \
            --no-auth is accepted only on a loopback address. SIGTERM or SIGINT stop accepting work \
            and let running jobs finish.
            
            Examples:
              SLUICE_API_TOKENS=secret sluice serve --host 0.0.0.0 --port 8080
              sluice serve --no-auth --no-workers
            """
    )

    @Option(help: "Port to listen on (0 picks a free one; the default is server.port, else 8080).")
    var port: Int?

    @Option(help: "Address to bind (default: server.host, else 127.0.0.1).")
    var host: String?

    @Flag(help: "Serve without authentication (loopback addresses only).")
    var noAuth = false

    @Flag(help: "Only serve the API; run workers with `sluice worker`.")
    var noWorkers = false

    @Option(help: "Jobs the in-process worker runs at once (default: worker.concurrency).")
    var concurrency: Int?

    @OptionGroup var shared: SharedOptions

    /// Serves `/healthz` (ok) and `/readyz` (503, `reason`) on `host:port` until every
    /// database answers, checking every 2 s; returns the port it had (to bind again).
    static func waitForDatabase(config: SluiceConfig, host: String, port: Int, reason: String) async throws -> Int {
        let why = Mutex(reason)
        let bound = Mutex(port)
        FileHandle.standardError.write(Data("waiting for the database: \(reason)\n".utf8))
        let app = Application(router: SluiceAPI.waitingRouter { why.withLock { $0 } },
                              configuration: .init(address: .hostname(host, port: port), serverName: "sluice"),
                              onServerRunning: { channel in
                                  let p = channel.localAddress?.port ?? port
                                  bound.withLock { $0 = p }
                                  FileHandle.standardOutput.write(Data("sluice listening on http://\(host):\(p) (not ready: waiting for the database)\n".utf8))
                              })
        let server = Task { try await app.runService() }
        while true {
            try await Task.sleep(for: .seconds(2))
            guard let still = await Backends.unreachable([config.controlDatabase, config.targetDatabase]) else { break }
            why.withLock { $0 = still }
        }
        server.cancel()
        _ = await server.result
        FileHandle.standardError.write(Data("the database answers: starting\n".utf8))
        return bound.withLock { $0 }
    }

    func run() async throws {
        let config = try shared.start()
        let host = self.host ?? config.server.host
        let configuredPort = self.port ?? config.server.port
        var tokens = config.server.tokens
        if let env = ProcessInfo.processInfo.environment["SLUICE_API_TOKENS"] {
            tokens += env.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if noAuth {
            guard ["127.0.0.1", "::1", "localhost"].contains(host) else {
                throw fail("--no-auth is only allowed on a loopback address, not \(host)")
            }
            tokens = []
        } else if tokens.isEmpty {
            throw fail("no API tokens: set server.tokens in sluice.yml or SLUICE_API_TOKENS, or use --no-auth on 127.0.0.1")
        }
        let noWorkers = self.noWorkers, concurrency = self.concurrency, tokens2 = tokens
        // A database that is away at start: listen anyway (healthy, not ready, saying why)
        // until it answers, then start for real on the same port.
        var waitedOn: Int? = nil
        if let why = await Backends.unreachable([config.controlDatabase, config.targetDatabase]) {
            waitedOn = try await Self.waitForDatabase(config: config, host: host, port: configuredPort, reason: why)
        }
        let port = waitedOn ?? configuredPort
        do {
            var guardLimits = ConnectionLimits.forDescriptorLimit(raiseDescriptorLimit())
            if let cap = config.server.maxConnections { guardLimits.maxConnections = min(guardLimits.maxConnections, cap) }
            let limits = guardLimits
            try await Runtime.with(config) { runtime in
                runtime.logger.info("starting", metadata: [
                    "database": "\(runtime.backend.displayName)", "config": "\(config.path ?? "none")", "state_dir": "\(config.stateDir)",
                    "address": "\(host):\(port)", "workers": "\(noWorkers ? 0 : concurrency ?? config.worker.concurrency)",
                ])
                let swept = SluiceAPI.sweepPartialUploads(in: config.uploadDir)
                if swept.files > 0 { runtime.logger.notice("removed \(swept.files) partial uploads (\(swept.bytes) bytes) left by a server that stopped mid-upload") }
                let wake = WakeSignal()
                var services: [any Service] = []
                let execution = PipelineExecution(config: config, runtime: runtime, reporter: .shell(quiet: false, json: false))
                if !noWorkers { services.append(runtime.worker(concurrency: concurrency, id: nil, wake: wake)) }
                // retention:, every hour (SLUICE_CLEANUP=off leaves it to `sluice gc`, e.g. from cron)
                if ProcessInfo.processInfo.environment["SLUICE_CLEANUP"]?.lowercased() != "off" { services.append(CleanupService(runtime: runtime)) }
                // Of several replicas, one fires the schedules and one polls each watch: whichever
                // holds that lease in the control plane (another takes over when it dies).
                let holder = LeasedService.holderName(), lease = config.server.leaseSeconds
                func leased(_ s: any Service, _ name: String) -> any Service {
                    LeasedService(s, lease: name, holder: holder, seconds: lease, store: runtime.driver, logger: runtime.logger)
                }
                // Scheduled pipelines are checked every 30 s, or every lease period when shorter
                // (each due one runs once, catching up).
                if config.pipelines.values.contains(where: { $0.schedule != nil }) {
                    services.append(leased(PeriodicService.scheduler(execution, every: min(30, lease)), "schedules"))
                }
                // A run whose process died (its lease lapsed unfinished) is carried on here.
                if !config.pipelines.isEmpty { services.append(leased(PeriodicService.runTakeover(execution, every: lease / 2), "runs")) }
                // Declared watches poll in this process; their jobs go to the workers like any other.
                if !config.watches.isEmpty { try FileManager.default.createDirectory(atPath: config.uploadDir, withIntermediateDirectories: true) }
                for name in config.watches.keys.sorted() {
                    let spec = try WatchCommand.spec(name: name, source: nil, into: nil, config: config)
                    services.append(leased(WatchService(watcher: try Watcher(spec: spec, driver: runtime.driver, uploadDir: config.uploadDir, storage: runtime.policy.storage,
                                                                             s3: S3Config.from(config.s3), logger: runtime.logger)), "watch:\(name)"))
                }
                var deps = APIDependencies(config: config, driver: runtime.driver, policy: runtime.policy, wake: wake, tokens: tokens2)
                deps.exports = try await runtime.backend.exportStore()  // nil: the tables are in MySQL
                // SLUICE_METRICS=off: no /metrics and no Prometheus backend (every recording a no-op).
                if ProcessInfo.processInfo.environment["SLUICE_METRICS"]?.lowercased() != "off" { deps.metrics = MetricsEndpoint(driver: runtime.driver) }
                deps.accessLog = runtime.logger
                deps.tracing = Telemetry.requested
                deps.runPipeline = { name, upload in
                    try await execution.start(name, upload: .init(path: upload.path, name: upload.originalName ?? "upload \(upload.id)", id: upload.id))
                }
                deps.runNow = { name, from, to in try await execution.start(name, window: (from, to)) }
                let app = Application(
                    router: SluiceAPI.router(deps),
                    server: SluiceAPI.server(limits: limits, maxBodyBytes: config.server.maxBodyBytes),
                    // A long accept queue: under a connection flood, a full queue drops SYNs and the
                    // client retries only after a second.
                    configuration: .init(address: .hostname(host, port: port), serverName: "sluice", backlog: 4_096),
                    services: services,
                    onServerRunning: { channel in
                        let bound = channel.localAddress?.port ?? port
                        // One line on stdout that scripts (and tests) can wait for.
                        FileHandle.standardOutput.write(Data("sluice listening on http://\(host):\(bound)\n".utf8))
                    },
                    logger: runtime.logger
                )
                try await app.runService()
            }
        } catch let e as SluiceError {
            throw fail(e.description)
        }
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run workers against the control plane (no API).",
        discussion: """
            Any number of worker processes can share one control plane; SIGTERM lets running jobs finish. \
            With --stage, a worker runs only that stage of pipelines declared `staged: true` \
            (extract, enrich or load; repeat the option for several), so each stage scales on its own: \
            `sluice worker --stage enrich --concurrency 16` on one host, `--stage load` on another.
            
            Examples:
              sluice worker --concurrency 4
              sluice worker --stage enrich
            """
    )

    @Option(help: "Jobs run at once (default: worker.concurrency).")
    var concurrency: Int?

    @Option(help: "Only this pipeline stage: extract, enrich or load (repeatable). Default: every job.")
    var stage: [String] = []

    @Option(help: "Worker name shown on the jobs it holds (default: host:pid).")
    var id: String?

    @Flag(help: "Run the jobs that are ready, then exit.")
    var once = false

    @Option(help: "Serve Prometheus metrics (and /healthz) on this port, on 127.0.0.1 unless --metrics-host says otherwise.")
    var metricsPort: Int?

    @Option(help: "Address the metrics server binds (default 127.0.0.1).")
    var metricsHost = "127.0.0.1"

    @OptionGroup var shared: SharedOptions

    func run() async throws {
        let config = try shared.start()
        let concurrency = self.concurrency, id = self.id, once = self.once
        var stages: [StageKind]? = nil
        if !stage.isEmpty {
            stages = try stage.map { name in
                guard let k = StageKind(rawValue: name) else { throw ValidationError("--stage: '\(name)' is not a stage (extract, enrich, load)") }
                return k
            }
        }
        let only = stages, metricsAt = metricsPort.map { (metricsHost, $0) }
        do {
            try await Runtime.with(config) { runtime in
                let worker = runtime.worker(concurrency: concurrency, id: id, wake: WakeSignal(), stages: only)
                if once {
                    let n = await worker.runOnce()
                    print("ran \(n) job\(n == 1 ? "" : "s")")
                    return
                }
                let group = ServiceGroup(configuration: .init(services: [worker] + metricsServer(metricsAt, runtime),
                                                              gracefulShutdownSignals: [.sigterm, .sigint], logger: runtime.logger))
                try await group.run()
            }
        } catch let e as SluiceError {
            throw fail(e.description)
        }
    }
}

/// The metrics server of a process without the API (`--metrics-port`), as a service.
func metricsServer(_ at: (host: String, port: Int)?, _ runtime: Runtime) -> [any Service] {
    guard let at else { return [] }
    return [MetricsEndpoint(driver: runtime.driver).application(host: at.host, port: at.port, logger: runtime.logger)]
}

/// Runs `sluice schedule tick` every 30 seconds until a graceful shutdown.
