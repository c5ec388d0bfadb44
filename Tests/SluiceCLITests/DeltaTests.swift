import Testing
import Foundation

/// Issue 17: Delta tables written by delta-rs read as delta-rs reads them, version by version,
/// and a broken table is a clear error naming the table, version and file.
@Suite(.serialized) struct DeltaReadTests {
    static let oracle = TestPostgres.repoRoot + "/scripts/oracles/delta_tables.py"

    /// Writes the oracle's tables into a fresh folder; returns it and the versions to read.
    static func tables() throws -> (CLI, [String: [Int]]) {
        let cli = try CLI()
        let out = try TestPostgres.run(["python3", oracle, "make", cli.dir + "/lake"])
        let manifest = try #require(out.split(separator: "\n").last.map(String.init))
        let versions = try #require(try JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [String: [Int]])
        return (cli, versions)
    }

    @Test func everyVersionOfTablesWrittenByDeltaRsReadsAsDeltaRsReadsIt() throws {
        let (cli, versions) = try Self.tables()
        #expect(versions.count == 9 && versions.values.reduce(0) { $0 + $1.count } >= 31)
        try FileManager.default.createDirectory(atPath: cli.dir + "/lake/out", withIntermediateDirectories: true)
        for (table, vs) in versions {
            for v in vs {
                let r = try cli.run(["convert", "delta:lake/\(table)@v\(v)", "lake/out/\(table)@v\(v).ndjson"])
                #expect(r.status == 0, "\(table)@v\(v): \(r.err)")
            }
        }
        // delta-rs's query engine reads each version; the script compares cell by cell.
        let verdict = try TestPostgres.run(["python3", Self.oracle, "compare", cli.dir + "/lake"])
        #expect(verdict.contains("0 differ"), "\(verdict)")
    }

