public import SluiceCore
public import SluiceQueue
public import PostgresNIO
public import Foundation

/// The production control plane: jobs, uploads and the loaded-files ledger in schema
/// `sluice` of the target database, shared by any number of worker processes. Claims use
/// `FOR UPDATE SKIP LOCKED` in one `UPDATE ... RETURNING`; every state change is guarded by
/// the lease token; submissions `NOTIFY sluice_jobs` so idle workers wake at once.
public final class PostgresQueueDriver: QueueDriver, Sendable {
    public let db: PostgresPool
    public static let channel = "sluice_jobs"

    public init(db: PostgresPool) { self.db = db }

    /// This host's clock against the server's.
    let clock = ServerClock()

    /// Seconds to add to a time on this host's clock to have it on the server's (0 when they
    /// agree within a second; the last reading when the server cannot be asked).
    func skew() async -> Double {
        if let known = clock.current() { return known }
        let before = Date()
        do {
            let server = try await run("reading the server's clock") { conn in
                try await self.rows(conn, "SELECT extract(epoch FROM clock_timestamp())::float8", []).first?.decode(Double.self)
            }
            guard let server else { return clock.last }
            return clock.record(server: server, before: before, after: Date())
        } catch {
            return clock.last
        }
    }

    /// `d`, a time on this host's clock, on the server's.
    func onServer(_ d: Date) async -> Date { d.addingTimeInterval(await skew()) }

    /// `p` with its times at `keys` on the server's clock.
    func onServer<P>(_ p: P, _ keys: WritableKeyPath<P, Date>...) async -> P {
        let skew = await skew()
        var p = p
        for k in keys { p[keyPath: k] = p[keyPath: k].addingTimeInterval(skew) }
        return p
    }

    func run<T: Sendable>(_ what: String, _ body: @Sendable (PostgresConnection) async throws -> T) async throws(SluiceError) -> T {
        do {
            return try await db.client.withConnection { try await body($0) }
        } catch {
            throw PostgresPool.error(error, what)
        }
    }

    func rows(_ conn: PostgresConnection, _ sql: String, _ binds: [PGValue]) async throws -> [PostgresRow] {
        try await conn.query(PostgresPool.query(sql, binds), logger: db.logger).get().rows
    }

    // MARK: Schema

    /// Each migration is a list of statements (postgres-nio sends one statement per query).
    static let migrations: [(Int, [String])] = [
        (1, [
            """
            CREATE TABLE IF NOT EXISTS sluice.jobs (
            id bigserial PRIMARY KEY,
            entity text NOT NULL,
            state text NOT NULL,
            spec text NOT NULL,
            priority integer NOT NULL DEFAULT 0,
            attempts integer NOT NULL DEFAULT 0,
            max_attempts integer NOT NULL,
            lease_token bigint NOT NULL DEFAULT 0,
            worker text,
            lease_expires_at timestamptz,
            run_after timestamptz NOT NULL,
            idempotency_key text UNIQUE,
            created_at timestamptz NOT NULL,
            started_at timestamptz,
            finished_at timestamptz,
            progress_bytes bigint NOT NULL DEFAULT 0,
            progress_rows bigint NOT NULL DEFAULT 0,
            result text,
            error text
            )
            """,
            """
            CREATE INDEX IF NOT EXISTS jobs_claim ON sluice.jobs (priority DESC, id) WHERE state = 'queued'
            """,
            """
            CREATE INDEX IF NOT EXISTS jobs_lease ON sluice.jobs (lease_expires_at) WHERE state = 'processing'
            """,
            """
            CREATE INDEX IF NOT EXISTS jobs_entity ON sluice.jobs (entity, id)
            """,
            """
            CREATE TABLE IF NOT EXISTS sluice.uploads (
            id text PRIMARY KEY,
            path text NOT NULL,
            size bigint NOT NULL,
            sha256 text NOT NULL,
            original_name text,
            created_at timestamptz NOT NULL
            )
            """,
            """
            CREATE TABLE IF NOT EXISTS sluice.loaded_files (
            entity text NOT NULL,
            sha256 text NOT NULL,
            job_id bigint NOT NULL,
            loaded_at timestamptz NOT NULL,
            PRIMARY KEY (entity, sha256)
            )
            """,
        ]),
        (2, [
            """
            CREATE TABLE IF NOT EXISTS sluice.watched_files (
            watch text NOT NULL,
            key text NOT NULL,
            etag text NOT NULL,
            size bigint NOT NULL,
            last_modified timestamptz NOT NULL,
            state text NOT NULL,
            first_seen timestamptz NOT NULL,
            job_id bigint,
            error text,
            batch text,
            PRIMARY KEY (watch, key, etag)
            )
            """,
            "CREATE INDEX IF NOT EXISTS watched_files_mtime ON sluice.watched_files (watch, state, last_modified)",
        ]),
        (3, [
            """
            CREATE TABLE IF NOT EXISTS sluice.enrich_cache (
            namespace text NOT NULL,
            key text NOT NULL,
            value text NOT NULL,
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (namespace, key)
            )
            """,
            "CREATE TABLE IF NOT EXISTS sluice.rate_limits (name text PRIMARY KEY, tokens double precision NOT NULL, updated_at timestamptz NOT NULL)",
        ]),
        (4, [
            """
            CREATE TABLE IF NOT EXISTS sluice.runs (
            id bigserial PRIMARY KEY,
            pipeline text NOT NULL,
            state text NOT NULL,
            scheduled_for timestamptz,
            window_from timestamptz,
            window_to timestamptz,
            started_at timestamptz NOT NULL,
            finished_at timestamptz,
            counts text,
            error text
            )
            """,
            "CREATE INDEX IF NOT EXISTS runs_pipeline ON sluice.runs (pipeline, id)",
        ]),
        (5, [
            "ALTER TABLE sluice.jobs ADD COLUMN IF NOT EXISTS stage text",
            "ALTER TABLE sluice.jobs ADD COLUMN IF NOT EXISTS run_id bigint",
            "CREATE INDEX IF NOT EXISTS jobs_stage ON sluice.jobs (stage) WHERE state = 'queued' AND stage IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS jobs_run ON sluice.jobs (run_id, stage, state) WHERE run_id IS NOT NULL",
            "CREATE TABLE IF NOT EXISTS sluice.handoff_batches (key text PRIMARY KEY, run_id bigint NOT NULL, payload text NOT NULL)",
            "CREATE INDEX IF NOT EXISTS handoff_batches_run ON sluice.handoff_batches (run_id)",
        ]),
        (6, ["ALTER TABLE sluice.jobs ADD COLUMN IF NOT EXISTS rescues integer NOT NULL DEFAULT 0"]),
        (7, ["CREATE TABLE IF NOT EXISTS sluice.leases (name text PRIMARY KEY, holder text NOT NULL, token bigint NOT NULL, expires_at timestamptz NOT NULL)"]),
        (8, ["ALTER TABLE sluice.runs ADD COLUMN IF NOT EXISTS upload text"]),
        (9, ["CREATE TABLE IF NOT EXISTS sluice.enrich_claims (namespace text NOT NULL, key text NOT NULL, holder text NOT NULL, expires_at timestamptz NOT NULL, PRIMARY KEY (namespace, key))"]),
    ]

