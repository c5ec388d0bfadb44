import Testing
import Foundation
import SluiceQueue
import SluiceStorage
@testable import SluiceWatch
import SluiceCore

struct WatchPlannerTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    static func o(_ key: String, _ etag: String = "e", size: Int64 = 10, age: Double = 100) -> ObjectInfo {
        ObjectInfo(key: key, size: size, etag: etag, lastModified: t0.addingTimeInterval(-age))
    }
    static func seen(_ key: String, _ etag: String = "e", size: Int64 = 10, state: WatchedFileState = .seen, at: Double = -5) -> WatchedFile {
        WatchedFile(watch: "w", key: key, etag: etag, size: size, lastModified: t0, state: state, firstSeen: t0.addingTimeInterval(at))
    }

    @Test func globs() {
        #expect(Glob("input/*.json").matches("input/a.json"))
        #expect(!Glob("input/*.json").matches("input/x/a.json"))
        #expect(Glob("input/**/*.json").matches("input/x/y/a.json") && Glob("input/**/*.json").matches("input/a.json"))
        #expect(Glob("in/file-?.csv").matches("in/file-1.csv") && !Glob("in/file-?.csv").matches("in/file-10.csv"))
        #expect(Glob("[a-c]*.csv").matches("b1.csv") && !Glob("[!a-c]*.csv").matches("b1.csv"))
        #expect(Glob("input/*.json").prefix == "input/")
        #expect(Glob("*.{csv,json}").matches("a.json") && Glob("*.{csv,json}").matches("b.csv") && !Glob("*.{csv,json}").matches("c.txt"))
    }

    @Test func newObjectsWaitForASecondPollUnlessOldEnough() {
        var rules = WatchRules()
        rules.glob = Glob("input/*.json")
        let listing = [Self.o("input/a.json"), Self.o("input/b.json"), Self.o("raw/x.json"), Self.o("input/")]
        // First poll: both recorded as seen, none processed.
        var p = WatchPlanner.plan(listing: listing, ledger: [], rules: rules, watermark: nil, pollStart: Self.t0)
        #expect(p.firstSeen.map(\.key) == ["input/a.json", "input/b.json"] && p.process.isEmpty)
        // Second poll: a is unchanged (stable), b grew (still being written).
        p = WatchPlanner.plan(listing: [Self.o("input/a.json"), Self.o("input/b.json", "e2", size: 20)],
                              ledger: [Self.seen("input/a.json"), Self.seen("input/b.json")], rules: rules, watermark: nil, pollStart: Self.t0)
        #expect(p.process.map(\.key) == ["input/a.json"] && p.firstSeen.map(\.key) == ["input/b.json"])
        // With a minimum age, an old enough object goes at once and a young one waits.
        rules.minAge = 30
        p = WatchPlanner.plan(listing: [Self.o("input/a.json"), Self.o("input/c.json", age: 2)], ledger: [], rules: rules, watermark: nil, pollStart: Self.t0)
        #expect(p.process.map(\.key) == ["input/a.json"] && p.firstSeen.map(\.key) == ["input/c.json"])
    }

    @Test func doneVersionsAreSkippedAndChangesFollowThePolicy() {
        var rules = WatchRules()
        rules.minAge = 0
        let ledger = [Self.seen("a.json", state: .queued), Self.seen("b.json", state: .failed), Self.seen("c.json", state: .ignored)]
        var p = WatchPlanner.plan(listing: [Self.o("a.json"), Self.o("b.json"), Self.o("c.json")], ledger: ledger, rules: rules, watermark: nil, pollStart: Self.t0)
        #expect(p.process.isEmpty && p.firstSeen.isEmpty && p.ignore.isEmpty)
        p = WatchPlanner.plan(listing: [Self.o("a.json", "e2")], ledger: ledger, rules: rules, watermark: nil, pollStart: Self.t0)
        #expect(p.process.map(\.etag) == ["e2"])
        rules.onChange = .ignore
        p = WatchPlanner.plan(listing: [Self.o("a.json", "e2")], ledger: ledger, rules: rules, watermark: nil, pollStart: Self.t0)
        #expect(p.process.isEmpty && p.ignore.map(\.0.etag) == ["e2"])
    }

    @Test func limitsAndWatermark() {
        var rules = WatchRules()
        rules.minAge = 0
        rules.maxFiles = 2
        let listing = (0..<5).map { Self.o("f\($0).json", size: 100, age: Double(50 - $0)) }
        var p = WatchPlanner.plan(listing: listing, ledger: [], rules: rules, watermark: nil, pollStart: Self.t0)
        #expect(p.process.map(\.key) == ["f0.json", "f1.json"] && p.deferred == 3)  // oldest first
        rules.maxFiles = nil
        rules.maxBytes = 250
        p = WatchPlanner.plan(listing: listing, ledger: [], rules: rules, watermark: nil, pollStart: Self.t0)
        #expect(p.process.count == 2 && p.deferred == 3)
        rules.maxBytes = 1  // one file always goes
        p = WatchPlanner.plan(listing: listing, ledger: [], rules: rules, watermark: nil, pollStart: Self.t0)
        #expect(p.process.count == 1)
        rules.maxBytes = nil
        rules.watermark = true
        p = WatchPlanner.plan(listing: listing, ledger: [], rules: rules, watermark: Self.t0.addingTimeInterval(-48), pollStart: Self.t0)
        #expect(p.process.map(\.key) == ["f3.json", "f4.json"] && p.ignore.count == 3)
    }
}
