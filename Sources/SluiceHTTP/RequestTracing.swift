import Hummingbird
import HTTPTypes
import Tracing

/// A `server` span per request, named by its route (`/{entity}/_bulk`) and continuing a
/// `traceparent` the client sent. Unlike Hummingbird's `TracingMiddleware` it builds
/// attributes only for sampled spans, and the span ends when the handler returns (a streamed
/// response body, such as a rejects download, is not inside it).
struct RequestTracing<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var parent = ServiceContext.current ?? .topLevel
        InstrumentationSystem.instrument.extract(request.headers, into: &parent, using: FieldsExtractor())
        let span = InstrumentationSystem.tracer.startSpan("HTTP \(request.method.rawValue)", context: parent, ofKind: .server)
        defer { span.end() }
        func describe(status: Int) {
            guard span.isRecording else { return }
            if let route = context.endpointPath { span.operationName = route }
            span.updateAttributes { a in
                a["http.request.method"] = request.method.rawValue
                a["url.path"] = request.uri.path
                a["http.route"] = context.endpointPath
                a["http.response.status_code"] = status
                a["http.request.body.size"] = request.headers[.contentLength].flatMap { Int($0) }
            }
        }
        do {
            let response = try await ServiceContext.$current.withValue(span.context) { try await next(request, context) }
            describe(status: response.status.code)
            if span.isRecording, let size = response.body.contentLength { span.attributes["http.response.body.size"] = size }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            describe(status: status)
            if status >= 500 {
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error))
            }
            throw error
        }
    }
}

struct FieldsExtractor: Extractor {
    func extract(key: String, from fields: HTTPFields) -> String? { HTTPField.Name(key).flatMap { fields[$0] } }
}
