public import SluiceCore
public import SluiceQueue
public import SluiceStorage
public import Foundation
public import Logging
import Crypto
import SluiceLoad

/// One watch: a source location, the entity its files load into, and its rules.
public struct WatchSpec: Sendable, Equatable {
    /// The ledger's name for this watch (also the raw layer's folder).
    public var name: String
    /// `s3://bucket/prefix/` or a folder.
    public var source: String
    public var entity: String
    public var rules = WatchRules()
    /// Seconds between polls.
    public var interval: Double = 5
    /// Where each file is copied unchanged before it is loaded (`s3://bucket/raw/` or a
    /// folder); files land under `{name}/{yyyy}/{mm}/{dd}/{original name}`. Nil: no copy.
    public var raw: String?
    public var format: SourceFormat?
    public var mode: WriteMode?
    /// Files fetched at once within a poll.
    public var concurrency = 4
    /// Attempts each load job gets.
    public var maxAttempts = 3
    /// When set, each file is split by this mapping and each part loads into its own entity.
    public var mapping: JSONMapping?
    /// Mapping entities that read CSV in a dialect of their own (their parts are NDJSON).
    public var ndjsonEntities: Set<String> = []

    public init(name: String, source: String, entity: String) {
        self.name = name
        self.source = source
        self.entity = entity
    }
}

/// What one poll did.
public struct WatchPollReport: Sendable, Codable, Equatable {
    public var listed = 0
    public var seen = 0
    public var queued = 0
    public var duplicates = 0
    public var ignored = 0
    public var failed = 0
    public var deferred = 0
    /// Fetches that failed for a transient reason (retried next poll).
    public var retry = 0
    public var jobs: [Int64] = []

    public init() {}
}

/// Polls a location and hands each new, stable object to the job queue exactly once: the
/// object is fetched (its etag checked), copied to the raw layer, stored as an upload and
/// queued under an idempotency key made of the watch, key and etag, so several watchers,
/// restarts and crashes between steps never load a version twice.
public final class Watcher: Sendable {
    public let spec: WatchSpec
    let store: any ObjectStore
    let prefix: String
    let rawStore: (any ObjectStore)?
    let rawPrefix: String
    let sameStore: Bool
    let driver: any QueueDriver
    let uploadDir: String
    let logger: Logger

    public init(spec: WatchSpec, driver: any QueueDriver, uploadDir: String, s3: S3Config, logger: Logger) throws(SluiceError) {
        self.spec = spec
        self.driver = driver
        self.uploadDir = uploadDir
        self.logger = logger
        let location = try StorageLocation(spec.source)
        var prefix = location.key
        if case .local = location.kind, !prefix.isEmpty {
            throw SluiceError(.invalidArgument, "a watched folder must be a folder, not the file \(spec.source)")
        }
        if case .http = location.kind { throw SluiceError(.unsupported, "HTTP locations cannot be listed; watch a folder or an S3 prefix") }
        if !prefix.isEmpty && !prefix.hasSuffix("/") { prefix += "/" }
        // The glob's literal start narrows the listing.
        if let g = spec.rules.glob, g.prefix.hasPrefix(prefix) { prefix = g.prefix }
        self.prefix = prefix
        store = try location.store(config: s3)
        if let raw = spec.raw {
            if raw.hasPrefix("s3://") || raw.hasPrefix("/") || raw.hasPrefix(".") {
                try? FileManager.default.createDirectory(atPath: raw, withIntermediateDirectories: true)
            }
            let r = try StorageLocation(raw.hasPrefix("s3://") ? raw : (raw.hasSuffix("/") ? raw : raw + "/"))
            rawStore = try r.store(config: s3)
            rawPrefix = r.key.isEmpty || r.key.hasSuffix("/") ? r.key : r.key + "/"
            sameStore = r.kind == location.kind
        } else {
            rawStore = nil
            rawPrefix = ""
            sameStore = false
        }
    }

