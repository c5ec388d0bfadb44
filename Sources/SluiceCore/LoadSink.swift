/// Counts of what a sink did to its table, relative to the table before the load.
public struct SinkCounts: Sendable, Hashable {
    public var inserted: Int64 = 0
    public var updated: Int64 = 0
    public var deleted: Int64 = 0
    /// Rows the target refused while applying the load (found at commit, not while writing).
    public var rejects: [SinkReject] = []
    public init(inserted: Int64 = 0, updated: Int64 = 0, deleted: Int64 = 0, rejects: [SinkReject] = []) {
        self.inserted = inserted
        self.updated = updated
        self.deleted = deleted
        self.rejects = rejects
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
    /// How many more rejects the load may have before it must roll back (nil: no limit).
    public var rejectBudget: Int64?
    /// A pipeline's `sql` steps: run after the rows are written, before the commit, in the
    /// same transaction (a failing statement rolls the whole load back).
    public var afterSQL: [String]
    /// A dry run: apply everything, count, then roll back instead of committing (the counts
    /// are exactly what the load would do).
    public var rehearsal: Bool
    public init(stats: LoadStats, rejectsFiles: [String], rejectBudget: Int64? = nil, afterSQL: [String] = [], rehearsal: Bool = false) {
        self.stats = stats
        self.rejectsFiles = rejectsFiles
        self.rejectBudget = rejectBudget
        self.afterSQL = afterSQL
        self.rehearsal = rehearsal
    }

    /// The load's figures once the sink applied it with `counts` (rows it refused at commit
    /// count as rejected): the one place a load's final figures are computed.
    public func settled(_ counts: SinkCounts) -> LoadStats {
        stats.settled(by: counts, refused: Int64(counts.rejects.count))
    }

    /// Why a `sql` step failed, naming it.
    public static func sqlStepFailed(_ index: Int, _ sql: String, _ why: String) -> SluiceError {
        SluiceError(.invalidInput, "sql step \(index + 1) (\(sql.prefix(80))) failed: \(why); nothing was written")
    }
}

/// Reads the schemas of existing tables (so a load can use a table's own types and key).
public protocol TableCatalog {
    /// The table's columns and primary key, or nil when it does not exist.
    func schema(of table: String) throws(SluiceError) -> TableSchema?
}

/// One load into one table, inside one transaction it owns: batches go in, and either
/// ``commit(_:)`` makes all of them visible at once (running its owner's commit hook in the
/// same transaction), or ``rollback()`` leaves the table as it was. Implemented once per
/// target database; a sink whose driver blocks runs that work off the cooperative threads.
/// Used by one task at a time.
public protocol LoadSink: AnyObject, Sendable {
    /// Writes a batch; returns the rows the target refused.
    func write(_ batch: RecordBatch) async throws(SluiceError) -> [SinkReject]
    /// Applies and commits the load; returns its exact effect.
    func commit(_ context: CommitContext) async throws(SluiceError) -> SinkCounts
    /// Abandons the load. Safe to call more than once and after a failed commit.
    func rollback() async
}
