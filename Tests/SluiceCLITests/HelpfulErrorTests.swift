import Testing
import Foundation

/// Mistakes a new user makes, answered with what to do (issue 19, "errors that help").
@Suite(.serialized) struct HelpfulErrorTests {
    static let yaml = """
        entities:
          registros:
            primary_key: [id]
            columns: {id: int64, valor: float64}
        pipelines:
          nightly:
            source: in
            into: registros
        """

    /// A misspelt `--into` next to declared entities used to create a new append table and
    /// turn delete rows into data, with exit 0.
    @Test func aMisspeltEntityIsAnErrorWithASuggestion() throws {
        let cli = try CLI()
        cli.write("sluice.yml", Self.yaml)
        cli.write("r.csv", "id,valor,op\n1,2,\n1,,D\n")
        let r1 = try cli.run(["load", "r.csv", "--into", "registro"])
        #expect(r1.status == 1 && r1.err.contains("did you mean 'registros'?") && r1.err.contains("--create"), "\(r1.err)")
        #expect(try cli.sqlite("SELECT name FROM sqlite_master WHERE name = 'registro'") == "")
        let r2 = try cli.run(["load", "r.csv", "--into", "registro", "--create"])
        #expect(r2.status == 0, "\(r2.err)")
        // An existing table is a target even when undeclared.
        let r3 = try cli.run(["load", "r.csv", "--into", "registro"])
        #expect(r3.status == 0, "\(r3.err)")
        let r4 = try cli.run(["lod", "r.csv"])
        #expect(r4.status == 64 && r4.err.contains("did you mean 'load'?"), "\(r4.err)")
        let r5 = try cli.run(["run", "nigthly"])
        #expect(r5.status == 1 && r5.err.contains("did you mean 'nightly'?"), "\(r5.err)")
        // `sluice help` lists what sluice.yml declares; each command's help has examples.
        let help = try cli.run(["help"])
        #expect(help.status == 0 && help.out.contains("entities: registros") && help.out.contains("pipelines: nightly"), "\(help.out)")
        for command in ["load", "infer", "convert", "export", "watch", "run", "runs", "schedule", "pipelines", "serve", "worker", "jobs", "migrate"] {
            let h = try cli.run([command, "--help"])
            #expect(h.out.contains("Examples:\n  sluice \(command)") || h.out.contains("Examples:\n  SLUICE_API_TOKENS"), "\(command)")
        }
    }

