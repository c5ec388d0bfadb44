public import ServiceContextModule
import SluiceCore

/// A span's place in a trace as W3C trace context spells it: a 128-bit trace id, the span's
/// 64-bit id, the sampled flag and the vendors' `tracestate`, passed on as received.
public struct TraceContext: Sendable, Hashable {
    public var traceHigh: UInt64
    public var traceLow: UInt64
    public var spanID: UInt64
    public var sampled: Bool
    public var traceState: String = ""

    /// 32 lowercase hex digits, made in one string (a log line asks for it on every request).
    public var traceIDHex: String {
        String(unsafeUninitializedCapacity: 32) { buf in
            Self.writeHex(traceHigh, into: buf, at: 0)
            Self.writeHex(traceLow, into: buf, at: 16)
            return 32
        }
    }
    public var spanIDHex: String { Self.hex(spanID) }

    /// `00-<trace id>-<span id>-<flags>`.
    public var traceparent: String { "00-\(traceIDHex)-\(spanIDHex)-\(sampled ? "01" : "00")" }

    /// The context a `traceparent` header names, or nil when the header is not one
    /// (wrong length or version, ids that are zero or not lowercase hex), as W3C says to
    /// treat it: a new trace then starts. `tracestate` is kept only with a valid parent.
    public init?(traceparent header: String, traceState: String?) {
        let b = Array(header.utf8)
        // Version 00 is exactly 55 bytes; a later version may append fields after a dash.
        guard b.count >= 55, b[2] == 0x2D, b[35] == 0x2D, b[52] == 0x2D,
              let version = Self.parseHex(b[0..<2]), version != 0xFF, version != 0 || b.count == 55,
              b.count == 55 || b[55] == 0x2D,
              let hi = Self.parseHex(b[3..<19]), let lo = Self.parseHex(b[19..<35]), hi | lo != 0,
              let span = Self.parseHex(b[36..<52]), span != 0,
              let flags = Self.parseHex(b[53..<55]) else { return nil }
        self.init(traceHigh: hi, traceLow: lo, spanID: span, sampled: flags & 1 == 1,
                  traceState: traceState.map { $0.utf8.count <= 512 ? $0 : "" } ?? "")
    }

    public init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, sampled: Bool, traceState: String = "") {
        (self.traceHigh, self.traceLow, self.spanID, self.sampled, self.traceState) = (traceHigh, traceLow, spanID, sampled, traceState)
    }

    /// Lowercase hex digits only (W3C refuses uppercase), at most 16 of them.
    static func parseHex(_ digits: ArraySlice<UInt8>) -> UInt64? {
        var v: UInt64 = 0
        for c in digits {
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x61...0x66: d = c - 0x61 + 10
            default: return nil
            }
            v = v << 4 | UInt64(d)
        }
        return v
    }

    /// 16 lowercase hex digits.
    public static func hex(_ v: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buf in
            writeHex(v, into: buf, at: 0)
            return 16
        }
    }

    private static func writeHex(_ v: UInt64, into buf: UnsafeMutableBufferPointer<UInt8>, at start: Int) {
        for i in 0..<16 { buf[start + i] = ValueText.hexDigits[Int((v >> UInt64(60 - 4 * i)) & 0xF)] }
    }
}

/// Where a span's ``TraceContext`` lives in a `ServiceContext`.
public enum TraceContextKey: ServiceContextKey {
    public typealias Value = TraceContext
    public static var nameOverride: String? { "sluice-trace-context" }
}


/// What a `server` span records of its HTTP request, as plain fields.
public struct HTTPRequestFacts: Sendable {
    public var method: String
    public var path: String
    public var route: String?
    public var status: Int
    public var requestSize: Int?
    public var responseSize: Int?

    public init(method: String, path: String, route: String?, status: Int, requestSize: Int?, responseSize: Int?) {
        (self.method, self.path, self.route, self.status, self.requestSize, self.responseSize) = (method, path, route, status, requestSize, responseSize)
    }

    /// An attribute's value: text or an integer.
    public enum Value: Sendable { case string(String), int(Int64) }

    /// OpenTelemetry's HTTP server attributes (semantic conventions), in one place for every
    /// encoder of them.
    public func forEachAttribute(_ body: (String, Value) -> Void) {
        body("http.request.method", .string(method))
        body("url.path", .string(path))
        body("http.response.status_code", .int(Int64(status)))
        if let route { body("http.route", .string(route)) }
        if let requestSize { body("http.request.body.size", .int(Int64(requestSize))) }
        if let responseSize { body("http.response.body.size", .int(Int64(responseSize))) }
    }
}

/// A tracer that keeps a request span's facts as fields and turns them into OpenTelemetry's
/// HTTP attributes only when it exports (a dictionary of attributes per request is most of
/// what a traced request costs). Sluice's tracer, the only one it installs, is one.
public protocol HTTPRequestRecorder: Sendable {
    /// Records `facts` on `span` (a span this tracer started; any other is left as is) and
    /// names it by the route.
    func record(_ facts: HTTPRequestFacts, on span: any Sendable)
}
