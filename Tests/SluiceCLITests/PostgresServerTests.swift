import Testing
import Foundation

/// A PostgreSQL database for one test: a fresh database on the shared test cluster, or a
/// private cluster (for tests that restart the server).
struct TestPostgres {
    let url: String
    var privateData: String?

    /// Runs a command and returns its output. The output goes through a file, not a pipe:
    /// a server the command starts would inherit the pipe and never let it reach EOF.
    static func run(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let outPath = NSTemporaryDirectory() + "sluice-run-" + UUID().uuidString
        FileManager.default.createFile(atPath: outPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outPath) }
        let errPath = outPath + ".err"
        FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        p.standardOutput = FileHandle(forWritingAtPath: outPath)
        p.standardError = FileHandle(forWritingAtPath: errPath)
        try p.run()
        p.waitUntilExit()
        let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        guard p.terminationStatus == 0 else {
            let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            throw CLIError.failed(args.joined(separator: " ") + " exited \(p.terminationStatus): " + String((text + err).suffix(2000)))
        }
        return text
    }

    enum CLIError: Error { case failed(String), missing }

    static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// A fresh database on the cluster scripts/test.sh started.
    static func fresh() throws -> TestPostgres {
        guard let admin = ProcessInfo.processInfo.environment["SLUICE_TEST_POSTGRES_URL"], !admin.isEmpty else { throw CLIError.missing }
        let name = "sluice_cli_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        _ = try run(["psql", admin, "-qc", "CREATE DATABASE \(name)"])
        var c = URLComponents(string: admin)!
        c.path = "/" + name
        return TestPostgres(url: c.string!)
    }

    /// A cluster of its own (started by scripts/postgres.sh), for tests that restart it.
    static func privateCluster() throws -> TestPostgres {
        let text = try run([repoRoot + "/scripts/postgres.sh"])
        var env: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("export ") {
            let kv = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1)
            env[String(kv[0])] = String(kv[1])
        }
        return TestPostgres(url: env["SLUICE_TEST_POSTGRES_URL"]!, privateData: env["SLUICE_TEST_PGDATA"])
    }

    func stop() {
        if let data = privateData { _ = try? TestPostgres.run([TestPostgres.repoRoot + "/scripts/postgres.sh", "stop", data]) }
    }

    func restart() throws {
        guard let data = privateData else { return }
        _ = try TestPostgres.run([TestPostgres.repoRoot + "/scripts/postgres.sh", "restart", data])
    }

    func query(_ sql: String) throws -> String { try TestPostgres.run(["psql", url, "-qAtc", sql]) }
}

@Suite(.serialized) struct PostgresServerTests {
    /// PostgreSQL away when `sluice serve` starts: it listens anyway, healthy but not ready
    /// (saying why), and starts for real on the same port once the database answers.
    @Test func serveWaitsForPostgreSQLAndStartsWhenItAnswers() async throws {
        let pg = try TestPostgres.privateCluster()
        defer { pg.stop() }
        _ = try TestPostgres.run([TestPostgres.repoRoot + "/scripts/postgres.sh", "pause", pg.privateData!])
        let srv = try ServerProcess(database: pg.url)
        let (health, _) = try await srv.request("GET", "/healthz", auth: false)
        let (ready, why) = try await srv.request("GET", "/readyz", auth: false)
        #expect(health == 200 && ready == 503, "\(health) \(ready)")
        #expect(String(decoding: why, as: UTF8.self).contains("connection refused — is it running?"), "\(String(decoding: why, as: UTF8.self))")
        let (jobs, _) = try await srv.request("GET", "/jobs")
        #expect(jobs == 503)
        try pg.restart()
        var status = 0
        for _ in 0..<60 where status != 200 {
            try await Task.sleep(for: .milliseconds(500))
            status = (try? await srv.request("GET", "/readyz", auth: false).0) ?? 0
        }
        #expect(status == 200, "ready once PostgreSQL answers")
        let (after, _) = try await srv.request("GET", "/jobs")
        #expect(after == 200)
    }

