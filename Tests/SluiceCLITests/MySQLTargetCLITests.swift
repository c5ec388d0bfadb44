import Testing
import Foundation

/// A fresh database on the MariaDB server scripts/test.sh started, read with the `mariadb` client.
struct TestMySQL {
    let url: String
    let args: [String]

    static func fresh() throws -> TestMySQL {
        guard let admin = ProcessInfo.processInfo.environment["SLUICE_TEST_MYSQL_URL"], !admin.isEmpty else { throw TestPostgres.CLIError.missing }
        var c = URLComponents(string: admin)!
        let name = "sluice_cli_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let args = ["mariadb", "--no-defaults", "-h", c.host!, "-P", String(c.port!), "-u", c.user!, "-p\(c.password!)", "-N", "-B"]
        _ = try TestPostgres.run(args + ["-e", "CREATE DATABASE \(name) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"])
        c.path = "/" + name
        return TestMySQL(url: c.string!, args: args + [name])
    }

    func query(_ sql: String) throws -> String { try TestPostgres.run(args + ["-e", sql]) }

    /// Waits up to a minute until the server shows a `LOAD DATA` running; false if it never did.
    /// Does `action` as soon as a `LOAD DATA` runs in the server (up to a minute), watching
    /// from a thread of its own started now (see `onThread`); the box says "seen" or "".
    func duringLoadData(_ action: @escaping @Sendable () -> Void) -> Box {
        let box = Box()
        Thread.detachNewThread {
            for _ in 0..<3000 {
                let n = (try? query("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'LOAD DATA%'"))?
                    .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last.flatMap { Int($0) } ?? 0
                if n > 0 {
                    action()
                    return box.set("seen")
                }
                Thread.sleep(forTimeInterval: 0.02)
            }
            box.set("")
        }
        return box
    }

    /// A server of its own (scripts/mariadb.sh), for tests that restart it or change its settings.
    static func privateServer() throws -> (TestMySQL, dir: String) {
        var env: [String: String] = [:]
        for line in try TestPostgres.run([TestPostgres.repoRoot + "/scripts/mariadb.sh"]).split(separator: "\n") where line.hasPrefix("export ") {
            let kv = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1)
            env[String(kv[0])] = String(kv[1])
        }
        let c = URLComponents(string: env["SLUICE_TEST_MYSQL_URL"]!)!
        let args = ["mariadb", "--no-defaults", "-h", c.host!, "-P", String(c.port!), "-u", c.user!, "-p\(c.password!)", "-N", "-B", "sluice"]
        return (TestMySQL(url: env["SLUICE_TEST_MYSQL_URL"]!, args: args), env["SLUICE_TEST_MYSQL_DIR"]!)
    }

    static func server(_ command: String, _ dir: String) { _ = try? TestPostgres.run([TestPostgres.repoRoot + "/scripts/mariadb.sh", command, dir]) }
}

@Suite(.serialized) struct MySQLTargetCLITests {
    @Test func loadIntoMySQLWithExactCountsAndRejects() throws {
        let my = try TestMySQL.fresh()
        let cli = try CLI()
        cli.write("base.csv", "id,valor,referencia,category\n1,10.5,abc,A\n2,20.25,\"d,e\",B\n3,30,x,C\n")
        let r1 = try cli.run(["load", "base.csv", "--into", "registros", "--key", "id", "--target", my.url])
        #expect(r1.status == 0, "\(r1.err)")
        #expect(r1.out.contains("inserted  3"), "\(r1.out)")
        cli.write("changes.csv", "id,valor,referencia,category,op\n1,11,abc,A,U\n2,,,,D\n4,40,y,D,I\n4,41,y,D,U\n9,,,,D\n5,oops,z,E,I\n")
        let r2 = try cli.run(["load", "changes.csv", "--into", "registros", "--json"], env: ["SLUICE_TARGET_URL": my.url])
        #expect(r2.status == 0, "\(r2.err)")
        let stats = try #require(try cli.json(r2.out)["stats"] as? [String: Int])
        #expect(stats["read"] == 6 && stats["inserted"] == 1 && stats["updated"] == 1 && stats["deleted"] == 1, "\(stats)")
        #expect(stats["rejected"] == 1 && stats["skipped"] == 2, "\(stats)")
        #expect(try my.query("SELECT id, valor, referencia FROM registros ORDER BY id") == "1\t11\tabc\n3\t30\tx\n4\t41\ty\n")
        // Nothing of Sluice's own is left in the user's database.
        #expect(try my.query("SHOW TABLES") == "registros\n")
    }

