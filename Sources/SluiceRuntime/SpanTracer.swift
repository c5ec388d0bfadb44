import Synchronization
import Tracing
import SluiceQueue

/// Sluice's tracer (swift-distributed-tracing's `Tracer`): W3C trace context in and out,
/// head sampling before a recording is made, and a recorded span's whole life spent in
/// its own lock until `end` puts it on the export queue. No task hop, no shared map of live
/// spans and no system call per span: a traced request costs a few microseconds.
final class SpanTracer: Tracer, HTTPRequestRecorder, Sendable {
    typealias Span = TracedSpan
    let sampler: TraceSampler
    let queue: SpanQueue
    private let ids = TraceIDGenerator()

    init(sampler: TraceSampler, queue: SpanQueue) {
        self.sampler = sampler
        self.queue = queue
    }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> TracedSpan {
        var context = context()
        let parent = context[TraceContextKey.self]
        var trace: TraceContext
        if let parent {
            trace = parent
            trace.spanID = ids.next()
        } else {
            let (high, low, span) = ids.next3()
            trace = TraceContext(traceHigh: high, traceLow: low, spanID: span, sampled: false)
        }
        trace.sampled = sampler.sampled(traceLow: trace.traceLow, parent: parent)
        context[TraceContextKey.self] = trace
        guard trace.sampled else { return TracedSpan(context: context, recording: nil) }
        let recording = RecordingSpan(name: operationName, trace: trace, parentSpanID: parent?.spanID ?? 0, kind: kind,
                                      start: instant().nanosecondsSinceEpoch, queue: queue)
        return TracedSpan(context: context, recording: recording)
    }

    func forceFlush() { queue.wake() }

    func record(_ facts: HTTPRequestFacts, on span: any Sendable) {
        (span as? TracedSpan)?.recording?.update { s in
            s.request = facts
            if let route = facts.route { s.name = route }
        }
    }

    func inject<Carrier, Inject: Injector>(_ context: ServiceContext, into carrier: inout Carrier, using injector: Inject) where Inject.Carrier == Carrier {
        guard let trace = context[TraceContextKey.self] else { return }
        injector.inject(trace.traceparent, forKey: "traceparent", into: &carrier)
        if !trace.traceState.isEmpty { injector.inject(trace.traceState, forKey: "tracestate", into: &carrier) }
    }

    func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract) where Extract.Carrier == Carrier {
        guard let header = extractor.extract(key: "traceparent", from: carrier),
              let trace = TraceContext(traceparent: header, traceState: extractor.extract(key: "tracestate", from: carrier)) else { return }
        context[TraceContextKey.self] = trace
    }
}

/// A span as code holds it: its context (ids, for children and propagation) and, when
/// sampled, the recording; an unsampled span records nothing.
struct TracedSpan: Tracing.Span {
    let context: ServiceContext
    let recording: RecordingSpan?

    var operationName: String {
        get { recording?.state.withLock { $0.name } ?? "" }
        nonmutating set { recording?.update { $0.name = newValue } }
    }

    var attributes: SpanAttributes {
        get { recording?.state.withLock { $0.attributes } ?? [:] }
        nonmutating set { recording?.update { $0.attributes = newValue } }
    }

    var isRecording: Bool { recording?.state.withLock { !$0.ended } ?? false }

    func setStatus(_ status: SpanStatus) { recording?.update { $0.status = status } }

    func addEvent(_ event: SpanEvent) { recording?.update { $0.events.append(event) } }

    func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {
        guard let recording else { return }
        var a = attributes
        a["exception.type"] = String(reflecting: type(of: error))
        a["exception.message"] = "\(error)"
        let event = SpanEvent(name: "exception", at: instant(), attributes: a)
        recording.update { $0.events.append(event) }
    }

    func addLink(_ link: SpanLink) {
        guard let trace = link.context[TraceContextKey.self] else { return }
        recording?.update { $0.links.append(FinishedSpan.Link(trace: trace, attributes: link.attributes)) }
    }

    func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        recording?.end(at: instant().nanosecondsSinceEpoch)
    }
}

/// A sampled span while it runs: what code may still change, behind one lock.
final class RecordingSpan: Sendable {
    struct State {
        var name: String
        var attributes = SpanAttributes()
        var events: [SpanEvent] = []
        var links: [FinishedSpan.Link] = []
        var status: SpanStatus?
        var request: HTTPRequestFacts?
        var ended = false
    }
    let state: Mutex<State>
    let trace: TraceContext
    let parentSpanID: UInt64
    let kind: SpanKind
    let start: UInt64
    let queue: SpanQueue

    init(name: String, trace: TraceContext, parentSpanID: UInt64, kind: SpanKind, start: UInt64, queue: SpanQueue) {
        state = Mutex(State(name: name))
        (self.trace, self.parentSpanID, self.kind, self.start, self.queue) = (trace, parentSpanID, kind, start, queue)
    }

    /// Changes the span unless it has ended (an ended span is read-only, as OpenTelemetry says).
    func update(_ change: (inout State) -> Void) {
        state.withLock { if !$0.ended { change(&$0) } }
    }

    func end(at time: UInt64) {
        let finished: FinishedSpan? = state.withLock { s in
            guard !s.ended else { return nil }
            s.ended = true
            return FinishedSpan(trace: trace, parentSpanID: parentSpanID, name: s.name, kind: kind, start: start, end: max(time, start),
                                attributes: s.attributes, request: s.request, events: s.events, links: s.links, status: s.status)
        }
        if let finished { queue.append(finished) }
    }
}

/// An ended span, as the exporter encodes it.
struct FinishedSpan: Sendable {
    struct Link: Sendable {
        var trace: TraceContext
        var attributes: SpanAttributes
    }
    var trace: TraceContext
    /// Zero for a root span.
    var parentSpanID: UInt64
    var name: String
    var kind: SpanKind
    var start: UInt64
    var end: UInt64
    var attributes: SpanAttributes
    /// A request span's HTTP attributes, kept as fields until they are encoded.
    var request: HTTPRequestFacts?
    var events: [SpanEvent]
    var links: [Link]
    var status: SpanStatus?
}

/// Ended spans waiting for the exporter: at most `capacity` (more are counted and dropped,
/// so a collector that is down costs memory up to a bound), and a wake-up for the exporter
/// as soon as a whole batch is waiting.
final class SpanQueue: Sendable {
    let capacity: Int
    let batchSize: Int
    private let state = Mutex<(spans: [FinishedSpan], dropped: Int)>(([], 0))
    let wakes: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init(capacity: Int, batchSize: Int) {
        (self.capacity, self.batchSize) = (capacity, min(batchSize, capacity))
        (wakes, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func append(_ span: FinishedSpan) {
        let full = state.withLock { s in
            if s.spans.count >= capacity { s.dropped += 1; return false }
            s.spans.append(span)
            return s.spans.count == batchSize
        }
        if full { wake() }
    }

    /// One batch of the oldest spans (fewer only when `partial`, else none), and how many
    /// were dropped since the last take.
    func take(partial: Bool = true) -> (spans: [FinishedSpan], dropped: Int) {
        state.withLock { s in
            let n = s.spans.count >= batchSize ? batchSize : partial ? s.spans.count : 0
            let batch = Array(s.spans.prefix(n))
            s.spans.removeFirst(n)
            defer { s.dropped = 0 }
            return (batch, s.dropped)
        }
    }

    func wake() { continuation.yield() }

    /// Ends the exporter's loop once it has taken what is waiting.
    func close() { continuation.finish() }
}
