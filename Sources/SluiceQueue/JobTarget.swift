public import SluiceCore
public import Foundation

/// Where a worker loads jobs: it reads table schemas and opens sinks whose commit also
/// completes the job, in the same transaction, only while the job's lease token holds.
public protocol JobTarget: Sendable {
    /// Table schemas, for planning (called on a plain thread).
    func catalog() throws(SluiceError) -> any TableCatalog
    /// The sink for one attempt of `job`.
    func sink(entity: Entity, mode: WriteMode, job: Job, sha256: String?, scratchDir: String,
              now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink
    /// Whether one file can be loaded in chunks by several workers (a shared stage).
    var supportsChunks: Bool { get }
    /// Creates the shared stage of chunked job `parent` (if missing).
    func prepareSharedStage(parent: Int64, schema: TableSchema) async throws(SluiceError)
    /// Removes the shared stage of chunked job `parent`.
    func dropSharedStage(parent: Int64) async
    /// The sink of a chunk job: fills its part of the parent's stage, completes the chunk job.
    func chunkSink(job: Job, parent: Int64, schema: TableSchema, chunk: FileChunk,
                   now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink
    /// The sink that applies a filled shared stage to the table and completes the parent.
    func applySink(entity: Entity, mode: WriteMode, job: Job, sha256: String?,
                   now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink
}

extension JobTarget {
    public var supportsChunks: Bool { false }
    public func prepareSharedStage(parent: Int64, schema: TableSchema) async throws(SluiceError) {
        throw SluiceError(.unsupported, "this target does not load files in chunks")
    }
    public func dropSharedStage(parent: Int64) async {}
    public func chunkSink(job: Job, parent: Int64, schema: TableSchema, chunk: FileChunk,
                          now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink {
        throw SluiceError(.unsupported, "this target does not load files in chunks")
    }
    public func applySink(entity: Entity, mode: WriteMode, job: Job, sha256: String?,
                          now: @escaping @Sendable () -> Date) throws(SluiceError) -> any LoadSink {
        throw SluiceError(.unsupported, "this target does not load files in chunks")
    }
}
