public import SluiceCore
public import SluiceSQLite
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

    /// The idempotency key: the same for every attempt and every re-run of this batch.
    public var idempotencyKey: String { "sluice-\(batch)-\(sha256.prefix(24))" }

    enum CodingKeys: String, CodingKey {
        case destination, batch, rows, sha256, file, state, attempts, response
        case firstKey = "first_key", lastKey = "last_key", lastStatus = "last_status", lastError = "last_error", latencyMs = "latency_ms"
    }
}

/// The delivery ledger in the target database: batches per destination, and each row key
/// with the batch that carries it (so planning is an anti-join, as seed 000's ledger of sent ids).
public final class ExportLedger: @unchecked Sendable {
    let db: SQLiteConnection
    static let batches = "sluice_export_batches"
    static let rows = "sluice_export_keys"
    static let destinations = "sluice_export_destinations"

    public init(path: String) throws(SluiceError) {
        db = try SQLiteConnection(path: path)
        try db.execute("PRAGMA busy_timeout = 10000")
        try db.execute("""
            CREATE TABLE IF NOT EXISTS \(Self.batches) (
              destination TEXT NOT NULL, batch INTEGER NOT NULL, rows INTEGER NOT NULL, first_key TEXT, last_key TEXT,
              sha256 TEXT NOT NULL, file TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
              last_status INTEGER, last_error TEXT, response TEXT, latency_ms INTEGER, planned_at TEXT, delivered_at TEXT,
              PRIMARY KEY (destination, batch));
            CREATE TABLE IF NOT EXISTS \(Self.destinations) (id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE);
            CREATE TABLE IF NOT EXISTS \(Self.rows) (
              dest INTEGER NOT NULL, key NOT NULL, batch INTEGER NOT NULL, PRIMARY KEY (dest, key)) WITHOUT ROWID;
            """)
    }

    var connection: SQLiteConnection { db }

    /// The small number the key ledger uses for a destination URL (keeps its index compact).
    func destinationID(_ url: String) throws(SluiceError) -> Int64 {
        _ = try db.query("INSERT OR IGNORE INTO \(Self.destinations) (url) VALUES (?1)", [.text(url)])
        guard let id = try db.query("SELECT id FROM \(Self.destinations) WHERE url = ?1", [.text(url)]).first?.first?.int else {
            throw SluiceError(.io, "cannot record destination '\(url)'")
        }
        return id
    }

    /// Records a planned batch and the keys it carries, atomically.
    func insert(_ b: ExportBatch, destinationID: Int64, keys: [SQLiteValue]) throws(SluiceError) {
        try db.execute("BEGIN IMMEDIATE")
        do throws(SluiceError) {
            _ = try db.query("""
                INSERT INTO \(Self.batches) (destination, batch, rows, first_key, last_key, sha256, file, state, planned_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'planned', ?8)
                """, [.text(b.destination), .integer(b.batch), .integer(Int64(b.rows)), .text(b.firstKey), .text(b.lastKey),
                      .text(b.sha256), .text(b.file), .text(ISO8601DateFormatter().string(from: Date()))])
            // 100 keys per statement: one step instead of a hundred.
            let per = 100
            let many = try db.prepare("INSERT INTO \(Self.rows) (dest, key, batch) VALUES " +
                                      (0..<per).map { "(?1, ?\($0 + 3), ?2)" }.joined(separator: ", "))
            let one = try db.prepare("INSERT INTO \(Self.rows) (dest, key, batch) VALUES (?1, ?3, ?2)")
            var at = 0
            while at < keys.count {
                let st = keys.count - at >= per ? many : one
                let n = st === many ? per : 1
                st.bind(1, .integer(destinationID))
                st.bind(2, .integer(b.batch))
                for j in 0..<n { st.bind(3 + j, keys[at + j]) }
                _ = try st.step()
                at += n
            }
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    func nextBatchNumber(_ destination: String) throws(SluiceError) -> Int64 {
        (try db.query("SELECT coalesce(max(batch), 0) + 1 FROM \(Self.batches) WHERE destination = ?1", [.text(destination)]).first?.first?.int) ?? 1
    }

    public func batches(_ destination: String?, state: BatchState? = nil) throws(SluiceError) -> [ExportBatch] {
        var sql = "SELECT destination, batch, rows, first_key, last_key, sha256, file, state, attempts, last_status, last_error, response, latency_ms FROM \(Self.batches) WHERE 1 = 1"
        var binds: [SQLiteValue] = []
        if let destination { binds.append(.text(destination)); sql += " AND destination = ?\(binds.count)" }
        if let state { binds.append(.text(state.rawValue)); sql += " AND state = ?\(binds.count)" }
        sql += " ORDER BY destination, batch"
        return try db.query(sql, binds).map { r in
            ExportBatch(destination: r[0].string ?? "", batch: r[1].int ?? 0, rows: Int(r[2].int ?? 0), firstKey: r[3].string ?? "",
                        lastKey: r[4].string ?? "", sha256: r[5].string ?? "", file: r[6].string ?? "",
                        state: BatchState(rawValue: r[7].string ?? "") ?? .planned, attempts: Int(r[8].int ?? 0),
                        lastStatus: r[9].int.map(Int.init), lastError: r[10].string, response: r[11].string, latencyMs: r[12].int.map(Int.init))
        }
    }

    /// Records one attempt's outcome and the batch's new state.
    func record(_ b: ExportBatch, state: BatchState, status: Int?, error: String?, response: String?, latencyMs: Int) throws(SluiceError) {
        _ = try db.query("""
            UPDATE \(Self.batches) SET state = ?3, attempts = attempts + 1, last_status = ?4, last_error = ?5, response = ?6,
              latency_ms = ?7, delivered_at = CASE WHEN ?3 = 'delivered' THEN ?8 ELSE delivered_at END
            WHERE destination = ?1 AND batch = ?2
            """, [.text(b.destination), .integer(b.batch), .text(state.rawValue), status.map { .integer(Int64($0)) } ?? .null,
                  error.map { .text($0) } ?? .null, response.map { .text($0) } ?? .null, .integer(Int64(latencyMs)),
                  .text(ISO8601DateFormatter().string(from: Date()))])
    }

    /// Puts dead-lettered batches back in the plan with fresh attempts. Returns how many.
    public func retryDead(_ destination: String?) throws(SluiceError) -> Int {
        var binds: [SQLiteValue] = []
        var sql = "UPDATE \(Self.batches) SET state = 'planned', attempts = 0 WHERE state = 'dead'"
        if let destination { binds.append(.text(destination)); sql += " AND destination = ?1" }
        _ = try db.query(sql, binds)
        return Int(db.changes)
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
