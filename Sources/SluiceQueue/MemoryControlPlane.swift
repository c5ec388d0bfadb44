public import SluiceCore
public import Foundation
import Synchronization

/// The control plane in this process's memory: the reference driver. Its job moves are
/// ``JobLifecycle``'s transitions applied literally, and it passes the same conformance
/// suites as the SQLite and PostgreSQL drivers; tests that need a control plane but no
/// database use it. Nothing survives the process.
public final class MemoryControlPlane: QueueDriver {
    struct LedgerKey: Hashable {
        var watch: String
        var key: String
        var etag: String
    }

    struct State {
        var jobs: [Int64: Job] = [:]
        var nextJob: Int64 = 1
        var byKey: [String: Int64] = [:]
        var loaded: [String: Int64] = [:]
        var uploads: [String: Upload] = [:]
        var watched: [LedgerKey: WatchedFile] = [:]
        var cache: [String: [String: (value: String, expires: Date)]] = [:]
        var lookupClaims: [String: [String: (holder: String, until: Date)]] = [:]
        var buckets: [String: (tokens: Double, at: Double)] = [:]
        var runs: [Int64: PipelineRun] = [:]
        var nextRun: Int64 = 1
        var batches: [String: (run: Int64, payload: String)] = [:]
        var leases: [String: (holder: String, token: Int64, expires: Date)] = [:]
    }

    let state = Mutex(State())

    public init() {}

    public func migrate() async throws(SluiceError) {}
    public func ping() async throws(SluiceError) {}

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    /// Applies `event` to job `id` by the lifecycle; nil when the job is missing, `guarded`
    /// says no, or the lifecycle refuses. `change` adds what the event carries.
    static func move(_ s: inout State, _ id: Int64, _ event: JobLifecycle.Event, maxRescues: Int = JobLifecycle.defaultMaxRescues,
                     guarded: (Job) -> Bool = { _ in true }, change: (inout Job, JobLifecycle.Effect) -> Void = { _, _ in }) -> Job? {
        guard var job = s.jobs[id], guarded(job),
              case .success(let effect) = JobLifecycle.transition(from: job.state, on: event, attempts: job.attempts, maxAttempts: job.maxAttempts,
                                                                   rescues: job.rescues, maxRescues: maxRescues) else { return nil }
        job.state = effect.state
        if effect.newToken { job.leaseToken += 1 }
        if effect.countAttempt { job.attempts += 1 }
        if effect.countRescue { job.attempts = max(job.attempts - 1, 0); job.rescues += 1 }
        if effect.resetAttempts { job.attempts = 0; job.rescues = 0 }
        if effect.releaseLease { job.worker = nil; job.leaseExpiresAt = nil }
        change(&job, effect)
        s.jobs[id] = job
        return job
    }

    // MARK: Jobs

    public func insertJob(_ p: JobInsertParams) async throws(SluiceError) -> JobInsertResult {
        state.withLock { s in Self.insert(&s, p) }
    }

    static func insert(_ s: inout State, _ p: JobInsertParams) -> JobInsertResult {
        if let key = p.idempotencyKey, let id = s.byKey[key], let job = s.jobs[id] { return JobInsertResult(job: job, existing: true) }
        let job = Job(id: s.nextJob, entity: p.entity, state: .queued, spec: p.spec, priority: p.priority, maxAttempts: p.maxAttempts,
                      runAfter: p.now, idempotencyKey: p.idempotencyKey, createdAt: p.now)
        s.nextJob += 1
        s.jobs[job.id] = job
        if let key = p.idempotencyKey { s.byKey[key] = job.id }
        return JobInsertResult(job: job, existing: false)
    }

    public func job(id: Int64) async throws(SluiceError) -> Job? { state.withLock { $0.jobs[id] } }

    public func job(idempotencyKey: String) async throws(SluiceError) -> Job? {
        state.withLock { s in s.byKey[idempotencyKey].flatMap { s.jobs[$0] } }
    }

    public func listJobs(_ p: JobListParams) async throws(SluiceError) -> [Job] {
        state.withLock { s in
            Array(s.jobs.values.filter { j in
                (p.newestFirst ? j.id < p.keyset.bound : j.id > p.keyset.bound) && (p.state == nil || j.state == p.state)
                    && (p.entity == nil || j.entity == p.entity) && (p.run == nil || j.spec.stage?.run == p.run)
            }.sorted { p.newestFirst ? $0.id > $1.id : $0.id < $1.id }.prefix(max(1, min(p.limit, 1000))))
        }
    }

