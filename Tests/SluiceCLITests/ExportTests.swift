import Testing
import Foundation
import SluiceTesting

/// A Python receiver process (scripts/receivers/bulk_receiver.py), optionally behind the
/// connection-resetting proxy, storing what it accepts in `dir`.
final class Receiver: @unchecked Sendable {
    let dir: String
    var processes: [Process] = []
    var port = 0

    init(dir: String, args: [String] = [], resetRate: Double? = nil, port fixed: Int? = nil) throws {
        self.dir = dir
        // A port already taken makes the receiver exit: take another (unless the test fixed it).
        var receiverPort = 0
        for attempt in 0..<3 {
            receiverPort = fixed ?? CLI.freePort()
            let receiver = try Self.python(["scripts/receivers/bulk_receiver.py", "--port", String(receiverPort), "--dir", dir] + args)
            if try waitUntilUp(receiverPort, receiver) { processes.append(receiver); break }
            if receiver.isRunning { kill(receiver.processIdentifier, SIGKILL) }
            if attempt == 2 || fixed != nil { throw Oracle.Failure(description: "the receiver did not start (fastapi, uvicorn and python-multipart must be installed)") }
        }
        port = receiverPort
        if let resetRate {
            // The same for the proxy: a port another test's server holds makes it exit. It is up
            // once the receiver's /healthz answers through it (a reset connection is retried).
            for attempt in 0..<3 {
                let proxyPort = Int.random(in: 40_000..<60_000)
                let proxy = try Self.python(["scripts/receivers/reset_proxy.py", String(proxyPort), String(receiverPort), String(resetRate)])
                if try waitUntilUp(proxyPort, proxy) {
                    processes.append(proxy)
                    port = proxyPort
                    break
                }
                if proxy.isRunning { kill(proxy.processIdentifier, SIGKILL) }
                if attempt == 2 { throw Oracle.Failure(description: "the reset proxy did not start") }
            }
        }
    }

