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
    public init(job: Job, sha256: String?, now: @escaping @Sendable () -> Date) {
        self.job = job
        self.sha256 = sha256
        self.now = now
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
    /// The sink of a chunk job: fills its part of the parent's stage, completes the chunk job.
    func chunkSink(job: Job, parent: Int64, schema: TableSchema, chunk: FileChunk,
                   now: @escaping @Sendable () -> Date) async throws(SluiceError) -> any LoadSink
    /// The sink that applies a filled shared stage to the table and completes the parent.
    func applySink(entity: Entity, mode: WriteMode, completing: JobCompletion) async throws(SluiceError) -> any LoadSink
}

extension DataTarget {
    public var supportsChunks: Bool { false }
    public func prepareSharedStage(parent: Int64, schema: TableSchema) async throws(SluiceError) {
        throw SluiceError(.unsupported, "this target does not load files in chunks")
    }
    public func dropSharedStage(parent: Int64) async {}
    public func chunkSink(job: Job, parent: Int64, schema: TableSchema, chunk: FileChunk,
                          now: @escaping @Sendable () -> Date) async throws(SluiceError) -> any LoadSink {
        throw SluiceError(.unsupported, "this target does not load files in chunks")
    }
    public func applySink(entity: Entity, mode: WriteMode, completing: JobCompletion) async throws(SluiceError) -> any LoadSink {
        throw SluiceError(.unsupported, "this target does not load files in chunks")
    }
}
