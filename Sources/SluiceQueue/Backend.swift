public import SluiceCore
public import Foundation

/// A database Sluice runs on, resolved once from the configuration: it hands out the target
/// that holds tables and, where the database can hold them, the control plane and the export
/// ledger. A new backend is one target that implements this (see ARCHITECTURE.md).
public protocol Backend: Sendable {
    /// Where rows are loaded.
    var target: any DataTarget { get }
    /// The job queue and its stores, not yet migrated (nil: this database holds tables only).
    func controlPlane() throws(SluiceError) -> (any QueueDriver)?
    /// The export ledger (nil: this database holds tables only).
    func exportStore() async throws -> (any ExportStore)?
    /// Wakes idle workers when another process queues a job (nil: workers poll).
    var wakeSource: (@Sendable (@escaping @Sendable () -> Void) async -> Void)? { get }
    /// The database as logs may name it (never with a password).
    var displayName: String { get }
}

/// A worker's completion of a job, done by a sink inside the load's transaction: the job
/// becomes complete with the load's figures only while it still holds `job.leaseToken`.
public struct JobCompletion: Sendable {
    public var job: Job
    /// The file's digest, remembered against the job's entity (nil: not a file to remember).
    public var sha256: String?
    public var now: @Sendable () -> Date
    /// The key of the receipt a target that holds tables only writes in the load's
    /// transaction: the same for every attempt at the job, different for any other job.
    public var receipt: String
    public init(job: Job, sha256: String?, now: @escaping @Sendable () -> Date) {
        self.job = job
        self.sha256 = sha256
        self.now = now
        receipt = Self.receiptKey(job)
    }

    /// The job's id and what it was created as: stable across attempts, and two control
    /// planes sharing one target cannot collide on a job id alone.
    public static func receiptKey(_ job: Job) -> String {
        let origin = "\(job.entity)\u{0}\(job.spec.source)\u{0}\(job.createdAt.timeIntervalSince1970)"
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in origin.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return "job-\(job.id)-" + String(h, radix: 16)
    }

    /// The result recorded with the completion.
    public func result(_ stats: LoadStats, _ context: CommitContext) -> JobResult {
        JobResult(stats: stats, rejectsPath: context.rejectsFiles.first, sha256: sha256)
    }

    /// Why a commit wrote nothing: the job was taken over (or cancelled) meanwhile.
    public var leaseLost: SluiceError {
        SluiceError(.aborted, "job \(job.id) is no longer held with lease token \(job.leaseToken); nothing was written")
    }
}

/// Where loads write: it reads table schemas and opens sinks; a worker's sinks also complete
/// its job in the load's transaction.
public protocol DataTarget: Sendable {
    /// The table's columns and primary key, or nil when it does not exist (for planning).
    func schema(of table: String) async throws(SluiceError) -> TableSchema?
    /// The sink of one load, with `scratchDir` for rows that do not fit in memory; with
    /// `completing`, its commit also completes that job.
    func sink(entity: Entity, mode: WriteMode, scratchDir: String, completing: JobCompletion?) async throws(SluiceError) -> any LoadSink
    /// Whether one file can be loaded in chunks by several workers (a shared stage).
    var supportsChunks: Bool { get }
    /// Creates the shared stage of chunked job `parent` (if missing).
    func prepareSharedStage(parent: Int64, schema: TableSchema) async throws(SluiceError)
    /// Removes the shared stage of chunked job `parent`.
    func dropSharedStage(parent: Int64) async
    /// The jobs whose shared stage exists (clean-up drops those of finished jobs).
    func sharedStages() async -> [Int64]
    /// The sink of a chunk job: fills its part of the parent's stage, completes the chunk job.
    func chunkSink(job: Job, parent: Int64, schema: TableSchema, chunk: FileChunk,
                   now: @escaping @Sendable () -> Date) async throws(SluiceError) -> any LoadSink
    /// The sink that applies a filled shared stage to the table and completes the parent.
    func applySink(entity: Entity, mode: WriteMode, completing: JobCompletion) async throws(SluiceError) -> any LoadSink
    /// The zone a database session reads naive timestamps in (PostgreSQL's `TimeZone`), so
    /// that Sluice reads them as `psql \copy` would; nil: UTC.
    func sessionTimeZone() async -> String?
    /// Whether a sink can apply a load and roll it back (a dry run's exact counts): every
    /// statement of its load, the table's creation included, is transactional.
    var supportsRehearsal: Bool { get }
}

