import Testing
import Foundation
import SluiceCore
import SluiceTesting
@testable import SluiceStorage

/// One way to list and fetch what a user names: a local folder read in place, an S3 prefix and
/// object downloaded (against moto, started by scripts/test.sh), checked against the listed etag.
@Suite struct SourceTests {
    @Test func aFolderIsListedByGlobAndReadInPlace() async throws {
        let dir = TempDir()
        dir.write("a.csv", "id\n1\n")
        dir.write("b.json", "{}")
        dir.write("c.csv", "id\n2\n")
        let folder = try Source(dir.path, s3: S3Config())
        #expect(folder.isCollection && !Source.isRemote(dir.path) && Source.isRemote("s3://b/k"))
        let listed = try await folder.objects(glob: Glob("*.csv"))
        #expect(listed.map(\.key) == ["a.csv", "c.csv"])
        let local = try await folder.fetch("c.csv", into: dir.file("unused"), hashing: true)
        #expect((local.path as NSString).standardizingPath == (dir.file("c.csv") as NSString).standardizingPath && !local.temporary && local.name == "c.csv" && local.size == 5 && local.sha256?.count == 64)
        let one = try Source(dir.file("a.csv"), s3: S3Config())
        #expect(!one.isCollection)
        #expect(try await one.objects().map(\.key) == ["a.csv"])
        // sluice load's arguments: local paths pass through untouched.
        #expect(try await Source.localize([dir.file("a.csv")], scratch: dir.file("s"), s3: S3Config(), log: { _ in }) == [dir.file("a.csv")])
    }

    @Test func aBucketPrefixIsDownloadedCheckedAndLimited() async throws {
        let config = try ObjectStoreTests.config()
        let bucket = "source-\(UInt32.random(in: 0...UInt32.max))"
        let s3 = try S3ObjectStore(bucket: bucket, config: config)
        try await s3.createBucket()
        try await s3.put("in/x.csv", bytes: Array("id\n1\n".utf8), contentType: nil)
        try await s3.put("in/y.csv", bytes: Array("id\n2\n3\n".utf8), contentType: nil)
        let dir = TempDir()
        let prefix = try Source("s3://\(bucket)/in/", s3: config)
        let objects = try await prefix.objects()
        #expect(objects.map(\.key) == ["in/x.csv", "in/y.csv"])
        let got = try await prefix.fetch(objects[1].key, etag: objects[1].etag, into: dir.path, prefix: "0-", hashing: true)
        #expect(got.temporary && got.name == "s3://\(bucket)/in/y.csv" && got.path == dir.file("0-y.csv"))
        #expect(try String(contentsOfFile: got.path, encoding: .utf8) == "id\n2\n3\n")
        // Changed since it was listed: refused, not half-read.
        try await s3.put("in/y.csv", bytes: Array("id\n9\n".utf8), contentType: nil)
        await #expect(throws: SluiceError.self) { try await prefix.fetch(objects[1].key, etag: objects[1].etag, into: dir.path) }
        // Larger than allowed: refused.
        let small = try Source("s3://\(bucket)/in/x.csv", s3: config, maxBytes: 3)
        await #expect(throws: SluiceError.self) { try await small.fetch(into: dir.path) }
        // sluice load's arguments: a prefix stands for every object under it.
        let paths = try await Source.localize(["s3://\(bucket)/in/"], scratch: dir.file("scratch"), s3: config, log: { _ in })
        #expect(paths.map { ($0 as NSString).lastPathComponent } == ["x.csv", "y.csv"])
    }
}
