public import SluiceCore
public import SluiceQueue
import Foundation
import Crypto

/// The export ledger and row source in the embedded SQLite database. Planning uses one
/// connection; deliveries are recorded on a second, so planning never waits for them.
public final class SQLiteExportStore: ExportStore, @unchecked Sendable {
    let path: String
    let db: SQLiteConnection
    let recorder: SQLiteConnection
    let lock = NSLock()
    /// Planning's SQLite work runs here, off the cooperative threads.
    let lane = BlockingLane("sluice.export")
    static let batches = "sluice_export_batches"
    static let rows = "sluice_export_keys"
    static let destinations = "sluice_export_destinations"
    /// Compacted keys: one row per run of consecutive integer keys of a delivered batch.
    static let ranges = "sluice_export_ranges"
    static let view = "sluice_export_source"

    public init(path: String) throws(SluiceError) {
        self.path = path
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
              dest INTEGER NOT NULL, key NOT NULL, batch INTEGER NOT NULL, hash INTEGER, PRIMARY KEY (dest, key)) WITHOUT ROWID;
            """)
        try Self.createRanges(db)
        recorder = try SQLiteConnection(path: path)
        try recorder.execute("PRAGMA busy_timeout = 10000")
    }

    /// The ranges table keeps each range's packed hashes (80 KB for 10,000 keys) in its rows,
    /// so it is a rowid table: the anti-join reads `hi` from a covering index. Held in a
    /// WITHOUT ROWID table's key b-tree, the hashes were read whole at every probe (80 KB per
    /// row planned; a resumed 1M-row export took minutes). Older ledgers are moved over once.
    static func createRanges(_ db: SQLiteConnection) throws(SluiceError) {
        let columns = "dest INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, batch INTEGER NOT NULL, hashes BLOB, PRIMARY KEY (dest, lo)"
        func old() throws(SluiceError) -> Bool {
            let sql = try db.query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1", [.text(ranges)]).first?.first?.string
            return sql?.uppercased().contains("WITHOUT ROWID") == true
        }
        if try old() {
            try db.execute("BEGIN IMMEDIATE")
            do throws(SluiceError) {
                // Checked again under the write lock: another process may have moved it.
                if try old() {
                    // Ranges made by `gc` before a batch could be planned as a range have no hashes.
                    let hashes = try db.query("PRAGMA table_info(\(ranges))").contains { $0[1].string == "hashes" } ? "hashes" : "NULL"
                    try db.execute("""
                        ALTER TABLE \(ranges) RENAME TO \(ranges)_old;
                        CREATE TABLE \(ranges) (\(columns));
                        INSERT INTO \(ranges) (dest, lo, hi, batch, hashes) SELECT dest, lo, hi, batch, \(hashes) FROM \(ranges)_old;
                        DROP TABLE \(ranges)_old;
                        """)
                }
                try db.execute("CREATE INDEX IF NOT EXISTS \(ranges)_span ON \(ranges) (dest, lo, hi)")
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
        try db.execute("""
            CREATE TABLE IF NOT EXISTS \(ranges) (\(columns));
            CREATE INDEX IF NOT EXISTS \(ranges)_span ON \(ranges) (dest, lo, hi);
            """)
    }

    /// Runs `body` holding the recorder connection (deliveries record from several tasks).
    func locked<T>(_ body: () throws(SluiceError) -> T) throws(SluiceError) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    public func destinationID(_ url: String) async throws(SluiceError) -> Int64 {
        try await lane.run { [self] () throws(SluiceError) in try destinationIDNow(url) }
    }

    public func nextBatchNumber(_ destination: String) async throws(SluiceError) -> Int64 {
        try await lane.run { [self] () throws(SluiceError) in try nextBatchNumberNow(destination) }
    }

    public func scan(_ source: ExportSource, destinationID: Int64, resendChanged: Bool, pageSize: Int) async throws(SluiceError) -> any ExportScan {
        try await lane.run { [self] () throws(SluiceError) in try scanNow(source, destinationID: destinationID, resendChanged: resendChanged, pageSize: pageSize) }
    }

    public func insert(_ b: ExportBatch, destinationID: Int64, range: ClosedRange<Int64>, hashes: [Int64]) async throws(SluiceError) {
        try await lane.run { [self] () throws(SluiceError) in
            try recordBatch(b) { () throws(SluiceError) in
                _ = try db.query("INSERT INTO \(Self.ranges) (dest, lo, hi, batch, hashes) VALUES (?1, ?2, ?3, ?4, ?5)",
                                 [.integer(destinationID), .integer(range.lowerBound), .integer(range.upperBound), .integer(b.batch),
                                  .blob(LedgerRanges.packed(hashes))])
            }
        }
    }

    public func insert(_ b: ExportBatch, destinationID: Int64, keys: [LedgerKey], hashes: [Int64]) async throws(SluiceError) {
        try await lane.run { [self] () throws(SluiceError) in try insertNow(b, destinationID: destinationID, keys: keys, hashes: hashes) }
    }

    func destinationIDNow(_ url: String) throws(SluiceError) -> Int64 {
        _ = try db.query("INSERT OR IGNORE INTO \(Self.destinations) (url) VALUES (?1)", [.text(url)])
        guard let id = try db.query("SELECT id FROM \(Self.destinations) WHERE url = ?1", [.text(url)]).first?.first?.int else {
            throw SluiceError(.io, "cannot record destination '\(url)'")
        }
        return id
    }

    func nextBatchNumberNow(_ destination: String) throws(SluiceError) -> Int64 {
        (try db.query("SELECT coalesce(max(batch), 0) + 1 FROM \(Self.batches) WHERE destination = ?1", [.text(destination)]).first?.first?.int) ?? 1
    }

    func scanNow(_ source: ExportSource, destinationID: Int64, resendChanged: Bool, pageSize: Int) throws(SluiceError) -> SQLiteExportScan {
        try source.validate()
        let relation: String
        let schema: TableSchema
        if let table = source.table {
            guard let s = try SQLiteTarget(path: path).schema(of: table) else {
                throw SluiceError(.notFound, "table '\(table)' does not exist in \(path)")
            }
            relation = SQLIdentifier.quoteValidated(table)
            schema = s
        } else {
            try db.execute("DROP VIEW IF EXISTS temp.\(Self.view)")
            let create = try db.prepareOne("CREATE TEMP VIEW \(Self.view) AS \(source.query ?? "")")
            _ = try create.step()
            let columns = try db.query("PRAGMA temp.table_info(\(Self.view))").map { r in
                ColumnSchema(name: r[1].string ?? "", type: SQLiteTarget.logicalType(declared: r[2].string ?? ""), nullable: true)
            }
            relation = "temp.\(Self.view)"
            schema = TableSchema(columns: columns)
        }
        guard let keyIndex = schema.index(of: source.key) else { throw SluiceError(.invalidSchema, "\(source.label) has no column '\(source.key)'") }
        let t = "s", k = "s." + SQLIdentifier.quoteValidated(source.key)
        let cols = schema.columns.map { "s." + SQLIdentifier.quoteValidated($0.name) }.joined(separator: ", ")
        let filter = source.filter.map { " AND (\($0))" } ?? ""
        // `+` strips the column's affinity, so the ledger's untyped key column can use its index.
        let match = "r.dest = ?1 AND r.key = +\(k)"
        // Nothing sent to this destination yet (and no other run planning: see `exclusive`):
        // every row qualifies, and the anti-join would only cost a lookup per row.
        let hasRanges = !(try db.query("SELECT 1 FROM \(Self.ranges) WHERE dest = ?1 LIMIT 1", [.integer(destinationID)]).isEmpty)
        let noKeys = try db.query("SELECT 1 FROM \(Self.rows) WHERE dest = ?1 LIMIT 1", [.integer(destinationID)]).isEmpty
        let firstRun = !hasRanges && noKeys
        // A ranged key counts as sent. The range that could hold a key is the last one starting
        // at or before it. Resending changed rows, its hash is read from the range's packed
        // hashes (an empty blob: a range compacted by `gc`, whose hashes are gone, so unchanged).
        let outside = hasRanges
            ? " AND NOT coalesce((SELECT g.hi >= \(k) FROM \(Self.ranges) g WHERE g.dest = ?1 AND g.lo <= \(k) ORDER BY g.lo DESC LIMIT 1), 0)" : ""
        let rangeHash = hasRanges
            ? "(SELECT CASE WHEN g.hi >= \(k) THEN coalesce(substr(g.hashes, (\(k) - g.lo) * 8 + 1, 8), x'') END FROM \(Self.ranges) g WHERE g.dest = ?1 AND g.lo <= \(k) ORDER BY g.lo DESC LIMIT 1)"
            : "NULL"
        let unsent = "SELECT \(cols) FROM \(relation) \(t) WHERE NOT EXISTS (SELECT 1 FROM \(Self.rows) r WHERE \(match))"
        let select = resendChanged && !firstRun
            ? "SELECT \(cols), r.hash, \(rangeHash) FROM \(relation) \(t) LEFT JOIN \(Self.rows) r ON \(match) WHERE 1 = 1"
            : firstRun ? "SELECT \(cols) FROM \(relation) \(t) WHERE ?1 = ?1"
            : unsent + outside
        let first = try db.prepareOne("\(select)\(filter) AND \(k) IS NOT NULL ORDER BY \(k) LIMIT ?2")
        let next = try db.prepareOne("\(select)\(filter) AND \(k) > ?3 ORDER BY \(k) LIMIT ?2")
        guard first.isReadOnly, next.isReadOnly else { throw SluiceError(.invalidArgument, "the export's filter must not write to the database") }
        let scan = SQLiteExportScan(schema: schema, keyIndex: keyIndex, destinationID: destinationID, first: first, next: next, resendChanged: resendChanged && !firstRun, limit: pageSize)
        scan.lane = lane
        // An integer key (INTEGER affinity: bounds compare as numbers) with ranges sent: read
        // only the gaps between ranges, a range query each, instead of probing every row's
        // range (a second run over a fully sent 1M-row table read every row: 0.4 s).
        if hasRanges && !scan.resendChanged && schema.columns[keyIndex].type == .int64 {
            let unranged = "\(unsent)\(filter) AND \(k) IS NOT NULL"
            var rows: [SQLiteStatement] = []
            for (lower, upper) in [(false, false), (true, false), (false, true), (true, true)] {
                let st = try db.prepareOne(unranged + (lower ? " AND \(k) > ?3" : "") + (upper ? " AND \(k) < ?4" : "") + " ORDER BY \(k) LIMIT ?2")
                guard st.isReadOnly else { throw SluiceError(.invalidArgument, "the export's filter must not write to the database") }
                rows.append(st)
            }
            scan.gaps = SQLiteExportScan.Gaps(
                rows: rows,
                firstRange: try db.prepareOne("SELECT lo, hi FROM \(Self.ranges) WHERE dest = ?1 ORDER BY lo LIMIT 1"),
                nextRange: try db.prepareOne("SELECT lo, hi FROM \(Self.ranges) WHERE dest = ?1 AND lo > ?2 ORDER BY lo LIMIT 1"))
        }
        return scan
    }

    /// Inserts batch `b` as planned and, in the same transaction, its keys (`keys`).
    func recordBatch(_ b: ExportBatch, keys: () throws(SluiceError) -> Void) throws(SluiceError) {
        try db.execute("BEGIN IMMEDIATE")
        do throws(SluiceError) {
            _ = try db.query("""
                INSERT INTO \(Self.batches) (destination, batch, rows, first_key, last_key, sha256, file, state, planned_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'planned', ?8)
                """, [.text(b.destination), .integer(b.batch), .integer(Int64(b.rows)), .text(b.firstKey), .text(b.lastKey),
                      .text(b.sha256), .text(b.file), .text(ISO8601DateFormatter().string(from: Date()))])
            try keys()
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    func insertNow(_ b: ExportBatch, destinationID: Int64, keys: [LedgerKey], hashes: [Int64]) throws(SluiceError) {
        try recordBatch(b) { () throws(SluiceError) in
            // 100 keys per statement: one step instead of a hundred. A key planned again (its row
            // changed, `--resend-changed`) moves to the new batch.
            let per = 100
            let insert = "INSERT INTO \(Self.rows) (dest, key, batch, hash) VALUES "
            let upsert = " ON CONFLICT (dest, key) DO UPDATE SET batch = excluded.batch, hash = excluded.hash"
            let many = try db.prepare(insert + (0..<per).map { "(?1, ?\(2 * $0 + 3), ?2, ?\(2 * $0 + 4))" }.joined(separator: ", ") + upsert)
            let one = try db.prepare(insert + "(?1, ?3, ?2, ?4)" + upsert)
            var at = 0
            while at < keys.count {
                let st = keys.count - at >= per ? many : one
                let n = st === many ? per : 1
                st.bind(1, .integer(destinationID))
                st.bind(2, .integer(b.batch))
                for j in 0..<n {
                    st.bind(3 + 2 * j, SQLiteValue(keys[at + j]))
                    st.bind(4 + 2 * j, .integer(hashes[at + j]))
                }
                _ = try st.step()
                at += n
            }
        }
    }

    /// An advisory `flock` on a file beside the database, one per destination.
    public func exclusive<T: Sendable>(_ url: String, _ body: @Sendable () async throws(SluiceError) -> T) async throws(SluiceError) -> T {
        let digest = SHA256.hash(data: Data(url.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
        let lockPath = "\(path)-export-\(digest).lock"
        let fd = open(lockPath, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw SluiceError(.io, "cannot open: \(String(cString: strerror(errno)))", at: SourceLocation(file: lockPath)) }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            throw SluiceError(.refused, "another `sluice export` to \(url) is running (lock \(lockPath))")
        }
        return try await body()
    }

    public func batches(_ destination: String?, state: BatchState?) async throws(SluiceError) -> [ExportBatch] {
        try locked { () throws(SluiceError) in try Self.batches(recorder, destination, state: state) }
    }

    static func batches(_ db: SQLiteConnection, _ destination: String?, state: BatchState?) throws(SluiceError) -> [ExportBatch] {
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

    public func hasKeys(_ destinationID: Int64) async throws(SluiceError) -> Bool {
        try await lane.run { [self] () throws(SluiceError) in
            let any = try db.query("SELECT 1 FROM \(Self.rows) WHERE dest = ?1 UNION ALL SELECT 1 FROM \(Self.ranges) WHERE dest = ?1 LIMIT 1", [.integer(destinationID)])
            return !any.isEmpty
        }
    }

    public func sentKeys(_ destinationID: Int64, _ keys: [LedgerKey]) async throws(SluiceError) -> Set<String> {
        try await lane.run { [self] () throws(SluiceError) in
            let ranges = LedgerRanges(try db.query("SELECT lo, hi FROM \(Self.ranges) WHERE dest = ?1", [.integer(destinationID)]).compactMap { r in
                guard let lo = r[0].int, let hi = r[1].int, lo <= hi else { return nil }
                return lo...hi
            })
            var out = Set(keys.filter(ranges.contains).map(\.text))
            var at = 0
            while at < keys.count {
                let part = keys[at..<min(at + 500, keys.count)]
                let marks = (0..<part.count).map { "?\($0 + 2)" }.joined(separator: ", ")
                let values: [SQLiteValue] = [.integer(destinationID)] + part.map(\.sqlite)
                for r in try db.query("SELECT key FROM \(Self.rows) WHERE dest = ?1 AND key IN (\(marks))", values) { out.insert(LedgerKey(r[0]).text) }
                at += 500
            }
            return out
        }
    }

    public func deliveredKeys(_ url: String, after batch: Int64) async throws(SluiceError) -> [(batch: Int64, key: String)] {
        try locked { () throws(SluiceError) in
            let keys: [(batch: Int64, key: String)] = try recorder.query("""
                SELECT r.batch, CAST(r.key AS TEXT) FROM \(Self.rows) r
                JOIN \(Self.destinations) d ON d.id = r.dest AND d.url = ?1
                JOIN \(Self.batches) b ON b.destination = ?1 AND b.batch = r.batch AND b.state = 'delivered'
                WHERE r.batch > ?2 ORDER BY r.batch, r.key
                """, [.text(url), .integer(batch)]).map { ($0[0].int ?? 0, $0[1].string ?? "") }
            let ranges = try recorder.query("""
                SELECT g.batch, g.lo, g.hi FROM \(Self.ranges) g JOIN \(Self.destinations) d ON d.id = g.dest AND d.url = ?1
                JOIN \(Self.batches) b ON b.destination = ?1 AND b.batch = g.batch AND b.state = 'delivered' WHERE g.batch > ?2
                """, [.text(url), .integer(batch)]).compactMap { r -> (batch: Int64, range: ClosedRange<Int64>)? in
                guard let b = r[0].int, let lo = r[1].int, let hi = r[2].int, lo <= hi else { return nil }
                return (b, lo...hi)
            }
            return LedgerRanges.merge(keys, ranges: ranges)
        }
    }

    public func compactKeys(skipping: Set<String>, dryRun: Bool) async throws(SluiceError) -> LedgerCompaction {
        try await lane.run { [self] () throws(SluiceError) in
            // Runs ("islands") of consecutive integer keys within each delivered batch: a key
            // minus its rank in the batch is the same along a run.
            let runs = try db.query("""
                WITH k AS (
                  SELECT r.dest, d.url, r.batch, r.key, r.key - row_number() OVER (PARTITION BY r.dest, r.batch ORDER BY r.key) AS run
                  FROM \(Self.rows) r JOIN \(Self.destinations) d ON d.id = r.dest
                  JOIN \(Self.batches) b ON b.destination = d.url AND b.batch = r.batch AND b.state = 'delivered'
                  WHERE typeof(r.key) = 'integer'
                    -- a key planned again inside an earlier range stays a key (ranges never overlap)
                    AND NOT EXISTS (SELECT 1 FROM \(Self.ranges) g WHERE g.dest = r.dest AND g.lo <= r.key AND g.hi >= r.key))
                SELECT dest, url, batch, min(key), max(key), count(*) FROM k GROUP BY dest, url, batch, run HAVING count(*) > 1
                """).filter { !skipping.contains($0[1].string ?? "") }
            var done = LedgerCompaction()
            for r in runs { done.keys += Int(r[5].int ?? 0); done.ranges += 1 }
            guard !dryRun, !runs.isEmpty else { return done }
            try db.execute("BEGIN IMMEDIATE")
            do throws(SluiceError) {
                let add = try db.prepare("INSERT INTO \(Self.ranges) (dest, lo, hi, batch) VALUES (?1, ?2, ?3, ?4)")
                let drop = try db.prepare("DELETE FROM \(Self.rows) WHERE dest = ?1 AND key BETWEEN ?2 AND ?3 AND typeof(key) = 'integer'")
                for r in runs {
                    for st in [add, drop] {
                        st.reset()
                        st.bind(1, r[0])
                        st.bind(2, r[3])
                        st.bind(3, r[4])
                        if st === add { st.bind(4, r[2]) }
                        _ = try st.step()
                    }
                }
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
            return done
        }
    }

    public func record(_ b: ExportBatch, state: BatchState, status: Int?, error: String?, response: String?, latencyMs: Int) async throws(SluiceError) {
        try locked { () throws(SluiceError) in
            _ = try recorder.query("""
                UPDATE \(Self.batches) SET state = ?3, attempts = attempts + 1, last_status = ?4, last_error = ?5, response = ?6,
                  latency_ms = ?7, delivered_at = CASE WHEN ?3 = 'delivered' THEN ?8 ELSE delivered_at END
                WHERE destination = ?1 AND batch = ?2
                """, [.text(b.destination), .integer(b.batch), .text(state.rawValue), status.map { .integer(Int64($0)) } ?? .null,
                      error.map { .text($0) } ?? .null, response.map { .text($0) } ?? .null, .integer(Int64(latencyMs)),
                      .text(ISO8601DateFormatter().string(from: Date()))])
        }
    }

    public func retryDead(_ destination: String?) async throws(SluiceError) -> Int {
        try locked { () throws(SluiceError) in
            var binds: [SQLiteValue] = []
            var sql = "UPDATE \(Self.batches) SET state = 'planned', attempts = 0 WHERE state = 'dead'"
            if let destination { binds.append(.text(destination)); sql += " AND destination = ?1" }
            _ = try recorder.query(sql, binds)
            return Int(recorder.changes)
        }
    }
}

/// Keyset pages over the source (`key > last`), each its own short statement, so the
/// planner can record batches on the same connection between pages; each page is read on
/// the store's lane.
final class SQLiteExportScan: ExportScan, @unchecked Sendable {
    var lane: BlockingLane?
    let schema: TableSchema
    let keyIndex: Int
    let destinationID: Int64
    let first: SQLiteStatement
    let nextPage: SQLiteStatement
    let resendChanged: Bool
    var last: SQLiteValue?
    var exhausted = false

    let limit: Int

    init(schema: TableSchema, keyIndex: Int, destinationID: Int64, first: SQLiteStatement, next: SQLiteStatement, resendChanged: Bool, limit: Int) {
        self.limit = limit
        self.schema = schema
        self.keyIndex = keyIndex
        self.destinationID = destinationID
        self.first = first
        nextPage = next
        self.resendChanged = resendChanged
    }

    /// The page after the one last returned, being read while the planner encodes and
    /// records that one (keyset order: it starts after that page's last key, whatever the
    /// ledger says by then).
    var ahead: Task<Result<ExportPage?, SluiceError>, Never>?

    func next() async throws(SluiceError) -> ExportPage? {
        guard let lane else { return try nextNow() }
        let read = { [self] () async -> Result<ExportPage?, SluiceError> in
            do throws(SluiceError) { return .success(try await lane.run { [self] () throws(SluiceError) in try nextNow() }) } catch { return .failure(error) }
        }
        let page: ExportPage?
        if let ahead {
            self.ahead = nil
            page = try await ahead.value.get()
        } else {
            page = try await read().get()
        }
        if page != nil { ahead = Task { await read() } }
        return page
    }

    /// The gaps between the ranges already sent, read one after another (an integer key).
    struct Gaps {
        /// Row statements by bounds: none, lower (`key > ?3`), upper (`key < ?4`), both.
        let rows: [SQLiteStatement]
        let firstRange: SQLiteStatement
        let nextRange: SQLiteStatement
        /// The gap being read: below this range's start (nil: no range after it), and where
        /// reading resumes once the gap is done (the range's end).
        var upper: SQLiteValue?
        var skipTo: SQLiteValue?
        var current = false

        var all: [SQLiteStatement] { rows + [firstRange, nextRange] }
    }
    var gaps: Gaps?

    func nextNow() throws(SluiceError) -> ExportPage? {
        var page = PageBuilder(schema: schema, limit: limit)
        while page.keys.count < limit && !exhausted {
            let st: SQLiteStatement
            if var g = gaps {
                if !g.current { try findGap(&g) }
                gaps = g
                st = g.rows[(last == nil ? 0 : 1) + (g.upper == nil ? 0 : 2)]
                st.reset()
                if let upper = g.upper { st.bind(4, upper) }
            } else {
                st = last == nil ? first : nextPage
                st.reset()
            }
            st.bind(1, .integer(destinationID))
            st.bind(2, .integer(Int64(limit)))
            if let last { st.bind(3, last) }
            let seen = try take(st, into: &page)
            guard page.keys.count < limit && seen < limit else { continue }
            // This statement has no more rows: the next gap, or the end.
            if let g = gaps, let skipTo = g.skipTo {
                last = skipTo
                gaps?.current = false
            } else {
                exhausted = true
            }
        }
        resetStatements()
        return page.keys.isEmpty ? nil : ExportPage(batch: page.builder.take(), keys: page.keys, hashes: page.hashes)
    }

    /// Sets the gap up: from `last` (a key read from a gap, or a range's end) to the next
    /// range.
    func findGap(_ g: inout Gaps) throws(SluiceError) {
        let st = last == nil ? g.firstRange : g.nextRange
        st.reset()
        st.bind(1, .integer(destinationID))
        if let last { st.bind(2, last) }
        if try st.step() {
            g.upper = st.value(0)
            g.skipTo = st.value(1)
        } else {
            g.upper = nil
            g.skipTo = nil
        }
        st.reset()
        g.current = true
    }

    /// A page being filled: its rows, their keys and hashes.
    struct PageBuilder {
        var builder: BatchBuilder
        var keys: [LedgerKey] = []
        var hashes: [Int64] = []
        init(schema: TableSchema, limit: Int) {
            builder = BatchBuilder(schema: TableSchema(columns: schema.columns.map { var c = $0; c.nullable = true; return c }), capacity: limit)
        }
    }

    /// Steps `st` until the page is full or the statement ends; returns the rows it gave.
    func take(_ st: SQLiteStatement, into page: inout PageBuilder) throws(SluiceError) -> Int {
        let n = schema.columns.count
        var seen = 0
        while page.keys.count < limit, try st.step() {
            seen += 1
            let key = st.value(keyIndex)
            last = key
            // Each cell is read once, for the row's hash and for its value.
            var h = RowHasher()
            page.builder.beginRow(line: Int64(page.keys.count + 1))
            for c in 0..<n {
                switch st.kind(c) {
                case .null:
                    h.null()
                    page.builder.setNull(c)
                case .integer:
                    let v = st.int64(c)
                    h.int(v)
                    page.builder.setInt(c, v)
                case .real:
                    let v = st.double(c)
                    h.int(Int64(bitPattern: v.bitPattern))
                    page.builder.setDouble(c, v)
                case .text:
                    let b = st.bytes(c)
                    h.bytes(2, b)
                    page.builder.setText(c, b)
                case .blob:
                    let b = st.bytes(c)
                    h.bytes(3, b)
                    page.builder.setBytes(c, b)
                }
            }
            if resendChanged, LedgerRanges.unchanged(h.value, row: st.kind(n) == .integer ? st.int64(n) : nil,
                                                     range: st.kind(n + 1) == .blob ? st.bytes(n + 1) : nil) {
                page.builder.dropRow()
                continue
            }
            if let r = page.builder.endRow() {
                throw SluiceError(.invalidSchema, "row with \(schema.columns[keyIndex].name) = \(LedgerKey(key).text) does not read back as its column type: \(r.message)")
            }
            page.keys.append(LedgerKey(key))
            page.hashes.append(h.value)
        }
        return seen
    }

    /// Ends the statements' reads (so the connection can write between pages).
    func resetStatements() {
        first.reset()
        nextPage.reset()
        for st in gaps?.all ?? [] { st.reset() }
    }

    func close() {
        guard let lane else { return resetStatements() }
        // A page read ahead finishes on the lane first; the statements are reset after it.
        let pending = ahead
        ahead = nil
        guard let pending else { return resetStatements() }
        Task { [self] in
            _ = await pending.value
            try? await lane.run { [self] () throws(SluiceError) in resetStatements() }
        }
    }
}

extension LedgerKey {
    /// The key as SQLite stores it.
    var sqlite: SQLiteValue {
        switch self {
        case .null: .null
        case .int(let i): .integer(i)
        case .real(let d): .real(d)
        case .text(let t): .text(t)
        case .blob(let b): .blob(b)
        }
    }

    /// A key as SQLite returned it.
    init(_ v: SQLiteValue) {
        switch v {
        case .null: self = .null
        case .integer(let i): self = .int(i)
        case .real(let d): self = .real(d)
        case .text(let s): self = .text(s)
        case .blob(let b): self = .blob(b)
        }
    }
}

extension SQLiteValue {
    /// A ledger key bound back as the value SQLite gave.
    init(_ k: LedgerKey) {
        switch k {
        case .null: self = .null
        case .int(let i): self = .integer(i)
        case .real(let d): self = .real(d)
        case .text(let s): self = .text(s)
        case .blob(let b): self = .blob(b)
        }
    }
}
