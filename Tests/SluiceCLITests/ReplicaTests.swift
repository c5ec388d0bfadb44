import Testing
import Foundation

/// Issue 21: several `sluice serve` replicas over one PostgreSQL control plane. Of the two,
/// one fires the schedules and one polls the watch (each a lease in the control plane); when
/// that replica is killed, the other takes over within a lease period and nothing fires or
/// loads twice.
@Suite struct ReplicaTests {
    @Test func aKilledReplicasSchedulesAndWatchesAreTakenOverAndFireOnce() async throws {
        let pg = try TestPostgres.fresh()
        let shared = NSTemporaryDirectory() + "sluice-replicas-" + UUID().uuidString
        for d in ["drops", "in"] { try FileManager.default.createDirectory(atPath: "\(shared)/\(d)", withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let s3 = try S3Server.shared()
        let bucket = "replicas-" + UUID().uuidString.prefix(8).lowercased()
        try s3.boto3("s3.create_bucket(Bucket='\(bucket)')")
        let yaml = """
            storage: s3://\(bucket)/sluice/
            watches:
              drops:
                source: \(shared)/drops
                into: registros
                interval: 0.5
            pipelines:
              minutely:
                source: \(shared)/in
                schedule: "* * * * *"
                into: registros
            """
        // Started together: both race for each lease, one wins each. A watched file's copy goes
        // to the storage, where a worker on either replica finds it.
        async let a = ServerProcess(yaml: yaml, server: "lease_seconds: 3", database: pg.url, env: s3.env)
        async let b = ServerProcess(yaml: yaml, server: "lease_seconds: 3", database: pg.url, env: s3.env)
        let replicas = try await [a, b]
        func holders() throws -> [String: String] {
            var out: [String: String] = [:]
            for line in try pg.query("SELECT name, holder FROM sluice.leases WHERE expires_at > clock_timestamp()").split(separator: "\n") {
                let f = line.split(separator: "|", maxSplits: 1)
                if f.count == 2 { out[String(f[0])] = String(f[1]) }
            }
            return out
        }
        func pid(_ holder: String?) -> Int32? { holder.flatMap { Int32($0.split(separator: ":").dropFirst().first ?? "") } }
        var held: [String: String] = [:]
        for _ in 0..<100 where held.count < 3 {
            held = try holders()
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(Set(held.keys) == ["schedules", "watch:drops", "runs"], "\(held)")
        let pids = replicas.map { $0.serve!.processIdentifier }
        #expect(held.values.allSatisfy { pids.contains(pid($0) ?? -1) }, "\(held) \(pids)")

        func drop(_ name: String, ids: ClosedRange<Int>) {
            var csv = "id,valor,referencia,category\n"
            for i in ids { csv += "\(i),\(i).5,ref\(i),A\n" }
            FileManager.default.createFile(atPath: "\(shared)/drops/\(name)", contents: Data(csv.utf8))
        }
        // The watch's rows (ids 1...n, each once); the schedule's row may have come or not yet.
        func count(_ n: Int) throws -> String {
            (try? pg.query("SELECT count(*) FILTER (WHERE id <= \(n)) || ' ' || count(DISTINCT id) FILTER (WHERE id <= \(n)) || ' ' || count(*) FILTER (WHERE id > \(n)) FROM registros"))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "no table yet"
        }
        func waitForRows(_ n: Int) async throws {
            for _ in 0..<300 where !(try count(n)).hasPrefix("\(n) \(n) ") { try await Task.sleep(for: .milliseconds(100)) }
            let c = try count(n)
            #expect(c.hasPrefix("\(n) \(n) ") && (c.hasSuffix(" 0") || c.hasSuffix(" 1")), "\(c)")
        }
        // A file for the schedule: whichever firing reads it, it loads once.
        FileManager.default.createFile(atPath: "\(shared)/in/late.csv", contents: Data("id,valor,referencia,category\n9001,1.5,late,B\n".utf8))
        drop("one.csv", ids: 1...100)
        try await waitForRows(100)

        // Kill the replica that polls the watch (it may hold the schedules too).
        let victim = try #require(replicas.first { $0.serve!.processIdentifier == pid(held["watch:drops"]) })
        let survivor = try #require(replicas.first { $0 !== victim })
        let killedAt = Date()
        kill(victim.serve!.processIdentifier, SIGKILL)
        victim.serve!.waitUntilExit()
        var now: [String: String] = [:]
        while Date().timeIntervalSince(killedAt) < 60 {
            now = try holders()
            if now.count == 3 && now.values.allSatisfy({ pid($0) == survivor.serve!.processIdentifier }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let handover = Date().timeIntervalSince(killedAt)
        // Quiet, a lease period and a standby's ask (about 2.5 s); the loaded suite has taken 14 s.
        print("replicas: the schedules and the watch taken over \(String(format: "%.1f", handover)) s after the kill (lease 3 s)")
        #expect(now.count == 3 && now.values.allSatisfy { pid($0) == survivor.serve!.processIdentifier }, "not taken over in 60 s: \(now)")
        drop("two.csv", ids: 101...250)
        try await waitForRows(250)

        // A firing after the kill runs on the survivor, once.
        var fired = ""
        for _ in 0..<1_000 {
            fired = try pg.query("SELECT count(*) FROM sluice.runs WHERE state = 'succeeded' AND scheduled_for > to_timestamp(\(killedAt.timeIntervalSince1970))")
            if fired != "0\n" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(fired != "0\n", "no firing after the kill was run")
        #expect(try count(250) == "250 250 1", "the scheduled pipeline's file loads once")
        #expect(try pg.query("SELECT scheduled_for FROM sluice.runs GROUP BY scheduled_for HAVING count(*) > 1") == "", "a firing ran twice")
        #expect(try pg.query("SELECT count(*) FROM sluice.jobs WHERE state <> 'complete'") == "0\n")
        let log = try String(contentsOfFile: survivor.logPath, encoding: .utf8)
        #expect(log.contains("holding the lease: running here"), "\(log.suffix(3000))")
    }
}

/// Issue 21: a run over a posted file (`POST /pipelines/NAME/runs`) outlives the replica
/// carrying it out: the file is kept in the storage, the run holds a lease while it runs, and
/// when that replica is killed the other carries the run on from the same file.
@Suite struct RunTakeoverTests {
    @Test func aRunWhoseReplicaDiedIsCarriedOnByAnother() async throws {
        let pg = try TestPostgres.fresh()
        let s3 = try S3Server.shared()
        let bucket = "runs-" + UUID().uuidString.prefix(8).lowercased()
        try s3.boto3("s3.create_bucket(Bucket='\(bucket)')")
        // Every answer takes 100 ms, two at once: 400 points take about 20 s.
        let geo = try Geocoder(["--slow-rate", "1", "--slow-seconds", "0.1"])
        defer { geo.stop() }
        let yaml = """
            storage: s3://\(bucket)/sluice/
            pipelines:
              geo:
                source: upload
                steps:
                  - cast: {id: int, lat: float, lon: float}
                  - enrich:
                      url: "http://127.0.0.1:\(geo.port)/reverse?format=jsonv2&lat={lat}&lon={lon}"
                      adapter: nominatim
                      concurrency: 2
                  - select: [id, lat, lon, city]
                into: places
            """
        async let a = ServerProcess(yaml: yaml, server: "lease_seconds: 3", database: pg.url, env: s3.env)
        async let b = ServerProcess(yaml: yaml, server: "lease_seconds: 3", database: pg.url, env: s3.env)
        let (first, second) = try await (a, b)
        let body = EnrichCLITests.points(400, distinct: 400, seed: 3, bad: false)
        let (status, o) = try await first.json("POST", "/pipelines/geo/runs?filename=points.csv", body: body, headers: ["Content-Type": "text/csv"])
        #expect(status == 202, "\(o)")
        let run = try #require(Int(o["run_id"] as? String ?? ""), "\(o)")
        // Killed mid-run (watched from a thread of its own, see `onThread`): some points asked,
        // the run's lease held by the first replica.
        let victim = first.serve!.processIdentifier
        let (holder, killedAt) = await onThread { () -> (String, Date) in
            var holder = ""
            for _ in 0..<600 {
                holder = (try? pg.query("SELECT holder FROM sluice.leases WHERE name = 'run:\(run)'")) ?? ""
                if !holder.isEmpty, ((try? geo.stats().calls) ?? 0) >= 40 { break }
                Thread.sleep(forTimeInterval: 0.05)
            }
            kill(victim, SIGKILL)
            return (holder, Date())
        }
        first.serve!.waitUntilExit()
        #expect(holder.contains(":\(victim):"), "\(holder)")
        var state = ""
        for _ in 0..<900 where !["succeeded\n", "failed\n"].contains(state) {
            try await Task.sleep(for: .milliseconds(100))
            state = try pg.query("SELECT state FROM sluice.runs WHERE id = \(run)")
        }
        print("runs: run \(run) ended \(state.trimmingCharacters(in: .whitespacesAndNewlines)) \(String(format: "%.1f", Date().timeIntervalSince(killedAt))) s after its replica was killed (lease 3 s)")
        let log = try String(contentsOfFile: second.logPath, encoding: .utf8)
        let error = try pg.query("SELECT error FROM sluice.runs WHERE id = \(run)")
        #expect(state == "succeeded\n", "\(error) \(log.suffix(2000))")
        #expect(log.contains("run \(run) lost its process"), "\(log.suffix(2000))")
        #expect(try pg.query("SELECT count(*), count(DISTINCT id), count(city) FROM places") == "400|400|400\n")
        #expect(try pg.query("SELECT count(*) FROM sluice.runs") == "1\n", "one run, carried on (not a second one)")
        #expect(try pg.query("SELECT count(*) FROM sluice.leases WHERE name LIKE 'run:%'") == "0\n", "the finished run's lease is forgotten")
    }
}

/// Issue 21: with `storage:` an upload leaves the API host's disk before the client hears 202,
/// so the API host may die at once: a worker on another host (its own folder, nothing shared
/// but PostgreSQL and the bucket) loads it, split into chunks that each fetch only their bytes.
@Suite struct SharedStorageTests {
    /// A storage that refuses the file (here: its bucket does not exist): the client hears 503
    /// and may send it again; nothing is recorded and no copy stays on the API host's disk.
    @Test func anUploadTheStorageRefusesIsNeitherRecordedNorKept() async throws {
        let pg = try TestPostgres.fresh()
        let s3 = try S3Server.shared()
        let api = try ServerProcess(yaml: "storage: s3://no-such-bucket-\(UUID().uuidString.prefix(8).lowercased())/sluice/", database: pg.url, noWorkers: true, env: s3.env)
        let (status, o) = try await api.json("POST", "/registros/_bulk?filename=a.csv", body: "id,valor\n1,1.5\n", headers: ["Content-Type": "text/csv"])
        #expect(status == 503 && (o["error"] as? String ?? "\(o)").contains("send it again"), "\(status) \(o)")
        #expect(try pg.query("SELECT count(*) FROM sluice.uploads") == "0\n" && pg.query("SELECT count(*) FROM sluice.jobs") == "0\n")
        let left = (FileManager.default.enumerator(atPath: api.cli.dir + "/.sluice/uploads")?.allObjects as? [String] ?? [])
            .filter { !(((try? FileManager.default.attributesOfItem(atPath: api.cli.dir + "/.sluice/uploads/" + $0))?[.type] as? FileAttributeType) == .typeDirectory) }
        #expect(left.isEmpty, "\(left)")
    }

    @Test func anUploadLoadsOnAnotherHostAfterTheAPIHostDied() async throws {
        let pg = try TestPostgres.fresh()
        let s3 = try S3Server.shared()
        let bucket = "shared-" + UUID().uuidString.prefix(8).lowercased()
        try s3.boto3("s3.create_bucket(Bucket='\(bucket)')")
        let storage = "storage: s3://\(bucket)/sluice/"
        let api = try ServerProcess(yaml: storage, database: pg.url, noWorkers: true, env: s3.env)
        let rows = 60_000
        let csv = api.bigCSV("big.csv", rows: rows)
        let (status, body) = try await api.request("POST", "/registros/_bulk?chunk_mb=1&filename=big.csv",
                                                   body: try Data(contentsOf: URL(fileURLWithPath: csv)), headers: ["Content-Type": "text/csv"])
        #expect(status == 202, "\(String(decoding: body, as: UTF8.self))")
        let job = try #require((try JSONSerialization.jsonObject(with: body) as? [String: Any])?["id"] as? Int)
        let local = (FileManager.default.enumerator(atPath: api.cli.dir + "/.sluice/uploads")?.allObjects as? [String] ?? [])
            .filter { !(((try? FileManager.default.attributesOfItem(atPath: api.cli.dir + "/.sluice/uploads/" + $0))?[.type] as? FileAttributeType) == .typeDirectory) }
        #expect(local.isEmpty, "the upload stayed on the API host: \(local)")
        let keys = try s3.boto3("print(json.dumps([o['Key'] for o in s3.list_objects_v2(Bucket='\(bucket)').get('Contents', [])]))")
        #expect(keys.contains("sluice/uploads/"), "\(keys)")
        kill(api.serve!.processIdentifier, SIGKILL)
        api.serve!.waitUntilExit()

        // Another host: its own folder and configuration; PostgreSQL and the bucket in common.
        let host = try CLI()
        host.write("sluice.yml", """
            database: \(pg.url)
            \(storage)
            worker:
              lease_seconds: 2
              poll_seconds: 0.2
            entities:
              registros:
                primary_key: [id]
            """)
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: CLI.binary)
        worker.arguments = ["worker", "--id", "other-host", "--concurrency", "2"]
        worker.environment = ProcessInfo.processInfo.environment.merging(s3.env) { $1 }
        worker.currentDirectoryURL = URL(fileURLWithPath: host.dir)
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle(forWritingAtPath: host.write("worker.log", ""))
        try worker.run()
        defer { worker.terminate(); worker.waitUntilExit() }
        var state = ""
        for _ in 0..<600 where !["complete\n", "error\n", "cancelled\n"].contains(state) {
            try await Task.sleep(for: .milliseconds(100))
            state = try pg.query("SELECT state FROM sluice.jobs WHERE id = \(job)")
        }
        let log = (try? String(contentsOfFile: host.dir + "/worker.log", encoding: .utf8)) ?? ""
        let error = try pg.query("SELECT error FROM sluice.jobs WHERE id = \(job)")
        #expect(state == "complete\n", "\(error) \(log.suffix(2000))")
        #expect(try pg.query("SELECT count(*), count(DISTINCT id) FROM registros") == "\(rows)|\(rows)\n")
        let chunks = Int(try pg.query("SELECT count(*) FROM sluice.jobs WHERE spec LIKE '%\"parent\":\(job)%'").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        #expect(chunks >= 2, "the file was not split (\(chunks) chunk jobs)")
    }
}

/// Issue 21: leases are judged on PostgreSQL's clock, never a host's. A worker whose clock
/// runs two minutes ahead (faketime) shares the queue with one whose clock is right: it must
/// not take the other's jobs as expired (nor would the other's leases look endless to it).
@Suite struct ClockSkewTests {
    @Test func aWorkerWhoseClockIsAheadDoesNotRescueLiveJobs() async throws {
        let pg = try TestPostgres.fresh()
        // A lease a loaded machine's heartbeats keep (a 2 s one can run out under the full suite),
        // still far shorter than the two minutes the other clock is ahead.
        let srv = try ServerProcess(database: pg.url, noWorkers: true, leaseSeconds: 30)
        try srv.startWorker("right")
        let ahead = Process()
        ahead.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        ahead.arguments = ["faketime", "-f", "+120s", CLI.binary, "worker", "--id", "ahead"]
        ahead.currentDirectoryURL = URL(fileURLWithPath: srv.cli.dir)
        ahead.standardOutput = FileHandle.nullDevice
        ahead.standardError = FileHandle(forWritingAtPath: srv.cli.write("worker-ahead.log", ""))
        try ahead.run()
        defer {
            // faketime does not pass SIGTERM on to the worker it runs: stop the worker itself.
            // Under faketime a stopped worker has been seen not to exit (its main task never
            // ended, every timer shifted): after 10 s it is killed, not waited on for ever.
            _ = try? TestPostgres.run(["pkill", "-TERM", "-P", String(ahead.processIdentifier)])
            let until = Date().addingTimeInterval(10)
            while ahead.isRunning && Date() < until { usleep(100_000) }
            if ahead.isRunning { _ = try? TestPostgres.run(["pkill", "-KILL", "-P", String(ahead.processIdentifier)]) }
            ahead.waitUntilExit()
        }
        let rows = 150_000
        let path = srv.bigCSV("big.csv", rows: rows)
        var ids: [Int] = []
        for k in 0..<6 {
            // The same rows six times over (forced: each is loaded, not skipped as a duplicate).
            let (s, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)", "force": true, "priority": \#(k)}"#)
            #expect(s == 202, "\(o)")
            ids.append(try #require(o["id"] as? Int))
        }
        for id in ids {
            let done = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
            #expect(done["state"] as? String == "complete", "\(done)")
        }
        #expect(try pg.query("SELECT count(*), count(DISTINCT id) FROM registros") == "\(rows)|\(rows)\n")
        let right = try String(contentsOfFile: srv.cli.dir + "/worker-right.log", encoding: .utf8)
        let skewed = try String(contentsOfFile: srv.cli.dir + "/worker-ahead.log", encoding: .utf8)
        #expect(try pg.query("SELECT sum(rescues) FROM sluice.jobs") == "0\n", "jobs were rescued while their worker held them:\n\(right.suffix(1500))\n\(skewed.suffix(1500))")
        #expect(!right.contains("lease was lost"), "\(right.suffix(2000))")
        #expect(right.contains("job complete") && skewed.contains("job complete"),
                "both workers ran jobs (the one ahead \(ahead.isRunning ? "runs" : "exited \(ahead.terminationStatus)")):\n\(right.suffix(800))\n\(skewed.suffix(800))")
    }
}

/// Issue 21's multi-host harness in the suite, bounded: scripts/hosts-faults.sh over network
/// namespaces (hosts with addresses only inside them, folders of their own; PostgreSQL and moto
/// on hosts of their own): the API host killed after its 202, a worker host's link cut while it
/// holds a chunk, the database host's link cut for 5 s mid-load, the S3 host's for 5 s while an
/// upload goes there; of two serve replicas on hosts of their own, the one polling a watch
/// killed; exact counts after each, and no orphan after `sluice gc`.
@Suite struct HostsTests {
    @Test func jobsOutliveADeadAPIHostAndCutLinks() async throws {
        // A minute or two of waiting, on a thread of its own: held on one of the two shared
        // threads it starved other tests (MySQL handshakes timed out behind it).
        let out = try await onThread { () -> Result<String, any Error> in
            Result { try TestPostgres.run(["env", "SLUICE_BIN=\(CLI.binary)", "CUT=5", TestPostgres.repoRoot + "/scripts/hosts-faults.sh", "300000", "2", "1"]) }
        }.get()
        #expect(out.contains("PASS: exact counts") && out.contains("PASS: complete") && out.contains("PASS: the upload")
                && out.contains("PASS: each watched file loaded once") && out.contains("PASS: no orphan"), "\(out)")
        print(out)
    }
}

/// A shared stage left behind (its chunk writer was cut off mid-COPY when the parent committed)
/// is dropped by `sluice gc`; the stage of a job still queued or running stays.
@Suite struct SharedStageCleanupTests {
    @Test func gcDropsTheStagesOfFinishedOrForgottenJobsOnly() async throws {
        let pg = try TestPostgres.fresh()
        let srv = try ServerProcess(database: pg.url, noWorkers: true)
        let path = srv.bigCSV("small.csv", rows: 10)
        let (s, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)"}"#)
        #expect(s == 202, "\(o)")
        let queued = try #require(o["id"] as? Int)
        _ = try pg.query("CREATE TABLE sluice.stage_\(queued) (x int); CREATE TABLE sluice.stage_999999 (x int)")
        let gc = try srv.cli.run(["gc"])
        #expect(gc.status == 0, "\(gc.err)")
        #expect(try pg.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'sluice' AND table_name LIKE 'stage_%' ORDER BY 1")
                == "stage_\(queued)\n")
    }
}

/// A chunked parent that loses its lease (rescued while its worker was cut off) must leave its
/// chunks to the attempt that takes it over: cancelling them made that attempt fail with
/// "chunk N failed: cancelled". The rescue is done here by hand, as `rescueExpired` does it,
/// while the parent's worker is stopped (under the loaded suite the chunks used to finish
/// before the test saw the parent coordinating).
@Suite struct ChunkedParentRescueTests {
    @Test func aParentThatLostItsLeaseLeavesItsChunksToTheNextAttempt() async throws {
        let pg = try TestPostgres.fresh()
        let srv = try ServerProcess(database: pg.url, noWorkers: true)
        let a = try srv.startWorker("A", concurrency: 2)
        let rows = 400_000
        let path = srv.bigCSV("big.csv", rows: rows)
        // The window, held open: once a parent has queued its chunks (some still to load), its
        // worker — the only one — is stopped (SIGSTOP), the parent taken from it, and the
        // worker let go on: it finds its lease lost, and must leave the chunks alone. Watched
        // from a thread started before the job: under the loaded suite the test's own task
        // may wait seconds for a turn on the shared threads, and the chunks were done by then.
        let open = """
            SELECT spec::json->>'parent' FROM sluice.jobs WHERE spec::json->>'parent' IS NOT NULL AND state <> 'complete'
            GROUP BY 1 HAVING count(*) > 2 LIMIT 1
            """
        let worker = a.processIdentifier
        let result = Box()
        Thread.detachNewThread {
            let until = Date().addingTimeInterval(120)
            var taken = ""
            while taken.isEmpty && Date() < until {
                guard let parent = (try? pg.query(open))?.trimmingCharacters(in: .whitespacesAndNewlines), !parent.isEmpty else {
                    Thread.sleep(forTimeInterval: 0.01)
                    continue
                }
                kill(worker, SIGSTOP)
                taken = (try? pg.query("""
                    UPDATE sluice.jobs SET state = 'queued', rescues = rescues + 1, lease_token = lease_token + 1, run_after = now(),
                      worker = NULL, lease_expires_at = NULL, attempts = greatest(attempts - 1, 0)
                    WHERE id = \(parent) AND state = 'processing'
                      AND (SELECT count(*) FROM sluice.jobs WHERE spec LIKE '%"parent":\(parent),%' AND state <> 'complete') > 2
                    RETURNING id
                    """)) ?? ""
                kill(worker, SIGCONT)
            }
            result.set(taken)
        }
        let (s, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "file://\#(path)", "chunk_mb": 1}"#)
        #expect(s == 202, "\(o)")
        let id = try #require(o["id"] as? Int)
        while result.get() == nil { try await Task.sleep(for: .milliseconds(50)) }
        let taken = result.get() ?? ""
        #expect(taken == "\(id)\n", "the parent was never seen coordinating its chunks")
        try srv.startWorker("B", concurrency: 2)
        let done = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(done["state"] as? String == "complete", "\(done)")
        #expect(try pg.query("SELECT count(*), count(DISTINCT id) FROM registros") == "\(rows)|\(rows)\n")
        #expect(try pg.query("SELECT count(*) FROM sluice.jobs WHERE state = 'cancelled'") == "0\n")
    }
}

/// `body`'s result, computed on a thread of its own: a test that must watch a process closely
/// cannot wait for a turn on the shared threads, which other tests' blocking calls keep busy.
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { c in Thread.detachNewThread { c.resume(returning: body()) } }
}

/// A value one thread sets and another reads.
final class Box: @unchecked Sendable {
    let lock = NSLock()
    var value: String?
    func set(_ v: String) { lock.withLock { value = v } }
    func get() -> String? { lock.withLock { value } }
}
