public import SluiceCore
public import Foundation

/// The control plane, one small protocol per concern, each with a driver per database
/// (SQLite embedded, PostgreSQL in production, in memory for tests) and its own
/// conformance suite. One method per query; time is always passed in (`now`), never read
/// inside a driver, so tests control it.
public protocol QueueDriver: JobStore, UploadStore, FileLedger, EnrichStore, RunStore, HandOffStore, LeaseStore {
    /// Creates or upgrades the control-plane schema. Safe when several processes start at once.
    func migrate() async throws(SluiceError)
    /// Whether the control plane answers (for readiness).
    func ping() async throws(SluiceError)
}

/// Jobs: the durable queue with leases, fencing tokens, retries and rescues, and the
/// ledger of files each entity already loaded.
public protocol JobStore: Sendable {
    /// Inserts a job, or returns the existing one with the same idempotency key.
    func insertJob(_ p: JobInsertParams) async throws(SluiceError) -> JobInsertResult
    func job(id: Int64) async throws(SluiceError) -> Job?
    /// The job created with this idempotency key, if any.
    func job(idempotencyKey: String) async throws(SluiceError) -> Job?
    /// Jobs in id order after `after` (keyset pagination), filtered by state and entity.
    func listJobs(_ p: JobListParams) async throws(SluiceError) -> [Job]
    /// Atomically moves up to `limit` runnable queued jobs to processing for `worker`,
    /// highest priority first, each with a new lease token.
    func claimJobs(_ p: JobClaimParams) async throws(SluiceError) -> [Job]
    /// Extends a lease still held with `token`.
    func heartbeat(_ p: JobHeartbeatParams) async throws(SluiceError) -> LeaseStatus
    /// Records progress of a job still held with `token`.
    func setProgress(_ p: JobProgressParams) async throws(SluiceError)
    /// Completes a job still held with `token` (for jobs whose completion writes no data;
    /// loads complete inside their data transaction instead). False when the token is stale.
    func completeJob(_ p: JobCompleteParams) async throws(SluiceError) -> Bool
    /// Completes several jobs in one transaction (one round trip where the database allows):
    /// per job, in order, whether its token was still held.
    func completeJobs(_ ps: [JobCompleteParams]) async throws(SluiceError) -> [Bool]
    /// Records a failed attempt of a job still held with `token`: back to queued after
    /// `retryAt` if transient and attempts remain, else error. Nil when the token is stale.
    func failJob(_ p: JobFailParams) async throws(SluiceError) -> Job?
    /// Cancels a queued or processing job (a running worker loses its lease). Nil if the
    /// job is missing or already final.
    func cancelJob(_ p: JobCancelParams) async throws(SluiceError) -> Job?
    /// Requeues a job in error or cancelled with a fresh set of attempts.
    func retryJob(_ p: JobRetryParams) async throws(SluiceError) -> Job?
    /// Returns processing jobs whose lease expired to the queue (or to error when their
    /// rescues are spent); the attempt that died is given back and a rescue counted instead,
    /// in bounded batches. Returns how many were rescued.
    func rescueExpired(_ p: JobRescueParams) async throws(SluiceError) -> Int
    /// The job that already loaded a file with this SHA-256 into `entity`, if any.
    func loadedFile(entity: String, sha256: String) async throws(SluiceError) -> Int64?
    /// Every job counted by state, kind and entity (what `/metrics` reports).
    func jobCounts() async throws(SluiceError) -> [JobCount]
    /// Forgets complete, cancelled and failed jobs that ended before `before` (clean-up);
    /// returns how many.
    func deleteJobs(finishedBefore before: Date) async throws(SluiceError) -> Int
}

/// Files posted to the bulk API, kept until their job is done.
public protocol UploadStore: Sendable {
    func insertUpload(_ u: Upload) async throws(SluiceError)
    func upload(id: String) async throws(SluiceError) -> Upload?
    /// Uploads in id order, after `after` (for clean-up).
    func uploads(after: String?, limit: Int) async throws(SluiceError) -> [Upload]
    /// Forgets uploads (their files are the caller's to remove).
    func deleteUploads(ids: [String]) async throws(SluiceError)
}

