import Testing
import Foundation
import SluiceCore
import SluiceTesting
@testable import SluiceStorage

/// The S3 driver against a real S3-compatible server (moto, started by scripts/test.sh),
/// checked with boto3; the local-folder driver on a temp dir.
@Suite(.serialized) struct ObjectStoreTests {
    static func endpoint() throws -> String {
        guard let e = ProcessInfo.processInfo.environment["SLUICE_TEST_S3_ENDPOINT"], !e.isEmpty else {
            throw Oracle.Failure(description: "SLUICE_TEST_S3_ENDPOINT is not set: run the tests with scripts/test.sh (it starts the S3 server)")
        }
        return e
    }

    static func config() throws -> S3Config {
        var c = S3Config()
        c.endpoint = try endpoint()
        c.credentials = AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing")
        c.multipartThreshold = 6 << 20
        c.partSize = 5 << 20
        return c
    }

    /// Runs a boto3 snippet (with `s3` a client of the test server) and returns its stdout.
    static func boto3(_ code: String) throws -> String {
        let script = """
            import boto3, sys
            s3 = boto3.client("s3", endpoint_url="\(try endpoint())", aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
            \(code)
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw Oracle.Failure(description: "boto3 snippet failed: \(code)") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func bucket() -> String { "sluice-" + UUID().uuidString.lowercased().prefix(12) }

    @Test func s3RoundTripCheckedWithBoto3() async throws {
        let name = Self.bucket()
        let s3 = try S3ObjectStore(bucket: name, config: try Self.config())
        try await s3.createBucket()
        try await s3.createBucket()  // ours already: fine
        let odd = "input/a b+c$ç.json"
        let etag = try await s3.put(odd, bytes: Array("{\"x\":1}\n".utf8), contentType: "application/json")
        #expect(try Self.boto3("print(s3.get_object(Bucket='\(name)', Key='\(odd)')['Body'].read().decode())") == "{\"x\":1}")
        #expect(try Self.boto3("print(s3.head_object(Bucket='\(name)', Key='\(odd)')['ETag'].strip('\"'))") == etag)
        // Listing with continuation tokens, 2 per page.
        for i in 0..<5 { try await s3.put("input/f\(i).json", bytes: Array("\(i)\n".utf8), contentType: nil) }
        _ = try Self.boto3("s3.put_object(Bucket='\(name)', Key='other/x.json', Body=b'zz')")
        let first = try await s3.list(prefix: "input/", continuation: nil, limit: 2)
        #expect(first.objects.count == 2 && first.continuation != nil)
        let all = try await s3.listAll(prefix: "input/", limit: 2)
        #expect(all.map(\.key) == [odd, "input/f0.json", "input/f1.json", "input/f2.json", "input/f3.json", "input/f4.json"])
        #expect(all.allSatisfy { !$0.etag.isEmpty && $0.lastModified.timeIntervalSinceNow > -600 })
        // Head, ranges, downloads with their hash.
        let head = try #require(try await s3.head("input/f3.json"))
        #expect(head.size == 2)
        #expect(try await s3.head("missing.json") == nil)
        #expect(try await s3.get(odd, range: 2..<5, ifMatch: nil) == Array("x\":".utf8))
        let dir = TempDir()
        let (info, sha) = try await s3.download(odd, to: dir.file("d/x.json"), ifMatch: etag)
        #expect(info.size == 8 && sha.count == 64)
        #expect(try String(contentsOfFile: dir.file("d/x.json"), encoding: .utf8) == "{\"x\":1}\n")
        // A large object goes in parts; boto3 reads back the same bytes.
        var big = [UInt8](repeating: 0, count: 13 << 20)
        var rng = SplitMix(seed: 7)
        for i in stride(from: 0, to: big.count, by: 8) { withUnsafeBytes(of: rng.next()) { for (j, b) in $0.enumerated() where i + j < big.count { big[i + j] = b } } }
        FileManager.default.createFile(atPath: dir.file("big.bin"), contents: Data(big))
        let bigTag = try await s3.upload("raw/big.bin", from: dir.file("big.bin"), contentType: nil)
        #expect(bigTag.hasSuffix("-3"), "a 3-part upload's etag: \(bigTag)")
        let remote = try Self.boto3("import hashlib; print(hashlib.sha256(s3.get_object(Bucket='\(name)', Key='raw/big.bin')['Body'].read()).hexdigest())")
        let (_, bigSha) = try await s3.download("raw/big.bin", to: dir.file("big.out"), ifMatch: nil)
        #expect(remote == bigSha)
        #expect(try Self.boto3("print(len(s3.list_multipart_uploads(Bucket='\(name)').get('Uploads', [])))") == "0")
        // Server-side copy, guarded by the etag.
        try await s3.copy(from: odd, to: "raw/copy.json", ifMatch: etag)
        #expect(try Self.boto3("print(s3.get_object(Bucket='\(name)', Key='raw/copy.json')['Body'].read().decode())") == "{\"x\":1}")
        // Overwritten after listing: a conditional read or copy notices.
        _ = try await s3.put(odd, bytes: Array("{\"x\":2}\n".utf8), contentType: nil)
        await #expect(throws: SluiceError.self) { _ = try await s3.download(odd, to: dir.file("stale.json"), ifMatch: etag) }
        do {
            try await s3.copy(from: odd, to: "raw/stale.json", ifMatch: etag)
            Issue.record("a copy of a changed object must fail")
        } catch {
            #expect(error.code == .aborted || error.code == .io, "\(error)")
        }
        // Presigned GET, fetched by curl.
        let url = try s3.presignedURL(key: "input/f1.json", expires: 600)
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        curl.arguments = ["curl", "-sf", "-o", dir.file("presigned"), url]
        try curl.run()
        curl.waitUntilExit()
        #expect(curl.terminationStatus == 0 && (try? String(contentsOfFile: dir.file("presigned"), encoding: .utf8)) == "1\n")
        try await s3.delete("input/f0.json")
        try await s3.delete("input/f0.json")  // already gone: fine
        #expect(try Self.boto3("print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='\(name)', Prefix='input/f')['Contents']))")
                == "['input/f1.json', 'input/f2.json', 'input/f3.json', 'input/f4.json']")
    }

    @Test func s3ErrorsAreNamed() async throws {
        let s3 = try S3ObjectStore(bucket: "no-such-bucket-\(UUID().uuidString.lowercased().prefix(8))", config: try Self.config())
        do {
            _ = try await s3.list(prefix: "", continuation: nil, limit: 10)
            Issue.record("listing a missing bucket must fail")
        } catch {
            #expect(error.code == .notFound && error.description.contains("NoSuchBucket"), "\(error)")
        }
        var dead = try Self.config()
        dead.endpoint = "http://127.0.0.1:9"  // nothing listens
        let unreachable = try S3ObjectStore(bucket: "b-b-b", config: dead)
        do {
            _ = try await unreachable.head("k")
            Issue.record("an unreachable server must fail")
        } catch {
            #expect(error.code == .unavailable, "\(error)")
        }
    }

    @Test func localFolderStore() async throws {
        let dir = TempDir()
        let store = LocalObjectStore(root: dir.path)
        try await store.put("in/a.json", bytes: Array("a".utf8), contentType: nil)
        try await store.put("in/b.json", bytes: Array("bb".utf8), contentType: nil)
        try await store.put("out/c.json", bytes: Array("c".utf8), contentType: nil)
        #expect(try await store.listAll(prefix: "in/", limit: 1).map(\.key) == ["in/a.json", "in/b.json"])
        let b = try #require(try await store.head("in/b.json"))
        #expect(b.size == 2)
        #expect(try await store.get("in/b.json", range: 1..<2, ifMatch: b.etag) == Array("b".utf8))
        try await store.copy(from: "in/b.json", to: "raw/2026/b.json", ifMatch: b.etag)
        #expect(try String(contentsOfFile: dir.file("raw/2026/b.json"), encoding: .utf8) == "bb")
        try await Task.sleep(nanoseconds: 10_000_000)
        try await store.put("in/b.json", bytes: Array("bbb".utf8), contentType: nil)
        await #expect(throws: SluiceError.self) { _ = try await store.download("in/b.json", to: dir.file("x"), ifMatch: b.etag) }
        await #expect(throws: SluiceError.self) { _ = try await store.head("../escape") }
        try await store.delete("in/a.json")
        #expect(try await store.head("in/a.json") == nil)
        // Adopting a finished local file links it (same inode, nothing copied), replacing any object there.
        let fetched = dir.write("fetched.json", "payload")
        try await store.adopt("raw/2026/b.json", file: fetched)
        #expect(try String(contentsOfFile: dir.file("raw/2026/b.json"), encoding: .utf8) == "payload")
        let inode = { (p: String) in try FileManager.default.attributesOfItem(atPath: p)[.systemFileNumber] as? Int }
        #expect(try inode(fetched) != nil && inode(fetched) == inode(dir.file("raw/2026/b.json")))
    }

    @Test func locationsAreParsed() throws {
        let s3 = try StorageLocation("s3://my-bucket/input/2026/")
        #expect(s3.kind == .s3(bucket: "my-bucket") && s3.key == "input/2026/")
        let http = try StorageLocation("https://files.example.com:8443/data/x.csv")
        #expect(http.kind == .http(base: "https://files.example.com:8443") && http.key == "data/x.csv")
        let dir = TempDir()
        let folder = try StorageLocation(dir.path)
        #expect(folder.kind == .local(root: dir.path) && folder.key == "")
        #expect(throws: SluiceError.self) { try StorageLocation("s3://UPPER/x") }
    }

    @Test func googleLocationsAreParsed() throws {
        let gs = try StorageLocation("gs://my_bucket.example/in/")
        #expect(gs.kind == .gcs(bucket: "my_bucket.example") && gs.key == "in/" && gs.kind.isAtomic)
        let drive = try StorageLocation("gdrive://1AbC-d_9/sales%20q1.csv?by=modified&drive=0Xyz")
        var options = DriveOptions()
        options.byModified = true
        options.sharedDrive = "0Xyz"
        #expect(drive.kind == .gdrive(folder: "1AbC-d_9", options: options) && drive.key == "sales q1.csv")
        #expect(try StorageLocation("gdrive://F1/").kind == .gdrive(folder: "F1", options: DriveOptions()))
        for bad in ["gs://UP/x", "gs://a/x", "gdrive://bad'id/", "gdrive://F/?by=size", "gdrive://F/?drive=a'b"] {
            #expect(throws: SluiceError.self, "\(bad)") { _ = try StorageLocation(bad).store(google: GoogleConfig()) }
        }
        // A pattern in a Drive location leaves its options with the folder.
        #expect(Glob.split(location: "gdrive://F1/sales-*.csv?by=modified")! == ("gdrive://F1/?by=modified", "sales-*.csv"))
        #expect(Source.isRemote("gs://b/x") && Source.isRemote("gdrive://F/"))
    }

    @Test func gsSourcesInRequestsNeedAnAllowedBucket() throws {
        var policy = SourcePolicy(uploadDir: "/tmp/u")
        #expect(throws: SluiceError.self) { try policy.validate("gs://landing/a.csv") }
        policy.gcsBuckets = ["landing"]
        #expect(try policy.validate("gs://landing/in/a.csv") == .gcs(bucket: "landing", key: "in/a.csv"))
        #expect(throws: SluiceError.self) { try policy.validate("gs://other/a.csv") }
        #expect(throws: SluiceError.self) { try policy.validate("gs://landing/in/") }
        #expect(throws: SluiceError.self) { try policy.validate("s3://landing/a.csv") }  // an S3 bucket is allowed on its own
    }

    @Test func googleSettingsComeFromTheEnvironment() {
        let key = GoogleConfig.fromEnvironment(["GOOGLE_APPLICATION_CREDENTIALS": "/k.json", "STORAGE_EMULATOR_HOST": "localhost:9023/"])
        #expect(key.credentials == .serviceAccount(path: "/k.json") && key.storageEndpoint == "http://localhost:9023")
        #expect(GoogleConfig.fromEnvironment(["STORAGE_EMULATOR_HOST": "http://127.0.0.1:1"]).credentials == .anonymous)
        let metadata = GoogleConfig.fromEnvironment(["GCE_METADATA_HOST": "10.0.0.1:80", "SLUICE_GOOGLE_RATE": "25"])
        #expect(metadata.credentials == .metadata(host: "10.0.0.1:80") && metadata.rate == 25 && metadata.storageEndpoint == "https://storage.googleapis.com")
        #expect(GoogleConfig.fromEnvironment(["SLUICE_GOOGLE_RATE": "-1"]).rate == nil)
    }
}
