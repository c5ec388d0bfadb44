public import Foundation

/// Where one version (key + etag) of a watched object stands: seen once (waiting to be
/// stable), queued (a job loads it), ignored (a changed object under the `ignore` policy,
/// or older than the watermark), failed (could not be fetched; the reason is kept).
public enum WatchedFileState: String, Sendable, Codable, CaseIterable {
    case seen, queued, ignored, failed
}

/// One version of a watched object in the file ledger.
public struct WatchedFile: Sendable, Equatable, Codable {
    public var watch: String
    public var key: String
    public var etag: String
    public var size: Int64
    public var lastModified: Date
    public var state: WatchedFileState
    public var firstSeen: Date
    public var jobID: Int64?
    public var error: String?
    /// The batch this version is loaded with (several files, one job per entity): written
    /// before the jobs, so a restart rebuilds exactly the same batch and idempotency keys.
    public var batch: String?

    public init(watch: String, key: String, etag: String, size: Int64, lastModified: Date, state: WatchedFileState, firstSeen: Date,
                jobID: Int64? = nil, error: String? = nil, batch: String? = nil) {
        self.batch = batch
        self.watch = watch
        self.key = key
        self.etag = etag
        self.size = size
        self.lastModified = lastModified
        self.state = state
        self.firstSeen = firstSeen
        self.jobID = jobID
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case watch, key, etag, size, state, error, batch
        case lastModified = "last_modified", firstSeen = "first_seen", jobID = "job_id"
    }
}
