import Testing
import Foundation
@testable import SluiceQueue
@testable import SluiceSQLite
@testable import SluiceWorker
import SluiceConfig
import SluiceCore
import SluiceTesting
import SluiceStorage

/// A worker over a scratch folder: database, uploads, work dir and a clock tests can move.
struct WorkerHarness {
    let dir = TempDir()
    let driver: SQLiteQueueDriver
    let config: SluiceConfig
    let clock = TestClock()

    init(entities: String = "registros:\n    primary_key: [id]\n") throws {
        let cfg = try ConfigReader.parse("entities:\n  " + entities)
        var c = cfg
        c.database = dir.file("sluice.db")
        c.stateDir = dir.file(".sluice")
        config = c
        driver = try SQLiteQueueDriver(path: c.database)
    }

    func executor(leaseSeconds: Double = 30) -> JobExecutor {
        let clock = self.clock
        return JobExecutor(driver: driver, target: SQLiteDataTarget(databasePath: config.database), config: config,
                           policy: SourcePolicy(uploadDir: config.uploadDir, fileRoots: [dir.path]),
                           options: WorkerOptions(id: "test", leaseDuration: .milliseconds(Int64(leaseSeconds * 1000)), workDir: config.workDir),
                           now: { clock.now }, random: { 0.5 })
    }

    func worker() -> WorkerService {
        let clock = self.clock
        return WorkerService(driver: driver, executor: executor(), options: WorkerOptions(id: "test", workDir: config.workDir), now: { clock.now })
    }

    func submit(_ file: String, _ spec: (inout JobSpec) -> Void = { _ in }) async throws -> Job {
        var s = JobSpec(source: "file://" + dir.write(file, try String(contentsOfFile: dir.file(file), encoding: .utf8)))
        spec(&s)
        return try await driver.insertJob(JobInsertParams(entity: "registros", spec: s, now: clock.now)).job
    }

    func rows(_ sql: String) throws -> [[SQLiteValue]] { try SQLiteConnection(path: config.database).query(sql) }
}

/// A settable clock for lease tests.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var t = Date(timeIntervalSince1970: 1_800_000_000)
    var now: Date { lock.lock(); defer { lock.unlock() }; return t }
    func advance(_ s: Double) { lock.lock(); t = t.addingTimeInterval(s); lock.unlock() }
}

@Suite(.serialized) struct WorkerTests {
    @Test func loadsAJobAndRecordsExactStatsInTheSameTransaction() async throws {
        let h = try WorkerHarness()
        try await h.driver.migrate()
        h.dir.write("a.csv", "id,valor\n1,1.5\n2,2.5\n2,2.75\n3,x\n")
        let job = try await h.submit("a.csv")
        #expect(await h.worker().runOnce() == 1)
        let done = try #require(try await h.driver.job(id: job.id))
        #expect(done.state == .complete, "\(done.error ?? "")")
        let s = try #require(done.result?.stats)
        #expect(s.read == 4 && s.inserted == 3 && s.skipped == 1 && s.rejected == 0)
        #expect(try h.rows("SELECT id, valor FROM registros ORDER BY id") == [[.integer(1), .text("1.5")], [.integer(2), .text("2.75")], [.integer(3), .text("x")]])
        #expect(try h.rows("SELECT count(*) FROM sluice_loaded_files") == [[.integer(1)]])
        // The same bytes again: reported as a duplicate, not loaded twice.
        let again = try await h.driver.insertJob(JobInsertParams(entity: "registros", spec: JobSpec(source: "file://" + h.dir.file("a.csv")), now: h.clock.now)).job
        #expect(await h.worker().runOnce() == 1)
        let dup = try #require(try await h.driver.job(id: again.id))
        #expect(dup.state == .complete && dup.result?.duplicateOf == job.id)
        // Forced: loaded again (merge, so the table is the same; counts say updated).
        let forced = try await h.driver.insertJob(JobInsertParams(entity: "registros", spec: JobSpec(source: "file://" + h.dir.file("a.csv"), force: true), now: h.clock.now)).job
        _ = await h.worker().runOnce()
        #expect(try await h.driver.job(id: forced.id)?.result?.stats.updated == 3)
    }

    @Test func atomicAndBudgetedJobsFailWithRejectsKept() async throws {
        let h = try WorkerHarness(entities: "registros:\n    primary_key: [id]\n    columns: {id: int64, valor: float64}\n")
        try await h.driver.migrate()
        h.dir.write("bad.csv", "id,valor\n1,1\n2,oops\n3,3\n")
        let atomic = try await h.submit("bad.csv") { $0.atomic = true }
        _ = await h.worker().runOnce()
        let failed = try #require(try await h.driver.job(id: atomic.id))
        #expect(failed.state == .error)
        #expect(failed.error?.contains("more than 0 rows rejected") == true)
        let rejects = try #require(failed.result?.rejectsPath)
        #expect(try String(contentsOfFile: rejects, encoding: .utf8) == "id,valor,_line,_error\n2,oops,3,column 'valor': invalid float64 value 'oops'\n")
        #expect(try h.rows("SELECT count(*) FROM sqlite_schema WHERE name = 'registros'") == [[.integer(0)]])
        // Partial (the default): good rows load, the reject is listed.
        h.dir.write("bad2.csv", "id,valor\n1,1\n2,oops\n3,3\n")
        let partial = try await h.submit("bad2.csv")
        _ = await h.worker().runOnce()
        let ok = try #require(try await h.driver.job(id: partial.id))
        #expect(ok.state == .complete && ok.result?.stats.inserted == 2 && ok.result?.stats.rejected == 1)
        #expect(ok.result?.rejectsPath != nil)
    }

