public import SluiceCore
public import Foundation

/// A job's state. Persisted as these exact strings; never rename them.
public enum JobState: String, Sendable, Codable, CaseIterable {
    /// Waiting to be claimed (possibly not before `runAfter`, after a failed attempt).
    case queued
    /// Claimed by a worker holding a lease.
    case processing
    case complete
    /// Failed for good: a terminal error, or attempts exhausted.
    case error
    case cancelled

    /// No further work will happen without an operator's retry.
    public var isFinal: Bool {
        switch self {
        case .complete, .error, .cancelled: true
        case .queued, .processing: false
        }
    }
}

/// What a job asks for: load a source into an entity. Stored as JSON in the job row.
public struct JobSpec: Sendable, Codable, Hashable {
    /// Where the file is: `upload:<id>`, `file:///…`, `http(s)://…`.
    public var source: String
    public var format: SourceFormat?
    public var mode: WriteMode?
    /// Any reject fails the job and nothing is written.
    public var atomic: Bool
    /// Error budget for non-atomic jobs: more rejects than this fail the job (rolled back).
    public var maxRejects: Int64?
    /// Load even if a file with the same SHA-256 was already loaded into this entity.
    public var force: Bool
    /// The file's original name, for display only (never used as a path).
    public var fileName: String?
    /// Split files larger than this into chunks loaded by several workers at once (PostgreSQL).
    public var chunkBytes: Int64?
    /// For a chunk job: the job it is part of, its byte range, and the schema it loads with.
    public var parent: Int64?
    public var chunk: FileChunk?
    public var schema: TableSchema?
    /// For a job of a pipeline run over the queue: which stage of which run, on what input.
    public var stage: StageSpec?
    /// The uploaded file is a copy kept nowhere else by intent (a watcher's fetch or split
    /// parts; the original stays in its source and raw layer): removed once loaded.
    public var removeSource: Bool?
    /// The trace context of whoever queued the job (see ``TraceCarrier``).
    public var trace: [String: String]?

    public init(source: String, format: SourceFormat? = nil, mode: WriteMode? = nil, atomic: Bool = false,
                maxRejects: Int64? = nil, force: Bool = false, fileName: String? = nil, chunkBytes: Int64? = nil) {
        self.chunkBytes = chunkBytes
        self.source = source
        self.format = format
        self.mode = mode
        self.atomic = atomic
        self.maxRejects = maxRejects
        self.force = force
        self.fileName = fileName
    }

    enum CodingKeys: String, CodingKey {
        case source, format, mode, atomic, force, parent, chunk, schema, stage, trace
        case maxRejects = "max_rejects", fileName = "file_name", chunkBytes = "chunk_bytes", removeSource = "remove_source"
    }
}

/// What a job does, read from its spec in this one place: workers dispatch on it, the API
/// shows it.
public enum JobKind: Sendable, Equatable {
    /// Loads a whole file into the job's entity (a large one may be split into chunk jobs).
    case load
    /// Loads one byte range of its parent job's file into the parent's shared stage.
    case chunk(parent: Int64, FileChunk)
    /// One stage of a pipeline run over the queue.
    case stage(StageSpec)

    /// The kind's name in the API (`load`, `chunk`, `extract`, `enrich`, `load_batch`).
    public var name: String {
        switch self {
        case .load: "load"
        case .chunk: "chunk"
        case .stage(let s): s.kind == .load ? "load_batch" : s.kind.rawValue
        }
    }
}

extension JobSpec {
    public var kind: JobKind {
        if let stage { return .stage(stage) }
        if let parent, let chunk { return .chunk(parent: parent, chunk) }
        return .load
    }
}

/// The stages of a pipeline run over the queue. Each is claimed by the workers that serve
/// it (`sluice worker --stage enrich`); every stage boundary is a batch in the control plane.
public enum StageKind: String, Sendable, Codable, CaseIterable {
    /// Reads one source file, runs the steps before the first `enrich`, cuts batches.
    case extract
    /// Runs one `enrich` step (and the steps up to the next one) over one batch.
    case enrich
    /// Loads one batch into the pipeline's entity, completing the job in the data transaction.
    case load
}

/// What a stage job works on. Its input batch is named by `input` (a key of the control
/// plane's batch table) or, for `extract`, by the source object's `key`.
public struct StageSpec: Sendable, Codable, Hashable {
    public var pipeline: String
    public var run: Int64
    public var kind: StageKind
    /// For `enrich`: which enrich step (0 = the pipeline's first).
    public var step: Int
    /// For `extract`: the object's key in the pipeline's source (nil: the source is one file).
    public var key: String?
    /// For `extract`: the object's etag when listed (a changed object is refused, not half-read).
    public var etag: String?
    /// For `enrich` and `load`: the batch this job consumes.
    public var input: String?

