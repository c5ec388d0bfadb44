import Testing
import Foundation
import SluiceCore
@testable import SluiceQueue

struct ScheduleTests {
    static func at(_ s: String) -> Date { ISO8601DateFormatter().date(from: s)! }
    static func iso(_ d: Date?) -> String? { d.map { ISO8601DateFormatter().string(from: $0) } }

    @Test func cronFiresWhereItShould() throws {
        let q = try CronSchedule("*/15 * * * *")
        #expect(Self.iso(q.next(after: Self.at("2026-11-01T10:07:30Z"))) == "2026-11-01T10:15:00Z")
        #expect(Self.iso(q.next(after: Self.at("2026-11-01T10:15:00Z"))) == "2026-11-01T10:30:00Z")
        // 06:00 in São Paulo (UTC-3) is 09:00 UTC.
        let daily = try CronSchedule("0 6 * * *", timeZone: TimeZone(identifier: "America/Sao_Paulo")!)
        #expect(Self.iso(daily.next(after: Self.at("2026-11-01T09:00:00Z"))) == "2026-11-02T09:00:00Z")
        let weekdays = try CronSchedule("30 8 * * mon-fri")
        #expect(Self.iso(weekdays.next(after: Self.at("2026-11-20T09:00:00Z"))) == "2026-11-23T08:30:00Z")  // Friday → Monday
        // Day of month and day of week both given: either matches.
        let either = try CronSchedule("0 0 1 * sun")
        #expect(Self.iso(either.next(after: Self.at("2026-11-01T00:00:00Z"))) == "2026-11-08T00:00:00Z")
        #expect(Self.iso(try CronSchedule("@monthly").next(after: Self.at("2026-11-15T00:00:00Z"))) == "2026-12-01T00:00:00Z")
        for bad in ["* * * *", "61 * * * *", "*/0 * * * *", "5-1 * * * *", "0 0 * foo *"] {
            #expect(throws: SluiceError.self, "\(bad)") { try CronSchedule(bad) }
        }
    }

    @Test func missedFiringsAreCaughtUpInOneRun() throws {
        let daily = try CronSchedule("0 6 * * *")
        let first = Self.at("2026-10-01T00:00:00Z")
        #expect(SchedulePlanner.due(daily, lastScheduled: Self.at("2026-11-01T06:00:00Z"), first: first, now: Self.at("2026-11-02T05:59:00Z")) == nil)
        let one = try #require(SchedulePlanner.due(daily, lastScheduled: Self.at("2026-11-01T06:00:00Z"), first: first, now: Self.at("2026-11-02T06:00:00Z")))
        #expect(Self.iso(one.scheduledFor) == "2026-11-02T06:00:00Z" && one.missed == 0)
        // Down for three days: one run for the latest firing, covering the gap.
        let gap = try #require(SchedulePlanner.due(daily, lastScheduled: Self.at("2026-11-01T06:00:00Z"), first: first, now: Self.at("2026-11-04T07:00:00Z")))
        #expect(Self.iso(gap.scheduledFor) == "2026-11-04T06:00:00Z" && gap.missed == 2 && Self.iso(gap.windowFrom) == "2026-11-01T06:00:00Z")
    }

    @Test func dependenciesAreOrderedAndCyclesRefused() throws {
        let dag = ["load": ["extract"], "extract": [], "report": ["load", "extract"], "alone": []]
        let order = try PipelineDAG.order(dag)
        #expect(order.firstIndex(of: "extract")! < order.firstIndex(of: "load")! && order.firstIndex(of: "load")! < order.firstIndex(of: "report")!)
        #expect(try PipelineDAG.downstream(of: "extract", dag) == ["load", "report"])
        do {
            _ = try PipelineDAG.order(["a": ["b"], "b": ["c"], "c": ["a"]])
            Issue.record("a cycle must be refused")
        } catch {
            #expect(error.message.contains("a → b → c → a"), "\(error)")
        }
        #expect(throws: SluiceError.self) { try PipelineDAG.order(["a": ["nope"]]) }
    }
}