    static func python(_ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + args
        p.currentDirectoryURL = URL(fileURLWithPath: Oracle.repoRoot)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Whether the receiver answers within 30 s (false at once if it exited).
    func waitUntilUp(_ port: Int, _ receiver: Process) throws -> Bool {
        for _ in 0..<300 where receiver.isRunning {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:\(port)/healthz"]
            try p.run()
            p.waitUntilExit()
            if p.terminationStatus == 0 { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    var url: String { "http://127.0.0.1:\(port)/bulk_upload" }

    func stop() {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }  // uvicorn may linger on SIGTERM
    }

    /// Waits (up to a minute) until at least `n` rows have arrived.
    func waitForRows(atLeast n: Int) throws {
        let deadline = Date().addingTimeInterval(60)
        while try idCounts().count < n {
            guard Date() < deadline else { throw Oracle.Failure(description: "the receiver got fewer than \(n) rows in a minute") }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// How many times each id arrived, over every stored file (CSV with the id first).
    func idCounts() throws -> [Int: Int] {
        var counts: [Int: Int] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".csv") {
            let text = try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
            for line in text.split(separator: "\n").dropFirst() {
                if let id = Int(line.prefix { $0 != "," }) { counts[id, default: 0] += 1 }
            }
        }
        return counts
    }
}

@Suite(.serialized) struct ExportTests {
    /// A table `t` of `n` rows (ids 1...n) loaded into the CLI's SQLite database.
    func table(_ cli: CLI, rows n: ClosedRange<Int>, file: String = "t.csv") throws {
        var csv = "id,name,amount\n"
        for i in n { csv += "\(i),name \(i),\(Double(i) / 4)\n" }
        cli.write(file, csv)
        let r = try cli.run(["load", file, "--into", "t", "--key", "id", "--create"])
        #expect(r.status == 0, "\(r.err)")
    }

    @Test func everyRowArrivesOnceAndReRunsSendOnlyWhatIsNew() throws {
        let cli = try CLI()
        try table(cli, rows: 1...25_000)
        let rx = try Receiver(dir: cli.dir + "/rx")
        defer { rx.stop() }
        let r = try cli.run(["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "1000", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let report = try cli.json(r.out)
        #expect(report["planned"] as? Int == 25 && report["delivered"] as? Int == 25 && report["delivered_rows"] as? Int == 25_000)
        var counts = try rx.idCounts()
        #expect(counts.count == 25_000 && counts.values.allSatisfy { $0 == 1 })
        // Nothing new: nothing sent.
        let again = try cli.run(["export", "--from", "t", "--key", "id", "--to", rx.url, "--json"])
        #expect(try cli.json(again.out)["planned"] as? Int == 0)
        // New rows only.
        try table(cli, rows: 25_001...25_500, file: "more.csv")
        let more = try cli.run(["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "1000", "--json"])
        #expect(try cli.json(more.out)["delivered_rows"] as? Int == 500)
        counts = try rx.idCounts()
        #expect(counts.count == 25_500 && counts.values.allSatisfy { $0 == 1 })
        let status = try cli.run(["export", "status"])
        #expect(status.out.contains("delivered 26 batches (25500 rows), pending 0 (0 rows), dead 0"), "\(status.out)")
    }

    /// Issue 21: with `storage:` a batch planned on one host is kept in the bucket, so another
    /// host (its own folder; the database and the bucket shared) sends it after the first
    /// host's disk is gone; delivered batches and orphans leave the bucket.
    @Test func batchesPlannedOnOneHostAreSentFromAnotherThroughTheStorage() throws {
        let s3 = try S3Server.shared()
        let bucket = "spools-" + UUID().uuidString.prefix(8).lowercased()
        try s3.boto3("s3.create_bucket(Bucket='\(bucket)')")
        let listing = "print(json.dumps(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='\(bucket)').get('Contents', []))))"
        let shared = try CLI()
        let yaml = "database: \(shared.dir)/shared.db\nstorage: s3://\(bucket)/sluice/\n"
        let a = try CLI(), b = try CLI()
        a.write("sluice.yml", yaml)
        b.write("sluice.yml", yaml)
        var csv = "id,name,amount\n"
        for i in 1...5_000 { csv += "\(i),name \(i),\(Double(i) / 4)\n" }
        a.write("t.csv", csv)
        #expect(try a.run(["load", "t.csv", "--into", "t", "--key", "id", "--create"], env: s3.env).status == 0)
        let rx = try Receiver(dir: b.dir + "/rx")
        defer { rx.stop() }
        let args = ["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "1000", "--json"]
        let planned = try a.run(args + ["--plan-only"], env: s3.env)
        #expect(planned.status == 0, "\(planned.err)")
        let kept = try s3.boto3(listing)
        #expect(kept.components(separatedBy: "sluice/exports/").count - 1 == 5, "\(kept)")
        // The planning host's disk is wiped; an orphan (a crash between keeping a batch and
        // recording it) lies beside the kept batches.
        try FileManager.default.removeItem(atPath: a.dir)
        let folder = try #require(kept.split(separator: "\"").first { $0.hasPrefix("sluice/exports/") }.map { ($0 as NSString).deletingLastPathComponent })
        try s3.boto3("s3.put_object(Bucket='\(bucket)', Key='\(folder)/batch-99.csv', Body=b'id\\n1\\n')")
        let sent = try b.run(args, env: s3.env)
        #expect(sent.status == 0, "\(sent.err)")
        #expect(try b.json(sent.out)["delivered_rows"] as? Int == 5_000, "\(sent.out)")
        let counts = try rx.idCounts()
        #expect(counts.count == 5_000 && counts.values.allSatisfy { $0 == 1 })
        #expect(!(try s3.boto3(listing)).contains("sluice/exports/"), "delivered batches or orphans stayed in the bucket")
    }

    @Test func aFlakyReceiverGetsEveryRowOnce() throws {
        let cli = try CLI()
        try table(cli, rows: 1...20_000)
        let rx = try Receiver(dir: cli.dir + "/rx", args: ["--fail-rate", "0.25", "--throttle-rate", "0.1", "--slow-rate", "0.05", "--slow-seconds", "3"],
                              resetRate: 0.15)
        defer { rx.stop() }
        let r = try cli.run(["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "500", "--timeout", "1",
                             "--retry-base", "0.05", "--max-attempts", "30", "--concurrency", "4", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let report = try cli.json(r.out)
        #expect(report["delivered"] as? Int == 40)
        #expect((report["attempts"] as? Int ?? 0) > 40, "the receiver was not flaky enough: \(report)")
        let counts = try rx.idCounts()
        #expect(counts.count == 20_000 && counts.values.allSatisfy { $0 == 1 })
    }

    @Test func refusedBatchesAreDeadLetteredListedAndResent() throws {
        let cli = try CLI()
        try table(cli, rows: 1...5_000)
        let dir = cli.dir + "/rx"
        let port = CLI.freePort()
        var rx = try Receiver(dir: dir, args: ["--refuse-every", "2"], port: port)
        let r = try cli.run(["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "1000"])
        #expect(r.status == 3)
        #expect(r.out.contains("not delivered: 2 batches (2 dead-lettered)"), "\(r.out)")
        let status = try cli.run(["export", "status", "--to", rx.url])
        #expect(status.out.contains("dead 2 (2000 rows)") && status.out.contains("HTTP 422") && status.out.contains("refused on purpose"), "\(status.out)")
        #expect(try rx.idCounts().count == 3_000)
        // The receiver is fixed; the dead batches go again, with the same bytes and keys.
        rx.stop()
        rx = try Receiver(dir: dir, port: port)
        defer { rx.stop() }
        let retry = try cli.run(["export", "retry"])
        #expect(retry.out.contains("2 batches back in the plan"))
        let again = try cli.run(["export", "--from", "t", "--key", "id", "--to", rx.url, "--json"])
        #expect(again.status == 0, "\(again.err)")
        #expect(try cli.json(again.out)["delivered_rows"] as? Int == 2_000)
        let counts = try rx.idCounts()
        #expect(counts.count == 5_000 && counts.values.allSatisfy { $0 == 1 })
    }

    @Test func theServerShowsTheLedger() async throws {
        let srv = try ServerProcess()  // stopped when it goes away
        try table(srv.cli, rows: 1...2_000)
        let rx = try Receiver(dir: srv.cli.dir + "/rx", args: ["--refuse-every", "2"])
        defer { rx.stop() }
        let r = try srv.cli.run(["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "1000"])
        #expect(r.status == 3, "\(r.err)")
        let (s, o) = try await srv.json("GET", "/exports")
        #expect(s == 200)
        let dests = try #require(o["destinations"] as? [[String: Any]])
        try #require(dests.count == 1)
        #expect(dests[0]["url"] as? String == rx.url)
        #expect(dests[0]["delivered"] as? Int == 1 && dests[0]["dead"] as? Int == 1 && dests[0]["dead_rows"] as? Int == 1_000)
        let dead = try #require((dests[0]["undelivered"] as? [[String: Any]])?.first)
        #expect(dead["last_status"] as? Int == 422 && (dead["response"] as? String ?? "").contains("refused on purpose"))
    }

    @Test func exportsDeclaredInSluiceYml() throws {
        let cli = try CLI()
        try table(cli, rows: 1...3_000)
        let rx = try Receiver(dir: cli.dir + "/rx")
        defer { rx.stop() }
        cli.write("sluice.yml", """
            state_dir: state
            exports:
              to_rx:
                from: t
                key: id
                to: \(rx.url)
                batch_size: 700
                format: csv
                concurrency: 2
                form: {source: sluice}
                headers: {X-Batch-Origin: tests}
            """)
        let r = try cli.run(["export", "to_rx", "--json"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try cli.json(r.out)["planned"] as? Int == 5)
        let counts = try rx.idCounts()
        #expect(counts.count == 3_000 && counts.values.allSatisfy { $0 == 1 })
        // The spool lives under state_dir (it used to ignore it and write to .sluice).
        #expect(try FileManager.default.contentsOfDirectory(atPath: cli.dir + "/state/exports").count == 1)
        #expect(!FileManager.default.fileExists(atPath: cli.dir + "/.sluice/exports"))
        let missing = try cli.run(["export", "nope"])
        #expect(missing.status == 1 && missing.err.contains("no export 'nope'") && missing.err.contains("to_rx"))
        cli.write("sluice.yml", "exports:\n  x:\n    from: t\n    batchsize: 3\n")
        let bad = try cli.run(["export", "x"])
        #expect(bad.status == 1 && bad.err.contains("sluice.yml:4") && bad.err.contains("unknown key 'batchsize'"), "\(bad.err)")
    }

    /// Issue 19: SQLite keeps `decimal(p ≤ 15, s)` as REAL, so the sqlite3 shell sorts it as a
    /// number and `printf('%.2f', sum(x))` is the exact total; wider decimals stay exact TEXT. Sluice
    /// reads both back at the declared scale.
    @Test func sqliteDecimalsSortAndSumAsNumbersAndReadBackAtTheirScale() throws {
        let cli = try CLI()
        cli.write("sluice.yml", """
            entities:
              sales:
                primary_key: [id]
                columns: {id: int64, amount: "decimal(12,2)", rate: "decimal(10,8)", big: "decimal(30,4)"}
            """)
        var csv = "id,amount,rate,big\n"
        var cents = 0
        for i in 1...5_000 {
            let c = (i * 7_919) % 1_000_000 + 1      // 0.01 to 10,000.00
            cents += c
            csv += "\(i),\(c / 100).\(String(format: "%02d", c % 100)),0.0000000\(i % 10),12345678901234567890.\(String(format: "%04d", i))\n"
        }
        let r = try cli.run(["load", cli.write("sales.csv", csv), "--into", "sales"])
        #expect(r.status == 0 && r.out.contains("inserted  5,000"), "\(r.err)")
        #expect(try cli.sqlite("SELECT typeof(amount), typeof(rate), typeof(big) FROM sales LIMIT 1") == "real|real|text\n")
        #expect(try cli.sqlite("SELECT printf('%.2f', sum(amount)) FROM sales") == "\(cents / 100).\(String(format: "%02d", cents % 100))\n")
        #expect(try cli.sqlite("SELECT amount FROM sales WHERE id IN (1, 2, 127) ORDER BY amount") == "57.14\n79.2\n158.39\n")
        #expect(try cli.sqlite("SELECT big FROM sales WHERE id = 7") == "12345678901234567890.0007\n")

        let rx = try Receiver(dir: cli.dir + "/rx")
        defer { rx.stop() }
        let e = try cli.run(["export", "--from", "sales", "--key", "id", "--to", rx.url, "--format", "csv", "--json"])
        #expect(e.status == 0, "\(e.err)")
        var lines: [String] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: rx.dir) where name.hasSuffix(".csv") {
            lines += try String(contentsOfFile: rx.dir + "/" + name, encoding: .utf8).split(separator: "\n").map(String.init)
        }
        #expect(lines.contains("1,79.20,0.00000001,12345678901234567890.0001"), "\(lines.prefix(3))")
        #expect(lines.contains("10,791.91,0.00000000,12345678901234567890.0010"), "\(lines.prefix(3))")
    }

    /// Planning records one batch while it encodes the next: a batch the ledger refuses ends
    /// the run with the ledger's reason (nothing recorded after it, the spooled files nobody
    /// recorded swept later), and the next run sends every row once.
    @Test func aBatchTheLedgerRefusesEndsTheRunAndTheNextSendsTheRest() throws {
        let cli = try CLI()
        try table(cli, rows: 1...1_000)
        let rx = try Receiver(dir: cli.dir + "/rx")
        defer { rx.stop() }
        let export = ["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "100", "--concurrency", "1"]
        #expect(try cli.run(export + ["--where", "id < 0"]).status == 0)  // makes the ledger's tables
        _ = try cli.sqlite("CREATE TRIGGER refuse_third BEFORE INSERT ON sluice_export_batches WHEN NEW.batch = 3 BEGIN SELECT RAISE(ABORT, 'the ledger is full'); END")
        let failed = try cli.run(export)
        #expect(failed.status != 0 && failed.err.contains("the ledger is full"), "\(failed.err)")
        #expect(try cli.sqlite("SELECT group_concat(batch) FROM sluice_export_batches").trimmingCharacters(in: .whitespacesAndNewlines) == "1,2")
        _ = try cli.sqlite("DROP TRIGGER refuse_third")
        let r = try cli.run(export + ["--json"])
        #expect(r.status == 0, "\(r.err)")
        let counts = try rx.idCounts()
        #expect(counts.count == 1_000 && counts.values.allSatisfy { $0 == 1 })
        let spool = try #require(try FileManager.default.contentsOfDirectory(atPath: cli.dir + "/.sluice/exports").first)
        let files = try FileManager.default.contentsOfDirectory(atPath: cli.dir + "/.sluice/exports/" + spool).filter { $0.hasPrefix("batch-") }
        let planned = try cli.sqlite("SELECT count(*) FROM sluice_export_batches WHERE state <> 'delivered'").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(planned == "0" && files.isEmpty, "left: \(files)")
    }

    @Test func killedMidRunThenReRunLosesNothingAndSendsNothingTwice() throws {
        let cli = try CLI()
        try table(cli, rows: 1...30_000)
        let rx = try Receiver(dir: cli.dir + "/rx", args: ["--delay", "0.15"])
        defer { rx.stop() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "500", "--concurrency", "2"]
        p.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        try rx.waitForRows(atLeast: 1)
        // A second export to the same receiver while the first runs is refused, not run twice.
        let second = try cli.run(["export", "--from", "t", "--key", "id", "--to", rx.url])
        #expect(second.status != 0 && second.err.contains("another `sluice export`"), "\(second.err)")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let partial = try rx.idCounts().count
        #expect(partial > 0 && partial < 30_000, "killed after \(partial) rows")
        // A file spooled but never recorded (a crash between the two) is swept on the next run.
        let spool = try #require(try FileManager.default.contentsOfDirectory(atPath: cli.dir + "/.sluice/exports").first)
        let orphan = cli.write(".sluice/exports/\(spool)/batch-99999.csv", "id\n1\n")
        let r = try cli.run(["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "500", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let counts = try rx.idCounts()
        #expect(counts.count == 30_000 && counts.values.allSatisfy { $0 == 1 })
        #expect(!FileManager.default.fileExists(atPath: orphan))
    }

    @Test func filtersQueriesAndChangedRowsOnlyOnRequest() throws {
        let cli = try CLI()
        try table(cli, rows: 1...1_000)
        let rx = try Receiver(dir: cli.dir + "/rx")
        defer { rx.stop() }
        let base = ["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "300", "--json"]
        let even = try cli.run(base + ["--where", "id % 2 = 0"])
        #expect(even.status == 0, "\(even.err)")
        #expect(try cli.json(even.out)["planned_rows"] as? Int == 500)
        #expect(try rx.idCounts().keys.allSatisfy { $0 % 2 == 0 })
        let rest = try cli.run(base)
        #expect(try cli.json(rest.out)["planned_rows"] as? Int == 500)
        // Rows changed after delivery are not re-sent unless asked.
        _ = try cli.sqlite("UPDATE t SET name = 'renamed' WHERE id <= 10")
        #expect(try cli.json(try cli.run(base).out)["planned_rows"] as? Int == 0)
        let changed = try cli.run(base + ["--resend-changed"])
        #expect(changed.status == 0, "\(changed.err)")
        #expect(try cli.json(changed.out)["planned_rows"] as? Int == 10)
        #expect(try cli.json(try cli.run(base + ["--resend-changed"]).out)["planned_rows"] as? Int == 0)
        let counts = try rx.idCounts()
        #expect(counts.count == 1_000 && counts.allSatisfy { $0.value == ($0.key <= 10 ? 2 : 1) })

        // A read-only query instead of a table.
        let rx2 = try Receiver(dir: cli.dir + "/rx2")
        defer { rx2.stop() }
        let q = try cli.run(["export", "--query", "SELECT id, upper(name) AS name FROM t WHERE amount > 200", "--key", "id", "--to", rx2.url, "--json"])
        #expect(q.status == 0, "\(q.err)")
        #expect(try cli.json(q.out)["planned_rows"] as? Int == 200)
        let files = try FileManager.default.contentsOfDirectory(atPath: rx2.dir).filter { $0.hasSuffix(".csv") }
        let text = try files.map { try String(contentsOfFile: rx2.dir + "/" + $0, encoding: .utf8) }.joined()
        #expect(text.hasPrefix("id,name\n") && text.contains("900,NAME 900\n"), "\(text.prefix(80))")
        let twoStatements = try cli.run(["export", "--query", "SELECT id FROM t; DROP TABLE t", "--key", "id", "--to", rx2.url])
        #expect(twoStatements.status != 0 && twoStatements.err.contains("one SQL statement"), "\(twoStatements.err)")
        #expect(try cli.sqlite("SELECT count(*) FROM t").trimmingCharacters(in: .whitespacesAndNewlines) == "1000")
    }

    @Test func exportsFromPostgreSQLKilledAndReRunSendEachRowOnce() throws {
        let pg = try TestPostgres.fresh()
        _ = try pg.query("""
            CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price numeric(10,2), at timestamptz, tags jsonb, flag boolean, payload bytea, day date);
            INSERT INTO items SELECT i, 'item ' || i, i / 2.0, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
              jsonb_build_object('n', i), i % 3 = 0, decode(lpad(to_hex(i), 8, '0'), 'hex'), date '2024-01-01' + (i % 365)
            FROM generate_series(1, 20000) i
            """)
        let cli = try CLI()
        cli.write("sluice.yml", "database: \(pg.url)\n")
        let rx = try Receiver(dir: cli.dir + "/rx", args: ["--delay", "0.1"])
        defer { rx.stop() }
        let args = ["export", "--from", "items", "--key", "id", "--to", rx.url, "--batch-size", "500", "--concurrency", "2"]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Killed once some batches are in (not after a fixed delay: a loaded machine may not
        // have delivered any by then), well before the 40 batches at 0.1 s each are all sent.
        try rx.waitForRows(atLeast: 1)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let partial = try rx.idCounts().count
        #expect(partial > 0 && partial < 20_000, "killed after \(partial) rows")
        let r = try cli.run(args + ["--json"])
        #expect(r.status == 0, "\(r.err)")
        var counts = try rx.idCounts()
        #expect(counts.count == 20_000 && counts.values.allSatisfy { $0 == 1 })
        let files = try FileManager.default.contentsOfDirectory(atPath: rx.dir).filter { $0.hasSuffix(".csv") }
        let text = try files.map { try String(contentsOfFile: rx.dir + "/" + $0, encoding: .utf8) }.joined()
        #expect(text.hasPrefix("id,name,price,at,tags,flag,payload,day\n"))
        #expect(text.contains("\n3,item 3,1.50,2024-01-01 00:00:03.000000Z,\"{\"\"n\"\":3}\",true,\\x00000003,2024-01-04\n"), "\(text.prefix(300))")

        // Changed rows only on request; a query with a filter; the ledger lives in PostgreSQL.
        _ = try pg.query("UPDATE items SET price = price + 1 WHERE id <= 5")
        #expect(try cli.json(try cli.run(args + ["--json"]).out)["planned_rows"] as? Int == 0)
        #expect(try cli.json(try cli.run(args + ["--json", "--resend-changed"]).out)["planned_rows"] as? Int == 5)
        #expect(try cli.json(try cli.run(args + ["--json", "--resend-changed"]).out)["planned_rows"] as? Int == 0, "resent rows are unchanged since")
        counts = try rx.idCounts()
        #expect(counts.filter { $0.value == 2 }.map(\.key).sorted() == [1, 2, 3, 4, 5])
        let rx2 = try Receiver(dir: cli.dir + "/rx2")
        defer { rx2.stop() }
        let q = try cli.run(["export", "--query", "SELECT id, name FROM items WHERE flag", "--where", "id <= 3000", "--key", "id", "--to", rx2.url, "--json"])
        #expect(q.status == 0, "\(q.err)")
        #expect(try cli.json(q.out)["planned_rows"] as? Int == 1_000)
        let refused = try cli.run(["export", "--query", "DELETE FROM items RETURNING id", "--key", "id", "--to", rx2.url])
        #expect(refused.status != 0, "\(refused.out)")
        #expect(try pg.query("SELECT count(*) FROM items").trimmingCharacters(in: .whitespacesAndNewlines) == "20000")
        // 20,000 dense ids went out in 40 batches, each one range row; the 5 resent rows and
        // the query's every-third ids are keys.
        #expect(try pg.query("SELECT (SELECT count(*) FROM sluice_export_keys) || ' ' || (SELECT count(*) FROM sluice_export_ranges)")
            .trimmingCharacters(in: .whitespacesAndNewlines) == "1005 40")
        let status = try cli.run(["export", "status", "--to", rx.url])
        #expect(status.out.contains("delivered 41 batches (20005 rows), pending 0"), "\(status.out)")
    }

    /// A batch of consecutive ids is one range row from the start; `sluice gc` keeps runs of
    /// consecutive integer keys of other delivered batches as ranges: the ledger shrinks, and
    /// later runs still send only new rows, dead letters included once. `run(sql)` reads the
    /// database; the table `t` holds ids 1...10,000 but 5,001...5,010, so in batches of 1,500
    /// the fourth (4,501...6,010 less the gap) keeps its keys until `gc`.
    func ledgerCompaction(_ cli: CLI, sql: @escaping (String) throws -> String, addRows: () throws -> Void) throws {
        func count(_ q: String) throws -> Int { Int(try sql(q).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 }
        let port = CLI.freePort()
        var rx = try Receiver(dir: cli.dir + "/rx", args: ["--refuse-every", "3"], port: port)
        let export = ["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "1500", "--concurrency", "1", "--json"]
        let first = try cli.json(try cli.run(export).out)
        let delivered = try #require(first["delivered_rows"] as? Int)
        #expect(delivered > 0 && delivered < 9_990, "\(first)")
        // An export that resends changed rows needs each key's hash: its keys stay.
        let rx2 = try Receiver(dir: cli.dir + "/rx2")
        defer { rx2.stop() }
        cli.write("sluice.yml", (try String(contentsOfFile: cli.dir + "/sluice.yml", encoding: .utf8)) + """

            exports:
              hashed:
                from: t
                key: id
                to: \(rx2.url)
                resend_changed: true
            """)
        #expect(try cli.run(["export", "hashed"]).status == 0)
        #expect(try count("SELECT count(*) FROM sluice_export_keys") == 1_500 + 9_990, "the batch across the gap, and every key the hashed export planned")
        #expect(try count("SELECT count(*) FROM sluice_export_ranges") == 6, "the other six batches, dead or delivered, a range each")

        let dry = try cli.json(try cli.run(["gc", "--dry-run", "--json"]).out)
        #expect(dry["ledger_keys"] as? Int == 1_500, "\(dry)")
        #expect(try count("SELECT count(*) FROM sluice_export_keys") == 1_500 + 9_990)
        let gc = try cli.run(["gc", "--json"])
        let done = try cli.json(gc.out)
        #expect(done["ledger_keys"] as? Int == 1_500 && done["ledger_ranges"] as? Int == 2, "\(done)")
        #expect(try count("SELECT count(*) FROM sluice_export_keys") == 9_990, "the hashed export's keys stay")
        #expect(try count("SELECT count(*) FROM sluice_export_ranges") == 8)
        #expect(try count("SELECT count(*) FROM sluice_export_ranges WHERE lo <= 5000 AND hi >= 5011") == 0, "a gap splits a run")
        #expect(try cli.run(["gc"]).out.contains("0 export-ledger keys were kept as 0 ranges"))

        // The receiver is fixed; the dead letters go once, then only the rows added since.
        rx.stop()
        rx = try Receiver(dir: cli.dir + "/rx", port: port)
        defer { rx.stop() }
        _ = try cli.run(["export", "retry", "--to", rx.url])
        #expect(try cli.json(try cli.run(export).out)["delivered_rows"] as? Int == 9_990 - delivered)
        #expect(try cli.json(try cli.run(export).out)["planned_rows"] as? Int == 0)
        try addRows()  // 5,001...5,010 and 10,001...10,500
        #expect(try cli.json(try cli.run(export).out)["delivered_rows"] as? Int == 510)
        let counts = try rx.idCounts()
        #expect(counts.count == 10_500 && counts.values.allSatisfy { $0 == 1 })
        _ = try cli.run(["gc"])
        #expect(try count("SELECT count(*) FROM sluice_export_keys") == 9_990, "only the hashed export's keys are left")
        // The changed-rows export still sees changes (its keys kept their hashes).
        _ = try sql("UPDATE t SET name = 'changed' WHERE id = 7")
        #expect(try cli.json(try cli.run(["export", "hashed", "--json"]).out)["planned_rows"] as? Int == 510 + 1)
    }

    /// A batch of consecutive ids is recorded as one range row that keeps each row's hash:
    /// `--resend-changed` still finds the rows changed since, and a row resent becomes a key
    /// that `gc` never folds into a range overlapping the first.
    func rangedBatchesTellChangedRows(_ cli: CLI, sql: @escaping (String) throws -> String) throws {
        func count(_ q: String) throws -> Int { Int(try sql(q).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 }
        let rx = try Receiver(dir: cli.dir + "/rx")
        defer { rx.stop() }
        let export = ["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "300", "--json"]
        #expect(try cli.json(try cli.run(export).out)["delivered_rows"] as? Int == 1_000)
        #expect(try count("SELECT count(*) FROM sluice_export_keys") == 0 && count("SELECT count(*) FROM sluice_export_ranges") == 4)
        _ = try sql("UPDATE t SET name = 'changed' WHERE id IN (5, 6, 7, 650)")
        #expect(try cli.json(try cli.run(export).out)["planned_rows"] as? Int == 0, "never silently")
        #expect(try cli.json(try cli.run(export + ["--resend-changed"]).out)["planned_rows"] as? Int == 4)
        #expect(try cli.json(try cli.run(export + ["--resend-changed"]).out)["planned_rows"] as? Int == 0)
        #expect(try count("SELECT count(*) FROM sluice_export_keys") == 4)
        let gc = try cli.json(try cli.run(["gc", "--json"]).out)
        #expect(gc["ledger_keys"] as? Int == 0, "5...7 lie in the range 1...300: \(gc)")
        #expect(try count("SELECT count(*) FROM sluice_export_ranges") == 4)
        _ = try sql("UPDATE t SET name = 'again' WHERE id = 6")
        _ = try sql("UPDATE t SET name = 'later' WHERE id = 900")
        #expect(try cli.json(try cli.run(export + ["--resend-changed"]).out)["planned_rows"] as? Int == 2)
        #expect(try cli.json(try cli.run(export).out)["planned_rows"] as? Int == 0)
        let counts = try rx.idCounts()
        #expect(counts.count == 1_000 && counts.allSatisfy { $0.value == ([5, 7, 650, 900].contains($0.key) ? 2 : $0.key == 6 ? 3 : 1) }, "\(counts.filter { $0.value > 1 })")
    }

    @Test func rangedBatchesInSQLiteTellChangedRows() throws {
        let cli = try CLI()
        try table(cli, rows: 1...1_000)
        try rangedBatchesTellChangedRows(cli) { try cli.sqlite($0) }
    }

    @Test func rangedBatchesInPostgreSQLTellChangedRows() throws {
        let pg = try TestPostgres.fresh()
        _ = try pg.query("CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL); INSERT INTO t SELECT i, 'name ' || i FROM generate_series(1, 1000) i")
        let cli = try CLI()
        cli.write("sluice.yml", "database: \(pg.url)\n")
        try rangedBatchesTellChangedRows(cli) { try pg.query($0) }
    }

    /// Keys PostgreSQL has no `max()` for (uuid) and text keys page in their own order: each
    /// row once, across pages, and nothing again on a re-run.
    @Test func uuidAndTextKeysPageThroughPostgreSQL() throws {
        let pg = try TestPostgres.fresh()
        _ = try pg.query("""
            CREATE TABLE u (id uuid PRIMARY KEY, n int NOT NULL);
            INSERT INTO u SELECT md5(i::text)::uuid, i FROM generate_series(1, 700) i;
            CREATE TABLE w (code text PRIMARY KEY, n int NOT NULL);
            INSERT INTO w SELECT 'Code ' || i, i FROM generate_series(1, 700) i
            """)
        let cli = try CLI()
        cli.write("sluice.yml", "database: \(pg.url)\n")
        for (table, key) in [("u", "id"), ("w", "code")] {
            let rx = try Receiver(dir: cli.dir + "/rx-" + table)
            defer { rx.stop() }
            let export = ["export", "--from", table, "--key", key, "--to", rx.url, "--batch-size", "300", "--json"]
            let first = try cli.run(export)
            #expect(try cli.json(first.out)["delivered_rows"] as? Int == 700, "\(first.err)")
            #expect(try cli.json(try cli.run(export).out)["planned_rows"] as? Int == 0)
            let files = try FileManager.default.contentsOfDirectory(atPath: rx.dir).filter { $0.hasSuffix(".csv") }
            let lines = try files.flatMap { try String(contentsOfFile: rx.dir + "/" + $0, encoding: .utf8).split(separator: "\n").dropFirst() }
            #expect(lines.count == 700 && Set(lines.map { $0.split(separator: ",").last ?? "" }).count == 700)
        }
    }

    /// Ranges sent leave gaps: a later run reads only those, filling each batch across gaps
    /// (63 rows in nine batches of 7, not a short batch per gap), each row once.
    func gapsBetweenSentRanges(_ cli: CLI) throws {
        let rx = try Receiver(dir: cli.dir + "/rx")
        defer { rx.stop() }
        let export = ["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "10", "--json"]
        for part in ["id BETWEEN 1 AND 20", "id BETWEEN 31 AND 40", "id >= 95", "id IN (25, 27)"] {
            #expect(try cli.json(try cli.run(export + ["--where", part]).out)["planned_rows"] as? Int ?? 0 > 0)
        }
        let last = try cli.json(try cli.run(["export", "--from", "t", "--key", "id", "--to", rx.url, "--batch-size", "7", "--json"]).out)
        #expect(last["planned_rows"] as? Int == 63 && last["planned"] as? Int == 9, "\(last)")
        let counts = try rx.idCounts()
        #expect(counts.count == 101 && counts.values.allSatisfy { $0 == 1 } && counts[-7] == 1)
        #expect(try cli.json(try cli.run(export).out)["planned_rows"] as? Int == 0)
    }

    @Test func gapsBetweenSentRangesInSQLite() throws {
        let cli = try CLI()
        try table(cli, rows: 1...100)
        try table(cli, rows: -7...(-7), file: "low.csv")
        try gapsBetweenSentRanges(cli)
    }

    @Test func gapsBetweenSentRangesInPostgreSQL() throws {
        let pg = try TestPostgres.fresh()
        _ = try pg.query("CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL); INSERT INTO t SELECT i, 'name ' || i FROM generate_series(1, 100) i; INSERT INTO t VALUES (-7, 'low')")
        let cli = try CLI()
        cli.write("sluice.yml", "database: \(pg.url)\n")
        try gapsBetweenSentRanges(cli)
    }

    @Test func aCompactedLedgerInSQLiteStillSendsEachRowOnce() throws {
        let cli = try CLI()
        try table(cli, rows: 1...10_000)
        _ = try cli.sqlite("DELETE FROM t WHERE id BETWEEN 5001 AND 5010")
        cli.write("sluice.yml", "database: sluice.db\n")
        try ledgerCompaction(cli, sql: { try cli.sqlite($0) }) {
            try table(cli, rows: 5_001...5_010, file: "gap.csv")
            try table(cli, rows: 10_001...10_500, file: "more.csv")
        }
    }

    @Test func aCompactedLedgerInPostgreSQLStillSendsEachRowOnce() throws {
        let pg = try TestPostgres.fresh()
        _ = try pg.query("""
            CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL);
            INSERT INTO t SELECT i, 'name ' || i FROM generate_series(1, 10000) i WHERE i NOT BETWEEN 5001 AND 5010
            """)
        let cli = try CLI()
        cli.write("sluice.yml", "database: \(pg.url)\n")
        try ledgerCompaction(cli, sql: { try pg.query($0) }) {
            _ = try pg.query("INSERT INTO t SELECT i, 'name ' || i FROM generate_series(5001, 5010) i UNION ALL SELECT i, 'name ' || i FROM generate_series(10001, 10500) i")
        }
    }
}
