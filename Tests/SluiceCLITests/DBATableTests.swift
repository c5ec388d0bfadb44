import Testing
import Foundation

/// Tables a DBA made in PostgreSQL, loaded as a user would (issue 19): keys the database
/// fills, natural keys on UNIQUE indexes, array columns, and schemas that are not Sluice's.
@Suite(.serialized) struct DBATableTests {
    static let people = "CREATE TABLE people (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE, name text, tags text[], scores int[], docs jsonb[])"

    @Test func anIdentityKeyIsFilledByTheDatabaseAndAUniqueColumnMerges() throws {
        let pg = try TestPostgres.fresh()
        _ = try pg.query(Self.people)
        let cli = try CLI()
        cli.write("a.csv", "email,name\na@x,Ann\nb@x,Bob\n")
        // No key in the file: append (the database numbers the rows), not an error.
        let r1 = try cli.run(["load", "a.csv", "--into", "people", "--database", pg.url])
        #expect(r1.status == 0, "\(r1.err)")
        #expect(r1.out.contains("(append") && r1.out.contains("inserted  2"), "\(r1.out)")
        // Merging needs a natural key: the error names the UNIQUE one to use.
        cli.write("b.csv", "email,name\nb@x,Bobby\nc@x,Cy\n")
        let r2 = try cli.run(["load", "b.csv", "--into", "people", "--mode", "merge", "--database", pg.url])
        #expect(r2.status != 0 && r2.err.contains("--key email"), "\(r2.err)")
        let r3 = try cli.run(["load", "b.csv", "--into", "people", "--key", "email", "--database", pg.url])
        #expect(r3.status == 0, "\(r3.err)")
        #expect(r3.out.contains("inserted  1") && r3.out.contains("updated   1"), "\(r3.out)")
        #expect(try pg.query("SELECT id, email, name FROM people ORDER BY id") == "1|a@x|Ann\n2|b@x|Bobby\n3|c@x|Cy\n")
        // A key that is neither the primary key nor UNIQUE is refused before anything is written.
        let r4 = try cli.run(["load", "b.csv", "--into", "people", "--key", "name", "--database", pg.url])
        #expect(r4.status != 0 && r4.err.contains("UNIQUE key: (email)"), "\(r4.err)")
    }

    @Test func arrayColumnsTakeJSONArraysAndArrayLiteralsAndRejectBadRowsAlone() throws {
        let pg = try TestPostgres.fresh()
        _ = try pg.query(Self.people)
        let cli = try CLI()
        cli.write("a.csv", """
            email,tags,scores,docs
            a@x,"[""a"",""b c""]","{1,2}","[{""k"":1},[2]]"
            b@x,"{x,""y z""}",[3],
            c@x,[],"[1,""x""]",
            d@x,,"{4,5}","{}"

            """)
        let r = try cli.run(["load", "a.csv", "--into", "people", "--json", "--database", pg.url])
        #expect(r.status == 0, "\(r.err)")
        let stats = try #require(try cli.json(r.out)["stats"] as? [String: Int])
        #expect(stats["inserted"] == 3 && stats["rejected"] == 1, "\(stats)")
        #expect(try pg.query("SELECT email, tags, scores, docs FROM people ORDER BY email") == """
            a@x|{a,"b c"}|{1,2}|{"{\\"k\\": 1}",[2]}
            b@x|{x,"y z"}|{3}|
            d@x||{4,5}|{}

            """)
        let rejects = try #require(FileManager.default.subpathsOfDirectory(atPath: cli.dir + "/.sluice/loads").first { $0.hasSuffix("rejects.csv") })
        let text = try String(contentsOfFile: cli.dir + "/.sluice/loads/" + rejects, encoding: .utf8)
        #expect(text.contains("c@x") && text.contains("invalid input syntax for type integer"), "\(text)")
    }

    /// Connected as user `sluice`, PostgreSQL's default search path finds Sluice's own schema
    /// first: `--into jobs` must still load `public.jobs`, and Sluice's tables are never a target.
    @Test func userTablesNeverLandInSluicesSchema() throws {
        let pg = try TestPostgres.fresh()
        #expect(try pg.query("SELECT current_user") == "sluice\n")
        _ = try pg.query("CREATE SCHEMA sluice; CREATE TABLE sluice.jobs (id bigint PRIMARY KEY, note text)")
        let cli = try CLI()
        cli.write("j.csv", "id,note\n1,mine\n")
        let r1 = try cli.run(["load", "j.csv", "--into", "jobs", "--key", "id", "--database", pg.url])
        #expect(r1.status == 0, "\(r1.err)")
        #expect(try pg.query("SELECT note FROM public.jobs") == "mine\n")
        #expect(try pg.query("SELECT count(*) FROM sluice.jobs") == "0\n")
        let r2 = try cli.run(["load", "j.csv", "--into", "sluice.jobs", "--database", pg.url])
        #expect(r2.status != 0 && r2.err.contains("Sluice's own tables"), "\(r2.err)")
        // A configured target_schema takes every table named without one.
        cli.write("sluice.yml", "target_schema: analytics\n")
        let r3 = try cli.run(["load", "j.csv", "--into", "jobs", "--key", "id", "--database", pg.url])
        #expect(r3.status == 0, "\(r3.err)")
        #expect(try pg.query("SELECT note FROM analytics.jobs") == "mine\n")
        cli.write("sluice.yml", "target_schema: sluice\n")
        let r4 = try cli.run(["load", "j.csv", "--into", "jobs", "--database", pg.url])
        #expect(r4.status != 0 && r4.err.contains("target_schema"), "\(r4.err)")
    }
}