    /// The bulk API and workers with the control plane on SQLite and the tables on MariaDB:
    /// a job completes with the MySQL load's figures, and the same file again is a duplicate.
    @Test func bulkJobsLoadIntoMySQLWithTheControlPlaneOnSQLite() async throws {
        let my = try TestMySQL.fresh()
        let srv = try ServerProcess(yaml: "target: \(my.url)")
        var csv = "id,valor,referencia,category\n"
        for i in 0..<20_000 { csv += "\(i),\(i).5,ref\(i),\(["A", "B"][i % 2])\n" }
        let path = srv.cli.write("batch.csv", csv)
        let (s, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)"}"#)
        #expect(s == 202)
        let id = try #require(o["id"] as? Int)
        let done = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(done["state"] as? String == "complete", "\(done)")
        #expect(stats(done)["inserted"] == 20_000, "\(done)")
        #expect(try my.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM registros") == "20000\t20000\n")
        #expect(try my.query("SELECT COUNT(*) FROM sluice_load_receipts") == "1\n")
        let (_, again) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)"}"#)
        let second = try await srv.wait(job: try #require(again["id"] as? Int)) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(second["duplicate_of"] as? Int == id, "\(second)")
        #expect(try my.query("SELECT COUNT(*) FROM registros") == "20000\n")
    }

    /// A worker killed while it loads into MySQL: another worker retries the job, and the
    /// table holds each row once.
    @Test func aKilledWorkerLeavesExactRowsInMySQL() async throws {
        let my = try TestMySQL.fresh()
        let srv = try ServerProcess(yaml: "target: \(my.url)", noWorkers: true)
        // A first load streams straight into its table, fast: 2M rows keep it busy long enough.
        let rows = 2_000_000
        let path = srv.bigCSV("big.csv", rows: rows)
        let a = try srv.startWorker("A")
        // Kill A while its LOAD DATA runs in MariaDB (seen in the server's process list, in a
        // tight loop: the job's progress, published each second, can miss a fast load, and
        // polling the SQLite control plane that often held up the worker's own writes).
        let worker = a.processIdentifier
        let watch = my.duringLoadData { kill(worker, SIGKILL) }
        let (_, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)"}"#)
        let id = try #require(o["id"] as? Int)
        while watch.get() == nil { try await Task.sleep(for: .milliseconds(50)) }
        #expect(watch.get() == "seen", "the load was never seen running; make the file bigger")
        try srv.startWorker("B")
        let done = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(done["state"] as? String == "complete", "\(done)")
        #expect(try my.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM registros") == "\(rows)\t\(rows)\n")
        #expect(stats(done)["inserted"] == rows, "\(done)")
    }

