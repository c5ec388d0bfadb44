public import Logging
import OTel
import ServiceLifecycle
import Tracing
import Foundation
import Synchronization

/// Traces over OTLP/HTTP (swift-otel) when `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; the other `OTEL_*` variables (service name,
/// protocol, headers, sampler, batch delays) are read as the OpenTelemetry spec defines them.
/// Off otherwise: spans are then no-ops and nothing is sent.
public enum Telemetry {
    /// True when the environment asks for traces.
    public static var requested: Bool {
        let env = ProcessInfo.processInfo.environment
        let endpoint = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].contains { !(env[$0] ?? "").isEmpty }
        return endpoint && env["OTEL_SDK_DISABLED"]?.lowercased() != "true" && env["OTEL_TRACES_EXPORTER"]?.lowercased() != "none"
    }

    /// The tracer is installed once per process (swift-distributed-tracing allows no more).
    static let installed = Mutex(false)

    /// Runs `body` with traces exported while it runs, then flushes what is still buffered.
    public static func withTracing<T: Sendable>(logger: Logger, _ body: () async throws -> T) async throws -> T {
        guard requested, installed.withLock({ was in defer { was = true }; return !was }) else { return try await body() }
        var config = OTel.Configuration.default
        config.serviceName = "sluice"
        config.logs.enabled = false
        config.metrics.enabled = false
        // A collector that is down must not hold up a shutdown for the spec's 30 s per
        // export (the last flush and the exporter's shutdown each wait this long at most).
        config.traces.batchSpanProcessor.exportTimeout = .seconds(2)
        config.diagnosticLogger = .custom(logger)
        config.diagnosticLogLevel = .warning
        let backend: (factory: any Tracer, service: any Service)
        do {
            let (tracer, service) = try OTel.makeTracingBackend(configuration: config)
            backend = (tracer, service)
        } catch {
            logger.error("tracing is off: \(error)")
            return try await body()
        }
        InstrumentationSystem.bootstrap(backend.factory)
        logger.info("tracing to an OTLP collector", metadata: ["endpoint": "\(ProcessInfo.processInfo.environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] ?? ProcessInfo.processInfo.environment["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? "")"])
        let group = ServiceGroup(services: [backend.service], gracefulShutdownSignals: [], logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            await group.triggerGracefulShutdown()  // the batch processor sends what it holds
            try? await tasks.waitForAll()
            return try result.get()
        }
    }

    /// Log metadata naming the current span: `trace_id` and `span_id`.
    static let logMetadata = Logger.MetadataProvider {
        var m = spanIDs.get()
        if !m.isEmpty { m.removeValue(forKey: "trace_flags") }
        return m
    }
    static let spanIDs = OTel.makeLoggingMetadataProvider()
}
