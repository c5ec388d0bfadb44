import Testing
import Foundation
import SluiceTesting
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Issue 18: what an operator sees of a running server — Prometheus metrics that move as jobs
/// run, JSON log lines with an access log and each job's counts, metrics of a worker process.
@Suite(.serialized) struct ObservabilityTests {
    /// The value of the series whose line starts with `series` (name and labels), or nil.
    static func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1).split(separator: " ")[0])
        }
        return nil
    }

    /// Scrapes `/metrics` on `port` (a worker's or watch's own server) every 100 ms until
    /// `done` holds or 20 s pass; returns the last text.
    static func scrape(port: Int, until done: (String) -> Bool) async throws -> String {
        var text = ""
        for _ in 0..<200 {
            if let (data, _) = try? await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!) {
                text = String(decoding: data, as: UTF8.self)
                if done(text) { break }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return text
    }

    func scrape(_ srv: ServerProcess) async throws -> String {
        let (status, data) = try await srv.request("GET", "/metrics")
        #expect(status == 200)
        return String(decoding: data, as: UTF8.self)
    }

    @Test func metricsMoveAsJobsRunAndLogsAreJSON() async throws {
        let srv = try ServerProcess(env: ["SLUICE_LOG_FORMAT": "json"])
        let (anonymous, _) = try await srv.request("GET", "/metrics", auth: false)
        #expect(anonymous == 401, "metrics sit behind the API's tokens")
        let before = try await scrape(srv)
        #expect(Self.value(before, #"sluice_rows_total{entity="registros",outcome="inserted"}"#) == nil)
        #expect((Self.value(before, "process_resident_memory_bytes") ?? 0) > 1_000_000, "\(before)")

        for (n, body) in ["id,valor\n1,1.5\n2,2.5\n3,3.5\n", "id,valor\n3,9\n4,4.5\nx,1\n"].enumerated() {
            let (s, o) = try await srv.json("POST", "/registros/_bulk", body: body, headers: ["Content-Type": "text/csv"])
            #expect(s == 202, "\(o)")
            let id = try #require(o["id"] as? Int)
            _ = try await srv.wait(job: id) { ($0["state"] as? String) == "complete" }
            let text = try await scrape(srv)
            #expect(Self.value(text, #"sluice_rows_total{entity="registros",outcome="inserted"}"#) == (n == 0 ? 3 : 4), "\(text)")
            #expect(Self.value(text, #"sluice_jobs{state="complete",kind="load",entity="registros"}"#) == Double(n + 1), "\(text)")
        }
        let text = try await scrape(srv)
        #expect(Self.value(text, #"sluice_rows_total{entity="registros",outcome="updated"}"#) == 1)
        #expect(Self.value(text, #"sluice_rows_total{entity="registros",outcome="rejected"}"#) == 1)
        #expect(Self.value(text, #"sluice_http_requests_total{method="POST",route="/{entity}/_bulk",status="202"}"#) == 2, "\(text)")
        #expect(Self.value(text, #"sluice_http_requests_total{method="GET",route="/metrics",status="401"}"#) == 1, "\(text)")
        #expect(Self.value(text, #"sluice_job_duration_seconds_count{kind="load",outcome="complete"}"#) == 2, "\(text)")
        #expect(Self.value(text, #"sluice_job_queue_wait_seconds_count{kind="load"}"#) == 2, "\(text)")
        for phase in ["fetch", "read_and_stage", "apply_and_commit"] {
            #expect(Self.value(text, #"sluice_load_phase_seconds_count{phase=""# + phase + #""}"#) == 2, "\(phase): \(text)")
        }

        // Every stderr line is one JSON object; the access log names the job a submission made,
        // and "job complete" carries the job's counts.
        let lines = try String(contentsOfFile: srv.logPath, encoding: .utf8).split(separator: "\n")
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
        #expect(objects.count == lines.count && !lines.isEmpty, "\(lines.prefix(3))")
        #expect(objects.contains { $0["message"] == "request" && $0["method"] == "POST" && $0["status"] == "202" && $0["job"] != nil && $0["ms"] != nil }, "\(objects)")
        #expect(objects.contains { $0["message"] == "job complete" && $0["inserted"] == "1" && $0["updated"] == "1" && $0["rejected"] == "1" }, "\(objects)")
        #expect(objects.contains { $0["message"] == "starting" && $0["state_dir"] == ".sluice" && $0["database"] != nil }, "\(objects)")
    }

    /// A watch's polls and files, as `sluice watch --metrics-port` serves them.
    @Test func aWatchCountsItsPollsAndFiles() async throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("in/a.csv", "id,v\n1,x\n")
        cli.write("in/b.csv", "id,v\n2,y\n")
        let port = CLI.freePort()
        let watch = Process()
        watch.executableURL = URL(fileURLWithPath: CLI.binary)
        watch.arguments = ["watch", "in", "--into", "t", "--min-age", "0", "--interval", "0.2", "--name", "drops", "--metrics-port", String(port)]
        watch.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
        watch.standardOutput = FileHandle.nullDevice
        watch.standardError = FileHandle.nullDevice
        try watch.run()
        defer { if watch.isRunning { watch.terminate(); watch.waitUntilExit() } }
        let text = try await Self.scrape(port: port) {
            Self.value($0, #"sluice_rows_total{entity="t",outcome="inserted"}"#) == 2 && (Self.value($0, #"sluice_watch_polls_total{watch="drops"}"#) ?? 0) >= 3
        }
        #expect(Self.value(text, #"sluice_watch_files_total{watch="drops",state="queued"}"#) == 2, "\(text)")
        #expect((Self.value(text, #"sluice_watch_polls_total{watch="drops"}"#) ?? 0) >= 3, "\(text)")
        #expect(Self.value(text, #"sluice_rows_total{entity="t",outcome="inserted"}"#) == 2, "\(text)")
    }

    /// Google's answers as a watch sees them: throttled calls, the time spent backing off.
    @Test func aWatchCountsGooglesThrottling() async throws {
        let google = try GoogleFake()
        defer { google.stop() }
        try google.driveFiles([("a.csv", "id,v\n1,x\n", "2026-01-01T00:00:00Z")], folder: "Metered")
        try google.post("/_admin/storm", ["count": 3, "status": 429, "retry_after": "1"])
        let cli = try CLI()
        let port = CLI.freePort()
        let watch = Process()
        watch.executableURL = URL(fileURLWithPath: CLI.binary)
        watch.arguments = ["watch", "gdrive://Metered/", "--into", "t", "--interval", "0.5", "--name", "drive", "--metrics-port", String(port)]
        watch.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
        watch.environment = ProcessInfo.processInfo.environment.merging(google.env) { $1 }
        watch.standardOutput = FileHandle.nullDevice
        watch.standardError = FileHandle.nullDevice
        try watch.run()
        defer { if watch.isRunning { watch.terminate(); watch.waitUntilExit() } }
        let text = try await Self.scrape(port: port) { Self.value($0, #"sluice_rows_total{entity="t",outcome="inserted"}"#) == 1 }
        #expect(Self.value(text, #"sluice_google_requests_total{api="drive",outcome="throttled"}"#) == 3, "\(text)")
        #expect((Self.value(text, #"sluice_google_requests_total{api="drive",outcome="answered"}"#) ?? 0) >= 3, "\(text)")
        #expect((Self.value(text, #"sluice_google_backoff_seconds_total{api="drive"}"#) ?? 0) >= 3, "\(text)")
    }

    /// `sluice worker --metrics-port` serves the same registry (with the control plane's job
    /// gauges) without the API.
    @Test func aWorkerServesItsOwnMetrics() async throws {
        let srv = try ServerProcess(noWorkers: true)
        let (s, o) = try await srv.json("POST", "/registros/_bulk", body: "id,valor\n1,1.5\n", headers: ["Content-Type": "text/csv"])
        #expect(s == 202, "\(o)")
        let port = CLI.freePort()
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: CLI.binary)
        worker.arguments = ["worker", "--metrics-port", String(port), "--log-format", "text"]
        worker.currentDirectoryURL = URL(fileURLWithPath: srv.cli.dir)
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle(forWritingAtPath: srv.cli.write("worker.log", ""))
        try worker.run()
        defer { if worker.isRunning { worker.terminate(); worker.waitUntilExit() } }
        let text = try await Self.scrape(port: port) { Self.value($0, #"sluice_rows_total{entity="registros",outcome="inserted"}"#) == 1 }
        #expect(Self.value(text, #"sluice_rows_total{entity="registros",outcome="inserted"}"#) == 1, "\(text)")
        #expect(Self.value(text, #"sluice_jobs{state="complete",kind="load",entity="registros"}"#) == 1, "\(text)")
        let log = try String(contentsOfFile: srv.cli.dir + "/worker.log", encoding: .utf8)
        #expect(log.contains("info sluice: job complete") && log.contains(" entity=registros") && log.contains(" inserted=1"), "\(log)")
    }

    /// Traces over OTLP/HTTP to a receiver that decodes them as a collector does: a client's
    /// `traceparent` continues through the API's span, the job row and a worker in another
    /// process, down to the load's phases; log lines name the trace and span.
    @Test(arguments: ["http/protobuf", "http/json"])
    func tracesFollowARequestIntoAnotherProcesssJob(_ wire: String) async throws {
        let otlp = try OTLPReceiver()
        let srv = try ServerProcess(noWorkers: true, env: otlp.env.merging(["SLUICE_LOG_FORMAT": "json", "OTEL_EXPORTER_OTLP_PROTOCOL": wire]) { $1 })
        try srv.startWorker("w1")
        let (clientTrace, clientSpan) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
        let (s, o) = try await srv.json("POST", "/registros/_bulk", body: "id,valor\n1,1.5\n2,2.5\n",
                                        headers: ["Content-Type": "text/csv", "traceparent": "00-\(clientTrace)-\(clientSpan)-01"])
        #expect(s == 202, "\(o)")
        let id = try #require(o["id"] as? Int)
        _ = try await srv.wait(job: id) { ($0["state"] as? String) == "complete" }
        // An atomic load with a bad row fails: its job span says so.
        let (s2, o2) = try await srv.json("POST", "/registros/_bulk?atomic=true", body: "id,valor\nx,1\n", headers: ["Content-Type": "text/csv"])
        #expect(s2 == 202, "\(o2)")
        let failed = try #require(o2["id"] as? Int)
        _ = try await srv.wait(job: failed) { ($0["state"] as? String) == "error" }

        var spans: [OTLPReceiver.Span] = []
        for _ in 0..<100 {
            spans = try otlp.spans()
            if spans.filter({ $0.name == "job load" }).count == 2 && spans.contains(where: { $0.name == "apply_and_commit" }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let request = try #require(spans.first { $0.name == "/{entity}/_bulk" && $0.traceID == clientTrace }, "\(spans.map(\.name))")
        #expect(request.parentSpanID == clientSpan && request.kind == "server" && request.service == "sluice")
        #expect(request.attributes["http.response.status_code"] == .int(202))
        let job = try #require(spans.first { $0.name == "job load" && $0.attributes["sluice.job.id"] == .int(id) })
        #expect(job.traceID == clientTrace && job.parentSpanID == request.spanID && job.kind == "consumer", "\(job)")
        #expect(job.attributes["sluice.rows.read"] == .int(2) && job.status != "error")
        var previousEnd: UInt64 = 0
        for phase in ["fetch", "plan", "read_and_stage", "apply_and_commit"] {
            let span = try #require(spans.first { $0.name == phase && $0.parentSpanID == job.spanID }, "\(phase): \(spans.map(\.name))")
            #expect(span.traceID == clientTrace && span.startNs >= previousEnd && span.endNs <= job.endNs, "\(phase)")
            previousEnd = span.endNs
        }
        let bad = try #require(spans.first { $0.name == "job load" && $0.attributes["sluice.job.id"] == .int(failed) })
        #expect(bad.status == "error" && bad.traceID != clientTrace)

        // The worker's "job complete" line and the server's access line carry the ids.
        let workerLog = try String(contentsOfFile: srv.cli.dir + "/worker-w1.log", encoding: .utf8)
        let complete = try #require(workerLog.split(separator: "\n").first { $0.contains("\"job complete\"") && $0.contains("\"job\":\"\(id)\"") }, "\(workerLog)")
        #expect(complete.contains("\"trace_id\":\"\(clientTrace)\"") && complete.contains("\"span_id\":\"\(job.spanID)\""), "\(complete)")
        let serveLog = try String(contentsOfFile: srv.logPath, encoding: .utf8)
        #expect(serveLog.split(separator: "\n").contains { $0.contains("\"trace_id\":\"\(clientTrace)\"") && $0.contains("\"status\":\"202\"") }, "\(serveLog)")
    }

    /// Head sampling follows the trace across processes: a client's unsampled `traceparent`
    /// (flags 00) leaves no span of its trace anywhere, not its request's nor its job's in the
    /// worker process, though the job still carries the trace; a sampled one is recorded whole.
    /// And `OTEL_TRACES_SAMPLER=parentbased_always_off` records no new trace at all.
    @Test func anUnsampledTraceStaysUnsampledInTheWorker() async throws {
        let otlp = try OTLPReceiver()
        let srv = try ServerProcess(noWorkers: true, env: otlp.env.merging(["SLUICE_LOG_FORMAT": "json"]) { $1 })
        try srv.startWorker("w1")
        let quiet = "0af7651916cd43dd8448eb211c80319c", loud = "4bf92f3577b34da6a3ce929d0e0e4736"
        var ids: [Int] = []
        for (trace, flags) in [(quiet, "00"), (loud, "01")] {
            let (s, o) = try await srv.json("POST", "/registros/_bulk", body: "id,valor\n1,1.5\n",
                                            headers: ["Content-Type": "text/csv", "traceparent": "00-\(trace)-b7ad6b7169203331-\(flags)"])
            #expect(s == 202, "\(o)")
            ids.append(try #require(o["id"] as? Int))
            _ = try await srv.wait(job: ids.last!) { ($0["state"] as? String) == "complete" }
        }
        var spans: [OTLPReceiver.Span] = []
        for _ in 0..<100 where !spans.contains(where: { $0.name == "apply_and_commit" && $0.traceID == loud }) {
            try await Task.sleep(for: .milliseconds(100))
            spans = try otlp.spans()
        }
        #expect(spans.contains { $0.name == "job load" && $0.traceID == loud && $0.attributes["sluice.job.id"] == .int(ids[1]) })
        #expect(!spans.contains { $0.traceID == quiet }, "\(spans.filter { $0.traceID == quiet }.map(\.name))")
        // The unsampled job's log line still names its trace: the context went along, unsampled.
        let workerLog = try String(contentsOfFile: srv.cli.dir + "/worker-w1.log", encoding: .utf8)
        #expect(workerLog.split(separator: "\n").contains { $0.contains("\"job complete\"") && $0.contains("\"trace_id\":\"\(quiet)\"") }, "\(workerLog)")

        let off = try ServerProcess(env: otlp.env.merging(["OTEL_TRACES_SAMPLER": "parentbased_always_off", "OTEL_SERVICE_NAME": "sampled-off"]) { $1 })
        let (s, o) = try await off.json("POST", "/registros/_bulk", body: "id,valor\n1,1.5\n", headers: ["Content-Type": "text/csv"])
        #expect(s == 202, "\(o)")
        _ = try await off.wait(job: try #require(o["id"] as? Int)) { ($0["state"] as? String) == "complete" }
        try await Task.sleep(for: .milliseconds(500))  // five export periods
        #expect(!(try otlp.spans()).contains { $0.service == "sampled-off" })
    }

    /// A collector that is down costs nothing but the spans: jobs load, and SIGTERM still
    /// stops the server promptly (the last flush and the exporter's shutdown give up after 2 s each).
    @Test func aCollectorThatIsDownDoesNotHoldUpLoadsOrShutdown() async throws {
        let srv = try ServerProcess(env: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_SCHEDULE_DELAY": "100"])
        let (s, o) = try await srv.json("POST", "/registros/_bulk", body: "id,valor\n1,1.5\n", headers: ["Content-Type": "text/csv"])
        #expect(s == 202, "\(o)")
        _ = try await srv.wait(job: try #require(o["id"] as? Int)) { ($0["state"] as? String) == "complete" }
        let serve = try #require(srv.serve)
        let asked = Date()
        serve.terminate()
        serve.waitUntilExit()
        #expect(Date().timeIntervalSince(asked) < 7, "stopped after \(Date().timeIntervalSince(asked)) s")
        #expect(serve.terminationStatus == 0)
    }
}
