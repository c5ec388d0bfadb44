public import SluiceCore
public import SluiceQueue
public import Foundation

/// The embedded control plane: jobs, uploads and the loaded-files ledger in the same
/// SQLite file as the target tables, so that a load's data and its job's completion
/// commit in one transaction. Queries run on a private serial queue, off the caller's
/// (async) threads; SQLite's write lock makes each guarded UPDATE atomic across processes.
public final class SQLiteQueueDriver: QueueDriver, @unchecked Sendable {
    let connection: SQLiteConnection
    let queue = DispatchQueue(label: "sluice.sqlite.queue")
    public let path: String

    public init(path: String) throws(SluiceError) {
        self.path = path
        connection = try SQLiteConnection(path: path)
        try connection.executeWhenFree("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
    }

    /// Runs `body` on the driver's queue.
    func run<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws(SluiceError) -> T) async throws(SluiceError) -> T {
        let result: Result<T, SluiceError> = await withCheckedContinuation { cont in
            queue.async { [connection] in
                cont.resume(returning: Result { () throws(SluiceError) -> T in try body(connection) })
            }
        }
        return try result.get()
    }

    // MARK: Schema

    static let migrations: [(Int, String)] = [
        (1, """
            CREATE TABLE IF NOT EXISTS sluice_jobs (
              id INTEGER PRIMARY KEY AUTOINCREMENT,
              entity TEXT NOT NULL,
              state TEXT NOT NULL,
              spec TEXT NOT NULL,
              priority INTEGER NOT NULL DEFAULT 0,
              attempts INTEGER NOT NULL DEFAULT 0,
              max_attempts INTEGER NOT NULL,
              lease_token INTEGER NOT NULL DEFAULT 0,
              worker TEXT,
              lease_expires_at REAL,
              run_after REAL NOT NULL,
              idempotency_key TEXT UNIQUE,
              created_at REAL NOT NULL,
              started_at REAL,
              finished_at REAL,
              progress_bytes INTEGER NOT NULL DEFAULT 0,
              progress_rows INTEGER NOT NULL DEFAULT 0,
              result TEXT,
              error TEXT
            ) STRICT;
            CREATE INDEX IF NOT EXISTS sluice_jobs_claim ON sluice_jobs (state, priority DESC, id);
            CREATE INDEX IF NOT EXISTS sluice_jobs_lease ON sluice_jobs (state, lease_expires_at);
            CREATE INDEX IF NOT EXISTS sluice_jobs_entity ON sluice_jobs (entity, id);
            CREATE TABLE IF NOT EXISTS sluice_uploads (
              id TEXT PRIMARY KEY,
              path TEXT NOT NULL,
              size INTEGER NOT NULL,
              sha256 TEXT NOT NULL,
              original_name TEXT,
              created_at REAL NOT NULL
            ) STRICT;
            CREATE TABLE IF NOT EXISTS sluice_loaded_files (
              entity TEXT NOT NULL,
              sha256 TEXT NOT NULL,
              job_id INTEGER NOT NULL,
              loaded_at REAL NOT NULL,
              PRIMARY KEY (entity, sha256)
            ) STRICT;
            """),
        (2, """
            CREATE TABLE IF NOT EXISTS sluice_watched_files (
              watch TEXT NOT NULL,
              key TEXT NOT NULL,
              etag TEXT NOT NULL,
              size INTEGER NOT NULL,
              last_modified REAL NOT NULL,
              state TEXT NOT NULL,
              first_seen REAL NOT NULL,
              job_id INTEGER,
              error TEXT,
              batch TEXT,
              PRIMARY KEY (watch, key, etag)
            ) STRICT;
            CREATE INDEX IF NOT EXISTS sluice_watched_files_mtime ON sluice_watched_files (watch, state, last_modified);
            """),
        (3, """
            CREATE TABLE IF NOT EXISTS sluice_enrich_cache (
              namespace TEXT NOT NULL,
              key TEXT NOT NULL,
              value TEXT NOT NULL,
              expires_at REAL NOT NULL,
              PRIMARY KEY (namespace, key)
            ) STRICT, WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS sluice_rate_limits (
              name TEXT PRIMARY KEY,
              tokens REAL NOT NULL,
              updated_at REAL NOT NULL
            ) STRICT;
            """),
        (4, """
            CREATE TABLE IF NOT EXISTS sluice_runs (
              id INTEGER PRIMARY KEY AUTOINCREMENT,
              pipeline TEXT NOT NULL,
              state TEXT NOT NULL,
              scheduled_for REAL,
              window_from REAL,
              window_to REAL,
              started_at REAL NOT NULL,
              finished_at REAL,
              counts TEXT,
              error TEXT
            ) STRICT;
            CREATE INDEX IF NOT EXISTS sluice_runs_pipeline ON sluice_runs (pipeline, id);
            """),
        (5, """
            ALTER TABLE sluice_jobs ADD COLUMN stage TEXT;
            ALTER TABLE sluice_jobs ADD COLUMN run_id INTEGER;
            CREATE INDEX IF NOT EXISTS sluice_jobs_stage ON sluice_jobs (stage, state) WHERE stage IS NOT NULL;
            CREATE INDEX IF NOT EXISTS sluice_jobs_run ON sluice_jobs (run_id, stage, state) WHERE run_id IS NOT NULL;
            CREATE TABLE IF NOT EXISTS sluice_handoff_batches (
              key TEXT PRIMARY KEY,
              run_id INTEGER NOT NULL,
              payload TEXT NOT NULL
            ) STRICT;
            CREATE INDEX IF NOT EXISTS sluice_handoff_batches_run ON sluice_handoff_batches (run_id);
            """),
        (6, "ALTER TABLE sluice_jobs ADD COLUMN rescues INTEGER NOT NULL DEFAULT 0;"),
        // The console's overview and the metrics' job gauges count jobs by these three.
        (7, "CREATE INDEX IF NOT EXISTS sluice_jobs_counts ON sluice_jobs (state, stage, entity);"),
        (8, "CREATE TABLE IF NOT EXISTS sluice_leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, token INTEGER NOT NULL, expires_at REAL NOT NULL) STRICT;"),
        (9, "ALTER TABLE sluice_runs ADD COLUMN upload TEXT;"),
        (10, "CREATE TABLE IF NOT EXISTS sluice_enrich_claims (namespace TEXT NOT NULL, key TEXT NOT NULL, holder TEXT NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (namespace, key)) STRICT, WITHOUT ROWID;"),
    ]

