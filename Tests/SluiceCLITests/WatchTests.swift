import Testing
import Foundation
import SluiceTesting

/// An S3-compatible server for one test: the shared one from scripts/test.sh, or a private
/// moto started here (for tests that stop and restart it).
final class S3Server: @unchecked Sendable {
    let endpoint: String
    var process: Process?
    let port: Int

    /// The server scripts/test.sh started.
    static func shared() throws -> S3Server {
        guard let e = ProcessInfo.processInfo.environment["SLUICE_TEST_S3_ENDPOINT"], !e.isEmpty, let port = URL(string: e)?.port else {
            throw Oracle.Failure(description: "SLUICE_TEST_S3_ENDPOINT is not set: run the tests with scripts/test.sh (it starts the S3 server)")
        }
        return S3Server(endpoint: e, port: port)
    }

    init(endpoint: String, port: Int) {
        self.endpoint = endpoint
        self.port = port
    }

    /// A moto server of our own on a free port.
    static func privateServer() throws -> S3Server {
        let port = Int.random(in: 45_000..<55_000)
        let s = S3Server(endpoint: "http://127.0.0.1:\(port)", port: port)
        try s.start()
        return s
    }

    func start() throws {
        for _ in 0..<100 {
            // A restart on the same port can fail to bind while the old socket lingers:
            // start again until one process stays up and answers.
            if process?.isRunning != true {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                p.arguments = ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)]
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle.nullDevice
                try p.run()
                process = p
            }
            // A real request (ListBuckets) that fails at once while nothing listens (boto3
            // would retry each refused connection for seconds).
            if (try? GoogleFake.shell(["curl", "-sf", "-o", "/dev/null", "--max-time", "2", endpoint + "/"])) != nil { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw Oracle.Failure(description: "moto did not start on \(port)")
    }

    func stop() {
        if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        process = nil
    }

    var env: [String: String] {
        ["AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"]
    }