extension DataTarget {
    public var supportsChunks: Bool { false }
    public func sessionTimeZone() async -> String? { nil }
    public var supportsRehearsal: Bool { false }
    public func prepareSharedStage(parent: Int64, schema: TableSchema) async throws(SluiceError) {
        throw SluiceError(.unsupported, "this target does not load files in chunks")
    }
    public func dropSharedStage(parent: Int64) async {}
    public func sharedStages() async -> [Int64] { [] }
    public func chunkSink(job: Job, parent: Int64, schema: TableSchema, chunk: FileChunk,
                          now: @escaping @Sendable () -> Date) async throws(SluiceError) -> any LoadSink {
        throw SluiceError(.unsupported, "this target does not load files in chunks")
    }
    public func applySink(entity: Entity, mode: WriteMode, completing: JobCompletion) async throws(SluiceError) -> any LoadSink {
        throw SluiceError(.unsupported, "this target does not load files in chunks")
    }
}

/// A target that holds tables only (no control plane): its sinks given a ``JobCompletion``
/// write a receipt of the job's result in the load's transaction instead of completing it.
public protocol ReceiptTarget: DataTarget {
    /// The result a committed load recorded under receipt `id`, if any.
    func receipt(_ id: String) async throws(SluiceError) -> JobResult?
}

/// Joins a ``ReceiptTarget`` to a control plane in another database. A worker's load commits
/// its rows and the job's receipt together; the job then completes in the control plane. A
/// worker that dies between the two leaves the receipt, so the retried job completes from it
/// without loading again, and two attempts can never both commit rows (the receipt is unique).
public struct ReceiptFencedTarget: DataTarget {
    public let target: any ReceiptTarget
    public let driver: any QueueDriver

    public init(target: any ReceiptTarget, driver: any QueueDriver) {
        self.target = target
        self.driver = driver
    }

    public func schema(of table: String) async throws(SluiceError) -> TableSchema? { try await target.schema(of: table) }
    public func sessionTimeZone() async -> String? { await target.sessionTimeZone() }
    public var supportsRehearsal: Bool { target.supportsRehearsal }

    public func sink(entity: Entity, mode: WriteMode, scratchDir: String, completing: JobCompletion?) async throws(SluiceError) -> any LoadSink {
        guard let done = completing else { return try await target.sink(entity: entity, mode: mode, scratchDir: scratchDir, completing: nil) }
        if let prior = try await target.receipt(done.receipt) { return ReceiptSink(inner: nil, done: done, driver: driver, prior: prior) }
        let inner = try await target.sink(entity: entity, mode: mode, scratchDir: scratchDir, completing: done)
        return ReceiptSink(inner: inner, done: done, driver: driver, prior: nil)
    }
}

/// The sink of ``ReceiptFencedTarget``: checks the lease, commits the load (rows and
/// receipt), then completes the job; with a receipt from an earlier attempt, only completes.
final class ReceiptSink: LoadSink {
    let inner: (any LoadSink)?
    let done: JobCompletion
    let driver: any QueueDriver
    let prior: JobResult?

    init(inner: (any LoadSink)?, done: JobCompletion, driver: any QueueDriver, prior: JobResult?) {
        self.inner = inner
        self.done = done
        self.driver = driver
        self.prior = prior
    }

    func write(_ batch: RecordBatch) async throws(SluiceError) -> [SinkReject] {
        try await inner?.write(batch) ?? []  // an earlier attempt's rows are in already
    }

    func commit(_ context: CommitContext) async throws(SluiceError) -> SinkCounts {
        let job = done.job
        guard let inner else {
            let result = prior ?? JobResult(stats: LoadStats())
            try await complete(result)
            return SinkCounts(inserted: result.stats.inserted, updated: result.stats.updated, deleted: result.stats.deleted)
        }
        // A worker that lost its lease writes nothing (a stale worker racing past this check
        // is stopped by the receipt the new holder's commit, or its own, writes first).
        guard let current = try await driver.job(id: job.id), current.state == .processing, current.leaseToken == job.leaseToken else {
            await inner.rollback()
            throw done.leaseLost
        }
        let counts = try await inner.commit(context)
        try await complete(done.result(context.settled(counts), context))
        return counts
    }

    func complete(_ result: JobResult) async throws(SluiceError) {
        let p = JobCompleteParams(id: done.job.id, token: done.job.leaseToken, result: result, now: done.now(), entity: done.job.entity)
        guard try await driver.completeJob(p) else { throw done.leaseLost }
    }

    func rollback() async { await inner?.rollback() }
}
