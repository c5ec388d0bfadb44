import Testing
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A `sluice serve` process (and optional `sluice worker` processes) in a scratch folder,
/// talked to over real sockets.
final class ServerProcess: @unchecked Sendable {
    let cli: CLI
    var serve: Process?
    var workers: [String: Process] = [:]
    var port = 0
    let token = "test-token-123"
    var logPath: String { cli.dir + "/serve.log" }

    var env: [String: String] = [:]
    /// Started under `ulimit -n` of this many descriptors (soft and hard), when set.
    let fileLimit: Int?

    init(yaml: String = "", server: String = "", worker: String = "", database: String? = nil, noWorkers: Bool = false, env: [String: String] = [:],
         fileLimit: Int? = nil, leaseSeconds: Double = 2) throws {
        self.env = env
        self.fileLimit = fileLimit
        cli = try CLI()
        cli.write("sluice.yml", """
            \(database.map { "database: \($0)" } ?? "")
            server:
              tokens: [\(token)]
              bulk_upload_entity: registros
              file_roots: [.]
              \(server)
            worker:
              lease_seconds: \(leaseSeconds)
              poll_seconds: 0.2
              retry_base_seconds: 0.2
              \(worker)
            entities:
              registros:
                primary_key: [id]
            \(yaml)
            """)
        try start(noWorkers: noWorkers)
    }

