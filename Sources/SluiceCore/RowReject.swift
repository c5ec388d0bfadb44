/// A row that was not loaded, with why. `fields` holds the row's original text fields
/// (as read from the source) so that the rejects file can be fixed and reloaded.
public struct RowReject: Sendable, Hashable {
    public var line: Int64
    public var column: String?
    public var reason: String
    public var fields: [String?]

    public init(line: Int64, column: String? = nil, reason: String, fields: [String?] = []) {
        self.line = line
        self.column = column
        self.reason = reason
        self.fields = fields
    }

    /// The reason with the column named, as written to the `_error` column.
    public var message: String {
        if let column { return "column '\(column)': \(reason)" }
        return reason
    }
}

/// Exact counts of one load. `read == inserted + updated + deleted + rejected + skipped`.
public struct LoadStats: Sendable, Hashable, Codable {
    /// Data rows read from the source (header and blank lines excluded).
    public var read: Int64 = 0
    /// Keys that were not in the table before the load and are after it.
    public var inserted: Int64 = 0
    /// Keys that were in the table and were written again.
    public var updated: Int64 = 0
    /// Keys that were in the table and were deleted by an `op = D` row.
    public var deleted: Int64 = 0
    public var rejected: Int64 = 0
    /// Rows with no effect: superseded by a later row for the same key in the same load,
    /// or deletes of keys that were not in the table.
    public var skipped: Int64 = 0
    /// Bytes consumed from the source (compressed size for `.gz`).
    public var bytes: Int64 = 0

    public init() {}

    /// These counts once a sink applied the load: its inserted, updated and deleted keys, and
    /// every other row read that was not rejected as skipped (the one place this is computed).
    /// `refused`: rows the target refused at commit, not yet counted as rejected.
    public func settled(by counts: SinkCounts, refused: Int64 = 0) -> LoadStats {
        var s = self
        s.rejected += refused
        s.inserted = counts.inserted
        s.updated = counts.updated
        s.deleted = counts.deleted
        s.skipped = s.read - s.rejected - counts.inserted - counts.updated - counts.deleted
        return s
    }

    public static func + (a: LoadStats, b: LoadStats) -> LoadStats {
        var r = LoadStats()
        r.read = a.read + b.read
        r.inserted = a.inserted + b.inserted
        r.updated = a.updated + b.updated
        r.deleted = a.deleted + b.deleted
        r.rejected = a.rejected + b.rejected
        r.skipped = a.skipped + b.skipped
        r.bytes = a.bytes + b.bytes
        return r
    }
}

/// How a load writes into its table.
public enum WriteMode: String, Sendable, Codable, CaseIterable {
    /// Insert every row; a duplicate key is a rejected row.
    case append
    /// The table afterwards holds exactly this load's rows, switched atomically.
    case replace
    /// Insert or update by primary key; rows whose op says delete remove their key.
    case merge
}
