/// Counts of what a sink did to its table, relative to the table before the load.
public struct SinkCounts: Sendable, Hashable {
    public var inserted: Int64 = 0
    public var updated: Int64 = 0
    public var deleted: Int64 = 0
    public init(inserted: Int64 = 0, updated: Int64 = 0, deleted: Int64 = 0) {
        self.inserted = inserted
        self.updated = updated
        self.deleted = deleted
    }
}

/// A rejected row found by the target itself (a duplicate key in append mode, a table
/// constraint): the batch row it came from and why.
public struct SinkReject: Sendable, Hashable {
    public var line: Int64
    public var reason: String
    /// The row's values as text, one per batch column (nil for NULL).
    public var values: [String?]
    public init(line: Int64, reason: String, values: [String?]) {
        self.line = line
        self.reason = reason
        self.values = values
    }
}

/// What the runner knows when it commits: the rows read and rejected so far, and where
/// the rejects went. Sinks that record a result beside the data (a job's completion) use it.
public struct CommitContext: Sendable {
    public var stats: LoadStats
    public var rejectsFiles: [String]
    public init(stats: LoadStats, rejectsFiles: [String]) {
        self.stats = stats
        self.rejectsFiles = rejectsFiles
    }
}

/// One load into one table, inside one transaction: batches go in, and either
/// ``commit()`` makes all of them visible at once, or ``rollback()`` leaves the table as
/// it was. Implemented once per target database.
public protocol LoadSink: AnyObject {
    /// Writes a batch; returns the rows the target refused.
    func write(_ batch: RecordBatch) throws(SluiceError) -> [SinkReject]
    /// Applies and commits the load; returns its exact effect.
    func commit(_ context: CommitContext) throws(SluiceError) -> SinkCounts
    /// Abandons the load. Safe to call more than once and after a failed commit.
    func rollback()
}