    @Test func loadInferAndTimeTravel() throws {
        let (cli, _) = try Self.tables()
        // A folder with _delta_log/ is a table without the delta: prefix.
        let inf = try cli.run(["infer", "lake/part"])
        #expect(inf.status == 0 && inf.out.contains("format: delta") && inf.out.contains("{name: valor, type: \"decimal(12,2)\"}"), "\(inf.out)\(inf.err)")
        #expect(inf.out.contains("{name: extra, type: text}"), "the latest schema (evolved at version 5)")
        let r = try cli.run(["load", "lake/part", "--into", "gold", "--key", "id", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let sql = "select count(*) || '|' || count(extra) || '|' || sum(case when cat is null then 1 else 0 end) || '|' || sum(valor) from t"
        let want = try TestPostgres.run(["python3", Self.oracle, "query", cli.dir + "/lake/part", sql])
        let got = try cli.sqlite("SELECT count(*) || '|' || count(extra) || '|' || sum(cat IS NULL) || '|' || printf('%.2f', sum(valor)) FROM gold")
        #expect(got == want && got.contains("|50|"), "\(got) vs delta-rs \(want)")
        // Time travel: the same table at version 1, then as of a time before version 2.
        let v1 = try cli.run(["load", "delta:lake/part@v1", "--into", "v1", "--key", "id"])
        #expect(v1.status == 0, "\(v1.err)")
        #expect(try cli.sqlite("SELECT count(*), sum(id) FROM v1") == "500|124750\n")
        // The same as flags.
        let flagged = try cli.run(["load", "lake/part", "--version", "1", "--into", "v1_flag", "--key", "id"])
        let flaggedRows = try cli.sqlite("SELECT count(*), sum(id) FROM v1_flag")
        #expect(flagged.status == 0 && flaggedRows == "500|124750\n", "\(flagged.err)")
        let early = try cli.run(["convert", "lake/part", "x.csv", "--as-of", "2000-01-01T00:00:00Z"])
        #expect(early.status != 0 && early.err.contains("no version committed at or before that time"), "\(early.err)")
        let notDelta = try cli.run(["load", "lake/src-none.csv", "--version", "1", "--into", "x"])
        #expect(notDelta.status != 0 && notDelta.err.contains("is not one"), "\(notDelta.err)")
        #expect(inf.out.contains("\n  part:\n"), "the entity is named after the table's folder: \(inf.out)")
        let bad = try cli.run(["load", "delta:lake/part@v99", "--into", "x"])
        #expect(bad.status != 0 && bad.err.contains("has no version 99: its latest is 5"), "\(bad.err)")
        // The rows added after a version: appends only.
        let added = try cli.run(["convert", "delta:lake/many@v10..v15", "added.csv", "--json"])
        let addedRows = try cli.json(added.out)["rows"] as? Int
        #expect(added.status == 0 && addedRows == 50, "\(added.out)\(added.err)")
        let rewritten = try cli.run(["convert", "delta:lake/part@v1..", "x.csv"])
        #expect(rewritten.status != 0 && rewritten.err.contains("version 2 removed or rewrote rows") && rewritten.err.contains("read the whole table instead"), "\(rewritten.err)")
        let when = try cli.run(["load", "delta:lake/dv@2000-01-01T00:00:00Z", "--into", "x"])
        #expect(when.status != 0 && when.err.contains("no version committed at or before that time"), "\(when.err)")
    }

    /// Each broken table fails the load with the table, version and file named, and the
    /// target table is not created.
    @Test func brokenTablesAreClearErrorsAndLoadNothing() throws {
        let (cli, _) = try Self.tables()
        let fm = FileManager.default
        func copy(_ name: String) throws -> String {
            let to = cli.dir + "/lake/broken-\(name)-\(UUID().uuidString.prefix(6))"
            try fm.copyItem(atPath: cli.dir + "/lake/\(name)", toPath: to)
            return to
        }
        func commit(_ table: String, _ version: Int, _ lines: [String]) {
            fm.createFile(atPath: table + "/_delta_log/" + String(format: "%020d.json", version), contents: Data((lines.joined(separator: "\n") + "\n").utf8))
        }
        func fails(_ table: String, _ expected: [String]) throws {
            let r = try cli.run(["load", "delta:" + table, "--into", "nothing"])
            #expect(r.status != 0, "\(table) loaded")
            for e in expected { #expect(r.err.contains(e), "\(e) not in: \(r.err)") }
            #expect(try cli.sqlite("SELECT count(*) FROM sqlite_master WHERE name = 'nothing'") == "0\n")
        }
        // A commit cut short mid-line.
        let cut = try copy("many")
        let last = cut + "/_delta_log/00000000000000000024.json"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: last))
        try bytes.prefix(bytes.count - 40).write(to: URL(fileURLWithPath: last))
        try fails(cut, ["_delta_log/00000000000000000024.json:", "not valid JSON", "cut short"])
        // A data file the log names is gone.
        let gone = try copy("many")
        let data = try #require(try fm.contentsOfDirectory(atPath: gone).first { $0.hasSuffix(".parquet") })
        try fm.removeItem(atPath: gone + "/" + data)
        try fails(gone, ["version 24", "a file the log names is missing: \(data)"])
        // An add whose path climbs out of the table's folder.
        let escape = try copy("many")
        commit(escape, 25, [#"{"add":{"path":"../../../../etc/passwd","partitionValues":{},"size":1,"modificationTime":0,"dataChange":true}}"#])
        try fails(escape, ["outside the table's folder", "../../../../etc/passwd"])
        // A reader feature Sluice does not implement, named.
        let feature = try copy("many")
        commit(feature, 25, [#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["catalogManaged"],"writerFeatures":["catalogManaged"]}}"#])
        try fails(feature, ["version 25", "reader feature 'catalogManaged'"])
        // A version missing from the middle of the log.
        let gap = try copy("many")
        try fm.removeItem(atPath: gap + "/_delta_log/00000000000000000022.json")
        try fails(gap, ["lacks version 22"])
        // History cleaned up before the version asked.
        let r = try cli.run(["load", "delta:lake/multipart@v5", "--into", "nothing"])
        #expect(r.status != 0 && r.err.contains("version 5 is no longer in the log (its oldest readable version is 19"), "\(r.err)")
        // A deletion vector whose bytes were damaged: its checksum says so.
        let dv = try copy("dv")
        let dvFile = try #require(try fm.contentsOfDirectory(atPath: dv + "/ab").first)
        var dvBytes = try Data(contentsOf: URL(fileURLWithPath: dv + "/ab/" + dvFile))
        dvBytes[20] ^= 0xFF
        try dvBytes.write(to: URL(fileURLWithPath: dv + "/ab/" + dvFile))
        try fails(dv, ["checksum does not match", dvFile])
        // A checkpoint that lost a file its own version's commit added.
        let stale = try copy("many")
        _ = try TestPostgres.run(["python3", "-c", """
            import json, pyarrow.parquet as pq, pyarrow.compute as pc
            log = '\(stale)/_delta_log/'
            added = [json.loads(l)['add']['path'] for l in open(log + '00000000000000000019.json') if '"add"' in l][0]
            t = pq.read_table(log + '00000000000000000019.checkpoint.parquet')
            keep = [r.get('add') is None or r['add']['path'] != added for r in t.to_pylist()]
            pq.write_table(t.filter(keep), log + '00000000000000000019.checkpoint.parquet')
            """])
        try fails(stale, ["the checkpoint of version 19 disagrees with that version's commit", "checkpoint.parquet"])
        // A log entry that is JSON but not an action of the protocol's shape.
        let shape = try copy("many")
        commit(shape, 25, [#"{"add":{"partitionValues":{},"size":1}}"#])
        try fails(shape, ["00000000000000000025.json:1", "add has no string 'path'"])
    }

    /// Seed 000 from its lake: registros_gold as a Delta table exported to the receiver,
    /// rows appended by delta-rs, exported again: only the new rows go, each once.
    @Test func seed000ExportFromADeltaTableSendsEachRowOnce() throws {
        let cli = try CLI()
        let gold = cli.dir + "/registros_gold"
        _ = try TestPostgres.run(["python3", Self.oracle, "gold", gold, "12000", "1"])
        let rx = try Receiver(dir: cli.dir + "/rx")
        defer { rx.stop() }
        let r = try cli.run(["export", "--from", "delta:registros_gold", "--key", "id", "--to", rx.url, "--batch-size", "5000", "--json",
                             "--ledger", "delta:registros_enviados"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try cli.json(r.out)["delivered_rows"] as? Int == 12000)
        // Seed 000's second table: the sent ids, as delta-rs reads them.
        let sent = "select count(*) || '|' || count(distinct id) || '|' || max(batch) || '|' || min(destination) from t"
        #expect(try TestPostgres.run(["python3", Self.oracle, "query", cli.dir + "/registros_enviados", sent]) == "12000|12000|3|\(rx.url)\n")
        _ = try TestPostgres.run(["python3", Self.oracle, "gold", gold, "3000", "12001"])
        let again = try cli.run(["export", "--from", "delta:registros_gold", "--key", "id", "--to", rx.url, "--batch-size", "5000"])
        #expect(again.status == 0 && again.out.contains("delivered 1 (3000 rows)"), "\(again.out)\(again.err)")
        #expect(again.err.contains("version 1: the changes since the last run"), "\(again.err)")
        // A run that did not publish (no --ledger) is caught up by the next that does.
        let caught = try cli.run(["export", "--from", "delta:registros_gold", "--key", "id", "--to", rx.url, "--ledger", "delta:registros_enviados"])
        #expect(caught.err.contains("ledger delta:registros_enviados: 3000 delivered keys appended"), "\(caught.err)")
        #expect(try TestPostgres.run(["python3", Self.oracle, "query", cli.dir + "/registros_enviados", sent]) == "15000|15000|4|\(rx.url)\n")
        let same = try cli.run(["export", "--from", "delta:registros_gold", "--key", "id", "--to", rx.url])
        #expect(same.status == 0 && same.err.contains("still at version 1: nothing new to read") && same.out.contains("planned 0 new batches"), "\(same.err)")
        // An export that needs SQL (a where:) goes through the mirror table; each row once still.
        let rx2 = try Receiver(dir: cli.dir + "/rx2")
        defer { rx2.stop() }
        let filtered = try cli.run(["export", "--from", "delta:registros_gold", "--key", "id", "--to", rx2.url, "--where", "id > 14000"])
        #expect(filtered.status == 0 && filtered.err.contains("loaded into the mirror") && filtered.out.contains("(1000 rows)"), "\(filtered.out)\(filtered.err)")
        #expect(try rx2.idCounts().count == 1000)
        let counts = try rx.idCounts()
        #expect(counts.count == 15000 && counts.values.allSatisfy { $0 == 1 })
        // An older version exports nothing new.
        let old = try cli.run(["export", "--from", "delta:registros_gold@v0", "--key", "id", "--to", rx.url, "--json"])
        let planned = try cli.json(old.out)["planned"] as? Int
        #expect(old.status == 0 && planned == 0, "\(old.out)\(old.err)")
        // The database gone (an empty ledger): the whole table is read again, whatever version
        // the state folder remembers for this receiver.
        try FileManager.default.removeItem(atPath: cli.dir + "/sluice.db")
        try? FileManager.default.removeItem(atPath: cli.dir + "/.sluice/exports")
        let fresh = try cli.run(["export", "--from", "delta:registros_gold", "--key", "id", "--to", rx.url])
        #expect(fresh.status == 0 && fresh.out.contains("(15000 rows)"), "\(fresh.out)\(fresh.err)")
    }

    /// `where:` on a Delta source filters its rows and skips the files whose statistics or
    /// partition values rule it out.
    @Test func whereSkipsFilesByStatisticsAndPartitions() throws {
        let (cli, _) = try Self.tables()
        let gold = cli.dir + "/gold"
        for k in 0..<10 { _ = try TestPostgres.run(["python3", Self.oracle, "gold", gold, "100", String(k * 100 + 1)]) }
        cli.write("sluice.yml", """
            pipelines:
              by_stats:
                source: delta:gold
                where: "id > 250 and id <= 420"
                into: ranged
              by_partition:
                source: delta:lake/part
                where: "cat = 'B' or valor < 10"
                into: b_rows
            """)
        let r = try cli.run(["run", "by_stats"])
        #expect(r.status == 0 && r.err.contains("read 300, kept 170"), "\(r.err)")  // 3 of 10 files read
        #expect(try cli.sqlite("SELECT count(*), min(id), max(id) FROM ranged") == "170|251|420\n")
        #expect(try cli.run(["run", "by_partition", "--quiet"]).status == 0)
        let want = try TestPostgres.run(["python3", Self.oracle, "query", cli.dir + "/lake/part", "select count(*) from t where cat = 'B' or valor < 10"])
        #expect(try cli.sqlite("SELECT count(*) FROM b_rows") == want)
        cli.write("sluice.yml", "pipelines:\n  bad:\n    source: delta:gold\n    where: \"id >\"\n    into: x\n")
        let bad = try cli.run(["run", "bad"])
        #expect(bad.status != 0 && bad.err.contains("where"), "\(bad.err)")
    }

    /// A table with the change data feed: the changes since a version, deletes and updates
    /// included, applied by a merging load and by a pipeline into a keyed table.
    @Test func theChangeDataFeedCarriesUpdatesAndDeletes() throws {
        let (cli, _) = try Self.tables()
        #expect(try cli.run(["load", "delta:lake/cdf@v0", "--into", "c", "--key", "id", "--quiet"]).status == 0)
        let r = try cli.run(["load", "delta:lake/cdf@v0..", "--into", "c", "--key", "id", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let stats = try cli.json(r.out)["stats"] as? [String: Int]
        #expect(stats?["deleted"] == 10 && stats?["inserted"] == 0, "\(String(describing: stats))")
        let sql = "select count(*) || '|' || sum(case when flag then 1 else 0 end) || '|' || max(id) from t"
        let want = try TestPostgres.run(["python3", Self.oracle, "query", cli.dir + "/lake/cdf", sql])
        #expect(try cli.sqlite("SELECT count(*) || '|' || sum(flag) || '|' || max(id) FROM c") == want)

        // A pipeline: the first run reads the table, the next the changes since, deletes too.
        let t = cli.dir + "/feed"
        _ = try TestPostgres.run(["python3", "-c", """
            import os, pyarrow as pa
            from deltalake import write_deltalake
            write_deltalake('\(t)', pa.table({'id': pa.array(range(1, 101), pa.int64()), 'v': pa.array([f'v{i}' for i in range(1, 101)])}),
                            configuration={'delta.enableChangeDataFeed': 'true'})
            os._exit(0)
            """])
        cli.write("sluice.yml", """
            entities:
              feed_copy: {primary_key: [id]}
            pipelines:
              follow:
                source: delta:feed
                into: feed_copy
            """)
        #expect(try cli.run(["run", "follow", "--quiet"]).status == 0)
        _ = try TestPostgres.run(["python3", "-c", """
            import os
            from deltalake import DeltaTable
            DeltaTable('\(t)').update({'v': "'changed'"}, predicate='id <= 10')
            DeltaTable('\(t)').delete('id > 90')
            os._exit(0)
            """])
        let second = try cli.run(["run", "follow"])
        #expect(second.status == 0 && second.err.contains("versions 1–2"), "\(second.err)")
        #expect(try cli.sqlite("SELECT count(*), sum(v = 'changed'), max(id) FROM feed_copy") == "90|10|90\n")
    }

    /// A table whose key repeats (two appends of the same ids): each key goes once, on the
    /// first export (the ledger empty, keys remembered in the scan) and on later ones (asked of
    /// the ledger page by page).
    @Test func aRepeatedKeyIsSentOnce() throws {
        let cli = try CLI()
        let gold = cli.dir + "/dups"
        for _ in 0..<2 { _ = try TestPostgres.run(["python3", Self.oracle, "gold", gold, "25000", "1"]) }
        let rx = try Receiver(dir: cli.dir + "/rx")
        defer { rx.stop() }
        let r = try cli.run(["export", "--from", "delta:dups", "--key", "id", "--to", rx.url, "--batch-size", "7000", "--json"])
        let first = try cli.json(r.out)["delivered_rows"] as? Int
        #expect(r.status == 0 && first == 25000, "\(r.out)\(r.err)")
        for _ in 0..<2 { _ = try TestPostgres.run(["python3", Self.oracle, "gold", gold, "1000", "24501"]) }
        let again = try cli.run(["export", "--from", "delta:dups", "--key", "id", "--to", rx.url, "--batch-size", "300", "--json"])
        let second = try cli.json(again.out)["delivered_rows"] as? Int
        #expect(again.status == 0 && second == 500, "\(again.out)\(again.err)")
        let counts = try rx.idCounts()
        #expect(counts.count == 25500 && counts.values.allSatisfy { $0 == 1 })
        // Files whose sizes are no multiple of a batch: rows carried from page to page all go.
        let odd = cli.dir + "/odd"
        for k in 0..<4 { _ = try TestPostgres.run(["python3", Self.oracle, "gold", odd, "2500", String(k * 2500 + 1)]) }
        let rx2 = try Receiver(dir: cli.dir + "/rx2")
        defer { rx2.stop() }
        let all = try cli.run(["export", "--from", "delta:odd", "--key", "id", "--to", rx2.url, "--batch-size", "1000"])
        #expect(all.status == 0 && all.out.contains("(10000 rows)"), "\(all.out)\(all.err)")
        #expect(try rx2.idCounts().count == 10000)
    }

    /// The same flow with the ledger and the mirror in PostgreSQL.
    @Test func seed000OnPostgreSQLPublishesItsLedgerToo() throws {
        let pg = try TestPostgres.fresh()
        let cli = try CLI()
        cli.write("sluice.yml", "database: \(pg.url)\n")
        _ = try TestPostgres.run(["python3", Self.oracle, "gold", cli.dir + "/gold", "7000", "1"])
        let rx = try Receiver(dir: cli.dir + "/rx")
        defer { rx.stop() }
        let args = ["export", "--from", "delta:gold", "--key", "id", "--to", rx.url, "--batch-size", "2000", "--ledger", "delta:sent"]
        let r = try cli.run(args)
        #expect(r.status == 0 && r.err.contains("7000 delivered keys appended"), "\(r.err)")
        _ = try TestPostgres.run(["python3", Self.oracle, "gold", cli.dir + "/gold", "500", "7001"])
        let again = try cli.run(args)
        #expect(again.status == 0 && again.err.contains("version 1: the changes since the last run") && again.err.contains("500 delivered keys appended"), "\(again.err)")
        #expect(try rx.idCounts().count == 7500)
        let sent = try TestPostgres.run(["python3", Self.oracle, "query", cli.dir + "/sent", "select count(*) || '|' || count(distinct id) || '|' || max(batch) from t"])
        #expect(sent == "7500|7500|5\n")
    }

    /// A pipeline over a Delta table reads, each run, only the rows added since the version
    /// the last run read; a version that deleted rows stops it until --reprocess.
    @Test func pipelineReadsOnlyWhatWasAddedSinceItsLastRun() throws {
        let cli = try CLI()
        let gold = cli.dir + "/gold"
        _ = try TestPostgres.run(["python3", Self.oracle, "gold", gold, "1000", "1"])
        cli.write("sluice.yml", """
            pipelines:
              g:
                source: delta:gold
                steps:
                  - derive: {double: "valor * 2"}
                into: out
            """)
        #expect(try cli.run(["run", "g", "--quiet"]).status == 0)
        _ = try TestPostgres.run(["python3", Self.oracle, "gold", gold, "500", "1001"])
        let second = try cli.run(["run", "g"])
        #expect(second.status == 0 && second.err.contains("gold version 1: the changes since the last run"), "\(second.err)")
        let third = try cli.run(["run", "g"])
        #expect(third.status == 0 && third.err.contains("still at version 1"), "\(third.err)")
        #expect(try cli.sqlite("SELECT count(*), count(DISTINCT id), sum(double) FROM out") == "1500|1500|2814375.0\n")
        _ = try TestPostgres.run(["python3", "-c", "import os; from deltalake import DeltaTable; DeltaTable('\(gold)').delete('id <= 10'); os._exit(0)"])
        let refused = try cli.run(["run", "g"])
        #expect(refused.status != 0 && refused.err.contains("version 2 removed or rewrote rows") && refused.err.contains("--reprocess"), "\(refused.err)")
        #expect(try cli.run(["run", "g", "--reprocess", "--quiet"]).status == 0)
        #expect(try cli.sqlite("SELECT count(*) FROM out") == "2990\n")
        #expect(try cli.run(["run", "g"]).err.contains("still at version 2"))
    }

    /// A table in an S3 bucket (moto): the snapshot's files are fetched and read as a local
    /// table; a load, an older version and an export read what delta-rs reads.
    @Test func aTableInAnS3BucketLoadsAndExports() throws {
        let s3 = try S3Server.shared()
        let (cli, _) = try Self.tables()
        let bucket = "lake-" + UUID().uuidString.prefix(8).lowercased()
        try s3.boto3("""
            import os
            s3.create_bucket(Bucket="\(bucket)")
            root = "\(cli.dir)/lake/part"
            for d, _, names in os.walk(root):
                for n in names:
                    p = os.path.join(d, n)
                    s3.upload_file(p, "\(bucket)", "tables/part/" + os.path.relpath(p, root))
            """)
        let r = try cli.run(["load", "delta:s3://\(bucket)/tables/part", "--into", "remote", "--key", "id"], env: s3.env)
        #expect(r.status == 0, "\(r.err)")
        let sql = "select count(*) || '|' || sum(id) from t"
        let want = try TestPostgres.run(["python3", Self.oracle, "query", cli.dir + "/lake/part", sql])
        #expect(try cli.sqlite("SELECT count(*) || '|' || sum(id) FROM remote") == want)
        let v1 = try cli.run(["load", "delta:s3://\(bucket)/tables/part/@v1", "--into", "remote_v1", "--key", "id"], env: s3.env)
        #expect(v1.status == 0, "\(v1.err)")
        #expect(try cli.sqlite("SELECT count(*), sum(id) FROM remote_v1") == "500|124750\n")
        #expect(try filesUnder(cli.dir + "/.sluice/downloads").isEmpty, "downloads are removed after the load")
        let missing = try cli.run(["load", "delta:s3://\(bucket)/tables/none", "--into", "x"], env: s3.env)
        #expect(missing.status != 0 && missing.err.contains("has no _delta_log/"), "\(missing.err)")
        let rx = try Receiver(dir: cli.dir + "/rx")
        defer { rx.stop() }
        let e = try cli.run(["export", "--from", "delta:s3://\(bucket)/tables/part", "--key", "id", "--to", rx.url, "--json"], env: s3.env)
        #expect(e.status == 0, "\(e.err)")
        #expect(try rx.idCounts().count == Int(want.split(separator: "|")[0]))
    }
}

/// Issue 17: tables Sluice writes are read by delta-rs as Sluice reads them, keep a valid
/// history other writers can extend, and concurrent writers never lose or double a commit.
@Suite(.serialized) struct DeltaWriteTests {
    /// Runs `n` copies of a shell script at once in `dir`; their exit statuses.
    static func atOnce(_ n: Int, _ script: String, in dir: String, env: [String: String] = [:]) throws -> [Int32] {
        var procs: [Process] = []
        for _ in 0..<n {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", script]
            p.currentDirectoryURL = URL(fileURLWithPath: dir)
            p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
            try p.run()
            procs.append(p)
        }
        return procs.map { $0.waitUntilExit(); return $0.terminationStatus }
    }

    @Test func tablesSluiceWritesReadInDeltaRsAndTakeItsWrites() throws {
        let (cli, _) = try DeltaReadTests.tables()
        #expect(try cli.run(["convert", "delta:lake/part", "lake/src.parquet"]).status == 0)
        let created = try cli.run(["convert", "lake/src.parquet", "delta:lake/mine", "--partition-by", "cat,day", "--json"])
        #expect(created.status == 0, "\(created.err)")
        #expect(try cli.json(created.out)["version"] as? Int == 0)
        let appended = try cli.run(["load", "lake/src.parquet", "--into", "delta:lake/mine"])
        #expect(appended.status == 0 && appended.out.contains("version 1: appended 365 rows"), "\(appended.out)\(appended.err)")
        let replaced = try cli.run(["load", "lake/src.parquet", "--into", "delta:lake/mine", "--mode", "replace"])
        #expect(replaced.status == 0 && replaced.out.contains("version 2: replaced the table with 365 rows"), "\(replaced.out)\(replaced.err)")
        #expect(FileManager.default.fileExists(atPath: cli.dir + "/lake/mine/cat=__HIVE_DEFAULT_PARTITION__"))
        let merge = try cli.run(["load", "lake/src.parquet", "--into", "delta:lake/mine", "--mode", "merge"])
        #expect(merge.status != 0 && merge.err.contains("needs the key: --key id"), "\(merge.err)")
        // Each version as delta-rs's query engine reads it, cell by cell against Sluice's read.
        try? FileManager.default.removeItem(atPath: cli.dir + "/lake/out")
        try FileManager.default.createDirectory(atPath: cli.dir + "/lake/out", withIntermediateDirectories: true)
        for v in 0...2 {
            #expect(try cli.run(["convert", "delta:lake/mine@v\(v)", "lake/out/mine@v\(v).ndjson"]).status == 0)
        }
        let verdict = try TestPostgres.run(["python3", DeltaReadTests.oracle, "compare", cli.dir + "/lake"])
        #expect(verdict.contains("compared 3 versions, 0 differ"), "\(verdict)")
        // delta-rs: the history, the totals, and a write of its own on top that Sluice reads.
        let mine = cli.dir + "/lake/mine"
        let history = try TestPostgres.run(["python3", "-c", "import os; from deltalake import DeltaTable; print(len(DeltaTable('\(mine)').history())); os._exit(0)"])
        #expect(history.trimmingCharacters(in: .whitespacesAndNewlines) == "3")
        let sums = "select count(*) || '|' || sum(id) || '|' || sum(valor) || '|' || count(cat) from t"
        #expect(try TestPostgres.run(["python3", DeltaReadTests.oracle, "query", mine, sums]) == TestPostgres.run(["python3", DeltaReadTests.oracle, "query", cli.dir + "/lake/part", sums]))
        _ = try TestPostgres.run(["python3", DeltaReadTests.oracle, "gold", cli.dir + "/lake/gold", "10", "1"])
        _ = try TestPostgres.run(["python3", "-c", """
            import os
            from deltalake import DeltaTable, write_deltalake
            t = DeltaTable('\(mine)').to_pyarrow_table()
            write_deltalake('\(mine)', t.slice(0, 7), mode='append')
            os._exit(0)
            """])
        let after = try cli.run(["convert", "delta:lake/mine", "after.csv", "--json"])
        #expect(try cli.json(after.out)["rows"] as? Int == 372)
        // A table with other columns: appending is refused, overwriting replaces the schema.
        let other = try cli.run(["load", "lake/gold", "--into", "delta:lake/mine"])
        #expect(other.status != 0 && other.err.contains("append rows of the same columns, or overwrite"), "\(other.err)")
    }

    /// 25 commits: checkpoints at 10 and 20 that delta-rs and polars read from, once the
    /// commits before them are cleaned away.
    @Test func checkpointsEveryTenCommitsAreReadByDeltaRsAndPolars() throws {
        let cli = try CLI()
        cli.write("rows.csv", "id,name,day\n" + (1...20).map { "\($0),n\($0),2024-01-0\($0 % 3 + 1)\n" }.joined())
        for _ in 0..<25 { #expect(try cli.run(["convert", "rows.csv", "delta:t", "--partition-by", "day"]).status == 0) }
        let log = cli.dir + "/t/_delta_log"
        let names = try FileManager.default.contentsOfDirectory(atPath: log)
        #expect(names.contains("00000000000000000010.checkpoint.parquet") && names.contains("00000000000000000020.checkpoint.parquet"))
        // 21 commits of 3 files (one per day), the protocol and the metadata.
        #expect(try String(contentsOfFile: log + "/_last_checkpoint", encoding: .utf8) == #"{"version":20,"size":65}"#)
        for n in names where n.hasSuffix(".json") && Int(n.prefix(20))! <= 20 { try FileManager.default.removeItem(atPath: log + "/" + n) }
        let rs = try TestPostgres.run(["python3", DeltaReadTests.oracle, "query", cli.dir + "/t", "select count(*) || '|' || count(distinct day) from t"])
        #expect(rs == "500|3\n")
        let polars = try TestPostgres.run(["python3", "-c", "import os, polars as pl; print(pl.read_delta('\(cli.dir)/t', version=22).height); os._exit(0)"])
        #expect(polars.trimmingCharacters(in: .whitespacesAndNewlines) == "460")
        let mine = try cli.run(["convert", "delta:t@v21", "x.csv", "--json"])
        #expect(try cli.json(mine.out)["rows"] as? Int == 440)
    }

    /// Writing to a bucket (moto): appends, a merge and a checkpoint at version 10, commits put
    /// only if absent so two writers at once both land; delta-rs reads the table from S3.
    @Test func writesToAnS3BucketCommitOnlyIfAbsent() throws {
        let s3 = try S3Server.shared()
        let cli = try CLI()
        let bucket = "lakew-" + UUID().uuidString.prefix(8).lowercased()
        try s3.boto3("s3.create_bucket(Bucket='\(bucket)')")
        cli.write("rows.csv", "id,name\n" + (1...100).map { "\($0),a\n" }.joined())
        cli.write("changes.csv", "id,name,op\n5,changed,U\n6,,D\n500,new,I\n")
        let table = "delta:s3://\(bucket)/t"
        #expect(try cli.run(["load", "rows.csv", "--into", table, "--key", "id"], env: s3.env).status == 0)
        // Two writers appending at once, four times each.
        let statuses = try Self.atOnce(2, "for i in 1 2 3 4; do '\(CLI.binary)' load rows.csv --into \(table) --mode append >/dev/null || exit 1; done", in: cli.dir, env: s3.env)
        #expect(statuses == [0, 0])
        let merged = try cli.run(["load", "changes.csv", "--into", table, "--key", "id"], env: s3.env)
        #expect(merged.status == 0 && merged.out.contains("version 9: merged by id: inserted 1, updated 1, deleted 1"), "\(merged.out)\(merged.err)")
        #expect(try cli.run(["load", "rows.csv", "--into", table, "--mode", "append"], env: s3.env).status == 0)
        let keys = try s3.boto3("print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='\(bucket)', Prefix='t/_delta_log/')['Contents']))")
        #expect(keys.contains("00000000000000000010.checkpoint.parquet") && keys.contains("_last_checkpoint") && !keys.contains("00000000000000000011.json"), "\(keys)")
        let rs = try TestPostgres.run(["python3", "-c", """
            import os, pyarrow as pa
            from deltalake import DeltaTable, QueryBuilder
            so = {'AWS_ENDPOINT_URL': '\(s3.endpoint)', 'AWS_ALLOW_HTTP': 'true', 'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing', 'AWS_REGION': 'us-east-1'}
            dt = DeltaTable('s3://\(bucket)/t', storage_options=so)
            r = pa.table(QueryBuilder().register('t', dt).execute("select count(*) c, count(distinct id) d from t").read_all()).to_pylist()[0]
            print(dt.version(), r['c'], r['d'])
            os._exit(0)
            """])
        // 9 loads of 100 ids; the merge: id 5's nine rows become one, id 6's go, 500 comes;
        // then 100 more (id 6 again): 900 - 8 - 9 + 1 + 100 rows of 101 ids.
        #expect(rs.trimmingCharacters(in: .whitespacesAndNewlines) == "10 984 101", "\(rs)")
        let back = try cli.run(["load", table, "--into", "back", "--mode", "append"], env: s3.env)
        let backRows = try cli.sqlite("SELECT count(*) FROM back")
        #expect(back.status == 0 && backRows == "984\n", "\(back.err)")
    }

    /// Merge by key, copy-on-write: only the files whose key range holds a changed key are
    /// read and rewritten; delta-rs reads the result.
    @Test func mergeRewritesOnlyTheFilesThatHoldChangedKeys() throws {
        let cli = try CLI()
        let gold = cli.dir + "/gold"
        for k in 0..<10 { _ = try TestPostgres.run(["python3", DeltaReadTests.oracle, "gold", gold, "100", String(k * 100 + 1)]) }
        cli.write("changes.csv", "id,valor,referencia,category,op\n205,1.5,changed,Z,U\n250,,,,D\n205,2.5,changed-last,Z,U\n5000,9,new,N,I\n9999,,,,D\n")
        let r = try cli.run(["load", "changes.csv", "--into", "delta:gold", "--key", "id"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("version 10: merged by id: inserted 1, updated 1, deleted 1, skipped 2, rejected 0; 1 of 10 files rewritten (1 read for keys)"), "\(r.out)")
        let got = try TestPostgres.run(["python3", DeltaReadTests.oracle, "query", gold,
                                        "select count(*) || '|' || sum(id) || '|' || max(case when id = 205 then referencia end) || '|' || max(case when id = 205 then valor end) from t"])
        #expect(got == "1000|\(500_500 - 250 + 5000)|changed-last|2.5\n", "\(got)")
        let history = try TestPostgres.run(["python3", "-c", "import os; from deltalake import DeltaTable; print(DeltaTable('\(gold)').history(1)[0]['operation']); os._exit(0)"])
        #expect(history.contains("MERGE"))
        // Sluice's own read agrees.
        let mine = try cli.run(["load", "delta:gold", "--into", "g", "--key", "id"])
        let sums = try cli.sqlite("SELECT count(*), sum(id) FROM g")
        #expect(mine.status == 0 && sums == "1000|\(500_500 - 250 + 5000)\n")
    }

    /// Writers killed (SIGKILL) at random moments of a write: the table stays readable, and
    /// holds whole writes only.
    @Test func writersKilledMidWriteLeaveWholeCommitsOnly() throws {
        let cli = try CLI()
        cli.write("big.csv", "id,name\n" + (1...200_000).map { "\($0),name \($0)\n" }.joined())
        #expect(try cli.run(["convert", "big.csv", "delta:t"]).status == 0)
        for k in 0..<6 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CLI.binary)
            p.arguments = ["convert", "big.csv", "delta:t"]
            p.currentDirectoryURL = URL(fileURLWithPath: cli.dir)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            Thread.sleep(forTimeInterval: 0.05 + 0.08 * Double(k))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        let r = try cli.run(["convert", "delta:t", "all.csv", "--json"])
        let rows = try cli.json(r.out)["rows"] as? Int ?? -1
        #expect(r.status == 0 && rows > 0 && rows % 200_000 == 0, "\(rows)")
        let rs = try TestPostgres.run(["python3", DeltaReadTests.oracle, "query", cli.dir + "/t", "select count(*) || '|' || count(distinct id) from t"])
        #expect(rs == "\(rows)|200000\n")
    }

    @Test func concurrentWritersNeverLoseACommitAndAKilledWriterLeavesTheTableValid() throws {
        let cli = try CLI()
        cli.write("rows.csv", "id,name\n" + (1...100).map { "\($0),n\($0)\n" }.joined())
        #expect(try cli.run(["convert", "rows.csv", "delta:race"]).status == 0)
        // Two writers, five appends each, at once.
        let statuses = try Self.atOnce(2, "for i in 1 2 3 4 5; do '\(CLI.binary)' convert rows.csv delta:race >/dev/null || exit 1; done", in: cli.dir)
        #expect(statuses == [0, 0])
        let log = try FileManager.default.contentsOfDirectory(atPath: cli.dir + "/race/_delta_log").filter { $0.hasSuffix(".json") }.sorted()
        #expect(log == (0...10).map { String(format: "%020d.json", $0) })
        // A writer killed after writing its Parquet file, before committing: a file no commit
        // names and a half-made commit file; readers see the 11 commits only.
        try FileManager.default.copyItem(atPath: cli.dir + "/race/" + (try FileManager.default.contentsOfDirectory(atPath: cli.dir + "/race").first { $0.hasSuffix(".parquet") })!,
                                         toPath: cli.dir + "/race/part-00001-orphan-c000.snappy.parquet")
        cli.write("race/_delta_log/.sluice-commit-orphan.json.tmp", "{\"add\":{\"path\":\"part-00001-orphan")
        let r = try cli.run(["convert", "delta:race", "all.csv", "--json"])
        #expect(try cli.json(r.out)["rows"] as? Int == 1100)
        let count = try TestPostgres.run(["python3", DeltaReadTests.oracle, "query", cli.dir + "/race", "select count(*) || '|' || count(distinct id) from t"])
        #expect(count == "1100|100\n")
    }
}
