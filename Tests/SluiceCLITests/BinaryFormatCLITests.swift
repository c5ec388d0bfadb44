import Testing
import Foundation
import SluiceTesting

@Suite(.serialized) struct BinaryFormatCLITests {
    /// `convert --threads 2` (the default on two cores) parses on a thread of its own: the
    /// same file as one thread writes, the same rejects counted, and a file that breaks
    /// halfway fails the same way (many batches in, so the reader is ahead when it breaks).
    @Test func convertOnTwoThreadsWritesWhatOneThreadWrites() throws {
        let cli = try CLI()
        var text = "id,name\n"
        for i in 0..<50_000 { text += i == 31_337 ? "x,bad\n" : "\(i),n\(i)\n" }
        cli.write("in.csv", text)
        cli.write("broken.csv", text + "9,\"never closed\n")
        var outputs: [Data] = []
        for threads in ["1", "2"] {
            let r = try cli.run(["convert", "in.csv", "out\(threads).ndjson", "--threads", threads, "--json"])
            #expect(r.status == 0, "\(r.err)")
            let report = try cli.json(r.out)
            #expect(report["rows"] as? Int == 49_999 && report["rejected"] as? Int == 1, "\(r.out)")
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: cli.dir + "/out\(threads).ndjson")))
            let broken = try cli.run(["convert", "broken.csv", "broken\(threads).parquet", "--threads", threads])
            #expect(broken.status == 1 && broken.err.contains("broken.csv:50002"), "\(broken.err)")
        }
        #expect(outputs[0] == outputs[1] && outputs[0].count > 500_000)
        #expect(try cli.run(["convert", "in.csv", "x.ndjson", "--threads", "3"]).status == 64)
    }

    @Test func parquetAndAvroLoadWithMergeSemantics() throws {
        let cli = try CLI()
        cli.write("base.csv", "id,valor,referencia,category\n1,10.5,abc,A\n2,20.25,\"d,e\",B\n3,30,x,C\n")
        cli.write("changes.csv", "id,valor,referencia,category,op\n1,11,abc,A,U\n2,,,,D\n4,40,y,D,I\n4,41,y,D,U\n9,,,,D\n5,oops,z,E,I\n")
        #expect(try cli.run(["convert", "base.csv", "base.parquet"]).status == 0)
        let c = try cli.run(["convert", "changes.csv", "changes.avro", "--compression", "snappy", "--json"])
        #expect(c.status == 0, "\(c.err)")
        #expect(try cli.json(c.out)["rows"] as? Int == 6)

        let r1 = try cli.run(["load", "base.parquet", "--into", "registros", "--key", "id"])
        #expect(r1.status == 0, "\(r1.err)")
        #expect(r1.out.contains("inserted  3"))
        let r2 = try cli.run(["load", "changes.avro", "--into", "registros", "--json"])
        #expect(r2.status == 0, "\(r2.err)")
        let stats = try #require(try cli.json(r2.out)["stats"] as? [String: Int])
        #expect(stats["read"] == 6 && stats["inserted"] == 1 && stats["updated"] == 1 && stats["deleted"] == 1)
        #expect(stats["rejected"] == 1 && stats["skipped"] == 2)
        #expect(try cli.sqlite("SELECT id, valor, referencia FROM registros ORDER BY id") == "1|11.0|abc\n3|30.0|x\n4|41.0|y\n")
        let files = try #require(try cli.json(r2.out)["files"] as? [[String: Any]])
        let rejects = try #require(files.first?["rejects_file"] as? String)
        let text = try String(contentsOfFile: cli.dir + "/" + rejects, encoding: .utf8)
        #expect(text == "id,valor,referencia,category,op,_line,_error\n5,oops,z,E,I,6,column 'valor': invalid float64 value 'oops'\n")

        let inf = try cli.run(["infer", "changes.avro"])
        #expect(inf.status == 0 && inf.out.contains("format: avro") && inf.out.contains("{name: valor, type: text}"))
        // Gzip around a binary format is refused with a reason.
        let gz = Process()
        gz.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        gz.arguments = ["gzip", "-k", cli.dir + "/base.parquet"]
        try gz.run()
        gz.waitUntilExit()
        let g = try cli.run(["load", "base.parquet.gz", "--into", "other"])
        #expect(g.status == 1 && g.err.contains("compresses its own data"))
    }

    @Test func filesWrittenByPyarrowAndFastavroLoad() throws {
        let cli = try CLI()
        let dir = try Oracle.fixtures.get()
        let r = try cli.run(["load", dir + "/types_zstd_dict_v2.parquet", "--into", "types", "--json"])
        #expect(r.status == 0, "\(r.err)")
        // 200 of the 700 rows hold NaN in f32 or f64: SQLite cannot store NaN (it would turn it
        // into NULL unnoticed), so those rows are rejects with their reason.
        let stats = try cli.json(r.out)["stats"] as? [String: Int]
        #expect(stats?["inserted"] == 500 && stats?["rejected"] == 200, "\(String(describing: stats))")
        #expect(try cli.sqlite("SELECT count(*), count(s), count(uuid), sum(i16) IS NOT NULL FROM types") == "500|400|400|1\n")
        let n = try cli.run(["load", dir + "/nested_v2.parquet", "--into", "nested", "--key", "id"])
        #expect(n.status == 0, "\(n.err)")
        #expect(try cli.sqlite("SELECT mp, st FROM nested WHERE id = 2") == #"{"k0":0,"k1":null}|{"a":2,"inner":{"b":"v2","c":[2,3]}}"# + "\n")
        let a = try cli.run(["load", dir + "/avro_deflate.avro", "--into", "avro", "--json"])
        #expect(a.status == 0, "\(a.err)")
        #expect((try cli.json(a.out)["stats"] as? [String: Int])?["inserted"] == 1500)
        #expect(try cli.sqlite("SELECT e, node FROM avro WHERE id = (SELECT min(id) FROM avro)") == #"RED|{"v":0,"next":null}"# + "\n")
        // Back out again: Parquet to CSV and NDJSON.
        let c = try cli.run(["convert", dir + "/many_row_groups.parquet", "out.csv"])
        #expect(c.status == 0, "\(c.err)")
        let csv = try String(contentsOfFile: cli.dir + "/out.csv", encoding: .utf8)
        #expect(csv.hasPrefix("id,v\n0,\n1,0.5\n") && csv.split(separator: "\n").count == 5001)
        // NDJSON any JSON reader takes whole: 38-digit decimals as strings (numbers on request),
        // NaN and infinities as strings.
        for (flags, asText) in [([String](), true), (["--json-decimals-as-numbers"], false)] {
            #expect(try cli.run(["convert", dir + "/types_zstd_dict_v2.parquet", "types.ndjson"] + flags).status == 0)
            let lines = try String(contentsOfFile: cli.dir + "/types.ndjson", encoding: .utf8).split(separator: "\n")
            let rows = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            #expect(rows.count == 700)
            let d38 = rows.compactMap { $0["d38"] }.filter { !($0 is NSNull) }
            #expect(!d38.isEmpty && d38.allSatisfy { ($0 is String) == asText }, "\(d38.prefix(2))")
            #expect(rows.contains { $0["f64"] as? String == "NaN" })
        }
    }
}

