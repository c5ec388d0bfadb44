import Testing
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SluiceTesting

/// The files (not folders) under `folder`, recursively; none when it does not exist.
func filesUnder(_ folder: String) throws -> [String] {
    guard let e = FileManager.default.enumerator(atPath: folder) else { return [] }
    var out: [String] = []
    while let p = e.nextObject() as? String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder + "/" + p, isDirectory: &isDir), !isDir.boolValue { out.append(p) }
    }
    return out
}

/// Runs the real `sluice` binary (built next to this test bundle) in a scratch folder.
struct CLI {
    let dir: String

    init() throws {
        dir = NSTemporaryDirectory() + "sluice-cli-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    static var binary: String {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [here.appendingPathComponent("sluice").path,
                          here.deletingLastPathComponent().appendingPathComponent("sluice").path] where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/sluice").path
    }

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        FileManager.default.createFile(atPath: dir + "/" + name, contents: Data(text.utf8))
        return dir + "/" + name
    }

    /// Runs `sluice` with `args` (or, with `program`, the program `args[0]`) in the test's folder.
    func run(_ args: [String], env: [String: String] = [:], program: Bool = false) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program ? args[0] : Self.binary)
        p.arguments = program ? Array(args.dropFirst()) : args
        if !env.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 } }
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Both pipes drained at once: a command that logs more than a pipe holds (64 KiB) to
        // stderr would otherwise block while stdout is read, and never exit.
        nonisolated(unsafe) var e = Data()
        let drained = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            e = err.fileHandleForReading.readDataToEndOfFile()
            drained.signal()
        }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func sqlite(_ sql: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sqlite3", dir + "/sluice.db", sql]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: o, as: UTF8.self)
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick), for a process
    /// told to listen there: a random port could be one another test's server holds.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        return bound ? Int(UInt16(bigEndian: addr.sin_port)) : Int.random(in: 20_000..<40_000)
    }

    func json(_ text: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
    }
}

@Suite(.serialized) struct CLITests {
    /// `sluice bench queue` drains what it enqueued, every job completed once, on SQLite and
    /// on PostgreSQL, job by job and a claim at a time; the jobs it leaves are all complete.
    @Test func theQueueBenchmarkDrainsEveryJobItEnqueues() throws {
        let cli = try CLI()
        let pg = try TestPostgres.fresh()
        for (database, together) in [("sluice.db", false), ("sluice.db", true), (pg.url, true)] {
            let r = try cli.run(["bench", "queue", "--database", database, "--jobs", "300", "--workers", "3", "--batch", "7", "--json"]
                                + (together ? ["--batch-completions"] : []))
            #expect(r.status == 0, "\(r.err)")
            let report = try cli.json(r.out.split(separator: "\n").last.map(String.init) ?? "")
            #expect(report["completed"] as? Int == 300 && report["batch_completions"] as? Bool == together, "\(r.out)")
            #expect((report["jobs_per_s"] as? Double ?? 0) > 0)
        }
        #expect(try cli.sqlite("SELECT state, count(*) FROM sluice_jobs GROUP BY state") == "complete|600\n")
        #expect(try pg.query("SELECT state, count(*) FROM sluice.jobs GROUP BY state") == "complete|300\n")
    }

