import Testing
import Foundation
import SluiceCore
@testable import SluiceQueue

/// The pure rules of `sluice gc`: what may go, and what an unfinished job, a retry or the
/// scheduler keeps.
@Suite struct RetentionPlannerTests {
    let now = Date(timeIntervalSince1970: 1_000_000)
    func day(_ d: Double) -> Date { now.addingTimeInterval(-d * 86_400) }

    func job(_ id: Int64, _ upload: String, _ state: JobState, finished: Date?, duplicate: Bool = false) -> Job {
        var j = Job(id: id, entity: "e", state: state, spec: JobSpec(source: "upload:\(upload)"), priority: 0, attempts: 1, maxAttempts: 3,
                    leaseToken: 0, runAfter: day(30), createdAt: day(30))
        j.finishedAt = finished
        if duplicate { j.result = JobResult(stats: LoadStats(), duplicateOf: 1) }
        return j
    }

    @Test func uploadsStayWhileAJobOrARetryNeedsThem() {
        let uploads = ["old", "recent", "dup", "failed", "queued", "orphan-old", "orphan-new", "mixed"].map {
            Upload(id: $0, path: "/u/\($0)", size: 1, sha256: $0, originalName: nil, createdAt: $0 == "orphan-new" ? day(1) : day(20))
        }
        var use: [String: RetentionPlanner.UploadUse] = [:]
        RetentionPlanner.gather([job(1, "old", .complete, finished: day(10)), job(2, "recent", .complete, finished: day(1)),
                                 job(3, "dup", .complete, finished: day(0), duplicate: true), job(4, "failed", .error, finished: day(10)),
                                 job(5, "queued", .queued, finished: nil), job(6, "mixed", .complete, finished: day(10)),
                                 job(7, "mixed", .processing, finished: nil)], into: &use)
        let gone = RetentionPlanner.uploads(uploads, use: use, now: now, days: 7).map(\.id)
        #expect(gone == ["old", "dup", "orphan-old"])
    }

    @Test func theLatestSuccessAndLatestScheduledSuccessOfEachPipelineStay() {
        func run(_ id: Int64, _ p: String, _ state: PipelineRun.State, scheduled: Date?) -> PipelineRun {
            PipelineRun(id: id, pipeline: p, state: state, scheduledFor: scheduled, windowFrom: nil, windowTo: nil, startedAt: day(100), finishedAt: day(100))
        }
        let runs = [run(1, "p", .succeeded, scheduled: day(102)), run(2, "p", .succeeded, scheduled: day(101)), run(3, "p", .succeeded, scheduled: nil),
                    run(4, "p", .failed, scheduled: nil), run(5, "q", .running, scheduled: nil)]
        // 3 is p's newest success; 2 holds p's latest firing (what the schedule reads).
        #expect(RetentionPlanner.runs(runs, now: now, days: 90).map(\.id) == [1, 4])
        #expect(RetentionPlanner.runs(runs, now: now, days: 365).isEmpty)
    }
}
