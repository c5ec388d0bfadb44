public import SluiceConfig
public import SluiceQueue
public import SluiceStorage
public import SluiceWorker
public import Logging
public import SluiceCore
import SluiceLoad
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The composition root of `serve`, `worker`, `run` and `jobs`: the control plane and job
/// target of the configured backend, the source policy, and workers built from them.
public struct Runtime: Sendable {
    public let config: SluiceConfig
    public let driver: any QueueDriver
    public let target: any DataTarget
    public let backend: any Backend
    public let policy: SourcePolicy
    public var logger: Logger

    /// Runs `body` with the runtime (the control plane migrated); a PostgreSQL pool runs for
    /// exactly that long.
    public static func with<T: Sendable>(_ config: SluiceConfig, _ body: @Sendable (Runtime) async throws -> T) async throws -> T {
        var logger = Logger(label: "sluice")
        logger.logLevel = logLevel
        var policy = SourcePolicy(uploadDir: config.uploadDir, fileRoots: config.server.fileRoots,
                                  httpAllowlist: config.server.httpAllowlist, allowLinkLocal: config.server.allowLinkLocal)
        policy.s3Buckets = config.server.s3Buckets
        policy.gcsBuckets = config.server.gcsBuckets
        policy.storage = try SharedStorage.configured(config)
        let (p, l) = (policy, logger)
        return try await Telemetry.withTracing(logger: logger) { try await Backends.with(control: config.controlDatabase, target: config.targetDatabase, maxConnections: max(8, config.worker.concurrency * 2 + 4), logger: logger, tableSchema: config.targetSchema) { backend in
            guard let driver = try backend.controlPlane() else {
                throw SluiceError(.invalidConfig, "\(backend.displayName) holds tables only: keep the control plane on SQLite or PostgreSQL")
            }
            l.info("using \(backend.displayName)")
            try await driver.migrate()
            if let rate = GoogleConfig.fromEnvironment().rate {
                // Every process on this control plane shares one Google request budget.
                let reservoir = TokenReservoir(bucket: "google", rate: rate, concurrency: 8) { b, r, burst, n, now throws(SluiceError) in
                    try await driver.takeTokens(bucket: b, rate: r, burst: burst, count: n, now: now)
                }
                GoogleAPI.installGate(SharedGoogleGate(reservoir: reservoir))
            }
            return try await body(Runtime(config: config, driver: driver, target: backend.target, backend: backend, policy: p, logger: l))
        } }
    }

    /// The export ledger in the runtime's database.
    public func exportStore() async throws -> any ExportStore { try await Backends.exportStore(backend) }

    public func worker(concurrency: Int?, id: String?, wake: WakeSignal, stages: [StageKind]? = nil) -> WorkerService {
        var options = WorkerOptions(settings: config.worker, workDir: config.workDir)
        options.stages = stages
        options.stagedPipelines = config.pipelines.values.contains(where: \.staged)
        if let concurrency { options.concurrency = max(1, concurrency) }
        if let id { options.id = id }
        var log = logger
        log[metadataKey: "worker"] = "\(options.id)"
        let executor = JobExecutor(driver: driver, target: target, config: config, policy: policy, options: options, logger: log)
        return WorkerService(driver: driver, executor: executor, options: options, wake: wake, logger: log, wakeSource: backend.wakeSource)
    }

    /// Process-wide set-up every command runs first: logging to stderr, and an allocator
    /// that keeps large buffers (pages, batches) instead of mapping and faulting in fresh
    /// memory for each one.
    /// The level `LOG_LEVEL` asks for (default info).
    static var logLevel: Logger.Level { ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info }

    /// `format`: `text` or `json` (default `$SLUICE_LOG_FORMAT`, else text).
    public static func bootstrapLogging(format: LineLogHandler.Format? = nil) {
        let chosen = format ?? ProcessInfo.processInfo.environment["SLUICE_LOG_FORMAT"].flatMap { LineLogHandler.Format(rawValue: $0.lowercased()) } ?? .text
        let level = logLevel
        LoggingSystem.bootstrap({ label, provider in
            var h = LineLogHandler(label: label, format: chosen)
            h.logLevel = level
            h.metadataProvider = provider
            return h
        }, metadataProvider: Telemetry.logMetadata)
        #if canImport(Glibc)
        // mallopt is not in Glibc's Swift module; M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        if let f = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {
            let mallopt = unsafeBitCast(f, to: Mallopt.self)
            _ = mallopt(-3, 64 << 20)
            _ = mallopt(-1, 128 << 20)
        }
        #endif
    }
}

/// Google's request budget taken from the control plane, so every worker and replica stays
/// under one quota together.
struct SharedGoogleGate: GoogleRequestGate {
    let reservoir: TokenReservoir
    func enter() async { await reservoir.take() }
}

extension SharedStorage {
    /// The storage `storage:` in sluice.yml names, if any.
    public static func configured(_ config: SluiceConfig) throws(SluiceError) -> SharedStorage? {
        try config.storage.map { (url) throws(SluiceError) in try SharedStorage(url, s3: S3Config.from(config.s3)) }
    }
}
