public import Logging
import Tracing
import SluiceQueue
import Foundation
import Synchronization
import SluiceCore

/// Traces over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` or
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
        let settings: OTLPSettings
        do {
            settings = try OTLPSettings(environment: ProcessInfo.processInfo.environment)
        } catch {
            logger.error("tracing is off: \(error.message)")
            return try await body()
        }
        for warning in settings.warnings { logger.warning("\(warning)") }
        let queue = SpanQueue(capacity: settings.queueSize, batchSize: settings.batchSize)
        InstrumentationSystem.bootstrap(SpanTracer(sampler: settings.sampler, queue: queue))
        logger.info("tracing to an OTLP collector", metadata: ["endpoint": "\(settings.endpoint)"])
        let exporter = OTLPExporter(settings: settings, queue: queue, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await exporter.run() }
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            queue.close()  // the exporter sends what it holds, then stops
            try? await tasks.waitForAll()
            return try result.get()
        }
    }

    /// Log metadata naming the current span: `trace_id` and `span_id`.
    static let logMetadata = Logger.MetadataProvider {
        guard let trace = ServiceContext.current?[TraceContextKey.self] else { return [:] }
        return ["trace_id": .string(trace.traceIDHex), "span_id": .string(trace.spanIDHex)]
    }
}
