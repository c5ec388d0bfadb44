public import SluiceCore
public import SluiceQueue
import PostgresNIO
import NIOCore
import Foundation
import Crypto

/// The export ledger and row source in PostgreSQL. Keys are kept as their text form; rows
/// are streamed from one read-only, repeatable-read transaction.
public final class PostgresExportStore: ExportStore, @unchecked Sendable {
    let pool: PostgresPool
    /// The schema of source tables named without one.
    let tableSchema: String
    /// The ledger's tables, qualified with the schema they live in.
    let t: Ledger
    /// A key as text that is an integer written the one canonical way (what a bigint prints).
    static let canonicalInteger = "'^(0|-?[1-9][0-9]{0,17})$'"
    static let view = "sluice_export_source"

    struct Ledger: Sendable {
        let batches, destinations, rows, ranges: String
        init(schema: String) {
            let s = SQLIdentifier.quoteValidated(schema) + "."
            batches = s + "sluice_export_batches"
            destinations = s + "sluice_export_destinations"
            rows = s + "sluice_export_keys"
            ranges = s + "sluice_export_ranges"  // compacted keys: a run of consecutive integers of a delivered batch
        }
    }

    /// Opens the store on a running pool, creating the ledger tables if they are missing.
    public init(pool: PostgresPool, tableSchema: String = PostgresDataTarget.defaultSchema) async throws(SluiceError) {
        self.pool = pool
        self.tableSchema = tableSchema
        t = Ledger(schema: try await Self.ledgerSchema(pool: pool, fallback: tableSchema))
        let t = t
        try await run("cannot create the export ledger") { conn in
            for sql in [
                "BEGIN",
                "SELECT pg_advisory_xact_lock(7316520007)",  // concurrent CREATE IF NOT EXISTS can collide
                """
                CREATE TABLE IF NOT EXISTS \(t.batches) (
                  destination text NOT NULL, batch bigint NOT NULL, rows integer NOT NULL, first_key text, last_key text,
                  sha256 text NOT NULL, file text NOT NULL, state text NOT NULL, attempts integer NOT NULL DEFAULT 0,
                  last_status integer, last_error text, response text, latency_ms integer, planned_at timestamptz, delivered_at timestamptz,
                  PRIMARY KEY (destination, batch))
                """,
                "CREATE TABLE IF NOT EXISTS \(t.destinations) (id bigserial PRIMARY KEY, url text NOT NULL UNIQUE)",
                "CREATE TABLE IF NOT EXISTS \(t.rows) (dest bigint NOT NULL, key text NOT NULL, batch bigint NOT NULL, hash bigint, PRIMARY KEY (dest, key))",
                "CREATE TABLE IF NOT EXISTS \(t.ranges) (dest bigint NOT NULL, lo bigint NOT NULL, hi bigint NOT NULL, batch bigint NOT NULL, hashes bytea, PRIMARY KEY (dest, lo))",
                // Ranges made by `gc` before a batch could be planned as a range have no hashes.
                "ALTER TABLE \(t.ranges) ADD COLUMN IF NOT EXISTS hashes bytea",
                "COMMIT",
            ] {
                try await pool.exec(sql, on: conn)
            }
        }
    }

    /// Where the ledger lives: the schema already holding it, else `fallback` (the tables'
    /// schema). Ledgers made before the tables were qualified landed in the first schema of
    /// the search path (`"$user"` when a schema is named after the user, as the control
    /// plane's `sluice` is for a user `sluice`); if two exist, the one with more batches wins.
    static func ledgerSchema(pool: PostgresPool, fallback: String) async throws(SluiceError) -> String {
        do {
            return try await pool.client.withConnection { conn in
                var found: [(schema: String, batches: Int64)] = []
                let schemas = try await conn.query("""
                    SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relname = 'sluice_export_batches' AND c.relkind IN ('r', 'p') ORDER BY n.nspname
                    """, logger: pool.logger).get().rows.map { try $0.decode(String.self) }
                for schema in schemas {
                    let n = try await conn.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(Ledger(schema: schema).batches)"), logger: pool.logger)
                        .get().rows.first?.decode(Int64.self) ?? 0
                    found.append((schema, n))
                }
                guard let best = found.max(by: { $0.batches < $1.batches }) else { return fallback }
                if found.count > 1 {
                    pool.logger.warning("export ledgers in several schemas; using the one with the most batches",
                                        metadata: ["schemas": "\(found.map { "\($0.schema) (\($0.batches))" }.joined(separator: ", "))", "using": "\(best.schema)"])
                }
                return best.schema
            }
        } catch {
            throw PostgresPool.error(error, "cannot find the export ledger")
        }
    }