    public func migrate() async throws(SluiceError) {
        try await run { c throws(SluiceError) in try Self.migrate(c) }
    }

    /// Applies missing migrations in one write transaction; concurrent starters wait on
    /// the write lock and then find nothing left to do.
    static func migrate(_ c: SQLiteConnection) throws(SluiceError) {
        try c.execute("CREATE TABLE IF NOT EXISTS sluice_schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL) STRICT")
        try c.execute("BEGIN IMMEDIATE")
        do throws(SluiceError) {
            let current = try c.query("SELECT coalesce(max(version), 0) FROM sluice_schema_version").first?.first?.int ?? 0
            for (version, sql) in migrations where version > current {
                try c.execute(sql)
                try c.execute("INSERT INTO sluice_schema_version (version, applied_at) VALUES (\(version), datetime('now'))")
            }
            try c.execute("COMMIT")
        } catch {
            try? c.execute("ROLLBACK")  // the migration error is what matters
            throw error
        }
    }

    // MARK: Rows

    static let columns = "id, entity, state, spec, priority, attempts, max_attempts, lease_token, worker, lease_expires_at, run_after, idempotency_key, created_at, started_at, finished_at, progress_bytes, progress_rows, result, error, rescues"

    static func date(_ v: SQLiteValue) -> Date? {
        switch v {
        case .real(let d): Date(timeIntervalSince1970: d)
        case .integer(let i): Date(timeIntervalSince1970: Double(i))
        default: nil
        }
    }

    static func job(_ r: [SQLiteValue]) throws(SluiceError) -> Job {
        guard let id = r[0].int, let entity = r[1].string, let stateText = r[2].string, let state = JobState(rawValue: stateText),
              let specText = r[3].string else {
            throw SluiceError(.database, "malformed job row")
        }
        let decoder = JSONDecoder()
        guard let spec = try? decoder.decode(JobSpec.self, from: Data(specText.utf8)) else {
            throw SluiceError(.database, "job \(id) has an unreadable spec")
        }
        let result = r[17].string.flatMap { try? decoder.decode(JobResult.self, from: Data($0.utf8)) }
        return Job(id: id, entity: entity, state: state, spec: spec, priority: Int(r[4].int ?? 0), attempts: Int(r[5].int ?? 0),
                   maxAttempts: Int(r[6].int ?? 0), leaseToken: r[7].int ?? 0, worker: r[8].string, leaseExpiresAt: date(r[9]),
                   runAfter: date(r[10]) ?? Date(timeIntervalSince1970: 0), idempotencyKey: r[11].string,
                   createdAt: date(r[12]) ?? Date(timeIntervalSince1970: 0), startedAt: date(r[13]), finishedAt: date(r[14]),
                   progress: JobProgress(bytes: r[15].int ?? 0, rows: r[16].int ?? 0), result: result, error: r[18].string,
                   rescues: Int(r[19].int ?? 0))
    }