/// The watch ledger: every version of every watched object and what became of it.
public protocol FileLedger: Sendable {
    /// Every recorded version of these keys of a watch (all of the watch's files when nil).
    func watchedFiles(watch: String, keys: [String]?) async throws(SluiceError) -> [WatchedFile]
    /// Inserts or updates versions (watch, key, etag) of watched objects, all in one
    /// transaction. A version's batch, once set, stays: the first watcher to claim a version
    /// for a batch keeps it.
    func recordWatchedFiles(_ files: [WatchedFile]) async throws(SluiceError)
    /// The newest modification time among a watch's queued files (its watermark).
    func watermark(watch: String) async throws(SluiceError) -> Date?
    /// The oldest modification time among a watch's versions still waiting to be loaded
    /// (`seen`): a listing filtered by time must reach back that far.
    func oldestWaiting(watch: String) async throws(SluiceError) -> Date?
}

/// What `enrich` steps share across processes: the answer cache and the rate limiter.
public protocol EnrichStore: Sendable {
    /// Cached answers (an `enrich` step's) still fresh at `now`, by key.
    func cachedAnswers(namespace: String, keys: [String], now: Date) async throws(SluiceError) -> [String: String]
    /// Stores answers until `expiresAt` (replacing older ones).
    func cacheAnswers(namespace: String, entries: [String: String], expiresAt: Date) async throws(SluiceError)
    /// A token bucket shared by every process on this control plane: takes up to `count`
    /// whole tokens; when none is there, returns how many seconds until one is. `now` nil:
    /// the store's clock when it grants, after any wait for a lock (what live limiters pass,
    /// so a taker that waited does not refill by a stale time).
    func takeTokens(bucket: String, rate: Double, burst: Double, count: Int, now: Date?) async throws(SluiceError) -> (granted: Int, wait: Double)
    /// Claims each of `keys` for `holder` until `until`, unless another holder's claim runs at
    /// `now` or a fresh answer is cached; returns the keys now claimed by `holder`. Processes enriching overlapping
    /// batches at once so ask an API once per key.
    func claimLookups(namespace: String, keys: [String], holder: String, until: Date, now: Date) async throws(SluiceError) -> Set<String>
    /// Ends `holder`'s claims on `keys` (looked up and cached, or failed).
    func releaseLookups(namespace: String, keys: [String], holder: String) async throws(SluiceError)
}

/// Pipeline runs: started, finished, listed; the schedule's last success.
public protocol RunStore: Sendable {
    /// Records a pipeline run as started (over the upload `upload`, when given); returns its id.
    func startRun(pipeline: String, scheduledFor: Date?, windowFrom: Date?, windowTo: Date?, upload: String?, now: Date) async throws(SluiceError) -> Int64
    /// Records how a run ended, and forgets its lease (``RunLease``) if it held one.
    func finishRun(id: Int64, state: PipelineRun.State, counts: String?, error: String?, now: Date) async throws(SluiceError)
    /// Runs, newest first (of one pipeline when given).
    func runs(pipeline: String?, limit: Int) async throws(SluiceError) -> [PipelineRun]
    /// The firing time of a pipeline's latest successful scheduled run.
    func lastScheduledSuccess(pipeline: String) async throws(SluiceError) -> Date?
    /// Forgets runs (clean-up).
    func deleteRuns(ids: [Int64]) async throws(SluiceError)
}

/// Named leases that let one of several processes do a thing (fire the schedules, poll a
/// watch). Unlike the rest of the control plane, judged on the database's clock: the hosts'
/// clocks may disagree. The token grows with each new tenure (a fencing token).
public protocol LeaseStore: Sendable {
    /// Takes `name` for `holder` for `seconds` from the database's now, or extends `holder`'s
    /// own running lease; nil while another holder's lease runs. Returns the tenure's token:
    /// the same on an extension, larger for a new tenure.
    func acquireLease(name: String, holder: String, seconds: Double) async throws(SluiceError) -> Int64?
    /// Ends `holder`'s lease on `name` at once (a replica shutting down) so another takes over.
    func releaseLease(name: String, holder: String) async throws(SluiceError)
    /// Every lease, expired or not, by name.
    func leases() async throws(SluiceError) -> [LeaseRecord]
}