    /// Applies missing migrations under a transaction-scoped advisory lock, so processes
    /// starting together apply each migration exactly once.
    public func migrate() async throws(SluiceError) {
        let db = self.db
        try await run("migrating the control plane") { conn in
            try await db.exec("BEGIN", on: conn)
            do {
                try await db.exec("SELECT pg_advisory_xact_lock(7427466391)", on: conn)
                try await db.exec("CREATE SCHEMA IF NOT EXISTS sluice", on: conn)
                try await db.exec("CREATE TABLE IF NOT EXISTS sluice.schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())", on: conn)
                let current = try await self.rows(conn, "SELECT coalesce(max(version), 0) FROM sluice.schema_version", []).first?.decode(Int.self) ?? 0
                for (version, statements) in Self.migrations where version > current {
                    for sql in statements { try await db.exec(sql, on: conn) }
                    try await db.exec("INSERT INTO sluice.schema_version (version) VALUES ($1)", [.int(Int64(version))], on: conn)
                }
                try await db.exec("COMMIT", on: conn)
            } catch {
                _ = try? await db.exec("ROLLBACK", on: conn)  // the migration error is what matters
                throw error
            }
        }
    }

    // MARK: Rows

    static let columns = "id, entity, state, spec, priority, attempts, max_attempts, lease_token, worker, lease_expires_at, run_after, idempotency_key, created_at, started_at, finished_at, progress_bytes, progress_rows, result, error, rescues"

    static func job(_ row: PostgresRow) throws -> Job {
        let r = row.makeRandomAccess()
        let state = try r["state"].decode(String.self)
        guard let s = JobState(rawValue: state) else { throw SluiceError(.database, "unknown job state '\(state)'") }
        let decoder = JSONDecoder()
        let spec = try decoder.decode(JobSpec.self, from: Data(try r["spec"].decode(String.self).utf8))
        let result = try r["result"].decode(String?.self).flatMap { try? decoder.decode(JobResult.self, from: Data($0.utf8)) }
        return Job(id: try r["id"].decode(Int64.self), entity: try r["entity"].decode(String.self), state: s, spec: spec,
                   priority: try r["priority"].decode(Int.self), attempts: try r["attempts"].decode(Int.self),
                   maxAttempts: try r["max_attempts"].decode(Int.self), leaseToken: try r["lease_token"].decode(Int64.self),
                   worker: try r["worker"].decode(String?.self), leaseExpiresAt: try r["lease_expires_at"].decode(Date?.self),
                   runAfter: try r["run_after"].decode(Date.self), idempotencyKey: try r["idempotency_key"].decode(String?.self),
                   createdAt: try r["created_at"].decode(Date.self), startedAt: try r["started_at"].decode(Date?.self),
                   finishedAt: try r["finished_at"].decode(Date?.self),
                   progress: JobProgress(bytes: try r["progress_bytes"].decode(Int64.self), rows: try r["progress_rows"].decode(Int64.self)),
                   result: result, error: try r["error"].decode(String?.self), rescues: try r["rescues"].decode(Int.self))
    }

