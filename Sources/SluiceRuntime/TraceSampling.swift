import Synchronization
import SluiceCore
import SluiceQueue

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

    func next() -> UInt64 { state.withLock { Self.step(&$0) } }

    /// A new root's trace id (two words) and span id under one lock.
    func next3() -> (UInt64, UInt64, UInt64) { state.withLock { (Self.step(&$0), Self.step(&$0), Self.step(&$0)) } }

    private static func step(_ s: inout (UInt64, UInt64, UInt64, UInt64)) -> UInt64 {
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