    /// Runs a boto3 snippet with `s3` a client of this server; returns stdout.
    @discardableResult
    func boto3(_ code: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", """
            import boto3, json
            s3 = boto3.client("s3", endpoint_url="\(endpoint)", aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
            \(code)
            """]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw Oracle.Failure(description: "boto3 failed: \(code)") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

@Suite(.serialized) struct WatchTests {
    func count(_ cli: CLI, _ sql: String) throws -> Int {
        Int(try cli.sqlite(sql).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    @Test func aFolderIsWatchedOnceStableRawCopiesKeptChangesReprocessed() throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("in/a.csv", "id,name\n1,a\n2,b\n")
        cli.write("in/b.csv", "id,name\n3,c\n")
        cli.write("in/notes.txt", "not data")
        cli.write("sluice.yml", "entities:\n  people:\n    primary_key: [id]\n")
        let args = ["watch", "in", "--into", "people", "--glob", "*.csv", "--raw", "raw", "--once", "--json"]
        // First poll: seen, not loaded (a file could still be growing).
        var r = try cli.run(args)
        #expect(r.status == 0, "\(r.err)")
        #expect(try cli.json(r.out)["loaded"] as? Int == 0)
        // Second poll: unchanged, so stable: loaded, and copied to raw/ first.
        r = try cli.run(args)
        #expect(try cli.json(r.out)["loaded"] as? Int == 2, "\(r.out) \(r.err)")
        #expect(try count(cli, "SELECT count(*) FROM people") == 3)
        #expect(try filesUnder(cli.dir + "/.sluice/uploads").isEmpty)  // fetched copies go once loaded
        let day = ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withFullDate]).split(separator: "-").joined(separator: "/")
        #expect(try String(contentsOfFile: cli.dir + "/raw/in-people/\(day)/a.csv", encoding: .utf8) == "id,name\n1,a\n2,b\n")
        // Nothing new: nothing loaded again.
        r = try cli.run(args)
        #expect(try cli.json(r.out)["loaded"] as? Int == 0)
        // A changed file is reprocessed (after it is stable).
        cli.write("in/b.csv", "id,name\n3,C\n4,d\n")
        _ = try cli.run(args)
        r = try cli.run(args)
        #expect(try cli.json(r.out)["loaded"] as? Int == 1, "\(r.out)")
        #expect(try cli.sqlite("SELECT name FROM people WHERE id = 3").trimmingCharacters(in: .whitespacesAndNewlines) == "C")
        #expect(try count(cli, "SELECT count(*) FROM people") == 4)
        // Under `ignore`, a changed file is recorded and left alone.
        cli.write("in/a.csv", "id,name\n1,zzz\n")
        _ = try cli.run(args + ["--on-change", "ignore"])
        _ = try cli.run(args + ["--on-change", "ignore"])
        #expect(try cli.sqlite("SELECT name FROM people WHERE id = 1").trimmingCharacters(in: .whitespacesAndNewlines) == "a")
        let status = try cli.run(["watch", "status", "in-people"])
        #expect(status.out.contains("a.csv") && status.out.contains("loaded") && status.out.contains("1 ignored"), "\(status.out)")
    }

    @Test func anS3PrefixIsWatchedWithRawCopiesInTheBucket() throws {
        let s3 = try S3Server.shared()
        let bucket = "watch-" + UUID().uuidString.lowercased().prefix(8)
        try s3.boto3("""
            s3.create_bucket(Bucket="\(bucket)")
            for i in range(5):
                s3.put_object(Bucket="\(bucket)", Key=f"input/o{i}.json", Body=json.dumps([{"id": i * 10 + j, "v": f"x{j}"} for j in range(10)]).encode())
            s3.put_object(Bucket="\(bucket)", Key="input/bad.json", Body=b'[{"id": 999, "v": ')
            s3.put_object(Bucket="\(bucket)", Key="elsewhere/o9.json", Body=b'[{"id": 5000, "v": "no"}]')
            """)
        let cli = try CLI()
        cli.write("sluice.yml", "entities:\n  items:\n    primary_key: [id]\n    mode: append\nworker:\n  max_attempts: 1\n")
        let args = ["watch", "s3://\(bucket)/input/", "--into", "items", "--glob", "input/*.json", "--min-age", "0",
                    "--raw", "s3://\(bucket)/raw/", "--name", "orders", "--once", "--json"]
        let r = try cli.run(args, env: s3.env)
        #expect(r.status == 3, "a malformed file fails its job: \(r.out) \(r.err)")
        let summary = try cli.json(r.out)
        #expect(summary["loaded"] as? Int == 5 && summary["failed_jobs"] as? Int == 1, "\(r.out)")
        #expect(try count(cli, "SELECT count(*) FROM items") == 50)
        #expect(try count(cli, "SELECT count(DISTINCT id) FROM items") == 50)
        // The raw layer holds each file as it came (checked with boto3), the bad one too.
        let raw = try s3.boto3("print(sorted(o['Key'].split('/')[-1] for o in s3.list_objects_v2(Bucket='\(bucket)', Prefix='raw/orders/')['Contents']))")
        #expect(raw == "['bad.json', 'o0.json', 'o1.json', 'o2.json', 'o3.json', 'o4.json']", "\(raw)")
        // The bad file stays where it was, and its failure is on record with the reason.
        #expect(try s3.boto3("print(s3.head_object(Bucket='\(bucket)', Key='input/bad.json')['ContentLength'])") == "18")
        let status = try cli.run(["watch", "status", "orders"])
        #expect(status.out.contains("input/bad.json") && status.out.contains("error"), "\(status.out)")
        // Polling again loads nothing twice (append mode would show it).
        let again = try cli.run(args, env: s3.env)
        #expect(try cli.json(again.out)["poll"].flatMap { ($0 as? [String: Any])?["queued"] as? Int } == 0, "\(again.out)")
        #expect(try count(cli, "SELECT count(*) FROM items") == 50)
    }

    /// S3 objects are whole once listed: loaded on the first poll, with the pattern written
    /// in the location itself.
    @Test func anS3PatternIsLoadedOnTheFirstPoll() throws {
        let s3 = try S3Server.shared()
        let bucket = "first-" + UUID().uuidString.lowercased().prefix(8)
        try s3.boto3("""
            s3.create_bucket(Bucket="\(bucket)")
            s3.put_object(Bucket="\(bucket)", Key="input/a.json", Body=b'[{"id": 1}, {"id": 2}]')
            s3.put_object(Bucket="\(bucket)", Key="input/b.csv", Body=b'id,x\\n3,y\\n')
            s3.put_object(Bucket="\(bucket)", Key="input/deeper/c.json", Body=b'[{"id": 4}]')
            """)
        let cli = try CLI()
        // The pattern in the location wins over the glob of a declared watch of that name.
        cli.write("sluice.yml", "watches:\n  items:\n    source: landing/\n    glob: \"other/*.csv\"\n    into: items\n")
        let r = try cli.run(["watch", "s3://\(bucket)/input/*.json", "--name", "items", "--into", "items", "--once", "--json"], env: s3.env)
        #expect(r.status == 0, "\(r.out) \(r.err)")
        #expect(try cli.json(r.out)["loaded"] as? Int == 1, "\(r.out)")
        #expect(try cli.sqlite("SELECT group_concat(id) FROM (SELECT id FROM items ORDER BY id)") == "1,2\n")
    }

    @Test func aWatcherKilledMidRunLosesNothingAndLoadsNothingTwice() throws {
        let s3 = try S3Server.shared()
        let bucket = "kill-" + UUID().uuidString.lowercased().prefix(8)
        try s3.boto3("""
            s3.create_bucket(Bucket="\(bucket)")
            for i in range(60):
                s3.put_object(Bucket="\(bucket)", Key=f"in/f{i:03}.csv", Body=("id,v\\n" + "".join(f"{i * 100 + j},{j}\\n" for j in range(100))).encode())
            """)
        let cli = try CLI()
        // Append mode: a file loaded twice would show as extra rows.
        cli.write("sluice.yml", "entities:\n  rows:\n    mode: append\nworker:\n  lease_seconds: 2\n  poll_seconds: 0.1\n")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["watch", "s3://\(bucket)/in/", "--into", "rows", "--min-age", "0", "--interval", "0.2", "--name", "k"]
        p.environment = ProcessInfo.processInfo.environment.merging(s3.env) { $1 }
        p.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        var loadedBefore = 0
        for _ in 0..<100 {
            Thread.sleep(forTimeInterval: 0.1)
            loadedBefore = (try? count(cli, "SELECT count(*) FROM rows")) ?? 0
            if loadedBefore >= 1_000 { break }
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(loadedBefore > 0 && loadedBefore < 6_000, "killed after \(loadedBefore) rows")
        // Restarted: jobs left mid-flight are rescued once their lease expires; new files are picked up.
        Thread.sleep(forTimeInterval: 2.2)
        for _ in 0..<3 {
            let r = try cli.run(["watch", "s3://\(bucket)/in/", "--into", "rows", "--min-age", "0", "--name", "k", "--once"], env: s3.env)
            #expect(r.status == 0, "\(r.err)")
        }
        #expect(try count(cli, "SELECT count(*) FROM rows") == 6_000)
        #expect(try count(cli, "SELECT count(DISTINCT id) FROM rows") == 6_000)
    }

    @Test func theS3ServerGoingAwayIsRiddenOutAndNothingIsSkipped() throws {
        let s3 = try S3Server.privateServer()
        defer { s3.stop() }
        try s3.boto3("""
            s3.create_bucket(Bucket="flaky")
            for i in range(3):
                s3.put_object(Bucket="flaky", Key=f"in/a{i}.csv", Body=f"id\\n{i}\\n".encode())
            """)
        let cli = try CLI()
        cli.write("sluice.yml", "entities:\n  t:\n    primary_key: [id]\nworker:\n  poll_seconds: 0.1\n")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLI.binary)
        p.arguments = ["watch", "s3://flaky/in/", "--into", "t", "--min-age", "0", "--interval", "0.2", "--name", "f"]
        p.environment = ProcessInfo.processInfo.environment.merging(s3.env) { $1 }
        p.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
        p.standardOutput = FileHandle.nullDevice
        let log = cli.dir + "/watch.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: log)
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        func waitFor(_ n: Int) -> Bool {
            for _ in 0..<150 {
                if (try? count(cli, "SELECT count(*) FROM t")) == n { return true }
                Thread.sleep(forTimeInterval: 0.1)
            }
            return false
        }
        #expect(waitFor(3))
        s3.stop()
        Thread.sleep(forTimeInterval: 1.5)
        #expect(p.isRunning, "the watcher keeps running while S3 is away")
        try s3.start()  // moto starts empty: the bucket comes back with new files
        try s3.boto3("""
            s3.create_bucket(Bucket="flaky")
            for i in range(3, 8):
                s3.put_object(Bucket="flaky", Key=f"in/a{i}.csv", Body=f"id\\n{i}\\n".encode())
            """)
        #expect(waitFor(8), "files landed after the outage are loaded")
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(text.contains("backing off"), "\(text.suffix(500))")
    }

    @Test func theBulkAPITakesS3URLsForAllowedBucketsOnly() async throws {
        let s3 = try S3Server.shared()
        let bucket = "api-" + UUID().uuidString.lowercased().prefix(8)
        try s3.boto3("""
            s3.create_bucket(Bucket="\(bucket)")
            s3.put_object(Bucket="\(bucket)", Key="drops/day 1.csv", Body=b"id,valor,referencia,category\\n1,2.5,a,x\\n2,3.5,b,y\\n")
            """)
        // The endpoint from sluice.yml, the credentials from the standard AWS variables.
        let srv = try ServerProcess(yaml: "s3:\n  endpoint: \(s3.endpoint)\n", server: "s3_buckets: [\(bucket)]",
                                    env: ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"])
        let (s, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "s3://\#(bucket)/drops/day 1.csv"}"#)
        #expect(s == 202, "\(o)")
        let id = try #require(o["id"] as? Int)
        let done = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(done["state"] as? String == "complete", "\(done)")
        #expect(try srv.cli.sqlite("SELECT count(*) FROM registros") == "2\n")
        let (refused, why) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "s3://other-bucket/x.csv"}"#)
        #expect(refused == 400 && "\(why)".contains("not allowed"), "\(why)")
    }

    @Test func serveRunsTheDeclaredWatches() async throws {
        // The watched folder does not exist yet: the watcher creates it and waits for files.
        let srv = try ServerProcess(yaml: """
            watches:
              drop:
                source: drop
                glob: "*.csv"
                into: registros
                min_age: 0
                interval: 0.2
            """)
        srv.cli.write("drop/a.csv", "id,valor,referencia,category\n1,2.5,a,x\n2,3.5,b,y\n")
        var n = ""
        for _ in 0..<100 {
            n = (try? srv.cli.sqlite("SELECT count(*) FROM registros")) ?? ""
            if n == "2\n" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(n == "2\n")
        let status = try srv.cli.run(["watch", "status", "drop"])
        #expect(status.out.contains("a.csv") && status.out.contains("loaded"), "\(status.out)")
    }
}

/// The FTP source against vsftpd (scripts/ftpserver.sh, started by scripts/test.sh).
@Suite(.serialized) struct FTPTests {
    static func server() throws -> (url: String, root: String) {
        let env = ProcessInfo.processInfo.environment
        guard let url = env["SLUICE_TEST_FTP_URL"], let root = env["SLUICE_TEST_FTP_ROOT"] else {
            throw Oracle.Failure(description: "SLUICE_TEST_FTP_URL is not set: run the tests with scripts/test.sh (it starts vsftpd)")
        }
        return (url, root)
    }

    /// Writes a file into the FTP user's folder (owned by that user, so FTP can move it).
    static func put(_ root: String, _ path: String, _ text: String) throws {
        let full = root + "/" + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: false, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["chown", "-R", "sluiceftp", root + "/" + path.prefix { $0 != "/" }]
        try p.run()
        p.waitUntilExit()
    }

    /// Issue 24: the geo example as seed 004 ran it — `.txt` drops of three-line records on an
    /// FTP server, parsed, geocoded and loaded by stages (examples/geo-etl/text.yml).
    @Test func theGeoExampleRunsFromTextFilesOnFTP() throws {
        let (url, root) = try Self.server()
        let geo = try Geocoder()
        defer { geo.stop() }
        let folder = "g" + UUID().uuidString.lowercased().prefix(8)
        let cli = try CLI()
        let example = TestPostgres.repoRoot + "/examples/geo-etl"
        _ = try TestPostgres.run(["python3", example + "/generate.py", "--files", "2", "--rows", "60", "--text", "--out", cli.dir + "/gen"])
        for name in ["points-0000.txt", "points-0001.txt"] {
            try Self.put(root, "\(folder)/drops/\(name)", try String(contentsOfFile: cli.dir + "/gen/" + name, encoding: .utf8))
        }
        let yml = try String(contentsOfFile: example + "/text.yml", encoding: .utf8)
            .replacingOccurrences(of: "ftp://sluiceftp:sluiceftp@127.0.0.1:2121/drops/", with: "\(url)/\(folder)/drops/")
            .replacingOccurrences(of: "127.0.0.1:8090", with: "127.0.0.1:\(geo.port)")
        cli.write("sluice.yml", yml)
        #expect(try cli.run(["pipelines", "validate"]).status == 0)
        let r = try cli.run(["run", "geo_txt", "--json", "--quiet"])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        let counts = try #require(try cli.json(r.out)["counts"] as? [String: Any], "\(r.out)")
        #expect(counts["read"] as? Int == 120 && counts["rejected"] as? Int == 0, "\(counts)")
        // Points repeat (half of the rows), so the table holds each point once, all geocoded.
        let (points, geocoded) = (try cli.sqlite("SELECT count(*) FROM places_txt"), try cli.sqlite("SELECT count(*) FROM places_txt WHERE city IS NOT NULL AND lat < 6"))
        #expect(points == geocoded && points != "0\n", "\(points) \(geocoded)")
        #expect(try cli.sqlite("SELECT count(*) FROM places_txt WHERE distance_km BETWEEN 0 AND 10 AND bearing BETWEEN 0 AND 360") == points)
    }

    @Test func anFTPFolderIsWatchedOnceAndAPipelineMovesWhatItLoaded() throws {
        let (url, root) = try Self.server()
        let folder = "t" + UUID().uuidString.lowercased().prefix(8)
        // Declared: two first loads into an undeclared entity at once would race to create its table.
        try Self.put(root, "\(folder)/in/p1.csv", "id,lat,lon\n1,-10.5,-40.25\n2,-11.5,-41.5\n")
        try Self.put(root, "\(folder)/in/p2.csv", "id,lat,lon\n3,-12.5,-42.5\n")
        let cli = try CLI()
        cli.write("sluice.yml", "entities:\n  pts:\n    primary_key: [id]\n")
        let args = ["watch", "\(url)/\(folder)/in/", "--into", "pts", "--glob", "\(folder)/in/*.csv", "--min-age", "0", "--raw", "raw", "--name", "ftp", "--once"]
        var r = try cli.run(args)
        #expect(r.status == 0 && r.out.contains("loaded 2"), "\(r.out)\(r.err)")
        r = try cli.run(args)  // the seen-file ledger: nothing twice
        #expect(r.out.contains("queued 0"), "\(r.out)")
        #expect(try cli.sqlite("SELECT count(*) FROM pts") == "3\n")
        #expect(FileManager.default.fileExists(atPath: cli.dir + "/raw/ftp"))
        // A changed file (new size) is a new version.
        try Self.put(root, "\(folder)/in/p2.csv", "id,lat,lon\n3,-12.5,-42.5\n4,-13.5,-43.5\n")
        r = try cli.run(args)
        #expect(r.out.contains("loaded 1"), "\(r.out)")
        // A pipeline from the same server, moving each file to done/ once its rows are in.
        cli.write("sluice.yml", """
            entities:
              pts:
                primary_key: [id]
            pipelines:
              from_ftp:
                source: \(url)/\(folder)/in/
                glob: "*.csv"
                steps:
                  - cast: {id: int, lat: float, lon: float}
                  - filter: lat < -10.6
                after_load: {move_to: \(folder)/done/}
                into: south
            """)
        r = try cli.run(["run", "from_ftp"])
        #expect(r.status == 0 && r.err.contains("2 source files moved"), "\(r.err)")
        #expect(try cli.sqlite("SELECT group_concat(id) FROM (SELECT id FROM south ORDER BY id)") == "2,3,4\n")
        #expect(FileManager.default.fileExists(atPath: "\(root)/\(folder)/done/p1.csv") && !FileManager.default.fileExists(atPath: "\(root)/\(folder)/in/p1.csv"))
        r = try cli.run(["run", "from_ftp"])
        #expect(r.status == 0 && r.err.contains("no file in \(url)/\(folder)/in/ matched *.csv"), "\(r.err)")
        r = try cli.run(["run", "from_ftp", "--fail-if-empty"])
        #expect(r.status == 4 && r.err.contains("--fail-if-empty"), "\(r.err)")
        // The glob is relative to the watched folder too (the moved files are found, and being
        // the bytes pts already loaded, load nothing twice); a pass that matched nothing says so.
        r = try cli.run(["watch", "\(url)/\(folder)/done/", "--into", "pts", "--glob", "*.csv", "--min-age", "0", "--name", "done", "--once"])
        #expect(r.status == 0 && r.out.contains("queued 2; loaded 0; same content as a loaded file 2"), "\(r.out)\(r.err)")
        r = try cli.run(["watch", "\(url)/\(folder)/done/", "--into", "pts", "--glob", "*.tsv", "--name", "none", "--once", "--fail-if-empty"])
        #expect(r.status == 4 && r.err.contains("no file in \(url)/\(folder)/done/ matched *.tsv"), "\(r.out)\(r.err)")
    }
}
