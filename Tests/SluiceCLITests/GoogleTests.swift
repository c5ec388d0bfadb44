import Testing
import Foundation
import SluiceTesting

/// `gs://` and `gdrive://` wherever a source goes, against the fake: auth, paging, the
/// watermark, exports of Sheets, token expiry and rate-limit storms.
@Suite(.serialized) struct GoogleSourceTests {
    func count(_ cli: CLI, _ sql: String, db: String = "sluice.db") throws -> Int {
        Int(try GoogleFake.shell(["sqlite3", cli.dir + "/" + db, sql]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    static func time(_ minutes: Int) -> String {
        let d = Date(timeIntervalSince1970: 1_780_000_000 + Double(minutes) * 60)
        return ISO8601DateFormatter.string(from: d, timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withInternetDateTime])
    }

    /// 300 objects over 4 pages, each loaded once, raw copies made by server-side rewrites;
    /// one token per process, whatever the number of calls.
    @Test func aBucketIsWatchedAcrossPagesEachObjectOnce() throws {
        let google = try GoogleFake(["--max-page", "80"])
        defer { google.stop() }
        try google.post("/_admin/gcs/landing", (0..<300).map { ["name": "in/o\($0).csv", "content": "id,v\n\($0),x\($0)\n"] }
                        + [["name": "other/z.csv", "content": "id,v\n9999,no\n"]])
        let cli = try CLI()
        cli.write("sluice.yml", "entities:\n  items:\n    primary_key: [id]\n    mode: append\n")
        let args = ["watch", "gs://landing/in/", "--into", "items", "--raw", "gs://landing/raw/", "--name", "gcs", "--once", "--json"]
        let r = try cli.run(args, env: google.env)
        #expect(r.status == 0, "\(r.out) \(r.err)")
        #expect(try cli.json(r.out)["loaded"] as? Int == 300, "\(r.out)")
        #expect(try count(cli, "SELECT count(*) FROM items") == 300)
        #expect(try count(cli, "SELECT count(DISTINCT id) FROM items") == 300)
        let first = try google.stats()
        #expect(first["list_pages"] == 4 && first["token_exchanges"] == 1, "\(first)")
        let raw = try google.get("/_admin/gcs/landing").keys.filter { $0.hasPrefix("raw/gcs/") }
        #expect(raw.count == 300 && raw.contains { $0.hasSuffix("/o7.csv") })
        // Polling again loads nothing twice (append mode would show it).
        let again = try cli.run(args, env: google.env)
        #expect(try cli.json(again.out)["poll"].flatMap { ($0 as? [String: Any])?["queued"] as? Int } == 0, "\(again.out)")
        #expect(try count(cli, "SELECT count(*) FROM items") == 300)
        // `sluice load` takes one object or a prefix too.
        let one = try cli.run(["load", "gs://landing/other/z.csv", "--into", "solo", "--create"], env: google.env)
        #expect(one.status == 0, "\(one.err)")
        #expect(try count(cli, "SELECT id FROM solo") == 9999)
    }

    /// Seed 003: files dropped in a Drive folder, listed by creation time after the watermark
    /// (filtered by Drive itself), a Sheet exported as CSV, tokens from the metadata server.
    @Test func aDriveFolderIsWatchedByCreationTimeAfterTheWatermark() throws {
        let google = try GoogleFake(["--max-page", "80"])
        defer { google.stop() }
        try google.driveFiles((0..<299).map { ("sales-\($0).csv", "id,amount\n\($0),\($0).5\n", Self.time($0)) }, folder: "F0lder_1")
        try google.driveFiles([("budget", "id,amount\n5000,1.25\n5001,2.5\n", Self.time(300))], folder: "F0lder_1", mime: "application/vnd.google-apps.spreadsheet")
        try google.driveFiles([("notes", "not data", Self.time(301))], folder: "F0lder_1", mime: "application/vnd.google-apps.document")
        try google.driveFiles([("elsewhere.csv", "id,amount\n7777,1\n", Self.time(302))], folder: "other")
        let cli = try CLI()
        cli.write("sluice.yml", "entities:\n  sales:\n    primary_key: [id]\n    mode: append\n")
        let args = ["watch", "gdrive://F0lder_1/", "--into", "sales", "--watermark", "--name", "drive", "--once", "--json"]
        let r = try cli.run(args, env: google.metadataEnv)
        #expect(r.status == 0, "\(r.out) \(r.err)")
        #expect(try cli.json(r.out)["loaded"] as? Int == 300, "\(r.out)")
        #expect(try count(cli, "SELECT count(*) FROM sales") == 301)
        #expect(try count(cli, "SELECT count(*) FROM sales WHERE id IN (5000, 5001, 7777)") == 2)
        var s = try google.stats()
        #expect(s["list_pages"] == 4, "300 files over pages of 80: \(s)")
        // New files after the watermark load; a file created before it does not; Drive is
        // asked only for what is newer (one short page).
        try google.driveFiles([("late-1.csv", "id,amount\n6001,1\n", Self.time(400)), ("late-2.csv", "id,amount\n6002,1\n", Self.time(401)),
                               ("backdated.csv", "id,amount\n6003,1\n", Self.time(-10))], folder: "F0lder_1")
        let pagesBefore = s["list_pages"] ?? 0
        let second = try cli.run(args, env: google.metadataEnv)
        #expect(try cli.json(second.out)["loaded"] as? Int == 2, "\(second.out) \(second.err)")
        #expect(try count(cli, "SELECT count(*) FROM sales WHERE id IN (6001, 6002)") == 2)
        #expect(try count(cli, "SELECT count(*) FROM sales WHERE id = 6003") == 0)
        s = try google.stats()
        #expect((s["list_pages"] ?? 0) - pagesBefore == 1, "\(s)")
        #expect(try count(cli, "SELECT count(*) FROM sales") == 303)
        // By creation time, a file edited in place is not new; by modification time
        // (`?by=modified`) its new revision loads once.
        let ids = try google.get("/_admin/drive/ids?name=sales-6.csv")
        try google.post("/_admin/drive/files/\(ids["id"] as? String ?? "")", ["content": "id,amount\n6,99.5\n"])
        let third = try cli.run(args, env: google.metadataEnv)
        #expect(try cli.json(third.out)["loaded"] as? Int == 0, "\(third.out)")
        let byModified = ["watch", "gdrive://F0lder_1/?by=modified", "--into", "sales_mod", "--watermark", "--name", "drive-mod", "--once", "--json"]
        cli.write("sluice.yml", "entities:\n  sales:\n    primary_key: [id]\n    mode: append\n  sales_mod:\n    primary_key: [id]\n    columns: {id: int64, amount: text}\n")
        #expect(try cli.json(try cli.run(byModified, env: google.metadataEnv).out)["loaded"] as? Int == 303)
        try google.post("/_admin/drive/files/\(ids["id"] as? String ?? "")", ["content": "id,amount\n6,77.5\n"])
        let edited = try cli.run(byModified, env: google.metadataEnv)
        #expect(try cli.json(edited.out)["loaded"] as? Int == 1, "\(edited.out) \(edited.err)")
        let amount = try cli.sqlite("SELECT amount FROM sales_mod WHERE id = 6").trimmingCharacters(in: .whitespacesAndNewlines)
        let some = try cli.sqlite("SELECT id, amount FROM sales_mod WHERE id < 10")
        #expect(amount == "77.5", "\(amount) \(some)")
    }

    /// A token that stops working mid-listing is replaced at once; a storm of 429s and
    /// rate-limit 403s is waited out as Retry-After asks, and nothing is loaded twice.
    @Test func expiredTokensAndRateLimitStormsAreWaitedOut() throws {
        let google = try GoogleFake(["--max-page", "40", "--expire-after", "3"])
        defer { google.stop() }
        try google.driveFiles((0..<120).map { ("f\($0).csv", "id\n\($0)\n", Self.time($0)) }, folder: "stormy")
        let cli = try CLI()
        cli.write("sluice.yml", "entities:\n  t:\n    primary_key: [id]\n    mode: append\n")
        try google.post("/_admin/storm", ["count": 4, "status": 403, "retry_after": "1"])
        let r = try cli.run(["watch", "gdrive://stormy/", "--into", "t", "--once", "--json"], env: google.env)
        #expect(r.status == 0, "\(r.out) \(r.err)")
        #expect(try count(cli, "SELECT count(*) FROM t") == 120)
        #expect(try count(cli, "SELECT count(DISTINCT id) FROM t") == 120)
        var s = try google.stats()
        #expect(s["token_exchanges"] == 2 && s["unauthorized"] == 1, "one refresh after the tokens expired: \(s)")
        #expect(s["throttled"] == 4 && s["early_retries"] == 0, "\(s)")
        // 429s on Cloud Storage, with a budget of our own (SLUICE_GOOGLE_RATE) on top: 10 a
        // second, where the same watch unlimited starts about 30 calls in one second.
        try google.post("/_admin/gcs/stormy", (0..<30).map { ["name": "in/\($0).csv", "content": "id\n\(1000 + $0)\n"] })
        try google.post("/_admin/storm", ["count": 6, "status": 429, "retry_after": "1"])
        try google.post("/_admin/reset_rate", [:] as [String: Int])
        let g = try cli.run(["watch", "gs://stormy/in/", "--into", "t", "--name", "g", "--once", "--json"],
                            env: google.env.merging(["SLUICE_GOOGLE_RATE": "10"]) { $1 })
        #expect(g.status == 0, "\(g.out) \(g.err)")
        #expect(try count(cli, "SELECT count(*) FROM t WHERE id >= 1000") == 30)
        s = try google.stats()
        #expect(s["throttled"] == 10 && s["early_retries"] == 0 && (s["max_per_second"] ?? 99) <= 11, "\(s)")
    }

    /// examples/daily-batch/drive.yml: seed 003's daily pipelines reading a Drive folder, one
    /// run catching up the missed days with only the new files.
    @Test func theDailyBatchExampleRunsFromADriveFolder() throws {
        let google = try GoogleFake()
        defer { google.stop() }
        let cli = try CLI()
        let example = Oracle.repoRoot + "/examples/daily-batch"
        for f in ["drive.yml", "generate.py"] { try FileManager.default.copyItem(atPath: example + "/" + f, toPath: cli.dir + "/" + f) }
        let env = google.env.merging(["DRIVE_FOLDER": "Sales0Inbox", "SLUICE_CONFIG": "drive.yml"]) { $1 }
        func drop(_ day: String) throws {
            let r = try cli.run(["/usr/bin/env", "python3", "generate.py", "--day", day, "--drive", "Sales0Inbox"], env: env, program: true)
            #expect(r.status == 0, "\(r.err)")
        }
        try drop("2026-11-01")
        var r = try cli.run(["schedule", "tick", "--now", "2026-11-01T09:30:00Z"], env: env)
        #expect(r.status == 0 && r.out.contains("ran clean_sales, audit"), "\(r.out) \(r.err)")
        #expect(try count(cli, "SELECT count(*) FROM sales", db: "daily-drive.db") == 983)
        for day in ["2026-11-02", "2026-11-03", "2026-11-04"] { try drop(day) }
        r = try cli.run(["schedule", "tick", "--now", "2026-11-04T09:30:00Z"], env: env)
        #expect(r.err.contains("2 missed firings caught up in this run"), "\(r.err)")
        #expect(try count(cli, "SELECT count(*) FROM sales", db: "daily-drive.db") == 3889)
        #expect(try count(cli, "SELECT count(*) FROM sales_audit", db: "daily-drive.db") == 4004)
    }

    /// A raw layer in a bucket: files from 8 MiB up go through a resumable session, in chunks.
    @Test func aLargeFileReachesTheRawLayerThroughAResumableUpload() throws {
        let google = try GoogleFake()
        defer { google.stop() }
        try google.post("/_admin/gcs/raw-layer", [] as [[String: String]])
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        var csv = "id,text\n"
        for i in 0..<120_000 { csv += "\(i),\(String(repeating: "x", count: 70))\n" }
        cli.write("in/big.csv", csv)
        let r = try cli.run(["watch", "in", "--into", "big", "--raw", "gs://raw-layer/raw/", "--name", "big", "--min-age", "0", "--once", "--json"], env: google.env)
        #expect(r.status == 0 && (try? cli.json(r.out)["loaded"] as? Int) == 1, "\(r.out) \(r.err)")
        let objects = try google.get("/_admin/gcs/raw-layer")
        let big = objects.first { $0.key.hasSuffix("/big.csv") }?.value as? [String: Any]
        #expect(big?["size"] as? Int == csv.utf8.count && csv.utf8.count > 8 << 20, "\(objects)")
        let md5 = try GoogleFake.shell(["md5sum", cli.dir + "/in/big.csv"]).prefix(32)
        #expect(big?["md5"] as? String == String(md5))
        #expect(try google.stats()["calls"] ?? 0 >= 3, "a session and two chunks at least")
    }

    /// The bulk API takes `gs://` URLs in allowed buckets; the worker fetches the object at
    /// the generation it saw.
    @Test func theBulkAPITakesGsURLsForAllowedBucketsOnly() async throws {
        let google = try GoogleFake()
        defer { google.stop() }
        try google.post("/_admin/gcs/drops", [["name": "in/day 1.csv", "content": "id,valor,referencia,category\n1,2.5,a,x\n2,3.5,b,y\n"]])
        let srv = try ServerProcess(server: "gcs_buckets: [drops]", env: google.env)
        let (s, o) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "gs://drops/in/day 1.csv"}"#)
        #expect(s == 202, "\(o)")
        let id = try #require(o["id"] as? Int)
        let done = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(done["state"] as? String == "complete", "\(done)")
        #expect(try srv.cli.sqlite("SELECT count(*) FROM registros") == "2\n")
        let (refused, why) = try await srv.json("PUT", "/registros/_bulk", body: #"{"url": "gs://elsewhere/x.csv"}"#)
        #expect(refused == 400 && "\(why)".contains("not allowed"), "\(why)")
    }

    /// A Delta table in a bucket (written by delta-rs, uploaded as its files): its log is
    /// fetched, replayed, and the live files read; and a table Sluice writes there.
    @Test func aDeltaTableInABucketIsReadAndWritten() throws {
        let google = try GoogleFake()
        defer { google.stop() }
        let cli = try CLI()
        let items = try GoogleFake.shell(["python3", "-c", """
            import base64, json, os, deltalake, pyarrow as pa
            os.chdir('\(cli.dir)')
            deltalake.write_deltalake('t', pa.table({'id': [1, 2, 3], 'v': ['a', 'b', 'c']}))
            deltalake.write_deltalake('t', pa.table({'id': [3, 4], 'v': ['C', 'd']}), mode='overwrite')
            print(json.dumps([{'name': 'lake/' + os.path.relpath(os.path.join(r, f), 't'), 'content_b64': base64.b64encode(open(os.path.join(r, f), 'rb').read()).decode()}
                              for r, _, fs in os.walk('t') for f in fs]), flush=True)
            os._exit(0)  # delta-rs's runtime can abort at interpreter exit
            """])
        try google.post("/_admin/gcs/landing", try JSONSerialization.jsonObject(with: Data(items.utf8)))
        let r = try cli.run(["load", "delta:gs://landing/lake", "--into", "lake", "--key", "id"], env: google.env)
        #expect(r.status == 0, "\(r.err)")
        #expect(try cli.sqlite("SELECT id, v FROM lake ORDER BY id") == "3|C\n4|d\n")
        // Written too: an append, then a merge, each commit created only if its version is free
        // (ifGenerationMatch=0); delta-rs reads the result.
        cli.write("a.csv", "id,v\n1,a\n2,b\n")
        cli.write("b.csv", "id,v\n2,B\n5,e\n")
        let w1 = try cli.run(["load", "a.csv", "--into", "delta:gs://landing/out"], env: google.env)
        let w2 = try cli.run(["load", "b.csv", "--into", "delta:gs://landing/out", "--key", "id"], env: google.env)
        #expect(w1.status == 0 && w2.status == 0, "\(w1.err) \(w2.err)")
        let objects = try google.get("/_admin/gcs/landing?content=true")
        let written = try JSONSerialization.data(withJSONObject: objects.filter { $0.key.hasPrefix("out/") }.mapValues { ($0 as? [String: Any])?["content_b64"] ?? "" })
        let read = try GoogleFake.shell(["python3", "-c", """
            import base64, json, os, sys, deltalake
            os.chdir('\(cli.dir)')
            for name, b64 in json.load(sys.stdin).items():
                os.makedirs(os.path.dirname(name), exist_ok=True)
                open(name, 'wb').write(base64.b64decode(b64))
            t = deltalake.DeltaTable('out')
            print(t.version(), sorted(t.to_pyarrow_table().to_pylist(), key=lambda r: r['id']), flush=True)
            os._exit(0)  # delta-rs's runtime can abort at interpreter exit
            """], input: written)
        #expect(read.trimmingCharacters(in: .whitespacesAndNewlines) == "1 [{'id': 1, 'v': 'a'}, {'id': 2, 'v': 'B'}, {'id': 5, 'v': 'e'}]", "\(read)")
    }

    /// A key the token endpoint does not know is refused with Google's reason; no credentials
    /// at all is said as such.
    @Test func aWrongKeyIsRefusedWithGooglesReason() throws {
        let google = try GoogleFake()
        defer { google.stop() }
        let other = try GoogleFake()
        defer { other.stop() }
        try google.post("/_admin/gcs/landing", [["name": "a.csv", "content": "id\n1\n"]])
        let cli = try CLI()
        // The other fake's key, but this fake's token endpoint: the signature does not verify.
        var key = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: other.keyFile))) as? [String: Any] ?? [:]
        key["token_uri"] = "http://127.0.0.1:\(google.port)/token"
        let wrong = cli.write("wrong.json", String(decoding: try JSONSerialization.data(withJSONObject: key), as: UTF8.self))
        let r = try cli.run(["load", "gs://landing/a.csv", "--into", "t"], env: google.env.merging(["GOOGLE_APPLICATION_CREDENTIALS": wrong]) { $1 })
        #expect(r.status != 0 && r.err.contains("Invalid JWT Signature"), "\(r.err)")
        let ok = try cli.run(["load", "gs://landing/a.csv", "--into", "t"], env: google.env)
        #expect(ok.status == 0, "\(ok.err)")
        // No key file and no metadata server: said plainly, at once.
        let none = try cli.run(["load", "gdrive://F1/a.csv", "--into", "t"], env: google.metadataEnv.merging(["GCE_METADATA_HOST": "127.0.0.1:1"]) { $1 })
        #expect(none.status != 0 && none.err.contains("metadata server did not answer"), "\(none.err)")
    }
}