    /// The raw layer's key for an object: `{prefix}{watch}/{yyyy}/{mm}/{dd}/{name}` (UTC, now).
    public func rawKey(_ key: String, at date: Date) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let c = cal.dateComponents([.year, .month, .day], from: date)
        return rawPrefix + String(format: "%@/%04d/%02d/%02d/", spec.name, c.year!, c.month!, c.day!) + (key as NSString).lastPathComponent
    }

    /// One poll: list, decide, record, fetch and queue. Throws only when the listing fails.
    public func poll(now: @escaping @Sendable () -> Date = { Date() }) async throws(SluiceError) -> WatchPollReport {
        let start = now()
        let listing = try await store.listAll(prefix: prefix)
        var ledger: [WatchedFile] = []
        var at = 0
        while at < listing.count {
            let keys = listing[at..<min(at + 1000, listing.count)].map(\.key)
            ledger += try await driver.watchedFiles(watch: spec.name, keys: keys)
            at += 1000
        }
        let watermark = spec.rules.watermark ? try await driver.watermark(watch: spec.name) : nil
        let plan = WatchPlanner.plan(listing: listing, ledger: ledger, rules: spec.rules, watermark: watermark, pollStart: start)
        var report = WatchPollReport()
        report.listed = listing.count
        report.deferred = plan.deferred
        for o in plan.firstSeen {
            try await record(o, .seen, firstSeen: start)
            report.seen += 1
        }
        for (o, why) in plan.ignore {
            try await record(o, .ignored, firstSeen: start, error: why)
            report.ignored += 1
        }
        // Fetch a few at once; each outcome is recorded on its own.
        var outcomes: [Outcome] = []
        var next = 0
        await withTaskGroup(of: Outcome.self) { group in
            func add() {
                let o = plan.process[next]
                next += 1
                group.addTask { await self.ingest(o, firstSeen: start, now: now()) }
            }
            while next < plan.process.count && next < spec.concurrency { add() }
            while let r = await group.next() {
                outcomes.append(r)
                if next < plan.process.count { add() }
            }
        }
        for r in outcomes {
            switch r {
            case .queued(let id, let existing):
                report.queued += 1
                if existing { report.duplicates += 1 }
                report.jobs.append(id)
            case .failed: report.failed += 1
            case .retry: report.retry += 1
            }
        }
        report.jobs.sort()
        return report
    }

    enum Outcome: Sendable { case queued(Int64, existing: Bool), failed, retry }

    func record(_ o: ObjectInfo, _ state: WatchedFileState, firstSeen: Date, job: Int64? = nil, error: String? = nil) async throws(SluiceError) {
        try await driver.recordWatchedFile(WatchedFile(watch: spec.name, key: o.key, etag: o.etag, size: o.size, lastModified: o.lastModified,
                                                       state: state, firstSeen: firstSeen, jobID: job, error: error))
    }

    /// Fetches one object, copies it to the raw layer and queues its load.
    func ingest(_ o: ObjectInfo, firstSeen: Date, now: Date) async -> Outcome {
        let name = (o.key as NSString).lastPathComponent
        let id = UUID().uuidString.lowercased()
        let safe = String(name.map { $0.isLetter || $0.isNumber || ".-_".contains($0) ? $0 : "_" }.prefix(100))
        let path = (uploadDir as NSString).appendingPathComponent("\(id)-\(safe)")
        do throws(SluiceError) {
            let (info, sha) = try await store.download(o.key, to: path, ifMatch: o.etag)
            if let rawStore {
                let key = rawKey(o.key, at: now)
                if sameStore { try await rawStore.copy(from: o.key, to: key, ifMatch: o.etag) } else { try await rawStore.upload(key, from: path, contentType: nil) }
            }
            let digest = SHA256.hash(data: Data("\(spec.name)\n\(o.key)\n\(o.etag)".utf8)).prefix(20).map { String(format: "%02x", $0) }.joined()
            // One load per entity: the file itself, or each part of it under a mapping.
            var loads: [(entity: String, path: String, size: Int64, sha: String, format: SourceFormat?, key: String)] = []
            if let mapping = spec.mapping {
                let parts = try MappingSplitter.split(file: path, mapping: mapping, sourceName: o.key, outDir: path + ".parts", ndjsonFor: spec.ndjsonEntities)
                try? FileManager.default.removeItem(atPath: path)
                for (i, part) in parts.enumerated() where part.rows > 0 {
                    let (partSha, size) = try Self.sha256(ofFile: part.path)
                    loads.append((part.entity, part.path, size, partSha, part.format, "watch-\(digest)-\(i)"))
                }
            } else {
                loads.append((spec.entity, path, info.size, sha, spec.format, "watch-\(digest)"))
            }
            var first: JobInsertResult? = nil
            for (i, l) in loads.enumerated() {
                let uploadID = i == 0 ? id : "\(id)-\(i)"
                try await driver.insertUpload(Upload(id: uploadID, path: l.path, size: l.size, sha256: l.sha, originalName: name, createdAt: now))
                let jobSpec = JobSpec(source: "upload:\(uploadID)", format: l.format, mode: spec.mode, fileName: name)
                let inserted = try await driver.insertJob(JobInsertParams(entity: l.entity, spec: jobSpec, maxAttempts: spec.maxAttempts, idempotencyKey: l.key, now: now))
                if inserted.existing { try? FileManager.default.removeItem(atPath: l.path) }  // another watcher got there first
                if first == nil { first = inserted }
            }
            guard let inserted = first else {
                try await record(o, .ignored, firstSeen: firstSeen, error: "no rows for any entity of mapping \(spec.mapping?.name ?? "")")
                return .failed
            }
            try await record(o, .queued, firstSeen: firstSeen, job: inserted.job.id)
            logger.info("queued", metadata: ["watch": "\(spec.name)", "key": "\(o.key)", "job": "\(inserted.job.id)"])
            return .queued(inserted.job.id, existing: inserted.existing)
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: path + ".parts")
            switch error.code {
            case .malformedFile, .invalidInput, .recordTooLong:
                // The file cannot be split: on record with its reason, left where it is.
                logger.warning("malformed file", metadata: ["watch": "\(spec.name)", "key": "\(o.key)", "error": "\(error)"])
                try? await record(o, .failed, firstSeen: firstSeen, error: error.description)
                return .failed
            case .aborted, .notFound:
                // Overwritten or deleted while we read it: this version is done with; a new
                // version shows up in the next listing.
                logger.warning("not loaded", metadata: ["watch": "\(spec.name)", "key": "\(o.key)", "error": "\(error)"])
                try? await record(o, .failed, firstSeen: firstSeen, error: error.description)
                return .failed
            default:
                logger.warning("fetch failed; retried next poll", metadata: ["watch": "\(spec.name)", "key": "\(o.key)", "error": "\(error)"])
                return .retry
            }
        }
    }

    static func sha256(ofFile path: String) throws(SluiceError) -> (String, Int64) {
        guard let h = FileHandle(forReadingAtPath: path) else { throw SluiceError(.notFound, "cannot open", at: SourceLocation(file: path)) }
        defer { try? h.close() }  // read-only
        var hasher = SHA256()
        var size: Int64 = 0
        do {
            while let chunk = try h.read(upToCount: 1 << 20), !chunk.isEmpty {
                hasher.update(data: chunk)
                size += Int64(chunk.count)
            }
        } catch {
            throw SluiceError(.io, "read failed: \(error.localizedDescription)", at: SourceLocation(file: path))
        }
        return (hasher.finalize().map { String(format: "%02x", $0) }.joined(), size)
    }

    /// Polls every `interval` seconds until cancelled; a failing listing (the store is down)
    /// backs off exponentially up to five minutes, then polling resumes where it was.
    public func run(isStopping: @Sendable () -> Bool = { false }, onPoll: (@Sendable (WatchPollReport) -> Void)? = nil) async {
        var failures = 0
        while !Task.isCancelled && !isStopping() {
            var wait = spec.interval
            do {
                let report = try await poll()
                failures = 0
                onPoll?(report)
            } catch {
                failures += 1
                wait = min(300, spec.interval * pow(2, Double(min(failures, 10))))
                logger.warning("poll failed; backing off", metadata: ["watch": "\(spec.name)", "error": "\(error)", "retry_in_s": "\(wait)"])
            }
            var slept = 0.0
            while slept < wait && !Task.isCancelled && !isStopping() {
                try? await Task.sleep(nanoseconds: 100_000_000)
                slept += 0.1
            }
        }
    }
}