    public func claimJobs(_ p: JobClaimParams) async throws(SluiceError) -> [Job] {
        if p.limit <= 0 { return [] }
        return state.withLock { s in
            let ready = s.jobs.values.filter { j in
                j.state == .queued && j.runAfter <= p.now
                    && (p.stages == nil || j.spec.stage.map { p.stages!.contains($0.kind) } ?? p.plainJobs)
            }.sorted { ($0.priority, -$0.id) > ($1.priority, -$1.id) }.prefix(p.limit)
            return ready.compactMap { j in
                Self.move(&s, j.id, .claim, change: { job, _ in
                    job.worker = p.worker
                    job.leaseExpiresAt = p.now.addingTimeInterval(Self.seconds(p.leaseDuration))
                    job.startedAt = job.startedAt ?? p.now
                })
            }
        }
    }

    /// Whether `job` is still held with `token`.
    static func held(_ token: Int64) -> (Job) -> Bool { { $0.state == .processing && $0.leaseToken == token } }

    public func heartbeat(_ p: JobHeartbeatParams) async throws(SluiceError) -> LeaseStatus {
        state.withLock { s in
            guard var job = s.jobs[p.id] else { return .lost }
            guard Self.held(p.token)(job) else { return job.state == .cancelled ? .cancelled : .lost }
            job.leaseExpiresAt = p.now.addingTimeInterval(Self.seconds(p.leaseDuration))
            s.jobs[p.id] = job
            return .held
        }
    }

    public func setProgress(_ p: JobProgressParams) async throws(SluiceError) {
        state.withLock { s in
            if let job = s.jobs[p.id], Self.held(p.token)(job) { s.jobs[p.id]?.progress = p.progress }
        }
    }

    public func completeJob(_ p: JobCompleteParams) async throws(SluiceError) -> Bool {
        state.withLock { s in Self.complete(&s, id: p.id, token: p.token, result: p.result, entity: p.entity, now: p.now) }
    }

    public func completeJobs(_ ps: [JobCompleteParams]) async throws(SluiceError) -> [Bool] {
        state.withLock { s in ps.map { p in Self.complete(&s, id: p.id, token: p.token, result: p.result, entity: p.entity, now: p.now) } }
    }

    /// The guarded completion; with `entity`, the file's digest joins the loaded-files ledger.
    static func complete(_ s: inout State, id: Int64, token: Int64, result: JobResult, entity: String?, now: Date) -> Bool {
        let done = move(&s, id, .complete, guarded: held(token), change: { job, _ in
            job.result = result
            job.finishedAt = now
            job.error = nil
            job.progress = JobProgress(bytes: result.stats.bytes, rows: result.stats.read)
        })
        guard done != nil else { return false }
        if let entity, let sha = result.sha256, result.duplicateOf == nil, s.loaded["\(entity)\u{0}\(sha)"] == nil {
            s.loaded["\(entity)\u{0}\(sha)"] = id
        }
        return true
    }

    public func failJob(_ p: JobFailParams) async throws(SluiceError) -> Job? {
        state.withLock { s in
            Self.move(&s, p.id, .fail(transient: p.transient), guarded: Self.held(p.token), change: { job, effect in
                job.error = p.error
                job.result = p.result
                if effect.backoff { job.runAfter = p.retryAt }
                job.finishedAt = effect.finished ? p.now : nil
            })
        }
    }

    public func cancelJob(_ p: JobCancelParams) async throws(SluiceError) -> Job? {
        state.withLock { s in Self.move(&s, p.id, .cancel, change: { job, _ in job.finishedAt = p.now }) }
    }

    public func retryJob(_ p: JobRetryParams) async throws(SluiceError) -> Job? {
        state.withLock { s in
            Self.move(&s, p.id, .retry, change: { job, _ in
                job.runAfter = p.now
                job.error = nil
                job.result = nil
                job.finishedAt = nil
                job.progress = JobProgress()
            })
        }
    }

    public func rescueExpired(_ p: JobRescueParams) async throws(SluiceError) -> Int {
        state.withLock { s in
            let expired = s.jobs.values.filter { $0.state == .processing && ($0.leaseExpiresAt ?? .distantFuture) < p.now }.map(\.id).sorted()
            var rescued = 0
            for id in expired {
                let worker = s.jobs[id]?.worker ?? "?"
                let moved = Self.move(&s, id, .leaseExpired, maxRescues: p.maxRescues, change: { job, effect in
                    job.runAfter = p.now
                    job.error = "lease expired: worker \(worker) stopped heartbeating (rescue \(job.rescues) of \(p.maxRescues))"
                    job.finishedAt = effect.finished ? p.now : nil
                })
                if moved != nil { rescued += 1 }
            }
            return rescued
        }
    }

    public func loadedFile(entity: String, sha256: String) async throws(SluiceError) -> Int64? {
        state.withLock { $0.loaded["\(entity)\u{0}\(sha256)"] }
    }

    // MARK: Uploads

