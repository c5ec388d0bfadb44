import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SluiceCore
import SluiceFormats

/// What the OpenTelemetry environment variables ask of trace export (OTLP/HTTP only).
struct OTLPSettings: Sendable {
    var endpoint: String
    var json = false
    /// `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`: each request's body gzipped.
    var gzip = false
    var headers: [(String, String)] = []
    var requestTimeout: Duration = .seconds(10)
    var exportTimeout: Duration = .seconds(2)
    var scheduleDelay: Duration = .seconds(5)
    var queueSize = 2048
    var batchSize = 512
    var sampler = TraceSampler.default
    var resource: [(String, String)] = []
    /// Things set that are not honoured (said once at start-up).
    var warnings: [String] = []

    /// Reads `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `…PROTOCOL`, `…HEADERS`, `…TIMEOUT`,
    /// `…COMPRESSION`, `OTEL_BSP_*`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_SERVICE_NAME` and
    /// `OTEL_RESOURCE_ATTRIBUTES` as the OpenTelemetry spec defines them. An export timeout
    /// of 2 s instead of the spec's 30 s: a collector that is down must not hold up a shutdown.
    init(environment env: [String: String]) throws(SluiceError) {
        func value(_ name: String) -> String? {
            for key in ["OTEL_EXPORTER_OTLP_TRACES_\(name)", "OTEL_EXPORTER_OTLP_\(name)"] {
                if let v = env[key]?.trimmingCharacters(in: .whitespaces), !v.isEmpty { return v }
            }
            return nil
        }
        func milliseconds(_ key: String, _ v: String?) throws(SluiceError) -> Duration? {
            guard let v else { return nil }
            guard let ms = Int(v), ms >= 0, ms <= 86_400_000 else { throw SluiceError(.invalidConfig, "\(key)=\(v): expected milliseconds") }
            return .milliseconds(ms)
        }
        func count(_ key: String) throws(SluiceError) -> Int? {
            guard let v = env[key], !v.isEmpty else { return nil }
            guard let n = Int(v), n > 0, n <= 1_000_000 else { throw SluiceError(.invalidConfig, "\(key)=\(v): expected a positive count") }
            return n
        }
        if let e = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], !e.isEmpty {
            endpoint = e  // used as given, as the spec says
        } else if let e = env["OTEL_EXPORTER_OTLP_ENDPOINT"], !e.isEmpty {
            endpoint = (e.hasSuffix("/") ? String(e.dropLast()) : e) + "/v1/traces"
        } else {
            throw SluiceError(.invalidConfig, "OTEL_EXPORTER_OTLP_ENDPOINT is not set")
        }
        guard let url = URL(string: endpoint), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
            throw SluiceError(.invalidConfig, "OTLP endpoint \(endpoint): expected an http:// or https:// URL")
        }
        switch value("PROTOCOL") ?? "http/protobuf" {
        case "http/protobuf": json = false
        case "http/json": json = true
        case let p: throw SluiceError(.unsupported, "OTEL_EXPORTER_OTLP_PROTOCOL=\(p): Sluice sends http/protobuf or http/json")
        }
        if let h = value("HEADERS") { headers = Self.pairs(h) }
        switch value("COMPRESSION") ?? "none" {
        case "none": break
        case "gzip": gzip = true
        case let c: warnings.append("OTEL_EXPORTER_OTLP_COMPRESSION=\(c) is not supported (gzip or none): spans are sent uncompressed")
        }
        if let t = try milliseconds("OTEL_EXPORTER_OTLP_TIMEOUT", value("TIMEOUT")) { requestTimeout = t }
        if let t = try milliseconds("OTEL_BSP_EXPORT_TIMEOUT", env["OTEL_BSP_EXPORT_TIMEOUT"]) { exportTimeout = t }
        if let d = try milliseconds("OTEL_BSP_SCHEDULE_DELAY", env["OTEL_BSP_SCHEDULE_DELAY"]) { scheduleDelay = max(d, .milliseconds(1)) }
        if let n = try count("OTEL_BSP_MAX_QUEUE_SIZE") { queueSize = n }
        if let n = try count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") { batchSize = min(n, queueSize) }
        do {
            sampler = try TraceSampler(name: env["OTEL_TRACES_SAMPLER"], argument: env["OTEL_TRACES_SAMPLER_ARG"])
        } catch {
            warnings.append("\(error.message); sampling every trace (parentbased_always_on)")
        }
        let given = Self.pairs(env["OTEL_RESOURCE_ATTRIBUTES"] ?? "")
        var attributes = given.filter { $0.0 != "service.name" }
        let service = env["OTEL_SERVICE_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? given.last { $0.0 == "service.name" }?.1 ?? "sluice"
        attributes.insert(("service.name", service), at: 0)
        attributes += [("telemetry.sdk.name", "sluice"), ("telemetry.sdk.language", "swift")]
        resource = attributes
    }

    /// `k1=v1,k2=v2` with percent-encoded values (W3C baggage's form, which the spec uses
    /// for headers and resource attributes); a pair without `=` is skipped.
    static func pairs(_ s: String) -> [(String, String)] {
        s.split(separator: ",").compactMap { item in
            guard let eq = item.firstIndex(of: "=") else { return nil }
            let key = item[..<eq].trimmingCharacters(in: .whitespaces)
            let raw = item[item.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { return nil }
            return (key, raw.removingPercentEncoding ?? raw)
        }
    }
}

