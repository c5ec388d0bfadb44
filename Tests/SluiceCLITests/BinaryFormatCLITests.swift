import Testing
import Foundation
import SluiceTesting

@Suite(.serialized) struct BinaryFormatCLITests {
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
        #expect((try cli.json(r.out)["stats"] as? [String: Int])?["inserted"] == 700)
        #expect(try cli.sqlite("SELECT count(*), count(s), count(uuid), sum(i16) IS NOT NULL FROM types") == "700|600|600|1\n")
        let n = try cli.run(["load", dir + "/nested_v2.parquet", "--into", "nested", "--key", "id"])
        #expect(n.status == 0, "\(n.err)")
        #expect(try cli.sqlite("SELECT mp, st FROM nested WHERE id = 2") == #"{"k0":0.0,"k1":null}|{"a":2,"inner":{"b":"v2","c":[2,3]}}"# + "\n")
        let a = try cli.run(["load", dir + "/avro_deflate.avro", "--into", "avro", "--json"])
        #expect(a.status == 0, "\(a.err)")
        #expect((try cli.json(a.out)["stats"] as? [String: Int])?["inserted"] == 1500)
        #expect(try cli.sqlite("SELECT e, node FROM avro WHERE id = (SELECT min(id) FROM avro)") == #"RED|{"v":0,"next":null}"# + "\n")
        // Back out again: Parquet to CSV and NDJSON.
        let c = try cli.run(["convert", dir + "/many_row_groups.parquet", "out.csv"])
        #expect(c.status == 0, "\(c.err)")
        let csv = try String(contentsOfFile: cli.dir + "/out.csv", encoding: .utf8)
        #expect(csv.hasPrefix("id,v\n0,\n1,0.5\n") && csv.split(separator: "\n").count == 5001)
    }
}