    /// Seed 004's pipeline (enrich through a geocoder) loading into MariaDB, its warehouse;
    /// the control plane (runs, the enrich cache) stays in the default SQLite file.
    @Test func anEnrichPipelineLoadsIntoMySQL() throws {
        let my = try TestMySQL.fresh()
        let geo = try Geocoder()
        defer { geo.stop() }
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("in/points.csv", EnrichCLITests.points(300, distinct: 120, seed: 4, bad: false))
        cli.write("sluice.yml", "target: \(my.url)\n" + EnrichCLITests.yml(port: geo.port, rate: 500))
        let r = try cli.run(["run", "geo"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try my.query("SELECT COUNT(*), COUNT(address), COUNT(city) FROM places") == "300\t300\t300\n")
        let again = try cli.run(["run", "geo", "--reprocess"])
        #expect(again.status == 0 && again.err.contains("120 from the cache, 0 fetched"), "\(again.err)")
        #expect(try my.query("SELECT COUNT(*) FROM places") == "300\n")
        #expect(try cli.sqlite("SELECT count(*) FROM sluice_runs") != "0\n")
    }

    /// The server restarts while a job streams rows into it: the dead connection fails the
    /// attempt as transient, the retry loads every row exactly once.
    @Test func mysqlRestartedMidLoadIsRetriedToExactCounts() async throws {
        let (my, dir) = try TestMySQL.privateServer()
        defer { TestMySQL.server("stop", dir) }
        // Retries every 0.2 s (doubling) must outlast a restart of a few seconds.
        let srv = try ServerProcess(yaml: "target: \(my.url)", worker: "max_attempts: 10")
        // Big enough that the restart lands while rows still stream in (a first load goes
        // straight into its table at about half a million rows a second here).
        let rows = 2_000_000
        let path = srv.bigCSV("big.csv", rows: rows)
        // Restarted while the server shows the LOAD DATA running (progress is published once
        // a second, and a loaded machine's status polls can miss the whole load).
        let watch = my.duringLoadData { TestMySQL.server("restart", dir) }
        let (_, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)"}"#)
        let id = try #require(o["id"] as? Int)
        while watch.get() == nil { try await Task.sleep(for: .milliseconds(50)) }
        #expect(watch.get() == "seen", "the load was never seen running; make the file bigger")
        let done = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(done["state"] as? String == "complete", "\(done)")
        #expect((done["attempts"] as? Int ?? 0) >= 2, "\(done)")
        #expect(stats(done) == ["read": rows, "inserted": rows, "updated": 0, "deleted": 0, "rejected": 0, "skipped": 0])
        #expect(try my.query("SELECT COUNT(*), COUNT(DISTINCT id) FROM registros") == "\(rows)\t\(rows)\n")
    }

    /// A server with a small max_allowed_packet (1 MiB, where Sluice sent 1 MiB packets and
    /// the server ended the load): the file goes in packets it takes, and a row three times
    /// as long loads (a row may span packets).
    @Test func aSmallMaxAllowedPacketStillTakesLongRows() throws {
        let (my, dir) = try TestMySQL.privateServer()
        defer { TestMySQL.server("stop", dir) }
        _ = try my.query("SET GLOBAL max_allowed_packet = 1048576")
        let cli = try CLI()
        cli.write("big.csv", "id,big\n1,small\n2,\(String(repeating: "x", count: 3_000_000))\n3,small\n")
        let r = try cli.run(["load", "big.csv", "--into", "bigt", "--key", "id", "--target", my.url, "--json"])
        #expect(r.status == 0, "\(r.err)")
        let stats = try #require(try cli.json(r.out)["stats"] as? [String: Int])
        #expect(stats["inserted"] == 3 && stats["rejected"] == 0, "\(stats)")
        #expect(try my.query("SELECT id, length(big) FROM bigt ORDER BY id") == "1\t5\n2\t3000000\n3\t5\n")
    }
}

/// Issue 19's repro: a row Sluice rejects itself, then the file's last row refused by the
/// database: each reject keeps its own line and fields (the second once had blank fields
/// and the first one's line on PostgreSQL).
@Suite struct ServerRejectLineTests {
    static let file = "id,codigo,q\n1,A,1\n2,B,1\n4,D,x\n5,A,1\n"

