import Hummingbird
import HTTPTypes
import Logging
import Metrics
import SluiceQueue
import Tracing

/// What each request leaves behind, in one middleware (one async layer, not two): the HTTP
/// metrics, an access log line (method, path, status, bytes, duration, the job a submission
/// created, and the trace and span when tracing is on), and with tracing a `server` span named
/// by its route (`/{entity}/_bulk`) continuing a `traceparent` the client sent. The request's
/// facts become the span's attributes only when a sampled span is exported, and the span ends
/// when the handler returns (a streamed response body, such as a rejects download, is not inside it).
struct RequestTelemetry<Context: RequestContext>: RouterMiddleware {
    let logger: Logger?
    /// Looked up once: `InstrumentationSystem.tracer` takes a lock on every read.
    let tracer: (any Tracer)?
    /// The tracer again, when it takes a request's facts as fields (Sluice's own does).
    let recorder: (any HTTPRequestRecorder)?
    let metrics = RequestMetrics()

    init(logger: Logger?, tracing: Bool) {
        self.logger = logger
        tracer = tracing ? InstrumentationSystem.tracer : nil
        recorder = tracer as? any HTTPRequestRecorder
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        guard let tracer else {
            do {
                let response = try await next(request, context)
                record(request, context, status: response.status.code, bytes: response.body.contentLength, headers: response.headers, start, span: nil)
                return response
            } catch {
                record(request, context, status: Self.status(of: error), bytes: nil, headers: [:], start, span: nil)
                throw error
            }
        }
        var parent = ServiceContext.current ?? .topLevel
        tracer.extract(request.headers, into: &parent, using: FieldsExtractor())
        let span = tracer.startSpan("HTTP \(request.method.rawValue)", context: parent, ofKind: .server)
        defer { span.end() }
        do {
            let response = try await ServiceContext.$current.withValue(span.context) { try await next(request, context) }
            record(request, context, status: response.status.code, bytes: response.body.contentLength, headers: response.headers, start, span: span)
            return response
        } catch {
            let status = Self.status(of: error)
            if status >= 500 {
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error))
            }
            record(request, context, status: status, bytes: nil, headers: [:], start, span: span)
            throw error
        }
    }

    static func status(of error: any Error) -> Int { (error as? any HTTPResponseError)?.status.code ?? 500 }

    /// Metrics by method, route (the matched pattern, so ids do not multiply the series) and
    /// status; then the log line. The line is written after the span's scope, so it names the
    /// trace itself instead of through the logger's metadata provider.
    func record(_ request: Request, _ context: Context, status: Int, bytes: Int?, headers: HTTPFields, _ start: ContinuousClock.Instant, span: (any Span)?) {
        let elapsed = ContinuousClock.now - start
        let route = context.endpointPath
        let method = request.method.rawValue
        let path = request.uri.path
        let (requests, duration) = metrics.handles(method: method, route: route ?? "unmatched", status: status)
        requests.increment()
        duration.record(duration: elapsed)
        if let span, let recorder {
            recorder.record(HTTPRequestFacts(method: method, path: path, route: route, status: status,
                                             requestSize: request.headers[.contentLength].flatMap { Int($0) }, responseSize: bytes), on: span)
        }
        guard let logger else { return }
        if path == "/metrics" || path == "/healthz" { return }  // scrapes and probes would drown the log
        var meta = Logger.Metadata(minimumCapacity: 8)
        meta["method"] = .string(method)
        meta["path"] = .string(path)
        meta["status"] = .string(String(status))
        meta["ms"] = .string(String(Int((Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15).rounded())))
        if let bytes { meta["bytes"] = .string(String(bytes)) }
        if let location = headers[.location], location.contains("/status/") { meta["job"] = .string(String(location.split(separator: "/").last ?? "")) }
        if let trace = span?.context[TraceContextKey.self] {
            meta["trace_id"] = .string(trace.traceIDHex)
            meta["span_id"] = .string(trace.spanIDHex)
        }
        logger.info("request", metadata: meta)
    }
}

struct FieldsExtractor: Extractor {
    /// W3C's two header names made once (a name is validated and lowercased as it is made).
    static let traceparent = HTTPField.Name("traceparent")!, tracestate = HTTPField.Name("tracestate")!

    func extract(key: String, from fields: HTTPFields) -> String? {
        switch key {
        case "traceparent": fields[Self.traceparent]
        case "tracestate": fields[Self.tracestate]
        default: HTTPField.Name(key).flatMap { fields[$0] }
        }
    }
}