    static func json<T: Encodable>(_ v: T) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: e.encode(v), as: UTF8.self)) ?? "null"
    }

    static func after(_ d: Date, _ duration: Duration) -> Date {
        d.addingTimeInterval(Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    func notify(_ conn: PostgresConnection) async throws {
        try await db.exec("NOTIFY \(Self.channel)", on: conn)
    }

    // MARK: Queries

    public func insertJob(_ p: JobInsertParams) async throws(SluiceError) -> JobInsertResult {
        let p = await onServer(p, \.now)  // judged on the server's clock
        return try await run("inserting a job") { conn in try await self.insertJob(conn, p) }
    }

    func insertJob(_ conn: PostgresConnection, _ p: JobInsertParams) async throws -> JobInsertResult {
        // The insert wakes the listening workers in the same statement (one round trip, one
        // commit); nothing is sent when the key was taken.
        let inserted = try await rows(conn, """
            WITH j AS (
                INSERT INTO sluice.jobs (entity, state, spec, priority, max_attempts, run_after, idempotency_key, created_at, stage, run_id)
                VALUES ($1, 'queued', $2, $3, $4, $5, $6, $5, $7, $8)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING \(Self.columns))
            SELECT j.*, pg_notify('\(Self.channel)', '') FROM j
            """, [.text(p.entity), .text(Self.json(p.spec)), .int(Int64(p.priority)), .int(Int64(p.maxAttempts)), .date(p.now),
                  p.idempotencyKey.map { .text($0) } ?? .null, p.spec.stage.map { .text($0.kind.rawValue) } ?? .null,
                  p.spec.stage.map { .int($0.run) } ?? .null])
        if let row = inserted.first {
            return JobInsertResult(job: try Self.job(row), existing: false)
        }
        guard let key = p.idempotencyKey,
              let row = try await rows(conn, "SELECT \(Self.columns) FROM sluice.jobs WHERE idempotency_key = $1", [.text(key)]).first else {
            throw SluiceError(.database, "job insert returned nothing")
        }
        return JobInsertResult(job: try Self.job(row), existing: true)
    }

    public func job(id: Int64) async throws(SluiceError) -> Job? {
        try await run("reading a job") { conn in
            try await self.rows(conn, "SELECT \(Self.columns) FROM sluice.jobs WHERE id = $1", [.int(id)]).first.map(Self.job)
        }
    }

    public func job(idempotencyKey: String) async throws(SluiceError) -> Job? {
        try await run("reading a job") { conn in
            try await self.rows(conn, "SELECT \(Self.columns) FROM sluice.jobs WHERE idempotency_key = $1", [.text(idempotencyKey)]).first.map(Self.job)
        }
    }

    public func listJobs(_ p: JobListParams) async throws(SluiceError) -> [Job] {
        try await run("listing jobs") { conn in
            try await self.rows(conn, """
                SELECT \(Self.columns) FROM sluice.jobs
                WHERE id \(p.keyset.comparison) $1 AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR entity = $3) AND ($5::bigint IS NULL OR run_id = $5)
                ORDER BY id \(p.keyset.order) LIMIT $4
                """, [.int(p.keyset.bound), p.state.map { .text($0.rawValue) } ?? .null, p.entity.map { .text($0) } ?? .null,
                      .int(Int64(max(1, min(p.limit, 1000)))), p.run.map { .int($0) } ?? .null]).map(Self.job)
        }
    }

    public func claimJobs(_ p: JobClaimParams) async throws(SluiceError) -> [Job] {
        let p = await onServer(p, \.now)  // judged on the server's clock
        if p.limit <= 0 { return [] }
        return try await run("claiming jobs") { conn in
            try await self.rows(conn, """
                UPDATE sluice.jobs j
                SET state = 'processing', lease_token = j.lease_token + 1, attempts = j.attempts + 1, worker = $1,
                    lease_expires_at = $2, started_at = coalesce(j.started_at, $3)
                FROM (SELECT id FROM sluice.jobs WHERE state = 'queued' AND run_after <= $3 AND ($5::text[] IS NULL OR stage = ANY($5) OR ($6 AND stage IS NULL))
                      ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED) c
                WHERE j.id = c.id
                RETURNING \(Self.columns.split(separator: ",").map { "j." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", "))
                """, [.text(p.worker), .date(Self.after(p.now, p.leaseDuration)), .date(p.now), .int(Int64(p.limit)),
                      p.stages.map { .texts($0.map(\.rawValue)) } ?? .null, .bool(p.plainJobs)])
                .map(Self.job).sorted { ($0.priority, -$0.id) > ($1.priority, -$1.id) }
        }
    }

    public func heartbeat(_ p: JobHeartbeatParams) async throws(SluiceError) -> LeaseStatus {
        let p = await onServer(p, \.now)  // judged on the server's clock
        return try await run("heartbeat") { conn in
            let n = try await self.db.exec("UPDATE sluice.jobs SET lease_expires_at = $1 WHERE id = $2 AND lease_token = $3 AND state = 'processing'",
                                           [.date(Self.after(p.now, p.leaseDuration)), .int(p.id), .int(p.token)], on: conn)
            if n == 1 { return .held }
            let state = try await self.rows(conn, "SELECT state FROM sluice.jobs WHERE id = $1", [.int(p.id)]).first?.decode(String.self)
            return state == JobState.cancelled.rawValue ? .cancelled : .lost
        }
    }

    public func setProgress(_ p: JobProgressParams) async throws(SluiceError) {
        try await run("recording progress") { conn in
            try await self.db.exec("UPDATE sluice.jobs SET progress_bytes = $1, progress_rows = $2 WHERE id = $3 AND lease_token = $4 AND state = 'processing'",
                                   [.int(p.progress.bytes), .int(p.progress.rows), .int(p.id), .int(p.token)], on: conn)
        }
    }

    /// The guarded completion, also run inside a load's own transaction (``PostgresFence``).
    /// `refuseDuplicate`: see the SQLite driver's (the same bytes loaded meanwhile throw).
    public static func complete(_ conn: PostgresConnection, db: PostgresPool, id: Int64, token: Int64, result: JobResult,
                                entity: String?, now: Date, refuseDuplicate: Bool = false) async throws -> Bool {
        let n = try await db.exec("""
            UPDATE sluice.jobs SET state = 'complete', result = $1, finished_at = $2, worker = NULL, lease_expires_at = NULL, error = NULL,
                progress_rows = $5, progress_bytes = $6
            WHERE id = $3 AND lease_token = $4 AND state = 'processing'
            """, [.text(json(result)), .date(now), .int(id), .int(token), .int(result.stats.read), .int(result.stats.bytes)], on: conn)
        guard n == 1 else { return false }
        if let entity, let sha = result.sha256, result.duplicateOf == nil {
            let added = try await db.exec("INSERT INTO sluice.loaded_files (entity, sha256, job_id, loaded_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                                          [.text(entity), .text(sha), .int(id), .date(now)], on: conn)
            if refuseDuplicate && added == 0 { throw QueueErrors.loadedMeanwhile(entity: entity) }
        }
        return true
    }

    /// One statement for the jobs whose completion writes no loaded-files row (no entity or no
    /// digest); the others each as ``completeJob(_:)`` does, in the same transaction.
    public func completeJobs(_ ps: [JobCompleteParams]) async throws(SluiceError) -> [Bool] {
        if ps.isEmpty { return [] }
        let skew = await skew()
        let db = self.db
        return try await run("completing jobs") { conn in
            try await db.exec("BEGIN", [], on: conn)
            do {
                // A digest with an entity joins the loaded-files ledger: those go one by one.
                func ledgered(_ p: JobCompleteParams) -> Bool { p.entity != nil && p.result.sha256 != nil }
                let plain = ps.filter { !ledgered($0) }
                let rows = try await self.rows(conn, """
                    UPDATE sluice.jobs j SET state = 'complete', result = c.result, finished_at = c.finished, worker = NULL,
                        lease_expires_at = NULL, error = NULL, progress_rows = c.read, progress_bytes = c.bytes
                    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::timestamptz[], $5::bigint[], $6::bigint[])
                        AS c(id, token, result, finished, read, bytes)
                    WHERE j.id = c.id AND j.lease_token = c.token AND j.state = 'processing'
                    RETURNING j.id
                    """, [.ints(plain.map(\.id)), .ints(plain.map(\.token)), .texts(plain.map { Self.json($0.result) }),
                          .dates(plain.map { $0.now.addingTimeInterval(skew) }),
                          .ints(plain.map(\.result.stats.read)), .ints(plain.map(\.result.stats.bytes))])
                let completed = Set(try rows.map { try $0.decode(Int64.self) })
                var done = ps.map { !ledgered($0) && completed.contains($0.id) }
                for (i, p) in ps.enumerated() where ledgered(p) {
                    done[i] = try await Self.complete(conn, db: db, id: p.id, token: p.token, result: p.result, entity: p.entity, now: p.now.addingTimeInterval(skew))
                }
                try await db.exec("COMMIT", [], on: conn)
                return done
            } catch {
                _ = try? await db.exec("ROLLBACK", [], on: conn)
                throw error
            }
        }
    }

    public func completeJob(_ p: JobCompleteParams) async throws(SluiceError) -> Bool {
        let p = await onServer(p, \.now)  // judged on the server's clock
        let db = self.db
        return try await run("completing a job") { conn in
            try await Self.complete(conn, db: db, id: p.id, token: p.token, result: p.result, entity: p.entity, now: p.now)
        }
    }

    public func failJob(_ p: JobFailParams) async throws(SluiceError) -> Job? {
        let p = await onServer(p, \.now, \.retryAt)  // judged on the server's clock
        return try await run("recording a failure") { conn in
            let rows = try await self.rows(conn, """
                UPDATE sluice.jobs
                SET state = CASE WHEN $1 AND attempts < max_attempts THEN 'queued' ELSE 'error' END,
                    run_after = $2, worker = NULL, lease_expires_at = NULL, error = $3, result = $7,
                    finished_at = CASE WHEN $1 AND attempts < max_attempts THEN NULL ELSE $4 END
                WHERE id = $5 AND lease_token = $6 AND state = 'processing'
                RETURNING \(Self.columns)
                """, [.bool(p.transient), .date(p.retryAt), .text(p.error), .date(p.now), .int(p.id), .int(p.token),
                      p.result.map { .text(Self.json($0)) } ?? .null])
            return try rows.first.map(Self.job)
        }
    }

    public func cancelJob(_ p: JobCancelParams) async throws(SluiceError) -> Job? {
        let p = await onServer(p, \.now)  // judged on the server's clock
        return try await run("cancelling a job") { conn in
            try await self.rows(conn, """
                UPDATE sluice.jobs SET state = 'cancelled', lease_token = lease_token + 1, worker = NULL, lease_expires_at = NULL,
                    finished_at = $1
                WHERE id = $2 AND state IN ('queued', 'processing')
                RETURNING \(Self.columns)
                """, [.date(p.now), .int(p.id)]).first.map(Self.job)
        }
    }

    public func retryJob(_ p: JobRetryParams) async throws(SluiceError) -> Job? {
        let p = await onServer(p, \.now)  // judged on the server's clock
        return try await run("retrying a job") { conn in
            let job = try await self.rows(conn, """
                UPDATE sluice.jobs SET state = 'queued', attempts = 0, rescues = 0, run_after = $1, error = NULL, result = NULL, finished_at = NULL,
                    progress_bytes = 0, progress_rows = 0
                WHERE id = $2 AND state IN ('error', 'cancelled')
                RETURNING \(Self.columns)
                """, [.date(p.now), .int(p.id)]).first.map(Self.job)
            if job != nil { try await self.notify(conn) }
            return job
        }
    }

    public func rescueExpired(_ p: JobRescueParams) async throws(SluiceError) -> Int {
        let p = await onServer(p, \.now)  // judged on the server's clock
        var total = 0
        var cursor: Int64 = 0
        // Keyset batches keep each statement short; SKIP LOCKED leaves rows another rescuer holds.
        while true {
            let after = cursor
            let ids: [Int64] = try await run("rescuing expired leases") { conn in
                try await self.rows(conn, """
                    UPDATE sluice.jobs j
                    SET state = CASE WHEN j.rescues + 1 < $4 THEN 'queued' ELSE 'error' END,
                        attempts = greatest(j.attempts - 1, 0), rescues = j.rescues + 1,
                        lease_token = j.lease_token + 1, run_after = $1,
                        error = 'lease expired: worker ' || coalesce(j.worker, '?') || ' stopped heartbeating (rescue ' || (j.rescues + 1) || ' of ' || $4::int || ')',
                        finished_at = CASE WHEN j.rescues + 1 < $4 THEN NULL ELSE $1 END,
                        worker = NULL, lease_expires_at = NULL
                    FROM (SELECT id FROM sluice.jobs WHERE state = 'processing' AND lease_expires_at < $1 AND id > $2
                          ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) c
                    WHERE j.id = c.id
                    RETURNING j.id
                    """, [.date(p.now), .int(after), .int(Int64(p.batchSize)), .int(Int64(p.maxRescues))]).map { try $0.decode(Int64.self) }
            }
            total += ids.count
            if !ids.isEmpty { try await run("notifying workers") { try await self.notify($0) } }
            guard ids.count == p.batchSize, let last = ids.max() else { return total }
            cursor = last
        }
    }

    public func insertUpload(_ u: Upload) async throws(SluiceError) {
        try await run("recording an upload") { conn in
            try await self.db.exec("INSERT INTO sluice.uploads (id, path, size, sha256, original_name, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                                   [.text(u.id), .text(u.path), .int(u.size), .text(u.sha256), u.originalName.map { .text($0) } ?? .null, .date(u.createdAt)], on: conn)
        }
    }

    public func upload(id: String) async throws(SluiceError) -> Upload? {
        try await run("reading an upload") { conn in
            guard let row = try await self.rows(conn, "SELECT id, path, size, sha256, original_name, created_at FROM sluice.uploads WHERE id = $1", [.text(id)]).first else { return nil }
            let (uid, path, size, sha, name, created) = try row.decode((String, String, Int64, String, String?, Date).self)
            return Upload(id: uid, path: path, size: size, sha256: sha, originalName: name, createdAt: created)
        }
    }

    public func uploads(after: String?, limit: Int) async throws(SluiceError) -> [Upload] {
        try await run("reading uploads") { conn in
            try await self.rows(conn, "SELECT id, path, size, sha256, original_name, created_at FROM sluice.uploads WHERE id > $1 ORDER BY id LIMIT $2",
                                [.text(after ?? ""), .int(Int64(limit))]).map { row in
                let (uid, path, size, sha, name, created) = try row.decode((String, String, Int64, String, String?, Date).self)
                return Upload(id: uid, path: path, size: size, sha256: sha, originalName: name, createdAt: created)
            }
        }
    }

    public func deleteUploads(ids: [String]) async throws(SluiceError) {
        _ = try await run("forgetting uploads") { conn in
            try await self.db.exec("DELETE FROM sluice.uploads WHERE id = ANY($1)", [.texts(ids)], on: conn)
        }
    }

    public func watchedFiles(watch: String, keys: [String]?) async throws(SluiceError) -> [WatchedFile] {
        try await run("reading the file ledger") { conn in
            var sql = "SELECT watch, key, etag, size, last_modified, state, first_seen, job_id, error, batch FROM sluice.watched_files WHERE watch = $1"
            var binds: [PGValue] = [.text(watch)]
            if let keys {
                sql += " AND key = ANY($2::text[])"
                binds.append(.texts(keys))
            }
            return try await self.rows(conn, sql + " ORDER BY key, first_seen", binds).map { r in
                let (w, k, e, size, modified, state, first, job, error, batch) = try r.decode((String, String, String, Int64, Date, String, Date, Int64?, String?, String?).self)
                return WatchedFile(watch: w, key: k, etag: e, size: size, lastModified: modified, state: WatchedFileState(rawValue: state) ?? .seen,
                                   firstSeen: first, jobID: job, error: error, batch: batch)
            }
        }
    }

    public func recordWatchedFiles(_ files: [WatchedFile]) async throws(SluiceError) {
        if files.isEmpty { return }
        _ = try await run("recording watched files") { conn in
            try await self.db.exec("BEGIN", on: conn)
            do {
                for f in files { try await self.recordWatchedFile(f, on: conn) }
                try await self.db.exec("COMMIT", on: conn)
            } catch {
                _ = try? await self.db.exec("ROLLBACK", on: conn)  // the insert's error is what matters
                throw error
            }
        }
    }

    func recordWatchedFile(_ f: WatchedFile, on conn: PostgresConnection) async throws {
        try await self.db.exec("""
            INSERT INTO sluice.watched_files (watch, key, etag, size, last_modified, state, first_seen, job_id, error, batch)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (watch, key, etag) DO UPDATE SET size = excluded.size, last_modified = excluded.last_modified,
              state = excluded.state, job_id = excluded.job_id, error = excluded.error,
              batch = coalesce(sluice.watched_files.batch, excluded.batch)
            """, [.text(f.watch), .text(f.key), .text(f.etag), .int(f.size), .date(f.lastModified), .text(f.state.rawValue),
                  .date(f.firstSeen), f.jobID.map { .int($0) } ?? .null, f.error.map { .text($0) } ?? .null, f.batch.map { .text($0) } ?? .null], on: conn)
    }

    public func watermark(watch: String) async throws(SluiceError) -> Date? {
        try await run("reading a watermark") { conn in
            try await self.rows(conn, "SELECT max(last_modified) FROM sluice.watched_files WHERE watch = $1 AND state = 'queued'", [.text(watch)]).first?.decode(Date?.self)
        }
    }

    public func oldestWaiting(watch: String) async throws(SluiceError) -> Date? {
        try await run("reading a watch's waiting files") { conn in
            try await self.rows(conn, "SELECT min(last_modified) FROM sluice.watched_files WHERE watch = $1 AND state = 'seen'", [.text(watch)]).first?.decode(Date?.self)
        }
    }

    public func cachedAnswers(namespace: String, keys: [String], now: Date) async throws(SluiceError) -> [String: String] {
        let now = await onServer(now)
        return try await run("reading the enrich cache") { conn in
            var out: [String: String] = [:]
            for r in try await self.rows(conn, "SELECT key, value FROM sluice.enrich_cache WHERE namespace = $1 AND key = ANY($2::text[]) AND expires_at > $3",
                                         [.text(namespace), .texts(keys), .date(now)]) {
                let (k, v) = try r.decode((String, String).self)
                out[k] = v
            }
            return out
        }
    }

    public func cacheAnswers(namespace: String, entries: [String: String], expiresAt: Date) async throws(SluiceError) {
        let expiresAt = await onServer(expiresAt)
        let keys = Array(entries.keys), values = keys.map { entries[$0]! }
        _ = try await run("writing the enrich cache") { conn in
            try await self.db.exec("""
                INSERT INTO sluice.enrich_cache (namespace, key, value, expires_at) SELECT $1, k, v, $4 FROM unnest($2::text[], $3::text[]) AS u(k, v)
                ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
                """, [.text(namespace), .texts(keys), .texts(values), .date(expiresAt)], on: conn)
        }
    }

    public func claimLookups(namespace: String, keys: [String], holder: String, until: Date, now: Date) async throws(SluiceError) -> Set<String> {
        let (until, now) = (await onServer(until), await onServer(now))
        return try await run("claiming enrich lookups") { conn in
            Set(try await self.rows(conn, """
                INSERT INTO sluice.enrich_claims AS c (namespace, key, holder, expires_at) SELECT $1, k, $3, $4 FROM unnest($2::text[]) AS u(k)
                WHERE NOT EXISTS (SELECT 1 FROM sluice.enrich_cache e WHERE e.namespace = $1 AND e.key = u.k AND e.expires_at > $5) ORDER BY k
                ON CONFLICT (namespace, key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                WHERE c.holder = excluded.holder OR c.expires_at <= $5
                RETURNING key
                """, [.text(namespace), .texts(keys), .text(holder), .date(until), .date(now)]).map { try $0.decode(String.self) })
        }
    }

    public func releaseLookups(namespace: String, keys: [String], holder: String) async throws(SluiceError) {
        _ = try await run("releasing enrich lookups") { conn in
            try await self.db.exec("DELETE FROM sluice.enrich_claims WHERE namespace = $1 AND holder = $3 AND key = ANY($2::text[])",
                                   [.text(namespace), .texts(keys), .text(holder)], on: conn)
        }
    }

    public func takeTokens(bucket: String, rate: Double, burst: Double, count: Int, now: Date?) async throws(SluiceError) -> (granted: Int, wait: Double) {
        // nil: the server's clock once the bucket's row is locked.
        let now: PGValue = if let now { .date(await onServer(now)) } else { .null }
        return try await run("taking a rate-limit token") { conn in
            try await self.db.exec("INSERT INTO sluice.rate_limits (name, tokens, updated_at) VALUES ($1, $2, coalesce($3::timestamptz, clock_timestamp())) ON CONFLICT (name) DO NOTHING",
                                   [.text(bucket), .double(burst), now], on: conn)
            // One statement, row-locked: refill by the time since the last take, then take what there is.
            let rows = try await self.rows(conn, """
                WITH cur AS (SELECT least($3, tokens + greatest(0, extract(epoch FROM (coalesce($4::timestamptz, clock_timestamp()) - updated_at))) * $2) AS t,
                                    coalesce($4::timestamptz, clock_timestamp()) AS at
                             FROM sluice.rate_limits WHERE name = $1 FOR UPDATE)
                UPDATE sluice.rate_limits r SET tokens = cur.t - least($5, floor(cur.t)), updated_at = greatest(r.updated_at, cur.at)
                FROM cur WHERE r.name = $1 RETURNING cur.t::double precision
                """, [.text(bucket), .double(rate), .double(burst), now, .double(Double(count))])
            let had = try rows.first?.decode(Double.self) ?? 1
            let granted = min(count, Int(had.rounded(.down)))
            return (granted, granted > 0 ? 0 : (1 - had) / rate)
        }
    }

    // MARK: Stage hand-offs

    public func handOff(_ p: StageHandOffParams) async throws(SluiceError) -> Bool {
        let db = self.db
        return try await run("handing a batch to the next stage") { conn in
            try await db.exec("BEGIN", on: conn)
            do {
                try await db.exec("INSERT INTO sluice.handoff_batches (key, run_id, payload) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
                                  [.text(p.key), .int(p.job.spec.stage?.run ?? 0), .text(p.payload)], on: conn)
                var job = p.job
                job.idempotencyKey = p.key
                let inserted = try await !self.insertJob(conn, job).existing
                try await db.exec("COMMIT", on: conn)
                return inserted
            } catch {
                _ = try? await db.exec("ROLLBACK", on: conn)  // the first error is what matters
                throw error
            }
        }
    }

    public func stageBatch(key: String) async throws(SluiceError) -> String? {
        try await run("reading a stage batch") { conn in
            try await self.rows(conn, "SELECT payload FROM sluice.handoff_batches WHERE key = $1", [.text(key)]).first?.decode(String.self)
        }
    }

    public func stageBacklog() async throws(SluiceError) -> [StageKind: Int] {
        try await run("reading the stage backlog") { conn in
            var out: [StageKind: Int] = [:]
            for r in try await self.rows(conn, "SELECT stage, count(*) FROM sluice.jobs WHERE stage IS NOT NULL AND state = 'queued' GROUP BY stage", []) {
                let (k, n) = try r.decode((String, Int64).self)
                if let kind = StageKind(rawValue: k) { out[kind] = Int(n) }
            }
            return out
        }
    }

    public func deleteJobs(finishedBefore before: Date) async throws(SluiceError) -> Int {
        try await run("forgetting finished jobs") { conn in
            Int(try await self.db.exec("DELETE FROM sluice.jobs WHERE state IN ('complete', 'cancelled', 'error') AND finished_at < $1", [.date(before)], on: conn))
        }
    }

    public func jobCounts() async throws(SluiceError) -> [JobCount] {
        try await run("counting jobs") { conn in
            try await self.rows(conn, "SELECT state, coalesce(stage, 'load'), entity, count(*) FROM sluice.jobs GROUP BY 1, 2, 3", []).compactMap { r in
                let (s, k, e, n) = try r.decode((String, String, String, Int64).self)
                guard let state = JobState(rawValue: s) else { return nil }
                return JobCount(state: state, kind: k, entity: e, count: Int(n))
            }
        }
    }

    public func runJobCounts(run id: Int64) async throws(SluiceError) -> [StageJobCount] {
        try await run("reading a run's jobs") { conn in
            try await self.rows(conn, "SELECT stage, state, count(*) FROM sluice.jobs WHERE run_id = $1 GROUP BY stage, state", [.int(id)]).compactMap { r in
                let (k, s, n) = try r.decode((String, String, Int64).self)
                guard let kind = StageKind(rawValue: k), let state = JobState(rawValue: s) else { return nil }
                return StageJobCount(stage: kind, state: state, count: Int(n))
            }
        }
    }

    public func deleteStageBatches(run id: Int64) async throws(SluiceError) {
        _ = try await run("dropping a run's batches") { conn in
            try await self.db.exec("DELETE FROM sluice.handoff_batches WHERE run_id = $1", [.int(id)], on: conn)
        }
    }

    public func startRun(pipeline: String, scheduledFor: Date?, windowFrom: Date?, windowTo: Date?, upload: String?, now: Date) async throws(SluiceError) -> Int64 {
        try await run("recording a run") { conn in
            try await self.rows(conn, "INSERT INTO sluice.runs (pipeline, state, scheduled_for, window_from, window_to, started_at, upload) VALUES ($1, 'running', $2, $3, $4, $5, $6) RETURNING id",
                                [.text(pipeline), scheduledFor.map { .date($0) } ?? .null, windowFrom.map { .date($0) } ?? .null,
                                 windowTo.map { .date($0) } ?? .null, .date(now), upload.map { .text($0) } ?? .null]).first?.decode(Int64.self) ?? 0
        }
    }

    public func finishRun(id: Int64, state: PipelineRun.State, counts: String?, error: String?, now: Date) async throws(SluiceError) {
        _ = try await run("recording a run") { conn in
            try await self.db.exec("UPDATE sluice.runs SET state = $2, counts = $3, error = $4, finished_at = $5 WHERE id = $1",
                                   [.int(id), .text(state.rawValue), counts.map { .text($0) } ?? .null, error.map { .text($0) } ?? .null, .date(now)], on: conn)
            try await self.db.exec("DELETE FROM sluice.leases WHERE name = $1", [.text(RunLease.name(id))], on: conn)
        }
    }

    public func runs(pipeline: String?, limit: Int) async throws(SluiceError) -> [PipelineRun] {
        try await run("reading runs") { conn in
            var sql = "SELECT id, pipeline, state, scheduled_for, window_from, window_to, started_at, finished_at, counts, error, upload FROM sluice.runs"
            var binds: [PGValue] = [.int(Int64(limit))]
            if let pipeline { sql += " WHERE pipeline = $2"; binds.append(.text(pipeline)) }
            return try await self.rows(conn, sql + " ORDER BY id DESC LIMIT $1", binds).map { r in
                let (id, p, st, sched, from, to, started, finished, counts, error, upload) = try r.decode((Int64, String, String, Date?, Date?, Date?, Date, Date?, String?, String?, String?).self)
                return PipelineRun(id: id, pipeline: p, state: PipelineRun.State(rawValue: st) ?? .failed, scheduledFor: sched, windowFrom: from, windowTo: to,
                                   startedAt: started, finishedAt: finished, counts: counts, error: error, upload: upload)
            }
        }
    }

    public func deleteRuns(ids: [Int64]) async throws(SluiceError) {
        _ = try await run("forgetting runs") { conn in
            try await self.db.exec("DELETE FROM sluice.runs WHERE id = ANY($1)", [.ints(ids)], on: conn)
        }
    }

    // MARK: Leases (on the server's clock, clock_timestamp(), never a host's now)

    public func acquireLease(name: String, holder: String, seconds: Double) async throws(SluiceError) -> Int64? {
        try await run("taking a lease") { conn in
            try await self.rows(conn, """
                INSERT INTO sluice.leases AS l (name, holder, token, expires_at) VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3))
                ON CONFLICT (name) DO UPDATE SET
                  token = CASE WHEN l.holder = excluded.holder AND l.expires_at > clock_timestamp() THEN l.token ELSE l.token + 1 END,
                  holder = excluded.holder, expires_at = excluded.expires_at
                WHERE l.holder = excluded.holder OR l.expires_at <= clock_timestamp()
                RETURNING token
                """, [.text(name), .text(holder), .double(seconds)]).first?.decode(Int64.self)
        }
    }

    public func releaseLease(name: String, holder: String) async throws(SluiceError) {
        _ = try await run("releasing a lease") { conn in
            try await self.db.exec("UPDATE sluice.leases SET expires_at = least(expires_at, clock_timestamp()) WHERE name = $1 AND holder = $2",
                                   [.text(name), .text(holder)], on: conn)
        }
    }

    public func leases() async throws(SluiceError) -> [LeaseRecord] {
        try await run("reading leases") { conn in
            try await self.rows(conn, "SELECT name, holder, token, extract(epoch FROM expires_at - clock_timestamp())::float8 FROM sluice.leases ORDER BY name", [])
                .map { r in
                    let (name, holder, token, remaining) = try r.decode((String, String, Int64, Double).self)
                    return LeaseRecord(name: name, holder: holder, token: token, remaining: remaining)
                }
        }
    }

    public func lastScheduledSuccess(pipeline: String) async throws(SluiceError) -> Date? {
        try await run("reading runs") { conn in
            try await self.rows(conn, "SELECT max(scheduled_for) FROM sluice.runs WHERE pipeline = $1 AND state = 'succeeded'", [.text(pipeline)]).first?.decode(Date?.self)
        }
    }

    public func loadedFile(entity: String, sha256: String) async throws(SluiceError) -> Int64? {
        try await run("reading the loaded-files ledger") { conn in
            try await self.rows(conn, "SELECT job_id FROM sluice.loaded_files WHERE entity = $1 AND sha256 = $2", [.text(entity), .text(sha256)]).first?.decode(Int64.self)
        }
    }

    public func ping() async throws(SluiceError) {
        try await run("ping") { conn in try await self.db.exec("SELECT 1", on: conn) }
    }

    /// Pokes `wake` on every `NOTIFY sluice_jobs` until cancelled, reconnecting after failures.
    public func listen(_ wake: @escaping @Sendable () -> Void) async {
        while !Task.isCancelled {
            do {
                try await db.client.withConnection { conn in
                    try await conn.listen(on: Self.channel) { notifications in
                        for try await _ in notifications { wake() }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                db.logger.warning("LISTEN \(Self.channel) failed; polling until it is back", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
