import Testing
import Foundation
import SluiceTesting

/// Pipelines declared `staged: true`: each stage a job of its own, batches handed on through
/// the control plane, stage workers scaled and killed on their own.
@Suite(.serialized) struct StagedPipelineTests {
    static func yml(port: Int, rate: Int, batch: Int = 100, backlog: Int = 32) -> String {
        """
        entities:
          places:
            primary_key: [id]
            columns: {id: int64, lat: float64, lon: float64, address: text, city: text}
        worker:
          lease_seconds: 2
          poll_seconds: 0.2
          retry_base_seconds: 0.2
          max_backlog: \(backlog)
        pipelines:
          geo:
            source: in
            staged: true
            batch_rows: \(batch)
            steps:
              - cast: {id: int, lat: float, lon: float}
              - enrich:
                  url: "http://127.0.0.1:\(port)/reverse?format=jsonv2&lat={lat}&lon={lon}"
                  adapter: nominatim
                  concurrency: 4
                  rate: \(rate)
                  max_attempts: 8
              - derive: {city: upper(city)}
              - select: [id, lat, lon, address, city]
            into: places
        """
    }

    func start(_ cli: CLI, _ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: cli.write("\(args.joined(separator: "_").replacingOccurrences(of: "-", with: "")).log", ""))
        try p.run()
        return p
    }

    func wait(_ what: String, timeout: Double = 60, _ done: () throws -> Bool) throws {
        let end = Date().addingTimeInterval(timeout)
        while try !done() {
            guard Date() < end else { Issue.record("timed out waiting for \(what)"); return }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// `sluice run --workers 0` with an extract+load worker and two enrich workers; enrich-a is
    /// SIGKILLed once `holding` (its processing jobs, counted) is not 0. Waits for the run.
    func runKillingAnEnrichWorker(_ cli: CLI, holding: () throws -> String) throws {
        let run = try start(cli, ["run", "geo", "--workers", "0"])
        let io = try start(cli, ["worker", "--stage", "extract", "--stage", "load", "--id", "io"])
        let a = try start(cli, ["worker", "--stage", "enrich", "--concurrency", "2", "--id", "enrich-a"])
        let b = try start(cli, ["worker", "--stage", "enrich", "--concurrency", "2", "--id", "enrich-b"])
        defer { for p in [run, io, a, b] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try wait("enrich-a to hold a batch") { try holding() != "0\n" }
        kill(a.processIdentifier, SIGKILL)
        a.waitUntilExit()
        run.waitUntilExit()
        #expect(run.terminationStatus == 0, "\((try? String(contentsOfFile: cli.dir + "/run_geo_workers_0.log", encoding: .utf8)) ?? "")")
    }

    /// Seed 004's `scale transformer=2`: the run only queues work; an extract+load worker and
    /// two enrich workers share it under one rate limit; one enrich worker is SIGKILLed while
    /// it holds a batch. Every row lands once, enriched; every batch went through each stage
    /// exactly once.
    @Test func stageWorkersShareARunAndAKilledOneLosesNothing() throws {
        let geo = try Geocoder(["--slow-rate", "0.05", "--slow-seconds", "0.3"])
        defer { geo.stop() }
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        for f in 0..<3 { cli.write("in/points-\(f).csv", EnrichCLITests.points(300, distinct: 200, seed: 20 + f, bad: false)) }
        cli.write("sluice.yml", Self.yml(port: geo.port, rate: 300))
        #expect(try cli.run(["migrate"]).status == 0)

        try runKillingAnEnrichWorker(cli) { try cli.sqlite("SELECT count(*) FROM sluice_jobs WHERE worker = 'enrich-a' AND state = 'processing'") }

        #expect(try cli.sqlite("SELECT count(*), count(DISTINCT id), count(address), count(*) FILTER (WHERE city = upper(city)) FROM places") == "900|900|900|900\n")
        // 3 batches per file; each handed to enrich once and to load once, all complete.
        #expect(try cli.sqlite("SELECT stage, count(*), count(*) FILTER (WHERE state = 'complete') FROM sluice_jobs GROUP BY stage ORDER BY stage")
                == "enrich|9|9\nextract|3|3\nload|9|9\n")
        // The killed worker's batch was taken over after its lease ran out.
        #expect(try cli.sqlite("SELECT count(*) FROM sluice_jobs WHERE stage = 'enrich' AND rescues > 0 AND attempts = 1") != "0\n")  // a rescue, not an attempt
        #expect(try cli.sqlite("SELECT count(*) FROM sluice_handoff_batches") == "0\n", "a finished run's batches are dropped")
        let runs = try cli.run(["runs", "geo", "--json"])
        #expect(runs.out.contains("\"state\":\"succeeded\"") && runs.out.contains("\"loaded\":900"), "\(runs.out)")
        let s = try geo.stats()
        #expect(s.maxPerSecond <= 330, "one rate limit for both enrich workers: \(s.maxPerSecond)")
    }

    /// Rows the steps reject in any stage (a cast in extract, the geocoder's refusal in enrich)
    /// land in the run's one rejects file and its counts, as in an inline run.
    @Test func stageRejectsGoToTheRunsRejectsFile() throws {
        let geo = try Geocoder()
        defer { geo.stop() }
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        for f in 0..<2 { cli.write("in/points-\(f).csv", EnrichCLITests.points(150, distinct: 100, seed: 30 + f, bad: true) + "\(f)9,x,1\n") }
        cli.write("sluice.yml", Self.yml(port: geo.port, rate: 1000))
        let r = try cli.run(["run", "geo", "--json", "--quiet"])
        #expect(r.status == 0, "\(r.err)")
        let counts = try #require(try cli.json(r.out)["counts"] as? [String: Any], "\(r.out)")
        #expect(counts["read"] as? Int == 304 && counts["rejected"] as? Int == 4 && counts["loaded"] as? Int == 300, "\(counts)")
        let file = try #require(counts["rejects_file"] as? String, "\(counts)")
        let lines = try String(contentsOfFile: cli.dir + "/" + file, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 5 && lines[0] == "_source,_error", "\(lines)")
        #expect(lines.contains("points-0.csv line 153,cast: lat: 'x' is not a float") && lines.contains("points-1.csv line 153,cast: lat: 'x' is not a float"), "\(lines)")
        #expect(lines.filter { $0.contains("line 152,enrich 127.0.0.1: HTTP 400") }.count == 2, "\(lines)")
        // The jobs' own parts are merged away.
        #expect(try filesUnder(cli.dir + "/.sluice/runs").filter { $0.hasSuffix(".csv") } == [file.replacingOccurrences(of: ".sluice/runs/", with: "")])
    }

    /// The same stages on PostgreSQL: the control plane and the table in one database, a
    /// load stage's job completed in its data transaction, a killed enrich worker's batch
    /// taken over, each row once.
    @Test func stagesRunOnPostgreSQL() throws {
        let pg = try TestPostgres.fresh()
        let geo = try Geocoder(["--slow-rate", "0.05", "--slow-seconds", "0.3"])
        defer { geo.stop() }
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        for f in 0..<2 { cli.write("in/points-\(f).csv", EnrichCLITests.points(300, distinct: 200, seed: 60 + f, bad: false)) }
        cli.write("sluice.yml", "database: \(pg.url)\n" + Self.yml(port: geo.port, rate: 300))
        #expect(try cli.run(["migrate"]).status == 0)
        try runKillingAnEnrichWorker(cli) { try pg.query("SELECT count(*) FROM sluice.jobs WHERE worker = 'enrich-a' AND state = 'processing'") }
        #expect(try pg.query("SELECT count(*), count(DISTINCT id), count(address) FROM places") == "600|600|600\n")
        #expect(try pg.query("SELECT stage, count(*), count(*) FILTER (WHERE state = 'complete') FROM sluice.jobs GROUP BY stage ORDER BY stage")
                == "enrich|6|6\nextract|2|2\nload|6|6\n")
        #expect(try pg.query("SELECT count(*) FROM sluice.handoff_batches") == "0\n")
    }

    /// The same stages loading into MariaDB, the control plane in SQLite: each load-stage job
    /// commits its rows with a receipt, then completes; a killed enrich worker loses nothing.
    @Test func stagesLoadIntoMySQL() throws {
        let my = try TestMySQL.fresh()
        let geo = try Geocoder(["--slow-rate", "0.05", "--slow-seconds", "0.3"])
        defer { geo.stop() }
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        for f in 0..<2 { cli.write("in/points-\(f).csv", EnrichCLITests.points(300, distinct: 200, seed: 70 + f, bad: false)) }
        cli.write("sluice.yml", "target: \(my.url)\n" + Self.yml(port: geo.port, rate: 300))
        #expect(try cli.run(["migrate"]).status == 0)
        try runKillingAnEnrichWorker(cli) { try cli.sqlite("SELECT count(*) FROM sluice_jobs WHERE worker = 'enrich-a' AND state = 'processing'") }
        #expect(try my.query("SELECT COUNT(*), COUNT(DISTINCT id), COUNT(address) FROM places") == "600\t600\t600\n")
        #expect(try cli.sqlite("SELECT stage, count(*), count(*) FILTER (WHERE state = 'complete') FROM sluice_jobs GROUP BY stage ORDER BY stage")
                == "enrich|6|6\nextract|2|2\nload|6|6\n")
        #expect(try my.query("SELECT COUNT(*) FROM sluice_load_receipts") == "6\n")
    }

    /// The process that started a staged run is SIGKILLed; `--resume` takes the run over:
    /// nothing is queued twice, every row lands once, the run ends `succeeded`.
    @Test func aKilledCoordinatorsRunIsResumed() throws {
        let geo = try Geocoder()
        defer { geo.stop() }
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        for f in 0..<3 { cli.write("in/points-\(f).csv", EnrichCLITests.points(120, distinct: 120, seed: 80 + f, bad: false)) }
        cli.write("sluice.yml", Self.yml(port: geo.port, rate: 1000))
        let run = try start(cli, ["run", "geo", "--workers", "0"])
        try wait("the run to queue its files") { (try? cli.sqlite("SELECT count(*) FROM sluice_jobs WHERE stage = 'extract'")) == "3\n" }
        kill(run.processIdentifier, SIGKILL)
        run.waitUntilExit()
        #expect(try cli.sqlite("SELECT id, state FROM sluice_runs") == "1|running\n")
        let resumed = try cli.run(["run", "geo", "--resume", "1"])
        #expect(resumed.status == 0, "\(resumed.err)")
        #expect(try cli.sqlite("SELECT stage, count(*) FROM sluice_jobs GROUP BY stage ORDER BY stage") == "enrich|6\nextract|3\nload|6\n")
        #expect(try cli.sqlite("SELECT count(*), count(address) FROM places") == "360|360\n")
        #expect(try cli.sqlite("SELECT state FROM sluice_runs WHERE id = 1") == "succeeded\n")
        let again = try cli.run(["run", "geo", "--resume", "1"])
        #expect(again.status != 0 && again.err.contains("already ended"), "\(again.err)")
    }

    /// A stage stops pulling work when the next one's backlog passes `max_backlog`, and the
    /// queued batches wait, durable, for a worker of the next stage.
    @Test func backPressureHoldsTheExtractStage() throws {
        let geo = try Geocoder()
        defer { geo.stop() }
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        for f in 0..<8 { cli.write("in/points-\(f).csv", EnrichCLITests.points(50, distinct: 50, seed: 40 + f, bad: false)) }
        cli.write("sluice.yml", Self.yml(port: geo.port, rate: 1000, backlog: 2))
        let run = try start(cli, ["run", "geo", "--workers", "0"])
        defer { if run.isRunning { kill(run.processIdentifier, SIGKILL) } }
        try wait("the run to queue its files") { (try? cli.sqlite("SELECT count(*) FROM sluice_jobs WHERE stage = 'extract'")) == "8\n" }
        let extract = try cli.run(["worker", "--stage", "extract", "--concurrency", "1", "--once"])
        #expect(extract.status == 0, "\(extract.err)")
        #expect(try cli.sqlite("SELECT stage, state, count(*) FROM sluice_jobs GROUP BY stage, state ORDER BY stage, state")
                == "enrich|queued|3\nextract|complete|3\nextract|queued|5\n", "three batches waiting (more than 2) stop the extractor")
        #expect(try geo.stats().calls == 0)
        let rest = try cli.run(["worker", "--once"])
        #expect(rest.status == 0, "\(rest.err)")
        run.waitUntilExit()
        #expect(run.terminationStatus == 0)
        #expect(try cli.sqlite("SELECT count(*), count(address) FROM places") == "400|400\n")
    }

    /// Staged runs load only into declared entities, and a `sql` step runs in the load's
    /// transaction; mistakes in either are refused with their line.
    @Test func stagedConfigMistakesAreRefused() throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("in/a.csv", "id\n1\n")
        cli.write("sluice.yml", """
            pipelines:
              p:
                source: in
                staged: true
                into: undeclared
            """)
        let r = try cli.run(["run", "p"])
        #expect(r.status != 0 && r.err.contains("add entities.undeclared"), "\(r.err)")
        cli.write("bad.yml", """
            pipelines:
              p:
                source: in
                steps:
                  - sql: "UPDATE t SET x = 1"
                  - select: [id]
                into: t
            """)
        let bad = try cli.run(["pipelines", "validate", "--config", "bad.yml"])
        #expect(bad.status != 0 && bad.err.contains("bad.yml:6:") && bad.err.contains("cannot follow a sql step"), "\(bad.err)")
    }

    /// `sql` steps (ELT) run in the load's own transaction: their effect and the rows commit
    /// together, and a failing statement leaves the table as it was — inline and staged.
    @Test(arguments: [false, true]) func sqlStepsRunInTheLoadTransaction(staged: Bool) throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("in/sales.csv", "id,day,amount\n1,2026-11-01,10\n2,2026-11-01,5\n3,2026-11-02,7\n")
        func yml(_ sql: String) -> String {
            """
            entities:
              sales:
                primary_key: [id]
                columns: {id: int64, day: text, amount: int64}
            pipelines:
              sales:
                source: in
                staged: \(staged)
                steps:
                  - cast: {id: int, amount: int}
                  - sql: "\(sql)"
                into: sales
            """
        }
        _ = try cli.sqlite("CREATE TABLE daily (day TEXT PRIMARY KEY, total INTEGER)")
        cli.write("sluice.yml", yml("UPDATE nonexistent SET x = 1"))
        let bad = try cli.run(["run", "sales"])
        #expect(bad.status != 0 && bad.err.contains("sql step 1") && bad.err.contains("nonexistent"), "\(bad.err)")
        #expect(try cli.sqlite("SELECT count(*) FROM sqlite_master WHERE name = 'sales'") == "0\n", "the new table rolled back with the failed statement")
        cli.write("sluice.yml", yml("INSERT INTO daily SELECT day, sum(amount) FROM sales GROUP BY day ON CONFLICT (day) DO UPDATE SET total = excluded.total"))
        let ok = try cli.run(["run", "sales"])
        #expect(ok.status == 0, "\(ok.err)")
        #expect(try cli.sqlite("SELECT day, total FROM daily ORDER BY day") == "2026-11-01|15\n2026-11-02|7\n")
    }
}

