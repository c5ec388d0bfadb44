import Testing
import Foundation
import Logging
import Synchronization
import SluiceCore
import SluiceQueue
import SluiceSQLite
import SluiceStorage
@testable import SluiceWatch

struct WatcherTests {
    @Test func anObjectOverwrittenWhileBeingReadIsNoticedAndItsNewVersionLoaded() async throws {
        let dir = NSTemporaryDirectory() + "sluice-watcher-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/uploads", withIntermediateDirectories: true)
        try "id\n1\n".write(toFile: dir + "/in/a.csv", atomically: true, encoding: .utf8)
        let driver = try SQLiteQueueDriver(path: dir + "/control.db")
        try await driver.migrate()
        var spec = WatchSpec(name: "w", source: dir + "/in", entity: "t")
        spec.rules.minAge = 0
        let watcher = try Watcher(spec: spec, driver: driver, uploadDir: dir + "/uploads", s3: S3Config(), logger: Logger(label: "test"))
        // The clock is read when the poll starts, then as each file is fetched: the second
        // reading rewrites the file, as a writer replacing it mid-read would.
        let calls = Atomic<Int>(0)
        let report = try await watcher.poll(now: {
            if calls.add(1, ordering: .relaxed).newValue == 2 {
                try? "id\n1\n2\n".write(toFile: dir + "/in/a.csv", atomically: true, encoding: .utf8)
            }
            return Date()
        })
        #expect(report.failed == 1 && report.queued == 0)
        let ledger = try await driver.watchedFiles(watch: "w", keys: nil)
        #expect(ledger.count == 1 && ledger[0].state == .failed && (ledger[0].error ?? "").contains("changed since it was listed"), "\(ledger)")
        // The next poll sees the new version and queues it.
        let next = try await watcher.poll()
        #expect(next.queued == 1)
        let job = try #require(try await driver.job(id: next.jobs[0]))
        let upload = try #require(try await driver.upload(id: String(job.spec.source.dropFirst("upload:".count))))
        #expect(try String(contentsOfFile: upload.path, encoding: .utf8) == "id\n1\n2\n")
        #expect(try await watcher.poll().queued == 0)
    }
}
