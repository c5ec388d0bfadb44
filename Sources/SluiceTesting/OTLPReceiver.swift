public import Foundation

/// scripts/receivers/otlp_receiver.py on 127.0.0.1: accepts OTLP/HTTP trace exports
/// (protobuf or JSON, as a collector does) and hands back the spans it decoded.
public final class OTLPReceiver: @unchecked Sendable {
    public let dir: String
    private(set) var process = Process()
    public private(set) var port = 0

    /// One span as the receiver decoded it.
    public struct Span: Decodable, Sendable {
        public var service: String?
        public var traceID: String, spanID: String, parentSpanID: String
        public var name: String, kind: String, status: String
        public var startNs: UInt64, endNs: UInt64
        public var attributes: [String: AttributeValue]
        public var statusMessage: String?, traceState: String?
        public var events: [Event]?
        public var links: [Link]?
        /// The `Content-Encoding` of the request that carried it (`gzip`, or empty).
        public var encoding: String?
        enum CodingKeys: String, CodingKey {
            case service, name, kind, status, attributes, events, links, encoding
            case traceID = "trace_id", spanID = "span_id", parentSpanID = "parent_span_id", startNs = "start_ns", endNs = "end_ns"
            case statusMessage = "status_message", traceState = "trace_state"
        }
    }

    public struct Event: Decodable, Sendable {
        public var name: String
        public var attributes: [String: AttributeValue]
    }

    public struct Link: Decodable, Sendable {
        public var traceID: String, spanID: String, traceState: String?
        public var attributes: [String: AttributeValue]
        enum CodingKeys: String, CodingKey { case attributes, traceID = "trace_id", spanID = "span_id", traceState = "trace_state" }
    }

    /// A span attribute's value (strings, integers, booleans, doubles, arrays of them).
    public indirect enum AttributeValue: Decodable, Sendable, Equatable {
        case string(String), int(Int), bool(Bool), double(Double), array([AttributeValue]), other
        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let a = try? c.decode([AttributeValue].self) { self = .array(a) }
            else if let i = try? c.decode(Int.self) { self = .int(i) }
            else if let d = try? c.decode(Double.self) { self = .double(d) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else { self = .other }
        }
    }

    /// `failFirst`: the receiver answers that many exports 503 first (a collector busy for a moment).
    public init(failFirst: Int = 0) throws {
        dir = NSTemporaryDirectory() + "sluice-otlp-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for _ in 0..<3 {
            port = Int.random(in: 45_000..<55_000)
            process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", Oracle.repoRoot + "/scripts/receivers/otlp_receiver.py", "--port", String(port), "--out", dir + "/spans.jsonl", "--fail-first", String(failFirst)]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle(forWritingAtPath: "/dev/null")
            try process.run()
            for _ in 0..<200 where process.isRunning {
                if (try? GoogleFake.shell(["curl", "-sf", "http://127.0.0.1:\(port)/spans"])) != nil { return }
                Thread.sleep(forTimeInterval: 0.05)
            }
            stop()
        }
        throw Oracle.Failure(description: "the OTLP receiver did not start (opentelemetry-proto must be installed)")
    }

    /// The environment that points a Sluice process at this receiver (spans sent within 100 ms).
    public var env: [String: String] {
        ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(port)", "OTEL_BSP_SCHEDULE_DELAY": "100"]
    }

    /// Every span received so far (the receiver appends each to a file as one JSON line).
    public func spans() throws -> [Span] {
        let text = (try? String(contentsOfFile: dir + "/spans.jsonl", encoding: .utf8)) ?? ""
        return try text.split(separator: "\n").map { try JSONDecoder().decode(Span.self, from: Data($0.utf8)) }
    }

    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning { stop() }
        try? FileManager.default.removeItem(atPath: dir)
    }
}