    func check(_ cli: CLI, _ out: (status: Int32, out: String, err: String), server: String) throws {
        #expect(out.status == 0, "\(out.err)")
        let files = try #require(try cli.json(out.out)["files"] as? [[String: Any]])
        let path = try #require(files.first?["rejects_file"] as? String)
        let lines = try String(contentsOfFile: cli.dir + "/" + path, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(lines)")
        #expect(lines.contains("4,D,x,4,column 'q': invalid int64 value 'x'"), "\(lines)")
        #expect(lines.contains { $0.hasPrefix("5,A,1,5,") && $0.contains("\(server) refused the row") }, "\(lines)")
    }

    @Test func onPostgreSQL() throws {
        let pg = try TestPostgres.fresh()
        _ = try pg.query("CREATE TABLE u2 (id int PRIMARY KEY, codigo text NOT NULL UNIQUE, q int CHECK (q > 0))")
        let cli = try CLI()
        cli.write("u2.csv", Self.file)
        try check(cli, try cli.run(["load", "u2.csv", "--into", "u2", "--json", "--database", pg.url]), server: "PostgreSQL")
    }

    @Test func onMySQL() throws {
        let my = try TestMySQL.fresh()
        _ = try my.query("CREATE TABLE u2 (id INT PRIMARY KEY, codigo VARCHAR(10) NOT NULL UNIQUE, q INT CHECK (q > 0))")
        let cli = try CLI()
        cli.write("u2.csv", Self.file)
        try check(cli, try cli.run(["load", "u2.csv", "--into", "u2", "--json", "--target", my.url]), server: "MySQL")
    }
}

/// Issue 19: NaN in a float column became NULL in SQLite, unnoticed and uncounted; it is a
/// reject with its reason (MySQL refuses it the same way; PostgreSQL stores NaN).
@Suite struct NaNRejectTests {
    @Test func onSQLite() throws {
        let cli = try CLI()
        cli.write("sluice.yml", "entities:\n  t:\n    primary_key: [id]\n    columns: {id: int64, v: float64}\n")
        cli.write("n.csv", "id,v\n1,1.5\n2,NaN\n3,2\n")
        let r = try cli.run(["load", "n.csv", "--into", "t", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let stats = try #require(try cli.json(r.out)["stats"] as? [String: Int])
        #expect(stats["inserted"] == 2 && stats["rejected"] == 1, "\(stats)")
        #expect(try cli.sqlite("SELECT id, v FROM t ORDER BY id") == "1|1.5\n3|2.0\n")
        let files = try #require(try cli.json(r.out)["files"] as? [[String: Any]])
        let text = try String(contentsOfFile: cli.dir + "/" + (files.first?["rejects_file"] as? String ?? ""), encoding: .utf8)
        #expect(text.contains("2,NaN,3,column 'v': NaN"), "\(text)")
    }
}

/// Issue 19: files as they come — `;` from Excel, `.tsv`, and a hint when a declared
/// delimiter reads the header as one column.
@Suite struct CSVDelimiterCLITests {
    @Test func semicolonsAndTabsAreFoundAndADeclaredMismatchIsExplained() throws {
        let cli = try CLI()
        cli.write("s.csv", "id;nome;valor\n1;Ana;10\n2;João;20\n")
        let r = try cli.run(["load", "s.csv", "--into", "s", "--key", "id"])
        #expect(r.status == 0 && r.out.contains("inserted  2"), "\(r.err)")
        #expect(try cli.sqlite("SELECT id, nome, valor FROM s ORDER BY id") == "1|Ana|10\n2|João|20\n")
        cli.write("t.tsv", "id\tnome\n1\tAna\n")
        #expect(try cli.run(["load", "t.tsv", "--into", "t"]).status == 0)
        #expect(try cli.sqlite("SELECT id, nome FROM t") == "1|Ana\n")
        let wrong = try cli.run(["load", "s.csv", "--into", "s2", "--delimiter", ","])
        #expect(wrong.status != 0 && wrong.err.contains("--delimiter ';'"), "\(wrong.err)")
        let yaml = try cli.run(["infer", "s.csv"])
        #expect(yaml.out.contains("csv: {delimiter: \";\"") && yaml.out.contains("{name: valor, type: int64}"), "\(yaml.out)")
    }
}

/// Issue 19: a Windows-1252 file from Excel loads with its accents (it was "invalid UTF-8" on
/// every accented row), found on its own or declared.
@Suite struct CSVEncodingCLITests {
    @Test func windows1252IsFoundAndLatin1CanBeDeclared() throws {
        let cli = try CLI()
        let cp = "id;nome;obs\n1;João;Açaí € “bom”\n2;Sé;–\n".data(using: .windowsCP1252)!
        FileManager.default.createFile(atPath: cli.dir + "/cp.csv", contents: cp)
        let r = try cli.run(["load", "cp.csv", "--into", "cp", "--key", "id"])
        #expect(r.status == 0 && r.out.contains("inserted  2") && r.out.contains("rejected  0"), "\(r.out) \(r.err)")
        #expect(try cli.sqlite("SELECT nome, obs FROM cp ORDER BY id") == "João|Açaí € “bom”\nSé|–\n")
        let yaml = try cli.run(["infer", "cp.csv"])
        #expect(yaml.out.contains("encoding: windows-1252"), "\(yaml.out)")
        FileManager.default.createFile(atPath: cli.dir + "/l1.csv", contents: "id,nome\n1,Ação\n".data(using: .isoLatin1)!)
        cli.write("sluice.yml", "entities:\n  l1:\n    csv: {encoding: latin-1}\n")
        #expect(try cli.run(["load", "l1.csv", "--into", "l1"]).status == 0)
        #expect(try cli.sqlite("SELECT nome FROM l1") == "Ação\n")
        let bad = try cli.run(["load", "l1.csv", "--into", "l2", "--encoding", "ebcdic"])
        #expect(bad.status != 0 && bad.err.contains("unknown encoding 'ebcdic'"), "\(bad.err)")
    }
}

/// Issue 19: decimal commas and thousands dots, declared on the entity or on the command line.
@Suite struct CSVNumberCLITests {
    @Test func brazilianNumbersLoadAsNumbers() throws {
        let cli = try CLI()
        cli.write("br.csv", "id;nome;valor;qtd\n1;Ana;1.234,56;1.000\n2;Bia;10,5;2\n3;Caio;12.5;1\n")
        let r = try cli.run(["load", "br.csv", "--into", "br", "--key", "id", "--decimal", ",", "--thousands", ".", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let stats = try #require(try cli.json(r.out)["stats"] as? [String: Int])
        #expect(stats["inserted"] == 2 && stats["rejected"] == 1, "\(stats)")  // 12.5 is not a number in this dialect
        #expect(try cli.sqlite("SELECT id, valor, qtd, typeof(valor) FROM br ORDER BY id") == "1|1234.56|1000|real\n2|10.5|2|real\n")
        cli.write("sluice.yml", "entities:\n  br2:\n    csv: {delimiter: \";\", decimal: \",\", thousands: \".\"}\n")
        #expect(try cli.run(["load", "br.csv", "--into", "br2", "--key", "id"]).status == 0)
        #expect(try cli.sqlite("SELECT sum(valor) FROM br2") == "1245.06\n")
        let yaml = try cli.run(["infer", "br.csv", "--decimal", ",", "--thousands", "."])
        #expect(yaml.out.contains("decimal: \",\"") && yaml.out.contains("{name: valor, type: float64}"), "\(yaml.out)")
    }
}

/// Issue 19: Excel's "Unicode text" (UTF-16LE with a byte-order mark, tab-separated) and a
/// UTF-16BE JSON file load as their text, surrogate pairs included.
@Suite struct UTF16CLITests {
    @Test func utf16FilesAreReadByTheirByteOrderMark() throws {
        let cli = try CLI()
        let text = "id\tnome\tcidade\n1\tJoão\tSão Paulo 🌎\n2\tAçaí\tBelém\n"
        FileManager.default.createFile(atPath: cli.dir + "/excel.txt", contents: Data([0xFF, 0xFE]) + text.data(using: .utf16LittleEndian)!)
        let r = try cli.run(["load", "excel.txt", "--into", "pessoas", "--format", "csv", "--key", "id"])
        #expect(r.status == 0 && r.out.contains("inserted  2"), "\(r.out)\(r.err)")
        #expect(try cli.sqlite("SELECT nome, cidade FROM pessoas ORDER BY id") == "João|São Paulo 🌎\nAçaí|Belém\n")
        let json = #"[{"id": 1, "s": "ünïcödé 🎉"}]"#
        FileManager.default.createFile(atPath: cli.dir + "/be.json", contents: Data([0xFE, 0xFF]) + json.data(using: .utf16BigEndian)!)
        #expect(try cli.run(["load", "be.json", "--into", "j"]).status == 0)
        #expect(try cli.sqlite("SELECT s FROM j") == "ünïcödé 🎉\n")
        // A lone surrogate is not text: that row is rejected, the others load.
        var bytes: [UInt8] = [0xFF, 0xFE] + Array("id,s\n1,a\n2,".data(using: .utf16LittleEndian)!) + [0x00, 0xD8] + Array("\n3,c\n".data(using: .utf16LittleEndian)!)
        FileManager.default.createFile(atPath: cli.dir + "/bad.csv", contents: Data(bytes))
        bytes = []
        let b = try cli.run(["load", "bad.csv", "--into", "bad", "--json"])
        #expect((try cli.json(b.out)["stats"] as? [String: Int]).map { $0["inserted"] == 2 && $0["rejected"] == 1 } == true, "\(b.out)\(b.err)")
    }
}

/// Issue 19: dates as Brazilian systems write them — found when a day over 12 proves it,
/// declared otherwise, never guessed — into SQLite and PostgreSQL.
@Suite struct CSVDateCLITests {
    @Test func dayFirstDatesAreFoundOrDeclaredAndNeverGuessed() throws {
        let cli = try CLI()
        cli.write("br.csv", "id;data;quando\n1;25/12/2024;25/12/2024 10:30\n2;01/02/2024;01/02/2024 08:00:05\n3;;\n")
        let r = try cli.run(["load", "br.csv", "--into", "br", "--key", "id"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try cli.sqlite("SELECT id, data, quando FROM br ORDER BY id") == "1|2024-12-25|2024-12-25 10:30:00.000000\n2|2024-02-01|2024-02-01 08:00:05.000000\n3||\n")
        let yaml = try cli.run(["infer", "br.csv"])
        #expect(yaml.out.contains("date_format: \"%d/%m/%Y\"") && yaml.out.contains("{name: data, type: date}"), "\(yaml.out)")
        // 01/02/2024 alone is January or February: text, and infer says why.
        cli.write("amb.csv", "id,d\n1,01/02/2024\n2,03/04/2024\n")
        let amb = try cli.run(["infer", "amb.csv"])
        #expect(amb.out.contains("{name: d, type: text}") && amb.err.contains("no day over 12"), "\(amb.out)\(amb.err)")
        #expect(try cli.run(["load", "amb.csv", "--into", "amb", "--date-format", "%m/%d/%Y"]).status == 0)
        #expect(try cli.sqlite("SELECT d FROM amb ORDER BY id") == "2024-01-02\n2024-03-04\n")
        // Declared in sluice.yml, into PostgreSQL.
        let pg = try TestPostgres.fresh()
        cli.write("sluice.yml", "entities:\n  amb:\n    csv: {date_format: \"%d/%m/%Y\"}\n    columns: {id: int64, d: date}\n")
        #expect(try cli.run(["load", "amb.csv", "--into", "amb", "--database", pg.url]).status == 0)
        #expect(try pg.query("SELECT d FROM amb ORDER BY id") == "2024-02-01\n2024-04-03\n")
    }
}

/// Issue 19: `nan: null` on the entity loads NaN as NULL instead of rejecting the row, on
/// every target.
@Suite struct NaNAsNullCLITests {
    static let yml = "entities:\n  t:\n    primary_key: [id]\n    columns: {id: int64, v: float64}\n    nan: null\n"
    static let csv = "id,v\n1,1.5\n2,NaN\n"

    @Test func onSQLiteAndPostgreSQLAndMySQL() throws {
        let cli = try CLI()
        cli.write("sluice.yml", Self.yml)
        cli.write("n.csv", Self.csv)
        let r = try cli.run(["load", "n.csv", "--into", "t", "--json"])
        #expect((try cli.json(r.out)["stats"] as? [String: Int])?["inserted"] == 2, "\(r.out) \(r.err)")
        #expect(try cli.sqlite("SELECT id, v IS NULL FROM t ORDER BY id") == "1|0\n2|1\n")
        let pg = try TestPostgres.fresh()
        #expect(try cli.run(["load", "n.csv", "--into", "t", "--database", pg.url]).status == 0)
        #expect(try pg.query("SELECT id, v IS NULL FROM t ORDER BY id") == "1|f\n2|t\n")
        let my = try TestMySQL.fresh()
        #expect(try cli.run(["load", "n.csv", "--into", "t", "--target", my.url]).status == 0)
        #expect(try my.query("SELECT id, v IS NULL FROM t ORDER BY id") == "1\t0\n2\t1\n")
        cli.write("sluice.yml", Self.yml.replacingOccurrences(of: "nan: null", with: "nan: maybe"))
        let bad = try cli.run(["load", "n.csv", "--into", "t"])
        #expect(bad.status != 0 && bad.err.contains("nan must be null or reject"), "\(bad.err)")
    }
}
