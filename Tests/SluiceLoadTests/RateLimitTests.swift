import Testing
import Foundation
import SluiceLoad
import SluiceSQLite
import SluiceTesting

/// The enrich step's shared rate limit, simulated on the real control-plane bucket: the
/// geocoder used to measure 52–54 requests in a second at `rate: 50`.
@Suite struct RateLimitTests {
    @Test(arguments: [(50.0, 8), (20.0, 4), (1000.0, 16), (3.0, 2)])
    func noSlidingSecondSeesMoreThanTheRate(rate: Double, concurrency: Int) async throws {
        let dir = TempDir()
        let driver = try SQLiteQueueDriver(path: dir.file("q.db"))
        try await driver.migrate()
        let block = TokenReservoir.block(rate: rate, concurrency: concurrency)
        let refill = TokenReservoir.refill(rate: rate, block: block)
        // Workers asking as fast as they can: every millisecond for four seconds.
        var grants: [Double] = []
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        for ms in 0..<4_000 {
            let t = Double(ms) / 1000
            let (granted, _) = try await driver.takeTokens(bucket: "geo", rate: refill, burst: Double(block + 1), count: block, now: base.addingTimeInterval(t))
            grants += Array(repeating: t, count: granted)
        }
        var most = 0, j = 0
        for (i, t) in grants.enumerated() {
            while grants[j] <= t - 1 { j += 1 }
            most = max(most, i - j + 1)
        }
        #expect(Double(most) <= rate, "\(most) in one second at rate \(rate)")
        // And the limit is used, not starved: the average is the bucket's refill (a block, a
        // few tokens and 2% under the rate).
        #expect(Double(grants.count) / 4 >= refill - 1 && refill >= (rate - Double(block) - 2) / 1.02, "\(grants.count) in 4 s at rate \(rate)")
    }
}