/// Issue 19: the Parquet files Sluice writes open in every reader its users pick — pyarrow,
/// DuckDB, polars, pandas and Spark (which refuses the UUID and TIME logical types, so the
/// default writes uuid as text and time as microseconds; `--compat exact` keeps them).
@Suite struct ParquetReadersCLITests {
    @Test func sluiceParquetOpensInFiveReaders() throws {
        let cli = try CLI()
        let dir = try Oracle.fixtures.get()
        cli.write("u.csv", "id,u,amount\n1,0f8fad5b-d9cb-469f-a165-70867728950e,12.50\n2,,3\n")
        for (input, output, flags) in [(dir + "/types_zstd_dict_v2.parquet", "types.parquet", [String]()), ("u.csv", "u.parquet", []),
                                       (dir + "/types_zstd_dict_v2.parquet", "exact.parquet", ["--compat", "exact"])] {
            let r = try cli.run(["convert", input, output] + flags)
            #expect(r.status == 0, "\(r.err)")
        }
        let out = try TestPostgres.run(["python3", TestPostgres.repoRoot + "/scripts/oracles/readers.py",
                                        cli.dir + "/types.parquet", cli.dir + "/u.parquet", cli.dir + "/exact.parquet"])
        let result = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: [String: [String: Any]]])
        for reader in ["pyarrow", "duckdb", "polars", "pandas", "spark"] {
            let types = result[cli.dir + "/types.parquet"]?[reader]
            #expect(types?["rows"] as? Int == 700, "\(reader): \(String(describing: types))")
            let u = result[cli.dir + "/u.parquet"]?[reader]
            let first = u?["first"] as? [String: String?]
            #expect(first?["u"] == "0f8fad5b-d9cb-469f-a165-70867728950e" && first?["id"] == "1", "\(reader): \(String(describing: u))")
        }
        // The exact types are what Spark refuses (the reason for the default).
        let spark = result[cli.dir + "/exact.parquet"]?["spark"]?["error"] as? String
        #expect(spark?.contains("UUID") == true || spark?.contains("TIME") == true, "\(String(describing: spark))")
    }
}