/// A ``LeaseStore`` lease as it stands.
public struct LeaseRecord: Sendable, Equatable {
    public var name: String
    public var holder: String
    public var token: Int64
    /// Seconds the lease still runs by the database's clock (≤ 0: expired or released).
    public var remaining: Double
    public init(name: String, holder: String, token: Int64, remaining: Double) {
        self.name = name
        self.holder = holder
        self.token = token
        self.remaining = remaining
    }
}

/// Batches handed between the stages of a staged pipeline, each queued with its consumer.
public protocol HandOffStore: Sendable {
    /// One stage hand-off, atomically: stores the batch under `key` and queues the job that
    /// consumes it (idempotency key `key`). False when that batch was handed off before
    /// (a retried stage job re-cuts the same batches; each is queued once).
    func handOff(_ p: StageHandOffParams) async throws(SluiceError) -> Bool
    /// A handed-off batch's rows.
    func stageBatch(key: String) async throws(SluiceError) -> String?
    /// Queued jobs per stage (for back-pressure).
    func stageBacklog() async throws(SluiceError) -> [StageKind: Int]
    /// A run's stage jobs counted by stage and state.
    func runJobCounts(run: Int64) async throws(SluiceError) -> [StageJobCount]
    /// Drops a finished run's batches.
    func deleteStageBatches(run: Int64) async throws(SluiceError)
}

/// How many jobs are in one state, of one kind (a stage's name, else `load`), for one entity.
public struct JobCount: Sendable, Hashable {
    public var state: JobState
    public var kind: String
    public var entity: String
    public var count: Int
    public init(state: JobState, kind: String, entity: String, count: Int) {
        self.state = state
        self.kind = kind
        self.entity = entity
        self.count = count
    }
}

public struct StageHandOffParams: Sendable {
    public var key: String
    public var payload: String
    public var job: JobInsertParams
    public init(key: String, payload: String, job: JobInsertParams) {
        self.key = key
        self.payload = payload
        self.job = job
    }
}

/// How many of a run's jobs of one stage are in one state.
public struct StageJobCount: Sendable, Hashable {
    public var stage: StageKind
    public var state: JobState
    public var count: Int
    public init(stage: StageKind, state: JobState, count: Int) {
        self.stage = stage
        self.state = state
        self.count = count
    }
}

/// A job to queue. Made while a span is current, its spec carries that span's trace context
/// (unless it has one already), so the job's own span continues the trace.
public struct JobInsertParams: Sendable {
    public var entity: String
    public var spec: JobSpec
    public var priority: Int
    public var maxAttempts: Int
    public var idempotencyKey: String?
    public var now: Date
    public init(entity: String, spec: JobSpec, priority: Int = 0, maxAttempts: Int = 3, idempotencyKey: String? = nil, now: Date) {
        self.entity = entity
        self.spec = spec
        if spec.trace == nil { self.spec.trace = TraceCarrier.current() }
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.idempotencyKey = idempotencyKey
        self.now = now
    }
}

public struct JobInsertResult: Sendable {
    public var job: Job
    /// True when the idempotency key matched an existing job (nothing was inserted).
    public var existing: Bool
    public init(job: Job, existing: Bool) {
        self.job = job
        self.existing = existing
    }
}

public struct JobListParams: Sendable {
    public var state: JobState?
    public var entity: String?
    public var after: Int64?
    public var limit: Int
    /// Only the stage jobs of this pipeline run.
    public var run: Int64?
    /// Newest first: `after` is then the last id of the previous page, and ids go down.
    public var newestFirst = false
    /// The keyset bound and order as SQL: `id > after ORDER BY id`, or `id < after ORDER BY id DESC`.
    public var keyset: (bound: Int64, comparison: String, order: String) {
        newestFirst ? (after ?? Int64.max, "<", "DESC") : (after ?? 0, ">", "ASC")
    }
    public init(state: JobState? = nil, entity: String? = nil, after: Int64? = nil, limit: Int = 100, run: Int64? = nil) {
        self.state = state
        self.entity = entity
        self.run = run
        self.after = after
        self.limit = limit
    }
}