    static func json<T: Encodable>(_ v: T) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: e.encode(v), as: UTF8.self)) ?? "null"
    }

    static func t(_ d: Date) -> SQLiteValue { .real(d.timeIntervalSince1970) }
    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    // MARK: Queries

    public func insertJob(_ p: JobInsertParams) async throws(SluiceError) -> JobInsertResult {
        try await run { c throws(SluiceError) in try Self.insertJob(c, p) }
    }

    static func insertJob(_ c: SQLiteConnection, _ p: JobInsertParams) throws(SluiceError) -> JobInsertResult {
        if let key = p.idempotencyKey,
           let row = try c.query("SELECT \(Self.columns) FROM sluice_jobs WHERE idempotency_key = ?1", [.text(key)]).first {
            return JobInsertResult(job: try Self.job(row), existing: true)
        }
        let rows = try c.query("""
            INSERT INTO sluice_jobs (entity, state, spec, priority, max_attempts, run_after, idempotency_key, created_at, stage, run_id)
            VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?5, ?7, ?8)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING \(Self.columns)
            """, [.text(p.entity), .text(Self.json(p.spec)), .integer(Int64(p.priority)), .integer(Int64(p.maxAttempts)),
                  Self.t(p.now), p.idempotencyKey.map { .text($0) } ?? .null,
                  p.spec.stage.map { .text($0.kind.rawValue) } ?? .null, p.spec.stage.map { .integer($0.run) } ?? .null])
        if let row = rows.first { return JobInsertResult(job: try Self.job(row), existing: false) }
        // Another process inserted the same key between the lookup and the insert.
        guard let key = p.idempotencyKey,
              let row = try c.query("SELECT \(Self.columns) FROM sluice_jobs WHERE idempotency_key = ?1", [.text(key)]).first else {
            throw SluiceError(.database, "job insert returned nothing")
        }
        return JobInsertResult(job: try Self.job(row), existing: true)
    }

    public func job(id: Int64) async throws(SluiceError) -> Job? {
        try await run { c throws(SluiceError) in
            try c.query("SELECT \(Self.columns) FROM sluice_jobs WHERE id = ?1", [.integer(id)]).first.map { (r) throws(SluiceError) in try Self.job(r) }
        }
    }

    public func job(idempotencyKey: String) async throws(SluiceError) -> Job? {
        try await run { c throws(SluiceError) in
            try c.query("SELECT \(Self.columns) FROM sluice_jobs WHERE idempotency_key = ?1", [.text(idempotencyKey)]).first
                .map { (r) throws(SluiceError) in try Self.job(r) }
        }
    }

    public func listJobs(_ p: JobListParams) async throws(SluiceError) -> [Job] {
        try await run { c throws(SluiceError) in
            let rows = try c.query("""
                SELECT \(Self.columns) FROM sluice_jobs
                WHERE id \(p.keyset.comparison) ?1 AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR entity = ?3) AND (?5 IS NULL OR run_id = ?5)
                ORDER BY id \(p.keyset.order) LIMIT ?4
                """, [.integer(p.keyset.bound), p.state.map { .text($0.rawValue) } ?? .null, p.entity.map { .text($0) } ?? .null,
                      .integer(Int64(max(1, min(p.limit, 1000)))), p.run.map { .integer($0) } ?? .null])
            return try rows.map { (r) throws(SluiceError) in try Self.job(r) }
        }
    }

    public func claimJobs(_ p: JobClaimParams) async throws(SluiceError) -> [Job] {
        if p.limit <= 0 { return [] }
        return try await run { c throws(SluiceError) in
            let rows = try c.query("""
                UPDATE sluice_jobs
                SET state = 'processing', lease_token = lease_token + 1, attempts = attempts + 1, worker = ?1,
                    lease_expires_at = ?2, started_at = coalesce(started_at, ?3)
                WHERE id IN (SELECT id FROM sluice_jobs WHERE state = 'queued' AND run_after <= ?3
                               AND (?5 IS NULL OR stage IN (SELECT value FROM json_each(?5)) OR (?6 AND stage IS NULL))
                             ORDER BY priority DESC, id LIMIT ?4)
                RETURNING \(Self.columns)
                """, [.text(p.worker), .real(p.now.timeIntervalSince1970 + Self.seconds(p.leaseDuration)), Self.t(p.now),
                      .integer(Int64(p.limit)), p.stages.map { .text(Self.json($0.map(\.rawValue))) } ?? .null, .integer(p.plainJobs ? 1 : 0)])
            return try rows.map { (r) throws(SluiceError) in try Self.job(r) }.sorted { ($0.priority, -$0.id) > ($1.priority, -$1.id) }
        }
    }

    public func heartbeat(_ p: JobHeartbeatParams) async throws(SluiceError) -> LeaseStatus {
        try await run { c throws(SluiceError) in
            let st = try c.prepare("UPDATE sluice_jobs SET lease_expires_at = ?1 WHERE id = ?2 AND lease_token = ?3 AND state = 'processing'")
            st.bind(1, .real(p.now.timeIntervalSince1970 + Self.seconds(p.leaseDuration)))
            st.bind(2, .integer(p.id))
            st.bind(3, .integer(p.token))
            try st.step()
            if c.changes == 1 { return .held }
            let state = try c.query("SELECT state FROM sluice_jobs WHERE id = ?1", [.integer(p.id)]).first?.first?.string
            return state == JobState.cancelled.rawValue ? .cancelled : .lost
        }
    }

    public func setProgress(_ p: JobProgressParams) async throws(SluiceError) {
        try await run { c throws(SluiceError) in
            _ = try c.query("UPDATE sluice_jobs SET progress_bytes = ?1, progress_rows = ?2 WHERE id = ?3 AND lease_token = ?4 AND state = 'processing'",
                            [.integer(p.progress.bytes), .integer(p.progress.rows), .integer(p.id), .integer(p.token)])
        }
    }

    /// The guarded completion, shared with the in-transaction path of loads: returns
    /// whether the job was still held with `token` (and is now complete).
    /// `refuseDuplicate` (inside a load's transaction, not forced): a file another job loaded
    /// into the entity meanwhile (the same bytes) throws, so that the load rolls back and its
    /// retry completes as a duplicate.
    static func complete(_ c: SQLiteConnection, id: Int64, token: Int64, result: JobResult, entity: String?, now: Date,
                         refuseDuplicate: Bool = false) throws(SluiceError) -> Bool {
        let st = try c.prepare("""
            UPDATE sluice_jobs SET state = 'complete', result = ?1, finished_at = ?2, worker = NULL, lease_expires_at = NULL, error = NULL,
                progress_rows = ?5, progress_bytes = ?6
            WHERE id = ?3 AND lease_token = ?4 AND state = 'processing'
            """)
        st.bind(1, .text(json(result)))
        st.bind(2, t(now))
        st.bind(3, .integer(id))
        st.bind(4, .integer(token))
        st.bind(5, .integer(result.stats.read))
        st.bind(6, .integer(result.stats.bytes))
        try st.step()
        guard c.changes == 1 else { return false }
        if let entity, let sha = result.sha256, result.duplicateOf == nil {
            _ = try c.query("INSERT INTO sluice_loaded_files (entity, sha256, job_id, loaded_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                            [.text(entity), .text(sha), .integer(id), t(now)])
            if refuseDuplicate && c.changes == 0 { throw QueueErrors.loadedMeanwhile(entity: entity) }
        }
        return true
    }

    public func completeJob(_ p: JobCompleteParams) async throws(SluiceError) -> Bool {
        try await run { c throws(SluiceError) in try Self.complete(c, id: p.id, token: p.token, result: p.result, entity: p.entity, now: p.now) }
    }

    public func completeJobs(_ ps: [JobCompleteParams]) async throws(SluiceError) -> [Bool] {
        if ps.isEmpty { return [] }
        return try await run { c throws(SluiceError) in
            try c.execute("BEGIN IMMEDIATE")
            do throws(SluiceError) {
                let done = try ps.map { (p) throws(SluiceError) in try Self.complete(c, id: p.id, token: p.token, result: p.result, entity: p.entity, now: p.now) }
                try c.execute("COMMIT")
                return done
            } catch {
                try? c.execute("ROLLBACK")
                throw error
            }
        }
    }

    public func failJob(_ p: JobFailParams) async throws(SluiceError) -> Job? {
        try await run { c throws(SluiceError) in
            let rows = try c.query("""
                UPDATE sluice_jobs
                SET state = CASE WHEN ?1 AND attempts < max_attempts THEN 'queued' ELSE 'error' END,
                    run_after = ?2, worker = NULL, lease_expires_at = NULL, error = ?3, result = ?7,
                    finished_at = CASE WHEN ?1 AND attempts < max_attempts THEN NULL ELSE ?4 END
                WHERE id = ?5 AND lease_token = ?6 AND state = 'processing'
                RETURNING \(Self.columns)
                """, [.integer(p.transient ? 1 : 0), Self.t(p.retryAt), .text(p.error), Self.t(p.now), .integer(p.id), .integer(p.token),
                      p.result.map { .text(Self.json($0)) } ?? .null])
            return try rows.first.map { (r) throws(SluiceError) in try Self.job(r) }
        }
    }

    public func cancelJob(_ p: JobCancelParams) async throws(SluiceError) -> Job? {
        try await run { c throws(SluiceError) in
            let rows = try c.query("""
                UPDATE sluice_jobs SET state = 'cancelled', lease_token = lease_token + 1, worker = NULL, lease_expires_at = NULL,
                    finished_at = ?1
                WHERE id = ?2 AND state IN ('queued', 'processing')
                RETURNING \(Self.columns)
                """, [Self.t(p.now), .integer(p.id)])
            return try rows.first.map { (r) throws(SluiceError) in try Self.job(r) }
        }
    }

    public func retryJob(_ p: JobRetryParams) async throws(SluiceError) -> Job? {
        try await run { c throws(SluiceError) in
            let rows = try c.query("""
                UPDATE sluice_jobs SET state = 'queued', attempts = 0, rescues = 0, run_after = ?1, error = NULL, result = NULL, finished_at = NULL,
                    progress_bytes = 0, progress_rows = 0
                WHERE id = ?2 AND state IN ('error', 'cancelled')
                RETURNING \(Self.columns)
                """, [Self.t(p.now), .integer(p.id)])
            return try rows.first.map { (r) throws(SluiceError) in try Self.job(r) }
        }
    }

    public func rescueExpired(_ p: JobRescueParams) async throws(SluiceError) -> Int {
        var total = 0
        var cursor: Int64 = 0
        // Keyset batches keep each write transaction short.
        while true {
            let after = cursor
            let ids: [Int64] = try await run { c throws(SluiceError) in
                try c.query("""
                    UPDATE sluice_jobs
                    SET state = CASE WHEN rescues + 1 < ?4 THEN 'queued' ELSE 'error' END,
                        attempts = max(attempts - 1, 0), rescues = rescues + 1,
                        lease_token = lease_token + 1, run_after = ?1,
                        error = 'lease expired: worker ' || coalesce(worker, '?') || ' stopped heartbeating (rescue ' || (rescues + 1) || ' of ' || ?4 || ')',
                        finished_at = CASE WHEN rescues + 1 < ?4 THEN NULL ELSE ?1 END,
                        worker = NULL, lease_expires_at = NULL
                    WHERE id IN (SELECT id FROM sluice_jobs WHERE state = 'processing' AND lease_expires_at < ?1 AND id > ?2
                                 ORDER BY id LIMIT ?3)
                    RETURNING id
                    """, [Self.t(p.now), .integer(after), .integer(Int64(p.batchSize)), .integer(Int64(p.maxRescues))]).compactMap { $0.first?.int }
            }
            total += ids.count
            guard ids.count == p.batchSize, let last = ids.max() else { return total }
            cursor = last
        }
    }

    public func insertUpload(_ u: Upload) async throws(SluiceError) {
        try await run { c throws(SluiceError) in
            _ = try c.query("INSERT INTO sluice_uploads (id, path, size, sha256, original_name, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            [.text(u.id), .text(u.path), .integer(u.size), .text(u.sha256), u.originalName.map { .text($0) } ?? .null, Self.t(u.createdAt)])
        }
    }

    public func upload(id: String) async throws(SluiceError) -> Upload? {
        try await run { c throws(SluiceError) in
            guard let r = try c.query("SELECT id, path, size, sha256, original_name, created_at FROM sluice_uploads WHERE id = ?1", [.text(id)]).first,
                  let uid = r[0].string, let path = r[1].string, let size = r[2].int, let sha = r[3].string else { return nil }
            return Upload(id: uid, path: path, size: size, sha256: sha, originalName: r[4].string, createdAt: Self.date(r[5]) ?? Date())
        }
    }

    public func uploads(after: String?, limit: Int) async throws(SluiceError) -> [Upload] {
        try await run { c throws(SluiceError) in
            try c.query("SELECT id, path, size, sha256, original_name, created_at FROM sluice_uploads WHERE id > ?1 ORDER BY id LIMIT ?2",
                        [.text(after ?? ""), .integer(Int64(limit))]).compactMap { r in
                guard let uid = r[0].string, let path = r[1].string, let size = r[2].int, let sha = r[3].string else { return nil }
                return Upload(id: uid, path: path, size: size, sha256: sha, originalName: r[4].string, createdAt: Self.date(r[5]) ?? Date())
            }
        }
    }

    public func deleteUploads(ids: [String]) async throws(SluiceError) {
        try await run { c throws(SluiceError) in
            for id in ids { _ = try c.query("DELETE FROM sluice_uploads WHERE id = ?1", [.text(id)]) }
        }
    }

    public func watchedFiles(watch: String, keys: [String]?) async throws(SluiceError) -> [WatchedFile] {
        try await run { c throws(SluiceError) in
            var sql = "SELECT watch, key, etag, size, last_modified, state, first_seen, job_id, error, batch FROM sluice_watched_files WHERE watch = ?1"
            var binds: [SQLiteValue] = [.text(watch)]
            if let keys {
                let json = String(decoding: (try? JSONEncoder().encode(keys)) ?? Data("[]".utf8), as: UTF8.self)
                sql += " AND key IN (SELECT value FROM json_each(?2))"
                binds.append(.text(json))
            }
            return try c.query(sql + " ORDER BY key, first_seen", binds).map { r in
                WatchedFile(watch: r[0].string ?? "", key: r[1].string ?? "", etag: r[2].string ?? "", size: r[3].int ?? 0,
                            lastModified: Self.date(r[4]) ?? Date(timeIntervalSince1970: 0),
                            state: WatchedFileState(rawValue: r[5].string ?? "") ?? .seen, firstSeen: Self.date(r[6]) ?? Date(timeIntervalSince1970: 0),
                            jobID: r[7].int, error: r[8].string, batch: r[9].string)
            }
        }
    }

    public func recordWatchedFiles(_ files: [WatchedFile]) async throws(SluiceError) {
        if files.isEmpty { return }
        try await run { c throws(SluiceError) in
            let st = try c.prepare("""
                INSERT INTO sluice_watched_files (watch, key, etag, size, last_modified, state, first_seen, job_id, error, batch)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                ON CONFLICT (watch, key, etag) DO UPDATE SET size = excluded.size, last_modified = excluded.last_modified,
                  state = excluded.state, job_id = excluded.job_id, error = excluded.error,
                  batch = coalesce(sluice_watched_files.batch, excluded.batch)
                """)
            try c.execute("BEGIN IMMEDIATE")
            do throws(SluiceError) {
                for f in files {
                    let values: [SQLiteValue] = [.text(f.watch), .text(f.key), .text(f.etag), .integer(f.size), Self.t(f.lastModified), .text(f.state.rawValue),
                                                 Self.t(f.firstSeen), f.jobID.map { .integer($0) } ?? .null, f.error.map { .text($0) } ?? .null,
                                                 f.batch.map { .text($0) } ?? .null]
                    for (i, v) in values.enumerated() { st.bind(i + 1, v) }
                    try st.step()
                }
                try c.execute("COMMIT")
            } catch {
                try? c.execute("ROLLBACK")  // the insert's error is what matters
                throw error
            }
        }
    }

    public func watermark(watch: String) async throws(SluiceError) -> Date? {
        try await run { c throws(SluiceError) in
            Self.date(try c.query("SELECT max(last_modified) FROM sluice_watched_files WHERE watch = ?1 AND state = 'queued'", [.text(watch)]).first?.first ?? .null)
        }
    }

    public func oldestWaiting(watch: String) async throws(SluiceError) -> Date? {
        try await run { c throws(SluiceError) in
            Self.date(try c.query("SELECT min(last_modified) FROM sluice_watched_files WHERE watch = ?1 AND state = 'seen'", [.text(watch)]).first?.first ?? .null)
        }
    }

    public func cachedAnswers(namespace: String, keys: [String], now: Date) async throws(SluiceError) -> [String: String] {
        try await run { c throws(SluiceError) in
            let json = String(decoding: (try? JSONEncoder().encode(keys)) ?? Data("[]".utf8), as: UTF8.self)
            var out: [String: String] = [:]
            for r in try c.query("SELECT key, value FROM sluice_enrich_cache WHERE namespace = ?1 AND expires_at > ?3 AND key IN (SELECT value FROM json_each(?2))",
                                 [.text(namespace), .text(json), Self.t(now)]) {
                if let k = r[0].string, let v = r[1].string { out[k] = v }
            }
            return out
        }
    }

    public func cacheAnswers(namespace: String, entries: [String: String], expiresAt: Date) async throws(SluiceError) {
        try await run { c throws(SluiceError) in
            try c.execute("BEGIN IMMEDIATE")
            do throws(SluiceError) {
                let st = try c.prepare("INSERT INTO sluice_enrich_cache (namespace, key, value, expires_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at")
                for (k, v) in entries {
                    st.bind(1, .text(namespace))
                    st.bind(2, .text(k))
                    st.bind(3, .text(v))
                    st.bind(4, Self.t(expiresAt))
                    _ = try st.step()
                }
                try c.execute("COMMIT")
            } catch {
                try? c.execute("ROLLBACK")
                throw error
            }
        }
    }

    public func claimLookups(namespace: String, keys: [String], holder: String, until: Date, now: Date) async throws(SluiceError) -> Set<String> {
        try await run { c throws(SluiceError) in
            let json = String(decoding: (try? JSONEncoder().encode(keys)) ?? Data("[]".utf8), as: UTF8.self)
            let rows = try c.query("""
                INSERT INTO sluice_enrich_claims (namespace, key, holder, expires_at) SELECT ?1, j.value, ?3, ?4 FROM json_each(?2) j
                WHERE NOT EXISTS (SELECT 1 FROM sluice_enrich_cache e WHERE e.namespace = ?1 AND e.key = j.value AND e.expires_at > ?5)
                ON CONFLICT (namespace, key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                WHERE sluice_enrich_claims.holder = excluded.holder OR sluice_enrich_claims.expires_at <= ?5
                RETURNING key
                """, [.text(namespace), .text(json), .text(holder), Self.t(until), Self.t(now)])
            return Set(rows.compactMap { $0[0].string })
        }
    }

    public func releaseLookups(namespace: String, keys: [String], holder: String) async throws(SluiceError) {
        try await run { c throws(SluiceError) in
            let json = String(decoding: (try? JSONEncoder().encode(keys)) ?? Data("[]".utf8), as: UTF8.self)
            _ = try c.query("DELETE FROM sluice_enrich_claims WHERE namespace = ?1 AND holder = ?3 AND key IN (SELECT value FROM json_each(?2))",
                            [.text(namespace), .text(json), .text(holder)])
        }
    }

    public func takeTokens(bucket: String, rate: Double, burst: Double, count: Int, now: Date?) async throws(SluiceError) -> (granted: Int, wait: Double) {
        try await run { c throws(SluiceError) in
            try c.execute("BEGIN IMMEDIATE")
            do throws(SluiceError) {
                var t = (now ?? Date()).timeIntervalSince1970  // nil: now, with the write lock held
                let row = try c.query("SELECT tokens, updated_at FROM sluice_rate_limits WHERE name = ?1", [.text(bucket)]).first
                var tokens = burst
                if let row, case .real(let have) = row[0], case .real(let at) = row[1] {
                    // A taker whose `now` is older than the last take's (it waited for the lock)
                    // refills nothing and leaves the clock where it was: no second counts twice.
                    tokens = min(burst, have + max(0, t - at) * rate)
                    t = max(t, at)
                }
                let granted = min(count, Int(tokens.rounded(.down)))
                let wait = granted > 0 ? 0 : (1 - tokens) / rate
                tokens -= Double(granted)
                _ = try c.query("INSERT INTO sluice_rate_limits (name, tokens, updated_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at",
                                [.text(bucket), .real(tokens), .real(t)])
                try c.execute("COMMIT")
                return (granted, wait)
            } catch {
                try? c.execute("ROLLBACK")
                throw error
            }
        }
    }

    // MARK: Stage hand-offs

    public func handOff(_ p: StageHandOffParams) async throws(SluiceError) -> Bool {
        try await run { c throws(SluiceError) in
            try c.execute("BEGIN IMMEDIATE")
            do throws(SluiceError) {
                _ = try c.query("INSERT INTO sluice_handoff_batches (key, run_id, payload) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO NOTHING",
                                [.text(p.key), .integer(p.job.spec.stage?.run ?? 0), .text(p.payload)])
                var job = p.job
                job.idempotencyKey = p.key
                let inserted = try !Self.insertJob(c, job).existing
                try c.execute("COMMIT")
                return inserted
            } catch {
                try? c.execute("ROLLBACK")
                throw error
            }
        }
    }

    public func stageBatch(key: String) async throws(SluiceError) -> String? {
        try await run { c throws(SluiceError) in
            try c.query("SELECT payload FROM sluice_handoff_batches WHERE key = ?1", [.text(key)]).first?.first?.string
        }
    }

    public func stageBacklog() async throws(SluiceError) -> [StageKind: Int] {
        try await run { c throws(SluiceError) in
            var out: [StageKind: Int] = [:]
            for r in try c.query("SELECT stage, count(*) FROM sluice_jobs WHERE stage IS NOT NULL AND state = 'queued' GROUP BY stage") {
                if let k = r[0].string.flatMap(StageKind.init(rawValue:)) { out[k] = Int(r[1].int ?? 0) }
            }
            return out
        }
    }

    public func deleteJobs(finishedBefore before: Date) async throws(SluiceError) -> Int {
        try await run { c throws(SluiceError) in
            _ = try c.query("DELETE FROM sluice_jobs WHERE state IN ('complete', 'cancelled', 'error') AND finished_at < ?1", [Self.t(before)])
            return Int(c.changes)
        }
    }

    public func jobCounts() async throws(SluiceError) -> [JobCount] {
        try await run { c throws(SluiceError) in
            // Grouped by the bare columns, the covering index is read in order (no sort); a
            // plain load (no stage) and a pipeline's load stage are then one kind.
            var counts: [JobCount] = []
            var at: [JobCount: Int] = [:]  // a group (its count 0) → its place in `counts`
            for r in try c.query("SELECT state, stage, entity, count(*) FROM sluice_jobs GROUP BY state, stage, entity") {
                guard let s = r[0].string.flatMap(JobState.init(rawValue:)) else { continue }
                let group = JobCount(state: s, kind: r[1].string ?? "load", entity: r[2].string ?? "", count: 0)
                let n = Int(r[3].int ?? 0)
                if let i = at[group] { counts[i].count += n } else {
                    at[group] = counts.count
                    counts.append(JobCount(state: s, kind: group.kind, entity: group.entity, count: n))
                }
            }
            return counts
        }
    }

    public func runJobCounts(run id: Int64) async throws(SluiceError) -> [StageJobCount] {
        try await run { c throws(SluiceError) in
            try c.query("SELECT stage, state, count(*) FROM sluice_jobs WHERE run_id = ?1 GROUP BY stage, state", [.integer(id)]).compactMap { r in
                guard let k = r[0].string.flatMap(StageKind.init(rawValue:)), let s = r[1].string.flatMap(JobState.init(rawValue:)) else { return nil }
                return StageJobCount(stage: k, state: s, count: Int(r[2].int ?? 0))
            }
        }
    }

    public func deleteStageBatches(run id: Int64) async throws(SluiceError) {
        try await run { c throws(SluiceError) in _ = try c.query("DELETE FROM sluice_handoff_batches WHERE run_id = ?1", [.integer(id)]) }
    }

    public func startRun(pipeline: String, scheduledFor: Date?, windowFrom: Date?, windowTo: Date?, upload: String?, now: Date) async throws(SluiceError) -> Int64 {
        try await run { c throws(SluiceError) in
            _ = try c.query("INSERT INTO sluice_runs (pipeline, state, scheduled_for, window_from, window_to, started_at, upload) VALUES (?1, 'running', ?2, ?3, ?4, ?5, ?6)",
                            [.text(pipeline), scheduledFor.map(Self.t) ?? .null, windowFrom.map(Self.t) ?? .null, windowTo.map(Self.t) ?? .null, Self.t(now),
                             upload.map { .text($0) } ?? .null])
            return try c.query("SELECT last_insert_rowid()").first?.first?.int ?? 0
        }
    }

    public func finishRun(id: Int64, state: PipelineRun.State, counts: String?, error: String?, now: Date) async throws(SluiceError) {
        try await run { c throws(SluiceError) in
            _ = try c.query("UPDATE sluice_runs SET state = ?2, counts = ?3, error = ?4, finished_at = ?5 WHERE id = ?1",
                            [.integer(id), .text(state.rawValue), counts.map { .text($0) } ?? .null, error.map { .text($0) } ?? .null, Self.t(now)])
            _ = try c.query("DELETE FROM sluice_leases WHERE name = ?1", [.text(RunLease.name(id))])
        }
    }

    public func runs(pipeline: String?, limit: Int) async throws(SluiceError) -> [PipelineRun] {
        try await run { c throws(SluiceError) in
            var sql = "SELECT id, pipeline, state, scheduled_for, window_from, window_to, started_at, finished_at, counts, error, upload FROM sluice_runs"
            var binds: [SQLiteValue] = [.integer(Int64(limit))]
            if let pipeline { sql += " WHERE pipeline = ?2"; binds.append(.text(pipeline)) }
            return try c.query(sql + " ORDER BY id DESC LIMIT ?1", binds).map { r in
                PipelineRun(id: r[0].int ?? 0, pipeline: r[1].string ?? "", state: PipelineRun.State(rawValue: r[2].string ?? "") ?? .failed,
                            scheduledFor: Self.date(r[3]), windowFrom: Self.date(r[4]), windowTo: Self.date(r[5]),
                            startedAt: Self.date(r[6]) ?? Date(timeIntervalSince1970: 0), finishedAt: Self.date(r[7]), counts: r[8].string, error: r[9].string, upload: r[10].string)
            }
        }
    }

    public func deleteRuns(ids: [Int64]) async throws(SluiceError) {
        try await run { c throws(SluiceError) in
            for id in ids { _ = try c.query("DELETE FROM sluice_runs WHERE id = ?1", [.integer(id)]) }
        }
    }

    // MARK: Leases

    /// The database's now in seconds since 1970 (the leases' clock).
    static let clock = "((julianday('now') - 2440587.5) * 86400.0)"

    public func acquireLease(name: String, holder: String, seconds: Double) async throws(SluiceError) -> Int64? {
        try await run { c throws(SluiceError) in
            try c.query("""
                INSERT INTO sluice_leases (name, holder, token, expires_at) VALUES (?1, ?2, 1, \(Self.clock) + ?3)
                ON CONFLICT (name) DO UPDATE SET
                  token = CASE WHEN holder = excluded.holder AND expires_at > \(Self.clock) THEN token ELSE token + 1 END,
                  holder = excluded.holder, expires_at = excluded.expires_at
                WHERE holder = excluded.holder OR expires_at <= \(Self.clock)
                RETURNING token
                """, [.text(name), .text(holder), .real(seconds)]).first?.first?.int
        }
    }

    public func releaseLease(name: String, holder: String) async throws(SluiceError) {
        try await run { c throws(SluiceError) in
            _ = try c.query("UPDATE sluice_leases SET expires_at = min(expires_at, \(Self.clock)) WHERE name = ?1 AND holder = ?2", [.text(name), .text(holder)])
        }
    }

    public func leases() async throws(SluiceError) -> [LeaseRecord] {
        try await run { c throws(SluiceError) in
            try c.query("SELECT name, holder, token, expires_at - \(Self.clock) FROM sluice_leases ORDER BY name", []).map { r in
                LeaseRecord(name: r[0].string ?? "", holder: r[1].string ?? "", token: r[2].int ?? 0, remaining: r[3].double ?? 0)
            }
        }
    }

    public func lastScheduledSuccess(pipeline: String) async throws(SluiceError) -> Date? {
        try await run { c throws(SluiceError) in
            Self.date(try c.query("SELECT max(scheduled_for) FROM sluice_runs WHERE pipeline = ?1 AND state = 'succeeded'", [.text(pipeline)]).first?.first ?? .null)
        }
    }

    public func loadedFile(entity: String, sha256: String) async throws(SluiceError) -> Int64? {
        try await run { c throws(SluiceError) in
            try c.query("SELECT job_id FROM sluice_loaded_files WHERE entity = ?1 AND sha256 = ?2", [.text(entity), .text(sha256)]).first?.first?.int
        }
    }

    public func ping() async throws(SluiceError) {
        try await run { c throws(SluiceError) in _ = try c.query("SELECT 1") }
    }
}
