public import Foundation
public import SluiceQueue
public import SluiceStorage
public import SluiceCore

/// What a watch does when an object it already loaded shows up with a new etag.
public enum ChangePolicy: String, Sendable, CaseIterable {
    /// Load the new version too (a new job; upserts make the tables match it).
    case reprocess
    /// Record the new version as ignored.
    case ignore
}

/// The rules of one watch, independent of where it runs.
public struct WatchRules: Sendable, Equatable {
    public var glob: Glob?
    /// An object is stable once it is this old (by its modification time). Nil: once it was
    /// seen with the same etag and size in an earlier poll.
    public var minAge: Double?
    public var onChange: ChangePolicy = .reprocess
    /// Per poll (back-pressure): at most this many files, and this many bytes (at least one file).
    public var maxFiles: Int?
    public var maxBytes: Int64?
    /// Only objects newer than the newest one already queued.
    public var watermark = false
    /// The watched folder or prefix: the glob is relative to it.
    public var base = ""
    /// An object is whole once listed (S3: a PUT is atomic), so a new one is taken on the
    /// poll that first sees it; folders and FTP wait to see it unchanged.
    public var completeWhenListed = false

    public init() {}
}

/// One poll's decisions, as the watcher carries them out.
public struct WatchPlan: Sendable, Equatable {
    /// New versions seen for the first time: recorded as `seen`, processed on a later poll.
    public var firstSeen: [ObjectInfo] = []
    /// Stable versions to fetch and load now, oldest first.
    public var process: [ObjectInfo] = []
    /// Listed objects that match the glob, whatever became of them.
    public var matched = 0
    /// Versions to record as ignored, with why.
    public var ignore: [(ObjectInfo, String)] = []
    /// Stable versions left for the next poll by the per-poll limits.
    public var deferred = 0

    public static func == (a: WatchPlan, b: WatchPlan) -> Bool {
        a.firstSeen == b.firstSeen && a.process == b.process && a.deferred == b.deferred
            && a.ignore.map(\.0) == b.ignore.map(\.0) && a.ignore.map(\.1) == b.ignore.map(\.1)
    }
}

/// Decides, from a listing and the file ledger, what each object becomes this poll. Pure.
public enum WatchPlanner {
    /// `ledger` holds every recorded version of the listed keys; `pollStart` is when this poll
    /// began (a version first seen before it was seen by an earlier poll).
    public static func plan(listing: [ObjectInfo], ledger: [WatchedFile], rules: WatchRules, watermark: Date?, pollStart: Date) -> WatchPlan {
        var byKey: [String: [WatchedFile]] = [:]
        for f in ledger { byKey[f.key, default: []].append(f) }
        var plan = WatchPlan()
        var ready: [ObjectInfo] = []
        for o in listing {
            if o.key.hasSuffix("/") { continue }  // folder markers
            if let glob = rules.glob, !glob.matches(o.key, under: rules.base) { continue }
            plan.matched += 1
            let versions = byKey[o.key] ?? []
            if let known = versions.first(where: { $0.etag == o.etag }) {
                guard known.state == .seen else { continue }  // queued, ignored or failed: done with
                let stable = rules.minAge.map { pollStart.timeIntervalSince(o.lastModified) >= $0 }
                    ?? (known.size == o.size && known.firstSeen < pollStart)
                if stable { ready.append(o) }
                continue
            }
            if let watermark, rules.watermark, o.lastModified <= watermark {
                plan.ignore.append((o, "not newer than the watermark"))
                continue
            }
            if versions.contains(where: { $0.state == .queued }), rules.onChange == .ignore {
                plan.ignore.append((o, "changed after it was loaded (on_change: ignore)"))
                continue
            }
            if rules.completeWhenListed && rules.minAge == nil {
                ready.append(o)
            } else if let minAge = rules.minAge, pollStart.timeIntervalSince(o.lastModified) >= minAge {
                ready.append(o)
            } else {
                plan.firstSeen.append(o)
            }
        }
        ready.sort { ($0.lastModified, $0.key) < ($1.lastModified, $1.key) }
        var bytes: Int64 = 0
        for o in ready {
            let full = rules.maxFiles.map { plan.process.count >= $0 } ?? false
            let heavy = rules.maxBytes.map { !plan.process.isEmpty && bytes + o.size > $0 } ?? false
            if full || heavy {
                plan.deferred += 1
            } else {
                plan.process.append(o)
                bytes += o.size
            }
        }
        return plan
    }
}