public struct JobClaimParams: Sendable {
    public var worker: String
    public var limit: Int
    public var leaseDuration: Duration
    public var now: Date
    /// Only jobs of these pipeline stages; nil claims any job (stage or not).
    public var stages: [StageKind]?
    /// With `stages`: jobs that are no pipeline stage (file loads) may be claimed too.
    public var plainJobs: Bool
    public init(worker: String, limit: Int, leaseDuration: Duration, now: Date, stages: [StageKind]? = nil, plainJobs: Bool = false) {
        self.stages = stages
        self.plainJobs = plainJobs
        self.worker = worker
        self.limit = limit
        self.leaseDuration = leaseDuration
        self.now = now
    }
}

public struct JobHeartbeatParams: Sendable {
    public var id: Int64
    public var token: Int64
    public var leaseDuration: Duration
    public var now: Date
    public init(id: Int64, token: Int64, leaseDuration: Duration, now: Date) {
        self.id = id
        self.token = token
        self.leaseDuration = leaseDuration
        self.now = now
    }
}

/// Whether a worker still holds a job.
public enum LeaseStatus: Sendable, Equatable {
    case held
    /// The job was cancelled: stop and write nothing.
    case cancelled
    /// The lease was lost (expired and rescued, or completed elsewhere): stop and write nothing.
    case lost
}

public struct JobProgressParams: Sendable {
    public var id: Int64
    public var token: Int64
    public var progress: JobProgress
    public init(id: Int64, token: Int64, progress: JobProgress) {
        self.id = id
        self.token = token
        self.progress = progress
    }
}

public struct JobCompleteParams: Sendable {
    public var id: Int64
    public var token: Int64
    public var result: JobResult
    public var now: Date
    /// With an entity, the result's file digest joins that entity's loaded-files ledger.
    public var entity: String?
    public init(id: Int64, token: Int64, result: JobResult, now: Date, entity: String? = nil) {
        self.id = id
        self.token = token
        self.result = result
        self.now = now
        self.entity = entity
    }
}

public struct JobFailParams: Sendable {
    public var id: Int64
    public var token: Int64
    public var error: String
    public var transient: Bool
    /// When a transient failure may be retried (now + backoff).
    public var retryAt: Date
    public var result: JobResult?
    public var now: Date
    public init(id: Int64, token: Int64, error: String, transient: Bool, retryAt: Date, result: JobResult? = nil, now: Date) {
        self.id = id
        self.token = token
        self.error = error
        self.transient = transient
        self.retryAt = retryAt
        self.result = result
        self.now = now
    }
}

public struct JobCancelParams: Sendable {
    public var id: Int64
    public var now: Date
    public init(id: Int64, now: Date) {
        self.id = id
        self.now = now
    }
}

public struct JobRetryParams: Sendable {
    public var id: Int64
    public var now: Date
    public init(id: Int64, now: Date) {
        self.id = id
        self.now = now
    }
}

public struct JobRescueParams: Sendable {
    public var now: Date
    /// Jobs per statement. The default is 100.
    public var batchSize: Int
    /// Rescues after which a job lands in `error`. The default is ``JobLifecycle/defaultMaxRescues``.
    public var maxRescues: Int
    public init(now: Date, batchSize: Int = 100, maxRescues: Int = JobLifecycle.defaultMaxRescues) {
        self.now = now
        self.batchSize = batchSize
        self.maxRescues = maxRescues
    }
}

extension FileLedger {
    /// Records one version of a watched object (see ``recordWatchedFiles(_:)``).
    public func recordWatchedFile(_ f: WatchedFile) async throws(SluiceError) { try await recordWatchedFiles([f]) }
}

extension RunStore {
    public func startRun(pipeline: String, scheduledFor: Date?, windowFrom: Date?, windowTo: Date?, now: Date) async throws(SluiceError) -> Int64 {
        try await startRun(pipeline: pipeline, scheduledFor: scheduledFor, windowFrom: windowFrom, windowTo: windowTo, upload: nil, now: now)
    }
}

/// The ``LeaseStore`` lease a process holds while it carries out a pipeline run: when it lapses
/// with the run unfinished, that process died and another may take the run over.
public enum RunLease {
    public static let prefix = "run:"
    public static func name(_ run: Int64) -> String { prefix + String(run) }
    /// The run a lease name is for, if it is a run's.
    public static func run(_ name: String) -> Int64? { name.hasPrefix(prefix) ? Int64(name.dropFirst(prefix.count)) : nil }
}
