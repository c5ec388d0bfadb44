import Testing
import Foundation
import SluiceCore
import SluiceTesting
@testable import SluiceStorage

/// The Cloud Storage and Drive stores against scripts/receivers/google_fake.py: what the
/// watch and load tests do not reach (ranges, preconditions, copies, deletes, shared drives).
@Suite(.serialized) struct GoogleStoreTests {
    func config(_ fake: GoogleFake) -> GoogleConfig { GoogleConfig.fromEnvironment(fake.env) }

    @Test func bucketObjectsAreReadByRangeAndPinnedToTheirGeneration() async throws {
        let fake = try GoogleFake()
        defer { fake.stop() }
        try fake.post("/_admin/gcs/store-test", [["name": "a/b c.csv", "content": "0123456789"]])
        let store = try GCSObjectStore(bucket: "store-test", config: config(fake))
        let head = try #require(try await store.head("a/b c.csv"))
        #expect(head.size == 10 && !head.etag.isEmpty)
        #expect(try await store.head("a/none") == nil)
        #expect(try await store.get("a/b c.csv", range: 2..<5, ifMatch: head.etag) == Array("234".utf8))
        // A new generation: the old one is refused (a fetch pinned to what was listed).
        let newer = try await store.put("a/b c.csv", bytes: Array("abc".utf8), contentType: "text/csv")
        #expect(newer != head.etag)
        await #expect(throws: SluiceError.self) { _ = try await store.get("a/b c.csv", range: nil, ifMatch: head.etag) }
        let dir = TempDir()
        do {
            _ = try await store.download("a/b c.csv", to: dir.path + "/x", ifMatch: head.etag, hashing: false)
            Issue.record("a changed object was downloaded")
        } catch {
            #expect(error.code == .aborted, "\(error)")
        }
        let got = try await store.download("a/b c.csv", to: dir.path + "/x", ifMatch: newer, hashing: true)
        #expect(got.info.size == 3 && got.info.etag == newer && got.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // Copies hold to the source's generation; deletes are idempotent.
        await #expect(throws: SluiceError.self) { try await store.copy(from: "a/b c.csv", to: "copy.csv", ifMatch: head.etag) }
        try await store.copy(from: "a/b c.csv", to: "copy.csv", ifMatch: newer)
        #expect(try await store.get("copy.csv", range: nil, ifMatch: nil) == Array("abc".utf8))
        try await store.delete("copy.csv")
        try await store.delete("copy.csv")
        #expect(try await store.listAll(prefix: "").map(\.key) == ["a/b c.csv"])
        let missing = try GCSObjectStore(bucket: "no-such-bucket", config: config(fake))
        do { _ = try await missing.listAll(prefix: ""); Issue.record("listed a missing bucket") } catch {
            #expect(error.code == .notFound && error.message.contains("gs://no-such-bucket"), "\(error)")
        }
    }

    @Test func driveFilesAreReadByIdAndSharedDrivesAreSearched() async throws {
        let fake = try GoogleFake()
        defer { fake.stop() }
        try fake.driveFiles([("r.csv", "0123456789", "2026-01-01T00:00:00Z"), ("o'brien.csv", "q\n", "2026-01-02T00:00:00Z")], folder: "F")
        try fake.post("/_admin/drive/files", [["name": "team.csv", "content": "t\n", "parents": ["T"], "driveId": "D1", "createdTime": "2026-01-03T00:00:00Z"]])
        let store = try DriveObjectStore(folder: "F", config: config(fake))
        let listed = try await store.listAll(prefix: "")
        #expect(listed.map(\.key) == ["o'brien.csv", "r.csv"])
        let r = try #require(listed.last)
        #expect(try await store.get("r.csv", range: 3..<6, ifMatch: r.etag) == Array("345".utf8))
        #expect(try await store.head("o'brien.csv")?.size == 2)  // a quote in a name, quoted in the query
        #expect(try await store.listAll(prefix: "", newerThan: r.lastModified).map(\.key) == ["o'brien.csv"])
        await #expect(throws: SluiceError.self) { _ = try await store.put("x", bytes: [], contentType: nil) }
        var options = DriveOptions()
        options.sharedDrive = "D1"
        let team = try DriveObjectStore(folder: "T", options: options, config: config(fake))
        #expect(try await team.listAll(prefix: "").map(\.key) == ["team.csv"])
        let dir = TempDir()
        let got = try await team.download("team.csv", to: dir.path + "/t.csv", ifMatch: nil, hashing: false)
        #expect(got.info.size == 2)
        #expect(try String(contentsOfFile: dir.path + "/t.csv", encoding: .utf8) == "t\n")
    }

    /// `?recursive=true`: the tree under the folder, keyed by path; an old sub-folder's new
    /// file passes the time filter; a path finds its file.
    @Test func subFoldersAreWalkedWhenAsked() async throws {
        let fake = try GoogleFake()
        defer { fake.stop() }
        let folder = "application/vnd.google-apps.folder"
        try fake.post("/_admin/drive/files", [
            ["id": "S1", "name": "2026-11", "mimeType": folder, "parents": ["R"], "createdTime": "2025-01-01T00:00:00Z"],
            ["id": "S2", "name": "late", "mimeType": folder, "parents": ["S1"], "createdTime": "2025-01-01T00:00:00Z"],
            ["name": "top.csv", "content": "a\n", "parents": ["R"], "createdTime": "2026-01-01T00:00:00Z"],
            ["name": "d1.csv", "content": "b\n", "parents": ["S1"], "createdTime": "2026-01-02T00:00:00Z"],
            ["name": "d2.csv", "content": "cc\n", "parents": ["S2"], "createdTime": "2026-03-01T00:00:00Z"],
        ])
        var options = DriveOptions()
        options.recursive = true
        let store = try DriveObjectStore(folder: "R", options: options, config: config(fake))
        #expect(try await store.listAll(prefix: "").map(\.key) == ["2026-11/d1.csv", "2026-11/late/d2.csv", "top.csv"])
        let since = try #require(GoogleAPI.date("2026-02-01T00:00:00Z") as Date?)
        #expect(try await store.listAll(prefix: "", newerThan: since).map(\.key) == ["2026-11/late/d2.csv"])
        #expect(try await store.head("2026-11/late/d2.csv")?.size == 3)
        #expect(try await store.head("2026-11/none.csv") == nil)
        #expect(try await store.get("2026-11/d1.csv", range: nil, ifMatch: nil) == Array("b\n".utf8))
        #expect(try await DriveObjectStore(folder: "R", config: config(fake)).listAll(prefix: "").map(\.key) == ["top.csv"])
        #expect(try StorageLocation("gdrive://R/?recursive=true").kind == .gdrive(folder: "R", options: options))
    }
}
