/// A seeded random-mutation fuzzer: takes corpus files and feeds mutated copies (bit
/// flips, interesting values, cut and duplicated ranges, truncation) to a reader. Same seed,
/// same inputs, so a failure can be replayed.
public enum Mutator {
    public struct Stats: Sendable {
        public var runs = 0
        public var slowest = 0.0
        public init() {}
    }

    /// SplitMix64.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
    }

    static let interesting: [[UInt8]] = [[0], [0xFF], [0x7F], [0x80], [0xFF, 0xFF, 0xFF, 0x7F], [0, 0, 0, 0x80], [0xFF, 0xFF, 0xFF, 0xFF],
                                         [0x01], [0xFE, 0xFF, 0xFF, 0xFF, 0x0F], [0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]]

    /// One mutated copy of `input`.
    static func mutate(_ input: [UInt8], _ r: inout Random) -> [UInt8] {
        var b = input
        for _ in 0..<(1 + r.below(4)) {
            guard !b.isEmpty else { return b }
            switch r.below(6) {
            case 0: b[r.below(b.count)] ^= UInt8(1) << UInt8(r.below(8))
            case 1:
                let v = interesting[r.below(interesting.count)]
                let at = r.below(b.count)
                for (k, x) in v.enumerated() where at + k < b.count { b[at + k] = x }
            case 2: b[r.below(b.count)] = UInt8(truncatingIfNeeded: r.next())
            case 3:
                let at = r.below(b.count), n = min(b.count - at, 1 + r.below(16))
                b.removeSubrange(at..<(at + n))
            case 4:
                let at = r.below(b.count), n = min(b.count - at, 1 + r.below(64))
                b.insert(contentsOf: b[at..<(at + n)], at: r.below(b.count))
            default: b.removeLast(r.below(min(b.count, 64)))
            }
        }
        return b
    }

    /// Feeds mutated corpus files to `body` until `seconds` pass.
    public static func run(corpus: [[UInt8]], seed: UInt64, seconds: Double, stats: inout Stats, _ body: ([UInt8]) -> Void) {
        var r = Random(state: seed)
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int64(seconds * 1000))
        while clock.now < end {
            let input = mutate(corpus[r.below(corpus.count)], &r)
            let t0 = clock.now
            body(input)
            let d = clock.now - t0
            stats.slowest = max(stats.slowest, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
            stats.runs += 1
        }
    }
}