/// Sends the span queue to an OTLP/HTTP collector: a batch whenever one is full and
/// whatever waits every `scheduleDelay`; a failed export loses its spans (and says so),
/// never holds up the process. Its HTTP client traces nothing, or it would trace itself.
final class OTLPExporter: Sendable {
    let settings: OTLPSettings
    let queue: SpanQueue
    let logger: Logger
    private let client: HTTPClient

    init(settings: OTLPSettings, queue: SpanQueue, logger: Logger) {
        var config = HTTPClient.Configuration()
        config.tracing.tracer = nil
        config.timeout.connect = TimeAmount(settings.exportTimeout)
        (self.settings, self.queue, self.logger) = (settings, queue, logger)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    /// Exports until the queue is closed, then what is left (giving up at the first failure).
    func run() async {
        let timer = Task { [queue, settings] in
            while !Task.isCancelled {
                try? await Task.sleep(for: settings.scheduleDelay)
                queue.wake()
            }
        }
        let clock = ContinuousClock()
        var lastFlush = clock.now
        for await _ in queue.wakes {
            // Whole batches as soon as they fill; a partial one only once per delay, so a busy
            // server sends a few large requests, not a stream of small ones.
            let due = clock.now - lastFlush >= settings.scheduleDelay
            if due { lastFlush = clock.now }
            await exportWaiting(partial: due, stopOnFailure: false)
        }
        timer.cancel()
        await exportWaiting(partial: true, stopOnFailure: true)
        try? await client.shutdown()
    }

    private func exportWaiting(partial: Bool, stopOnFailure: Bool) async {
        while true {
            let (spans, dropped) = queue.take(partial: partial)
            if dropped > 0 { logger.warning("dropped \(dropped) spans: more ended than the collector took (OTEL_BSP_MAX_QUEUE_SIZE \(queue.capacity))") }
            guard !spans.isEmpty else { return }
            if await !send(spans) && stopOnFailure { return }
        }
    }

    /// Sends one batch. A busy or briefly absent collector (429, 502, 503, 504, or no connection)
    /// is tried again after 100 ms, 200 ms, … or its `Retry-After`, as OTLP/HTTP asks, within
    /// the export timeout; any other refusal loses the batch at once.
    private func send(_ spans: [FinishedSpan]) async -> Bool {
        var body = settings.json ? OTLPEncoding.json(spans, resource: settings.resource) : OTLPEncoding.protobuf(spans, resource: settings.resource)
        var gzipped = false
        if settings.gzip {  // once, not per attempt
            let packed = body.withUnsafeBytes { b -> Result<[UInt8], SluiceError> in
                var z: [UInt8] = []
                do throws(SluiceError) { try Zlib.deflate(b, framing: .gzipOrZlib, into: &z) } catch { return .failure(error) }
                return .success(z)
            }
            switch packed {
            case .success(let z): (body, gzipped) = (z, true)
            case .failure(let error): logger.warning("could not gzip \(spans.count) spans (\(error.message)): sending them uncompressed")
            }
        }
        let clock = ContinuousClock()
        let deadline = clock.now + settings.exportTimeout
        var backoff = Duration.milliseconds(100)
        for attempt in 1... {
            switch await post(body, gzipped: gzipped, timeout: min(settings.requestTimeout, max(deadline - clock.now, .milliseconds(1)))) {
            case .sent:
                return true
            case .refused(let why):
                logger.warning("the OTLP collector refused \(spans.count) spans: \(why)")
                return false
            case .retry(let why, let after):
                let wait = after ?? backoff
                guard clock.now + wait < deadline else {
                    logger.warning("could not send \(spans.count) spans to the OTLP collector at \(settings.endpoint) (\(attempt) attempts): \(why)")
                    return false
                }
                try? await Task.sleep(for: wait)
                backoff *= 2
            }
        }
        return false
    }

    enum Outcome {
        case sent
        case refused(String)
        /// Worth another try, after the collector's `Retry-After` when it gave one.
        case retry(String, after: Duration?)
    }

    private func post(_ body: [UInt8], gzipped: Bool, timeout: Duration) async -> Outcome {
        var request = HTTPClientRequest(url: settings.endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: settings.json ? "application/json" : "application/x-protobuf")
        if gzipped { request.headers.add(name: "Content-Encoding", value: "gzip") }
        request.headers.add(name: "User-Agent", value: "sluice")
        for (k, v) in settings.headers { request.headers.add(name: k, value: v) }
        request.body = .bytes(body)
        do {
            let response = try await client.execute(request, timeout: TimeAmount(timeout))
            let answer = try await response.body.collect(upTo: 64 * 1024)
            let code = response.status.code
            if (200..<300).contains(code) { return .sent }
            let why = "\(code) \(String(buffer: answer).prefix(200))"
            guard [429, 502, 503, 504].contains(code) else { return .refused(why) }
            let after = response.headers.first(name: "Retry-After").flatMap { Int($0) }.map { Duration.seconds(min(max($0, 0), 60)) }
            return .retry(why, after: after)
        } catch {
            return .retry("\(error)", after: nil)
        }
    }
}
