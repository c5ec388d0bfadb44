import Testing
import Foundation
import Synchronization
import Tracing
import Logging
import SluiceCore
import SluiceTesting
import SluiceQueue
@testable import SluiceRuntime

/// Sluice's tracer and OTLP exporter, without a server: W3C trace context as the spec
/// reads it, sampling, the OTEL_* settings, and spans decoded by opentelemetry-proto.
@Suite struct TracingTests {
    @Test func traceparentIsReadAsW3CSays() throws {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let t = try #require(TraceContext(traceparent: valid, traceState: "vendor=x"))
        #expect(t.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736" && t.spanIDHex == "00f067aa0ba902b7" && t.sampled && t.traceState == "vendor=x")
        #expect(t.traceparent == valid)
        #expect(TraceContext(traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", traceState: nil)?.sampled == false)
        // A later version may add fields after a dash; version 00 may not.
        #expect(TraceContext(traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", traceState: nil) != nil)
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  // 00 with more
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // uppercase
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero span id
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", "", "00-zz",
        ] {
            #expect(TraceContext(traceparent: bad, traceState: nil) == nil, "\(bad)")
        }
    }

    @Test func samplersDecideAsTheSpecNamesThem() throws {
        let ids = TraceIDGenerator()
        let parentOn = TraceContext(traceHigh: 1, traceLow: 1, spanID: 1, sampled: true)
        let parentOff = TraceContext(traceHigh: 1, traceLow: 1, spanID: 1, sampled: false)
        #expect(TraceSampler.default.sampled(traceLow: ids.next(), parent: nil))
        #expect(TraceSampler.default.sampled(traceLow: ids.next(), parent: parentOff) == false)
        let never = try TraceSampler(name: "parentbased_always_off", argument: nil)
        #expect(!never.sampled(traceLow: 5, parent: nil) && never.sampled(traceLow: 5, parent: parentOn))
        #expect(try TraceSampler(name: "always_on", argument: nil).sampled(traceLow: 5, parent: parentOff))
        let half = try TraceSampler(name: "traceidratio", argument: "0.5")
        let kept = (0..<10_000).filter { _ in half.sampled(traceLow: ids.next(), parent: nil) }.count
        #expect((4_500...5_500).contains(kept), "\(kept)")
        #expect(!(try TraceSampler(name: "traceidratio", argument: "0")).sampled(traceLow: 0, parent: nil))
        #expect(throws: SluiceError.self) { try TraceSampler(name: "sometimes", argument: nil) }
        #expect(throws: SluiceError.self) { try TraceSampler(name: "traceidratio", argument: "2") }
    }

    @Test func settingsComeFromTheOTelEnvironment() throws {
        var s = try OTLPSettings(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"])
        #expect(s.endpoint == "http://collector:4318/v1/traces" && !s.json && s.sampler == .default)
        #expect(s.resource.first! == ("service.name", "sluice") && s.exportTimeout == .seconds(2) && s.batchSize == 512)
        s = try OTLPSettings(environment: [
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c.example/custom",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc, x-team = data",
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment=prod", "OTEL_BSP_MAX_QUEUE_SIZE": "100",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "500", "OTEL_TRACES_SAMPLER": "nonsense",
        ])
        #expect(s.endpoint == "https://c.example/custom" && s.json && s.batchSize == 100)
        #expect(s.headers.map { "\($0.0)=\($0.1)" } == ["authorization=Bearer abc", "x-team=data"])
        #expect(s.resource.prefix(2).map { "\($0.0)=\($0.1)" } == ["service.name=from-attrs", "deployment.environment=prod"])
        #expect(s.sampler == .default && s.warnings.count == 1, "\(s.warnings)")
        s = try OTLPSettings(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SERVICE_NAME": "ingest", "OTEL_RESOURCE_ATTRIBUTES": "service.name=x"])
        #expect(s.resource.first! == ("service.name", "ingest"))
        for bad in [["OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"], ["OTEL_BSP_SCHEDULE_DELAY": "soon"], ["OTEL_BSP_MAX_QUEUE_SIZE": "0"],
                    ["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"]] {
            #expect(throws: SluiceError.self, "\(bad)") {
                try OTLPSettings(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"].merging(bad) { $1 })
            }
        }
    }

    /// Every kind of attribute, an error event, a link, a status and `tracestate`, sent the
    /// way `sluice serve` sends them and decoded by opentelemetry-proto; unsampled spans are
    /// not sent, a span ended twice is sent once, and a full queue drops what overflows.
    /// `+gzip`: with `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` (the receiver says each request's encoding).
    @Test(arguments: ["http/protobuf", "http/json", "http/protobuf+gzip", "http/json+gzip"])
    func spansReachACollectorAsOpenTelemetryDecodesThem(_ wire: String) async throws {
        struct Boom: Error, CustomStringConvertible { var description: String { "boom \"quoted\"\nline" } }
        let otlp = try OTLPReceiver()
        let gzip = wire.hasSuffix("+gzip")
        let settings = try OTLPSettings(environment: otlp.env.merging(["OTEL_EXPORTER_OTLP_PROTOCOL": gzip ? String(wire.dropLast(5)) : wire,
                                                                        "OTEL_EXPORTER_OTLP_COMPRESSION": gzip ? "gzip" : "none",
                                                                        "OTEL_SERVICE_NAME": "tracing-test"]) { $1 })
        #expect(settings.gzip == gzip && settings.warnings.isEmpty, "\(settings.warnings)")
        let queue = SpanQueue(capacity: 4, batchSize: 2)
        let tracer = SpanTracer(sampler: settings.sampler, queue: queue)
        let exporter = OTLPExporter(settings: settings, queue: queue, logger: .init(label: "test"))
        let running = Task { await exporter.run() }

        var remote = ServiceContext.topLevel
        tracer.extract(["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "v=1"], into: &remote, using: Dict())
        let root = tracer.startSpan("request", context: remote, ofKind: .server)
        root.attributes["s"] = "é \"q\""
        root.attributes["i"] = -42
        root.attributes["big"] = Int64.max
        root.attributes["d"] = 2.5
        root.attributes["b"] = false
        root.attributes["ints"] = [1, 2, 3] as [Int64]
        root.attributes["strings"] = ["a", "b"]
        root.recordError(Boom())
        root.setStatus(SpanStatus(code: .error, message: "failed"))
        let child = tracer.startSpan("child", context: root.context, ofKind: .consumer)
        child.addLink(SpanLink(context: remote, attributes: ["why": "queued by"]))
        child.end()
        child.end()
        root.end()
        root.attributes["late"] = 1  // an ended span takes no change
        var headers: [String: String] = [:]
        tracer.inject(root.context, into: &headers, using: Dict())
        #expect(headers["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-\(root.context[TraceContextKey.self]!.spanIDHex)-01" && headers["tracestate"] == "v=1")

        var unsampled = ServiceContext.topLevel
        tracer.extract(["traceparent": "00-11111111111111111111111111111111-2222222222222222-00"], into: &unsampled, using: Dict())
        let quiet = tracer.startSpan("quiet", context: unsampled)
        #expect(!quiet.isRecording && quiet.context[TraceContextKey.self]?.traceIDHex == "11111111111111111111111111111111")
        quiet.end()

        var spans: [OTLPReceiver.Span] = []
        for _ in 0..<100 where spans.count < 2 {
            try await Task.sleep(for: .milliseconds(50))
            spans = try otlp.spans()
        }
        #expect(spans.count == 2, "\(spans.map(\.name))")
        #expect(spans.allSatisfy { $0.encoding == (gzip ? "gzip" : "") }, "\(spans.map(\.encoding))")
        let r = try #require(spans.first { $0.name == "request" })
        #expect(r.service == "tracing-test" && r.kind == "server" && r.traceID == "4bf92f3577b34da6a3ce929d0e0e4736" && r.parentSpanID == "00f067aa0ba902b7")
        #expect(r.traceState == "v=1" && r.status == "error" && r.statusMessage == "failed" && r.endNs >= r.startNs && r.startNs > 1_700_000_000_000_000_000)
        #expect(r.attributes == ["s": .string("é \"q\""), "i": .int(-42), "big": .int(Int(Int64.max)), "d": .double(2.5), "b": .bool(false),
                                 "ints": .array([.int(1), .int(2), .int(3)]), "strings": .array([.string("a"), .string("b")])])
        let event = try #require(r.events?.first)
        #expect(event.name == "exception" && event.attributes["exception.message"] == .string("boom \"quoted\"\nline"))
        let c = try #require(spans.first { $0.name == "child" })
        #expect(c.parentSpanID == r.spanID && c.traceID == r.traceID && c.kind == "consumer" && c.status == "unset")
        #expect(c.links?.first?.spanID == "00f067aa0ba902b7" && c.links?.first?.attributes["why"] == .string("queued by") && c.links?.first?.traceState == "v=1")

        // Six spans into a queue of four that nothing takes: two are dropped.
        queue.close()
        await running.value
        let full = SpanQueue(capacity: 4, batchSize: 4)
        let t2 = SpanTracer(sampler: .default, queue: full)
        for i in 0..<6 { t2.startSpan("s\(i)", context: .topLevel).end() }
        let taken = full.take()
        #expect(taken.spans.map(\.name) == ["s0", "s1", "s2", "s3"] && taken.dropped == 2)
        // A part batch waits for the schedule: only a flush takes it.
        t2.startSpan("s6", context: .topLevel).end()
        #expect(full.take(partial: false).spans.isEmpty && full.take().spans.map(\.name) == ["s6"])
    }

    /// A collector that answers 503 twice gets the batch on the third try; one that answers
    /// 404 is not asked again (its warning says "refused", not how many attempts failed).
    /// Timing is left out: under the whole suite a turn on the shared threads can take seconds.
    @Test func aBusyCollectorIsTriedAgain() async throws {
        let otlp = try OTLPReceiver(failFirst: 2)
        let settings = try OTLPSettings(environment: otlp.env.merging(["OTEL_BSP_EXPORT_TIMEOUT": "30000"]) { $1 })
        let queue = SpanQueue(capacity: 8, batchSize: 1)
        let exporter = OTLPExporter(settings: settings, queue: queue, logger: .init(label: "test"))
        let running = Task { await exporter.run() }
        SpanTracer(sampler: .default, queue: queue).startSpan("after two 503s", context: .topLevel).end()
        var spans: [OTLPReceiver.Span] = []
        for _ in 0..<300 where spans.isEmpty {
            try await Task.sleep(for: .milliseconds(100))
            spans = try otlp.spans()
        }
        #expect(spans.map(\.name) == ["after two 503s"])
        queue.close()
        await running.value

        var bad = settings
        bad.endpoint = "http://127.0.0.1:\(otlp.port)/v1/nowhere"  // 404: not worth a retry
        let warnings = Warnings()
        let q2 = SpanQueue(capacity: 8, batchSize: 1)
        let e2 = OTLPExporter(settings: bad, queue: q2, logger: Logger(label: "test") { _ in warnings })
        SpanTracer(sampler: .default, queue: q2).startSpan("lost", context: .topLevel).end()
        q2.close()
        await e2.run()
        #expect(warnings.lines.withLock { $0 }.contains { $0.contains("refused 1 spans: 404") }, "\(warnings.lines.withLock { $0 })")
    }

    /// The messages a logger was given.
    final class Warnings: LogHandler, @unchecked Sendable {
        let lines = Mutex<[String]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { lines.withLock { $0.append("\(event.message)") } }
    }

    struct Dict: Injector, Extractor {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }
}
