public import SluiceQueue
import SluiceCore
import SluiceConfig
import SluiceLoad
import SluiceStorage
public import Foundation
public import Logging
public import ServiceLifecycle

/// What a clean-up pass removed (or, dry, would remove).
public struct CleanupReport: Sendable, Codable, Equatable {
    public var dryRun = false
    public var jobs = 0
    public var uploads = 0
    public var uploadBytes: Int64 = 0
    public var workFolders = 0
    public var workBytes: Int64 = 0
    public var runs = 0
    public var loadFiles = 0
    public var loadBytes: Int64 = 0
    /// Objects in `storage:`'s uploads folder that no upload record names.
    public var orphans = 0
    public var orphanBytes: Int64 = 0
    /// Export-ledger key rows replaced by range rows.
    public var ledgerKeys = 0
    public var ledgerRanges = 0

    enum CodingKeys: String, CodingKey {
        case dryRun = "dry_run", jobs, uploads, uploadBytes = "upload_bytes", workFolders = "work_folders", workBytes = "work_bytes"
        case runs, loadFiles = "load_files", loadBytes = "load_bytes", orphans, orphanBytes = "orphan_bytes", ledgerKeys = "ledger_keys", ledgerRanges = "ledger_ranges"
    }

    public var summary: String {
        func mb(_ b: Int64) -> String { String(format: "%.1f MB", Double(b) / 1_000_000) }
        return "\(dryRun ? "would remove" : "removed") \(jobs) finished job\(jobs == 1 ? "" : "s"), \(uploads) upload\(uploads == 1 ? "" : "s") (\(mb(uploadBytes))), "
            + "\(workFolders) job folder\(workFolders == 1 ? "" : "s") (\(mb(workBytes))), \(runs) run record\(runs == 1 ? "" : "s"), "
            + "\(loadFiles) load file\(loadFiles == 1 ? "" : "s") (\(mb(loadBytes))), \(orphans) orphan object\(orphans == 1 ? "" : "s") (\(mb(orphanBytes))); "
            + "\(ledgerKeys) export-ledger key\(ledgerKeys == 1 ? "" : "s") \(dryRun ? "would be" : "were") kept as \(ledgerRanges) range\(ledgerRanges == 1 ? "" : "s")"
    }
}

