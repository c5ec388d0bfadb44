import Testing
import Foundation
import SluiceTesting

/// The marketplace example (examples/marketplace): nested order JSON split into four tables.
@Suite(.serialized) struct MarketplaceTests {
    static let example = Oracle.repoRoot + "/examples/marketplace"

    /// Runs the example's generator; returns its expected counts.
    static func generate(_ args: [String], env: [String: String] = [:]) throws -> [String: Int] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", example + "/generate.py"] + args
        if !env.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 } }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw Oracle.Failure(description: "generate.py failed") }
        return try JSONSerialization.jsonObject(with: data) as? [String: Int] ?? [:]
    }

    func counts(_ cli: CLI) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for t in ["orders", "products", "sellers", "shipments"] {
            out[t] = Int(try cli.sqlite("SELECT count(*) FROM \(t)").trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last ?? "")
        }
        return out
    }

    func cli() throws -> CLI {
        let cli = try CLI()
        var yml = try String(contentsOfFile: Self.example + "/sluice.yml", encoding: .utf8)
        yml = yml.replacingOccurrences(of: "database: marketplace.db", with: "database: sluice.db")
        cli.write("sluice.yml", yml)
        return cli
    }

    @Test func loadingAMappingFillsTheFourTables() throws {
        let cli = try cli()
        let expected = try Self.generate(["--files", "3", "--max-orders", "80", "--out", cli.dir + "/in"])
        let files = try FileManager.default.contentsOfDirectory(atPath: cli.dir + "/in").sorted().map { "in/" + $0 }
        let r = try cli.run(["load"] + files + ["--into", "marketplace"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try counts(cli) == expected, "\(r.out)")
        // Lineage columns name the file and the record.
        let lineage = try cli.sqlite("SELECT raw_key, raw_line FROM orders ORDER BY raw_key, raw_line LIMIT 1").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(lineage == "\(files[0])|1")
        // Loading again changes nothing (upserts by key).
        _ = try cli.run(["load"] + files + ["--into", "marketplace"])
        #expect(try counts(cli) == expected)
        // A malformed file fails the load before anything is written, naming the file and line.
        cli.write("bad.json", "[{\"txt_detl_idt_pedi_pgto\": \"X\"},\n {\"oops\": ]")
        let bad = try cli.run(["load", "bad.json", "--into", "marketplace"])
        #expect(bad.status != 0 && bad.err.contains("bad.json:2:"), "\(bad.err)")
        #expect(try counts(cli) == expected)
    }

    @Test func aMappingNamingAnUndeclaredEntityIsRefusedWithItsLine() throws {
        let cli = try CLI()
        cli.write("sluice.yml", "entities:\n  a:\n    primary_key: [id]\nmappings:\n  m:\n    a:\n      columns: {id: id}\n    b:\n      columns: {id: x..y}\n")
        let r = try cli.run(["load", "x.json", "--into", "m"])
        #expect(r.status != 0 && r.err.contains("sluice.yml:8") && r.err.contains("entity 'b' is not declared"), "\(r.err)")
    }

    @Test func theWatcherFillsTheTablesFromABucketWithRawCopies() throws {
        let s3 = try S3Server.shared()
        let bucket = "itau-shop-" + UUID().uuidString.lowercased().prefix(8)
        try s3.boto3("s3.create_bucket(Bucket='\(bucket)')")
        let expected = try Self.generate(["--files", "6", "--max-orders", "60", "--bucket", bucket, "--endpoint", s3.endpoint], env: s3.env)
        let cli = try cli()
        let r = try cli.run(["watch", "s3://\(bucket)/", "--glob", "input/*.json", "--into", "marketplace", "--name", "marketplace",
                             "--raw", "s3://\(bucket)/raw/", "--min-age", "0", "--once"], env: s3.env)
        #expect(r.status == 0, "\(r.err)")
        #expect(try counts(cli) == expected, "\(r.out)")
        let raw = try s3.boto3("print(len(s3.list_objects_v2(Bucket='\(bucket)', Prefix='raw/marketplace/')['Contents']))")
        #expect(raw == "6")
        // The batch's parts went once loaded: the objects stay in the bucket and its raw layer.
        #expect(try filesUnder(cli.dir + "/.sluice/uploads").isEmpty)
        // The watcher's parts are Avro, `sluice load`'s are CSV: the same files give the same
        // rows, value for value (all but the lineage key, which names the object or the path).
        let local = try self.cli()
        _ = try Self.generate(["--files", "6", "--max-orders", "60", "--out", local.dir + "/in"])
        let files = try FileManager.default.contentsOfDirectory(atPath: local.dir + "/in").sorted().map { "in/" + $0 }
        let loaded = try local.run(["load"] + files + ["--into", "marketplace"])
        #expect(loaded.status == 0, "\(loaded.err)")
        for (table, columns) in [("orders", "txt_detl_idt_pedi_pgto, dat_hor_tran, stat_pedi, vlr_totl_pedi, idt_clie, idt_venr, raw_line"),
                                 ("products", "*"), ("sellers", "*"), ("shipments", "*")] {
            let query = "SELECT \(columns) FROM \(table) ORDER BY 1, 2"
            let (watched, viaLoad) = (try cli.sqlite(query), try local.sqlite(query))
            #expect(watched == viaLoad && !watched.isEmpty, "\(table) differs")
        }
        // More files later: only those are loaded.
        let more = try Self.generate(["--files", "2", "--first", "6", "--max-orders", "60", "--bucket", bucket, "--endpoint", s3.endpoint, "--seed", "3"], env: s3.env)
        _ = try cli.run(["watch", "s3://\(bucket)/", "--glob", "input/*.json", "--into", "marketplace", "--name", "marketplace",
                         "--raw", "s3://\(bucket)/raw/", "--min-age", "0", "--once"], env: s3.env)
        let now = try counts(cli)
        #expect(now["orders"] == expected["orders"]! + more["orders"]! && now["shipments"] == now["orders"])
    }
}
