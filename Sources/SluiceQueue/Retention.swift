public import SluiceCore
public import Foundation

/// What clean-up may remove, decided from the control plane's records alone (no I/O). The
/// rule throughout: nothing an unfinished job, a retry or the scheduler still needs.
public enum RetentionPlanner {
    /// How the jobs that name one upload stand, gathered a page of jobs at a time.
    public struct UploadUse: Sendable, Equatable {
        /// A job naming it is queued, running or failed (a retry would read it again).
        public var open = false
        /// Every job naming it found its bytes already loaded.
        public var allDuplicates = true
        public var lastFinished: Date?
        public init() {}
    }

    /// Adds what `jobs` say about the uploads they read to `use`.
    public static func gather(_ jobs: [Job], into use: inout [String: UploadUse]) {
        for j in jobs where j.spec.source.hasPrefix("upload:") {
            let id = String(j.spec.source.dropFirst("upload:".count))
            var u = use[id] ?? UploadUse()
            if j.state != .complete && j.state != .cancelled { u.open = true }
            if !(j.state == .complete && j.result?.duplicateOf != nil) { u.allDuplicates = false }
            if let f = j.finishedAt { u.lastFinished = max(u.lastFinished ?? f, f) }
            use[id] = u
        }
    }

    /// Uploads whose file can go: every job naming it is complete or cancelled and the last
    /// finished `days` ago — or at once when each of those jobs found its bytes already loaded
    /// (a duplicate); uploads no job names go `days` after they arrived. A queued, running or
    /// failed job (which a retry would run again) keeps its upload.
    public static func uploads(_ uploads: [Upload], use: [String: UploadUse], now: Date, days: Double) -> [Upload] {
        let cutoff = now.addingTimeInterval(-days * 86_400)
        return uploads.filter { u in
            guard let use = use[u.id] else { return u.createdAt <= cutoff }
            if use.open { return false }
            return use.allDuplicates || (use.lastFinished.map { $0 <= cutoff } ?? false)
        }
    }

    /// Whether a job's work folder (its scratch and rejects files) can go: the job ended
    /// `days` ago, or it is gone from the control plane and the folder was last touched then.
    /// `ended`: when the job reached a final state (nil: it has not).
    public static func workFolder(exists: Bool, ended: Date?, touched: Date, now: Date, days: Double) -> Bool {
        let cutoff = now.addingTimeInterval(-days * 86_400)
        guard exists else { return touched <= cutoff }
        return ended.map { $0 <= cutoff } ?? false
    }

    /// Runs to forget: finished `days` ago, except each pipeline's newest succeeded run and
    /// newest succeeded scheduled run (the watermark and the schedule's catch-up read them).
    public static func runs(_ runs: [PipelineRun], now: Date, days: Double) -> [PipelineRun] {
        let cutoff = now.addingTimeInterval(-days * 86_400)
        var keep = Set<Int64>()
        for (_, rs) in Dictionary(grouping: runs.filter { $0.state == .succeeded }, by: \.pipeline) {
            if let newest = rs.max(by: { $0.id < $1.id }) { keep.insert(newest.id) }
            if let scheduled = rs.filter({ $0.scheduledFor != nil }).max(by: { $0.scheduledFor! < $1.scheduledFor! }) { keep.insert(scheduled.id) }
        }
        return runs.filter { r in
            r.state != .running && !keep.contains(r.id) && (r.finishedAt ?? r.startedAt) <= cutoff
        }
    }
}