    func start(noWorkers: Bool) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["serve", "--port", "0"] + (noWorkers ? ["--no-workers"] : [])
        if let fileLimit {
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "ulimit -n \(fileLimit) && exec \"$0\" \"$@\"", CLI.binary] + p.arguments!
        }
        if !env.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 } }
        p.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
        let out = Pipe()
        p.standardOutput = out
        FileManager.default.createFile(atPath: logPath, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: logPath)
        try p.run()
        serve = p
        // Wait for "sluice listening on http://127.0.0.1:PORT".
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { throw ServerError.failedToStart(try String(contentsOfFile: logPath, encoding: .utf8)) }
            line.append(d)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let r = text.range(of: "127.0.0.1:"), let p2 = Int(text[r.upperBound...].prefix { $0.isNumber }) else {
            throw ServerError.failedToStart(text)
        }
        port = p2
    }

    enum ServerError: Error { case failedToStart(String), timeout(String) }

    @discardableResult
    func startWorker(_ id: String, concurrency: Int = 1) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["worker", "--id", id, "--concurrency", String(concurrency)]
        if !env.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 } }
        p.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
        p.standardOutput = FileHandle.nullDevice
        let log = cli.dir + "/worker-\(id).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: log)
        try p.run()
        workers[id] = p
        return p
    }

    deinit {
        for p in workers.values where p.isRunning { p.terminate() }
        if let s = serve, s.isRunning {
            s.terminate()
            s.waitUntilExit()
        }
    }

    func request(_ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:], auth: Bool = true) async throws -> (Int, Data) {
        var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        r.httpMethod = method
        r.httpBody = body
        if auth { r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (k, v) in headers { r.setValue(v, forHTTPHeaderField: k) }
        let (data, resp) = try await URLSession.shared.data(for: r)
        return ((resp as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    func json(_ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]) async throws -> (Int, [String: Any]) {
        let (s, d) = try await request(method, path, body: body.map { Data($0.utf8) }, headers: headers)
        return (s, (try? JSONSerialization.jsonObject(with: d)) as? [String: Any] ?? [:])
    }

    /// Polls a job until `done` holds (or 90 s pass).
    func wait(job id: Int, until done: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(90)
        var failures = 0
        while Date() < deadline {
            // A poll the loaded machine drops (a reset connection) is asked again, a few times.
            let o: [String: Any]
            do {
                o = try await json("GET", "/registros/_bulk/status/\(id)").1
            } catch {
                failures += 1
                if failures > 5 { throw error }
                try await Task.sleep(for: .milliseconds(200))
                continue
            }
            if done(o) { return o }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ServerError.timeout("job \(id) never reached the expected state")
    }

    /// The newest run of `pipeline` once it is no longer running (or after 10 s).
    func latestRun(_ pipeline: String) async throws -> [String: Any] {
        var run: [String: Any] = [:]
        for _ in 0..<200 {
            let (_, o) = try await json("GET", "/pipelines/\(pipeline)/runs")
            run = (o["runs"] as? [[String: Any]])?.first ?? [:]
            if run["state"] as? String != "running" { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        return run
    }

    /// A CSV of `rows` rows with ids 1...rows.
    func bigCSV(_ name: String, rows: Int) -> String {
        var s = "id,valor,referencia,category\n"
        s.reserveCapacity(rows * 32)
        for i in 1...rows { s += "\(i),\(Double(i) / 7),ref\(i % 1000),\(["A", "B", "C", "D", "E"][i % 5])\n" }
        return cli.write(name, s)
    }
}

func stats(_ o: [String: Any]) -> [String: Int] { o["stats"] as? [String: Int] ?? [:] }

@Suite(.serialized) struct ServerTests {
    @Test func lifecycleFromUploadToRejects() async throws {
        let srv = try ServerProcess()
        var (s, o) = try await srv.json("POST", "/registros/_bulk", body: "id,valor\n1,1.5\n2,2.5\n", headers: ["Content-Type": "text/csv"])
        #expect(s == 202)
        let id = try #require(o["id"] as? Int)
        o = try await srv.wait(job: id) { ($0["state"] as? String) == "complete" }
        #expect(stats(o) == ["read": 2, "inserted": 2, "updated": 0, "deleted": 0, "rejected": 0, "skipped": 0])
        #expect(o["attempts"] as? Int == 1)
        // A bad file: good rows load, the reject is readable as CSV.
        (s, o) = try await srv.json("POST", "/registros/_bulk?format=csv", body: "id,valor,op\n2,2.75,U\n3,oops,I\n1,,D\n")
        let bad = try #require(o["id"] as? Int)
        o = try await srv.wait(job: bad) { ($0["state"] as? String) == "complete" }
        #expect(stats(o)["updated"] == 1 && stats(o)["deleted"] == 1 && stats(o)["rejected"] == 1)
        let (rs, rejects) = try await srv.request("GET", "/registros/_bulk/\(bad)/rejects")
        #expect(rs == 200)
        #expect(String(decoding: rejects, as: UTF8.self) == "id,valor,op,_line,_error\n3,oops,I,3,column 'valor': invalid float64 value 'oops'\n")
        #expect(try srv.cli.sqlite("SELECT id, valor FROM registros") == "2|2.75\n")
        // The operator's view of the same jobs.
        let list = try srv.cli.run(["jobs", "list"])
        #expect(list.status == 0 && list.out.contains("\(bad)\tregistros\tcomplete"))
    }

    @Test func parquetAndAvroBodiesAreDetectedByTheirMagic() async throws {
        let srv = try ServerProcess()
        srv.cli.write("in.csv", "id,valor\n1,1.5\n2,2.5\n3,3.5\n")
        #expect(try srv.cli.run(["convert", "in.csv", "in.parquet"]).status == 0)
        #expect(try srv.cli.run(["convert", "in.csv", "in.avro"]).status == 0)
        for (file, contentType) in [("in.parquet", "application/octet-stream"), ("in.avro", "avro/binary")] {
            let body = try Data(contentsOf: URL(fileURLWithPath: srv.cli.dir + "/" + file))
            let (rs, raw) = try await srv.request("POST", "/registros/_bulk", body: body, headers: ["Content-Type": contentType])
            #expect(rs == 202)
            var o = try JSONSerialization.jsonObject(with: raw) as? [String: Any] ?? [:]
            let id = try #require(o["id"] as? Int)
            o = try await srv.wait(job: id) { ($0["state"] as? String) == "complete" || ($0["state"] as? String) == "failed" }
            #expect(o["state"] as? String == "complete", "\(file): \(o)")
            #expect(stats(o)["read"] == 3, "\(file): \(o)")
        }
        #expect(try srv.cli.sqlite("SELECT id, valor FROM registros ORDER BY id") == "1|1.5\n2|2.5\n3|3.5\n")
    }

    @Test func seed000ClientPostsMultipartFile() async throws {
        let srv = try ServerProcess()
        srv.cli.write("batch_0.csv", "id,valor,referencia,category\n10,1.5,abc,A\n11,2.5,def,B\n")
        // Seed 000's sender: aiohttp posting {"file": open(path, "rb")}, success only on 200.
        srv.cli.write("client.py", """
            import asyncio, sys, aiohttp
            async def main():
                async with aiohttp.ClientSession(headers={"Authorization": "Bearer \(srv.token)"}) as session:
                    async with session.post("http://127.0.0.1:\(srv.port)/bulk_upload", data={"file": open("batch_0.csv", "rb")}) as r:
                        print(r.status, await r.text())
            asyncio.run(main())
            """)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "client.py"]
        p.currentDirectoryURL = URL(fileURLWithPath: srv.cli.dir)
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(text.hasPrefix("200 "), "\(text)")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(text.dropFirst(4).utf8)) as? [String: Any])
        #expect(body["file_name"] as? String == "batch_0.csv")
        let job = try #require(body["job_id"] as? Int)
        let o = try await srv.wait(job: job) { ($0["state"] as? String) == "complete" }
        #expect(stats(o)["inserted"] == 2)
        #expect(try srv.cli.sqlite("SELECT count(*) FROM registros") == "2\n")
    }

    @Test func killedWorkersJobIsFinishedOnceByAnother() async throws {
        let srv = try ServerProcess(noWorkers: true)
        let rows = 3_000_000  // progress is published once a second: the kill must land while rows are still being read
        let path = srv.bigCSV("big.csv", rows: rows)
        let a = try srv.startWorker("A")
        let (s, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)"}"#)
        #expect(s == 202)
        let id = try #require(o["id"] as? Int)
        // Wait until worker A is in the middle of the load, then kill it outright.
        // (A job that finishes first ends the wait too, and fails below with the reason, rather
        // than timing out.)
        let mid = try await srv.wait(job: id) {
            (($0["state"] as? String) == "processing" && (($0["progress"] as? [String: Int])?["rows"] ?? 0) > 0) || ($0["state"] as? String) == "complete"
        }
        // Still processing: the kill lands while rows are read or while they are committed
        // (on a loaded machine reading may be done already); either way the job is mid-way.
        try #require(mid["state"] as? String == "processing", "the load finished before the kill; make the file bigger")
        kill(a.processIdentifier, SIGKILL)
        a.waitUntilExit()
        try srv.startWorker("B")
        let done = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(done["state"] as? String == "complete", "\(done)")
        // The dead worker's attempt is given back: one attempt, one rescue.
        #expect(done["attempts"] as? Int == 1 && done["rescues"] as? Int == 1, "\(done)")
        #expect(stats(done) == ["read": rows, "inserted": rows, "updated": 0, "deleted": 0, "rejected": 0, "skipped": 0])
        #expect(try srv.cli.sqlite("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM registros") == "\(rows)|\(rows)|1|\(rows)\n")
    }

    @Test func cancelWhileRunningWritesNothing() async throws {
        let srv = try ServerProcess()
        // Big enough that the cancel lands mid-load (progress is published once a second).
        let path = srv.bigCSV("big.csv", rows: 2_000_000)
        let (_, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)"}"#)
        let id = try #require(o["id"] as? Int)
        // Cancelled as soon as a worker holds it (waiting for published progress, once a
        // second, could see the 1.5 s load end first on a loaded machine).
        let mid = try await srv.wait(job: id) { ["processing", "complete"].contains($0["state"] as? String ?? "") }
        try #require(mid["state"] as? String == "processing", "the load finished before the cancel; make the file bigger")
        let (cs, cancelled) = try await srv.json("DELETE", "/registros/_bulk/\(id)")
        #expect(cs == 200 && cancelled["state"] as? String == "cancelled")
        // The worker notices on its next heartbeat and stops; nothing reaches the table.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !(try String(contentsOfFile: srv.logPath, encoding: .utf8)).contains("job stopped") {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try String(contentsOfFile: srv.logPath, encoding: .utf8).contains("job stopped"))
        let (_, after) = try await srv.json("GET", "/registros/_bulk/status/\(id)")
        #expect(after["state"] as? String == "cancelled" && after["stats"] == nil)
        #expect(try srv.cli.sqlite("SELECT count(*) FROM sqlite_schema WHERE name = 'registros'") == "0\n")
    }

    @Test func expectContinueIsAnsweredAtOnce() async throws {
        let srv = try ServerProcess()
        srv.cli.write("big.bin", String(repeating: "x", count: 3 << 20))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "--expect100-timeout", "5",
                       "-H", "Authorization: Bearer \(srv.token)", "-H", "Expect: 100-continue",
                       "--data-binary", "@big.bin", "http://127.0.0.1:\(srv.port)/uploads"]
        p.currentDirectoryURL = URL(fileURLWithPath: srv.cli.dir)
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let parts = text.split(separator: " ")
        #expect(parts.first == "201", "\(text)")
        #expect((Double(parts.last ?? "9") ?? 9) < 4, "curl waited for its 5 s expect timeout: \(text)")
    }
}

/// `source: upload`: a file posted to the server runs through a declared pipeline.
@Suite struct PipelineUploadTests {
    @Test func aPostedFileRunsThroughItsPipeline() async throws {
        let server = try ServerProcess(yaml: """
            pipelines:
              intake:
                source: upload
                steps:
                  - cast: {id: int, valor: float}
                  - filter: valor > 1
                  - derive: {dobro: valor * 2}
                into: registros
              widen:
                source: upload
                steps:
                  - cast: {id: int, valor: float}
                  - derive: {dobro: valor * 2, extra: 1}
                into: registros
            """)
        let body = Data("{\"id\": 1, \"valor\": 0.5}\n{\"id\": 2, \"valor\": 2.5}\n{\"id\": 3, \"valor\": \"x\"}\n".utf8)
        let (status, data) = try await server.request("POST", "/pipelines/intake/runs?filename=regs.ndjson", body: body)
        #expect(status == 202, "\(String(decoding: data, as: UTF8.self))")
        let (missing, _) = try await server.request("POST", "/pipelines/nope/runs", body: body)
        #expect(missing == 404)
        let run = try await server.latestRun("intake")
        #expect(run["state"] as? String == "succeeded", "\(run)")
        let counts = try #require(run["counts"] as? [String: Any], "counts are an object: \(run)")
        #expect(counts["read"] as? Int == 3 && counts["dropped"] as? Int == 1 && counts["rejected"] as? Int == 1 && counts["loaded"] as? Int == 1, "\(run)")
        #expect(try server.cli.sqlite("SELECT id, dobro = 5 FROM registros") == "2|1\n")
        // A run whose load fails records the load's message (it used to record "ExitCode(rawValue: 1)").
        let (broken, _) = try await server.request("POST", "/pipelines/widen/runs?filename=w.ndjson", body: Data("{\"id\": 9, \"valor\": 3}\n".utf8))
        #expect(broken == 202)
        let failed = try await server.latestRun("widen")
        #expect(failed["state"] as? String == "failed", "\(failed)")
        #expect((failed["error"] as? String)?.contains("has no column 'extra'") == true, "\(failed)")
        // `sluice run` cannot read an upload source by itself, and says where files go.
        let r = try server.cli.run(["run", "intake"])
        #expect(r.status != 0 && r.err.contains("POST /pipelines/intake/runs"), "\(r.err)")
    }
}