    public func insertUpload(_ u: Upload) async throws(SluiceError) {
        try state.withLock { s throws(SluiceError) in
            guard s.uploads[u.id] == nil else { throw SluiceError(.constraint, "upload \(u.id) exists") }
            s.uploads[u.id] = u
        }
    }

    public func upload(id: String) async throws(SluiceError) -> Upload? { state.withLock { $0.uploads[id] } }

    public func uploads(after: String?, limit: Int) async throws(SluiceError) -> [Upload] {
        state.withLock { s in Array(s.uploads.values.filter { after == nil || $0.id > after! }.sorted { $0.id < $1.id }.prefix(max(0, limit))) }
    }

    public func deleteUploads(ids: [String]) async throws(SluiceError) {
        state.withLock { s in for id in ids { s.uploads[id] = nil } }
    }

    // MARK: File ledger

    public func watchedFiles(watch: String, keys: [String]?) async throws(SluiceError) -> [WatchedFile] {
        let wanted = keys.map(Set.init)
        return state.withLock { s in
            s.watched.values.filter { $0.watch == watch && (wanted?.contains($0.key) ?? true) }
                .sorted { ($0.key, $0.firstSeen) < ($1.key, $1.firstSeen) }
        }
    }

    public func recordWatchedFiles(_ files: [WatchedFile]) async throws(SluiceError) {
        state.withLock { s in
            for f in files {
                let k = LedgerKey(watch: f.watch, key: f.key, etag: f.etag)
                guard var old = s.watched[k] else { s.watched[k] = f; continue }
                old.size = f.size
                old.lastModified = f.lastModified
                old.state = f.state
                old.jobID = f.jobID
                old.error = f.error
                old.batch = old.batch ?? f.batch
                s.watched[k] = old
            }
        }
    }

    public func watermark(watch: String) async throws(SluiceError) -> Date? {
        state.withLock { s in s.watched.values.filter { $0.watch == watch && $0.state == .queued }.map(\.lastModified).max() }
    }

    public func oldestWaiting(watch: String) async throws(SluiceError) -> Date? {
        state.withLock { s in s.watched.values.filter { $0.watch == watch && $0.state == .seen }.map(\.lastModified).min() }
    }

    // MARK: Enrich cache and rate limits

    public func cachedAnswers(namespace: String, keys: [String], now: Date) async throws(SluiceError) -> [String: String] {
        state.withLock { s in
            var out: [String: String] = [:]
            for k in keys { if let e = s.cache[namespace]?[k], e.expires > now { out[k] = e.value } }
            return out
        }
    }

    public func cacheAnswers(namespace: String, entries: [String: String], expiresAt: Date) async throws(SluiceError) {
        state.withLock { s in for (k, v) in entries { s.cache[namespace, default: [:]][k] = (v, expiresAt) } }
    }

    public func takeTokens(bucket: String, rate: Double, burst: Double, count: Int, now: Date?) async throws(SluiceError) -> (granted: Int, wait: Double) {
        state.withLock { s in
            let t = (now ?? Date()).timeIntervalSince1970
            var tokens = burst
            if let b = s.buckets[bucket] { tokens = min(burst, b.tokens + max(0, t - b.at) * rate) }
            let granted = min(count, Int(tokens.rounded(.down)))
            let wait = granted > 0 ? 0 : (1 - tokens) / rate
            s.buckets[bucket] = (tokens - Double(granted), max(t, s.buckets[bucket]?.at ?? t))  // an older `now` does not turn the clock back
            return (granted, wait)
        }
    }

    public func claimLookups(namespace: String, keys: [String], holder: String, until: Date, now: Date) async throws(SluiceError) -> Set<String> {
        state.withLock { s in
            var mine: Set<String> = []
            for k in keys {
                if let c = s.lookupClaims[namespace]?[k], c.holder != holder, c.until > now { continue }
                if let e = s.cache[namespace]?[k], e.expires > now { continue }
                s.lookupClaims[namespace, default: [:]][k] = (holder, until)
                mine.insert(k)
            }
            return mine
        }
    }

    public func releaseLookups(namespace: String, keys: [String], holder: String) async throws(SluiceError) {
        state.withLock { s in
            for k in keys where s.lookupClaims[namespace]?[k]?.holder == holder { s.lookupClaims[namespace]?[k] = nil }
        }
    }

    // MARK: Leases (this process's clock is the database's)

    public func acquireLease(name: String, holder: String, seconds: Double) async throws(SluiceError) -> Int64? {
        state.withLock { s in
            let now = Date()
            let token: Int64
            if let l = s.leases[name] {
                let running = l.expires > now
                if running && l.holder != holder { return nil }
                token = running ? l.token : l.token + 1
            } else {
                token = 1
            }
            s.leases[name] = (holder, token, now.addingTimeInterval(seconds))
            return token
        }
    }