    /// `filter: qtty > 0` on a file without `qtty` used to validate, then drop every row with
    /// exit 0: the source's header is checked against the fields each step names.
    @Test func aStepNamingAFieldTheFileLacksIsAnError() throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("in/a.csv", "id,qty\n1,5\n2,0\n")
        cli.write("sluice.yml", """
            pipelines:
              p:
                source: in
                glob: "*.csv"
                steps:
                  - cast: {id: int, qty: int}
                  - filter: qtty > 0
                into: out
            """)
        let v = try cli.run(["pipelines", "validate"])
        #expect(v.status == 1 && v.err.contains("p, step 2 (filter): no field 'qtty' here; did you mean 'qty'?"), "\(v.err)")
        let r = try cli.run(["run", "p"])
        #expect(r.status == 1 && r.err.contains("did you mean 'qty'?"), "\(r.err)")
        #expect(try cli.sqlite("SELECT count(*) FROM sqlite_master WHERE name = 'out'") == "0\n")
        cli.write("sluice.yml", try String(contentsOfFile: cli.dir + "/sluice.yml", encoding: .utf8).replacingOccurrences(of: "qtty", with: "qty"))
        #expect(try cli.run(["pipelines", "validate"]).status == 0)
        #expect(try cli.run(["run", "p"]).status == 0)
        #expect(try cli.sqlite("SELECT id FROM out") == "1\n")
    }

    /// Rows a step refuses are all in the run's rejects file, with the step and the reason,
    /// and the run's counts (run --json, runs --json) name the file.
    @Test func stepRejectsGoToTheRunsRejectsFile() throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        var csv = "id,x\n"
        for i in 1...300 { csv += i % 2 == 0 ? "\(i),bad\(i)\n" : "\(i),\(i)\n" }
        cli.write("in/a.csv", csv)
        cli.write("sluice.yml", """
            pipelines:
              p:
                source: in
                steps:
                  - cast: {id: int, x: int}
                into: out
            """)
        let r = try cli.run(["run", "p", "--json", "--quiet"])
        #expect(r.status == 0, "\(r.err)")
        let counts = try #require(try cli.json(r.out)["counts"] as? [String: Any], "\(r.out)")
        #expect(counts["read"] as? Int == 300 && counts["rejected"] as? Int == 150 && counts["loaded"] as? Int == 150, "\(counts)")
        let file = try #require(counts["rejects_file"] as? String)
        let lines = try String(contentsOfFile: cli.dir + "/" + file, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 151 && lines[0] == "_source,_error", "\(lines.prefix(3))")
        #expect(lines[1] == "a.csv line 3,cast: x: 'bad2' is not an int" && lines[150] == "a.csv line 301,cast: x: 'bad300' is not an int", "\(lines[1])")
    }

    /// `sluice run` keeps a file ledger per pipeline (seed 004's extractor kept one in Redis):
    /// a second run loads nothing twice, a touched or copied file with the same bytes is
    /// the same file, and --reprocess reads everything again.
    @Test func aSecondRunReadsOnlyNewFiles() throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("in/a.csv", "id,x\n1,5\n2,6\n")
        cli.write("sluice.yml", "pipelines:\n  p:\n    source: in\n    into: out\n")
        #expect(try cli.run(["run", "p"]).status == 0)
        let again = try cli.run(["run", "p"])
        #expect(again.status == 0 && again.err.contains("1 file skipped: loaded by an earlier run") && !again.err.contains("no file in"), "\(again.err)")
        // A new modification time and a copy under another name: the same bytes, loaded once.
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: 1_600_000_000)], ofItemAtPath: cli.dir + "/in/a.csv")
        try FileManager.default.copyItem(atPath: cli.dir + "/in/a.csv", toPath: cli.dir + "/in/b.csv")
        cli.write("in/c.csv", "id,x\n3,7\n")
        let third = try cli.run(["run", "p"])
        #expect(third.status == 0 && third.err.contains("2 files skipped") && third.err.contains("2 with the same content"), "\(third.err)")
        #expect(try cli.sqlite("SELECT group_concat(id) FROM (SELECT id FROM out ORDER BY id)") == "1,2,3\n")  // append: twice would show
        #expect(try cli.run(["run", "p", "--reprocess"]).status == 0)
        #expect(try cli.sqlite("SELECT count(*) FROM out") == "8\n")
    }

    /// Two files with the same bytes in one watch pass (loaded at once by two jobs) go in once.
    @Test func theSameBytesTwiceInOnePassLoadOnce() throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        for name in ["a", "b", "c", "d"] { cli.write("in/\(name).csv", "id,x\n1,5\n2,6\n") }
        cli.write("sluice.yml", "worker:\n  concurrency: 4\n")
        var r = try cli.run(["watch", "in", "--into", "w", "--min-age", "0", "--once", "--json"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try cli.sqlite("SELECT count(*) FROM w") == "2\n")
        // Whatever raced is retried and completes as a duplicate.
        for _ in 0..<20 where try cli.sqlite("SELECT count(*) FROM sluice_jobs WHERE state != 'complete'") != "0\n" {
            Thread.sleep(forTimeInterval: 0.5)
            r = try cli.run(["watch", "in", "--into", "w", "--min-age", "0", "--once", "--json"])
        }
        #expect(try cli.sqlite("SELECT count(*) FROM sluice_jobs WHERE state = 'complete' AND result LIKE '%duplicate_of%'") == "3\n")
        #expect(try cli.sqlite("SELECT count(*) FROM w") == "2\n")
    }

    /// PostgreSQL down or refusing the login: one line within seconds, not a minute of
    /// connection-pool retries and a `circuitBreakerTripped`.
    @Test func anUnreachableDatabaseIsOneLineWithinSeconds() throws {
        let cli = try CLI()
        cli.write("r.csv", "id\n1\n")
        let started = Date()
        let r1 = try cli.run(["load", "r.csv", "--into", "t", "--database", "postgres://sluice@127.0.0.1:1/db"])
        #expect(r1.status == 1 && r1.err == "error: cannot connect to PostgreSQL at 127.0.0.1:1: connection refused — is it running?\n", "\(r1.err)")
        #expect(Date().timeIntervalSince(started) < 5)
        guard let admin = ProcessInfo.processInfo.environment["SLUICE_TEST_POSTGRES_URL"] else {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "no PostgreSQL")
            return
        }
        var c = URLComponents(string: admin)!
        c.user = "nobody"
        let r2 = try cli.run(["export", "--from", "t", "--key", "id", "--to", "http://127.0.0.1:1/", "--database", c.string!])
        #expect(r2.status == 1 && r2.err.contains("role \"nobody\" does not exist") && r2.err.split(separator: "\n").count == 1, "\(r2.err)")
    }

    /// `--dry-run` applies the load and rolls it back: the counts are exactly those of the real
    /// load (a row PostgreSQL refuses included), and nothing is written, not even a new table.
    @Test func aDryRunGivesTheExactCountsAndWritesNothing() throws {
        var targets: [(String, (String) throws -> String, rows: String)] = []
        let cli = try CLI()
        targets.append(("sluice.db", { try cli.sqlite($0) }, "4\n"))
        if let pg = try? TestPostgres.fresh() {
            _ = try pg.query("CREATE TABLE t (id bigint PRIMARY KEY, v text CHECK (v <> 'x'))")
            targets.append((pg.url, { try pg.query($0) }, "3\n"))  // the CHECK refuses 5,x
        } else {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "no PostgreSQL")
        }
        cli.write("base.csv", "id,v\n1,a\n2,b\n3,c\n")
        cli.write("ch.csv", "id,v,op\n1,A,\n2,,D\n4,d,\n4,e,\n9,,D\n5,x,\n")
        for (db, query, rows) in targets {
            #expect(try cli.run(["load", "base.csv", "--into", "t", "--key", "id", "--database", db]).status == 0)
            let dry = try cli.run(["load", "ch.csv", "--into", "t", "--dry-run", "--json", "--database", db])
            #expect(dry.status == 0, "\(dry.err)")
            #expect(try query("SELECT count(*) FROM t WHERE v = upper(v)") == "0\n", "nothing written: \(db)")
            let real = try cli.run(["load", "ch.csv", "--into", "t", "--json", "--database", db])
            let (d, r) = (try cli.json(dry.out), try cli.json(real.out))
            #expect(d["rehearsed"] as? Bool == true && d["dry_run"] as? Bool == true)
            #expect((d["stats"] as? [String: Int]) == (r["stats"] as? [String: Int]) && (r["stats"] as? [String: Int])?["inserted"] ?? 0 > 0, "\(d) \(r)")
            #expect(try query("SELECT count(*) FROM t") == rows, "\(db)")
            let fresh = try cli.run(["load", "base.csv", "--into", "fresh_t", "--key", "id", "--dry-run", "--database", db])
            #expect(fresh.status == 0 && fresh.out.contains("would load") && fresh.out.contains("inserted  3"), "\(fresh.out)")
            #expect(try query("SELECT count(*) FROM t WHERE v = upper(v)") == "1\n", "\(db)")  // A
            #expect(try cli.run(["load", "base.csv", "--into", "fresh_t", "--key", "id", "--dry-run", "--database", db]).status == 0)
            #expect(try query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'fresh_t'").hasPrefix("0") || db == "sluice.db")
        }
        #expect(try cli.sqlite("SELECT count(*) FROM sqlite_master WHERE name = 'fresh_t'") == "0\n")
    }

    /// Ctrl-C during a load rolls it back and says so, with exit 130.
    @Test func ctrlCRollsBackAndSaysTheTableIsUnchanged() throws {
        let cli = try CLI()
        cli.write("small.csv", "id,name\n1,a\n")
        #expect(try cli.run(["load", "small.csv", "--into", "t", "--key", "id"]).status == 0)
        var csv = "id,name\n"
        csv.reserveCapacity(30_000_000)
        for i in 0..<2_000_000 { csv += "\(i),name\(i)\n" }
        cli.write("big.csv", csv)
        try FileManager.default.removeItem(atPath: cli.dir + "/.sluice")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["load", "big.csv", "--into", "t"]
        p.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
        let errPath = cli.dir + "/stderr.txt"
        FileManager.default.createFile(atPath: errPath, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: errPath)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        // Once the sink has made its scratch folder the load is under way (the handler is installed).
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, p.isRunning, !FileManager.default.fileExists(atPath: cli.dir + "/.sluice/work") {
            Thread.sleep(forTimeInterval: 0.05)
        }
        Thread.sleep(forTimeInterval: 0.3)
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        let err = try String(contentsOfFile: errPath, encoding: .utf8)
        #expect(p.terminationStatus == 130 && err.contains("interrupted: rolled back, t unchanged"), "\(p.terminationStatus) \(err)")
        #expect(try cli.sqlite("SELECT count(*), max(name) FROM t") == "1|a\n")
    }
}
