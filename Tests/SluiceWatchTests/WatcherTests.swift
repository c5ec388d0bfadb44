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

    @Test func mappedFilesLoadInBatchesThatARestartRebuildsExactly() async throws {
        let dir = NSTemporaryDirectory() + "sluice-batch-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/uploads", withIntermediateDirectories: true)
        for i in 0..<5 { try "[{\"id\": \(i), \"items\": [{\"sku\": \"a\"}, {\"sku\": \"b\"}]}]".write(toFile: dir + "/in/f\(i).json", atomically: true, encoding: .utf8) }
        try "[{\"id\": ".write(toFile: dir + "/in/bad.json", atomically: true, encoding: .utf8)
        // Distinct modification times: bad.json oldest, then f0 … f4.
        for (i, name) in ["bad", "f0", "f1", "f2", "f3", "f4"].enumerated() {
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(Double(i) - 100)], ofItemAtPath: dir + "/in/\(name).json")
        }
        let driver = try SQLiteQueueDriver(path: dir + "/control.db")
        try await driver.migrate()
        var spec = WatchSpec(name: "w", source: dir + "/in", entity: "m")
        spec.rules.minAge = 0
        spec.batchFiles = 4
        spec.mapping = JSONMapping(name: "m", targets: [
            .init(entity: "orders", columns: [("id", .element(["id"]))]),
            .init(entity: "items", explode: ["items"], columns: [("order", .root(["id"])), ("sku", .element(["sku"]))]),
        ])
        let watcher = try Watcher(spec: spec, driver: driver, uploadDir: dir + "/uploads", s3: S3Config(), logger: Logger(label: "test"))
        let report = try await watcher.poll()
        // 6 files, oldest first, in batches of 4: [bad, f0, f1, f2] and [f3, f4]; two jobs (orders, items) per batch.
        #expect(report.queued == 5 && report.failed == 1 && report.jobs.count == 2, "\(report)")
        let jobs = try await driver.listJobs(JobListParams(limit: 100))
        #expect(jobs.count == 4 && Set(jobs.map(\.entity)) == ["orders", "items"])
        let items = try #require(jobs.first { $0.entity == "items" && $0.spec.fileName == "3 files" }, "\(jobs.map { ($0.entity, $0.spec.fileName) })")
        let upload = try #require(try await driver.upload(id: String(items.spec.source.dropFirst("upload:".count))))
        #expect(try String(contentsOfFile: upload.path, encoding: .utf8) == "order,sku\n0,a\n0,b\n1,a\n1,b\n2,a\n2,b\n")
        // A crash after the jobs but before the ledger said so: the next poll rebuilds the same
        // batches from the ledger and finds their jobs already there.
        for f in try await driver.watchedFiles(watch: "w", keys: nil) where f.state == .queued {
            var back = f
            back.state = .seen
            back.jobID = nil
            try await driver.recordWatchedFile(back)
        }
        let again = try await watcher.poll()
        #expect(again.queued == 5 && again.duplicates == 5, "\(again)")
        #expect(try await driver.listJobs(JobListParams(limit: 100)).count == 4)
        let ledger = try await driver.watchedFiles(watch: "w", keys: ["bad.json"])
        #expect(ledger.first?.state == .failed && (ledger.first?.error ?? "").contains("bad.json"))
    }
}