    @Test func threeWorkerProcessesShareTheQueueAndLoadEachRowOnce() async throws {
        let pg = try TestPostgres.fresh()
        let srv = try ServerProcess(database: pg.url, noWorkers: true)
        for w in ["A", "B", "C"] { try srv.startWorker(w, concurrency: 2) }
        var ids: [Int] = []
        for k in 0..<100 {
            var csv = "id,valor,referencia,category\n"
            for i in 0..<1000 { csv += "\(k * 1000 + i),\(i).5,ref\(i),\(["A", "B", "C"][i % 3])\n" }
            let path = srv.cli.write("batch_\(k).csv", csv)
            let (s, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)"}"#)
            #expect(s == 202)
            ids.append(try #require(o["id"] as? Int))
        }
        var workers = Set<String>()
        var inserted = 0
        for id in ids {
            let done = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
            #expect(done["state"] as? String == "complete", "\(done)")
            inserted += stats(done)["inserted"] ?? 0
        }
        #expect(inserted == 100_000)
        #expect(try pg.query("SELECT count(*), count(DISTINCT id) FROM registros") == "100000|100000\n")
        for line in try pg.query("SELECT DISTINCT split_part(error, ' ', 1) FROM sluice.jobs WHERE error IS NOT NULL").split(separator: "\n") {
            Issue.record("a job recorded an error: \(line)")
        }
        // The work was shared: every worker process claimed some jobs (their logs say so).
        for w in ["A", "B", "C"] {
            let log = try String(contentsOfFile: srv.cli.dir + "/worker-\(w).log", encoding: .utf8)
            if log.contains("job complete") { workers.insert(w) }
        }
        #expect(workers.count == 3, "workers that completed jobs: \(workers)")
    }

    @Test func oneFileLoadedInChunksByTwoWorkersOneOfThemKilled() async throws {
        let pg = try TestPostgres.fresh()
        let srv = try ServerProcess(database: pg.url, noWorkers: true)
        // 600,000 lines: ids 0..<500,000 with "a", then ids 0..<100,000 again with "b" (later
        // chunks win); 1 MiB chunks, so a dozen or more for the two workers to share.
        var csv = "id,valor,referencia,category\n"
        csv.reserveCapacity(600_000 * 30)
        for i in 0..<500_000 { csv += "\(i),1.5,a,A\n" }
        for i in 0..<100_000 { csv += "\(i),2.5,b,B\n" }
        let path = srv.cli.write("big.csv", csv)
        let a = try srv.startWorker("A", concurrency: 1)
        try srv.startWorker("B", concurrency: 1)
        let (s, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)", "chunk_mb": 1}"#)
        #expect(s == 202)
        let id = try #require(o["id"] as? Int)
        // Kill worker A while it holds a chunk.
        let deadline = Date().addingTimeInterval(60)
        var killed = false
        while Date() < deadline && !killed {
            // One query per look: a chunk (not the parent job) that worker A is processing.
            let held = try pg.query("SELECT count(*) FROM sluice.jobs WHERE id <> \(id) AND state = 'processing' AND worker LIKE 'A%'")
            if (Int(held.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 0 {
                kill(a.processIdentifier, SIGKILL)
                killed = true
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(killed, "worker A never held a chunk mid-way")
        let done = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(done["state"] as? String == "complete", "\(done)")
        #expect(stats(done) == ["read": 600_000, "inserted": 500_000, "updated": 0, "deleted": 0, "rejected": 0, "skipped": 100_000])
        #expect(try pg.query("SELECT count(*), count(DISTINCT id), sum((referencia = 'b')::int) FROM registros") == "500000|500000|100000\n")
        #expect(try pg.query("SELECT count(*) FROM sluice.jobs WHERE spec LIKE '%\"parent\":\(id)%' AND state = 'complete'").trimmingCharacters(in: .whitespacesAndNewlines) != "0")
        // The shared stage is gone.
        #expect(try pg.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'sluice' AND tablename LIKE 'stage_%'") == "0\n")
    }

    @Test func quotedNewlinePastTheSampleFallsBackToAWholeLoad() async throws {
        let pg = try TestPostgres.fresh()
        let srv = try ServerProcess(database: pg.url)
        // Plain lines up to just under 1 MiB, then a field of 200 lines straddling the cut.
        var csv = "id,valor,referencia,category\n"
        var id = 0
        while csv.utf8.count < (1 << 20) - 500 { csv += "\(id),1.5,a,A\n"; id += 1 }
        csv += "\(id),2.5,\"" + (0..<200).map { "line \($0)" }.joined(separator: "\n") + "\",B\n"
        id += 1
        for _ in 0..<60_000 { csv += "\(id),1.5,a,A\n"; id += 1 }
        let path = srv.cli.write("multi.csv", csv)
        let (_, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)", "chunk_mb": 1}"#)
        let job = try #require(o["id"] as? Int)
        let done = try await srv.wait(job: job) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(done["state"] as? String == "complete", "\(done)")
        #expect(stats(done) == ["read": id, "inserted": id, "updated": 0, "deleted": 0, "rejected": 0, "skipped": 0])
        #expect(try pg.query("SELECT count(*), sum((referencia LIKE 'line 0%line 199')::int) FROM registros") == "\(id)|1\n")
        #expect(try pg.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'sluice' AND tablename LIKE 'stage_%'") == "0\n")
    }

    @Test func postgresRestartedMidLoadIsRetriedToExactCounts() async throws {
        let pg = try TestPostgres.privateCluster()
        defer { pg.stop() }
        let srv = try ServerProcess(database: pg.url)
        let rows = 600_000
        let path = srv.bigCSV("big.csv", rows: rows)
        let (_, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)"}"#)
        let id = try #require(o["id"] as? Int)
        _ = try await srv.wait(job: id) { ($0["state"] as? String) == "processing" && (($0["progress"] as? [String: Int])?["rows"] ?? 0) > 0 }
        try pg.restart()
        // The dead connection is noticed within seconds (it once stalled 60 s in COPY), and the
        // job is tried again.
        let restarted = Date()
        let retried = try await srv.wait(job: id) { ($0["attempts"] as? Int ?? 0) >= 2 || $0["state"] as? String == "complete" }
        #expect(Date().timeIntervalSince(restarted) < 20, "\(retried)")
        let done = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(done["state"] as? String == "complete", "\(done)")
        #expect((done["attempts"] as? Int ?? 0) >= 2)
        #expect(stats(done) == ["read": rows, "inserted": rows, "updated": 0, "deleted": 0, "rejected": 0, "skipped": 0])
        #expect(try pg.query("SELECT count(*), count(DISTINCT id) FROM registros") == "\(rows)|\(rows)\n")
    }
}
