import SluiceCore
import SluiceQueue
import Foundation

/// A job as the API shows it (`GET /{entity}/_bulk/status/{id}`, `GET /jobs`).
struct JobView: Encodable {
    struct Progress: Encodable {
        var bytes: Int64
        var rows: Int64
    }
    struct Stats: Encodable {
        var read, inserted, updated, deleted, rejected, skipped: Int64
    }
    struct Timings: Encodable {
        var createdAt: Date
        var startedAt: Date?
        var finishedAt: Date?
        var queuedSeconds: Double?
        var runSeconds: Double?
        enum CodingKeys: String, CodingKey {
            case createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
            case queuedSeconds = "queued_seconds", runSeconds = "run_seconds"
        }
    }

    var id: Int64
    var entity: String
    /// What the job does (``JobKind/name``).
    var kind: String
    var state: String
    var statusURL: String
    var progress: Progress
    var stats: Stats?
    var attempts: Int
    var maxAttempts: Int
    /// Times the job was taken back from a worker that died (not counted as attempts).
    var rescues: Int
    var timings: Timings
    var error: String?
    var rejectsURL: String?
    var duplicateOf: Int64?
    var sha256: String?
    var source: String
    var mode: String?

    enum CodingKeys: String, CodingKey {
        case id, entity, kind, state, progress, stats, attempts, rescues, timings, error, source, mode, sha256
        case statusURL = "status_url", maxAttempts = "max_attempts", rejectsURL = "rejects_url", duplicateOf = "duplicate_of"
    }

    init(_ j: Job, now: Date) {
        id = j.id
        entity = j.entity
        kind = j.spec.kind.name
        state = j.state.rawValue
        statusURL = "/\(j.entity)/_bulk/status/\(j.id)"
        progress = Progress(bytes: j.progress.bytes, rows: j.progress.rows)
        stats = j.result.map { r in
            Stats(read: r.stats.read, inserted: r.stats.inserted, updated: r.stats.updated, deleted: r.stats.deleted,
                  rejected: r.stats.rejected, skipped: r.stats.skipped)
        }
        attempts = j.attempts
        maxAttempts = j.maxAttempts
        rescues = j.rescues
        let started = j.startedAt
        timings = Timings(createdAt: j.createdAt, startedAt: started, finishedAt: j.finishedAt,
                          queuedSeconds: started.map { $0.timeIntervalSince(j.createdAt) },
                          runSeconds: started.map { (j.finishedAt ?? now).timeIntervalSince($0) })
        error = j.error
        rejectsURL = j.result?.rejectsPath != nil ? "/\(j.entity)/_bulk/\(j.id)/rejects" : nil
        duplicateOf = j.result?.duplicateOf
        sha256 = j.result?.sha256
        source = j.spec.source
        mode = j.spec.mode?.rawValue
    }
}

/// The answer to a submission: `202 {"id", "state", "status_url"}`.
struct SubmitView: Encodable {
    var id: Int64
    var state: String
    var statusURL: String
    var duplicateRequest: Bool?
    enum CodingKeys: String, CodingKey {
        case id, state
        case statusURL = "status_url", duplicateRequest = "idempotent_replay"
    }
}

/// The answer to an upload.
struct UploadView: Encodable {
    var uploadID: String
    var size: Int64
    var sha256: String
    var fileName: String?
    var jobID: Int64?
    var statusURL: String?
    enum CodingKeys: String, CodingKey {
        case size, sha256
        case uploadID = "upload_id", fileName = "file_name", jobID = "job_id", statusURL = "status_url"
    }
}
