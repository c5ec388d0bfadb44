import Testing
@testable import SluiceFormats
import SluiceCore
import SluiceTesting

@Suite struct SnappyTests {
    /// Random, repetitive and mixed inputs compress within the bound and decompress to themselves.
    @Test func roundTrips() throws {
        var rng = SplitMix(seed: 9)
        for trial in 0..<300 {
            let n = Int(rng.next() % 200_000)
            var input = [UInt8](repeating: 0, count: n)
            let mode = trial % 4
            for i in 0..<n {
                switch mode {
                case 0: input[i] = UInt8(truncatingIfNeeded: rng.next())
                case 1: input[i] = UInt8(i % 7)
                case 2: input[i] = i % 100 < 50 ? UInt8(truncatingIfNeeded: rng.next()) : input[max(0, i - 1000)]
                default: input[i] = UInt8(truncatingIfNeeded: rng.next() % 4)
                }
            }
            var out: [UInt8] = [1, 2, 3]
            input.withUnsafeBytes { Snappy.compress($0, into: &out) }
            #expect(out.count - 3 <= Snappy.maxCompressedLength(n))
            let back = try Array(out[3...]).withBytes { (b) throws(SluiceError) in try Snappy.decompress(b, limit: n) }
            #expect(back == input, "trial \(trial) mode \(mode) size \(n)")
        }
    }
}
