import SluiceCore
import Tracing
import SluiceQueue

/// Finished spans as OTLP's `ExportTraceServiceRequest` (opentelemetry-proto's trace.proto),
/// in protobuf or in OTLP/JSON (ids in hex, enums as numbers, 64-bit integers as strings).
/// Pure: the exporter sends what this returns.
enum OTLPEncoding {
    static let scope = "sluice"

    static func protobuf(_ spans: [FinishedSpan], resource: [(String, String)]) -> [UInt8] {
        var w = ProtoWriter()
        w.bytes.reserveCapacity(256 * spans.count + 128)
        w.message(1) { rs in  // ResourceSpans
            rs.message(1) { r in  // Resource
                for (k, v) in resource { r.keyValue(1, k, .string(v)) }
            }
            rs.message(2) { ss in  // ScopeSpans
                ss.message(1) { $0.string(1, scope) }
                for span in spans { ss.message(2) { span.write(into: &$0) } }
            }
        }
        return w.bytes
    }

    static func json(_ spans: [FinishedSpan], resource: [(String, String)]) -> [UInt8] {
        func object(_ members: [(String, JSONValue)]) -> JSONValue { .object(members.map { JSONMember(key: $0.0, value: $0.1) }) }
        let resourceJSON = object([("attributes", .array(resource.map { object([("key", .string($0.0)), ("value", object([("stringValue", .string($0.1))]))]) }))])
        let request = object([("resourceSpans", .array([object([
            ("resource", resourceJSON),
            ("scopeSpans", .array([object([("scope", object([("name", .string(scope))])), ("spans", .array(spans.map(\.json)))])])),
        ])]))])
        var out: [UInt8] = []
        request.write(into: &out)
        return out
    }

    /// OTLP's SpanKind numbers.
    static func kind(_ k: SpanKind) -> UInt64 {
        switch k {
        case .internal: 1
        case .server: 2
        case .client: 3
        case .producer: 4
        case .consumer: 5
        }
    }

    /// OTLP's Status.StatusCode numbers.
    static func code(_ s: SpanStatus?) -> UInt64 {
        switch s?.code {
        case nil: 0
        case .ok: 1
        case .error: 2
        }
    }
}

extension FinishedSpan {
    /// The fields of an OTLP `Span` message.
    func write(into w: inout ProtoWriter) {
        w.id(1, trace.traceHigh, trace.traceLow)
        w.id(2, trace.spanID)
        w.string(3, trace.traceState)
        if parentSpanID != 0 { w.id(4, parentSpanID) }
        w.string(5, name)
        w.uint(6, OTLPEncoding.kind(kind))
        w.fixed64(7, start)
        w.fixed64(8, end)
        w.attributes(9, attributes)
        request?.forEachAttribute { w.keyValue(9, $0, $1.spanAttribute) }
        for e in events {
            w.message(11) { ev in
                ev.fixed64(1, e.nanosecondsSinceEpoch)
                ev.string(2, e.name)
                ev.attributes(3, e.attributes)
            }
        }
        for l in links {
            w.message(13) { lw in
                lw.id(1, l.trace.traceHigh, l.trace.traceLow)
                lw.id(2, l.trace.spanID)
                lw.string(3, l.trace.traceState)
                lw.attributes(4, l.attributes)
            }
        }
        if let status {
            w.message(15) { sw in
                sw.string(2, status.message ?? "")
                sw.uint(3, OTLPEncoding.code(status))
            }
        }
    }

    var json: JSONValue {
        var m: [JSONMember] = [
            JSONMember(key: "traceId", value: .string(trace.traceIDHex)),
            JSONMember(key: "spanId", value: .string(trace.spanIDHex)),
        ]
        if !trace.traceState.isEmpty { m.append(JSONMember(key: "traceState", value: .string(trace.traceState))) }
        if parentSpanID != 0 { m.append(JSONMember(key: "parentSpanId", value: .string(TraceContext.hex(parentSpanID)))) }
        m += [
            JSONMember(key: "name", value: .string(name)),
            JSONMember(key: "kind", value: .number(String(OTLPEncoding.kind(kind)))),
            JSONMember(key: "startTimeUnixNano", value: .string(String(start))),
            JSONMember(key: "endTimeUnixNano", value: .string(String(end))),
            JSONMember(key: "attributes", value: OTLPJSON.attributes(attributes, request: request)),
        ]
        if !events.isEmpty {
            m.append(JSONMember(key: "events", value: .array(events.map { e in
                .object([JSONMember(key: "timeUnixNano", value: .string(String(e.nanosecondsSinceEpoch))),
                         JSONMember(key: "name", value: .string(e.name)),
                         JSONMember(key: "attributes", value: OTLPJSON.attributes(e.attributes))])
            })))
        }
        if !links.isEmpty {
            m.append(JSONMember(key: "links", value: .array(links.map { l in
                .object([JSONMember(key: "traceId", value: .string(l.trace.traceIDHex)),
                         JSONMember(key: "spanId", value: .string(l.trace.spanIDHex)),
                         JSONMember(key: "traceState", value: .string(l.trace.traceState)),
                         JSONMember(key: "attributes", value: OTLPJSON.attributes(l.attributes))])
            })))
        }
        if let status {
            var s = [JSONMember(key: "code", value: .number(String(OTLPEncoding.code(status))))]
            if let message = status.message { s.append(JSONMember(key: "message", value: .string(message))) }
            m.append(JSONMember(key: "status", value: .object(s)))
        }
        return .object(m)
    }
}

extension HTTPRequestFacts.Value {
    var spanAttribute: SpanAttribute {
        switch self {
        case .string(let s): .string(s)
        case .int(let i): .int64(i)
        }
    }
}