    public func releaseLease(name: String, holder: String) async throws(SluiceError) {
        state.withLock { s in
            if let l = s.leases[name], l.holder == holder { s.leases[name]?.expires = min(l.expires, Date()) }
        }
    }

    public func leases() async throws(SluiceError) -> [LeaseRecord] {
        state.withLock { s in
            let now = Date()
            return s.leases.sorted { $0.key < $1.key }.map { LeaseRecord(name: $0.key, holder: $0.value.holder, token: $0.value.token,
                                                                          remaining: $0.value.expires.timeIntervalSince(now)) }
        }
    }

    // MARK: Runs

    public func startRun(pipeline: String, scheduledFor: Date?, windowFrom: Date?, windowTo: Date?, upload: String?, now: Date) async throws(SluiceError) -> Int64 {
        state.withLock { s in
            let id = s.nextRun
            s.nextRun += 1
            s.runs[id] = PipelineRun(id: id, pipeline: pipeline, state: .running, scheduledFor: scheduledFor, windowFrom: windowFrom, windowTo: windowTo,
                                     startedAt: now, finishedAt: nil, counts: nil, error: nil, upload: upload)
            return id
        }
    }

    public func finishRun(id: Int64, state runState: PipelineRun.State, counts: String?, error: String?, now: Date) async throws(SluiceError) {
        state.withLock { s in
            s.runs[id]?.state = runState
            s.runs[id]?.counts = counts
            s.runs[id]?.error = error
            s.runs[id]?.finishedAt = now
            s.leases[RunLease.name(id)] = nil
        }
    }

    public func runs(pipeline: String?, limit: Int) async throws(SluiceError) -> [PipelineRun] {
        state.withLock { s in
            Array(s.runs.values.filter { pipeline == nil || $0.pipeline == pipeline }.sorted { $0.id > $1.id }.prefix(max(0, limit)))
        }
    }

    public func lastScheduledSuccess(pipeline: String) async throws(SluiceError) -> Date? {
        state.withLock { s in s.runs.values.filter { $0.pipeline == pipeline && $0.state == .succeeded }.compactMap(\.scheduledFor).max() }
    }

    public func deleteRuns(ids: [Int64]) async throws(SluiceError) {
        state.withLock { s in for id in ids { s.runs[id] = nil } }
    }

    // MARK: Stage hand-offs

    public func handOff(_ p: StageHandOffParams) async throws(SluiceError) -> Bool {
        state.withLock { s in
            if s.batches[p.key] == nil { s.batches[p.key] = (p.job.spec.stage?.run ?? 0, p.payload) }
            var job = p.job
            job.idempotencyKey = p.key
            return !Self.insert(&s, job).existing
        }
    }

    public func stageBatch(key: String) async throws(SluiceError) -> String? { state.withLock { $0.batches[key]?.payload } }

    public func stageBacklog() async throws(SluiceError) -> [StageKind: Int] {
        state.withLock { s in
            var out: [StageKind: Int] = [:]
            for j in s.jobs.values where j.state == .queued { if let k = j.spec.stage?.kind { out[k, default: 0] += 1 } }
            return out
        }
    }

    public func deleteJobs(finishedBefore before: Date) async throws(SluiceError) -> Int {
        state.withLock { s in
            let gone = s.jobs.values.filter { $0.state.isFinal && ($0.finishedAt ?? .distantFuture) < before }
            for j in gone {
                s.jobs[j.id] = nil
                if let key = j.idempotencyKey { s.byKey[key] = nil }
            }
            return gone.count
        }
    }

    public func jobCounts() async throws(SluiceError) -> [JobCount] {
        state.withLock { s in
            var counts: [JobCount] = []
            for j in s.jobs.values {
                let kind = j.spec.stage?.kind.rawValue ?? "load"
                if let i = counts.firstIndex(where: { $0.state == j.state && $0.kind == kind && $0.entity == j.entity }) { counts[i].count += 1 } else {
                    counts.append(JobCount(state: j.state, kind: kind, entity: j.entity, count: 1))
                }
            }
            return counts
        }
    }

    public func runJobCounts(run: Int64) async throws(SluiceError) -> [StageJobCount] {
        state.withLock { s in
            var counts: [StageJobCount] = []
            for j in s.jobs.values {
                guard let stage = j.spec.stage, stage.run == run else { continue }
                if let i = counts.firstIndex(where: { $0.stage == stage.kind && $0.state == j.state }) { counts[i].count += 1 } else {
                    counts.append(StageJobCount(stage: stage.kind, state: j.state, count: 1))
                }
            }
            return counts
        }
    }

    public func deleteStageBatches(run: Int64) async throws(SluiceError) {
        state.withLock { s in s.batches = s.batches.filter { $0.value.run != run } }
    }
}