/// A pipeline whose source is a table in the target database and whose sink is an HTTP API
/// (an export): seed 000's job, transformed on the way, each row delivered once.
@Suite(.serialized) struct TableSourceExportSinkTests {
    @Test func aTableSourceFeedsAnExportSink() throws {
        let cli = try CLI()
        let receiver = try Receiver(dir: cli.dir + "/received")
        defer { receiver.stop() }
        var csv = "id,status,amount\n"
        for i in 1...500 { csv += "\(i),\(i % 5 == 0 ? "open" : "paid"),\(Double(i) / 4)\n" }
        cli.write("orders.csv", csv)
        cli.write("sluice.yml", """
            entities:
              orders:
                primary_key: [id]
              paid:
                primary_key: [id]
                columns: {id: int64, cents: int64}
            exports:
              paid_out:
                from: paid
                key: id
                to: \(receiver.url)
                batch_size: 100
            pipelines:
              collect:
                source: table:orders
                where: status = 'paid'
                steps:
                  - cast: {id: int, amount: float}
                  - derive: {cents: round(amount * 100)}
                  - select: [id, cents]
                into: paid
                export: paid_out
            """)
        #expect(try cli.run(["load", "orders.csv", "--into", "orders"]).status == 0)
        let r = try cli.run(["run", "collect"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("400 rows read from table orders where status = 'paid'") && r.err.contains("delivered 4 (400 rows)"), "\(r.err)")
        #expect(try cli.sqlite("SELECT count(*), sum(cents) FROM paid") == "400|\((1...500).filter { $0 % 5 != 0 }.reduce(0) { $0 + $1 * 25 })\n")
        // Again: the rows are merged once more, and nothing is sent twice.
        let again = try cli.run(["run", "collect"])
        #expect(again.status == 0 && again.err.contains("planned 0 new batches"), "\(again.err)")
        let counts = try receiver.idCounts()
        #expect(counts.count == 400 && counts.values.allSatisfy { $0 == 1 })
        // A pipeline naming an undeclared export is refused with its line.
        cli.write("bad.yml", """
            pipelines:
              p:
                source: table:orders
                into: paid
                export: nowhere
            """)
        let bad = try cli.run(["pipelines", "validate", "--config", "bad.yml"])
        #expect(bad.status != 0 && bad.err.contains("bad.yml:5:") && bad.err.contains("'nowhere' is not declared"), "\(bad.err)")
    }
}