    @Test func loadsInfersAndMergesWithExactCounts() throws {
        let cli = try CLI()
        cli.write("base.csv", "id,valor,referencia,category\n1,10.5,abc,A\n2,20.25,\"d,e\",B\n3,30,x,C\n")
        let r1 = try cli.run(["load", "base.csv", "--into", "registros", "--key", "id"])
        #expect(r1.status == 0, "\(r1.err)")
        #expect(r1.out.contains("inserted  3"))
        cli.write("changes.csv", "id,valor,referencia,category,op\n1,11,abc,A,U\n2,,,,D\n4,40,y,D,I\n4,41,y,D,U\n9,,,,D\n5,oops,z,E,I\n")
        let r2 = try cli.run(["load", "changes.csv", "--into", "registros", "--json"])
        #expect(r2.status == 0, "\(r2.err)")
        let stats = try #require(try cli.json(r2.out)["stats"] as? [String: Int])
        #expect(stats["read"] == 6 && stats["inserted"] == 1 && stats["updated"] == 1 && stats["deleted"] == 1)
        #expect(stats["rejected"] == 1 && stats["skipped"] == 2)
        #expect(try cli.sqlite("SELECT id, valor, referencia FROM registros ORDER BY id") == "1|11.0|abc\n3|30.0|x\n4|41.0|y\n")
        let files = try #require(try cli.json(r2.out)["files"] as? [[String: Any]])
        let rejects = try #require(files.first?["rejects_file"] as? String)
        let text = try String(contentsOfFile: cli.dir + "/" + rejects, encoding: .utf8)
        #expect(text == "id,valor,referencia,category,op,_line,_error\n5,oops,z,E,I,7,column 'valor': invalid float64 value 'oops'\n")
    }

    /// `--parse-threads 3` cuts a 10 MB file into chunks parsed at once: a merge whose keys
    /// repeat across chunks keeps each key's last row, with the counts, bytes and rejects of
    /// one thread; `convert` writes the same rows either way.
    @Test func parsingOnSeveralThreadsKeepsTheFilesOrder() throws {
        let cli = try CLI()
        var text = "id,valor,name,op\n"
        for i in 0..<300_000 {
            text += "\(i % 70_000),\(i % 50_000 == 49_999 ? "bad" : String(i)),name-\(i)-padding,\(i % 9 == 4 ? "D" : "U")\n"
        }
        cli.write("big.csv", text)
        var tables: [String] = []
        for threads in ["1", "3"] {
            let r = try cli.run(["load", "big.csv", "--into", "t\(threads)", "--key", "id", "--json", "--quiet", "--parse-threads", threads])
            #expect(r.status == 0, "\(r.err)")
            let stats = try #require(try cli.json(r.out)["stats"] as? [String: Int])
            #expect(stats["read"] == 300_000 && stats["rejected"] == 5 && stats["skipped"] == 237_773, "\(stats)")
            #expect(stats["bytes"] == text.utf8.count, "every byte counted once")
            let rejects = try #require((try cli.json(r.out)["files"] as? [[String: Any]])?.first?["rejects_file"] as? String)
            tables.append(try cli.sqlite("SELECT count(*), sum(id), sum(valor), max(valor) FROM t\(threads)")
                          + (try String(contentsOfFile: cli.dir + "/" + rejects, encoding: .utf8)))
            let c = try cli.run(["convert", "big.csv", "out\(threads).csv", "--parse-threads", threads])
            #expect(c.status == 0, "\(c.err)")
        }
        #expect(tables[0] == tables[1], "\(tables)")
        let out = try ["out1.csv", "out3.csv"].map { try Data(contentsOf: URL(fileURLWithPath: cli.dir + "/" + $0)) }
        #expect(out[0] == out[1] && out[0].count > 5_000_000)
    }

    @Test func failuresExitNonZeroWithOneClearMessageAndChangeNothing() throws {
        let cli = try CLI()
        cli.write("a.csv", "id,n\n1,1\n")
        #expect(try cli.run(["load", "a.csv", "--into", "t", "--key", "id"]).status == 0)
        cli.write("bad.csv", "id,n\n2,2\n3,\"never closed\n4,4\n")
        let r = try cli.run(["load", "bad.csv", "--into", "t"])
        #expect(r.status == 1)
        #expect(r.err.hasPrefix("error: bad.csv:3: a quoted field opened on this line is never closed"))
        #expect(r.err.split(separator: "\n").count == 1)
        #expect(try cli.sqlite("SELECT count(*) FROM t") == "1\n")
        cli.write("rej.csv", "id,n\n5,x\n6,6\n")
        let m = try cli.run(["load", "rej.csv", "--into", "t", "--max-rejects", "0"])
        #expect(m.status == 1)
        #expect(m.err.contains("more than 0 rows rejected"))
        #expect(try cli.sqlite("SELECT count(*) FROM t") == "1\n")
        let missing = try cli.run(["load", "nope.csv", "--into", "t"])
        #expect(missing.status == 1 && missing.err.hasPrefix("error: nope.csv: cannot open"))
        let usage = try cli.run(["load", "a.csv"])
        #expect(usage.status != 0 && usage.err.contains("--into"))
    }