/// `sluice gc` and `sluice serve`'s hourly pass: removes what `retention:` keeps no longer —
/// upload files, finished jobs' work folders, old run records with their rejects folders, old
/// `sluice load` summaries — never what an unfinished job, a retry or the scheduler needs
/// (``RetentionPlanner``).
public enum Cleanup {
    public static func run(_ runtime: Runtime, dryRun: Bool, now: Date = Date()) async throws -> CleanupReport {
        let config = runtime.config, driver = runtime.driver, keep = config.retention
        var report = CleanupReport(dryRun: dryRun)
        let fm = FileManager.default

        // Chunked jobs' shared stages, listed before the jobs: each belongs to a job listed below
        // unless that job is gone already.
        let stages = await runtime.target.sharedStages()

        // Finished jobs past their time go first: their uploads and folders then count as unused.
        let jobsCutoff = now.addingTimeInterval(-keep.jobsDays * 86_400)
        func expired(_ j: Job) -> Bool { j.state.isFinal && (j.finishedAt ?? .distantFuture) < jobsCutoff }
        if !dryRun { report.jobs = try await driver.deleteJobs(finishedBefore: jobsCutoff) }

        // Every job left, a page at a time: how each upload is used, and when each job ended.
        var use: [String: RetentionPlanner.UploadUse] = [:]
        var ended: [Int64: Date?] = [:]
        var after: Int64? = nil
        while true {
            let page = try await driver.listJobs(JobListParams(after: after, limit: 1000))
            guard let last = page.last else { break }
            after = last.id
            let kept = dryRun ? page.filter { !expired($0) } : page
            report.jobs += page.count - kept.count
            RetentionPlanner.gather(kept, into: &use)
            for j in kept { ended[j.id] = j.state.isFinal ? (j.finishedAt ?? j.createdAt) : nil }
        }

        // A stage outlives its job only when a writer cut off mid-COPY held it at the commit.
        for id in stages where !dryRun {
            if let end = ended[id], end == nil { continue }  // its job is still running
            await runtime.target.dropSharedStage(parent: id)
        }

        var from: String? = nil
        var recorded = Set<String>()
        while true {
            let page = try await driver.uploads(after: from, limit: 1000)
            guard let last = page.last else { break }
            from = last.id
            recorded.formUnion(page.map(\.path))
            let gone = RetentionPlanner.uploads(page, use: use, now: now, days: keep.uploadsDays)
            for u in gone {
                if let storage = runtime.policy.storage, storage.holds(u.path) {
                    report.uploads += 1
                    report.uploadBytes += u.size
                    if !dryRun { try? await storage.remove(u.path) }
                    continue
                }
                // Only files inside the upload folder are Sluice's to remove.
                let root = (config.uploadDir as NSString).standardizingPath, path = (u.path as NSString).standardizingPath
                guard path.hasPrefix(root + "/") else { continue }
                report.uploads += 1
                report.uploadBytes += Self.size(path)
                if !dryRun { try? fm.removeItem(atPath: path) }
            }
            if !dryRun && !gone.isEmpty { try await driver.deleteUploads(ids: gone.map(\.id)) }
        }

        // Objects kept for an upload whose process died before recording it (an API host killed
        // between the two): none is read by any job once it is past the grace period.
        if let storage = runtime.policy.storage {
            let cutoff = now.addingTimeInterval(-keep.orphansDays * 86_400)
            for (url, info) in try await storage.objects(in: "uploads") where !recorded.contains(url) && info.lastModified <= cutoff {
                report.orphans += 1
                report.orphanBytes += info.size
                if !dryRun { try await storage.remove(url) }
            }
        }

        let jobsDir = (config.workDir as NSString).appendingPathComponent("jobs")
        for name in (try? fm.contentsOfDirectory(atPath: jobsDir)) ?? [] {
            guard let id = Int64(name) else { continue }
            let path = (jobsDir as NSString).appendingPathComponent(name)
            let touched = Self.modified(path)
            let exists = ended.keys.contains(id)
            guard RetentionPlanner.workFolder(exists: exists, ended: ended[id] ?? nil, touched: touched, now: now, days: keep.workDays) else { continue }
            report.workFolders += 1
            report.workBytes += Self.size(path)
            if !dryRun { try? fm.removeItem(atPath: path) }
        }

        let runs = RetentionPlanner.runs(try await driver.runs(pipeline: nil, limit: 1_000_000), now: now, days: keep.runsDays)
        report.runs = runs.count
        if !dryRun && !runs.isEmpty {
            for r in runs {
                let folder = (StepRejectLog.runFile(r.pipeline, run: r.id, stateDir: config.stateDir) as NSString).deletingLastPathComponent
                try? fm.removeItem(atPath: folder)
            }
            try await driver.deleteRuns(ids: runs.map(\.id))
        }

        let loads = (config.stateDir as NSString).appendingPathComponent("loads")
        let cutoff = now.addingTimeInterval(-keep.loadsDays * 86_400)
        for name in (try? fm.contentsOfDirectory(atPath: loads)) ?? [] {
            let path = (loads as NSString).appendingPathComponent(name)
            guard Self.modified(path) <= cutoff else { continue }
            report.loadFiles += 1
            report.loadBytes += Self.size(path)
            if !dryRun { try? fm.removeItem(atPath: path) }
        }

        // Export ledgers (none when the tables live in MySQL): runs of keys become ranges,
        // except for exports that compare each row's hash to resend changed rows.
        if keep.exportRanges, let store = try await runtime.backend.exportStore() {
            let hashed = Set(config.exports.values.filter { $0.resendChanged == true }.compactMap(\.to))
            let done = try await store.compactKeys(skipping: hashed, dryRun: dryRun)
            report.ledgerKeys = done.keys
            report.ledgerRanges = done.ranges
        }
        return report
    }

    static func modified(_ path: String) -> Date {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date) ?? .distantPast
    }

    /// Bytes of a file, or of every file under a folder.
    static func size(_ path: String) -> Int64 {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { return 0 }
        guard isDir.boolValue else { return ((try? fm.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0 }
        var total: Int64 = 0
        let e = fm.enumerator(atPath: path)
        while let p = e?.nextObject() as? String {
            total += ((try? fm.attributesOfItem(atPath: (path as NSString).appendingPathComponent(p)))?[.size] as? NSNumber)?.int64Value ?? 0
        }
        return total
    }
}

/// Runs ``Cleanup`` a minute after start and then every hour, until shutdown.
public struct CleanupService: Service {
    let runtime: Runtime
    public init(runtime: Runtime) { self.runtime = runtime }

    public func run() async throws {
        // Sleeps end at a graceful shutdown (SIGTERM), so the server stops at once.
        try? await cancelWhenGracefulShutdown {
            var wait = Duration.seconds(60)
            while !Task.isCancelled {
                try await Task.sleep(for: wait)
                wait = .seconds(3600)
                do {
                    let r = try await Cleanup.run(runtime, dryRun: false)
                    if r.jobs + r.uploads + r.workFolders + r.runs + r.loadFiles > 0 { runtime.logger.info("clean-up: \(r.summary)") }
                } catch {
                    runtime.logger.warning("clean-up failed: \(error)")
                }
            }
        }
    }
}