    /// Runs `body` on a pooled connection, mapping errors to ours.
    func run<T: Sendable>(_ context: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(SluiceError) -> T {
        do {
            return try await pool.client.withConnection { try await body($0) }
        } catch {
            throw PostgresPool.error(error, context)
        }
    }

    public func destinationID(_ url: String) async throws(SluiceError) -> Int64 {
        let pool = pool, t = t
        return try await run("cannot record destination '\(url)'") { conn in
            try await pool.exec("INSERT INTO \(t.destinations) (url) VALUES ($1) ON CONFLICT (url) DO NOTHING", [.text(url)], on: conn)
            let rows = try await conn.query(PostgresPool.query("SELECT id FROM \(t.destinations) WHERE url = $1", [.text(url)]), logger: pool.logger).get().rows
            guard let id = try rows.first?.decode(Int64.self) else { throw SluiceError(.io, "no id for '\(url)'") }
            return id
        }
    }

    public func nextBatchNumber(_ destination: String) async throws(SluiceError) -> Int64 {
        let pool = pool, t = t
        return try await run("cannot read the export ledger") { conn in
            let rows = try await conn.query(PostgresPool.query("SELECT coalesce(max(batch), 0) + 1 FROM \(t.batches) WHERE destination = $1", [.text(destination)]),
                                            logger: pool.logger).get().rows
            return try rows.first?.decode(Int64.self) ?? 1
        }
    }

    public func scan(_ source: ExportSource, destinationID: Int64, resendChanged: Bool, pageSize: Int) async throws(SluiceError) -> any ExportScan {
        try source.validate()
        let scan = PostgresExportScan(pageSize: pageSize)
        let pool = pool, tableSchema = tableSchema, t = t
        scan.producer = Task {
            do {
                try await pool.client.withConnection { conn in
                    try await Self.stream(source, destinationID: destinationID, resendChanged: resendChanged, pool: pool, tableSchema: tableSchema, t: t, conn: conn, into: scan)
                }
                scan.channel.close()
            } catch {
                _ = await scan.channel.send(.failure(PostgresPool.error(error, "cannot read \(source.label)")))
                scan.channel.close()
            }
        }
        try await scan.awaitSchema()
        return scan
    }

    /// Reads the source in one read-only transaction and hands pages to the planner.
    static func stream(_ source: ExportSource, destinationID: Int64, resendChanged: Bool, pool: PostgresPool, tableSchema: String, t: Ledger,
                       conn: PostgresConnection, into scan: PostgresExportScan) async throws {
        let name: QualifiedName
        if let table = source.table {
            name = try QualifiedName(table).inSchema(tableSchema)
        } else {
            // A view cannot hold data-modifying statements, and PostgreSQL takes one statement here.
            try await pool.exec("DROP VIEW IF EXISTS pg_temp.\(view)", on: conn)
            try await pool.exec("CREATE TEMP VIEW \(view) AS \(source.query ?? "")", on: conn)
            name = try QualifiedName("pg_temp.\(view)")
        }
        let relation = name.quoted
        guard let schema = try await pool.schema(of: name, on: conn) else { throw SluiceError(.notFound, "table '\(source.label)' does not exist") }
        guard let keyIndex = schema.index(of: source.key) else { throw SluiceError(.invalidSchema, "\(source.label) has no column '\(source.key)'") }
        let nullable = TableSchema(columns: schema.columns.map { var c = $0; c.nullable = true; return c })
        guard await scan.channel.send(.schema(nullable)) else { return }
        let k = "s." + SQLIdentifier.quoteValidated(source.key)
        let cols = schema.columns.enumerated().map { "s.\(SQLIdentifier.quoteValidated($1.name))::text AS c\($0)" }.joined(separator: ", ")
        let match = "r.dest = $1 AND r.key = \(k)::text"
        // Nothing sent to this destination yet (and no other run planning: see `exclusive`).
        func exists(_ table: String) async throws -> Bool {
            !(try await conn.query(PostgresPool.query("SELECT 1 FROM \(table) WHERE dest = $1 LIMIT 1", [.int(destinationID)]), logger: pool.logger).get().rows.isEmpty)
        }
        let hasRanges = try await exists(t.ranges)
        let hasKeys = try await exists(t.rows)
        let firstRun = !hasRanges && !hasKeys
        let resendChanged = resendChanged && !firstRun
        let integral = schema.columns[keyIndex].type == .int64
        // An integer key with ranges sent: only the gaps between ranges are read, each below the
        // next range's start, instead of probing every row's range (a second run over a fully
        // sent 1M-row table read every row: 2.2 s).
        let gapped = integral && hasRanges && !resendChanged
        // Else a ranged key counts as sent. The range that could hold a key is the last one
        // starting at or before it; a key is compared as the ledger stored it (text), so only its
        // canonical integer form can match. Resending changed rows, its hash is read from the
        // range's packed hashes (empty: a range compacted by `gc`, whose hashes are gone).
        let asInteger = integral ? "\(k)::bigint" : "(CASE WHEN \(k)::text ~ \(Self.canonicalInteger) THEN \(k)::text::bigint END)"
        let outside = hasRanges && !gapped
            ? " AND NOT coalesce((SELECT g.hi >= \(asInteger) FROM \(t.ranges) g WHERE g.dest = $1 AND g.lo <= \(asInteger) ORDER BY g.lo DESC LIMIT 1), false)" : ""
        let rangeHash = hasRanges ? """
            (SELECT CASE WHEN g.hi >= \(asInteger) THEN coalesce(substring(g.hashes from ((\(asInteger) - g.lo) * 8 + 1)::int for 8), '\\x'::bytea) END
             FROM \(t.ranges) g WHERE g.dest = $1 AND g.lo <= \(asInteger) ORDER BY g.lo DESC LIMIT 1)
            """ : "NULL::bytea"
        var sql = resendChanged
            ? "SELECT \(cols), \(k) AS o, r.hash AS h, \(rangeHash) AS g FROM \(relation) s LEFT JOIN \(t.rows) r ON \(match) WHERE \(k) IS NOT NULL"
            : firstRun ? "SELECT \(cols), \(k) AS o FROM \(relation) s WHERE \(k) IS NOT NULL AND $1::bigint IS NOT NULL"
            : "SELECT \(cols), \(k) AS o FROM \(relation) s WHERE \(k) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM \(t.rows) r WHERE \(match))\(outside)"
        if let filter = source.filter { sql += " AND (\(filter))" }
        // Rows come a page at a time, each column of a page as one array (one result row per
        // page, not per row: the driver's cost is per row), the pages in key order from after
        // the last key of the one before, all in one snapshot.
        let n = schema.columns.count
        let keyType = try await conn.query(PostgresPool.query(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attname = $2 AND NOT a.attisdropped",
            [.text(relation), .text(source.key)]), logger: pool.logger).get().rows.first?.decode(String.self) ?? "text"
        let arrays = (0..<n).map { "array_agg(p.c\($0))" } + (resendChanged ? ["array_agg(p.h)", "array_agg(p.g)"] : [])
        let lastKey = integral ? "max(p.o)::text" : "(array_agg(p.o::text ORDER BY p.o DESC))[1]"  // not every type has max()
        func page(after: Bool, below: Bool = false) -> String {
            "SELECT \(lastKey), \(arrays.joined(separator: ", ")) FROM (\(sql)"
                + (after ? " AND \(k) > $2::\(keyType)" : "") + (below ? " AND \(k) < $\(after ? 3 : 2)::bigint" : "")
                + " ORDER BY \(k) LIMIT \(scan.pageSize)) p"
        }
        let pages = [page(after: false), page(after: true), page(after: false, below: true), page(after: true, below: true)]
        try await pool.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", on: conn)
        do {
            // Text forms our coercion reads back exactly, whatever the session's settings.
            for set in ["SET LOCAL TIME ZONE 'UTC'", "SET LOCAL DateStyle = 'ISO, YMD'", "SET LOCAL bytea_output = 'hex'",
                        "SET LOCAL extra_float_digits = 1", "SET LOCAL IntervalStyle = 'iso_8601'"] {
                try await pool.exec(set, on: conn)
            }
            var builder = BatchBuilder(schema: nullable, capacity: scan.pageSize)
            var keys: [LedgerKey] = [], hashes: [Int64] = []
            // The page after `last` (the first with nil) and below `upper` (a gap's end), asked
            // for while the one before is read.
            let fetch = { @Sendable (last: String?, upper: Int64?) in
                Task { () throws -> PostgresRow? in
                    let binds: [PGValue] = [.int(destinationID)] + (last.map { [.text($0)] } ?? []) + (upper.map { [.int($0)] } ?? [])
                    let sql = pages[(last == nil ? 0 : 1) + (upper == nil ? 0 : 2)]
                    return try await conn.query(PostgresPool.query(sql, binds), logger: pool.logger).get().rows.first
                }
            }
            var ranges = gapped ? RangeCursor(destinationID: destinationID, table: t.ranges) : nil
            var gap = try await ranges?.gap(after: nil, conn, pool) ?? Gap()
            var pending: Task<PostgresRow?, any Error>? = fetch(nil, gap.upper)
            defer { pending?.cancel() }
            reading: while let asked = pending {
                pending = nil
                guard let result = try await asked.value else { break }
                var cells = result.makeIterator()
                let bound = cells.next()?.bytes  // NULL: no row in this gap or after the last page
                var columns: [PGArray] = []
                var count = 0
                if bound != nil {
                    while let cell = cells.next() { columns.append(try PGArray(cell.bytes)) }
                    count = columns.first?.count ?? 0
                    guard columns.count == arrays.count, columns.allSatisfy({ $0.count == count }) else {
                        throw SluiceError(.io, "PostgreSQL returned a page of \(source.label) in an unexpected shape")
                    }
                }
                if count == scan.pageSize, let bound {
                    // A full page may have more after it: ask while this one is read.
                    pending = fetch(String(buffer: bound), gap.upper)
                } else if let resume = gap.resume, var r = ranges {
                    // This gap is done: the next one starts after the range that ended it.
                    gap = try await r.gap(after: resume, conn, pool)
                    ranges = r
                    pending = fetch(String(resume), gap.upper)
                }
                for i in 0..<count {
                    // Each cell is read once, for the row's hash and for its value.
                    var h = RowHasher()
                    builder.beginRow(line: Int64(keys.count + 1))
                    for c in 0..<n {
                        columns[c].withElement(i) { b in
                            if let b {
                                h.bytes(2, b)
                                builder.setText(c, b)
                            } else {
                                h.null()
                                builder.setNull(c)
                            }
                        }
                    }
                    if resendChanged {
                        let row = columns[n].withElement(i) { $0.flatMap { LedgerRanges.hash($0) } }
                        if columns[n + 1].withElement(i, { LedgerRanges.unchanged(h.value, row: row, range: $0) }) {
                            builder.dropRow()
                            continue
                        }
                    }
                    let key = columns[keyIndex].withElement(i) { $0.map { String(decoding: $0, as: UTF8.self) } } ?? ""
                    if let r = builder.endRow() {
                        throw SluiceError(.invalidSchema, "row with \(source.key) = \(key) does not read back as its column type: \(r.message)")
                    }
                    // An integer key is recorded as one, so a batch of consecutive keys can be a range.
                    keys.append(integral ? Int64(key).map(LedgerKey.int) ?? .text(key) : .text(key))
                    hashes.append(h.value)
                    if keys.count == scan.pageSize {
                        guard await scan.channel.send(.page(ExportPage(batch: builder.take(), keys: keys, hashes: hashes))) else { break reading }
                        keys.removeAll(keepingCapacity: true)
                        hashes.removeAll(keepingCapacity: true)
                    }
                }
            }
            _ = try? await pending?.value  // the connection's last query ends before COMMIT
            if !keys.isEmpty { _ = await scan.channel.send(.page(ExportPage(batch: builder.take(), keys: keys, hashes: hashes))) }
            try await pool.exec("COMMIT", on: conn)
        } catch {
            _ = try? await pool.exec("ROLLBACK", on: conn)
            throw error
        }
    }

    public func insert(_ b: ExportBatch, destinationID: Int64, keys: [LedgerKey], hashes: [Int64]) async throws(SluiceError) {
        let t = t
        // A key planned again (its row changed, `--resend-changed`) moves to the new batch.
        try await recordBatch(b, """
            INSERT INTO \(t.rows) (dest, key, batch, hash) SELECT $1, u.k, $3, u.h FROM unnest($2::text[], $4::bigint[]) AS u(k, h)
            ON CONFLICT (dest, key) DO UPDATE SET batch = excluded.batch, hash = excluded.hash
            """, [.int(destinationID), .texts(keys.map(\.text)), .int(b.batch), .ints(hashes)])
    }

    public func insert(_ b: ExportBatch, destinationID: Int64, range: ClosedRange<Int64>, hashes: [Int64]) async throws(SluiceError) {
        try await recordBatch(b, "INSERT INTO \(t.ranges) (dest, lo, hi, batch, hashes) VALUES ($1, $2, $3, $4, $5)",
                              [.int(destinationID), .int(range.lowerBound), .int(range.upperBound), .int(b.batch), .bytes(LedgerRanges.packed(hashes))])
    }

    /// Inserts batch `b` as planned and, in the same transaction, its keys (`keysSQL`).
    func recordBatch(_ b: ExportBatch, _ keysSQL: String, _ binds: [PGValue]) async throws(SluiceError) {
        let pool = pool, t = t
        try await run("cannot record batch \(b.batch)") { conn in
            try await pool.exec("BEGIN", on: conn)
            do {
                try await pool.exec("""
                    INSERT INTO \(t.batches) (destination, batch, rows, first_key, last_key, sha256, file, state, planned_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, 'planned', now())
                    """, [.text(b.destination), .int(b.batch), .int(Int64(b.rows)), .text(b.firstKey), .text(b.lastKey), .text(b.sha256), .text(b.file)], on: conn)
                try await pool.exec(keysSQL, binds, on: conn)
                try await pool.exec("COMMIT", on: conn)
            } catch {
                _ = try? await pool.exec("ROLLBACK", on: conn)
                throw error
            }
        }
    }

    /// A session advisory lock, held on a connection of its own for the whole run.
    public func exclusive<T: Sendable>(_ url: String, _ body: @Sendable () async throws(SluiceError) -> T) async throws(SluiceError) -> T {
        let pool = pool
        let key = SHA256.hash(data: Data(("sluice-export " + url).utf8)).prefix(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
        let outcome: Result<T, SluiceError>
        do {
            outcome = try await pool.client.withConnection { conn in
                let rows = try await conn.query(PostgresPool.query("SELECT pg_try_advisory_lock($1)", [.int(key)]), logger: pool.logger).get().rows
                guard try rows.first?.decode(Bool.self) == true else {
                    return .failure(SluiceError(.refused, "another `sluice export` to \(url) is running"))
                }
                let result: Result<T, SluiceError>
                do throws(SluiceError) { result = .success(try await body()) } catch { result = .failure(error) }
                _ = try? await pool.exec("SELECT pg_advisory_unlock($1)", [.int(key)], on: conn)
                return result
            }
        } catch {
            throw PostgresPool.error(error, "cannot lock the export to \(url)")
        }
        return try outcome.get()
    }

    public func batches(_ destination: String?, state: BatchState?) async throws(SluiceError) -> [ExportBatch] {
        var sql = """
            SELECT destination, batch, rows, first_key, last_key, sha256, file, state, attempts, last_status, last_error, response, latency_ms
            FROM \(t.batches) WHERE true
            """
        var binds: [PGValue] = []
        if let destination { binds.append(.text(destination)); sql += " AND destination = $\(binds.count)" }
        if let state { binds.append(.text(state.rawValue)); sql += " AND state = $\(binds.count)" }
        sql += " ORDER BY destination, batch"
        let pool = pool, query = PostgresPool.query(sql, binds)
        return try await run("cannot read the export ledger") { conn in
            var out: [ExportBatch] = []
            for try await r in try await conn.query(query, logger: pool.logger) {
                let (dest, batch, rows, first, last, sha, file, st, attempts) = try r.decode((String, Int64, Int32, String?, String?, String, String, String, Int32).self)
                let (_, _, _, _, _, _, _, _, _, status, error, response, latency) = try r.decode(
                    (String, Int64, Int32, String?, String?, String, String, String, Int32, Int32?, String?, String?, Int32?).self)
                out.append(ExportBatch(destination: dest, batch: batch, rows: Int(rows), firstKey: first ?? "", lastKey: last ?? "", sha256: sha, file: file,
                                       state: BatchState(rawValue: st) ?? .planned, attempts: Int(attempts), lastStatus: status.map(Int.init),
                                       lastError: error, response: response, latencyMs: latency.map(Int.init)))
            }
            return out
        }
    }

    public func hasKeys(_ destinationID: Int64) async throws(SluiceError) -> Bool {
        let pool = pool, query = PostgresPool.query("""
            SELECT 1 FROM \(t.rows) WHERE dest = $1 UNION ALL SELECT 1 FROM \(t.ranges) WHERE dest = $1 LIMIT 1
            """, [.int(destinationID)])
        return try await run("cannot read the export ledger") { conn in
            for try await _ in try await conn.query(query, logger: pool.logger) { return true }
            return false
        }
    }

    public func sentKeys(_ destinationID: Int64, _ keys: [LedgerKey]) async throws(SluiceError) -> Set<String> {
        let pool = pool, query = PostgresPool.query("SELECT key FROM \(t.rows) WHERE dest = $1 AND key = ANY($2::text[])", [.int(destinationID), .texts(keys.map(\.text))])
        let rangesQuery = PostgresPool.query("SELECT lo, hi FROM \(t.ranges) WHERE dest = $1", [.int(destinationID)])
        return try await run("cannot read the export ledger") { conn in
            var ranges: [ClosedRange<Int64>] = []
            for try await r in try await conn.query(rangesQuery, logger: pool.logger) {
                let (lo, hi) = try r.decode((Int64, Int64).self)
                if lo <= hi { ranges.append(lo...hi) }
            }
            let compacted = LedgerRanges(ranges)
            var out = Set(keys.filter(compacted.contains).map(\.text))
            for try await r in try await conn.query(query, logger: pool.logger) { out.insert(try r.decode(String.self)) }
            return out
        }
    }

    public func compactKeys(skipping: Set<String>, dryRun: Bool) async throws(SluiceError) -> LedgerCompaction {
        // Runs ("islands") of consecutive integer keys within each delivered batch: a key
        // minus its rank in the batch is the same along a run. One statement records the
        // ranges and deletes their keys (joined on destination and batch: one pass).
        let runs = """
            WITH k AS (
              SELECT r.dest, r.batch, r.key::bigint AS key FROM \(t.rows) r JOIN \(t.destinations) d ON d.id = r.dest
              JOIN \(t.batches) b ON b.destination = d.url AND b.batch = r.batch AND b.state = 'delivered'
              WHERE r.key ~ \(Self.canonicalInteger) AND NOT d.url = ANY($1::text[])
                -- a key planned again inside an earlier range stays a key (ranges never overlap)
                AND NOT EXISTS (SELECT 1 FROM \(t.ranges) g WHERE g.dest = r.dest AND g.lo <= r.key::bigint AND g.hi >= r.key::bigint)),
            runs AS (
              SELECT dest, batch, min(key) AS lo, max(key) AS hi, count(*) AS n
              FROM (SELECT dest, batch, key, key - row_number() OVER (PARTITION BY dest, batch ORDER BY key) AS run FROM k) g
              GROUP BY dest, batch, run HAVING count(*) > 1)
            """
        let sql = dryRun
            ? runs + "SELECT coalesce(sum(n), 0)::bigint, count(*)::bigint FROM runs"
            : runs + """
                , added AS (INSERT INTO \(t.ranges) (dest, lo, hi, batch) SELECT dest, lo, hi, batch FROM runs RETURNING 1),
                dropped AS (DELETE FROM \(t.rows) r USING runs x WHERE r.dest = x.dest AND r.batch = x.batch AND r.key ~ \(Self.canonicalInteger)
                            AND r.key::bigint BETWEEN x.lo AND x.hi RETURNING 1)
                SELECT (SELECT count(*) FROM dropped)::bigint, (SELECT count(*) FROM added)::bigint
                """
        let pool = pool, query = PostgresPool.query(sql, [.texts(skipping.sorted())])
        return try await run("cannot compact the export ledger") { conn in
            for try await r in try await conn.query(query, logger: pool.logger) {
                let (keys, ranges) = try r.decode((Int64, Int64).self)
                return LedgerCompaction(keys: Int(keys), ranges: Int(ranges))
            }
            return LedgerCompaction()
        }
    }

    public func deliveredKeys(_ url: String, after batch: Int64) async throws(SluiceError) -> [(batch: Int64, key: String)] {
        let pool = pool, query = PostgresPool.query("""
            SELECT r.batch, r.key FROM \(t.rows) r
            JOIN \(t.destinations) d ON d.id = r.dest AND d.url = $1
            JOIN \(t.batches) b ON b.destination = $1 AND b.batch = r.batch AND b.state = 'delivered'
            WHERE r.batch > $2 ORDER BY r.batch, r.key
            """, [.text(url), .int(batch)])
        let rangesQuery = PostgresPool.query("""
            SELECT g.batch, g.lo, g.hi FROM \(t.ranges) g JOIN \(t.destinations) d ON d.id = g.dest AND d.url = $1
            JOIN \(t.batches) b ON b.destination = $1 AND b.batch = g.batch AND b.state = 'delivered' WHERE g.batch > $2
            """, [.text(url), .int(batch)])
        return try await run("cannot read the export ledger") { conn in
            var out: [(batch: Int64, key: String)] = []
            for try await r in try await conn.query(query, logger: pool.logger) {
                let (b, k) = try r.decode((Int64, String).self)
                out.append((b, k))
            }
            var ranges: [(batch: Int64, range: ClosedRange<Int64>)] = []
            for try await r in try await conn.query(rangesQuery, logger: pool.logger) {
                let (b, lo, hi) = try r.decode((Int64, Int64, Int64).self)
                if lo <= hi { ranges.append((b, lo...hi)) }
            }
            return LedgerRanges.merge(out, ranges: ranges)
        }
    }

    public func record(_ b: ExportBatch, state: BatchState, status: Int?, error: String?, response: String?, latencyMs: Int) async throws(SluiceError) {
        let pool = pool, t = t
        let binds: [PGValue] = [.text(b.destination), .int(b.batch), .text(state.rawValue), status.map { .int(Int64($0)) } ?? .null,
                                error.map { .text($0) } ?? .null, response.map { .text($0) } ?? .null, .int(Int64(latencyMs))]
        _ = try await run("cannot record batch \(b.batch)") { conn in
            try await pool.exec("""
                UPDATE \(t.batches) SET state = $3, attempts = attempts + 1, last_status = $4::integer, last_error = $5, response = $6,
                  latency_ms = $7::integer, delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END
                WHERE destination = $1 AND batch = $2
                """, binds, on: conn)
        }
    }

    public func retryDead(_ destination: String?) async throws(SluiceError) -> Int {
        let pool = pool
        var sql = "UPDATE \(t.batches) SET state = 'planned', attempts = 0 WHERE state = 'dead'"
        var binds: [PGValue] = []
        if let destination { binds.append(.text(destination)); sql += " AND destination = $1" }
        let (s, b) = (sql, binds)
        return Int(try await run("cannot update the export ledger") { conn in try await pool.exec(s, b, on: conn) })
    }
}

/// The planning thread's end of a PostgreSQL scan: pages arrive from the reading task
/// through a channel that holds at most two, so memory stays flat.
final class PostgresExportScan: ExportScan, @unchecked Sendable {
    enum Item: Sendable { case schema(TableSchema), page(ExportPage), failure(SluiceError) }
    let pageSize: Int
    /// From the reading task to the planner: the columns, then pages (or why reading failed).
    let channel = BoundedQueue<Item>(capacity: 2)
    var producer: Task<Void, Never>?
    private(set) var schema = TableSchema(columns: [])

    init(pageSize: Int) { self.pageSize = pageSize }

    func awaitSchema() async throws(SluiceError) {
        switch await channel.next() {
        case .schema(let s)?: schema = s
        case .failure(let e)?: throw e
        default: throw SluiceError(.io, "the export source ended before its columns were known")
        }
    }

    func next() async throws(SluiceError) -> ExportPage? {
        switch await channel.next() {
        case .page(let p)?: return p
        case .failure(let e)?: throw e
        default: return nil
        }
    }

    func close() {
        channel.cancel()
    }
}

/// The gap being read between ranges already sent: below `upper` (the next range's start;
/// nil: no range after it), resuming after `resume` (that range's end) once done.
struct Gap {
    var upper: Int64?
    var resume: Int64?
}

/// The ranges of a destination in key order, read a thousand at a time.
struct RangeCursor {
    let destinationID: Int64
    let table: String
    var buffered: [(lo: Int64, hi: Int64)] = []
    var at = 0
    var more = true
    /// Ranges read per query.
    static let fetch = 1000

    init(destinationID: Int64, table: String) {
        self.destinationID = destinationID
        self.table = table
    }

    /// The gap after `key` (nil: from the first key): up to the first range starting after it.
    mutating func gap(after key: Int64?, _ conn: PostgresConnection, _ pool: PostgresPool) async throws -> Gap {
        while true {
            while at < buffered.count, let key, buffered[at].lo <= key { at += 1 }
            if at < buffered.count { return Gap(upper: buffered[at].lo, resume: buffered[at].hi) }
            guard more else { return Gap() }
            let after = buffered.last?.lo
            let sql = "SELECT lo, hi FROM \(table) WHERE dest = $1" + (after == nil ? "" : " AND lo > $2") + " ORDER BY lo LIMIT \(Self.fetch)"
            let binds: [PGValue] = [.int(destinationID)] + (after.map { [.int($0)] } ?? [])
            buffered = try await conn.query(PostgresPool.query(sql, binds), logger: pool.logger).get().rows.map { try $0.decode((Int64, Int64).self) }
                .map { (lo: $0.0, hi: $0.1) }
            at = 0
            more = buffered.count == Self.fetch
        }
    }
}

/// A one-dimensional array in PostgreSQL's binary format (`array_agg` of a page's column):
/// its elements as byte ranges of the buffer, NULL as nil.
struct PGArray {
    let buffer: ByteBuffer
    /// Each element's offset from the reader index and length (-1: NULL).
    var elements: [(Int, Int)] = []
    var count: Int { elements.count }

    init(_ cell: ByteBuffer?) throws(SluiceError) {
        guard let cell else { throw SluiceError(.io, "PostgreSQL returned a NULL array") }
        buffer = cell
        let parsed: [(Int, Int)]? = cell.withUnsafeReadableBytes { p -> [(Int, Int)]? in
            func int32(_ at: Int) -> Int? {
                guard at >= 0, at + 4 <= p.count else { return nil }
                return Int(Int32(bitPattern: UInt32(p[at]) << 24 | UInt32(p[at + 1]) << 16 | UInt32(p[at + 2]) << 8 | UInt32(p[at + 3])))
            }
            guard let dims = int32(0) else { return nil }
            if dims == 0 { return [] }
            // Each element takes at least its 4-byte length: a count the buffer cannot hold is refused.
            guard dims == 1, let size = int32(12), size >= 0, size <= (p.count - 20) / 4 else { return nil }
            var out: [(Int, Int)] = []
            out.reserveCapacity(size)
            var at = 20
            for _ in 0..<size {
                guard let len = int32(at) else { return nil }
                at += 4
                guard len == -1 || (len >= 0 && at + len <= p.count) else { return nil }
                out.append((at, len))
                if len > 0 { at += len }
            }
            return out
        }
        guard let parsed else { throw SluiceError(.io, "PostgreSQL returned an array Sluice cannot read") }
        elements = parsed
    }

    /// Calls `body` with element `i`'s bytes (nil for NULL).
    func withElement<T>(_ i: Int, _ body: (UnsafeRawBufferPointer?) -> T) -> T {
        let (at, len) = elements[i]
        if len < 0 { return body(nil) }
        return buffer.withUnsafeReadableBytes { p in body(UnsafeRawBufferPointer(rebasing: p[at..<at + len])) }
    }
}