    @Test func inferPrintsYAMLThatLoadAccepts() throws {
        let cli = try CLI()
        cli.write("people.csv", "id,name,born,score\n1,Ana,1990-05-01,9.5\n2,Bo,,7\n")
        let r = try cli.run(["infer", "people.csv", "--key", "id"])
        #expect(r.status == 0)
        #expect(r.out == """
            entities:
              people:
                primary_key: [id]
                format: csv
                columns:
                  - {name: id, type: int64, nullable: false}
                  - {name: name, type: text}
                  - {name: born, type: date}
                  - {name: score, type: float64}

            """)
        cli.write("sluice.yml", r.out.replacingOccurrences(of: "type: float64", with: "type: \"decimal(5,1)\""))
        let l = try cli.run(["load", "people.csv", "--into", "people"])
        #expect(l.status == 0, "\(l.err)")
        #expect(try cli.sqlite("SELECT score, born FROM people ORDER BY id") == "9.5|1990-05-01\n7.0|\n")
        cli.write("sluice.yml", "entities:\n  people:\n    colums: []\n")
        let bad = try cli.run(["load", "people.csv", "--into", "people"])
        #expect(bad.status == 1 && bad.err.hasPrefix("error: sluice.yml:3: entities.people: unknown key 'colums'"))
    }

    @Test func gzipAndJSONInputs() throws {
        let cli = try CLI()
        cli.write("o.ndjson", "{\"id\": 1, \"customer\": {\"city\": \"Recife\"}}\n{\"id\": 2, \"customer\": null}\n")
        let gz = Process()
        gz.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        gz.arguments = ["gzip", "-k", cli.dir + "/o.ndjson"]
        try gz.run()
        gz.waitUntilExit()
        let r = try cli.run(["load", "o.ndjson.gz", "--into", "orders", "--key", "id", "--json"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try cli.sqlite("SELECT id, customer FROM orders ORDER BY id") == "1|{\"city\":\"Recife\"}\n2|\n")
    }
}

@Suite struct PipelineCLITests {
    @Test func aPipelineRunsItsStepsAndLoadsTheRows() throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("in/s1.csv", "id,cust,amount,qty,status,region\n1,a, 10.5,2,ok, south \n2,b,-3,1,ok,north\n3,c,abc,1,ok,east\n1,a,99,9,ok,south\n4,d,7,3,cancelled,west\n5,e,8,,ok,north\n")
        cli.write("in/s2.json", #"{"id": 6, "cust": "f", "amount": 12.25, "qty": 4, "status": "ok", "region": "east"}"# + "\n")
        cli.write("in/skip.txt", "not matched")
        cli.write("sluice.yml", """
            entities:
              sales:
                primary_key: [id]
            pipelines:
              clean_sales:
                source: in
                glob: "*.{csv,json}"
                steps:
                  - cast: {id: int, amount: float, qty: int}
                  - filter: amount > 0 and status != 'cancelled'
                  - derive:
                      total: amount * coalesce(qty, 1)
                      region: upper(trim(region))
                  - rename: {cust: customer}
                  - dedupe: [id]
                  - select: [id, customer, total, region]
                into: sales
            """)
        let v = try cli.run(["pipelines", "validate"])
        #expect(v.status == 0 && v.out.contains("fields: id, customer, total, region"), "\(v.out)\(v.err)")
        let r = try cli.run(["run", "clean_sales"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("7 rows read, 3 dropped by the steps, 1 rejected (.sluice/runs/clean_sales-1/rejects.csv), 3 to load")
                && r.err.contains("s1.csv line 4: cast: amount: 'abc' is not a float"), "\(r.err)")
        #expect(try cli.sqlite("SELECT id, customer, total, region FROM sales ORDER BY id") == "1|a|21|SOUTH\n5|e|8|NORTH\n6|f|49|EAST\n")
    }

    @Test func mistakesAreRefusedWithTheirLine() throws {
        let cli = try CLI()
        for (steps, line, needle) in [
            ("      - select: [amount, region]\n      - filter: upper(region) > 5", 5, "cannot compare text with int"),
            ("      - cast: {amount: float}\n      - select: [amount]\n      - filter: region = 'x'", 6, "no field 'region'"),
            ("      - filter: amount > (1", 4, "expected ')'"),
            ("      - derive: {x: nope(1)}", 4, "unknown function nope"),
            ("      - cast: {a: money}", 4, "unknown type 'money'"),
            ("      - pivot: a", 4, "unknown step 'pivot'"),
        ] {
            cli.write("sluice.yml", "pipelines:\n  p:\n    source: in\n    steps:\n\(steps)\n    into: t\n")
            let r = try cli.run(["pipelines", "validate"])
            #expect(r.status != 0 && r.err.contains("sluice.yml:\(line + 1)") && r.err.contains(needle), "\(steps): \(r.err)")
        }
    }
}

/// scripts/receivers/geocoder.py: a Nominatim-like reverse geocoder that counts calls.
final class Geocoder: @unchecked Sendable {
    private(set) var process = Process()
    private(set) var port = 0

    /// Starts on a random port; on a busy machine the start may be slow, and a port already
    /// taken (the geocoder exits) is replaced by another.
    init(_ args: [String] = []) throws {
        for _ in 0..<3 {
            port = Int.random(in: 30_000..<45_000)
            process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "scripts/receivers/geocoder.py", "--port", String(port)] + args
            process.currentDirectoryURL = URL(fileURLWithPath: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            for _ in 0..<600 where process.isRunning {
                if (try? stats()) != nil { return }
                Thread.sleep(forTimeInterval: 0.05)
            }
            stop()
        }
        throw Oracle.Failure(description: "the geocoder did not start")
    }

    func stats() throws -> (calls: Int, maxPerSecond: Int) {
        let data = try Data(contentsOf: URL(string: "http://127.0.0.1:\(port)/stats")!)
        let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        return (o["calls"] as? Int ?? -1, o["max_per_second"] as? Int ?? -1)
    }

    func stop() { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
}

@Suite(.serialized) struct EnrichCLITests {
    static func points(_ n: Int, distinct: Int, seed: Int, bad: Bool) -> String {
        var rng = SplitMix(seed: UInt64(seed))
        let pts = (0..<distinct).map { _ in (Double(rng.next() % 300_000) / 10_000 - 30, Double(rng.next() % 250_000) / 10_000 - 60) }
        var csv = "id,lat,lon\n"
        for i in 0..<n { csv += "\(seed * 100_000 + i),\(pts[i % distinct].0),\(pts[i % distinct].1)\n" }
        if bad { csv += "\(seed * 100_000 + n),999,1\n" }
        return csv
    }

    static func yml(port: Int, rate: Int, source: String = "in", maxAttempts: Int = 8) -> String {
        """
        entities:
          places:
            primary_key: [id]
        pipelines:
          geo:
            source: \(source)
            steps:
              - cast: {id: int, lat: float, lon: float}
              - enrich:
                  url: "http://127.0.0.1:\(port)/reverse?format=jsonv2&lat={lat}&lon={lon}"
                  adapter: nominatim
                  concurrency: 8
                  rate: \(rate)
                  max_attempts: \(maxAttempts)
              - select: [id, lat, lon, address, city]
            into: places
        """
    }

    @Test func enrichRetriesCachesAndRejectsWithReasons() throws {
        let geo = try Geocoder(["--fail-rate", "0.2", "--throttle-rate", "0.1", "--slow-rate", "0.02", "--slow-seconds", "0.5"])
        defer { geo.stop() }
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("in/points.csv", Self.points(400, distinct: 200, seed: 1, bad: true))  // half the rows repeat a key
        // 12 attempts: with 30% of answers 429 or 503, 8 left one of 200 keys failing in ~1% of runs.
        cli.write("sluice.yml", Self.yml(port: geo.port, rate: 500, maxAttempts: 12))
        let r = try cli.run(["run", "geo"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.err.contains("201 distinct keys, 0 from the cache, 200 fetched") && r.err.contains("line 402: enrich 127.0.0.1: HTTP 400"), "\(r.err)")
        #expect(try cli.sqlite("SELECT count(*), count(address), count(city) FROM places") == "400|400|400\n")
        let first = try geo.stats().calls
        #expect(first >= 201, "each distinct key at least once: \(first)")
        // Again (the same file, so --reprocess): every answer comes from the cache; only the
        // refused key is asked again.
        let again = try cli.run(["run", "geo", "--reprocess"])
        #expect(again.err.contains("200 from the cache, 0 fetched"), "\(again.err)")
        let more = try geo.stats().calls - first
        #expect(more >= 1 && more <= 12, "the refused key only (with its retries): \(more)")
    }

    /// Runs `sluice run geo --config NAME.yml` for each name at once, in `cli`'s folder.
    static func runAtOnce(_ cli: CLI, _ names: [String]) -> [Process] {
        let runs = names.map { name -> Process in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CLI.binary)
            p.arguments = ["run", "geo", "--config", "\(name).yml", "--quiet"]
            p.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try? p.run()
            return p
        }
        for p in runs { p.waitUntilExit() }
        return runs
    }

    @Test func twoProcessesShareOneRateLimit() throws {
        let geo = try Geocoder()
        defer { geo.stop() }
        let cli = try CLI()
        for (i, dir) in ["a", "b"].enumerated() {
            try FileManager.default.createDirectory(atPath: cli.dir + "/\(dir)", withIntermediateDirectories: true)
            cli.write("\(dir)/points.csv", Self.points(60, distinct: 60, seed: 10 + i, bad: false))
            cli.write("\(dir).yml", Self.yml(port: geo.port, rate: 20, source: dir))
        }
        // Two workers on one control plane, each alone allowed 20 requests/s: together too.
        let runs = Self.runAtOnce(cli, ["a", "b"])
        #expect(runs.allSatisfy { $0.terminationStatus == 0 })
        let s = try geo.stats()
        #expect(s.calls == 120)
        #expect(s.maxPerSecond <= 21, "at most 20 in any second (one of slack: the server counts arrivals, not grants): \(s.maxPerSecond)")
        #expect(try cli.sqlite("SELECT count(*), count(address) FROM places") == "120|120\n")
    }

    /// Two processes enriching the same points at the same time ask the API once per point:
    /// a key one of them is looking up is waited for in the cache by the other.
    @Test func twoProcessesOnTheSamePointsAskEachPointOnce() throws {
        let geo = try Geocoder(["--latency", "0.05"])
        defer { geo.stop() }
        let cli = try CLI()
        let points = Self.points(300, distinct: 150, seed: 12, bad: false)
        for dir in ["a", "b"] {
            try FileManager.default.createDirectory(atPath: cli.dir + "/\(dir)", withIntermediateDirectories: true)
            cli.write("\(dir)/points.csv", points)
            cli.write("\(dir).yml", Self.yml(port: geo.port, rate: 1000, source: dir))
        }
        let runs = Self.runAtOnce(cli, ["a", "b"])
        #expect(runs.allSatisfy { $0.terminationStatus == 0 })
        let calls = try geo.stats().calls
        #expect(calls == 150, "each distinct point once (150), not once per process: \(calls)")
        #expect(try cli.sqlite("SELECT count(*), count(address), count(DISTINCT city) > 1 FROM places") == "300|300|1\n")
    }
}

@Suite struct ScheduleCLITests {
    func touch(_ path: String, _ iso: String) throws {
        try FileManager.default.setAttributes([.modificationDate: ISO8601DateFormatter().date(from: iso)!], ofItemAtPath: path)
    }

    @Test func aDailyScheduleFiresCatchesUpOnceAndBackfills() throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("sluice.yml", """
            pipelines:
              daily:
                source: in
                glob: "*.csv"
                schedule: "0 6 * * *"
                steps:
                  - cast: {id: int, amount: float}
                  - filter: amount > 0
                into: sales
                mode: append
              totals:
                source: in
                glob: "*.csv"
                after: [daily]
                steps:
                  - select: [id]
                into: seen
                mode: append
            """)
        let d1 = cli.write("in/d1.csv", "id,amount\n1,10\n2,-1\n")
        try touch(d1, "2026-10-31T12:00:00Z")
        // First firing: everything there is, then the pipeline after it.
        var t = try cli.run(["schedule", "tick", "--now", "2026-11-01T07:00:00Z"])
        #expect(t.status == 0 && t.out.contains("ran daily, totals"), "\(t.out)\(t.err)")
        #expect(!t.err.contains("missed"), "a pipeline that never ran starts at its latest firing: \(t.err)")
        #expect(try cli.sqlite("SELECT count(*) FROM sales") == "1\n")
        t = try cli.run(["schedule", "tick", "--now", "2026-11-01T08:00:00Z"])
        #expect(t.out.contains("nothing due"))
        // Three days down: one run catches up, reading only files newer than the last run.
        try touch(cli.write("in/d2.csv", "id,amount\n3,5\n"), "2026-11-02T12:00:00Z")
        try touch(cli.write("in/d3.csv", "id,amount\n4,6\n5,7\n"), "2026-11-03T12:00:00Z")
        t = try cli.run(["schedule", "tick", "--now", "2026-11-04T07:00:00Z"])
        #expect(t.out.contains("ran daily, totals") && t.err.contains("2 missed firings caught up in this run"), "\(t.out)\(t.err)")
        #expect(try cli.sqlite("SELECT group_concat(id) FROM (SELECT id FROM sales ORDER BY id)") == "1,3,4,5\n")  // each once (append mode)
        let runs = try cli.run(["runs", "daily", "--json"])
        let list = try JSONSerialization.jsonObject(with: Data(runs.out.utf8)) as? [[String: Any]] ?? []
        #expect(list.count == 2 && list.allSatisfy { $0["state"] as? String == "succeeded" })
        #expect(list.first?["scheduled_for"] as? String == "2026-11-04T06:00:00Z" && list.first?["window_from"] as? String == "2026-10-31T12:00:00Z")
        // A backfill of one day's window, without the downstream pipeline.
        let b = try cli.run(["run", "daily", "--from", "2026-11-02", "--to", "2026-11-03", "--no-downstream"])
        #expect(b.status == 0, "\(b.err)")
        #expect(try cli.sqlite("SELECT count(*) FROM sales WHERE id = 3") == "2\n" && cli.sqlite("SELECT count(*) FROM sales") == "5\n")
        #expect(try cli.sqlite("SELECT count(*) FROM seen") == "5\n")  // totals ran after each scheduled run, over the same window: d1, then d2 + d3
    }

    /// A firing whose run has not ended is not fired again beside it: while another process
    /// holds its lease the tick passes it by; once that lease lapses (the process died) the
    /// tick carries the same run on, so the firing has one run. A run that never took its
    /// lease is recorded as failed and the schedule goes on.
    @Test func aFiringStillRunningElsewhereIsNotFiredTwice() throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("sluice.yml", """
            pipelines:
              daily:
                source: in
                schedule: "0 6 * * *"
                into: sales
            """)
        try touch(cli.write("in/d1.csv", "id,amount\n1,10\n2,20\n"), "2026-10-31T12:00:00Z")
        #expect(try cli.run(["migrate"]).status == 0)
        let firing = ISO8601DateFormatter().date(from: "2026-11-01T06:00:00Z")!.timeIntervalSince1970
        let clock = "((julianday('now') - 2440587.5) * 86400.0)"
        _ = try cli.sqlite("INSERT INTO sluice_runs (id, pipeline, state, scheduled_for, started_at) VALUES (7, 'daily', 'running', \(firing), \(clock))")
        _ = try cli.sqlite("INSERT INTO sluice_leases VALUES ('run:7', 'other-host:1', 1, \(clock) + 60)")
        var t = try cli.run(["schedule", "tick", "--now", "2026-11-01T07:00:00Z"])
        #expect(t.status == 0 && t.out.contains("nothing due"), "\(t.out)\(t.err)")
        #expect(try cli.sqlite("SELECT count(*) FROM sluice_runs") == "1\n")
        // Its process died: the lease lapses and the tick carries run 7 on.
        _ = try cli.sqlite("UPDATE sluice_leases SET expires_at = \(clock) - 1")
        t = try cli.run(["schedule", "tick", "--now", "2026-11-01T07:00:00Z"])
        #expect(t.status == 0 && t.err.contains("run 7 lost its process"), "\(t.out)\(t.err)")
        #expect(try cli.sqlite("SELECT id, state FROM sluice_runs") == "7|succeeded\n")
        #expect(try cli.sqlite("SELECT count(*) FROM sales") == "2\n")
        // The next day's run began and died before it took its lease: no takeover can see it,
        // so the tick carries it on, and the firing keeps its one run.
        let next = firing + 86_400
        _ = try cli.sqlite("INSERT INTO sluice_runs (id, pipeline, state, scheduled_for, started_at) VALUES (8, 'daily', 'running', \(next), \(clock) - 3600)")
        t = try cli.run(["schedule", "tick", "--now", "2026-11-02T07:00:00Z"])
        #expect(t.status == 0 && t.out.contains("ran daily") && t.err.contains("run 8 never took its lease"), "\(t.out)\(t.err)")
        #expect(try cli.sqlite("SELECT group_concat(id || ':' || state) FROM (SELECT id, state FROM sluice_runs ORDER BY id)") == "7:succeeded,8:succeeded\n")
    }

    @Test func cyclesAndUnknownDependenciesAreRefusedWithTheirLine() throws {
        let cli = try CLI()
        cli.write("sluice.yml", "pipelines:\n  a:\n    source: in\n    after: [b]\n    into: t\n  b:\n    source: in\n    after: [a]\n    into: t\n")
        var r = try cli.run(["pipelines", "validate"])
        #expect(r.status != 0 && r.err.contains("cycle") && r.err.contains("sluice.yml:4"), "\(r.err)")
        cli.write("sluice.yml", "pipelines:\n  a:\n    source: in\n    after: [nope]\n    into: t\n")
        r = try cli.run(["pipelines", "validate"])
        #expect(r.status != 0 && r.err.contains("'nope' is not a pipeline") && r.err.contains("sluice.yml:4"), "\(r.err)")
        cli.write("sluice.yml", "pipelines:\n  a:\n    source: in\n    schedule: \"0 25 * * *\"\n    into: t\n")
        r = try cli.run(["pipelines", "validate"])
        #expect(r.status != 0 && r.err.contains("sluice.yml:4") && r.err.contains("hour"), "\(r.err)")
    }
}
