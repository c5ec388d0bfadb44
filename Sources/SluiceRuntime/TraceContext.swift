import ServiceContextModule
import Synchronization
import SluiceCore

/// A span's place in a trace as W3C trace context spells it: a 128-bit trace id, the span's
/// 64-bit id, the sampled flag and the vendors' `tracestate`, passed on as received.
struct TraceContext: Sendable, Hashable {
    var traceHigh: UInt64
    var traceLow: UInt64
    var spanID: UInt64
    var sampled: Bool
    var traceState: String = ""

    var traceIDHex: String { Self.hex(traceHigh) + Self.hex(traceLow) }
    var spanIDHex: String { Self.hex(spanID) }

    /// `00-<trace id>-<span id>-<flags>`.
    var traceparent: String { "00-\(traceIDHex)-\(spanIDHex)-\(sampled ? "01" : "00")" }

    /// The context a `traceparent` header names, or nil when the header is not one
    /// (wrong length or version, ids that are zero or not lowercase hex), as W3C says to
    /// treat it: a new trace then starts. `tracestate` is kept only with a valid parent.
    init?(traceparent header: String, traceState: String?) {
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

    init(traceHigh: UInt64, traceLow: UInt64, spanID: UInt64, sampled: Bool, traceState: String = "") {
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

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// 16 lowercase hex digits.
    static func hex(_ v: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buf in
            for i in 0..<16 { buf[i] = hexDigits[Int((v >> UInt64(60 - 4 * i)) & 0xF)] }
            return 16
        }
    }
}

/// Where a span's ``TraceContext`` lives in a `ServiceContext`.
enum TraceContextKey: ServiceContextKey {
    typealias Value = TraceContext
    static var nameOverride: String? { "sluice-trace-context" }
}

/// Which new traces are recorded and sent (`OTEL_TRACES_SAMPLER`); a span with a parent
/// follows its parent's decision under the `parentbased_*` samplers (the default).
struct TraceSampler: Sendable, Equatable {
    enum Root: Sendable, Equatable {
        case always, never
        /// Records a trace when the low 64 bits of its id fall under `ratio` of their range.
        case ratio(Double)
    }
    var root: Root
    var parentBased: Bool

    static let `default` = TraceSampler(root: .always, parentBased: true)

    /// The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name; a name or
    /// ratio it does not know is an error (the caller says so and keeps the default).
    init(name: String?, argument: String?) throws(SluiceError) {
        let name = (name ?? "").lowercased()
        var ratio = 1.0
        if let argument, !argument.isEmpty {
            guard let r = Double(argument), r >= 0, r <= 1 else {
                throw SluiceError(.invalidConfig, "OTEL_TRACES_SAMPLER_ARG=\(argument): expected a ratio from 0 to 1")
            }
            ratio = r
        }
        switch name {
        case "", "parentbased_always_on": self.init(root: .always, parentBased: true)
        case "parentbased_always_off": self.init(root: .never, parentBased: true)
        case "parentbased_traceidratio": self.init(root: .ratio(ratio), parentBased: true)
        case "always_on": self.init(root: .always, parentBased: false)
        case "always_off": self.init(root: .never, parentBased: false)
        case "traceidratio": self.init(root: .ratio(ratio), parentBased: false)
        default: throw SluiceError(.invalidConfig, "OTEL_TRACES_SAMPLER=\(name): expected always_on, always_off, traceidratio or parentbased_ one of them")
        }
    }

    init(root: Root, parentBased: Bool) { (self.root, self.parentBased) = (root, parentBased) }

    /// Whether a span of trace `traceLow` is recorded, given its parent (nil for a root).
    func sampled(traceLow: UInt64, parent: TraceContext?) -> Bool {
        if parentBased, let parent { return parent.sampled }
        switch root {
        case .always: return true
        case .never: return false
        case .ratio(let r):
            if r >= 1 { return true }
            return Double(traceLow) < r * 18_446_744_073_709_551_616.0  // 2^64
        }
    }
}

/// Trace and span ids: xoshiro256** seeded once from the system's generator, so an id
/// costs a few instructions instead of a `getrandom` call. Never zero (W3C's invalid id).
final class TraceIDGenerator: Sendable {
    private let state: Mutex<(UInt64, UInt64, UInt64, UInt64)>

    init() {
        var seed = SystemRandomNumberGenerator()
        var s = (seed.next() as UInt64, seed.next() as UInt64, seed.next() as UInt64, seed.next() as UInt64)
        if s.0 | s.1 | s.2 | s.3 == 0 { s.0 = 1 }
        state = Mutex(s)
    }

    func next() -> UInt64 {
        state.withLock { s in
            while true {
                let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
                let t = s.1 << 17
                s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
                s.2 ^= t
                s.3 = s.3 << 45 | s.3 >> 19
                if result != 0 { return result }
            }
        }
    }
}