/// OTLP/JSON's `AnyValue`s.
enum OTLPJSON {
    static func attributes(_ a: SpanAttributes, request: HTTPRequestFacts? = nil) -> JSONValue {
        var out: [JSONValue] = []
        func add(_ key: String, _ value: SpanAttribute) {
            out.append(.object([JSONMember(key: "key", value: .string(key)), JSONMember(key: "value", value: Self.value(value))]))
        }
        a.forEach(add)
        request?.forEachAttribute { add($0, $1.spanAttribute) }
        return .array(out)
    }

    static func value(_ v: SpanAttribute) -> JSONValue {
        func one(_ key: String, _ value: JSONValue) -> JSONValue { .object([JSONMember(key: key, value: value)]) }
        func array(_ values: [JSONValue]) -> JSONValue { one("arrayValue", one("values", .array(values))) }
        func double(_ d: Double) -> JSONValue {
            one("doubleValue", d.isFinite ? .number(ValueText.double(d)) : .string(d.isNaN ? "NaN" : d > 0 ? "Infinity" : "-Infinity"))
        }
        switch v {
        case .int32(let i): return one("intValue", .string(String(i)))
        case .int64(let i): return one("intValue", .string(String(i)))
        case .double(let d): return double(d)
        case .bool(let b): return one("boolValue", .bool(b))
        case .string(let s): return one("stringValue", .string(s))
        case .int32Array(let a): return array(a.map { one("intValue", .string(String($0))) })
        case .int64Array(let a): return array(a.map { one("intValue", .string(String($0))) })
        case .doubleArray(let a): return array(a.map(double))
        case .boolArray(let a): return array(a.map { one("boolValue", .bool($0)) })
        case .stringArray(let a): return array(a.map { one("stringValue", .string($0)) })
        case .stringConvertibleArray(let a): return array(a.map { one("stringValue", .string($0.description)) })
        case .stringConvertible(let c): return one("stringValue", .string(c.description))
        default: return one("stringValue", .string("\(v)"))
        }
    }
}

/// Protocol Buffers' wire format, the little of it OTLP needs. A nested message is written
/// in place: one byte is kept for its length and widened after, only when it is ≥ 128 bytes.
struct ProtoWriter {
    var bytes: [UInt8] = []

    @inline(__always) mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(truncatingIfNeeded: v) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    mutating func tag(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    /// A varint field; zero is the default and is left out.
    mutating func uint(_ field: Int, _ v: UInt64) { if v != 0 { tag(field, 0); varint(v) } }

    mutating func fixed64(_ field: Int, _ v: UInt64) {
        tag(field, 1)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * i))) }
    }

    /// A string field; empty is the default and is left out.
    mutating func string(_ field: Int, _ s: String) {
        guard !s.isEmpty else { return }
        tag(field, 2)
        varint(UInt64(s.utf8.count))
        bytes += s.utf8
    }

    /// A span id as `bytes`: big-endian, as its hex form reads.
    mutating func id(_ field: Int, _ word: UInt64) {
        tag(field, 2)
        bytes.append(8)
        append(word)
    }

    /// A trace id (two words) as `bytes`.
    mutating func id(_ field: Int, _ high: UInt64, _ low: UInt64) {
        tag(field, 2)
        bytes.append(16)
        append(high)
        append(low)
    }

    @inline(__always) private mutating func append(_ word: UInt64) {
        withUnsafeBytes(of: word.bigEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always) mutating func message(_ field: Int, _ body: (inout ProtoWriter) -> Void) {
        tag(field, 2)
        let at = bytes.count
        bytes.append(0)
        body(&self)
        let length = bytes.count - at - 1
        if length < 0x80 { bytes[at] = UInt8(length); return }
        var prefix = ProtoWriter()
        prefix.varint(UInt64(length))
        bytes.replaceSubrange(at..<at + 1, with: prefix.bytes)
    }

    /// Repeated `KeyValue`s.
    mutating func attributes(_ field: Int, _ a: SpanAttributes) {
        a.forEach { keyValue(field, $0, $1) }
    }

    /// One `KeyValue`.
    mutating func keyValue(_ field: Int, _ key: String, _ value: SpanAttribute) {
        message(field) { kv in
            kv.string(1, key)
            kv.message(2) { $0.anyValue(value) }
        }
    }

    /// The fields of an `AnyValue` (one of them, always written, even when zero).
    mutating func anyValue(_ v: SpanAttribute) {
        func int(_ i: Int64) { tag(3, 0); varint(UInt64(bitPattern: i)) }
        func double(_ d: Double) { fixed64(4, d.bitPattern) }
        func bool(_ b: Bool) { tag(2, 0); varint(b ? 1 : 0) }
        func text(_ s: String) { tag(1, 2); varint(UInt64(s.utf8.count)); bytes += s.utf8 }
        func array<T>(_ items: [T], _ each: @escaping (inout ProtoWriter, T) -> Void) {
            message(5) { arr in for item in items { arr.message(1) { each(&$0, item) } } }
        }
        switch v {
        case .int32(let i): int(Int64(i))
        case .int64(let i): int(i)
        case .double(let d): double(d)
        case .bool(let b): bool(b)
        case .string(let s): text(s)
        case .int32Array(let a): array(a) { $0.anyValue(.int32($1)) }
        case .int64Array(let a): array(a) { $0.anyValue(.int64($1)) }
        case .doubleArray(let a): array(a) { $0.anyValue(.double($1)) }
        case .boolArray(let a): array(a) { $0.anyValue(.bool($1)) }
        case .stringArray(let a): array(a) { $0.anyValue(.string($1)) }
        case .stringConvertibleArray(let a): array(a) { $0.anyValue(.string($1.description)) }
        case .stringConvertible(let c): text(c.description)
        default: text("\(v)")
        }
    }
}
