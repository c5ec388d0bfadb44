import SluiceCore
import Foundation

/// A batch's place in its delivery: planned (spooled, not yet confirmed), delivered (a 2xx),
/// or dead-lettered (refused for good, or out of attempts; `sluice export retry` re-plans it).
public enum BatchState: String, Sendable, Codable {
    case planned, delivered, dead
}

/// One planned batch: which rows (its keys are in the row ledger), the spooled file, and
/// the record of the conversation with the receiver.
public struct ExportBatch: Sendable, Codable, Equatable {
    public var destination: String
    public var batch: Int64
    public var rows: Int
    public var firstKey: String
    public var lastKey: String
    public var sha256: String
    public var file: String
    public var state: BatchState
    public var attempts: Int
    public var lastStatus: Int?
    public var lastError: String?
    public var response: String?
    public var latencyMs: Int?

    public init(destination: String, batch: Int64, rows: Int, firstKey: String, lastKey: String, sha256: String, file: String,
                state: BatchState, attempts: Int, lastStatus: Int? = nil, lastError: String? = nil, response: String? = nil,
                latencyMs: Int? = nil) {
        self.destination = destination
        self.batch = batch
        self.rows = rows
        self.firstKey = firstKey
        self.lastKey = lastKey
        self.sha256 = sha256
        self.file = file
        self.state = state
        self.attempts = attempts
        self.lastStatus = lastStatus
        self.lastError = lastError
        self.response = response
        self.latencyMs = latencyMs
    }

    /// The idempotency key: the same for every attempt and every re-run of this batch.
    public var idempotencyKey: String { "sluice-\(batch)-\(sha256.prefix(24))" }

    enum CodingKeys: String, CodingKey {
        case destination, batch, rows, sha256, file, state, attempts, response
        case firstKey = "first_key", lastKey = "last_key", lastStatus = "last_status", lastError = "last_error", latencyMs = "latency_ms"
    }
}

/// One destination's batches by state, as `sluice export status` and `GET /exports` show them.
public struct DestinationSummary: Sendable, Encodable {
    public var url: String
    public var delivered = 0, deliveredRows = 0, pending = 0, pendingRows = 0, dead = 0, deadRows = 0
    /// Batches not delivered yet (planned or dead-lettered), with what the receiver said.
    public var undelivered: [ExportBatch] = []

    enum CodingKeys: String, CodingKey {
        case url, delivered, pending, dead, undelivered
        case deliveredRows = "delivered_rows", pendingRows = "pending_rows", deadRows = "dead_rows"
    }

    /// Summaries of `batches`, one per destination, in URL order.
    public static func of(_ batches: [ExportBatch]) -> [DestinationSummary] {
        var out: [String: DestinationSummary] = [:]
        for b in batches {
            var d = out[b.destination] ?? DestinationSummary(url: b.destination)
            switch b.state {
            case .delivered: d.delivered += 1; d.deliveredRows += b.rows
            case .planned: d.pending += 1; d.pendingRows += b.rows; d.undelivered.append(b)
            case .dead: d.dead += 1; d.deadRows += b.rows; d.undelivered.append(b)
            }
            out[b.destination] = d
        }
        return out.values.sorted { $0.url < $1.url }
    }
}