extension ParquetReadersCLITests {
    /// `parquet:` in sluice.yml sets how every Parquet file is written (the command line still
    /// wins); pyarrow reads the settings back from the file's metadata.
    @Test func theParquetSectionSetsCompatCompressionAndRowGroups() throws {
        let cli = try CLI()
        cli.write("u.csv", "id,u\n1,0f8fad5b-d9cb-469f-a165-70867728950e\n2,7c9e6679-7425-40de-944b-e07fc1f90ae7\n3,\n")
        cli.write("sluice.yml", "parquet:\n  compat: exact\n  compression: zstd\n  row_group_rows: 2\n")
        #expect(try cli.run(["convert", "u.csv", "a.parquet"]).status == 0)
        #expect(try cli.run(["convert", "u.csv", "b.parquet", "--compat", "spark", "--compression", "gzip", "--row-group-rows", "5"]).status == 0)
        let script = """
            import pyarrow.parquet as pq, sys
            for f in sys.argv[1:]:
                m = pq.ParquetFile(f).metadata
                print(m.num_row_groups, m.row_group(0).column(1).compression, m.schema.column(1).logical_type.type)
            """
        let out = try TestPostgres.run(["python3", "-c", script, cli.dir + "/a.parquet", cli.dir + "/b.parquet"])
        #expect(out == "2 ZSTD UUID\n1 GZIP STRING\n", "\(out)")
        cli.write("sluice.yml", "parquet:\n  compat: spork\n")
        let bad = try cli.run(["convert", "u.csv", "c.parquet"])
        #expect(bad.status == 1 && bad.err.contains("sluice.yml:2") && bad.err.contains("parquet.compat is wide (or spark) or exact, not 'spork'"), "\(bad.err)")
    }
}

@Suite(.serialized) struct BinaryFormatPostgresTests {
    @Test func pyarrowAndFastavroFilesLoadIntoPostgresWithTheirTypes() throws {
        let pg = try TestPostgres.fresh()
        let cli = try CLI()
        let dir = try Oracle.fixtures.get()
        for (file, table) in [("types_snappy_dict_v2.parquet", "types"), ("nested_v1.parquet", "nested"), ("avro_snappy.avro", "avro")] {
            let r = try cli.run(["load", dir + "/" + file, "--into", table, "--database", pg.url, "--json"])
            #expect(r.status == 0, "\(file): \(r.err)")
        }
        #expect(try pg.query("SELECT count(*), count(uuid), count(d38), count(t_us) FROM types") == "700|600|600|600\n")
        let types = try pg.query("""
            SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM pg_attribute
            WHERE attrelid = 'types'::regclass AND attnum > 0 AND attname IN ('u64', 'd38', 'd50', 'date', 't_ms', 'ts_ms', 'ts_us_utc', 'uuid', 'js', 'bin')
            """)
        #expect(types == "u64 numeric(20,0),bin bytea,d38 numeric(38,10),d50 text,date date,t_ms time without time zone,ts_ms timestamp without time zone,ts_us_utc timestamp with time zone,uuid uuid,js jsonb\n")
        // The same values SQLite got, through each database's text form.
        let sq = try cli.run(["load", dir + "/types_snappy_dict_v2.parquet", "--into", "types"])
        #expect(sq.status == 0)
        // PostgreSQL keeps the NaN rows that SQLite rejects: compare the others.
        #expect(try pg.query("""
            SELECT d38::text, u64::text, js->>'k' FROM types WHERE i8 IS NOT NULL AND (f32 IS NULL OR f32 <> 'NaN') AND (f64 IS NULL OR f64 <> 'NaN')
            ORDER BY i64 LIMIT 3
            """)
                == (try cli.sqlite("SELECT d38, u64, json_extract(js, '$.k') FROM types WHERE i8 IS NOT NULL ORDER BY i64 LIMIT 3")))
        #expect(try pg.query("SELECT count(*) FROM avro WHERE node->'next' IS NOT NULL") == "1500\n")
        #expect(try pg.query("SELECT st->'inner'->>'b' FROM nested WHERE id = 2") == "v2\n")
    }
}