    @Test func aStaleWorkerCannotCommit() async throws {
        let h = try WorkerHarness()
        try await h.driver.migrate()
        h.dir.write("a.csv", "id,valor\n1,1\n2,2\n")
        _ = try await h.submit("a.csv")
        // Worker A claims, then stalls past its lease; the rescuer requeues; worker B claims.
        let a = try #require(try await h.driver.claimJobs(JobClaimParams(worker: "A", limit: 1, leaseDuration: .seconds(10), now: h.clock.now)).first)
        h.clock.advance(11)
        #expect(try await h.driver.rescueExpired(JobRescueParams(now: h.clock.now)) == 1)
        let b = try #require(try await h.driver.claimJobs(JobClaimParams(worker: "B", limit: 1, leaseDuration: .seconds(10), now: h.clock.now)).first)
        #expect(b.leaseToken > a.leaseToken)
        // A wakes up and runs its (stale) attempt to the end: it must change nothing.
        await h.executor().execute(a)
        #expect(try h.rows("SELECT count(*) FROM sqlite_schema WHERE name = 'registros'") == [[.integer(0)]])
        #expect(try await h.driver.job(id: a.id)?.state == .processing)  // still B's
        await h.executor().execute(b)
        let done = try #require(try await h.driver.job(id: b.id))
        #expect(done.state == .complete && done.result?.stats.inserted == 2)
        #expect(try h.rows("SELECT count(*) FROM registros") == [[.integer(2)]])
    }

    @Test func transientFailuresBackOffThenLandInError() async throws {
        let h = try WorkerHarness()
        try await h.driver.migrate()
        // An upload id that does not exist is terminal; a missing file under a root is too.
        let gone = try await h.driver.insertJob(JobInsertParams(entity: "registros", spec: JobSpec(source: "upload:nope"), now: h.clock.now)).job
        _ = await h.worker().runOnce()
        let e = try #require(try await h.driver.job(id: gone.id))
        #expect(e.state == .error && e.attempts == 1 && e.error == "upload 'nope' does not exist")
        // An HTTP source that is down is transient: retried after a backoff, then error.
        var cfg = h.config
        cfg.server.httpAllowlist = ["127.0.0.1"]
        let exec = JobExecutor(driver: h.driver, target: SQLiteDataTarget(databasePath: cfg.database), config: cfg,
                               policy: SourcePolicy(uploadDir: cfg.uploadDir, httpAllowlist: ["127.0.0.1"]),
                               options: WorkerOptions(id: "t", retry: RetryPolicy(maxAttempts: 2, base: .seconds(10)), workDir: cfg.workDir),
                               now: { h.clock.now }, random: { 0.5 })
        let down = try await h.driver.insertJob(JobInsertParams(entity: "registros", spec: JobSpec(source: "http://127.0.0.1:1/x.csv"), maxAttempts: 2, now: h.clock.now)).job
        let c1 = try #require(try await h.driver.claimJobs(JobClaimParams(worker: "t", limit: 1, leaseDuration: .seconds(30), now: h.clock.now)).first)
        await exec.execute(c1)
        let after1 = try #require(try await h.driver.job(id: down.id))
        #expect(after1.state == .queued && after1.runAfter == h.clock.now.addingTimeInterval(10))
        h.clock.advance(10)
        let c2 = try #require(try await h.driver.claimJobs(JobClaimParams(worker: "t", limit: 1, leaseDuration: .seconds(30), now: h.clock.now)).first)
        await exec.execute(c2)
        #expect(try await h.driver.job(id: down.id)?.state == .error)
    }
}

/// Issue 21: a worker host's disk may be wiped at any moment. A load that fails because its
/// scratch copy vanished is retried (the copy is fetched again); a file that is the input
/// itself (a local upload) missing is still the input's fault.
@Suite struct WipedDiskTests {
    @Test func aVanishedScratchCopyMakesTheAttemptTransient() {
        let gone = NSTemporaryDirectory() + "sluice-gone-" + UUID().uuidString
        let error = SluiceError(.notFound, "cannot open: No such file or directory", at: SourceLocation(file: "base.csv"))
        let scratch = LocalSource(path: gone, sha256: "", size: 0, temporary: true)
        guard case .failed(let e, _) = JobExecutor.blamingDisk(.failed(error), scratch) else { Issue.record("not a failure"); return }
        #expect(e.isTransient && e.description.hasPrefix("base.csv: cannot open") && e.message.contains("fetches it again"), "\(e)")
        let upload = LocalSource(path: gone, sha256: "", size: 0, temporary: false)
        guard case .failed(let kept, _) = JobExecutor.blamingDisk(.failed(error), upload) else { Issue.record("not a failure"); return }
        #expect(!kept.isTransient && kept.message == error.message)
    }
}
