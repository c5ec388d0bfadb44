public import Instrumentation
public import ServiceContextModule

/// The W3C trace context (`traceparent`, `tracestate`) of the span current in this task, as
/// the installed instrument writes it. A job carries it from where it was queued (a request,
/// the job that split a file or handed a batch on) to the worker that runs it, so the
/// worker's span continues the same trace. Empty when no tracing is installed.
public enum TraceCarrier {
    /// The current context's headers, or nil when there is nothing to carry.
    public static func current() -> [String: String]? {
        guard let context = ServiceContext.current else { return nil }
        var headers: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &headers, using: DictionaryCodec())
        return headers.isEmpty ? nil : headers
    }

    /// A context continuing the trace `headers` name (the top level when they name none).
    public static func context(_ headers: [String: String]?) -> ServiceContext {
        var context = ServiceContext.topLevel
        if let headers { InstrumentationSystem.instrument.extract(headers, into: &context, using: DictionaryCodec()) }
        return context
    }
}

struct DictionaryCodec: Injector, Extractor {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}