    public init(pipeline: String, run: Int64, kind: StageKind, step: Int = 0, key: String? = nil, etag: String? = nil, input: String? = nil) {
        self.pipeline = pipeline
        self.run = run
        self.kind = kind
        self.step = step
        self.key = key
        self.etag = etag
        self.input = input
    }
}

/// Progress while a job runs.
public struct JobProgress: Sendable, Codable, Hashable {
    public var bytes: Int64 = 0
    public var rows: Int64 = 0
    public init(bytes: Int64 = 0, rows: Int64 = 0) {
        self.bytes = bytes
        self.rows = rows
    }
}

/// The outcome a worker records when a job completes.
public struct JobResult: Sendable, Codable, Hashable {
    public var stats: LoadStats
    /// Path of the CSV with the rejected rows, if any.
    public var rejectsPath: String?
    /// Set when the file had already been loaded (same SHA-256) and was not loaded again.
    public var duplicateOf: Int64?
    public var sha256: String?
    /// A stage job's first rejected rows, each with where it came from and why.
    public var rejects: [String]?
    /// A failed attempt's ``SluiceError/Code`` (its description), for decisions that must
    /// not read the message.
    public var errorCode: String?

    public init(stats: LoadStats, rejectsPath: String? = nil, duplicateOf: Int64? = nil, sha256: String? = nil, rejects: [String]? = nil) {
        self.stats = stats
        self.rejectsPath = rejectsPath
        self.duplicateOf = duplicateOf
        self.sha256 = sha256
        self.rejects = rejects
    }

    enum CodingKeys: String, CodingKey {
        case stats, sha256, rejects
        case rejectsPath = "rejects_path", duplicateOf = "duplicate_of", errorCode = "error_code"
    }
}

/// A job as stored in the control plane.
public struct Job: Sendable, Hashable {
    public var id: Int64
    public var entity: String
    public var state: JobState
    public var spec: JobSpec
    public var priority: Int
    public var attempts: Int
    public var maxAttempts: Int
    /// Times the job was taken back from a worker that stopped heartbeating (counted apart
    /// from attempts, against ``JobLifecycle/defaultMaxRescues`` or the rescuer's limit).
    public var rescues: Int
    /// Incremented by every claim, rescue and cancel; a worker may commit only while the
    /// job still carries the token it claimed with.
    public var leaseToken: Int64
    public var worker: String?
    public var leaseExpiresAt: Date?
    public var runAfter: Date
    public var idempotencyKey: String?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    public var progress: JobProgress
    public var result: JobResult?
    public var error: String?

    public init(id: Int64, entity: String, state: JobState, spec: JobSpec, priority: Int = 0, attempts: Int = 0,
                maxAttempts: Int = 3, leaseToken: Int64 = 0, worker: String? = nil, leaseExpiresAt: Date? = nil,
                runAfter: Date, idempotencyKey: String? = nil, createdAt: Date, startedAt: Date? = nil,
                finishedAt: Date? = nil, progress: JobProgress = JobProgress(), result: JobResult? = nil, error: String? = nil,
                rescues: Int = 0) {
        self.id = id
        self.entity = entity
        self.state = state
        self.spec = spec
        self.priority = priority
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.rescues = rescues
        self.leaseToken = leaseToken
        self.worker = worker
        self.leaseExpiresAt = leaseExpiresAt
        self.runAfter = runAfter
        self.idempotencyKey = idempotencyKey
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.progress = progress
        self.result = result
        self.error = error
    }
}

/// An uploaded file kept under the upload folder with a generated name.
public struct Upload: Sendable, Hashable, Codable {
    public var id: String
    /// Where the bytes are (always inside the upload folder).
    public var path: String
    public var size: Int64
    public var sha256: String
    /// The client's file name, sanitised, for display only.
    public var originalName: String?
    public var createdAt: Date

    public init(id: String, path: String, size: Int64, sha256: String, originalName: String?, createdAt: Date) {
        self.id = id
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.originalName = originalName
        self.createdAt = createdAt
    }
}

/// Errors the control plane's drivers share.
public enum QueueErrors {
    /// Another job loaded the same bytes into `entity` while this load ran: the load rolls
    /// back, and its retry (transient) completes as that job's duplicate.
    public static func loadedMeanwhile(entity: String) -> SluiceError {
        SluiceError(.unavailable, "another job loaded the same file into \(entity) meanwhile; this load was rolled back and its retry completes as a duplicate")
    }
}
