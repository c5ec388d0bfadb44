import Hummingbird
import HTTPTypes
import Tracing

/// A `server` span per request, named by its route (`/{entity}/_bulk`) and continuing a
/// `traceparent` the client sent. Unlike Hummingbird's `TracingMiddleware` it builds
/// attributes only for sampled spans, and the span ends when the handler returns (a streamed
/// response body, such as a rejects download, is not inside it).
struct RequestTracing<Context: RequestContext>: RouterMiddleware {
    /// Looked up once: `InstrumentationSystem.tracer` takes a lock on every read.
    let tracer = InstrumentationSystem.tracer

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var parent = ServiceContext.current ?? .topLevel
        tracer.extract(request.headers, into: &parent, using: FieldsExtractor())
        let span = tracer.startSpan("HTTP \(request.method.rawValue)", context: parent, ofKind: .server)
        defer { span.end() }
        /// The request's attributes, set at once (one write to the span, no existentials).
        func describe(status: Int, responseSize: Int?) {
            guard span.isRecording else { return }
            var a = SpanAttributes()
            a.set("http.request.method", value: .string(request.method.rawValue))
            a.set("url.path", value: .string(request.uri.path))
            a.set("http.response.status_code", value: .int64(Int64(status)))
            if let route = context.endpointPath {
                span.operationName = route
                a.set("http.route", value: .string(route))
            }
            if let size = request.headers[.contentLength].flatMap({ Int64($0) }) { a.set("http.request.body.size", value: .int64(size)) }
            if let responseSize { a.set("http.response.body.size", value: .int64(Int64(responseSize))) }
            span.attributes = a
        }
        do {
            let response = try await ServiceContext.$current.withValue(span.context) { try await next(request, context) }
            describe(status: response.status.code, responseSize: response.body.contentLength)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            describe(status: status, responseSize: nil)
            if status >= 500 {
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error))
            }
            throw error
        }
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
